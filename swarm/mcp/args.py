"""Tool arguments as an agent sent them, checked before a tool runs, and their errors worded so an
agent can act on them: the field, the constraint, the value; never pydantic's dump or its URL."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from swarm.core import limits


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


def refuse(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """The INVALID_INPUT answer to arguments a tool must not run with, checked at the edge before
    the SDK converts anything, or None: an unknown name; a value of the wrong JSON type (the
    SDK and pydantic would quietly read `true`, `"1"` or `1.0` as the integer 1, and `"60"` as a
    number); a NUL byte or unpaired surrogate in any text, whatever the argument's type."""
    from swarm.core.errors import InvalidInput

    unknown = unknown_arguments(schema, arguments)
    if unknown:
        return unknown
    props: Mapping[str, Any] = schema.get("properties", {})
    for name, value in arguments.items():
        wrong = _wrong_type(schema, props[name], value, name)
        if wrong:
            return f"INVALID_INPUT: {wrong}"
        try:
            limits.check_texts(value, name)
        except InvalidInput as exc:
            return f"INVALID_INPUT: {exc}"
    return None


JSON_TYPES: dict[str, Any] = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    while isinstance(ref, str) and ref.startswith("#/$defs/"):
        node = {**root["$defs"][ref.removeprefix("#/$defs/")], **{
            k: v for k, v in node.items() if k != "$ref"}}  # fmt: skip
        ref = node.get("$ref")
    return node


def _inline(root: Mapping[str, Any], node: Any, depth: int = 0) -> Any:
    """node with its `$ref`s written out (a few levels: enough to word what is expected)."""
    if isinstance(node, list):
        return [_inline(root, v, depth) for v in node]
    if not isinstance(node, Mapping) or depth > 3:
        return node
    return {k: _inline(root, v, depth + 1) for k, v in _resolve(root, node).items()}


def _fits(root: Mapping[str, Any], node: Mapping[str, Any], value: Any) -> bool:
    """value is of a JSON type node allows (only the type: bounds are pydantic's to check)."""
    node = _resolve(root, node)
    if "anyOf" in node:
        return any(_fits(root, option, value) for option in node["anyOf"])
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    if kinds and not any(JSON_TYPES[k](value) for k in kinds if k in JSON_TYPES):
        return False
    if "const" in node:
        return bool(node["const"] == value and type(node["const"]) is type(value))
    return True


def _wrong_type(root: Mapping[str, Any], node: Mapping[str, Any], value: Any, where: str) -> str:
    """'epoch must be an integer from 1 to 2147483647 (got "1", a string)' for the first value,
    at any depth, whose JSON type the schema does not allow; '' when every one fits."""
    node = _resolve(root, node)
    if "anyOf" in node:
        fitting = [o for o in node["anyOf"] if _fits(root, o, value)]
        if not fitting:
            return f"{where} must be {_kind(_inline(root, node))} (got {_json_got(value)})"
        node = _resolve(root, fitting[0])
    elif not _fits(root, node, value):
        return f"{where} must be {_kind(_inline(root, node))} (got {_json_got(value)})"
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, child in value.items():
            inner = props.get(key, extra if isinstance(extra, dict) else None)
            wrong = _wrong_type(root, inner, child, f"{where}.{key}") if inner else ""
            if wrong:
                return wrong
    elif isinstance(value, list | tuple) and isinstance(node.get("items"), dict):
        for i, child in enumerate(value):
            wrong = _wrong_type(root, node["items"], child, f"{where}.{i}")
            if wrong:
                return wrong
    return ""


def _json_got(value: Any) -> str:
    """A wrong value as JSON, with its JSON type: `"1", a string`; `true, a boolean`."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a number with a decimal point" if value.is_integer() else "a fractional number"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, dict):
        kind = "an object"
    elif isinstance(value, list | tuple):
        kind = "a list"
    else:
        kind = "null" if value is None else type(value).__name__
    text = json.dumps(value, ensure_ascii=True, default=str)
    text = limits.clip(text)
    return text if value is None else f"{text}, {kind}"


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
            bounds.append(f"{'and ' if bounds else ''}{'≤' if 'maximum' in prop else '<'} {high}")
    if "maxLength" in prop and "minLength" in prop:
        bounds.append(f"of {prop['minLength']}-{prop['maxLength']} characters")
    elif "minLength" in prop:
        bounds.append(f"of at least {prop['minLength']} character(s)")
    elif "maxLength" in prop:
        bounds.append(f"of at most {prop['maxLength']} characters")
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
    field or a lab limit (swarm/core/limits.py) in that limit's own words."""

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
            clause = f"{loc[0]} must be {_kind(props[loc[0]])} (got {limits.shown(err['input'])})"
        else:
            clause = limits._describe_one(err, "")  # the one wording of the lab's limits
        if clause not in clauses:
            clauses.append(clause)
    return "INVALID_INPUT: " + "; ".join(clauses[:5])
