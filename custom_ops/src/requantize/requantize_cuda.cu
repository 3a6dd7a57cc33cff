// com.fqvit::Requantize on CUDA (docs/ops.md Sec. 1, integer matmuls): Y = QuantizeLinear((f32(A) * m[n]) + b[n]).
//
// A grid-stride loop, one element per thread and iteration (coalesced int32 loads, byte stores). The channel index
// n = i % N is computed once per thread and then advanced by stride % N, so the loop has no 64-bit division. Float32
// steps are fqvit_ops/arith.h's requantize_one (__int2float_rn, __fmul_rn, __fadd_rn, __fdiv_rn, rintf): no
// contraction, correctly rounded, bit-identical to the CPU kernels and the PyTorch reference.
#include "common/cuda_common.cuh"
#include "fqvit_ops/requantize.h"

namespace fqvit {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

// T: the output code type (uint8_t or int8_t).
template <typename T, bool MV, bool BV>
__global__ void __launch_bounds__(kThreads)
    requantize_kernel(const int32_t* __restrict__ a, const float* __restrict__ m, const float* __restrict__ b,
                      T* __restrict__ y, int64_t numel, int64_t n, int64_t stride_mod_n, float y_scale,
                      int32_t y_zp) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const float ms = m[0], bs = b[0];
  int64_t col = (MV || BV) ? first % n : 0;
  for (int64_t i = first; i < numel; i += stride) {
    y[i] = requantize_one<T>(a[i], MV ? m[col] : ms, BV ? b[col] : bs, y_scale, y_zp);
    if (MV || BV) {
      col += stride_mod_n;
      if (col >= n) col -= n;
    }
  }
}

template <typename T, bool MV, bool BV>
void launch(const int32_t* a, const float* m, const float* b, T* y, const RequantizeParams& p, int64_t blocks,
            cudaStream_t stream) {
  const int64_t stride = blocks * kThreads;
  requantize_kernel<T, MV, BV><<<cuda::grid_size(blocks), kThreads, 0, stream>>>(a, m, b, y, p.numel, p.n, stride % p.n,
                                                                             p.y_scale, p.y_zero_point);
}

template <typename T>
int launch_all(const int32_t* a, const float* multiplier, const float* bias, T* y, const RequantizeParams& p,
               void* stream) {
  if (p.numel <= 0 || p.n <= 0) return 0;
  int64_t blocks = (p.numel + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  const bool mv = p.multiplier_size != 1, bv = p.bias_size != 1;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (mv && bv) {
    launch<T, true, true>(a, multiplier, bias, y, p, blocks, s);
  } else if (mv) {
    launch<T, true, false>(a, multiplier, bias, y, p, blocks, s);
  } else if (bv) {
    launch<T, false, true>(a, multiplier, bias, y, p, blocks, s);
  } else {
    launch<T, false, false>(a, multiplier, bias, y, p, blocks, s);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int requantize_cuda(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y,
                    const RequantizeParams& p, void* stream) {
  return launch_all(a, multiplier, bias, y, p, stream);
}

int requantize_cuda(const int32_t* a, const float* multiplier, const float* bias, int8_t* y,
                    const RequantizeParams& p, void* stream) {
  return launch_all(a, multiplier, bias, y, p, stream);
}

const void* cuda_kernel(op::Requantize, CodeType code) {
  // The per-channel variant: every variant of one T is compiled for the same architectures.
  return code == CodeType::kInt8 ? reinterpret_cast<const void*>(&requantize_kernel<int8_t, true, true>)
                                 : reinterpret_cast<const void*>(&requantize_kernel<uint8_t, true, true>);
}

}  // namespace fqvit
