"""The lab side of a benchmark: the target from a task, the stored payload, the findings.

Shared by the `benchmark` task executor and the MCP `benchmark` tool, so that a run started either
way is stored the same way and feeds the facts pipeline the same way.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from swarm.core.models import Task
from swarm.facts.findings import Evidence, EvidenceKind, NewFinding
from swarm.queue.specs import BenchmarkSpec
from tools.bench_client import Target
from tools.benchmark import BenchConfig, BenchmarkReport

# The spec keys that say how to measure: those a benchmark spec and BenchConfig share, except
# the target (endpoint, model, server_kind), which config_from_spec resolves.
BENCH_KEYS = tuple(
    name
    for name in BenchmarkSpec.model_fields
    if name in BenchConfig.model_fields and name not in ("endpoint", "model", "server_kind")
)


def _get_json(endpoint: str, path: str, timeout_s: float) -> Any:
    """GET a JSON document from the server's root (never through a proxy); None if it has none."""
    target = Target.from_url(endpoint, "")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{target.host}:{target.port}{path}", timeout=timeout_s) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


# What each engine writes into `owned_by` on /v1/models, read in its own source (recorded answers:
# tests/fixtures/server_answers.json): vLLM "vllm", SGLang "sglang", TensorRT-LLM "tensorrt_llm"
# (once mistaken for plain OpenAI, so output length was not forced: issue #18).
OWNER_KINDS = {"vllm": "vllm", "sglang": "sglang", "tensorrt_llm": "trt-llm", "tensorrt-llm": "trt-llm",
               "trtllm": "trt-llm"}  # fmt: skip


def kind_of(models: list[dict[str, Any]]) -> str:
    """The server kind a /v1/models listing names: the engine's own `owned_by`, else transformers
    serve's load `status` (its owned_by is "local" or the repo's organisation), else openai."""
    for model in models:
        owner = str(model.get("owned_by", "")).strip().lower()
        if owner in OWNER_KINDS:
            return OWNER_KINDS[owner]
    if any(isinstance(m.get("status"), dict) for m in models):
        return "transformers"
    return "openai"


def probe(endpoint: str, timeout_s: float = 5.0) -> tuple[str, str | None]:
    """The server kind from `/v1/models` ('openai' when nothing says otherwise) and the first
    served model id."""
    listing = _get_json(endpoint, "/v1/models", timeout_s)
    data = listing.get("data", []) if isinstance(listing, dict) else []
    models = [m for m in data if isinstance(m, dict)]
    return kind_of(models), (str(models[0]["id"]) if models and "id" in models[0] else None)


def server_version(endpoint: str, timeout_s: float = 5.0) -> str | None:
    """The engine's version where it says: vLLM and TensorRT-LLM `/version`, SGLang
    `/server_info` (older SGLang `/get_server_info`)."""
    for path in ("/version", "/server_info", "/get_server_info"):
        body = _get_json(endpoint, path, timeout_s)
        if isinstance(body, dict) and isinstance(body.get("version"), str):
            return str(body["version"])
    return None


def deploy_task_of(db: str, task_id: str) -> str | None:
    """The deploy task a benchmark measures: the spec's `deploy_task`, else the deploy task it
    depends on."""
    from swarm.db.store import open_store
    from swarm.queue import queue

    store = open_store(db)
    task = queue.get_task(store, task_id)
    named = task.spec.get("deploy_task")
    for dep in ([named] if named else []) + list(task.depends_on):
        if queue.get_task(store, dep).kind == "deploy":
            return str(dep)
    return None


def deployed_result(db: str, task_id: str) -> dict[str, Any] | None:
    """The latest done result payload of the benchmark's deploy task that names an endpoint."""
    from swarm.db.store import open_store
    from swarm.queue import queue

    dep = deploy_task_of(db, task_id)
    if dep is None:
        return None
    for result in reversed(queue.task_results(open_store(db), dep)):
        if result.status == "done" and endpoint_in(result.payload):
            return dict(result.payload)
    return None


def deployed_endpoint(db: str, task_id: str) -> str | None:
    """The endpoint in the latest done result of the spec's `deploy_task`, else of a deploy task
    this task depends on."""
    result = deployed_result(db, task_id)
    return endpoint_in(result) if result else None


def endpoint_in(payload: dict[str, Any]) -> str | None:
    """The endpoint a deploy result names: its own, or the first of `swarm deploy --json`."""
    if isinstance(payload.get("endpoint"), str):
        return str(payload["endpoint"])
    for deployment in payload.get("deployments") or []:  # `swarm deploy --json` output
        if isinstance(deployment, dict) and isinstance(deployment.get("endpoint"), str):
            return str(deployment["endpoint"])
    return None


def config_from_spec(
    spec: dict[str, Any], endpoint: str, deployed: dict[str, Any] | None = None
) -> BenchConfig:
    # The served name comes from /v1/models even when the kind is given: a server pinned to one
    # model (transformers serve MODEL_DIR) refuses any other name with HTTP 400. Some servers
    # list no model there (transformers 5.17 lists its cache, not the pinned model: seen on the
    # H200 run), so the model the deployment was started with comes next, the lab's name last.
    detected, served = probe(endpoint)
    kind = detected if spec.get("server_kind", "auto") == "auto" else spec["server_kind"]
    started = ((deployed or {}).get("resolution") or {}).get("config", {}).get("model")
    model = spec.get("served_model_name") or served or started or spec.get("model") or "default"
    options = {k: spec[k] for k in BENCH_KEYS if spec.get(k) is not None}
    lab = {k: spec[k] for k in ("model", "gpu", "arch", "platform", "quant", "tp", "params", "model_type", "vram_gb")
           if spec.get(k) is not None}  # fmt: skip
    if "model_type" in lab:
        lab["type"] = lab.pop("model_type")
    return BenchConfig(endpoint=endpoint, model=str(model), server_kind=kind, lab=lab,
                       server_version=server_version(endpoint), **options)  # fmt: skip


def payload(report: BenchmarkReport) -> dict[str, Any]:
    """The task result: the lab's numbers as top-level keys a finding can cite, and the report."""
    best = max(
        (lv for lv in report.levels if lv.concurrency and lv.valid),  # never an invalid level
        key=lambda lv: lv.output_throughput,
        default=None,
    )
    out: dict[str, Any] = {
        "single_tps": report.summary.get("single_tps"),
        "report": report.model_dump(mode="json"),
    }
    if best is not None and best.completed:
        out |= {
            "batched_tps": round(best.output_throughput, 2),
            "batched_concurrency": best.concurrency,
        }
    return out


def findings(task: Task, payload: dict[str, Any]) -> list[NewFinding]:
    """decode_tps_single_stream and throughput_tps_batched, keyed like the seed's measurements so
    that reconcile compares them, each citing the result it is reported with (locator "this")."""
    spec = task.spec
    scope: dict[str, str | int | float | bool] = {"gpu": spec.get("gpu") or task.requires.gpu or "unknown",
        "arch": task.requires.arch or spec.get("arch") or "unknown", "platform": spec.get("platform") or "unknown",
        "quant": spec.get("quant") or "default", "tp": int(spec.get("tp") or 1)}  # fmt: skip
    subject = str(spec.get("model") or payload["report"]["config"]["model"])
    where = (
        f"{subject} on {scope['gpu']} with {scope['platform']} ({scope['quant']}, TP {scope['tp']})"
    )
    # what the task does not say stays out of the key (facts/scope.toml refuses a non-arch arch)
    scope = {k: v for k, v in scope.items() if v != "unknown"}
    out = []
    for predicate, metric, what in (("decode_tps_single_stream", "single_tps", "single-stream"),
                                    ("throughput_tps_batched", "batched_tps", "batched")):  # fmt: skip
        value = payload.get(metric)
        if value is None:
            continue
        attributes: dict[str, str | int | float | bool | None] = {"measured": True}
        attributes |= _environment(payload)
        if metric == "batched_tps":
            attributes["concurrency"] = payload.get("batched_concurrency")
        out.append(NewFinding(
            subject=subject, predicate=predicate, scope=scope, value=value, unit="tokens/s",
            statement=f"{where}: {value:g} tokens/s {what} (swarm bench)",
            evidence=(Evidence(kind=EvidenceKind.run, locator="this", metric=metric),),
            attributes=attributes,
        ))  # fmt: skip
    return out


def _environment(payload: dict[str, Any]) -> dict[str, str | None]:
    """What the run was measured on, carried into its findings: the engine's version and the
    GPU and driver NVML reported on the serving host."""
    hardware = payload.get("hardware") or {}
    gpus = [r.get("gpu", {}) for r in hardware.get("readings", [])]
    out: dict[str, str | None] = {}
    if payload.get("engine_version"):
        out["engine_version"] = str(payload["engine_version"])
    if gpus:
        out["gpu_name"] = str(gpus[0].get("name"))
        out["gpu_arch"] = str(gpus[0].get("arch"))
    if hardware.get("driver_version"):
        out["driver"] = str(hardware["driver_version"])
    return out


def run_environment(
    spec: dict[str, Any], deployed: dict[str, Any], engine_version: str | None
) -> dict[str, str]:
    """The stack a run measured (payload key `environment`): what the reconciler compares when a
    newer run supersedes an older one, and what makes a fact stale when a host runs a newer one."""
    from swarm.queue.specs import platform_name

    hardware = deployed.get("gpus") or {}
    digests = (deployed.get("deployment") or {}).get("image_digests") or []
    found = {
        "engine": platform_name(str(spec["platform"])) if spec.get("platform") else None,
        "engine_version": engine_version,
        "driver": hardware.get("driver_version") if isinstance(hardware, dict) else None,
        "image_digest": digests[0] if digests else None,
    }
    return {k: str(v) for k, v in found.items() if v}
