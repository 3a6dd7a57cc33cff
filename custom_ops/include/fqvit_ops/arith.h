// The per-element and per-row arithmetic of docs/ops.md, written once. The scalar CPU paths, the CUDA kernels and
// the C++ kernel test (whose oracle it is: every SIMD path is compared with it) all call these functions; step
// numbers are those of docs/ops.md. Every function is inline and, under nvcc, __host__ __device__ (FQVIT_HD is plain
// `inline` for the host compiler).
//
// Float32 steps are single IEEE operations in the documented order: on the device the explicit round-to-nearest
// intrinsics (__fadd_rn, __fmul_rn, __fdiv_rn, __fsqrt_rn: never contracted into FMA, never approximated), on the
// host plain operators under -ffp-contract=off and no fast-math (custom_ops/CMakeLists.txt). Integer steps are exact.
#pragma once

#include <stdint.h>

#include <cmath>

#include "fqvit_ops/spec.h"

#if defined(__CUDACC__)
#define FQVIT_HD __host__ __device__ __forceinline__
#else
#define FQVIT_HD inline
#endif

namespace fqvit {

// --- single IEEE float32 operations ---------------------------------------------------------------------------------

FQVIT_HD float f32_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

FQVIT_HD float f32_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

FQVIT_HD float f32_div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

FQVIT_HD float f32_sqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// Round half to even (the rounding mode is never changed from its default, round to nearest even).
FQVIT_HD float f32_round_even(float a) {
#if defined(__CUDA_ARCH__)
  return rintf(a);
#else
  return std::nearbyint(a);
#endif
}

// Integer to float32, round to nearest even (exact below 2^24).
FQVIT_HD float f32_from_i64(int64_t v) {
#if defined(__CUDA_ARCH__)
  return __ll2float_rn(static_cast<long long>(v));
#else
  return static_cast<float>(v);
#endif
}

FQVIT_HD float f32_from_i32(int32_t v) {
#if defined(__CUDA_ARCH__)
  return __int2float_rn(v);
#else
  return static_cast<float>(v);
#endif
}

// --- code types ------------------------------------------------------------------------------------------------------

// The range of a code type T (uint8_t or int8_t; fqvit_ops/spec.h CodeType): QuantizeLinear clamps to it.
template <typename T>
struct CodeRange;
template <>
struct CodeRange<uint8_t> {
  static constexpr int32_t kLo = 0, kHi = 255;
  static constexpr CodeType kType = CodeType::kUint8;
};
template <>
struct CodeRange<int8_t> {
  static constexpr int32_t kLo = -128, kHi = 127;
  static constexpr CodeType kType = CodeType::kInt8;
};

FQVIT_HD constexpr int32_t code_lo(CodeType t) { return t == CodeType::kInt8 ? -128 : 0; }
FQVIT_HD constexpr int32_t code_hi(CodeType t) { return t == CodeType::kInt8 ? 127 : 255; }
inline const char* code_type_name(CodeType t) { return t == CodeType::kInt8 ? "int8" : "uint8"; }

// --- Sec. 1: QuantizeLinear to a code type ---------------------------------------------------------------------------

// ONNX QuantizeLinear exactly as the PyTorch reference does it: round half to even of the float32 quotient, clamped
// to +-2^30 before the int32 conversion (a NaN quotient lands at the bottom, as x86's conversion does), plus the zero
// point (int32, in T's range), clamped to T's range [lo, hi].
FQVIT_HD int32_t quantize_code(float v, float y_scale, int32_t y_zero_point, int32_t lo, int32_t hi) {
  float r = f32_round_even(f32_div(v, y_scale));
  if (!(r >= -1073741824.0f)) r = -1073741824.0f;
  if (r > 1073741824.0f) r = 1073741824.0f;
  const int32_t q = static_cast<int32_t>(r) + y_zero_point;  // r is integral and inside int32: exact
  return q < lo ? lo : (q > hi ? hi : q);
}

// QuantizeLinear to uint8 (0..255). For int8 (zero point z - 128), quantize_code gives exactly this minus 128.
FQVIT_HD int32_t quantize_u8(float v, float y_scale, int32_t y_zero_point) {
  return quantize_code(v, y_scale, y_zero_point, 0, 255);
}

// QuantizeLinear to code type T.
template <typename T>
FQVIT_HD T quantize_to(float v, float y_scale, int32_t y_zero_point) {
  return static_cast<T>(quantize_code(v, y_scale, y_zero_point, CodeRange<T>::kLo, CodeRange<T>::kHi));
}

// DequantizeLinear of one code: f32(q - zp) * scale. q - zp is exact (-255..255 for codes and zero points of one
// type) and so is its conversion; the product is one float32 rounding.
FQVIT_HD float dequantize(int32_t q, int32_t zero_point, float scale) {
  return f32_mul(f32_from_i32(q - zero_point), scale);
}

// Sec. 5 (fused ops), ResidualAdd per element: u = dequantize(a); v = dequantize(b); v = v * gamma; t = u + v;
// QuantizeLinear(t) to T. Each step one float32 rounding, in this order (a block without LayerScale has gamma = 1,
// and v * 1 == v exactly).
template <typename T = uint8_t>
FQVIT_HD T residual_add_one(int32_t a, float a_scale, int32_t a_zero_point, int32_t b, float b_scale,
                            int32_t b_zero_point, float y_scale, int32_t y_zero_point, float gamma) {
  const float u = dequantize(a, a_zero_point, a_scale);
  const float v = f32_mul(dequantize(b, b_zero_point, b_scale), gamma);
  return quantize_to<T>(f32_add(u, v), y_scale, y_zero_point);
}

// Sec. 1 (integer matmuls), Requantize per element: t = f32(A); t = t * m; t = t + b; QuantizeLinear(t) to T.
template <typename T = uint8_t>
FQVIT_HD T requantize_one(int32_t a, float multiplier, float bias, float y_scale, int32_t y_zero_point) {
  float t = f32_from_i32(a);
  t = f32_mul(t, multiplier);
  t = f32_add(t, bias);
  return quantize_to<T>(t, y_scale, y_zero_point);
}

// --- Sec. 2: PTSLayerNorm --------------------------------------------------------------------------------------------

// Step 1: x_c = (q_c - zp) << alpha_c (q_c, zp of one code type: q_c - zp in -255..255 either way), |x_c| <= 255 * 2^3 = 2040 (alpha_c in 0..kMaxAlpha, checked by the caller).
FQVIT_HD int32_t pts_x(int32_t q, int32_t zp, int32_t alpha) { return (q - zp) * (1 << alpha); }

// Step 3, once per tensor: t1 = x_scale * x_scale; t2 = f32(C * C) * epsilon; e = t2 / t1.
FQVIT_HD float pts_eps_term(int64_t channels, float epsilon, float x_scale) {
  const float t1 = f32_mul(x_scale, x_scale);
  const float t2 = f32_mul(f32_from_i64(channels * channels), epsilon);
  return f32_div(t2, t1);
}

// Steps 2 (D) and 4: D = C * S2 - S1 * S1 (exact in int64, D >= 0); den = sqrt(f32(D) + e).
FQVIT_HD float pts_den(int64_t channels, int64_t s1, int64_t s2, float e) {
  const int64_t d = channels * s2 - s1 * s1;
  return f32_sqrt(f32_add(f32_from_i64(d), e));
}

// Steps 5-7 for one channel: y = f32(C x - S1) / den (numerator exact, |C x - S1| < 2^24), y = 0 when den is 0 (or
// NaN); v = (y * gamma) + beta, two roundings; QuantizeLinear(v) to T.
template <typename T = uint8_t>
FQVIT_HD T pts_out(int32_t x, int64_t channels, int64_t s1, float den, float gamma, float beta, float y_scale,
                         int32_t y_zero_point) {
  const float num = f32_from_i64(channels * x - s1);
  const float y = den > 0.0f ? f32_div(num, den) : 0.0f;
  const float v = f32_add(f32_mul(y, gamma), beta);
  return quantize_to<T>(v, y_scale, y_zero_point);
}

// --- Sec. 3: LogIntSoftmax ------------------------------------------------------------------------------------------

// Steps 1-4 for one unmasked position, d = max - q_j in 0..255: t = -d M; n = (-t) >> L; r = t + (n << L) in
// (-2^L, 0]; z = r (r + B) + Cp in [779996821, Cp]; e = z >> min(n, 62). Always below 2^31.
FQVIT_HD int64_t lis_exp_term(int64_t d, int64_t multiplier) {
  const int64_t u = d * multiplier;               // -t_j >= 0
  const int64_t n = u >> kLisFracBits;            // n_j
  const int64_t r = -(u - (n << kLisFracBits));   // r_j
  const int64_t z = r * (r + kLisPolyB) + kLisPolyC;
  return z >> (n < 62 ? n : 62);
}

// floor(sqrt(v)) for 0 <= v < 2^62, digit by digit (exact, no floating point).
FQVIT_HD constexpr int64_t isqrt_floor(int64_t v) {
  int64_t root = 0;
  for (int64_t bit = int64_t(1) << 62; bit != 0; bit >>= 2) {
    if (v >= root + bit) {
      v -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
  }
  return root;
}

// Step 6: T'_k = isqrt(2^(2P - 1 - 2k) - 1) + 1, the smallest integer whose square reaches 2^(2P - 1 - 2k), so that
// p^2 < 2^(2P - 1 - 2k) <=> p < T'_k (k < kLisMaxCodes).
FQVIT_HD constexpr int64_t lis_root_threshold(int k) {
  return isqrt_floor((int64_t(1) << (2 * kLisNormBits - 1 - 2 * k)) - 1) + 1;
}

// The 16 root thresholds of one `bits`: T'_k for k < Z = 2^bits - 1, then 0 (never above p: closes the search).
struct LisRootThresholds {
  int64_t t[kLisMaxCodes + 1];
};

FQVIT_HD LisRootThresholds lis_root_thresholds(int bits) {
  LisRootThresholds r{};
  const int zero_code = (1 << bits) - 1;
  for (int k = 0; k <= kLisMaxCodes; ++k) r.t[k] = k < zero_code ? lis_root_threshold(k) : 0;
  return r;
}

// Steps 5-6 without the division: with p = floor(e 2^P / S), p < T'_k <=> e < ceil(T'_k S / 2^P) =: F_k (e, T'_k
// integers). F_k of one row from S (clamped to 1: a fully masked row has every e = 0, so every code is Z), in int64
// without 128-bit products: S = S_hi 2^P + S_lo, F_k = T'_k S_hi + ceil(T'_k S_lo / 2^P) (T'_k, S_lo < 2^30,
// S_hi < 2^32), clamped to INT32_MAX (above every e). T'_k = 0 gives F_k = 0.
FQVIT_HD int32_t lis_row_threshold(int64_t root_threshold, int64_t s) {
  const int64_t sum = s < 1 ? 1 : s;
  const int64_t lo_mask = (int64_t(1) << kLisNormBits) - 1;
  const int64_t lo = (root_threshold * (sum & lo_mask) + lo_mask) >> kLisNormBits;
  const int64_t f = root_threshold * (sum >> kLisNormBits) + lo;
  return f > 2147483647 ? 2147483647 : static_cast<int32_t>(f);
}

// Step 6 of one position: code = #{k : e < F_k}. F_k does not increase with k (and F_k = 0 for k >= Z), so the
// counted k are a prefix: a branchless binary search probing F_7, F_{pos+3}, F_{pos+1}, F_pos over the 16 values.
// e = 0 (a masked position, or one whose exponent underflowed) gives Z: every F_k with k < Z is >= 1.
FQVIT_HD uint8_t lis_code(int32_t e, const int32_t* f) {
  int pos = e < f[7] ? 8 : 0;
  pos += e < f[pos + 3] ? 4 : 0;
  pos += e < f[pos + 1] ? 2 : 0;
  pos += e < f[pos] ? 1 : 0;
  return static_cast<uint8_t>(pos);
}

// --- Sec. 4: LISMatMul -----------------------------------------------------------------------------------------------

// Step 1: w(k) = 2^(14 - k) for k < Z, w(k) = 0 otherwise (codes above Z included).
FQVIT_HD int32_t lis_weight(int32_t code, int32_t zero_code) {
  return code < zero_code ? (1 << (kLisValueShift - code)) : 0;
}

// Step 3: t = f32(acc) * v_scale; t = t * 2^-14 (exact); QuantizeLinear(t) to T.
template <typename T = uint8_t>
FQVIT_HD T lis_matmul_out(int64_t acc, float v_scale, float y_scale, int32_t y_zero_point) {
  float t = f32_mul(f32_from_i64(acc), v_scale);
  t = f32_mul(t, 0x1p-14f);
  return quantize_to<T>(t, y_scale, y_zero_point);
}

}  // namespace fqvit
