"""Domain errors of the electronic-certificate context.

Every failure a scanner, a wallet or a relying service can meet when it reads
an e-certificate QR presentation, a status list or a signed credential has its
own class with a stable kebab-case ``code`` (RFC 9457 problem ``code``
extension). ``server/errors.py`` maps ``kind`` to an HTTP status.
"""

from __future__ import annotations

from typing import ClassVar

from identity.errors import DomainError, Kind


class PresentationError(DomainError):
    """Base of every reason a scanned QR presentation is refused."""

    code = "qr-invalid"
    kind: ClassVar[Kind] = "unprocessable"
    title = "The QR code is not a valid presentation"


class QrBadPrefix(PresentationError):
    code = "qr-bad-prefix"
    title = "The QR code is not an e-certificate presentation"


class QrBadEncoding(PresentationError):
    code = "qr-bad-encoding"
    title = "The QR code text is not valid Base45"


class QrMalformed(PresentationError):
    code = "qr-malformed"
    title = "The QR code content is not a well-formed signed token"


class QrAlgNotAllowed(PresentationError):
    code = "qr-alg-not-allowed"
    title = "The QR code is signed with an algorithm that is not allowed"


class QrUnknownKey(PresentationError):
    code = "qr-unknown-key"
    title = "The QR code is signed by an unknown key"


class QrBadSignature(PresentationError):
    code = "qr-bad-signature"
    title = "The QR code signature is invalid"


class QrExpired(PresentationError):
    code = "qr-expired"
    kind = "gone"
    title = "The QR code has expired"


class QrNotYetValid(PresentationError):
    code = "qr-not-yet-valid"
    title = "The QR code is not valid yet"


class QrReplayed(PresentationError):
    # Raised by the online scan service (one-time nonce in Redis), not by this codec. Key the
    # nonce on (kid, cti), never on the QR text: ECDSA (r, s) has a valid twin (r, n - s).
    code = "qr-replayed"
    kind = "gone"
    title = "The QR code has already been used"


class CertificateStatusError(DomainError):
    """Base of the reasons a genuine certificate may not be accepted."""

    code = "certificate-invalid"
    kind: ClassVar[Kind] = "gone"
    title = "The certificate is not valid"


class CertificateRevoked(CertificateStatusError):
    code = "certificate-revoked"
    title = "The certificate has been revoked"


class CertificateSuspended(CertificateStatusError):
    # Reversible, so not "gone": the holder may be able to use it again later.
    code = "certificate-suspended"
    kind = "forbidden"
    title = "The certificate is suspended"


class CertificateExpired(CertificateStatusError):
    code = "certificate-expired"
    title = "The certificate has expired"


class StatusListInvalid(DomainError):
    code = "status-list-invalid"
    kind = "unprocessable"
    title = "The status list token is invalid"


class StatusListUnavailable(DomainError):
    # Offline verification fails closed when it holds no list for the referenced URI.
    code = "status-list-unavailable"
    kind = "unavailable"
    title = "The status list for this certificate is not available"


class CredentialInvalid(DomainError):
    code = "credential-invalid"
    kind = "unprocessable"
    title = "The signed credential is invalid"


class CertificateNotYetValid(CertificateStatusError):
    code = "certificate-not-yet-valid"
    kind = "forbidden"
    title = "The certificate is not valid yet"


class IssuerSignatureInvalid(CertificateStatusError):
    # The stored credential does not check against the issuer's published key: never present it.
    code = "issuer-signature-invalid"
    kind = "conflict"
    title = "The certificate's issuer signature does not verify"


class CertificateNotFound(DomainError):
    code = "certificate-not-found"
    kind = "not_found"
    title = "No such certificate"


class UnknownCertificateType(DomainError):
    code = "unknown-certificate-type"
    kind = "unprocessable"
    title = "No such certificate type"


class TypeNotIssuable(DomainError):
    code = "type-not-issuable"
    kind = "forbidden"
    title = "This unit may not issue this certificate type"


class HolderNotFound(DomainError):
    code = "holder-not-found"
    kind = "unprocessable"
    title = "No account matches the holder"


class IdempotencyConflict(DomainError):
    code = "idempotency-conflict"
    kind = "conflict"
    title = "This document number was already used for a different certificate"


class StatusChangeNotAllowed(DomainError):
    code = "status-change-not-allowed"
    kind = "conflict"
    title = "The certificate cannot change to this status"


class UnknownMatter(DomainError):
    code = "unknown-matter"
    kind = "unprocessable"
    title = "No such matter code"


class UnknownProfile(DomainError):
    code = "unknown-profile"
    kind = "unprocessable"
    title = "No such disclosure profile"


class ConsentRequired(DomainError):
    code = "consent-required"
    kind = "forbidden"
    title = "The holder has not authorised this service to read the certificate"


class StatusListNotFound(DomainError):
    code = "status-list-not-found"
    kind = "not_found"
    title = "No such status list"
