"""Gray release: sticky, proportional, cohort-restricted version selection."""

from __future__ import annotations

from datetime import date

import pytest

from identity.errors import ValidationError
from miniapps.gray import (
    Citizen,
    Cohort,
    GrayRelease,
    age_band,
    age_on,
    bucket,
    choose_version,
    share_served,
)

TODAY = date(2026, 11, 22)
POPULATION = [Citizen(subject=f"pw_{i:05d}") for i in range(10_000)]


def test_same_citizen_always_gets_the_same_version() -> None:
    release = GrayRelease("2.0.0", percent=30)
    for citizen in POPULATION[:200]:
        first = choose_version("app_a", citizen, release, "1.9.0", TODAY)
        assert all(
            choose_version("app_a", citizen, release, "1.9.0", TODAY) == first for _ in range(3)
        )
    assert bucket("app_a", "pw_1") == bucket("app_a", "pw_1")
    assert 0 <= bucket("app_a", "pw_1") < 10_000


@pytest.mark.parametrize("percent", [0, 1, 5, 10, 25, 50, 90, 100])
def test_share_of_10000_citizens_is_close_to_the_percentage(percent: float) -> None:
    share = share_served("app_b", POPULATION, GrayRelease("2.0.0", percent=percent), TODAY)
    # Binomial sd at n=10,000 is <= 0.5 %; allow ~3 sd.
    assert abs(share - percent / 100) <= 0.015
    if percent in (0, 100):
        assert share == percent / 100


def test_raising_the_percentage_only_adds_citizens() -> None:
    at_10 = {c.subject for c in POPULATION if GrayRelease("2", 10).includes("app_c", c, TODAY)}
    at_20 = {c.subject for c in POPULATION if GrayRelease("2", 20).includes("app_c", c, TODAY)}
    assert at_10 < at_20


def test_apps_pick_different_canaries() -> None:
    release = GrayRelease("2", 10)
    in_a = {c.subject for c in POPULATION if release.includes("app_a", c, TODAY)}
    in_b = {c.subject for c in POPULATION if release.includes("app_b", c, TODAY)}
    assert len(in_a & in_b) < 0.3 * len(in_a)  # independent: about 10 % overlap


def test_cohort_excludes_everyone_outside_even_at_100_percent() -> None:
    cohort = Cohort.from_json({"districts": ["440305"], "assurance_levels": ["L3"]})
    release = GrayRelease("2.0.0", percent=100, cohort=cohort)
    inside = Citizen("pw_1", district="440305", assurance_level="L3")
    wrong_district = Citizen("pw_1", district="440304", assurance_level="L3")
    wrong_level = Citizen("pw_1", district="440305", assurance_level="L2")
    unknown = Citizen("pw_1")
    assert choose_version("app_d", inside, release, "1.0.0", TODAY) == "2.0.0"
    for citizen in (wrong_district, wrong_level, unknown):
        assert choose_version("app_d", citizen, release, "1.0.0", TODAY) == "1.0.0"


def test_cohort_and_percentage_combine() -> None:
    cohort = Cohort.from_json({"districts": ["440303", "440307"]})
    release = GrayRelease("2", percent=50, cohort=cohort)
    citizens = [
        Citizen(f"pw_{i}", district=("440303", "440307", "440306")[i % 3]) for i in range(9_000)
    ]
    served = [c for c in citizens if release.includes("app_e", c, TODAY)]
    assert all(c.district != "440306" for c in served)
    assert abs(len(served) / 6_000 - 0.5) < 0.03


def test_age_band_cohort_uses_birth_date_and_excludes_unknown_age() -> None:
    release = GrayRelease("2", 100, Cohort.from_json({"age_bands": ["18-29"]}))
    young = Citizen("pw_1", birth_date=date(2000, 1, 1))  # 26
    turns_18_tomorrow = Citizen("pw_2", birth_date=date(2008, 11, 23))
    turned_30_today = Citizen("pw_3", birth_date=date(1996, 11, 22))
    assert choose_version("app_f", young, release, "1", TODAY) == "2"
    assert choose_version("app_f", turns_18_tomorrow, release, "1", TODAY) == "1"
    assert choose_version("app_f", turned_30_today, release, "1", TODAY) == "1"
    assert choose_version("app_f", Citizen("pw_4"), release, "1", TODAY) == "1"


def test_age_arithmetic() -> None:
    assert age_on(date(2000, 2, 29), date(2026, 2, 28)) == 25
    assert age_on(date(2000, 2, 29), date(2026, 3, 1)) == 26
    assert age_band(date(2020, 5, 1), TODAY) == "0-17"
    assert age_band(date(1950, 5, 1), TODAY) == "70+"
    assert age_band(date(1976, 11, 22), TODAY) == "50-59"


def test_first_release_in_gray_hides_the_app_from_others() -> None:
    release = GrayRelease("1.0.0", percent=0)
    assert choose_version("app_g", POPULATION[0], release, None, TODAY) is None


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        GrayRelease("2", percent=101)
    with pytest.raises(ValidationError):
        Cohort.from_json({"age_bands": ["18-25"]})
    with pytest.raises(ValidationError):
        Cohort.from_json({"districts": "440305"})
    with pytest.raises(ValidationError):
        Cohort.from_json({"genders": ["f"]})
    cohort = Cohort.from_json({"age_bands": ["60-69", "18-29"], "districts": [440305]})
    assert cohort.to_json() == {
        "districts": ["440305"],
        "assurance_levels": [],
        "age_bands": ["18-29", "60-69"],
    }
