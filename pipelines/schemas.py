"""Validation through the JSON Schemas of schema/messages/, and their errors as sentences.

The schemas are the one statement of a message's shape; this module compiles each validator
once, for the draft its file declares, with four changes that make Python's jsonschema hold
what the schemas mean (and what an ECMA-262 validator elsewhere would hold):

- a pattern's final ``$`` matches at the end of the text only (Python's ``$`` also matches
  before a trailing newline);
- ``integer`` is an int, not 3600.0 (a duration or a count arrives as written);
- a bound is met only by a number that compares, so NaN meets none;
- the formats are orgsync's: ``uuid`` (36 characters, as PostgreSQL prints one) and
  ``printable`` (Python's ``str.isprintable``: no control, format or separator character).

A schema's ``x-message`` (a text, or one text per keyword) words its failures; ``{name}``
placeholders are filled from the failing value and its subschema (see ``describe``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any

from jsonschema import FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

from orgsync.schema import message_schema

# a failing bound on size or type makes the value's other problems moot: it is read no further
GATES = ("type", "maxItems", "minProperties", "maxProperties")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_CHARS_ONLY = re.compile(r"\^\[([^\]]+)\]\*\$")  # a pattern that is a character class alone
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: a bool is an int in Python, not in JSON
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)
_A_TYPE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a JSON array",
    "object": "a JSON object",
}


@cache
def validator(name: str) -> Validator:
    """The validator of the message schema `name` (a file stem), compiled on first use."""
    schema = message_schema(name)
    draft: Any = validators.validator_for(schema)
    draft.check_schema(schema)
    kind: Any = validators.extend(
        draft,
        {
            "properties": _properties,
            "items": _shortcut(draft.VALIDATORS["items"]),
            "pattern": _pattern,
            "minimum": _bound(lambda value, limit: value >= limit),
            "maximum": _bound(lambda value, limit: value <= limit),
            "exclusiveMinimum": _bound(lambda value, limit: value > limit),
            "exclusiveMaximum": _bound(lambda value, limit: value < limit),
        },
        type_checker=draft.TYPE_CHECKER.redefine("integer", _is_integer),
    )
    checker = FormatChecker(formats=())
    checker.checks("uuid")(is_uuid)
    checker.checks("printable")(lambda value: not isinstance(value, str) or value.isprintable())
    found: Validator = kind(schema, format_checker=checker)
    return found


def errors(name: str, instance: object) -> list[ValidationError]:
    """Every failure of `instance` against the schema `name`, in the schema's keyword order."""
    return list(validator(name).iter_errors(instance))


def gated(found: list[ValidationError]) -> list[ValidationError]:
    """`found` without the errors a gate at their value or above makes moot."""
    gates = {tuple(error.path) for error in found if error.validator in GATES}
    return [
        error
        for error in found
        if error.validator in GATES
        or not any(tuple(error.path)[: len(gate)] == gate for gate in gates)
    ]


def describe(error: ValidationError) -> str:
    """The sentence for one error: its subschema's x-message, else the keyword's own."""
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("x-message")
    keyword = str(error.validator)
    template = (custom.get(keyword) if isinstance(custom, dict) else custom) or _default(
        keyword, schema
    )
    if keyword == "required":  # every missing property, alike from each of their errors
        return "; ".join(fill(template, name, schema, error) for name in missing(error))
    return fill(template, error.instance, schema, error)


def missing(error: ValidationError) -> list[str]:
    """The properties a `required` or `dependentRequired` error finds missing, in its order."""
    instance = error.instance if isinstance(error.instance, dict) else {}
    names = error.validator_value
    if isinstance(names, dict):  # dependentRequired: what each given property needs
        names = [need for given, needs in names.items() if given in instance for need in needs]
    return [name for name in dict.fromkeys(names) if name not in instance]


def fill(
    template: str,
    value: object,
    schema: Mapping[str, Any],
    error: ValidationError | None = None,
) -> str:
    """`template` with each known ``{name}`` replaced; other braces (JSON examples) kept."""

    def known(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in _FIELDS:
            return _FIELDS[key](value, schema, error)
        return str(schema[key]) if key in schema else match.group(0)

    return _PLACEHOLDER.sub(known, template)


def _default(keyword: str, schema: Mapping[str, Any]) -> str:
    if keyword == "type":
        return "must be {a_type}, got {got}"
    if keyword == "required":
        return "required"
    if keyword in ("minLength", "maxLength"):
        return "must be {span} characters long, got {length}"
    if keyword == "pattern" and _CHARS_ONLY.fullmatch(schema["pattern"]):
        return "may only contain [{chars}], found {found}"
    if keyword == "format" and schema.get("format") == "printable":
        return "must contain only printable characters, found {found}"
    if keyword == "maxItems":
        return "must hold at most {maxItems} items (maxItems), got {count}"
    if keyword == "maxProperties":
        return "must hold at most {maxProperties} entries (maxProperties), got {count}"
    return "{message}"


def _span(value: object, schema: Mapping[str, Any], error: ValidationError | None) -> str:
    low, high = schema.get("minLength"), schema["maxLength"]
    if low is None:
        return f"at most {high}"
    return f"exactly {low}" if low == high else f"{low} to {high}"


def _a_type(value: object, schema: Mapping[str, Any], error: ValidationError | None) -> str:
    kinds: list[str] = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return " or ".join(_A_TYPE.get(kind) or kind for kind in kinds)


def _found(value: object, schema: Mapping[str, Any], error: ValidationError | None) -> str:
    text = str(value)
    chars = _CHARS_ONLY.fullmatch(schema.get("pattern", ""))
    if chars is not None and (error is None or error.validator == "pattern"):
        allowed = re.compile(f"[{chars.group(1)}]")
        return outside(text, lambda char: allowed.fullmatch(char) is not None)
    return outside(text, str.isprintable)


_FIELDS: dict[str, Callable[[object, Mapping[str, Any], ValidationError | None], str]] = {
    "got": lambda value, schema, error: json_type(value),
    "value": lambda value, schema, error: str(value),
    "quoted": lambda value, schema, error: quote(value),
    "length": lambda value, schema, error: str(len(value)) if isinstance(value, str) else "",
    "count": lambda value, schema, error: str(len(value)) if isinstance(value, list | dict) else "",
    "name": lambda value, schema, error: str(error.path[-1]) if error and error.path else "",
    "message": lambda value, schema, error: error.message if error else "",
    "property": lambda value, schema, error: str(value),
    "unknown": lambda value, schema, error: (
        ", ".join(sorted(quote(k) for k in value if k not in schema.get("properties", {})))
        if isinstance(value, dict)
        else ""
    ),
    "chars": lambda value, schema, error: _CHARS_ONLY.fullmatch(schema["pattern"]).group(1),  # type: ignore[union-attr]
    "span": _span,
    "a_type": _a_type,
    "found": _found,
}


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (a Python name for anything JSON has not)."""
    names = (name for kind, name in _JSON_TYPES if isinstance(value, kind))
    return next(names, type(value).__name__)


def quote(value: object, limit: int = 40) -> str:
    """`value` safe for a log line: escaped, and cut at `limit` characters."""
    text = str(value)
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")


def outside(value: str, allowed: Callable[[str], bool]) -> str:
    """The first few distinct characters of `value` that `allowed` rejects, escaped."""
    rejected = list(dict.fromkeys(char for char in value if not allowed(char)))
    return ", ".join(ascii(char) for char in rejected[:3])


def is_uuid(value: object) -> bool:
    """A UUID written as PostgreSQL prints one: 36 characters, hyphens at 8, 13, 18, 23."""
    if not isinstance(value, str):
        return True  # a format speaks of strings; the type says the rest
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_integer(checker: object, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    validator: Validator, pattern: str, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# Keywords that assert on the value alone: a subschema of only these (and annotations) can be
# checked without jsonschema's descend, which costs a few µs a value (a new validator each time):
# a page of 50 account ids took 0.4 ms. A failure still descends, for the error's path.
_PLAIN = frozenset(
    (
        *("type", "pattern", "minLength", "maxLength", "format", "enum", "const"),
        *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
        *("minItems", "maxItems", "uniqueItems"),
        *("description", "default", "examples", "$comment", "x-message"),
    )
)


def _holds(validator: Validator, schema: Mapping[str, Any], instance: object) -> bool:
    """Whether `instance` certainly satisfies `schema`; False when unsure or when it fails."""
    key = id(schema)  # the schemas live as long as their cached validators
    if key not in _TESTS:
        _TESTS[key] = _tests(validator, schema)
    tests = _TESTS[key]
    return tests is not None and all(test(instance) for test in tests)


_TESTS: dict[int, list[Callable[[object], bool]] | None] = {}
_KINDS: dict[str, Callable[[object], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
    "null": lambda value: value is None,
}


def _tests(
    validator: Validator, schema: Mapping[str, Any]
) -> list[Callable[[object], bool]] | None:
    if not _PLAIN.issuperset(schema):
        return None
    return [
        _test(validator, keyword, value, schema)
        for keyword, value in schema.items()
        if keyword in validator.VALIDATORS
    ]


def _test(
    validator: Validator, keyword: str, value: Any, schema: Mapping[str, Any]
) -> Callable[[object], bool]:
    if keyword == "type":
        kinds = [_KINDS[kind] for kind in ([value] if isinstance(value, str) else value)]
        return lambda item: any(kind(item) for kind in kinds)
    if keyword == "pattern":
        search = _regex(value).search
        return lambda item: not isinstance(item, str) or search(item) is not None
    check = validator.VALIDATORS[keyword]
    return lambda item: next(iter(check(validator, value, item, schema)), None) is None


def _properties(
    validator: Validator, properties: Mapping[str, Any], instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for name, subschema in properties.items():
        if name in instance and not _holds(validator, subschema, instance[name]):
            yield from validator.descend(instance[name], subschema, path=name, schema_path=name)


def _shortcut(
    keyword: Callable[..., Iterator[ValidationError]],
) -> Callable[[Validator, Any, object, Mapping[str, Any]], Iterator[ValidationError]]:
    def check(
        validator: Validator, items: Any, instance: object, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        plain = isinstance(items, dict) and "prefixItems" not in schema
        if (
            plain
            and isinstance(instance, list)
            and all(_holds(validator, items, v) for v in instance)
        ):
            return
        yield from keyword(validator, items, instance, schema)

    return check


def _bound(
    holds: Callable[[Any, Any], bool],
) -> Callable[[Validator, Any, object, Mapping[str, Any]], Iterator[ValidationError]]:
    def check(
        validator: Validator, limit: Any, instance: object, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        if validator.is_type(instance, "number") and not holds(instance, limit):
            yield ValidationError(f"{instance!r} is out of bounds ({limit!r})")

    return check
