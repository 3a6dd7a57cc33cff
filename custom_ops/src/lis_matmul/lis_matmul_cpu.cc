// com.fqvit::LISMatMul on the CPU (docs/ops.md Sec. 4). Step numbers in the comments are those of Sec. 4.
//
// Step 2 is an integer GEMM: codes become int16 weights w(k) = 2^(14 - k) (0 for the zero code), V - zp becomes
// int16, and pairs along N are multiplied and summed into int32 lanes (vpdpwssd on AVX-512 VNNI, vpmaddwd on AVX2).
// int32 accumulation is exact for a row whose weight sum W satisfies W * max|V - zp| <= 2^31 - 1 (always true for
// codes produced by LogIntSoftmax, see Sec. 4); any other row is accumulated in int64. The result of step 2 is the
// same integer on every path, and step 3 is the same float32 sequence, so all paths agree bit for bit.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/code_flip.h"
#include "common/simd.h"
#include "fqvit_ops/lis_matmul.h"

namespace fqvit {

std::string lis_matmul_check(const LisMatMulParams& p) {
  if (std::string e = lis_bits_check(p.bits); !e.empty()) return e;
  const int32_t lo = code_lo(p.code), hi = code_hi(p.code);
  if (p.v_zero_point < lo || p.v_zero_point > hi || p.y_zero_point < lo || p.y_zero_point > hi) {
    return std::string("zero points must be ") + code_type_name(p.code) + " values";
  }
  if (p.batch < 0 || p.m < 0 || p.n < 0 || p.d < 0) return "negative shape";
  if (p.n > (int64_t(1) << 31)) return "N is too large (> 2^31)";
  return {};
}

namespace {

constexpr int64_t kRowsPerItem = 64;  // rows of A per work item (V is repacked once per item)
constexpr int64_t kColAlign = 16;     // the repacked V is padded to a multiple of 16 columns

struct Scratch {
  std::vector<int16_t> vp;    // V - zp as int16 pairs along N: vp[(p * dp + d) * 2 + i] = V[2p + i, d] - zp
  std::vector<uint32_t> wp;   // per row: w(A[2p]) | w(A[2p + 1]) << 16
  std::vector<int32_t> acc;   // int32 accumulators of a tile of rows, dp columns each
  std::vector<int64_t> acc64; // int64 accumulators of one row
  std::vector<int64_t> safe;  // rows of the item whose int32 accumulation is exact
};

struct Geometry {
  int64_t n2;  // pairs along N
  int64_t wstride;  // packed weights per row: n2 rounded up to whole 16-pair (32-code) blocks
  int zero_code;
  int64_t dp;  // padded columns
  int16_t wlut[256];
  int64_t max_abs_v;  // max |V - zp|
};

Geometry make_geometry(const LisMatMulParams& p) {
  Geometry g{};
  g.n2 = (p.n + 1) / 2;
  g.wstride = (g.n2 + 15) / 16 * 16;
  g.dp = (p.d + kColAlign - 1) / kColAlign * kColAlign;
  const int zero_code = (1 << p.bits) - 1;
  g.zero_code = zero_code;
  for (int k = 0; k < 256; ++k) g.wlut[k] = static_cast<int16_t>(lis_weight(k, zero_code));  // step 1
  g.max_abs_v = std::max(p.v_zero_point, 255 - p.v_zero_point);
  return g;
}

// One pair of V rows from column d0 on (r1 = nullptr: a zero row), plus the zero padding up to dp.
void repack_v_row(const uint8_t* r0, const uint8_t* r1, const LisMatMulParams& p, const Geometry& g, int16_t* dst,
                  int64_t d0 = 0) {
  for (int64_t d = d0; d < p.d; ++d) {
    dst[2 * d] = static_cast<int16_t>(r0[d] - p.v_zero_point);
    dst[2 * d + 1] = r1 ? static_cast<int16_t>(r1[d] - p.v_zero_point) : 0;
  }
  std::memset(dst + 2 * p.d, 0, static_cast<size_t>(g.dp - p.d) * 2 * sizeof(int16_t));
}

void repack_v(const uint8_t* v, const LisMatMulParams& p, const Geometry& g, int16_t* vp) {
  for (int64_t pr = 0; pr < g.n2; ++pr) {
    const uint8_t* r0 = v + (2 * pr) * p.d;
    repack_v_row(r0, (2 * pr + 1 < p.n) ? r0 + p.d : nullptr, p, g, vp + pr * g.dp * 2);
  }
}

// Step 1 for one row: packed weight pairs; returns the row's weight sum.
int64_t pack_weights(const uint8_t* a, int64_t n, const Geometry& g, uint32_t* wp) {
  int64_t sum = 0;
  for (int64_t pr = 0; pr < g.n2; ++pr) {
    const uint32_t w0 = static_cast<uint16_t>(g.wlut[a[2 * pr]]);
    const uint32_t w1 = (2 * pr + 1 < n) ? static_cast<uint16_t>(g.wlut[a[2 * pr + 1]]) : 0u;
    wp[pr] = w0 | (w1 << 16);
    sum += w0 + w1;
  }
  return sum;
}

// Step 2, int32, one row, all padded columns.
void gemm_row_scalar(const uint32_t* wp, const Geometry& g, const int16_t* vp, int32_t* acc) {
  std::fill(acc, acc + g.dp, 0);
  for (int64_t pr = 0; pr < g.n2; ++pr) {
    const int32_t w0 = static_cast<int32_t>(wp[pr] & 0xFFFFu), w1 = static_cast<int32_t>(wp[pr] >> 16);
    if ((w0 | w1) == 0) continue;
    const int16_t* v = vp + pr * g.dp * 2;
    for (int64_t d = 0; d < g.dp; ++d) acc[d] += w0 * v[2 * d] + w1 * v[2 * d + 1];
  }
}

// Step 2, int64, one row (weight sums too large for int32; only arbitrary codes get here).
void gemm_row_int64(const uint8_t* a, const uint8_t* v, const LisMatMulParams& p, const Geometry& g, int64_t* acc) {
  std::fill(acc, acc + p.d, int64_t(0));
  for (int64_t n = 0; n < p.n; ++n) {
    const int64_t w = g.wlut[a[n]];
    if (w == 0) continue;
    const uint8_t* vr = v + n * p.d;
    for (int64_t d = 0; d < p.d; ++d) acc[d] += w * (static_cast<int64_t>(vr[d]) - p.v_zero_point);
  }
}

// Step 3 for one row: t = f32(acc) * v_scale; t = t * 2^-14; Y = QuantizeLinear(t).
template <typename Acc>
void output_row_scalar(const Acc* acc, const LisMatMulParams& p, uint8_t* y, int64_t d0 = 0) {
  for (int64_t d = d0; d < p.d; ++d) y[d] = lis_matmul_out(acc[d], p.v_scale, p.y_scale, p.y_zero_point);
}

#if FQVIT_HAS_X86
FQVIT_TARGET_AVX2 inline int64_t hsum_epi32_avx2(__m256i v) {
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  int64_t t = 0;
  for (const int32_t x : lanes) t += x;
  return t;
}

// --- AVX2: vpmaddwd, 4 rows x 16 columns per tile -------------------------------------------------------------------

template <int R>
FQVIT_TARGET_AVX2 void tile_avx2(const uint32_t* const* wp, const Geometry& g, const int16_t* vp, int64_t col0,
                                 int32_t* const* acc) {
  __m256i s[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
  const uint32_t* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = wp[r];
  const int16_t* v = vp + col0 * 2;
  const int64_t step = g.dp * 2;
  for (int64_t pr = 0; pr < g.n2; ++pr, v += step) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 16));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256i b = _mm256_set1_epi32(static_cast<int32_t>(w[r][pr]));
      s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(b, v0));
      s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(b, v1));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc[r] + col0), s[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc[r] + col0 + 8), s[r][1]);
  }
}

template <int R>
FQVIT_TARGET_AVX2 void gemm_rows_avx2(const uint32_t* const* wp, const Geometry& g, const int16_t* vp,
                                      int32_t* const* acc) {
  for (int64_t c = 0; c < g.dp; c += 16) tile_avx2<R>(wp, g, vp, c, acc);
}

// Repack of V (see repack_v), 8 columns per iteration, scalar tail.
FQVIT_TARGET_AVX2 void repack_v_avx2(const uint8_t* v, const LisMatMulParams& p, const Geometry& g, int16_t* vp) {
  const __m256i zp_pair = _mm256_set1_epi32(p.v_zero_point * 0x10001);
  for (int64_t pr = 0; pr < g.n2; ++pr) {
    int16_t* dst = vp + pr * g.dp * 2;
    const uint8_t* r0 = v + (2 * pr) * p.d;
    if (2 * pr + 1 >= p.n) {  // odd N: the last pair has no second row
      repack_v_row(r0, nullptr, p, g, dst);
      continue;
    }
    int64_t d = 0;
    for (; d + 8 <= p.d; d += 8) {
      const __m256i x0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + d)));
      const __m256i x1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + p.d + d)));
      const __m256i x = _mm256_sub_epi16(_mm256_or_si256(x0, _mm256_slli_epi32(x1, 16)), zp_pair);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * d), x);
    }
    repack_v_row(r0, r0 + p.d, p, g, dst, d);
  }
}

// Step 1 for one row, 16 codes per iteration by byte shuffles of the 16-entry weight table (low and high bytes),
// scalar tail. Returns the weight sum.
FQVIT_TARGET_AVX2 int64_t pack_weights_avx2(const uint8_t* a, int64_t n, const Geometry& g, uint32_t* wp) {
  alignas(16) uint8_t lo[16], hi[16];
  for (int k = 0; k < 16; ++k) {  // k = 15 >= Z always weighs 0, so codes above 15 clamp to it
    lo[k] = static_cast<uint8_t>(g.wlut[k] & 0xFF);
    hi[k] = static_cast<uint8_t>(g.wlut[k] >> 8);
  }
  const __m128i lo_tab = _mm_load_si128(reinterpret_cast<const __m128i*>(lo));
  const __m128i hi_tab = _mm_load_si128(reinterpret_cast<const __m128i*>(hi));
  const __m128i fifteen = _mm_set1_epi8(15);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i sum = _mm256_setzero_si256();
  int64_t j = 0, iter = 0, total = 0;
  for (; j + 16 <= n; j += 16) {
    const __m128i idx = _mm_min_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + j)), fifteen);
    const __m128i l = _mm_shuffle_epi8(lo_tab, idx), h = _mm_shuffle_epi8(hi_tab, idx);
    const __m256i w = _mm256_set_m128i(_mm_unpackhi_epi8(l, h), _mm_unpacklo_epi8(l, h));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(wp + j / 2), w);
    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(w, ones));
    if (++iter == 4096) {
      total += hsum_epi32_avx2(sum);
      sum = _mm256_setzero_si256();
      iter = 0;
    }
  }
  total += hsum_epi32_avx2(sum);
  for (; j < n; j += 2) {
    const uint32_t w0 = static_cast<uint16_t>(g.wlut[a[j]]);
    const uint32_t w1 = (j + 1 < n) ? static_cast<uint16_t>(g.wlut[a[j + 1]]) : 0u;
    wp[j / 2] = w0 | (w1 << 16);
    total += w0 + w1;
  }
  return total;
}

FQVIT_TARGET_AVX2 void output_row_avx2(const int32_t* acc, const LisMatMulParams& p, uint8_t* y) {
  const __m256 vs = _mm256_set1_ps(p.v_scale), two_m14 = _mm256_set1_ps(0x1p-14f), ys = _mm256_set1_ps(p.y_scale);
  const __m256i yzp = _mm256_set1_epi32(p.y_zero_point);
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i gather_lo = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
  int64_t d = 0;
  for (; d + 8 <= p.d; d += 8) {
    __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + d))), vs);
    t = _mm256_mul_ps(t, two_m14);
    const __m256i q = quantize_u8_x8(t, ys, yzp);
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(q, pick), gather_lo);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + d), _mm256_castsi256_si128(b));
  }
  output_row_scalar(acc, p, y, d);
}

// --- AVX-512 VNNI: vpdpwssd, 6 rows x 64 columns per tile -----------------------------------------------------------

template <int R, int J>
FQVIT_TARGET_AVX512 void tile_avx512(const uint32_t* const* wp, const Geometry& g, const int16_t* vp, int64_t col0,
                                     int32_t* const* acc) {
  // Accumulators stay in registers only when every loop over r and j is unrolled (GCC keeps the array otherwise).
  __m512i s[R][J];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) s[r][j] = _mm512_setzero_si512();
  }
  const uint32_t* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = wp[r];
  const int16_t* v = vp + col0 * 2;
  const int64_t step = g.dp * 2;
  for (int64_t pr = 0; pr < g.n2; ++pr, v += step) {
    __m512i vv[J];
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) vv[j] = _mm512_loadu_si512(v + 32 * j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i b = _mm512_set1_epi32(static_cast<int32_t>(w[r][pr]));
#pragma GCC unroll 4
      for (int j = 0; j < J; ++j) s[r][j] = _mm512_dpwssd_epi32(s[r][j], b, vv[j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) _mm512_storeu_si512(acc[r] + col0 + 16 * j, s[r][j]);
  }
}

template <int R>
FQVIT_TARGET_AVX512 void gemm_rows_avx512(const uint32_t* const* wp, const Geometry& g, const int16_t* vp,
                                          int32_t* const* acc) {
  int64_t c = 0;
  for (; c + 64 <= g.dp; c += 64) tile_avx512<R, 4>(wp, g, vp, c, acc);
  switch ((g.dp - c) / 16) {
    case 3: tile_avx512<R, 3>(wp, g, vp, c, acc); break;
    case 2: tile_avx512<R, 2>(wp, g, vp, c, acc); break;
    case 1: tile_avx512<R, 1>(wp, g, vp, c, acc); break;
    default: break;
  }
}

// Repack of V (see repack_v), 16 columns per iteration: each int32 lane holds the pair
// (V[2p, d] - zp, V[2p+1, d] - zp).
FQVIT_TARGET_AVX512 void repack_v_avx512(const uint8_t* v, const LisMatMulParams& p, const Geometry& g, int16_t* vp) {
  const __m512i zp_pair = _mm512_set1_epi32(p.v_zero_point * 0x10001);
  const __m512i zp_low = _mm512_set1_epi32(p.v_zero_point);
  for (int64_t pr = 0; pr < g.n2; ++pr) {
    int16_t* dst = vp + pr * g.dp * 2;
    const uint8_t* r0 = v + (2 * pr) * p.d;
    const bool has_r1 = 2 * pr + 1 < p.n;
    for (int64_t d = 0; d < g.dp; d += 16) {
      const int64_t left = p.d - d;
      const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                     : (left <= 0 ? 0 : static_cast<__mmask16>((1u << left) - 1u));
      __m512i x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, r0 + d));
      if (has_r1) {
        x = _mm512_or_si512(x, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, r0 + p.d + d)), 16));
        x = _mm512_maskz_sub_epi16(static_cast<__mmask32>(_pdep_u32(k, 0x55555555u) * 3u), x, zp_pair);
      } else {
        x = _mm512_maskz_sub_epi32(k, x, zp_low);
        x = _mm512_and_si512(x, _mm512_set1_epi32(0xFFFF));
      }
      _mm512_storeu_si512(dst + 2 * d, x);
    }
  }
}

// Step 1 for one row, 32 codes per iteration: int16 weights 2^(14 - k) (0 for k >= Z and beyond N) are already the
// packed pairs. Returns the weight sum.
FQVIT_TARGET_AVX512 int64_t pack_weights_avx512(const uint8_t* a, int64_t n, int zero_code, uint32_t* wp) {
  const __m512i one = _mm512_set1_epi16(1), fourteen = _mm512_set1_epi16(kLisValueShift);
  const __m512i zc = _mm512_set1_epi16(static_cast<int16_t>(zero_code));
  __m512i sum = _mm512_setzero_si512();
  int64_t total = 0;
  int64_t iter = 0;
  for (int64_t j = 0; j < n; j += 32) {
    const int64_t left = n - j;
    const __mmask32 k = left >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((1u << left) - 1u);
    const __m512i c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(k, a + j));
    const __mmask32 live = k & _mm512_cmplt_epu16_mask(c, zc);
    const __m512i w = _mm512_maskz_sllv_epi16(live, one, _mm512_sub_epi16(fourteen, c));
    _mm512_storeu_si512(wp + j / 2, w);  // wp has room for whole 32-code blocks
    sum = _mm512_add_epi32(sum, _mm512_madd_epi16(w, one));
    if (++iter == 4096) {  // lanes stay below 2^27: flush long before they could overflow
      total += _mm512_reduce_add_epi32(sum);
      sum = _mm512_setzero_si512();
      iter = 0;
    }
  }
  return total + _mm512_reduce_add_epi32(sum);
}

FQVIT_TARGET_AVX512 void output_row_avx512(const int32_t* acc, const LisMatMulParams& p, uint8_t* y) {
  const __m512 vs = _mm512_set1_ps(p.v_scale), two_m14 = _mm512_set1_ps(0x1p-14f), ys = _mm512_set1_ps(p.y_scale);
  const __m512i yzp = _mm512_set1_epi32(p.y_zero_point);
  for (int64_t d = 0; d < p.d; d += 16) {
    const int64_t left = p.d - d;
    const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 f =
        _mm512_cvt_roundepi32_ps(_mm512_loadu_si512(acc + d), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 t = _mm512_mul_ps(f, vs);
    t = _mm512_mul_ps(t, two_m14);
    const __m512i q = quantize_u8_x16(t, ys, yzp);
    _mm512_mask_cvtepi32_storeu_epi8(y + d, k, q);
  }
}
#endif  // FQVIT_HAS_X86

// Step 2 for up to 6 rows whose int32 accumulation is exact.
void gemm_rows(int rows, const uint32_t* const* wp, const Geometry& g, const int16_t* vp, int32_t* const* acc,
               Isa isa) {
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx512) {
    switch (rows) {
      case 6: gemm_rows_avx512<6>(wp, g, vp, acc); return;
      case 5: gemm_rows_avx512<5>(wp, g, vp, acc); return;
      case 4: gemm_rows_avx512<4>(wp, g, vp, acc); return;
      case 3: gemm_rows_avx512<3>(wp, g, vp, acc); return;
      case 2: gemm_rows_avx512<2>(wp, g, vp, acc); return;
      default: gemm_rows_avx512<1>(wp, g, vp, acc); return;
    }
  }
  if (isa == Isa::kAvx2) {
    for (int r0 = 0; r0 < rows; r0 += 4) {
      switch (std::min(4, rows - r0)) {
        case 4: gemm_rows_avx2<4>(wp + r0, g, vp, acc + r0); break;
        case 3: gemm_rows_avx2<3>(wp + r0, g, vp, acc + r0); break;
        case 2: gemm_rows_avx2<2>(wp + r0, g, vp, acc + r0); break;
        default: gemm_rows_avx2<1>(wp + r0, g, vp, acc + r0); break;
      }
    }
    return;
  }
#endif
  for (int r = 0; r < rows; ++r) gemm_row_scalar(wp[r], g, vp, acc[r]);
}

void output_row(const int32_t* acc, const LisMatMulParams& p, uint8_t* y, Isa isa) {
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx512) return output_row_avx512(acc, p, y);
  if (isa == Isa::kAvx2) return output_row_avx2(acc, p, y);
#endif
  output_row_scalar(acc, p, y);
}

constexpr int kTileRows = 6;

}  // namespace

int64_t lis_matmul_cpu_items(const LisMatMulParams& p) {
  if (p.batch <= 0 || p.m <= 0 || p.d <= 0) return 0;
  return p.batch * ((p.m + kRowsPerItem - 1) / kRowsPerItem);
}

void lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, const LisMatMulParams& p, int64_t item_begin,
                    int64_t item_end, Isa isa) {
  if (item_begin >= item_end) return;
  const Geometry g = make_geometry(p);
  const int64_t blocks = (p.m + kRowsPerItem - 1) / kRowsPerItem;
  const int64_t int32_limit = 2147483647;
  Scratch s;
  s.vp.resize(static_cast<size_t>(std::max<int64_t>(g.n2 * g.dp * 2, 1)));
  s.wp.resize(static_cast<size_t>(std::max<int64_t>(kRowsPerItem * g.wstride, 1)));
  s.acc.resize(static_cast<size_t>(kTileRows * g.dp));
  s.safe.reserve(kRowsPerItem);
  int64_t repacked_batch = -1;
  for (int64_t item = item_begin; item < item_end; ++item) {
    const int64_t b = item / blocks;
    const int64_t m0 = (item % blocks) * kRowsPerItem, m1 = std::min(p.m, m0 + kRowsPerItem);
    const uint8_t* ab = a + b * p.m * p.n;
    const uint8_t* vb = v + b * p.n * p.d;
    uint8_t* yb = y + b * p.m * p.d;
    if (b != repacked_batch) {
#if FQVIT_HAS_X86
      if (isa == Isa::kAvx512) {
        repack_v_avx512(vb, p, g, s.vp.data());
      } else if (isa == Isa::kAvx2) {
        repack_v_avx2(vb, p, g, s.vp.data());
      } else {
        repack_v(vb, p, g, s.vp.data());
      }
#else
      repack_v(vb, p, g, s.vp.data());
#endif
      repacked_batch = b;
    }
    // Step 1 (weights) and the exactness bound of step 2 per row.
    s.safe.clear();
    for (int64_t m = m0; m < m1; ++m) {
      uint32_t* wrow = s.wp.data() + (m - m0) * g.wstride;
#if FQVIT_HAS_X86
      const int64_t wsum = isa == Isa::kAvx512 ? pack_weights_avx512(ab + m * p.n, p.n, g.zero_code, wrow)
                           : isa == Isa::kAvx2 ? pack_weights_avx2(ab + m * p.n, p.n, g, wrow)
                                               : pack_weights(ab + m * p.n, p.n, g, wrow);
#else
      const int64_t wsum = pack_weights(ab + m * p.n, p.n, g, wrow);
#endif
      if (wsum * g.max_abs_v <= int32_limit) {
        s.safe.push_back(m);
      } else {
        s.acc64.resize(static_cast<size_t>(p.d));
        gemm_row_int64(ab + m * p.n, vb, p, g, s.acc64.data());
        output_row_scalar(s.acc64.data(), p, yb + m * p.d);  // step 3
      }
    }
    // Step 2 (int32) in tiles of up to 6 rows, then step 3.
    for (size_t i = 0; i < s.safe.size(); i += kTileRows) {
      const int rows = static_cast<int>(std::min<size_t>(kTileRows, s.safe.size() - i));
      const uint32_t* wrows[kTileRows];
      int32_t* arows[kTileRows];
      for (int r = 0; r < rows; ++r) {
        wrows[r] = s.wp.data() + (s.safe[i + r] - m0) * g.wstride;
        arows[r] = s.acc.data() + r * g.dp;
      }
      gemm_rows(rows, wrows, g, s.vp.data(), arows, isa);
      for (int r = 0; r < rows; ++r) output_row(arows[r], p, yb + s.safe[i + r] * p.d, isa);
    }
  }
}

// int8 V and Y: per batch entry, V ^ 0x80 into a scratch copy, the uint8 body on that entry alone (batch 1, the
// entry's share of the work items) with zero points + 128, then Y ^ 0x80 on the rows it wrote.
void lis_matmul_cpu(const uint8_t* a, const int8_t* v, int8_t* y, const LisMatMulParams& p, int64_t item_begin,
                    int64_t item_end, Isa isa) {
  if (item_begin >= item_end || p.m <= 0 || p.d <= 0) return;
  const int64_t blocks = (p.m + kRowsPerItem - 1) / kRowsPerItem;
  LisMatMulParams pu = p;
  pu.batch = 1;
  pu.v_zero_point += kCodeOffset;
  pu.y_zero_point += kCodeOffset;
  pu.code = CodeType::kUint8;
  std::vector<uint8_t> vbuf(static_cast<size_t>(std::max<int64_t>(p.n * p.d, 1)));
  for (int64_t b = item_begin / blocks; b * blocks < item_end; ++b) {
    const int64_t i0 = std::max(item_begin, b * blocks) - b * blocks;
    const int64_t i1 = std::min(item_end, (b + 1) * blocks) - b * blocks;
    flip_codes(v + b * p.n * p.d, vbuf.data(), p.n * p.d);
    uint8_t* yb = reinterpret_cast<uint8_t*>(y + b * p.m * p.d);
    lis_matmul_cpu(a + b * p.m * p.n, vbuf.data(), yb, pu, i0, i1, isa);
    const int64_t m0 = i0 * kRowsPerItem, m1 = std::min(p.m, i1 * kRowsPerItem);
    flip_codes(yb + m0 * p.d, yb + m0 * p.d, (m1 - m0) * p.d);
  }
}

}  // namespace fqvit
