"""Errors of real-name (L2) and face (L3) verification.

Each error has a stable kebab-case ``code`` that clients may branch on; the
``kind`` decides the HTTP status in ``server/errors.py``. Details never contain
the ID number, the name or image bytes: they may reach a client and a log.
"""

from __future__ import annotations

from identity.errors import DependencyUnavailable, DomainError


class RegistryUnavailable(DependencyUnavailable):
    """The population registry could not be reached or did not answer in time."""

    code = "registry-unavailable"
    title = "The population registry is unavailable"


class RegistryBadResponse(DomainError):
    """The registry answered, but not in the documented wire format."""

    code = "registry-bad-response"
    kind = "bad_gateway"
    title = "The population registry answered unexpectedly"


class RegistryCredentialsRejected(RegistryBadResponse):
    """The registry refused the platform's API key: an operator must fix the configuration."""

    code = "registry-credentials-rejected"
    title = "The population registry refused the platform's credentials"


class InvalidImage(DomainError):
    """The image is not a decodable JPEG or PNG, or it is too large."""

    code = "invalid-image"
    kind = "unprocessable"
    title = "The image is not a usable JPEG or PNG"


class FaceNotFound(DomainError):
    """No face was found in the probe or the reference image (``extra['image']`` says which)."""

    code = "face-not-found"
    kind = "unprocessable"
    title = "No face was found in the image"


class MultipleFaces(DomainError):
    """More than one face in an image: we cannot tell whose face to compare."""

    code = "face-multiple"
    kind = "unprocessable"
    title = "More than one face was found in the image"


class FaceServiceUnavailable(DependencyUnavailable):
    """The face comparison provider could not be reached or did not answer in time."""

    code = "face-service-unavailable"
    title = "The face comparison service is unavailable"


class FaceServiceBadResponse(DomainError):
    """The face comparison provider answered, but not in the documented wire format."""

    code = "face-service-bad-response"
    kind = "bad_gateway"
    title = "The face comparison service answered unexpectedly"


# Use-case errors of real-name (L2) and face (L3) verification -----------------------


class RealNameMismatch(DomainError):
    """The registry holds this ID number under a different name."""

    code = "real-name-mismatch"
    kind = "unprocessable"
    title = "The name does not match the ID number"


class RealNameNotFound(DomainError):
    """The registry has no person with this ID number."""

    code = "real-name-not-found"
    kind = "unprocessable"
    title = "The population registry has no such ID number"


class IdNumberBound(DomainError):
    """Another account is already real-name verified with this ID number."""

    code = "id-number-bound"
    kind = "conflict"
    title = "This ID number is bound to another account"


class RealNameAlreadyVerified(DomainError):
    """This account is already bound to a different ID number; a binding is permanent."""

    code = "real-name-already-verified"
    kind = "conflict"
    title = "This account is already verified with another ID number"


class FaceMismatch(DomainError):
    """The live photo is not the person in the registry's ID photo (``score``, ``threshold``)."""

    code = "face-mismatch"
    kind = "unprocessable"
    title = "The face does not match the ID photo"


class ReferencePhotoMissing(DomainError):
    """The registry holds no ID photo for this citizen, so there is nothing to compare with."""

    code = "reference-photo-missing"
    kind = "unprocessable"
    title = "The population registry holds no ID photo for you"


class TooManyVerificationAttempts(DomainError):
    """Per-account attempt limit, so that an account cannot be used to enumerate ID numbers."""

    code = "too-many-verification-attempts"
    kind = "rate_limited"
    title = "Too many verification attempts"
