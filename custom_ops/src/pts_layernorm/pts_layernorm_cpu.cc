// com.fqvit::PTSLayerNorm on the CPU (docs/ops.md Sec. 2). Step numbers in the comments are those of Sec. 2.
//
// One row at a time, two passes over the uint8 input: the first forms the exact integer statistics (steps 1-2), the
// second normalises, applies gamma/beta and quantizes (steps 5-7). The AVX2/AVX-512 bodies keep every float32
// operation of the scalar body (same operations, same order, explicit round-to-nearest-even), so all paths agree
// bit for bit.
#include <cmath>
#include <cstring>

#include <algorithm>
#include <vector>

#include "common/code_flip.h"
#include "common/simd.h"
#include "fqvit_ops/pts_layernorm.h"

namespace fqvit {

std::string pts_layernorm_check(const PtsLayerNormParams& p, const uint8_t* alpha_host) {
  if (p.channels < 1 || p.channels > kMaxLnChannels) {
    return "the last dimension C of X must be in 1.." + std::to_string(kMaxLnChannels) + ", got " +
           std::to_string(p.channels);
  }
  if (p.rows < 0) return "negative row count";
  const int32_t lo = code_lo(p.code), hi = code_hi(p.code);
  if (p.x_zero_point < lo || p.x_zero_point > hi || p.y_zero_point < lo || p.y_zero_point > hi) {
    return std::string("zero points must be ") + code_type_name(p.code) + " values";
  }
  if (!(p.epsilon >= 0.0f) || std::isinf(p.epsilon)) {
    return "attribute epsilon must be a finite value >= 0, got " + std::to_string(p.epsilon);
  }
  return alpha_host != nullptr ? pts_layernorm_alpha_check(alpha_host, p.channels) : std::string();
}

std::string pts_layernorm_alpha_check(const uint8_t* alpha_host, int64_t count) {
  for (int64_t c = 0; c < count; ++c) {
    if (alpha_host[c] > kMaxAlpha) {
      return "alpha values must be in 0.." + std::to_string(kMaxAlpha) + ", got alpha[" + std::to_string(c) +
             "] = " + std::to_string(alpha_host[c]);
    }
  }
  return {};
}

namespace {

struct RowArgs {
  int64_t c;      // channels
  int32_t zp;     // x zero point
  float e;        // step 3
  float y_scale;
  int32_t y_zp;
  const float* coef = nullptr;  // the AVX-512 body's C 2^alpha_c per channel (exact in float32: at most 32768)
  float y_rcp = 0.0f;           // the AVX-512 body's quantize_reciprocal(y_scale)
};

// The scalar body: docs/ops.md Sec. 2 through fqvit_ops/arith.h, the oracle the vector bodies are tested against.
void row_scalar(const uint8_t* q, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                const RowArgs& a) {
  int64_t s1 = 0, s2 = 0;
  for (int64_t c = 0; c < a.c; ++c) {
    const int32_t x = pts_x(q[c], a.zp, alpha[c]);  // step 1
    s1 += x;                                        // step 2
    s2 += static_cast<int64_t>(x) * x;
  }
  const float den = pts_den(a.c, s1, s2, a.e);  // steps 2 and 4
  for (int64_t c = 0; c < a.c; ++c) {
    y[c] = pts_out(pts_x(q[c], a.zp, alpha[c]), a.c, s1, den, gamma[c], beta[c], a.y_scale, a.y_zp);  // steps 5-7
  }
}

#if FQVIT_HAS_X86
// --- AVX2 ------------------------------------------------------------------------------------------------------------

FQVIT_TARGET_AVX2 inline void store8_u8_avx2(uint8_t* dst, __m256i q) {
  // q holds 8 int32 in 0..255: gather byte 0 of each dword into the low 8 bytes.
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b =
      _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(q, pick), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(b));
}

FQVIT_TARGET_AVX2 void row_avx2(const uint8_t* q, const uint8_t* alpha, const float* gamma, const float* beta,
                                uint8_t* y, const RowArgs& a) {
  // Steps 1-2, 16 channels per iteration: x = (q - zp) * 2^alpha in int16 (|x| <= 2040), S1 and S2 by pmaddwd.
  // Per-lane S2 stays below 2^31: at most 4096 / 16 iterations of 2 * 2040^2.
  const __m256i zp16 = _mm256_set1_epi16(static_cast<int16_t>(a.zp));
  const __m256i ones = _mm256_set1_epi16(1);
  const __m128i pow2 = _mm_setr_epi8(1, 2, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  __m256i acc1 = _mm256_setzero_si256(), acc2 = _mm256_setzero_si256();
  int64_t c = 0;
  for (; c + 16 <= a.c; c += 16) {
    const __m256i qv = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c)));
    const __m128i sh = _mm_shuffle_epi8(pow2, _mm_loadu_si128(reinterpret_cast<const __m128i*>(alpha + c)));
    const __m256i x = _mm256_mullo_epi16(_mm256_sub_epi16(qv, zp16), _mm256_cvtepu8_epi16(sh));
    acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(x, ones));
    acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(x, x));
  }
  alignas(32) int32_t l1[8];
  alignas(32) uint32_t l2[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l1), acc1);
  _mm256_store_si256(reinterpret_cast<__m256i*>(l2), acc2);
  int64_t s1 = 0, s2 = 0;
  for (int i = 0; i < 8; ++i) {
    s1 += l1[i];
    s2 += l2[i];
  }
  for (int64_t t = c; t < a.c; ++t) {
    const int32_t x = pts_x(q[t], a.zp, alpha[t]);
    s1 += x;
    s2 += static_cast<int64_t>(x) * x;
  }
  const float den = pts_den(a.c, s1, s2, a.e);
  const bool den_pos = den > 0.0f;

  // Steps 5-7, 8 channels per iteration.
  const __m256i zp32 = _mm256_set1_epi32(a.zp);
  const __m256i cv = _mm256_set1_epi32(static_cast<int32_t>(a.c));
  const __m256i s1v = _mm256_set1_epi32(static_cast<int32_t>(s1));
  const __m256 denv = _mm256_set1_ps(den);
  const __m256 ysv = _mm256_set1_ps(a.y_scale);
  const __m256i yzpv = _mm256_set1_epi32(a.y_zp);
  c = 0;
  for (; c + 8 <= a.c; c += 8) {
    const __m256i qv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + c)));
    const __m256i av = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(alpha + c)));
    const __m256i x = _mm256_sllv_epi32(_mm256_sub_epi32(qv, zp32), av);
    const __m256 num = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_mullo_epi32(x, cv), s1v));  // exact
    const __m256 yv = den_pos ? _mm256_div_ps(num, denv) : _mm256_setzero_ps();
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(yv, _mm256_loadu_ps(gamma + c)), _mm256_loadu_ps(beta + c));
    store8_u8_avx2(y + c, quantize_u8_x8(v, ysv, yzpv));
  }
  for (; c < a.c; ++c) y[c] = pts_out(pts_x(q[c], a.zp, alpha[c]), a.c, s1, den, gamma[c], beta[c], a.y_scale, a.y_zp);
}

// --- AVX-512 (F, BW, VL, VNNI) ------------------------------------------------------------------------------------

FQVIT_TARGET_AVX512 void row_avx512(const uint8_t* q, const uint8_t* alpha, const float* gamma, const float* beta,
                                    uint8_t* y, const RowArgs& a) {
  // Steps 1-2, 32 channels per iteration (masked tail): int16 x by a variable shift, S1 and S2 by vpdpwssd.
  // Per-lane S2 stays below 2^31: at most 4096 / 32 iterations of 2 * 2040^2.
  const __m512i zp16 = _mm512_set1_epi16(static_cast<int16_t>(a.zp));
  const __m512i ones = _mm512_set1_epi16(1);
  __m512i acc1 = _mm512_setzero_si512(), acc2 = _mm512_setzero_si512();
  for (int64_t c = 0; c < a.c; c += 32) {
    const int64_t left = a.c - c;
    const __mmask32 k = left >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((1u << left) - 1u);
    const __m512i qv = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(k, q + c));
    const __m512i av = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(k, alpha + c));
    const __m512i x = _mm512_maskz_sllv_epi16(k, _mm512_sub_epi16(qv, zp16), av);
    acc1 = _mm512_dpwssd_epi32(acc1, x, ones);
    acc2 = _mm512_dpwssd_epi32(acc2, x, x);
  }
  const int64_t s1 = _mm512_reduce_add_epi32(acc1);
  const __m512i s2w = _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(acc2)),
                                       _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(acc2, 1)));
  const int64_t s2 = _mm512_reduce_add_epi64(s2w);
  const float den = pts_den(a.c, s1, s2, a.e);
  const bool den_pos = den > 0.0f;

  // Steps 5-7, 16 channels per iteration (masked tail). The numerator C x_c - S1 = fma(C 2^alpha_c, f32(q_c - zp),
  // -f32(S1)): every factor and the product are integers below 2^24 (C 2^alpha_c <= 32768, |q_c - zp| <= 255,
  // |C x_c| <= 4096 * 2040, |S1| <= 4096 * 2040) and so is the result (docs/ops.md Sec. 2, step 5), so the one rounding
  // of the FMA is exact: the integer numerator of the scalar body, without its shift and int32 multiplication.
  const __m512i zp32 = _mm512_set1_epi32(a.zp);
  const __m512 neg_s1 = _mm512_set1_ps(-static_cast<float>(s1));
  const __m512 denv = _mm512_set1_ps(den);
  const __m512 ysv = _mm512_set1_ps(a.y_scale), rcpv = _mm512_set1_ps(a.y_rcp);
  const __m512i yzpv = _mm512_set1_epi32(a.y_zp);
  for (int64_t c = 0; c < a.c; c += 16) {
    const int64_t left = a.c - c;
    const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512i qv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, q + c));
    const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(qv, zp32));  // q_c - zp, exact
    const __m512 num = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a.coef + c), d, neg_s1);  // C x_c - S1, exact
    const __m512 yv = den_pos ? _mm512_div_ps(num, denv) : _mm512_setzero_ps();
    const __m512 v = _mm512_add_ps(_mm512_mul_ps(yv, _mm512_maskz_loadu_ps(k, gamma + c)),
                                   _mm512_maskz_loadu_ps(k, beta + c));
    // Step 7 by the reciprocal where it gives the division's codes (simd.h): one division per vector, not two.
    _mm512_mask_cvtepi32_storeu_epi8(y + c, k, quantize_u8_x16(v, ysv, rcpv, yzpv));
  }
}
#endif  // FQVIT_HAS_X86

}  // namespace

void pts_layernorm_cpu(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                       const PtsLayerNormParams& p, int64_t row_begin, int64_t row_end, Isa isa) {
  RowArgs a{p.channels, p.x_zero_point, pts_eps_term(p.channels, p.epsilon, p.x_scale), p.y_scale,
            p.y_zero_point};
  thread_local std::vector<float> coef;
  if (FQVIT_HAS_X86 && isa == Isa::kAvx512) {
    coef.resize(static_cast<size_t>(p.channels));
    for (int64_t c = 0; c < p.channels; ++c) coef[c] = static_cast<float>(p.channels << alpha[c]);
    a.coef = coef.data();
    a.y_rcp = quantize_reciprocal(p.y_scale);
  }
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* q = x + r * p.channels;
    uint8_t* out = y + r * p.channels;
#if FQVIT_HAS_X86
    if (isa == Isa::kAvx512) {
      row_avx512(q, alpha, gamma, beta, out, a);
      continue;
    }
    if (isa == Isa::kAvx2) {
      row_avx2(q, alpha, gamma, beta, out, a);
      continue;
    }
#endif
    row_scalar(q, alpha, gamma, beta, out, a);
  }
}

void pts_layernorm_cpu(const int8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, int8_t* y,
                       const PtsLayerNormParams& p, int64_t row_begin, int64_t row_end, Isa isa) {
  if (row_begin >= row_end) return;
  PtsLayerNormParams pu = p;
  pu.x_zero_point += kCodeOffset;
  pu.y_zero_point += kCodeOffset;
  pu.code = CodeType::kUint8;
  const int64_t block = std::max<int64_t>(1, kFlipBlockBytes / p.channels);
  std::vector<uint8_t> buf(static_cast<size_t>(std::min(block, row_end - row_begin) * p.channels));
  for (int64_t r0 = row_begin; r0 < row_end; r0 += block) {
    const int64_t rows = std::min(block, row_end - r0), n = rows * p.channels;
    flip_codes(x + r0 * p.channels, buf.data(), n);
    uint8_t* out = reinterpret_cast<uint8_t*>(y + r0 * p.channels);
    pts_layernorm_cpu(buf.data(), alpha, gamma, beta, out, pu, 0, rows, isa);
    flip_codes(out, out, n);
  }
}

}  // namespace fqvit
