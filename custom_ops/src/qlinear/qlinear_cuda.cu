// com.fqvit::QLinear on CUDA (docs/ops.md Sec. 5, fused ops): one fused kernel,
//   acc = sum_k (X[m, k] - x_zero_point) * W[k, n]   (int32, exact: K <= kMaxQlinearK)
//   Y[m, n] = requantize_one(acc, multiplier[n], bias[n], y_scale, y_zero_point)   (fqvit_ops/arith.h)
// so the accumulators never leave registers.
//
// Tiles of kTileM x kTileN outputs per block of 256 threads, each thread 4 x 4 outputs strided by 16 (so that the
// epilogue's stores and the shared-memory reads are spread over the banks); the K axis in steps of kTileK, with
// X - x_zero_point (int32, zero past the edges) and W (int32) staged in shared memory. Integer products and sums are
// exact in any order; the epilogue is the Requantize op's own per-element function (__fmul_rn, __fadd_rn, __fdiv_rn,
// rintf under -fmad=false), so Y is bit-identical to the CPU kernel and the PyTorch reference.
#include "common/cuda_common.cuh"
#include "fqvit_ops/qlinear.h"

namespace fqvit {
namespace {

constexpr int kThreads = 256;
constexpr int kTileM = 64, kTileN = 64, kTileK = 32;
constexpr int kPerThread = 4;        // outputs per thread along each of M and N
constexpr int kSide = 16;            // threads along each of M and N: kSide * kPerThread = 64
constexpr int64_t kMaxRowTiles = 65535;  // gridDim.y limit; more row tiles are strided

template <typename T, bool MV, bool BV>
__global__ void __launch_bounds__(kThreads)
    qlinear_kernel(const T* __restrict__ x, const int8_t* __restrict__ w, const float* __restrict__ multiplier,
                   const float* __restrict__ bias, T* __restrict__ y, int64_t m, int64_t k, int64_t n,
                   int32_t x_zp, float y_scale, int32_t y_zp) {
  __shared__ int32_t xs[kTileM][kTileK + 1];  // X - zp, row-major, padded against bank conflicts
  __shared__ int32_t ws[kTileK][kTileN];
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTileN;
  const int64_t row_tiles = (m + kTileM - 1) / kTileM;
  for (int64_t tile = blockIdx.y; tile < row_tiles; tile += gridDim.y) {
    const int64_t row0 = tile * kTileM;
    int32_t acc[kPerThread][kPerThread] = {};
    for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
      for (int i = threadIdx.x; i < kTileM * kTileK; i += kThreads) {  // consecutive threads: consecutive k
        const int r = i / kTileK, c = i % kTileK;
        const int64_t gr = row0 + r, gc = k0 + c;
        xs[r][c] = (gr < m && gc < k) ? static_cast<int32_t>(x[gr * k + gc]) - x_zp : 0;
      }
      for (int i = threadIdx.x; i < kTileK * kTileN; i += kThreads) {  // consecutive threads: consecutive n
        const int r = i / kTileN, c = i % kTileN;
        const int64_t gr = k0 + r, gc = col0 + c;
        ws[r][c] = (gr < k && gc < n) ? static_cast<int32_t>(w[gr * n + gc]) : 0;
      }
      __syncthreads();
#pragma unroll 8
      for (int kk = 0; kk < kTileK; ++kk) {
        int32_t a[kPerThread], b[kPerThread];
#pragma unroll
        for (int i = 0; i < kPerThread; ++i) a[i] = xs[ty + kSide * i][kk];
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) b[j] = ws[kk][tx + kSide * j];
#pragma unroll
        for (int i = 0; i < kPerThread; ++i) {
#pragma unroll
          for (int j = 0; j < kPerThread; ++j) acc[i][j] += a[i] * b[j];
        }
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int64_t row = row0 + ty + kSide * i;
      if (row >= m) continue;
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) {
        const int64_t col = col0 + tx + kSide * j;
        if (col >= n) continue;
        y[row * n + col] = requantize_one<T>(acc[i][j], multiplier[MV ? col : 0], bias[BV ? col : 0], y_scale, y_zp);
      }
    }
  }
}

template <typename T, bool MV, bool BV>
void launch(const T* x, const int8_t* w, const float* multiplier, const float* bias, T* y, const QLinearParams& p,
            cudaStream_t stream) {
  const int64_t row_tiles = (p.m + kTileM - 1) / kTileM;
  const dim3 grid(cuda::grid_size((p.n + kTileN - 1) / kTileN),
                  static_cast<unsigned>(row_tiles < kMaxRowTiles ? row_tiles : kMaxRowTiles));
  qlinear_kernel<T, MV, BV><<<grid, kThreads, 0, stream>>>(x, w, multiplier, bias, y, p.m, p.k, p.n, p.x_zero_point,
                                                           p.y_scale, p.y_zero_point);
}

template <typename T>
int launch_all(const T* x, const int8_t* w, const float* multiplier, const float* bias, T* y, const QLinearParams& p,
               void* stream) {
  if (p.m <= 0 || p.n <= 0) return 0;
  const bool mv = p.multiplier_size != 1, bv = p.bias_size != 1;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (mv && bv) {
    launch<T, true, true>(x, w, multiplier, bias, y, p, s);
  } else if (mv) {
    launch<T, true, false>(x, w, multiplier, bias, y, p, s);
  } else if (bv) {
    launch<T, false, true>(x, w, multiplier, bias, y, p, s);
  } else {
    launch<T, false, false>(x, w, multiplier, bias, y, p, s);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int qlinear_cuda(const uint8_t* x, const int8_t* w, const float* multiplier, const float* bias, uint8_t* y,
                 const QLinearParams& p, void* stream) {
  return launch_all(x, w, multiplier, bias, y, p, stream);
}

int qlinear_cuda(const int8_t* x, const int8_t* w, const float* multiplier, const float* bias, int8_t* y,
                 const QLinearParams& p, void* stream) {
  return launch_all(x, w, multiplier, bias, y, p, stream);
}

const void* cuda_kernel(op::QLinear, CodeType code) {
  // The per-channel variant: every variant of one T is compiled for the same architectures.
  return code == CodeType::kInt8 ? reinterpret_cast<const void*>(&qlinear_kernel<int8_t, true, true>)
                                 : reinterpret_cast<const void*>(&qlinear_kernel<uint8_t, true, true>);
}

}  // namespace fqvit
