"""Gray (canary) release: which version of a mini-app a citizen is served.

A release in gray has a ``percent`` (0-100, steps of 0.01) and an optional
cohort (districts, assurance levels, age bands). A citizen gets the gray
version when they match the cohort (if one is set) AND their bucket falls
under the percentage; everyone else gets the previous full release.

The bucket is ``SHA-256(app_id NUL pairwise_sub)`` mod 10,000: stable across
workers and restarts (unlike ``hash()``), independent between apps (the
pairwise sub differs per app anyway), and monotonic: raising the percentage
only adds citizens, nobody flips back and forth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from identity.errors import ValidationError

BUCKETS = 10_000
# Inclusive lower bound of each band, in order; the last band is open-ended.
AGE_BANDS: tuple[tuple[str, int], ...] = (
    ("0-17", 0),
    ("18-29", 18),
    ("30-39", 30),
    ("40-49", 40),
    ("50-59", 50),
    ("60-69", 60),
    ("70+", 70),
)
_BAND_NAMES = frozenset(name for name, _ in AGE_BANDS)


def bucket(app_id: str, subject: str) -> int:
    """The citizen's stable bucket 0..9999 for this app."""
    digest = hashlib.sha256(f"{app_id}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def age_on(birth_date: date, today: date) -> int:
    """Completed years of age on ``today`` (a 29 February birthday counts on 1 March)."""
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - before_birthday


def age_band(birth_date: date, today: date) -> str:
    age = age_on(birth_date, today)
    band = AGE_BANDS[0][0]
    for name, lower in AGE_BANDS:
        if age >= lower:
            band = name
    return band


@dataclass(frozen=True, slots=True)
class Citizen:
    """What gray selection may know about a citizen (no name, no ID number)."""

    subject: str  # the app-specific pairwise sub
    district: str | None = None  # administrative code, e.g. "440305"
    assurance_level: str | None = None
    birth_date: date | None = None


def _strings(raw: Any, name: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(x, str | int) for x in raw):
        raise ValidationError(f"cohort.{name}", "must be a list of strings")
    return frozenset(str(x) for x in raw)


@dataclass(frozen=True, slots=True)
class Cohort:
    """Empty criteria match everyone; a set criterion must match (AND between, OR within)."""

    districts: frozenset[str] = frozenset()
    assurance_levels: frozenset[str] = frozenset()
    age_bands: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Cohort:
        unknown = set(raw) - {"districts", "assurance_levels", "age_bands"}
        if unknown:
            raise ValidationError("cohort", f"unknown cohort criteria: {sorted(unknown)}")
        bands = _strings(raw.get("age_bands"), "age_bands")
        if not bands <= _BAND_NAMES:
            raise ValidationError("cohort.age_bands", f"bands are {[n for n, _ in AGE_BANDS]}")
        return cls(
            districts=_strings(raw.get("districts"), "districts"),
            assurance_levels=_strings(raw.get("assurance_levels"), "assurance_levels"),
            age_bands=bands,
        )

    def to_json(self) -> dict[str, list[str]]:
        return {
            "districts": sorted(self.districts),
            "assurance_levels": sorted(self.assurance_levels),
            "age_bands": [n for n, _ in AGE_BANDS if n in self.age_bands],
        }

    def matches(self, citizen: Citizen, today: date) -> bool:
        if self.districts and citizen.district not in self.districts:
            return False
        if self.assurance_levels and citizen.assurance_level not in self.assurance_levels:
            return False
        if self.age_bands:
            # Unknown age is outside any age cohort: a canary must not reach a minor by accident.
            if citizen.birth_date is None:
                return False
            if age_band(citizen.birth_date, today) not in self.age_bands:
                return False
        return True


@dataclass(frozen=True, slots=True)
class GrayRelease:
    """The newest release of an app and how far it is rolled out."""

    version: str
    percent: float = 100.0
    cohort: Cohort | None = field(default=None)

    def __post_init__(self) -> None:
        if not 0 <= self.percent <= 100:
            raise ValidationError("percent", "must be between 0 and 100")

    def includes(self, app_id: str, citizen: Citizen, today: date) -> bool:
        if self.cohort is not None and not self.cohort.matches(citizen, today):
            return False
        return bucket(app_id, citizen.subject) < round(self.percent * BUCKETS / 100)


def choose_version(
    app_id: str,
    citizen: Citizen,
    current: GrayRelease,
    previous_version: str | None,
    today: date,
) -> str | None:
    """The version to serve, or ``None`` if the citizen may not see the app yet.

    ``None`` happens only for an app's first release while it is in gray.
    """
    if current.includes(app_id, citizen, today):
        return current.version
    return previous_version


def share_served(
    app_id: str, citizens: Iterable[Citizen], release: GrayRelease, today: date
) -> float:
    """Fraction of ``citizens`` the release reaches (for the console's preview)."""
    population = list(citizens)
    if not population:
        return 0.0
    return sum(release.includes(app_id, c, today) for c in population) / len(population)
