"""Bulk issuance from CSV: one certificate per row, idempotent on the
document number (a re-run of the same file issues nothing twice), with a
per-row error report instead of stopping at the first bad row.

Columns: ``doc_number``, ``type``, ``holder_sub`` or ``holder_id_number``,
optional ``valid_from`` / ``valid_until``; every other column is a claim of
the type (empty cells are left out).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ecert.service import Certificates
from identity.errors import DomainError

FIXED = ("doc_number", "type", "holder_sub", "holder_id_number", "valid_from", "valid_until")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based line number of the data row (the header is line 1)
    doc_number: str
    code: str
    detail: str


@dataclass
class ImportReport:
    total: int = 0
    issued: int = 0
    unchanged: int = 0  # already issued with the same content
    errors: list[RowError] = field(default_factory=list)


def read_rows(stream: TextIO) -> list[dict[str, str]]:
    reader = csv.DictReader(stream)
    missing = {"doc_number", "type"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"the CSV header lacks {', '.join(sorted(missing))}")
    return [dict(r) for r in reader]


def row_body(row: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {k: row[k].strip() for k in FIXED if (row.get(k) or "").strip()}
    body["claims"] = {
        k: v for k, v in row.items() if k and k not in FIXED and v is not None and v.strip()
    }
    return body


async def import_rows(
    certificates: Certificates,
    unit_id: str,
    rows: Iterable[dict[str, str]],
    *,
    issued_by: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    rows = list(rows)
    report = ImportReport(total=len(rows))
    for n, row in enumerate(rows, 1):
        try:
            result = await certificates.issue_for_unit(unit_id, row_body(row), issued_by=issued_by)
        except DomainError as exc:
            report.errors.append(RowError(n + 1, row.get("doc_number") or "", exc.code, exc.detail))
        else:
            if result.created:
                report.issued += 1
            else:
                report.unchanged += 1
        if progress:
            progress(n, len(rows))
    return report
