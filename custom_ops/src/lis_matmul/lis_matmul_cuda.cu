// com.fqvit::LISMatMul on CUDA (docs/ops.md Sec. 4). Step numbers are those of Sec. 4.
//
// A tiled integer GEMM: a block computes 32 rows x 64 columns of one batch entry, 256 threads x (2 rows x 4 columns).
// Every 32-term chunk along N is summed in int32 (|chunk| <= 32 * 2^14 * 255 < 2^31, exact for any codes) and added
// to an int64 accumulator, so the kernel is exact for arbitrary codes without a per-row bound check.
#include "common/cuda_common.cuh"
#include "fqvit_ops/lis_matmul.h"

namespace fqvit {
namespace {

constexpr int kTileM = 32, kTileD = 64, kTileN = 32, kThreads = 256;

// T: the code type of V, the zero points and Y (uint8_t or int8_t); A holds uint8 LIS codes.
template <typename T>
__global__ void __launch_bounds__(kThreads) lis_matmul_kernel(const uint8_t* __restrict__ a,
                                                              const T* __restrict__ v, T* __restrict__ y,
                                                              int64_t batch, int64_t m, int64_t n, int64_t d,
                                                              int64_t tiles_m, int64_t tiles_d, int32_t v_zp,
                                                              float v_scale, float y_scale, int32_t y_zp,
                                                              int zero_code) {
  __shared__ int32_t ws[kTileM][kTileN + 1];
  __shared__ __align__(16) int32_t vs[kTileN][kTileD];
  const int tid = threadIdx.x;
  const int r0 = (tid >> 4) * 2, c0 = (tid & 15) * 4;
  const int64_t tiles = batch * tiles_m * tiles_d;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t b = tile / (tiles_m * tiles_d);
    const int64_t tm = (tile / tiles_d) % tiles_m, td = tile % tiles_d;
    const int64_t row0 = tm * kTileM, col0 = td * kTileD;
    const uint8_t* ab = a + b * m * n;
    const T* vb = v + b * n * d;
    long long acc[2][4] = {};
    for (int64_t n0 = 0; n0 < n; n0 += kTileN) {
      // Step 1: weights w(k) = 2^(14 - k), 0 for codes >= Z and outside the matrix.
      for (int i = tid; i < kTileM * kTileN; i += kThreads) {
        const int rr = i / kTileN, nn = i % kTileN;
        int32_t w = 0;
        if (row0 + rr < m && n0 + nn < n) {
          const int code = ab[(row0 + rr) * n + n0 + nn];
          w = lis_weight(code, zero_code);
        }
        ws[rr][nn] = w;
      }
      for (int i = tid; i < kTileN * kTileD; i += kThreads) {
        const int nn = i / kTileD, dd = i % kTileD;
        vs[nn][dd] = (n0 + nn < n && col0 + dd < d) ? static_cast<int32_t>(vb[(n0 + nn) * d + col0 + dd]) - v_zp : 0;
      }
      __syncthreads();
      // Step 2: one 32-term chunk in int32, then into int64.
      int32_t part[2][4] = {};
#pragma unroll 8
      for (int nn = 0; nn < kTileN; ++nn) {
        const int4 vv = *reinterpret_cast<const int4*>(&vs[nn][c0]);
        const int32_t w0 = ws[r0][nn], w1 = ws[r0 + 1][nn];
        part[0][0] += w0 * vv.x;
        part[0][1] += w0 * vv.y;
        part[0][2] += w0 * vv.z;
        part[0][3] += w0 * vv.w;
        part[1][0] += w1 * vv.x;
        part[1][1] += w1 * vv.y;
        part[1][2] += w1 * vv.z;
        part[1][3] += w1 * vv.w;
      }
      for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 4; ++j) acc[i][j] += part[i][j];
      }
      __syncthreads();
    }
    // Step 3: t = f32(acc) * v_scale; t = t * 2^-14; QuantizeLinear.
    for (int i = 0; i < 2; ++i) {
      const int64_t row = row0 + r0 + i;
      if (row >= m) continue;
      for (int j = 0; j < 4; ++j) {
        const int64_t col = col0 + c0 + j;
        if (col >= d) continue;
        y[(b * m + row) * d + col] = lis_matmul_out<T>(acc[i][j], v_scale, y_scale, y_zp);  // step 3
      }
    }
  }
}

template <typename T>
int launch(const uint8_t* a, const T* v, T* y, const LisMatMulParams& p, void* stream) {
  if (p.batch <= 0 || p.m <= 0 || p.d <= 0) return 0;
  const int64_t tiles_m = (p.m + kTileM - 1) / kTileM, tiles_d = (p.d + kTileD - 1) / kTileD;
  lis_matmul_kernel<T><<<cuda::grid_size(p.batch * tiles_m * tiles_d), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      a, v, y, p.batch, p.m, p.n, p.d, tiles_m, tiles_d, p.v_zero_point, p.v_scale, p.y_scale, p.y_zero_point,
      (1 << p.bits) - 1);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int lis_matmul_cuda(const uint8_t* a, const uint8_t* v, uint8_t* y, const LisMatMulParams& p, void* stream) {
  return launch(a, v, y, p, stream);
}

int lis_matmul_cuda(const uint8_t* a, const int8_t* v, int8_t* y, const LisMatMulParams& p, void* stream) {
  return launch(a, v, y, p, stream);
}

const void* cuda_kernel(op::LISMatMul, CodeType code) {
  return code == CodeType::kInt8 ? reinterpret_cast<const void*>(&lis_matmul_kernel<int8_t>)
                                 : reinterpret_cast<const void*>(&lis_matmul_kernel<uint8_t>);
}

}  // namespace fqvit
