// com.fqvit::QLinear on the CPU (docs/ops.md Sec. 5, fused ops), one block of rows and output channels at a time:
//   1. acc = (X_block - x_zero_point) @ W_columns   into the block's int32 accumulators (at most kQLinearBlockRows x
//      the column block's width, in L2): oneDNN's int8 matmul (u8 or s8 source, s8 weights packed once per column
//      block, s32 destination) on the codes, X_block @ W_columns, where it is exact, else the portable loop (int32,
//      exact everywhere; see "Which matmul" below);
//   2. Y_block = Requantize(acc)   requantize_cpu_block of src/requantize (the Requantize op's per-element spans),
//      which after oneDNN first subtracts x_zero_point * sum_k W[k, n] (wrapping int32, exact as the result lies in
//      int32). Without oneDNN's run-time zero point the whole model ran 3-5% faster (deit_small, AMX Xeon).
//
// Work items (qlinear.h): item = (column block j, group g of row blocks), j = item / groups. With one item per thread
// each core multiplies every row by its own columns only: at deit_small's shapes on 2 cores of an AMX Xeon, oneDNN's
// matmuls took 2.9 ms per batch-1 pass over the 48 layers cut this way against 3.8 ms with the rows cut between the
// cores (both cores reading all of W), and 21.5 against 25.8 ms at batch 8.
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
// Threads: the caller (the op's glue) spreads the work items over onnxruntime's intra-op pool. A oneDNN primitive
// executed by two threads at once runs 2-4x slower than by one (measured, oneDNN 3.2 on AMX), so every concurrent
// call takes its own primitive (with its accumulator block) from a pool and returns it after; and oneDNN's OpenMP
// runtime is held to one thread on the calling thread (omp_set_num_threads is per thread), restored afterwards.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
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

// One caller's matmul for blocks of `rows` rows of column block `block` of a layout (below), and its accumulators.
struct Worker {
  int layout = 0;  // LayoutId
  int64_t block = 0, rows = 0;
  std::vector<int32_t> acc;  // rows x the block's columns
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

// A cut of W's columns into equal blocks (multiples of 16 channels except the last): block j holds channels
// [j * block_cols, min(n, (j + 1) * block_cols)), packed for oneDNN per block when it is used.
struct Layout {
  int64_t block_cols = 0, blocks = 0;
#ifdef FQVIT_WITH_ONEDNN
  std::vector<dnnl::memory> weights;  // per block, in the layout of its full-block primitive (reordered once)
#endif
  int64_t col0(int64_t block) const { return block * block_cols; }
  int64_t cols(int64_t block, int64_t n) const { return std::min(n, col0(block) + block_cols) - col0(block); }
};

// Which of Impl's two layouts an item uses.
enum LayoutId : int { kWhole = 0, kSplit = 1 };

struct QLinearCpu::Impl {
  int64_t k = 0, n = 0;
  int64_t kp = 0;  // k rounded up to kPortableKAlign
  CodeType code = CodeType::kUint8;
  std::vector<int8_t> wt;  // W transposed, [n, kp], zero-padded: the portable loop's (a column block: rows of it)
  std::vector<int32_t> colsum;  // sum_k W[k, n] per output channel (oneDNN path's zero-point term)
  std::shared_ptr<const std::vector<int32_t>> zp_term;  // zero_point_term's last result (guarded by mutex)
  int32_t zp_term_zp = 0;
  // kWhole: one block of all N columns (items by rows); kSplit: the column blocks of items by columns (as many blocks
  // as kWhole when N is too narrow to split, and then never used). oneDNN's packing of each is made by the first
  // call that cuts that way (packed_once), so that a model run at one kind of batch holds one packed copy of W.
  Layout layouts[2];
  std::once_flag packed_once[2];
  std::mutex mutex;
  std::vector<std::unique_ptr<Worker>> idle;  // guarded by mutex
#ifdef FQVIT_WITH_ONEDNN
  bool onednn = false;     // (b): oneDNN's effective ISA has VNNI or AMX (then W is also packed for it)
  std::string onednn_isa;  // that ISA's name, for gemm_name
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::string impl_name;  // the implementation oneDNN picks for a full block, for gemm_name

  dnnl::matmul::primitive_desc describe(int64_t rows, int64_t cols, const dnnl::memory::desc& weights_desc) const {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    // No zero point: oneDNN computes X @ W on the codes, the epilogue subtracts x_zero_point * colsum (see run).
    const dnnl::memory::desc src({rows, k}, code == CodeType::kInt8 ? dt::s8 : dt::u8, tag::ab);
    const dnnl::memory::desc dst({rows, cols}, dt::s32, tag::ab);
    return dnnl::matmul::primitive_desc(engine, src, weights_desc, dst);
  }

  // Packs every block of layout `id` for oneDNN, from wt (caller holds OneOmpThread). The layout's weights are set
  // only once all blocks are packed, so a packing that throws leaves none (and call_once lets a later run retry).
  void pack(LayoutId id) {
    Layout& l = layouts[id];
    using dt = dnnl::memory::data_type;
    dnnl::stream s(engine);
    std::vector<int8_t> dense;
    std::vector<dnnl::memory> packed;
    for (int64_t b = 0; b < l.blocks; ++b) {
      const int64_t c0 = l.col0(b), nc = l.cols(b, n);
      const dnnl::memory::desc any({k, nc}, dt::s8, dnnl::memory::format_tag::any);
      const auto pd = describe(id == kSplit ? kQLinearColumnBlockRows : kQLinearBlockRows, nc, any);
      // The block's columns of W, dense [k, nc] (oneDNN's reorders that add its zero-point compensation read only a
      // dense source).
      dense.resize(static_cast<size_t>(k * nc));
      for (int64_t kk = 0; kk < k; ++kk) {
        for (int64_t j = 0; j < nc; ++j) dense[kk * nc + j] = wt[(c0 + j) * kp + kk];
      }
      dnnl::memory plain({{k, nc}, dt::s8, dnnl::memory::format_tag::ab}, engine, dense.data());
      packed.emplace_back(pd.weights_desc(), engine);
      dnnl::reorder(plain, packed.back()).execute(s, plain, packed.back());
      s.wait();
    }
    l.weights = std::move(packed);
  }

  // The worker's primitive for its block of rows (caller holds OneOmpThread).
  void make_matmul(Worker& worker) const {
    const Layout& l = layouts[worker.layout];
    // A tail block's primitive reads the weights in the full block's layout.
    const auto pd = describe(worker.rows, l.cols(worker.block, n), l.weights[worker.block].get_desc());
    worker.matmul = dnnl::matmul(pd);
    worker.stream = dnnl::stream(engine);
    worker.src = dnnl::memory(pd.src_desc(), engine, DNNL_MEMORY_NONE);
    worker.dst = dnnl::memory(pd.dst_desc(), engine, worker.acc.data());
    worker.has_matmul = true;
  }
#endif

  // How items cut the work for m rows (qlinear.h). By columns when X has fewer rows than W has columns (W is then the
  // larger operand, and a thread that keeps to its column blocks reads only its share of it): an item is a column
  // block of kSplit against a group of row blocks, one group per column block unless there are fewer column blocks
  // than threads. Otherwise by rows (X is the larger one; the threads share its row blocks): an item is a row block
  // against all of W (kWhole).
  bool by_columns(int64_t m) const { return layouts[kSplit].blocks > 1 && m < n; }
  // Rows per block: kQLinearColumnBlockRows when cut by columns, else kQLinearBlockRows (qlinear.h).
  int64_t block_rows(int64_t m) const {
    return equal_block_rows(m, by_columns(m) ? kQLinearColumnBlockRows : kQLinearBlockRows);
  }
  int64_t row_blocks(int64_t m) const { return (m + block_rows(m) - 1) / block_rows(m); }
  int64_t groups(int64_t m) const {
    const int64_t want = (cpu_threads() + layouts[kSplit].blocks - 1) / layouts[kSplit].blocks;
    return std::max<int64_t>(1, std::min(row_blocks(m), want));
  }
  int64_t item_count(int64_t m) const { return by_columns(m) ? layouts[kSplit].blocks * groups(m) : row_blocks(m); }

  // (a) and (b) of "Which matmul" above.
  bool use_onednn(Isa isa) const {
#ifdef FQVIT_WITH_ONEDNN
    return onednn && isa == Isa::kAvx512;
#else
    (void)isa;
    return false;
#endif
  }

  // zp * colsum per output channel (wrapping int32), made once per zero point (an exported model's is a constant).
  std::shared_ptr<const std::vector<int32_t>> zero_point_term(int32_t zp) {
    const std::lock_guard<std::mutex> lock(mutex);
    if (!zp_term || zp_term_zp != zp) {
      auto term = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(n));
      for (int64_t c = 0; c < n; ++c) {
        (*term)[c] = static_cast<int32_t>(static_cast<uint32_t>(zp) * static_cast<uint32_t>(colsum[c]));
      }
      zp_term = std::move(term);
      zp_term_zp = zp;
    }
    return zp_term;
  }

  std::unique_ptr<Worker> acquire(LayoutId layout, int64_t block, int64_t rows) {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      for (auto it = idle.begin(); it != idle.end(); ++it) {
        if ((*it)->layout == layout && (*it)->block == block && (*it)->rows == rows) {
          std::unique_ptr<Worker> w = std::move(*it);
          idle.erase(it);
          return w;
        }
      }
    }
    auto worker = std::make_unique<Worker>();
    worker->layout = layout;
    worker->block = block;
    worker->rows = rows;
    worker->acc.resize(static_cast<size_t>(rows * layouts[layout].cols(block, n)));
    return worker;
  }

  void release(std::unique_ptr<Worker> worker) {
    const std::lock_guard<std::mutex> lock(mutex);
    idle.push_back(std::move(worker));
  }

  // acc = (x - zp) @ W[:, the worker's column block] for worker.rows rows of x (row-major, K columns); with oneDNN
  // acc = x @ W instead, and the epilogue subtracts zp * colsum.
  template <typename T>
  void matmul(Worker& worker, const T* x, int32_t x_zero_point, Isa isa) const {
    if (k == 0) {
      std::fill(worker.acc.begin(), worker.acc.end(), 0);
      return;
    }
    const Layout& l = layouts[worker.layout];
#ifdef FQVIT_WITH_ONEDNN
    if (use_onednn(isa)) {
      if (!worker.has_matmul) make_matmul(worker);
      worker.src.set_data_handle(const_cast<T*>(x));
      worker.matmul.execute(worker.stream, {{DNNL_ARG_SRC, worker.src},
                                            {DNNL_ARG_WEIGHTS, l.weights[worker.block]},
                                            {DNNL_ARG_DST, worker.dst}});
      worker.stream.wait();
      return;
    }
#endif
    if (worker.x16.empty()) worker.x16.assign(static_cast<size_t>(worker.rows * kp), 0);
    portable(x, x_zero_point, worker.x16.data(), wt.data() + l.col0(worker.block) * kp, worker.acc.data(),
             worker.rows, k, kp, l.cols(worker.block, n), isa);
  }

  template <typename T>
  void run(const T* x, const float* multiplier, const float* bias, T* y, const QLinearParams& p, int64_t item_begin,
           int64_t item_end, Isa isa) {
    if (p.m <= 0 || n == 0) return;
    const int64_t rows = block_rows(p.m), rb_count = row_blocks(p.m), g = groups(p.m);
    const bool columns = by_columns(p.m);
    item_begin = std::max<int64_t>(item_begin, 0);
    item_end = std::min(item_end, item_count(p.m));
    if (item_begin >= item_end) return;
#ifdef FQVIT_WITH_ONEDNN
    const OneOmpThread one;
    const LayoutId id = columns ? kSplit : kWhole;
    if (use_onednn(isa) && k > 0) std::call_once(packed_once[id], [this, id] { pack(id); });
#endif
    const Layout& l = layouts[id];
    const RequantizeParams epilogue = qlinear_epilogue(p, rows);
    // oneDNN multiplies the codes themselves: sum_k (x - zp) w = sum_k x w - zp colsum, the second term subtracted by
    // the epilogue in wrapping int32 (exact: the result lies in int32, |.| <= 32640 K).
    std::shared_ptr<const std::vector<int32_t>> zp_term;
    if (use_onednn(isa) && k > 0) zp_term = zero_point_term(p.x_zero_point);
    // Row block rb against column block cb of layout id.
    auto block = [&](int64_t rb, int64_t cb) {
      const int64_t r0 = rb * rows, r = std::min(rows, p.m - r0), c0 = l.col0(cb), nc = l.cols(cb, n);
      std::unique_ptr<Worker> worker = acquire(id, cb, r);
      matmul(*worker, x + r0 * k, p.x_zero_point, isa);
      requantize_cpu_block(worker->acc.data(), nc, zp_term ? zp_term->data() + c0 : nullptr, multiplier, bias,
                           y + r0 * n + c0, n, r, nc, c0, epilogue, isa);
      release(std::move(worker));
    };
    for (int64_t item = item_begin; item < item_end; ++item) {
      if (columns) {
        const int64_t cb = item / g, group = item % g;
        for (int64_t rb = rb_count * group / g; rb < rb_count * (group + 1) / g; ++rb) block(rb, cb);
      } else {
        block(item, 0);
      }
    }
  }
};

QLinearCpu::QLinearCpu(const int8_t* w, int64_t k, int64_t n, CodeType code, int64_t column_blocks)
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
    }
  }
  im.layouts[kWhole].block_cols = std::max<int64_t>(n, 1);
  im.layouts[kWhole].blocks = 1;
  // Equal column blocks in whole groups of 16 channels (an AMX/AVX-512 tile's width), none narrower than
  // kQLinearMinBlockCols unless N is.
  int64_t want = column_blocks > 0 ? column_blocks
                                   : std::max<int64_t>(1, std::min(cpu_threads(), n / kQLinearMinBlockCols));
  want = std::max<int64_t>(1, std::min(want, (n + 15) / 16));
  Layout& split = im.layouts[kSplit];
  split.block_cols = std::max<int64_t>(1, ((n + want - 1) / want + 15) / 16 * 16);
  split.blocks = n > 0 ? (n + split.block_cols - 1) / split.block_cols : 1;
#ifdef FQVIT_WITH_ONEDNN
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  im.onednn_isa = onednn_isa_name(isa);
  im.onednn = onednn_int8_exact(isa);
  if (im.onednn && k > 0 && n > 0) {  // the implementation oneDNN picks for a full block (packing waits for a run)
    const OneOmpThread one;
    const int64_t nc = split.blocks > 1 ? split.cols(0, n) : n;
    const dnnl::memory::desc any({k, nc}, dnnl::memory::data_type::s8, dnnl::memory::format_tag::any);
    const int64_t rows = split.blocks > 1 ? kQLinearColumnBlockRows : kQLinearBlockRows;
    im.impl_name = im.describe(rows, nc, any).impl_info_str();
  }
#endif
}

QLinearCpu::~QLinearCpu() = default;

bool QLinearCpu::fits(const QLinearParams& p) const {
  return p.k == impl_->k && p.n == impl_->n && p.code == impl_->code;
}

int64_t QLinearCpu::items(const QLinearParams& p) const {
  if (p.m <= 0 || p.n <= 0) return 0;
  return impl_->item_count(p.m);
}

int64_t QLinearCpu::column_blocks() const { return impl_->layouts[kSplit].blocks; }

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
