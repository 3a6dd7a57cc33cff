// com.fqvit::LogIntSoftmax on the CPU (docs/ops.md Sec. 3). Step numbers in the comments are those of Sec. 3.
//
// Two observations make the row cheap without changing a bit of the definition:
//  * steps 1-4 depend on the logit only through d = max - q in 0..255: e(d) is a 256-entry table per tensor (scalar,
//    AVX2 tails, huge M), and for M <= 8421504 every intermediate fits int32 lanes (the AVX2/AVX-512 bodies);
//  * step 5-6's code is #{k < Z : p < T'_k} with p = floor(e 2^P / S) and T'_k = ceil(sqrt(2^(2P-1-2k))). For an
//    integer e, floor(e 2^P / S) < T'_k  <=>  e < ceil(T'_k S / 2^P) =: F_k, so each row needs Z thresholds F_k
//    (int64, once per row) and the per-element work is integer compares: no division per element. The scalar body
//    is fqvit_ops/arith.h (lis_exp_term, lis_row_threshold, lis_code), the oracle the vector bodies are tested with.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/code_flip.h"
#include "common/simd.h"
#include "fqvit_ops/log_int_softmax.h"

namespace fqvit {

std::string log_int_softmax_check(const LisSoftmaxParams& p) {
  if (std::string e = lis_bits_check(p.bits); !e.empty()) return e;
  if (p.multiplier < 0 || p.multiplier > kMaxLisMultiplier) {
    return "attribute multiplier must be in 0.." + std::to_string(kMaxLisMultiplier) + ", got " +
           std::to_string(p.multiplier);
  }
  if (p.rows < 0 || p.n < 0) return "negative shape";
  if (p.n > (int64_t(1) << 31)) return "the last dimension is too large (> 2^31)";
  return {};
}

std::string mask_layout_make(const int64_t* x_shape, int x_rank, const int64_t* m_shape, int m_rank,
                             const uint8_t* mask, MaskLayout* out) {
  *out = MaskLayout{};
  if (x_rank < 1 || x_rank > kMaxRank) {
    return "X must have rank 1.." + std::to_string(kMaxRank) + ", got " + std::to_string(x_rank);
  }
  out->nlead = x_rank - 1;
  for (int i = 0; i < x_rank - 1; ++i) out->lead_dims[i] = x_shape[i];
  if (mask == nullptr && m_shape == nullptr) return {};
  if (m_rank > x_rank) {
    return "mask rank " + std::to_string(m_rank) + " exceeds the rank " + std::to_string(x_rank) +
           " of X";
  }
  // numpy broadcasting: align trailing dims, each mask dim is 1 or equal to X's.
  int64_t stride = 1;
  for (int i = x_rank - 1; i >= 0; --i) {
    const int mi = i - (x_rank - m_rank);
    const int64_t md = mi >= 0 ? m_shape[mi] : 1;
    if (md != 1 && md != x_shape[i]) {
      std::string xs, ms;
      for (int j = 0; j < x_rank; ++j) xs += (j ? "," : "") + std::to_string(x_shape[j]);
      for (int j = 0; j < m_rank; ++j) ms += (j ? "," : "") + std::to_string(m_shape[j]);
      return "mask shape [" + ms + "] does not broadcast to X shape [" + xs +
             "] (each mask dim must be 1 or equal to X's)";
    }
    const int64_t s = (md == 1) ? 0 : stride;
    if (i == x_rank - 1) {
      out->last_stride = s;
    } else {
      out->lead_strides[i] = s;
    }
    stride *= md;
  }
  out->data = mask;
  return {};
}

namespace {

constexpr int kMaxCodes = kLisMaxCodes + 1;  // 15 thresholds and the closing 0

// Largest M for which d * M (d <= 255) fits int32, so the vector paths compute e in int32 lanes.
constexpr int64_t kArithMaxMultiplier = 2147483647 / 255;

struct Tables {
  int64_t multiplier;
  int32_t e[256];            // steps 1-4: e(d) for d = max - q
  int64_t sqrt_thr[kMaxCodes];  // T'_k = smallest integer whose square reaches 2^(2P - 1 - 2k), k < Z
  int zero_code;
};

// arith.h's lis_root_thresholds of each valid `bits`, made once: 15 integer square roots of 31 steps each were a
// measurable share of a call on LISAttention's blocks of rows (about 1% of deit_small's samples at batch 8).
LisRootThresholds root_thresholds(int bits) {
  static const std::array<LisRootThresholds, kLisMaxBits + 1> made = [] {
    std::array<LisRootThresholds, kLisMaxBits + 1> a{};
    for (int b = kLisMinBits; b <= kLisMaxBits; ++b) a[b] = lis_root_thresholds(b);
    return a;
  }();
  return bits >= kLisMinBits && bits <= kLisMaxBits ? made[bits] : lis_root_thresholds(bits);
}

// The e(d) table is needed by the scalar and AVX2 paths, and by AVX-512 only when d * M does not fit int32.
void make_tables(const LisSoftmaxParams& p, bool need_e, Tables* t) {
  t->zero_code = (1 << p.bits) - 1;
  t->multiplier = p.multiplier;
  const LisRootThresholds roots = root_thresholds(p.bits);
  for (int k = 0; k < kMaxCodes; ++k) t->sqrt_thr[k] = roots.t[k];
  if (!need_e) return;
  for (int d = 0; d < 256; ++d) t->e[d] = static_cast<int32_t>(lis_exp_term(d, p.multiplier));  // steps 1-4
}

// Steps 5-6 thresholds of one row: code_j = #{k : e_j < F_k} (fqvit_ops/arith.h, lis_row_threshold and lis_code).
void row_thresholds(const Tables& t, int64_t s, int32_t* f) {
  for (int k = 0; k < kMaxCodes; ++k) f[k] = lis_row_threshold(t.sqrt_thr[k], s);
}

struct Row {
  const uint8_t* q;
  const uint8_t* m;  // mask row varying along N, or nullptr
  uint8_t* out;
  int64_t n;
};

void row_scalar(const Row& w, const Tables& t, int32_t* ebuf) {
  // Step 1: max over the unmasked positions (a masked position counts as 0, which never exceeds an unmasked max).
  int32_t mx = 0;
  for (int64_t j = 0; j < w.n; ++j) {
    const int32_t q = (w.m != nullptr && w.m[j]) ? 0 : w.q[j];
    mx = q > mx ? q : mx;
  }
  // Steps 1-4: e_j = e(max - q_j), masked e_j = 0; S = sum e_j.
  int64_t s = 0;
  for (int64_t j = 0; j < w.n; ++j) {
    const bool masked = w.m != nullptr && w.m[j];
    const int32_t e = masked ? 0 : t.e[(mx - w.q[j]) & 255];
    ebuf[j] = e;
    s += e;
  }
  // Steps 5-6.
  int32_t f[kMaxCodes];
  row_thresholds(t, s, f);
  for (int64_t j = 0; j < w.n; ++j) w.out[j] = lis_code(ebuf[j], f);
}

#if FQVIT_HAS_X86
// --- AVX2 ------------------------------------------------------------------------------------------------------------

FQVIT_TARGET_AVX2 void row_avx2(const Row& w, const Tables& t, int32_t* ebuf) {
  // Step 1: unsigned byte max, masked bytes zeroed.
  __m256i vmax = _mm256_setzero_si256();
  int64_t j = 0;
  for (; j + 32 <= w.n; j += 32) {
    __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.q + j));
    if (w.m != nullptr) {
      const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.m + j));
      q = _mm256_and_si256(_mm256_cmpeq_epi8(m, _mm256_setzero_si256()), q);
    }
    vmax = _mm256_max_epu8(vmax, q);
  }
  __m128i m128 = _mm_max_epu8(_mm256_castsi256_si128(vmax), _mm256_extracti128_si256(vmax, 1));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 8));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 4));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 2));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 1));
  int32_t mx = _mm_extract_epi8(m128, 0);
  for (; j < w.n; ++j) {
    const int32_t q = (w.m != nullptr && w.m[j]) ? 0 : w.q[j];
    mx = q > mx ? q : mx;
  }
  // Steps 1-4: table gather, 8 per iteration; S in int64 lanes.
  const __m256i mxv = _mm256_set1_epi32(mx);
  const __m256i b255 = _mm256_set1_epi32(255);
  const bool arith = t.multiplier <= kArithMaxMultiplier;
  const __m256i mulv = _mm256_set1_epi32(static_cast<int32_t>(arith ? t.multiplier : 0));
  const __m256i polyb = _mm256_set1_epi32(static_cast<int32_t>(kLisPolyB));
  const __m256i polyc = _mm256_set1_epi32(static_cast<int32_t>(kLisPolyC));
  const __m256i frac = _mm256_set1_epi32((1 << kLisFracBits) - 1);
  __m256i sum = _mm256_setzero_si256();
  j = 0;
  for (; j + 8 <= w.n; j += 8) {
    const __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.q + j)));
    __m256i e;
    if (arith) {  // as in the AVX-512 body
      const __m256i u = _mm256_mullo_epi32(_mm256_sub_epi32(mxv, q), mulv);
      const __m256i rr = _mm256_and_si256(u, frac);
      const __m256i z = _mm256_add_epi32(_mm256_mullo_epi32(rr, _mm256_sub_epi32(rr, polyb)), polyc);
      e = _mm256_srlv_epi32(z, _mm256_srli_epi32(u, kLisFracBits));
    } else {
      e = _mm256_i32gather_epi32(t.e, _mm256_and_si256(_mm256_sub_epi32(mxv, q), b255), 4);
    }
    if (w.m != nullptr) {
      const __m256i m = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.m + j)));
      e = _mm256_and_si256(e, _mm256_cmpeq_epi32(m, _mm256_setzero_si256()));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ebuf + j), e);
    sum = _mm256_add_epi64(sum, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(e)));
    sum = _mm256_add_epi64(sum, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(e, 1)));
  }
  alignas(32) int64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  int64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; j < w.n; ++j) {
    const bool masked = w.m != nullptr && w.m[j];
    const int32_t e = masked ? 0 : t.e[(mx - w.q[j]) & 255];
    ebuf[j] = e;
    s += e;
  }
  // Steps 5-6: code = #{k : F_k > e}, 8 per iteration.
  alignas(32) int32_t f[kMaxCodes];
  row_thresholds(t, s, f);
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i gather_lo = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
  j = 0;
  for (; j + 8 <= w.n; j += 8) {
    const __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ebuf + j));
    __m256i cnt = _mm256_setzero_si256();
    for (int k = 0; k < t.zero_code; ++k) cnt = _mm256_sub_epi32(cnt, _mm256_cmpgt_epi32(_mm256_set1_epi32(f[k]), e));
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(cnt, pick), gather_lo);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(w.out + j), _mm256_castsi256_si128(b));
  }
  for (; j < w.n; ++j) w.out[j] = lis_code(ebuf[j], f);
}

// --- AVX-512 ---------------------------------------------------------------------------------------------------------

FQVIT_TARGET_AVX512 inline __m512i thresholds_avx512(const Tables& t, int64_t s) {
  const uint64_t sum = static_cast<uint64_t>(s < 1 ? 1 : s);
  const __m512i s_lo = _mm512_set1_epi64(static_cast<int64_t>(sum & ((uint64_t(1) << kLisNormBits) - 1)));
  const __m512i s_hi = _mm512_set1_epi64(static_cast<int64_t>(sum >> kLisNormBits));
  const __m512i round = _mm512_set1_epi64((int64_t(1) << kLisNormBits) - 1);
  const __m512i cap = _mm512_set1_epi64(2147483647);
  __m256i half[2];
  for (int h = 0; h < 2; ++h) {
    const __m512i thr = _mm512_loadu_si512(t.sqrt_thr + 8 * h);
    const __m512i lo = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epu32(thr, s_lo), round), kLisNormBits);
    const __m512i f = _mm512_add_epi64(_mm512_mul_epu32(thr, s_hi), lo);
    half[h] = _mm512_cvtepi64_epi32(_mm512_min_epu64(f, cap));
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(half[0]), half[1], 1);
}

FQVIT_TARGET_AVX512 void row_avx512(const Row& row, const Tables& t, int32_t* ebuf) {
  const Row w = row;  // a local copy: stores to ebuf/out cannot alias it, so n and the pointers stay in registers
  // Step 1: unsigned byte max, 64 per iteration, masked and tail bytes zeroed.
  __m512i vmax = _mm512_setzero_si512();
  for (int64_t j = 0; j < w.n; j += 64) {
    const int64_t left = w.n - j;
    __mmask64 k = left >= 64 ? ~__mmask64(0) : ((__mmask64(1) << left) - 1);
    if (w.m != nullptr) {
      const __m512i m = _mm512_maskz_loadu_epi8(k, w.m + j);
      k &= ~_mm512_test_epi8_mask(m, m);
    }
    vmax = _mm512_max_epu8(vmax, _mm512_maskz_loadu_epi8(k, w.q + j));
  }
  __m256i m256 = _mm256_max_epu8(_mm512_castsi512_si256(vmax), _mm512_extracti64x4_epi64(vmax, 1));
  __m128i m128 = _mm_max_epu8(_mm256_castsi256_si128(m256), _mm256_extracti128_si256(m256, 1));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 8));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 4));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 2));
  m128 = _mm_max_epu8(m128, _mm_srli_si128(m128, 1));
  const int32_t mx = _mm_extract_epi8(m128, 0);

  // Steps 1-4, 16 per iteration; S in int64 lanes. When d * M fits int32 (M <= 8421504, every practical scale),
  // e is computed in int32 lanes: u = d M, n = u >> L, r = -(u & (2^L - 1)), z = r (r + B) + Cp = rr (rr - B) + Cp
  // with rr = -r (|rr (rr - B)| < 2^30, 7.7e8 < z < 2^31), e = z >> n (vpsrlvd gives 0 for n >= 32, as z < 2^31).
  // Otherwise the table is gathered.
  const __m512i mxv = _mm512_set1_epi32(mx);
  const __m512i b255 = _mm512_set1_epi32(255);
  const bool arith = t.multiplier <= kArithMaxMultiplier;
  const __m512i mulv = _mm512_set1_epi32(static_cast<int32_t>(arith ? t.multiplier : 0));
  const __m512i polyb = _mm512_set1_epi32(static_cast<int32_t>(kLisPolyB));
  const __m512i polyc = _mm512_set1_epi32(static_cast<int32_t>(kLisPolyC));
  const __m512i frac = _mm512_set1_epi32((1 << kLisFracBits) - 1);
  const __m512i lo32 = _mm512_set1_epi64(0xFFFFFFFFll);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t j = 0; j < w.n; j += 16) {
    const int64_t left = w.n - j;
    __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __mmask16 tail = k;
    if (w.m != nullptr) {
      const __m128i m = _mm_maskz_loadu_epi8(k, w.m + j);
      k &= static_cast<__mmask16>(~_mm_test_epi8_mask(m, m));
    }
    const __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(tail, w.q + j));
    __m512i e;
    if (arith) {
      const __m512i u = _mm512_mullo_epi32(_mm512_sub_epi32(mxv, q), mulv);
      const __m512i rr = _mm512_and_si512(u, frac);
      const __m512i z = _mm512_add_epi32(_mm512_mullo_epi32(rr, _mm512_sub_epi32(rr, polyb)), polyc);
      e = _mm512_maskz_srlv_epi32(k, z, _mm512_srli_epi32(u, kLisFracBits));
    } else {
      const __m512i idx = _mm512_and_si512(_mm512_sub_epi32(mxv, q), b255);
      e = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, idx, t.e, 4);
    }
    _mm512_mask_storeu_epi32(ebuf + j, tail, e);
    // S in int64 lanes: the even and odd dwords of e, zero-extended in place (no cross-lane shuffles).
    sum = _mm512_add_epi64(sum, _mm512_and_si512(e, lo32));
    sum = _mm512_add_epi64(sum, _mm512_srli_epi64(e, 32));
  }
  const int64_t s = _mm512_reduce_add_epi64(sum);

  // Steps 5-6: code = #{k : e < F_k} by a 4-step binary search over the 16 thresholds (a prefix property).
  // Thresholds F_k = ceil(T'_k S / 2^P) in int64 lanes without 128-bit products: with S = S_hi 2^30 + S_lo,
  // F_k = T'_k S_hi + ceil(T'_k S_lo / 2^30) (T'_k, S_lo < 2^30; S_hi < 2^32), clamped to INT32_MAX.
  const __m512i ftab = thresholds_avx512(t, s);
  const __m512i f3 = _mm512_permutexvar_epi32(_mm512_set1_epi32(3), ftab);
  const __m512i f7 = _mm512_permutexvar_epi32(_mm512_set1_epi32(7), ftab);
  const __m512i f11 = _mm512_permutexvar_epi32(_mm512_set1_epi32(11), ftab);
  const __m512i s8 = _mm512_set1_epi32(8), s4 = _mm512_set1_epi32(4);
  const __m512i s2 = _mm512_set1_epi32(2), s1 = _mm512_set1_epi32(1);
  // ftab1[i] = F_{i+1} for the third probe, ftab rotated by one lane (i = 0, 4, 8, 12 there: no wrap).
  const __m512i ftab1 = _mm512_alignr_epi32(ftab, ftab, 1);
  auto codes16 = [&](const __m512i e) FQVIT_TARGET_AVX512 {
    // pos = count of the prefix {k : e < F_k}: probe F_7, then F_{pos+3} (F_3 or F_11, by the first probe), F_{pos+1}
    // (ftab1), F_pos.
    const __mmask16 c7 = _mm512_cmplt_epi32_mask(e, f7);
    __m512i pos = _mm512_maskz_mov_epi32(c7, s8);
    __mmask16 c = _mm512_cmplt_epi32_mask(e, _mm512_mask_blend_epi32(c7, f3, f11));
    pos = _mm512_mask_add_epi32(pos, c, pos, s4);
    c = _mm512_cmplt_epi32_mask(e, _mm512_permutexvar_epi32(pos, ftab1));
    pos = _mm512_mask_add_epi32(pos, c, pos, s2);
    c = _mm512_cmplt_epi32_mask(e, _mm512_permutexvar_epi32(pos, ftab));
    return _mm512_mask_add_epi32(pos, c, pos, s1);
  };
  int64_t j = 0;
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (; j + 64 <= w.n; j += 64) {  // 64 codes, one store: pack dwords -> words -> bytes, then undo the lane order
    const __m512i c0 = codes16(_mm512_loadu_si512(ebuf + j)), c1 = codes16(_mm512_loadu_si512(ebuf + j + 16));
    const __m512i c2 = codes16(_mm512_loadu_si512(ebuf + j + 32)), c3 = codes16(_mm512_loadu_si512(ebuf + j + 48));
    const __m512i b = _mm512_packus_epi16(_mm512_packus_epi32(c0, c1), _mm512_packus_epi32(c2, c3));
    _mm512_storeu_si512(w.out + j, _mm512_permutexvar_epi32(order, b));
  }
  for (; j < w.n; j += 16) {
    const int64_t left = w.n - j;
    const __mmask16 tail = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    _mm512_mask_cvtepi32_storeu_epi8(w.out + j, tail, codes16(_mm512_maskz_loadu_epi32(tail, ebuf + j)));
  }
}
#endif  // FQVIT_HAS_X86

}  // namespace

namespace {

// Rows [row_begin, row_end); x points at row x_row0 of X (the whole tensor for uint8, a flipped block for int8).
void lis_rows(const uint8_t* x, int64_t x_row0, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
              int64_t row_begin, int64_t row_end, Isa isa) {
  if (p.n == 0 || row_begin >= row_end) return;
  Tables t{};  // zeroed: a path reading a table it did not ask for gives wrong codes, caught by the tests
  make_tables(p, isa != Isa::kAvx512 || p.multiplier > kArithMaxMultiplier, &t);  // AVX2 tails use the table
  thread_local std::vector<int32_t> ebuf;  // e of one row, reused by the thread's calls
  if (ebuf.size() < static_cast<size_t>(p.n)) ebuf.resize(static_cast<size_t>(p.n));
  for (int64_t r = row_begin; r < row_end; ++r) {
    Row w{x + (r - x_row0) * p.n, nullptr, codes + r * p.n, p.n};
    if (mask.data != nullptr) {
      const uint8_t* mrow = mask.data + mask.row_offset(r);
      if (mask.last_stride == 0) {
        if (*mrow) {  // the whole row is masked: every probability is 0
          std::memset(w.out, t.zero_code, static_cast<size_t>(p.n));
          continue;
        }
      } else {
        w.m = mrow;
      }
    }
#if FQVIT_HAS_X86
    if (isa == Isa::kAvx512) {
      row_avx512(w, t, ebuf.data());
      continue;
    }
    if (isa == Isa::kAvx2) {
      row_avx2(w, t, ebuf.data());
      continue;
    }
#endif
    row_scalar(w, t, ebuf.data());
  }
}

}  // namespace

void log_int_softmax_cpu(const uint8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         int64_t row_begin, int64_t row_end, Isa isa) {
  lis_rows(x, 0, mask, codes, p, row_begin, row_end, isa);
}

// int8 logits: max - q is the same for x and x ^ 0x80 = x + 128 (as uint8), and a masked position never sets the
// max in either domain (the uint8 body counts it as 0, below or at every unmasked code), so the uint8 body on a
// flipped copy gives the same codes.
void log_int_softmax_cpu(const int8_t* x, const MaskLayout& mask, uint8_t* codes, const LisSoftmaxParams& p,
                         int64_t row_begin, int64_t row_end, Isa isa) {
  if (p.n == 0 || row_begin >= row_end) return;
  const int64_t block = std::max<int64_t>(1, kFlipBlockBytes / p.n);
  std::vector<uint8_t> buf(static_cast<size_t>(std::min(block, row_end - row_begin) * p.n));
  for (int64_t r0 = row_begin; r0 < row_end; r0 += block) {
    const int64_t r1 = std::min(row_end, r0 + block);
    flip_codes(x + r0 * p.n, buf.data(), (r1 - r0) * p.n);
    lis_rows(buf.data(), r0, mask, codes, p, r0, r1, isa);
  }
}

}  // namespace fqvit
