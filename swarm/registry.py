"""The registries under facts/: aliases, predicates and hardware, as the reconciler reads them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from swarm.errors import InvalidInput
from swarm.findings import Scalar, Tier
from swarm.models import Model, normalize_arch, validation_message


class Predicate(Model):
    subject: Literal["model", "platform", "gpu", "text"] = "text"
    type: Literal["number", "bool", "enum", "text"]
    unit: str | None = None
    tolerance_rel: float = 0.0
    tolerance_abs: float = 0.0
    verify_tiers: tuple[Tier, ...] = (Tier.local, Tier.primary)
    rules: tuple[str, ...] = ()
    description: str = ""


class Gpu(Model):
    arch: str
    chip: str
    memory_gb: float
    memory_type: str
    bandwidth_gb_s: float
    source: str


class Hardware(Model):
    schema_version: int = 1
    gpu: dict[str, Gpu]
    quant_bits: dict[str, float]


class Aliases(Model):
    schema_version: int = 1
    platform: dict[str, str] = {}
    gpu: dict[str, str] = {}
    model: dict[str, str] = {}


UNKNOWN_PREDICATE = Predicate(type="text", description="not in facts/predicates.toml")


def _norm(text: str) -> str:
    return re.sub(r"[\s_]+", "-", text.strip().lower())


class Registries(Model):
    aliases: Aliases
    predicates: dict[str, Predicate] = Field(default_factory=dict)
    hardware: Hardware

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
            )
        except ValidationError as exc:
            raise InvalidInput(f"{folder}: {validation_message(exc)}") from exc

    def predicate(self, name: str) -> Predicate:
        return self.predicates.get(name, UNKNOWN_PREDICATE)

    def canonical(self, field: str, value: Scalar) -> Scalar:
        """The canonical spelling of a scope value (platform, gpu, model); others pass through."""
        if not isinstance(value, str):
            return value
        if field == "platform":
            return self.aliases.platform.get(_norm(value), _norm(value))
        if field == "gpu":
            return self.aliases.gpu.get(_norm(value), value)
        if field == "model":
            name = _norm(value.rsplit("/", 1)[-1])
            return self.aliases.model.get(name, name)
        if field == "arch":
            try:
                return normalize_arch(value)
            except ValueError:
                return value
        if field == "quant":
            return value.upper()
        return value

    def canonical_scope(self, scope: dict[str, Scalar]) -> dict[str, Scalar]:
        return {k: self.canonical(k, v) for k, v in sorted(scope.items())}

    def gpu_spec(self, name: Scalar | None) -> Gpu | None:
        return (
            self.hardware.gpu.get(str(self.canonical("gpu", name)))
            if isinstance(name, str)
            else None
        )
