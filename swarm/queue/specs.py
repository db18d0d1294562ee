"""Per-kind task specs and the dedupe key that keeps one deployment from being queued twice."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from swarm.core.errors import InvalidInput
from swarm.core.kinds import ServerKind
from swarm.core.models import Model, validation_message


class DeploySpec(Model):
    gpu: str
    model: str
    platform: str
    quant: str | None = None
    tp: int = Field(1, ge=1)
    params: str | None = None
    model_type: str | None = None
    vram_gb: float | None = None
    notes: str | None = None
    instance: int = Field(1, ge=1, description="n-th deployment of the same model/platform/GPU")
    arch: str | None = Field(
        None, description="GPU architecture whose recipe applies, when the task requires none"
    )
    hf_repo: str | None = Field(None, description="overrides the recipe book's repo for the model")
    runtime: Literal["docker", "process"] | None = Field(None, description="overrides the recipe's")
    keep: bool = Field(False, description="leave the server running after its benchmark")
    deploy: dict[str, Any] = Field(
        {}, description="any deploy.toml field, overriding what the recipe renders"
    )


class Dispute(Model):
    """The conflict a replication or research task was queued to settle (swarm/lab/replication.py)."""

    conflict: str = Field(description="the conflict as it was named when the task was queued")
    key: str = Field(description="the fact key in dispute (what the task is deduplicated by)")
    reason: str
    values: tuple[str | int | float | bool, ...] = Field(description="the disputed values")
    unit: str | None = None
    scope: dict[str, str | int | float | bool] = Field(default_factory=dict)
    origins: tuple[str, ...] = Field((), description="agents that may not run it: the sides'")
    note: str | None = Field(None, description="e.g. why it may run on an origin's host")


class BenchmarkSpec(Model):
    """What is measured (the target and its lab metadata) and how (tools/benchmark.py)."""

    deploy_task: str | None = Field(None, description="the deploy task whose server is measured")
    gpu: str | None = None
    model: str | None = Field(None, description="the lab's model name (findings' subject)")
    platform: str | None = None
    quant: str | None = None
    tp: int = Field(1, ge=1)
    instance: int = Field(1, ge=1)
    endpoint: str | None = Field(None, description="default: the deploy task's result")
    served_model_name: str | None = Field(None, description="default: the first in /v1/models")
    server_kind: ServerKind = "auto"
    # How to measure: the same names and defaults as tools/benchmark.py's BenchConfig.
    concurrency: tuple[Annotated[int, Field(ge=1)], ...] = (1,)
    rate: float | None = Field(None, gt=0)
    burstiness: float = Field(1.0, gt=0)
    input_len: int = Field(128, ge=1)
    output_len: int = Field(128, ge=1)
    requests: int | None = Field(None, ge=1)
    duration_s: float | None = Field(None, gt=0)
    warmup: int | None = Field(None, ge=0)
    seed: int = 0
    timeout_s: float | None = Field(
        None, gt=0, description="default 30 s + 0.25 s per output token"
    )
    max_error_rate: float = Field(0.01, ge=0, le=1, description="over it a level is invalid")
    ttft_stop_ms: float | None = Field(None, gt=0)
    knee_gain: float = Field(0.25, gt=0)
    tokenizer: str | None = Field(None, description="tokenizer.json on the benchmarking host")
    per_process: int = Field(128, ge=1)
    replication: Dispute | None = Field(None, description="the conflict this run re-measures")


class KernelSpec(Model):
    name: str
    archs: tuple[str, ...] = ()
    test: bool = False


class VerifySpec(Model):
    scope: str = Field("all", description="which findings to check")


class ResearchSpec(Model):
    question: str
    scope: dict[str, str] = Field(default_factory=dict)
    dispute: Dispute | None = Field(None, description="the conflict a primary source settles")


# Each task kind (swarm.core.kinds.TaskKind) with the model its spec must validate against.
KIND_SPECS: dict[str, type[Model] | None] = {
    "deploy": DeploySpec,
    "benchmark": BenchmarkSpec,
    "kernel": KernelSpec,
    "verify": VerifySpec,
    "research": ResearchSpec,
    "other": None,  # free-form spec
}


def check_kind(kind: str) -> str:
    if kind not in KIND_SPECS:
        known = ", ".join(KIND_SPECS)
        raise InvalidInput(
            f"unknown kind {kind!r}; known kinds: {known} (use 'other' for free-form)"
        )
    return kind


def validate_spec(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as its kind's model dumps it; raises InvalidInput naming the bad field."""
    model = KIND_SPECS[check_kind(kind)]
    if model is None:
        return dict(spec)
    try:
        return model.model_validate(spec).model_dump(mode="json", exclude_defaults=True)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {kind} spec: {validation_message(exc)}") from exc


def _norm(text: str | None) -> str:
    return re.sub(r"[\s_]+", "-", (text or "").strip().lower())


def _norm_model(name: str) -> str:
    """'nvidia/Qwen3-8B' and 'Qwen3-8B' are one model; aliases from facts/aliases.toml."""
    from swarm.facts.registry import project  # the project's one alias table (facts/aliases.toml)

    return _norm(str(project().canonical("model", name)))


def _norm_gpu(name: str | None) -> str:
    from swarm.queue.routing import gpu_key  # the key claims route by

    return gpu_key(name) if name else ""


def platform_name(name: str) -> str:
    """The canonical engine name ('TRT-LLM' -> 'tensorrt-llm') from facts/aliases.toml."""
    from swarm.facts.registry import project

    return str(project().canonical("platform", name))


def _norm_platform(name: str | None) -> str:
    return platform_name(name) if name else ""


def _deployment_key(spec: dict[str, Any]) -> str:
    parts = [
        _norm_gpu(spec.get("gpu")),
        _norm_model(spec["model"]),
        _norm_platform(spec.get("platform")),
        _norm(spec.get("quant")),
        f"tp{spec.get('tp', 1)}",
    ]
    if spec.get("instance", 1) > 1:
        parts.append(f"#{spec['instance']}")
    return "|".join(parts)


def dedupe_key(kind: str, spec: dict[str, Any], explicit: str | None) -> str | None:
    """Normalised key: an explicit key wins; deploy and benchmark derive theirs from the spec."""
    if explicit:
        return f"{kind}:{_norm(explicit)}"
    if kind == "deploy":
        return "deploy:" + _deployment_key(spec)
    if kind == "benchmark" and spec.get("gpu") and spec.get("model"):
        return "benchmark:" + _deployment_key(spec)
    return None
