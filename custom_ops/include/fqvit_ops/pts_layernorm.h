// com.fqvit::PTSLayerNorm kernels (docs/ops.md Sec. 2): PTS-quantized rows in, quantized LayerNorm out, codes of type
// T = uint8 or int8 (X, zero points and Y share it; alpha is uint8).
#pragma once

#include <cstdint>
#include <string>

#include "fqvit_ops/common.h"

namespace fqvit {

struct PtsLayerNormParams {
  int64_t rows = 0;      // product of the leading dims of X
  int64_t channels = 0;  // C, the last dim of X (normalised axis)
  float x_scale = 1.0f;  // base scale s of the PTS quantizer
  int32_t x_zero_point = 0;
  float epsilon = 0.0f;
  float y_scale = 1.0f;
  int32_t y_zero_point = 0;
  CodeType code = CodeType::kUint8;  // T: zero points must lie in its range
};

// Parameter checks shared by every entry point; "" when fine. alpha (host memory, C values) is checked when given.
std::string pts_layernorm_check(const PtsLayerNormParams& p, const uint8_t* alpha_host);
// alpha values (host memory, `count` of them) in 0..kMaxAlpha; "" when fine.
std::string pts_layernorm_alpha_check(const uint8_t* alpha_host, int64_t count);

// Rows [row_begin, row_end) of X [rows, C] -> Y [rows, C]. alpha values must be 0..3 (checked by the caller).
void pts_layernorm_cpu(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                       const PtsLayerNormParams& p, int64_t row_begin, int64_t row_end, Isa isa);
// int8 codes (zero points -128..127): the uint8 path on x ^ 0x80 with zero points + 128, output ^ 0x80 (bit-identical).
void pts_layernorm_cpu(const int8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, int8_t* y,
                       const PtsLayerNormParams& p, int64_t row_begin, int64_t row_end, Isa isa);

// CUDA: all rows, device pointers, enqueued on `stream` (a cudaStream_t), no host synchronisation. alpha values
// must be 0..3, checked by the caller on a host copy (pts_layernorm_cuda_alpha_to_host). Returns a cudaError_t value
// (0 = success).
int pts_layernorm_cuda(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                       const PtsLayerNormParams& p, void* stream);
int pts_layernorm_cuda(const int8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, int8_t* y,
                       const PtsLayerNormParams& p, void* stream);
// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::PTSLayerNorm, CodeType code);

// Copies `channels` alpha bytes from the device to `host` on `stream` and waits for them (a synchronisation: used
// once per kernel for a constant alpha, and by the C entry point). Returns a cudaError_t value.
int pts_layernorm_cuda_alpha_to_host(const uint8_t* alpha_device, int64_t channels, uint8_t* host, void* stream);

}  // namespace fqvit
