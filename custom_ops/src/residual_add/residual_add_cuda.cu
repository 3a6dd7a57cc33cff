// com.fqvit::ResidualAdd on CUDA (docs/ops.md Sec. 5, fused ops):
//   Y = QuantizeLinear(f32(A - a_zp) * a_scale[c] + (f32(B - b_zp) * b_scale[c]) * gamma[c], y_scale[c], y_zp).
//
// A grid-stride loop, one element per thread and iteration (coalesced byte loads and stores). The channel index
// c = i % C is computed once per thread and then advanced by stride % C, so the loop has no 64-bit division; a
// one-element channel input is read at index c * 0. Float32 steps are fqvit_ops/arith.h's residual_add_one
// (__int2float_rn, __fmul_rn, __fadd_rn, __fdiv_rn, rintf): no contraction, correctly rounded, bit-identical to the
// CPU kernels and the PyTorch reference.
#include "common/cuda_common.cuh"
#include "fqvit_ops/residual_add.h"

namespace fqvit {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

// Channel input k is read at index c * step[k]: 1 per channel, 0 broadcast. gamma nullptr: no LayerScale (v * 1).
struct Steps {
  int64_t a_scale, b_scale, y_scale, gamma;
};

// T: the code type (uint8_t or int8_t) of A, B, the zero points and Y.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    residual_add_kernel(const T* __restrict__ a, const T* __restrict__ b, const float* __restrict__ a_scale,
                        const float* __restrict__ b_scale, const float* __restrict__ y_scale,
                        const float* __restrict__ gamma, T* __restrict__ y, int64_t numel, int64_t channels,
                        int64_t stride_mod_c, Steps step, int32_t a_zp, int32_t b_zp, int32_t y_zp) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  int64_t c = first % channels;
  for (int64_t i = first; i < numel; i += stride) {
    const float g = gamma != nullptr ? gamma[c * step.gamma] : 1.0f;
    y[i] = residual_add_one<T>(a[i], a_scale[c * step.a_scale], a_zp, b[i], b_scale[c * step.b_scale], b_zp,
                               y_scale[c * step.y_scale], y_zp, g);
    c += stride_mod_c;
    if (c >= channels) c -= channels;
  }
}

template <typename T>
int launch(const T* a, const T* b, const ResidualAddChannels& ch, T* y, const ResidualAddParams& p, void* stream) {
  if (p.numel <= 0 || p.channels <= 0) return 0;
  int64_t blocks = (p.numel + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  const int64_t stride = blocks * kThreads;
  auto step = [](int64_t size) -> int64_t { return size == 1 ? 0 : 1; };
  const Steps steps{step(p.a_scale_size), step(p.b_scale_size), step(p.y_scale_size), step(p.gamma_size)};
  residual_add_kernel<T><<<cuda::grid_size(blocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      a, b, ch.a_scale, ch.b_scale, ch.y_scale, ch.gamma, y, p.numel, p.channels, stride % p.channels, steps,
      p.a_zero_point, p.b_zero_point, p.y_zero_point);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int residual_add_cuda(const uint8_t* a, const uint8_t* b, const ResidualAddChannels& ch, uint8_t* y,
                      const ResidualAddParams& p, void* stream) {
  return launch(a, b, ch, y, p, stream);
}

int residual_add_cuda(const int8_t* a, const int8_t* b, const ResidualAddChannels& ch, int8_t* y,
                      const ResidualAddParams& p, void* stream) {
  return launch(a, b, ch, y, p, stream);
}

const void* cuda_kernel(op::ResidualAdd, CodeType code) {
  return code == CodeType::kInt8 ? reinterpret_cast<const void*>(&residual_add_kernel<int8_t>)
                                 : reinterpret_cast<const void*>(&residual_add_kernel<uint8_t>);
}

}  // namespace fqvit
