// The NVFP4 kernels as measured on the H100 (commit 9f5c525), kept only so that the probe can time
// them beside the current ones on the same GPU. kMode: kFull reads and writes memory; kCompute
// makes its inputs from the index and folds its outputs into one register (the arithmetic alone);
// kApproxRcp is kFull with rcp.approx instead of the IEEE reciprocal (the reciprocal's cost);
// kHwFp8 is kFull with the hardware FP8 conversion instead of the software encoder.
#pragma once
#include "../nvfp4.cuh"

namespace probe {

enum Mode { kFull = 0, kCompute = 1, kApproxRcp = 2, kHwFp8 = 3 };

// Inputs made from the block index: BF16 pairs in [0.5, 2) with random signs and mantissas, so
// the reciprocal and the encoders take their usual paths. Two operations per word.
__device__ inline uint32_t synth_word(int64_t b, int k) {
  return ((static_cast<uint32_t>(b) * 0x9E3779B1u ^ (k * 0x2545F491u)) & 0x80FF80FFu) | 0x3F003F00u;
}

__device__ inline void sink(uint32_t acc, uint32_t* out) {
  if (acc == 0x7A3C1E5Fu) out[threadIdx.x] = acc;  // practically never: keeps the work alive
}

}  // namespace probe

namespace v0 {

using nvfp4::kBlock;

template <int kMode>
__global__ void quantize_kernel(const __nv_bfloat16* __restrict__ x, int64_t n_blocks, float s_enc,
                                uint8_t* __restrict__ packed, uint8_t* __restrict__ scales, uint32_t* sink) {
  const float scale_coef = s_enc * (1.0f / 6.0f);
  const float s_dec = 1.0f / s_enc;
  uint32_t acc = 0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[kBlock];
    uint4 raw[2];
    if constexpr (kMode == probe::kCompute) {
      raw[0] = make_uint4(probe::synth_word(b, 0), probe::synth_word(b, 1), probe::synth_word(b, 2), probe::synth_word(b, 3));
      raw[1] = make_uint4(probe::synth_word(b, 4), probe::synth_word(b, 5), probe::synth_word(b, 6), probe::synth_word(b, 7));
    } else {
      const uint4* src = reinterpret_cast<const uint4*>(x + b * kBlock);
      raw[0] = __ldcs(src), raw[1] = __ldcs(src + 1);
    }
    const __nv_bfloat16* h = reinterpret_cast<const __nv_bfloat16*>(raw);
#pragma unroll
    for (int i = 0; i < kBlock; ++i) v[i] = __bfloat162float(h[i]);
    float vmax = 0.0f;
#pragma unroll
    for (int i = 0; i < kBlock; ++i) vmax = fmaxf(vmax, fabsf(v[i]));
    const uint8_t sf = nvfp4::fp8_e4m3_nonneg_sat(vmax * scale_coef);
    const float dec = nvfp4::e4m3_to_float(sf) * s_dec;
    float enc;
    if constexpr (kMode == probe::kApproxRcp) {
      asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(enc) : "f"(dec));
    } else {
      enc = dec == 0.0f ? 0.0f : __frcp_rn(dec);
    }
    uint8_t out[kBlock / 2];
#pragma unroll
    for (int i = 0; i < kBlock / 2; ++i) out[i] = nvfp4::pack_e2m1x2(v[2 * i] * enc, v[2 * i + 1] * enc);
    const uint2 o = *reinterpret_cast<const uint2*>(out);
    if constexpr (kMode == probe::kCompute) {
      acc ^= o.x ^ o.y ^ sf;
    } else {
      __stcs(reinterpret_cast<uint2*>(packed + b * (kBlock / 2)), o);
      scales[b] = sf;
    }
  }
  probe::sink(acc, sink);
}

template <int kMode>
__global__ void dequantize_bf16_kernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                                       int64_t n_blocks, float s_dec, __nv_bfloat16* __restrict__ out, uint32_t* sink) {
  uint32_t acc = 0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint2 q;
    uint8_t scale;
    if constexpr (kMode == probe::kCompute) {
      q = make_uint2(probe::synth_word(b, 0), probe::synth_word(b, 1));
      scale = static_cast<uint8_t>(0x30 | (q.x >> 28));
    } else {
      q = *reinterpret_cast<const uint2*>(packed + b * (kBlock / 2));
      scale = scales[b];
    }
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&q);
    const float sf = nvfp4::e4m3_to_float(scale);
    __align__(16) __nv_bfloat16 h[kBlock];
#pragma unroll
    for (int i = 0; i < kBlock / 2; ++i) {
      h[2 * i] = __float2bfloat16_rn(nvfp4::e2m1_to_float(bytes[i] & 0xF) * sf * s_dec);
      h[2 * i + 1] = __float2bfloat16_rn(nvfp4::e2m1_to_float(bytes[i] >> 4) * sf * s_dec);
    }
    const uint4* hv = reinterpret_cast<const uint4*>(h);
    if constexpr (kMode == probe::kCompute) {
      acc ^= hv[0].x ^ hv[0].y ^ hv[0].z ^ hv[0].w ^ hv[1].x ^ hv[1].y ^ hv[1].z ^ hv[1].w;
    } else {
      uint4* dst = reinterpret_cast<uint4*>(out + b * kBlock);
      __stcs(dst, hv[0]);
      __stcs(dst + 1, hv[1]);
    }
  }
  probe::sink(acc, sink);
}

template <int kMode>
__global__ void dequantize_fp8_kernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                                      int64_t n_blocks, uint8_t* __restrict__ out, uint32_t* sink) {
  uint32_t acc = 0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint2 q;
    uint8_t scale;
    if constexpr (kMode == probe::kCompute) {
      q = make_uint2(probe::synth_word(b, 0), probe::synth_word(b, 1));
      scale = static_cast<uint8_t>(0x30 | (q.x >> 28));
    } else {
      q = __ldcs(reinterpret_cast<const uint2*>(packed + b * (kBlock / 2)));
      scale = scales[b];
    }
    const float sf8 = nvfp4::e4m3_to_float(scale) * 0.125f;
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const float vlo = nvfp4::e2m1_to_float(static_cast<uint8_t>(m)) * sf8;
      const float vhi = nvfp4::e2m1_to_float(static_cast<uint8_t>(m + 4)) * sf8;
      if constexpr (kMode == probe::kHwFp8) {
        lo |= static_cast<uint32_t>(nvfp4::fp8_nonneg(vlo)) << (8 * m);
        hi |= static_cast<uint32_t>(nvfp4::fp8_nonneg(vhi)) << (8 * m);
      } else {
        lo |= static_cast<uint32_t>(nvfp4::fp8_e4m3_nonneg_sat(vlo)) << (8 * m);
        hi |= static_cast<uint32_t>(nvfp4::fp8_e4m3_nonneg_sat(vhi)) << (8 * m);
      }
    }
    uint32_t o[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const uint32_t nibbles = (w < 2 ? q.x : q.y) >> (16 * (w & 1));
      const uint32_t sign = ((nibbles & 0x8u) << 4) | ((nibbles & 0x80u) << 8) | ((nibbles & 0x800u) << 12) |
                            ((nibbles & 0x8000u) << 16);
      o[w] = __byte_perm(lo, hi, nibbles & 0x7777u) | sign;
    }
    if constexpr (kMode == probe::kCompute) {
      acc ^= o[0] ^ o[1] ^ o[2] ^ o[3];
    } else {
      __stcs(reinterpret_cast<uint4*>(out + b * kBlock), make_uint4(o[0], o[1], o[2], o[3]));
    }
  }
  probe::sink(acc, sink);
}

}  // namespace v0
