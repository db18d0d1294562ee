"""Correctness of the built kernels on the GPU that is here, against kernels/nvfp4_ref.py.

Loaded with ctypes from a shared library built for the device's own arch. Fresh random data on
every run (the seed is reported), outputs poisoned before each kernel by the library itself, and
one tolerance table: bit-exact wherever the format allows.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

# What "matches" means per check. Integer codes compare exactly; the tensor-core tile accumulates
# in fp32 in an order we do not control, so it gets a relative bound.
TOLERANCES: dict[str, dict[str, float] | str] = {
    "quantize": "bit-exact",
    "quantize_swizzled": "bit-exact",
    "dequantize_bf16": "bit-exact",
    "dequantize_fp8": "bit-exact",
    "test_vectors": "bit-exact",
    "mma_tile": {"rtol": 1e-5, "atol": 1e-6},
    "fp8_probe": "bit-exact",
}

P = ctypes.c_void_p
I64 = ctypes.c_int64


def reference(kernels_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("nvfp4_ref", kernels_dir / "nvfp4_ref.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nvfp4_ref"] = module
    spec.loader.exec_module(module)
    return module


def _ptr(a: np.ndarray[Any, Any]) -> int:
    return int(a.ctypes.data)


class Library:
    """The nvfp4 kernels' host API (extern "C" in kernels/nvfp4_kernels.cu)."""

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)
        for name in ("nvfp4_quantize_bf16", "nvfp4_quantize_f32"):
            getattr(self.lib, name).argtypes = [
                P,
                I64,
                I64,
                ctypes.c_float,
                ctypes.c_int,
                P,
                P,
                I64,
            ]
        self.lib.nvfp4_dequantize.argtypes = [P, P, I64, ctypes.c_float, P, P]
        self.lib.fp8_probe.argtypes = [ctypes.c_uint64, ctypes.c_uint64, P, P, ctypes.c_int]
        self.lib.nvfp4_bench.argtypes = [I64, ctypes.c_int, P, P, P, P]

    def quantize(
        self, x: np.ndarray[Any, Any], s_enc: float, swizzle: bool
    ) -> tuple[np.ndarray[Any, Any], ...]:
        rows, cols = x.shape
        n_kb = cols // 16
        scale_bytes = (-(-rows // 128) * 128) * (-(-n_kb // 4) * 4) if swizzle else rows * n_kb
        packed = np.empty(rows * cols // 2, dtype=np.uint8)
        scales = np.empty(scale_bytes, dtype=np.uint8)
        fn = self.lib.nvfp4_quantize_bf16 if x.dtype == np.uint16 else self.lib.nvfp4_quantize_f32
        err = fn(
            _ptr(np.ascontiguousarray(x)),
            rows,
            cols,
            s_enc,
            int(swizzle),
            _ptr(packed),
            _ptr(scales),
            scale_bytes,
        )
        if err:
            raise RuntimeError(f"quantize: CUDA error {err}")
        return packed.reshape(rows, cols // 2), scales

    def dequantize(
        self, packed: np.ndarray[Any, Any], scales: np.ndarray[Any, Any], s_enc: float
    ) -> tuple[np.ndarray[Any, Any], ...]:
        n = packed.size * 2
        bf16, fp8 = np.empty(n, dtype=np.uint16), np.empty(n, dtype=np.uint8)
        err = self.lib.nvfp4_dequantize(_ptr(packed), _ptr(scales), n, s_enc, _ptr(bf16), _ptr(fp8))
        if err:
            raise RuntimeError(f"dequantize: CUDA error {err}")
        return bf16, fp8

    def fp8_probe(self, start: int, count: int, examples: int = 16) -> tuple[int, list[int]]:
        n = np.zeros(1, dtype=np.uint64)
        ex = np.zeros(examples, dtype=np.uint32)
        err = self.lib.fp8_probe(start, count, _ptr(n), _ptr(ex), examples)
        if err:
            raise RuntimeError(f"fp8 probe: CUDA error {err}")
        return int(n[0]), [int(v) for v in ex[: min(int(n[0]), examples)]]

    def bench(self, n: int, iters: int) -> dict[str, float]:
        out = [np.zeros(1, dtype=np.float32) for _ in range(4)]
        err = self.lib.nvfp4_bench(n, iters, *(_ptr(o) for o in out))
        if err:
            raise RuntimeError(f"bench: CUDA error {err}")
        return dict(
            zip(
                ("copy_ms", "quantize_ms", "dequantize_bf16_ms", "dequantize_fp8_ms"),
                (float(o[0]) for o in out),
                strict=True,
            )
        )


def _mismatch(name: str, got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> dict[str, Any]:
    bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
    return {
        "check": name,
        "tolerance": TOLERANCES[name],
        "compared": int(want.size),
        "mismatches": int(bad.size),
        "first": [int(i) for i in bad[:5]],
    }


def check_nvfp4(lib: Library, kernels_dir: Path, seed: int | None = None) -> list[dict[str, Any]]:
    """Every nvfp4 check; each dict says what was compared and how many differ."""
    ref = reference(kernels_dir)
    results = []
    vectors = json.loads((kernels_dir / "nvfp4_test_vectors.json").read_text())
    for block in vectors["nvfp4_blocks"]:
        x = np.array(block["x"], dtype=np.float32).reshape(1, -1)
        s_enc = float(np.array([int(block["s_enc_hex"], 16)], dtype=np.uint32).view(np.float32)[0])
        packed, scales = lib.quantize(x, s_enc, swizzle=False)
        got = np.concatenate([scales, packed.reshape(-1)])
        want = np.concatenate(
            [
                np.array(block["te"]["sf_codes"], dtype=np.uint8),
                np.frombuffer(bytes.fromhex(block["te"]["packed_hex"]), dtype=np.uint8),
            ]
        )
        results.append({**_mismatch("test_vectors", got, want), "vector": block["name"]})

    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    rows, cols = 256, 4096
    values = (rng.standard_normal((rows, cols)) * np.exp(rng.uniform(-4, 4, (rows, 1)))).astype(
        np.float32
    )
    bf16 = ref.to_bf16_bits(values)
    x32 = (bf16.astype(np.uint32) << 16).view(np.float32).reshape(rows, cols)
    s_enc = float(ref.global_encode_scale(float(np.max(np.abs(x32)))))
    want_packed, want_scales = ref.quantize(x32, np.float32(s_enc))
    packed, scales = lib.quantize(bf16.reshape(rows, cols), s_enc, swizzle=False)
    results.append(
        _mismatch(
            "quantize",
            np.concatenate([packed.reshape(-1), scales]),
            np.concatenate([want_packed.reshape(-1), want_scales.reshape(-1)]),
        )
    )
    _, swizzled = lib.quantize(bf16.reshape(rows, cols), s_enc, swizzle=True)
    results.append(_mismatch("quantize_swizzled", swizzled, ref.swizzle(want_scales)))
    got_bf16, got_fp8 = lib.dequantize(want_packed.reshape(-1), want_scales.reshape(-1), s_enc)
    want_deq = ref.dequantize(want_packed, want_scales, np.float32(s_enc))
    results.append(_mismatch("dequantize_bf16", got_bf16, ref.to_bf16_bits(want_deq).reshape(-1)))
    results.append(
        _mismatch(
            "dequantize_fp8", got_fp8, ref.dequantize_to_e4m3(want_packed, want_scales).reshape(-1)
        )
    )
    for r in results:
        r["seed"] = seed
    return results


def check_mma(path: str, kernels_dir: Path, seed: int | None = None) -> list[dict[str, Any]]:
    """The tensor-core tile against a float64 GEMM of the dequantised operands."""
    lib = ctypes.CDLL(path)
    lib.nvfp4_mma_tile.argtypes = [P, P, P, P, ctypes.c_int, P]
    ref = reference(kernels_dir)
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    k = 256
    a_vals = rng.standard_normal((16, k)).astype(np.float32)
    b_vals = rng.standard_normal((8, k)).astype(np.float32)
    a_packed, a_sf = ref.quantize(a_vals, np.float32(1.0))
    b_packed, b_sf = ref.quantize(b_vals, np.float32(1.0))
    d = np.empty((16, 8), dtype=np.float32)
    err = lib.nvfp4_mma_tile(_ptr(a_packed), _ptr(b_packed), _ptr(a_sf), _ptr(b_sf), k, _ptr(d))
    if err:
        raise RuntimeError(f"mma tile: CUDA error {err}")
    want = (
        ref.dequantize(a_packed, a_sf, np.float32(1.0)).astype(np.float64)
        @ ref.dequantize(b_packed, b_sf, np.float32(1.0)).astype(np.float64).T
    )
    tol = TOLERANCES["mma_tile"]
    assert isinstance(tol, dict)
    bad = np.flatnonzero(~np.isclose(d, want, rtol=tol["rtol"], atol=tol["atol"]))
    return [
        {
            "check": "mma_tile",
            "tolerance": tol,
            "compared": int(want.size),
            "mismatches": int(bad.size),
            "first": [int(i) for i in bad[:5]],
            "seed": seed,
        }
    ]
