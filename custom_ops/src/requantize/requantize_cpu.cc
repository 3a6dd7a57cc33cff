// com.fqvit::Requantize on the CPU (docs/ops.md Sec. 1, integer matmuls): per element of the int32 accumulator A,
//   t = f32(A)          (round to nearest even; exact below 2^24)
//   t = t * m[n]        (one float32 rounding)
//   t = t + b[n]        (one rounding; no FMA: the library is built with -ffp-contract=off)
//   Y = clamp(round_half_even(t / y_scale) + y_zero_point, 0, 255)   (ONNX QuantizeLinear, quantize_u8)
// with n the index along the last axis; a one-element multiplier or bias is broadcast.
//
// The element range is cut at row ends into spans of consecutive channels (one span when both multiplier and bias
// are broadcast). Each span runs one of three bodies, all computing the same IEEE operations in the same order:
//  * scalar: requantize_one of fqvit_ops/arith.h (static_cast<float>, *, +, quantize_u8);
//  * AVX2: 8 lanes (cvtdq2ps, mulps, addps, divps, roundps nearest-even), scalar tail;
//  * AVX-512: 16 lanes (requantize_u8_x16 of common/simd.h: the quotient clamped to the codes' range, then converted
//    nearest-even), vpmovdb stores, masked tail.
#include <algorithm>

#include "common/code_flip.h"
#include "common/simd.h"
#include "fqvit_ops/requantize.h"

namespace fqvit {

std::string requantize_check(const RequantizeParams& p) {
  if (p.numel < 0 || p.n < 0) return "negative shape";
  if (p.n == 0 ? p.numel != 0 : p.numel % p.n != 0) {
    return "the element count " + std::to_string(p.numel) + " is not a multiple of N = " + std::to_string(p.n);
  }
  if (p.multiplier_size != p.n && p.multiplier_size != 1) {
    return "multiplier must have N = " + std::to_string(p.n) + " elements (one per channel of the last axis) or one, "
           "got " + std::to_string(p.multiplier_size);
  }
  if (p.bias_size != p.n && p.bias_size != 1) {
    return "bias must have N = " + std::to_string(p.n) + " elements (one per channel of the last axis) or one, got " +
           std::to_string(p.bias_size);
  }
  if (p.y_zero_point < code_lo(p.code) || p.y_zero_point > code_hi(p.code)) {
    return std::string("y_zero_point must be a ") + code_type_name(p.code) + " value";
  }
  return {};
}

namespace {

// One span of consecutive channels: a[i] (minus off[i] when OFF), m[MV ? i : 0], b[BV ? i : 0] -> y[i] for i < len.
// The offset is subtracted in wrapping int32 arithmetic (QLinear's zero-point term: the difference is the exact
// accumulator, which lies in int32, so the wrap gives it exactly).
using SpanFn = void (*)(const int32_t*, const int32_t*, const float*, const float*, uint8_t*, int64_t, float, int32_t);

template <bool OFF>
inline int32_t minus(const int32_t* a, const int32_t* off, int64_t i) {
  return OFF ? static_cast<int32_t>(static_cast<uint32_t>(a[i]) - static_cast<uint32_t>(off[i])) : a[i];
}

template <bool MV, bool BV, bool OFF>
void span_scalar(const int32_t* a, const int32_t* off, const float* m, const float* b, uint8_t* y, int64_t len,
                 float ys, int32_t zp) {
  for (int64_t i = 0; i < len; ++i) {
    y[i] = requantize_one(minus<OFF>(a, off, i), m[MV ? i : 0], b[BV ? i : 0], ys, zp);
  }
}

#if FQVIT_HAS_X86
// --- AVX2 ------------------------------------------------------------------------------------------------------------

template <bool MV, bool BV, bool OFF>
FQVIT_TARGET_AVX2 inline __m256i requant8_avx2(const int32_t* a, const int32_t* off, const float* m, const float* b,
                                               __m256 ms, __m256 bs, __m256 ysv, __m256i zpv) {
  __m256i acc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  if (OFF) acc = _mm256_sub_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(off)));
  __m256 t = _mm256_cvtepi32_ps(acc);
  t = _mm256_mul_ps(t, MV ? _mm256_loadu_ps(m) : ms);
  t = _mm256_add_ps(t, BV ? _mm256_loadu_ps(b) : bs);
  return quantize_u8_x8(t, ysv, zpv);
}

template <bool MV, bool BV, bool OFF>
FQVIT_TARGET_AVX2 void span_avx2(const int32_t* a, const int32_t* off, const float* m, const float* b, uint8_t* y,
                                 int64_t len, float ys, int32_t zp) {
  const __m256 ysv = _mm256_set1_ps(ys), ms = _mm256_set1_ps(m[0]), bs = _mm256_set1_ps(b[0]);
  const __m256i zpv = _mm256_set1_epi32(zp);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t i = 0;
  // 32 lanes per iteration: four vectors of int32 in 0..255 packed to bytes (saturating packs are exact here).
  for (; i + 32 <= len; i += 32) {
    __m256i q[4];
    for (int v = 0; v < 4; ++v) {
      const int64_t e = i + 8 * v;
      q[v] = requant8_avx2<MV, BV, OFF>(a + e, off + (OFF ? e : 0), m + (MV ? e : 0), b + (BV ? e : 0), ms, bs, ysv,
                                        zpv);
    }
    // packs work within 128-bit lanes: w01 = [q0lo q1lo | q0hi q1hi], bytes = [q0lo q1lo q2lo q3lo | q0hi ...]
    // in dwords of 4 bytes; the dword permutation restores element order.
    const __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i bytes = _mm256_packus_epi16(w01, w23);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm256_permutevar8x32_epi32(bytes, order));
  }
  for (; i < len; ++i) {
    y[i] = requantize_one(minus<OFF>(a, off, i), m[MV ? i : 0], b[BV ? i : 0], ys, zp);
  }
}

// --- AVX-512 (F, BW, VL, DQ) --------------------------------------------------------------------------------------

template <bool MV, bool BV, bool OFF>
FQVIT_TARGET_AVX512 void span_avx512(const int32_t* a, const int32_t* off, const float* m, const float* b, uint8_t* y,
                                     int64_t len, float ys, int32_t zp) {
  const __m512 ysv = _mm512_set1_ps(ys), ms = _mm512_set1_ps(m[0]), bs = _mm512_set1_ps(b[0]);
  const __m512i zpv = _mm512_set1_epi32(zp);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    __m512i acc = _mm512_loadu_si512(a + i);
    if (OFF) acc = _mm512_sub_epi32(acc, _mm512_loadu_si512(off + i));
    const __m512i q =
        requantize_u8_x16(acc, MV ? _mm512_loadu_ps(m + i) : ms, BV ? _mm512_loadu_ps(b + i) : bs, ysv, zpv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm512_cvtepi32_epi8(q));
  }
  if (i < len) {  // masked tail: lanes past len load zeros and are not stored
    const __mmask16 k = static_cast<__mmask16>((1u << (len - i)) - 1u);
    __m512i acc = _mm512_maskz_loadu_epi32(k, a + i);
    if (OFF) acc = _mm512_sub_epi32(acc, _mm512_maskz_loadu_epi32(k, off + i));
    const __m512i q = requantize_u8_x16(acc, MV ? _mm512_maskz_loadu_ps(k, m + i) : ms,
                                        BV ? _mm512_maskz_loadu_ps(k, b + i) : bs, ysv, zpv);
    _mm512_mask_cvtepi32_storeu_epi8(y + i, k, q);
  }
}
#endif  // FQVIT_HAS_X86

template <bool MV, bool BV, bool OFF>
SpanFn span_for(Isa isa) {
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx512) return &span_avx512<MV, BV, OFF>;
  if (isa == Isa::kAvx2) return &span_avx2<MV, BV, OFF>;
#endif
  return &span_scalar<MV, BV, OFF>;
}

template <bool OFF>
SpanFn pick_span(Isa isa, bool mv, bool bv) {
  return mv ? (bv ? span_for<true, true, OFF>(isa) : span_for<true, false, OFF>(isa))
            : (bv ? span_for<false, true, OFF>(isa) : span_for<false, false, OFF>(isa));
}

}  // namespace

void requantize_cpu(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y,
                    const RequantizeParams& p, int64_t begin, int64_t end, Isa isa, const int32_t* col_offset) {
  if (end > p.numel) end = p.numel;
  if (begin < 0) begin = 0;
  if (begin >= end || p.n <= 0) return;
  // A one-element multiplier/bias is broadcast (also when N = 1, where both readings agree).
  const bool mv = p.multiplier_size != 1, bv = p.bias_size != 1;
  const SpanFn span = col_offset != nullptr ? pick_span<true>(isa, mv, bv) : pick_span<false>(isa, mv, bv);
  if (!mv && !bv && col_offset == nullptr) {
    span(a + begin, nullptr, multiplier, bias, y + begin, end - begin, p.y_scale, p.y_zero_point);
    return;
  }
  for (int64_t i = begin; i < end;) {
    const int64_t col = i % p.n;
    const int64_t len = std::min<int64_t>(p.n - col, end - i);
    span(a + i, col_offset != nullptr ? col_offset + col : nullptr, multiplier + (mv ? col : 0),
         bias + (bv ? col : 0), y + i, len, p.y_scale, p.y_zero_point);
    i += len;
  }
}

void requantize_cpu(const int32_t* a, const float* multiplier, const float* bias, int8_t* y,
                    const RequantizeParams& p, int64_t begin, int64_t end, Isa isa, const int32_t* col_offset) {
  if (end > p.numel) end = p.numel;
  if (begin < 0) begin = 0;
  if (begin >= end || p.n <= 0) return;
  RequantizeParams pu = p;
  pu.y_zero_point += kCodeOffset;
  pu.code = CodeType::kUint8;
  uint8_t* yu = reinterpret_cast<uint8_t*>(y);
  // Blocks keep the flip on cache-resident bytes.
  for (int64_t b0 = begin; b0 < end; b0 += kFlipBlockBytes) {
    const int64_t b1 = std::min(end, b0 + kFlipBlockBytes);
    requantize_cpu(a, multiplier, bias, yu, pu, b0, b1, isa, col_offset);
    flip_codes(yu + b0, yu + b0, b1 - b0);
  }
}

}  // namespace fqvit
