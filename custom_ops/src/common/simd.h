// Target attributes for the vector paths of the CPU kernels (function multiversioning by hand: each kernel has a
// scalar, an AVX2 and an AVX-512 body, chosen at run time by fqvit::resolve_isa).
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FQVIT_HAS_X86 1
#define FQVIT_TARGET_AVX2 __attribute__((target("avx2,bmi,bmi2,popcnt")))
#define FQVIT_TARGET_AVX512 \
  __attribute__((target("avx2,bmi,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define FQVIT_HAS_X86 0
#endif

namespace fqvit {

// The reciprocal that the second AVX-512 spelling of quantize_u8_x16 (below) takes beside y_scale: 1 / y_scale (one
// float32 division, per tensor) where |y_scale| lies in [2^-100, 2^100], else NaN, which sends every vector to the
// division.
inline float quantize_reciprocal(float y_scale) {
  const float a = y_scale < 0.0f ? -y_scale : y_scale;
  return a >= 0x1p-100f && a <= 0x1p100f ? 1.0f / y_scale : __builtin_nanf("");
}

}  // namespace fqvit

#if FQVIT_HAS_X86
namespace fqvit {

// quantize_u8 (fqvit_ops/arith.h, docs/ops.md Sec. 1) on 8 and 16 lanes, bit for bit: round half to even, the
// +-2^30 clamp (a NaN quotient lands at -2^30: max_ps returns its second operand), the zero point, 0..255.
FQVIT_TARGET_AVX2 inline __m256i quantize_u8_x8(__m256 v, __m256 y_scale, __m256i y_zp) {
  __m256 r = _mm256_round_ps(_mm256_div_ps(v, y_scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  r = _mm256_max_ps(r, _mm256_set1_ps(-1073741824.0f));
  r = _mm256_min_ps(r, _mm256_set1_ps(1073741824.0f));
  __m256i q = _mm256_add_epi32(_mm256_cvttps_epi32(r), y_zp);
  q = _mm256_max_epi32(q, _mm256_setzero_si256());
  return _mm256_min_epi32(q, _mm256_set1_epi32(255));
}

// The AVX-512 spelling, from the quotient q = v / y_scale: q clamped to [-zp, 255 - zp] in float32, then converted
// with round half to even (the conversion's own rounding, {rn-sae}, whatever MXCSR says), then + zp: the code of
// round-then-clamp for every q, as the bounds are integers (rounding is monotone and keeps them), and r + zp clamped
// to 0..255 is what the +-2^30 clamp, the zero point and the code clamp give; a NaN lands at -zp (max_ps returns its
// second operand), code 0, as it does there. Four operations where the scalar body has eight. The bounds depend on
// y_zp only, so a caller's loop computes them once.
FQVIT_TARGET_AVX512 inline __m512i quotient_codes_x16(__m512 q, __m512i y_zp) {
  const __m512 lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), y_zp));
  const __m512 hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_set1_epi32(255), y_zp));
  const __m512 r = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
  return _mm512_add_epi32(_mm512_cvt_roundps_epi32(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), y_zp);
}

FQVIT_TARGET_AVX512 inline __m512i quantize_u8_x16(__m512 v, __m512 y_scale, __m512i y_zp) {
  return quotient_codes_x16(_mm512_div_ps(v, y_scale), y_zp);
}

// The same codes with the quotient first taken as q' = v * y_rcp (y_rcp = quantize_reciprocal(y_scale):
// RN(1 / y_scale), relative error <= 2^-24), for a loop that a division per vector holds up (PTSLayerNorm has two;
// where the divisions hide behind other work, as in ResidualAdd or LISAttention's tiles, the extra operations cost
// more than they save). Where |q| < 256, |q' - q| <= 256 * 2^-24 + 2^-17 < 2^-15, and the exact quotient RN(q) lies
// within 2^-17 of q; so where q' is farther than 2^-12 from every half-integer (its distance to its rounded value,
// vreduceps, is below 0.5 - 2^-12), RN(q) and q' round to the same integer. Where |q| >= 256 both lie beyond the code
// range and clamp alike (y_zp is in 0..255). A vector with any lane closer (about 1 in 2000 lanes), or a NaN (v or
// y_rcp), takes the division. kernel_test's "near ties" cases fail when the margin is 2^-17 or the division is left
// out.
FQVIT_TARGET_AVX512 inline __m512i quantize_u8_x16(__m512 v, __m512 y_scale, __m512 y_rcp, __m512i y_zp) {
  __m512 q = _mm512_mul_ps(v, y_rcp);
  const __m512 frac = _mm512_reduce_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // q' - round(q')
  if (_mm512_cmp_ps_mask(_mm512_abs_ps(frac), _mm512_set1_ps(0.5f - 0x1p-12f), _CMP_NLT_UQ) != 0) {
    q = _mm512_div_ps(v, y_scale);
  }
  return quotient_codes_x16(q, y_zp);
}

// Requantize (fqvit_ops/arith.h requantize_one, docs/ops.md Sec. 1) on 16 lanes: t = f32(acc), t = t * m, t = t + b,
// then quantize_u8_x16; the one AVX-512 spelling that Requantize's spans and LISAttention's q k^T tiles share.
FQVIT_TARGET_AVX512 inline __m512i requantize_u8_x16(__m512i acc, __m512 m, __m512 b, __m512 y_scale, __m512i y_zp) {
  __m512 t = _mm512_cvtepi32_ps(acc);
  t = _mm512_mul_ps(t, m);
  t = _mm512_add_ps(t, b);
  return quantize_u8_x16(t, y_scale, y_zp);
}

// The same with bias 0 (LISAttention's logits), its addition left out: t + 0 is t for every float32 t but -0, which
// becomes +0, and both quantize to the zero point.
FQVIT_TARGET_AVX512 inline __m512i requantize_u8_x16(__m512i acc, __m512 m, __m512 y_scale, __m512i y_zp) {
  return quantize_u8_x16(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), m), y_scale, y_zp);
}

}  // namespace fqvit
#endif
