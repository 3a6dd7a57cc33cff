// com.fqvit::Lookup on CUDA (docs/ops.md Sec. 1, GELU table): Y[i] = table[X[i]], 256-entry uint8 table.
//
// Each block copies the table into shared memory (256 bytes: bytes of one 32-bit word are read as a broadcast, so at
// most two-way bank conflicts), then a grid-stride loop looks up 16 bytes per thread and iteration with 16-byte loads
// and stores when X and Y are 16-byte aligned (always for onnxruntime's and torch's allocations), one byte at a time
// otherwise and for the last n % 16 bytes. Integer only: identical to the CPU kernels by construction.
#include "common/cuda_common.cuh"
#include "fqvit_ops/lookup.h"

namespace fqvit {
namespace {

constexpr int kThreads = 256;  // one table entry per thread for the shared-memory copy
constexpr int64_t kMaxBlocks = 8192;
static_assert(kThreads == kLookupTableSize, "the table copy assumes one entry per thread");

__device__ __forceinline__ uint32_t lookup4(const uint8_t* t, uint32_t w) {
  return static_cast<uint32_t>(t[w & 255u]) | (static_cast<uint32_t>(t[(w >> 8) & 255u]) << 8) |
         (static_cast<uint32_t>(t[(w >> 16) & 255u]) << 16) | (static_cast<uint32_t>(t[w >> 24]) << 24);
}

// words: the number of leading 16-byte words handled vectorised (0 when X or Y is not 16-byte aligned).
__global__ void __launch_bounds__(kThreads) lookup_kernel(const uint8_t* __restrict__ x,
                                                          const uint8_t* __restrict__ table, uint8_t* __restrict__ y,
                                                          int64_t n, int64_t words) {
  __shared__ uint8_t t[kLookupTableSize];
  t[threadIdx.x] = table[threadIdx.x];
  __syncthreads();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  uint4* yv = reinterpret_cast<uint4*>(y);
  for (int64_t i = first; i < words; i += stride) {
    uint4 w = xv[i];
    w.x = lookup4(t, w.x);
    w.y = lookup4(t, w.y);
    w.z = lookup4(t, w.z);
    w.w = lookup4(t, w.w);
    yv[i] = w;
  }
  for (int64_t i = words * 16 + first; i < n; i += stride) y[i] = t[x[i]];
}

}  // namespace

int lookup_cuda(const uint8_t* x, const uint8_t* table, uint8_t* y, const LookupParams& p, void* stream) {
  if (p.n <= 0) return 0;
  const bool aligned = (reinterpret_cast<uintptr_t>(x) % 16 == 0) && (reinterpret_cast<uintptr_t>(y) % 16 == 0);
  const int64_t words = aligned ? p.n / 16 : 0;
  const int64_t work = words > p.n - words * 16 ? words : p.n - words * 16;  // items of the longer loop
  int64_t blocks = (work + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  lookup_kernel<<<cuda::grid_size(blocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, table, y, p.n, words);
  return static_cast<int>(cudaGetLastError());
}

// int8: the index is x's byte and entries are copied as bytes, so the uint8 kernel on the same memory.
int lookup_cuda(const int8_t* x, const int8_t* table, int8_t* y, const LookupParams& p, void* stream) {
  return lookup_cuda(reinterpret_cast<const uint8_t*>(x), reinterpret_cast<const uint8_t*>(table),
                     reinterpret_cast<uint8_t*>(y), p, stream);
}

const void* cuda_kernel(op::Lookup, CodeType /*code*/) { return reinterpret_cast<const void*>(&lookup_kernel); }

}  // namespace fqvit
