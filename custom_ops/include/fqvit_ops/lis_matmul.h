// com.fqvit::LISMatMul kernels (docs/ops.md Sec. 4): attention@V on uint8 LIS codes; V, zero points and Y of type
// T = uint8 or int8.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fqvit_ops/common.h"

namespace fqvit {

struct LisMatMulParams {
  int64_t batch = 0;  // product of the leading dims shared by A and V
  int64_t m = 0;      // rows of A
  int64_t n = 0;      // columns of A = rows of V
  int64_t d = 0;      // columns of V
  float v_scale = 1.0f;
  int32_t v_zero_point = 0;
  float y_scale = 1.0f;
  int32_t y_zero_point = 0;
  int bits = 4;
  CodeType code = CodeType::kUint8;  // T: zero points must lie in its range
};

std::string lis_matmul_check(const LisMatMulParams& p);

// The CPU kernel runs on work items (one batch entry x a block of rows each): their count, then items
// [item_begin, item_end) of A [batch, M, N], V [batch, N, D] -> Y [batch, M, D].
int64_t lis_matmul_cpu_items(const LisMatMulParams& p);
void lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, const LisMatMulParams& p, int64_t item_begin,
                    int64_t item_end, Isa isa);
// The kernel's buffers for a caller that runs it many times on one thread (LISAttention: once per block of query
// rows), and the V its last call packed. A call with a v_key >= 0 equal to the key of the call that packed V (and the
// same shapes, zero point and path) reuses the packing of the batch entry it packed last: the caller promises the same
// V. Any other key packs V anew. Not thread-safe: one per thread.
class LisMatMulScratch {
 public:
  LisMatMulScratch();
  ~LisMatMulScratch();
  LisMatMulScratch(const LisMatMulScratch&) = delete;
  LisMatMulScratch& operator=(const LisMatMulScratch&) = delete;
  struct Impl;
  std::unique_ptr<Impl> impl;
};
void lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, const LisMatMulParams& p, int64_t item_begin,
                    int64_t item_end, Isa isa, LisMatMulScratch& scratch, int64_t v_key);
// int8 V and Y: the uint8 path on V ^ 0x80 (a copy per batch entry) with zero points + 128, Y ^ 0x80.
void lis_matmul_cpu(const uint8_t* a, const int8_t* v, int8_t* y, const LisMatMulParams& p, int64_t item_begin,
                    int64_t item_end, Isa isa);

// CUDA: everything, device pointers. Returns a cudaError_t value.
int lis_matmul_cuda(const uint8_t* a, const uint8_t* v, uint8_t* y, const LisMatMulParams& p, void* stream);
int lis_matmul_cuda(const uint8_t* a, const int8_t* v, int8_t* y, const LisMatMulParams& p, void* stream);
// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::LISMatMul, CodeType code);

}  // namespace fqvit
