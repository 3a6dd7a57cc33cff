// com.fqvit::PTSLayerNorm kernels (docs/ops.md Sec. 2): uint8 PTS-quantized rows in, uint8 quantized LayerNorm out.
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
};

// Parameter checks shared by every entry point; "" when fine. alpha (host memory, C values) is checked when given.
std::string pts_layernorm_check(const PtsLayerNormParams& p, const uint8_t* alpha_host);

// Step 3, once per tensor: e = (f32(C * C) * epsilon) / (x_scale * x_scale).
float pts_layernorm_eps_term(int64_t channels, float epsilon, float x_scale);

// Rows [row_begin, row_end) of X [rows, C] -> Y [rows, C]. alpha values must be 0..3 (checked by the caller).
void pts_layernorm_cpu(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                       const PtsLayerNormParams& p, int64_t row_begin, int64_t row_end, Isa isa);

// CUDA: all rows, device pointers, enqueued on `stream` (a cudaStream_t), no host synchronisation. alpha values
// above 3 are treated as 3 (the device cannot report them without a sync). Returns a cudaError_t value (0 = success).
int pts_layernorm_cuda(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                       const PtsLayerNormParams& p, void* stream);

}  // namespace fqvit
