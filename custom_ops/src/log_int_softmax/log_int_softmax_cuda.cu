// com.fqvit::LogIntSoftmax on CUDA (docs/ops.md Sec. 3). One warp per row; step numbers are those of Sec. 3.
//
// Unlike the CPU kernel (tables and per-row thresholds), this kernel evaluates Sec. 3 literally per element: the
// int64 exponent steps, the int64 division p = (e << P) // S and the comparisons p^2 < 2^(2P - 1 - 2k). Two
// independent formulations that agree bit for bit with each other and with the PyTorch reference.
#include "common/cuda_common.cuh"
#include "fqvit_ops/log_int_softmax.h"

namespace fqvit {
namespace {

constexpr int kWarps = 8;

__device__ __forceinline__ long long exp_term(int32_t d, long long multiplier) {
  const long long t = -static_cast<long long>(d) * multiplier;                 // step 1: t_j <= 0
  const long long n = (-t) >> kLisFracBits;                                     // step 2
  const long long r = t + (n << kLisFracBits);                                  //         r in (-2^L, 0]
  const long long z = r * (r + kLisPolyB) + kLisPolyC;                          // step 3
  return z >> (n < 62 ? n : 62);                                                // step 4
}

__global__ void __launch_bounds__(kWarps * 32) log_int_softmax_kernel(const uint8_t* __restrict__ x, MaskLayout mask,
                                                                      uint8_t* __restrict__ codes, int64_t rows,
                                                                      int64_t n, long long multiplier, int zero_code) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); row < rows; row += warps) {
    const uint8_t* q = x + row * n;
    uint8_t* out = codes + row * n;
    const uint8_t* m = mask.data != nullptr ? mask.data + mask.row_offset(row) : nullptr;
    const int64_t ms = mask.last_stride;
    // Step 1: max over the unmasked positions (masked count as 0: never above an unmasked max).
    int32_t mx = 0;
    for (int64_t j = lane; j < n; j += 32) {
      const bool masked = m != nullptr && m[j * ms] != 0;
      const int32_t v = masked ? 0 : q[j];
      mx = v > mx ? v : mx;
    }
    mx = cuda::warp_max(mx);
    // Steps 1-4: S = sum of e_j over unmasked j.
    long long s = 0;
    for (int64_t j = lane; j < n; j += 32) {
      const bool masked = m != nullptr && m[j * ms] != 0;
      if (!masked) s += exp_term(mx - q[j], multiplier);
    }
    s = cuda::warp_sum(s);
    if (s < 1) s = 1;  // a fully masked row: every e_j = 0 and every code is Z
    // Steps 5-6 per element.
    for (int64_t j = lane; j < n; j += 32) {
      const bool masked = m != nullptr && m[j * ms] != 0;
      int code = zero_code;
      if (!masked) {
        const long long e = exp_term(mx - q[j], multiplier);
        const unsigned long long p = static_cast<unsigned long long>((e << kLisNormBits) / s);  // step 5
        const unsigned long long p2 = p * p;                                                  // <= 2^60
        code = 0;
        for (int k = 0; k < zero_code; ++k) code += p2 < (1ull << (2 * kLisNormBits - 1 - 2 * k)) ? 1 : 0;  // step 6
      }
      out[j] = static_cast<uint8_t>(code);
    }
  }
}

}  // namespace

int log_int_softmax_cuda(const uint8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         void* stream) {
  if (p.rows <= 0 || p.n <= 0) return 0;
  const int64_t blocks = (p.rows + kWarps - 1) / kWarps;
  log_int_softmax_kernel<<<cuda::grid_size(blocks), kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(
      x, mask, codes, p.rows, p.n, p.multiplier, (1 << p.bits) - 1);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace fqvit
