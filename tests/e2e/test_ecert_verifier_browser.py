"""The counter verifier page in headless Chromium (Debian's chromium + chromedriver,
driven by Selenium) with a fake camera that shows a real QR code: the clerk signs
in, scans the citizen's code and sees VALID; a second scan shows INVALID
(qr-replayed); pasting a revoked certificate's code shows INVALID too.

Skipped when chromium, chromedriver or selenium is not installed
(``apt-get install chromium chromium-driver``; ``pip install selenium``).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ecert.presentation.qr import matrix
from tests.api.ecert.helpers import make_world, qr
from tests.support import Api, random_phone

pytestmark = pytest.mark.asyncio
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


def write_y4m(text: str, path: Path, width: int = 640, height: int = 480) -> None:
    """One 4:2:0 frame (Chromium loops it) showing the QR code on white."""
    rows, n, _ = matrix(text)
    module = min(width, height) // (n + 8)
    left, top = (width - n * module) // 2, (height - n * module) // 2
    luma = bytearray(b"\xff" * (width * height))
    for r, value in enumerate(rows):
        line = format(value, f"0{n}b")
        for c, dark in enumerate(line):
            if dark == "1":
                for dy in range(module):
                    start = (top + r * module + dy) * width + left + c * module
                    luma[start : start + module] = b"\x00" * module
    chroma = b"\x80" * (width * height // 4)
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + bytes(luma) + chroma + chroma)


def browser(video: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER or ""), options=options)


def run_page(
    base_url: str, phone: str, code_of: Callable[[], str], texts: dict[str, str]
) -> dict[str, str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    seen: dict[str, str] = {}
    driver = browser(Path(texts["video"]))
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(base_url + "/ecert/verifier")
        wait.until(ec.visibility_of_element_located((By.ID, "si-phone"))).send_keys(phone)
        driver.find_element(By.ID, "si-send").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "si-msg"), "Code sent"))
        driver.find_element(By.ID, "si-code").send_keys(code_of())
        driver.find_element(By.ID, "si-go").click()
        wait.until(ec.visibility_of_element_located((By.ID, "work")))
        wait.until(lambda d: len(Select(d.find_element(By.ID, "matter")).options) > 0)
        Select(driver.find_element(By.ID, "matter")).select_by_value("t-all")

        def scan(label: str) -> None:
            driver.execute_script("document.getElementById('result').hidden = true")
            driver.find_element(By.ID, "camera").click()
            wait.until(ec.visibility_of_element_located((By.ID, "result")))
            result = driver.find_element(By.ID, "result")
            seen[label] = result.get_attribute("class") + " | " + result.text

        scan("first")
        scan("second")
        box = driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys(texts["revoked"])
        driver.execute_script("document.getElementById('result').hidden = true")
        driver.find_element(By.ID, "verify").click()
        wait.until(ec.visibility_of_element_located((By.ID, "result")))
        result = driver.find_element(By.ID, "result")
        seen["revoked"] = result.get_attribute("class") + " | " + result.text
        seen["scanner"] = driver.find_element(By.ID, "scanmsg").text
    finally:
        driver.quit()
    return seen


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromedriver")
async def test_clerk_scans_with_the_camera_then_the_replay_is_refused(
    api: Api, tmp_path: Path
) -> None:
    pytest.importorskip("selenium")
    world = await make_world(api)
    resp = await api.post(
        "/api/v1/ecert/certificates", token=world.issuer_token, json=world.issue_body()
    )
    cert = resp.json()
    text = (await qr(api, world, cert["id"]))["qr_text"]
    revoked = (
        await api.post(
            "/api/v1/ecert/certificates", token=world.issuer_token, json=world.issue_body()
        )
    ).json()
    revoked_text = (await qr(api, world, revoked["id"]))["qr_text"]
    await api.post(
        f"/api/v1/ecert/certificates/{revoked['id']}/revoke",
        token=world.issuer_token,
        json={"reason": "lost"},
    )
    video = tmp_path / "qr.y4m"
    write_y4m(text, video)
    phone = random_phone()
    await api.services.orgs.grant(phone, "counter-staff", world.clerk_unit, granted_by=None)
    loop = asyncio.get_running_loop()

    def code_of() -> str:
        return asyncio.run_coroutine_threadsafe(api.last_code(phone), loop).result(30)

    seen: dict[str, str] = await asyncio.to_thread(
        run_page,
        api.base_url,
        phone,
        code_of,
        {"video": str(video), "revoked": revoked_text},
    )
    assert seen["scanner"].startswith("Scanning ("), seen
    assert seen["first"].startswith("valid | ✓ VALID"), seen
    assert "林*" in seen["first"] and "4403**********6485" in seen["first"]
    assert seen["second"].startswith("invalid | ✗ INVALID") and "qr-replayed" in seen["second"]
    assert seen["revoked"].startswith("invalid") and "certificate-revoked" in seen["revoked"]
    uses = await api.get(f"/api/v1/ecert/wallet/{cert['id']}/uses", token=world.citizen_token)
    assert [u["result"] for u in uses.json()["uses"]] == ["qr-replayed", "valid"]


def run_wallet(base_url: str, phone: str, code_of: Callable[[], str]) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser(Path("/dev/null"))
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(base_url + "/ecert/wallet")
        wait.until(ec.visibility_of_element_located((By.ID, "si-phone"))).send_keys(phone)
        driver.find_element(By.ID, "si-send").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "si-msg"), "Code sent"))
        driver.find_element(By.ID, "si-code").send_keys(code_of())
        driver.find_element(By.ID, "si-go").click()
        button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#certs .cert")))
        label = button.text
        button.click()
        image = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#qr img")))
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth > 0", image))
        wait.until(ec.text_to_be_present_in_element((By.ID, "countdown"), "Valid for"))
        first = driver.find_element(By.ID, "qr").get_attribute("data-text")
        Select(driver.find_element(By.ID, "profile")).select_by_value("standard")
        wait.until(lambda d: d.find_element(By.ID, "qr").get_attribute("data-text") != first)
        second = driver.find_element(By.ID, "qr").get_attribute("data-text")
        return {"label": label, "first": first, "second": second}
    finally:
        driver.quit()


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromedriver")
async def test_citizen_wallet_page_shows_a_live_qr_code(api: Api) -> None:
    pytest.importorskip("selenium")
    world = await make_world(api)
    phone = random_phone()
    tokens = await api.sign_in(phone)
    me = (await api.get("/api/v1/identity/me", token=tokens["access_token"])).json()
    body = world.issue_body(holder_sub=me["sub"])
    resp = await api.post("/api/v1/ecert/certificates", token=world.issuer_token, json=body)
    assert resp.status_code == 201
    loop = asyncio.get_running_loop()

    def code_of() -> str:
        return asyncio.run_coroutine_threadsafe(api.last_code(phone), loop).result(30)

    seen: dict[str, Any] = await asyncio.to_thread(run_wallet, api.base_url, phone, code_of)
    assert "Test certificate" in seen["label"] and "valid" in seen["label"]
    assert seen["first"].startswith("SZ1:") and seen["second"].startswith("SZ1:")
    # The code on screen is the real thing: the clerk's scan of it succeeds.
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.clerk_token,
        json={"qr_text": seen["second"], "matter_code": "t-all"},
    )
    assert resp.status_code == 200 and resp.json()["claims"]["birth_date"] == "1986-08-12"
