#!/usr/bin/env python3
"""Reconcile time and peak memory for N synthetic findings over K keys (default 100k over 10k).

    python scripts/bench_facts.py [--findings 100000] [--keys 10000] [--json]

The findings mix numeric measurements (agreeing and disagreeing), tier differences, aliases and
implausible values, so every rule runs. Checks are precomputed ('ok') as the verify step would
leave them: this measures the reconciler itself. Also times the same pass through a plain
group-by-and-median in pure Python (the floor of any reconciler on this data) in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from swarm.citations import Check  # noqa: E402
from swarm.findings import Evidence, Finding  # noqa: E402
from swarm.reconcile import reconcile  # noqa: E402
from swarm.registry import Registries  # noqa: E402

GPUS = ("RTX Pro 6000", "DGX Spark", "RTX 4090")
PLATFORMS = ("vllm", "trt-llm", "tensorrt-llm", "sglang")


def synthetic(n: int, keys: int, seed: int = 7) -> list[Finding]:
    rng = random.Random(seed)
    doc = Evidence(kind="doc", locator="facts/evidence/seed_README.txt")
    run = Evidence(kind="run", locator="res-x", metric="single_tps")
    out = []
    for i in range(n):
        k = rng.randrange(keys)
        base = 20 + (k % 400)
        value = base * (1 + rng.uniform(-0.04, 0.04)) if rng.random() > 0.005 else base * 3
        out.append(
            Finding(
                id=f"fd_{i:012d}",
                agent=f"agent{rng.randrange(20)}",
                observed_at=f"2026-11-{1 + i % 27:02d}T00:00:00.000000Z",
                subject=f"model-{k}",
                predicate="decode_tps_single_stream",
                # one key per k, under two spellings of the platform for odd k (the alias rule)
                scope={
                    "gpu": GPUS[k % 3],
                    "platform": rng.choice(("trt-llm", "TensorRT-LLM")) if k % 2 else "vllm",
                    "quant": "NVFP4",
                    "tp": 1,
                },
                value=round(value, 2),
                statement="synthetic",
                evidence=(run if rng.random() < 0.2 else doc,),
                attributes={"params": f"{1 + k % 3}B"},
            )
        )
    return out


def floor(findings: list[Finding]) -> None:
    groups: dict[str, list[float]] = defaultdict(list)
    for f in findings:
        groups[f"{f.subject}|{f.predicate}|{json.dumps(f.scope, sort_keys=True)}"].append(
            float(f.value)
        )
    {k: statistics.median(v) for k, v in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    findings = synthetic(args.findings, args.keys)
    checks = {(f.id, 0): Check(status="ok", message="ok") for f in findings}
    registries = Registries.load(REPO / "facts")

    start = time.perf_counter()
    floor(findings)
    floor_s = time.perf_counter() - start

    tracemalloc.start()
    start = time.perf_counter()
    facts = reconcile(findings, checks, registries)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    reconcile(findings, checks, registries)
    untraced = time.perf_counter() - start

    report = {
        "schema_version": 1,
        "findings": len(findings),
        "keys": len(facts.facts),
        "conflicts": len(facts.conflicts),
        "reconcile_s": round(untraced, 2),
        "reconcile_traced_s": round(elapsed, 2),
        "peak_mib_traced": round(peak / 2**20, 1),
        "floor_group_median_s": round(floor_s, 2),
        "target_s": 2.0,
        "environment": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['findings']} findings over {report['keys']} keys -> {report['conflicts']} conflicts"
    )
    print(
        f"reconcile: {report['reconcile_s']} s (target <= 2 s); with tracemalloc {report['reconcile_traced_s']} s, "
        f"peak {report['peak_mib_traced']} MiB"
    )
    print(f"floor (group by key + median, pure Python): {report['floor_group_median_s']} s")
    print(f"environment: {report['environment']}")


if __name__ == "__main__":
    main()
