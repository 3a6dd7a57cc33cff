// com.fqvit::QLinear on the CPU (docs/ops.md Sec. 1, integer matmuls and fused ops), one block of rows at a time:
//   1. acc = (X_block - x_zero_point) @ W   into the block's int32 accumulators (kQLinearBlockRows x N, in L2):
//      oneDNN's int8 matmul (u8 or s8 source, s8 weights packed once, s32 destination, the zero point a run-time
//      attribute), which dispatches AMX / AVX-512 VNNI / AVX2 / SSE4.1 itself; without oneDNN a portable loop;
//   2. Y_block = Requantize(acc)   requantize_cpu of src/requantize (the same function as the Requantize op).
//
// Threads: the caller (the op's glue) spreads row blocks over onnxruntime's intra-op pool. A oneDNN primitive
// executed by two threads at once runs 2-4x slower than by one (measured, oneDNN 3.2 on AMX), so every concurrent
// call takes its own primitive (with its accumulator block) from a pool and returns it after; and oneDNN's OpenMP
// runtime is held to one thread on the calling thread (omp_set_num_threads is per thread), restored afterwards.
#include <algorithm>
#include <mutex>
#include <vector>

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
#ifdef FQVIT_WITH_ONEDNN
  dnnl::matmul matmul;
  dnnl::stream stream;
  dnnl::memory src, dst;  // descriptors of the block; the data handles are set per call
#endif
};

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
#endif

}  // namespace

struct QLinearCpu::Impl {
  int64_t k = 0, n = 0;
  CodeType code = CodeType::kUint8;
  std::mutex mutex;
  std::vector<std::unique_ptr<Worker>> idle;  // guarded by mutex
#ifdef FQVIT_WITH_ONEDNN
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::memory weights;  // W in the layout of the full-block primitive (format_tag::any, reordered once)
  std::string impl_name;

  dnnl::matmul::primitive_desc describe(int64_t rows, const dnnl::memory::desc& w) const {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::primitive_attr attr;
    attr.set_zero_points_mask(DNNL_ARG_SRC, 0);  // one run-time zero point for all of X
    const dnnl::memory::desc src({rows, k}, code == CodeType::kInt8 ? dt::s8 : dt::u8, tag::ab);
    const dnnl::memory::desc dst({rows, n}, dt::s32, tag::ab);
    return dnnl::matmul::primitive_desc(engine, src, w, dst, attr);
  }
#else
  std::vector<int8_t> w;  // [k, n] as given
#endif

  std::unique_ptr<Worker> make(int64_t rows) {
    auto worker = std::make_unique<Worker>();
    worker->rows = rows;
    worker->acc.resize(static_cast<size_t>(rows * n));
#ifdef FQVIT_WITH_ONEDNN
    if (k > 0) {
      const OneOmpThread one;
      // The tail block's primitive reads the weights in the full block's layout.
      const auto pd = describe(rows, weights.get_desc());
      worker->matmul = dnnl::matmul(pd);
      worker->stream = dnnl::stream(engine);
      worker->src = dnnl::memory(pd.src_desc(), engine, DNNL_MEMORY_NONE);
      worker->dst = dnnl::memory(pd.dst_desc(), engine, worker->acc.data());
    }
#endif
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
  void matmul(Worker& worker, const void* x, int32_t x_zero_point) const {
    if (k == 0) {
      std::fill(worker.acc.begin(), worker.acc.end(), 0);
      return;
    }
#ifdef FQVIT_WITH_ONEDNN
    int32_t zp = x_zero_point;
    const dnnl::memory zp_mem({{1}, dnnl::memory::data_type::s32, dnnl::memory::format_tag::x}, engine, &zp);
    worker.src.set_data_handle(const_cast<void*>(x));
    worker.matmul.execute(worker.stream, {{DNNL_ARG_SRC, worker.src},
                                          {DNNL_ARG_WEIGHTS, weights},
                                          {DNNL_ARG_DST, worker.dst},
                                          {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zp_mem}});
    worker.stream.wait();
#else
    // Portable: row by row, acc_row += (x_k - zp) * W[k, :] (int32, exact; the compiler vectorises the inner loop).
    const bool s8 = code == CodeType::kInt8;
    for (int64_t r = 0; r < worker.rows; ++r) {
      int32_t* acc = worker.acc.data() + r * n;
      std::fill(acc, acc + n, 0);
      for (int64_t kk = 0; kk < k; ++kk) {
        const int64_t at = r * k + kk;
        const int32_t xv = (s8 ? static_cast<const int8_t*>(x)[at] : static_cast<const uint8_t*>(x)[at]) -
                           x_zero_point;
        const int8_t* wr = w.data() + kk * n;
        for (int64_t j = 0; j < n; ++j) acc[j] += xv * static_cast<int32_t>(wr[j]);
      }
    }
#endif
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
      matmul(*worker, x + r0 * k, p.x_zero_point);
      requantize_cpu(worker->acc.data(), multiplier, bias, y + r0 * n, qlinear_epilogue(p, rows), 0, rows * n, isa);
      release(std::move(worker));
    }
  }
};

QLinearCpu::QLinearCpu(const int8_t* w, int64_t k, int64_t n, CodeType code) : impl_(std::make_unique<Impl>()) {
  impl_->k = k;
  impl_->n = n;
  impl_->code = code;
#ifdef FQVIT_WITH_ONEDNN
  if (k > 0 && n > 0) {
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
#else
  impl_->w.assign(w, w + k * n);
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

std::string QLinearCpu::gemm_name() const {
#ifdef FQVIT_WITH_ONEDNN
  return "oneDNN " + impl_->impl_name;
#else
  return "portable loop";
#endif
}

}  // namespace fqvit
