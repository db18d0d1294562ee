"""Executors: the work of each task kind this host can run as a detached job (tools/run_job.py).

`swarm work` claims only kinds listed in EXECUTORS. Each executor takes the task's spec, the repo,
the lab directory and the database path, and returns the job's result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarm.jobs import JobResult
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


def _kernel_job(spec: dict[str, Any], repo: Path, lab_dir: Path, db: Path) -> JobResult:
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


def _verify_job(spec: dict[str, Any], repo: Path, lab_dir: Path, db: Path) -> JobResult:
    """Check every citation, reconcile, write facts/ and the README dashboard (the one writer)."""
    from datetime import UTC, datetime

    from swarm import facts, readme
    from swarm.store import SqliteStore

    store = SqliteStore(db)
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
        },
    )


# Kinds this host can run as detached jobs (tools/run_job.py); `swarm work` claims only these.
EXECUTORS: dict[str, Callable[[dict[str, Any], Path, Path, Path], JobResult]] = {
    "kernel": _kernel_job,
    "verify": _verify_job,
}
