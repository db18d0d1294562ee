"""Tool arguments as an agent sent them, checked before a tool runs, and their errors worded so an
agent can act on them: the field, the constraint, the value; never pydantic's dump or its URL."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

SHOWN = 60  # characters of a rejected value quoted back


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def unknown_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """`INVALID_INPUT: unknown argument 'agnet'; did you mean 'agent'?`, or None when every
    argument is one the tool takes (an unknown one is refused, never silently dropped)."""
    valid = list(schema.get("properties", {}))
    for name in arguments:
        if name not in valid:
            near = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}?" if near else f"this tool takes {', '.join(valid)}"
            return f"INVALID_INPUT: unknown argument {name!r}; {hint}"
    return None


def _kind(prop: Mapping[str, Any]) -> str:
    """'an integer ≥ 1', 'one of "done", "failed"', 'a string of at most 2000 characters'."""
    options = prop.get("anyOf")
    if options:
        kinds = [_kind(o) for o in options if o.get("type") != "null"]
        return " or ".join(kinds) + (" (or null)" if len(kinds) < len(options) else "")
    if "enum" in prop:
        return "one of " + ", ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    names = {"integer": "an integer", "number": "a number", "string": "a string",
             "boolean": "true or false", "array": "a list", "object": "an object"}  # fmt: skip
    text = names.get(str(prop.get("type")), "a value")
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    bounds = []
    if "minimum" in prop and "maximum" in prop:
        bounds.append(f"from {low} to {high}")
    else:
        if low is not None:
            bounds.append(f"{'≥' if 'minimum' in prop else '>'} {low}")
        if high is not None:
            bounds.append(f"{'≤' if 'maximum' in prop else '<'} {high}")
    if "maxLength" in prop or "minLength" in prop:
        bounds.append(f"of {prop.get('minLength', 0)}-{prop.get('maxLength', '...')} characters")
    if "pattern" in prop:
        bounds.append(f"matching {prop['pattern']}")
    if "maxItems" in prop or "minItems" in prop:
        bounds.append(f"of {prop.get('minItems', 0)}-{prop.get('maxItems', '...')} items")
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        bounds.append(f"each {_kind(prop['items'])}")
    return " ".join([text, *bounds])


_BOUND_WORDS = {"from", "≤", "≥", "<", ">", "of"}
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal",
           "string_too_long", "string_too_short", "too_long", "too_short"}  # fmt: skip


def invalid_arguments(schema: Mapping[str, Any], exc: ValidationError) -> str:
    """`INVALID_INPUT: epoch must be an integer ≥ 1 (got 'one')`, one clause per wrong field:
    a top-level argument is described from its schema (type and every bound at once), a nested
    field or a lab limit (swarm/limits.py) in that limit's own words."""
    from swarm import limits

    props: Mapping[str, Any] = schema.get("properties", {})
    clauses: list[str] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        top = len(loc) == 1 and loc[0] in props and err["type"] != "invalid_input"
        if top and err["type"] in _BOUNDS and not _BOUND_WORDS & set(_kind(props[loc[0]]).split()):
            top = False  # a bound the schema does not state (a validator's): the error names it
        if top and err["type"] == "missing":
            clause = f"{loc[0]} is required ({_kind(props[loc[0]])})"
        elif top:
            clause = f"{loc[0]} must be {_kind(props[loc[0]])} (got {_got(err['input'])})"
        else:
            clause = limits._describe_one(err, "")  # the one wording of the lab's limits
        if clause not in clauses:
            clauses.append(clause)
    return "INVALID_INPUT: " + "; ".join(clauses[:5])
