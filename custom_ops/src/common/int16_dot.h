// The portable integer GEMM of the CPU kernels that cannot rely on a VNNI/AMX engine: out[r, j] = sum_i a[r, i] *
// b[j, i] over rows of int16 `a` and rows of `b` (int8 or int16), int32 sums. Both operands are row-major with kp
// values per row (zero-padded, kp a multiple of 16 so that the compiler's vector loop has no tail), out has leading
// dimension ldo. Used by QLinear (a = x - zp, b = W transposed) and LISAttention (a = q - zp, b = k - zp).
//
// Exact wherever every partial sum fits int32 (the callers' K limits guarantee it): the products fit int32 and the
// compiler may sum them in any order (vpmaddwd / vpdpwssd pairs, int32 lanes). 4 x 4 tiles share each load of a row.
// Always inline: each caller instantiates it inside its own per-ISA functions (simd.h target attributes).
#pragma once

#include <cstdint>

namespace fqvit {

template <int R, int C, typename B>
inline __attribute__((always_inline)) void int16_dot_tile(const int16_t* a, const B* b, int32_t* out, int64_t kp,
                                                          int64_t ldo) {
  int32_t s[R][C] = {};
  for (int64_t i = 0; i < kp; ++i) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) s[r][c] += a[r * kp + i] * static_cast<int16_t>(b[c * kp + i]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) out[r * ldo + c] = s[r][c];
  }
}

// out[r, j] for r < rows, j < cols.
template <typename B>
inline __attribute__((always_inline)) void int16_dot_rows(const int16_t* a, const B* b, int32_t* out, int64_t rows,
                                                          int64_t cols, int64_t kp, int64_t ldo) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    int64_t j = 0;
    for (; j + 4 <= cols; j += 4) int16_dot_tile<4, 4>(a + r * kp, b + j * kp, out + r * ldo + j, kp, ldo);
    for (; j < cols; ++j) int16_dot_tile<4, 1>(a + r * kp, b + j * kp, out + r * ldo + j, kp, ldo);
  }
  for (; r < rows; ++r) {
    int64_t j = 0;
    for (; j + 4 <= cols; j += 4) int16_dot_tile<1, 4>(a + r * kp, b + j * kp, out + r * ldo + j, kp, ldo);
    for (; j < cols; ++j) int16_dot_tile<1, 1>(a + r * kp, b + j * kp, out + r * ldo + j, kp, ldo);
  }
}

}  // namespace fqvit
