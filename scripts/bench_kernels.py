#!/usr/bin/env python3
"""The NVFP4 kernels on the GPU here, in one run: correctness, bandwidth, a size sweep, the FP8 probe.

    python scripts/bench_kernels.py [--log2n 28] [--iters 50] [--repeats 3] [--out-dir DIR]

1. builds the test library for this GPU's arch (tools/kernel_build.py; never another arch's code);
2. checks quantize / swizzled scales / dequantize BF16 / dequantize FP8 against the numpy
   reference on fresh random data (outputs poisoned first), plus the shared test vectors;
3. times quantize and both dequantize kernels on 2^log2n elements with CUDA events (median of
   --iters after warm-up) against a device-to-device copy measured in the same call, --repeats
   times;
4. sweeps 2^20 ... 2^30 elements (each size beside its own copy), where launch-bound turns
   bandwidth-bound;
5. runs __nv_cvt_float_to_fp8 against the software encoder over every float32 bit pattern;
6. prints the NVML inventory (tools/gpu.py) of this machine, and with --out-dir writes the report
   as <gpu>_bench_kernels.json and .txt (e.g. kernels/results/h200_bench_kernels.json).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools import kernel_check  # noqa: E402
from tools.gpu import NvmlSource  # noqa: E402
from tools.kernel_build import build_target, load_manifest, nvcc_version, runnable_target  # noqa: E402

KERNELS = (
    ("quantize BF16->NVFP4", "quantize"),
    ("dequantize NVFP4->BF16", "dequantize_bf16"),
    ("dequantize NVFP4->FP8", "dequantize_fp8"),
)


def bytes_moved(n: int) -> dict[str, int]:
    """The fewest bytes each kernel must move: every input read once, every output written once."""
    return {
        "copy": 2 * (2 * n),  # read + write of 2n bytes
        "quantize": 2 * n + n // 2 + n // 16,
        "dequantize_bf16": n // 2 + n // 16 + 2 * n,
        "dequantize_fp8": n // 2 + n // 16 + n,
    }


def timing_rows(n: int, times: dict[str, float]) -> list[dict[str, Any]]:
    moved = bytes_moved(n)
    copy_gbs = moved["copy"] / (times["copy_ms"] * 1e-3) / 1e9
    rows = []
    for name, key in (("device-to-device copy", "copy"), *KERNELS):
        ms = times[f"{key}_ms"]
        gbs = moved[key] / (ms * 1e-3) / 1e9
        rows.append(
            {
                "kernel": name,
                "ms": round(ms, 4),
                "bytes": moved[key],
                "GB_s": round(gbs, 1),
                "of_copy_bandwidth": round(gbs / copy_gbs, 3),
            }
        )
    return rows


def results_stem(gpu_name: str) -> str:
    """'NVIDIA H200' -> 'h200', 'NVIDIA H100 80GB HBM3' -> 'h100': the results files' prefix."""
    words = [w for w in gpu_name.split() if w.upper() not in {"NVIDIA", "GEFORCE", "RTX"}]
    return re.sub(r"[^a-z0-9]+", "_", (words[0] if words else gpu_name).lower()).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log2n", type=int, default=28)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timings of 2^log2n, each with its copy"
    )
    parser.add_argument("--sweep", default="20-30", help="log2 sizes to sweep, 'A-B' ('' for none)")
    parser.add_argument("--out-dir", help="write <gpu>_bench_kernels.json and .txt here")
    parser.add_argument("--json", help="write the JSON report to this path too")
    args = parser.parse_args()

    inventory = NvmlSource().read()
    if not inventory.gpus:
        sys.exit(f"no GPU here: {inventory.note}")
    gpu = inventory.gpus[0]
    kernels = REPO / "kernels"
    kernel = load_manifest(kernels).get("nvfp4")
    target = runnable_target(str(gpu.arch), tuple(kernel.targets))
    if target is None:
        sys.exit(f"nvfp4 is not built for {gpu.arch}")
    lib_build = build_target(
        kernel, kernels, target, Path(tempfile.mkdtemp()), "nvcc", nvcc_version(), shared=True
    )
    if not lib_build.ok or lib_build.object is None:
        sys.exit("build failed:\n" + "\n".join(lib_build.errors))
    lib = kernel_check.Library(lib_build.object)

    checks = kernel_check.check_nvfp4(lib, kernels)
    n = 1 << args.log2n
    repeats = [timing_rows(n, lib.bench(n, args.iters)) for _ in range(max(1, args.repeats))]
    timing = [
        {
            **min(
                (r[i] for r in repeats),
                key=lambda row: abs(row["ms"] - statistics.median(x[i]["ms"] for x in repeats)),
            ),
            "of_copy_each_repeat": [r[i]["of_copy_bandwidth"] for r in repeats],
        }
        for i in range(len(repeats[0]))
    ]
    sweep = []
    if args.sweep:
        low, high = (int(v) for v in args.sweep.split("-"))
        for log2n in range(low, high + 1):
            sweep.append(
                {
                    "log2n": log2n,
                    "timing": timing_rows(1 << log2n, lib.bench(1 << log2n, args.iters)),
                }
            )
    mismatches, examples = lib.fp8_probe(0, 1 << 32)
    report = {
        "schema_version": 2,
        "device": f"{gpu.name} ({gpu.arch}), driver {inventory.driver_version}",
        "target": target,
        "elements": n,
        "iters": args.iters,
        "checks": checks,
        "timing": timing,
        "sweep": sweep,
        "fp8_probe": {
            "inputs": 1 << 32,
            "mismatches": mismatches,
            "examples": [f"0x{b:08x}" for b in examples],
            "intrinsic": "__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)",
            "software": "float_to_fp8_e4m3_sw (kernels/nvfp4.cuh)",
        },
        "resources": lib_build.model_dump(mode="json")["functions"],
        "inventory": inventory.model_dump(mode="json"),
    }
    lines = [f"device: {report['device']}, code {target}, n = 2^{args.log2n}", ""]
    lines += ["check | compared | mismatches | tolerance", "--- | --- | --- | ---"]
    for c in checks:
        vector = f" ({c['vector']})" if "vector" in c else ""
        lines.append(
            f"{c['check']}{vector} | {c['compared']} | {c['mismatches']} | {c['tolerance']}"
        )
    lines += [
        f"(seed {checks[-1]['seed']})",
        "",
        f"2^{args.log2n} elements, median of {args.iters} CUDA-event timings, {len(repeats)} repeats "
        "(the row is the repeat nearest the median)",
        "",
        "kernel | median ms | GB/s | of copy bandwidth | each repeat",
        "--- | --- | --- | --- | ---",
    ]
    for t in timing:
        each = ", ".join(f"{v:.1%}" for v in t["of_copy_each_repeat"])
        lines.append(
            f"{t['kernel']} | {t['ms']} | {t['GB_s']} | {t['of_copy_bandwidth']:.1%} | {each}"
        )
    if sweep:
        lines += [
            "",
            "size sweep: copy GB/s, then each kernel's microseconds and share of that copy's bandwidth",
            "",
            "elements | copy GB/s | quantize | dequantize BF16 | dequantize FP8",
            "--- | --- | --- | --- | ---",
        ]
        for s in sweep:
            t = s["timing"]
            cells = [f"{r['ms'] * 1e3:.1f} us, {r['of_copy_bandwidth']:.1%}" for r in t[1:]]
            lines.append(f"2^{s['log2n']} | {t[0]['GB_s']:.0f} | " + " | ".join(cells))
    lines += [
        "",
        f"FP8 probe over all 2^32 float32 inputs: {mismatches} mismatches between the intrinsic and the software encoder",
        "",
        "NVML inventory: " + json.dumps(report["inventory"]),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = results_stem(str(gpu.name))
        (out / f"{stem}_bench_kernels.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / f"{stem}_bench_kernels.txt").write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
