// com.fqvit::PTSLayerNorm on CUDA (docs/ops.md Sec. 2). One block of 128 threads per row (grid-stride over rows);
// step numbers are those of Sec. 2. The arithmetic is fqvit_ops/arith.h's (as in the scalar CPU body; float32 steps
// through __fadd_rn/__fmul_rn/__fdiv_rn/__fsqrt_rn), so the result is bit-identical to the CPU kernels and the PyTorch
// reference. alpha values are 0..3: the glue and the C entry point check them on a host copy.
#include "common/cuda_common.cuh"
#include "fqvit_ops/pts_layernorm.h"

namespace fqvit {
namespace {

constexpr int kThreads = 128;

// T: the code type of X, the zero points and Y (uint8_t or int8_t).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    pts_layernorm_kernel(const T* __restrict__ x, const uint8_t* __restrict__ alpha,
                         const float* __restrict__ gamma, const float* __restrict__ beta, T* __restrict__ y,
                         int64_t rows, int64_t channels, int32_t zp, float e, float y_scale, int32_t y_zp) {
  __shared__ long long part1[kThreads / 32], part2[kThreads / 32];
  __shared__ long long tot1, tot2;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* q = x + row * channels;
    // Steps 1-2: x_c = (q_c - zp) << alpha_c; S1, S2 exact in int64.
    long long s1 = 0, s2 = 0;
    for (int64_t c = threadIdx.x; c < channels; c += kThreads) {
      const int32_t xc = pts_x(q[c], zp, alpha[c]);
      s1 += xc;
      s2 += static_cast<long long>(xc * xc);
    }
    s1 = cuda::warp_sum(s1);
    s2 = cuda::warp_sum(s2);
    if (lane == 0) {
      part1[warp] = s1;
      part2[warp] = s2;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      long long a1 = 0, a2 = 0;
      for (int w = 0; w < kThreads / 32; ++w) {
        a1 += part1[w];
        a2 += part2[w];
      }
      tot1 = a1;
      tot2 = a2;
    }
    __syncthreads();
    const long long S1 = tot1, S2 = tot2;
    const float den = pts_den(channels, S1, S2, e);  // steps 2 and 4
    for (int64_t c = threadIdx.x; c < channels; c += kThreads) {
      y[row * channels + c] =
          pts_out<T>(pts_x(q[c], zp, alpha[c]), channels, S1, den, gamma[c], beta[c], y_scale, y_zp);
    }
    __syncthreads();  // part/tot are reused by the next row
  }
}

template <typename T>
int launch(const T* x, const uint8_t* alpha, const float* gamma, const float* beta, T* y, const PtsLayerNormParams& p,
           void* stream) {
  if (p.rows <= 0) return 0;
  const float e = pts_eps_term(p.channels, p.epsilon, p.x_scale);  // step 3, once per tensor
  pts_layernorm_kernel<T><<<cuda::grid_size(p.rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, alpha, gamma, beta, y, p.rows, p.channels, p.x_zero_point, e, p.y_scale, p.y_zero_point);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int pts_layernorm_cuda(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                       const PtsLayerNormParams& p, void* stream) {
  return launch(x, alpha, gamma, beta, y, p, stream);
}

int pts_layernorm_cuda(const int8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, int8_t* y,
                       const PtsLayerNormParams& p, void* stream) {
  return launch(x, alpha, gamma, beta, y, p, stream);
}

const void* cuda_kernel(op::PTSLayerNorm, CodeType code) {
  return code == CodeType::kInt8 ? reinterpret_cast<const void*>(&pts_layernorm_kernel<int8_t>)
                                 : reinterpret_cast<const void*>(&pts_layernorm_kernel<uint8_t>);
}

int pts_layernorm_cuda_alpha_to_host(const uint8_t* alpha_device, int64_t channels, uint8_t* host, void* stream) {
  if (channels <= 0) return 0;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  cudaError_t err = cudaMemcpyAsync(host, alpha_device, static_cast<size_t>(channels), cudaMemcpyDeviceToHost, s);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
  return static_cast<int>(err);
}

}  // namespace fqvit
