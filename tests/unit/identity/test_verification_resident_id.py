"""Resident ID numbers (GB 11643-1999) as a citizen types them into the app."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.errors import ValidationError
from identity.verification.resident_id import (
    ResidentId,
    Sex,
    check_character,
    generate_resident_id,
    mask_id_number,
    mask_name,
    parse_resident_id,
)

TODAY = date(2026, 11, 22)


def with_check(first17: str) -> str:
    return first17 + check_character(first17)


def rejected(raw: object, today: date = TODAY) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_resident_id(raw, today=today)
    assert caught.value.field == "id_number"
    assert caught.value.extra == {"field": "id_number"}
    return caught.value.detail


def test_the_standards_own_example_parses() -> None:
    # The worked example of GB 11643-1999: Beijing Chaoyang, born 1949-12-31, check X.
    parsed = parse_resident_id("11010519491231002X", today=TODAY)
    assert parsed == ResidentId("11010519491231002X", "110105", date(1949, 12, 31), Sex.FEMALE)


def test_shenzhen_numbers_pass_including_the_city_level_code_440300() -> None:
    for region in ("440300", "440305", "440306"):
        number = with_check(f"{region}19900101123")
        parsed = parse_resident_id(number, today=TODAY)
        assert parsed.region_code == region
        assert parsed.birth_date == date(1990, 1, 1)
        assert parsed.sex is Sex.MALE  # 17th digit 3 is odd


def test_lower_case_x_full_width_input_and_spaces_are_normalised() -> None:
    assert parse_resident_id(" 11010519491231002x ", today=TODAY).number == "11010519491231002X"
    full_width = "１１０１０５１９４９１２３１００２Ｘ"  # typed with a Chinese input method
    assert parse_resident_id(full_width, today=TODAY).number == "11010519491231002X"


def test_even_17th_digit_is_female() -> None:
    assert parse_resident_id(with_check("44030519900101124"), today=TODAY).sex is Sex.FEMALE


def test_a_mistyped_digit_is_reported_as_a_check_digit_error() -> None:
    detail = rejected("110105194912310021")
    assert "check digit" in detail


def test_first_generation_15_digit_numbers_get_a_specific_message() -> None:
    assert "15-digit" in rejected("110105491231002")


@pytest.mark.parametrize(
    "raw",
    ["", "1101051949123100", "11010519491231002XX", "1101051949123100X2", "11010519491231002Y"],
)
def test_wrong_shape_is_rejected(raw: str) -> None:
    assert "17 digits" in rejected(raw)


def test_non_ascii_digits_are_rejected_not_crashing() -> None:
    # str.isdigit() and \d accept these; int() would even parse them. NFKC keeps them.
    assert "17 digits" in rejected("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X")
    assert "17 digits" in rejected("110105194912310０2٫")


def test_non_string_is_rejected() -> None:
    assert "string" in rejected(110105194912310021)


def test_unknown_region_prefix_is_rejected() -> None:
    for prefix in ("00", "10", "99", "72"):
        assert "region" in rejected(with_check(f"{prefix}010519900101123"))


@pytest.mark.parametrize("birth", ["19900230", "19901301", "19900001", "20230229"])
def test_impossible_birth_dates_are_rejected(birth: str) -> None:
    assert "not a real date" in rejected(with_check(f"440305{birth}123"))


def test_leap_day_is_a_real_birth_date() -> None:
    parsed = parse_resident_id(with_check("44030520000229123"), today=TODAY)
    assert parsed.birth_date == date(2000, 2, 29)


def test_birth_date_in_the_future_is_rejected_but_today_is_fine() -> None:
    assert "future" in rejected(with_check("44030520261123123"))
    assert parse_resident_id(with_check("44030520261122123"), today=TODAY).birth_date == TODAY


def test_birth_before_1900_is_rejected() -> None:
    # GB 11643-1999's second example (born 1880) is no longer a living person's number.
    assert "1900" in rejected("440524188001010014")
    assert parse_resident_id(with_check("44052419000101001"), today=TODAY)


def test_repr_and_str_do_not_leak_the_number() -> None:
    parsed = parse_resident_id("11010519491231002X", today=TODAY)
    assert "19491231" not in repr(parsed)
    assert "19491231" not in str(parsed)
    assert repr(parsed) == "ResidentId('1101**********002X')"


def test_masking() -> None:
    assert mask_id_number("440305199001011234") == "4403**********1234"
    assert mask_name("张三丰") == "*三丰"
    assert mask_name("张三") == "*三"
    assert mask_name("张") == "*"
    assert mask_name("") == ""


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    birth=st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    sex=st.sampled_from(Sex),
    region=st.sampled_from(["440300", "440305", "110105", "310115", "810000", "650102"]),
)
def test_generated_numbers_are_valid_and_encode_what_was_asked(
    seed: int, birth: date, sex: Sex, region: str
) -> None:
    number = generate_resident_id(
        random.Random(seed), region_code=region, birth_date=birth, sex=sex
    )
    parsed = parse_resident_id(number, today=TODAY)
    assert (parsed.number, parsed.region_code, parsed.birth_date, parsed.sex) == (
        number,
        region,
        birth,
        sex,
    )


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    position=st.integers(min_value=0, max_value=17),
    replacement=st.sampled_from("0123456789X"),
)
def test_every_single_character_typo_is_caught(seed: int, position: int, replacement: str) -> None:
    # ISO 7064 MOD 11-2 detects all single substitutions: a typo never names someone else.
    number = generate_resident_id(random.Random(seed))
    if number[position] == replacement or (replacement == "X" and position < 17):
        return
    typo = number[:position] + replacement + number[position + 1 :]
    with pytest.raises(ValidationError):
        parse_resident_id(typo, today=TODAY)


@given(seed=st.integers(min_value=0, max_value=2**32), position=st.integers(0, 16))
def test_every_swap_of_adjacent_digits_is_caught(seed: int, position: int) -> None:
    number = generate_resident_id(random.Random(seed))
    a, b = number[position], number[position + 1]
    if a == b:
        return
    swapped = number[:position] + b + a + number[position + 2 :]
    with pytest.raises(ValidationError):
        parse_resident_id(swapped, today=TODAY)
