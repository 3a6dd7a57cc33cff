// com.fqvit::Requantize kernels (docs/ops.md Sec. 1, integer matmuls): the epilogue of a MatMulInteger in one pass,
// Y = QuantizeLinear((f32(A) * multiplier[n]) + bias[n], y_scale, y_zero_point), int32 in, T = uint8 or int8 out.
#pragma once

#include <cstdint>
#include <string>

#include "fqvit_ops/common.h"

namespace fqvit {

struct RequantizeParams {
  int64_t numel = 0;           // elements of A (and Y)
  int64_t n = 0;               // last dimension N of A
  int64_t multiplier_size = 0; // elements of multiplier: N (per channel) or 1 (broadcast)
  int64_t bias_size = 0;       // elements of bias: N or 1
  float y_scale = 1.0f;
  int32_t y_zero_point = 0;
  CodeType code = CodeType::kUint8;  // T: y_zero_point must lie in its range
};

std::string requantize_check(const RequantizeParams& p);

// Elements [begin, end) of the flattened A -> Y; element i uses channel i % N. With col_offset (N int32 values), the
// arithmetic acts on A[i] - col_offset[i % N] in wrapping int32: the caller's offset must leave the exact
// accumulator, which lies in int32 (QLinear's int32 path: the zero-point term x_zero_point * sum_k W[k, n]).
void requantize_cpu(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y,
                    const RequantizeParams& p, int64_t begin, int64_t end, Isa isa,
                    const int32_t* col_offset = nullptr);
// int8 Y: the uint8 path with y_zero_point + 128, then Y ^ 0x80 (bit-identical).
void requantize_cpu(const int32_t* a, const float* multiplier, const float* bias, int8_t* y,
                    const RequantizeParams& p, int64_t begin, int64_t end, Isa isa,
                    const int32_t* col_offset = nullptr);

// CUDA: everything, device pointers (multiplier and bias included). Returns a cudaError_t value.
int requantize_cuda(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y,
                    const RequantizeParams& p, void* stream);
int requantize_cuda(const int32_t* a, const float* multiplier, const float* bias, int8_t* y,
                    const RequantizeParams& p, void* stream);
// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::Requantize, CodeType code);

}  // namespace fqvit
