// NVFP4 kernels for the KV-cache path, portable to sm_89 / sm_90a / sm_120a / sm_121a:
//   quantize    BF16 or FP32 [rows, cols] -> packed E2M1 [rows, cols/2] + E4M3 scales
//               [rows, cols/16] (linear, or the 128x4 swizzled layout GEMMs read)
//   dequantize  NVFP4 -> BF16, and NVFP4 -> FP8 E4M3 (KV path: fp8 = e2m1 * sf / 8)
//   fp8 probe   __nv_cvt_float_to_fp8 against float_to_fp8_e4m3_sw over float32 bit patterns
// One thread handles one 16-element block: 32 B of BF16 in, 8 B + 1 scale byte out, so a warp
// reads 1 KiB and writes 256 B contiguously. The extern "C" functions below are the host API
// that tools/kernel_build.py loads with ctypes for correctness runs and bandwidth timing.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "nvfp4.cuh"

using nvfp4::kBlock;

namespace {


// One thread per 16-element block: 32 B of BF16 in (two 16-byte streaming loads), 8 B of E2M1 and
// one scale byte out. (Two lanes per block with a shuffle for the maximum coalesces the loads
// better but doubles the per-block work: measured slower on H100, 61% of copy bandwidth.)
template <typename T>
__global__ void quantize_kernel(const T* __restrict__ x, int64_t n_blocks, int64_t blocks_per_row,
                                float s_enc, int swizzle, uint8_t* __restrict__ packed,
                                uint8_t* __restrict__ scales) {
  const float scale_coef = s_enc * (1.0f / 6.0f);
  const float s_dec = 1.0f / s_enc;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[kBlock];
    if constexpr (sizeof(T) == 2) {
      const uint4* src = reinterpret_cast<const uint4*>(x + b * kBlock);
      uint4 raw[2] = {__ldcs(src), __ldcs(src + 1)};  // streamed: every byte is read once
      const __nv_bfloat16* h = reinterpret_cast<const __nv_bfloat16*>(raw);
#pragma unroll
      for (int i = 0; i < kBlock; ++i) v[i] = __bfloat162float(h[i]);
    } else {
      const float4* src = reinterpret_cast<const float4*>(x + b * kBlock);
#pragma unroll
      for (int i = 0; i < kBlock / 4; ++i) {
        const float4 f = __ldcs(src + i);
        v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
      }
    }
    float vmax = 0.0f;
#pragma unroll
    for (int i = 0; i < kBlock; ++i) vmax = fmaxf(vmax, fabsf(v[i]));
    const uint8_t sf = nvfp4::fp8_e4m3_nonneg_sat(vmax * scale_coef);
    const float dec = nvfp4::e4m3_to_float(sf) * s_dec;
    const float enc = dec == 0.0f ? 0.0f : __frcp_rn(dec);  // correctly rounded: equals 1.0f / dec
    uint8_t out[kBlock / 2];
#pragma unroll
    for (int i = 0; i < kBlock / 2; ++i) out[i] = nvfp4::pack_e2m1x2(v[2 * i] * enc, v[2 * i + 1] * enc);
    __stcs(reinterpret_cast<uint2*>(packed + b * (kBlock / 2)), *reinterpret_cast<const uint2*>(out));
    // 64-bit division costs ~100 instructions: only the swizzled layout needs (row, kb)
    scales[swizzle ? nvfp4::swizzle_offset(b / blocks_per_row, b % blocks_per_row, blocks_per_row) : b] = sf;
  }
}

__global__ void dequantize_bf16_kernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                                       int64_t n_blocks, float s_dec, __nv_bfloat16* __restrict__ out) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint2 q = *reinterpret_cast<const uint2*>(packed + b * (kBlock / 2));
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&q);
    const float sf = nvfp4::e4m3_to_float(scales[b]);
    __align__(16) __nv_bfloat16 h[kBlock];
#pragma unroll
    for (int i = 0; i < kBlock / 2; ++i) {
      h[2 * i] = __float2bfloat16_rn(nvfp4::e2m1_to_float(bytes[i] & 0xF) * sf * s_dec);
      h[2 * i + 1] = __float2bfloat16_rn(nvfp4::e2m1_to_float(bytes[i] >> 4) * sf * s_dec);
    }
    uint4* dst = reinterpret_cast<uint4*>(out + b * kBlock);
    __stcs(dst, reinterpret_cast<const uint4*>(h)[0]);
    __stcs(dst + 1, reinterpret_cast<const uint4*>(h)[1]);
  }
}

__global__ void dequantize_fp8_kernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                                      int64_t n_blocks, uint8_t* __restrict__ out) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint2 q = __ldcs(reinterpret_cast<const uint2*>(packed + b * (kBlock / 2)));
    const float sf8 = nvfp4::e4m3_to_float(scales[b]) * 0.125f;  // FP8 tensor scale is 8 / S_enc
    // A block has one scale, so its 16 elements take at most 8 magnitudes: convert those once,
    // keep the 8 codes in two registers, and let PRMT pick a byte per element (selector nibble
    // = the E2M1 magnitude; bit 3 cleared so PRMT copies rather than sign-replicates).
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      lo |= static_cast<uint32_t>(nvfp4::fp8_e4m3_nonneg_sat(nvfp4::e2m1_to_float(static_cast<uint8_t>(m)) * sf8)) << (8 * m);
      hi |= static_cast<uint32_t>(nvfp4::fp8_e4m3_nonneg_sat(nvfp4::e2m1_to_float(static_cast<uint8_t>(m + 4)) * sf8)) << (8 * m);
    }
    uint32_t o[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const uint32_t nibbles = (w < 2 ? q.x : q.y) >> (16 * (w & 1));  // 4 elements in 16 bits
      const uint32_t sign = ((nibbles & 0x8u) << 4) | ((nibbles & 0x80u) << 8) | ((nibbles & 0x800u) << 12) |
                            ((nibbles & 0x8000u) << 16);
      o[w] = __byte_perm(lo, hi, nibbles & 0x7777u) | sign;
    }
    __stcs(reinterpret_cast<uint4*>(out + b * kBlock), make_uint4(o[0], o[1], o[2], o[3]));
  }
}

// Every float32 bit pattern in [start, start + count): intrinsic vs software encoder.
__global__ void fp8_probe_kernel(uint64_t start, uint64_t count, unsigned long long* mismatches,
                                 uint32_t* examples, int max_examples) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint32_t bits = static_cast<uint32_t>(start + i);
    float x;
    memcpy(&x, &bits, 4);
    const uint8_t hw = static_cast<uint8_t>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3));
    const uint8_t sw = nvfp4::float_to_fp8_e4m3_sw(x);
    const bool both_nan = (hw & 0x7F) == 0x7F && (sw & 0x7F) == 0x7F;
    if (hw != sw && !both_nan) {
      const unsigned long long n = atomicAdd(mismatches, 1ull);
      if (n < static_cast<unsigned long long>(max_examples)) examples[n] = bits;
    }
  }
}

__global__ void fill_kernel(__nv_bfloat16* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
    x[i] = __float2bfloat16_rn((static_cast<float>(h) / 4294967296.0f - 0.5f) * 8.0f);
  }
}

int grid_for(int64_t n_items, int threads) {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const int64_t needed = (n_items + threads - 1) / threads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(needed, static_cast<int64_t>(sms) * 32)));
}

constexpr int kThreads = 256;

template <typename T>
int quantize_host(const T* x, int64_t rows, int64_t cols, float s_enc, int swizzle, uint8_t* packed,
                  uint8_t* scales, int64_t scales_bytes) {
  if (cols % kBlock != 0) return -1;
  const int64_t n = rows * cols, n_blocks = n / kBlock;
  T* d_x = nullptr;
  uint8_t *d_p = nullptr, *d_s = nullptr;
  cudaMalloc(&d_x, n * sizeof(T));
  cudaMalloc(&d_p, n / 2);
  cudaMalloc(&d_s, scales_bytes);
  cudaMemcpy(d_x, x, n * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemset(d_p, 0xA5, n / 2);  // poisoned: a byte the kernel forgets shows up in the comparison
  cudaMemset(d_s, swizzle ? 0 : 0xA5, scales_bytes);  // swizzle padding must read 0
  quantize_kernel<T><<<grid_for(n_blocks, kThreads), kThreads>>>(d_x, n_blocks, cols / kBlock, s_enc, swizzle, d_p, d_s);
  cudaMemcpy(packed, d_p, n / 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(scales, d_s, scales_bytes, cudaMemcpyDeviceToHost);
  const int err = static_cast<int>(cudaGetLastError());
  cudaFree(d_x), cudaFree(d_p), cudaFree(d_s);
  return err;
}

float median_ms(std::vector<float>& samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

template <typename Launch>
float time_median(Launch launch, int iters) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start), cudaEventCreate(&stop);
  for (int i = 0; i < 3; ++i) launch();  // warm-up
  std::vector<float> samples;
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(start);
    launch();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    samples.push_back(ms);
  }
  cudaEventDestroy(start), cudaEventDestroy(stop);
  return median_ms(samples);
}

}  // namespace

extern "C" {

int nvfp4_quantize_bf16(const uint16_t* x, int64_t rows, int64_t cols, float s_enc, int swizzle, uint8_t* packed,
                        uint8_t* scales, int64_t scales_bytes) {
  return quantize_host(reinterpret_cast<const __nv_bfloat16*>(x), rows, cols, s_enc, swizzle, packed, scales,
                       scales_bytes);
}

int nvfp4_quantize_f32(const float* x, int64_t rows, int64_t cols, float s_enc, int swizzle, uint8_t* packed,
                       uint8_t* scales, int64_t scales_bytes) {
  return quantize_host(x, rows, cols, s_enc, swizzle, packed, scales, scales_bytes);
}

int nvfp4_dequantize(const uint8_t* packed, const uint8_t* scales, int64_t n, float s_enc, uint16_t* out_bf16,
                     uint8_t* out_fp8) {
  const int64_t n_blocks = n / kBlock;
  uint8_t *d_p = nullptr, *d_s = nullptr, *d_f8 = nullptr;
  __nv_bfloat16* d_bf = nullptr;
  cudaMalloc(&d_p, n / 2), cudaMalloc(&d_s, n_blocks), cudaMalloc(&d_bf, n * 2), cudaMalloc(&d_f8, n);
  cudaMemcpy(d_p, packed, n / 2, cudaMemcpyHostToDevice);
  cudaMemcpy(d_s, scales, n_blocks, cudaMemcpyHostToDevice);
  cudaMemset(d_bf, 0xA5, n * 2), cudaMemset(d_f8, 0xA5, n);
  const int grid = grid_for(n_blocks, kThreads);
  dequantize_bf16_kernel<<<grid, kThreads>>>(d_p, d_s, n_blocks, 1.0f / s_enc, d_bf);
  dequantize_fp8_kernel<<<grid, kThreads>>>(d_p, d_s, n_blocks, d_f8);
  cudaMemcpy(out_bf16, d_bf, n * 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(out_fp8, d_f8, n, cudaMemcpyDeviceToHost);
  const int err = static_cast<int>(cudaGetLastError());
  cudaFree(d_p), cudaFree(d_s), cudaFree(d_bf), cudaFree(d_f8);
  return err;
}

// Counts float32 bit patterns in [start, start+count) where the intrinsic and the software
// encoder disagree (NaN vs NaN counts as agreement); the first mismatches go to `examples`.
int fp8_probe(uint64_t start, uint64_t count, unsigned long long* mismatches, uint32_t* examples, int max_examples) {
  unsigned long long* d_n = nullptr;
  uint32_t* d_ex = nullptr;
  cudaMalloc(&d_n, sizeof(unsigned long long)), cudaMalloc(&d_ex, sizeof(uint32_t) * std::max(1, max_examples));
  cudaMemset(d_n, 0, sizeof(unsigned long long));
  fp8_probe_kernel<<<grid_for(static_cast<int64_t>(std::min<uint64_t>(count, 1ull << 40)), kThreads), kThreads>>>(
      start, count, d_n, d_ex, max_examples);
  cudaMemcpy(mismatches, d_n, sizeof(unsigned long long), cudaMemcpyDeviceToHost);
  cudaMemcpy(examples, d_ex, sizeof(uint32_t) * std::max(1, max_examples), cudaMemcpyDeviceToHost);
  const int err = static_cast<int>(cudaGetLastError());
  cudaFree(d_n), cudaFree(d_ex);
  return err;
}

// Median milliseconds of: a device-to-device copy of 2n bytes (the bandwidth yardstick), the
// BF16 quantize of n elements, and the two dequantize kernels, each after warm-up.
int nvfp4_bench(int64_t n, int iters, float* copy_ms, float* quant_ms, float* deq_bf16_ms, float* deq_fp8_ms) {
  const int64_t n_blocks = n / kBlock;
  __nv_bfloat16 *d_x = nullptr, *d_copy = nullptr, *d_bf = nullptr;
  uint8_t *d_p = nullptr, *d_s = nullptr, *d_f8 = nullptr;
  cudaMalloc(&d_x, n * 2), cudaMalloc(&d_copy, n * 2), cudaMalloc(&d_bf, n * 2);
  cudaMalloc(&d_p, n / 2), cudaMalloc(&d_s, n_blocks), cudaMalloc(&d_f8, n);
  fill_kernel<<<grid_for(n, kThreads), kThreads>>>(d_x, n, 12345u);
  const int grid = grid_for(n_blocks, kThreads);
  const float s_enc = 448.0f * 6.0f / 4.0f;
  *copy_ms = time_median([&] { cudaMemcpyAsync(d_copy, d_x, n * 2, cudaMemcpyDeviceToDevice); }, iters);
  *quant_ms = time_median([&] { quantize_kernel<__nv_bfloat16><<<grid, kThreads>>>(d_x, n_blocks, n_blocks, s_enc, 0, d_p, d_s); }, iters);
  *deq_bf16_ms = time_median([&] { dequantize_bf16_kernel<<<grid, kThreads>>>(d_p, d_s, n_blocks, 1.0f / s_enc, d_bf); }, iters);
  *deq_fp8_ms = time_median([&] { dequantize_fp8_kernel<<<grid, kThreads>>>(d_p, d_s, n_blocks, d_f8); }, iters);
  const int err = static_cast<int>(cudaGetLastError());
  cudaFree(d_x), cudaFree(d_copy), cudaFree(d_bf), cudaFree(d_p), cudaFree(d_s), cudaFree(d_f8);
  return err;
}

}  // extern "C"
