// Device helpers shared by the CUDA kernels: explicit IEEE float32 operations (docs/ops.md notation: no contraction,
// correctly rounded division and square root) and the QuantizeLinear of docs/ops.md Sec. 1.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace fqvit {
namespace cuda {

// Step "QuantizeLinear" exactly as quantize_u8 on the host: round half to even, NaN -> bottom, +-2^30 clamp.
__device__ __forceinline__ int32_t quantize_u8(float v, float y_scale, int32_t y_zero_point) {
  float r = rintf(__fdiv_rn(v, y_scale));
  if (!(r >= -1073741824.0f)) r = -1073741824.0f;
  if (r > 1073741824.0f) r = 1073741824.0f;
  const int32_t q = __float2int_rz(r) + y_zero_point;
  return q < 0 ? 0 : (q > 255 ? 255 : q);
}

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
