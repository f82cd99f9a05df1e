"""Numbers read from outside (pipelines/numbers.py): finite, within their bounds, or refused."""

from __future__ import annotations

import pytest

from orgsync.pipelines import numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("42", 42), (" 7 ", 7), ("0012", 12), ("9" * 30, int("9" * 30))],
)
def test_a_whole_number_is_plain_ascii_digits(text: str, expected: int) -> None:
    assert numbers.whole(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "-1", "+1", "1.0", "1e3", "nan", "inf", "\u00b2", "\u0661\u0662", "9" * 31, "1_000"],
)
def test_anything_else_is_not_a_whole_number(text: str) -> None:
    assert numbers.whole(text) is None


def test_a_whole_number_outside_its_bounds_is_none() -> None:
    assert numbers.whole("5", 1, 5) == 5
    assert numbers.whole("6", 1, 5) is None
    assert numbers.whole("0", 1, 5) is None


@pytest.mark.parametrize(
    "text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1e3", "-1", ".5", "5.", "0x10"]
)
def test_a_decimal_is_never_nan_infinite_signed_or_in_exponent_form(text: str) -> None:
    assert numbers.decimal(text) is None


def test_a_decimal_within_its_bounds() -> None:
    assert numbers.decimal("0.5", 0.5, 1000) == 0.5
    assert numbers.decimal("1000", 0.5, 1000) == 1000.0
    assert numbers.decimal("0.49", 0.5, 1000) is None
    assert numbers.decimal("9" * 30, 0, 1000) is None


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("NaN", "NaN is not a JSON number"),
        ('{"timeout": Infinity}', "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ('{"floor": 1e999}', "the number 1e999 is too large for a double"),
        ("-1e400", "the number -1e400 is too large"),
        ("1" + "0" * 400, f"the number 1{'0' * 29}... is too large"),
    ],
)
def test_json_with_a_number_json_or_a_double_cannot_hold_is_refused(
    document: str, words: str
) -> None:
    with pytest.raises(numbers.NotFinite) as refused:
        numbers.loads(document)
    assert words in str(refused.value)
    assert isinstance(refused.value, ValueError)  # where a parse error is caught, so is this


def test_ordinary_json_reads_as_json_does() -> None:
    document = '{"a": [1, 2.5, -3e2, 1e-300, 9007199254740993], "b": null, "c": "NaN"}'
    assert numbers.loads(document) == {
        "a": [1, 2.5, -300.0, 1e-300, 9007199254740993],
        "b": None,
        "c": "NaN",
    }
    assert numbers.loads(b"[1]") == [1]
