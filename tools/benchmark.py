"""`swarm bench`: load an OpenAI-compatible streaming server and report vLLM-named metrics.

Definitions follow shared/research/bench_anchors.md §7 (vLLM semantics where names clash):
  TTFT  first content-bearing event - send          (never a role-only, usage-only or ping event)
  E2EL  last content-bearing event - send
  TPOT  (E2EL - TTFT) / (N_out - 1), only when N_out ≥ 2
  ITL   the gaps between content-bearing events, pooled over the level (what AIPerf calls ICL)
  N_out usage.completion_tokens from any chunk, else a local tokenizer's recount of the text,
        else the number of content chunks (a lower bound); the source is kept per request
Level throughput divides by duration = last stream end - first send. Statistics are numpy's:
population std, linear percentiles.

Load is closed-loop (P workers, each a persistent connection looping request after request) or
open-loop (Poisson, or gamma with `burstiness`, arrivals precomputed from the seed). A sweep warms
each level at its own concurrency, stops early once TTFT p50 passes `ttft_stop_ms` or the knee is
passed twice, and flags a level `client_limited` when its output throughput is over half the
client's own ceiling measured against the zero-latency fake server (`calibrate`), or when the
client's event loop was late by more than 5 ms for a sustained share of the level (one late
wake-up is noise, not a saturated client). Above `per_process` workers a level is sharded over
several client processes.

A level is `valid` only when at most `max_error_rate` of its requests failed (a timed-out request
is a failure: the per-request timeout scales with the output length). An invalid level is kept in
the report, marked with why, and never feeds the summary, the knee or a finding (issue #18: a
server dying mid-level once became the lab's 309.9 tok/s).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, Field, computed_field

from swarm.core.kinds import ServerKind
from tools.bench_client import Connection, RequestRecord, Target, request_body
from tools.bench_vllm import vllm_result

SCHEMA_VERSION = 1
SERVER_KINDS = get_args(ServerKind)[1:]  # what "auto" resolves to: every kind but auto
# A prompt is random common words: no tokenizer needed, and usage.prompt_tokens says the truth.
_WORD_TEXT = (
    "the of and to in is was for on are with as by at from that this be it or an have "
    "not which one all were when we there can more if out so what up about into than "
    "them some could time"
)
_WORDS = tuple(_WORD_TEXT.split())


@dataclass(frozen=True)
class Load:
    """One level's load: a closed-loop concurrency or an open-loop rate."""

    concurrency: int | None = None
    rate: float | None = None  # requests/s, open loop
    burstiness: float = 1.0  # gamma shape; 1.0 is Poisson
    max_concurrency: int | None = None  # open loop's cap on requests in flight

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency else f"rate={self.rate}/s"


class Slo(BaseModel):
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None


# The per-request timeout when none is given: a floor for the prefill and queueing, plus a slow
# stream's 4 tokens/s for each forced output token (issue #18: one request that never answered
# held a level for the old flat 300 s).
TIMEOUT_FLOOR_S = 30.0
TIMEOUT_PER_TOKEN_S = 0.25


class BenchConfig(BaseModel):
    endpoint: str
    model: str
    server_kind: str = "vllm"
    concurrency: list[int] = Field(default_factory=lambda: [1])
    rate: float | None = None
    burstiness: float = 1.0
    input_len: int = 128
    output_len: int = 128
    requests: int | None = None  # per level; default max(8*P, 64) closed, 64 open
    duration_s: float | None = None
    warmup: int | None = None  # default min(P, 16), at least 2
    seed: int = 0
    timeout_s: float | None = Field(
        None, description="per request; default 30 s + 0.25 s per output token"
    )
    max_error_rate: float = Field(
        0.01, ge=0, le=1, description="a level with more failed requests than this is invalid"
    )
    slo: Slo = Field(default_factory=Slo)
    knee_gain: float = 0.25
    ttft_stop_ms: float | None = None
    client_ceiling_tok_s: float | None = None
    per_request: bool = Field(False, description="keep each request's numbers in its level")
    tokenizer: str | None = Field(
        None, description="tokenizer.json (or its directory): recount output sent without usage"
    )
    server_version: str | None = None
    per_process: int = Field(
        128, ge=1, description="closed-loop workers per client process; more are sharded"
    )
    lab: dict[str, str | int | float] = Field(
        default_factory=dict,
        description="what was measured: model, params, type, quant, platform, gpu, arch, tp, vram_gb",
    )

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented stacking
    @property
    def request_timeout_s(self) -> float:
        """The per-request timeout in force, written into the report."""
        if self.timeout_s is not None:
            return self.timeout_s
        return TIMEOUT_FLOOR_S + TIMEOUT_PER_TOKEN_S * self.output_len

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented stacking
    @property
    def input_unit(self) -> str:
        """What `input_len` counts: tokens when a tokenizer sizes the prompt, else words."""
        return "tokens" if self.tokenizer else "words"

    @property
    def completions(self) -> bool:
        """The endpoint is the legacy /v1/completions (a `prompt` body), not chat."""
        path = urlsplit(self.endpoint).path.rstrip("/")
        return path.endswith("/completions") and not path.endswith("/chat/completions")


class LevelReport(BaseModel):
    load: str
    concurrency: int | None
    rate: float | None
    completed: int
    failed: int
    errors: list[str] = Field(
        default_factory=list, description="vLLM's shape: one per request in send order, '' if ok"
    )
    error_counts: dict[str, int] = Field(default_factory=dict)
    valid: bool = True
    invalid_reason: str | None = None
    token_count_source: dict[str, int]
    length_mismatch_count: int
    duration_s: float
    duration: float = Field(0.0, description="vLLM's name for duration_s")
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    request_goodput: float | None
    realized_concurrency: float
    peak_concurrency: int
    tokens_per_chunk: float
    metrics: dict[str, float]  # vLLM key names: mean_ttft_ms, p99_itl_ms, ...
    client_limited: bool = False
    client_cpu_s: float = 0.0
    client_processes: int = 1
    max_loop_lag_ms: float = 0.0  # how late this process's event loop woke at worst
    lagging_share: float = (
        0.0  # share of loop probes more than 5 ms late; sustained = client-limited
    )
    max_output_tokens_per_s: float = 0.0  # vLLM: the busiest 1-second bucket of token arrivals
    max_concurrent_requests: int = 0  # vLLM's name for peak_concurrency
    requests: list[dict[str, Any]] | None = None  # per request, with --per-request
    vllm: dict[str, Any] = Field(
        default_factory=dict, description="this level as `vllm bench serve --save-result` writes it"
    )


class Knee(BaseModel):
    concurrency: int | None
    knee_gain: float
    min_doubling_gain: float = 0.05


class BenchmarkReport(BaseModel):
    schema_version: int = SCHEMA_VERSION
    started_at: str
    ended_at: str
    target: dict[str, Any]
    client: dict[str, Any]
    config: BenchConfig
    levels: list[LevelReport]
    summary: dict[str, Any]
    stopped_early: str | None = None


def prompt(input_len: int, rng: random.Random, tokens: Tokens | None = None) -> str:
    """`input_len` random common words, or with a tokenizer exactly `input_len` tokens of them
    (encoded, cut, decoded: vLLM's random dataset does the same); usage.prompt_tokens says the
    server's own count either way."""
    if tokens is None:
        return " ".join(rng.choice(_WORDS) for _ in range(input_len))
    encode, decode = tokens
    words: list[str] = []
    ids: list[int] = []
    while len(ids) < input_len:
        words += [rng.choice(_WORDS) for _ in range(input_len - len(ids))]
        ids = encode(" ".join(words))
    return decode(ids[:input_len])


def stats(name: str, values: Sequence[float]) -> dict[str, float]:
    """vLLM's keys for one metric: mean, median, std (population), p90, p95, p99, in ms."""
    if not values:
        return {}
    arr = np.asarray(values, dtype=float)
    out = {f"mean_{name}_ms": float(arr.mean()), f"median_{name}_ms": float(np.median(arr)),
           f"std_{name}_ms": float(arr.std())}  # fmt: skip
    for p in (90, 95, 99):
        out[f"p{p}_{name}_ms"] = float(np.percentile(arr, p))
    return out


@dataclass
class RequestMetrics:
    ttft_ms: float
    e2el_ms: float
    tpot_ms: float | None
    itl_ms: list[float]
    n_out: int
    n_in: int
    source: str
    chunks: int


def request_metrics(
    record: RequestRecord, recount: Callable[[str], int] | None = None
) -> RequestMetrics:
    """One request's metrics. N_out: the server's usage, else `recount` of the streamed text (a
    local tokenizer, after the run), else the number of content chunks (a lower bound)."""
    times = record.content_times
    ttft = (times[0] - record.t_send) / 1e6
    e2el = (times[-1] - record.t_send) / 1e6
    if record.completion_tokens is not None:
        n_out, source = record.completion_tokens, "usage"
    elif recount is not None:
        n_out, source = recount("".join(record.text)), "tokenizer"
    else:
        n_out, source = len(times), "chunks"
    tpot = (e2el - ttft) / (n_out - 1) if n_out >= 2 else None
    itl = [(b - a) / 1e6 for a, b in itertools.pairwise(times)]
    n_in = record.prompt_tokens or 0
    return RequestMetrics(ttft, e2el, tpot, itl, n_out, n_in, source, len(times))


# A tokenizer's encode (text -> ids, no special tokens) and decode (ids -> text).
Tokens = tuple[Callable[[str], list[int]], Callable[[list[int]], str]]


def load_tokens(path: str) -> Tokens:
    """A local tokenizer: a tokenizer.json, or a model directory holding one; raises ValueError."""
    from pathlib import Path

    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise ValueError(f"no tokenizer at {path} (want a tokenizer.json or a directory with one)")
    tok = Tokenizer.from_file(str(file))
    return (lambda text: list(tok.encode(text, add_special_tokens=False).ids)), tok.decode


def tokenizer_counter(path: str) -> Callable[[str], int]:
    """Counts tokens with a local tokenizer. Special tokens are not added: the count is of
    generated text only."""
    encode, _ = load_tokens(path)
    return lambda text: len(encode(text))


def _error_key(record: RequestRecord) -> str:
    if record.error is None:
        return "no content" if not record.content_times else ""
    return record.error.split(":")[0]


def _max_tokens_per_s(records: Sequence[RequestRecord]) -> float:
    """vLLM's max_output_tokens_per_s: the fullest 1-second bucket of content events, counted
    from the first send (each event one token, as vLLM counts)."""
    t0 = min((r.t_send for r in records), default=0)
    buckets = Counter(
        int((t - t0) // 1_000_000_000) for r in records if r.ok for t in r.content_times
    )
    return float(max(buckets.values(), default=0))


def _peak(records: Sequence[RequestRecord]) -> int:
    edges = sorted([(r.t_send, 1) for r in records] + [(r.end, -1) for r in records])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def summarize(
    records: Sequence[RequestRecord],
    load: Load,
    output_len: int,
    slo: Slo,
    recount: Callable[[str], int] | None = None,
    max_error_rate: float = 0.01,
) -> LevelReport:
    """One level's report from its records (warm-up excluded by the caller); a level whose
    failures exceed `max_error_rate` of its requests is marked invalid with the reason."""
    good = [r for r in records if r.ok]
    errors = Counter(_error_key(r) for r in records if not r.ok)
    failed = len(records) - len(good)
    invalid = None
    if not good:
        invalid = "no request completed"
    elif failed > max_error_rate * len(records):
        invalid = (f"{failed} of {len(records)} requests failed ({failed / len(records):.1%}), "
                   f"over --max-error-rate {max_error_rate:.1%}: {dict(errors)}")  # fmt: skip
    per = [request_metrics(r, recount) for r in good]
    duration = (
        (max(r.end for r in records) - min(r.t_send for r in records)) / 1e9 if records else 0.0
    )
    out_tokens = sum(m.n_out for m in per)
    in_tokens = sum(m.n_in for m in per)
    metrics: dict[str, float] = {}
    metrics |= stats("ttft", [m.ttft_ms for m in per])
    metrics |= stats("tpot", [m.tpot_ms for m in per if m.tpot_ms is not None])
    metrics |= stats("itl", [g for m in per for g in m.itl_ms])
    metrics |= stats("e2el", [m.e2el_ms for m in per])
    rate = (lambda n: n / duration) if duration > 0 else (lambda n: 0.0)
    goodput = None
    if slo.ttft_ms or slo.tpot_ms or slo.e2el_ms:
        goodput = rate(sum(1 for m in per if _meets(m, slo)))
    return LevelReport(
        load=load.label, concurrency=load.concurrency, rate=load.rate,
        completed=len(good), failed=failed, error_counts=dict(errors), valid=invalid is None,
        invalid_reason=invalid, errors=[r.error or _error_key(r) for r in sorted(records, key=lambda r: r.t_send)],
        token_count_source=dict(Counter(m.source for m in per)),
        length_mismatch_count=sum(1 for m in per if m.n_out != output_len),
        duration_s=duration, duration=duration, total_input_tokens=in_tokens, total_output_tokens=out_tokens,
        request_throughput=rate(len(good)), output_throughput=rate(out_tokens),
        total_token_throughput=rate(out_tokens + in_tokens), request_goodput=goodput,
        realized_concurrency=rate(sum(m.e2el_ms for m in per) / 1e3), peak_concurrency=_peak(records),
        max_concurrent_requests=_peak(records), max_output_tokens_per_s=_max_tokens_per_s(records),
        tokens_per_chunk=out_tokens / max(1, sum(m.chunks for m in per)), metrics=metrics,
    )  # fmt: skip


def _meets(m: RequestMetrics, slo: Slo) -> bool:
    """vLLM's goodput rule: every SLO that is set holds; a 1-token answer has TPOT 0."""
    checks = ((slo.ttft_ms, m.ttft_ms), (slo.tpot_ms, m.tpot_ms or 0.0), (slo.e2el_ms, m.e2el_ms))
    return all(limit is None or value <= limit for limit, value in checks)


async def _one(conn: Connection, body: bytes, timeout_s: float) -> RequestRecord:
    record = RequestRecord(t_send=time.perf_counter_ns())
    try:
        await conn.stream(body, record, timeout_s)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        record.error = record.error or f"{type(exc).__name__}: {exc}"[:160]
        record.end = time.perf_counter_ns()
        await conn.close()
    return record


async def run_closed(target: Target, bodies: Iterable[bytes], concurrency: int, timeout_s: float,
                     deadline: float | None = None, records: list[RequestRecord] | None = None,
                     ) -> list[RequestRecord]:  # fmt: skip
    """P workers, each on its own keep-alive connection, take the next body until none is left.
    Records are appended to `records` as they finish (a progress display may watch its length)."""
    records = [] if records is None else records
    queue = iter(bodies)

    async def worker() -> None:
        conn = Connection(target)
        try:
            for body in queue:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                records.append(await _one(conn, body, timeout_s))
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return records


def arrivals(n: int, rate: float, burstiness: float, seed: int) -> list[float]:
    """Send offsets (s) of an open-loop run: gamma gaps with mean 1/rate (Poisson at shape 1)."""
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(burstiness, 1.0 / (rate * burstiness), n)
    return list(np.cumsum(gaps) - gaps[0])


async def run_open(target: Target, bodies: Sequence[bytes], load: Load, seed: int, timeout_s: float,
                   records: list[RequestRecord] | None = None) -> list[RequestRecord]:  # fmt: skip
    """Requests sent on the precomputed schedule, idle connections reused, new ones opened."""
    assert load.rate is not None
    records = [] if records is None else records
    idle: list[Connection] = []
    limit = asyncio.Semaphore(load.max_concurrency or len(bodies))
    start = time.monotonic()

    async def send(offset: float, body: bytes) -> None:
        await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
        async with limit:
            conn = idle.pop() if idle else Connection(target)
            records.append(await _one(conn, body, timeout_s))
            idle.append(conn)

    schedule = arrivals(len(bodies), load.rate, load.burstiness, seed)
    await asyncio.gather(*(send(t, b) for t, b in zip(schedule, bodies, strict=True)))
    for conn in idle:
        await conn.close()
    return records


@functools.lru_cache(maxsize=4)
def _cached_tokens(path: str) -> Tokens:
    return load_tokens(path)  # once per process: a shard process loads its own


def _body_stream(config: BenchConfig, salt: int) -> Iterator[bytes]:
    """Request bodies without end, seeded per level (a --duration level draws as it goes)."""
    rng = random.Random(config.seed * 1_000_003 + salt)
    tokens = _cached_tokens(config.tokenizer) if config.tokenizer else None
    while True:
        yield request_body(
            config.model,
            prompt(config.input_len, rng, tokens),
            config.output_len,
            config.server_kind,
            config.seed,
            completions=config.completions,
        )


def _bodies(config: BenchConfig, n: int, salt: int) -> list[bytes]:
    """n bodies built before the level starts, off the measured path."""
    return list(itertools.islice(_body_stream(config, salt), n))


def knee(levels: Sequence[LevelReport], single_tps: float, gain: float) -> int | None:
    """The swept P past which added concurrency stops adding throughput: the level whose next
    step gains under `gain` of a single stream per added stream (and the step after, if any,
    too), or whose next step rises < 5% though P doubled. It is this level, not the next: the
    next one only queues (issue #18: with 8 server slots a doubling sweep said 16, not 8).
    Invalid levels are left out."""
    closed = [lv for lv in levels if lv.concurrency and lv.valid]
    if single_tps <= 0:
        return None
    low = []
    for prev, cur in itertools.pairwise(closed):
        assert prev.concurrency and cur.concurrency
        g = (cur.output_throughput - prev.output_throughput) / (
            (cur.concurrency - prev.concurrency) * single_tps
        )
        doubled = cur.concurrency >= 2 * prev.concurrency
        flat = doubled and cur.output_throughput < 1.05 * prev.output_throughput
        low.append((prev.concurrency, g < gain, flat))
    for i, (p, is_low, flat) in enumerate(low):
        if flat or (is_low and (i + 1 == len(low) or low[i + 1][1])):
            return p
    return None


def summary(all_levels: Sequence[LevelReport], config: BenchConfig) -> dict[str, Any]:
    """The lab's numbers, from valid levels only; the invalid ones are listed with why."""
    levels = [lv for lv in all_levels if lv.valid]
    single = next((lv.output_throughput for lv in levels if lv.concurrency == 1), None)
    batched = {
        str(lv.concurrency): round(lv.output_throughput, 2) for lv in levels if lv.concurrency
    }
    out: dict[str, Any] = {
        "single_tps": round(single, 2) if single else None,
        "batched_tps": batched,
    }
    if single:
        out["scaling_efficiency"] = {
            str(lv.concurrency): round(lv.output_throughput / (lv.concurrency * single), 3)
            for lv in levels if lv.concurrency
        }  # fmt: skip
        out["knee"] = Knee(
            concurrency=knee(levels, single, config.knee_gain), knee_gain=config.knee_gain
        ).model_dump()
    out["single_tps_definition"] = "output_throughput at concurrency 1 (tokens/s, usage-counted)"
    out["invalid_levels"] = {lv.load: lv.invalid_reason for lv in all_levels if not lv.valid}
    out["valid_levels"] = len(levels)
    best = max(batched.values(), default=None)
    lab = config.lab
    out["readme_row"] = {  # the columns of the README's benchmarked tables
        "single_tps": out["single_tps"], "batched_tps": best, "model": lab.get("model", config.model),
        "params": lab.get("params"), "type": lab.get("type"), "quant": lab.get("quant"),
        "platform": lab.get("platform"), "tp": lab.get("tp"), "vram_gb": lab.get("vram_gb"),
    }  # fmt: skip
    return out


def client_environment() -> dict[str, Any]:
    clock = time.get_clock_info("perf_counter")
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(), "clock": {"implementation": clock.implementation,
            "resolution": clock.resolution, "monotonic": clock.monotonic}, "processes": 1}  # fmt: skip


def _cpu_s() -> float:
    """CPU of this process and of its finished children (the shards of a sharded level)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


# A shard starts this long after the level is planned, all at one instant: spawning a process and
# importing this module takes ~0.5 s, which must not stretch the level's measured duration.
SHARD_START_DELAY_S = 3.0


def _shard(target: Target, bodies: list[bytes] | None, config: BenchConfig, workers: int, salt: int,
           start_at: float) -> list[RequestRecord]:  # fmt: skip
    """One client process: its workers from `start_at` (CLOCK_MONOTONIC, shared by processes on
    one host), on its share of the bodies, or drawing its own until the deadline."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    stream: Iterable[bytes] = bodies if bodies is not None else _body_stream(config, salt)
    deadline = start_at + config.duration_s if bodies is None and config.duration_s else None
    return asyncio.run(run_closed(target, stream, workers, config.request_timeout_s, deadline))


async def run_sharded(config: BenchConfig, target: Target, concurrency: int, shards: int, index: int,
                      bodies: list[bytes] | None) -> list[RequestRecord]:  # fmt: skip
    """A closed-loop level over several processes when one event loop would be the bottleneck.
    perf_counter_ns is CLOCK_MONOTONIC on Linux, so the shards' records merge as one level."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        raise RuntimeError("sharded levels need perf_counter on CLOCK_MONOTONIC (Linux) to merge")
    workers = [concurrency // shards + (i < concurrency % shards) for i in range(shards)]
    start_at = time.monotonic() + SHARD_START_DELAY_S
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(shards, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            loop.run_in_executor(pool, _shard, target, None if bodies is None else bodies[i::shards], config,
                                 workers[i], index * 1000 + i, start_at)
            for i in range(shards)
        ]  # fmt: skip
        parts = await asyncio.gather(*futures)
    return [record for part in parts for record in part]


# Progress of a level: (its label, requests finished, requests planned or None for a timed level).
Watch = Callable[[str, int, int | None], None]


LAG_LIMIT_MS = 5.0


LAG_PERIOD_S = 0.1  # a faster probe measurably delayed the loop's other timers (TTFT +1.6 ms)
# A level is client-limited when at least this share of its loop probes woke > LAG_LIMIT_MS
# late: saturation is sustained; one late wake-up (a GC pause, a page fault) is not (issue #18).
LAG_SUSTAINED_SHARE = 0.25


@dataclass
class LoopLag:
    """How late the event loop woke from each short sleep during a level."""

    samples: list[float] = field(default_factory=list)

    @property
    def worst_ms(self) -> float:
        return max(self.samples, default=0.0)

    @property
    def lagging_share(self) -> float:
        late = sum(1 for s in self.samples if s > LAG_LIMIT_MS)
        return late / len(self.samples) if self.samples else 0.0

    @property
    def sustained(self) -> bool:
        return len(self.samples) >= 2 and self.lagging_share >= LAG_SUSTAINED_SHARE


async def _loop_lag(lag: LoopLag) -> None:
    """How late the event loop wakes from a short sleep: when the client's own loop is saturated
    its timestamps are late too, so a level that lags throughout is flagged, not trusted."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(LAG_PERIOD_S)
        lag.samples.append((time.perf_counter() - t - LAG_PERIOD_S) * 1e3)


def request_rows(
    records: Sequence[RequestRecord], recount: Callable[[str], int] | None
) -> list[dict[str, Any]]:
    """Each request's numbers, in send order, times in ms from the level's first send."""
    t0 = min((r.t_send for r in records), default=0)
    rows = []
    for r in sorted(records, key=lambda r: r.t_send):
        row: dict[str, Any] = {"t_send_ms": round((r.t_send - t0) / 1e6, 3), "error": r.error}
        if r.ok:
            m = request_metrics(r, recount)
            row |= {"ttft_ms": round(m.ttft_ms, 3), "e2el_ms": round(m.e2el_ms, 3), "n_in": m.n_in,
                    "n_out": m.n_out, "token_count_source": m.source, "chunks": m.chunks}  # fmt: skip
        rows.append(row)
    return rows


async def _watching(
    watch: Watch, label: str, records: list[RequestRecord], total: int | None
) -> None:
    """Report progress 10 times a second, off the request path (it only reads a length)."""
    while True:
        watch(label, len(records), total)
        await asyncio.sleep(0.1)


async def run_level(
    config: BenchConfig,
    target: Target,
    load: Load,
    index: int,
    watch: Watch | None = None,
    recount: Callable[[str], int] | None = None,
) -> LevelReport:
    """Warm up at the level's own load (kept out of the metrics), then measure it."""
    p = load.concurrency or load.max_concurrency or 1
    n = config.requests or (max(8 * p, 64) if load.concurrency else 64)
    if config.duration_s and load.rate:
        n = math.ceil(load.rate * config.duration_s)
    warm = config.warmup if config.warmup is not None else max(2, min(p, 16))
    if warm:
        await run_closed(target, _bodies(config, warm, -index - 1), p, config.request_timeout_s)
    timed = bool(config.duration_s and load.concurrency)  # the deadline ends the level
    bodies: Iterable[bytes] = _body_stream(config, index) if timed else _bodies(config, n, index)
    cpu0 = _cpu_s()
    shards = math.ceil((load.concurrency or 1) / config.per_process)
    records: list[RequestRecord] = []
    ticker = (
        asyncio.create_task(_watching(watch, load.label, records, None if timed else n))
        if watch
        else None
    )
    lag = LoopLag()
    lag_task = asyncio.create_task(_loop_lag(lag))
    try:
        if load.concurrency and shards > 1:  # progress shows at the end: the shards report then
            records += await run_sharded(config, target, load.concurrency, shards, index,
                                         None if timed else list(bodies))  # fmt: skip
        elif load.concurrency:
            deadline = time.monotonic() + config.duration_s if config.duration_s else None
            await run_closed(
                target, bodies, load.concurrency, config.request_timeout_s, deadline, records
            )
        else:
            await run_open(
                target, list(bodies), load, config.seed + index, config.request_timeout_s, records
            )
    finally:
        lag_task.cancel()
        if watch is not None and ticker is not None:
            ticker.cancel()
            watch(load.label, len(records), None if timed else n)
    level = summarize(records, load, config.output_len, config.slo, recount, config.max_error_rate)
    level.client_cpu_s = round(_cpu_s() - cpu0, 3)
    level.client_processes = shards if load.concurrency else 1
    level.max_loop_lag_ms = round(lag.worst_ms, 3)
    level.lagging_share = round(lag.lagging_share, 3)
    ceiling = config.client_ceiling_tok_s
    near_ceiling = bool(ceiling and level.output_throughput > 0.5 * ceiling)
    level.client_limited = near_ceiling or (shards == 1 and lag.sustained)
    if config.per_request:
        level.requests = request_rows(records, recount)
    level.vllm = vllm_result(config, level, records if config.per_request else None)
    return level


def _stop_reason(levels: Sequence[LevelReport], config: BenchConfig) -> str | None:
    last = levels[-1]
    if last.completed == 0:
        return f"{last.load}: every request failed ({last.error_counts})"
    p50 = last.metrics.get("median_ttft_ms", 0.0)
    if config.ttft_stop_ms and p50 > config.ttft_stop_ms:
        return f"{last.load}: median TTFT {p50:.0f} ms > ttft_stop_ms {config.ttft_stop_ms:.0f}"
    single = next((lv.output_throughput for lv in levels if lv.concurrency == 1 and lv.valid), 0.0)
    k = knee(levels, single, config.knee_gain)
    if k is not None and sum(1 for lv in levels if (lv.concurrency or 0) > k) >= 2:
        return f"saturated: the knee at c={k} was passed twice"
    return None


def loads(config: BenchConfig) -> list[Load]:
    if config.rate is not None:
        return [Load(rate=config.rate, burstiness=config.burstiness,
                     max_concurrency=max(config.concurrency) if config.concurrency != [1] else None)]  # fmt: skip
    return [Load(concurrency=p) for p in config.concurrency]


async def run(
    config: BenchConfig,
    progress: Callable[[str], None] | None = None,
    watch: Watch | None = None,
) -> BenchmarkReport:
    """The whole benchmark: each level in order, early stop, summary. `progress` gets a line per
    level, `watch` the requests finished within one."""
    target = Target.from_url(config.endpoint, config.model)
    recount = tokenizer_counter(config.tokenizer) if config.tokenizer else None  # loaded once
    started = datetime.now(UTC).isoformat(timespec="seconds")
    levels: list[LevelReport] = []
    stopped = None
    plan = loads(config)
    for i, load in enumerate(plan):
        if progress:
            progress(f"level {i + 1}/{len(plan)} {load.label}")
        levels.append(await run_level(config, target, load, i, watch, recount))
        if progress:
            lv = levels[-1]
            progress(
                f"{lv.load}: {lv.output_throughput:.1f} tok/s, {lv.completed} ok, {lv.failed} failed"
            )
        if (stopped := _stop_reason(levels, config)) is not None:
            break
    return BenchmarkReport(
        started_at=started, ended_at=datetime.now(UTC).isoformat(timespec="seconds"),
        target={"endpoint": config.endpoint, "served_model_name": config.model, "server_kind": config.server_kind,
                "server_version": config.server_version, "lab": config.lab},
        client=client_environment() | {"client_ceiling_tok_s": config.client_ceiling_tok_s},
        config=config, levels=levels, summary=summary(levels, config), stopped_early=stopped,
    )  # fmt: skip


def calibrate(concurrency: int, output_len: int, requests: int | None = None) -> float:
    """The client's own ceiling (output tok/s) against the zero-latency fake server, run in its
    own process so that server work does not count against the client."""
    server = subprocess.Popen([sys.executable, "-m", "tools.fake_openai", "--port", "0"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[-1])
        config = BenchConfig(endpoint=f"http://127.0.0.1:{port}", model="fake", concurrency=[concurrency],
                             output_len=output_len, input_len=16, requests=requests, warmup=2)  # fmt: skip
        report = asyncio.run(run(config))
        return report.levels[0].output_throughput
    finally:
        server.terminate()
        server.wait(timeout=10)
