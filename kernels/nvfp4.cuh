// NVFP4 device helpers shared by the kernels: software E4M3 / E2M1 encoders (bit-exact with
// kernels/nvfp4_ref.py) and, on sm_120a / sm_121a only, the hardware E2M1 conversion.
#pragma once
#include <cstdint>
#include <cstring>
#include <cuda_bf16.h>

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

// Byte offset of the scale of (row m, block kb) in the 128x4 swizzled layout read by GEMMs.
__host__ __device__ inline int64_t swizzle_offset(int64_t m, int64_t kb, int64_t n_kb) {
  const int64_t kb_tiles = (n_kb + 3) / 4;
  return (m / 128) * kb_tiles * 512 + (kb / 4) * 512 + (m % 32) * 16 + ((m % 128) / 32) * 4 + (kb % 4);
}

}  // namespace nvfp4
