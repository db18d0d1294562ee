"""Recipes: every pending deploy task of the catalog resolves to a plan or says what is missing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from swarm.core.models import Task
from swarm.db.store import open_store
from swarm.queue import queue
from swarm.queue.catalog import load_catalog
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


def test_every_docker_image_is_pinned_by_a_cited_digest_or_says_why_not() -> None:
    text = (REPO / RECIPES).read_text()
    for engine in BOOK.engine:
        if engine.runtime == "docker":
            assert engine.digest or engine.digest_note, engine  # unknown is said, never invented
        if engine.digest:  # a pinned digest is quoted beside the source that shows it
            block = text[: text.index(engine.digest)].rsplit("[[engine]]", 1)[1]
            assert "stored code id" in block and engine.image and ":v" in engine.image


def test_every_pending_deploy_resolves_to_a_plan_or_names_exactly_what_is_missing(
    tmp_path: Path,
) -> None:
    tasks = pending_deploys(tmp_path)
    assert len(tasks) == 29
    planned, unplanned = 0, {}
    for task in tasks:
        res = resolve_task(task, REPO, Inventory())
        if res.config is None:
            unplanned[task.spec["model"]] = res
            continue
        planned += 1
        plan = deploy.plan(res.config, None, folder=tmp_path / task.id)
        assert plan.command and res.config.model.count("/") == 1
        if res.runtime == "docker":
            assert res.image_pinned or "unpinned" in (res.image_note or "")
    # 14 before #18's second pass; the 7 left have no repo a public source vouches for, or no server
    assert planned == 22, sorted(unplanned)
    for model in ("Qwen3-Embedding-0.6B-FP8-Dynamic", "Qwen3-Embedding-0.6B-vllm-W8A8",
                  "Qwen3-Coder-30B-A3B-Instruct", "NVFP4-KV-Cache"):  # fmt: skip
        (why,) = unplanned.pop(model).missing
        assert f"Hugging Face repo of model {model!r}" in why and "spec.hf_repo" in why, why
    kinds = {m: (r.task_kind, r.missing[0]) for m, r in unplanned.items()}
    assert kinds["NVFP4-GEMM+Attention"][0] == "kernel"  # a kernel build, routed by name
    assert all("a model server: platform" in why for _, why in kinds.values()), kinds
    assert sorted(r.platform for r in unplanned.values()) == ["custom", "cutlass", "pytorch"]


def test_every_model_repo_names_the_public_source_that_vouches_for_it(tmp_path: Path) -> None:
    from swarm.core.errors import InvalidInput

    assert all(m.source for m in BOOK.model if m.hf_repo)
    assert all(m.unresolved and not m.hf_repo for m in BOOK.model if not m.source)
    (tmp_path / "m.toml").write_text('[[model]]\nname = "x"\nhf_repo = "org/x"\n')
    with pytest.raises(InvalidInput, match="source"):
        load_book(tmp_path / "m.toml")  # a repo nobody vouched for is refused, never guessed


def test_a_platform_that_is_not_a_server_runs_once_the_spec_names_a_server(tmp_path: Path) -> None:
    spec = {"gpu": "RTX 4090", "model": "personaplex-7b-v1", "platform": "pytorch"}
    res = resolve(BOOK, "deploy-p", spec, "sm_89")
    assert res.config is None and "a model server" in res.missing[0] and res.task_kind is None
    chosen = {**spec, "hf_repo": "org/personaplex",
              "deploy": {"platform": "vllm", "command": ["python", "-m", "server"]}}  # fmt: skip
    res = resolve(BOOK, "deploy-p", chosen, "sm_89")
    assert res.config is not None and res.config.command == ("python", "-m", "server")


def test_the_trtllm_block_reuse_workaround_is_written_mounted_and_passed(tmp_path: Path) -> None:
    import yaml

    spec = {"gpu": "RTX Pro 6000", "model": "Qwen3-Next-80B-A3B-Thinking-NVFP4",
            "platform": "trt-llm", "quant": "NVFP4",
            "deploy": {"gpu_memory_gb": 48.0}}  # fmt: skip
    res = resolve(BOOK, "deploy-q", spec, "sm_120")
    assert res.config is not None and res.config.model == "nvidia/Qwen3-Next-80B-A3B-Thinking-NVFP4"
    assert [w.cites for w in res.workarounds] == ["workaround.qwen3-next.trt-llm"]
    plan = deploy.plan(res.config, 96.0, folder=tmp_path / "job")
    host = str((tmp_path / "job" / deploy.LLM_API_OPTIONS_FILE).resolve())
    assert plan.command[-2:] == (
        "--extra_llm_api_options",
        "/swarm-config/extra-llm-api-options.yaml",
    )
    assert plan.volumes[str((tmp_path / "job").resolve())] == "/swarm-config"
    options = yaml.safe_load(plan.files[host])
    # the file's kv_cache_config replaces trtllm-serve's, so the CLI's memory fraction rides along
    assert options == {"kv_cache_config": {"enable_block_reuse": False,
                                           "free_gpu_memory_fraction": 0.5}}  # fmt: skip
    assert "--kv_cache_free_gpu_memory_fraction" in plan.command
    deploy.write_files(plan)
    assert yaml.safe_load(Path(host).read_text()) == options
    service = deploy.compose(res.config, plan)["services"]["model"]
    assert f"{(tmp_path / 'job').resolve()}:/swarm-config:ro" in service["volumes"]
    local = deploy.plan(res.config.model_copy(update={"runtime": "process", "image": None}),
                        96.0, folder=tmp_path / "job")  # fmt: skip
    assert local.command[-1] == host and not local.volumes  # a local process reads the host path
    other = resolve(BOOK, "deploy-l", {**spec, "model": "Llama-3.3-70B-Instruct-NVFP4"}, "sm_120")
    assert other.config is not None and "--extra_llm_api_options" not in deploy.plan(
        other.config, 96.0, folder=tmp_path / "l").command  # fmt: skip


def test_a_second_options_file_or_a_bad_fraction_is_refused_naming_it(tmp_path: Path) -> None:
    from swarm.core.errors import InvalidInput

    cfg = deploy.DeployConfig(name="t", model="a/b", platform="trt-llm", image="i:1",
                              llm_api_options={"kv_cache_config": {"enable_block_reuse": False}},
                              engine_args=("--config", "mine.yaml"))  # fmt: skip
    with pytest.raises(InvalidInput, match="--config"):
        deploy.plan(cfg, None, folder=tmp_path)
    bad = cfg.model_copy(update={"engine_args": ("--kv_cache_free_gpu_memory_fraction", "x")})
    with pytest.raises(InvalidInput, match="takes a fraction"):
        deploy.plan(bad, None, folder=tmp_path)


def test_llm_api_options_are_refused_for_an_engine_that_reads_none() -> None:
    spec = {"gpu": "RTX 4090", "model": "bart-large-cnn", "platform": "vllm",
            "deploy": {"llm_api_options": {"kv_cache_config": {"enable_block_reuse": False}}}}  # fmt: skip
    res = resolve(BOOK, "deploy-v", spec, "sm_89")
    assert res.config is None and "only tensorrt-llm" in res.missing[0]


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
    missing = run_swarm(REPO, "deploy", "--task", tasks["Qwen3-Embedding-0.6B-vllm-W8A8"],
                        "--dry-run", "--json", env=env)  # fmt: skip
    assert missing.returncode == 7
    message = json.loads(missing.stdout)["error"]["message"]
    assert "Hugging Face repo of model 'Qwen3-Embedding-0.6B-vllm-W8A8'" in message
    assert "spec.hf_repo" in message  # how a person supplies it
    kernel = run_swarm(REPO, "deploy", "--task", tasks["NVFP4-GEMM+Attention"], "--dry-run",
                       env=env)  # fmt: skip
    assert kernel.returncode == 7 and "`kernel` task" in kernel.stderr + kernel.stdout
    trt = run_swarm(REPO, "deploy", "--task", tasks["Qwen3-Next-80B-A3B-Thinking-NVFP4"],
                    "--dry-run", "--json", env=env)  # fmt: skip
    assert trt.returncode == 0, trt.stdout + trt.stderr
    plan = json.loads(trt.stdout)["plan"]
    assert plan["command"][-2:] == ["--extra_llm_api_options",
                                    "/swarm-config/extra-llm-api-options.yaml"]  # fmt: skip
    (body,) = plan["files"].values()
    assert "enable_block_reuse: false" in body


def test_a_recipe_book_with_a_platform_twice_or_a_bad_field_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    from swarm.core.errors import InvalidInput

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
