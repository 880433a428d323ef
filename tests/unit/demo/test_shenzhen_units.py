"""The Shenzhen demo units: the counts of the case, unique codes and names, district codes."""

from __future__ import annotations

import re
from collections import Counter

from server.demo.shenzhen_units import (
    BY_CODE,
    CITY_CODE,
    DISTRICTS,
    NON_STANDARD_CODES,
    UNITS,
    units_of_kind,
)


def test_counts_match_the_shenzhen_case() -> None:
    assert len(UNITS) == 76
    assert Counter(u.kind for u in UNITS) == {
        "direct": 3,
        "municipal": 43,
        "district": 11,
        "soe": 19,
    }
    assert len(units_of_kind("soe")) == 19


def test_codes_and_names_are_unique_and_well_formed() -> None:
    assert len({u.code for u in UNITS}) == 76 == len(BY_CODE)
    assert len({u.name_zh for u in UNITS}) == 76
    assert len({u.name_en for u in UNITS}) == 76
    assert all(re.fullmatch(r"sz-[a-z0-9-]+", u.code) for u in UNITS)
    assert all(u.name_zh and u.name_en for u in UNITS)


def test_district_codes() -> None:
    districts = units_of_kind("district")
    assert {u.district_code for u in districts} == set(DISTRICTS)
    assert len(DISTRICTS) == 11
    assert DISTRICTS["440305"] == "南山区" and DISTRICTS["440304"] == "福田区"
    assert DISTRICTS["440313"] == "深汕特别合作区"
    standard = set(DISTRICTS) - NON_STANDARD_CODES
    assert standard == {f"4403{n:02d}" for n in range(3, 12)}
    assert all(u.district_code == CITY_CODE for u in UNITS if u.kind != "district")
    assert BY_CODE["sz-psb"].name_zh == "深圳市公安局"
    assert BY_CODE["sz-metro"].kind == "soe"
