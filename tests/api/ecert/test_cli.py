"""``superapp ecert verify-offline`` and ``superapp ecert import`` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import main
from server.settings import Settings
from tests.api.ecert.helpers import World, issue, qr
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_verify_offline_fetches_saves_and_reuses_material(
    api: Api, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = await issue(api, world)
    text = (await qr(api, world, cert["id"]))["qr_text"]
    saved = tmp_path / "material.json"
    args = ["ecert", "verify-offline", text, "--base-url", api.base_url, "--save", str(saved)]
    assert await asyncio.to_thread(main, args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] and out["claims"]["name"] == "林*" and out["status_checked"]
    # Offline: no network, only the saved material. The code is not consumed offline.
    assert (
        await asyncio.to_thread(main, ["ecert", "verify-offline", text, "--material", str(saved)])
        == 0
    )
    capsys.readouterr()
    await api.post(
        f"/api/v1/ecert/certificates/{cert['id']}/revoke",
        token=world.issuer_token,
        json={"reason": "stolen"},
    )
    args = ["ecert", "verify-offline", text, "--base-url", api.base_url]
    assert await asyncio.to_thread(main, args) == 1
    out = json.loads(capsys.readouterr().out)
    assert out == {"valid": False, "code": "certificate-revoked", "detail": out["detail"]}
    assert (
        await asyncio.to_thread(
            main, ["ecert", "verify-offline", "HC1:XYZ", "--material", str(saved)]
        )
        == 1
    )
    assert json.loads(capsys.readouterr().out)["code"] == "qr-bad-prefix"


async def test_bulk_import_reports_bad_rows_and_is_idempotent(
    api: Api, world: World, settings: Settings, tmp_path: Path
) -> None:
    csv_file = tmp_path / "certs.csv"
    csv_file.write_text(
        "doc_number,type,holder_sub,valid_until,name,id_number,birth_date\n"
        f"B-1,{world.type_code},{world.citizen_sub},2030-01-01,林嘉怡,440305198608126485,1986-08-12\n"
        f"B-2,{world.type_code},usr_nobody,2030-01-01,张三,440303199001018578,1990-01-01\n"
        f"B-3,{world.type_code},{world.citizen_sub},2030-01-01,,440305198608126485,1986-08-12\n"
        f"B-4,nope,{world.citizen_sub},2030-01-01,林嘉怡,440305198608126485,1986-08-12\n",
        "utf-8",
    )
    env = {
        **os.environ,
        "SUPERAPP_DATABASE_URL": settings.database_url or "",
        "SUPERAPP_REDIS_URL": settings.redis_url or "",
        "SUPERAPP_MASTER_KEY": settings.master_key or "",
        "SUPERAPP_DATA_DIR": str(tmp_path / "data"),
        "SUPERAPP_LOG_LEVEL": "WARNING",
    }
    cmd = [
        sys.executable,
        "-m",
        "server.cli",
        "ecert",
        "import",
        str(csv_file),
        "--unit",
        world.unit_code,
    ]
    report = tmp_path / "errors.csv"
    proc = await asyncio.to_thread(
        subprocess.run,
        [*cmd, "--report", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "row 3 (B-2): holder-not-found" in proc.stdout
    assert "row 4 (B-3): validation-failed" in proc.stdout
    assert "row 5 (B-4): unknown-certificate-type" in proc.stdout
    assert "4 rows: 1 issued, 0 already issued, 3 failed" in proc.stdout
    assert "import [" in proc.stderr  # the progress bar
    assert len(report.read_text("utf-8").splitlines()) == 4
    again = await asyncio.to_thread(
        subprocess.run, [*cmd, "--quiet"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "4 rows: 0 issued, 1 already issued, 3 failed" in again.stdout
    wallet = await api.get("/api/v1/ecert/wallet", token=world.citizen_token)
    assert [c["doc_number"] for c in wallet.json()["certificates"]] == ["B-1"]
