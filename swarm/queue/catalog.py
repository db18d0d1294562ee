"""The task catalog under tasks/: TOML files of deployments and plain tasks, loaded by init.

Loading is idempotent: an entry whose task already exists (same id or dedupe key) is skipped,
so re-running `swarm init` never resets work the lab has done since.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import Field, ValidationError

from swarm import SCHEMA_VERSION
from swarm.core.errors import Duplicate, InvalidInput
from swarm.core.models import Model, NewTask, Requires, TaskState, validation_message
from swarm.db.store import Conn, Store
from swarm.queue.queue import insert_task, new_task_id, record_result
from swarm.queue.specs import dedupe_key

CATALOG_ACTOR = "catalog"


class DeploymentStatus(StrEnum):
    benchmarked = "benchmarked"  # deploy done, benchmark done
    working = "working"  # deploy done, benchmark pending
    pending = "pending"
    failed = "failed"


class SeedBenchmark(Model):
    single_tps: float | None = None
    batched_tps: float | None = None


class CatalogDeployment(Model):
    """One deployment of the matrix: becomes a deploy task and a dependent benchmark task."""

    gpu: str
    arch: str
    model: str
    platform: str
    quant: str | None = None
    tp: int = 1
    params: str | None = None
    model_type: str | None = None
    vram_gb: float | None = None
    instance: int = 1
    status: DeploymentStatus = DeploymentStatus.pending
    notes: str | None = None
    reason: str | None = Field(None, description="why it failed, for status = failed")
    benchmark: SeedBenchmark | None = None
    priority: int = 0


class CatalogFile(Model):
    schema_version: int = SCHEMA_VERSION
    source: str | None = Field(None, description="where the entries' states and figures come from")
    deployment: tuple[CatalogDeployment, ...] = ()
    task: tuple[NewTask, ...] = ()


class LoadReport(Model):
    schema_version: int = SCHEMA_VERSION
    files: tuple[str, ...]
    added: int
    skipped: int


def read_catalog(path: Path) -> CatalogFile:
    try:
        return CatalogFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {validation_message(exc)}") from exc


def _deploy_tasks(entry: CatalogDeployment) -> tuple[NewTask, NewTask]:
    spec = entry.model_dump(
        include={
            "gpu",
            "model",
            "platform",
            "quant",
            "tp",
            "params",
            "model_type",
            "vram_gb",
            "notes",
            "instance",
        },
        exclude_none=True,
    )
    where = f"{entry.model} on {entry.gpu} ({entry.platform}, {entry.quant or 'default'})"
    deploy = NewTask(
        kind="deploy",
        title=f"deploy {where}",
        spec=spec,
        priority=entry.priority,
        requires=Requires(arch=entry.arch, gpu=entry.gpu, gpu_mem_gb=entry.vram_gb),
    )
    bench_spec = {
        k: spec[k] for k in ("gpu", "model", "platform", "quant", "tp", "instance") if k in spec
    }
    bench = NewTask(
        kind="benchmark",
        title=f"benchmark {where}",
        spec=bench_spec,
        # One above its deploy: once a server is up, its benchmark (which tears it down) is
        # claimed before the next deploy, so a GPU host does not start every server at once.
        priority=entry.priority + 1,
        requires=Requires(arch=entry.arch, gpu=entry.gpu, exclusive=True),
    )
    return deploy, bench


def _exists(conn: Conn, new: NewTask) -> bool:
    key = dedupe_key(new.kind, new.spec, new.dedupe_key)
    row = conn.execute(
        "SELECT 1 FROM tasks WHERE dedupe_key = ? OR id = ?", (key, new.id or "")
    ).fetchone()
    return row is not None


def _seed_result(
    conn: Conn, task_id: str, payload: dict[str, object], source: str, now: datetime
) -> None:
    payload = {"source": source, **payload}
    record_result(conn, task_id, 0, CATALOG_ACTOR, "done", payload, None, f"catalog:{task_id}", now)


def _load_deployment(conn: Conn, entry: CatalogDeployment, source: str, now: datetime) -> int:
    deploy, bench = _deploy_tasks(entry)
    if _exists(conn, deploy):
        return 0
    done = entry.status in (DeploymentStatus.benchmarked, DeploymentStatus.working)
    note: str | None
    if entry.status == DeploymentStatus.failed:
        state, note = TaskState.failed, entry.reason or f"failed in {source}; no reason recorded"
    else:
        state, note = (TaskState.done if done else TaskState.pending), entry.notes
    deploy_id = insert_task(conn, deploy, now, CATALOG_ACTOR, state, note)
    if done:
        _seed_result(conn, deploy_id, {"vram_gb": entry.vram_gb, "notes": entry.notes}, source, now)
    bench = bench.model_copy(
        update={"spec": {**bench.spec, "deploy_task": deploy_id}, "depends_on": (deploy_id,)}
    )
    benchmarked = entry.status == DeploymentStatus.benchmarked
    bench_id = insert_task(
        conn, bench, now, CATALOG_ACTOR, TaskState.done if benchmarked else TaskState.pending
    )
    if benchmarked:
        figures = (entry.benchmark or SeedBenchmark()).model_dump()
        _seed_result(conn, bench_id, figures, source, now)
    return 2


def load_catalog(store: Store, folder: Path, now: datetime) -> LoadReport:
    """Load every tasks/*.toml in one transaction; raises InvalidInput naming file and field."""
    paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    catalogs = [(path, read_catalog(path)) for path in paths]  # validate all before writing

    def load(conn: Conn) -> LoadReport:
        added = skipped = 0
        for path, catalog in catalogs:
            source = catalog.source or f"catalog file {path.name}"
            for entry in catalog.deployment:
                count = _load_deployment(conn, entry, source, now)
                added, skipped = added + count, skipped + (2 - count)
            for new in catalog.task:
                if new.id is None:  # a stable id, so that loading again finds it
                    stable = new_task_id(new.kind, f"catalog:{path.name}:{new.title}")
                    new = new.model_copy(update={"id": stable})
                if _exists(conn, new):
                    skipped += 1
                    continue
                try:
                    insert_task(conn, new, now, CATALOG_ACTOR)
                except Duplicate as exc:  # same dedupe key under a different id
                    raise InvalidInput(f"{path}: {exc}") from exc
                added += 1
        return LoadReport(files=tuple(p.name for p in paths), added=added, skipped=skipped)

    return store.write(load)
