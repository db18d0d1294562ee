// A block-scaled NVFP4 tensor-core tile for consumer Blackwell (sm_120a / sm_121a):
//   D[16x8] (fp32) = sum over K of (e2m1(A) * sfa) x (e2m1(B) * sfb), one warp, K a multiple of 64,
// using mma.sync.aligned.m16n8k64 ... kind::mxf4nvf4.block_scale.scale_vec::4X ... ue4m3 with every
// operand in registers (SM120 has no tensor memory). A is [16, K] and B is [8, K] (B column-major),
// both packed two E2M1 per byte, low nibble first; SFA is [16, K/16] and SFB is [8, K/16] E4M3.
//
// Fragments (PTX ISA, m16n8k64 with 4-bit types): lane l, g = l / 4, t = l % 4;
//   a0/a2 hold row g at K offsets 8t..8t+7 / 32+8t.., a1/a3 the same for row g+8;
//   b0/b1 hold column g at K offsets 8t.. / 32+8t..; d0,d1 row g cols 2t,2t+1; d2,d3 row g+8.
// Scales (4 UE4M3 bytes per b32, one per 16 K-elements; byte-id 0, thread-id 0): row m of A is
// read from lane 4*(m%8) + m/8 and column n of B from lane 4n. That lane mapping comes from a
// public hardware probe of the sibling mxf8f6f4 instruction, not from NVIDIA's documentation:
// this kernel's correctness test (kernels/test_kernels.py) runs only on an SM120/SM121 GPU.
#include <cuda_runtime.h>

#include <cstdint>

namespace {

__global__ void mma_nvfp4_tile_kernel(const uint8_t* __restrict__ a, const uint8_t* __restrict__ b,
                                      const uint8_t* __restrict__ sfa, const uint8_t* __restrict__ sfb,
                                      int k, float* __restrict__ d) {
#if defined(__CUDA_ARCH_FEAT_SM120_ALL) || defined(__CUDA_ARCH_FEAT_SM121_ALL)
  const int lane = threadIdx.x & 31, g = lane / 4, t = lane % 4;
  const int row_bytes = k / 2, scale_cols = k / 16;
  const int sfa_row = (t < 2) ? g + 8 * t : 0;  // lanes with t >= 2 carry no A scale
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < k; k0 += 64) {
    const int kb = k0 / 2 + 4 * t;
    const uint32_t a0 = *reinterpret_cast<const uint32_t*>(a + g * row_bytes + kb);
    const uint32_t a1 = *reinterpret_cast<const uint32_t*>(a + (g + 8) * row_bytes + kb);
    const uint32_t a2 = *reinterpret_cast<const uint32_t*>(a + g * row_bytes + kb + 16);
    const uint32_t a3 = *reinterpret_cast<const uint32_t*>(a + (g + 8) * row_bytes + kb + 16);
    const uint32_t b0 = *reinterpret_cast<const uint32_t*>(b + g * row_bytes + kb);
    const uint32_t b1 = *reinterpret_cast<const uint32_t*>(b + g * row_bytes + kb + 16);
    const uint32_t sa = *reinterpret_cast<const uint32_t*>(sfa + sfa_row * scale_cols + k0 / 16);
    const uint32_t sb = *reinterpret_cast<const uint32_t*>(sfb + g * scale_cols + k0 / 16);
    asm volatile(
        "mma.sync.aligned.m16n8k64.row.col.kind::mxf4nvf4.block_scale.scale_vec::4X.f32.e2m1.e2m1.f32.ue4m3 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3}, %10, {0,0}, %11, {0,0};\n"
        : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(sa), "r"(sb));
  }
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
#endif
}

}  // namespace

extern "C" {

// 1 when this library carries the tensor-core tile (an sm_120a or sm_121a build), else 0.
int nvfp4_mma_available(void) {
  int device = 0, major = 0, minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  return major == 12 && (minor == 0 || minor == 1);
}

int nvfp4_mma_tile(const uint8_t* a, const uint8_t* b, const uint8_t* sfa, const uint8_t* sfb, int k, float* d) {
  if (k % 64 != 0) return -1;
  if (!nvfp4_mma_available()) return -2;  // never launch this tile on a GPU it was not built for
  uint8_t *da, *db, *dsa, *dsb;
  float* dd;
  cudaMalloc(&da, 16 * k / 2), cudaMalloc(&db, 8 * k / 2), cudaMalloc(&dsa, 16 * k / 16), cudaMalloc(&dsb, 8 * k / 16);
  cudaMalloc(&dd, 16 * 8 * sizeof(float));
  cudaMemcpy(da, a, 16 * k / 2, cudaMemcpyHostToDevice), cudaMemcpy(db, b, 8 * k / 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dsa, sfa, 16 * k / 16, cudaMemcpyHostToDevice), cudaMemcpy(dsb, sfb, 8 * k / 16, cudaMemcpyHostToDevice);
  cudaMemset(dd, 0xFF, 16 * 8 * sizeof(float));  // NaN poison
  mma_nvfp4_tile_kernel<<<1, 32>>>(da, db, dsa, dsb, k, dd);
  cudaMemcpy(d, dd, 16 * 8 * sizeof(float), cudaMemcpyDeviceToHost);
  const int err = static_cast<int>(cudaGetLastError());
  cudaFree(da), cudaFree(db), cudaFree(dsa), cudaFree(dsb), cudaFree(dd);
  return err;
}

}  // extern "C"
