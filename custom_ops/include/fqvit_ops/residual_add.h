// com.fqvit::ResidualAdd kernels (docs/ops.md Sec. 5, fused ops): the residual add of a transformer block on codes,
//   Y = QuantizeLinear(dequantize(A) + dequantize(B) * gamma, y_scale)
// per channel c of the last axis, A, B and Y codes of one type T = uint8 or int8 (arith.h residual_add_one). It
// stands for the ten float nodes DequantizeLinear, Add, Div, Round, Add, Clip, Cast, Cast, Sub, Mul of a QDQ graph.
#pragma once

#include <cstdint>
#include <string>

#include "fqvit_ops/common.h"

namespace fqvit {

// The float inputs that run along the channels (spec.py "[C] or one element"): each has C entries or one
// (broadcast); gamma may also be nullptr with size 0 (no LayerScale, the same bits as gamma = 1).
struct ResidualAddChannels {
  const float* a_scale = nullptr;
  const float* b_scale = nullptr;
  const float* y_scale = nullptr;
  const float* gamma = nullptr;
};

struct ResidualAddParams {
  int64_t numel = 0;          // elements of A, B and Y
  int64_t channels = 0;       // last dimension C
  int64_t a_scale_size = 0;   // C or 1
  int64_t b_scale_size = 0;   // C or 1
  int64_t y_scale_size = 0;   // C or 1
  int64_t gamma_size = 0;     // C, 1, or 0 (gamma left out)
  int32_t a_zero_point = 0;   // in T's range, as are the other two
  int32_t b_zero_point = 0;
  int32_t y_zero_point = 0;
  CodeType code = CodeType::kUint8;  // T
};

std::string residual_add_check(const ResidualAddParams& p);

// Elements [begin, end) of the flattened A, B -> Y; element i uses channel i % C. Channel pointers in host memory.
void residual_add_cpu(const uint8_t* a, const uint8_t* b, const ResidualAddChannels& ch, uint8_t* y,
                      const ResidualAddParams& p, int64_t begin, int64_t end, Isa isa);
void residual_add_cpu(const int8_t* a, const int8_t* b, const ResidualAddChannels& ch, int8_t* y,
                      const ResidualAddParams& p, int64_t begin, int64_t end, Isa isa);

// CUDA: everything, device pointers (the channel inputs included). Returns a cudaError_t value.
int residual_add_cuda(const uint8_t* a, const uint8_t* b, const ResidualAddChannels& ch, uint8_t* y,
                      const ResidualAddParams& p, void* stream);
int residual_add_cuda(const int8_t* a, const int8_t* b, const ResidualAddChannels& ch, int8_t* y,
                      const ResidualAddParams& p, void* stream);
// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::ResidualAdd, CodeType code);

}  // namespace fqvit
