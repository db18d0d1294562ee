// Why the NVFP4 kernels run at the speed they do on the GPU here: every kernel, old (v0, as
// measured on the H100) and current (v1, kernels/nvfp4_kernels.cu), timed beside a
// device-to-device copy in one process, plus variants that isolate one cost each:
//   compute   inputs made from the index, outputs folded into a register: the arithmetic alone;
//   memory    the kernel's exact loads and stores with no arithmetic: the access pattern alone;
//   rcp~      rcp.approx instead of the IEEE reciprocal (__frcp_rn): the reciprocal's cost;
//   hw-fp8    v0's FP8 dequantize with the hardware E4M3 conversion: the software encoder's cost;
//   g32       the old grid of 32 thread blocks per SM (a partial last wave) instead of one wave.
// A variant's "of copy" is the bytes the full kernel moves over its time, against the copy's
// bytes over the copy's time: a compute variant under 100% cannot keep up with memory.
//
//   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/probe/nvfp4_probe.cu -o probe
//   ./probe [log2n=28] [iters=50] [v1only]     timing table
//   ./probe ncu [log2n=27]                     each full kernel once, for Nsight Compute
// Build with -DNVFP4_UNROLL=2 or -DNVFP4_HW_FP8=0 to time those choices (v1only).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../nvfp4_kernels.cu"
#include "nvfp4_v0.cuh"

namespace {

__global__ void __launch_bounds__(256) q_v1_compute(int64_t n_blocks, float s_enc, uint32_t* out) {
  const float scale_coef = s_enc * (1.0f / 6.0f), s_dec = 1.0f / s_enc;
  uint32_t acc = 0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[kBlock];
#pragma unroll
    for (int i = 0; i < 8; ++i) bf16x2_to_float(probe::synth_word(b, i), v + 2 * i);
    const QuantBlock q = quantize_block(v, scale_coef, s_dec);
    acc ^= q.packed.x ^ q.packed.y ^ q.scale;
  }
  probe::sink(acc, out);
}

__global__ void __launch_bounds__(256) q_v1_approx_rcp(const __nv_bfloat16* __restrict__ x, int64_t n_blocks,
                                                       float s_enc, uint8_t* __restrict__ packed,
                                                       uint8_t* __restrict__ scales) {
  const float scale_coef = s_enc * (1.0f / 6.0f), s_dec = 1.0f / s_enc;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[kBlock];
    load_block(x, b, v);
    float vmax = 0.0f;
#pragma unroll
    for (int i = 0; i < kBlock; ++i) vmax = fmaxf(vmax, fabsf(v[i]));
    const uint8_t sf = nvfp4::fp8_nonneg(vmax * scale_coef);
    float enc;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(enc) : "f"(nvfp4::e4m3_decode(sf) * s_dec));
    float p[kBlock];
#pragma unroll
    for (int i = 0; i < kBlock; ++i) p[i] = v[i] * enc;
    __stcs(reinterpret_cast<uint2*>(packed + b * 8), make_uint2(nvfp4::encode_e2m1x8(p), nvfp4::encode_e2m1x8(p + 8)));
    scales[b] = sf;
  }
}

__global__ void __launch_bounds__(256) deq_bf16_v1_compute(int64_t n_blocks, float s_dec, uint32_t* out) {
  uint32_t acc = 0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint2 q = make_uint2(probe::synth_word(b, 0), probe::synth_word(b, 1));
    const Bf16Block o = dequantize_bf16_block(q, static_cast<uint8_t>(0x30 | (q.x >> 28)), s_dec);
    acc ^= o.lo.x ^ o.lo.y ^ o.lo.z ^ o.lo.w ^ o.hi.x ^ o.hi.y ^ o.hi.z ^ o.hi.w;
  }
  probe::sink(acc, out);
}

__global__ void __launch_bounds__(256) deq_fp8_v1_compute(int64_t n_blocks, uint32_t* out) {
  uint32_t acc = 0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint2 q = make_uint2(probe::synth_word(b, 0), probe::synth_word(b, 1));
    const uint4 o = dequantize_fp8_block(q, static_cast<uint8_t>(0x30 | (q.x >> 28)));
    acc ^= o.x ^ o.y ^ o.z ^ o.w;
  }
  probe::sink(acc, out);
}

// The kernels' memory traffic alone: the same loads and stores, one XOR in between.
__global__ void __launch_bounds__(256) q_memory(const __nv_bfloat16* __restrict__ x, int64_t n_blocks,
                                                uint8_t* __restrict__ packed, uint8_t* __restrict__ scales) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4* src = reinterpret_cast<const uint4*>(x + b * kBlock);
    const uint4 r0 = __ldcs(src), r1 = __ldcs(src + 1);
    __stcs(reinterpret_cast<uint2*>(packed + b * 8), make_uint2(r0.x ^ r0.y ^ r1.x ^ r1.y, r0.z ^ r0.w ^ r1.z ^ r1.w));
    scales[b] = static_cast<uint8_t>(r0.x);
  }
}

template <int kOutBytes>
__global__ void __launch_bounds__(256) deq_memory(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                                                  int64_t n_blocks, uint8_t* __restrict__ out) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint2 q = __ldcs(reinterpret_cast<const uint2*>(packed + b * 8));
    const uint32_t s = __ldcs(scales + b);
    uint4* dst = reinterpret_cast<uint4*>(out + b * kOutBytes);
    __stcs(dst, make_uint4(q.x, q.y, s, q.x ^ s));
    if constexpr (kOutBytes == 32) __stcs(dst + 1, make_uint4(q.y, q.x, s, q.y ^ s));
  }
}

template <typename Kernel>
int grid_g32(Kernel, int64_t n_items) {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n_items + kThreads - 1) / kThreads, sms * 32)));
}

struct Row {
  std::string name;
  double ms, bytes;
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    exit(1);
  }
}

template <typename Kernel>
void describe(const char* name, Kernel kernel, int bytes_in_per_thread) {
  cudaFuncAttributes a{};
  int per_sm = 0, sms = 0;
  cudaFuncGetAttributes(&a, kernel);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int threads = per_sm * kThreads;
  printf("%-26s %3d regs  %d blocks/SM = %4d threads (%3.0f%%)  loads in flight/SM if all wait: %3d KiB"
         "  one-wave grid %d, g32 grid %d (%.2f waves)\n",
         name, a.numRegs, per_sm, threads, 100.0 * threads / 2048, threads * bytes_in_per_thread / 1024,
         sms * per_sm, sms * 32, 32.0 / std::max(per_sm, 1));
}

}  // namespace

int main(int argc, char** argv) {
  const bool ncu = argc > 1 && !strcmp(argv[1], "ncu");
  const int arg0 = ncu ? 2 : 1;
  const int log2n = argc > arg0 ? atoi(argv[arg0]) : (ncu ? 27 : 28);
  const int iters = argc > arg0 + 1 ? atoi(argv[arg0 + 1]) : 50;
  const bool v1only = argc > arg0 + 2 && !strcmp(argv[arg0 + 2], "v1only");
  const int64_t n = int64_t{1} << log2n, nb = n / kBlock;
  __nv_bfloat16 *x = nullptr, *copy = nullptr, *bf = nullptr;
  uint8_t *packed = nullptr, *scales = nullptr, *f8 = nullptr;
  uint32_t* sinkbuf = nullptr;
  check(cudaMalloc(&x, n * 2), "malloc"), check(cudaMalloc(&copy, n * 2), "malloc"), check(cudaMalloc(&bf, n * 2), "malloc");
  check(cudaMalloc(&packed, n / 2), "malloc"), check(cudaMalloc(&scales, nb), "malloc"), check(cudaMalloc(&f8, n), "malloc");
  check(cudaMalloc(&sinkbuf, 4096), "malloc");
  fill_kernel<<<grid_for(fill_kernel, n, kThreads), kThreads>>>(x, n, 12345u);
  const float s_enc = 448.0f * 6.0f / 4.0f, s_dec = 1.0f / s_enc;
  auto qk = quantize_kernel<__nv_bfloat16>;
  qk<<<grid_for(qk, nb, kThreads), kThreads>>>(x, nb, nb, s_enc, 0, packed, scales);
  check(cudaDeviceSynchronize(), "setup");

  if (ncu) {  // one launch of each full kernel: v0 on its old grid, v1 on one wave
    v0::quantize_kernel<probe::kFull><<<grid_g32(0, nb), kThreads>>>(x, nb, s_enc, packed, scales, sinkbuf);
    v0::dequantize_bf16_kernel<probe::kFull><<<grid_g32(0, nb), kThreads>>>(packed, scales, nb, s_dec, bf, sinkbuf);
    v0::dequantize_fp8_kernel<probe::kFull><<<grid_g32(0, nb), kThreads>>>(packed, scales, nb, f8, sinkbuf);
    qk<<<grid_for(qk, nb, kThreads), kThreads>>>(x, nb, nb, s_enc, 0, packed, scales);
    dequantize_bf16_kernel<<<grid_for(dequantize_bf16_kernel, nb, kThreads), kThreads>>>(packed, scales, nb, s_dec, bf);
    dequantize_fp8_kernel<<<grid_for(dequantize_fp8_kernel, nb, kThreads), kThreads>>>(packed, scales, nb, f8);
    check(cudaDeviceSynchronize(), "ncu launches");
    return 0;
  }

  const double QB = 2.0 * n + n / 2 + n / 16, DB = n / 2 + n / 16 + 2.0 * n, DF = n / 2 + n / 16 + 1.0 * n;
  std::vector<Row> rows;
  auto time = [&](const std::string& name, double bytes, auto launch) {
    const float ms = time_median(launch, iters);
    check(cudaGetLastError(), name.c_str());
    rows.push_back({name, ms, bytes});
  };
  time("copy (D2D, 2n bytes)", 4.0 * n, [&] { cudaMemcpyAsync(copy, x, n * 2, cudaMemcpyDeviceToDevice); });
  const int gq = grid_for(qk, nb, kThreads), gb = grid_for(dequantize_bf16_kernel, nb, kThreads),
            gf = grid_for(dequantize_fp8_kernel, nb, kThreads), g32 = grid_g32(0, nb);
  if (!v1only) {
    time("v0 quantize g32", QB, [&] { v0::quantize_kernel<probe::kFull><<<g32, kThreads>>>(x, nb, s_enc, packed, scales, sinkbuf); });
    time("v0 quantize 1wave", QB, [&] {
      v0::quantize_kernel<probe::kFull><<<grid_for(v0::quantize_kernel<probe::kFull>, nb, kThreads), kThreads>>>(x, nb, s_enc, packed, scales, sinkbuf);
    });
    time("v0 quantize compute g32", QB, [&] { v0::quantize_kernel<probe::kCompute><<<g32, kThreads>>>(x, nb, s_enc, packed, scales, sinkbuf); });
    time("v0 quantize rcp~ g32", QB, [&] { v0::quantize_kernel<probe::kApproxRcp><<<g32, kThreads>>>(x, nb, s_enc, packed, scales, sinkbuf); });
    time("v0 deq-bf16 g32", DB, [&] { v0::dequantize_bf16_kernel<probe::kFull><<<g32, kThreads>>>(packed, scales, nb, s_dec, bf, sinkbuf); });
    time("v0 deq-bf16 compute g32", DB, [&] { v0::dequantize_bf16_kernel<probe::kCompute><<<g32, kThreads>>>(packed, scales, nb, s_dec, bf, sinkbuf); });
    time("v0 deq-fp8 g32", DF, [&] { v0::dequantize_fp8_kernel<probe::kFull><<<g32, kThreads>>>(packed, scales, nb, f8, sinkbuf); });
    time("v0 deq-fp8 compute g32", DF, [&] { v0::dequantize_fp8_kernel<probe::kCompute><<<g32, kThreads>>>(packed, scales, nb, f8, sinkbuf); });
    time("v0 deq-fp8 hw-fp8 g32", DF, [&] { v0::dequantize_fp8_kernel<probe::kHwFp8><<<g32, kThreads>>>(packed, scales, nb, f8, sinkbuf); });
    time("memory: quantize pattern", QB, [&] { q_memory<<<grid_for(q_memory, nb, kThreads), kThreads>>>(x, nb, packed + 0, scales); });
    time("memory: deq-bf16 pattern", DB, [&] {
      deq_memory<32><<<grid_for(deq_memory<32>, nb, kThreads), kThreads>>>(packed, scales, nb, reinterpret_cast<uint8_t*>(bf));
    });
    time("memory: deq-fp8 pattern", DF, [&] { deq_memory<16><<<grid_for(deq_memory<16>, nb, kThreads), kThreads>>>(packed, scales, nb, f8); });
  }
  time("v1 quantize", QB, [&] { qk<<<gq, kThreads>>>(x, nb, nb, s_enc, 0, packed, scales); });
  time("v1 quantize g32", QB, [&] { qk<<<g32, kThreads>>>(x, nb, nb, s_enc, 0, packed, scales); });
  time("v1 quantize compute", QB, [&] { q_v1_compute<<<grid_for(q_v1_compute, nb, kThreads), kThreads>>>(nb, s_enc, sinkbuf); });
  time("v1 quantize rcp~", QB, [&] { q_v1_approx_rcp<<<grid_for(q_v1_approx_rcp, nb, kThreads), kThreads>>>(x, nb, s_enc, packed, scales); });
  time("v1 deq-bf16", DB, [&] { dequantize_bf16_kernel<<<gb, kThreads>>>(packed, scales, nb, s_dec, bf); });
  time("v1 deq-bf16 g32", DB, [&] { dequantize_bf16_kernel<<<g32, kThreads>>>(packed, scales, nb, s_dec, bf); });
  time("v1 deq-bf16 compute", DB, [&] { deq_bf16_v1_compute<<<grid_for(deq_bf16_v1_compute, nb, kThreads), kThreads>>>(nb, s_dec, sinkbuf); });
  time("v1 deq-fp8", DF, [&] { dequantize_fp8_kernel<<<gf, kThreads>>>(packed, scales, nb, f8); });
  time("v1 deq-fp8 g32", DF, [&] { dequantize_fp8_kernel<<<g32, kThreads>>>(packed, scales, nb, f8); });
  time("v1 deq-fp8 compute", DF, [&] { deq_fp8_v1_compute<<<grid_for(deq_fp8_v1_compute, nb, kThreads), kThreads>>>(nb, sinkbuf); });
  check(cudaDeviceSynchronize(), "timing");

  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  printf("\n%s, %d SMs, L2 %d MiB, n = 2^%d, median of %d, NVFP4_UNROLL=%d NVFP4_HW_FP8(device)=%s\n", prop.name,
         prop.multiProcessorCount, prop.l2CacheSize >> 20, log2n, iters, NVFP4_UNROLL,
#ifdef NVFP4_HW_FP8
         NVFP4_HW_FP8 ? "forced 1" : "forced 0"
#else
         "per target"
#endif
  );
  if (!v1only) {
    describe("v0 quantize", v0::quantize_kernel<probe::kFull>, 32);
    describe("v0 deq-bf16", v0::dequantize_bf16_kernel<probe::kFull>, 9);
    describe("v0 deq-fp8", v0::dequantize_fp8_kernel<probe::kFull>, 9);
  }
  describe("v1 quantize", qk, 32 * NVFP4_UNROLL);
  describe("v1 deq-bf16", dequantize_bf16_kernel, 9 * NVFP4_UNROLL);
  describe("v1 deq-fp8", dequantize_fp8_kernel, 9 * NVFP4_UNROLL);
  const double copy_gbs = rows[0].bytes / (rows[0].ms * 1e-3) / 1e9;
  printf("\n%-28s %9s %9s %9s\n", "variant", "ms", "GB/s", "of copy");
  for (const Row& r : rows) {
    const double gbs = r.bytes / (r.ms * 1e-3) / 1e9;
    printf("%-28s %9.4f %9.1f %8.1f%%\n", r.name.c_str(), r.ms, gbs, 100.0 * gbs / copy_gbs);
  }
  return 0;
}
