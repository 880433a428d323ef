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
