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

// The epilogue of `rows` rows of the output: Requantize's parameters, so that the CPU kernel runs requantize_cpu
// on each block of accumulators.
RequantizeParams qlinear_epilogue(const QLinearParams& p, int64_t rows);

// Row blocks of X on the CPU: m rows are ceil(m / kQLinearRowAlign) tiles of kQLinearRowAlign rows (an AMX tile's;
// the last one partial), dealt as evenly as whole tiles allow to threads * max(1, floor(m / (threads *
// kQLinearBlockRows))) blocks (at most one per tile), so that every thread gets as many blocks as the others and
// every block but the one holding the partial tile whole tiles: oneDNN runs a partial tile row slowly (a block of 66
// rows ran 10% slower than one of 64). So one block per thread up to 2 * kQLinearBlockRows - 1 rows per thread: one
// oneDNN call each, which blocks M itself. Measured in the whole model (AMX Xeon, 2 threads, bench_onnx --library):
// against blocks of at most 127 rows (kQLinearBlockRows 64), 0.89-0.90 at batch 2, 0.93-0.95 at 4 and 8 (deit_small,
// deit_base); batch 1 (197 rows) ran 5-8% faster in two blocks than cut into column blocks or into four blocks of 50
// rows. A block whose rows do not all fit the fused epilogue's bounds (qlinear_cpu.cc) runs in sub-blocks of
// kQLinearSubBlockRows rows, each fused or through int32 accumulators of that many rows.
constexpr int64_t kQLinearBlockRows = 512;
constexpr int64_t kQLinearSubBlockRows = 64;
constexpr int64_t kQLinearRowAlign = 16;

// The number of blocks of m rows on `threads` threads, and block i of them: rows [begin, end).
struct QLinearRows {
  int64_t begin = 0, end = 0;
};
int64_t qlinear_blocks(int64_t m, int64_t threads);
QLinearRows qlinear_block(int64_t m, int64_t blocks, int64_t i);

// The CPU kernel of one weight: W transposed for the portable loop; packed into AMX B tiles when it is made with
// use_amx (qlinear_amx.cc); and, when the library is built with oneDNN (FQVIT_WITH_ONEDNN) and oneDNN's int8 matmul
// is exact on this CPU (VNNI or AMX, see qlinear_cpu.cc), packed into oneDNN's layouts by the first block that takes
// each path; plus a pool of oneDNN primitives (and accumulator blocks), one per concurrent caller and block row count
// (multiples of kQLinearRowAlign up to 2 * kQLinearBlockRows and the partial last blocks; kept for the kernel's life),
// so that no primitive runs on two threads at once.
//
// A work item is a block of rows of X (qlinear_blocks with cpu_threads()) against all of W; on the AMX path, where
// the blocks have few rows (batch 1) and W is large, item i is all rows against the i-th share of W's columns
// instead. run_items() is thread-safe; each call computes its items on the calling thread (oneDNN's own OpenMP
// threads held to one). On the Isa::kAvx512 path of a kernel made with use_amx, a block is one call of the AMX tile
// loop (exact for every input). Otherwise a block is one oneDNN call that writes Y's codes (the requantize epilogue in
// oneDNN's post-ops) where that is bit-exact, else it goes by sub-blocks of kQLinearSubBlockRows rows, each such a
// call where its rows allow, else the matmul into int32 accumulators and the epilogue of src/requantize; the matmul
// is oneDNN's only on the Isa::kAvx512 path of a CPU where oneDNN's is exact, and the portable int32 loop everywhere
// else, so every path gives the same bits.

// Whether QLinear's CPU kernel may run AMX int8 tiles now: the CPU has AVX-512 VNNI, AMX-TILE and AMX-INT8 and the OS
// grants the tile state to the process (checked once), and FQVIT_CPU_ISA names no lower path ("scalar", "avx2", or
// "avx512": AVX-512 VNNI without AMX). src/qlinear/qlinear_amx.cc.
bool amx_enabled();

class QLinearCpu {
 public:
  // Packs w (int8 [k, n], row-major) for X of code type `code`; w is not read after the constructor returns. use_amx:
  // the AVX-512 path runs AMX tiles (qlinear_amx.cc) instead of oneDNN, when AMX is usable at all; the onnxruntime
  // kernel decides it once, when it is created, as it resolves its path.
  QLinearCpu(const int8_t* w, int64_t k, int64_t n, CodeType code, bool use_amx = amx_enabled());
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

  // The matmul that run_items() uses on path `isa`: "AMX int8 tiles (qlinear_amx.cc), requantize fused", "oneDNN
  // <impl>, requantize fused" (the implementation oneDNN picks for a block of kQLinearBlockRows rows with the fused
  // epilogue, e.g. "oneDNN brg:avx512_core_vnni, requantize fused"; other block sizes may run another of its
  // kernels) or "portable loop (<isa>, <why not oneDNN>)".
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
