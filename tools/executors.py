"""Executors: the work of each task kind this host can run as a detached job (tools/run_job.py).

`swarm work` claims only kinds listed in EXECUTORS. Each executor takes the job's spec (the task's
id, kind and spec, the repo, the lab directory, the database path) and returns the job's result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from swarm.jobs import JobResult, JobSpec
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

    from swarm import facts, readme
    from swarm.store import open_store

    repo = Path(job.repo)
    store = open_store(job.db)
    outcome = facts.run(store, repo, write=True)
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
        },
    )


def _benchmark_job(job: JobSpec) -> JobResult:
    """Benchmark the task's target: `endpoint` from its spec, else from the result of the deploy
    task it depends on. Single and batched TPS become findings citing this very result."""
    import asyncio

    from swarm import queue
    from swarm.store import open_store
    from tools import bench_lab, benchmark

    task = queue.get_task(open_store(job.db), job.task_id)
    endpoint = job.spec.get("endpoint") or bench_lab.deployed_endpoint(job.db, job.task_id)
    if not endpoint:
        return JobResult(
            status="failed", note="no endpoint: none in the spec, none in a deploy result"
        )
    report = asyncio.run(benchmark.run(bench_lab.config_from_spec(job.spec, str(endpoint))))
    payload = bench_lab.payload(report)
    ok = any(lv.valid for lv in report.levels)  # an invalid level never becomes a finding
    invalid = "; ".join(f"{k} invalid: {v}" for k, v in report.summary["invalid_levels"].items())
    return JobResult(
        status="done" if ok else "failed",
        payload=payload,
        note="; ".join(n for n in (report.stopped_early, invalid) if n) or None,
        findings=tuple(bench_lab.findings(task, payload)) if ok else (),
    )


Executor = Callable[[JobSpec], JobResult]

# What `swarm work` claims without --kind. A benchmark needs a live server that only a deploy
# result can name, and the seed's "working" rows have a finished deploy with no endpoint: claimed
# by default on their GPU host they would all fail at once. `--kind benchmark` opts in.
DEFAULT_KINDS = ("kernel", "verify")

# Kinds this host can run as detached jobs (tools/run_job.py); `swarm work` claims only these.
EXECUTORS: dict[str, Executor] = {
    "benchmark": _benchmark_job,
    "kernel": _kernel_job,
    "verify": _verify_job,
}
