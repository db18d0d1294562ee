#!/usr/bin/env python3
"""One-off: turn the seed's lab_seed.json into tasks/seed_deployments.toml (then tasks/ is the source).

The seed's spellings and figures are kept as they are (mistakes included: reconciling them is the
facts pipeline's job). Where the seed lists the same deployment more than once, the repeats get
instance = 2, 3, … so each stays a task and the dedupe key still tells them apart on purpose.

    python scripts/convert_seed.py ../shared/seed/lab_seed.json tasks/seed_deployments.toml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import tomli_w

from swarm.queue.specs import dedupe_key

# The seed README's GPU table (seed_README.txt, "GPU | Arch | Count").
GPU_ARCH = {"RTX Pro 6000": "sm_120", "DGX Spark": "sm_121", "RTX 4090": "sm_89"}
SECTIONS = ("benchmarked", "working", "pending", "failed")


def entry(status: str, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "gpu": row["gpu"],
        "arch": GPU_ARCH[row["gpu"]],
        "model": row["model"],
        "platform": row["platform"],
        "quant": row.get("quant"),
        "tp": row.get("tp") or 1,
        "params": row.get("params"),
        "model_type": row.get("type"),
        "vram_gb": row.get("vram_gb"),
        "status": status,
        "notes": row.get("notes"),
        "reason": row.get("reason"),
    }
    if status == "benchmarked":
        figures = {"single_tps": row["single_tps"], "batched_tps": row["batched_tps"]}
        out["benchmark"] = {k: v for k, v in figures.items() if v is not None}
    return {k: v for k, v in out.items() if v is not None}


def convert(seed: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, int] = {}
    deployments = []
    for status in SECTIONS:
        for row in seed[status]:
            item = entry(status, row)
            key = dedupe_key("deploy", item, None)
            assert key is not None
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                item["instance"] = seen[key]
            deployments.append(item)
    return {"schema_version": 1, "source": seed["source"], "deployment": deployments}


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    catalog = convert(json.loads(src.read_text(encoding="utf-8")))
    header = (
        "# Generated once from the seed (scripts/convert_seed.py); edit this file, not the seed.\n"
        "# status: benchmarked = deploy + benchmark done; working = deploy done; pending; failed.\n"
    )
    dst.write_text(header + tomli_w.dumps(catalog), encoding="utf-8")
    repeats = sum(1 for d in catalog["deployment"] if d.get("instance"))
    print(f"wrote {len(catalog['deployment'])} deployments ({repeats} seed repeats) to {dst}")


if __name__ == "__main__":
    main()
