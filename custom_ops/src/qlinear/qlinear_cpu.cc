// com.fqvit::QLinear on the CPU (docs/ops.md Sec. 5, fused ops). On the AVX-512 path of a kernel made with use_amx
// (qlinear.h: AMX usable and not turned off by FQVIT_CPU_ISA), every block is one call of the AMX tile loop of
// qlinear_amx.cc (exact for every input; at batch 1 against a large W, each block all rows against a share of W's
// columns: run_amx). Otherwise one block of rows at a time (all N output channels), by one of two paths:
//
//  * fused (the usual one): one oneDNN int8 matmul per block that reads the codes and writes the codes, its epilogue
//    in oneDNN's attributes and post-ops: x_zero_point as the source zero point, multiplier as the per-channel
//    weight scales, bias, then t / y_scale (binary div), round half to even (eltwise round), + f32(y_zero_point)
//    (binary add) and the saturating conversion to T. The int32 accumulators never leave the kernel's registers.
//    On an AMX Xeon (deit_small, 2 threads) the whole model ran 10% faster at batch 8 than with the int32 path.
//  * int32 (in sub-blocks of kQLinearSubBlockRows rows, each of which takes the fused path where its own rows fit):
//    acc = X_block @ W into the sub-block's int32 accumulators (oneDNN, no zero point), then requantize_cpu
//    of src/requantize (the Requantize op's own spans), which first subtracts x_zero_point * sum_k W[k, n] (wrapping
//    int32: exact, as the result lies in int32). Where oneDNN does not run, acc = (X_block - x_zero_point) @ W by
//    the portable loop.
//
// The fused epilogue is bit-exact, with every step one IEEE float32 operation in the order of docs/ops.md, only
// where all of these hold (checked per call and per block; otherwise the block goes by sub-blocks, as above):
//   (a) multiplier and bias finite, y_scale finite and nonzero: then no step makes a NaN, and an infinite or huge
//       quotient saturates in both (the reference's +-2^30 clamp and oneDNN's saturation give the same code);
//   (b) as in "Which matmul" below, oneDNN runs at all;
//   (c) |x_zero_point * sum_k W[k, n]| <= 2^24 for every channel n, and
//   (d) |sum_k x[r, k] W[k, n]| <= 2^24 for every row r of the block (shown by bounds, see rows_fit).
// Why (c) and (d): oneDNN 3.2's AMX kernels (brg:avx512_core_amx) apply the source zero point as
// f32(sum_k x W) - f32(x_zero_point * sum_k W), two conversions to float32 and a float subtraction, not in int32.
// When both terms are integers of at most 2^24 both conversions are exact and the subtraction rounds the exact
// difference once, to nearest even: exactly f32(acc) of docs/ops.md; beyond that they can round apart
// (kernel_test's "acc beyond 2^24" cases show both). oneDNN's multiplications by the scales, bias additions,
// divisions and rounding were compared bit for bit with the reference (f32 destination, accumulators up to 2^25,
// denormal multipliers): no FMA, no reciprocal.
//
// int8 codes (T = int8_t) are flipped to uint8 (x + 128, and so the zero point) per block before oneDNN: its s8
// source kernels on CPUs without AMX (brg:avx512_core_vnni) add 128 to the source and subtract 128 * sum_k W through
// float32 too, so their int32 results are wrong beyond 2^24 (measured: off by one at |acc| ~ 1.8e7).
//
// Which matmul: oneDNN's u8 x s8 kernels for CPUs without VNNI (its sse41, avx2 and avx512_core paths, gemm:jit or
// brgemm) add two adjacent products of codes and weights into int16 with saturation (vpmaddubsw), so acc is wrong
// wherever such a pair leaves -32768..32767 (all codes 255 against weights of 127 is 64770): not the bit-exact
// result docs/ops.md defines. With VNNI (vpdpbusd adds four products into int32) or AMX (int32 tiles) it is exact.
// So oneDNN runs only when both
//   (a) the call's path is Isa::kAvx512 (fqvit::cpu_best_isa requires AVX-512 VNNI for it; FQVIT_CPU_ISA=avx2 or
//       scalar selects the portable loop), and
//   (b) oneDNN's effective ISA (dnnl::get_effective_cpu_isa, after ONEDNN_MAX_CPU_ISA) is one of the VNNI/AMX ISAs of
//       onednn_int8_exact (a list: an ISA unknown to these headers takes the portable loop), decided once when the
//       kernel is created;
// otherwise acc comes from the portable loop (int16 dot products of x - zp and W's columns, 4 x 4 outputs at a time,
// vectorised by the compiler for the call's path).
//
// Work items: row blocks (qlinear.h, qlinear_blocks). Threads: the caller (the op's glue) spreads the items over
// onnxruntime's intra-op pool. A oneDNN primitive executed by two threads at once runs 2-4x slower than by one
// (measured, oneDNN 3.2 on AMX), so every concurrent call takes its own primitives (with its accumulator block) from
// a pool and returns them after; and oneDNN's OpenMP runtime is held to one thread on the calling thread
// (omp_set_num_threads is per thread), restored afterwards.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/code_flip.h"
#include "common/int16_dot.h"
#include "common/simd.h"
#include "fqvit_ops/qlinear.h"
#include "qlinear/qlinear_amx.h"

#ifdef FQVIT_WITH_ONEDNN
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace fqvit {

std::string qlinear_check(const QLinearParams& p) {
  if (p.m < 0 || p.k < 0 || p.n < 0) return "negative shape";
  if (p.k > kMaxQlinearK) {
    return "K = " + std::to_string(p.k) + " exceeds " + std::to_string(kMaxQlinearK) +
           " (the int32 accumulator could overflow)";
  }
  if (p.x_zero_point < code_lo(p.code) || p.x_zero_point > code_hi(p.code)) {
    return std::string("x_zero_point must be a ") + code_type_name(p.code) + " value";
  }
  return requantize_check(qlinear_epilogue(p, p.m));
}

RequantizeParams qlinear_epilogue(const QLinearParams& p, int64_t rows) {
  RequantizeParams e;
  e.numel = rows * p.n;
  e.n = p.n;
  e.multiplier_size = p.multiplier_size;
  e.bias_size = p.bias_size;
  e.y_scale = p.y_scale;
  e.y_zero_point = p.y_zero_point;
  e.code = p.code;
  return e;
}

int64_t qlinear_blocks(int64_t m, int64_t threads) {
  if (m <= 0) return 0;
  threads = std::max<int64_t>(threads, 1);
  const int64_t tiles = (m + kQLinearRowAlign - 1) / kQLinearRowAlign;
  return std::min(tiles, threads * std::max<int64_t>(1, m / (threads * kQLinearBlockRows)));
}

QLinearRows qlinear_block(int64_t m, int64_t blocks, int64_t i) {
  const int64_t tiles = (m + kQLinearRowAlign - 1) / kQLinearRowAlign;
  const int64_t t0 = tiles * i / blocks, t1 = tiles * (i + 1) / blocks;
  return {t0 * kQLinearRowAlign, std::min(m, t1 * kQLinearRowAlign)};
}

namespace {

// One caller's primitives for blocks of `rows` rows, and its accumulators.
struct Worker {
  int64_t rows = 0;
  std::vector<int32_t> acc;  // rows x N: the int32 path's (made on its first use)
  std::vector<int16_t> x16;  // rows x kp: the portable loop's x - zp (made on its first use)
#ifdef FQVIT_WITH_ONEDNN
  dnnl::stream stream;
  // The fused primitive and the int32 one, each made on the worker's first call that takes it; the descriptors'
  // data handles are set per call. The fused one's run-time arguments point at the fields below.
  bool has_fused = false, has_matmul = false;
  dnnl::matmul fused, matmul;
  dnnl::memory fsrc, fdst, fbias, fscales, fzp, fdiv, fadd;
  dnnl::memory src, dst;
  // Each primitive's execution arguments, made with it: the memories above (and W's packing), whose data handles
  // change per call, so a call builds no argument map.
  std::unordered_map<int, dnnl::memory> fargs, args;
  int32_t x_zero_point = 0;
  float y_scale = 1.0f, y_zero_point = 0.0f;  // the post-ops' divisor and addend (f32(y_zero_point): exact)
#endif
};

// --- the portable matmul: acc = (x - zp) @ W, int32 ----------------------------------------------------------------
// Exact: |x - zp| <= 255 and |w| <= 128, so each product fits int16 (32640) and a pair of them int32, and
// K <= kMaxQlinearK keeps every partial sum inside int32 (docs/ops.md Sec. 5), in any order. common/int16_dot.h's
// tiled dot products, acc[r, j] = sum_k x16[r, k] * wt[j, k]: x16 = x - zp for the block's rows, wt = W transposed
// (int8, widened on the fly), both zero-padded to kp (a multiple of kPortableKAlign).
constexpr int64_t kPortableKAlign = 32;

template <typename X>
inline __attribute__((always_inline)) void portable_matmul(const X* x, int32_t zp, int16_t* x16, const int8_t* wt,
                                                           int32_t* acc, int64_t rows, int64_t k, int64_t kp,
                                                           int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {  // x16's padding (k .. kp) stays zero from the allocation
    for (int64_t i = 0; i < k; ++i) x16[r * kp + i] = static_cast<int16_t>(static_cast<int32_t>(x[r * k + i]) - zp);
  }
  int16_dot_rows(x16, wt, acc, rows, n, kp, n);
}

// One copy per CPU path, compiled for that path's instructions (the scalar one for the baseline ISA, SSE2 on x86).
template <typename X>
void portable_scalar(const X* x, int32_t zp, int16_t* x16, const int8_t* wt, int32_t* acc, int64_t rows, int64_t k,
                     int64_t kp, int64_t n) {
  portable_matmul(x, zp, x16, wt, acc, rows, k, kp, n);
}

#if FQVIT_HAS_X86
template <typename X>
FQVIT_TARGET_AVX2 void portable_avx2(const X* x, int32_t zp, int16_t* x16, const int8_t* wt, int32_t* acc,
                                     int64_t rows, int64_t k, int64_t kp, int64_t n) {
  portable_matmul(x, zp, x16, wt, acc, rows, k, kp, n);
}

template <typename X>
FQVIT_TARGET_AVX512 void portable_avx512(const X* x, int32_t zp, int16_t* x16, const int8_t* wt, int32_t* acc,
                                         int64_t rows, int64_t k, int64_t kp, int64_t n) {
  portable_matmul(x, zp, x16, wt, acc, rows, k, kp, n);
}
#endif

template <typename X>
void portable(const X* x, int32_t zp, int16_t* x16, const int8_t* wt, int32_t* acc, int64_t rows, int64_t k,
              int64_t kp, int64_t n, Isa isa) {
#if FQVIT_HAS_X86
  if (isa == Isa::kAvx512) return portable_avx512(x, zp, x16, wt, acc, rows, k, kp, n);
  if (isa == Isa::kAvx2) return portable_avx2(x, zp, x16, wt, acc, rows, k, kp, n);
#endif
  portable_scalar(x, zp, x16, wt, acc, rows, k, kp, n);
}

#ifdef FQVIT_WITH_ONEDNN
// Holds oneDNN's OpenMP runtime to one thread on this thread while alive (the ICV is per thread), so that a primitive
// neither spawns a team inside an onnxruntime worker nor is created for a thread count it never runs with.
class OneOmpThread {
 public:
  OneOmpThread() : saved_(omp_get_max_threads()) {
    if (saved_ != 1) omp_set_num_threads(1);
  }
  ~OneOmpThread() {
    if (saved_ != 1) omp_set_num_threads(saved_);
  }

 private:
  int saved_;
};

// Whether oneDNN's int8 matmul is exact at its effective ISA `isa`: the ISAs with VNNI (vpdpbusd) or AMX. A list of
// the known good ones rather than a comparison, so that an ISA these headers do not know takes the portable loop.
bool onednn_int8_exact(dnnl::cpu_isa isa) {
  using ci = dnnl::cpu_isa;
  switch (isa) {
    case ci::avx2_vnni:
    case ci::avx2_vnni_2:
    case ci::avx512_core_vnni:
    case ci::avx512_core_bf16:
    case ci::avx512_core_fp16:
    case ci::avx512_core_amx:
    case ci::avx512_core_amx_fp16:
      return true;
    default:
      return false;
  }
}

std::string onednn_isa_name(dnnl::cpu_isa isa) {
  using ci = dnnl::cpu_isa;
  switch (isa) {
    case ci::isa_default: return "default";
    case ci::sse41: return "sse41";
    case ci::avx: return "avx";
    case ci::avx2: return "avx2";
    case ci::avx2_vnni: return "avx2_vnni";
    case ci::avx2_vnni_2: return "avx2_vnni_2";
    case ci::avx512_core: return "avx512_core";
    case ci::avx512_core_vnni: return "avx512_core_vnni";
    case ci::avx512_core_bf16: return "avx512_core_bf16";
    case ci::avx512_core_fp16: return "avx512_core_fp16";
    case ci::avx512_core_amx: return "avx512_core_amx";
    case ci::avx512_core_amx_fp16: return "avx512_core_amx_fp16";
  }
  return "0x" + [](unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%x", v);
    return std::string(buf);
  }(static_cast<unsigned>(isa));
}
#endif

}  // namespace

#if defined(FQVIT_WITH_ONEDNN) && FQVIT_HAS_X86
namespace {

// sum_k |x[k]| of a row of codes (the fused path runs only on the avx512 path: oneDNN's ISA is at least VNNI).
FQVIT_TARGET_AVX512 int64_t abs_sum_avx512(const uint8_t* x, int64_t k) {
  __m512i acc = _mm512_setzero_si512();
  for (int64_t i = 0; i < k; i += 64) {
    const __mmask64 mask = k - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << (k - i)) - 1;
    acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(mask, x + i), _mm512_setzero_si512()));
  }
  return _mm512_reduce_add_epi64(acc);
}

// sum_k x[k]^2 of a row of codes: pairs of squares (<= 2 * 255^2) into int32 lanes, at most K / 32 + 1 per lane
// (< 2^31 for K <= kMaxQlinearK), summed in int64.
FQVIT_TARGET_AVX512 int64_t sq_sum_avx512(const uint8_t* x, int64_t k) {
  __m512i acc = _mm512_setzero_si512();
  for (int64_t i = 0; i < k; i += 32) {
    const __mmask32 mask = k - i >= 32 ? ~__mmask32{0} : (__mmask32{1} << (k - i)) - 1;
    const __m256i bytes = _mm256_maskz_loadu_epi8(mask, x + i);
    const __m512i v = _mm512_cvtepu8_epi16(bytes);
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(v, v));
  }
  const __m512i lo = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(acc));
  const __m512i hi = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(acc, 1));
  return _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi));
}

}  // namespace
#endif

// The AMX path splits W's columns among the blocks instead of X's rows below this many rows per block.
constexpr int64_t kAmxColumnSplitRows = 256;
constexpr int64_t kAmxColumnSplitWeight = int64_t{1} << 20;  // bytes of W

namespace {

// N values from `size` ones (N, or one broadcast): v itself, or `full` filled with v[0] (a per-thread buffer).
inline const float* per_channel(const float* v, int64_t size, int64_t n, std::vector<float>& full) {
  if (size == n) return v;
  full.assign(static_cast<size_t>(n), v[0]);
  return full.data();
}

// Rows of X as uint8 codes: the bytes themselves for uint8, a flipped copy in `flipped` for int8 (x + 128).
template <typename T>
const uint8_t* uint8_rows(const T* x, int64_t count, std::vector<uint8_t>& flipped) {
  const uint8_t* xu = reinterpret_cast<const uint8_t*>(x);
  if (!std::is_same<T, int8_t>::value) return xu;
  flipped.resize(static_cast<size_t>(count));
  flip_codes(xu, flipped.data(), count);
  return flipped.data();
}

}  // namespace

// Integers up to this magnitude are exact in float32.
constexpr int64_t kF32Exact = int64_t{1} << 24;

struct QLinearCpu::Impl {
  int64_t k = 0, n = 0;
  int64_t kp = 0;  // k rounded up to kPortableKAlign
  CodeType code = CodeType::kUint8;
  std::vector<int8_t> wt;       // W transposed, [n, kp], zero-padded: the portable loop's
  std::vector<int32_t> colsum;  // sum_k W[k, n] per output channel
  int64_t w_abs_max = 0;        // max |W[k, n]|
  int64_t w_col_abs_max = 0;    // max over n of sum_k |W[k, n]|
  int64_t w_sq_max = 0;         // max over n of sum_k W[k, n]^2
  std::mutex mutex;
  // What one (uint8) zero point zp gives with W, made by zero_point_terms: term[n] = zp * sum_k W[k, n] (wrapping
  // int32: the int32 path's correction after oneDNN) and fits, (c) of "The fused epilogue is bit-exact":
  // |zp * sum_k W[k, n]| <= 2^24 for every n.
  struct ZeroPointTerms {
    int32_t zp = 0;
    bool fits = false;
    std::vector<int32_t> term;
  };
  std::shared_ptr<const ZeroPointTerms> zp_terms;  // for the last zero point asked (guarded by mutex)
  std::vector<std::unique_ptr<Worker>> idle;  // guarded by mutex
  std::unique_ptr<AmxWeights> amx;            // W packed for AMX tiles (made with use_amx and K > 0), else null
#ifdef FQVIT_WITH_ONEDNN
  bool onednn = false;     // (b) of "Which matmul": oneDNN's effective ISA has VNNI or AMX
  std::string onednn_isa;  // that ISA's name, for gemm_name
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::string impl_name;  // the implementation oneDNN picks for the fused primitive, for gemm_name
  // W packed for oneDNN: [0] the fused primitive's layout (with oneDNN's compensation for the zero point), [1] the
  // int32 one's; each made by the first call that needs it, so that a model whose blocks all take the fused path
  // holds one packed copy of W.
  dnnl::memory weights[2];
  std::once_flag packed_once[2];

  // oneDNN's matmul of a block of `rows` rows (uint8 codes: int8 ones are flipped, see run). fused: x_zero_point a
  // run-time argument, dst = the block of Y's codes, scales = multiplier, bias, then the post-ops t / y_scale, round
  // half to even, + f32(y_zero_point), and the saturating conversion to T. Else dst = X @ W (int32, no zero point).
  dnnl::matmul::primitive_desc describe(int64_t rows, const dnnl::memory::desc& weights_desc, bool fused) const {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc src({rows, k}, dt::u8, tag::ab);
    if (!fused) return dnnl::matmul::primitive_desc(engine, src, weights_desc, {{rows, n}, dt::s32, tag::ab});
    dnnl::primitive_attr attr;
    attr.set_zero_points_mask(DNNL_ARG_SRC, 0);
    attr.set_scales_mask(DNNL_ARG_WEIGHTS, 1 << 1);  // one multiplier per output channel
    const dnnl::memory::desc scalar({1, 1}, dt::f32, tag::ab);
    dnnl::post_ops ops;
    ops.append_binary(dnnl::algorithm::binary_div, scalar);
    ops.append_eltwise(dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
    ops.append_binary(dnnl::algorithm::binary_add, scalar);
    attr.set_post_ops(ops);
    const dnnl::memory::desc bias({1, n}, dt::f32, tag::ab);
    const dnnl::memory::desc dst({rows, n}, code == CodeType::kInt8 ? dt::s8 : dt::u8, tag::ab);
    return dnnl::matmul::primitive_desc(engine, src, weights_desc, bias, dst, attr);
  }

  // Packs W for the fused or the int32 primitive (caller holds OneOmpThread). The packing is stored only once made,
  // so one that throws leaves none (and call_once lets a later run retry).
  void pack(bool fused) {
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc any({k, n}, dt::s8, dnnl::memory::format_tag::any);
    const auto pd = describe(kQLinearBlockRows, any, fused);
    // W dense [k, n] (oneDNN's reorders that add its zero-point compensation read only a dense source).
    std::vector<int8_t> dense(static_cast<size_t>(k * n));
    for (int64_t kk = 0; kk < k; ++kk) {
      for (int64_t j = 0; j < n; ++j) dense[kk * n + j] = wt[j * kp + kk];
    }
    dnnl::stream s(engine);
    dnnl::memory plain({{k, n}, dt::s8, dnnl::memory::format_tag::ab}, engine, dense.data());
    dnnl::memory packed(pd.weights_desc(), engine);
    dnnl::reorder(plain, packed).execute(s, plain, packed);
    s.wait();
    weights[fused ? 0 : 1] = packed;
  }

  void ensure_packed(bool fused) {
    std::call_once(packed_once[fused ? 0 : 1], [this, fused] { pack(fused); });
  }

  // The worker's primitives (caller holds OneOmpThread); a block of fewer rows reads W in the full block's layout.
  void make_fused(Worker& worker) const {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const auto pd = describe(worker.rows, weights[0].get_desc(), true);
    if (!worker.has_matmul) worker.stream = dnnl::stream(engine);
    worker.fused = dnnl::matmul(pd);
    worker.fsrc = dnnl::memory(pd.src_desc(), engine, DNNL_MEMORY_NONE);
    worker.fdst = dnnl::memory(pd.dst_desc(), engine, DNNL_MEMORY_NONE);
    worker.fbias = dnnl::memory({{1, n}, dt::f32, tag::ab}, engine, DNNL_MEMORY_NONE);
    worker.fscales = dnnl::memory({{n}, dt::f32, tag::a}, engine, DNNL_MEMORY_NONE);
    worker.fzp = dnnl::memory({{1}, dt::s32, tag::a}, engine, &worker.x_zero_point);
    worker.fdiv = dnnl::memory({{1, 1}, dt::f32, tag::ab}, engine, &worker.y_scale);
    worker.fadd = dnnl::memory({{1, 1}, dt::f32, tag::ab}, engine, &worker.y_zero_point);
    worker.fargs = {{DNNL_ARG_SRC, worker.fsrc},
                    {DNNL_ARG_WEIGHTS, weights[0]},
                    {DNNL_ARG_BIAS, worker.fbias},
                    {DNNL_ARG_DST, worker.fdst},
                    {DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, worker.fscales},
                    {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, worker.fzp},
                    {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, worker.fdiv},
                    {DNNL_ARG_ATTR_MULTIPLE_POST_OP(2) | DNNL_ARG_SRC_1, worker.fadd}};
    worker.has_fused = true;
  }

  void make_matmul(Worker& worker) const {
    const auto pd = describe(worker.rows, weights[1].get_desc(), false);
    if (!worker.has_fused) worker.stream = dnnl::stream(engine);
    worker.acc.resize(static_cast<size_t>(worker.rows * n));
    worker.matmul = dnnl::matmul(pd);
    worker.src = dnnl::memory(pd.src_desc(), engine, DNNL_MEMORY_NONE);
    worker.dst = dnnl::memory(pd.dst_desc(), engine, worker.acc.data());
    worker.args = {{DNNL_ARG_SRC, worker.src}, {DNNL_ARG_WEIGHTS, weights[1]}, {DNNL_ARG_DST, worker.dst}};
    worker.has_matmul = true;
  }

  // Y's block (worker.rows rows of N codes) = the fused primitive on xu, uint8 codes with zero point zp_u; m and b
  // hold N multipliers and N biases.
  template <typename T>
  void run_fused(Worker& worker, const uint8_t* xu, int32_t zp_u, const float* m, const float* b, T* y,
                 const QLinearParams& p) const {
    if (!worker.has_fused) make_fused(worker);
    worker.x_zero_point = zp_u;
    worker.y_scale = p.y_scale;
    worker.y_zero_point = static_cast<float>(p.y_zero_point);
    worker.fsrc.set_data_handle(const_cast<uint8_t*>(xu));
    worker.fdst.set_data_handle(y);
    worker.fbias.set_data_handle(const_cast<float*>(b));
    worker.fscales.set_data_handle(const_cast<float*>(m));
    worker.fused.execute(worker.stream, worker.fargs);
    worker.stream.wait();
  }

  // worker.acc = xu @ W by the int32 primitive (xu: uint8 codes, no zero point).
  void onednn_block(Worker& worker, const uint8_t* xu) const {
    if (!worker.has_matmul) make_matmul(worker);
    worker.src.set_data_handle(const_cast<uint8_t*>(xu));
    worker.matmul.execute(worker.stream, worker.args);
    worker.stream.wait();
  }

  // (a) of "The fused epilogue is bit-exact" for one call.
  static bool constants_fit(const QLinearParams& p, const float* multiplier, const float* bias) {
    if (!std::isfinite(p.y_scale) || p.y_scale == 0.0f) return false;
    return all_finite(multiplier, p.multiplier_size) && all_finite(bias, p.bias_size);
  }

  // Whether no value is an infinity or a NaN (all exponent bits set), without a branch per value (every call of
  // every thread checks the N multipliers and biases: the compiler vectorises this loop).
  static bool all_finite(const float* v, int64_t n) {
    uint32_t special = 0;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, v + i, sizeof bits);
      special |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    return special == 0;
  }

  // (d) for `rows` rows of uint8 codes: |sum_k x[r, k] W[k, n]| <= 2^24 for every row and channel, shown for every
  // row at once by 255 * max_n sum_k |W[k, n]| <= 2^24 (W alone: typical of K up to about 1536), else per row by
  // sum_k x[r, k] * max|W| <= 2^24 or, failing that, by Cauchy-Schwarz: sum_k x[r, k]^2 * max_n sum_k W[k, n]^2 <=
  // 2^48 (all products exact in int64 / uint64: K <= kMaxQlinearK).
  bool rows_fit(const uint8_t* x, int64_t rows) const {
#if FQVIT_HAS_X86
    if (255 * w_col_abs_max <= kF32Exact) return true;
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = x + r * k;
      if (abs_sum_avx512(row, k) * w_abs_max <= kF32Exact) continue;
      if (static_cast<uint64_t>(sq_sum_avx512(row, k)) * static_cast<uint64_t>(w_sq_max) <=
          static_cast<uint64_t>(kF32Exact) * static_cast<uint64_t>(kF32Exact)) {
        continue;
      }
      return false;
    }
    return true;
#else
    (void)x;
    (void)rows;
    return false;  // oneDNN runs only on the x86 avx512 path
#endif
  }
#endif

  // (a) and (b) of "Which matmul" above.
  bool use_onednn(Isa isa) const {
#ifdef FQVIT_WITH_ONEDNN
    return onednn && isa == Isa::kAvx512;
#else
    (void)isa;
    return false;
#endif
  }

  // The ZeroPointTerms of zp, made once per zero point (an exported model's is a constant).
  std::shared_ptr<const ZeroPointTerms> zero_point_terms(int32_t zp) {
    const std::lock_guard<std::mutex> lock(mutex);
    if (!zp_terms || zp_terms->zp != zp) {
      auto t = std::make_shared<ZeroPointTerms>();
      t->zp = zp;
      t->fits = true;
      t->term.resize(static_cast<size_t>(n));
      for (int64_t c = 0; c < n; ++c) {
        const int64_t term = static_cast<int64_t>(zp) * colsum[c];  // |.| <= 255 * 128 K: exact in int64
        if (term > kF32Exact || term < -kF32Exact) t->fits = false;
        t->term[c] = static_cast<int32_t>(static_cast<uint32_t>(zp) * static_cast<uint32_t>(colsum[c]));
      }
      zp_terms = std::move(t);
    }
    return zp_terms;
  }

  std::unique_ptr<Worker> acquire(int64_t rows) {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      for (auto it = idle.begin(); it != idle.end(); ++it) {
        if ((*it)->rows == rows) {
          std::unique_ptr<Worker> w = std::move(*it);
          idle.erase(it);
          return w;
        }
      }
    }
    auto worker = std::make_unique<Worker>();
    worker->rows = rows;
    return worker;
  }

  void release(std::unique_ptr<Worker> worker) {
    const std::lock_guard<std::mutex> lock(mutex);
    idle.push_back(std::move(worker));
  }

  // worker.acc = (x - zp) @ W by the portable loop.
  template <typename T>
  void portable_block(Worker& worker, const T* x, int32_t x_zero_point, Isa isa) const {
    worker.acc.resize(static_cast<size_t>(worker.rows * n));
    if (k == 0) {
      std::fill(worker.acc.begin(), worker.acc.end(), 0);
      return;
    }
    if (worker.x16.empty()) worker.x16.assign(static_cast<size_t>(worker.rows * kp), 0);
    portable(x, x_zero_point, worker.x16.data(), wt.data(), worker.acc.data(), worker.rows, k, kp, n, isa);
  }

  // The AMX path (qlinear_amx.cc): each item in one call on the calling thread (a block of rows against all of W, or
  // all rows against a share of W's columns), exact for every input.
  template <typename T>
  void run_amx(const T* x, const float* multiplier, const float* bias, T* y, const QLinearParams& p, int64_t blocks,
               int64_t item_begin, int64_t item_end) {
    constexpr bool kFlip = std::is_same<T, int8_t>::value;  // int8 codes run as uint8 (x + 128), flipped back
    const int32_t zp_u = p.x_zero_point + (kFlip ? kCodeOffset : 0);
    const std::shared_ptr<const ZeroPointTerms> terms = zero_point_terms(zp_u);
    thread_local std::vector<float> m_full, b_full;  // a broadcast multiplier or bias repeated N times
    const float* m = per_channel(multiplier, p.multiplier_size, n, m_full);
    const float* b = per_channel(bias, p.bias_size, n, b_full);
    thread_local std::vector<uint8_t> flipped;
    // Few rows per block (batch 1 of a ViT) against a large W: item i takes all rows against its share of W's columns
    // instead, so that each thread streams a share of W rather than all of it.
    const bool by_columns = p.m < blocks * kAmxColumnSplitRows && k * n >= kAmxColumnSplitWeight;
    for (int64_t item = item_begin; item < item_end; ++item) {
      const QLinearRows block = by_columns ? QLinearRows{0, p.m} : qlinear_block(p.m, blocks, item);
      const int64_t r0 = block.begin, r = block.end - block.begin;
      const int64_t pairs = amx->column_pairs();
      const int64_t pair_begin = by_columns ? pairs * item / blocks : 0;
      const int64_t pair_end = by_columns ? pairs * (item + 1) / blocks : pairs;
      const uint8_t* xu = uint8_rows(x + r0 * k, r * k, flipped);
      RequantizeParams rq = qlinear_epilogue(p, r);
      rq.y_zero_point += kFlip ? kCodeOffset : 0;
      rq.code = CodeType::kUint8;
      amx->run(xu, r, terms->term.data(), m, b, rq, kFlip, reinterpret_cast<uint8_t*>(y + r0 * n), pair_begin,
               pair_end);
    }
  }

  template <typename T>
  void run(const T* x, const float* multiplier, const float* bias, T* y, const QLinearParams& p, int64_t item_begin,
           int64_t item_end, Isa isa) {
    if (p.m <= 0 || n == 0) return;
    const int64_t blocks = qlinear_blocks(p.m, cpu_threads());
    item_begin = std::max<int64_t>(item_begin, 0);
    item_end = std::min(item_end, blocks);
    if (item_begin >= item_end) return;
    if (amx && isa == Isa::kAvx512) return run_amx(x, multiplier, bias, y, p, blocks, item_begin, item_end);
    const bool onednn = use_onednn(isa) && k > 0;
    const int32_t* zp_term = nullptr;  // the int32 path's correction after oneDNN
#ifdef FQVIT_WITH_ONEDNN
    const OneOmpThread one;
    // oneDNN reads uint8 codes: int8 ones are flipped per block (x + 128, and so the zero point).
    constexpr bool kFlip = std::is_same<T, int8_t>::value;
    const int32_t zp_u = p.x_zero_point + (kFlip ? kCodeOffset : 0);
    thread_local std::vector<uint8_t> flipped;
    const std::shared_ptr<const ZeroPointTerms> terms = onednn ? zero_point_terms(zp_u) : nullptr;
    // The fused primitive takes N multipliers and N biases: a broadcast one is repeated (per thread, per call).
    const bool fused = onednn && terms->fits && constants_fit(p, multiplier, bias);
    thread_local std::vector<float> m_full, b_full;
    const float* m = fused ? per_channel(multiplier, p.multiplier_size, n, m_full) : multiplier;
    const float* b = fused ? per_channel(bias, p.bias_size, n, b_full) : bias;
    // `rows` rows of uint8 codes xs into ys by the fused primitive, where the call and the rows fit its bounds.
    auto fused_rows = [&](const uint8_t* xs, int64_t rows, T* ys) {
      if (!fused || !rows_fit(xs, rows)) return false;
      ensure_packed(true);  // W packed for the fused primitive by the first block that takes it
      std::unique_ptr<Worker> worker = acquire(rows);
      run_fused(*worker, xs, zp_u, m, b, ys, p);
      release(std::move(worker));
      return true;
    };
#endif
    for (int64_t item = item_begin; item < item_end; ++item) {
      const QLinearRows block = qlinear_block(p.m, blocks, item);
      const int64_t r0 = block.begin, r = block.end - block.begin;
#ifdef FQVIT_WITH_ONEDNN
      const uint8_t* xu = nullptr;  // the block's codes as oneDNN reads them
      if (onednn) {
        xu = uint8_rows(x + r0 * k, r * k, flipped);
        if (fused_rows(xu, r, y + r0 * n)) continue;  // the usual case: the whole block in one call
      }
#endif
      // Otherwise in sub-blocks of at most kQLinearSubBlockRows rows (whole tiles): fused where the sub-block's rows
      // fit, else through int32 accumulators of at most that many rows.
      for (int64_t s0 = 0; s0 < r; s0 += kQLinearSubBlockRows) {
        const int64_t sr = std::min(kQLinearSubBlockRows, r - s0);
        T* ys = y + (r0 + s0) * n;
#ifdef FQVIT_WITH_ONEDNN
        if (onednn && fused_rows(xu + s0 * k, sr, ys)) continue;
#endif
        std::unique_ptr<Worker> worker = acquire(sr);
        if (onednn) {
#ifdef FQVIT_WITH_ONEDNN
          ensure_packed(false);
          zp_term = terms->term.data();
          onednn_block(*worker, xu + s0 * k);
#endif
        } else {
          portable_block(*worker, x + (r0 + s0) * k, p.x_zero_point, isa);
        }
        requantize_cpu(worker->acc.data(), multiplier, bias, ys, qlinear_epilogue(p, sr), 0, sr * n, isa, zp_term);
        release(std::move(worker));
      }
    }
  }
};

QLinearCpu::QLinearCpu(const int8_t* w, int64_t k, int64_t n, CodeType code, bool use_amx)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.k = k;
  im.n = n;
  im.code = code;
  im.kp = (k + kPortableKAlign - 1) / kPortableKAlign * kPortableKAlign;
  im.wt.assign(static_cast<size_t>(n * im.kp), 0);
  im.colsum.assign(static_cast<size_t>(n), 0);
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t j = 0; j < n; ++j) {
      im.wt[j * im.kp + kk] = w[kk * n + j];
      im.colsum[j] += w[kk * n + j];  // |.| <= 128 K: int32
      im.w_abs_max = std::max<int64_t>(im.w_abs_max, std::abs(static_cast<int32_t>(w[kk * n + j])));
    }
  }
  for (int64_t j = 0; j < n; ++j) {
    int64_t sq = 0, abs_sum = 0;  // <= 16384 K, <= 128 K
    for (int64_t kk = 0; kk < k; ++kk) {
      sq += static_cast<int64_t>(im.wt[j * im.kp + kk]) * im.wt[j * im.kp + kk];
      abs_sum += std::abs(static_cast<int32_t>(im.wt[j * im.kp + kk]));
    }
    im.w_sq_max = std::max(im.w_sq_max, sq);
    im.w_col_abs_max = std::max(im.w_col_abs_max, abs_sum);
  }
  if (use_amx && amx_usable() && k > 0) im.amx = std::make_unique<AmxWeights>(w, k, n);  // K = 0: the other paths
#ifdef FQVIT_WITH_ONEDNN
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  im.onednn_isa = onednn_isa_name(isa);
  im.onednn = onednn_int8_exact(isa);
  if (im.onednn && k > 0 && n > 0) {  // the implementation oneDNN picks (packing waits for a run)
    const OneOmpThread one;
    const dnnl::memory::desc any({k, n}, dnnl::memory::data_type::s8, dnnl::memory::format_tag::any);
    im.impl_name = im.describe(kQLinearBlockRows, any, true).impl_info_str();
  }
#endif
}

QLinearCpu::~QLinearCpu() = default;

bool QLinearCpu::fits(const QLinearParams& p) const {
  return p.k == impl_->k && p.n == impl_->n && p.code == impl_->code;
}

int64_t QLinearCpu::items(const QLinearParams& p) const {
  if (p.m <= 0 || p.n <= 0) return 0;
  return qlinear_blocks(p.m, cpu_threads());
}

void QLinearCpu::run_items(const uint8_t* x, const float* multiplier, const float* bias, uint8_t* y,
                           const QLinearParams& p, int64_t item_begin, int64_t item_end, Isa isa) const {
  impl_->run(x, multiplier, bias, y, p, item_begin, item_end, isa);
}

void QLinearCpu::run_items(const int8_t* x, const float* multiplier, const float* bias, int8_t* y,
                           const QLinearParams& p, int64_t item_begin, int64_t item_end, Isa isa) const {
  impl_->run(x, multiplier, bias, y, p, item_begin, item_end, isa);
}

std::string QLinearCpu::gemm_name(Isa isa) const {
  const std::string loop = std::string("portable loop (") + isa_name(isa) + ", ";
  if (impl_->amx && isa == Isa::kAvx512) return "AMX int8 tiles (qlinear_amx.cc), requantize fused";
#ifdef FQVIT_WITH_ONEDNN
  if (impl_->use_onednn(isa)) {
    return "oneDNN " + (impl_->impl_name.empty() ? std::string("(empty W)") : impl_->impl_name) +
           ", requantize fused";
  }
  if (!impl_->onednn) {
    return loop + "oneDNN's ISA " + impl_->onednn_isa + " has no VNNI: its int8 GEMM would saturate)";
  }
  return loop + "no VNNI at this path: oneDNN's int8 GEMM runs only on the avx512 path)";
#else
  return loop + "built without oneDNN)";
#endif
}

}  // namespace fqvit
