"""The NVFP4 kernels: the numpy reference, the device encoders compiled for the host, the nvcc
builds for every target, the arch guard, and (on a machine with a GPU) the kernels themselves."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tools import kernel_build
from tools.kernel_build import build_and_test, load_manifest, parse_ptxas, runnable_target

KERNELS = REPO / "kernels"
sys.path.insert(0, str(KERNELS))
import nvfp4_ref as ref  # noqa: E402

VECTORS = json.loads((KERNELS / "nvfp4_test_vectors.json").read_text())
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")


def _f32(hex_bits: str) -> np.ndarray:
    return np.array([int(hex_bits, 16)], dtype=np.uint32).view(np.float32)


@pytest.mark.parametrize("case", VECTORS["e4m3_encode"], ids=lambda c: f"{c['x']}")
def test_e4m3_encoding_matches_every_test_vector(case: dict) -> None:
    x = _f32(case["x_f32_hex"])
    assert ref.e4m3_encode(x, satfinite=True)[0] == int(case["satfinite"], 16)
    assert ref.e4m3_encode(x, satfinite=False)[0] == int(case["nosat"], 16)


def test_e4m3_and_e2m1_decoding_match_the_tables() -> None:
    for code, value in VECTORS["e4m3_decode_table"].items():
        got = ref.e4m3_decode(np.array([int(code, 16)], dtype=np.uint8))[0]
        assert (np.isnan(got) and value == "nan") or got == value, code
    for code, value in VECTORS["e2m1_decode_table"].items():
        assert ref.e2m1_decode(np.array([int(code, 16)], dtype=np.uint8))[0] == value


@pytest.mark.parametrize("case", VECTORS["e2m1_encode"], ids=lambda c: f"{c['x']}")
def test_e2m1_encoding_matches_every_test_vector(case: dict) -> None:
    assert ref.e2m1_encode(np.array([case["x"]], dtype=np.float32))[0] == int(case["nibble"], 16)


@pytest.mark.parametrize("block", VECTORS["nvfp4_blocks"], ids=lambda b: b["name"][:40])
def test_nvfp4_blocks_quantize_and_dequantize_bit_exactly(block: dict) -> None:
    x = np.array(block["x"], dtype=np.float32)
    s_enc = ref.global_encode_scale(block["amax"])
    assert s_enc == _f32(block["s_enc_hex"])[0]
    packed, scales = ref.quantize(x, s_enc)
    assert list(scales) == block["te"]["sf_codes"]
    assert packed.tobytes().hex() == block["te"]["packed_hex"]
    assert np.array_equal(
        ref.dequantize(packed, scales, s_enc), np.array(block["te"]["dequant"], dtype=np.float32)
    )


def test_swizzle_offsets_match_the_vectors_and_the_layout_is_a_permutation() -> None:
    for case in VECTORS["swizzle_128x4_offsets"]:
        assert ref.swizzle_offset(case["m"], case["kb"], case["n_kb"]) == case["offset"]
    scales = np.arange(256 * 8, dtype=np.uint32).astype(np.uint8).reshape(256, 8)
    out = ref.swizzle(scales)
    assert out.size == 256 * 8 and sorted(out.tolist()) == sorted(scales.reshape(-1).tolist())


def test_e4m3_encoding_is_the_nearest_code_with_ties_to_even() -> None:
    """An independent check: brute force over the 126 finite positive codes."""
    codes = np.arange(0x7F, dtype=np.uint8)
    values = ref.e4m3_decode(codes).astype(np.float64)
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.uniform(0, 470, 20_000),
            np.exp2(rng.uniform(-12, 9, 20_000)),
            (values[:-1] + values[1:]) / 2,
        ]
    ).astype(np.float32)  # ties included
    got = ref.e4m3_encode(x, satfinite=True)
    dist = np.abs(values[None, :] - x.astype(np.float64)[:, None])
    best = dist.min(axis=1, keepdims=True)
    candidates = np.where(dist == best, codes[None, :].astype(np.int64), 999)
    tie_even = np.array([min(row[row < 999], key=lambda c: (c & 1, c)) for row in candidates])
    want = np.where(x > 464, 0x7E, tie_even)
    assert np.array_equal(got, want)


HOST_CHECK = r"""
#include "nvfp4.cuh"
#include <cstdio>
int main() {
  for (unsigned long long b = 0; b < (1ull << 32); b += 65537) {
    unsigned int bits = (unsigned int)b; float x; memcpy(&x, &bits, 4);
    float a = x < 0 ? -x : x;
    printf("%u %u %u %u %u %u %u\n", bits, nvfp4::float_to_fp8_e4m3_sw(x), nvfp4::float_to_e2m1_sw(x),
           nvfp4::float_to_e2m1_fast(x), nvfp4::fp8_e4m3_nonneg_sat(a),
           nvfp4::e2m1_magic_bits<true>(x) - 0x4B400000u, nvfp4::e2m1_magic_bits<false>(x) - 0x4B400000u);
  }
}
"""

# Eight floats per line (read from stdin) -> the packed word encode_e2m1x8 makes of x * scale.
PACK_CHECK = r"""
#include "nvfp4.cuh"
#include <cstdio>
int main() {
  unsigned int bits[9];
  while (scanf("%u %u %u %u %u %u %u %u %u", &bits[0], &bits[1], &bits[2], &bits[3], &bits[4], &bits[5],
               &bits[6], &bits[7], &bits[8]) == 9) {
    float x[8], scale;
    memcpy(x, bits, 32);
    memcpy(&scale, &bits[8], 4);
    printf("%u\n", nvfp4::encode_e2m1x8<true>(x, scale));
  }
}
"""


def _host_program(tmp_path: Path, source: str, stdin: str = "") -> list[list[int]]:
    (tmp_path / "check.cu").write_text(source)
    exe = tmp_path / "check"
    subprocess.run(
        ["nvcc", "-O2", "-std=c++17", f"-I{KERNELS}", str(tmp_path / "check.cu"), "-o", str(exe)],
        check=True,
        capture_output=True,
    )
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True).stdout
    return [[int(v) for v in line.split()] for line in out.splitlines()]


@needs_nvcc
def test_the_device_encoders_compiled_for_the_host_match_the_reference(tmp_path: Path) -> None:
    rows = np.array(_host_program(tmp_path, HOST_CHECK), dtype=np.uint64)
    x = rows[:, 0].astype(np.uint32).view(np.float32)
    finite = ~np.isnan(x)
    want_e2m1 = ref.e2m1_encode(x[finite])
    assert np.array_equal(rows[:, 1].astype(np.uint8), ref.e4m3_encode(x))
    assert np.array_equal(rows[finite, 2].astype(np.uint8), want_e2m1)
    assert np.array_equal(rows[finite, 3], rows[finite, 2])  # the fast E2M1 path
    assert np.array_equal(rows[finite, 4].astype(np.uint8), ref.e4m3_encode(np.abs(x[finite])))
    # the magic-add encoder the kernels use: the magnitude code, saturating everywhere...
    assert np.array_equal(rows[finite, 5].astype(np.uint8), want_e2m1 & 7)
    # ...and without the saturating min wherever |x| < 7, the domain the quantize kernel gives it
    small = np.abs(x[finite]) < 7
    assert np.array_equal(rows[finite, 6][small].astype(np.uint8), (want_e2m1 & 7)[small])


@needs_nvcc
def test_eight_elements_pack_into_one_word_as_the_reference_packs_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ties = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 7.0, 0.0, -0.0], dtype=np.float32)
    groups = np.concatenate(
        [
            rng.choice(ties, (2000, 8)) * rng.choice([-1, 1], (2000, 8)),
            rng.standard_normal((2000, 8)) * np.exp(rng.uniform(-8, 8, (2000, 1))),
            np.nextafter(rng.choice(ties, (2000, 8)), np.float32(9)),
        ]
    ).astype(np.float32)
    scales = np.concatenate([np.ones(2000), rng.uniform(0.1, 3, 2000), np.ones(2000)]).astype(
        np.float32
    )
    lines = "\n".join(
        " ".join(str(int(v)) for v in (*g.view(np.uint32), s.view(np.uint32)))
        for g, s in zip(groups, scales, strict=True)
    )
    got = np.array([r[0] for r in _host_program(tmp_path, PACK_CHECK, lines)], dtype=np.uint64)
    nibbles = ref.e2m1_encode((groups * scales[:, None]).astype(np.float32)).astype(np.uint64)
    want = (nibbles << (4 * np.arange(8, dtype=np.uint64))).sum(axis=1)
    assert np.array_equal(got, want)


@needs_nvcc
def test_every_kernel_builds_for_every_target_without_spills_and_is_cached(tmp_path: Path) -> None:
    report = build_and_test(KERNELS, tmp_path)
    built = {(b.kernel, t.target): t for b in report.builds for t in b.targets}
    assert set(built) == {("nvfp4", t) for t in ("sm_89", "sm_90a", "sm_120a", "sm_121a")} | {
        ("mma_nvfp4_sm120", "sm_120a"),
        ("mma_nvfp4_sm120", "sm_121a"),
    }
    for target in built.values():
        assert target.ok and target.functions and not target.cached
        assert all(
            f.registers > 0 and f.spill_stores == 0 and f.spill_loads == 0 for f in target.functions
        )
    mma = built[("mma_nvfp4_sm120", "sm_120a")].functions[0]
    assert (
        mma.function.startswith("mma_nvfp4_tile_kernel") and mma.registers > 4
    )  # the mma is really in it
    again = build_and_test(KERNELS, tmp_path, ("nvfp4",), ("sm_89",))
    assert again.builds[0].targets[0].cached


@needs_nvcc
def test_a_failed_build_reports_its_first_error_lines(tmp_path: Path) -> None:
    kernels = tmp_path / "kernels"
    shutil.copytree(KERNELS, kernels, ignore=shutil.ignore_patterns("results"))
    (kernels / "mma_nvfp4_sm120.cu").write_text("__global__ void k() { undefined_thing(); }\n")
    report = build_and_test(kernels, tmp_path / "cache", ("mma_nvfp4_sm120",), ("sm_120a",))
    target = report.builds[0].targets[0]
    assert not target.ok and not report.ok
    assert any("undefined_thing" in line for line in target.errors)


@needs_nvcc
def test_a_plain_arch_build_of_the_block_scaled_mma_fails_as_the_notes_say(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            "nvcc",
            "-arch=sm_120",
            "-c",
            str(KERNELS / "mma_nvfp4_sm120.cu"),
            "-o",
            str(tmp_path / "x.o"),
        ],
        capture_output=True,
        text=True,
    )
    # the asm is guarded by __CUDA_ARCH_FEAT_SM12x_ALL, so plain sm_120 builds an empty tile
    assert proc.returncode == 0


def test_the_arch_guard_never_runs_code_on_an_arch_it_was_not_built_for() -> None:
    assert runnable_target("sm_120", ("sm_100a",)) is None
    assert runnable_target("sm_121", ("sm_120a",)) is None
    assert runnable_target("sm_121", ("sm_120a", "sm_121a")) == "sm_121a"
    assert runnable_target("sm_90", ("sm_89", "sm_90a", "sm_120a")) == "sm_90a"
    assert runnable_target("sm_89", ("sm_89",)) == "sm_89"
    assert runnable_target("sm_86", ("sm_80",)) == "sm_80"  # plain targets run forward in a major
    assert runnable_target("sm_90", ("sm_89",)) is None


def test_the_ptxas_report_is_parsed_per_function() -> None:
    log = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z7spillerPKfPfi' for 'sm_120a'
ptxas info    : Function properties for _Z7spillerPKfPfi
    2832 bytes stack frame, 4660 bytes spill stores, 7204 bytes spill loads
ptxas info    : Used 32 registers, used 1 barriers, 2832 bytes cumulative stack size, 4096 bytes smem
ptxas info    : Compiling entry function '_Z4axpyPf' for 'sm_89'
ptxas info    : Function properties for _Z4axpyPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers, 360 bytes cmem[0]
"""
    spiller, axpy = parse_ptxas(log)
    assert (
        spiller.registers,
        spiller.spill_stores,
        spiller.spill_loads,
        spiller.stack_bytes,
        spiller.smem_bytes,
        spiller.barriers,
    ) == (32, 4660, 7204, 2832, 4096, 1)
    assert axpy.cmem_bytes == {"cmem[0]": 360} and axpy.function.startswith("axpy")


def test_the_manifest_validates_and_names_real_files() -> None:
    for kernel in load_manifest(KERNELS).kernel:
        for rel in (*kernel.sources, *kernel.headers):
            assert (KERNELS / rel).is_file(), rel


@needs_nvcc
def test_testing_without_a_gpu_says_not_run_and_why(tmp_path: Path) -> None:
    if kernel_build._device()[0] is not None:
        pytest.skip("this machine has a GPU")
    report = build_and_test(KERNELS, tmp_path, ("nvfp4",), ("sm_89",), test=True)
    assert (
        report.tests["nvfp4"].status == "not run" and "no GPU here" in report.tests["nvfp4"].reason
    )
    assert report.ok


@pytest.mark.gpu
def test_on_a_gpu_every_kernel_check_matches_the_reference(tmp_path: Path) -> None:
    arch, _, why = kernel_build._device()
    if arch is None:
        pytest.skip(f"no GPU: {why}")
    report = build_and_test(KERNELS, tmp_path, test=True)
    for name, outcome in report.tests.items():
        assert outcome.status != "failed", (name, outcome.details)


@pytest.mark.gpu
def test_on_a_gpu_the_e4m3_intrinsic_gives_the_software_code_for_every_float32(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """All 2^32 float32 bit patterns through __nv_cvt_float_to_fp8(x, SATFINITE, E4M3) against
    the software encoder (kernels/nvfp4.cuh): the seed says SM120's intrinsic is off by +6 in
    the exponent, so a lab fact about an arch is this test's JUnit outcome on that arch."""
    from tools.kernel_build import build_target, nvcc_version
    from tools.kernel_check import Library

    record_property("subject", "__nv_cvt_float_to_fp8")  # what a lab fact citing it is about

    arch, _, why = kernel_build._device()
    if arch is None:
        pytest.skip(f"no GPU: {why}")
    kernel = load_manifest(KERNELS).get("nvfp4")
    target = runnable_target(arch, tuple(kernel.targets))
    if target is None:
        pytest.skip(f"nvfp4 is not built for {arch}")
    built = build_target(kernel, KERNELS, target, tmp_path, "nvcc", nvcc_version(), shared=True)
    assert built.ok and built.object is not None, built.errors
    mismatches, examples = Library(built.object).fp8_probe(0, 1 << 32)
    assert mismatches == 0, [f"0x{bits:08x}" for bits in examples]


def test_the_benchmark_names_its_results_after_the_gpu_and_counts_the_fewest_bytes() -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_kernels", REPO / "scripts" / "bench_kernels.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.results_stem("NVIDIA H200") == "h200"
    assert bench.results_stem("NVIDIA H100 80GB HBM3") == "h100"
    assert bench.results_stem("NVIDIA GeForce RTX 5090") == "5090"
    n = 1 << 28
    rows = bench.timing_rows(
        n,
        {"copy_ms": 0.25, "quantize_ms": 0.2, "dequantize_bf16_ms": 0.2, "dequantize_fp8_ms": 0.1},
    )
    assert [r["bytes"] for r in rows] == [
        4 * n,
        2 * n + n // 2 + n // 16,
        2 * n + n // 2 + n // 16,
        n + n // 2 + n // 16,
    ]
    assert rows[0]["of_copy_bandwidth"] == 1.0 and 0 < rows[1]["of_copy_bandwidth"] < 1
