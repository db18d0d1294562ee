#!/usr/bin/env python3
"""The NVFP4 kernels on the GPU here, in one run: correctness, bandwidth, the FP8 intrinsic probe.

    python scripts/bench_kernels.py [--log2n 28] [--iters 20] [--json OUT.json]

1. builds the test library for this GPU's arch (tools/kernel_build.py; never another arch's code);
2. checks quantize / swizzled scales / dequantize BF16 / dequantize FP8 against the numpy
   reference on fresh random data (outputs poisoned first), plus the shared test vectors;
3. times quantize and both dequantize kernels on 2^log2n elements with CUDA events (median of
   --iters after warm-up) against a device-to-device copy measured in the same run;
4. runs __nv_cvt_float_to_fp8 against the software encoder over every float32 bit pattern;
5. prints the NVML inventory (tools/gpu.py) of this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools import kernel_check  # noqa: E402
from tools.gpu import NvmlSource  # noqa: E402
from tools.kernel_build import build_target, load_manifest, nvcc_version, runnable_target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log2n", type=int, default=28)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--json", help="write the report here too")
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
    times = lib.bench(n, args.iters)
    bytes_moved = {
        "copy": 2 * (2 * n),  # read + write of 2n bytes
        "quantize": 2 * n + n // 2 + n // 16,
        "dequantize_bf16": n // 2 + n // 16 + 2 * n,
        "dequantize_fp8": n // 2 + n // 16 + n,
    }
    copy_gbs = bytes_moved["copy"] / (times["copy_ms"] * 1e-3) / 1e9
    timing = []
    for name, key in (
        ("device-to-device copy", "copy"),
        ("quantize BF16->NVFP4", "quantize"),
        ("dequantize NVFP4->BF16", "dequantize_bf16"),
        ("dequantize NVFP4->FP8", "dequantize_fp8"),
    ):
        ms = times[f"{key}_ms"]
        gbs = bytes_moved[key] / (ms * 1e-3) / 1e9
        timing.append(
            {
                "kernel": name,
                "ms": round(ms, 4),
                "bytes": bytes_moved[key],
                "GB_s": round(gbs, 1),
                "of_copy_bandwidth": round(gbs / copy_gbs, 3),
            }
        )
    mismatches, examples = lib.fp8_probe(0, 1 << 32)
    report = {
        "schema_version": 1,
        "device": f"{gpu.name} ({gpu.arch}), driver {inventory.driver_version}",
        "target": target,
        "elements": n,
        "checks": checks,
        "timing": timing,
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
    print(f"device: {report['device']}, code {target}, n = 2^{args.log2n}")
    print("\ncheck | compared | mismatches | tolerance")
    print("--- | --- | --- | ---")
    for c in checks:
        print(
            f"{c['check']}{' (' + c['vector'] + ')' if 'vector' in c else ''} | {c['compared']} | {c['mismatches']} | {c['tolerance']}"
        )
    print(f"(seed {checks[-1]['seed']})\n\nkernel | median ms | GB/s | of copy bandwidth")
    print("--- | --- | --- | ---")
    for t in timing:
        print(f"{t['kernel']} | {t['ms']} | {t['GB_s']} | {t['of_copy_bandwidth']:.1%}")
    print(
        f"\nFP8 probe over all 2^32 float32 inputs: {mismatches} mismatches between the intrinsic and the software encoder"
    )
    print("\nNVML inventory:", json.dumps(report["inventory"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
