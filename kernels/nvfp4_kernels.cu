// NVFP4 kernels for the KV-cache path, portable to sm_89 / sm_90a / sm_120a / sm_121a:
//   quantize    BF16 or FP32 [rows, cols] -> packed E2M1 [rows, cols/2] + E4M3 scales
//               [rows, cols/16] (linear, or the 128x4 swizzled layout GEMMs read)
//   dequantize  NVFP4 -> BF16, and NVFP4 -> FP8 E4M3 (KV path: fp8 = e2m1 * sf / 8)
//   fp8 probe   __nv_cvt_float_to_fp8 against float_to_fp8_e4m3_sw over float32 bit patterns
// One thread handles one 16-element block (32 B of BF16 <-> 8 B of E2M1 + 1 scale byte), in a flat
// grid (see below). The extern "C" functions at the end are the host API that
// tools/kernel_build.py loads with ctypes for correctness runs and bandwidth timing.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "nvfp4.cuh"

using nvfp4::kBlock;

namespace {

// One thread per 16-element block (the arithmetic is per block: one scale, one reciprocal, one
// 8-entry table), and a flat grid: every thread handles one block and exits, and the hardware
// scheduler hands out thread blocks as SMs free up. A persistent grid-stride loop over one wave
// of thread blocks streamed ~8% slower on the H200, the same for a plain copy (kernels/README.md).
// Every global load and store instruction covers whole 32-byte sectors. The BF16 dequantize
// output would not (32 B per block, written as two 16-byte halves 32 B apart), so each warp moves
// its 32 blocks' output, 1 KiB, through shared memory: chunks 2l and 2l + 1 in from lane l,
// chunks l and l + 32 out. Half-sector requests had made it L2-bound on the H200.

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTileBlocks = 32;  // blocks per warp tile: 1 KiB of BF16, 64 chunks of 16 bytes

// Shared-memory slot of chunk c (0..63) of a warp's tile: XOR-ing bit 3 into bit 0 keeps each
// 8-lane phase of a 16-byte access on distinct banks both for chunks (l, l + 32) and (2l, 2l + 1).
__device__ inline int stage_slot(int c) { return c ^ ((c >> 3) & 1); }

// BF16 pair in one word -> two floats (element 2i is the low half).
__device__ inline void bf16x2_to_float(uint32_t w, float* out) {
  out[0] = __uint_as_float(w << 16);
  out[1] = __uint_as_float(w & 0xFFFF0000u);
}

struct QuantBlock {
  uint2 packed;
  uint8_t scale;
};

// One block of 16 floats -> 8 bytes of E2M1 and its E4M3 scale (TransformerEngine's order, see
// kernels/README.md): sf = e4m3(vmax * S_enc/6), q = e2m1(x * rcp_rn(fp32(sf) * (1/S_enc))).
// kApproxRcp (kernels/probe only, not exact) swaps the IEEE reciprocal for rcp.approx to time it.
template <bool kApproxRcp = false>
__device__ inline QuantBlock quantize_block(const float* v, float scale_coef, float s_dec) {
  // max.NaN, as numpy's max: a NaN element makes vmax NaN, so such a block never takes the
  // encoder's unsaturated path below (NaN inputs are outside the contract, but must not spill
  // into their neighbours' nibbles).
  float vmax = 0.0f;
#pragma unroll
  for (int i = 0; i < kBlock; ++i) asm("max.NaN.f32 %0, %0, %1;" : "+f"(vmax) : "f"(fabsf(v[i])));
  const uint8_t sf = nvfp4::fp8_nonneg(vmax * scale_coef);
  const float dec = nvfp4::e4m3_decode(sf) * s_dec;
  float enc = dec == 0.0f ? 0.0f : __frcp_rn(dec);  // correctly rounded: equals 1.0f / dec
  if constexpr (kApproxRcp) asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(enc) : "f"(dec));
  // Every |x * enc| <= fl(vmax * enc) (rounding is monotone), so below 7 no E2M1 code can pass 7
  // and the encoder needs no saturation: true for every block whose scale is a normal E4M3 below
  // 448 (|x * enc| <= 6 * 17/16 there). Blocks with a subnormal, saturated or underflowing scale
  // take the saturating encoder.
  if (vmax * enc < 7.0f)
    return {make_uint2(nvfp4::encode_e2m1x8<false>(v, enc), nvfp4::encode_e2m1x8<false>(v + 8, enc)), sf};
  return {make_uint2(nvfp4::encode_e2m1x8<true>(v, enc), nvfp4::encode_e2m1x8<true>(v + 8, enc)), sf};
}

// Quantize keeps one thread per block and its own two 16-byte loads 32 B apart: each sector is read
// whole by one thread's pair, and the memory-only probe moves these bytes as fast as coalesced
// chunks (kernels/README.md), while staging through shared memory cost registers and occupancy.
// kSwizzle: scales in the 128x4 layout GEMMs read; a template parameter so that the linear kernel
// carries no 64-bit division (~100 instructions and the registers of full occupancy).
template <typename T, bool kSwizzle>
__global__ void __launch_bounds__(kThreads) quantize_kernel(const T* __restrict__ x, int64_t n_blocks,
                                                            int64_t blocks_per_row, float s_enc,
                                                            uint8_t* __restrict__ packed, uint8_t* __restrict__ scales) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (b >= n_blocks) return;
  float v[kBlock];
  if constexpr (sizeof(T) == 2) {
    const uint4* src = reinterpret_cast<const uint4*>(x + b * kBlock);
    const uint4 r0 = __ldcs(src), r1 = __ldcs(src + 1);  // streamed: every byte is read once
    const uint32_t w[8] = {r0.x, r0.y, r0.z, r0.w, r1.x, r1.y, r1.z, r1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) bf16x2_to_float(w[i], v + 2 * i);
  } else {  // FP32 input (the correctness path)
    const float4* src = reinterpret_cast<const float4*>(x + b * kBlock);
#pragma unroll
    for (int i = 0; i < kBlock / 4; ++i) {
      const float4 f = __ldcs(src + i);
      v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
    }
  }
  const QuantBlock q = quantize_block(v, s_enc * (1.0f / 6.0f), 1.0f / s_enc);
  __stcs(reinterpret_cast<uint2*>(packed + b * (kBlock / 2)), q.packed);  // 256 B per warp
  scales[kSwizzle ? nvfp4::swizzle_offset(b / blocks_per_row, b % blocks_per_row, blocks_per_row) : b] = q.scale;
}

// Byte k of the result is 0xFF where element k of the 4-element group `g` (0..3) of the packed
// block is negative: the E2M1 sign is bit 3 of a nibble, so `q << 4` lifts the even elements'
// sign to a byte's top bit and PRMT's sign-replicate mode (selector bit 3) spreads it.
__device__ inline uint32_t negative_bytes(uint2 q, int g) {
  const uint32_t word = g < 2 ? q.x : q.y;
  return __byte_perm(word << 4, word, (g & 1) ? 0xFBEA : 0xD9C8);
}

// The 4 E2M1 magnitudes (selector nibbles 0..7, sign bits cleared) of group g.
__device__ inline uint32_t magnitude_selector(uint2 q, int g) {
  return ((g < 2 ? q.x : q.y) >> (16 * (g & 1))) & 0x7777u;
}

// A block has one scale, so its 16 elements take at most 8 magnitudes: each kernel converts those
// 8 once (exactly as the reference rounds each element) into a byte table, and PRMT picks a byte
// per element with the E2M1 magnitude as the selector.
__device__ constexpr float kE2m1Values[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// 16 E2M1 nibbles + scale -> 16 BF16 of e2m1(q) * fp32(sf) * (1/S_enc).
__device__ inline uint4 dequantize_bf16_half(uint32_t lo_tab0, uint32_t lo_tab1, uint32_t hi_tab0, uint32_t hi_tab1,
                                              uint2 q, int g0) {
  uint32_t o[4];
#pragma unroll
  for (int g = g0; g < g0 + 2; ++g) {
    const uint32_t sel = magnitude_selector(q, g);
    const uint32_t lo = __byte_perm(lo_tab0, lo_tab1, sel);
    const uint32_t hi = __byte_perm(hi_tab0, hi_tab1, sel) | (negative_bytes(q, g) & 0x80808080u);
    o[2 * (g - g0)] = __byte_perm(lo, hi, 0x5140);  // elements 4g, 4g+1
    o[2 * (g - g0) + 1] = __byte_perm(lo, hi, 0x7362);
  }
  return make_uint4(o[0], o[1], o[2], o[3]);
}

struct Bf16Block {
  uint4 lo, hi;
};

__device__ inline Bf16Block dequantize_bf16_block(uint2 q, uint8_t scale, float s_dec) {
  const float sf = nvfp4::e4m3_decode(scale);
  uint32_t pair[4];  // BF16 of magnitudes 2k, 2k+1
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(kE2m1Values[2 * k] * sf * s_dec, kE2m1Values[2 * k + 1] * sf * s_dec);
    pair[k] = *reinterpret_cast<const uint32_t*>(&h);
  }
  const uint32_t lo0 = __byte_perm(pair[0], pair[1], 0x6420), hi0 = __byte_perm(pair[0], pair[1], 0x7531);
  const uint32_t lo1 = __byte_perm(pair[2], pair[3], 0x6420), hi1 = __byte_perm(pair[2], pair[3], 0x7531);
  return {dequantize_bf16_half(lo0, lo1, hi0, hi1, q, 0), dequantize_bf16_half(lo0, lo1, hi0, hi1, q, 2)};
}

// 16 E2M1 nibbles + scale -> 16 E4M3 codes of e2m1(q) * fp32(sf) / 8 (the FP8 tensor's scale is
// 8 / S_enc, so values stay at or below 336 < 448).
__device__ inline uint4 dequantize_fp8_block(uint2 q, uint8_t scale) {
  const float sf8 = nvfp4::e4m3_decode(scale) * 0.125f;  // m * sf / 8 is exact for every m
  uint32_t c[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) c[k] = nvfp4::fp8x2_nonneg(kE2m1Values[2 * k] * sf8, kE2m1Values[2 * k + 1] * sf8);
  const uint32_t tab0 = __byte_perm(c[0], c[1], 0x5410), tab1 = __byte_perm(c[2], c[3], 0x5410);
  uint32_t o[4];
#pragma unroll
  for (int g = 0; g < 4; ++g)
    o[g] = __byte_perm(tab0, tab1, magnitude_selector(q, g)) | (negative_bytes(q, g) & 0x80808080u);
  return make_uint4(o[0], o[1], o[2], o[3]);
}

__global__ void __launch_bounds__(kThreads) dequantize_bf16_kernel(const uint8_t* __restrict__ packed,
                                                                   const uint8_t* __restrict__ scales,
                                                                   int64_t n_blocks, float s_dec,
                                                                   __nv_bfloat16* __restrict__ out) {
  __shared__ uint4 stage[kWarps][2 * kTileBlocks];
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  const int64_t b = tile * kTileBlocks + lane;
  if (tile * kTileBlocks >= n_blocks) return;  // the whole warp: no lane is left at __syncwarp
  Bf16Block o{};
  if (b < n_blocks) {
    const uint2 q = __ldcs(reinterpret_cast<const uint2*>(packed + b * (kBlock / 2)));  // 256 B per warp
    o = dequantize_bf16_block(q, __ldcs(scales + b), s_dec);
  }
  uint4* tile_stage = stage[warp];
  tile_stage[stage_slot(2 * lane)] = o.lo;
  tile_stage[stage_slot(2 * lane + 1)] = o.hi;
  __syncwarp();
  uint4* dst = reinterpret_cast<uint4*>(out) + tile * 2 * kTileBlocks;
  const int64_t chunks = 2 * (n_blocks - tile * kTileBlocks);
  if (lane < chunks) __stcs(dst + lane, tile_stage[stage_slot(lane)]);  // 512 B per instruction
  if (lane + 32 < chunks) __stcs(dst + lane + 32, tile_stage[stage_slot(lane + 32)]);
}

// 16 bytes out per block: each thread's own store already covers whole sectors.
__global__ void __launch_bounds__(kThreads) dequantize_fp8_kernel(const uint8_t* __restrict__ packed,
                                                                  const uint8_t* __restrict__ scales,
                                                                  int64_t n_blocks, uint8_t* __restrict__ out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (b >= n_blocks) return;
  const uint2 q = __ldcs(reinterpret_cast<const uint2*>(packed + b * (kBlock / 2)));
  __stcs(reinterpret_cast<uint4*>(out + b * kBlock), dequantize_fp8_block(q, __ldcs(scales + b)));
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

// A flat grid: one thread per item (the kernels above handle one block per thread, or one
// 32-block tile per warp), so the whole input is in the launch and no thread loops.
int64_t flat_grid(int64_t n_items, int items_per_cta) { return std::max<int64_t>(1, (n_items + items_per_cta - 1) / items_per_cta); }
int quantize_grid(int64_t n_blocks) { return static_cast<int>(flat_grid(n_blocks, kThreads)); }
int dequantize_bf16_grid(int64_t n_blocks) { return static_cast<int>(flat_grid(n_blocks, kThreads)); }  // 8 tiles of 32
int dequantize_fp8_grid(int64_t n_blocks) { return static_cast<int>(flat_grid(n_blocks, kThreads)); }

// The helpers' grid-stride loops (fill, FP8 probe): one wave of thread blocks.
template <typename Kernel>
int grid_for(Kernel kernel, int64_t n_items, int threads) {
  int device = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0);
  const int64_t needed = (n_items + threads - 1) / threads;
  const int64_t wave = static_cast<int64_t>(sms) * std::max(per_sm, 1);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(needed, wave)));
}

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
  if (swizzle)
    quantize_kernel<T, true><<<quantize_grid(n_blocks), kThreads>>>(d_x, n_blocks, cols / kBlock, s_enc, d_p, d_s);
  else
    quantize_kernel<T, false><<<quantize_grid(n_blocks), kThreads>>>(d_x, n_blocks, cols / kBlock, s_enc, d_p, d_s);
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
  dequantize_bf16_kernel<<<dequantize_bf16_grid(n_blocks), kThreads>>>(d_p, d_s, n_blocks,
                                                                                             1.0f / s_enc, d_bf);
  dequantize_fp8_kernel<<<dequantize_fp8_grid(n_blocks), kThreads>>>(d_p, d_s, n_blocks, d_f8);
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
  fp8_probe_kernel<<<grid_for(fp8_probe_kernel, static_cast<int64_t>(std::min<uint64_t>(count, 1ull << 40)), kThreads), kThreads>>>(
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
  fill_kernel<<<grid_for(fill_kernel, n, kThreads), kThreads>>>(d_x, n, 12345u);
  const int q_grid = quantize_grid(n_blocks), bf_grid = dequantize_bf16_grid(n_blocks);
  const int f8_grid = dequantize_fp8_grid(n_blocks);
  const float s_enc = 448.0f * 6.0f / 4.0f;
  *copy_ms = time_median([&] { cudaMemcpyAsync(d_copy, d_x, n * 2, cudaMemcpyDeviceToDevice); }, iters);
  *quant_ms = time_median([&] { quantize_kernel<__nv_bfloat16, false><<<q_grid, kThreads>>>(d_x, n_blocks, n_blocks, s_enc, d_p, d_s); }, iters);
  *deq_bf16_ms = time_median([&] { dequantize_bf16_kernel<<<bf_grid, kThreads>>>(d_p, d_s, n_blocks, 1.0f / s_enc, d_bf); }, iters);
  *deq_fp8_ms = time_median([&] { dequantize_fp8_kernel<<<f8_grid, kThreads>>>(d_p, d_s, n_blocks, d_f8); }, iters);
  const int err = static_cast<int>(cudaGetLastError());
  cudaFree(d_x), cudaFree(d_copy), cudaFree(d_bf), cudaFree(d_p), cudaFree(d_s), cudaFree(d_f8);
  return err;
}

}  // extern "C"
