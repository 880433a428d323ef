"""The demo catalog: big enough, deterministic, and consistent with the units that run it."""

from __future__ import annotations

import re
from collections import Counter

from server.demo.miniapp_catalog import CATEGORIES, SCOPES, generate
from server.demo.shenzhen_units import BY_CODE, CITY_CODE, DISTRICTS, UNITS

CATALOG = generate()


def test_at_least_8000_unique_apps_with_opaque_ids() -> None:
    assert len(CATALOG) >= 8000
    assert len({m.app_id for m in CATALOG}) == len(CATALOG)
    assert len({m.slug for m in CATALOG}) == len(CATALOG)
    assert len({m.name_zh for m in CATALOG}) == len(CATALOG)
    assert all(re.fullmatch(r"app_[0-9a-f]{20}", m.app_id) for m in CATALOG)
    assert all(re.fullmatch(r"[a-z0-9-]+", m.slug) for m in CATALOG)


def test_generation_is_deterministic() -> None:
    assert generate() == CATALOG
    other = generate(seed=1)
    assert [m.app_id for m in other] == [m.app_id for m in CATALOG]  # ids do not depend on it
    assert [m.use_count for m in other] != [m.use_count for m in CATALOG]


def test_every_unit_runs_apps_and_names_match_the_unit() -> None:
    assert {m.unit_code for m in CATALOG} == {u.code for u in UNITS}
    for m in CATALOG:
        unit = BY_CODE[m.unit_code]
        assert m.unit_name == unit.name_zh
        if unit.kind == "district":
            assert m.districts == (unit.district_code,)  # a district serves its own residents
        else:
            assert unit.district_code == CITY_CODE
        assert set(m.districts) <= set(DISTRICTS)


def test_owners_are_plausible() -> None:
    owners = Counter((m.category, BY_CODE[m.unit_code].kind) for m in CATALOG)
    by_name = {m.name_zh: m for m in CATALOG}
    assert by_name["交通违法处理"].unit_code == "sz-traffic-police"
    assert by_name["住房公积金提取"].unit_code == "sz-hpf"
    assert by_name["电费缴纳"].unit_code == "sz-power"
    assert by_name["深圳市人民医院预约挂号"].unit_code == "sz-health"
    assert all(m.unit_code in ("sz-water", "sz-gas", "sz-power") for m in CATALOG
               if m.category == "utilities")  # fmt: skip
    assert owners[("utilities", "soe")] > 30 and owners[("hospital", "district")] > 500


def test_categories_kinds_levels_and_scopes_are_valid() -> None:
    assert {m.category for m in CATALOG} == set(CATEGORIES)
    assert {m.kind for m in CATALOG} == {"service", "life"}
    assert {m.min_assurance for m in CATALOG} == {"L1", "L2", "L3"}
    assert all(m.scopes in SCOPES.values() and "openid" in m.scopes for m in CATALOG)
    # Asking for an ID number needs a real-name assurance level.
    assert all(m.min_assurance != "L1" for m in CATALOG if "id_number" in m.scopes)
    assert all(m.name_en.isascii() and m.name_en for m in CATALOG)
    assert all(m.use_count >= 0 and m.rating_count >= 0 for m in CATALOG)
    assert all(m.rating_count == 0 or 1 <= m.rating_sum / m.rating_count <= 5 for m in CATALOG)
