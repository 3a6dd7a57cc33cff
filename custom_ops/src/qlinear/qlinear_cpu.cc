// com.fqvit::QLinear on the CPU (docs/ops.md Sec. 5, fused ops), one block of rows at a time:
//   1. acc = (X_block - x_zero_point) @ W   into the block's int32 accumulators (kQLinearBlockRows x N, in L2):
//      oneDNN's int8 matmul (u8 or s8 source, s8 weights packed once, s32 destination, the zero point a run-time
//      attribute) where it is exact, else the portable loop (int32, exact everywhere; see "Which matmul" below);
//   2. Y_block = Requantize(acc)   requantize_cpu of src/requantize (the same function as the Requantize op).
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
// otherwise step 1 is the portable loop (int16 dot products of x - zp and W's columns, 4 x 4 outputs at a time,
// vectorised by the compiler for the call's path).
//
// Threads: the caller (the op's glue) spreads row blocks over onnxruntime's intra-op pool. A oneDNN primitive
// executed by two threads at once runs 2-4x slower than by one (measured, oneDNN 3.2 on AMX), so every concurrent
// call takes its own primitive (with its accumulator block) from a pool and returns it after; and oneDNN's OpenMP
// runtime is held to one thread on the calling thread (omp_set_num_threads is per thread), restored afterwards.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "common/int16_dot.h"
#include "common/simd.h"
#include "fqvit_ops/qlinear.h"

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

namespace {

// One caller's matmul for blocks of `rows` rows and its accumulators.
struct Worker {
  int64_t rows = 0;
  std::vector<int32_t> acc;  // rows x N
  std::vector<int16_t> x16;  // rows x kp: the portable loop's x - zp (made on its first use)
#ifdef FQVIT_WITH_ONEDNN
  bool has_matmul = false;  // the primitive is made on the worker's first oneDNN call
  dnnl::matmul matmul;
  dnnl::stream stream;
  dnnl::memory src, dst;  // descriptors of the block; the data handles are set per call
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

struct QLinearCpu::Impl {
  int64_t k = 0, n = 0;
  int64_t kp = 0;  // k rounded up to kPortableKAlign
  CodeType code = CodeType::kUint8;
  std::vector<int8_t> wt;  // W transposed, [n, kp], zero-padded: the portable loop's (K x N bytes, as W)
  std::mutex mutex;
  std::vector<std::unique_ptr<Worker>> idle;  // guarded by mutex
#ifdef FQVIT_WITH_ONEDNN
  bool onednn = false;     // (b): oneDNN's effective ISA has VNNI or AMX (then W is also packed for it)
  std::string onednn_isa;  // that ISA's name, for gemm_name
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::memory weights;  // W in the layout of the full-block primitive (format_tag::any, reordered once)
  std::string impl_name;

  dnnl::matmul::primitive_desc describe(int64_t rows, const dnnl::memory::desc& weights_desc) const {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::primitive_attr attr;
    attr.set_zero_points_mask(DNNL_ARG_SRC, 0);  // one run-time zero point for all of X
    const dnnl::memory::desc src({rows, k}, code == CodeType::kInt8 ? dt::s8 : dt::u8, tag::ab);
    const dnnl::memory::desc dst({rows, n}, dt::s32, tag::ab);
    return dnnl::matmul::primitive_desc(engine, src, weights_desc, dst, attr);
  }

  // The worker's primitive for its block of rows (caller holds OneOmpThread).
  void make_matmul(Worker& worker) const {
    // The tail block's primitive reads the weights in the full block's layout.
    const auto pd = describe(worker.rows, weights.get_desc());
    worker.matmul = dnnl::matmul(pd);
    worker.stream = dnnl::stream(engine);
    worker.src = dnnl::memory(pd.src_desc(), engine, DNNL_MEMORY_NONE);
    worker.dst = dnnl::memory(pd.dst_desc(), engine, worker.acc.data());
    worker.has_matmul = true;
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

  std::unique_ptr<Worker> make(int64_t rows) {
    auto worker = std::make_unique<Worker>();
    worker->rows = rows;
    worker->acc.resize(static_cast<size_t>(rows * n));
    return worker;
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
    return make(rows);
  }

  void release(std::unique_ptr<Worker> worker) {
    const std::lock_guard<std::mutex> lock(mutex);
    idle.push_back(std::move(worker));
  }

  // acc = (x - zp) @ W for worker->rows rows of x (row-major, K columns).
  template <typename T>
  void matmul(Worker& worker, const T* x, int32_t x_zero_point, Isa isa) const {
    if (k == 0) {
      std::fill(worker.acc.begin(), worker.acc.end(), 0);
      return;
    }
#ifdef FQVIT_WITH_ONEDNN
    if (use_onednn(isa)) {
      if (!worker.has_matmul) make_matmul(worker);
      int32_t zp = x_zero_point;
      const dnnl::memory zp_mem({{1}, dnnl::memory::data_type::s32, dnnl::memory::format_tag::x}, engine, &zp);
      worker.src.set_data_handle(const_cast<T*>(x));
      worker.matmul.execute(worker.stream, {{DNNL_ARG_SRC, worker.src},
                                            {DNNL_ARG_WEIGHTS, weights},
                                            {DNNL_ARG_DST, worker.dst},
                                            {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zp_mem}});
      worker.stream.wait();
      return;
    }
#endif
    if (worker.x16.empty()) worker.x16.assign(static_cast<size_t>(worker.rows * kp), 0);
    portable(x, x_zero_point, worker.x16.data(), wt.data(), worker.acc.data(), worker.rows, k, kp, n, isa);
  }

  template <typename T>
  void run(const T* x, const float* multiplier, const float* bias, T* y, const QLinearParams& p, int64_t row_begin,
           int64_t row_end, Isa isa) {
    row_begin = std::max<int64_t>(row_begin, 0);
    row_end = std::min(row_end, p.m);
    if (row_begin >= row_end || n == 0) return;
#ifdef FQVIT_WITH_ONEDNN
    const OneOmpThread one;
#endif
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kQLinearBlockRows) {
      const int64_t rows = std::min(kQLinearBlockRows, row_end - r0);
      std::unique_ptr<Worker> worker = acquire(rows);
      matmul(*worker, x + r0 * k, p.x_zero_point, isa);
      requantize_cpu(worker->acc.data(), multiplier, bias, y + r0 * n, qlinear_epilogue(p, rows), 0, rows * n, isa);
      release(std::move(worker));
    }
  }
};

QLinearCpu::QLinearCpu(const int8_t* w, int64_t k, int64_t n, CodeType code) : impl_(std::make_unique<Impl>()) {
  impl_->k = k;
  impl_->n = n;
  impl_->code = code;
  impl_->kp = (k + kPortableKAlign - 1) / kPortableKAlign * kPortableKAlign;
  impl_->wt.assign(static_cast<size_t>(n * impl_->kp), 0);
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t j = 0; j < n; ++j) impl_->wt[j * impl_->kp + kk] = w[kk * n + j];
  }
#ifdef FQVIT_WITH_ONEDNN
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  impl_->onednn_isa = onednn_isa_name(isa);
  impl_->onednn = onednn_int8_exact(isa);
  if (impl_->onednn && k > 0 && n > 0) {
    const OneOmpThread one;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc any({k, n}, dnnl::memory::data_type::s8, tag::any);
    const auto pd = impl_->describe(kQLinearBlockRows, any);
    impl_->impl_name = pd.impl_info_str();
    dnnl::memory plain({{k, n}, dnnl::memory::data_type::s8, tag::ab}, impl_->engine, const_cast<int8_t*>(w));
    impl_->weights = dnnl::memory(pd.weights_desc(), impl_->engine);
    dnnl::stream s(impl_->engine);
    dnnl::reorder(plain, impl_->weights).execute(s, plain, impl_->weights);
    s.wait();
  }
#endif
}

QLinearCpu::~QLinearCpu() = default;

bool QLinearCpu::fits(const QLinearParams& p) const {
  return p.k == impl_->k && p.n == impl_->n && p.code == impl_->code;
}

void QLinearCpu::run(const uint8_t* x, const float* multiplier, const float* bias, uint8_t* y,
                     const QLinearParams& p, int64_t row_begin, int64_t row_end, Isa isa) const {
  impl_->run(x, multiplier, bias, y, p, row_begin, row_end, isa);
}

void QLinearCpu::run(const int8_t* x, const float* multiplier, const float* bias, int8_t* y, const QLinearParams& p,
                     int64_t row_begin, int64_t row_end, Isa isa) const {
  impl_->run(x, multiplier, bias, y, p, row_begin, row_end, isa);
}

std::string QLinearCpu::gemm_name(Isa isa) const {
  const std::string loop = std::string("portable loop (") + isa_name(isa) + ", ";
#ifdef FQVIT_WITH_ONEDNN
  if (impl_->use_onednn(isa)) {
    return "oneDNN " + (impl_->impl_name.empty() ? std::string("(empty W)") : impl_->impl_name);
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
