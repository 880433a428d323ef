"""Ratings (好差评): five levels, one per use, follow-ups for bad ratings.

Following Zhejiang's "good/bad review" loop: a rating of 1 or 2 opens a
follow-up for the unit that must contact the citizen within 1 day and fix the
problem within 15; once fixed, the citizen may re-rate that use once. Bad-rating
rates per unit are public. A use is a session that reached the app through
the gateway (recorded by :mod:`miniapps.usage`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from identity.errors import ValidationError
from identity.ids import new_id
from identity.organisations import Organisations
from identity.tokens import Principal
from miniapps.errors import (
    AlreadyRated,
    FollowUpNotFound,
    InvalidTransition,
    MiniAppNotFound,
    NoUseToRate,
)
from miniapps.repository import MiniAppRepository
from miniapps.usage import UsageRecorder

CONTACT_WITHIN = timedelta(days=1)
FIX_WITHIN = timedelta(days=15)
BAD = 2  # scores at or below open a follow-up


def _followup(r: asyncpg.Record) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "followup_id": r["followup_id"],
        "rating_id": r["rating_id"],
        "app_id": r["app_id"],
        "unit_id": r["unit_id"],
        "status": r["status"],
        "score": r.get("score"),
        "comment": r.get("comment"),
        "contact_due": r["contact_due"].isoformat(),
        "fix_due": r["fix_due"].isoformat(),
        "contacted_at": r["contacted_at"].isoformat() if r["contacted_at"] else None,
        "fixed_at": r["fixed_at"].isoformat() if r["fixed_at"] else None,
        "overdue": (r["contacted_at"] is None and r["contact_due"] < now)
        or (r["fixed_at"] is None and r["fix_due"] < now),
        "note": r["note"],
    }


class Ratings:
    def __init__(
        self, pool: asyncpg.Pool, repo: MiniAppRepository, orgs: Organisations, usage: UsageRecorder
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.orgs = orgs
        self.usage = usage

    async def rate(
        self, who: Principal, app_id: str, score: object, comment: object
    ) -> dict[str, Any]:
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise ValidationError("score", "Must be a whole number from 1 to 5.")
        text = comment.strip() if isinstance(comment, str) else ""
        if len(text) > 500:
            raise ValidationError("comment", "At most 500 characters.")
        sid = who.sid or "-"
        await self.usage.flush()  # this worker's uses of the last second
        async with self.pool.acquire() as conn, conn.transaction():
            app = await self.repo.app(conn, app_id)
            if app is None:
                raise MiniAppNotFound()
            if not await self.repo.has_use(conn, app_id, who.sub, sid):
                raise NoUseToRate(
                    "Open the mini-app in this session first; each use is rated once."
                )
            row = await conn.fetchrow(
                """SELECT r.*, f.status AS followup_status FROM miniapp_ratings r
                   LEFT JOIN miniapp_followups f USING (rating_id)
                   WHERE r.app_id = $1 AND r.account_id = $2 AND r.session_id = $3
                   FOR UPDATE OF r""",
                app_id,
                who.sub,
                sid,
            )
            if row is not None:
                if row["followup_status"] != "fixed" or row["rerate_score"] is not None:
                    raise AlreadyRated(
                        "This use is rated; a bad rating may be re-rated once after the fix."
                    )
                await conn.execute(
                    """UPDATE miniapp_ratings SET rerate_score = $2, rerated_at = now()
                       WHERE rating_id = $1""",
                    row["rating_id"],
                    score,
                )
                await conn.execute(
                    "UPDATE miniapps SET rating_sum = rating_sum + $2 WHERE app_id = $1",
                    app_id,
                    float(score - row["score"]),
                )
                return {
                    "rating_id": row["rating_id"],
                    "score": score,
                    "rerated": True,
                    "followup": None,
                }
            rating_id = new_id("rtg")
            inserted = await conn.execute(
                """INSERT INTO miniapp_ratings (rating_id, app_id, unit_id, account_id, session_id,
                       score, comment) VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (app_id, account_id, session_id) DO NOTHING""",
                rating_id, app_id, app.unit_id, who.sub, sid, score, text,
            )  # fmt: skip
            if not inserted.endswith(" 1"):
                # A concurrent rating of the same use committed first.
                raise AlreadyRated("This use is rated.")
            await conn.execute(
                """UPDATE miniapps SET rating_sum = rating_sum + $2, rating_count = rating_count + 1
                   WHERE app_id = $1""",
                app_id,
                float(score),
            )
            followup = None
            if score <= BAD:
                now = datetime.now(UTC)
                f = await conn.fetchrow(
                    """INSERT INTO miniapp_followups (followup_id, rating_id, app_id, unit_id,
                           contact_due, fix_due) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
                    new_id("fup"), rating_id, app_id, app.unit_id,
                    now + CONTACT_WITHIN, now + FIX_WITHIN,
                )  # fmt: skip
                followup = _followup(f)
        return {"rating_id": rating_id, "score": score, "rerated": False, "followup": followup}

    async def followups(
        self, who: Principal, unit_id: str, status: str | None
    ) -> list[dict[str, Any]]:
        await self.orgs.require(who, ("unit-admin", "developer"), unit_id)
        if status is not None and status not in ("open", "contacted", "fixed"):
            raise ValidationError("status", "Must be open, contacted or fixed.")
        rows = await self.pool.fetch(
            """SELECT f.*, r.score, r.comment FROM miniapp_followups f JOIN miniapp_ratings r
                   USING (rating_id)
               WHERE f.unit_id = $1 AND ($2::text IS NULL OR f.status = $2)
               ORDER BY f.fix_due LIMIT 200""",
            unit_id,
            status,
        )
        return [_followup(r) for r in rows]

    async def advance(
        self, who: Principal, followup_id: str, action: str, note: object
    ) -> dict[str, Any]:
        """``contact`` (open -> contacted) or ``fix`` (open/contacted -> fixed)."""
        text = note.strip() if isinstance(note, str) else ""
        if len(text) > 1000:
            raise ValidationError("note", "At most 1000 characters.")
        row = await self.pool.fetchrow(
            "SELECT unit_id FROM miniapp_followups WHERE followup_id = $1", followup_id
        )
        if row is None:
            raise FollowUpNotFound()
        await self.orgs.require(who, ("unit-admin", "developer"), row["unit_id"])
        allowed, to = {
            "contact": (("open",), "contacted"),
            "fix": (("open", "contacted"), "fixed"),
        }[action]
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                "SELECT status FROM miniapp_followups WHERE followup_id = $1 FOR UPDATE",
                followup_id,
            )
            if status not in allowed:
                raise InvalidTransition(f"The follow-up is {status}.")
            updated = await conn.fetchrow(
                """UPDATE miniapp_followups SET status = $2,
                        contacted_at = COALESCE(contacted_at, now()),
                        fixed_at = CASE WHEN $2 = 'fixed' THEN now() ELSE fixed_at END,
                        note = CASE WHEN $3 = '' THEN note ELSE $3 END
                    WHERE followup_id = $1 RETURNING *""",
                followup_id,
                to,
                text,
            )
        return _followup(updated)

    async def unit_stats(self) -> list[dict[str, Any]]:
        """Public: per unit, ratings, bad ratings and their rate, overdue follow-ups."""
        rows = await self.pool.fetch(
            """SELECT u.id AS unit_id, u.name_zh, u.name_en,
                      count(r.rating_id) AS ratings,
                      count(r.rating_id) FILTER (WHERE r.score <= 2) AS bad,
                      (SELECT count(*) FROM miniapp_followups f WHERE f.unit_id = u.id
                         AND ((f.contacted_at IS NULL AND f.contact_due < now())
                           OR (f.fixed_at IS NULL AND f.fix_due < now()))) AS overdue
               FROM units u JOIN miniapp_ratings r ON r.unit_id = u.id
               GROUP BY u.id ORDER BY u.id"""
        )
        return [
            {
                "unit_id": r["unit_id"],
                "name_zh": r["name_zh"],
                "name_en": r["name_en"],
                "ratings": r["ratings"],
                "bad_ratings": r["bad"],
                "bad_rate": round(r["bad"] / r["ratings"], 4) if r["ratings"] else 0.0,
                "overdue_followups": r["overdue"],
            }
            for r in rows
        ]

    async def dashboard(self, who: Principal, app_id: str, hours: int) -> dict[str, Any]:
        """Usage of one app for its unit's staff: per hour requests, errors, latency."""
        async with self.pool.acquire() as conn:
            app = await self.repo.app(conn, app_id)
        if app is None:
            raise MiniAppNotFound()
        await self.orgs.require(who, ("unit-admin", "developer"), app.unit_id)
        await self.usage.flush()
        rows = await self.pool.fetch(
            """SELECT hour, requests, errors, latency_ms_sum, latency_buckets FROM miniapp_usage
               WHERE app_id = $1 AND hour > now() - make_interval(hours => $2)
               ORDER BY hour""",
            app_id,
            hours,
        )
        return {
            "app_id": app_id,
            "use_count": app.use_count,
            "rating": round(app.rating_sum / app.rating_count, 2) if app.rating_count else None,
            "rating_count": app.rating_count,
            "hours": [
                {
                    "hour": r["hour"].isoformat(),
                    "requests": r["requests"],
                    "errors": r["errors"],
                    "mean_latency_ms": round(r["latency_ms_sum"] / r["requests"], 2)
                    if r["requests"]
                    else None,
                    "latency_buckets_ms": list(r["latency_buckets"]),
                }
                for r in rows
            ],
        }
