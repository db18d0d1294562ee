// NVFP4 device helpers shared by the kernels: software E4M3 / E2M1 encoders (bit-exact with
// kernels/nvfp4_ref.py) and, on sm_120a / sm_121a only, the hardware E2M1 conversion.
#pragma once
#include <cstdint>
#include <cstring>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

// ---------------------------------------------------------------- per-target tuning
// Every choice that depends on the architecture being compiled is made here, once per target
// (the host pass sees none of these and uses the software paths):
//   NVFP4_HW_E2M1   cvt.rn.satfinite.e2m1x2.f32 packs two floats into E2M1; it exists only on
//                   sm_120a / sm_121a. Elsewhere the exact "magic add" encoder below.
//   NVFP4_HW_FP8    float <-> E4M3 through the hardware conversions (cvt...e4m3x2, one
//                   instruction for two values) on sm_89 and sm_90, where the FP8 probe found
//                   __nv_cvt_float_to_fp8 identical to float_to_fp8_e4m3_sw on all 2^32 float32
//                   inputs (H100 and H200, kernels/results/). SM120 keeps the software encoder
//                   until the probe has run on such a GPU (the seed reports the intrinsic wrong
//                   there).
#if defined(__CUDA_ARCH_FEAT_SM120_ALL) || defined(__CUDA_ARCH_FEAT_SM121_ALL)
#define NVFP4_HW_E2M1 1
#else
#define NVFP4_HW_E2M1 0
#endif
#ifndef NVFP4_HW_FP8  // -DNVFP4_HW_FP8=0 times the software path on any GPU (kernels/probe)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890 && __CUDA_ARCH__ < 1000
#define NVFP4_HW_FP8 1
#else
#define NVFP4_HW_FP8 0
#endif
#endif

namespace nvfp4 {

constexpr int kBlock = 16;  // elements per E4M3 block scale

// value >> shift, rounded to nearest with ties to even (shift >= 1).
__host__ __device__ inline uint32_t rne_shift(uint32_t value, uint32_t shift) {
  if (shift >= 32) return 0;
  const uint32_t kept = value >> shift;
  const uint32_t rem = value & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  return kept + ((rem > half) || (rem == half && (kept & 1u)) ? 1u : 0u);
}

// float -> E4M3 (OCP E4M3FN), RNE, satfinite: overflow and inf become +-448, NaN is 0x7F|sign.
// The software path of the seed's float_to_fp8_e4m3_sw: no intrinsic, identical on every arch.
__host__ __device__ inline uint8_t float_to_fp8_e4m3_sw(float x) {
  uint32_t bits;
  memcpy(&bits, &x, 4);
  const uint8_t sign = static_cast<uint8_t>((bits >> 31) << 7);
  const int exp = static_cast<int>((bits >> 23) & 0xFFu);
  const uint32_t man = bits & 0x7FFFFFu;
  if (exp == 0xFF) return man ? static_cast<uint8_t>(0x7Fu | sign) : static_cast<uint8_t>(0x7Eu | sign);
  const uint32_t sig = man | (exp ? (1u << 23) : 0u);
  const int e = exp ? exp - 127 : -126;
  int code;
  if (e >= -6) {
    code = ((e + 7) << 3) + static_cast<int>(rne_shift(sig, 20)) - 8;  // mantissa carry lands in exp
  } else {
    code = static_cast<int>(rne_shift(sig, static_cast<uint32_t>(14 - e)));  // subnormal: m * 2^-9
  }
  if (code > 0x7E) code = 0x7E;
  return static_cast<uint8_t>(code) | sign;
}

// float -> E2M1 nibble, RNE, saturating to +-6 (NaN is outside the contract).
__host__ __device__ inline uint8_t float_to_e2m1_sw(float x) {
  uint32_t bits;
  memcpy(&bits, &x, 4);
  const uint8_t sign = static_cast<uint8_t>((bits >> 31) << 3);
  const int exp = static_cast<int>((bits >> 23) & 0xFFu);
  if (exp == 0xFF) return 0x7u | sign;
  const uint32_t sig = (bits & 0x7FFFFFu) | (exp ? (1u << 23) : 0u);
  const int e = exp ? exp - 127 : -126;
  int code = e >= 0 ? ((e + 1) << 1) + static_cast<int>(rne_shift(sig, 22)) - 2
                    : static_cast<int>(rne_shift(sig, static_cast<uint32_t>(22 - e)));
  if (code > 7) code = 7;
  return static_cast<uint8_t>(code) | sign;
}

// E4M3 code -> float by building the float's bits (no ldexpf): exact for every code but NaN.
__host__ __device__ inline float e4m3_to_float(uint8_t code) {
  const uint32_t exp = (code >> 3) & 0xFu, man = code & 0x7u;
  float v;
  if (exp == 0) {
    v = static_cast<float>(man) * 0.001953125f;  // subnormal: man * 2^-9, exact
  } else {
    const uint32_t bits = ((exp + 120u) << 23) | (man << 20);
    memcpy(&v, &bits, 4);
  }
  return (code & 0x80) ? -v : v;
}

__host__ __device__ inline float e2m1_to_float(uint8_t nibble) {
  const float table[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float v = table[nibble & 0x7];
  return (nibble & 0x8) ? -v : v;
}

// float -> E2M1 nibble, the fast path used by the kernels: below 1 the code is 2|x| rounded to
// nearest even by rintf (0, 0.5, 1 -> codes 0, 1, 2); from 1 up, round the float's bits at E2M1's
// single mantissa bit and rebias, then saturate at 6 (code 7). The same result as
// float_to_e2m1_sw for every non-NaN float (checked exhaustively on the host); NaN is outside
// the contract. (Seven comparisons measured 76% of copy bandwidth on H100, a rint() per binade
// 70%; this form is the cheapest found.)
__host__ __device__ inline uint8_t float_to_e2m1_fast(float x) {
  const float a = fabsf(x);
  uint32_t bits;
  memcpy(&bits, &a, 4);
  uint32_t code = a < 1.0f ? static_cast<uint32_t>(rintf(a * 2.0f))
                           : ((bits + 0x1FFFFFu + ((bits >> 22) & 1u)) >> 22) - 252u;
  code = code > 7u ? 7u : code;
  return static_cast<uint8_t>(code | (signbit(x) ? 0x8u : 0u));
}

// Non-negative float (inf included, NaN excluded) -> E4M3 code, RNE, satfinite: the fast case of
// float_to_fp8_e4m3_sw for block scales and the dequantize path, whose inputs are magnitudes.
// Normal range: round the float's bits at the E4M3 mantissa's last place and rebias (a carry
// moves into the exponent as it should), clamp at 0x7E; below 2^-6 the subnormal code is
// x / 2^-9 rounded to nearest even by rintf.
__host__ __device__ inline uint8_t fp8_e4m3_nonneg_sat(float x) {
  if (x < 0.015625f) return static_cast<uint8_t>(rintf(x * 512.0f));
  uint32_t bits;
  memcpy(&bits, &x, 4);
  const uint32_t code = ((bits + 0x7FFFFu + ((bits >> 20) & 1u)) >> 20) - (120u << 3);
  return static_cast<uint8_t>(code > 0x7Eu ? 0x7Eu : code);
}

// Two floats -> one byte, `lo` in the low nibble (element 2i), `hi` in the high one.
__device__ inline uint8_t pack_e2m1x2(float lo, float hi) {
#if defined(__CUDA_ARCH_FEAT_SM120_ALL) || defined(__CUDA_ARCH_FEAT_SM121_ALL)
  // Hardware conversion exists only on the arch-specific targets; the instruction puts its
  // first source in the high nibble, hence (hi, lo).
  uint16_t out;
  asm("{\n .reg .b8 byte;\n cvt.rn.satfinite.e2m1x2.f32 byte, %1, %2;\n cvt.u16.u8 %0, byte;\n}"
      : "=h"(out) : "f"(hi), "f"(lo));
  return static_cast<uint8_t>(out);
#else
  return static_cast<uint8_t>(float_to_e2m1_fast(lo) | (float_to_e2m1_fast(hi) << 4));
#endif
}

__host__ __device__ inline uint32_t float_bits(float x) {
  uint32_t bits;
  memcpy(&bits, &x, 4);
  return bits;
}

// |p| -> E2M1 magnitude code (RNE, saturating: code 7 = 6.0) in the low three bits of the
// returned float's bits, the rest being kMagic's. Three FMA-pipe operations and three min, no
// integer work: with kMagic = 1.5 * 2^23, where floats are spaced exactly 1 apart,
//   fma(a, 2, M) = M + rint(2a),  a + (M + 2) = M + rint(a) + 2,  fma(a, 1/2, M + 4) = M + rint(a/2) + 4
// each rounded once, ties to even (M and the offsets are even, so the float's parity is the
// code's). E2M1's code is rint of the concave min(2a, a + 2, a/2 + 4) (grid 1/2 below 2, 1 up
// to 4, 2 above), and rint commutes with min because it is monotone; min with M + 7 saturates.
// Equal to float_to_e2m1_sw for every float but NaN (exhaustive host check; NaN gives 7).
constexpr float kE2m1Magic = 12582912.0f;
template <bool kSaturate = true>
__host__ __device__ inline uint32_t e2m1_magic_bits(float p) {
  const float a = fabsf(p);
  const float low = fminf(fmaf(a, 2.0f, kE2m1Magic), a + (kE2m1Magic + 2.0f));
  const float high = fmaf(a, 0.5f, kE2m1Magic + 4.0f);
  return float_bits(fminf(low, kSaturate ? fminf(high, kE2m1Magic + 7.0f) : high));
}

// Eight floats x[i] * scale -> eight E2M1 nibbles in one word, element 0 in the low nibble. Per element one shift
// brings in the sign bit and one multiply-add the magic code; the magic's own bits ride along
// modulo 2^32 and one subtraction removes all eight at the end.
constexpr uint32_t kE2m1MagicPacked = 0x4B400000u * 0x11111111u;
template <bool kSaturate = true>
__host__ __device__ inline uint32_t encode_e2m1x8(const float* x, float scale = 1.0f) {
#if NVFP4_HW_E2M1
  uint32_t acc = 0;
#pragma unroll
  for (int i = 3; i >= 0; --i) {
    uint16_t byte;  // the instruction puts its first source in the high nibble, hence (hi, lo)
    asm("{\n .reg .b8 b;\n cvt.rn.satfinite.e2m1x2.f32 b, %1, %2;\n cvt.u16.u8 %0, b;\n}"
        : "=h"(byte) : "f"(x[2 * i + 1] * scale), "f"(x[2 * i] * scale));
    acc = (acc << 8) | byte;
  }
  return acc;
#else
  uint32_t acc = 0;
#pragma unroll
  for (int i = 7; i >= 0; --i) {
    const float p = x[i] * scale;  // exact when scale is 1
    acc = (acc << 1) | (float_bits(p) >> 31);
    acc = acc * 8u + e2m1_magic_bits<kSaturate>(p);
  }
  return acc - kE2m1MagicPacked;
#endif
}

// Non-negative float -> E4M3 (RNE, satfinite) and E4M3 -> float, per target (see the top).
__device__ inline uint8_t fp8_nonneg(float x) {
#if NVFP4_HW_FP8
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3));
#else
  return fp8_e4m3_nonneg_sat(x);
#endif
}

// Two non-negative floats -> two E4M3 codes, `lo` in the low byte.
__device__ inline uint32_t fp8x2_nonneg(float lo, float hi) {
#if NVFP4_HW_FP8
  return __nv_cvt_float2_to_fp8x2(make_float2(lo, hi), __NV_SATFINITE, __NV_E4M3);
#else
  return fp8_e4m3_nonneg_sat(lo) | (static_cast<uint32_t>(fp8_e4m3_nonneg_sat(hi)) << 8);
#endif
}

__device__ inline float e4m3_decode(uint8_t code) {
#if NVFP4_HW_FP8
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));  // exact: E4M3 fits FP16
#else
  return e4m3_to_float(code);
#endif
}

// Byte offset of the scale of (row m, block kb) in the 128x4 swizzled layout read by GEMMs.
__host__ __device__ inline int64_t swizzle_offset(int64_t m, int64_t kb, int64_t n_kb) {
  const int64_t kb_tiles = (n_kb + 3) / 4;
  return (m / 128) * kb_tiles * 512 + (kb / 4) * 512 + (m % 32) * 16 + ((m % 128) / 32) * 4 + (kb % 4);
}

}  // namespace nvfp4
