// QLinear's AMX path (qlinear_amx.cc): X's uint8 codes times W's int8 weights in AMX tiles (exact int32
// accumulators), then Requantize's AVX-512 epilogue on each 32 x 32 block of accumulators while it is in L1.
#pragma once

#include <cstdint>
#include <memory>

#include "fqvit_ops/qlinear.h"
#include "fqvit_ops/requantize.h"

namespace fqvit {

// Whether this process may run AMX int8 tiles: the CPU has AVX-512 VNNI (fqvit::cpu_best_isa), AMX-TILE and
// AMX-INT8, the OS saves the tile state (XCR0 bits 17, 18) and granted this process the tile data (Linux arch_prctl
// ARCH_REQ_XCOMP_PERM). Decided once.
bool amx_usable();  // amx_enabled() (fqvit_ops/qlinear.h) is this unless FQVIT_CPU_ISA names a lower path

// W packed for the tiles: for each column block of 16 (padded to an even count) and each K block of 64 (zero
// padded), one 1 KiB B tile of 16 rows (K quads) x 16 columns x 4 bytes. Made once per weight.
class AmxWeights {
 public:
  AmxWeights(const int8_t* w, int64_t k, int64_t n);
  ~AmxWeights();
  AmxWeights(const AmxWeights&) = delete;
  AmxWeights& operator=(const AmxWeights&) = delete;

  // Y's `rows` rows (uint8 codes, row stride N) from X's (uint8 codes, row stride K; K > 0): acc = sum_k x W - term[n]
  // (wrapping int32: term[n] = x_zero_point * sum_k W[k, n], so acc is sum_k (x - zp) W exactly, the result lying in
  // int32), then Requantize with multiplier m[n], bias b[n] (N each), rq's y_scale and y_zero_point (uint8 domain);
  // flip: store codes ^ 0x80 (int8 outputs). Only columns 32 * pair_begin .. 32 * pair_end (pair_end < 0: all;
  // column_pairs() pairs of 16-column blocks in all). Runs on the calling thread; thread-safe.
  void run(const uint8_t* x, int64_t rows, const int32_t* term, const float* m, const float* b,
           const RequantizeParams& rq, bool flip, uint8_t* y, int64_t pair_begin = 0, int64_t pair_end = -1) const;
  int64_t column_pairs() const;

 private:
  int64_t k_, n_, kb_, nb_;  // K, N, K blocks of 64, column blocks of 16 (even)
  int8_t* b_ = nullptr;       // nb_ * kb_ tiles of 1 KiB, 64-byte aligned
};

}  // namespace fqvit
