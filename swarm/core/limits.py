"""Every input limit, decided once (issue #17).

The CLI, the MCP server and both stores take their bounds from here, so SQLite and PostgreSQL
accept exactly the same values: integers that fit PostgreSQL's INTEGER/BIGINT, no NUL byte and
no unpaired surrogate (PostgreSQL's TEXT refuses both), finite floats only (JSON has no NaN).
A value out of bounds is `InvalidInput` (exit 7, `INVALID_INPUT` over MCP), worded
`<field> must be … (got …)`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from swarm.core.errors import InvalidInput

NAME_CHARS = "A-Za-z0-9._@:-"
MAX_NAME_CHARS = 128  # agent, task id, kind, host, tool, GPU uuid, subject, predicate
MAX_TITLE_BYTES = 1024  # a task title, a GPU name, a dedupe key: a line for people
MAX_NOTE_BYTES = 16 * 1024  # a note kept on a task or result
MAX_SPEC_BYTES = 64 * 1024  # a task spec, as compact UTF-8 JSON
MAX_RESULT_BYTES = 1024 * 1024  # a result payload, as compact UTF-8 JSON
MAX_JSON_DEPTH = 64  # nested objects/arrays in any JSON we accept
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # PostgreSQL INTEGER: priority, epoch, attempts
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # PostgreSQL BIGINT: any integer inside JSON
MAX_ATTEMPTS = 100
MAX_LEASE_SECONDS = 7 * 24 * 3600.0  # a week: longer work heartbeats, a lease is not a reservation
MAX_GPU_MEM_GB = 100_000.0
MAX_PAGE = 10_000  # rows one list call returns
MAX_WORKERS = 64  # worker processes one `swarm work` starts
# Compute capabilities NVIDIA has shipped (CUDA 13): a typo like sm_210 is refused, not queued
# for a GPU that will never exist. Suffix a: arch-specific features; f: family-portable.
REAL_ARCHS = frozenset(
    {"50", "52", "53", "60", "61", "62", "70", "72", "75", "80", "86", "87", "88", "89", "90"}
    | {"100", "101", "103", "110", "120", "121"}
)
ARCH_SUFFIXES = ("", "a", "f")

_NAME_RE = re.compile(rf"[{NAME_CHARS}]{{1,{MAX_NAME_CHARS}}}")
_ARCH_RE = re.compile(r"sm_?(\d{2,3})([a-z]?)")


def _refuse(rule: str, path: str = "", got: Any = None) -> NoReturn:
    """Fail pydantic validation with our wording; `describe` adds the field and the value
    (path and got: where inside a JSON value, and what was there)."""
    ctx = {"path": path, "got": shown(got)} if path else None
    raise PydanticCustomError("invalid_input", rule, ctx)


def _text_ok(value: str, path: str = "") -> None:
    if "\x00" in value:
        _refuse("must not contain a NUL byte", path, value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: from non-UTF-8 argv or a bad \ud800 escape
        _refuse("must be valid UTF-8 text", path, value)


def _name(value: str) -> str:
    _text_ok(value)
    if not _NAME_RE.fullmatch(value):
        _refuse(f"must be 1 to {MAX_NAME_CHARS} characters of {NAME_CHARS}")
    return value


def _bounded_text(max_bytes: int, single_line: bool) -> Callable[[str], str]:
    def check(value: str) -> str:
        _text_ok(value)
        if len(value.encode()) > max_bytes:
            _refuse(f"must be at most {max_bytes} bytes of UTF-8 (got {len(value.encode())})")
        if single_line and ("\n" in value or "\r" in value):
            _refuse("must be one line")
        return value

    return check


def _not_blank(value: str) -> str:
    if not value.strip():
        _refuse("must not be empty or only whitespace")
    return value


def normalize_arch(value: str) -> str:
    """'SM120', 'sm120', 'sm_120a' -> 'sm_120', 'sm_120', 'sm_120a'; others refused."""
    match = _ARCH_RE.fullmatch(value.strip().lower())
    if not match or match.group(1) not in REAL_ARCHS or match.group(2) not in ARCH_SUFFIXES:
        _refuse("must be a real GPU architecture sm_XY[a|f] such as sm_90a or sm_120")
    return f"sm_{match.group(1)}{match.group(2)}"


def _json_walk(value: Any, max_bytes: int | None) -> Any:
    """Refuse JSON nested past MAX_JSON_DEPTH, holding NaN/inf, an integer outside BIGINT, a NUL
    or surrogate in a string or key, or larger than max_bytes once encoded. Objects that are not
    JSON (a model already validated) are passed over: they checked themselves."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:  # iterative: a deep value must not exhaust Python's recursion limit here
        item, depth, path = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                _refuse(f"must be nested at most {MAX_JSON_DEPTH} deep")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    _text_ok(key, where)
                stack.append((child, depth + 1, where))
        elif isinstance(item, str):
            _text_ok(item, path)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                _refuse(f"must be an integer from {INT64_MIN} to {INT64_MAX}", path, item)
        elif isinstance(item, float) and not math.isfinite(item):
            _refuse("must be a finite number (no NaN, Infinity or overflow like 1e400)", path, item)
    if max_bytes is not None:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if size > max_bytes:
            _refuse(f"must be at most {max_bytes} bytes as JSON (got {size})")
    return value


def refuse_bad_values(value: Any) -> Any:
    """A model's raw input with no NUL, unpaired surrogate, NaN/inf or oversized integer in it,
    however deep: the `model_validator(mode="before")` of every model built from input."""
    return _json_walk(value, None)


# Validation context for data read back from the store or a log we wrote: it passed these checks
# when it was recorded, and re-walking 100k findings on every read would dominate the facts pass.
STORED = {"stored": True}


def is_stored(info: ValidationInfo | None) -> bool:
    return bool(info is not None and isinstance(info.context, dict) and info.context.get("stored"))


def _json(max_bytes: int) -> Callable[[Any, ValidationInfo], Any]:
    def check(value: Any, info: ValidationInfo) -> Any:
        return value if is_stored(info) else _json_walk(value, max_bytes)

    return check


def _finite(value: float) -> float:
    if not math.isfinite(value):
        _refuse("must be a finite number")
    return value


# ---------------------------------------------------------------- the types models use

Name = Annotated[str, AfterValidator(_name)]
Title = Annotated[str, AfterValidator(_bounded_text(MAX_TITLE_BYTES, single_line=False))]
# A task's title is what people scan the board by: a blank one names nothing. The schema says
# minLength 1 for clients; the check is _not_blank's, so "" and "  " get one message on both edges.
TaskTitle = Annotated[Title, AfterValidator(_not_blank), Field(json_schema_extra={"minLength": 1})]
Note = Annotated[str, AfterValidator(_bounded_text(MAX_NOTE_BYTES, single_line=False))]
Arch = Annotated[str, AfterValidator(normalize_arch)]
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Epoch = Annotated[int, Field(ge=1, le=INT32_MAX)]
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)]
Page = Annotated[int, Field(ge=1, le=MAX_PAGE)]
Port = Annotated[int, Field(ge=1, le=65535)]
Workers = Annotated[int, Field(ge=1, le=MAX_WORKERS)]
Finite = Annotated[float, AfterValidator(_finite)]
# Bounds as pydantic's own constraints, not after a validator: pydantic then writes them as JSON
# Schema (exclusiveMinimum, maximum) that a client can check; after a validator, only as its own
# `gt`/`le`, which no client reads.
GigaBytes = Annotated[float, Field(gt=0, le=MAX_GPU_MEM_GB, allow_inf_nan=False)]
LeaseSeconds = Annotated[float, Field(gt=0, le=MAX_LEASE_SECONDS, allow_inf_nan=False)]
FreeGigaBytes = Annotated[float, Field(ge=0, le=MAX_GPU_MEM_GB, allow_inf_nan=False)]
Spec = Annotated[dict[str, Any], AfterValidator(_json(MAX_SPEC_BYTES))]
Payload = Annotated[dict[str, Any], AfterValidator(_json(MAX_RESULT_BYTES))]
# A finding's value or a scope entry (smart union: `true` stays a bool, 3 an int).
Scalar = Annotated[str | int | float | bool, AfterValidator(_json(MAX_NOTE_BYTES))]


# ---------------------------------------------------------------- checking and wording


def describe(exc: ValidationError, prefix: str = "") -> str:
    """One `<field> must be … (got …)` per error, joined by '; '; no pydantic URL."""
    return "; ".join(_describe_one(err, prefix) for err in exc.errors())


def invalid_input(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """The InvalidInput a ValidationError stands for (raise it `from exc`)."""
    return InvalidInput(describe(exc, prefix))


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def check(tp: Any, value: Any, field: str) -> Any:
    """value validated as tp (one of the types above), or InvalidInput naming field."""
    try:
        return _adapter(tp).validate_python(value)
    except ValidationError as exc:
        raise invalid_input(exc, field) from exc


def parse_json(text: str | bytes, field: str, max_bytes: int) -> Any:
    """JSON text parsed under the limits (size first, so a huge input is never parsed).

    Raises InvalidInput naming field: too large, not JSON, NaN/Infinity, too deep.
    """
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise InvalidInput(f"{field} must be at most {max_bytes} bytes as JSON (got {size})")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError as exc:
        raise InvalidInput(f"{field} must be nested at most {MAX_JSON_DEPTH} deep") from exc
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer of > 4300 digits
        raise InvalidInput(f"{field} must be valid JSON ({exc})") from exc
    return check_json(value, field, max_bytes)


def check_text(value: str, field: str) -> str:
    """value, if it holds no NUL byte and no unpaired surrogate; else InvalidInput naming field."""
    try:
        _text_ok(value)
    except PydanticCustomError as exc:
        raise InvalidInput(f"{field} {exc.message()} (got {shown(value)})") from exc
    return value


# A command-line flag that is also an MCP argument: the CLI checks it as the same type, so both
# edges accept exactly the same values and say the same bounds (an epoch is INTEGER on both).
FLAG_TYPES: dict[str, Any] = {
    "epoch": Epoch,
    "priority": Int32,
    "max_attempts": Attempts,
    "lease": LeaseSeconds,
}


def check_numbers(flags: dict[str, Any]) -> None:
    """Parsed command-line flags: one that FLAG_TYPES names checked as that type; otherwise every
    float finite (argparse's float takes 'nan', 'inf', '1e400') and every integer within BIGINT;
    else InvalidInput naming the flag."""
    for name, value in flags.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            flag = "--" + name.replace("_", "-")
            if name in FLAG_TYPES and isinstance(item, int | float) and not isinstance(item, bool):
                check(FLAG_TYPES[name], item, flag)
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise InvalidInput(f"{flag} must be a finite number (got {item})")
            big = isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX
            if big and not isinstance(item, bool):
                raise InvalidInput(
                    f"{flag} must be an integer from {INT64_MIN} to {INT64_MAX} (got {shown(item)})"
                )


def check_texts(value: Any, field: str) -> None:
    """Every string and key inside value free of NUL bytes and unpaired surrogates (the same rule
    every text field has, applied to arguments whatever their declared type); else InvalidInput
    naming field and where inside it."""
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, dict | list | tuple):
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    check_text(key, f"{where} key")
                stack.append((child, f"{where}.{key}"))


def check_json(value: Any, field: str, max_bytes: int) -> Any:
    """value, if it is JSON within the limits (depth, size, finite, BIGINT, text); else
    InvalidInput naming field and where inside it."""
    try:
        return _json_walk(value, max_bytes)
    except PydanticCustomError as exc:
        ctx = exc.context or {}
        where = f"{field}.{ctx['path']}".rstrip(".") if ctx.get("path") else field
        got = f" (got {ctx['got']})" if ctx.get("path") else ""
        raise InvalidInput(f"{where} {exc.message()}{got}") from exc


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number; send a finite number or null")


SHOWN = 60  # characters of a rejected value quoted back in an error


def clip(text: str) -> str:
    """At most SHOWN characters of text, cut with '...'."""
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def shown(value: Any) -> str:
    """A rejected value as an error quotes it back: short, ASCII, a long container by size."""
    text = ascii(value) if isinstance(value, str) else repr(value)
    if isinstance(value, dict | list | tuple):
        text = type(value).__name__ + (f" of {len(value)}" if len(text) > SHOWN else f" {text}")
    return clip(text)


_WORDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda c: "is required",
    "extra_forbidden": lambda c: "is not a known field",
    "greater_than": lambda c: f"must be > {c['gt']}",
    "greater_than_equal": lambda c: f"must be ≥ {c['ge']}",
    "less_than": lambda c: f"must be < {c['lt']}",
    "less_than_equal": lambda c: f"must be ≤ {c['le']}",
    "string_too_long": lambda c: f"must be at most {c['max_length']} characters",
    "string_too_short": lambda c: f"must be at least {c['min_length']} characters",
    "string_pattern_mismatch": lambda c: f"must match {c['pattern']}",
    "string_type": lambda c: "must be a string",
    "int_parsing": lambda c: "must be an integer",
    "int_type": lambda c: "must be an integer",
    "int_from_float": lambda c: "must be an integer",
    "float_parsing": lambda c: "must be a number",
    "float_type": lambda c: "must be a number",
    "finite_number": lambda c: "must be a finite number",
    "bool_parsing": lambda c: "must be true or false",
    "bool_type": lambda c: "must be true or false",
    "dict_type": lambda c: "must be a JSON object",
    "model_type": lambda c: "must be a JSON object",
    "model_attributes_type": lambda c: "must be a JSON object",
    "list_type": lambda c: "must be a list",
    "tuple_type": lambda c: "must be a list",
    "literal_error": lambda c: f"must be {c['expected']}",
    "enum": lambda c: f"must be {c['expected']}",
    "too_long": lambda c: f"must have at most {c['max_length']} items",
}


def _describe_one(err: Any, prefix: str) -> str:
    loc = [str(p) for p in err["loc"] if not _is_union_branch(p)]
    field = ".".join([prefix, *loc] if prefix else loc) or "value"
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "invalid_input":
        rule = err["msg"]
        if ctx.get("path"):
            inner = ".".join(p for p in (prefix, *loc, ctx["path"]) if p)
            return f"{inner} {rule} (got {ctx['got']})"
    elif kind in _WORDS:
        rule = _WORDS[kind](err.get("ctx") or {})
    else:  # pydantic's own sentence, first letter lowered to follow the field name
        rule = "is invalid: " + err["msg"][:1].lower() + err["msg"][1:]
    if kind == "missing" or "(got " in rule:  # a lab limit's own words may already quote it
        return f"{field} {rule}"
    return f"{field} {rule} (got {shown(err.get('input'))})"


def _is_union_branch(part: Any) -> bool:
    """pydantic puts a union member's type name ('int', 'function-after[...]') in the loc."""
    return isinstance(part, str) and (
        part in {"bool", "int", "float", "str", "constrained-int", "constrained-float"}
        or "[" in part
    )
