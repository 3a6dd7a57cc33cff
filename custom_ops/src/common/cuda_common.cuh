// Device helpers shared by the CUDA kernels: warp reductions and the grid size. The arithmetic of docs/ops.md
// (QuantizeLinear and every op's steps, host and device) is fqvit_ops/arith.h's.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace fqvit {
namespace cuda {

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) {
    const T other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other > v ? other : v;
  }
  return v;
}

inline int grid_size(int64_t blocks) {
  return static_cast<int>(blocks < 1 ? 1 : (blocks > 2147483647 ? 2147483647 : blocks));
}

}  // namespace cuda
}  // namespace fqvit
