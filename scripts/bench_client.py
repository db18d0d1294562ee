"""The benchmark client's own ceiling, beside GuideLLM's, on the same loopback server in one run.

    python scripts/bench_client.py [--levels 1,16,64] [--output-len 256] [--requests 400]
                                   [--guidellm PATH]

Both clients load the same zero-latency fake server (`python -m tools.fake_openai`, vLLM style,
one token per chunk, its own process) at the same closed-loop concurrency with the same request
count and output length, so whichever tokens/s a client reaches is its own ceiling (or the
server's, which is why the server runs alone in its process and is the same for both). GuideLLM
(https://github.com/vllm-project/guidellm) runs offline from a JSON-lines dataset; its throughput
is recomputed as output tokens / benchmark duration, the same definition as ours, beside the
number it reports itself. Install it apart, it pins its own torch: `python -m venv /tmp/g &&
/tmp/g/bin/pip install guidellm`, then pass `--guidellm /tmp/g/bin/guidellm`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools import benchmark


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "tools.fake_openai", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline().split()[-1])


def ours(port: int, concurrency: int, output_len: int, requests: int) -> dict[str, Any]:
    config = benchmark.BenchConfig(endpoint=f"http://127.0.0.1:{port}", model="fake", concurrency=[concurrency],
                                   input_len=32, output_len=output_len, requests=requests, warmup=concurrency)  # fmt: skip
    level = asyncio.run(benchmark.run(config)).levels[0]
    return {"tok_s": level.output_throughput, "tokens": level.total_output_tokens,
            "completed": level.completed, "concurrency": level.realized_concurrency, "cpu_s": level.client_cpu_s}  # fmt: skip


def guidellm(
    exe: str, port: int, concurrency: int, output_len: int, requests: int, work: Path
) -> dict[str, Any]:
    data, out = work / f"data-{concurrency}.jsonl", work / f"guidellm-{concurrency}.json"
    prompt = " ".join(["hello"] * 32)
    data.write_text("".join(json.dumps({"prompt": prompt, "output_tokens_count": output_len}) + "\n"
                            for _ in range(requests)))  # fmt: skip
    subprocess.run([exe, "run", "--backend", f"kind=openai_http,target=http://127.0.0.1:{port},model=fake",
                    "--profile", f"kind=concurrent,streams={concurrency}",
                    "--constraint", f"kind=max_requests,count={requests}",
                    "--data", f"kind=json_file,path={data}", "--output", f"kind=json,path={out}",
                    "--disable-console"], check=True, cwd=work, capture_output=True)  # fmt: skip
    bench = json.loads(out.read_text())["benchmarks"][0]
    m = bench["metrics"]
    tokens = m["output_token_count"]["successful"]["total_sum"]
    return {"tok_s": tokens / bench["duration"], "reported_tok_s": m["output_tokens_per_second"]["successful"]["mean"],
            "tokens": int(tokens), "completed": int(m["output_token_count"]["successful"]["count"]),
            "concurrency": m["request_concurrency"]["successful"]["mean"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--output-len", type=int, default=256)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--guidellm", default=shutil.which("guidellm"))
    a = parser.parse_args()
    server, port = start_server()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for p in (int(x) for x in a.levels.split(",")):
                mine = ours(port, p, a.output_len, a.requests)
                peer = (
                    guidellm(a.guidellm, port, p, a.output_len, a.requests, Path(tmp))
                    if a.guidellm
                    else None
                )
                rows.append((p, mine, peer))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"zero-latency fake server, {a.requests} requests x {a.output_len} tokens per level, one token per chunk"
    )
    print(f"{'P':>4} {'swarm tok/s':>12} {'GuideLLM tok/s':>15} {'(its own)':>10} {'ratio':>6} "
          f"{'swarm tokens':>13} {'GuideLLM tokens':>16} {'conc swarm/GuideLLM':>20}")  # fmt: skip
    for p, mine, peer in rows:
        if peer is None:
            print(f"{p:>4} {mine['tok_s']:>12,.0f} {'(no guidellm)':>15}")
            continue
        print(f"{p:>4} {mine['tok_s']:>12,.0f} {peer['tok_s']:>15,.0f} {peer['reported_tok_s']:>10,.0f} "
              f"{mine['tok_s'] / peer['tok_s']:>5.2f}x {mine['tokens']:>13,} {peer['tokens']:>16,} "
              f"{mine['concurrency']:>9.1f}/{peer['concurrency']:<9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
