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


class OrderNotFound(PaymentError):
    code = "order-not-found"
    kind = "not_found"
    title = "No such order"


class DuplicateOutTradeNo(PaymentError):
    code = "duplicate-out-trade-no"
    kind = "conflict"
    title = "This merchant already has an order with this out_trade_no"


class IdempotencyConflict(PaymentError):
    code = "idempotency-conflict"
    kind = "unprocessable"
    title = "The Idempotency-Key was used with a different request"


class IdempotencyInFlight(PaymentError):
    code = "idempotency-in-flight"
    kind = "conflict"
    title = "A request with this Idempotency-Key is still being processed"


class OrderNotPayable(PaymentError):
    code = "order-not-payable"
    kind = "conflict"
    title = "The order cannot be paid in its current state"


class OrderNotClosable(PaymentError):
    code = "order-not-closable"
    kind = "conflict"
    title = "The order cannot be closed in its current state"


class RefundNotAllowed(PaymentError):
    code = "refund-not-allowed"
    kind = "conflict"
    title = "The refund breaks a refund rule"


class RefundExceedsPaid(PaymentError):
    code = "refund-exceeds-paid"
    kind = "unprocessable"
    title = "The refunds would exceed the amount paid"


class RefundConflict(PaymentError):
    code = "refund-conflict"
    kind = "unprocessable"
    title = "This out_refund_no was used for a different refund"


class EventNotFound(PaymentError):
    code = "event-not-found"
    kind = "not_found"
    title = "No such event"


class ChannelNotConfigured(PaymentError):
    code = "channel-not-configured"
    kind = "unprocessable"
    title = "This payment channel is not available"
