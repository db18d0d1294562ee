"""The registries under facts/: aliases, predicates and hardware, as the reconciler reads them."""

from __future__ import annotations

import functools
import json
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from swarm.core.errors import InvalidInput
from swarm.core.limits import Scalar
from swarm.core.models import Model, normalize_arch, validation_message
from swarm.facts.tier import Tier


class Predicate(Model):
    subject: Literal["model", "platform", "gpu", "text"] = "text"
    type: Literal["number", "bool", "enum", "text"]
    unit: str | None = None
    tolerance_rel: float = 0.0
    tolerance_abs: float = 0.0
    verify_tiers: tuple[Tier, ...] = (Tier.local, Tier.primary)
    rules: tuple[str, ...] = ()
    description: str = ""
    metrics: tuple[str, ...] = Field(
        (),
        description="the run result keys that measure it; a run cited with another supports nothing",
    )
    minimum: float | None = Field(None, description="the least value that means anything")
    minimum_exclusive: bool = Field(False, description="the minimum itself is out of range")
    maximum: float | None = None

    def out_of_range(self, value: float) -> str | None:
        """Why a value (in the predicate's unit) means nothing for this predicate, or None."""
        low, high = self.minimum, self.maximum
        below = low is not None and (value <= low if self.minimum_exclusive else value < low)
        if not below and (high is None or value <= high):
            return None
        bounds = []
        if low is not None:
            bounds.append(f"{'above' if self.minimum_exclusive else 'at least'} {low:g}")
        if high is not None:
            bounds.append(f"at most {high:g}")
        unit = f" {self.unit}" if self.unit else ""
        return f"must be {' and '.join(bounds)}{unit} (facts/predicates.toml), got {value:g}"


class Gpu(Model):
    arch: str
    chip: str
    memory_gb: float
    memory_type: str
    bandwidth_gb_s: float
    source: str
    max_gpus_per_host: int | None = Field(
        None, ge=1, description="most GPUs of this product in one host (vendor systems)"
    )
    host_source: str | None = None


class Hardware(Model):
    schema_version: int = 1
    gpu: dict[str, Gpu]
    quant_bits: dict[str, float]


class Aliases(Model):
    schema_version: int = 1
    platform: dict[str, str] = {}
    gpu: dict[str, str] = {}
    model: dict[str, str] = {}
    quant: dict[str, str] = {}
    model_type: dict[str, str] = {}


Normaliser = Literal["gpu", "arch", "platform", "quant", "model", "model_type", "int", "text"]


class ScopeKey(Model):
    normalise: Normaliser = "text"
    minimum: int | None = Field(None, description="int keys: the least value that means anything")
    aliases: tuple[str, ...] = ()
    description: str = ""


class ScopeSchema(Model):
    """facts/scope.toml: the keys a finding's scope may use, and how each is normalised."""

    schema_version: int = 1
    key: dict[str, ScopeKey]

    @functools.cached_property
    def names(self) -> dict[str, str]:
        """Every accepted spelling of a key -> the key."""
        out = {name: name for name in self.key}
        out.update({alias: name for name, k in self.key.items() for alias in k.aliases})
        return out


DEFAULT_SCOPE = ScopeSchema(key={})  # a folder without scope.toml: keys are not checked


def arch_name(value: str) -> str:
    """sm_89 from SM89, sm89, sm_89, 8.9 (a compute capability) or 12.0; raises ValueError."""
    text = value.strip()
    cc = re.fullmatch(r"(\d{1,2})\.(\d)", text)
    return normalize_arch(f"sm_{cc.group(1)}{cc.group(2)}" if cc else text)


UNKNOWN_PREDICATE = Predicate(type="text", description="not in facts/predicates.toml")


def _norm(text: str) -> str:
    return re.sub(r"[\s_]+", "-", text.strip().lower())


# Engines the lab runs, whose names need no alias entry to count as known.
KNOWN_PLATFORMS = frozenset(
    {"vllm", "sglang", "tensorrt-llm", "transformers", "ollama", "llama.cpp", "moshi"}
)


def _as_int(value: Scalar) -> Scalar:
    """1 from 1, "1" or 1.0; anything else unchanged (and refused at input)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        return int(value)
    return value


@functools.cache
def project() -> Registries:
    """The registries of the checkout this package runs from (facts/ beside swarm/): what input
    checks and the queue's dedupe key read."""
    return Registries.load(Path(__file__).resolve().parents[2] / "facts")


class Registries(Model):
    aliases: Aliases
    predicates: dict[str, Predicate] = Field(default_factory=dict)
    hardware: Hardware
    scope: ScopeSchema = DEFAULT_SCOPE

    @classmethod
    def load(cls, folder: Path) -> Registries:
        def read(name: str) -> dict[str, object]:
            path = folder / name
            try:
                return tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise InvalidInput(f"{path}: {exc}") from exc

        predicates = read("predicates.toml")
        predicates.pop("schema_version", None)
        try:
            return cls(
                aliases=Aliases.model_validate(read("aliases.toml")),
                predicates=predicates,
                hardware=Hardware.model_validate(read("hardware.toml")),
                scope=(
                    ScopeSchema.model_validate(read("scope.toml"))
                    if (folder / "scope.toml").exists()
                    else DEFAULT_SCOPE
                ),
            )
        except ValidationError as exc:
            raise InvalidInput(f"{folder}: {validation_message(exc)}") from exc

    def predicate(self, name: str) -> Predicate:
        return self.predicates.get(name, UNKNOWN_PREDICATE)

    def predicate_like(self, name: str) -> str | None:
        """The registered predicate an unregistered name is most likely a misspelling of: equal
        without separators, the same words in another order, or one edit away (two for names of eight letters or more; none
        under four). Agents may coin predicates, but a near miss would fork a fact's key and
        hide its contradictions."""
        from rapidfuzz.distance import Levenshtein

        if name in self.predicates:
            return None
        bare = name.replace("_", "")
        words = sorted(w for w in name.split("_") if w)
        for known in sorted(self.predicates):
            if known.replace("_", "") == bare:
                return known
            if sorted(w for w in known.split("_") if w) == words:  # the same words reordered
                return known
        close = []
        for known in sorted(self.predicates):
            shortest = min(len(name), len(known))
            allowed = 0 if shortest < 4 else 1 if shortest < 8 else 2
            edits = Levenshtein.distance(name, known, score_cutoff=allowed)
            if edits <= allowed:
                close.append((edits, known))
        return min(close)[1] if close else None

    def canonical(self, field: str, value: Scalar) -> Scalar:
        """The canonical spelling of a scope value (or a subject of that kind)."""
        kind = self.scope.key[field].normalise if field in self.scope.key else field
        if kind == "int":
            return _as_int(value)
        if kind == "text" and not isinstance(value, str):  # JSON's 13.0 and the CLI's "13.0"
            return json.dumps(value)
        if not isinstance(value, str):
            return value
        if kind == "platform":
            return self.aliases.platform.get(_norm(value), _norm(value))
        if kind == "gpu":
            return self.gpu_name(value)
        if kind == "model":
            name = _norm(value.rsplit("/", 1)[-1])
            return self.aliases.model.get(name, name)
        if kind == "arch":
            try:
                return arch_name(value)
            except ValueError:
                return value
        if kind == "quant":
            return self.aliases.quant.get(_norm(value), value.upper())
        if kind == "model_type":
            return self.aliases.model_type.get(_norm(value), value)
        return value

    def gpu_name(self, value: str) -> str:
        """The hardware registry's name for a GPU spelling; unknown spellings as written."""
        norm = _norm(value)
        if norm in self.aliases.gpu:
            return self.aliases.gpu[norm]
        for name in self.hardware.gpu:  # the registry's own names, in any case and spacing
            if _norm(name) == norm:
                return name
        return value

    def known(self, field: str, value: Scalar) -> bool:
        """Is this spelling one the registries know (a GPU, platform or quant name)?"""
        kind = self.scope.key[field].normalise if field in self.scope.key else field
        if not isinstance(value, str):
            return True
        if kind == "gpu":
            return self.gpu_name(value) in self.hardware.gpu
        if kind == "platform":
            canonical = self.aliases.platform.get(_norm(value), _norm(value))
            return canonical in set(self.aliases.platform.values()) | KNOWN_PLATFORMS
        if kind == "quant":
            canonical = str(self.canonical("quant", value))
            return canonical in self.hardware.quant_bits or canonical == "default"
        return True

    def canonical_scope(self, scope: dict[str, Scalar]) -> dict[str, Scalar]:
        """Keys renamed from their aliases, values normalised, sorted by key."""
        names = self.scope.names
        out = {names.get(k, k): v for k, v in scope.items()}
        return {k: self.canonical(k, v) for k, v in sorted(out.items())}

    def check_scope(self, scope: dict[str, Scalar]) -> None:
        """Refuse a scope key outside the schema, or a value its normaliser cannot read."""
        if not self.scope.key:
            return
        names = self.scope.names
        unknown = sorted(k for k in scope if k not in names)
        if unknown:
            raise InvalidInput(
                f"unknown scope key {', '.join(map(repr, unknown))}; the known keys "
                f"(facts/scope.toml) are {', '.join(sorted(self.scope.key))}; put context "
                "that is not part of the claim's identity in attributes"
            )
        for k, v in scope.items():
            kind = self.scope.key[names[k]].normalise
            if isinstance(v, str) and not v.strip():
                raise InvalidInput(f"scope {k} is empty: leave the key out when it is not known")
            number = _as_int(v)
            if kind == "int" and (not isinstance(number, int) or isinstance(number, bool)):
                raise InvalidInput(f"scope {k} must be an integer (got {v!r})")
            least = self.scope.key[names[k]].minimum
            if kind == "int" and least is not None and isinstance(number, int) and number < least:
                raise InvalidInput(f"scope {k} must be at least {least} (got {v!r})")
            if kind == "arch":
                try:
                    arch_name(str(v))
                except ValueError as exc:
                    raise InvalidInput(
                        f"scope {k} must be a GPU arch such as sm_120, SM89 or 8.9 (got {v!r})"
                    ) from exc

    def gpu_spec(self, name: Scalar | None) -> Gpu | None:
        return (
            self.hardware.gpu.get(str(self.canonical("gpu", name)))
            if isinstance(name, str)
            else None
        )


def add_aliases(folder: Path, table: str, aliases: dict[str, str]) -> list[str]:
    """Record spellings in facts/aliases.toml's [table] (text edited in place, comments kept,
    written atomically); returns the lines added. A spelling already there is left as it is."""
    from swarm.core import atomic

    path = folder / "aliases.toml"
    text = path.read_text(encoding="utf-8")
    known = Aliases.model_validate(tomllib.loads(text))
    have = getattr(known, table)
    lines = [
        f'{_norm(alias)} = "{canonical}"'
        for alias, canonical in sorted(aliases.items())
        if _norm(alias) not in have and _norm(alias) != canonical
    ]
    if not lines:
        return []
    header = f"[{table}]\n"
    if header in text:
        at = text.index(header) + len(header)
        text = text[:at] + "".join(line + "\n" for line in lines) + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + header + "".join(line + "\n" for line in lines)
    Aliases.model_validate(tomllib.loads(text))  # never write a table the next load refuses
    atomic.write_text(path, text)
    return lines
