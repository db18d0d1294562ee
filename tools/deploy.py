"""deploy: model servers from a deployment directory, through the Docker Engine API.

A deployment directory holds `deploy.toml` (DeployConfig). From it come: the exact plan
(`--dry-run`), a compose file a person can run by hand (`--generate`), a container started with
the docker SDK and waited on until its HTTP endpoints answer (the default), and `--down`.
No shell anywhere: every command is an argv list. Secrets travel from this process's environment
to the container and are never written to a file, a plan or a log.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from swarm import SCHEMA_VERSION
from swarm.core.atomic import write_text
from swarm.core.errors import Conflict, InvalidInput, SwarmError
from swarm.core.errors import (
    DeployFailed as DeployFailed,  # raised here; callers catch deploy.DeployFailed
)
from swarm.core.models import Model, validation_message
from swarm.queue.specs import platform_name

Platform = Literal["vllm", "tensorrt-llm", "sglang", "ollama", "transformers"]
CONTAINER_PORT = {
    "vllm": 8000,
    "tensorrt-llm": 8000,
    "sglang": 30000,
    "ollama": 11434,
    "transformers": 8000,
}
LIVENESS = {"ollama": "/"}  # the rest answer GET /health once the model is loaded
LABEL = "swarm.deploy"
GIB = 1024**3


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so cleanup in `finally` runs."""


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """Within it SIGTERM and SIGHUP raise Terminated (SIGINT already raises KeyboardInterrupt),
    so a server being started or measured is removed, not orphaned: a SIGTERM during the
    readiness wait once left the container running and the next deploy refused (issue #18)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a caller there owns the signals
        return

    def unwind(signum: int, _frame: object) -> None:
        raise Terminated(f"stopped by signal {signal.Signals(signum).name}")

    old = {sig: signal.signal(sig, unwind) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class DeployConfig(Model):
    """deploy.toml: one model server. Unknown fields are refused with the field named."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="container and project name"
    )
    model: str = Field(min_length=1)
    platform: Platform
    runtime: Literal["docker", "process"] = Field(
        "docker", description="a container (Docker Engine API) or a local process (no Docker)"
    )
    image: str | None = Field(
        None,
        description="pinned by tag or digest: repo:tag or repo@sha256:…, never :latest "
        "(required by the docker runtime)",
    )
    command_prefix: tuple[str, ...] = Field(
        (), description="put before the platform's argv (an image whose entrypoint is generic)"
    )
    quant: str | None = None
    tp: int = Field(1, ge=1)
    gpus: tuple[str, ...] = Field(("0",), description="GPU indices or UUIDs to reserve")
    gpu: bool = Field(
        True, description="request GPUs from the engine (off only for CPU test images)"
    )
    port: int = Field(8000, ge=1, le=65535, description="host port")
    bind: str = Field(
        "127.0.0.1", description="host address the port binds to; loopback unless you say so"
    )
    container_port: int | None = Field(None, ge=1, le=65535)
    max_context: int | None = Field(None, ge=1)
    gpu_memory_gb: float | None = Field(
        None, gt=0, description="the GPU memory this server may take"
    )
    gpu_memory_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="the engine's own memory fraction, passed as is (for a GPU whose memory is "
        "unknown here); gpu_memory_gb wins when the GPU's memory is known",
    )
    weights_gb: float | None = Field(
        None, gt=0, description="weights size, for TensorRT-LLM's fraction of free memory"
    )
    engine_args: tuple[str, ...] = ()
    llm_api_options: dict[str, Any] = Field(
        {},
        description="TensorRT-LLM's extra LLM-API options (e.g. kv_cache_config): written as "
        "YAML beside deploy.toml and passed with --extra_llm_api_options",
    )
    command: tuple[str, ...] | None = Field(
        None, description="replace the platform's command line entirely"
    )
    env: dict[str, str] = Field({}, description="plain environment (no secrets here)")
    secret_env: tuple[str, ...] = Field(
        ("HF_TOKEN",), description="names passed from this environment, never written"
    )
    hf_cache: str = "~/.cache/huggingface"
    shm_size: str = "16g"
    ipc_host: bool = True
    memlock_unlimited: bool = Field(True, description="ulimit memlock -1 (needs CAP_SYS_RESOURCE)")
    ready_timeout_s: float = Field(900.0, gt=0)

    @field_validator("platform", mode="before")
    @classmethod
    def _platform(cls, value: object) -> object:
        if isinstance(value, str):
            return platform_name(value)  # the project's one alias table
        return value

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str | None) -> str | None:
        if image is None or "@sha256:" in image:
            return image
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            raise ValueError(
                f"{image!r} is not pinned: name a version tag or a digest, never :latest"
            )
        return image

    @field_validator("secret_env")
    @classmethod
    def _env_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name.replace("_", "").isalnum() or not name[0].isalpha() or not name.isupper():
                raise ValueError(
                    f"secret_env names environment variables (like HF_TOKEN), got {name!r}"
                )
        return names

    @model_validator(mode="after")
    def _image_for_docker(self) -> DeployConfig:
        if self.runtime == "docker" and self.image is None:
            raise ValueError("image: the docker runtime needs one (or set runtime = 'process')")
        if self.llm_api_options and self.platform != "tensorrt-llm":
            raise ValueError(
                f"llm_api_options: only tensorrt-llm reads an extra LLM-API options file, "
                f"not {self.platform}"
            )
        return self

    @property
    def cport(self) -> int:
        if self.runtime == "process":  # no port mapping: the process listens where it is reached
            return self.port
        return self.container_port or CONTAINER_PORT[self.platform]


def load_config(folder: Path) -> DeployConfig:
    path = folder / "deploy.toml"
    try:
        return DeployConfig.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise InvalidInput(f"{folder} has no deploy.toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {validation_message(exc)}") from exc


# ---------------------------------------------------------------- the plan


class MemoryBudget(Model):
    gpu_total_gb: float | None
    share_gb: float | None
    free_before_gb: float | None = Field(
        None, description="free when this tenant starts (shared tenancy)"
    )
    fraction: float | None = None
    flag: str | None = Field(None, description="the platform's own knob for it")
    note: str


class Plan(Model):
    schema_version: int = SCHEMA_VERSION
    name: str
    image: str | None
    command: tuple[str, ...]
    ports: dict[str, str]
    environment: dict[str, str] = Field(description="secret values shown as <from $NAME>")
    volumes: dict[str, str]
    gpus: tuple[str, ...]
    ipc: str | None
    shm_size: str
    ulimits: dict[str, int]
    labels: dict[str, str]
    readiness: tuple[str, ...]
    memory: MemoryBudget
    files: dict[str, str] = Field(
        {}, description="files the server reads, by host path: written before it starts"
    )


FRACTION_FLAGS = {
    "vllm": "--gpu-memory-utilization",
    "sglang": "--mem-fraction-static",
    "tensorrt-llm": "--kv_cache_free_gpu_memory_fraction",
}


def memory_budget(
    cfg: DeployConfig, gpu_total_gb: float | None, free_before_gb: float | None = None
) -> MemoryBudget:
    """Each engine's own meaning of a memory share (shared/research/deploy_notes.md, section 4).

    Raises InvalidInput for a share larger than the GPU (once 500 GB on 96 GB became a fraction
    of 5.2) and for a share on a GPU whose memory is unknown here without an explicit
    gpu_memory_fraction (dropping it silently let vLLM take its default 90%)."""
    share, total = cfg.gpu_memory_gb, gpu_total_gb
    free = free_before_gb if free_before_gb is not None else total
    _check_share(cfg, share, total)
    if share is None or total is None:
        return _engine_default(cfg, share, total)
    if cfg.platform == "vllm":
        return MemoryBudget(
            gpu_total_gb=total,
            share_gb=share,
            free_before_gb=free,
            fraction=round(share / total, 4),
            flag=FRACTION_FLAGS["vllm"],
            note="vllm: fraction of total memory",
        )
    if cfg.platform == "sglang":
        return _sglang_budget(share, total, free)
    if cfg.platform == "tensorrt-llm":
        return _tensorrt_budget(cfg, share, total, free)
    return MemoryBudget(
        gpu_total_gb=total,
        share_gb=share,
        free_before_gb=free,
        note=f"{cfg.platform} has no memory cap flag: start it last",
    )


def _check_share(cfg: DeployConfig, share: float | None, total: float | None) -> None:
    if share is not None and total is not None and share > total:
        raise InvalidInput(
            f"{cfg.name}: gpu_memory_gb = {share:g} is more than the GPU's {total:g} GB"
        )
    if share is not None and total is None and cfg.gpu_memory_fraction is None:
        raise InvalidInput(
            f"{cfg.name}: gpu_memory_gb = {share:g} needs the GPU's memory, which is unknown here "
            "(no NVML): pass --gpu-total-gb N, or set gpu_memory_fraction in deploy.toml"
        )


def _engine_default(cfg: DeployConfig, share: float | None, total: float | None) -> MemoryBudget:
    """No share, or no GPU total to take it from: an explicit fraction, else the engine's own."""
    fraction = cfg.gpu_memory_fraction
    flag = FRACTION_FLAGS.get(cfg.platform) if fraction is not None else None
    note = (
        f"explicit fraction {fraction:g} for {flag}"
        if flag
        else "no share set: the engine's default applies"
    )
    return MemoryBudget(gpu_total_gb=total, share_gb=share, fraction=fraction, flag=flag, note=note)


def _sglang_budget(share: float, total: float, free: float | None) -> MemoryBudget:
    # SGLang sizes its pool as (free at start) - total * (1 - f), so what it takes in all is
    # free - total * (1 - f). For it to take `share` beside tenants already holding
    # (total - free), f = (total - free + share) / total; share/total alone would leave a
    # second tenant a negative pool (sglang #3265).
    held = total - (free if free is not None else total)
    return MemoryBudget(
        gpu_total_gb=total,
        share_gb=share,
        free_before_gb=free,
        fraction=round(min(1.0, (held + share) / total), 4),
        flag=FRACTION_FLAGS["sglang"],
        note=f"sglang: static fraction of total (start-order dependent), counting the {held:g} GB other tenants hold",
    )


def _tensorrt_budget(
    cfg: DeployConfig, share: float, total: float, free: float | None
) -> MemoryBudget:
    weights = cfg.weights_gb or 0.0
    usable = (free or total) - weights
    if usable <= 0:
        raise InvalidInput(f"{cfg.name}: weights ({weights:g} GB) do not fit in {free:g} GB free")
    fraction = max(0.0, min(1.0, (share - weights) / usable))
    return MemoryBudget(
        gpu_total_gb=total,
        share_gb=share,
        free_before_gb=free,
        fraction=round(fraction, 4),
        flag="--kv_cache_free_gpu_memory_fraction",
        note="tensorrt-llm: fraction of memory free after the weights load",
    )


def platform_command(cfg: DeployConfig, budget: MemoryBudget) -> tuple[str, ...]:
    """The server's argv (no shell): the platform's flags for this config."""
    if cfg.command is not None:
        return cfg.command
    port, tp, ctx, frac = str(cfg.cport), str(cfg.tp), cfg.max_context, budget.fraction
    host = cfg.bind if cfg.runtime == "process" else "0.0.0.0"  # a container's port is mapped
    if cfg.platform == "vllm":  # the image's entrypoint is `vllm serve`
        argv = [cfg.model, "--host", host, "--port", port, "--tensor-parallel-size", tp]
        argv = ["vllm", "serve", *argv] if cfg.runtime == "process" else argv
        argv += ["--max-model-len", str(ctx)] if ctx else []
    elif cfg.platform == "tensorrt-llm":
        argv = ["trtllm-serve", cfg.model, "--host", host, "--port", port, "--tp_size", tp]
        argv += ["--max_seq_len", str(ctx)] if ctx else []
    elif cfg.platform == "sglang":
        argv = [
            "python3",
            "-m",
            "sglang.launch_server",
            "--model-path",
            cfg.model,
            "--host",
            host,
            "--port",
            port,
            "--tp",
            tp,
        ]
        argv += ["--context-length", str(ctx)] if ctx else []
    elif cfg.platform == "transformers":
        # the model is named so that the server loads it and /v1/models lists it alone
        argv = ["transformers", "serve", cfg.model, "--host", host, "--port", port]
    else:  # ollama: the image's own command; the model is pulled once it is up
        argv = []
    if frac is not None and budget.flag:
        argv += [budget.flag, f"{frac:g}"]
    return (*cfg.command_prefix, *argv, *cfg.engine_args)


# Where the host's Hugging Face cache is mounted, named to the engines through HF_HOME: every
# engine here reads the hub through huggingface_hub, and HF_HOME does not depend on the image's
# user (its home directory) the way the default ~/.cache/huggingface does.
CONTAINER_HF_HOME = "/hf-cache"


# TensorRT-LLM's extra LLM-API options: the file's name in the deployment folder, the folder's
# mount point in a container, and trtllm-serve's flag for it (`--config` is its newer alias;
# tensorrt_llm/commands/serve.py accepts both, the 1.x images of the recipes the long one).
LLM_API_OPTIONS_FILE = "extra-llm-api-options.yaml"
CONTAINER_CONFIG_DIR = "/swarm-config"
LLM_API_OPTIONS_FLAG = "--extra_llm_api_options"
_TRT_FRACTION_FLAGS = ("--kv_cache_free_gpu_memory_fraction", "--free_gpu_memory_fraction")


def llm_api_options(cfg: DeployConfig, argv: Sequence[str]) -> dict[str, Any]:
    """The options file's content. trtllm-serve builds kv_cache_config from the file alone when
    the file has one (update_llm_args_with_extra_dict replaces the CLI's), so the memory fraction
    the command line sets is carried into it, or the workaround would silently drop it."""
    options = copy.deepcopy(cfg.llm_api_options)
    kv = options.get("kv_cache_config")
    if isinstance(kv, dict) and "free_gpu_memory_fraction" not in kv:
        for i, arg in enumerate(argv[:-1]):
            if arg in _TRT_FRACTION_FLAGS:
                try:
                    kv["free_gpu_memory_fraction"] = float(argv[i + 1])  # the last one wins
                except ValueError as exc:
                    raise InvalidInput(
                        f"{cfg.name}: {arg} takes a fraction, not {argv[i + 1]!r}"
                    ) from exc
    return options


def _options_file(cfg: DeployConfig, argv: tuple[str, ...], folder: Path) -> tuple[
    tuple[str, ...], dict[str, str], dict[str, str]
]:  # fmt: skip
    """argv with the options flag, the file by host path, the read-only mount (docker)."""
    import yaml  # PyYAML: the format trtllm-serve reads

    if cfg.platform != "tensorrt-llm" or not cfg.llm_api_options or cfg.command is not None:
        return argv, {}, {}
    given = [a for a in cfg.engine_args if a in (LLM_API_OPTIONS_FLAG, "--config")]
    if given:  # trtllm-serve reads one file: a second flag would silently drop one of them
        raise InvalidInput(
            f"{cfg.name}: engine_args pass {given[0]} and llm_api_options asks for a file too; "
            "put those options in llm_api_options instead"
        )
    host = folder.expanduser().resolve() / LLM_API_OPTIONS_FILE
    inside = str(host) if cfg.runtime == "process" else f"{CONTAINER_CONFIG_DIR}/{host.name}"
    body = f"# Written by swarm deploy for {cfg.name} (llm_api_options in deploy.toml).\n"
    body += yaml.safe_dump(llm_api_options(cfg, argv), sort_keys=True)
    mount = {} if cfg.runtime == "process" else {str(host.parent): CONTAINER_CONFIG_DIR}
    return (*argv, LLM_API_OPTIONS_FLAG, inside), {str(host): body}, mount


def write_files(p: Plan) -> None:
    """The files a plan's server reads, each whole or absent (swarm.core.atomic)."""
    for path, body in p.files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(Path(path), body)


def plan(
    cfg: DeployConfig,
    gpu_total_gb: float | None = None,
    free_before_gb: float | None = None,
    folder: Path | None = None,
) -> Plan:
    """The exact start: argv, environment, mounts, files. `folder` is the deployment's folder
    (deploy.toml's, or the job's), where files the server reads are written."""
    budget = memory_budget(cfg, gpu_total_gb, free_before_gb)
    argv, files, mounts = _options_file(
        cfg, platform_command(cfg, budget), folder if folder is not None else Path(cfg.name)
    )
    process = cfg.runtime == "process"  # a local process reads this host's own HF cache
    env = ({} if process else {"HF_HOME": CONTAINER_HF_HOME}) | dict(cfg.env)
    env |= {name: f"<from ${name}>" for name in cfg.secret_env}
    if cfg.platform == "ollama" and cfg.max_context:
        env["OLLAMA_CONTEXT_LENGTH"] = str(cfg.max_context)
    live = LIVENESS.get(cfg.platform, "/health")
    return Plan(
        name=cfg.name,
        image=cfg.image,
        command=argv,
        ports={f"{cfg.cport}/tcp": f"{cfg.bind}:{cfg.port}"},
        environment=env,
        volumes=({} if process else {str(Path(cfg.hf_cache).expanduser()): CONTAINER_HF_HOME})
        | mounts,
        gpus=cfg.gpus if cfg.gpu else (),
        ipc="host" if cfg.ipc_host else None,
        shm_size=cfg.shm_size,
        ulimits={"stack": 67108864, **({"memlock": -1} if cfg.memlock_unlimited else {})},
        labels={LABEL: cfg.name},
        readiness=(live, "/v1/models"),
        memory=budget,
        files=files,
    )


# ---------------------------------------------------------------- compose


def compose(cfg: DeployConfig, p: Plan) -> dict[str, Any]:
    """A compose file a person can run with `docker compose up -d --wait`; secrets by reference."""
    service: dict[str, Any] = {
        "image": cfg.image,
        "ports": [f"{cfg.bind}:{cfg.port}:{cfg.cport}"],
        "environment": {
            "HF_HOME": CONTAINER_HF_HOME,
            **cfg.env,
            **{n: f"${{{n}:-}}" for n in cfg.secret_env},
        },
        "volumes": [f"${{HF_CACHE:-{cfg.hf_cache}}}:{CONTAINER_HF_HOME}"]
        + [
            f"{host}:{inside}:ro"
            for host, inside in p.volumes.items()
            if inside == CONTAINER_CONFIG_DIR
        ],
        "shm_size": cfg.shm_size,
        "ulimits": p.ulimits,
        "labels": p.labels,
        "healthcheck": {
            "test": [
                "CMD",
                "python3",
                "-c",
                f"import urllib.request; urllib.request.urlopen('http://localhost:{cfg.cport}{p.readiness[0]}')",
            ],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": f"{int(cfg.ready_timeout_s)}s",
        },
    }
    if p.command:
        service["command"] = list(p.command)
    if cfg.ipc_host:
        service["ipc"] = "host"
    if cfg.gpu:
        service["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [
                        {"driver": "nvidia", "device_ids": list(cfg.gpus), "capabilities": ["gpu"]}
                    ]
                }
            }
        }
    return {"name": f"swarm-{cfg.name}", "services": {"model": service}}


# The Compose implementation the generated files are checked against (`docker compose config`,
# tests/test_deploy.py): Compose v2 is the one Docker ships; v1 (docker-compose 1.x) is retired.
COMPOSE_CHECKED_WITH = "Docker Compose v2.40.3"


def write_compose(folder: Path, cfg: DeployConfig, p: Plan) -> Path:
    """compose.yaml beside deploy.toml (and the files it mounts); raises InvalidInput for the
    process runtime (no image)."""
    import yaml  # PyYAML: only for writing the file a person reads

    if cfg.runtime != "docker":
        raise InvalidInput(f"{cfg.name}: runtime {cfg.runtime!r} has no container to compose")
    path = folder / "compose.yaml"
    header = (
        f"# Generated by `swarm deploy --generate` from {folder.name}/deploy.toml; secrets come "
        f"from your environment.\n# Loads in `docker compose` v2 (checked with "
        f"{COMPOSE_CHECKED_WITH}): docker compose -f compose.yaml up -d --wait\n"
    )
    write_text(path, header + yaml.safe_dump(compose(cfg, p), sort_keys=False))
    write_files(p)  # what the compose file mounts (TensorRT-LLM's options file)
    return path


# ---------------------------------------------------------------- the engine


class Deployment(Model):
    """What a started server is recorded as (the deploy task's result)."""

    schema_version: int = SCHEMA_VERSION
    name: str
    runtime: Literal["docker", "process"] = "docker"
    container_id: str = Field("", description="the container's id (docker runtime)")
    pid: int | None = Field(None, description="the server's process id (process runtime)")
    image: str | None
    image_id: str
    image_digests: tuple[str, ...] = ()
    endpoint: str
    started_at: float
    ready_at: float
    ready_s: float
    plan: Plan


def _client() -> Any:
    import docker  # the SDK talks to DOCKER_HOST or the default socket

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise SwarmError(
            f"no Docker engine reachable ({exc}); start dockerd or set DOCKER_HOST"
        ) from exc
    return client


def _get(url: str, timeout: float = 3.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback only: our own server
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def _log_tail(container: Any, lines: int = 30) -> str:
    try:
        return str(container.logs(tail=lines).decode(errors="replace")).strip()
    except Exception:  # the container may already be gone
        return "(no logs)"


def _secret_names(p: Plan) -> list[str]:
    return [k for k, v in p.environment.items() if v.startswith("<from $")]


def wait_ready(
    container: Any,
    p: Plan,
    host: str,
    port: int,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll the readiness endpoints until each answers 200; fail fast if the container exits."""
    deadline = clock() + timeout_s
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    for path in p.readiness:
        while _get(base + path) != 200:
            container.reload()
            if container.status in ("exited", "dead"):
                tail = redact(_log_tail(container), _secret_names(p))
                raise DeployFailed(
                    f"{p.name} exited before {path} answered; last log lines:\n{tail}"
                )
            if clock() > deadline:
                tail = redact(_log_tail(container), _secret_names(p))
                raise DeployFailed(
                    f"{p.name}: {path} did not answer within {timeout_s:g} s; last log lines:\n{tail}"
                )
            time.sleep(0.25)


def up(cfg: DeployConfig, p: Plan) -> Deployment:
    """Start the container (GPUs as device requests) and wait until it is ready; clean up on failure."""
    import docker

    if cfg.runtime != "docker" or cfg.image is None:
        raise InvalidInput(f"{cfg.name}: runtime {cfg.runtime!r} is not started through Docker")
    client = _client()
    if client.containers.list(all=True, filters={"label": f"{LABEL}={cfg.name}"}):
        raise Conflict(f"{cfg.name} is already deployed here: `swarm deploy --down` it first")
    try:
        image = client.images.get(cfg.image)
    except docker.errors.ImageNotFound as exc:
        raise SwarmError(
            f"image {cfg.image} is not on this host: `docker pull {cfg.image}` (or build it) first"
        ) from exc
    kwargs = _container_args(cfg, p)
    write_files(p)  # e.g. TensorRT-LLM's options file, mounted read-only
    started = time.time()
    container = None
    try:
        container = client.containers.create(
            cfg.image, **{k: v for k, v in kwargs.items() if k != "detach"}
        )
        container.start()
        wait_ready(container, p, cfg.bind, cfg.port, cfg.ready_timeout_s)
    except BaseException as exc:
        if container is not None:  # a failed start leaves nothing behind
            container.remove(force=True)
        if isinstance(exc, docker.errors.APIError):
            raise DeployFailed(engine_refusal(cfg, str(exc.explanation or exc))) from exc
        raise
    ready = time.time()
    return Deployment(
        name=cfg.name,
        container_id=container.id,
        image=cfg.image,
        image_id=image.id,
        image_digests=tuple(image.attrs.get("RepoDigests") or ()),
        endpoint=f"http://{cfg.bind}:{cfg.port}",
        started_at=started,
        ready_at=ready,
        ready_s=round(ready - started, 2),
        plan=p,
    )


def _container_args(cfg: DeployConfig, p: Plan) -> dict[str, Any]:
    """The plan as docker's containers.create arguments; secrets read from the environment here."""
    import docker

    env = dict(p.environment) | {
        n: os.environ.get(n, "") for n in cfg.secret_env
    }  # values never leave memory
    kwargs: dict[str, Any] = {
        "name": f"swarm-{cfg.name}",
        "detach": True,
        "labels": p.labels,
        "environment": env,
        "ports": {f"{cfg.cport}/tcp": (cfg.bind, cfg.port)},
        "shm_size": cfg.shm_size,
        "volumes": {
            host: {"bind": ctr, "mode": "ro" if ctr == CONTAINER_CONFIG_DIR else "rw"}
            for host, ctr in p.volumes.items()
        },
        "ulimits": [docker.types.Ulimit(name=k, soft=v, hard=v) for k, v in p.ulimits.items()],
    }
    if p.command:
        kwargs["command"] = list(p.command)
    if p.ipc:
        kwargs["ipc_mode"] = p.ipc
    if cfg.gpu:
        kwargs["device_requests"] = [
            docker.types.DeviceRequest(
                driver="nvidia", device_ids=list(cfg.gpus), capabilities=[["gpu"]]
            )
        ]
    return kwargs


def down(name: str) -> list[str]:
    """Stop and remove this deployment's containers; idempotent (nothing to do is fine)."""
    client = _client()
    removed = []
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"}):
        container.remove(force=True)
        removed.append(container.name)
    return removed


def shared_tenancy(
    configs: Sequence[DeployConfig], gpu_total_gb: float, folders: Sequence[Path] = ()
) -> tuple[list[Plan], str]:
    """Plans for several servers on one GPU, started in this order; refuses an over-commit."""
    gpu_sets = {tuple(c.gpus) for c in configs}
    if len(gpu_sets) != 1:
        raise InvalidInput(f"shared tenancy means one GPU for all; these name {sorted(gpu_sets)}")
    missing = [c.name for c in configs if c.gpu_memory_gb is None]
    if missing:
        raise InvalidInput(
            f"shared tenancy needs gpu_memory_gb on every deployment; missing on {', '.join(missing)}"
        )
    total = sum(c.gpu_memory_gb or 0 for c in configs)
    if total > gpu_total_gb:
        raise InvalidInput(
            f"the shares add up to {total:g} GB, more than the GPU's {gpu_total_gb:g} GB: "
            + ", ".join(f"{c.name} {c.gpu_memory_gb:g} GB" for c in configs)
        )
    plans, used = [], 0.0
    for i, cfg in enumerate(configs):
        folder = folders[i] if i < len(folders) else None
        plans.append(plan(cfg, gpu_total_gb, gpu_total_gb - used, folder))
        used += cfg.gpu_memory_gb or 0
    order = " -> ".join(c.name for c in configs)
    return (
        plans,
        f"{total:g} of {gpu_total_gb:g} GB; start order {order}, each ready before the next",
    )


def engine_refusal(cfg: DeployConfig, explanation: str) -> str:
    """The engine's refusal, with the fix when it is one we know: runc reports a memlock it may
    not raise as "error setting rlimit type 8" (RLIMIT_MEMLOCK), which names neither the setting
    nor the missing capability."""
    text = f"{cfg.name}: the engine refused to start it: {explanation}"
    if "rlimit type 8" in explanation or (
        "memlock" in explanation and "not permitted" in explanation
    ):
        text += (
            "\nmemlock_unlimited = true (ulimit memlock -1) needs CAP_SYS_RESOURCE, which this Docker "
            "engine lacks (rootless or sandboxed dockerd). Fix: set memlock_unlimited = false in "
            "deploy.toml, or run dockerd with CAP_SYS_RESOURCE."
        )
    return redact(text, cfg.secret_env)


# Secrets a server may print whatever their variable's name: Hugging Face tokens, bearer tokens,
# and KEY=value pairs whose key says secret. Replaced before text is shown or stored.
_SECRET_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/-]{12,}=*"),
    re.compile(
        r"(?i)\b([A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|API_KEY)[A-Z0-9_]*\s*[=:]\s*)[^\s'\",]+"
    ),
)


def redact(text: str, names: Sequence[str]) -> str:
    """Remove secret values (from this environment, and any that look like tokens) from text
    that may be shown or stored."""
    for name in names:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, f"<${name}>")
    text = _SECRET_PATTERNS[0].sub("<redacted>", text)
    for pattern in _SECRET_PATTERNS[1:]:
        text = pattern.sub(lambda m: m.group(1) + "<redacted>", text)
    return text


def to_json(model: Model, secrets: Sequence[str]) -> str:
    return redact(json.dumps(model.model_dump(mode="json"), indent=2, sort_keys=True), secrets)
