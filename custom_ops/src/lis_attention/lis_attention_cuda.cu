// com.fqvit::LISAttention on CUDA (docs/ops.md Sec. 5, fused ops): a ViT's attention from the qkv codes to the
// attention@V codes in one kernel, with no scratch in global memory. Step numbers are those of the sections cited.
//
// One block of 256 threads per query row (batch entry b, head h, token i), rows strided over the grid:
//   1. q k^T and Requantize (Sec. 1): one warp per key j sums (q - zp)(k_j - zp) over the head's D columns in int32,
//      exact in any order (every partial sum is at most 65025 D < 2^31, D <= kMaxAttentionHeadDim), and writes the
//      logit code requantize_one(acc, qk_multiplier, 0.0f, ...) into a row of N codes in shared memory;
//   2. LogIntSoftmax (Sec. 3, no mask) on that row, as the LogIntSoftmax kernel does it: the row maximum, S = sum e_j
//      (int64), the row's thresholds F_k, then each code from its e_j computed again (no int64 row is stored);
//   3. LISMatMul (Sec. 4): acc[d] = sum_j w(code_j) (v[j, d] - zp), one thread per column d, then its output
//      quantizer, written to Y[b, i, h D + d].
// Shared memory holds the row's logits and codes, 2 N bytes (kMaxAttentionTokens = 16384: 32 KiB, under the 48 KiB
// every GPU gives a block without opting in). Every step is arith.h's function, so Y is bit-identical to the chain of
// the three ops, the CPU kernel and the PyTorch reference.
#include "common/cuda_common.cuh"
#include "fqvit_ops/lis_attention.h"

namespace fqvit {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

// The maximum over the block; every thread gets it. `scratch` holds one value per warp and is free again on return.
__device__ __forceinline__ int32_t block_max(int32_t v, int32_t* scratch) {
  v = cuda::warp_max(v);
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  int32_t r = scratch[0];
  for (int w = 1; w < kWarps; ++w) r = scratch[w] > r ? scratch[w] : r;
  __syncthreads();
  return r;
}

// The sum over the block (exact: int64 and S < N 2^31), as block_max.
__device__ __forceinline__ long long block_sum(long long v, long long* scratch) {
  v = cuda::warp_sum(v);
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  long long r = 0;
  for (int w = 0; w < kWarps; ++w) r += scratch[w];
  __syncthreads();
  return r;
}

// T: the code type of QKV, the zero points, the logits and Y (uint8_t or int8_t); the LIS codes are uint8.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    lis_attention_kernel(const T* __restrict__ qkv, T* __restrict__ y, int64_t batch, int64_t n, int64_t heads,
                         int64_t d, float qkv_scale, int32_t zp, float qk_multiplier, float logits_scale,
                         int32_t logits_zp, float y_scale, int32_t y_zp, long long lis_multiplier,
                         LisRootThresholds roots, int zero_code) {
  extern __shared__ __align__(16) unsigned char row_buffer[];
  T* logits = reinterpret_cast<T*>(row_buffer);  // [n] logit codes of the query row
  uint8_t* codes = row_buffer + n;               // [n] their LIS codes
  __shared__ int32_t max_scratch[kWarps];
  __shared__ long long sum_scratch[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t stride = 3 * heads * d;  // one token of QKV: q, k, v of every head
  const int64_t rows = batch * heads * n;
  // Query rows in (b, h, i) order, i fastest: neighbouring blocks read the same head's k and v.
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t i = row % n, h = (row / n) % heads, b = row / (n * heads);
    const T* q = qkv + (b * n + i) * stride + h * d;
    const T* k = qkv + b * n * stride + heads * d + h * d;      // key j at k + j * stride
    const T* v = qkv + b * n * stride + 2 * heads * d + h * d;  // value j at v + j * stride

    // Sec. 1: acc = (q - zp) . (k_j - zp) in int32, then Requantize with bias 0 into the logits' code type.
    for (int64_t j = warp; j < n; j += kWarps) {
      const T* kj = k + j * stride;
      int32_t part = 0;
      for (int64_t c = lane; c < d; c += 32) {
        part += (static_cast<int32_t>(q[c]) - zp) * (static_cast<int32_t>(kj[c]) - zp);
      }
      const int32_t acc = cuda::warp_sum(part);
      if (lane == 0) logits[j] = requantize_one<T>(acc, qk_multiplier, 0.0f, logits_scale, logits_zp);
    }
    __syncthreads();

    // Sec. 3, step 1: the row maximum (no mask: every position counts).
    int32_t mx = CodeRange<T>::kLo;
    for (int64_t j = threadIdx.x; j < n; j += kThreads) {
      const int32_t l = logits[j];
      mx = l > mx ? l : mx;
    }
    mx = block_max(mx, max_scratch);
    // Steps 1-4: S = sum_j e_j (S >= Cp > 0: the row is never empty).
    long long s = 0;
    for (int64_t j = threadIdx.x; j < n; j += kThreads) s += lis_exp_term(mx - logits[j], lis_multiplier);
    s = block_sum(s, sum_scratch);
    // Steps 5-6: the row's thresholds F_k, then code_j = #{k : e_j < F_k}, e_j computed again.
    int32_t f[kLisMaxCodes + 1];
    for (int kk = 0; kk <= kLisMaxCodes; ++kk) f[kk] = lis_row_threshold(roots.t[kk], s);
    for (int64_t j = threadIdx.x; j < n; j += kThreads) {
      codes[j] = lis_code(static_cast<int32_t>(lis_exp_term(mx - logits[j], lis_multiplier)), f);
    }
    __syncthreads();

    // Sec. 4, steps 1-2: acc[c] = sum_j w(code_j) (v[j, c] - zp). int32 is exact for LIS codes (sum_j w <=
    // sqrt(2) 2^14, so |acc| < 2^23); consecutive threads read consecutive columns of one value row.
    T* out = y + (b * n + i) * heads * d + h * d;
    for (int64_t c = threadIdx.x; c < d; c += kThreads) {
      int32_t acc = 0;
      for (int64_t j = 0; j < n; ++j) {
        acc += lis_weight(codes[j], zero_code) * (static_cast<int32_t>(v[j * stride + c]) - zp);
      }
      out[c] = lis_matmul_out<T>(acc, qkv_scale, y_scale, y_zp);  // step 3
    }
    __syncthreads();  // the next row rewrites logits and codes
  }
}

template <typename T>
int launch(const T* qkv, T* y, const LisAttentionParams& p, void* stream) {
  if (p.batch <= 0 || p.tokens <= 0 || p.heads <= 0 || p.head_dim <= 0) return 0;
  // The row buffers live in shared memory: a larger N would overrun it (lis_attention_check rejects it first).
  if (p.tokens > kMaxAttentionTokens) return static_cast<int>(cudaErrorInvalidValue);
  const size_t shared = static_cast<size_t>(2 * p.tokens);
  lis_attention_kernel<T><<<cuda::grid_size(p.batch * p.heads * p.tokens), kThreads, shared,
                            static_cast<cudaStream_t>(stream)>>>(
      qkv, y, p.batch, p.tokens, p.heads, p.head_dim, p.qkv_scale, p.qkv_zero_point, p.qk_multiplier,
      p.logits_scale, p.logits_zero_point, p.y_scale, p.y_zero_point, p.lis_multiplier, lis_root_thresholds(p.bits),
      (1 << p.bits) - 1);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int lis_attention_cuda(const uint8_t* qkv, uint8_t* y, const LisAttentionParams& p, void* stream) {
  return launch(qkv, y, p, stream);
}

int lis_attention_cuda(const int8_t* qkv, int8_t* y, const LisAttentionParams& p, void* stream) {
  return launch(qkv, y, p, stream);
}

const void* cuda_kernel(op::LISAttention, CodeType code) {
  return code == CodeType::kInt8 ? reinterpret_cast<const void*>(&lis_attention_kernel<int8_t>)
                                 : reinterpret_cast<const void*>(&lis_attention_kernel<uint8_t>);
}

}  // namespace fqvit
