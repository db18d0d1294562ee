// Why the NVFP4 kernels run at the speed they do on the GPU here: every kernel, old (v0, as
// measured on the H100) and current (v1, kernels/nvfp4_kernels.cu), timed beside a
// device-to-device copy in one process, plus variants that isolate one cost each:
//   compute   inputs made from the index, outputs folded into a register: the arithmetic alone;
//   memory    the kernel's exact loads and stores with no arithmetic: the access pattern alone;
//   rcp~      rcp.approx instead of the IEEE reciprocal (__frcp_rn): the reciprocal's cost (v1: in
//             the compute variant, where it is not hidden behind memory);
//   hw-fp8    v0's FP8 dequantize with the hardware E4M3 conversion: the software encoder's cost;
//   g32, 1wave  the old grid of 32 thread blocks per SM, or one wave of resident thread blocks,
//             each thread looping over the work; v1 and "flat" launch one thread per item.
// A variant's "of copy" is the bytes the full kernel moves over its time, against the copy's
// bytes over the copy's time: a compute variant under 100% cannot keep up with memory.
//
//   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/probe/nvfp4_probe.cu -o probe
//   ./probe [log2n=28] [iters=50] [v1only]     timing table
//   ./probe ncu [log2n=27]                     each full kernel once, for Nsight Compute
// Build with -DNVFP4_HW_FP8=0 -DPROBE_BUILD='"software FP8"' to time the software FP8 path (v1only).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../nvfp4_kernels.cu"
#include "nvfp4_v0.cuh"

namespace {

template <bool kApproxRcp>
__global__ void __launch_bounds__(256) q_v1_compute(int64_t n_blocks, float s_enc, uint32_t* out) {
  const float scale_coef = s_enc * (1.0f / 6.0f), s_dec = 1.0f / s_enc;
  uint32_t acc = 0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[kBlock];
#pragma unroll
    for (int i = 0; i < 8; ++i) bf16x2_to_float(probe::synth_word(b, i), v + 2 * i);
    const QuantBlock q = quantize_block<kApproxRcp>(v, scale_coef, s_dec);
    acc ^= q.packed.x ^ q.packed.y ^ q.scale;
  }
  probe::sink(acc, out);
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

// The patterns the current kernels use instead, equally without arithmetic, and a plain copy kernel.
__global__ void __launch_bounds__(256) copy_kernel(const uint4* __restrict__ in, uint4* __restrict__ out, int64_t n16) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n16;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    __stcs(out + i, __ldcs(in + i));
}

// The BF16 dequantize traffic with coalesced stores (what the shared-memory stage buys), flat.
__global__ void __launch_bounds__(256) deq_bf16_memory_coalesced(const uint8_t* __restrict__ packed,
                                                                 const uint8_t* __restrict__ scales, int64_t n_blocks,
                                                                 uint8_t* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t tile = (static_cast<int64_t>(blockIdx.x) * 256 + threadIdx.x) / 32, b = tile * 32 + lane;
  if (b >= n_blocks) return;
  const uint2 q = __ldcs(reinterpret_cast<const uint2*>(packed + b * 8));
  const uint32_t s = __ldcs(scales + b);
  uint4* dst = reinterpret_cast<uint4*>(out) + tile * 64;
  __stcs(dst + lane, make_uint4(q.x, q.y, s, q.x ^ s));
  __stcs(dst + lane + 32, make_uint4(q.y, q.x, s, q.y ^ s));
}

// Plain streaming kernels: how close can an SM kernel get to cudaMemcpy's device-to-device copy?
// flat = one 16-byte chunk per thread, a grid of many waves; xK = K chunks per thread, all loaded
// before any is stored; read / write = one direction only.
template <int K>
__global__ void __launch_bounds__(256) copy_flat(const uint4* __restrict__ in, uint4* __restrict__ out, int64_t n16) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * 256 * K + threadIdx.x;
  uint4 r[K];
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (base + k * 256 < n16) r[k] = __ldcs(in + base + k * 256);
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (base + k * 256 < n16) __stcs(out + base + k * 256, r[k]);
}

template <int K>
__global__ void __launch_bounds__(256) copy_strided(const uint4* __restrict__ in, uint4* __restrict__ out, int64_t n16) {
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * 256 * K + threadIdx.x; base < n16;
       base += static_cast<int64_t>(gridDim.x) * 256 * K) {
    uint4 r[K];
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (base + k * 256 < n16) r[k] = __ldcs(in + base + k * 256);
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (base + k * 256 < n16) __stcs(out + base + k * 256, r[k]);
  }
}

__global__ void __launch_bounds__(256) read_flat(const uint4* __restrict__ in, int64_t n16, uint32_t* sinkp) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 256 + threadIdx.x;
  if (i < n16) {
    const uint4 r = __ldcs(in + i);
    probe::sink(r.x ^ r.y ^ r.z ^ r.w, sinkp);
  }
}

__global__ void __launch_bounds__(256) write_flat(uint4* __restrict__ out, int64_t n16) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 256 + threadIdx.x;
  if (i < n16) __stcs(out + i, make_uint4(static_cast<uint32_t>(i), 1, 2, 3));
}

// Bulk asynchronous copies (the Hopper copy engine inside each SM, TMA): one thread per CTA moves
// kChunk bytes global -> shared -> global, two stages deep. sm_90 and later only.
constexpr int kChunk = 16384;
__global__ void __launch_bounds__(32) copy_bulk(const uint8_t* __restrict__ in, uint8_t* __restrict__ out, int64_t bytes,
                                                uint32_t* err) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) uint8_t stage_mem[];
  __shared__ __align__(8) uint64_t bar[2];
  if (threadIdx.x != 0) return;
  const uint32_t bar0 = static_cast<uint32_t>(__cvta_generic_to_shared(&bar[0]));
  const uint32_t smem0 = static_cast<uint32_t>(__cvta_generic_to_shared(stage_mem));
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar0));
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar0 + 8));
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  const int64_t chunks = bytes / kChunk;
  const int64_t count = chunks > blockIdx.x ? (chunks - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  auto load = [&](int64_t i) {
    const int s = static_cast<int>(i & 1);
    const int64_t c = blockIdx.x + i * gridDim.x;
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar0 + 8 * s), "r"(kChunk) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(smem0 + s * kChunk),
                 "l"(in + c * kChunk), "r"(kChunk), "r"(bar0 + 8 * s)
                 : "memory");
  };
  if (count > 0) load(0);
  for (int64_t i = 0; i < count; ++i) {
    if (i + 1 < count) {
      asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");  // store i-1 has read its stage
      load(i + 1);
    }
    const int s = static_cast<int>(i & 1);
    uint32_t done = 0;
    for (int spin = 0; !done; ++spin) {
      asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                   : "=r"(done) : "r"(bar0 + 8 * s), "r"(static_cast<uint32_t>((i >> 1) & 1)) : "memory");
      if (spin > (1 << 22)) {  // never hang the machine: report and stop
        atomicAdd(err, 1u);
        return;
      }
    }
    const int64_t c = blockIdx.x + i * gridDim.x;
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(out + c * kChunk), "r"(smem0 + s * kChunk),
                 "r"(kChunk) : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
#endif
}

__global__ void count_diff(const uint4* __restrict__ a, const uint4* __restrict__ b, int64_t n16, uint32_t* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n16;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 x = a[i], y = b[i];
    if (x.x != y.x || x.y != y.y || x.z != y.z || x.w != y.w) atomicAdd(out, 1u);
  }
}

template <typename Kernel>
int grid_g32(Kernel, int64_t n_items) {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n_items + kThreads - 1) / kThreads, sms * 32)));
}

int prop_sms() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  return sms;
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
  auto qk = quantize_kernel<__nv_bfloat16, false>;
  qk<<<quantize_grid(nb), kThreads>>>(x, nb, nb, s_enc, packed, scales);
  check(cudaDeviceSynchronize(), "setup");

  if (ncu) {  // one launch of each full kernel: v0 on its old grid, v1 on one wave
    v0::quantize_kernel<probe::kFull><<<grid_g32(0, nb), kThreads>>>(x, nb, s_enc, packed, scales, sinkbuf);
    v0::dequantize_bf16_kernel<probe::kFull><<<grid_g32(0, nb), kThreads>>>(packed, scales, nb, s_dec, bf, sinkbuf);
    v0::dequantize_fp8_kernel<probe::kFull><<<grid_g32(0, nb), kThreads>>>(packed, scales, nb, f8, sinkbuf);
    qk<<<quantize_grid(nb), kThreads>>>(x, nb, nb, s_enc, packed, scales);
    dequantize_bf16_kernel<<<dequantize_bf16_grid(nb), kThreads>>>(packed, scales, nb, s_dec, bf);
    dequantize_fp8_kernel<<<dequantize_fp8_grid(nb), kThreads>>>(packed, scales, nb, f8);
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
  const int g32 = grid_g32(0, nb);
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
  {
    const int64_t n16 = n / 8;  // 2n bytes in 16-byte chunks
    const uint4* in16 = reinterpret_cast<const uint4*>(x);
    uint4* out16 = reinterpret_cast<uint4*>(copy);
    const int sms = prop_sms();
    time("memory: cudaMemset 2n (write)", 2.0 * n, [&] { cudaMemsetAsync(copy, 0, n * 2); });
    time("memory: write-only flat", 2.0 * n, [&] { write_flat<<<(n16 + 255) / 256, 256>>>(out16, n16); });
    time("memory: read-only flat", 2.0 * n, [&] { read_flat<<<(n16 + 255) / 256, 256>>>(in16, n16, sinkbuf); });
    time("memory: copy flat x1", 4.0 * n, [&] { copy_flat<1><<<(n16 + 255) / 256, 256>>>(in16, out16, n16); });
    time("memory: copy flat x2", 4.0 * n, [&] { copy_flat<2><<<(n16 + 511) / 512, 256>>>(in16, out16, n16); });
    time("memory: copy flat x4", 4.0 * n, [&] { copy_flat<4><<<(n16 + 1023) / 1024, 256>>>(in16, out16, n16); });
    time("memory: copy flat x8", 4.0 * n, [&] { copy_flat<8><<<(n16 + 2047) / 2048, 256>>>(in16, out16, n16); });
    time("memory: copy 1wave x4", 4.0 * n, [&] { copy_strided<4><<<grid_for(copy_strided<4>, n16 / 4, 256), 256>>>(in16, out16, n16); });
    time("memory: copy g32 x4", 4.0 * n, [&] { copy_strided<4><<<sms * 32, 256>>>(in16, out16, n16); });
    cudaFuncSetAttribute(copy_bulk, cudaFuncAttributeMaxDynamicSharedMemorySize, 2 * kChunk);
    for (int per_sm : {2, 4, 6}) {
      cudaMemset(copy, 0, n * 2);
      cudaMemset(sinkbuf, 0, 8);
      time("memory: copy bulk(TMA) " + std::to_string(per_sm) + "/SM", 4.0 * n, [&] {
        copy_bulk<<<sms * per_sm, 32, 2 * kChunk>>>(reinterpret_cast<const uint8_t*>(x), reinterpret_cast<uint8_t*>(copy), 2 * n, sinkbuf);
      });
      count_diff<<<sms * 8, 256>>>(in16, out16, n16, sinkbuf + 1);
      uint32_t flags[2] = {0, 0};
      cudaMemcpy(flags, sinkbuf, 8, cudaMemcpyDeviceToHost);
      printf("bulk copy %d/SM: %u stalled CTAs, %u chunks differ from the source\n", per_sm, flags[0], flags[1]);
    }
  }
  time("memory: copy kernel 16B", 4.0 * n, [&] {
    copy_kernel<<<grid_for(copy_kernel, n / 8, kThreads), kThreads>>>(reinterpret_cast<const uint4*>(x), reinterpret_cast<uint4*>(copy), n / 8);
  });
  const int flat = static_cast<int>((nb + kThreads - 1) / kThreads);
  time("memory: quantize pattern flat", QB, [&] { q_memory<<<flat, kThreads>>>(x, nb, packed, scales); });
  time("memory: deq-bf16 pattern flat", DB, [&] { deq_memory<32><<<flat, kThreads>>>(packed, scales, nb, reinterpret_cast<uint8_t*>(bf)); });
  time("memory: deq-bf16 coalesced flat", DB, [&] {
    deq_bf16_memory_coalesced<<<flat, kThreads>>>(packed, scales, nb, reinterpret_cast<uint8_t*>(bf));
  });
  time("memory: deq-fp8 pattern flat", DF, [&] { deq_memory<16><<<flat, kThreads>>>(packed, scales, nb, f8); });
  time("v1 quantize", QB, [&] { qk<<<quantize_grid(nb), kThreads>>>(x, nb, nb, s_enc, packed, scales); });
  time("v1 quantize compute", QB, [&] { q_v1_compute<false><<<grid_for(q_v1_compute<false>, nb, kThreads), kThreads>>>(nb, s_enc, sinkbuf); });
  time("v1 quantize compute rcp~", QB, [&] { q_v1_compute<true><<<grid_for(q_v1_compute<true>, nb, kThreads), kThreads>>>(nb, s_enc, sinkbuf); });
  time("v1 deq-bf16", DB, [&] { dequantize_bf16_kernel<<<dequantize_bf16_grid(nb), kThreads>>>(packed, scales, nb, s_dec, bf); });
  time("v1 deq-bf16 compute", DB, [&] { deq_bf16_v1_compute<<<grid_for(deq_bf16_v1_compute, nb, kThreads), kThreads>>>(nb, s_dec, sinkbuf); });
  time("v1 deq-fp8", DF, [&] { dequantize_fp8_kernel<<<dequantize_fp8_grid(nb), kThreads>>>(packed, scales, nb, f8); });
  time("v1 deq-fp8 compute", DF, [&] { deq_fp8_v1_compute<<<grid_for(deq_fp8_v1_compute, nb, kThreads), kThreads>>>(nb, sinkbuf); });
  check(cudaDeviceSynchronize(), "timing");

  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
#ifndef PROBE_BUILD
#define PROBE_BUILD "per-target defaults"
#endif
  printf("\n%s, %d SMs, L2 %d MiB, n = 2^%d, median of %d, build: %s\n", prop.name, prop.multiProcessorCount,
         prop.l2CacheSize >> 20, log2n, iters, PROBE_BUILD);
  if (!v1only) {
    describe("v0 quantize", v0::quantize_kernel<probe::kFull>, 32);
    describe("v0 deq-bf16", v0::dequantize_bf16_kernel<probe::kFull>, 9);
    describe("v0 deq-fp8", v0::dequantize_fp8_kernel<probe::kFull>, 9);
  }
  describe("v1 quantize", qk, 32);
  describe("v1 deq-bf16", dequantize_bf16_kernel, 9);
  describe("v1 deq-fp8", dequantize_fp8_kernel, 9);
  const double copy_gbs = rows[0].bytes / (rows[0].ms * 1e-3) / 1e9;
  printf("\n%-28s %9s %9s %9s\n", "variant", "ms", "GB/s", "of copy");
  for (const Row& r : rows) {
    const double gbs = r.bytes / (r.ms * 1e-3) / 1e9;
    printf("%-28s %9.4f %9.1f %8.1f%%\n", r.name.c_str(), r.ms, gbs, 100.0 * gbs / copy_gbs);
  }
  return 0;
}
