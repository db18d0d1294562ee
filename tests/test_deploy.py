"""deploy: generated configs without an engine, and real containers through a local Docker engine.

The engine tests build their image locally (busybox's httpd serving /health and /v1/models from a
`docker import`ed rootfs): nothing is pulled and no GPU is requested. `.ci/run` starts dockerd.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from swarm.core.errors import InvalidInput
from tests.conftest import REPO, finished_job, free_port, run_swarm
from tools import deploy

IMAGE = "swarm-test/tinyserver:1"


def write(folder: Path, **fields: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deploy.toml").write_text(tomli_w.dumps(fields))
    return folder


def vllm(folder: Path, **extra: Any) -> Path:
    base = {
        "name": "qwen3-8b",
        "model": "Qwen/Qwen3-8B",
        "platform": "vllm",
        "image": "vllm/vllm-openai:v0.20.1",
        "gpus": ["0"],
        "port": 8000,
        "max_context": 32768,
        "gpu_memory_gb": 48.0,
    }
    return write(folder, **(base | extra))


# ---------------------------------------------------------------- without an engine


def test_the_compose_file_reserves_gpus_binds_loopback_and_holds_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_s3cr3t")
    folder = vllm(tmp_path / "qwen")
    cfg = deploy.load_config(folder)
    path = deploy.write_compose(folder, cfg, deploy.plan(cfg, gpu_total_gb=96.0))
    import yaml

    text = path.read_text()
    doc = yaml.safe_load(text)
    service = doc["services"]["model"]
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}
    ]
    assert (
        service["ports"] == ["127.0.0.1:8000:8000"]
        and service["ipc"] == "host"
        and service["shm_size"] == "16g"
    )
    assert service["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}" and "hf_s3cr3t" not in text
    assert (
        service["volumes"][0].endswith(f":{deploy.CONTAINER_HF_HOME}") and "healthcheck" in service
    )
    assert (
        service["environment"]["HF_HOME"] == deploy.CONTAINER_HF_HOME
    )  # the engines find the cache
    assert service["command"][:2] == ["Qwen/Qwen3-8B", "--host"]
    assert service["command"][service["command"].index("--gpu-memory-utilization") + 1] == "0.5"


def test_bad_specs_are_refused_with_the_field_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="colour"):
        deploy.load_config(vllm(tmp_path / "a", colour="red"))
    with pytest.raises(InvalidInput, match="never :latest"):
        deploy.load_config(vllm(tmp_path / "b", image="vllm/vllm-openai:latest"))
    with pytest.raises(InvalidInput, match="not pinned"):
        deploy.load_config(vllm(tmp_path / "c", image="vllm/vllm-openai"))
    with pytest.raises(InvalidInput, match="secret_env"):
        deploy.load_config(vllm(tmp_path / "d", secret_env=["hf token; rm -rf /"]))
    assert deploy.load_config(
        vllm(tmp_path / "e", image="vllm/vllm-openai@sha256:" + "a" * 64)
    ).image.endswith("a" * 64)
    assert deploy.load_config(vllm(tmp_path / "f", platform="trt-llm")).platform == "tensorrt-llm"


def test_each_engine_gets_its_own_meaning_of_a_memory_share(tmp_path: Path) -> None:
    share = {"gpu_memory_gb": 40.0}
    v = deploy.plan(deploy.load_config(vllm(tmp_path / "v", **share)), 96.0)
    assert (v.memory.flag, v.memory.fraction) == ("--gpu-memory-utilization", round(40 / 96, 4))
    t = deploy.plan(
        deploy.load_config(vllm(tmp_path / "t", platform="trt-llm", weights_gb=16.0, **share)),
        96.0,
        56.0,
    )
    assert t.memory.flag == "--kv_cache_free_gpu_memory_fraction" and t.memory.fraction == round(
        (40 - 16) / (56 - 16), 4
    )
    s = deploy.plan(deploy.load_config(vllm(tmp_path / "s", platform="sglang", **share)), 96.0)
    assert "--mem-fraction-static" in s.command and "start-order" in s.memory.note
    o = deploy.plan(deploy.load_config(vllm(tmp_path / "o", platform="ollama", **share)), 96.0)
    assert o.memory.flag is None and "start it last" in o.memory.note


def test_a_spec_field_cannot_inject_a_shell_command(tmp_path: Path) -> None:
    cfg = deploy.load_config(vllm(tmp_path / "x", model="m; rm -rf / #", engine_args=["$(reboot)"]))
    p = deploy.plan(cfg, 96.0)
    assert (
        p.command[0] == "m; rm -rf / #" and p.command[-1] == "$(reboot)"
    )  # argv elements, no shell


def test_shared_tenancy_refuses_more_memory_than_the_gpu_has(tmp_path: Path) -> None:
    a = deploy.load_config(vllm(tmp_path / "a", name="a", gpu_memory_gb=60.0))
    b = deploy.load_config(vllm(tmp_path / "b", name="b", gpu_memory_gb=60.0, port=8001))
    with pytest.raises(InvalidInput, match="120 GB, more than the GPU's 96 GB"):
        deploy.shared_tenancy([a, b], 96.0)
    plans, summary = deploy.shared_tenancy([a, b.model_copy(update={"gpu_memory_gb": 30.0})], 96.0)
    assert plans[1].memory.free_before_gb == 36.0 and "start order a -> b" in summary


# ---------------------------------------------------------------- a real engine


@pytest.fixture(scope="session")
def engine() -> Any:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine reachable ({exc}); .ci/run starts one")
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (.ci/run installs busybox-static)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for name, body in (
            ("www/health", b"ok\n"),
            ("www/v1/models", b'{"object": "list", "data": [{"id": "tiny"}]}\n'),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    client.api.import_image_from_data(buf.getvalue(), repository="swarm-test/tinyserver", tag="1")
    return client


def tiny(
    folder: Path, name: str, port: int, command: list[str] | None = None, **extra: Any
) -> Path:
    serve = ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]
    return write(
        folder,
        name=name,
        model="tiny",
        platform="vllm",
        image=IMAGE,
        gpu=False,
        port=port,
        command=command or serve,
        shm_size="64m",
        ready_timeout_s=30.0,
        **({"memlock_unlimited": False} | extra),
    )


def swarm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_swarm(REPO, "deploy", *args, env={**os.environ, **(env or {})})


@pytest.mark.docker
def test_deploy_waits_until_ready_records_it_and_down_is_idempotent(
    engine: Any, tmp_path: Path
) -> None:
    port = free_port()
    folder = tiny(
        tmp_path / "tiny",
        "tiny-a",
        port,
        command=["/bin/busybox", "sh", "-c", "sleep 1; exec /bin/busybox httpd -f -p 8000 -h /www"],
        env={"MODE": "test"},
    )
    proc = swarm(str(folder), "--json", env={"HF_TOKEN": "hf_s3cr3t"})
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (result,) = json.loads(proc.stdout)["deployments"]
        assert result["ready_s"] >= 1.0 and result["endpoint"] == f"http://127.0.0.1:{port}"
        assert "hf_s3cr3t" not in proc.stdout and "hf_s3cr3t" not in proc.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "tiny"
        container = engine.containers.get(result["container_id"])
        assert (
            "HF_TOKEN=hf_s3cr3t" in container.attrs["Config"]["Env"]
        )  # the secret reached the server only
        assert container.attrs["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"
        again = swarm(str(folder), "--json")
        assert again.returncode == 6 and "already deployed" in again.stdout
    finally:
        assert swarm(str(folder), "--down").returncode == 0
    assert swarm(str(folder), "--down").stdout.strip() == "nothing was running"
    assert not engine.containers.list(all=True, filters={"label": "swarm.deploy=tiny-a"})


@pytest.mark.docker
def test_a_failed_start_reports_the_last_log_lines_and_leaves_nothing(
    engine: Any, tmp_path: Path
) -> None:
    folder = tiny(
        tmp_path / "bad",
        "tiny-bad",
        free_port(),
        command=["/bin/busybox", "sh", "-c", "echo 'CUDA out of memory while loading' >&2; exit 3"],
    )
    proc = swarm(str(folder), "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert (
        error["type"] == "DeployFailed" and "CUDA out of memory while loading" in error["message"]
    )
    assert not engine.containers.list(all=True, filters={"label": "swarm.deploy=tiny-bad"})


@pytest.mark.docker
def test_dry_run_and_generate_touch_no_engine(engine: Any, tmp_path: Path) -> None:
    folder = tiny(tmp_path / "dry", "tiny-dry", free_port())
    plan = json.loads(swarm(str(folder), "--dry-run").stdout)
    assert plan["plans"][0]["command"][:2] == ["/bin/busybox", "httpd"]
    assert json.loads(swarm(str(folder), "--generate").stdout)["written"] == [
        str(folder / "compose.yaml")
    ]
    assert not engine.containers.list(all=True, filters={"label": "swarm.deploy=tiny-dry"})


@pytest.mark.docker
def test_shared_tenancy_starts_each_server_after_the_previous_is_ready(
    engine: Any, tmp_path: Path
) -> None:
    slow = ["/bin/busybox", "sh", "-c", "sleep 1; exec /bin/busybox httpd -f -p 8000 -h /www"]
    a = tiny(tmp_path / "a", "tenant-a", free_port(), command=slow, gpu_memory_gb=40.0)
    b = tiny(tmp_path / "b", "tenant-b", free_port(), gpu_memory_gb=40.0)
    over = tiny(tmp_path / "c", "tenant-c", free_port(), gpu_memory_gb=60.0)
    refused = swarm(str(a), str(over), "--shared-tenancy", "--gpu-total-gb", "96", "--json")
    assert refused.returncode == 7 and "100 GB, more than the GPU's 96 GB" in refused.stdout
    assert not engine.containers.list(all=True, filters={"label": "swarm.deploy=tenant-a"})
    proc = swarm(str(a), str(b), "--shared-tenancy", "--gpu-total-gb", "96", "--json")
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        first, second = json.loads(proc.stdout)["deployments"]
        assert (first["name"], second["name"]) == ("tenant-a", "tenant-b")
        assert second["started_at"] >= first["ready_at"], "b must start only once a is ready"
        assert (
            first["plan"]["memory"]["free_before_gb"] == 96
            and second["plan"]["memory"]["free_before_gb"] == 56
        )
    finally:
        swarm(str(a), str(b), "--down")


@pytest.mark.docker
def test_the_mcp_deploy_tool_runs_as_a_job_and_reports_the_server(
    engine: Any, tmp_path: Path
) -> None:
    import anyio
    from mcp import Client

    from swarm.core.settings import Settings
    from swarm.mcp.server import Lab, build_server

    folder = tiny(REPO / ".pytest-deploy" / tmp_path.name, "tiny-mcp", free_port())
    lab = Lab(Settings.for_db(tmp_path / "lab.db"))

    async def main() -> None:
        async with Client(build_server(lab)) as client:
            rel = str(folder.relative_to(REPO))
            started = (await client.call_tool("deploy", {"directory": rel})).structured_content
            detail = await finished_job(client, started["job"])
            assert detail["task"]["state"] == "done", detail
            assert detail["results"][0]["payload"]["name"] == "tiny-mcp"
            outside = await client.call_tool("deploy", {"directory": "../../etc"})
            assert outside.is_error and "outside the repository" in outside.content[0].text

    try:
        anyio.run(main)
    finally:
        deploy.down("tiny-mcp")
        shutil.rmtree(REPO / ".pytest-deploy", ignore_errors=True)


# ---------------------------------------------------------------- issue #18: memory shares, secrets


def test_a_share_larger_than_the_gpu_is_refused_not_turned_into_a_fraction_over_1(
    tmp_path: Path,
) -> None:
    cfg = deploy.load_config(vllm(tmp_path / "big", gpu_memory_gb=500.0))
    with pytest.raises(InvalidInput, match="500 is more than the GPU's 96 GB"):
        deploy.plan(cfg, 96.0)


def test_a_share_on_a_gpu_of_unknown_memory_needs_an_explicit_fraction(tmp_path: Path) -> None:
    cfg = deploy.load_config(vllm(tmp_path / "a", gpu_memory_gb=40.0))
    with pytest.raises(InvalidInput, match="--gpu-total-gb N, or set gpu_memory_fraction"):
        deploy.plan(cfg, None)
    explicit = deploy.plan(cfg.model_copy(update={"gpu_memory_fraction": 0.4}), None)
    assert explicit.command[explicit.command.index("--gpu-memory-utilization") + 1] == "0.4"
    proc = swarm(
        str(vllm(tmp_path / "b", gpu_memory_gb=40.0, gpus=["GPU-none"])), "--dry-run", "--json"
    )
    assert proc.returncode == 7 and "gpu_memory_fraction" in proc.stdout


def test_sglang_counts_the_memory_other_tenants_already_hold(tmp_path: Path) -> None:
    a = deploy.load_config(vllm(tmp_path / "a", name="a", gpu_memory_gb=40.0))
    b = deploy.load_config(
        vllm(tmp_path / "b", name="b", platform="sglang", gpu_memory_gb=30.0, port=8001)
    )
    plans, _ = deploy.shared_tenancy([a, b], 96.0)
    # SGLang takes (free at start) - total * (1 - f): 56 - 96 * (1 - f) = 30 GB => f = 70/96
    assert plans[1].memory.fraction == round((40 + 30) / 96, 4)
    alone = deploy.plan(b, 96.0)
    assert alone.memory.fraction == round(30 / 96, 4)


def test_shared_tenancy_works_with_dry_run_and_generate(tmp_path: Path) -> None:
    a = vllm(tmp_path / "a", name="a", gpu_memory_gb=40.0)
    b = vllm(tmp_path / "b", name="b", gpu_memory_gb=30.0, port=8001)
    dry = swarm(str(a), str(b), "--shared-tenancy", "--dry-run", "--gpu-total-gb", "96")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    body = json.loads(dry.stdout)
    assert [p["name"] for p in body["plans"]] == ["a", "b"] and "start order a -> b" in body[
        "memory"
    ]
    gen = swarm(str(a), str(b), "--shared-tenancy", "--generate", "--gpu-total-gb", "96")
    assert gen.returncode == 0 and json.loads(gen.stdout)["written"] == [
        str(a / "compose.yaml"),
        str(b / "compose.yaml"),
    ]


def test_secrets_a_server_prints_are_redacted_from_failure_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "plain-secret-value")
    text = (
        "token plain-secret-value loaded\nusing hf_AbCdEfGhIjKlMnOpQrSt\n"
        "Authorization: Bearer sk-abcdefghijklmnop\nWANDB_API_KEY=abc123 ok"
    )
    out = deploy.redact(text, ["HF_TOKEN"])
    for secret in (
        "plain-secret-value",
        "hf_AbCdEfGhIjKlMnOpQrSt",
        "sk-abcdefghijklmnop",
        "abc123",
    ):
        assert secret not in out
    assert "<$HF_TOKEN>" in out and "WANDB_API_KEY=<redacted>" in out


@pytest.mark.docker
def test_a_failed_start_redacts_the_secrets_it_printed(engine: Any, tmp_path: Path) -> None:
    folder = tiny(
        tmp_path / "leak",
        "tiny-leak",
        free_port(),
        command=[
            "/bin/busybox",
            "sh",
            "-c",
            "echo token=$HF_TOKEN hf_ZyXwVuTsRqPoNmLkJi >&2; exit 3",
        ],
    )
    proc = swarm(str(folder), "--json", env={"HF_TOKEN": "s3cr3t-in-env"})
    assert proc.returncode == 1
    assert "s3cr3t-in-env" not in proc.stdout and "hf_ZyXwVuTsRqPoNmLkJi" not in proc.stdout
    assert not engine.containers.list(all=True, filters={"label": "swarm.deploy=tiny-leak"})


@pytest.mark.docker
def test_memlock_refused_for_lack_of_cap_sys_resource_names_the_setting_and_fix(
    engine: Any, tmp_path: Path
) -> None:
    folder = tiny(tmp_path / "mem", "tiny-memlock", free_port(), memlock_unlimited=True)
    proc = swarm(str(folder), "--json")
    if proc.returncode == 0:  # an engine with CAP_SYS_RESOURCE starts it: nothing to explain
        swarm(str(folder), "--down")
        pytest.skip("this Docker engine may raise memlock; the refusal cannot be shown here")
    message = json.loads(proc.stdout)["error"]["message"]
    assert "memlock_unlimited = false" in message and "CAP_SYS_RESOURCE" in message


def _compose_v2() -> str | None:
    """A Compose v2 binary: SWARM_COMPOSE (.ci/run extracts one), else docker-compose on PATH
    when it says v2."""
    for candidate in (os.environ.get("SWARM_COMPOSE"), shutil.which("docker-compose")):
        if candidate and Path(candidate).exists():
            out = subprocess.run([candidate, "version"], capture_output=True, text=True).stdout
            if "v2." in out:
                return candidate
    return None


def test_generated_compose_files_load_in_docker_compose_v2(tmp_path: Path) -> None:
    compose = _compose_v2()
    if compose is None:
        pytest.skip("no Docker Compose v2 binary (SWARM_COMPOSE; .ci/run extracts one)")
    a = vllm(tmp_path / "a", name="a", gpu_memory_gb=40.0, secret_env=["HF_TOKEN"])
    b = vllm(tmp_path / "b", name="b", platform="sglang", gpu_memory_gb=30.0, port=8001)
    gen = swarm(str(a), str(b), "--shared-tenancy", "--generate", "--gpu-total-gb", "96")
    assert gen.returncode == 0, gen.stdout + gen.stderr
    for folder in (a, b):
        text = (folder / "compose.yaml").read_text()
        assert deploy.COMPOSE_CHECKED_WITH in text
        done = subprocess.run([compose, "-f", str(folder / "compose.yaml"), "config", "--quiet"],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr


def test_a_trtllm_compose_file_mounts_its_options_file_and_loads_in_compose_v2(
    tmp_path: Path,
) -> None:
    folder = write(tmp_path / "t", name="t", model="nvidia/Qwen3-14B-FP4", platform="trt-llm",
                   image="nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc13",
                   llm_api_options={"kv_cache_config": {"enable_block_reuse": False}})  # fmt: skip
    gen = swarm(str(folder), "--generate", "--json")
    assert gen.returncode == 0, gen.stdout + gen.stderr
    options = folder.resolve() / deploy.LLM_API_OPTIONS_FILE
    assert "enable_block_reuse: false" in options.read_text()  # written with the compose file
    text = (folder / "compose.yaml").read_text()
    assert f"{folder.resolve()}:/swarm-config:ro" in text
    assert "/swarm-config/extra-llm-api-options.yaml" in text
    compose = _compose_v2()
    if compose is None:
        pytest.skip("no Docker Compose v2 binary (SWARM_COMPOSE; .ci/run extracts one)")
    done = subprocess.run([compose, "-f", str(folder / "compose.yaml"), "config", "--quiet"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_process_runtime_has_no_compose_file_to_generate(tmp_path: Path) -> None:
    folder = vllm(tmp_path / "p", platform="transformers", runtime="process")
    cfg = deploy.load_config(folder).model_copy(update={"image": None})
    with pytest.raises(InvalidInput, match="no container to compose"):
        deploy.write_compose(tmp_path / "p", cfg, deploy.plan(cfg, 96.0))
