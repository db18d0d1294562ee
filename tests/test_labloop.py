"""The lab loop end to end: `swarm work` deploys, benchmarks, records, reconciles and tears down.

Docker: a locally built image (busybox's `nc -ll -e` running tests/fixtures/tiny_openai.sh, an
OpenAI streaming server in shell; nothing pulled, no GPU). Process runtime: `transformers serve`
with the tiny local Llama (SWARM_TRANSFORMERS_VENV, prepared by .ci/run). Each runs in a clone of
this repository with a test recipe book, so the facts pass and the README it writes are its own.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, git

IMAGE = "swarm-test/tinyopenai:1"
GPU = "Test GPU:sm_120:24"  # declared to `swarm work`: CI has no GPU (fakes only for GPUs)
SERVE = ["/bin/busybox", "nc", "-ll", "-p", "8000", "-e", "/bin/serve.sh"]


@pytest.fixture(scope="module")
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
        tar.add(REPO / "tests/fixtures/tiny_openai.sh", arcname="bin/serve.sh")
        for applet in ("sh", "tr", "head", "sed", "usleep"):  # the script's #! and its tools
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    client.api.import_image_from_data(buf.getvalue(), repository="swarm-test/tinyopenai", tag="1")
    return client


def lab(tmp_path: Path, recipe: str) -> Path:
    """A clone of this repository (committed state) with the test recipe book and no catalog."""
    repo = tmp_path / "lab"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    (repo / "recipes/engines.toml").write_text(recipe)
    for path in (repo / "tasks").glob("*.toml"):
        path.unlink()
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "test lab: one recipe, no catalog", cwd=repo)
    return repo


def swarm(repo: Path, *args: str, db: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"SWARM_DB": str(db), "SWARM_LAB_DIR": str(db.parent), "NO_PROXY": "*"}
    return subprocess.Popen([sys.executable, "-m", "swarm.cli", *args], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def run(repo: Path, *args: str, db: Path, timeout: float = 300) -> Any:
    out, err = swarm(repo, *args, "--json", db=db).communicate(timeout=timeout)
    assert out.strip(), err
    return json.loads(out.strip().splitlines()[-1])


def queue_loop(
    repo: Path, db: Path, deploy: dict[str, Any], bench: dict[str, Any]
) -> tuple[str, str]:
    """One deploy task and the benchmark that depends on it; their ids."""
    needs = ("--arch", "sm_120", "--gpu", "Test GPU")  # as the catalog's tasks require
    added = run(repo, "add", "deploy", "deploy tiny", "--spec", json.dumps(deploy), *needs, db=db)
    bench = {**bench, "deploy_task": added["id"]}  # as the catalog links them (the README does)
    bench_task = run(repo, "add", "benchmark", "benchmark tiny", "--spec", json.dumps(bench),
                     "--depends-on", added["id"], *needs, "--exclusive", db=db)  # fmt: skip
    return str(added["id"]), str(bench_task["id"])


def reconciled(repo: Path, db: Path) -> tuple[dict[str, Any], str]:
    """Run the facts pass (`swarm work` on verify) and return the single-stream fact and README."""
    summary = run(repo, "work", "--until-idle", "--kind", "verify", db=db)
    assert [t["status"] for t in summary["ran"]] == ["done"], summary
    facts = json.loads((repo / "facts/verified_facts.json").read_text())
    fact = next(
        f
        for f in facts["facts"]
        if f["subject"] == "tiny" and f["predicate"] == "decode_tps_single_stream"
    )
    return fact, (repo / "README.md").read_text()


def payload_of(repo: Path, db: Path, task_id: str) -> dict[str, Any]:
    return dict(run(repo, "show", task_id, db=db)["results"][-1]["payload"])


DOCKER_RECIPE = f'''
schema_version = 1
[[engine]]
platform = "vllm"
arch = "sm_120"
image = "{IMAGE}"
digest_note = "a test image built locally by the test"
[[model]]
name = "tiny"
hf_repo = "test/tiny"
source = "a name the test's own servers answer to"
'''


@pytest.mark.docker
@pytest.mark.slow
def test_swarm_work_deploys_benchmarks_reconciles_and_leaves_no_container(
    engine: Any, tmp_path: Path
) -> None:
    repo, db = lab(tmp_path, DOCKER_RECIPE), tmp_path / "lab.db"
    overrides = {"command": SERVE, "gpu": False, "memlock_unlimited": False, "shm_size": "64m",
                 "ready_timeout_s": 60.0, "ipc_host": False}  # fmt: skip
    deploy_id, bench_id = queue_loop(repo, db,
        {"gpu": "Test GPU", "model": "tiny", "platform": "vllm", "deploy": overrides},
        {"gpu": "Test GPU", "model": "tiny", "platform": "vllm", "concurrency": [1, 2], "output_len": 8,
         "requests": 8, "warmup": 1})  # fmt: skip
    summary = run(repo, "work", "--until-idle", "--no-maintenance", "--kind", "deploy",
                  "--kind", "benchmark", "--gpu", GPU, db=db)  # fmt: skip
    assert [(t["kind"], t["status"]) for t in summary["ran"]] == [
        ("deploy", "done"),
        ("benchmark", "done"),
    ], summary
    label = f"swarm.deploy={deploy_id}"
    assert not engine.containers.list(all=True, filters={"label": label}), (
        "torn down after its benchmark"
    )
    deployed = run(repo, "show", deploy_id, db=db)
    assert "deploy.toml" in os.listdir(tmp_path / "jobs" / deploy_id)  # rendered for people
    payload = deployed["results"][-1]["payload"]
    assert (
        payload["endpoint"].startswith("http://127.0.0.1:")
        and payload["engine_version"] == "0.0.1-tiny"
    )
    assert payload["resolution"]["image_note"].startswith(f"unpinned: {IMAGE}")
    fact, readme = reconciled(repo, db)
    value = fact["value"]
    assert value == payload_of(repo, db, bench_id)["single_tps"] and value > 0
    rows = [line for line in readme.splitlines() if "| tiny |" in line]
    benchmarked = [r for r in rows if fact["id"] in r]  # the benchmarks table's row, by its fact
    assert benchmarked and f"{value:g}" in benchmarked[0], rows  # showing the fact's value


@pytest.mark.docker
def test_a_failed_deploy_reports_its_last_log_lines_and_cites_the_seeds_known_failure(
    engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_AbCdEfGhIjKlMnOpQr")  # the server prints it: redacted
    book = (REPO / "recipes/engines.toml").read_text()
    known = book[book.index("[[known_failure]]") : book.index("[[model]]")]  # the lab's own list
    repo, db = lab(tmp_path, DOCKER_RECIPE + known), tmp_path / "lab.db"
    crash = ["/bin/busybox", "sh", "-c", "echo 'triton OutOfResources: out of resource: shared memory, "
             "Required: 135168, Hardware limit: 101376' >&2; echo \"token $HF_TOKEN\" >&2; exit 1"]  # fmt: skip
    overrides = {"command": crash, "gpu": False, "memlock_unlimited": False, "shm_size": "64m",
                 "ready_timeout_s": 30.0, "ipc_host": False}  # fmt: skip
    deploy_id, _ = queue_loop(repo, db,
        {"gpu": "Test GPU", "model": "tiny", "platform": "vllm", "deploy": overrides},
        {"gpu": "Test GPU", "model": "tiny", "platform": "vllm"})  # fmt: skip
    summary = run(repo, "work", "--until-idle", "--no-maintenance", "--kind", "deploy",
                  "--gpu", GPU, db=db)  # fmt: skip
    assert [(t["kind"], t["status"]) for t in summary["ran"]] == [("deploy", "failed")], summary
    result = run(repo, "show", deploy_id, db=db)["results"][-1]
    assert "out of resource: shared memory" in result["payload"]["error"]
    assert "hf_AbCdEfGhIjKlMnOpQr" not in json.dumps(result)  # redacted
    assert result["payload"]["known_failure"] == "workaround.qwen3-next-nvfp4.sglang"
    findings = run(repo, "finding", "ls", "--predicate", "deploy_known_failure", db=db)
    listed = findings if isinstance(findings, list) else findings.get("findings", [])
    assert [f["value"] for f in listed] == ["workaround.qwen3-next-nvfp4.sglang"], findings
    assert not engine.containers.list(all=True, filters={"label": f"swarm.deploy={deploy_id}"})


@pytest.mark.docker
@pytest.mark.docker
def test_a_trtllm_container_reads_the_extra_llm_api_options_file_it_is_given(
    engine: Any, tmp_path: Path
) -> None:
    """The workaround reaches the server: the container starts only if the file named by the
    last argument (--extra_llm_api_options) is mounted and disables block reuse."""
    from tests.conftest import free_port
    from tools import deploy

    check = ('for a; do f=$a; done; /bin/busybox grep -q "enable_block_reuse: false" "$f" '
             "|| exit 3; exec " + " ".join(SERVE))  # fmt: skip
    cfg = deploy.DeployConfig(
        name="trt-options", model="test/tiny", platform="tensorrt-llm", image=IMAGE,
        command_prefix=("/bin/sh", "-c", check, "sh"), gpu=False, memlock_unlimited=False,
        shm_size="64m", ipc_host=False, port=free_port(), ready_timeout_s=30.0,
        llm_api_options={"kv_cache_config": {"enable_block_reuse": False}},
    )  # fmt: skip
    plan = deploy.plan(cfg, None, folder=tmp_path / "job")
    assert plan.command[-2] == "--extra_llm_api_options"
    try:
        started = deploy.up(cfg, plan)  # DeployFailed (exit 3) if the file did not arrive
        assert started.endpoint.endswith(str(cfg.port))
    finally:
        deploy.down(cfg.name)
    assert (tmp_path / "job" / deploy.LLM_API_OPTIONS_FILE).exists()


def test_sigterm_during_the_readiness_wait_leaves_no_container(engine: Any, tmp_path: Path) -> None:
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "deploy.toml").write_text(
        f'name = "tiny-sigterm"\nmodel = "tiny"\nplatform = "vllm"\nimage = "{IMAGE}"\ngpu = false\n'
        'port = 18791\nmemlock_unlimited = false\nshm_size = "64m"\nready_timeout_s = 60.0\n'
        'command = ["/bin/busybox", "sleep", "60"]\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "swarm.cli", "deploy", str(folder), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    label = "swarm.deploy=tiny-sigterm"
    deadline = time.monotonic() + 30
    while not engine.containers.list(all=True, filters={"label": label}):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and json.loads(out)["error"]["type"] == "Interrupted"
    assert not engine.containers.list(all=True, filters={"label": label})


PROCESS_RECIPE = """
schema_version = 1
[[engine]]
platform = "transformers"
arch = "sm_120"
runtime = "process"
"""


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The transformers serve venv (.ci/run prepares it) and a tiny random Llama built with it."""
    venv = os.environ.get("SWARM_TRANSFORMERS_VENV")
    if not venv or not (Path(venv) / "bin/transformers").exists():
        pytest.skip("no transformers serve venv (SWARM_TRANSFORMERS_VENV); .ci/run prepares one")
    model = tmp_path_factory.mktemp("tiny-llama")
    subprocess.run([f"{venv}/bin/python", str(REPO / "tests/fixtures/build_tiny_llama.py"), str(model)],
                   check=True, capture_output=True)  # fmt: skip
    return Path(venv), model


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


@pytest.mark.slow
def test_the_process_runtime_serves_with_transformers_serve_and_tears_it_down(
    tiny_llama: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv, model = tiny_llama
    repo, db = lab(tmp_path, PROCESS_RECIPE), tmp_path / "lab.db"
    monkeypatch.setenv("PATH", f"{venv}/bin:{os.environ['PATH']}")  # `transformers` on PATH
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    deploy_id, bench_id = queue_loop(repo, db,
        {"gpu": "Test GPU", "model": "tiny", "platform": "transformers", "hf_repo": str(model),
         "deploy": {"engine_args": ["--device", "cpu"], "ready_timeout_s": 240.0}},
        {"gpu": "Test GPU", "model": "tiny", "platform": "transformers", "concurrency": [1, 2],
         "output_len": 8, "requests": 4, "warmup": 1})  # fmt: skip
    summary = run(repo, "work", "--until-idle", "--no-maintenance", "--kind", "deploy",
                  "--kind", "benchmark", "--gpu", GPU, db=db, timeout=600)  # fmt: skip
    assert [(t["kind"], t["status"]) for t in summary["ran"]] == [
        ("deploy", "done"),
        ("benchmark", "done"),
    ], summary
    deployed = payload_of(repo, db, deploy_id)
    assert deployed["deployment"]["runtime"] == "process" and deployed["resolution"]["image_pinned"]
    assert not _alive(deployed["deployment"]["pid"]), "the server was stopped after its benchmark"
    bench = payload_of(repo, db, bench_id)
    assert bench["report"]["config"]["server_kind"] == "transformers"
    assert bench["torn_down"] == f"process {deployed['deployment']['pid']}"
    levels = bench["report"]["levels"]
    assert all(lv["valid"] and lv["token_count_source"] == {"usage": 4} for lv in levels), levels
    fact, _ = reconciled(repo, db)
    assert fact["value"] == bench["single_tps"] > 0


def fake_server_spec(port: int) -> dict[str, Any]:
    """A deploy spec whose server is this repo's fake OpenAI server, as a local process."""
    command = [sys.executable, "-m", "tools.fake_openai", "--port", str(port), "--itl-s", "0.001"]
    return {"gpu": "Test GPU", "model": "tiny", "platform": "vllm", "runtime": "process",
            "deploy": {"command": command, "port": port, "ready_timeout_s": 30.0}}  # fmt: skip


def test_the_process_runtime_runs_the_loop_and_stops_its_server(tmp_path: Path) -> None:
    from tests.conftest import free_port

    repo, db = lab(tmp_path, DOCKER_RECIPE), tmp_path / "lab.db"
    deploy_id, bench_id = queue_loop(repo, db, fake_server_spec(free_port()),
        {"gpu": "Test GPU", "model": "tiny", "platform": "vllm", "concurrency": [1, 2],
         "output_len": 8, "requests": 8, "warmup": 1})  # fmt: skip
    summary = run(repo, "work", "--until-idle", "--no-maintenance", "--kind", "deploy",
                  "--kind", "benchmark", "--gpu", GPU, db=db)  # fmt: skip
    assert [(t["kind"], t["status"]) for t in summary["ran"]] == [
        ("deploy", "done"),
        ("benchmark", "done"),
    ], summary
    pid = payload_of(repo, db, deploy_id)["deployment"]["pid"]
    assert payload_of(repo, db, bench_id)["torn_down"] == f"process {pid}" and not _alive(pid)


def test_two_workers_on_one_gpu_never_run_two_servers_at_once(tmp_path: Path) -> None:
    """`swarm work --agents 2`: the second deploy waits for the GPU the first one's server holds
    until that server's benchmark tears it down (swarm/queue/gpu_holds.py), and a worker says so."""
    from tests.conftest import free_port

    repo, db = lab(tmp_path, DOCKER_RECIPE), tmp_path / "lab.db"
    bench = {"gpu": "Test GPU", "model": "tiny", "platform": "vllm", "concurrency": [1],
             "output_len": 8, "requests": 4, "warmup": 1}  # fmt: skip
    pairs = [queue_loop(repo, db, fake_server_spec(free_port()) | {"instance": i},
                        bench | {"instance": i}) for i in (1, 2)]  # fmt: skip
    out, err = swarm(repo, "work", "--agents", "2", "--until-idle", "--no-maintenance",
                     "--kind", "deploy", "--kind", "benchmark", "--gpu", GPU, "--json",
                     db=db).communicate(timeout=300)  # fmt: skip
    summary = json.loads(out.strip().splitlines()[-1])
    assert sorted((t["kind"], t["status"]) for t in summary["ran"]) == [
        ("benchmark", "done"), ("benchmark", "done"), ("deploy", "done"), ("deploy", "done")
    ], summary  # fmt: skip

    def at(task: str, action: str) -> str:
        events = run(repo, "log", task, db=db)["events"]
        return str(next(e["at"] for e in events if e["action"] == action))

    spans = sorted((at(d, "claimed"), at(b, "reported done"), d) for d, b in pairs)
    (_, end_1, first), (start_2, _, _) = spans
    assert end_1 <= start_2, spans  # the second server started after the first was torn down
    assert at(first, "gpu released") <= start_2
    # the other worker, looking while the first server ran, said whose server it waited for
    assert f"1 task waits for the GPU held by the model server of {first}" in err, err


def test_swarm_deploy_task_starts_and_stops_a_deployment_by_hand(tmp_path: Path) -> None:
    import urllib.request

    from tests.conftest import free_port

    repo, db = lab(tmp_path, DOCKER_RECIPE), tmp_path / "lab.db"
    port = free_port()
    deploy_id, _ = queue_loop(
        repo, db, fake_server_spec(port), {"gpu": "Test GPU", "model": "tiny"}
    )
    started = run(repo, "deploy", "--task", deploy_id, db=db)
    (record,) = started["deployments"]
    try:
        assert record["endpoint"] == f"http://127.0.0.1:{port}" and _alive(record["pid"])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "fake"
    finally:
        stopped = run(repo, "deploy", "--task", deploy_id, "--down", db=db)
    assert stopped["removed"] == [f"process {record['pid']}"] and not _alive(record["pid"])
    assert run(repo, "deploy", "--task", deploy_id, "--down", db=db)["removed"] == []


def test_a_kept_server_holds_its_gpu_until_swarm_deploy_down_stops_it(tmp_path: Path) -> None:
    from tests.conftest import free_port

    repo, db = lab(tmp_path, DOCKER_RECIPE), tmp_path / "lab.db"
    deploy_id, bench_id = queue_loop(repo, db, fake_server_spec(free_port()) | {"keep": True},
        {"gpu": "Test GPU", "model": "tiny", "platform": "vllm", "concurrency": [1],
         "output_len": 8, "requests": 4, "warmup": 1})  # fmt: skip
    summary = run(repo, "work", "--until-idle", "--no-maintenance", "--kind", "deploy",
                  "--kind", "benchmark", "--gpu", GPU, db=db)  # fmt: skip
    assert [t["status"] for t in summary["ran"]] == ["done", "done"], summary
    pid = payload_of(repo, db, deploy_id)["deployment"]["pid"]
    try:
        assert _alive(pid) and payload_of(repo, db, bench_id)["torn_down"] is None
        (hold,) = run(repo, "status", db=db)["gpu_holds"]
        assert hold["task_id"] == deploy_id and "--down" in hold["until"]
        text = swarm(repo, "status", db=db).communicate(timeout=60)[0]
        assert "GPU HELD" in text and deploy_id in text
    finally:
        stopped = run(repo, "deploy", "--task", deploy_id, "--down", db=db)
    assert stopped["removed"] == [f"process {pid}"] and stopped["gpu_released"] and not _alive(pid)
    assert run(repo, "status", db=db)["gpu_holds"] == []
    actions = [e["action"] for e in run(repo, "log", deploy_id, db=db)["events"]]
    assert actions[-1] == "gpu released"


def test_a_benchmark_names_the_model_its_deployment_started_when_the_server_lists_none() -> None:
    # transformers 5.17 lists its cache, not its pinned model, on /v1/models (seen on the H200
    # run) and refuses any other name with HTTP 400: the deployment's model must come first.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tools import bench_lab

    class NoModels(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"object": "list", "data": []}' if self.path == "/v1/models" else b"{}"
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NoModels)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    deployed = {"resolution": {"config": {"model": "/models/tiny-llama"}}}
    try:
        spec = {"model": "tiny-llama", "server_kind": "transformers"}
        assert bench_lab.config_from_spec(spec, endpoint, deployed).model == "/models/tiny-llama"
        assert bench_lab.config_from_spec(spec, endpoint).model == "tiny-llama"
        named = {**spec, "served_model_name": "chosen"}
        assert bench_lab.config_from_spec(named, endpoint, deployed).model == "chosen"
    finally:
        server.shutdown()
