"""The e-ID QR code: issue a one-time presentation to the holder, verify it at
the counter, publish the status lists offline verifiers need.

The presentation is signed by the PLATFORM presentation key (the active key of
identity's key ring, published in ``/.well-known/jwks.json``); the raw 8 bytes
of its base64url ``kid`` go in the COSE header. A QR is issued only for a
certificate that is valid now and whose stored issuer signature verifies.

Verification order: counter role -> matter code -> Base45/COSE/signature/
window (``decode_and_verify``) -> the certificate named by the status
reference -> one-time ``cti`` consumed atomically in Redis (keyed on (kid,
cti), never on the text: ECDSA signatures have a valid twin) -> certificate
status. Every attempt that names a certificate goes to the use log, committed
before the answer. Redis down fails closed with 503.

The signature check costs more than anything else in a scan (ECDSA P-256
verification, about 74 us here), so a code the platform issued is recognised
instead: at issuance the code's (kid, cti) key in Redis gets ``i:`` + the
HMAC-SHA256 of its COSE_Sign1 bytes (under a key derived from the master key, so
writing to Redis is not enough to forge a record), and the consume script (``_CONSUME``) uses the
code up only if the scanned message has that digest. Everything else in the
code is still checked before (prefix, Base45, COSE structure, alg, kid, claims,
time window). A scan that does not match (the record expired or was lost, the
signature twin of an issued code, a tampered code), a code already used, and
any code that fails another check, has its signature checked as before, and a
bad signature is reported as ``qr-bad-signature`` whatever else is wrong; it
uses nothing up. Offline verifiers (``ecert.presentation.offline``) always check
the signature: they have no record.

The scan's three round trips (grant + certificate in one SQL statement, the
``SET NX``, the use-log insert) are shared with the concurrent scans of this
process (``ecert.batching``, group commit): each SQL statement carries the
lookups and the use-log rows waiting at that moment, each script call the
consumes waiting then, with a verdict per scan. A scan passes the stages as one
object and its caller waits on one future, answered once its use-log row is
committed. Decoding, the signature check and the cached matter and type
look-ups run first (no round trip), their verdict raised in the order above.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import ec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ecert.batching import Stage
from ecert.domain import PROFILES, Certificate, CertType, Matter, ScannedCertificate
from ecert.errors import (
    CertificateExpired,
    CertificateNotFound,
    CertificateNotYetValid,
    CertificateRevoked,
    CertificateStatusError,
    CertificateSuspended,
    CredentialInvalid,
    IssuerSignatureInvalid,
    PresentationError,
    QrBadSignature,
    QrExpired,
    QrMalformed,
    QrNotYetValid,
    QrReplayed,
    StatusListNotFound,
    UnknownMatter,
    UnknownProfile,
)
from ecert.issuers import IssuerKeys
from ecert.presentation.cwt import (
    CTI_LENGTH,
    DEFAULT_SKEW_SECONDS,
    Presentation,
    StatusRef,
    Unverified,
    decode_and_verify,
    decode_unverified,
    sign_presentation,
    to_text,
)
from ecert.presentation.keys import kid_bytes, kid_text, public_jwk, verify_credential
from ecert.presentation.status_list import (
    STATUS_INVALID,
    STATUS_SUSPENDED,
    StatusList,
    sign_status_list,
)
from ecert.repository import EcertRepository, NewUse, Scan
from ecert.service import Certificates
from identity.errors import DependencyUnavailable, DomainError, Forbidden, ValidationError
from identity.ids import new_id
from identity.organisations import Organisations
from identity.tokens import Principal, TokenService

MATTER_CACHE_SECONDS = 30.0
STATUS_LIST_TTL = 300  # seconds a verifier may cache a status list
STATUS_LIST_LIFETIME = timedelta(days=1)
IMAGE_KEY = "ecert:qrimg:"
CTI_KEY = "ecert:cti:"
# The one-time consume of a batch of scans. KEYS[i] is the code's (kid, cti) key; it holds
# "i:<digest>" from the code's issuance until it is used, then "u:<unit>" (older values:
# the unit alone). ARGV holds (unit, exat, issued) triples. ``issued`` empty: the scan's
# signature was checked, so consume unless used. ``issued`` = "i:<digest of the scanned
# message>": consume only if that is what we issued under this cti. Replies: 1 consumed,
# 0 used already, 2 not consumed (no record, or another message under this cti): check
# the signature and come back with ``issued`` empty.
_CONSUME = """
local out = {}
for i, key in ipairs(KEYS) do
  local unit, exat, issued = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local v = redis.call('GET', key)
  local open = not v or string.sub(v, 1, 2) == 'i:'
  if issued == '' then
    out[i] = open and 1 or 0
  elseif v == issued then
    out[i] = 1
  else
    out[i] = open and 2 or 0
  end
  if out[i] == 1 then
    redis.call('SET', key, 'u:' .. unit, 'EXAT', exat)
  end
end
return out
"""
CONSUMED, USED, UNCHECKED = 1, 0, 2


@dataclass(frozen=True)
class IssuedQr:
    qr_text: str
    expires_at: datetime
    image_token: str


@dataclass(frozen=True)
class Verification:
    id: str
    certificate: ScannedCertificate
    cert_type: CertType
    unit_id: str
    matter: Matter
    claims: dict[str, str]
    withheld: list[str]


class _CounterScan:
    """One counter scan on its way through the batched round trips: what was worked out
    before any round trip, then what the round trips found."""

    __slots__ = (
        "fut", "unit", "now", "p", "unchecked", "late", "fault", "early", "matter",
        "cert_type", "type_fault", "lookup", "cert", "outcome",
    )  # fmt: skip

    def __init__(self, fut: asyncio.Future[Verification], unit: str, now: datetime) -> None:
        self.fut = fut
        self.unit = unit
        self.now = now
        self.p: Presentation | None = None  # decoded, window checked, signature: below
        # Set while the signature is not checked yet: the Redis consume recognises a
        # code we issued by its digest; anything else has its signature checked.
        self.unchecked: Unverified | None = None
        self.late: Presentation | None = None  # signature checked, outside the window
        self.fault: PresentationError | None = None
        self.early: DomainError | None = None  # a matter or body error, after the role
        self.matter: Matter | None = None
        self.cert_type: CertType | None = None
        self.type_fault: DomainError | None = None
        self.lookup: Scan = ("", unit, None, None)
        self.cert: ScannedCertificate | None = None
        self.outcome: Verification | BaseException | None = None

    def answer(self, outcome: Verification | BaseException | None) -> None:
        if self.fut.done():  # the caller went away
            return
        if isinstance(outcome, asyncio.CancelledError):
            self.fut.cancel()
        elif isinstance(outcome, BaseException):
            self.fut.set_exception(outcome)
        elif outcome is None:
            self.fut.set_exception(RuntimeError("a counter scan ended without an answer"))
        else:
            self.fut.set_result(outcome)


def _fail_entry(entry: _CounterScan | tuple[NewUse, _CounterScan], exc: BaseException) -> None:
    (entry if isinstance(entry, _CounterScan) else entry[1]).answer(exc)


_STATUS_ERRORS: dict[str, type[CertificateStatusError]] = {
    "revoked": CertificateRevoked,
    "suspended": CertificateSuspended,
    "expired": CertificateExpired,
    "not-yet-valid": CertificateNotYetValid,
}


def status_error(
    cert: Certificate | ScannedCertificate, now: datetime
) -> CertificateStatusError | None:
    error = _STATUS_ERRORS.get(cert.effective_status(now))
    return None if error is None else error()


def _resp(args: tuple[bytes | str | int, ...]) -> bytes:
    """A command in RESP, the Redis wire form: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


def _cti_key(kid: bytes, cti: bytes) -> str:
    """The Redis key of a code's one-time ``cti``, under the key that signed it."""
    return f"{CTI_KEY}{kid.hex()}:{cti.hex()}"


def _store_down() -> DependencyUnavailable:
    return DependencyUnavailable(
        "The one-time code store is unavailable; try again.", retry_after=5
    )


class Presentations:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        repo: EcertRepository,
        issuers: IssuerKeys,
        certificates: Certificates,
        tokens: TokenService,
        orgs: Organisations,
        *,
        base_url: str,
        qr_ttl: int,
        skew: int = DEFAULT_SKEW_SECONDS,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.repo = repo
        self.issuers = issuers
        self.certificates = certificates
        self.tokens = tokens
        self.orgs = orgs
        self.base_url = base_url.rstrip("/")
        self.qr_ttl = qr_ttl
        self.skew = skew
        self._verified: set[bytes] = set()
        self._kid_texts: dict[bytes, str] = {}
        self._matters: dict[str, tuple[float, Matter]] = {}
        # PostgreSQL: the scans' lookups and the use-log rows share one statement per batch.
        # The counter's two batched round trips (``ecert.batching``): SQL statements
        # (lookups and use-log rows) and consume script calls.
        # The statement stage keeps one pooled connection while it has work.
        self._statements: Stage[_CounterScan | tuple[NewUse, _CounterScan]] = Stage(
            self._pg_round, _fail_entry, idle=self._release_pg
        )
        self._pg_conn: Any = None
        self._consumes: Stage[_CounterScan] = Stage(self._redis_round, _fail_entry)
        # The consume script goes out on a connection of our own, packed here: one write
        # and one read per round (``_run_consume``); tests may swap the callable.
        self._consume_script = self._run_consume
        self._consume_sha = (
            hashlib.sha1(_CONSUME.encode(), usedforsecurity=False).hexdigest().encode()
        )
        self._consume_conn: Any = None
        self._consume_lock = asyncio.Lock()

    def status_uri(self, list_id: int) -> str:
        # Kept short on purpose: every character is in the QR code (see cwt.py's budget).
        return f"{self.base_url}/sl/{list_id}"

    def _list_id(self, uri: str) -> int | None:
        prefix = self.base_url + "/sl/"
        tail = uri[len(prefix) :] if uri.startswith(prefix) else ""
        return int(tail) if tail.isascii() and tail.isdigit() and len(tail) < 10 else None

    def _platform_key(self, kid: bytes) -> ec.EllipticCurvePublicKey | None:
        text = self._kid_texts.get(kid) or kid_text(kid)
        # The ring is asked every time (a key it retires stops verifying at once); only
        # the kid's text form is remembered, and only for kids the ring knows.
        found = self.tokens.ring.public_key(text)
        if found is not None and len(self._kid_texts) < 64:
            self._kid_texts[kid] = text
        if (
            found is None
            or found[1] != "ES256"
            or not isinstance(found[0], ec.EllipticCurvePublicKey)
        ):
            return None
        return found[0]

    async def check_issuer_signature(self, cert: Certificate) -> None:
        """Raise unless the stored credential is the issuer's signature over these claims.

        A success is remembered for the exact (id, credential, claims): those never change
        after issuance, and anything that changes them misses the cache."""
        memo = hashlib.sha256(
            f"{cert.id}\x00{cert.credential}\x00".encode()
            + json.dumps(cert.claims, sort_keys=True).encode()
        ).digest()
        if memo in self._verified:
            return
        async with self.pool.acquire() as conn:
            public = await self.issuers.public_key(conn, cert.issuer_kid)
        if public is None:
            raise IssuerSignatureInvalid()
        jwks = {"keys": [public_jwk(public, cert.issuer_kid)]}
        try:
            # Time is the certificate's status's business: check the signature as of issuance.
            at = max(cert.issued_at, cert.valid_from)
            claims = verify_credential(cert.credential, jwks, now=at, leeway=5)
        except CredentialInvalid:
            raise IssuerSignatureInvalid() from None
        if claims.get("jti") != cert.id or claims.get("claims") != cert.claims:
            raise IssuerSignatureInvalid()
        if len(self._verified) > 100_000:
            self._verified.clear()
        self._verified.add(memo)

    # the holder's QR --------------------------------------------------------------------

    async def issue_qr(self, holder_id: str, cert_id: str, profile: object) -> IssuedQr:
        profile = profile or "minimal"
        if profile not in PROFILES:
            raise UnknownProfile(f"Use one of: {', '.join(PROFILES)}.")
        cert = await self.certificates.own(holder_id, cert_id)
        now = datetime.now(UTC)
        error = status_error(cert, now)
        if error is not None:
            raise error
        await self.check_issuer_signature(cert)
        cert_type = await self.certificates.type(cert.type_code)
        name, ident, extra = cert_type.display(cert.claims, str(profile))
        key = self.tokens.ring.active
        if not isinstance(key.private_key, ec.EllipticCurvePrivateKey):
            raise DependencyUnavailable("The platform presentation key is not an ES256 key.")
        standard = profile == "standard"
        expires_at = now + timedelta(seconds=self.qr_ttl)
        kid, cti = kid_bytes(key.kid), os.urandom(CTI_LENGTH)
        message = sign_presentation(
            key.private_key,
            kid,
            cert_type=cert.type_code,
            masked_name=name,
            masked_id=ident,
            issued_at=now,
            expires_at=expires_at,
            status=StatusRef(cert.status_idx, self.status_uri(cert.status_list_id)),
            extra=extra,
            # The status reference already names the certificate; "standard" repeats it
            # as iss/sub, which the minimal profile cannot afford in a version-10 code.
            issuer=self.base_url if standard else None,
            subject=cert.id if standard else None,
            cti=cti,
        )
        text = to_text(message)
        token = secrets.token_urlsafe(18)
        try:
            # The image's text, and the record of the issued code that lets the counter
            # recognise it without an ECDSA verification (see ``_CONSUME``).
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(IMAGE_KEY + token, text, ex=self.qr_ttl + self.skew)
                pipe.set(
                    _cti_key(kid, cti),
                    self._issued_record(message),
                    exat=self._cti_exat(int(expires_at.timestamp())),
                    nx=True,
                )
                await pipe.execute()
        except (RedisError, OSError):
            raise DependencyUnavailable("The QR store is unavailable.", retry_after=5) from None
        return IssuedQr(text, datetime.fromtimestamp(int(expires_at.timestamp()), UTC), token)

    async def image_text(self, token: str) -> str:
        try:
            text = await self.redis.get(IMAGE_KEY + token)
        except (RedisError, OSError):
            raise DependencyUnavailable("The QR store is unavailable.", retry_after=5) from None
        if text is None:
            raise CertificateNotFound("This QR image has expired; ask for a new code.")
        return text.decode() if isinstance(text, bytes) else str(text)

    # the counter ------------------------------------------------------------------------

    def _claimed_unit(self, who: Principal, unit_id: object) -> str:
        if who.kind != "user":
            raise Forbidden("Verification needs a signed-in counter staff member.")
        if not unit_id:
            units = [r.split(":", 1)[1] for r in who.roles if r.startswith("counter-staff:")]
            if len(units) != 1:
                raise ValidationError("unit_id", "Say for which unit you verify.")
            unit_id = units[0]
        if not isinstance(unit_id, str) or len(unit_id) > 100 or not unit_id.isprintable():
            raise ValidationError("unit_id", "Must be a unit id.")
        return unit_id

    async def _matter(self, code: str) -> Matter | None:
        cached = self._matters.get(code)
        now = time.monotonic()
        if cached is not None and now - cached[0] < MATTER_CACHE_SECONDS:
            return cached[1]
        async with self.pool.acquire() as conn:
            matter = await self.repo.matter(conn, code)
        if matter is not None:
            self._matters[code] = (now, matter)
        return matter

    async def record_use(
        self,
        cert: Certificate,
        unit_id: str | None,
        matter: str | None,
        result: str,
        fields: list[str],
        *,
        kind: str = "verification",
        client_id: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> str:
        use_id = new_id("ver" if kind == "verification" else "use")
        async with contextlib.AsyncExitStack() as stack:
            if conn is None:
                conn = await stack.enter_async_context(self.pool.acquire())
            await self.repo.insert_use(
                conn,
                use_id=use_id,
                certificate=cert,
                kind=kind,
                unit_id=unit_id,
                client_id=client_id,
                matter_code=matter,
                result=result,
                fields=fields,
            )
        return use_id

    def _status_ref(self, p: Presentation | None) -> tuple[int | None, int | None]:
        list_id = None if p is None or p.status is None else self._list_id(p.status.uri)
        if list_id is None or p is None or p.status is None:
            return None, None
        # int4 in the table; a larger index (ours are never) must not fail a whole batch.
        return (list_id, p.status.idx) if p.status.idx < 2**31 else (None, None)

    async def verify(
        self, who: Principal, qr_text: object, matter_code: object, unit_id: object = None
    ) -> Verification:
        unit = self._claimed_unit(who, unit_id)
        now = datetime.now(UTC)
        # Decoding, the signature check and the cached look-ups need no round trip of
        # their own: done first, each verdict kept for its turn (``_after_lookup``), so
        # the errors come in the documented order.
        scan = _CounterScan(asyncio.get_running_loop().create_future(), unit, now)
        if isinstance(qr_text, str) and qr_text:
            try:
                scan.unchecked = decode_unverified(qr_text, self._platform_key, now, self.skew)
                scan.p = scan.unchecked.presentation
            except (QrExpired, QrNotYetValid) as exc:
                # The signature checked; name the certificate so its holder sees the attempt.
                scan.fault = exc
                try:
                    scan.late = decode_and_verify(qr_text, self._platform_key, now, 10**11)
                except PresentationError as again:
                    scan.fault = again
            except PresentationError as exc:
                scan.fault = exc
        else:
            scan.early = ValidationError("qr_text", "Send the scanned text.")
        if not isinstance(matter_code, str) or not matter_code:
            scan.early = ValidationError("matter_code", "Say for which matter you verify.")
        else:
            scan.matter = await self._matter(matter_code)
            if scan.matter is None:
                scan.early = UnknownMatter(f"No matter {matter_code!r}.")
        if (
            scan.early is None
            and scan.unchecked is not None
            and not self.certificates.type_cached(scan.unchecked.presentation.cert_type)
        ):
            # No database lookup for a type named only by a payload nobody has vouched for.
            scan.fault = self._forged(scan)
        if scan.early is None and scan.fault is None and scan.p is not None:
            try:
                scan.cert_type = await self.certificates.type(scan.p.cert_type)
            except DomainError as exc:
                scan.type_fault = exc
        scan.lookup = (who.sub, unit, *self._status_ref(scan.p or scan.late))
        self._statements.add((scan,))
        return await scan.fut

    def _after_lookup(
        self, scan: _CounterScan, allowed: bool, cert: ScannedCertificate | None
    ) -> BaseException | NewUse | None:
        """The checks between the lookup and the consume, in the documented order: an
        error to raise, a use-log row (with ``scan.outcome`` set) or None to consume."""
        if not allowed:
            return Forbidden("This action needs the role counter-staff.")
        if scan.early is not None:
            return scan.early
        named = scan.p or scan.late
        if cert is not None and (named is None or cert.type_code != named.cert_type):
            cert = None
        scan.cert = cert
        if scan.fault is not None:
            if scan.late is not None and cert is not None:
                return self._use(scan, scan.fault, scan.fault.code, [])
            return scan.fault
        if cert is None:
            return self._forged(scan) or QrMalformed(
                "The presentation names no certificate we issued."
            )
        return None

    @staticmethod
    def _forged(scan: _CounterScan) -> QrBadSignature | None:
        """Check the signature left unchecked: the error if it is bad, else None."""
        unchecked, scan.unchecked = scan.unchecked, None
        if unchecked is not None and not unchecked.signature_ok():
            return QrBadSignature()
        return None

    def _after_consume(self, scan: _CounterScan, consumed: bool) -> NewUse | BaseException:
        cert, p, matter = scan.cert, scan.p, scan.matter
        assert cert is not None and p is not None and matter is not None
        if not consumed:
            forged = self._forged(scan)  # a forgery is reported as one, not as a replay
            if forged is not None:
                return forged
            return self._use(scan, QrReplayed(), QrReplayed.code, [])
        error = status_error(cert, scan.now)
        if error is not None:
            return self._use(scan, error, error.code, [])
        if scan.type_fault is not None:
            return scan.type_fault
        cert_type = scan.cert_type
        assert cert_type is not None
        shown = {cert_type.name_field: p.masked_name, cert_type.id_field: p.masked_id, **p.extra}
        allowed_fields = matter.fields
        claims = {k: v for k, v in shown.items() if "*" in allowed_fields or k in allowed_fields}
        withheld = sorted(k for k in shown if k not in claims)
        use = self._use(scan, None, "valid", sorted(claims))
        scan.outcome = Verification(
            use.use_id, cert, cert_type, scan.unit, matter, claims, withheld
        )
        return use

    @staticmethod
    def _use(
        scan: _CounterScan,
        outcome: BaseException | None,
        result: str,
        fields: list[str],
    ) -> NewUse:
        """The scan's use-log row; ``outcome`` (an error, or the verification) is the
        answer once the row is committed."""
        assert scan.cert is not None and scan.matter is not None
        scan.outcome = outcome
        return NewUse(
            new_id("ver"), scan.cert, "verification", scan.unit, None, scan.matter.code,
            result, fields,
        )  # fmt: skip

    # the batched round trips of the counter ----------------------------------------------

    async def _pg_round(self, entries: list[_CounterScan | tuple[NewUse, _CounterScan]]) -> None:
        """One statement: the lookups of the scans waiting now and the use-log rows
        waiting now. A logged scan is answered once its row is committed; a looked-up
        scan is answered, logged, or handed to the consume stage."""
        items: list[Scan | NewUse] = [
            e.lookup if isinstance(e, _CounterScan) else e[0] for e in entries
        ]
        try:
            if self._pg_conn is None:
                self._pg_conn = await self.pool.acquire()
            results = await self._pg_batch(items, self._pg_conn)
        except Exception as exc:  # the pool or the connection: every item fails
            results = [exc] * len(items)
            await self._release_pg()  # the pool replaces a connection that broke
        except BaseException:  # cancelled (loop shutdown): never keep the connection
            await self._release_pg()
            raise
        logs: list[tuple[NewUse, _CounterScan]] = []
        consume: list[_CounterScan] = []
        for entry, result in zip(entries, results, strict=True):
            if not isinstance(entry, _CounterScan):
                entry[1].answer(result if isinstance(result, BaseException) else entry[1].outcome)
                continue
            step = (
                result if isinstance(result, BaseException) else self._after_lookup(entry, *result)
            )
            if step is None:
                consume.append(entry)
            elif isinstance(step, NewUse):
                logs.append((step, entry))
            else:
                entry.answer(step)
        self._consumes.add(consume)
        self._statements.add(logs)

    async def _release_pg(self) -> None:
        conn, self._pg_conn = self._pg_conn, None
        if conn is not None:
            await self.pool.release(conn)

    async def _redis_round(self, scans: list[_CounterScan]) -> None:
        """One script call: the cti consumes of the scans waiting now."""
        try:
            consumed = await self._consume_batch([self._cti(s) for s in scans])
        except Exception as exc:
            consumed = [exc] * len(scans)
        logs: list[tuple[NewUse, _CounterScan]] = []
        again: list[_CounterScan] = []
        for scan, reply in zip(scans, consumed, strict=True):
            step: BaseException | NewUse | None
            if isinstance(reply, BaseException):
                step = self._forged(scan) or reply  # a forgery is one, whatever Redis does
            elif reply == UNCHECKED:
                # Not a code we issued under this cti (or its record is gone): consumed
                # only once its signature checks.
                step = self._forged(scan)
                if step is None:
                    again.append(scan)
                    continue
            else:
                step = self._after_consume(scan, reply == CONSUMED)
            if isinstance(step, NewUse):
                logs.append((step, scan))
            else:
                scan.answer(step)
        self._statements.add(logs)
        self._consumes.add(again)

    def _issued_record(self, message: bytes) -> bytes:
        """What the code's Redis key holds from issuance until use: a MAC of its bytes under
        a key derived from the master key, so that whoever can write to Redis still cannot
        make a record that passes for one of ours (a bare hash could be computed by anyone)."""
        return b"i:" + self.repo.vault.mac(message, context="ecert-issued-code").hex().encode()

    def _cti_exat(self, expires: int) -> int:
        # Kept until the code could no longer pass the window check anyway.
        return expires + self.skew + 1

    def _cti(self, scan: _CounterScan) -> tuple[str, str, int, bytes]:
        p = scan.p
        assert p is not None
        exat = self._cti_exat(int(p.expires_at.timestamp()))
        unchecked = scan.unchecked
        issued = b"" if unchecked is None else self._issued_record(unchecked.raw)
        return _cti_key(p.kid, p.cti), scan.unit, exat, issued

    async def _consume_batch(
        self, items: list[tuple[str, str, int, bytes]]
    ) -> list[int | BaseException]:
        """One consume per scan, all run by one script call (``_CONSUME``): one command
        and one reply per batch. Each item is its own consume (the script as a whole is
        atomic too), so two scans of one code in a batch are two commands, one wins.
        Replies: ``CONSUMED``, ``USED`` or ``UNCHECKED``."""
        args: list[str | int | bytes] = []
        for _, unit, exat, issued in items:
            args += (unit, exat, issued)
        try:
            replies = await self._consume_script(keys=[item[0] for item in items], args=args)
        except (RedisError, OSError):
            return [_store_down() for _ in items]
        if not isinstance(replies, list) or len(replies) != len(items):
            return [_store_down() for _ in items]
        if any(r not in (CONSUMED, USED, UNCHECKED) for r in replies):
            return [_store_down() for _ in items]
        return [int(r) for r in replies]

    async def _run_consume(self, *, keys: list[str], args: list[str | int | bytes]) -> Any:
        """``EVALSHA`` of ``_CONSUME`` (loaded on ``NOSCRIPT``) on a pooled connection kept
        for the counter: redis-py's connection does the I/O and parses the reply; the
        per-call work of its client (pool round, retry wrapper, argument encoding) is
        skipped. A connection that failed is closed and handed back, never reused as is;
        a lost connection is retried once on a new one, as the client's retry would."""
        packed = _resp((b"EVALSHA", self._consume_sha, len(keys), *keys, *args))
        async with self._consume_lock:
            for attempt in (1, 2):
                if self._consume_conn is None:
                    self._consume_conn = await self.redis.connection_pool.get_connection()
                conn = self._consume_conn
                try:
                    return await self._evalsha(conn, packed)
                except ResponseError:
                    raise  # the server answered: the connection is in step
                except BaseException as exc:
                    self._consume_conn = None
                    await conn.disconnect(nowait=True)
                    await self.redis.connection_pool.release(conn)
                    if attempt == 2 or not isinstance(exc, RedisConnectionError):
                        raise
        raise AssertionError("unreachable")

    async def _evalsha(self, conn: Any, packed: bytes) -> Any:
        try:
            await conn.send_packed_command(packed, check_health=False)
            return await conn.read_response()
        except NoScriptError:
            await self.redis.script_load(_CONSUME)
            await conn.send_packed_command(packed, check_health=False)
            return await conn.read_response()

    async def _pg_batch(
        self, items: list[Scan | NewUse], conn: asyncpg.Connection | None = None
    ) -> list[Any]:
        """Scans get (allowed, certificate or None); use-log rows get None once committed."""
        if conn is None:
            async with self.pool.acquire() as own:
                return await self._pg_batch(items, own)
        scans = [i for i in items if not isinstance(i, NewUse)]
        uses = [i for i in items if isinstance(i, NewUse)]
        try:
            found = await self.repo.counter_round(conn, scans, uses)
        except (asyncpg.PostgresError, asyncpg.DataError):
            if len(items) == 1:
                raise
            # One bad item fails the whole statement (and commits none of it): redo
            # each alone, so each caller gets its own verdict and good rows are kept.
            return [await self._pg_alone(conn, item) for item in items]
        it = iter(found)
        return [None if isinstance(i, NewUse) else next(it) for i in items]

    async def _pg_alone(self, conn: asyncpg.Connection, item: Scan | NewUse) -> Any:
        try:
            if isinstance(item, NewUse):
                await self.repo.counter_round(conn, [], [item])
                return None
            return (await self.repo.counter_round(conn, [item], []))[0]
        except (asyncpg.PostgresError, asyncpg.DataError) as exc:
            return exc

    # status lists -----------------------------------------------------------------------

    async def status_list_token(self, list_id: int) -> str:
        async with self.pool.acquire() as conn:
            found = await self.repo.status_list(conn, list_id)
        if found is None:
            raise StatusListNotFound()
        size, entries = found
        lst = StatusList(size, 2)
        for idx, status in entries:
            lst.set(idx, STATUS_SUSPENDED if status == "suspended" else STATUS_INVALID)
        key = self.tokens.ring.active
        if not isinstance(key.private_key, ec.EllipticCurvePrivateKey):
            raise DependencyUnavailable("The platform signing key is not an ES256 key.")
        now = datetime.now(UTC)
        return sign_status_list(
            key.private_key,
            key.kid,
            uri=self.status_uri(list_id),
            status_list=lst,
            issued_at=now,
            expires_at=now + STATUS_LIST_LIFETIME,
            ttl=STATUS_LIST_TTL,
        )


__all__ = ["IssuedQr", "PresentationError", "Presentations", "Verification", "status_error"]
