"""One level of a `swarm bench` report in the shape `vllm bench serve --save-result` writes.

The keys, names and shapes are vLLM's (vllm/benchmarks/serve.py, shared/research/bench_anchors.md
§3), so a vLLM user's tooling reads ours: setup keys (date, backend, model_id, num_prompts,
request_rate, burstiness, max_concurrency, ...), results (duration, completed, failed, throughputs,
max_output_tokens_per_s, max_concurrent_requests), `{mean,median,std,p90,p95,p99}_{ttft,tpot,itl,
e2el}_ms`, and `errors` as its list of strings (one per request, '' when it succeeded). The
per-request arrays vLLM writes with --save-detailed (input_lens, output_lens, ttfts, itls,
start_times, generated_texts) come with --per-request. Keys that do not apply to this client
(spec-decode acceptance, rtfx, probe_*, ramp-up) are left out, not faked.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tools.bench_client import RequestRecord

if TYPE_CHECKING:
    from tools.benchmark import BenchConfig, LevelReport

# vLLM's `--backend` names for what we sent.
BACKEND = {True: "openai", False: "openai-chat"}


def vllm_result(
    config: BenchConfig,
    level: LevelReport,
    records: Sequence[RequestRecord] | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The level as vLLM's result JSON; `records` adds the detailed per-request arrays."""
    backend = BACKEND[config.completions]
    out: dict[str, Any] = {
        "date": (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": backend,
        "backend": backend,
        "label": backend,
        "model_id": config.model,
        "tokenizer_id": config.tokenizer or config.model,
        "num_prompts": level.completed + level.failed,
        "request_rate": level.rate if level.rate is not None else "inf",
        "burstiness": config.burstiness,
        "max_concurrency": level.concurrency,
        "duration": level.duration,
        "completed": level.completed,
        "failed": level.failed,
        "total_input_tokens": level.total_input_tokens,
        "total_output_tokens": level.total_output_tokens,
        "request_throughput": level.request_throughput,
        "request_goodput": level.request_goodput,
        "output_throughput": level.output_throughput,
        "total_token_throughput": level.total_token_throughput,
        "max_output_tokens_per_s": level.max_output_tokens_per_s,
        "max_concurrent_requests": level.max_concurrent_requests,
        **level.metrics,
        "errors": list(level.errors),
    }
    if records is not None:
        ordered = sorted(records, key=lambda r: r.t_send)
        t0 = ordered[0].t_send if ordered else 0
        out |= {
            "input_lens": [r.prompt_tokens or 0 for r in ordered],
            "output_lens": [
                r.completion_tokens or len(r.content_times) if r.ok else 0 for r in ordered
            ],
            "ttfts": [(r.content_times[0] - r.t_send) / 1e9 if r.ok else 0.0 for r in ordered],
            "itls": [
                [(b - a) / 1e9 for a, b in itertools.pairwise(r.content_times)] for r in ordered
            ],
            "start_times": [(r.t_send - t0) / 1e9 for r in ordered],
            "generated_texts": ["".join(r.text) for r in ordered],
        }
    return out


def file_name(result: dict[str, Any]) -> str:
    """vLLM's file name: {label}-{rate}qps[-concurrency{P}]-{model}-{date}.json."""
    model = str(result["model_id"]).rsplit("/", 1)[-1]
    conc = f"-concurrency{result['max_concurrency']}" if result["max_concurrency"] else ""
    return f"{result['label']}-{result['request_rate']}qps{conc}-{model}-{result['date']}.json"
