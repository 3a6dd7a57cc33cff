// com.fqvit::LogIntSoftmax kernels (docs/ops.md Sec. 3): logits of type T (uint8 or int8) in, uint8 log2 codes out.
#pragma once

#include <cstdint>
#include <string>

#include "fqvit_ops/common.h"

namespace fqvit {

struct LisSoftmaxParams {
  int64_t rows = 0;        // product of the leading dims of X
  int64_t n = 0;           // N, the last dim of X (softmax axis)
  int64_t multiplier = 0;  // M of Sec. 3
  int bits = 4;            // codes 0 .. 2^bits - 1; the top code is probability 0
};

// Where row r of X finds its mask: the mask is broadcast to X (numpy rules, rank <= X's rank).
struct MaskLayout {
  const uint8_t* data = nullptr;  // bool bytes, nonzero = masked; nullptr = no mask
  int nlead = 0;                  // number of leading dims of X
  int64_t lead_dims[kMaxRank] = {};
  int64_t lead_strides[kMaxRank] = {};  // mask element stride along each leading dim (0 where broadcast)
  int64_t last_stride = 0;              // 1 when the mask varies along N, 0 when it is broadcast along N

  // Offset of row r's mask row (host and device).
#if defined(__CUDACC__)
  __host__ __device__
#endif
  inline int64_t row_offset(int64_t r) const {
    int64_t off = 0;
    for (int i = nlead - 1; i >= 0; --i) {
      const int64_t dim = lead_dims[i];
      off += (r % dim) * lead_strides[i];
      r /= dim;
    }
    return off;
  }
};

std::string log_int_softmax_check(const LisSoftmaxParams& p);

// Builds the layout of `mask` (shape m_shape) broadcast to X (shape x_shape); "" when broadcastable.
std::string mask_layout_make(const int64_t* x_shape, int x_rank, const int64_t* m_shape, int m_rank,
                             const uint8_t* mask, MaskLayout* out);

// Rows [row_begin, row_end) of X [rows, N] -> codes [rows, N].
void log_int_softmax_cpu(const uint8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         int64_t row_begin, int64_t row_end, Isa isa);
// int8 logits: the uint8 path on x ^ 0x80 (max - q unchanged; bit-identical).
void log_int_softmax_cpu(const int8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         int64_t row_begin, int64_t row_end, Isa isa);

// CUDA: all rows; `mask.data` is a device pointer. Returns a cudaError_t value.
int log_int_softmax_cuda(const uint8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         void* stream);
int log_int_softmax_cuda(const int8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         void* stream);
// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::LogIntSoftmax, CodeType code);

}  // namespace fqvit
