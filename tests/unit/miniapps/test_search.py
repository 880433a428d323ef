"""Search building blocks: pinyin, lexemes, tsquery text, ranking."""

from __future__ import annotations

from miniapps.search import (
    SearchDoc,
    bayesian_rating,
    build_tsquery,
    normalize,
    pinyin_full,
    pinyin_initials,
    rank,
    rank_score,
    search_lexemes,
    text_match,
)

FUND = SearchDoc(
    name_zh="住房公积金提取",
    name_en="Housing Provident Fund Withdrawal",
    description="在线办理住房公积金提取业务",
    category="住房公积金",
    unit_name="深圳市住房公积金管理中心",
)


def matches(query: str, doc: SearchDoc) -> bool:
    """Evaluate our tsquery subset (AND of exact or prefix lexemes) the way PostgreSQL does."""
    tsquery = build_tsquery(query)
    assert tsquery is not None
    lexemes = search_lexemes(doc)
    for term in tsquery.split(" & "):
        prefix = term.endswith(":*")
        word = term.removesuffix(":*")[1:-1].replace("''", "'")
        if not any(lx.startswith(word) if prefix else lx == word for lx in lexemes):
            return False
    return True


def test_pinyin_forms() -> None:
    assert pinyin_initials("公积金") == "gjj"
    assert pinyin_full("公积金") == "gongjijin"
    assert pinyin_full("重庆银行") == "chongqingyinhang"  # phrase-aware polyphones
    assert pinyin_initials("i深圳") == "sz"  # Latin parts are not pinyin
    assert pinyin_full("12345热线") == "rexian"


def test_normalize_folds_full_width_and_case() -> None:
    assert normalize("  ＡＢＣ  社保 ") == "abc 社保"


def test_citizens_find_the_app_by_chinese_pinyin_initials_and_english() -> None:
    for query in (
        "公积金",
        "公积",
        "积",
        "提取",
        "gjj",
        "gongjijin",
        "gongj",
        "zfgjj",
        "GJJ",
        "tiqu",
        "housing fund",
        "provident",
        "公积金 tiqu",
        "管理中心",
    ):
        assert matches(query, FUND), query


def test_unrelated_queries_do_not_match() -> None:
    for query in ("社保", "sb", "shebao", "交通违章", "tax", "公金"):
        assert not matches(query, FUND), query


def test_tsquery_is_quoted_and_bounded() -> None:
    assert build_tsquery("it's") == "'it':* & 's':*"
    assert build_tsquery("公积金") == "'公积' & '积金'"
    assert build_tsquery("!!! ???") is None
    assert build_tsquery("") is None
    hostile = " ".join(f"w{i}" for i in range(100))
    assert (build_tsquery(hostile) or "").count("&") == 11
    assert "\\" not in (build_tsquery("a\\b") or "")


def test_text_match_prefers_the_name() -> None:
    exact = text_match("住房公积金提取", FUND)
    prefix = text_match("住房", FUND)
    initials = text_match("zfgjjtq", FUND)
    inner_pinyin = text_match("gjj", FUND)
    unit = text_match("管理中心", FUND)
    description = text_match("在线办理", FUND)
    assert exact == 1.0
    assert exact > prefix >= initials > inner_pinyin > unit > description > 0
    assert text_match("housing provident fund withdrawal", FUND) == 1.0


def test_ranking_uses_popularity_and_shrunk_ratings() -> None:
    assert bayesian_rating(5, 1) < 4.1  # one 5-star vote barely moves a new app
    assert bayesian_rating(4.8 * 5000, 5000) > 4.7
    busy = rank_score(0.8, 500_000, 4.5 * 2000, 2000)
    quiet = rank_score(0.8, 10, 5.0, 1)
    assert busy > quiet
    assert rank_score(1.0, 10, 0, 0) > rank_score(0.3, 1_000_000, 5 * 10_000, 10_000)
    assert 0 <= rank_score(0.0, 0, 0, 0) <= rank_score(1.0, 10**9, 5e9, 10**9) <= 1.0


def test_rank_orders_candidates_best_first() -> None:
    other = SearchDoc(name_zh="公积金贷款计算器", category="住房公积金")
    ranked = rank(
        "公积金",
        [
            ("app_low", FUND, 10, 0, 0),
            ("app_top", other, 200_000, 4.6 * 900, 900),
        ],
    )
    assert [r.app_id for r in ranked] == ["app_top", "app_low"]
