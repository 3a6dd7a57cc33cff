// QLinear's AMX path (docs/ops.md Sec. 5, QLinear): acc = sum_k x W in AMX int8 tiles, then the Requantize epilogue.
//
// Why not oneDNN here: on an AMX Xeon, oneDNN 3.2's matmul (brg:avx512_core_amx, the newest oneDNN on PyPI without
// a SYCL runtime) ran deit_base's four linear layers at 96-101 rows per thread at 0.6-0.9 int8 TMAC/s per core,
// 25-30% of what the tiles sustain on the same machine (about 3 TMAC/s with operands in L1), whatever its epilogue;
// the brgemm ukernel API, which would leave the blocking and the epilogue to us, is not exported by any PyPI build.
// oneDNN stays QLinear's GEMM on AVX-512 VNNI CPUs without AMX (qlinear_cpu.cc).
//
// Exact: tdpbusd multiplies unsigned codes by signed weights and adds four products at a time into each int32
// accumulator, wrapping (no saturation); x_zero_point's term x_zero_point * sum_k W[k, n] is subtracted in wrapping
// int32 too. The true sum_k (x - zp) W lies in int32 (K <= kMaxQlinearK, docs/ops.md), so the wrapped result is that
// sum exactly, whatever the order. The epilogue is docs/ops.md's Requantize in common/simd.h's AVX-512 spelling:
// f32(acc) * m + b, then the quotient by y_scale through its reciprocal with quantize_u8_x16's near-tie check (a lane
// near a half-integer, or a NaN, takes the division), which gives the codes of src/requantize's spans (they divide)
// for every input; so every path of QLinear gives the same bits.
//
// Blocking, per call (on one thread: a block of rows against W's columns 32 * pair_begin .. 32 * pair_end): rows in
// chunks of about kChunkBytes of A; per chunk, W's columns in pairs of 16-column blocks (two B tiles); for each pair
// the chunk's rows in pairs of 16-row tiles (two A tiles), four C tiles of 16 x 16 accumulators over K in steps of
// 64; the four C tiles are stored to a 32 x 32 int32 block, and its epilogue runs a few rows per K step of the next
// block (all of it before that block's tiles are stored), so the vector units turn it into codes while the tiles
// compute. The pair's B tiles (2 x K/64 KiB) are reused by every row pair of the chunk; the next pair's are prefetched
// during the current one. X's rows are read in place when K is a multiple of 64, else copied with K padded; the rows
// of a partial last tile are copied into zero-padded rows (the padding rows' results are not stored). Each call loads
// its tile configuration and releases the tiles when done.
#include "qlinear/qlinear_amx.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "common/simd.h"
#include "fqvit_ops/common.h"

// The tile intrinsics: x86-64, GCC 11 or clang 12 and later.
#if FQVIT_HAS_X86 && defined(__x86_64__) && (defined(__clang__) ? __clang_major__ >= 12 : __GNUC__ >= 11)
#define FQVIT_HAS_AMX 1
#else
#define FQVIT_HAS_AMX 0
#endif

#if FQVIT_HAS_AMX
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define FQVIT_TARGET_AMX \
  __attribute__((target("avx2,bmi,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")))
#endif

namespace fqvit {

namespace {

constexpr int64_t kTileRows = 16;   // rows of an A or C tile; K quads of a B tile
constexpr int64_t kTileBytes = 64;  // bytes per tile row: 64 codes of K (A), 16 columns x 4 (B)
constexpr int64_t kBTile = kTileRows * kTileBytes;
constexpr int64_t kChunkBytes = int64_t{512} << 10;  // A rows per chunk: well inside a 2 MiB L2

#if FQVIT_HAS_AMX
bool cpu_and_os_have_amx() {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  const bool tile = (d >> 24) & 1u, int8 = (d >> 25) & 1u;
  __cpuid(1, a, b, c, d);
  const bool osxsave = (c >> 27) & 1u;
  if (!tile || !int8 || !osxsave) return false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3u) != 3u) return false;  // XTILECFG and XTILEDATA state enabled by the OS
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#endif

}  // namespace

bool amx_usable() {
#if FQVIT_HAS_AMX
  static const bool usable = cpu_best_isa() == Isa::kAvx512 && cpu_and_os_have_amx();
  return usable;
#else
  return false;
#endif
}

bool amx_enabled() { return isa_requested_by_env() < 0 && amx_usable(); }

AmxWeights::AmxWeights(const int8_t* w, int64_t k, int64_t n)
    : k_(k), n_(n), kb_((k + kTileBytes - 1) / kTileBytes), nb_((n + 31) / 32 * 2) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(nb_ * kb_, 1) * kBTile);
  b_ = static_cast<int8_t*>(::operator new(bytes, std::align_val_t(64)));
  std::memset(b_, 0, bytes);
  for (int64_t kk = 0; kk < k; ++kk) {
    const int64_t kb = kk / kTileBytes, r = (kk % kTileBytes) / 4, e = kk % 4;
    for (int64_t j = 0; j < n; ++j) {
      b_[((j / 16) * kb_ + kb) * kBTile + r * kTileBytes + (j % 16) * 4 + e] = w[kk * n + j];
    }
  }
}

AmxWeights::~AmxWeights() { ::operator delete(b_, std::align_val_t(64)); }

#if FQVIT_HAS_AMX
namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The epilogue of one 32 x 32 block of accumulators c (row stride 32), for rows [0, rows) and columns col .. col + 31
// of Y (those below N), taken a few rows at a time (run_tiles spreads them over the next block's K steps, so the
// vector units turn one block into codes while the tiles compute the next).
template <bool Flip>
struct Epilogue {
  const int32_t* c = nullptr;
  uint8_t* y = nullptr;  // Y's row 0 of the block, column 0
  int64_t rows = 0, done = 0, col = 0, n = 0;
  __mmask16 k[2];
  __m512i off[2];
  __m512 m[2], b[2];

  FQVIT_TARGET_AMX void start(const int32_t* c_, int64_t rows_, int64_t col_, int64_t n_, const int32_t* term,
                              const float* mult, const float* bias, uint8_t* y_) {
    c = c_, rows = rows_, done = 0, col = col_, n = n_, y = y_;
    for (int h = 0; h < 2; ++h) {
      const int64_t c0 = col + 16 * h, left = n - c0;
      k[h] = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                        : static_cast<__mmask16>(left > 0 ? (1u << left) - 1u : 0u);
      off[h] = _mm512_maskz_loadu_epi32(k[h], term + c0);
      m[h] = _mm512_maskz_loadu_ps(k[h], mult + c0);
      b[h] = _mm512_maskz_loadu_ps(k[h], bias + c0);
    }
  }

  // Rows done .. done + count (at most the rest).
  FQVIT_TARGET_AMX inline void step(int64_t count, __m512 ys, __m512 yrcp, __m512i yzp) {
    const int64_t end = std::min(rows, done + count);
    for (; done < end; ++done) {
      for (int h = 0; h < 2; ++h) {
        if (k[h] == 0) break;
        const __m512i acc = _mm512_sub_epi32(_mm512_load_si512(c + done * 32 + 16 * h), off[h]);
        const __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), m[h]), b[h]);
        __m512i q = quantize_u8_x16(t, ys, yrcp, yzp);
        if (Flip) q = _mm512_xor_si512(q, _mm512_set1_epi32(0x80));
        _mm512_mask_cvtepi32_storeu_epi8(y + done * n + col + 16 * h, k[h], q);
      }
    }
  }
};

template <bool Flip>
FQVIT_TARGET_AMX void run_tiles(const uint8_t* x, int64_t rows, int64_t k, int64_t n, int64_t kb, int64_t j_begin,
                                int64_t j_end, const int8_t* bt, const int32_t* term, const float* m, const float* b,
                                const RequantizeParams& rq, uint8_t* y) {
  // A's rows: in place (stride K) where K is a multiple of 64, else copied with stride kb * 64; the rows of the last,
  // partial tile always copied into zero-padded rows.
  const int64_t tiles = (rows + kTileRows - 1) / kTileRows, whole = rows / kTileRows;
  const bool in_place = k % kTileBytes == 0;
  const int64_t lda = in_place ? k : kb * kTileBytes;
  thread_local std::vector<uint8_t> copy;
  const int64_t copied_from = in_place ? whole * kTileRows : 0;  // the first row read from the copy
  if (copied_from < tiles * kTileRows) {
    const int64_t copy_rows = tiles * kTileRows - copied_from;
    if (copy.size() < static_cast<size_t>(copy_rows * lda)) copy.resize(static_cast<size_t>(copy_rows * lda));
    std::memset(copy.data(), 0, static_cast<size_t>(copy_rows * lda));
    for (int64_t r = copied_from; r < rows; ++r) {
      std::memcpy(copy.data() + (r - copied_from) * lda, x + r * k, static_cast<size_t>(k));
    }
  }
  auto tile_rows = [&](int64_t t) {  // A tile t's first row
    const int64_t r = t * kTileRows;
    return r >= copied_from ? copy.data() + (r - copied_from) * lda : x + r * lda;
  };

  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.rows[i] = kTileRows;
    cfg.colsb[i] = kTileBytes;
  }
  _tile_loadconfig(&cfg);
  alignas(64) int32_t cbuf[32 * 32];  // one block's accumulators, until its epilogue (pending) has run
  const __m512 ys = _mm512_set1_ps(rq.y_scale), yrcp = _mm512_set1_ps(quantize_reciprocal(rq.y_scale));
  const __m512i yzp = _mm512_set1_epi32(rq.y_zero_point);
  Epilogue<Flip> pending;  // the previous block's, finished during the current block's K steps
  const int64_t per_step = (32 + kb - 1) / std::max<int64_t>(kb, 1);
  const int64_t panel = kb * kBTile;  // one column block's B tiles
  // Rows in chunks whose A rows stay in L2 (about kChunkBytes), each chunk against the call's columns.
  const int64_t chunk_tiles = std::max<int64_t>(2, kChunkBytes / std::max<int64_t>(lda, 1) / 32 * 2);
  for (int64_t t_begin = 0; t_begin < tiles; t_begin += chunk_tiles) {
    const int64_t t_end = std::min(tiles, t_begin + chunk_tiles);
    for (int64_t j = j_begin; j < j_end; j += 2) {
      const int8_t* b0 = bt + j * panel;
      const int8_t* b1 = b0 + panel;
      // The next pair's B tiles, a few lines per K step.
      const char* next = reinterpret_cast<const char*>(b0 + 2 * panel);
      const int64_t next_lines = j + 2 < j_end ? 2 * panel / 64 : 0;
      int64_t fetched = 0;
      for (int64_t t = t_begin; t < t_end; t += 2) {
        const bool two = t + 1 < t_end;
        const uint8_t* a0 = tile_rows(t);
        const uint8_t* a1 = two ? tile_rows(t + 1) : nullptr;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t s = 0; s < kb; ++s) {
          _tile_loadd(4, a0 + s * kTileBytes, lda);
          _tile_loadd(6, b0 + s * kBTile, kTileBytes);
          _tile_loadd(7, b1 + s * kBTile, kTileBytes);
          _tile_dpbusd(0, 4, 6);
          _tile_dpbusd(1, 4, 7);
          if (two) {
            _tile_loadd(5, a1 + s * kTileBytes, lda);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
          }
          for (int f = 0; f < 4 && fetched < next_lines; ++f, ++fetched) {
            _mm_prefetch(next + fetched * 64, _MM_HINT_T0);
          }
          pending.step(per_step, ys, yrcp, yzp);
        }
        pending.step(32, ys, yrcp, yzp);  // none left (per_step * kb >= 32); cbuf is free for this block
        _tile_stored(0, cbuf, 32 * 4);
        _tile_stored(1, cbuf + 16, 32 * 4);
        if (two) {
          _tile_stored(2, cbuf + 16 * 32, 32 * 4);
          _tile_stored(3, cbuf + 16 * 32 + 16, 32 * 4);
        }
        const int64_t r0 = t * kTileRows;
        pending.start(cbuf, std::min<int64_t>(rows - r0, two ? 32 : 16), j * 16, n, term, m, b, y + r0 * n);
      }
    }
  }
  pending.step(32, ys, yrcp, yzp);
  _tile_release();
}

}  // namespace
#endif

int64_t AmxWeights::column_pairs() const { return nb_ / 2; }

void AmxWeights::run(const uint8_t* x, int64_t rows, const int32_t* term, const float* m, const float* b,
                     const RequantizeParams& rq, bool flip, uint8_t* y, int64_t pair_begin, int64_t pair_end) const {
  pair_end = std::min(pair_end < 0 ? nb_ / 2 : pair_end, nb_ / 2);
  if (rows <= 0 || n_ <= 0 || pair_begin >= pair_end) return;
  const int64_t j_begin = 2 * pair_begin, j_end = 2 * pair_end;
#if FQVIT_HAS_AMX
  if (flip) {
    run_tiles<true>(x, rows, k_, n_, kb_, j_begin, j_end, b_, term, m, b, rq, y);
  } else {
    run_tiles<false>(x, rows, k_, n_, kb_, j_begin, j_end, b_, term, m, b, rq, y);
  }
#else
  (void)x, (void)term, (void)m, (void)b, (void)rq, (void)flip, (void)y, (void)j_begin, (void)j_end;
  std::abort();  // amx_usable() is false: no caller
#endif
}

}  // namespace fqvit
