"""swarm bench: SSE parsing per server style, metric definitions, load generation, bad targets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import finished_job, free_port
from tests.test_cli import swarm
from tools import benchmark
from tools.bench_client import RequestRecord, SSEParser, classify, request_body
from tools.fake_openai import FakeServer, Script


def _ev(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _content(
    text: str, usage: dict[str, int] | None = None, finish: str | None = None
) -> dict[str, object]:
    event: dict[str, object] = {"object": "chat.completion.chunk",
                                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}  # fmt: skip
    if usage is not None:
        event["usage"] = usage
    return event


ROLE = {
    "object": "chat.completion.chunk",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
}
DONE = b"data: [DONE]\n\n"


def _usage(n: int, prompt: int = 7) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}


# Each golden stream: the events in order, with the time (ms after send) each event's last byte
# arrives. Content events arrive at 100, 110, 125, 130 ms; the rest is framing the metrics ignore.
GOLDEN: dict[str, list[tuple[int, bytes]]] = {
    # vLLM / OpenAI: role chunk, content, a usage-only chunk with empty choices, then [DONE]
    "vllm": [(90, _ev(ROLE)), (100, _ev(_content("a"))), (110, _ev(_content("b"))), (125, _ev(_content("c"))),
             (130, _ev(_content("d", finish="length"))), (131, _ev({"choices": [], "usage": _usage(4)})), (131, DONE)],
    # SGLang: the same shape, a keep-alive comment mid-stream, an empty finish chunk, CRLF line ends
    "sglang": [(90, _ev(ROLE).replace(b"\n", b"\r\n")), (95, b": keep-alive\r\n\r\n"),
               (100, _ev(_content("a")).replace(b"\n", b"\r\n")), (110, _ev(_content("b"))),
               (125, _ev(_content("c"))), (130, _ev(_content("d"))), (131, _ev(_content("", finish="length"))),
               (132, _ev({"choices": [], "usage": _usage(4)})), (132, DONE)],
    # TensorRT-LLM: usage on every chunk; the last value wins
    "trt-llm": [(100, _ev(_content("a", _usage(1)))), (110, _ev(_content("b", _usage(2)))),
                (125, _ev(_content("c", _usage(3)))), (130, _ev(_content("d", _usage(4), "length"))), (131, DONE)],
    # transformers serve: usage on the last content chunk, and no [DONE] (the stream just ends)
    "transformers": [(90, _ev(ROLE)), (100, _ev(_content("a"))), (110, _ev(_content("b"))),
                     (125, _ev(_content("c"))), (130, _ev(_content("d", _usage(4), "length")))],
    # strict OpenAI without usage: N_out falls back to the chunk count
    "openai": [(100, _ev(_content("a"))), (110, _ev(_content("b"))), (125, _ev(_content("c"))),
               (130, _ev(_content("d"))), (131, DONE)],
}  # fmt: skip


def _split_reads(events: list[tuple[int, bytes]], size: int) -> Iterator[tuple[int, bytes]]:
    """Deliver each event in reads of `size` bytes (JSON split across reads); all of an event's
    reads but the last arrive 1 ms early, so a wrong timestamp choice would show."""
    for t, raw in events:
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
        for j, piece in enumerate(pieces):
            yield (t if j == len(pieces) - 1 else t - 1) * 1_000_000, piece


def _parse(style: str, size: int) -> RequestRecord:
    record = RequestRecord(t_send=0)
    parser = SSEParser()
    for t, piece in _split_reads(GOLDEN[style], size):
        for t_event, data in parser.feed(piece, t):
            classify(record, t_event, data)
    return record


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
@pytest.mark.parametrize("style", sorted(GOLDEN))
def test_every_server_style_gives_the_same_exact_metrics_however_the_bytes_are_split(
    style: str, size: int
) -> None:
    record = _parse(style, size)
    assert record.error is None
    assert record.saw_done is (style != "transformers")
    m = benchmark.request_metrics(record)
    assert (m.ttft_ms, m.e2el_ms) == (100.0, 130.0)
    assert m.itl_ms == [10.0, 15.0, 5.0]
    assert m.n_out == 4 and m.tpot_ms == 10.0  # (130 - 100) / (4 - 1)
    assert m.source == ("chunks" if style == "openai" else "usage")
    assert m.n_in == (0 if style == "openai" else 7)


def test_a_malformed_event_and_a_server_error_event_mark_the_request_failed() -> None:
    bad, err = RequestRecord(t_send=0), RequestRecord(t_send=0)
    classify(bad, 1, '{"choices": [{"delta": {"content": "a"')
    classify(err, 1, json.dumps({"error": {"message": "CUDA out of memory"}}))
    assert bad.error is not None and bad.error.startswith("malformed event")
    assert err.error is not None and "out of memory" in err.error
    assert not bad.ok and not err.ok


def test_level_statistics_use_vllm_key_names_population_std_and_linear_percentiles() -> None:
    out = benchmark.stats("ttft", [10.0, 20.0, 30.0, 40.0])
    assert out["mean_ttft_ms"] == 25.0 and out["median_ttft_ms"] == 25.0
    assert out["std_ttft_ms"] == pytest.approx(11.1803, abs=1e-4)  # population, ddof=0
    assert out["p90_ttft_ms"] == pytest.approx(37.0) and out["p99_ttft_ms"] == pytest.approx(39.7)


def _record(send_ms: float, times_ms: list[float], n: int | None = None) -> RequestRecord:
    ns = [int(t * 1e6) for t in times_ms]
    return RequestRecord(
        t_send=int(send_ms * 1e6),
        content_times=ns,
        end=ns[-1],
        completion_tokens=n,
        prompt_tokens=5,
    )


def test_a_level_reports_throughput_over_first_send_to_last_end_and_realized_concurrency() -> None:
    records = [
        _record(0, [100, 200, 300], 3),
        _record(0, [150, 250, 400], 3),
        _record(400, [500, 600, 1000], 4),
    ]
    failed = RequestRecord(t_send=0, end=int(50e6), error="HTTP 500: overloaded")
    level = benchmark.summarize([*records, failed], benchmark.Load(concurrency=2), output_len=3,
                                slo=benchmark.Slo(ttft_ms=120))  # fmt: skip
    assert (level.completed, level.failed, level.error_counts) == (3, 1, {"HTTP 500": 1})
    assert sorted(level.errors) == [
        "",
        "",
        "",
        "HTTP 500: overloaded",
    ]  # vLLM's shape: one a request
    assert not level.valid and "1 of 4 requests failed" in (level.invalid_reason or "")
    assert (
        level.duration_s == 1.0
        and level.total_output_tokens == 10
        and level.total_input_tokens == 15
    )
    assert level.output_throughput == 10.0 and level.request_throughput == 3.0
    assert level.realized_concurrency == pytest.approx((0.3 + 0.4 + 0.6) / 1.0)
    assert level.peak_concurrency == 3  # the failed one overlapped the first two
    assert level.length_mismatch_count == 1
    assert level.request_goodput == 2.0  # TTFT 100 and 100 meet 120 ms; 150 does not
    assert level.metrics["median_ttft_ms"] == 100.0


def test_the_knee_is_where_each_added_stream_adds_under_a_quarter_of_a_single_stream_twice() -> (
    None
):
    def lv(p: int, tps: float) -> benchmark.LevelReport:
        return benchmark.summarize([], benchmark.Load(concurrency=p), 1, benchmark.Slo()).model_copy(
            update={"output_throughput": tps, "valid": True})  # fmt: skip

    linear_then_flat = [lv(1, 100), lv(2, 200), lv(4, 390), lv(8, 500), lv(16, 600), lv(32, 640)]
    # gains per added stream: 1.0, 0.95, 0.275, then 0.125 and 0.025 (both under 0.25): 8 is the
    # last level that still added; 16 only queued (the old answer, one level late)
    assert benchmark.knee(linear_then_flat, 100, 0.25) == 8
    assert benchmark.knee([lv(1, 100), lv(2, 200), lv(4, 400)], 100, 0.25) is None
    assert benchmark.knee([lv(1, 100), lv(2, 102)], 100, 0.25) == 1  # < 5% more when P doubled
    sparse = [lv(1, 100), lv(4, 400), lv(16, 800), lv(64, 800)]  # the 1,4,16,64 sweep
    assert benchmark.knee(sparse, 100, 0.25) == 16


def test_open_loop_arrivals_are_seeded_and_average_the_requested_rate() -> None:
    a = benchmark.arrivals(20_000, rate=50.0, burstiness=1.0, seed=3)
    assert a == benchmark.arrivals(20_000, rate=50.0, burstiness=1.0, seed=3)
    assert a[0] == 0.0 and a[-1] / (len(a) - 1) == pytest.approx(1 / 50, rel=0.03)
    bursty = benchmark.arrivals(20_000, rate=50.0, burstiness=0.25, seed=3)
    assert bursty[-1] / (len(bursty) - 1) == pytest.approx(1 / 50, rel=0.06)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (
            "vllm",
            {
                "max_tokens": 32,
                "min_tokens": 32,
                "ignore_eos": True,
                "stream_options": {"include_usage": True},
            },
        ),
        ("trt-llm", {"max_tokens": 32, "min_tokens": 32, "ignore_eos": True}),
        (
            "transformers",
            {"max_completion_tokens": 32, "generation_config": '{"min_new_tokens": 32}'},
        ),
        ("openai", {"max_tokens": 32}),
    ],
)
def test_the_output_length_is_forced_the_way_each_server_kind_accepts(
    kind: str, fields: dict[str, object]
) -> None:
    body = json.loads(request_body("m", "hi", 32, kind, seed=1))
    assert body["stream"] is True and body["temperature"] == 0
    assert {k: body[k] for k in fields} == fields
    if kind == "openai":
        assert "stream_options" not in body and "ignore_eos" not in body


def _run(script: Script, **config: object) -> benchmark.BenchmarkReport:
    return _run_against(FakeServer(script), **config)


def _run_against(
    server: FakeServer, endpoint_path: str = "", **config: object
) -> benchmark.BenchmarkReport:
    async def go() -> benchmark.BenchmarkReport:
        port = await server.start()
        try:
            url = f"http://127.0.0.1:{port}{endpoint_path}"
            cfg = benchmark.BenchConfig(endpoint=url, model="fake", **config)  # type: ignore[arg-type]
            return await benchmark.run(cfg)
        finally:
            await server.stop()

    return asyncio.run(go())


def test_against_the_scripted_server_ttft_and_tpot_match_the_script_not_a_neighbouring_event() -> (
    None
):
    # The exact definitions are pinned by the golden streams above; this end-to-end check only
    # tells the right event from its neighbours (role chunk at 0 ms, second token at 70 ms), with
    # room for a loaded CI machine's scheduling delay, which only ever adds time.
    report = _run(
        Script(style="vllm", ttft_s=0.050, itl_s=0.020), output_len=8, requests=6, warmup=1
    )
    m = report.levels[0].metrics
    assert 50.0 <= m["median_ttft_ms"] < 60.0, m
    assert 19.0 <= m["median_tpot_ms"] < 25.0, m
    assert 19.0 <= m["median_itl_ms"] < 25.0, m


@pytest.mark.parametrize("style", ["vllm", "sglang", "trt-llm", "transformers", "openai"])
def test_token_totals_are_exact_at_every_concurrency_and_counted_from_usage_when_sent(
    style: str,
) -> None:
    report = _run(
        Script(style=style), server_kind=style, concurrency=[1, 4], output_len=16, requests=20
    )
    for level in report.levels:
        assert (level.completed, level.failed, level.total_output_tokens) == (20, 0, 320)
        assert level.token_count_source == {"chunks" if style == "openai" else "usage": 20}
        assert level.length_mismatch_count == 0
    assert set(report.summary["batched_tps"]) == {"1", "4"} and report.summary["single_tps"] > 0


def test_open_loop_sends_every_request_and_reuses_connections() -> None:
    server = FakeServer(Script(itl_s=0.001))
    report = _run_against(server, rate=200.0, output_len=4, requests=30, warmup=0)
    (level,) = report.levels
    assert level.rate == 200.0 and level.completed == 30 and level.total_output_tokens == 120
    # idle connections were taken again (how many overlap depends on the machine's load)
    assert server.requests == 30 and server.connections < 30


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (Script(status=503), "HTTP 503"),
        (Script(truncate_after=3, itl_s=0.001), "ConnectionError"),
    ],
)
def test_a_failing_server_is_counted_per_level_never_a_crash(script: Script, error: str) -> None:
    report = _run(script, concurrency=[1, 2], output_len=8, requests=5, warmup=0)
    level = report.levels[0]
    assert level.completed == 0 and level.error_counts == {error: 5} and not level.valid
    assert report.stopped_early is not None and len(report.levels) == 1


def test_a_keep_alive_connection_the_server_dropped_is_reopened_not_counted_as_a_failure() -> None:
    report = _run(Script(close_idle=True), concurrency=[2], output_len=4, requests=10, warmup=0)
    assert (report.levels[0].completed, report.levels[0].failed) == (10, 0)


def test_a_duration_level_runs_until_its_deadline_with_requests_drawn_as_it_goes() -> None:
    report = _run(Script(itl_s=0.001), concurrency=[2], output_len=4, duration_s=0.3, warmup=0)
    level = report.levels[0]
    # No request starts after the deadline; the last ones end around it, and the first send comes
    # a little after the deadline was set, so the measured span is 0.3 s less that start-up.
    assert level.failed == 0 and level.completed > 10 and 0.29 <= level.duration_s < 1.0


@pytest.mark.parametrize("timed", [False, True])
def test_a_level_above_the_per_process_limit_runs_in_several_processes_and_merges(
    fake_server: int, timed: bool
) -> None:
    config = benchmark.BenchConfig(endpoint=f"http://127.0.0.1:{fake_server}", model="fake", concurrency=[5],
                                   output_len=4, requests=None if timed else 30, duration_s=0.5 if timed else None,
                                   warmup=0, per_process=2)  # fmt: skip
    (level,) = asyncio.run(benchmark.run(config)).levels
    assert level.client_processes == 3 and level.failed == 0 and level.peak_concurrency == 5
    assert level.total_output_tokens == 4 * level.completed
    if timed:
        assert level.completed > 5 and 0.49 <= level.duration_s < 0.7  # the shards started together
    else:
        assert level.completed == 30 and level.duration_s < 2.0


def test_without_usage_a_local_tokenizer_recounts_the_streamed_text(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [" ".join(f"t{i}" for i in range(8))], trainers.WordLevelTrainer(special_tokens=["<unk>"])
    )
    tok.save(str(tmp_path / "tokenizer.json"))
    # two tokens per chunk ("t0 t1 "), so the chunk count would say half
    report = _run(Script(style="openai", tokens_per_chunk=2), server_kind="openai", output_len=8, requests=4,
                  warmup=0, tokenizer=str(tmp_path))  # fmt: skip
    level = report.levels[0]
    assert level.token_count_source == {"tokenizer": 4} and level.total_output_tokens == 32
    assert level.length_mismatch_count == 0 and level.tokens_per_chunk == 2.0
    chunks = _run(
        Script(style="openai", tokens_per_chunk=2),
        server_kind="openai",
        output_len=8,
        requests=4,
        warmup=0,
    )
    assert (
        chunks.levels[0].token_count_source == {"chunks": 4}
        and chunks.levels[0].total_output_tokens == 16
    )


def test_a_missing_tokenizer_is_refused_before_any_request(tmp_path: Path) -> None:
    proc = swarm(tmp_path, "bench", "--endpoint", "http://127.0.0.1:9", "--model", "m", "--server-kind", "vllm",
                 "--tokenizer", str(tmp_path / "nope"))  # fmt: skip
    assert proc.returncode == 7 and "no tokenizer at" in proc.stderr


def test_progress_is_watched_per_level_up_to_the_planned_count() -> None:
    seen: list[tuple[str, int, int | None]] = []

    async def go() -> None:
        server = FakeServer(Script(itl_s=0.002))
        port = await server.start()
        config = benchmark.BenchConfig(endpoint=f"http://127.0.0.1:{port}", model="fake", concurrency=[1, 2],
                                       output_len=8, requests=6, warmup=0)  # fmt: skip
        await benchmark.run(config, watch=lambda *tick: seen.append(tick))
        await server.stop()

    asyncio.run(go())
    assert seen[-1] == ("c=2", 6, 6) and ("c=1", 6, 6) in seen
    assert [n for label, n, _ in seen if label == "c=1"] == sorted(
        n for label, n, _ in seen if label == "c=1"
    )


def test_per_request_rows_keep_each_requests_numbers_and_errors() -> None:
    report = _run(Script(cap_tokens=3), output_len=4, requests=5, warmup=0, per_request=True)
    rows = report.levels[0].requests
    assert rows is not None and len(rows) == 5 and rows[0]["t_send_ms"] == 0.0
    assert all(
        r["n_out"] == 3 and r["token_count_source"] == "usage" and r["error"] is None for r in rows
    )
    assert [r["t_send_ms"] for r in rows] == sorted(r["t_send_ms"] for r in rows)
    assert _run(Script(), output_len=4, requests=2, warmup=0).levels[0].requests is None


def test_a_blocked_event_loop_shows_as_loop_lag() -> None:
    import time

    async def go() -> benchmark.LoopLag:
        lag = benchmark.LoopLag()
        monitor = asyncio.create_task(benchmark._loop_lag(lag))
        await asyncio.sleep(0.02)
        time.sleep(0.15)  # the client's own work holding the loop
        await asyncio.sleep(0.02)
        monitor.cancel()
        return lag

    assert asyncio.run(go()).worst_ms >= 50.0


def test_one_late_wake_up_is_not_client_limited_but_sustained_lag_is() -> None:
    once = benchmark.LoopLag([0.1, 0.2, 40.0, 0.1, 0.3, 0.2, 0.1, 0.2, 0.1, 0.2])
    assert once.worst_ms == 40.0 and not once.sustained  # the old rule flagged this level
    assert benchmark.LoopLag([6.0, 0.2, 7.5, 9.0, 0.1, 6.2]).sustained


def test_a_server_that_ignores_max_tokens_shows_as_length_mismatches() -> None:
    report = _run(Script(cap_tokens=5), output_len=8, requests=4, warmup=0)
    level = report.levels[0]
    assert (
        level.completed == 4
        and level.length_mismatch_count == 4
        and level.total_output_tokens == 20
    )


def test_a_sweep_stops_early_once_median_ttft_passes_the_limit() -> None:
    report = _run(
        Script(ttft_s=0.02),
        concurrency=[1, 2, 4],
        output_len=2,
        requests=3,
        warmup=0,
        ttft_stop_ms=5,
    )
    assert len(report.levels) == 1 and "median TTFT" in (report.stopped_early or "")


@pytest.fixture
def fake_server() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", "tools.fake_openai", "--itl-s", "0.0005"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    yield int(proc.stdout.readline().split()[-1])
    proc.terminate()
    proc.wait(timeout=10)


def test_swarm_bench_writes_the_report_json_and_a_sweep_plot(
    tmp_path: Path, fake_server: int
) -> None:
    proc = swarm(tmp_path, "bench", "--endpoint", f"http://127.0.0.1:{fake_server}", "--model", "fake",
                 "--concurrency", "1,2", "--output-len", "8", "--requests", "8", "--calibrate",
                 "--lab", "model=Qwen3-8B", "--lab", "quant=FP8", "--lab", "tp=1",
                 "--out", "report.json", "--plot", "sweep.png", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report == json.loads((tmp_path / "report.json").read_text())
    assert (
        report["schema_version"] == 1 and report["config"]["server_kind"] == "vllm"
    )  # from /v1/models
    assert [lv["load"] for lv in report["levels"]] == ["c=1", "c=2"]
    assert report["client"]["client_ceiling_tok_s"] > 0
    assert report["target"]["lab"] == {"model": "Qwen3-8B", "quant": "FP8", "tp": 1}
    assert report["target"]["server_version"] == "fake-vllm-1.0"  # from /version, as vLLM serves it
    row = report["summary"]["readme_row"]
    assert (row["model"], row["quant"], row["single_tps"]) == (
        "Qwen3-8B",
        "FP8",
        report["summary"]["single_tps"],
    )
    assert row["batched_tps"] == max(report["summary"]["batched_tps"].values())
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_swarm_bench_against_nothing_listening_reports_the_refusals_and_exits_1(
    tmp_path: Path,
) -> None:
    proc = swarm(tmp_path, "bench", "--endpoint", "http://127.0.0.1:9", "--model", "m",
                 "--server-kind", "vllm", "--requests", "3", "--warmup", "0")  # fmt: skip
    assert proc.returncode == 1
    assert "ConnectionRefusedError x3" in proc.stdout and "every request failed" in proc.stdout


def test_swarm_bench_rejects_a_bad_endpoint_and_a_bad_level_list(tmp_path: Path) -> None:
    bad_url = swarm(
        tmp_path, "bench", "--endpoint", "https://x", "--model", "m", "--server-kind", "vllm"
    )
    bad_levels = swarm(
        tmp_path,
        "bench",
        "--endpoint",
        "http://127.0.0.1:9",
        "--model",
        "m",
        "--concurrency",
        "1,x",
    )
    assert bad_url.returncode != 0 and "endpoint must be http" in bad_url.stderr
    assert bad_levels.returncode == 2 and "--concurrency" in bad_levels.stderr


# ---------------------------------------------------------------- the lab: task kind and MCP tool


def test_a_benchmark_task_measures_its_deploy_results_endpoint_and_records_findings_citing_itself(
    tmp_path: Path, fake_server: int
) -> None:
    from swarm.core.models import NewTask
    from swarm.db.store import SqliteStore
    from swarm.facts.findings import all_findings
    from swarm.queue import queue
    from tests.conftest import T0, register
    from tests.test_worker import clone
    from tests.test_worker import swarm as work

    repo, db = clone(tmp_path), tmp_path / "lab.db"
    store = SqliteStore(db)
    meta = {"gpu": "RTX 4090", "model": "Qwen3-8B", "platform": "vLLM", "quant": "FP8"}
    deploy = queue.add_task(store, NewTask(kind="deploy", title="deploy", spec=meta), T0)
    register(store, "agent-a")
    claim = queue.claim(store, "agent-a", T0, 600, task_id=deploy.id)
    queue.report(store, deploy.id, claim.lease.epoch, "done", T0,
                 {"deployments": [{"endpoint": f"http://127.0.0.1:{fake_server}"}]})  # fmt: skip
    spec = {**meta, "concurrency": [1, 2], "output_len": 8, "requests": 6, "warmup": 1}
    bench = queue.add_task(
        store, NewTask(kind="benchmark", title="bench", spec=spec, depends_on=(deploy.id,)), T0
    )
    out, err = work(repo, db, "work", "--until-idle", "--kind", "benchmark", "--json").communicate(
        timeout=120
    )
    summary = json.loads(out.splitlines()[-1])
    assert [(t["kind"], t["status"]) for t in summary.get("ran", [])] == [("benchmark", "done")], (
        summary,
        err,
    )
    (result,) = queue.task_results(store, bench.id)
    assert result.payload["report"]["config"]["model"] == "fake"  # the served name, from /v1/models
    assert result.payload["single_tps"] > 0 and result.payload["batched_concurrency"] in (1, 2)
    found = {f.predicate: f for f in all_findings(store) if f.task_id == bench.id}
    assert set(found) == {"decode_tps_single_stream", "throughput_tps_batched"}
    single = found["decode_tps_single_stream"]
    assert single.subject == "Qwen3-8B" and single.scope["quant"] == "FP8"
    (evidence,) = single.evidence
    assert (evidence.kind, evidence.locator, evidence.metric) == ("run", result.id, "single_tps")
    assert single.value == result.payload["single_tps"]


def test_the_mcp_benchmark_tool_returns_a_job_and_lands_the_report_on_the_task(
    tmp_path: Path, fake_server: int
) -> None:
    from mcp import Client

    from swarm.core.settings import Settings
    from swarm.mcp.server import Lab, build_server

    lab = Lab(Settings.for_db(tmp_path / "lab.db", lease_seconds=600))

    async def go() -> None:
        async with Client(build_server(lab)) as client:
            bad = await client.call_tool("benchmark", {"endpoint": "ftp://x"})
            assert bad.is_error
            args = {"endpoint": f"http://127.0.0.1:{fake_server}", "concurrency": [1, 2], "output_len": 4,
                    "requests": 4, "gpu": "RTX 4090", "platform": "vLLM"}  # fmt: skip
            started = (await client.call_tool("benchmark", args)).structured_content
            detail = await finished_job(client, started["job"])
            assert detail["task"]["state"] == "done", detail
            (result,) = detail["results"]
            levels = result["payload"]["report"]["levels"]
            assert [lv["total_output_tokens"] for lv in levels] == [16, 16]

    asyncio.run(go())


# ---------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def transformers_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`transformers serve` on the CPU with a tiny random Llama built here (.ci/run installs it)."""
    import os
    import time
    import urllib.request

    venv = os.environ.get("SWARM_TRANSFORMERS_VENV")
    if not venv or not (Path(venv) / "bin/transformers").exists():
        pytest.skip("no transformers serve venv (SWARM_TRANSFORMERS_VENV); .ci/run prepares one")
    model = tmp_path_factory.mktemp("tiny-llama")
    subprocess.run([f"{venv}/bin/python", "tests/fixtures/build_tiny_llama.py", str(model)], check=True,
                   capture_output=True)  # fmt: skip
    port = free_port()
    log = (model / "serve.log").open("w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "*"}
    proc = subprocess.Popen([f"{venv}/bin/transformers", "serve", str(model), "--device", "cpu",
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        for _ in range(240):
            try:
                opener.open(f"{url}/health", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None, (model / "serve.log").read_text()[-2000:]
                time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not answer /health in 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_real_transformers_server_is_benchmarked_with_token_totals_matching_its_usage(
    tmp_path: Path, transformers_serve: str
) -> None:
    proc = swarm(tmp_path, "bench", "--endpoint", transformers_serve, "--concurrency", "1,2",
                 "--output-len", "12", "--requests", "6", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["config"]["server_kind"] == "transformers"  # detected; forced via min_new_tokens
    for level in report["levels"]:
        assert (level["completed"], level["failed"]) == (6, 0), level["errors"]
        assert level["token_count_source"] == {"usage": 6}
        assert level["length_mismatch_count"] == 0 and level["total_output_tokens"] == 72
        assert level["metrics"]["median_ttft_ms"] > 0 and level["metrics"]["median_tpot_ms"] > 0


# ---------------------------------------------------------------- issue #18's measurement defects


def test_the_knee_is_the_servers_capacity_on_a_server_with_four_slots() -> None:
    from tools.bench_plot import knee_concurrency

    # 4 decode slots: 1, 2 and 4 streams each add a stream's worth; 8 and 16 only queue
    report = _run(Script(itl_s=0.004, slots=4), concurrency=[1, 2, 4, 8, 16], output_len=6,
                  requests=24, warmup=0)  # fmt: skip
    assert report.summary["knee"]["concurrency"] == 4
    assert knee_concurrency(report) == 4  # the plot marks the same level


def test_a_dying_server_makes_its_level_invalid_never_the_labs_number() -> None:
    from tools import bench_lab

    # the first 6 requests answer, then every one fails: 86% of the level failed
    report = _run(Script(fail_after=6), concurrency=[1, 2], output_len=4, requests=20, warmup=0)
    first, second = report.levels
    assert first.valid is False and "over --max-error-rate 1.0%" in (first.invalid_reason or "")
    assert second.valid is False and report.summary["single_tps"] is None
    assert report.summary["batched_tps"] == {} and set(report.summary["invalid_levels"]) == {
        "c=1",
        "c=2",
    }
    payload = bench_lab.payload(report)
    assert "batched_tps" not in payload and payload["single_tps"] is None  # no finding can cite it


def test_a_hung_request_times_out_as_a_failure_and_the_level_stays_short() -> None:
    import time

    start = time.monotonic()
    report = _run(Script(hang_every=5), concurrency=[2], output_len=4, requests=10, warmup=0,
                  timeout_s=0.5)  # fmt: skip
    level = report.levels[0]
    assert time.monotonic() - start < 5 and level.failed == 2 and not level.valid
    assert level.error_counts == {"TimeoutError": 2}
    tolerant = _run(Script(hang_every=5), concurrency=[2], output_len=4, requests=10, warmup=0,
                    timeout_s=0.5, max_error_rate=0.25)  # fmt: skip
    assert tolerant.levels[0].valid and tolerant.summary["valid_levels"] == 1


def test_the_default_per_request_timeout_scales_with_the_output_length() -> None:
    short = benchmark.BenchConfig(endpoint="http://127.0.0.1:1", model="m", output_len=16)
    long = short.model_copy(update={"output_len": 2048})
    assert short.request_timeout_s == 34.0 and long.request_timeout_s == 542.0
    assert short.model_copy(update={"timeout_s": 5.0}).request_timeout_s == 5.0


def test_swarm_bench_exits_1_when_no_level_is_valid(tmp_path: Path) -> None:
    refused = swarm(tmp_path, "bench", "--endpoint", f"http://127.0.0.1:{free_port()}", "--model", "m",
                    "--requests", "2", "--warmup", "0", "--json")  # fmt: skip
    level = json.loads(refused.stdout)["levels"][0]
    assert refused.returncode == 1 and level["valid"] is False and level["invalid_reason"]


FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "server_answers.json").read_text())


@pytest.fixture
def recorded_server() -> Iterator[Callable[[str], str]]:
    """A loopback server answering GETs with one engine's recorded answers (404 where it has none)."""
    import http.server
    import threading

    answers: dict[str, Any] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = answers.get(self.path)
            raw = json.dumps(body).encode() if body is not None else b"not found"
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(kind: str) -> str:
        answers.clear()
        answers.update(FIXTURES[kind])
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    server.shutdown()


@pytest.mark.parametrize(
    ("kind", "version"),
    [("vllm", "0.20.1"), ("sglang", "0.5.6"), ("trt-llm", "1.3.0rc13"), ("transformers", None),
     ("openai", None)],
)  # fmt: skip
def test_each_server_kind_is_detected_from_its_recorded_answers(
    recorded_server: Callable[[str], str], kind: str, version: str | None
) -> None:
    from tools import bench_lab

    url = recorded_server(kind)
    detected, model = bench_lab.probe(url)
    assert detected == kind and model == FIXTURES[kind]["/v1/models"]["data"][0]["id"]
    assert bench_lab.server_version(url) == version


def test_tensorrt_llm_gets_its_output_length_forced_and_usage_requested() -> None:
    body = json.loads(request_body("m", "hi", 64, "trt-llm", 0))
    assert body["ignore_eos"] is True and body["max_tokens"] == body["min_tokens"] == 64
    assert body["stream_options"] == {"include_usage": True}


def test_a_completions_endpoint_is_sent_a_completions_body() -> None:
    server = FakeServer(Script())
    report = _run_against(
        server, endpoint_path="/v1/completions", output_len=5, requests=3, warmup=0
    )
    assert "prompt" in server.bodies[-1] and "messages" not in server.bodies[-1]
    level = report.levels[0]
    assert level.valid and level.total_output_tokens == 15 and level.vllm["backend"] == "openai"


def test_input_len_counts_tokens_with_a_tokenizer_and_says_words_without(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [benchmark._WORD_TEXT] * 3, trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"])
    )
    tok.save(str(tmp_path / "tokenizer.json"))
    tokens = benchmark.load_tokens(str(tmp_path))
    import random

    text = benchmark.prompt(37, random.Random(1), tokens)
    assert len(tokens[0](text)) == 37
    config = benchmark.BenchConfig(endpoint="http://127.0.0.1:1", model="m")
    assert config.input_unit == "words" and config.model_dump()["input_unit"] == "words"
    assert config.model_copy(update={"tokenizer": str(tmp_path)}).input_unit == "tokens"


def test_each_level_carries_the_keys_vllm_bench_serve_saves(tmp_path: Path) -> None:
    report = _run(Script(), concurrency=[2], output_len=4, requests=6, warmup=0, per_request=True)
    vllm = report.levels[0].vllm
    expected = {"date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts",
                "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed",
                "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
                "output_throughput", "total_token_throughput", "max_output_tokens_per_s",
                "max_concurrent_requests", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms",
                "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms", "mean_e2el_ms", "p99_e2el_ms",
                "errors", "input_lens", "output_lens", "ttfts", "itls", "start_times", "generated_texts"}  # fmt: skip
    assert expected <= set(vllm)
    assert (
        vllm["errors"] == [""] * 6 and vllm["output_lens"] == [4] * 6 and len(vllm["itls"][0]) == 3
    )
    assert vllm["request_rate"] == "inf" and vllm["max_concurrency"] == 2 and vllm["completed"] == 6
