"""The `process` runtime: a model server started as a local process, for hosts without Docker.

Same contract as the docker runtime (tools/deploy.py): the plan's argv (no shell), the same
readiness wait on /health then /v1/models, the last log lines (secrets redacted) when it fails, and
a teardown that leaves nothing. The server runs in its own session, so it outlives the job that
started it (the benchmark after it tears it down) and its whole process group is stopped at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from swarm.core.errors import SwarmError
from tools.deploy import DeployConfig, Deployment, Plan, wait_ready, write_files

LOG = "server.log"


class _Handle:
    """What wait_ready asks of a container, answered for a local process."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log = proc, log
        self.status = "running"

    def reload(self) -> None:
        self.status = "running" if self.proc.poll() is None else "exited"

    def logs(self, tail: int = 30) -> bytes:
        lines = self.log.read_bytes().splitlines()[-tail:] if self.log.exists() else []
        return b"\n".join(lines)


def _environment(p: Plan) -> dict[str, str]:
    """This process's environment, the plan's plain values, and each secret from this
    environment (the plan only names it)."""
    env = dict(os.environ)
    for key, value in p.environment.items():
        if value.startswith("<from $"):
            continue  # a secret: already in os.environ if it is set at all
        env[key] = value
    return env


def up(cfg: DeployConfig, p: Plan, folder: Path) -> Deployment:
    """Start the server with its output in folder/server.log and wait until it is ready; on any
    failure or signal its process group is stopped before the error propagates."""
    folder.mkdir(parents=True, exist_ok=True)
    write_files(p)  # e.g. TensorRT-LLM's options file, which the command names by path
    log_path = folder / LOG
    started = time.time()
    log: IO[bytes]
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(list(p.command), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=_environment(p), start_new_session=True)  # fmt: skip
        except OSError as exc:
            raise SwarmError(f"{cfg.name}: cannot start {p.command[0]!r}: {exc}") from exc
    try:
        wait_ready(_Handle(proc, log_path), p, cfg.bind, cfg.port, cfg.ready_timeout_s)
    except BaseException:
        stop(proc.pid)
        raise
    ready = time.time()
    return Deployment(
        name=cfg.name, runtime="process", pid=proc.pid, image=None, image_id="",
        endpoint=f"http://{cfg.bind}:{cfg.port}", started_at=started, ready_at=ready,
        ready_s=round(ready - started, 2), plan=p,
    )  # fmt: skip


def is_server(pid: int, command: list[str]) -> bool:
    """Whether pid still runs the recorded command (its arguments, in order, whatever wrapper
    started the interpreter): a teardown must not signal a group that only reused the number."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    args = list(command[1:])
    if not args:
        return bool(argv)
    return any(argv[i : i + len(args)] == args for i in range(len(argv) - len(args) + 1))


def stop(pid: int, grace_s: float = 10.0) -> bool:
    """SIGTERM the server's process group, SIGKILL what is left after `grace_s`; False when
    nothing was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # our own child is a zombie until waited for
        os.waitpid(pid, os.WNOHANG)
