// com.fqvit::LISAttention kernels (docs/ops.md Sec. 5, fused ops): a ViT's attention from the qkv codes to the
// attention@V codes, per batch entry b and head h (q, k, v the [N, D] parts of QKV [B, N, 3, heads, D]):
//   acc    = (q - zp) @ (k - zp)^T                                  (exact int32: D <= kMaxAttentionHeadDim)
//   logits = Requantize(acc, qk_multiplier, 0.0f, logits_scale, logits_zero_point)     (Sec. 1)
//   codes  = LogIntSoftmax(logits, no mask, lis_multiplier, bits)                      (Sec. 3)
//   out    = LISMatMul(codes, v, qkv_scale, zp, y_scale, y_zero_point, bits)           (Sec. 4)
//   Y[b, i, h * D + d] = out[i, d]
// QKV and Y are codes of type T = uint8 or int8; zp is qkv_zero_point. The kernels call the functions of those ops
// (requantize_cpu, log_int_softmax_cpu, lis_matmul_cpu on the CPU) on blocks of query rows whose logits never leave
// the cache; only q k^T is the op's own.
#pragma once

#include <cstdint>
#include <string>

#include "fqvit_ops/common.h"

namespace fqvit {

struct LisAttentionParams {
  int64_t batch = 0;     // B
  int64_t tokens = 0;    // N
  int64_t heads = 0;     // attribute heads
  int64_t head_dim = 0;  // D = QKV's last dimension / (3 * heads)
  float qkv_scale = 1.0f;
  int32_t qkv_zero_point = 0;
  float qk_multiplier = 1.0f;
  float logits_scale = 1.0f;
  int32_t logits_zero_point = 0;
  float y_scale = 1.0f;
  int32_t y_zero_point = 0;
  int64_t lis_multiplier = 0;  // attribute lis_multiplier (LogIntSoftmax's M)
  int bits = 4;                // attribute bits
  CodeType code = CodeType::kUint8;  // T: the zero points must lie in its range
};

std::string lis_attention_check(const LisAttentionParams& p);

// Query rows per CPU work item: one item is (batch entry, head, block of at most this many query rows), whose
// int32 accumulators, logits and LIS codes (rows x N each) stay in the core's cache.
constexpr int64_t kLisAttentionBlockRows = 64;

// The CPU kernel's work items: their count, then items [item_begin, item_end) of QKV [B, N, 3 * heads * D] ->
// Y [B, N, heads * D] (each item writes its rows of one head's D columns).
int64_t lis_attention_cpu_items(const LisAttentionParams& p);
void lis_attention_cpu(const uint8_t* qkv, uint8_t* y, const LisAttentionParams& p, int64_t item_begin,
                       int64_t item_end, Isa isa);
// int8 codes: the uint8 body on QKV ^ 0x80 with zero points + 128, Y ^ 0x80 (bit-identical).
void lis_attention_cpu(const int8_t* qkv, int8_t* y, const LisAttentionParams& p, int64_t item_begin,
                       int64_t item_end, Isa isa);

// The q k^T method item runs use on path `isa`: "VNNI u8 x s8 (vpdpbusd)" or "portable int16 loop (<isa>)".
std::string lis_attention_gemm_name(Isa isa);

// CUDA: everything, device pointers (QKV, Y); the scalars travel in p. Returns a cudaError_t value.
int lis_attention_cuda(const uint8_t* qkv, uint8_t* y, const LisAttentionParams& p, void* stream);
int lis_attention_cuda(const int8_t* qkv, int8_t* y, const LisAttentionParams& p, void* stream);

// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::LISAttention, CodeType code);

}  // namespace fqvit
