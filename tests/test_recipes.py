"""Recipes: every pending deploy task of the catalog resolves to a plan or says what is missing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from swarm import queue
from swarm.catalog import load_catalog
from swarm.models import Task
from swarm.store import open_store
from tests.conftest import REPO, run_swarm
from tools import deploy
from tools.gpu import Inventory
from tools.lab_deploy import resolve_task
from tools.recipes import RECIPES, load_book, resolve

BOOK = load_book(REPO / RECIPES)
SEED_KEYS = {f["key"] for f in json.loads((REPO / "facts/evidence/seed_findings.json").read_text())}


def pending_deploys(tmp_path: Path) -> list[Task]:
    store = open_store(str(tmp_path / "lab.db"))
    load_catalog(store, REPO / "tasks", datetime(2026, 12, 1, tzinfo=UTC))
    return [t for t in queue.list_tasks(store) if t.kind == "deploy" and t.state.value == "pending"]


def test_every_recipe_and_workaround_cites_a_finding_the_seed_has() -> None:
    cited = {c for e in BOOK.engine for c in e.cites} | {
        w.cites for e in BOOK.engine for w in e.workaround
    }
    cited |= {f.cites for f in BOOK.known_failure}
    assert cited and cited <= SEED_KEYS, cited - SEED_KEYS


def test_no_recipe_claims_a_digest_and_every_unpinned_image_says_so() -> None:
    for engine in BOOK.engine:
        if engine.runtime == "docker":
            assert engine.digest or engine.digest_note, engine  # unknown is said, never invented


def test_every_pending_deploy_resolves_to_a_plan_or_names_exactly_what_is_missing(
    tmp_path: Path,
) -> None:
    tasks = pending_deploys(tmp_path)
    assert len(tasks) == 29
    planned = 0
    for task in tasks:
        res = resolve_task(task, REPO, Inventory())
        if res.config is None:
            assert res.missing and all(
                "hf_repo" in m or "a recipe for platform" in m for m in res.missing
            ), res.missing
            continue
        planned += 1
        plan = deploy.plan(res.config, None)
        assert plan.command and res.config.model.count("/") == 1
        if res.runtime == "docker":
            assert res.image_pinned or "unpinned" in (res.image_note or "")
    assert planned >= 14  # the rest lack a Hugging Face repo this lab is sure of, or a server


def test_the_task_spec_overrides_any_field_of_the_recipe() -> None:
    spec = {"gpu": "RTX 4090", "model": "not-in-the-book", "platform": "vLLM", "quant": "FP8",
            "hf_repo": "org/model", "deploy": {"image": "vllm/vllm-openai:v0.19.0", "max_context": 4096}}  # fmt: skip
    res = resolve(BOOK, "deploy-abc123", spec, "sm_89")
    assert res.config is not None and res.config.model == "org/model"
    assert res.config.image == "vllm/vllm-openai:v0.19.0" and res.config.max_context == 4096
    bad = resolve(BOOK, "deploy-abc123", {**spec, "deploy": {"colour": "red"}}, "sm_89")
    assert bad.config is None and "colour" in bad.missing[0]


def test_a_workaround_from_the_seed_is_applied_and_cited() -> None:
    spec = {
        "gpu": "RTX Pro 6000",
        "model": "gpt-oss-120b-MXFP4+eagle3",
        "platform": "vllm",
        "quant": "MXFP4",
    }
    res = resolve(BOOK, "deploy-x", spec, "sm_120")
    assert [w.cites for w in res.workarounds] == ["workaround.gpt-oss-120b-eagle3.vllm"]
    assert res.config is not None and res.config.env["VLLM_ATTENTION_BACKEND"] == "FLASHINFER"


@pytest.mark.parametrize(
    ("log", "cites"),
    [
        ("triton.runtime.errors.OutOfResources: out of resource: shared memory, Required: 135168",
         "workaround.qwen3-next-nvfp4.sglang"),
        ("RuntimeError: chunked attention kernel is SM90-only", "workaround.llama4-scout.trt-llm"),
    ],
)  # fmt: skip
def test_a_failure_log_is_matched_to_the_known_failure_the_seed_documents(
    log: str, cites: str
) -> None:
    assert [f.cites for f in BOOK.known(f"loading...\n{log}\n")] == [cites]
    assert BOOK.known("CUDA out of memory") == []


def test_swarm_deploy_task_dry_run_prints_the_plan_or_what_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "SWARM_DB": str(tmp_path / "lab.db"), "SWARM_LAB_DIR": str(tmp_path)}
    assert run_swarm(REPO, "init", env=env).returncode == 0
    tasks = {t.spec["model"]: t.id for t in pending_deploys(tmp_path)}
    good = run_swarm(
        REPO, "deploy", "--task", tasks["bart-large-cnn"], "--dry-run", "--json", env=env
    )
    assert good.returncode == 0, good.stdout + good.stderr
    body = json.loads(good.stdout)
    assert body["resolution"]["runtime"] == "process" and body["plan"]["command"][:3] == [
        "transformers", "serve", "facebook/bart-large-cnn"]  # fmt: skip
    vllm = run_swarm(
        REPO, "deploy", "--task", tasks["Qwen2.5-32B-Instruct-AWQ"], "--dry-run", "--json", env=env
    )
    assert "unpinned" in json.loads(vllm.stdout)["resolution"]["image_note"]
    local = run_swarm(REPO, "deploy", "--task", tasks["Qwen2.5-32B-Instruct-AWQ"], "--dry-run",
                      "--runtime", "process", "--json", env=env)  # fmt: skip
    body = json.loads(local.stdout)
    assert body["resolution"]["runtime"] == "process" and body["plan"]["image"] is None
    assert body["plan"]["command"][:3] == ["vllm", "serve", "Qwen/Qwen2.5-32B-Instruct-AWQ"]
    missing = run_swarm(
        REPO, "deploy", "--task", tasks["Qwen3-14B-FP4"], "--dry-run", "--json", env=env
    )
    assert missing.returncode == 7
    assert (
        "Hugging Face repo of model 'Qwen3-14B-FP4'"
        in json.loads(missing.stdout)["error"]["message"]
    )


def test_a_recipe_book_with_a_platform_twice_or_a_bad_field_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    from swarm.errors import InvalidInput

    twice = '[[engine]]\nplatform = "vllm"\narch = "sm_89"\nimage = "a:1"\n' * 2
    (tmp_path / "twice.toml").write_text(twice)
    with pytest.raises(InvalidInput, match="appears twice"):
        load_book(tmp_path / "twice.toml")
    (tmp_path / "bad.toml").write_text(
        '[[engine]]\nplatform = "vllm"\narch = "sm_89"\ncolour = 1\n'
    )
    with pytest.raises(InvalidInput, match="colour"):
        load_book(tmp_path / "bad.toml")
    (tmp_path / "digest.toml").write_text(
        '[[engine]]\nplatform = "vllm"\narch = "sm_89"\nimage = "a:1"\ndigest = "sha256:xyz"\n'
    )
    with pytest.raises(InvalidInput, match="digest"):
        load_book(tmp_path / "digest.toml")
