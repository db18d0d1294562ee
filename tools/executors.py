"""Executors: the work of each task kind this host can run as a detached job (tools/run_job.py).

`swarm work` claims only kinds listed in EXECUTORS. Each executor takes the job's spec (the task's
id, kind and spec, the repo, the lab directory, the database path) and returns the job's result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarm.queue.jobs import JobResult, JobSpec
from tools.kernel_build import KernelReport, build_and_test


def build_kernels(
    repo: Path,
    cache: Path,
    names: tuple[str, ...] = (),
    archs: tuple[str, ...] | None = None,
    test: bool = False,
) -> KernelReport:
    """The `kernel` task's work: build kernels/ per target, and with test check on this GPU."""
    return build_and_test(repo / "kernels", cache, names, archs, test)


def _kernel_job(job: JobSpec) -> JobResult:
    spec, repo, lab_dir = job.spec, Path(job.repo), Path(job.lab_dir)
    names = tuple(n for n in str(spec.get("name", "all")).split(",") if n and n != "all")
    archs = tuple(spec.get("archs") or ()) or None
    report = build_kernels(
        repo, lab_dir / "kernel-cache", names, archs, bool(spec.get("test", True))
    )
    failed = [t for b in report.builds for t in b.targets if not t.ok]
    note = f"{len(failed)} target build(s) failed" if failed else None
    return JobResult(
        status="done" if report.ok else "failed", payload=report.model_dump(mode="json"), note=note
    )


def _verify_job(job: JobSpec) -> JobResult:
    """Check every citation, reconcile, write facts/ and the README dashboard (the one writer)."""
    from datetime import UTC, datetime

    from swarm.db.store import open_store
    from swarm.lab import pipeline as facts
    from swarm.lab import replication
    from swarm.present import readme

    repo = Path(job.repo)
    store = open_store(job.db)
    outcome = facts.run(store, repo, write=True, cache=Path(job.lab_dir) / "facts-cache")
    # conflicts create their own resolution work: one replication or research task each
    synced = replication.sync(store, outcome.facts, outcome.checks, datetime.now(UTC))
    before, after = readme.regenerate(store, repo, repo / "README.md", datetime.now(UTC))
    statuses, checks, conflicts = facts.tally(outcome)
    changed = [*outcome.changed, *(["README.md"] if after != before else [])]
    return JobResult(
        status="done",
        payload={
            "facts_by_status": statuses,
            "citations_by_status": checks,
            "open_conflicts": conflicts,
            "changed": changed,
            "bad_rows": [b.id for b in outcome.bad_rows],
            "replications": synced.model_dump(),
        },
    )


# The lab's standard sweep for a benchmark task that names no concurrency: doubling, so the knee
# lands on a level, stopped early once it has been passed twice.
STANDARD_SWEEP = (1, 2, 4, 8, 16, 32, 64)


def _benchmark_job(job: JobSpec) -> JobResult:
    """Benchmark the task's target: `endpoint` from its spec, else from the result of the deploy
    task it depends on; with neither (a seed row deployed before endpoints were recorded), the
    deploy task is started here from its recipe. Single and batched TPS become findings citing
    this very result; the server is torn down afterwards unless its task says keep."""
    import asyncio

    from swarm.db.store import open_store
    from swarm.queue import queue
    from tools import bench_lab, benchmark, deploy, lab_deploy

    task = queue.get_task(open_store(job.db), job.task_id)
    deployed_payload: dict[str, Any] = {}
    if not job.spec.get("endpoint"):
        found = bench_lab.deployed_result(job.db, job.task_id)
        if found is None:
            started = _deploy_here(job)
            if started.status == "failed":
                note = f"no endpoint, and deploying here failed: {started.note}"
                return started.model_copy(update={"note": note})
            found = started.payload
        deployed_payload = found
    endpoint = job.spec.get("endpoint") or bench_lab.endpoint_in(deployed_payload)
    spec = {"concurrency": list(STANDARD_SWEEP), **job.spec}
    try:
        with deploy.signals_unwind():  # a SIGTERM mid-sweep still tears the server down
            config = bench_lab.config_from_spec(spec, str(endpoint), deployed_payload)
            report = asyncio.run(benchmark.run(config))
    finally:
        stopped = None if deployed_payload.get("keep") else lab_deploy.teardown(deployed_payload)
    version = deployed_payload.get("engine_version") or config.server_version
    payload = bench_lab.payload(report) | {
        "engine_version": version,
        "hardware": deployed_payload.get("gpus"),
        "torn_down": stopped,
        "environment": bench_lab.run_environment(job.spec, deployed_payload, version),
    }
    ok = any(lv.valid for lv in report.levels)  # an invalid level never becomes a finding
    invalid = "; ".join(f"{k} invalid: {v}" for k, v in report.summary["invalid_levels"].items())
    return JobResult(
        status="done" if ok else "failed",
        payload=payload,
        note="; ".join(n for n in (report.stopped_early, invalid) if n) or None,
        findings=tuple(bench_lab.findings(task, payload)) if ok else (),
    )


def _deploy_here(job: JobSpec) -> JobResult:
    """The benchmark's deploy task, started inside this job (its result had no endpoint)."""
    from tools import bench_lab, lab_deploy

    dep = bench_lab.deploy_task_of(job.db, job.task_id)
    if dep is None:
        return JobResult(status="failed", note="no endpoint: none in the spec and no deploy task")
    return lab_deploy.deploy_job(job.model_copy(update={"task_id": dep, "kind": "deploy"}))


def _deploy_job(job: JobSpec) -> JobResult:
    from tools.lab_deploy import deploy_job

    return deploy_job(job)


def _directory_deploy_job(job: JobSpec) -> JobResult:
    """MCP's deploy tool: up, down or dry-run of a deployment folder (spec: directory, action,
    gpu_total_gb). Any other `other` task has no executor here and fails saying so."""
    import json

    from tools import deploy as deploying  # the docker SDK loads only when a deploy runs

    spec = job.spec
    if "directory" not in spec or "action" not in spec:
        return JobResult(status="failed", note="an `other` task runs here only as MCP's deploy")
    cfg = deploying.load_config(Path(job.repo) / str(spec["directory"]))
    if spec["action"] == "down":
        return JobResult(status="done", payload={"removed": deploying.down(cfg.name)})
    folder = Path(job.repo) / str(spec["directory"])
    plan = deploying.plan(cfg, spec.get("gpu_total_gb"), folder=folder)
    if spec["action"] == "dry-run":
        return JobResult(status="done", payload=plan.model_dump(mode="json"))
    server = deploying.up(cfg, plan)
    return JobResult(status="done", payload=json.loads(deploying.to_json(server, cfg.secret_env)))


Executor = Callable[[JobSpec], JobResult]

# What `swarm work` claims without --kind: everything this host has an executor for. A benchmark
# whose deploy result names no endpoint (the seed's "working" rows) deploys from its recipe first.
DEFAULT_KINDS = ("deploy", "benchmark", "kernel", "verify")

# Kinds this host can run as detached jobs (tools/run_job.py); `swarm work` claims only these.
EXECUTORS: dict[str, Executor] = {
    "deploy": _deploy_job,
    "benchmark": _benchmark_job,
    "kernel": _kernel_job,
    "verify": _verify_job,
    "other": _directory_deploy_job,
}
