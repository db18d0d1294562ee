from __future__ import annotations

from pathlib import Path

import pytest

from swarm.core.errors import InvalidInput
from swarm.db.store import Store
from swarm.present.board import board
from swarm.queue import queue
from swarm.queue.catalog import load_catalog, read_catalog
from tests.conftest import REPO, T0

CATALOG = REPO / "tasks"


def test_every_catalog_file_validates_against_its_model() -> None:
    files = sorted(CATALOG.glob("*.toml"))
    assert files
    for path in files:
        read_catalog(path)


def test_the_seed_catalog_reproduces_the_seed_status_line_and_gpu_counts(
    store: Store,
) -> None:
    report = load_catalog(store, CATALOG, T0)
    assert report.added == 218
    b = board(store, T0)
    assert (
        b.headline
        == "49 benchmarked | 14 working | 29 pending | 17 failed — across 3 GPU architectures"
    )
    assert [(g.gpu, g.arch, g.deployments) for g in b.gpus] == [
        ("RTX Pro 6000", "sm_120", 46),
        ("DGX Spark", "sm_121", 41),
        ("RTX 4090", "sm_89", 22),
    ]


def test_loading_the_catalog_again_adds_nothing_and_keeps_progress(store: Store) -> None:
    load_catalog(store, CATALOG, T0)
    pending = queue.list_tasks(store, states=["pending"], kinds=["deploy"], limit=1)[0]
    again = load_catalog(store, CATALOG, T0)
    assert (again.added, again.skipped) == (0, 218)
    assert queue.get_task(store, pending.id).state == "pending"


def test_seed_benchmark_figures_are_kept_as_results_attributed_to_the_seed(
    store: Store,
) -> None:
    load_catalog(store, CATALOG, T0)
    bench = next(
        t
        for t in queue.list_tasks(store, kinds=["benchmark"], states=["done"])
        if t.spec["model"] == "gpt-oss-20b-MXFP4" and t.spec["gpu"] == "RTX Pro 6000"
    )
    (result,) = queue.task_results(store, bench.id)
    assert result.payload == {
        "source": "seed document (Blackwell LLM Deployment Lab README)",
        "single_tps": 255.0,
        "batched_tps": 6396.0,
    }
    assert result.agent == "catalog"
    assert queue.get_task(store, bench.spec["deploy_task"]).state == "done"


def test_seed_spellings_are_kept_and_repeats_carry_an_instance_number(store: Store) -> None:
    load_catalog(store, CATALOG, T0)
    deploys = queue.list_tasks(store, kinds=["deploy"])
    platforms = {t.spec["platform"] for t in deploys}
    assert {"trt-llm", "tensorrt-llm"} <= platforms
    repeats = [t for t in deploys if t.spec.get("instance", 1) > 1]
    assert len(repeats) == 12
    assert len({t.dedupe_key for t in deploys}) == 109


def test_failed_deployments_keep_a_reason_and_block_their_benchmark(store: Store) -> None:
    load_catalog(store, CATALOG, T0)
    failed = queue.list_tasks(store, kinds=["deploy"], states=["failed"])
    assert len(failed) == 17 and all(t.note for t in failed)
    bench = next(
        t
        for t in queue.list_tasks(store, kinds=["benchmark"])
        if t.spec["deploy_task"] == failed[0].id
    )
    assert bench.blocked_by == (failed[0].id,)


def test_a_catalog_file_with_an_unknown_field_is_refused_naming_file_and_field(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "bad.toml").write_text(
        '[[deployment]]\ngpu="g"\narch="sm_89"\nmodel="m"\nplatform="p"\ncolour=1\n'
    )
    with pytest.raises(InvalidInput, match=r"bad.toml.*colour"):
        load_catalog(store, tmp_path, T0)
    assert queue.list_tasks(store) == []


def test_plain_tasks_in_a_catalog_are_queued(store: Store, tmp_path: Path) -> None:
    (tmp_path / "kernels.toml").write_text(
        '[[task]]\nid="kern-quant"\nkind="kernel"\ntitle="build nvfp4 quantize"\n'
        'spec={name="nvfp4_quantize"}\nrequires={tools=["nvcc"]}\n'
    )
    assert load_catalog(store, tmp_path, T0).added == 1
    assert queue.get_task(store, "kern-quant").requires.tools == ("nvcc",)
    assert load_catalog(store, tmp_path, T0).skipped == 1


def test_a_benchmark_outranks_its_deploy_so_each_server_is_measured_before_the_next_starts(
    store: Store,
) -> None:
    load_catalog(store, REPO / "tasks", T0)
    tasks = {t.id: t for t in queue.list_tasks(store)}
    benches = [t for t in tasks.values() if t.kind == "benchmark"]
    assert benches and all(b.priority == tasks[b.spec["deploy_task"]].priority + 1 for b in benches)
