// com.fqvit::LogIntSoftmax on CUDA (docs/ops.md Sec. 3). One warp per row; step numbers are those of Sec. 3.
//
// The arithmetic is fqvit_ops/arith.h's, as in the CPU kernel: steps 1-4 per element (lis_exp_term), then step 6
// decided as docs/ops.md says the kernels decide it: with p = floor(e 2^P / S), p < T'_k <=> e < F_k =
// ceil(T'_k S / 2^P), so each lane forms the row's 16 thresholds F_k once (lis_row_threshold) and every element is
// a 4-probe search (lis_code): no division per element.
#include "common/cuda_common.cuh"
#include "fqvit_ops/log_int_softmax.h"

namespace fqvit {
namespace {

constexpr int kWarps = 8;

// T: the logits' code type (uint8_t or int8_t); the output codes are uint8.
template <typename T>
__global__ void __launch_bounds__(kWarps * 32) log_int_softmax_kernel(const T* __restrict__ x, MaskLayout mask,
                                                                      uint8_t* __restrict__ codes, int64_t rows,
                                                                      int64_t n, long long multiplier,
                                                                      LisRootThresholds roots) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); row < rows; row += warps) {
    const T* q = x + row * n;
    uint8_t* out = codes + row * n;
    const uint8_t* m = mask.data != nullptr ? mask.data + mask.row_offset(row) : nullptr;
    const int64_t ms = mask.last_stride;
    // Step 1: max over the unmasked positions (masked count as T's lowest code: never above an unmasked max; a
    // fully masked row has no e_j to compute).
    int32_t mx = CodeRange<T>::kLo;
    for (int64_t j = lane; j < n; j += 32) {
      const bool masked = m != nullptr && m[j * ms] != 0;
      const int32_t v = masked ? CodeRange<T>::kLo : static_cast<int32_t>(q[j]);
      mx = v > mx ? v : mx;
    }
    mx = cuda::warp_max(mx);
    // Steps 1-4: S = sum of e_j over unmasked j.
    long long s = 0;
    for (int64_t j = lane; j < n; j += 32) {
      const bool masked = m != nullptr && m[j * ms] != 0;
      if (!masked) s += lis_exp_term(mx - q[j], multiplier);
    }
    s = cuda::warp_sum(s);
    // Steps 5-6: the row's thresholds F_k, then code = #{k : e < F_k} per element (masked: e = 0, code Z).
    int32_t f[kLisMaxCodes + 1];
    for (int k = 0; k <= kLisMaxCodes; ++k) f[k] = lis_row_threshold(roots.t[k], s);
    for (int64_t j = lane; j < n; j += 32) {
      const bool masked = m != nullptr && m[j * ms] != 0;
      const int32_t e = masked ? 0 : static_cast<int32_t>(lis_exp_term(mx - q[j], multiplier));
      out[j] = lis_code(e, f);
    }
  }
}

template <typename T>
int launch(const T* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p, void* stream) {
  if (p.rows <= 0 || p.n <= 0) return 0;
  const int64_t blocks = (p.rows + kWarps - 1) / kWarps;
  log_int_softmax_kernel<T><<<cuda::grid_size(blocks), kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(
      x, mask, codes, p.rows, p.n, p.multiplier, lis_root_thresholds(p.bits));
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int log_int_softmax_cuda(const uint8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         void* stream) {
  return launch(x, mask, codes, p, stream);
}

int log_int_softmax_cuda(const int8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         void* stream) {
  return launch(x, mask, codes, p, stream);
}

const void* cuda_kernel(op::LogIntSoftmax, CodeType code) {
  return code == CodeType::kInt8 ? reinterpret_cast<const void*>(&log_int_softmax_kernel<int8_t>)
                                 : reinterpret_cast<const void*>(&log_int_softmax_kernel<uint8_t>);
}

}  // namespace fqvit
