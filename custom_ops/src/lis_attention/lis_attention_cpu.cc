// com.fqvit::LISAttention on the CPU (docs/ops.md Sec. 5, fused ops). One work item is (batch entry b, head h, block
// of at most kLisAttentionBlockRows query rows); per item:
//   1. q, k, v of (b, h) gathered from QKV (int8 codes as uint8: x ^ 0x80, zero points + 128; see code_flip.h);
//   2. acc = (q - zp) @ (k - zp)^T for the block's rows, exact int32 (below: "q k^T");
//   3. logits = Requantize(acc)          (bias 0: on the VNNI path on the tile's registers with requantize_u8_x16,
//                                         the AVX-512 spelling of src/requantize's spans, without a bias; elsewhere
//                                         requantize_cpu);
//   4. codes  = log_int_softmax_cpu(...) (src/log_int_softmax, no mask);
//   5. out    = lis_matmul_cpu(...)      (src/lis_matmul, one batch entry of the block's rows; v packed once per head);
//   6. out's rows written to Y[b, i, h * D ...] (flipped back for int8).
// Steps 3-5 are the unfused ops' own functions (step 3 also as their shared AVX-512 spelling) on buffers of rows x N
// that stay in the core's cache, so the op gives the bits of the unfused nodes by construction; what the fusion saves
// is the [B, heads, N, N] tensors in memory and the Transpose/Gather nodes around them.
//
// q k^T: with AVX-512 VNNI (Isa::kAvx512, which fqvit::cpu_best_isa grants only with VNNI) vpdpbusd multiplies
// unsigned bytes by signed bytes and adds four products into an int32 lane without saturation: q stays uint8 and k
// becomes the signed byte k' = k - 128, then
//   sum_d (q - z)(k - z) = sum_d q k' + (128 - z) sum_d q - z sum_d k + D z^2,
// every term an exact integer; the sum is taken in wrapping 32-bit arithmetic, which gives the exact result because
// the result lies in int32 (|.| <= 65025 D, D <= kMaxAttentionHeadDim). Every other path runs the portable loop,
// int16 differences (q - z)(k - z) summed in int32 (the compiler vectorises it per path). Both are exact, so every
// path gives the same acc.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/code_flip.h"
#include "common/int16_dot.h"
#include "common/simd.h"
#include "fqvit_ops/lis_attention.h"
#include "fqvit_ops/lis_matmul.h"
#include "fqvit_ops/log_int_softmax.h"
#include "fqvit_ops/requantize.h"

namespace fqvit {

std::string lis_attention_check(const LisAttentionParams& p) {
  if (p.batch < 0 || p.tokens < 0 || p.head_dim < 0) return "negative shape";
  if (p.heads < 1 || p.heads > kMaxAttentionHeads) {
    return "heads = " + std::to_string(p.heads) + " must lie in 1.." + std::to_string(kMaxAttentionHeads);
  }
  if (p.head_dim > kMaxAttentionHeadDim) {
    return "D = " + std::to_string(p.head_dim) + " exceeds " + std::to_string(kMaxAttentionHeadDim) +
           " (the int32 accumulator of q k^T could overflow)";
  }
  if (p.tokens > kMaxAttentionTokens) {
    return "N = " + std::to_string(p.tokens) + " tokens exceeds " + std::to_string(kMaxAttentionTokens);
  }
  if (p.lis_multiplier < 0 || p.lis_multiplier > kMaxLisMultiplier) {
    return "lis_multiplier must be in 0.." + std::to_string(kMaxLisMultiplier);
  }
  if (std::string e = lis_bits_check(p.bits); !e.empty()) return e;
  const int32_t lo = code_lo(p.code), hi = code_hi(p.code);
  for (int32_t zp : {p.qkv_zero_point, p.logits_zero_point, p.y_zero_point}) {
    if (zp < lo || zp > hi) return std::string("zero points must be ") + code_type_name(p.code) + " values";
  }
  return {};
}

namespace {

// One item's buffers, reused by a thread from item to item (sizes grow to the largest seen).
struct Scratch {
  std::vector<uint8_t> q;      // rows x dp: the block's q (uint8 codes), zero-padded to dp
  std::vector<int8_t> kp;      // VNNI: k' = k - 128 packed as [dp / 4][np][4]; portable: unused
  std::vector<int16_t> q16;    // portable: rows x dp, q - z
  std::vector<int16_t> k16;    // portable: N x dp, k - z
  std::vector<int32_t> row;    // VNNI: per query row, (128 - z) sum_d q
  std::vector<int32_t> col;    // VNNI: per key (np of them), D z^2 - z sum_d k
  std::vector<int32_t> acc;    // portable: rows x N, q k^T, exact
  std::vector<uint8_t> krow;   // one key, zero-padded to dp
  std::vector<uint8_t> v;      // N x D: v of (b, h), uint8 codes
  std::vector<uint8_t> logits; // rows x N
  std::vector<uint8_t> codes;  // rows x N
  std::vector<uint8_t> out;    // rows x D

  template <typename V>
  static V* sized(std::vector<V>& buf, int64_t n) {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
    return buf.data();
  }
};

// Where item `item`'s head and rows lie in QKV [B, N, 3, heads, D].
struct Item {
  int64_t b, h, r0, rows;
};

// A head's query rows as equal blocks of at most kLisAttentionBlockRows rows (common.h), so that no item is a sliver.
int64_t blocks_per_head(const LisAttentionParams& p) {
  return (p.tokens + kLisAttentionBlockRows - 1) / kLisAttentionBlockRows;
}

Item item_at(const LisAttentionParams& p, int64_t item) {
  const int64_t blocks = blocks_per_head(p), rows = equal_block_rows(p.tokens, kLisAttentionBlockRows);
  Item it;
  it.r0 = (item % blocks) * rows;
  it.rows = std::min(rows, p.tokens - it.r0);
  it.h = (item / blocks) % p.heads;
  it.b = item / blocks / p.heads;
  return it;
}

// Whether step 2 runs the VNNI kernel on path `isa` (else the portable loop).
bool use_vnni(Isa isa) { return FQVIT_HAS_X86 && isa == Isa::kAvx512; }

// q and k rows padded to a multiple of 16 codes (vpdpbusd takes 4 at a time, the int16 loop's vectors 16; the padding
// is zero).
int64_t padded_dim(const LisAttentionParams& p) { return std::max<int64_t>((p.head_dim + 15) / 16 * 16, 16); }

// Keys padded to a multiple of 32 (the VNNI tile's width; padded keys are zero and their results dropped).
int64_t padded_keys(const LisAttentionParams& p) { return (p.tokens + 31) / 32 * 32; }

// Copies `count` codes of part `part` (0 q, 1 k, 2 v) of head h, tokens t0.., into dst (row stride dst_stride) as
// uint8 codes: the bytes themselves for uint8, flipped for int8.
template <typename T>
void gather(const T* qkv, const LisAttentionParams& p, int64_t b, int64_t h, int part, int64_t t0, int64_t count,
            uint8_t* dst, int64_t dst_stride) {
  const int64_t width = 3 * p.heads * p.head_dim;
  const T* src = qkv + (b * p.tokens + t0) * width + (part * p.heads + h) * p.head_dim;
  for (int64_t t = 0; t < count; ++t) {
    if (std::is_same<T, int8_t>::value) {
      flip_codes(src + t * width, dst + t * dst_stride, p.head_dim);
    } else {
      std::memcpy(dst + t * dst_stride, src + t * width, static_cast<size_t>(p.head_dim));
    }
  }
}

// --- q k^T, portable: acc[r, j] = sum_d q16[r, d] * k16[j, d], common/int16_dot.h's tiles ---------------------------
// Exact: |q - z|, |k - z| <= 255, products below 65025, D <= kMaxAttentionHeadDim keeps every sum inside int32.
void qk_portable_scalar(const int16_t* q16, const int16_t* k16, int32_t* acc, int64_t rows, int64_t n, int64_t dp) {
  int16_dot_rows(q16, k16, acc, rows, n, dp, n);
}

#if FQVIT_HAS_X86
FQVIT_TARGET_AVX2 void qk_portable_avx2(const int16_t* q16, const int16_t* k16, int32_t* acc, int64_t rows,
                                        int64_t n, int64_t dp) {
  int16_dot_rows(q16, k16, acc, rows, n, dp, n);
}
#endif

// The portable q k^T for path `isa` (the AVX2 copy on the AVX2 path, the scalar one elsewhere).
void qk_portable(const int16_t* q16, const int16_t* k16, int32_t* acc, int64_t rows, int64_t n, int64_t dp, Isa isa) {
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx2) return qk_portable_avx2(q16, k16, acc, rows, n, dp);
#endif
  (void)isa;
  qk_portable_scalar(q16, k16, acc, rows, n, dp);
}

#if FQVIT_HAS_X86
// --- q k^T and the logits, AVX-512 VNNI: acc[r, j] = col[j] + sum_d q[r, d] k'[j, d] + row[r], R rows x 32 keys
// per tile (the accumulators start at col), then step 3 on the tile's registers: Requantize's AVX-512 spelling with
// the one multiplier and bias 0 (requantize_u8_x16 without a bias, common/simd.h), so the int32 sums never reach
// memory.
// kp holds k' as [g][j][4] (g = d / 4), so one 64-byte load is 16 keys x 4 values of d and one broadcast 32-bit word
// is 4 values of d of one query row: vpdpbusd adds the 4 products into each key's lane. row[r] = (128 - z) sum_d q
// and col[j] = D z^2 - z sum_d k are the correction terms (see the top of the file); the additions wrap, the result
// is exact. Keys past N are zero in kp and not stored.
struct LogitsEpilogue {
  __m512 multiplier, y_scale;
  __m512i y_zero_point;
};

template <int R>
FQVIT_TARGET_AVX512 inline void qk_vnni_tile(const uint8_t* q, int64_t dp, const int8_t* kp, int64_t np, int64_t j,
                                             int64_t n, const int32_t* row, const int32_t* col,
                                             const LogitsEpilogue& e, uint8_t* logits) {
  const __m512i col0 = _mm512_loadu_si512(col + j), col1 = _mm512_loadu_si512(col + j + 16);
  __m512i c[R][2];
  for (int a = 0; a < R; ++a) {
    c[a][0] = col0;
    c[a][1] = col1;
  }
  for (int64_t g = 0; g < dp / 4; ++g) {
    const int8_t* kg = kp + (g * np + j) * 4;
    const __m512i b0 = _mm512_loadu_si512(kg), b1 = _mm512_loadu_si512(kg + 64);
    for (int a = 0; a < R; ++a) {
      int32_t word;
      std::memcpy(&word, q + a * dp + g * 4, 4);
      const __m512i qa = _mm512_set1_epi32(word);
      c[a][0] = _mm512_dpbusd_epi32(c[a][0], qa, b0);
      c[a][1] = _mm512_dpbusd_epi32(c[a][1], qa, b1);
    }
  }
  const __mmask16 k0 = j + 16 <= n ? 0xFFFF : static_cast<__mmask16>((1u << std::max<int64_t>(n - j, 0)) - 1u);
  const __mmask16 k1 = j + 32 <= n ? 0xFFFF : static_cast<__mmask16>((1u << std::max<int64_t>(n - j - 16, 0)) - 1u);
  for (int a = 0; a < R; ++a) {
    const __m512i r = _mm512_set1_epi32(row[a]);
    for (int h = 0; h < 2; ++h) {
      _mm512_mask_cvtepi32_storeu_epi8(logits + a * n + j + 16 * h, h ? k1 : k0,
                                       requantize_u8_x16(_mm512_add_epi32(c[a][h], r), e.multiplier, e.y_scale,
                                                         e.y_zero_point));
    }
  }
}

// Steps 2-3 on the VNNI path: logits (rows x N, uint8) of the rows of q; rq as requantize_cpu would take it.
FQVIT_TARGET_AVX512 void qk_logits_vnni(const uint8_t* q, int64_t rows, int64_t dp, const int8_t* kp, int64_t np,
                                        int64_t n, const int32_t* row, const int32_t* col, const RequantizeParams& rq,
                                        float multiplier, uint8_t* logits) {
  const LogitsEpilogue e{_mm512_set1_ps(multiplier), _mm512_set1_ps(rq.y_scale), _mm512_set1_epi32(rq.y_zero_point)};
  for (int64_t j = 0; j < np; j += 32) {
    int64_t r = 0;
    for (; r + 8 <= rows; r += 8) qk_vnni_tile<8>(q + r * dp, dp, kp, np, j, n, row + r, col, e, logits + r * n);
    for (; r + 4 <= rows; r += 4) qk_vnni_tile<4>(q + r * dp, dp, kp, np, j, n, row + r, col, e, logits + r * n);
    for (; r + 2 <= rows; r += 2) qk_vnni_tile<2>(q + r * dp, dp, kp, np, j, n, row + r, col, e, logits + r * n);
    for (; r < rows; ++r) qk_vnni_tile<1>(q + r * dp, dp, kp, np, j, n, row + r, col, e, logits + r * n);
  }
}
#endif

#if FQVIT_HAS_X86
// VNNI key packing of one key (uint8 codes krow, zero-padded to dp): its 4-byte words k'[4g .. 4g + 3] = k - 128 to
// word g * np + j of kp; returns sum_d k.
FQVIT_TARGET_AVX512 uint32_t pack_key_vnni(const uint8_t* krow, int64_t dp, int64_t np, int64_t j, int8_t* kp) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i sum = _mm512_setzero_si512();
  alignas(64) uint32_t words[16];
  for (int64_t e = 0; e < dp; e += 64) {
    const int64_t left = dp - e;
    const __mmask64 k = left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
    const __m512i x = _mm512_maskz_loadu_epi8(k, krow + e);
    sum = _mm512_add_epi64(sum, _mm512_sad_epu8(x, _mm512_setzero_si512()));
    _mm512_store_si512(words, _mm512_xor_si512(x, flip));
    for (int64_t g = 0; g < std::min<int64_t>(16, left / 4); ++g) {
      std::memcpy(kp + ((e / 4 + g) * np + j) * 4, &words[g], 4);
    }
  }
  return static_cast<uint32_t>(_mm512_reduce_add_epi64(sum));
}
#endif

// The head's keys for step 2, packed once per head (b, h) and reused by the items of that head in one call:
// VNNI: k' = k - 128 as [dp / 4][np][4] and sum_d k per key; portable: k - z as int16 rows of dp.
template <typename T>
void pack_keys(const T* qkv, const LisAttentionParams& p, int64_t b, int64_t h, int32_t z, Scratch& s, Isa isa) {
  const int64_t n = p.tokens, d = p.head_dim, dp = padded_dim(p);
  uint8_t* krow = Scratch::sized(s.krow, dp);
  std::memset(krow, 0, static_cast<size_t>(dp));
#if FQVIT_HAS_X86
  if (use_vnni(isa)) {
    const int64_t np = padded_keys(p);
    int8_t* kp = Scratch::sized(s.kp, dp / 4 * np * 4);
    int32_t* col = Scratch::sized(s.col, np);
    const uint32_t dz2 = static_cast<uint32_t>(d) * static_cast<uint32_t>(z * z);
    for (int64_t j = 0; j < n; ++j) {
      gather(qkv, p, b, h, 1, j, 1, krow, dp);  // bytes d .. dp stay zero
      const uint32_t sum = pack_key_vnni(krow, dp, np, j, kp);
      col[j] = static_cast<int32_t>(dz2 - static_cast<uint32_t>(z) * sum);
    }
    // Keys past N (up to np): k' = 0 and no correction, so their results are 0 (and dropped).
    for (int64_t g = 0; g < dp / 4; ++g) std::memset(kp + (g * np + n) * 4, 0, static_cast<size_t>((np - n) * 4));
    for (int64_t j = n; j < np; ++j) col[j] = 0;
    return;
  }
#endif
  int16_t* k16 = Scratch::sized(s.k16, n * dp);
  for (int64_t j = 0; j < n; ++j) {
    gather(qkv, p, b, h, 1, j, 1, krow, dp);
    for (int64_t e = 0; e < dp; ++e) k16[j * dp + e] = static_cast<int16_t>(e < d ? krow[e] - z : 0);
  }
}

// Steps 2-3 of an item: the logits (rows x N, uint8) of the item's query rows against the keys pack_keys left in s:
// acc (exact) then Requantize with the one multiplier qk_multiplier and bias 0, rq its parameters. The VNNI path
// requantizes on the tile's registers; the portable one writes acc, then requantize_cpu.
template <typename T>
void qk_logits(const T* qkv, const LisAttentionParams& p, const Item& it, int32_t z, Scratch& s,
               const RequantizeParams& rq, uint8_t* logits, Isa isa) {
  const float zero_bias = 0.0f;
  const int64_t n = p.tokens, d = p.head_dim, dp = padded_dim(p);
  uint8_t* q = Scratch::sized(s.q, it.rows * dp);
  std::memset(q, 0, static_cast<size_t>(it.rows * dp));
  gather(qkv, p, it.b, it.h, 0, it.r0, it.rows, q, dp);
#if FQVIT_HAS_X86
  if (use_vnni(isa)) {
    int32_t* row = Scratch::sized(s.row, it.rows);
    for (int64_t r = 0; r < it.rows; ++r) {
      int32_t sum = 0;
      for (int64_t e = 0; e < d; ++e) sum += q[r * dp + e];
      row[r] = static_cast<int32_t>(static_cast<uint32_t>(128 - z) * static_cast<uint32_t>(sum));
    }
    qk_logits_vnni(q, it.rows, dp, s.kp.data(), padded_keys(p), n, row, s.col.data(), rq, p.qk_multiplier, logits);
    return;
  }
#endif
  int16_t* q16 = Scratch::sized(s.q16, it.rows * dp);
  for (int64_t r = 0; r < it.rows; ++r) {
    for (int64_t e = 0; e < dp; ++e) q16[r * dp + e] = static_cast<int16_t>(e < d ? q[r * dp + e] - z : 0);
  }
  int32_t* acc = Scratch::sized(s.acc, it.rows * n);
  qk_portable(q16, s.k16.data(), acc, it.rows, n, dp, isa);
  requantize_cpu(acc, &p.qk_multiplier, &zero_bias, logits, rq, 0, rq.numel, isa);
}

template <typename T>
void run_items(const T* qkv, T* y, const LisAttentionParams& p, int64_t item_begin, int64_t item_end, Isa isa) {
  const bool int8 = std::is_same<T, int8_t>::value;
  const int32_t off = int8 ? kCodeOffset : 0;  // the uint8 body's zero points
  const int32_t z = p.qkv_zero_point + off;
  const int64_t n = p.tokens, d = p.head_dim;
  thread_local Scratch s;
  // LISMatMul's buffers, and v as it packed it: v_key counts the heads this thread gathered, so a key names one v.
  thread_local LisMatMulScratch mm_scratch;
  thread_local int64_t v_key = 0;
  int64_t packed = -1;  // the head (b * heads + h) whose keys and values s holds in this call
  for (int64_t item = item_begin; item < item_end; ++item) {
    const Item it = item_at(p, item);
    uint8_t* v = Scratch::sized(s.v, n * d);
    if (it.b * p.heads + it.h != packed) {
      pack_keys(qkv, p, it.b, it.h, z, s, isa);
      gather(qkv, p, it.b, it.h, 2, 0, n, v, d);
      packed = it.b * p.heads + it.h;
      ++v_key;
    }
    // Steps 2-3: q k^T, then Requantize (one multiplier, bias 0) into uint8 logits.
    RequantizeParams rq;
    rq.numel = it.rows * n;
    rq.n = n;
    rq.multiplier_size = 1;
    rq.bias_size = 1;
    rq.y_scale = p.logits_scale;
    rq.y_zero_point = p.logits_zero_point + off;
    rq.code = CodeType::kUint8;
    uint8_t* logits = Scratch::sized(s.logits, it.rows * n);
    qk_logits(qkv, p, it, z, s, rq, logits, isa);
    // Step 4: LogIntSoftmax, no mask.
    LisSoftmaxParams lp;
    lp.rows = it.rows;
    lp.n = n;
    lp.multiplier = p.lis_multiplier;
    lp.bits = p.bits;
    uint8_t* codes = Scratch::sized(s.codes, it.rows * n);
    log_int_softmax_cpu(logits, MaskLayout{}, codes, lp, 0, it.rows, isa);
    // Step 5: LISMatMul of the block's rows against v of (b, h).
    LisMatMulParams mp;
    mp.batch = 1;
    mp.m = it.rows;
    mp.n = n;
    mp.d = d;
    mp.v_scale = p.qkv_scale;
    mp.v_zero_point = z;
    mp.y_scale = p.y_scale;
    mp.y_zero_point = p.y_zero_point + off;
    mp.bits = p.bits;
    mp.code = CodeType::kUint8;
    uint8_t* out = Scratch::sized(s.out, it.rows * d);
    lis_matmul_cpu(codes, v, out, mp, 0, lis_matmul_cpu_items(mp), isa, mm_scratch, v_key);
    // Step 6: the rows into Y [B, N, heads * D].
    for (int64_t r = 0; r < it.rows; ++r) {
      uint8_t* dst = reinterpret_cast<uint8_t*>(y + ((it.b * n + it.r0 + r) * p.heads + it.h) * d);
      if (int8) {
        flip_codes(out + r * d, dst, d);
      } else {
        std::memcpy(dst, out + r * d, static_cast<size_t>(d));
      }
    }
  }
}

}  // namespace

int64_t lis_attention_cpu_items(const LisAttentionParams& p) {
  if (p.batch <= 0 || p.tokens <= 0 || p.head_dim <= 0) return 0;
  return p.batch * p.heads * blocks_per_head(p);
}

void lis_attention_cpu(const uint8_t* qkv, uint8_t* y, const LisAttentionParams& p, int64_t item_begin,
                       int64_t item_end, Isa isa) {
  run_items(qkv, y, p, item_begin, item_end, isa);
}

void lis_attention_cpu(const int8_t* qkv, int8_t* y, const LisAttentionParams& p, int64_t item_begin,
                       int64_t item_end, Isa isa) {
  run_items(qkv, y, p, item_begin, item_end, isa);
}

std::string lis_attention_gemm_name(Isa isa) {
  if (use_vnni(isa)) return "VNNI u8 x s8 (vpdpbusd)";
  return std::string("portable int16 loop (") + isa_name(isa) + ")";
}

}  // namespace fqvit
