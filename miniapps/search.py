"""Catalog search building blocks: pinyin forms, search lexemes, tsquery, ranking.

Citizens type Chinese (公积金), full pinyin (gongjijin), pinyin initials (gjj)
or English. Each app gets a bag of lexemes stored in a PostgreSQL ``tsvector``
(built with ``array_to_tsvector``, so no text-search parser touches Chinese):

* Chinese text: every character and every pair of adjacent characters
  (unigrams and bigrams; the usual way to index CJK without a segmenter);
* Latin text: lower-cased words (English names, digits, embedded Latin);
* the app name, unit name and category in pinyin: full and initials, from
  every character position onwards, so that a query can match a pinyin
  *substring* through a tsquery prefix match (``'gjj':*`` finds 住房公积金).

:func:`build_tsquery` turns a query into the matching tsquery text: Chinese runs
become ANDed bigrams, Latin words prefix matches. A GIN index on the vector
finds candidates; :func:`rank_score` orders them by text match, use count and a
Bayesian-averaged rating. Pinyin comes from ``pypinyin`` (phrase-aware, so
重庆 is chongqing, 银行 yinhang).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(rf"[{_HAN}]+|[a-z0-9]+")
_HAN_RUN = re.compile(rf"[{_HAN}]+")
_MAX_QUERY_TERMS = 12  # bounds the tsquery a hostile query can build


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower case, collapsed spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


@functools.lru_cache(maxsize=4096)
def _syllables(text: str) -> tuple[str, ...]:
    """Pinyin syllables of the Chinese runs of ``text``, in order (others skipped).

    Cached: unit and category names repeat across thousands of apps.
    """
    out: list[str] = []
    for run in _HAN_RUN.findall(normalize(text)):
        out += lazy_pinyin(run, style=Style.NORMAL, errors="ignore")
    return tuple(out)


def pinyin_full(text: str) -> str:
    """``公积金`` -> ``gongjijin`` (tone-less, no separators)."""
    return "".join(_syllables(text))


def pinyin_initials(text: str) -> str:
    """``公积金`` -> ``gjj``."""
    return "".join(s[0] for s in _syllables(text) if s)


def _han_grams(run: str) -> set[str]:
    return set(run) | {run[i : i + 2] for i in range(len(run) - 1)}


def _pinyin_suffixes(text: str) -> set[str]:
    syllables = _syllables(text)
    out: set[str] = set()
    for i in range(len(syllables)):
        out.add("".join(syllables[i:]))
        out.add("".join(s[0] for s in syllables[i:]))
    return out


def text_lexemes(text: str) -> set[str]:
    """Unigrams and bigrams of Chinese runs, words of Latin runs."""
    out: set[str] = set()
    for run in _RUNS.findall(normalize(text)):
        out |= _han_grams(run) if _HAN_RUN.fullmatch(run) else {run}
    return out


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """What search knows of an app (one row of the catalog)."""

    name_zh: str
    name_en: str = ""
    description: str = ""
    category: str = ""
    unit_name: str = ""
    keywords: tuple[str, ...] = ()


def search_lexemes(doc: SearchDoc) -> list[str]:
    """Sorted lexemes for ``array_to_tsvector($1::text[])``."""
    out: set[str] = set()
    for text in (doc.name_zh, doc.name_en, doc.description, doc.category, doc.unit_name):
        out |= text_lexemes(text)
    for keyword in doc.keywords:
        out |= text_lexemes(keyword) | _pinyin_suffixes(keyword)
    for text in (doc.name_zh, doc.category, doc.unit_name):
        out |= _pinyin_suffixes(text)
    return sorted(out)


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def build_tsquery(query: str) -> str | None:
    """tsquery text for ``$1::tsquery``, or ``None`` when the query has nothing searchable.

    Chinese runs: one character matches itself; longer runs need all their
    bigrams. Latin words: prefix matches, so typing "gongj" already finds 公积金.
    """
    terms: list[str] = []
    for run in _RUNS.findall(normalize(query)):
        if _HAN_RUN.fullmatch(run):
            grams = [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]
            terms += [_quote(g) for g in dict.fromkeys(grams)]
        else:
            terms.append(_quote(run) + ":*")
    terms = list(dict.fromkeys(terms))[:_MAX_QUERY_TERMS]
    return " & ".join(terms) if terms else None


def text_match(query: str, doc: SearchDoc) -> float:
    """How well ``query`` matches, 0..1: name beats pinyin beats unit/category beats the rest."""
    q = normalize(query)
    compact = q.replace(" ", "")
    if not compact:
        return 0.0
    name, name_en = normalize(doc.name_zh), normalize(doc.name_en)
    if q in (name, name_en):
        return 1.0
    if name.startswith(q) or name_en.startswith(q):
        return 0.9
    if compact.isascii():
        full, initials = pinyin_full(doc.name_zh), pinyin_initials(doc.name_zh)
        if compact in (full, initials):
            return 0.9
        if full.startswith(compact) or initials.startswith(compact):
            return 0.85
    if q in name or q in name_en:
        return 0.8
    if compact.isascii() and any(s.startswith(compact) for s in _pinyin_suffixes(doc.name_zh)):
        return 0.7
    if any(q in normalize(t) for t in (doc.unit_name, doc.category, *doc.keywords)):
        return 0.5
    return 0.3  # matched through the description or scattered grams


PRIOR_RATING = 4.0  # platform-wide mean rating, 1..5
PRIOR_WEIGHT = 20  # a new app's rating counts like 20 average votes
POPULAR_USES = 1_000_000  # uses at which popularity saturates


def bayesian_rating(rating_sum: float, rating_count: int) -> float:
    """Mean rating shrunk to the prior, so 1 vote of 5 stars does not top the list."""
    return (PRIOR_RATING * PRIOR_WEIGHT + rating_sum) / (PRIOR_WEIGHT + rating_count)


def rank_score(match: float, use_count: int, rating_sum: float, rating_count: int) -> float:
    """0..1: 60 % text match, 25 % log-scaled use count, 15 % Bayesian rating."""
    popularity = min(1.0, math.log1p(max(0, use_count)) / math.log1p(POPULAR_USES))
    quality = (bayesian_rating(rating_sum, rating_count) - 1.0) / 4.0
    return 0.6 * match + 0.25 * popularity + 0.15 * quality


@dataclass(frozen=True, slots=True)
class Ranked:
    app_id: str
    score: float


def rank(
    query: str, candidates: Iterable[tuple[str, SearchDoc, int, float, int]], limit: int = 20
) -> list[Ranked]:
    """Order ``(app_id, doc, use_count, rating_sum, rating_count)`` candidates, best first."""
    scored = [
        Ranked(app_id, rank_score(text_match(query, doc), uses, r_sum, r_count))
        for app_id, doc, uses, r_sum, r_count in candidates
    ]
    scored.sort(key=lambda r: (-r.score, r.app_id))
    return scored[:limit]
