"""`swarm bench` (an OpenAI-compatible server measured) and `swarm kernel build`: the lab tools."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from swarm.cli import base
from swarm.cli.base import Commands, Context, UsageError
from swarm.core.kinds import ServerKind

if TYPE_CHECKING:
    from tools.benchmark import BenchConfig, BenchmarkReport


# long: one add_argument per flag of `swarm bench` (the workload, the sweep, the report), a flat list
def add_bench(cli: Commands) -> None:
    p = cli.add(
        "bench",
        cmd_bench,
        "benchmark an OpenAI-compatible streaming server (vLLM-named metrics, sweep, knee)",
    )
    p.add_argument("--endpoint", required=True, help="http://host:port[/v1/chat/completions]")
    p.add_argument("--model", help="the served model name (default: the first in /v1/models)")
    p.add_argument(
        "--server-kind",
        default="auto",
        choices=get_args(ServerKind),
        help="how output length is forced; auto asks /v1/models (default)",
    )
    p.add_argument("--concurrency", help="closed-loop levels, e.g. 1,2,4,8 (default 1)")
    p.add_argument(
        "--rate",
        type=float,
        help="open loop instead: requests/s (Poisson); a --concurrency list then caps requests "
        "in flight at its largest value",
    )
    p.add_argument(
        "--burstiness", type=float, default=1.0, help="gamma shape of arrivals (1 = Poisson)"
    )
    p.add_argument(
        "--input-len",
        type=int,
        default=128,
        help="prompt length: tokens with --tokenizer, else words (default 128)",
    )
    p.add_argument("--output-len", type=int, default=128, help="forced output tokens (default 128)")
    p.add_argument("--requests", type=int, help="per level (default max(8*P, 64))")
    p.add_argument("--duration", type=float, help="seconds per level instead of a request count")
    p.add_argument(
        "--warmup", type=int, help="warm-up requests per level (default min(P, 16), ≥ 2)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--timeout",
        type=float,
        help="per request, seconds (default 30 + 0.25 per output token); a timeout is a failure",
    )
    p.add_argument(
        "--max-error-rate",
        type=float,
        default=0.01,
        help="a level with more failed requests than this share is invalid: kept in the report, "
        "never a finding; no valid level exits 1 (default 0.01)",
    )
    p.add_argument("--slo-ttft-ms", type=float, help="goodput SLO")
    p.add_argument("--slo-tpot-ms", type=float, help="goodput SLO")
    p.add_argument("--slo-e2el-ms", type=float, help="goodput SLO")
    p.add_argument(
        "--ttft-stop-ms", type=float, help="stop the sweep once median TTFT exceeds this"
    )
    p.add_argument("--knee-gain", type=float, default=0.25, help="knee threshold (default 0.25)")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="measure the client's ceiling first and flag levels near it client_limited",
    )
    p.add_argument(
        "--lab",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what is measured, kept in the report: model, params, type, quant, platform, gpu, "
        "arch, tp, vram_gb (repeatable)",
    )
    p.add_argument(
        "--tokenizer",
        help="a local tokenizer.json (or model directory) to count output tokens when the server "
        "sends no usage (default: the chunk count, a lower bound)",
    )
    p.add_argument(
        "--per-process",
        type=int,
        default=128,
        help="closed-loop workers per client process; a level above it is sharded (default 128)",
    )
    p.add_argument(
        "--per-request",
        action="store_true",
        help="keep each request's send time, TTFT, E2EL, tokens, count source and error",
    )
    p.add_argument("--out", help="write the full JSON report here")
    p.add_argument(
        "--save-result",
        metavar="DIR",
        help="also write each level as `vllm bench serve --save-result` does (its keys and file names)",
    )
    p.add_argument("--plot", help="write the sweep plot (PNG) here")


def cmd_bench(ctx: Context) -> None:
    import asyncio

    from tools import benchmark

    a = ctx.args
    config = _bench_config(a)
    tty = sys.stderr.isatty()
    say = (lambda m: print(f"\r\033[K{m}", file=sys.stderr, flush=True)) if tty else None
    if a.calibrate:
        top = max(config.concurrency)
        if say:
            say(f"calibrating the client at c={top} against the zero-latency fake server")
        config.client_ceiling_tok_s = round(benchmark.calibrate(top, a.output_len), 1)
    report = asyncio.run(benchmark.run(config, say, _bench_bar if tty else None))
    _bench_files(a, report)
    ctx.emit(report, lambda: _bench_table(report))
    if not any(lv.valid for lv in report.levels):  # no number the lab could stand behind
        ctx.exit_code = 1


def _bench_config(a: argparse.Namespace) -> BenchConfig:
    """The flags checked and turned into a BenchConfig (asks the server its kind and model)."""
    from swarm.core.errors import InvalidInput
    from tools import benchmark
    from tools.bench_client import Target
    from tools.bench_lab import probe, server_version

    try:
        levels = [int(p) for p in a.concurrency.split(",")] if a.concurrency else [1]
    except ValueError as exc:
        raise UsageError(f"--concurrency takes a list like 1,2,4: {exc}") from exc
    if any(p < 1 for p in levels) or a.output_len < 1 or a.input_len < 1:
        raise UsageError("--concurrency, --input-len and --output-len must be positive")
    if not 0 <= a.max_error_rate <= 1 or (a.timeout is not None and a.timeout <= 0):
        raise UsageError("--max-error-rate is a share from 0 to 1 and --timeout must be positive")
    try:
        Target.from_url(a.endpoint, "")
        if a.tokenizer:
            benchmark.tokenizer_counter(a.tokenizer)  # a bad path fails now, not after the run
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    kind, served = (
        probe(a.endpoint) if a.server_kind == "auto" or not a.model else (a.server_kind, None)
    )
    if not (a.model or served):
        raise InvalidInput(f"{a.endpoint}/v1/models names no model: pass --model")
    try:
        return benchmark.BenchConfig(
            endpoint=a.endpoint, model=a.model or served, server_kind=kind if a.server_kind == "auto"
            else a.server_kind, concurrency=levels, rate=a.rate,
            burstiness=a.burstiness, input_len=a.input_len, output_len=a.output_len,
            requests=a.requests, duration_s=a.duration, warmup=a.warmup, seed=a.seed,
            timeout_s=a.timeout, max_error_rate=a.max_error_rate, knee_gain=a.knee_gain, ttft_stop_ms=a.ttft_stop_ms,
            slo=benchmark.Slo(ttft_ms=a.slo_ttft_ms, tpot_ms=a.slo_tpot_ms, e2el_ms=a.slo_e2el_ms),
            lab=base.pairs(a.lab, "--lab"), per_process=a.per_process, server_version=server_version(a.endpoint),
            tokenizer=a.tokenizer, per_request=a.per_request,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


def _bench_files(a: argparse.Namespace, report: BenchmarkReport) -> None:
    """--out, --plot and --save-result: the report, its sweep plot, vLLM's per-level files."""
    if a.out:
        from swarm.core.atomic import write_text

        write_text(Path(a.out), report.model_dump_json(indent=2) + "\n")
    if a.plot:
        from tools.bench_plot import write_sweep_png

        write_sweep_png(report, Path(a.plot))
    if a.save_result:
        from swarm.core.atomic import write_text as write_file
        from tools.bench_vllm import file_name

        for lv in report.levels:
            write_file(Path(a.save_result) / file_name(lv.vllm), json.dumps(lv.vllm, indent=2))


def _bench_bar(label: str, done: int, total: int | None) -> None:
    """The running level on one terminal line: a bar when the request count is known."""
    if total:
        filled = 30 * min(done, total) // total
        line = f"{label:>10} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"
    else:
        line = f"{label:>10} {done} requests"
    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


def _bench_table(report: Any) -> str:
    head = f"{'load':>12} {'ok':>5} {'fail':>5} {'out tok/s':>10} {'TTFT p50':>9} {'TPOT p50':>9} "
    head += f"{'ITL p99':>8} {'conc':>5}  notes"
    rows = [head]
    for lv in report.levels:
        m = lv.metrics
        notes = ", ".join(
            ([f"INVALID ({lv.invalid_reason})"] if not lv.valid else [])
            + [f"{k} x{v}" for k, v in lv.error_counts.items()]
            + ([f"{lv.length_mismatch_count} length mismatches"] if lv.length_mismatch_count else [])
            + (["client-limited"] if lv.client_limited else [])
            + ([f"tokens from {', '.join(lv.token_count_source)}"] if lv.completed and "usage" not in lv.token_count_source else [])
        )  # fmt: skip
        rows.append(
            f"{lv.load:>12} {lv.completed:>5} {lv.failed:>5} {lv.output_throughput:>10.1f} "
            f"{m.get('median_ttft_ms', 0):>9.1f} {m.get('median_tpot_ms', 0):>9.2f} "
            f"{m.get('p99_itl_ms', 0):>8.2f} {lv.realized_concurrency:>5.1f}  {notes}"
        )
    s = report.summary
    rows.append(f"single TPS {s.get('single_tps')}; batched {s.get('batched_tps')}; "
                f"knee {(s.get('knee') or {}).get('concurrency')}")  # fmt: skip
    if report.stopped_early:
        rows.append(f"stopped early: {report.stopped_early}")
    return "\n".join(rows)


def add_kernel_build(cli: Commands) -> None:
    p = cli.add(
        "build",
        cmd_kernel_build,
        "nvcc per target, ptxas resources, cached; --test checks on this GPU",
    )
    p.add_argument("name", nargs="*", help="kernels from kernels/manifest.toml (default: all)")
    p.add_argument(
        "--arch",
        action="append",
        help="target such as sm_120a (repeatable; default: the manifest's)",
    )
    p.add_argument(
        "--test",
        action="store_true",
        help="check against the numpy reference on the GPU here, if its arch was built",
    )


def cmd_kernel_build(ctx: Context) -> None:
    from swarm.present import render
    from tools.kernel_build import build_and_test

    a, repo = ctx.args, base.repo()
    report = build_and_test(
        repo / "kernels",
        ctx.settings.lab_dir / "kernel-cache",
        tuple(a.name),
        tuple(a.arch) if a.arch else None,
        a.test,
    )
    ctx.exit_code = 0 if report.ok else 1
    ctx.emit(report, lambda: render.kernel_report(report))


def register(cli: Commands) -> None:
    add_bench(cli)
    kernel = cli.group("kernel", "build and check the CUDA kernels under kernels/")
    add_kernel_build(kernel)
