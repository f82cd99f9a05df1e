"""Named SQL statements: how a `.sql` file is cut into statements."""

from __future__ import annotations

import pytest

from orgsync.pipelines.sql import parse


def test_each_header_names_the_statement_under_it() -> None:
    text = "-- what this file holds\n\n-- name: one\nSELECT 1\n\n-- name: two\n-- why\nSELECT 2;\n"
    assert dict(parse(text)) == {"one": "SELECT 1", "two": "-- why\nSELECT 2;"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 0\n-- name: one\nSELECT 1\n", "a statement before the first"),
        ("-- name: one\nSELECT 1\n-- name: one\nSELECT 2\n", "'one' is named twice"),
        ("-- name: one\n\n-- name: two\nSELECT 2\n", "'one' has no statement"),
    ],
)
def test_a_malformed_file_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text, "queries.sql")
