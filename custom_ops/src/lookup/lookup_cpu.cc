// com.fqvit::Lookup on the CPU (docs/ops.md Sec. 1, GELU table): Y[i] = table[X[i]] with a 256-entry uint8 table.
//
// Purely integer, so every path gives the same bytes by construction:
//  * scalar: one table load per byte;
//  * AVX2: 32 bytes at a time, 16 vpshufb lookups (one per high nibble, indexed by the low nibble), each blended in
//    where the high nibble matches;
//  * AVX-512: when the CPU also has AVX-512 VBMI (Ice Lake, Zen 4 and later), 64 bytes at a time: the table sits in
//    four zmm registers and two vpermt2b look up the low 7 bits in entries 0..127 and 128..255, bit 7 picks one
//    (masked loads/stores for the tail). A CPU with the AVX-512 path but without VBMI (Skylake-SP, Cascade Lake)
//    runs the AVX2 body.
#include "common/simd.h"
#include "fqvit_ops/lookup.h"

#if FQVIT_HAS_X86
#define FQVIT_TARGET_AVX512_VBMI \
  __attribute__((target("avx2,bmi,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")))
#endif

namespace fqvit {

std::string lookup_check(const LookupParams& p) {
  if (p.table_size != kLookupTableSize) {
    return "table must have exactly " + std::to_string(kLookupTableSize) + " elements (one per uint8 code), got " +
           std::to_string(p.table_size);
  }
  if (p.n < 0) return "negative shape";
  return {};
}

namespace {

// x and y may be one buffer (the op's MayInplace), so only the table is __restrict.
void lookup_scalar(const uint8_t* x, const uint8_t* __restrict table, uint8_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = table[x[i]];
}

#if FQVIT_HAS_X86
bool cpu_has_vbmi() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") != 0;
  }();
  return has;
}

// --- AVX2 ------------------------------------------------------------------------------------------------------------

FQVIT_TARGET_AVX2 void lookup_avx2(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n) {
  __m256i tab[16];  // tab[h] = entries 16h .. 16h + 15 in both 128-bit lanes (vpshufb looks up within a lane)
  for (int h = 0; h < 16; ++h) {
    tab[h] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * h)));
  }
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i lo = _mm256_and_si256(v, nibble);                         // bit 7 clear: a real lookup
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
    __m256i r = _mm256_shuffle_epi8(tab[0], lo);
    for (int h = 1; h < 16; ++h) {
      const __m256i hit = _mm256_cmpeq_epi8(hi, _mm256_set1_epi8(static_cast<char>(h)));
      r = _mm256_blendv_epi8(r, _mm256_shuffle_epi8(tab[h], lo), hit);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), r);
  }
  for (; i < n; ++i) y[i] = table[x[i]];
}

// --- AVX-512 VBMI ----------------------------------------------------------------------------------------------------

FQVIT_TARGET_AVX512_VBMI void lookup_avx512_vbmi(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  // 64 codes: entries [v & 127] of 0..127 and of 128..255 (vpermt2b uses the low 7 bits), bit 7 of v picks.
  auto lookup64 = [&](const __m512i v) FQVIT_TARGET_AVX512_VBMI {
    const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, v, t3);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi);
  };
  int64_t i = 0;
  for (; i + 128 <= n; i += 128) {
    const __m512i a = _mm512_loadu_si512(x + i), b = _mm512_loadu_si512(x + i + 64);
    _mm512_storeu_si512(y + i, lookup64(a));
    _mm512_storeu_si512(y + i + 64, lookup64(b));
  }
  for (; i < n; i += 64) {
    const int64_t left = n - i;
    const __mmask64 k = left >= 64 ? ~__mmask64(0) : ((__mmask64(1) << left) - 1);
    _mm512_mask_storeu_epi8(y + i, k, lookup64(_mm512_maskz_loadu_epi8(k, x + i)));
  }
}
#endif  // FQVIT_HAS_X86

}  // namespace

void lookup_cpu(const uint8_t* x, const uint8_t* table, uint8_t* y, const LookupParams& p, int64_t begin, int64_t end,
                Isa isa) {
  if (end > p.n) end = p.n;
  if (begin < 0) begin = 0;
  if (begin >= end) return;
  const int64_t n = end - begin;
  x += begin;
  y += begin;
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx512 && cpu_has_vbmi()) {
    lookup_avx512_vbmi(x, table, y, n);
    return;
  }
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    lookup_avx2(x, table, y, n);
    return;
  }
#endif
  lookup_scalar(x, table, y, n);
}

void lookup_cpu(const int8_t* x, const int8_t* table, int8_t* y, const LookupParams& p, int64_t begin, int64_t end,
                Isa isa) {
  // The index is x's byte and the entries are copied as bytes: the uint8 kernel gives the int8 result as it is.
  lookup_cpu(reinterpret_cast<const uint8_t*>(x), reinterpret_cast<const uint8_t*>(table),
             reinterpret_cast<uint8_t*>(y), p, begin, end, isa);
}

}  // namespace fqvit
