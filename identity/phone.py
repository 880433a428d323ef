"""Phone numbers validated and normalised to E.164 with ``phonenumbers``;
numbers without a country code are read as mainland China (+86)."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from identity.errors import ValidationError


def normalise_phone(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 32:
        raise ValidationError("phone", "A phone number is required.")
    return _normalise(raw)


# A sign-in parses the same number twice (code request, then exchange) within
# minutes, at some 30 us a parse. Only valid numbers are cached (an invalid one
# raises), so junk input cannot fill the cache.
@lru_cache(maxsize=8192)
def _normalise(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw.strip(), "CN")
    except phonenumbers.NumberParseException:
        raise ValidationError("phone", "This is not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("phone", "This phone number is not valid.")
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise ValidationError("phone", "A mobile phone number is required to receive a code.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
