// com.fqvit::ResidualAdd on the CPU (docs/ops.md Sec. 5, fused ops): per element of A and B, channel c,
//   u = f32(A - a_zp) * a_scale[c]        (dequantize of arith.h: exact difference, one rounding)
//   v = f32(B - b_zp) * b_scale[c]
//   v = v * gamma[c]                       (one rounding; no FMA: the library is built with -ffp-contract=off)
//   Y = clamp(round_half_even((u + v) / y_scale[c]) + y_zp, qmin_T, qmax_T)   (ONNX QuantizeLinear)
// with c the index along the last axis; a one-element input is broadcast.
//
// The element range is cut at row ends into spans of consecutive channels (one span when every channel input is
// broadcast). Each span runs one of three bodies, all computing the same IEEE operations in the same order:
//  * scalar: residual_add_one of fqvit_ops/arith.h;
//  * AVX2: 32 lanes per iteration (byte loads widened to int32, cvtdq2ps, mulps, addps, divps, roundps nearest-even,
//    packs back to bytes), scalar tail;
//  * AVX-512: 16 lanes (quantize_u8_x16 of common/simd.h: the quotient clamped to the codes' range, then converted
//    nearest-even), vpmovdb, masked tail.
// int8 codes are widened with sign extension (q - zp is the same integer), and the output is quantized to 0..255
// with y_zp + 128 and stored with bit 7 flipped: the int8 QuantizeLinear bit for bit (common/code_flip.h).
#include <algorithm>
#include <type_traits>

#include "common/code_flip.h"
#include "common/simd.h"
#include "fqvit_ops/residual_add.h"

namespace fqvit {

std::string residual_add_check(const ResidualAddParams& p) {
  const int64_t c = p.channels;
  if (p.numel < 0 || c < 0) return "negative shape";
  if (c == 0 ? p.numel != 0 : p.numel % c != 0) {
    return "the element count " + std::to_string(p.numel) + " is not a multiple of C = " + std::to_string(c);
  }
  const struct {
    const char* name;
    int64_t size;
    bool may_be_absent;
  } inputs[] = {{"a_scale", p.a_scale_size, false}, {"b_scale", p.b_scale_size, false},
                {"y_scale", p.y_scale_size, false}, {"gamma", p.gamma_size, true}};
  for (const auto& in : inputs) {
    if (in.size != c && in.size != 1 && !(in.may_be_absent && in.size == 0)) {
      return std::string(in.name) + " must have C = " + std::to_string(c) +
             " elements (one per channel of the last axis) or one, got " + std::to_string(in.size);
    }
  }
  const struct {
    const char* name;
    int32_t value;
  } zero_points[] = {{"a_zero_point", p.a_zero_point}, {"b_zero_point", p.b_zero_point},
                     {"y_zero_point", p.y_zero_point}};
  for (const auto& zp : zero_points) {
    if (zp.value < code_lo(p.code) || zp.value > code_hi(p.code)) {
      return std::string(zp.name) + " must be a " + code_type_name(p.code) + " value, got " + std::to_string(zp.value);
    }
  }
  return {};
}

namespace {

// The channel inputs of one span: PC (per channel) reads entry i of each for lane i, otherwise entry 0 of each.
struct Span {
  const float* a_scale;
  const float* b_scale;
  const float* y_scale;
  const float* gamma;
};

// Zero points in T's range.
struct ZeroPoints {
  int32_t a, b, y;
};

template <typename T>
using SpanFn = void (*)(const T*, const T*, T*, int64_t, const Span&, const ZeroPoints&);

template <typename T, bool PC>
void span_scalar(const T* a, const T* b, T* y, int64_t len, const Span& s, const ZeroPoints& z) {
  for (int64_t i = 0; i < len; ++i) {
    const int64_t c = PC ? i : 0;
    y[i] = residual_add_one<T>(a[i], s.a_scale[c], z.a, b[i], s.b_scale[c], z.b, s.y_scale[c], z.y, s.gamma[c]);
  }
}

template <typename T>
constexpr bool kInt8 = std::is_same_v<T, int8_t>;

#if FQVIT_HAS_X86
// --- AVX2 ------------------------------------------------------------------------------------------------------------

// The broadcast values of a span without per-channel inputs, and the zero points, in lanes.
struct Lanes8 {
  __m256 a_scale, b_scale, y_scale, gamma;
  __m256i a_zp, b_zp, y_zp;  // y_zp on the uint8 scale (+ kCodeOffset for int8)
};

// dequantize of 8 codes at q.
template <typename T>
FQVIT_TARGET_AVX2 inline __m256 dequant8_avx2(const T* q, __m256i zp, __m256 scale) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q));
  const __m256i wide = kInt8<T> ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(wide, zp)), scale);
}

// residual_add_one on lanes i .. i + 7: the uint8-scale codes as int32.
template <typename T, bool PC>
FQVIT_TARGET_AVX2 inline __m256i residual8_avx2(const T* a, const T* b, const Span& s, int64_t i, const Lanes8& k) {
  const __m256 u = dequant8_avx2(a + i, k.a_zp, PC ? _mm256_loadu_ps(s.a_scale + i) : k.a_scale);
  __m256 v = dequant8_avx2(b + i, k.b_zp, PC ? _mm256_loadu_ps(s.b_scale + i) : k.b_scale);
  v = _mm256_mul_ps(v, PC ? _mm256_loadu_ps(s.gamma + i) : k.gamma);
  return quantize_u8_x8(_mm256_add_ps(u, v), PC ? _mm256_loadu_ps(s.y_scale + i) : k.y_scale, k.y_zp);
}

template <typename T, bool PC>
FQVIT_TARGET_AVX2 void span_avx2(const T* a, const T* b, T* y, int64_t len, const Span& s, const ZeroPoints& z) {
  const Lanes8 k{_mm256_set1_ps(s.a_scale[0]), _mm256_set1_ps(s.b_scale[0]),  _mm256_set1_ps(s.y_scale[0]),
                 _mm256_set1_ps(s.gamma[0]),   _mm256_set1_epi32(z.a),       _mm256_set1_epi32(z.b),
                 _mm256_set1_epi32(z.y + (kInt8<T> ? kCodeOffset : 0))};
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(kInt8<T> ? 0x80 : 0));
  int64_t i = 0;
  // 32 lanes per iteration: four vectors of int32 in 0..255 packed to bytes (saturating packs are exact here); the
  // packs work within 128-bit lanes, the dword permutation restores element order (as in requantize_cpu.cc).
  for (; i + 32 <= len; i += 32) {
    const __m256i q0 = residual8_avx2<T, PC>(a, b, s, i, k), q1 = residual8_avx2<T, PC>(a, b, s, i + 8, k);
    const __m256i q2 = residual8_avx2<T, PC>(a, b, s, i + 16, k), q3 = residual8_avx2<T, PC>(a, b, s, i + 24, k);
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    const __m256i codes = _mm256_xor_si256(_mm256_permutevar8x32_epi32(bytes, order), flip);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), codes);
  }
  const Span rest{s.a_scale + (PC ? i : 0), s.b_scale + (PC ? i : 0), s.y_scale + (PC ? i : 0),
                  s.gamma + (PC ? i : 0)};
  span_scalar<T, PC>(a + i, b + i, y + i, len - i, rest, z);
}

// --- AVX-512 (F, BW, VL, DQ) --------------------------------------------------------------------------------------

// dequantize of 16 codes held in bytes.
template <typename T>
FQVIT_TARGET_AVX512 inline __m512 dequant16_avx512(__m128i bytes, __m512i zp, __m512 scale) {
  const __m512i wide = kInt8<T> ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(wide, zp)), scale);
}

// The broadcast values and zero points in 16 lanes (y_zp on the uint8 scale, as Lanes8).
struct Lanes16 {
  __m512 a_scale, b_scale, y_scale, gamma;
  __m512i a_zp, b_zp, y_zp;
  __m128i flip;  // 0x80 bytes for int8, zeros for uint8
};

// residual_add_one on lanes i .. i + 15 under mask m: lanes outside m load zeros and are not stored. G: gamma is
// not 1 everywhere (else v * gamma, which is v for every float32 v when gamma is 1, is left out).
template <typename T, bool PC, bool G>
FQVIT_TARGET_AVX512 inline void residual16_avx512(const T* a, const T* b, T* y, const Span& s, int64_t i, __mmask16 m,
                                                  const Lanes16& k) {
  const __m512 as = PC ? _mm512_maskz_loadu_ps(m, s.a_scale + i) : k.a_scale;
  const __m512 bs = PC ? _mm512_maskz_loadu_ps(m, s.b_scale + i) : k.b_scale;
  const __m512 u = dequant16_avx512<T>(_mm_maskz_loadu_epi8(m, a + i), k.a_zp, as);
  __m512 v = dequant16_avx512<T>(_mm_maskz_loadu_epi8(m, b + i), k.b_zp, bs);
  if (G) v = _mm512_mul_ps(v, PC ? _mm512_maskz_loadu_ps(m, s.gamma + i) : k.gamma);
  const __m512i q = quantize_u8_x16(_mm512_add_ps(u, v), PC ? _mm512_maskz_loadu_ps(m, s.y_scale + i) : k.y_scale,
                                    k.y_zp);
  _mm_mask_storeu_epi8(y + i, m, _mm_xor_si128(_mm512_cvtepi32_epi8(q), k.flip));
}

template <typename T, bool PC, bool G>
FQVIT_TARGET_AVX512 void span_avx512(const T* a, const T* b, T* y, int64_t len, const Span& s, const ZeroPoints& z) {
  const Lanes16 k{_mm512_set1_ps(s.a_scale[0]), _mm512_set1_ps(s.b_scale[0]), _mm512_set1_ps(s.y_scale[0]),
                  _mm512_set1_ps(s.gamma[0]), _mm512_set1_epi32(z.a), _mm512_set1_epi32(z.b),
                  _mm512_set1_epi32(z.y + (kInt8<T> ? kCodeOffset : 0)),
                  _mm_set1_epi8(static_cast<char>(kInt8<T> ? 0x80 : 0))};
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) residual16_avx512<T, PC, G>(a, b, y, s, i, static_cast<__mmask16>(0xFFFF), k);
  if (i < len) residual16_avx512<T, PC, G>(a, b, y, s, i, static_cast<__mmask16>((1u << (len - i)) - 1u), k);
}
#endif  // FQVIT_HAS_X86

// gamma_one: every gamma is 1 (the AVX-512 body then leaves v * gamma out; the others multiply by 1, the same bits).
template <typename T>
SpanFn<T> pick_span(Isa isa, bool per_channel, bool gamma_one) {
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx512) {
    if (gamma_one) return per_channel ? &span_avx512<T, true, false> : &span_avx512<T, false, false>;
    return per_channel ? &span_avx512<T, true, true> : &span_avx512<T, false, true>;
  }
  if (isa == Isa::kAvx2) return per_channel ? &span_avx2<T, true> : &span_avx2<T, false>;
#endif
  return per_channel ? &span_scalar<T, true> : &span_scalar<T, false>;
}

// Channels per span at most: a broadcast input among per-channel ones is spread over this many lanes on the stack,
// so that one body reads every channel input lane by lane.
constexpr int64_t kSpanChannels = 256;

template <typename T>
void run(const T* a, const T* b, const ResidualAddChannels& ch, T* y, const ResidualAddParams& p, int64_t begin,
         int64_t end, Isa isa) {
  if (end > p.numel) end = p.numel;
  if (begin < 0) begin = 0;
  if (begin >= end || p.channels <= 0) return;
  const float one = 1.0f;  // gamma left out: v * 1 == v
  const float* inputs[4] = {ch.a_scale, ch.b_scale, ch.y_scale, ch.gamma != nullptr ? ch.gamma : &one};
  const int64_t sizes[4] = {p.a_scale_size, p.b_scale_size, p.y_scale_size, ch.gamma != nullptr ? p.gamma_size : 1};
  const ZeroPoints z{p.a_zero_point, p.b_zero_point, p.y_zero_point};
  // One-element inputs are broadcast (also when C = 1, where both readings agree).
  const bool per_channel = std::any_of(sizes, sizes + 4, [](int64_t n) { return n != 1; });
  const bool gamma_one = std::all_of(inputs[3], inputs[3] + sizes[3], [](float g) { return g == 1.0f; });
  const SpanFn<T> span = pick_span<T>(isa, per_channel, gamma_one);
  if (!per_channel) {
    span(a + begin, b + begin, y + begin, end - begin, Span{inputs[0], inputs[1], inputs[2], inputs[3]}, z);
    return;
  }
  float spread[4][kSpanChannels];
  for (int k = 0; k < 4; ++k) {
    if (sizes[k] == 1) std::fill(spread[k], spread[k] + kSpanChannels, inputs[k][0]);
  }
  auto at = [&](int k, int64_t col) { return sizes[k] == 1 ? spread[k] : inputs[k] + col; };
  for (int64_t i = begin; i < end;) {
    const int64_t col = i % p.channels;
    const int64_t len = std::min({p.channels - col, end - i, kSpanChannels});
    span(a + i, b + i, y + i, len, Span{at(0, col), at(1, col), at(2, col), at(3, col)}, z);
    i += len;
  }
}

}  // namespace

void residual_add_cpu(const uint8_t* a, const uint8_t* b, const ResidualAddChannels& ch, uint8_t* y,
                      const ResidualAddParams& p, int64_t begin, int64_t end, Isa isa) {
  run(a, b, ch, y, p, begin, end, isa);
}

void residual_add_cpu(const int8_t* a, const int8_t* b, const ResidualAddChannels& ch, int8_t* y,
                      const ResidualAddParams& p, int64_t begin, int64_t end, Isa isa) {
  run(a, b, ch, y, p, begin, end, isa);
}

}  // namespace fqvit
