"""Errors of the payments context, as stable machine codes a client or operator can act on.

Channel errors are split by who is at fault: a forged or stale callback (``callback-*``),
a channel that refused our request (``channel-rejected``), a channel that answered with
something we cannot trust (``channel-bad-signature``, ``bill-integrity-failed``) and a
channel that did not answer (``channel-unavailable``).
"""

from __future__ import annotations

from typing import ClassVar

from identity.errors import DomainError, Kind


class PaymentError(DomainError):
    code = "payment-error"
    kind: ClassVar[Kind] = "invalid"
    title = "The payment request failed"


class InvalidAmount(PaymentError):
    code = "invalid-amount"
    kind = "unprocessable"
    title = "The amount is not a valid number of fen"


class CallbackBadSignature(PaymentError):
    code = "callback-bad-signature"
    kind = "unauthorized"
    title = "The channel callback signature is invalid"


class CallbackStale(PaymentError):
    code = "callback-stale"
    kind = "unauthorized"
    title = "The channel callback timestamp is outside the allowed window"


class CallbackMalformed(PaymentError):
    code = "callback-malformed"
    kind = "invalid"
    title = "The channel callback cannot be parsed"


class ChannelRejected(PaymentError):
    """The channel understood the request and refused it (e.g. refund exceeds total)."""

    code = "channel-rejected"
    kind = "bad_gateway"
    title = "The payment channel refused the request"


class ChannelTradeNotFound(PaymentError):
    code = "channel-trade-not-found"
    kind = "not_found"
    title = "The payment channel does not know this trade"


class ChannelBadSignature(PaymentError):
    """A channel response failed verification: never act on its content."""

    code = "channel-bad-signature"
    kind = "bad_gateway"
    title = "The payment channel response could not be verified"


class ChannelUnavailable(PaymentError):
    code = "channel-unavailable"
    kind = "unavailable"
    title = "The payment channel is unavailable"


class BillIntegrityFailed(PaymentError):
    code = "bill-integrity-failed"
    kind = "bad_gateway"
    title = "The downloaded bill failed its integrity check"
