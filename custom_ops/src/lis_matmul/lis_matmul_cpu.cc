// com.fqvit::LISMatMul on the CPU (docs/ops.md Sec. 4). Step numbers in the comments are those of Sec. 4.
//
// Step 2 is an integer GEMM. Codes become int16 weights w(k) = 2^(14 - k) (0 for the zero code), V - zp becomes
// int16, and pairs along N are multiplied and summed into int32 lanes (vpmaddwd; AVX-512 VNNI: vpdpwssd). On AVX-512
// VNNI an item whose codes are almost all 7 or more (at 4 bits; item_uses_bytes) runs on byte weights and vpdpbusd
// instead (four u8 x s8 products into an int32 lane, twice the work per instruction), see "byte weights" below. int32 accumulation is exact for a row whose weight sum W satisfies W * max|V - zp| <=
// 2^31 - 1 (always true for codes produced by LogIntSoftmax, see Sec. 4); any other row is accumulated in int64. The
// result of step 2 is the same integer on every path, and step 3 is the same float32 sequence, so all paths agree
// bit for bit.
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

constexpr int64_t kRowsPerItem = 64;  // rows of A per work item (V is packed once per batch entry and call)
constexpr int64_t kColAlign = 16;     // the repacked V is padded to a multiple of 16 columns
constexpr int kTileRows = 6;          // rows per GEMM tile

struct Scratch {
  std::vector<int16_t> vp;    // V - zp as int16 pairs along N: vp[(p * dp + d) * 2 + i] = V[2p + i, d] - zp
  std::vector<int8_t> vq;     // AVX-512: V - 128 as s8 quads along N: vq[(g * dp + d) * 4 + i] = V[4g + i, d] - 128
  std::vector<uint8_t> lo, hi;        // AVX-512: per row of the item, byte weights (bytes_per_row each)
  std::vector<int32_t> active;        // AVX-512: per row, the groups of 4 keys with a hi weight (bytes_per_row / 4)
  std::vector<int64_t> n_active, lo_sum, hi_sum;  // AVX-512: per row
  std::vector<uint32_t> wp;   // per row: w(A[2p]) | w(A[2p + 1]) << 16
  std::vector<int32_t> acc;   // int32 accumulators of a tile of rows, dp columns each
  std::vector<int64_t> acc64; // int64 accumulators of one row
  std::vector<int64_t> safe;  // rows of the item whose int32 accumulation is exact
};

struct Geometry {
  int64_t n4;  // groups of 4 along N (AVX-512)
  int64_t bytes_per_row;  // AVX-512 byte weights per row: 4 n4 rounded up to whole 64-byte vectors
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
  g.n4 = (p.n + 3) / 4;
  g.bytes_per_row = std::max<int64_t>((g.n4 * 4 + 63) / 64 * 64, 64);
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

// Step 2's exactness bound for row m of a batch entry (wsum: its step-1 weight sum): a row whose every partial sum
// stays inside int32 goes to s.safe, for the int32 tiles; any other runs steps 2 and 3 here, in int64.
void route_row(int64_t wsum, int64_t m, const uint8_t* ab, const uint8_t* vb, uint8_t* yb, const LisMatMulParams& p,
               const Geometry& g, Scratch& s) {
  constexpr int64_t kInt32Max = 2147483647;
  if (wsum * g.max_abs_v <= kInt32Max) {
    s.safe.push_back(m);
    return;
  }
  s.acc64.resize(static_cast<size_t>(p.d));
  gemm_row_int64(ab + m * p.n, vb, p, g, s.acc64.data());
  output_row_scalar(s.acc64.data(), p, yb + m * p.d);  // step 3
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

// --- AVX-512 VNNI: int16 weights and vpdpwssd, 6 rows x 64 columns per tile ----------------------------------------
// The body for items with many hi codes (see item_uses_bytes), where the byte weights would need two dense passes.

// Both AVX-512 GEMM bodies of step 2 (int16 weights: vpdpwssd; byte weights: vpdpbusd) share one register tile. Per
// step (a pair of keys for int16, a group of four for bytes) each row has one 32-bit word of weights, broadcast
// against J vectors of packed V (64 bytes each, row_bytes = dp * 4 bytes from one step to the next).
struct DotInt16 {  // two int16 weights x two int16 V values per lane
  FQVIT_TARGET_AVX512 static __m512i apply(__m512i acc, __m512i w, __m512i v) { return _mm512_dpwssd_epi32(acc, w, v); }
};
struct DotBytes {  // four u8 weights x four s8 V values per lane
  FQVIT_TARGET_AVX512 static __m512i apply(__m512i acc, __m512i w, __m512i v) { return _mm512_dpbusd_epi32(acc, w, v); }
};

// R rows x 16 J columns from column col0: acc[r][col0 ..] = sum over the steps of word(r, step) . V(step).
template <typename Dot, int R, int J, typename W>
FQVIT_TARGET_AVX512 void tile_avx512(const W* const* w, int64_t steps, const void* packed_v, int64_t row_bytes,
                                     int64_t col0, int32_t* const* acc) {
  // Accumulators stay in registers only when every loop over r and j is unrolled (GCC keeps the array otherwise).
  __m512i s[R][J];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) s[r][j] = _mm512_setzero_si512();
  }
  const char* v = static_cast<const char*>(packed_v) + col0 * 4;
  for (int64_t k = 0; k < steps; ++k, v += row_bytes) {
    __m512i vv[J];
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) vv[j] = _mm512_loadu_si512(v + 64 * j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t word;
      std::memcpy(&word, reinterpret_cast<const char*>(w[r]) + 4 * k, 4);
      const __m512i b = _mm512_set1_epi32(word);
#pragma GCC unroll 4
      for (int j = 0; j < J; ++j) s[r][j] = Dot::apply(s[r][j], b, vv[j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) _mm512_storeu_si512(acc[r] + col0 + 16 * j, s[r][j]);
  }
}

// R rows, every column of dp: tiles of 64 columns, then one of 48, 32 or 16.
template <typename Dot, int R, typename W>
FQVIT_TARGET_AVX512 void tile_rows_avx512(const W* const* w, int64_t steps, const void* packed_v, int64_t dp,
                                          int32_t* const* acc) {
  int64_t c = 0;
  for (; c + 64 <= dp; c += 64) tile_avx512<Dot, R, 4>(w, steps, packed_v, dp * 4, c, acc);
  switch ((dp - c) / 16) {
    case 3: tile_avx512<Dot, R, 3>(w, steps, packed_v, dp * 4, c, acc); break;
    case 2: tile_avx512<Dot, R, 2>(w, steps, packed_v, dp * 4, c, acc); break;
    case 1: tile_avx512<Dot, R, 1>(w, steps, packed_v, dp * 4, c, acc); break;
    default: break;
  }
}

// Up to kTileRows rows.
template <typename Dot, typename W>
void gemm_avx512(int rows, const W* const* w, int64_t steps, const void* packed_v, int64_t dp, int32_t* const* acc) {
  switch (rows) {
    case 6: tile_rows_avx512<Dot, 6>(w, steps, packed_v, dp, acc); return;
    case 5: tile_rows_avx512<Dot, 5>(w, steps, packed_v, dp, acc); return;
    case 4: tile_rows_avx512<Dot, 4>(w, steps, packed_v, dp, acc); return;
    case 3: tile_rows_avx512<Dot, 3>(w, steps, packed_v, dp, acc); return;
    case 2: tile_rows_avx512<Dot, 2>(w, steps, packed_v, dp, acc); return;
    default: tile_rows_avx512<Dot, 1>(w, steps, packed_v, dp, acc); return;
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

// --- AVX-512 VNNI: byte weights and vpdpbusd ----------------------------------------------------------------------
// With e0 = Z - 1 (the largest code that has a weight), w(k) = 2^(14 - e0) (lo(k) + 2^7 hi(k)) for every code k:
//   lo(k) = 2^(e0 - k) for e0 - 7 <= k <= e0 (1..128), else 0;
//   hi(k) = 2^(e0 - 7 - k) for k < e0 - 7 (2..128 at 4 bits; no such code below 4 bits), else 0;
// both 0 for k >= Z. Both fit unsigned bytes, and V' = V - 128 fits a signed byte, so vpdpbusd multiplies them four
// keys at a time, and sum_n lo_n (V_n - zp) = sum_n lo_n V'_n + (128 - zp) sum_n lo_n (the same for hi). The lo part
// runs over every group of 4 keys; hi is non-zero only where p >= 2^-(e0 - 6.5) (at 4 bits 1.1 %, a few keys of a
// row in the items that come here), so the hi part runs over the groups of 4 keys that hold one. Everything is
// wrapping int32 arithmetic (sums, products, shifts left), and for the rows that get here
// |acc| <= W max|V - zp| <= 2^31 - 1, so acc is exact.

// V' quads: vq[(g * dp + d) * 4 + i] = V[4g + i, d] ^ 0x80 (as s8: V - 128), 0 past N and past D. 16 columns of 4
// keys per step by byte and word interleaves, scalar tail columns.
FQVIT_TARGET_AVX512 void repack_v_quads_avx512(const uint8_t* v, const LisMatMulParams& p, const Geometry& g,
                                               int8_t* vq) {
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  std::memset(vq, 0, static_cast<size_t>(g.n4 * g.dp * 4));
  for (int64_t q = 0; q < g.n4; ++q) {
    const uint8_t* rows[4];
    const uint8_t zero_row[16] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};  // V = 128: V' = 0
    for (int i = 0; i < 4; ++i) rows[i] = 4 * q + i < p.n ? v + (4 * q + i) * p.d : nullptr;
    int8_t* dst = vq + q * g.dp * 4;
    int64_t d = 0;
    for (; d + 16 <= p.d; d += 16) {
      __m128i r[4];
      for (int i = 0; i < 4; ++i) {
        r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i] ? rows[i] + d : zero_row));
      }
      const __m128i ab_lo = _mm_unpacklo_epi8(r[0], r[1]), ab_hi = _mm_unpackhi_epi8(r[0], r[1]);
      const __m128i cd_lo = _mm_unpacklo_epi8(r[2], r[3]), cd_hi = _mm_unpackhi_epi8(r[2], r[3]);
      int8_t* o = dst + d * 4;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_xor_si128(_mm_unpacklo_epi16(ab_lo, cd_lo), flip));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16), _mm_xor_si128(_mm_unpackhi_epi16(ab_lo, cd_lo), flip));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 32), _mm_xor_si128(_mm_unpacklo_epi16(ab_hi, cd_hi), flip));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 48), _mm_xor_si128(_mm_unpackhi_epi16(ab_hi, cd_hi), flip));
    }
    for (; d < p.d; ++d) {
      for (int i = 0; i < 4; ++i) dst[d * 4 + i] = static_cast<int8_t>((rows[i] ? rows[i][d] : 128) ^ 0x80);
    }
  }
}

// Step 1 for one row: lo and hi byte weights (bytes_per_row each, 0 past N), their sums, and the groups of 4 keys
// whose hi word is non-zero (returns their count).
FQVIT_TARGET_AVX512 int64_t byte_weights_avx512(const uint8_t* a, int64_t n, const Geometry& g, const __m512i lo_tab,
                                                const __m512i hi_tab, uint8_t* lo, uint8_t* hi, int32_t* active,
                                                int64_t* lo_sum, int64_t* hi_sum) {
  const __m512i fifteen = _mm512_set1_epi8(15);
  __m512i slo = _mm512_setzero_si512(), shi = _mm512_setzero_si512();
  int64_t count = 0;
  for (int64_t j = 0; j < g.bytes_per_row; j += 64) {
    const int64_t left = n - j;
    const __mmask64 k = left >= 64 ? ~__mmask64(0) : (left <= 0 ? 0 : (__mmask64(1) << left) - 1);
    // Codes above 15 weigh what 15 weighs: 0 (15 >= Z always).
    const __m512i idx = _mm512_min_epu8(_mm512_maskz_loadu_epi8(k, a + j), fifteen);
    const __m512i l = _mm512_maskz_shuffle_epi8(k, lo_tab, idx), h = _mm512_maskz_shuffle_epi8(k, hi_tab, idx);
    _mm512_storeu_si512(lo + j, l);
    _mm512_storeu_si512(hi + j, h);
    slo = _mm512_add_epi64(slo, _mm512_sad_epu8(l, _mm512_setzero_si512()));
    shi = _mm512_add_epi64(shi, _mm512_sad_epu8(h, _mm512_setzero_si512()));
    for (uint32_t m = _mm512_test_epi32_mask(h, h); m != 0; m &= m - 1) {
      active[count++] = static_cast<int32_t>(j / 4 + __builtin_ctz(m));
    }
  }
  *lo_sum = _mm512_reduce_add_epi64(slo);
  *hi_sum = _mm512_reduce_add_epi64(shi);
  return count;
}

// The rest of step 2 for one row, J vectors of 16 columns from col0: the hi part over the row's active groups (J
// independent accumulators, so that the vpdpbusd chains overlap), both zero-point terms, and the scale 2^(14 - e0):
// acc = ((lo . V' + c_lo) + ((hi . V' + c_hi) << 7)) << shift, all wrapping int32.
template <int J>
FQVIT_TARGET_AVX512 void finish_cols_avx512(int32_t* acc, const uint8_t* hi, const int32_t* active, int64_t n_active,
                                            const Geometry& g, const int8_t* vq, int64_t col0, __m512i clo,
                                            __m512i chi, int shift) {
  __m512i h[J];
#pragma GCC unroll 4
  for (int j = 0; j < J; ++j) h[j] = chi;
  for (int64_t i = 0; i < n_active; ++i) {
    const int64_t q = active[i];
    int32_t word;
    std::memcpy(&word, hi + 4 * q, 4);
    const __m512i b = _mm512_set1_epi32(word);
    const int8_t* v = vq + (q * g.dp + col0) * 4;
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) h[j] = _mm512_dpbusd_epi32(h[j], b, _mm512_loadu_si512(v + 64 * j));
  }
#pragma GCC unroll 4
  for (int j = 0; j < J; ++j) {
    __m512i x = _mm512_add_epi32(_mm512_loadu_si512(acc + col0 + 16 * j), clo);
    x = _mm512_add_epi32(x, _mm512_slli_epi32(h[j], 7));
    _mm512_storeu_si512(acc + col0 + 16 * j, _mm512_sll_epi32(x, _mm_cvtsi32_si128(shift)));
  }
}

FQVIT_TARGET_AVX512 void finish_row_avx512(int32_t* acc, const uint8_t* hi, const int32_t* active, int64_t n_active,
                                           const Geometry& g, const int8_t* vq, int32_t c_lo, int32_t c_hi, int shift) {
  const __m512i clo = _mm512_set1_epi32(c_lo), chi = _mm512_set1_epi32(c_hi);
  int64_t c = 0;
  for (; c + 64 <= g.dp; c += 64) finish_cols_avx512<4>(acc, hi, active, n_active, g, vq, c, clo, chi, shift);
  switch ((g.dp - c) / 16) {
    case 3: finish_cols_avx512<3>(acc, hi, active, n_active, g, vq, c, clo, chi, shift); break;
    case 2: finish_cols_avx512<2>(acc, hi, active, n_active, g, vq, c, clo, chi, shift); break;
    case 1: finish_cols_avx512<1>(acc, hi, active, n_active, g, vq, c, clo, chi, shift); break;
    default: break;
  }
}

// Whether an item runs on byte weights: when at most 1 in kHiCodesPerByteItem of its codes is a hi code (k < e0 - 7,
// a probability of at least 2^-6.5 at 4 bits), so that the hi part stays sparse. Otherwise the int16 weights and
// vpdpwssd cost less. 64 rows of a ViT head (N = 197, D = 64), one thread of the AMX Xeon, ad-hoc harness: bytes
// 6.3 us against int16 7.8 us with no hi code, 7.1 against 7.4 with 4 per row (2 %), 8.4 against 7.4 with 15 per row;
// the two meet near 6 per row (3 %). Below 4 bits there are no hi codes.
constexpr int64_t kHiCodesPerByteItem = 32;

FQVIT_TARGET_AVX512 bool item_uses_bytes(const uint8_t* codes, int64_t count, const Geometry& g) {
  const int e0 = g.zero_code - 1;
  if (e0 - 7 <= 0) return true;
  const __m512i first_lo = _mm512_set1_epi8(static_cast<char>(e0 - 7));  // codes below this are hi codes
  int64_t hi = 0;
  for (int64_t j = 0; j < count; j += 64) {
    const int64_t left = count - j;
    const __mmask64 k = left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
    hi += __builtin_popcountll(_mm512_mask_cmplt_epu8_mask(k, _mm512_maskz_loadu_epi8(k, codes + j), first_lo));
  }
  return hi * kHiCodesPerByteItem <= count;
}

// One work item (rows m0 .. m1 of a batch entry) on the AVX-512 VNNI path, V' already in s.vq.
FQVIT_TARGET_AVX512 void item_avx512(const uint8_t* ab, const uint8_t* vb, uint8_t* yb, const LisMatMulParams& p,
                                     const Geometry& g, int64_t m0, int64_t m1, Scratch& s) {
  const int e0 = g.zero_code - 1, shift = kLisValueShift - e0;
  alignas(16) uint8_t lo_t[16] = {}, hi_t[16] = {};
  for (int k = 0; k < g.zero_code; ++k) {
    if (k >= e0 - 7) {
      lo_t[k] = static_cast<uint8_t>(1 << (e0 - k));
    } else {
      hi_t[k] = static_cast<uint8_t>(1 << (e0 - 7 - k));
    }
  }
  const __m512i lo_tab = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(lo_t)));
  const __m512i hi_tab = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(hi_t)));
  const int64_t rows = m1 - m0;
  s.lo.resize(static_cast<size_t>(rows * g.bytes_per_row));
  s.hi.resize(static_cast<size_t>(rows * g.bytes_per_row));
  s.active.resize(static_cast<size_t>(rows * std::max<int64_t>(g.bytes_per_row / 4, 1)));
  s.n_active.resize(static_cast<size_t>(rows));
  s.lo_sum.resize(static_cast<size_t>(rows));
  s.hi_sum.resize(static_cast<size_t>(rows));
  const int32_t zp_term = 128 - p.v_zero_point;
  s.safe.clear();
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t r = m - m0;
    s.n_active[r] = byte_weights_avx512(ab + m * p.n, p.n, g, lo_tab, hi_tab, s.lo.data() + r * g.bytes_per_row,
                                        s.hi.data() + r * g.bytes_per_row,
                                        s.active.data() + r * (g.bytes_per_row / 4), &s.lo_sum[r], &s.hi_sum[r]);
    route_row((s.lo_sum[r] + 128 * s.hi_sum[r]) << shift, m, ab, vb, yb, p, g, s);  // step 1's weight sum
  }
  // The hi part runs per row over its active groups (item_uses_bytes keeps them few).
  for (size_t i = 0; i < s.safe.size(); i += kTileRows) {
    const int n_rows = static_cast<int>(std::min<size_t>(kTileRows, s.safe.size() - i));
    const uint8_t* lrows[kTileRows];
    int32_t* arows[kTileRows];
    for (int t = 0; t < n_rows; ++t) {
      lrows[t] = s.lo.data() + (s.safe[i + t] - m0) * g.bytes_per_row;
      arows[t] = s.acc.data() + t * g.dp;
    }
    gemm_avx512<DotBytes>(n_rows, lrows, g.n4, s.vq.data(), g.dp, arows);  // the lo part
    for (int t = 0; t < n_rows; ++t) {
      const int64_t r = s.safe[i + t] - m0;
      const int32_t c_lo = static_cast<int32_t>(static_cast<uint32_t>(zp_term) * static_cast<uint32_t>(s.lo_sum[r]));
      const int32_t c_hi = static_cast<int32_t>(static_cast<uint32_t>(zp_term) * static_cast<uint32_t>(s.hi_sum[r]));
      finish_row_avx512(arows[t], s.hi.data() + r * g.bytes_per_row, s.active.data() + r * (g.bytes_per_row / 4),
                        s.n_active[r], g, s.vq.data(), c_lo, c_hi, shift);
      output_row_avx512(arows[t], p, yb + s.safe[i + t] * p.d);
    }
  }
}
#endif  // FQVIT_HAS_X86

// Step 2 on int16 weights for up to 6 rows whose int32 accumulation is exact.
void gemm_rows(int rows, const uint32_t* const* wp, const Geometry& g, const int16_t* vp, int32_t* const* acc,
               Isa isa) {
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx512) return gemm_avx512<DotInt16>(rows, wp, g.n2, vp, g.dp, acc);
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

}  // namespace

int64_t lis_matmul_cpu_items(const LisMatMulParams& p) {
  if (p.batch <= 0 || p.m <= 0 || p.d <= 0) return 0;
  return p.batch * ((p.m + kRowsPerItem - 1) / kRowsPerItem);
}

struct LisMatMulScratch::Impl {
  Scratch s;
  // What s.vq / s.vp hold: V of batch entry `batch` of the call with key `key`, for these shapes and path.
  int64_t key = -1, batch = -1, n = -1, d = -1;
  int64_t vp_batch = -1;  // the batch entry s.vp holds (AVX-512: s.vq is `batch`'s)
  int32_t v_zero_point = 0;
  Isa isa = Isa::kScalar;
};

LisMatMulScratch::LisMatMulScratch() : impl(std::make_unique<Impl>()) {}
LisMatMulScratch::~LisMatMulScratch() = default;

void lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, const LisMatMulParams& p, int64_t item_begin,
                    int64_t item_end, Isa isa) {
  LisMatMulScratch scratch;
  lis_matmul_cpu(a, v, y, p, item_begin, item_end, isa, scratch, -1);
}

void lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, const LisMatMulParams& p, int64_t item_begin,
                    int64_t item_end, Isa isa, LisMatMulScratch& scratch, int64_t v_key) {
  if (item_begin >= item_end) return;
  const Geometry g = make_geometry(p);
  const int64_t blocks = (p.m + kRowsPerItem - 1) / kRowsPerItem;
  LisMatMulScratch::Impl& held = *scratch.impl;
  Scratch& s = held.s;
  const bool same_v = v_key >= 0 && held.key == v_key && held.n == p.n && held.d == p.d &&
                      held.v_zero_point == p.v_zero_point && held.isa == isa;
  held.key = v_key;
  held.n = p.n;
  held.d = p.d;
  held.v_zero_point = p.v_zero_point;
  held.isa = isa;
  if (!same_v) held.batch = held.vp_batch = -1;
  s.acc.resize(static_cast<size_t>(kTileRows * g.dp));
  s.safe.reserve(kRowsPerItem);
  for (int64_t item = item_begin; item < item_end; ++item) {
    const int64_t b = item / blocks;
    const int64_t m0 = (item % blocks) * kRowsPerItem, m1 = std::min(p.m, m0 + kRowsPerItem);
    const uint8_t* ab = a + b * p.m * p.n;
    const uint8_t* vb = v + b * p.n * p.d;
    uint8_t* yb = y + b * p.m * p.d;
#if FQVIT_HAS_X86
    if (isa == Isa::kAvx512 && item_uses_bytes(ab + m0 * p.n, (m1 - m0) * p.n, g)) {
      if (b != held.batch) {
        s.vq.resize(static_cast<size_t>(std::max<int64_t>(g.n4 * g.dp * 4, 1)));
        repack_v_quads_avx512(vb, p, g, s.vq.data());
        held.batch = b;
      }
      item_avx512(ab, vb, yb, p, g, m0, m1, s);
      continue;
    }
#endif
    if (b != held.vp_batch) {
      s.vp.resize(static_cast<size_t>(std::max<int64_t>(g.n2 * g.dp * 2, 1)));
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
      held.vp_batch = b;
    }
    s.wp.resize(static_cast<size_t>(std::max<int64_t>(kRowsPerItem * g.wstride, 1)));
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
      route_row(wsum, m, ab, vb, yb, p, g, s);
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
