from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from swarm.core.models import Capabilities, GpuInfo
from swarm.db.store import Store, open_store
from swarm.queue import agents

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
# A PostgreSQL server the tests may create schemas in (scripts/throwaway_postgres.sh starts one;
# .ci/run does, and sets SWARM_TEST_REQUIRE_POSTGRES so that a missing server fails the run).
POSTGRES = os.environ.get("SWARM_TEST_POSTGRES")
BACKENDS = ("sqlite", "postgres")


def postgres_lab() -> Iterator[str]:
    """A URL of a fresh, empty schema on the test server, dropped afterwards."""
    if not POSTGRES:
        why = "no PostgreSQL: set SWARM_TEST_POSTGRES (scripts/throwaway_postgres.sh starts one)"
        if os.environ.get("SWARM_TEST_REQUIRE_POSTGRES"):
            pytest.fail(why)
        pytest.skip(why)
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES else "?"
    yield f"{POSTGRES}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A lab database on each backend: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "lab.db")
    else:
        yield from postgres_lab()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL lab (schema) for tests that need one beside a SQLite lab."""
    yield from postgres_lab()


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = open_store(db)
    yield s
    s.close()


def gpu(
    name: str = "RTX Pro 6000",
    arch: str = "sm_120",
    gb: float = 96.0,
    uuid: str = "GPU-0",
    index: int = 0,
) -> GpuInfo:
    return GpuInfo(index=index, name=name, uuid=uuid, arch=arch, memory_total_gb=gb)


def register(
    store: Store,
    agent: str,
    *gpus: GpuInfo,
    host: str = "pro6000",
    tools: tuple[str, ...] = (),
) -> None:
    agents.register(store, agent, Capabilities(host=host, gpus=gpus, tools=tools), T0)


async def finished_job(client: Any, job: str, seconds: float = 60.0) -> dict[str, Any]:
    """Poll an MCP job's task (get_task) until it is no longer claimed; its detail."""
    import anyio

    with anyio.fail_after(seconds):
        while True:
            detail: dict[str, Any] = (
                await client.call_tool("get_task", {"task_id": job})
            ).structured_content
            if detail["task"]["state"] != "claimed":
                return detail
            await anyio.sleep(0.05)


def run_swarm(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`swarm ARGS` as its own process in cwd, importing this checkout; env replaces this
    process's environment when given."""
    environ = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "swarm.cli", *args],
        cwd=cwd,
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
    )


def swarm_json(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> Any:
    """`swarm ARGS --json` that must succeed: its parsed output."""
    proc = run_swarm(cwd, *args, "--json", env=env, stdin=stdin)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def git(*args: str, cwd: Path) -> str:
    """`git ARGS` in cwd with a test identity, which must succeed: its output, stripped."""
    identity = ("-c", "user.email=t@example.com", "-c", "user.name=t")
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def wait_for_port(proc: subprocess.Popen[Any], port: int, seconds: float = 30.0) -> None:
    """Return once a server process listens on the loopback port; fail if it exits or is late."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)


def person_env(name: str, email: str) -> dict[str, str]:
    """Environment under which git (and so the CLI's decider) names this person, whatever the
    machine's own git configuration says."""
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "user.name",
        "GIT_CONFIG_VALUE_0": name,
        "GIT_CONFIG_KEY_1": "user.email",
        "GIT_CONFIG_VALUE_1": email,
    }


def facts_lab(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repo's facts/ and tasks/ (without the generated files) in a fresh git repo;
    its database in SWARM_DB."""
    from swarm.lab import pipeline as facts

    monkeypatch.setenv("SWARM_DB", db)
    monkeypatch.delenv("SWARM_AGENT", raising=False)  # a person's shell: decisions are theirs
    for key, value in person_env("Dana", "dana@lab").items():
        monkeypatch.setenv(key, value)
    for folder in ("facts", "tasks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    for generated in (facts.LOG, facts.FACTS, facts.RUNS):
        (tmp_path / "facts" / generated).unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def free_port() -> int:
    """A loopback port free right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(db: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A `swarm serve --http` on loopback over the test's lab: (URL, bearer token, database)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm.cli", "serve", "--http", "--port", str(port)],
        env={**os.environ, "SWARM_DB": db, "SWARM_LAB_DIR": str(tmp_path), "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    wait_for_port(proc, port)
    token = (tmp_path / "http_token").read_text().strip()
    yield url, token, db
    proc.terminate()
    proc.wait(timeout=10)
    assert proc.stderr is not None
    assert "new bearer token" in proc.stderr.read().decode()
