// com.fqvit::QLinear kernels (docs/ops.md Sec. 5, fused ops): MatMulInteger with an int8 weight
// followed by Requantize's epilogue, without an int32 tensor in memory:
//   acc[m, n] = sum_k (X[m, k] - x_zero_point) * W[k, n]      (exact int32: K <= kMaxQlinearK)
//   Y[m, n]   = requantize_one(acc[m, n], multiplier[n], bias[n], y_scale, y_zero_point)   (fqvit_ops/arith.h)
// X and Y are codes of type T = uint8 or int8, W int8 [K, N] with zero point 0.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fqvit_ops/common.h"
#include "fqvit_ops/requantize.h"

namespace fqvit {

struct QLinearParams {
  int64_t m = 0;                // rows of X (the product of its leading dimensions)
  int64_t k = 0;                // last dimension of X, rows of W
  int64_t n = 0;                // columns of W
  int64_t multiplier_size = 0;  // N (per channel) or 1 (broadcast)
  int64_t bias_size = 0;        // N or 1
  int32_t x_zero_point = 0;
  float y_scale = 1.0f;
  int32_t y_zero_point = 0;
  CodeType code = CodeType::kUint8;  // T: the zero points must lie in its range
};

std::string qlinear_check(const QLinearParams& p);

// The epilogue of `rows` rows of the output: Requantize's parameters, so that the CPU kernel runs requantize_cpu_block
// on each block of accumulators.
RequantizeParams qlinear_epilogue(const QLinearParams& p, int64_t rows);

// Rows of X per matmul call: a block's int32 accumulators (at most kQLinearBlockRows x its columns) stay in the core's
// L2 cache between the matmul and the epilogue.
constexpr int64_t kQLinearBlockRows = 64;

// Rows per matmul call when the work is cut by column blocks (X has fewer rows than W has columns). Measured on
// deit_small at batch 1 (2 threads, the AMX Xeon): 32 rows ran the whole model 4-5% faster than 64, and 100, 128 or
// 197 slower.
constexpr int64_t kQLinearColumnBlockRows = 32;

// Output channels per column block are at least this many (the width below which a oneDNN call stops paying).
constexpr int64_t kQLinearMinBlockCols = 64;

// The CPU kernel of one weight: W transposed for the portable loop and, when the library is built with oneDNN
// (FQVIT_WITH_ONEDNN) and oneDNN's int8 matmul is exact on this CPU (VNNI or AMX, see qlinear_cpu.cc), packed into
// oneDNN's layout; plus a pool of accumulator blocks (with their oneDNN primitives), one per concurrent caller, so that
// no primitive runs on two threads at once.
//
// Work items cut the work one of two ways, by the shape of the call:
//  * by columns, when X has fewer rows than W has columns (batch 1 in a ViT: W is the larger operand): W is cut into
//    column blocks (equal, multiples of 16 channels, at least kQLinearMinBlockCols wide), by default as many as CPU
//    threads (cpu_threads()), and an item is a column block against a group of row blocks of kQLinearColumnBlockRows
//    rows (one group per column block unless there are fewer blocks than threads). With one item per thread each
//    core reads only its share of W, which stays in its L2 cache from one row block to the next;
//  * by rows otherwise: an item is one row block of kQLinearBlockRows rows against all of W.
// oneDNN's packing of the column blocks, and that of the whole W, is made by the first call that cuts that way.
// run_items() is thread-safe; each call computes its items on the calling thread (oneDNN's own OpenMP threads held to
// one), block by block: the matmul into the block's accumulators, then the epilogue into Y. The matmul is oneDNN's
// only on the Isa::kAvx512 path of a CPU where oneDNN's is exact; every other path runs the portable int32 loop, so
// every path and every cut gives the same bits.
class QLinearCpu {
 public:
  // Packs w (int8 [k, n], row-major) for X of code type `code`, in `column_blocks` column blocks (0: the default
  // above; the count is lowered where N has fewer channels); w is not read after the constructor returns.
  QLinearCpu(const int8_t* w, int64_t k, int64_t n, CodeType code, int64_t column_blocks = 0);
  ~QLinearCpu();
  QLinearCpu(const QLinearCpu&) = delete;
  QLinearCpu& operator=(const QLinearCpu&) = delete;

  // Whether this packs a weight of shape [k, n] for code type `code` (p's other fields are per call).
  bool fits(const QLinearParams& p) const;

  // The work items of X [p.m, p.k] -> Y [p.m, p.n] (0 when Y is empty); then items [item_begin, item_end). T must be
  // p.code's type and fits(p) hold.
  int64_t items(const QLinearParams& p) const;
  void run_items(const uint8_t* x, const float* multiplier, const float* bias, uint8_t* y, const QLinearParams& p,
                 int64_t item_begin, int64_t item_end, Isa isa) const;
  void run_items(const int8_t* x, const float* multiplier, const float* bias, int8_t* y, const QLinearParams& p,
                 int64_t item_begin, int64_t item_end, Isa isa) const;

  // The number of column blocks W is packed in.
  int64_t column_blocks() const;

  // The matmul that run_items() uses on path `isa`: "oneDNN <impl>" (the implementation oneDNN picked for a full
  // block, e.g. "oneDNN brg:avx512_core_amx") or "portable loop (<isa>, <why not oneDNN>)".
  std::string gemm_name(Isa isa) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// CUDA: everything on the device (w, multiplier and bias included), one fused kernel (the accumulators stay in
// registers). Returns a cudaError_t value.
int qlinear_cuda(const uint8_t* x, const int8_t* w, const float* multiplier, const float* bias, uint8_t* y,
                 const QLinearParams& p, void* stream);
int qlinear_cuda(const int8_t* x, const int8_t* w, const float* multiplier, const float* bias, int8_t* y,
                 const QLinearParams& p, void* stream);
// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::QLinear, CodeType code);

}  // namespace fqvit
