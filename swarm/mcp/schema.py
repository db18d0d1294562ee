"""Tool schemas as agents pay for them: every token of `tools/list` is read by every agent on
every session. The schemas pydantic makes say some things twice (a title beside each name, a
`null` branch and a `default: null` beside every optional argument); these functions drop what
a reader can infer, keeping each tool's input and output schema valid and complete."""

from __future__ import annotations

import json
from typing import Any

from swarm.core.limits import INT32_MAX, INT32_MIN

NULL = {"type": "null"}
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "gt", "ge", "lt", "le",
          "minLength", "maxLength", "pattern", "minItems", "maxItems")  # fmt: skip
# pydantic writes a bound it cannot place in the core schema under its own name (`gt`, `le`),
# which is no JSON Schema keyword: a client would not check it.
PYDANTIC_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum",
                   "le": "maximum"}  # fmt: skip
SCHEMA_KEYS = {"type", "anyOf", "$ref", "enum", "const", "items"}
PEOPLE_ONLY = ("kind", "decision")  # a finding's decision fields: agents may not send them


def _walk(node: Any, fix: Any) -> Any:
    if isinstance(node, dict):
        return fix({k: _walk(v, fix) for k, v in node.items()})
    if isinstance(node, list):
        return [_walk(v, fix) for v in node]
    return node


def _input_node(node: dict[str, Any]) -> dict[str, Any]:
    """An optional argument is one not in `required`: its null branch and null default go."""
    if isinstance(node.get("title"), str):
        node.pop("title")
    options = node.get("anyOf")
    if isinstance(options, list) and NULL in options:
        rest = [o for o in options if o != NULL]
        if len(rest) == 1:
            node.pop("anyOf")
            node = {**rest[0], **node}
    if "default" in node and node["default"] in (None, [], {}, "", False):  # the obvious ones
        node.pop("default")
    # The storage's integer range (PostgreSQL INTEGER) is no rule an agent needs to read; an
    # argument past it is still refused, and the error names the range.
    if node.get("maximum") == INT32_MAX:
        node.pop("maximum")
    if node.get("minimum") == INT32_MIN:
        node.pop("minimum")
    if isinstance(node.get("additionalProperties"), bool):  # the server refuses extras anyway
        node.pop("additionalProperties")
    for own, standard in PYDANTIC_BOUNDS.items():  # a bound pydantic could not translate
        if own in node and "type" in node:
            node[standard] = node.pop(own)
    return node


def _output_node(node: dict[str, Any]) -> dict[str, Any]:
    """Outputs keep their nulls (a field may be null), said once: `type: [T, "null"]`."""
    if isinstance(node.get("title"), str):
        node.pop("title")
    if SCHEMA_KEYS & set(node) or "properties" in node:  # a schema, not a `properties` map
        node.pop("default", None)  # an output has values, not defaults
        if isinstance(node.get("description"), str):  # the tool's description says what it is
            node.pop("description")
    if isinstance(node.get("additionalProperties"), bool):
        node.pop("additionalProperties")
    if "type" in node:  # bounds are what inputs must meet; an output's values already did
        for bound in BOUNDS:
            node.pop(bound, None)
    options = node.get("anyOf")
    if isinstance(options, list) and NULL in options:
        rest = [o for o in options if o != NULL]
        if len(rest) == 1 and set(rest[0]) == {"type"} and isinstance(rest[0]["type"], str):
            node.pop("anyOf")
            node["type"] = [rest[0]["type"], "null"]
    return node


def _hide_people_only(schema: dict[str, Any]) -> None:
    finding = schema.get("$defs", {}).get("NewFinding")
    if finding is None:
        return
    for name in PEOPLE_ONLY:
        finding.get("properties", {}).pop(name, None)
    if "Decision" in schema["$defs"] and '"#/$defs/Decision"' not in json.dumps(schema):
        schema["$defs"].pop("Decision")


def one_line(text: str | None) -> str | None:
    """A docstring as one paragraph: its indentation is tokens too."""
    return None if text is None else " ".join(text.split())


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    return [r for v in node for r in _refs(v)] if isinstance(node, list) else []


def _inliner(target: str, body: dict[str, Any]) -> Any:
    def put(node: dict[str, Any]) -> dict[str, Any]:
        if node.get("$ref") != target:
            return node
        return {**body, **{k: v for k, v in node.items() if k != "$ref"}}

    return put


def inline_single_use(schema: dict[str, Any]) -> dict[str, Any]:
    """A definition used once is written where it is used: its name and `$ref` say nothing more
    (a definition used twice, or by itself, stays shared)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    while True:
        counts: dict[str, int] = {}
        for ref in _refs(schema):
            counts[ref] = counts.get(ref, 0) + 1
        once = [
            name
            for name in defs
            if counts.get(f"#/$defs/{name}") == 1 and f"#/$defs/{name}" not in _refs(defs[name])
        ]
        if not once:
            break
        target = f"#/$defs/{once[0]}"
        schema = _walk(schema, _inliner(target, defs.pop(once[0])))
        defs = schema.get("$defs", {})
    if "$defs" in schema and not schema["$defs"]:
        schema.pop("$defs")
    return schema


def _nullable_object(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [{object...}, null]` -> `{type: [object, null], ...}`: the same, said once."""
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and NULL in options:
        (other,) = [o for o in options if o != NULL]
        if other.get("type") == "object" and "anyOf" not in other:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return {**other, **rest, "type": ["object", "null"]}
    return node


def _no_required(node: dict[str, Any]) -> dict[str, Any]:
    if "properties" in node and isinstance(node.get("required"), list):
        node.pop("required")
    return node


def _untyped_objects(node: dict[str, Any]) -> dict[str, Any]:
    """Inside an output, `properties` already says "object" (the top level keeps its type,
    as MCP requires); a nullable one keeps `[object, null]`."""
    props = node.get("properties")
    if isinstance(props, dict):
        for prop in props.values():
            if isinstance(prop, dict) and prop.get("type") == "object" and "properties" in prop:
                prop.pop("type")
    for key in ("items", "additionalProperties"):
        inner = node.get(key)
        if isinstance(inner, dict) and inner.get("type") == "object" and "properties" in inner:
            inner.pop("type")
    return node


def compact_input(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _walk(schema, _input_node)
    _hide_people_only(out)
    for model in out.get("$defs", {}).values():  # a model's docstring is for its programmers
        model.pop("description", None)
    return inline_single_use(out)


def compact_output(schema: dict[str, Any]) -> dict[str, Any]:
    """Every property of an output is always present (null when empty: nothing is left out when
    a model is dumped), so `required` would list them all: it goes too."""
    out: dict[str, Any] = _walk(schema, _output_node)
    out = _walk(inline_single_use(out), _nullable_object)
    out.setdefault("type", "object")
    out = _walk(_walk(out, _no_required), _untyped_objects)
    for model in out.get("$defs", {}).values():
        if model.get("type") == "object" and "properties" in model:
            model.pop("type")
    return out
