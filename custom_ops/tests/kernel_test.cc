// C++ test driver of the com.fqvit CPU kernels, without onnxruntime: every CPU path (scalar, AVX2, AVX-512, as far
// as this CPU runs them) on random and adversarial inputs, compared element by element with an oracle built from
// fqvit_ops/arith.h, the one statement of docs/ops.md's steps in C++ (the independent checks of that arithmetic are
// the Python tests: reference vs kernels and function bodies). Meant to run under the ASan+UBSan build too
// (tools/build_custom_ops.sh --sanitize).
//
// Every op also runs in int8 codes (the CUDA target's code type) through the _i8 entries, against the same oracles
// instantiated for int8 (arith.h's CodeRange<int8_t> clamp, LogIntSoftmax's masked positions at -256) and against
// the uint8 result minus 128 (ResidualAdd in its own suite, both code types per case).
//
// LISAttention (its own suite, both code types per case) is checked against a composition of the oracles below
// (Requantize, LogIntSoftmax, LISMatMul) around an exact int64 q k^T, through the C entries and through the kernel
// function lis_attention_cpu on its work items split in pieces (on threads, and one item at a time).
//
//   build/custom_ops_san/kernel_test [--quick]      exit status 0 when every case matches
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "fqvit_ops/arith.h"
#include "fqvit_ops/c_api.h"
#include "fqvit_ops/common.h"
#include "fqvit_ops/lis_attention.h"
#include "fqvit_ops/qlinear.h"
#include "qlinear/qlinear_amx.h"

// QLinear's case runner (below), also used by the quantize ties suite.
void ql_run(const std::string& name, const std::vector<uint8_t>& x, const std::vector<int8_t>& w, int32_t xzp,
            const std::vector<float>& m, const std::vector<float>& b, float ys, int32_t yzp, int64_t rows, int64_t k,
            int64_t n);

namespace {

using u8 = uint8_t;
std::mt19937_64 rng(20240601);

int64_t rand_int(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
float rand_f(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

std::vector<u8> rand_u8(size_t n, int lo = 0, int hi = 255) {
  std::vector<u8> v(n);
  for (auto& x : v) x = static_cast<u8>(rand_int(lo, hi));
  return v;
}

// --- oracles: docs/ops.md through fqvit_ops/arith.h ------------------------------------------------------------------
// The per-element and per-row steps are the shared header's (the scalar CPU bodies and the CUDA kernels call the
// same functions); what is written here is the plain loop structure around them: one row and one element at a time,
// int64 statistics, no tables, no vectors. Every SIMD path is compared with it element by element.

// T: the code type (uint8_t or int8_t) of X, zero points and Y.
template <typename T>
std::vector<T> ref_pts(const std::vector<T>& x, const std::vector<u8>& alpha, const std::vector<float>& gamma,
                       const std::vector<float>& beta, int64_t c, float xs, int32_t xzp, float eps, float ys,
                       int32_t yzp) {
  const int64_t rows = static_cast<int64_t>(x.size()) / c;
  std::vector<T> y(x.size());
  const float e = fqvit::pts_eps_term(c, eps, xs);  // Sec. 2 step 3
  for (int64_t r = 0; r < rows; ++r) {
    int64_t s1 = 0, s2 = 0;
    for (int64_t k = 0; k < c; ++k) {
      const int64_t xi = fqvit::pts_x(x[r * c + k], xzp, alpha[k]);
      s1 += xi;
      s2 += xi * xi;
    }
    const float den = fqvit::pts_den(c, s1, s2, e);
    for (int64_t k = 0; k < c; ++k) {
      y[r * c + k] =
          fqvit::pts_out<T>(fqvit::pts_x(x[r * c + k], xzp, alpha[k]), c, s1, den, gamma[k], beta[k], ys, yzp);
    }
  }
  return y;
}

// mask: per element (already broadcast), may be empty.
// Masked positions sit at -256, below every uint8 and int8 code, so they never set the maximum.
template <typename T>
std::vector<u8> ref_lis(const std::vector<T>& x, const std::vector<u8>& mask, int64_t n, int64_t mult, int bits) {
  const int64_t rows = static_cast<int64_t>(x.size()) / n;
  const fqvit::LisRootThresholds roots = fqvit::lis_root_thresholds(bits);
  std::vector<u8> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    auto masked = [&](int64_t j) { return !mask.empty() && mask[r * n + j] != 0; };
    int64_t mx = -256;
    for (int64_t j = 0; j < n; ++j) mx = std::max<int64_t>(mx, masked(j) ? -256 : x[r * n + j]);
    std::vector<int32_t> e(n);
    int64_t s = 0;
    for (int64_t j = 0; j < n; ++j) {
      e[j] = masked(j) ? 0 : static_cast<int32_t>(fqvit::lis_exp_term(mx - x[r * n + j], mult));
      s += e[j];
    }
    int32_t f[fqvit::kLisMaxCodes + 1];
    for (int k = 0; k <= fqvit::kLisMaxCodes; ++k) f[k] = fqvit::lis_row_threshold(roots.t[k], s);
    for (int64_t j = 0; j < n; ++j) out[r * n + j] = fqvit::lis_code(e[j], f);
  }
  return out;
}

template <typename T>
std::vector<T> ref_lismm(const std::vector<u8>& a, const std::vector<T>& v, int64_t batch, int64_t m, int64_t n,
                         int64_t d, float vs, int32_t vzp, float ys, int32_t yzp, int bits) {
  const int zc = (1 << bits) - 1;
  std::vector<T> y(batch * m * d);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t k = 0; k < d; ++k) {
        int64_t acc = 0;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t w = fqvit::lis_weight(a[(b * m + i) * n + j], zc);
          acc += w * (static_cast<int64_t>(v[(b * n + j) * d + k]) - vzp);
        }
        y[(b * m + i) * d + k] = fqvit::lis_matmul_out<T>(acc, vs, ys, yzp);
      }
    }
  }
  return y;
}

// docs/ops.md Sec. 1 (GELU table): y[i] = table[byte(x[i])] (an int8 x indexes by x mod 256).
template <typename T>
std::vector<T> ref_lookup(const std::vector<T>& x, const std::vector<T>& table) {
  std::vector<T> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = table[static_cast<u8>(x[i])];
  return y;
}

// docs/ops.md Sec. 1 (integer matmuls): per element requantize_one; m and b hold 1 or n entries.
template <typename T = u8>
std::vector<T> ref_requantize(const std::vector<int32_t>& a, const std::vector<float>& m, const std::vector<float>& b,
                              int64_t n, float ys, int32_t yzp) {
  std::vector<T> y(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const size_t c = static_cast<size_t>(static_cast<int64_t>(i) % n);
    y[i] = fqvit::requantize_one<T>(a[i], m[m.size() == 1 ? 0 : c], b[b.size() == 1 ? 0 : c], ys, yzp);
  }
  return y;
}

// docs/ops.md Sec. 5 (fused ops): per element residual_add_one; every channel input holds 1 or c entries (gamma may
// be empty: left out, the same as 1).
template <typename T = u8>
std::vector<T> ref_residual_add(const std::vector<T>& a, const std::vector<T>& b, const std::vector<float>& as,
                                const std::vector<float>& bs, const std::vector<float>& ys,
                                const std::vector<float>& g, int64_t c, int32_t azp, int32_t bzp, int32_t yzp) {
  std::vector<T> y(a.size());
  auto at = [](const std::vector<float>& v, size_t k) { return v.empty() ? 1.0f : v[v.size() == 1 ? 0 : k]; };
  for (size_t i = 0; i < a.size(); ++i) {
    const size_t k = static_cast<size_t>(static_cast<int64_t>(i) % c);
    y[i] = fqvit::residual_add_one<T>(a[i], at(as, k), azp, b[i], at(bs, k), bzp, at(ys, k), yzp, at(g, k));
  }
  return y;
}

// --- harness -------------------------------------------------------------------------------------------------

int g_cases = 0, g_failures = 0;
std::vector<int> g_isas;

template <typename T>
void check(const std::string& name, const std::vector<T>& got, const std::vector<T>& want, int rc) {
  ++g_cases;
  if (rc != 0) {
    ++g_failures;
    std::printf("FAIL %s: returned %d (%s)\n", name.c_str(), rc, fqvit_last_error());
    return;
  }
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i] != want[i] && bad++ == 0) first = i;
  }
  if (bad) {
    ++g_failures;
    std::printf("FAIL %s: %zu of %zu differ (first at %zu: got %d want %d)\n", name.c_str(), bad, want.size(), first,
                static_cast<int>(got[first]), static_cast<int>(want[first]));
  }
}

void pts_case(const std::string& name, int64_t rows, int64_t c, std::vector<u8> x, std::vector<u8> alpha, float xs,
              int32_t xzp, float eps, float ys, int32_t yzp, std::vector<float> gamma = {},
              std::vector<float> beta = {}) {
  if (gamma.empty()) {
    gamma.resize(c);
    beta.resize(c);
    for (int64_t k = 0; k < c; ++k) {
      gamma[k] = rand_f(-2.0f, 2.0f);
      beta[k] = rand_f(-1.0f, 1.0f);
    }
  }
  const auto want = ref_pts(x, alpha, gamma, beta, c, xs, xzp, eps, ys, yzp);
  for (int isa : g_isas) {
    std::vector<u8> y(x.size());
    const int rc = fqvit_pts_layernorm_cpu(x.data(), alpha.data(), gamma.data(), beta.data(), y.data(), rows, c, xs,
                                           xzp, eps, ys, yzp, isa);
    check("PTSLayerNorm " + name + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
  }
}

void pts_random(const std::string& name, int64_t rows, int64_t c, float eps = 1e-5f) {
  std::vector<u8> alpha = rand_u8(c, 0, 3);
  pts_case(name, rows, c, rand_u8(rows * c), alpha, rand_f(0.001f, 0.1f), static_cast<int32_t>(rand_int(0, 255)), eps,
           rand_f(0.01f, 0.1f), static_cast<int32_t>(rand_int(0, 255)));
}

// X [lead..., n] with a mask of shape mshape (broadcast); the oracle gets the broadcast mask.
void lis_case(const std::string& name, const std::vector<int64_t>& xshape, const std::vector<u8>& x,
              const std::vector<int64_t>& mshape, const std::vector<u8>& mask, int64_t mult, int bits) {
  const int rank = static_cast<int>(xshape.size());
  std::vector<u8> full;
  if (!mshape.empty()) {
    full.resize(x.size());
    std::vector<int64_t> idx(rank, 0);
    for (size_t i = 0; i < x.size(); ++i) {
      int64_t rem = static_cast<int64_t>(i), off = 0, stride = 1;
      for (int k = rank - 1; k >= 0; --k) {
        idx[k] = rem % xshape[k];
        rem /= xshape[k];
      }
      const int mrank = static_cast<int>(mshape.size());
      for (int k = rank - 1; k >= rank - mrank; --k) {
        const int64_t md = mshape[k - (rank - mrank)];
        off += (md == 1 ? 0 : idx[k]) * stride;
        stride *= md;
      }
      full[i] = mask[off];
    }
  }
  const auto want = ref_lis(x, full, xshape.back(), mult, bits);
  for (int isa : g_isas) {
    std::vector<u8> y(x.size());
    const int rc = fqvit_log_int_softmax_cpu(x.data(), xshape.data(), rank, mshape.empty() ? nullptr : mask.data(),
                                             mshape.data(), static_cast<int>(mshape.size()), y.data(), mult, bits, isa);
    check("LogIntSoftmax " + name + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
  }
}

void lismm_case(const std::string& name, int64_t batch, int64_t m, int64_t n, int64_t d, const std::vector<u8>& a,
                const std::vector<u8>& v, int bits, int32_t vzp = -1) {
  const float vs = rand_f(0.01f, 0.2f), ys = rand_f(0.005f, 0.1f);
  if (vzp < 0) vzp = static_cast<int32_t>(rand_int(0, 255));
  const int32_t yzp = static_cast<int32_t>(rand_int(0, 255));
  const auto want = ref_lismm(a, v, batch, m, n, d, vs, vzp, ys, yzp, bits);
  for (int isa : g_isas) {
    std::vector<u8> y(batch * m * d);
    const int rc = fqvit_lis_matmul_cpu(a.data(), v.data(), y.data(), batch, m, n, d, vs, vzp, ys, yzp, bits, isa);
    check("LISMatMul " + name + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
  }
}

// x and y start `offset` bytes into their buffers (unaligned vector loads/stores); bytes of y outside [0, n) must
// stay untouched.
void lookup_case(const std::string& name, const std::vector<u8>& x, const std::vector<u8>& table, size_t x_offset = 0,
                 size_t y_offset = 0) {
  const auto want = ref_lookup(x, table);
  const size_t n = x.size(), guard = 64;
  std::vector<u8> xb(x_offset + n + guard);
  std::copy(x.begin(), x.end(), xb.begin() + static_cast<std::ptrdiff_t>(x_offset));
  for (int isa : g_isas) {
    std::vector<u8> yb(y_offset + n + guard, 0xA5);
    const int rc = fqvit_lookup_cpu(xb.data() + x_offset, table.data(), yb.data() + y_offset, static_cast<int64_t>(n),
                                    static_cast<int64_t>(table.size()), isa);
    const std::vector<u8> y(yb.begin() + y_offset, yb.begin() + y_offset + n);
    check("Lookup " + name + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
    bool guard_ok = true;
    for (size_t i = 0; i < yb.size(); ++i) {
      if ((i < y_offset || i >= y_offset + n) && yb[i] != 0xA5) guard_ok = false;
    }
    ++g_cases;
    if (!guard_ok) {
      ++g_failures;
      std::printf("FAIL Lookup %s [%s]: wrote outside [0, n)\n", name.c_str(), fqvit_cpu_isa_name(isa));
    }
    // In place, as the op runs where onnxruntime hands it X's buffer for Y (MayInplace).
    std::vector<u8> inplace(xb);
    const int rc_in = fqvit_lookup_cpu(inplace.data() + x_offset, table.data(), inplace.data() + x_offset,
                                       static_cast<int64_t>(n), static_cast<int64_t>(table.size()), isa);
    check("Lookup in place " + name + " [" + fqvit_cpu_isa_name(isa) + "]",
          std::vector<u8>(inplace.begin() + x_offset, inplace.begin() + x_offset + n), want, rc_in);
    // int8 codes in place: the same bytes (the int8 kernel indexes the table by the code's byte).
    std::vector<int8_t> inplace8(xb.begin(), xb.end());
    const int rc_in8 = fqvit_lookup_cpu_i8(inplace8.data() + x_offset, reinterpret_cast<const int8_t*>(table.data()),
                                           inplace8.data() + x_offset, static_cast<int64_t>(n),
                                           static_cast<int64_t>(table.size()), isa);
    const std::vector<u8> got8(inplace8.begin() + static_cast<std::ptrdiff_t>(x_offset),
                               inplace8.begin() + static_cast<std::ptrdiff_t>(x_offset + n));
    check("int8 Lookup in place " + name + " [" + fqvit_cpu_isa_name(isa) + "]", got8, want, rc_in8);
  }
}

// A [rows, n] with `ms`/`bs` multiplier/bias entries (n or 1); a starts `a_offset` elements into its buffer and y
// `y_offset` bytes into its own (unaligned vector loads/stores); bytes of y outside [0, numel) must stay untouched.
void rq_case(const std::string& name, int64_t n, const std::vector<int32_t>& a, std::vector<float> m,
             std::vector<float> b, float ys, int32_t yzp, size_t a_offset = 0, size_t y_offset = 0) {
  const auto want = ref_requantize(a, m, b, n, ys, yzp);
  const size_t numel = a.size(), guard = 64;
  std::vector<int32_t> ab(a_offset + numel + guard);
  std::copy(a.begin(), a.end(), ab.begin() + static_cast<std::ptrdiff_t>(a_offset));
  for (int isa : g_isas) {
    std::vector<u8> yb(y_offset + numel + guard, 0xA5);
    const int rc = fqvit_requantize_cpu(ab.data() + a_offset, m.data(), b.data(), yb.data() + y_offset,
                                        static_cast<int64_t>(numel), n, static_cast<int64_t>(m.size()),
                                        static_cast<int64_t>(b.size()), ys, yzp, isa);
    const std::vector<u8> y(yb.begin() + y_offset, yb.begin() + y_offset + numel);
    check("Requantize " + name + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
    bool guard_ok = true;
    for (size_t i = 0; i < yb.size(); ++i) {
      if ((i < y_offset || i >= y_offset + numel) && yb[i] != 0xA5) guard_ok = false;
    }
    ++g_cases;
    if (!guard_ok) {
      ++g_failures;
      std::printf("FAIL Requantize %s [%s]: wrote outside [0, numel)\n", name.c_str(), fqvit_cpu_isa_name(isa));
    }
  }
}

std::vector<int32_t> rand_i32(size_t count, int64_t lo, int64_t hi) {
  std::vector<int32_t> v(count);
  for (auto& x : v) x = static_cast<int32_t>(rand_int(lo, hi));
  return v;
}

std::vector<float> rand_fv(size_t count, float lo, float hi) {
  std::vector<float> v(count);
  for (auto& x : v) x = rand_f(lo, hi);
  return v;
}

// Random per-channel (or broadcast) multiplier/bias for a realistic accumulator range.
void rq_random(const std::string& name, int64_t rows, int64_t n, bool mv = true, bool bv = true) {
  rq_case(name, n, rand_i32(static_cast<size_t>(rows * n), -(1 << 20), 1 << 20), rand_fv(mv ? n : 1, 2e-7f, 2e-6f),
          rand_fv(bv ? n : 1, -1.0f, 1.0f), rand_f(0.01f, 0.08f), static_cast<int32_t>(rand_int(0, 255)));
}

// The quantize step near its rounding boundaries, per y_scale: the float32 values nearest (k + 1/2) y_scale for
// k = -300 .. 300 and up to 3 ulps either side, and the special values. Through Requantize (acc = 0, multiplier 1, a
// per-channel bias b: 0 * 1 + b = b) and PTSLayerNorm (gamma 0, beta: y * 0 + beta = beta for a finite y), which both
// give quantize_u8 of the values; PTSLayerNorm's AVX-512 body multiplies by the reciprocal and must give way to the
// division there (simd.h quantize_u8_x16).
void quantize_ties_case(const std::string& name, float ys, int32_t yzp) {
  std::vector<float> b;
  for (int k = -300; k <= 300; ++k) {
    const float mid = (static_cast<float>(k) + 0.5f) * ys;
    float up = mid, down = mid;
    b.push_back(mid);
    for (int step = 0; step < 3; ++step) {
      up = std::nextafter(up, INFINITY);
      down = std::nextafter(down, -INFINITY);
      b.push_back(up);
      b.push_back(down);
    }
  }
  for (float v : {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, 3.4028235e38f, -3.4028235e38f, INFINITY, -INFINITY, NAN}) {
    b.push_back(v);
  }
  const int64_t n = static_cast<int64_t>(b.size());
  rq_case("quantize near ties " + name, n, std::vector<int32_t>(b.size(), 0), {1.0f}, b, ys, yzp);
  // QLinear (the AMX epilogue divides through the reciprocal as PTSLayerNorm does): codes at the zero point, so
  // acc = 0 and t = b.
  {
    const int64_t k = 64;
    std::vector<int8_t> w(static_cast<size_t>(k * n));
    for (auto& v : w) v = static_cast<int8_t>(rand_int(-128, 127));
    ql_run("quantize near ties " + name, std::vector<u8>(static_cast<size_t>(2 * k), 37), w, 37, {1.0f}, b, ys, yzp, 2,
           k, n);
  }
  for (int64_t c0 = 0; c0 < n; c0 += fqvit::kMaxLnChannels) {  // channels per PTSLayerNorm row at most
    const int64_t c = std::min<int64_t>(fqvit::kMaxLnChannels, n - c0);
    const std::vector<float> beta(b.begin() + c0, b.begin() + c0 + c);
    pts_case("quantize near ties " + name, 2, c, rand_u8(2 * c), rand_u8(c, 0, 3), 0.01f, 100, 1e-5f, ys, yzp,
             std::vector<float>(c, 0.0f), beta);
  }
}

void quantize_ties_suite() {
  std::vector<float> scales = {1.0f, 0.5f, 3.0f, 1.0f / 3.0f, 0.1f, 0.0123f, 0x1.fffffep-4f, 0x1.000002p-7f,
                               0x1p-100f, 0x1p100f, 0x1p-101f, 0x1.fffffep100f, 1e-40f, 7e-6f, 123.25f};
  for (int i = 0; i < 40; ++i) scales.push_back(std::ldexp(rand_f(1.0f, 2.0f), static_cast<int>(rand_int(-20, 8))));
  for (float ys : scales) {
    for (int32_t yzp : {0, 128, 255}) {
      char label[64];
      std::snprintf(label, sizeof(label), "y_scale %a zp %d", static_cast<double>(ys), yzp);
      quantize_ties_case(label, ys, yzp);
    }
  }
}

// Codes as LogIntSoftmax produces them (so int32 accumulation applies), through the scalar CPU path.
std::vector<u8> lis_codes(int64_t rows, int64_t n, int bits) {
  std::vector<u8> x = rand_u8(rows * n);
  std::vector<u8> codes(x.size());
  const int64_t shape[2] = {rows, n};
  fqvit_log_int_softmax_cpu(x.data(), shape, 2, nullptr, nullptr, 0, codes.data(), rand_int(500, 5000), bits, 0);
  return codes;
}

// --- int8 codes -------------------------------------------------------------------------------------------------
using i8 = int8_t;

std::vector<i8> to_i8(const std::vector<u8>& u) {
  std::vector<i8> v(u.size());
  for (size_t i = 0; i < u.size(); ++i) v[i] = static_cast<i8>(static_cast<int>(u[i]) - 128);
  return v;
}

// --- ResidualAdd ------------------------------------------------------------------------------------------------

// One ResidualAdd call: A, B [numel / c, c] codes, channel inputs of 1 or c entries (gamma empty: nullptr).
struct RaCase {
  std::string name;
  int64_t c;
  std::vector<u8> a, b;
  std::vector<float> as, bs, ys, g;
  int32_t azp, bzp, yzp;
};

// Every CPU path on uint8 codes (A, B and Y `offset` bytes into their buffers: unaligned vector loads and stores;
// bytes of Y outside [0, numel) must stay untouched), then on int8 codes u - 128 with zero points z - 128 against the
// int8 oracle, itself checked against the uint8 oracle minus 128.
void ra_case(const RaCase& q, size_t offset = 0) {
  const size_t numel = q.a.size(), guard = 64;
  const float* g = q.g.empty() ? nullptr : q.g.data();
  const auto want = ref_residual_add(q.a, q.b, q.as, q.bs, q.ys, q.g, q.c, q.azp, q.bzp, q.yzp);
  // The C entry of code type T on A, B -> Y (any of them may be one buffer), the case's channel inputs and sizes.
  auto run = [&](const auto* a, const auto* b, auto* y, int isa) {
    const int64_t sizes[] = {static_cast<int64_t>(numel), q.c, static_cast<int64_t>(q.as.size()),
                             static_cast<int64_t>(q.bs.size()), static_cast<int64_t>(q.ys.size()),
                             static_cast<int64_t>(q.g.size())};
    if constexpr (std::is_same_v<std::remove_const_t<std::remove_pointer_t<decltype(a)>>, i8>) {
      return fqvit_residual_add_cpu_i8(a, q.as.data(), q.azp - 128, b, q.bs.data(), q.bzp - 128, q.ys.data(),
                                       q.yzp - 128, g, y, sizes[0], sizes[1], sizes[2], sizes[3], sizes[4], sizes[5],
                                       isa);
    } else {
      return fqvit_residual_add_cpu(a, q.as.data(), q.azp, b, q.bs.data(), q.bzp, q.ys.data(), q.yzp, g, y,
                                    sizes[0], sizes[1], sizes[2], sizes[3], sizes[4], sizes[5], isa);
    }
  };
  std::vector<u8> ab(offset + numel), bb(offset + numel);
  std::copy(q.a.begin(), q.a.end(), ab.begin() + static_cast<std::ptrdiff_t>(offset));
  std::copy(q.b.begin(), q.b.end(), bb.begin() + static_cast<std::ptrdiff_t>(offset));
  for (int isa : g_isas) {
    const std::string where = "ResidualAdd " + q.name + " [" + fqvit_cpu_isa_name(isa) + "]";
    std::vector<u8> yb(offset + numel + guard, 0xA5);
    const int rc = run(ab.data() + offset, bb.data() + offset, yb.data() + offset, isa);
    check(where, std::vector<u8>(yb.begin() + offset, yb.begin() + offset + numel), want, rc);
    bool guard_ok = true;
    for (size_t i = 0; i < yb.size(); ++i) {
      if ((i < offset || i >= offset + numel) && yb[i] != 0xA5) guard_ok = false;
    }
    ++g_cases;
    if (!guard_ok) {
      ++g_failures;
      std::printf("FAIL %s: wrote outside [0, numel)\n", where.c_str());
    }
  }
  const std::vector<i8> a8 = to_i8(q.a), b8 = to_i8(q.b);
  const auto want8 = ref_residual_add(a8, b8, q.as, q.bs, q.ys, q.g, q.c, q.azp - 128, q.bzp - 128, q.yzp - 128);
  check("int8 oracle = uint8 - 128: ResidualAdd " + q.name, want8, to_i8(want), 0);
  for (int isa : g_isas) {
    std::vector<i8> y(numel);
    const int rc = run(a8.data(), b8.data(), y.data(), isa);
    check("int8 ResidualAdd " + q.name + " [" + fqvit_cpu_isa_name(isa) + "]", y, want8, rc);
  }
  // In place on B, as the op runs where onnxruntime hands it B's buffer for Y (MayInplace).
  for (int isa : g_isas) {
    std::vector<u8> yb(bb);
    const int rc = run(ab.data() + offset, yb.data() + offset, yb.data() + offset, isa);
    check("ResidualAdd in place " + q.name + " [" + fqvit_cpu_isa_name(isa) + "]",
          std::vector<u8>(yb.begin() + offset, yb.begin() + offset + numel), want, rc);
    std::vector<i8> y8(b8);
    const int rc8 = run(a8.data(), y8.data(), y8.data(), isa);
    check("int8 ResidualAdd in place " + q.name + " [" + fqvit_cpu_isa_name(isa) + "]", y8, want8, rc8);
  }
}

// PTS-style per-channel scales s * 2^alpha_c (alpha_c in 0..3), or one element when `n` is 1.
std::vector<float> pts_scales(int64_t n, float s) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = s * static_cast<float>(1 << rand_int(0, 3));
  return v;
}

// Random codes and zero points; `per_channel` says, input by input (a_scale, b_scale, y_scale, gamma), whether it
// holds c entries or one; gamma absent when `gamma` is false.
void ra_random(const std::string& name, int64_t rows, int64_t c, const bool per_channel[4], bool gamma = true,
               size_t offset = 0) {
  auto n = [&](int k) { return per_channel[k] ? c : 1; };
  RaCase q{name,
           c,
           rand_u8(static_cast<size_t>(rows * c)),
           rand_u8(static_cast<size_t>(rows * c)),
           pts_scales(n(0), 0.02f),
           rand_fv(static_cast<size_t>(n(1)), 0.005f, 0.02f),
           pts_scales(n(2), 0.03f),
           gamma ? rand_fv(static_cast<size_t>(n(3)), -0.5f, 0.5f) : std::vector<float>{},
           static_cast<int32_t>(rand_int(0, 255)),
           static_cast<int32_t>(rand_int(0, 255)),
           static_cast<int32_t>(rand_int(0, 255))};
  ra_case(q, offset);
}

void residual_add_suite(bool quick) {
  const bool all[4] = {true, true, true, true}, none[4] = {false, false, false, false};
  const bool pts[4] = {true, false, true, false};  // the exporter's usual form: PTS a_scale and y_scale per channel
  for (int64_t c : {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97, 255, 256, 257, 384, 768}) {
    ra_random("C=" + std::to_string(c), 5, c, all);
    ra_random("C=" + std::to_string(c) + " pts", 4, c, pts);
    ra_random("C=" + std::to_string(c) + " all broadcast", 3, c, none);
    ra_random("C=" + std::to_string(c) + " no gamma", 3, c, pts, false);
    for (int k = 0; k < 4; ++k) {  // one input per channel, the others broadcast
      bool one[4] = {false, false, false, false};
      one[k] = true;
      ra_random("C=" + std::to_string(c) + " input " + std::to_string(k) + " per channel", 3, c, one);
    }
  }
  ra_random("empty", 0, 16, all);
  ra_random("deit-s", quick ? 20 : 197, 384, pts);
  ra_random("long row, all broadcast", 1, quick ? 100003 : 1000003, none);
  ra_random("unaligned +1", 7, 97, all, true, 1);
  ra_random("unaligned +17, broadcast", 1, 1001, none, true, 17);
  {
    // Codes at the ends and a tiny y_scale: saturation at 0 and 255 (and -128, 127).
    const int64_t c = 100;
    std::vector<u8> a(6 * c), b(6 * c);
    for (auto* v : {&a, &b}) {
      for (auto& x : *v) x = rand_int(0, 1) ? 255 : 0;
    }
    ra_case({"saturate both ends", c, a, b, pts_scales(c, 0.02f), {0.01f}, {0.001f}, {1.0f}, 128, 0, 128});
    // Ties: (a - 128) * 0.5 + (b - 7) * 1, y_scale 1: every odd a lands on a .5 tie (round half to even).
    ra_case({"ties", 45, rand_u8(45 * 11), rand_u8(45 * 11), {0.5f}, {1.0f}, {1.0f}, {1.0f}, 128, 7, 100});
    ra_case({"ties per channel", 45, rand_u8(45 * 11), rand_u8(45 * 11), std::vector<float>(45, 0.25f),
             std::vector<float>(45, 0.5f), std::vector<float>(45, 0.5f), std::vector<float>(45, 0.5f), 3, 250, 1});
    // gamma 1 in every channel (the AVX-512 body leaves v * gamma out) and in all channels but one (it must not).
    std::vector<float> ones(97, 1.0f), ones_but_one(97, 1.0f);
    ones_but_one[60] = 0.5f;
    ra_case({"gamma 1 per channel", 97, rand_u8(97 * 5), rand_u8(97 * 5), pts_scales(97, 0.02f), {0.03f},
             pts_scales(97, 0.05f), ones, 120, 130, 125});
    ra_case({"gamma 1 but channel 60", 97, rand_u8(97 * 5), rand_u8(97 * 5), pts_scales(97, 0.02f), {0.03f},
             pts_scales(97, 0.05f), ones_but_one, 120, 130, 125});
    // Extreme scales: y_scale subnormal and huge, gamma overflowing to +-inf, a_scale 0.
    ra_case({"y_scale subnormal", 24, rand_u8(96), rand_u8(96), {0.02f}, {0.01f}, {1e-40f}, {1.0f}, 0, 255, 128});
    ra_case({"y_scale huge", 24, rand_u8(96), rand_u8(96), {0.02f}, {0.01f}, {1e30f}, {1.0f}, 5, 6, 7});
    std::vector<float> huge(24);
    for (size_t k = 0; k < huge.size(); ++k) huge[k] = k % 2 ? -3e38f : 3e38f;
    ra_case({"gamma huge", 24, rand_u8(96), rand_u8(96), {0.02f}, {1.0f}, {0.03f}, huge, 128, 128, 128});
  }
  // Argument checks.
  const u8 x[8] = {};
  u8 y[8] = {};
  const float f[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  struct Bad {
    int64_t numel, c, as, bs, ys, gs;
    const float* g;
    int32_t zp;
    const char* fragment;
  };
  for (const Bad& bad : {Bad{8, 4, 3, 4, 4, 4, f, 0, "a_scale must have C = 4"},
                         Bad{8, 4, 4, 2, 4, 4, f, 0, "b_scale must have C = 4"},
                         Bad{8, 4, 4, 4, 0, 4, f, 0, "y_scale must have C = 4"},
                         Bad{8, 4, 4, 4, 4, 3, f, 0, "gamma must have C = 4"},
                         Bad{8, 4, 4, 4, 4, 0, f, 0, "gamma nullptr"},
                         Bad{8, 4, 4, 4, 4, 4, nullptr, 0, "gamma nullptr"},
                         Bad{8, 3, 3, 3, 3, 3, f, 0, "not a multiple of C = 3"},
                         Bad{8, 4, 4, 4, 4, 4, f, 256, "y_zero_point must be a uint8 value"},
                         Bad{8, -1, 1, 1, 1, 1, f, 0, "negative"}}) {
    ++g_cases;
    if (fqvit_residual_add_cpu(x, f, 0, x, f, 0, f, bad.zp, bad.g, y, bad.numel, bad.c, bad.as, bad.bs, bad.ys, bad.gs,
                               -1) == 0 ||
        std::strstr(fqvit_last_error(), bad.fragment) == nullptr) {
      ++g_failures;
      std::printf("FAIL ResidualAdd bad arguments accepted (or unclear message '%s', want '%s')\n", fqvit_last_error(),
                  bad.fragment);
    }
  }
  {
    const i8 x8[4] = {};
    i8 y8[4] = {};
    ++g_cases;
    if (fqvit_residual_add_cpu_i8(x8, f, 128, x8, f, 0, f, 0, f, y8, 4, 4, 1, 1, 1, 1, -1) == 0 ||
        std::strstr(fqvit_last_error(), "a_zero_point must be a int8 value") == nullptr) {
      ++g_failures;
      std::printf("FAIL int8 ResidualAdd zero-point range (message '%s')\n", fqvit_last_error());
    }
  }
}

// The int8 form of every op on uint8 data u (codes u - 128, zero points z - 128): the _i8 entries against the
// int8 oracle, and (a check of the oracle itself) against the uint8 oracle minus 128.
void int8_suite(bool quick) {
  auto minus128 = [](const std::vector<u8>& u) { return to_i8(u); };
  for (int64_t c : {1, 7, 16, 33, 64, 97, 384, 4096}) {  // PTSLayerNorm
    const int64_t rows = c == 4096 ? 2 : 9;
    const std::vector<u8> xu = rand_u8(rows * c), alpha = rand_u8(c, 0, 3);
    std::vector<float> g(c), b(c);
    for (int64_t k = 0; k < c; ++k) {
      g[k] = rand_f(-2.0f, 2.0f);
      b[k] = rand_f(-1.0f, 1.0f);
    }
    const int32_t xzp = static_cast<int32_t>(rand_int(0, 255)), yzp = static_cast<int32_t>(rand_int(0, 255));
    const float xs = rand_f(0.005f, 0.05f), ys = rand_f(0.01f, 0.1f), eps = c == 7 ? 0.0f : 1e-5f;
    const auto want = ref_pts(to_i8(xu), alpha, g, b, c, xs, xzp - 128, eps, ys, yzp - 128);
    check("int8 oracle = uint8 - 128: PTSLayerNorm C=" + std::to_string(c), want,
          minus128(ref_pts(xu, alpha, g, b, c, xs, xzp, eps, ys, yzp)), 0);
    const std::vector<i8> x = to_i8(xu);
    for (int isa : g_isas) {
      std::vector<i8> y(x.size());
      const int rc = fqvit_pts_layernorm_cpu_i8(x.data(), alpha.data(), g.data(), b.data(), y.data(), rows, c, xs,
                                                xzp - 128, eps, ys, yzp - 128, isa);
      check("int8 PTSLayerNorm C=" + std::to_string(c) + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
    }
  }
  for (int64_t n : {1, 17, 64, 197, 1000}) {  // LogIntSoftmax, with a per-element mask and a fully masked row
    const int64_t rows = 5;
    const std::vector<u8> xu = rand_u8(rows * n);
    std::vector<u8> mask = rand_u8(rows * n, 0, 1);
    for (int64_t j = 0; j < n; ++j) mask[2 * n + j] = 1;
    for (int64_t j = 0; j < n; ++j) mask[0 * n + j] = 0;
    const int64_t mult = rand_int(1, 40000);
    const auto want = ref_lis(to_i8(xu), mask, n, mult, 4);
    check("int8 oracle = uint8: LogIntSoftmax N=" + std::to_string(n), want, ref_lis(xu, mask, n, mult, 4), 0);
    const std::vector<i8> x = to_i8(xu);
    const int64_t shape[2] = {rows, n};
    for (int isa : g_isas) {
      std::vector<u8> y(x.size());
      int rc = fqvit_log_int_softmax_cpu_i8(x.data(), shape, 2, mask.data(), shape, 2, y.data(), mult, 4, isa);
      check("int8 LogIntSoftmax N=" + std::to_string(n) + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
      rc = fqvit_log_int_softmax_cpu_i8(x.data(), shape, 2, nullptr, nullptr, 0, y.data(), mult, 4, isa);
      check("int8 LogIntSoftmax N=" + std::to_string(n) + " no mask [" + fqvit_cpu_isa_name(isa) + "]", y,
            ref_lis(x, {}, n, mult, 4), rc);
    }
  }
  for (int64_t d : {1, 17, 64, 130}) {  // LISMatMul: 3 batch entries, rows beyond one work item of 64
    const int64_t batch = 3, m = 70, n = 29;
    const std::vector<u8> a = lis_codes(batch * m, n, 4), vu = rand_u8(batch * n * d);
    const int32_t vzp = static_cast<int32_t>(rand_int(0, 255)), yzp = static_cast<int32_t>(rand_int(0, 255));
    const float vs = rand_f(0.01f, 0.2f), ys = rand_f(0.005f, 0.1f);
    const std::vector<i8> v = to_i8(vu);
    const auto want = ref_lismm(a, v, batch, m, n, d, vs, vzp - 128, ys, yzp - 128, 4);
    check("int8 oracle = uint8 - 128: LISMatMul D=" + std::to_string(d), want,
          minus128(ref_lismm(a, vu, batch, m, n, d, vs, vzp, ys, yzp, 4)), 0);
    for (int isa : g_isas) {
      std::vector<i8> y(batch * m * d);
      const int rc = fqvit_lis_matmul_cpu_i8(a.data(), v.data(), y.data(), batch, m, n, d, vs, vzp - 128, ys,
                                             yzp - 128, 4, isa);
      check("int8 LISMatMul D=" + std::to_string(d) + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
    }
  }
  {  // LISMatMul int64 rows (codes 0) in int8
    const int64_t n = quick ? 600 : 3000;
    const std::vector<u8> a(9 * n, 0);
    const std::vector<i8> v = to_i8(rand_u8(n * 24));
    const auto want = ref_lismm(a, v, 1, 9, n, 24, 0.05f, -128, 0.02f, 0, 4);
    for (int isa : g_isas) {
      std::vector<i8> y(9 * 24);
      const int rc = fqvit_lis_matmul_cpu_i8(a.data(), v.data(), y.data(), 1, 9, n, 24, 0.05f, -128, 0.02f, 0, 4, isa);
      check(std::string("int8 LISMatMul int64 rows [") + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
    }
  }
  for (int64_t n : {0, 1, 33, 256, 4099}) {  // Lookup: every byte, as index x mod 256
    std::vector<u8> xu = rand_u8(n);
    if (n == 256) {
      for (int k = 0; k < 256; ++k) xu[k] = static_cast<u8>(k);
    }
    const std::vector<i8> x = to_i8(xu), table = to_i8(rand_u8(256));
    const auto want = ref_lookup(x, table);
    for (int isa : g_isas) {
      std::vector<i8> y(x.size());
      const int rc = fqvit_lookup_cpu_i8(x.data(), table.data(), y.data(), n, 256, isa);
      check("int8 Lookup n=" + std::to_string(n) + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
    }
  }
  {  // Requantize: a ramp over every code (saturation at -128 and 127), random channels, long broadcast rows
    std::vector<int32_t> ramp(10000);
    for (int i = 0; i < 10000; ++i) ramp[i] = i - 5000;
    struct Rq {
      std::string name;
      int64_t n;
      std::vector<int32_t> a;
      std::vector<float> m, b;
      float ys;
      int32_t zp;
    };
    const std::vector<Rq> rqs = {
        {"ramp", 1000, ramp, {0.01f}, {0.0f}, 0.25f, 128},
        {"channels N=97", 97, rand_i32(97 * 7, -(1 << 20), 1 << 20), rand_fv(97, 2e-7f, 2e-6f),
         rand_fv(97, -1.0f, 1.0f), 0.03f, static_cast<int32_t>(rand_int(0, 255))},
        {"long row", 1, rand_i32(quick ? 100003 : 300007, -(1 << 20), 1 << 20), {1e-6f}, {0.25f}, 0.02f, 3},
        {"any int32", 100, rand_i32(3000, -2147483648LL, 2147483647LL), std::vector<float>(100, 1.0f), {0.0f}, 1e-3f,
         7},
    };
    for (const Rq& q : rqs) {
      const auto want = ref_requantize<i8>(q.a, q.m, q.b, q.n, q.ys, q.zp - 128);
      check("int8 oracle = uint8 - 128: Requantize " + q.name, want,
            minus128(ref_requantize(q.a, q.m, q.b, q.n, q.ys, q.zp)), 0);
      for (int isa : g_isas) {
        std::vector<i8> y(q.a.size());
        const int rc = fqvit_requantize_cpu_i8(q.a.data(), q.m.data(), q.b.data(), y.data(),
                                               static_cast<int64_t>(q.a.size()), q.n, static_cast<int64_t>(q.m.size()),
                                               static_cast<int64_t>(q.b.size()), q.ys, q.zp - 128, isa);
        check("int8 Requantize " + q.name + " [" + fqvit_cpu_isa_name(isa) + "]", y, want, rc);
      }
    }
  }
  // Zero points outside int8 are rejected by the int8 entries (and int8 ones accepted).
  {
    const int32_t a[4] = {};
    const float m[1] = {1.0f}, b[1] = {0.0f};
    i8 y[4] = {};
    ++g_cases;
    if (fqvit_requantize_cpu_i8(a, m, b, y, 4, 4, 1, 1, 0.1f, 128, -1) == 0 ||
        std::strstr(fqvit_last_error(), "int8") == nullptr || fqvit_requantize_cpu_i8(a, m, b, y, 4, 4, 1, 1, 0.1f,
                                                                                      -128, -1) != 0) {
      ++g_failures;
      std::printf("FAIL int8 Requantize zero-point range (message '%s')\n", fqvit_last_error());
    }
  }
}

}  // namespace

// --- QLinear -----------------------------------------------------------------------------------------------------------

// docs/ops.md Sec. 5 (fused ops): acc = sum_k (x - zp) * w in int64 (no overflow whatever K), then requantize_one.
template <typename T>
std::vector<T> ref_qlinear(const std::vector<T>& x, const std::vector<int8_t>& w, int32_t xzp,
                           const std::vector<float>& m, const std::vector<float>& b, float ys, int32_t yzp, int64_t rows,
                           int64_t k, int64_t n) {
  std::vector<T> y(static_cast<size_t>(rows * n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      int64_t acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += (static_cast<int64_t>(x[r * k + i]) - xzp) * w[i * n + c];
      y[r * n + c] = fqvit::requantize_one<T>(static_cast<int32_t>(acc), m[m.size() == 1 ? 0 : c],
                                              b[b.size() == 1 ? 0 : c], ys, yzp);
    }
  }
  return y;
}

// The kernel's own work items of one case on path `isa`, split between two threads running at once (the first half
// in one call, the second item by item backwards from the last), which share the kernel's pool of primitives.
template <typename T>
void ql_cuts(const std::string& name, const std::vector<T>& x, const std::vector<int8_t>& w, int32_t xzp,
             const std::vector<float>& m, const std::vector<float>& b, float ys, int32_t yzp, int64_t rows, int64_t k,
             int64_t n, const std::vector<T>& want, int isa) {
  const fqvit::QLinearParams p{rows, k, n, static_cast<int64_t>(m.size()), static_cast<int64_t>(b.size()), xzp, ys,
                               yzp, std::is_same<T, i8>::value ? fqvit::CodeType::kInt8 : fqvit::CodeType::kUint8};
  const fqvit::QLinearCpu ql(w.data(), k, n, p.code);
  const int64_t items = ql.items(p), half = items / 2;
  std::vector<T> y(want.size());
  std::thread second([&] {
    for (int64_t i = items - 1; i >= half; --i) {
      ql.run_items(x.data(), m.data(), b.data(), y.data(), p, i, i + 1, static_cast<fqvit::Isa>(isa));
    }
  });
  ql.run_items(x.data(), m.data(), b.data(), y.data(), p, 0, half, static_cast<fqvit::Isa>(isa));
  second.join();
  check("QLinear " + name + ", " + std::to_string(items) + " items on two threads [" + fqvit_cpu_isa_name(isa) + "]",
        y, want, 0);
}

// One QLinear case in both code types (int8: codes and zero points shifted by -128) on every CPU path, through the C
// entry and in the kernel's own cuts (ql_cuts).
void ql_run(const std::string& name, const std::vector<u8>& x, const std::vector<int8_t>& w, int32_t xzp,
            const std::vector<float>& m, const std::vector<float>& b, float ys, int32_t yzp, int64_t rows, int64_t k,
            int64_t n) {
  const std::vector<u8> want = ref_qlinear(x, w, xzp, m, b, ys, yzp, rows, k, n);
  const std::vector<i8> x8 = to_i8(x), want8 = ref_qlinear(x8, w, xzp - 128, m, b, ys, yzp - 128, rows, k, n);
  check("int8 oracle = uint8 - 128: QLinear " + name, want8, to_i8(want), 0);
  for (int isa : g_isas) {
    const std::string tag = " [" + std::string(fqvit_cpu_isa_name(isa)) + "]";
    std::vector<u8> y(want.size());
    check("QLinear " + name + tag, y, want,
          fqvit_qlinear_cpu(x.data(), w.data(), xzp, m.data(), b.data(), ys, yzp, y.data(), rows, k, n,
                            static_cast<int64_t>(m.size()), static_cast<int64_t>(b.size()), isa));
    std::vector<i8> y8(want8.size());
    check("int8 QLinear " + name + tag, y8, want8,
          fqvit_qlinear_cpu_i8(x8.data(), w.data(), xzp - 128, m.data(), b.data(), ys, yzp - 128, y8.data(), rows, k,
                               n, static_cast<int64_t>(m.size()), static_cast<int64_t>(b.size()), isa));
    if (rows * n > 0) {
      ql_cuts(name, x, w, xzp, m, b, ys, yzp, rows, k, n, want, isa);
      ql_cuts(name, x8, w, xzp - 128, m, b, ys, yzp - 128, rows, k, n, want8, isa);
    }
  }
}

// A random QLinear case. extreme: codes 0/255 against a zero point at the other end and weights -128/127 (the
// largest |acc|).
void ql_case(const std::string& name, int64_t rows, int64_t k, int64_t n, bool extreme, bool mv = true, bool bv = true) {
  std::vector<u8> x(static_cast<size_t>(rows * k));
  std::vector<int8_t> w(static_cast<size_t>(k * n));
  const int32_t xzp = extreme ? 0 : static_cast<int32_t>(rand_int(0, 255));
  for (auto& v : x) v = extreme ? 255 : static_cast<u8>(rand_int(0, 255));
  for (auto& v : w) v = static_cast<int8_t>(extreme ? (rand_int(0, 1) ? 127 : -128) : rand_int(-127, 127));
  const float scale = 1.0f / (64.0f * std::sqrt(static_cast<float>(std::max<int64_t>(k, 1))) * 128.0f);
  const auto m = rand_fv(mv ? n : 1, 0.5f * scale, 2.0f * scale), b = rand_fv(bv ? n : 1, -1.0f, 1.0f);
  const float ys = extreme ? 0.004f : rand_f(0.01f, 0.03f);
  const int32_t yzp = static_cast<int32_t>(rand_int(0, 255));
  ql_run(name, x, w, xzp, m, b, ys, yzp, rows, k, n);
}

// Int16 pair saturation (what oneDNN's int8 matmul does without VNNI: vpmaddubsw adds the products of two adjacent
// codes and weights into int16, saturating): every code 255 against zero point 0 (x_max) or 0 against 255, W +127 in
// even columns and -128 in odd ones, so every adjacent pair sums to 2 * 255 * 127 = 64770 or -65280 in magnitude,
// far outside int16. The multiplier maps the exact |acc| (up to 255 * 128 * K) to about 100 around y_zp = 128, so a
// saturated sum (|acc| <= 32767 K / 2) lands some 50 codes away.
void ql_pairs_case(int64_t rows, int64_t k, int64_t n, bool x_max) {
  const std::vector<u8> x(static_cast<size_t>(rows * k), x_max ? 255 : 0);
  std::vector<int8_t> w(static_cast<size_t>(k * n));
  for (int64_t i = 0; i < k * n; ++i) w[i] = static_cast<int8_t>((i % n) % 2 ? -128 : 127);
  const std::vector<float> m(1, 100.0f / (255.0f * 128.0f * static_cast<float>(k))), b(1, 0.0f);
  ql_run(std::string("int16 pairs ") + (x_max ? "255-0 " : "0-255 ") + std::to_string(rows) + "x" +
             std::to_string(k) + "x" + std::to_string(n),
         x, w, x_max ? 0 : 255, m, b, 1.0f, 128, rows, k, n);
}

// The fused epilogue's bounds (qlinear_cpu.cc, "The fused epilogue"), with acc = sum_k (x - zp) W far beyond 2^24
// (odd values, which float32 rounds to even) and Y sensitive to that rounding: weights 100..127 at the first 600
// positions and -120..-100 at the next 900; codes 250..253 at the first `wide` positions, 0 elsewhere; x_zero_point
// 255 (int8: 127), so x_zero_point * sum_k W stays within 2^24; multiplier 1/32 and y_scale 1 (a rounding of acc by
// one moves t by 1/32), the bias centring each channel's outputs on y_zero_point. wide = 500 keeps every row within
// sum_k |x| * max|W| <= 2^24 (the fused path); wide = 600 takes every row beyond both bounds (sum_k x W itself
// beyond 2^24: the int32 path), where a matmul that rounded sum_k x W and x_zero_point * sum_k W apart would differ.
// wide = 0: codes 0..3 everywhere and every weight 100..127, so the rows fit but x_zero_point * sum_k W lies beyond
// 2^24 (the int32 path again). Rows listed in `beyond` take wide = 600 whatever `wide` is: with wide = 500 and more
// rows than a block of kQLinearBlockRows, the block falls back to sub-blocks, fused beside int32 ones; then the first
// half of the channels is centred on the `beyond` rows and the other half on the rest, so both are sensitive.
void ql_compensation_case(int64_t rows, int64_t n, int64_t wide, const std::vector<int64_t>& beyond = {}) {
  const int64_t k1 = 600, k2 = 900, k = k1 + k2 + 3;
  const int32_t xzp = 255;
  std::vector<u8> x(static_cast<size_t>(rows * k), 0);
  std::vector<int8_t> w(static_cast<size_t>(k * n), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t wr = std::count(beyond.begin(), beyond.end(), r) ? 600 : wide;
    for (int64_t i = 0; i < (wr > 0 ? wr : k); ++i) {
      x[r * k + i] = static_cast<u8>(wr > 0 ? rand_int(250, 253) : rand_int(0, 3));
    }
  }
  for (int64_t i = 0; i < k1 + k2; ++i) {
    for (int64_t c = 0; c < n; ++c) {
      w[i * n + c] = static_cast<int8_t>(i < k1 || wide == 0 ? rand_int(100, 127) : rand_int(-120, -100));
    }
  }
  const std::vector<float> m(static_cast<size_t>(n), 1.0f / 32.0f);
  std::vector<float> b(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) {
    int64_t sum = 0, count = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const bool listed = std::count(beyond.begin(), beyond.end(), r) > 0;
      if (!beyond.empty() && listed != (c < n / 2)) continue;
      for (int64_t i = 0; i < k; ++i) sum += (static_cast<int64_t>(x[r * k + i]) - xzp) * w[i * n + c];
      ++count;
    }
    b[c] = -static_cast<float>(static_cast<double>(sum) / static_cast<double>(count) / 32.0);
  }
  ql_run("acc beyond 2^24, " +
             std::string(wide == 0 ? "zero-point term beyond" : (wide > 500 ? "rows beyond" : "rows within")) +
             " the fused bounds" + (beyond.empty() ? "" : ", " + std::to_string(beyond.size()) + " rows beyond") + " " +
             std::to_string(rows) + "x" + std::to_string(k) + "x" + std::to_string(n),
         x, w, xzp, m, b, 1.0f, 128, rows, k, n);
}

// Multipliers, biases and output scales that are not finite, zero or negative (the fused epilogue is used only for
// finite ones and a finite, nonzero y_scale; everything else is the int32 path, which keeps the reference's NaN
// rule: a NaN quotient gives the lowest code).
void ql_nonfinite_cases() {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t rows = 37, k = 40, n = 48;
  std::vector<u8> x(static_cast<size_t>(rows * k));
  std::vector<int8_t> w(static_cast<size_t>(k * n));
  for (auto& v : x) v = static_cast<u8>(rand_int(0, 255));
  for (auto& v : w) v = static_cast<int8_t>(rand_int(-127, 127));
  const auto m = rand_fv(n, 1e-5f, 4e-5f), b = rand_fv(n, -1.0f, 1.0f);
  auto m_bad = m, b_bad = b;
  m_bad[3] = nan;
  m_bad[5] = inf;
  m_bad[6] = -inf;
  m_bad[9] = 3e38f;
  b_bad[7] = -inf;
  b_bad[8] = nan;
  ql_run("non-finite multipliers", x, w, 17, m_bad, b, 0.02f, 100, rows, k, n);
  ql_run("non-finite biases", x, w, 17, m, b_bad, 0.02f, 100, rows, k, n);
  ql_run("huge multiplier, inf bias", x, w, 17, std::vector<float>{3e38f}, std::vector<float>{inf}, 0.02f, 100, rows, k,
         n);
  for (float ys : {0.0f, -0.0f, inf, -inf, nan, -0.02f, 1e-44f, 3e-39f}) {
    ql_run("y_scale " + std::to_string(ys), x, w, 17, m, b, ys, 100, rows, k, n);
  }
}

// The AMX tile loop called directly (qlinear_amx.h), independent of the thread count: a block larger than one chunk of
// A, K not a multiple of 64, a partial last tile, and a call split into column shares (one of them empty), against
// ref_qlinear (uint8; flip gives the same codes ^ 0x80). Only where the CPU and OS grant AMX.
void ql_amx_direct(const std::string& name, int64_t rows, int64_t k, int64_t n, const std::vector<int64_t>& cuts) {
  if (!fqvit::amx_usable()) return;
  const std::vector<u8> x = rand_u8(static_cast<size_t>(rows * k));
  std::vector<int8_t> w(static_cast<size_t>(k * n));
  for (auto& v : w) v = static_cast<int8_t>(rand_int(-128, 127));
  const int32_t xzp = static_cast<int32_t>(rand_int(0, 255)), yzp = static_cast<int32_t>(rand_int(0, 255));
  const float scale = 1.0f / (64.0f * std::sqrt(static_cast<float>(k)) * 128.0f);
  const auto m = rand_fv(n, 0.5f * scale, 2.0f * scale), b = rand_fv(n, -1.0f, 1.0f);
  const float ys = rand_f(0.01f, 0.03f);
  const std::vector<u8> want = ref_qlinear(x, w, xzp, m, b, ys, yzp, rows, k, n);
  std::vector<int32_t> term(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) {
    int64_t sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += w[i * n + c];
    term[c] = static_cast<int32_t>(static_cast<uint32_t>(xzp) * static_cast<uint32_t>(sum));
  }
  fqvit::RequantizeParams rq;
  rq.numel = rows * n;
  rq.n = n;
  rq.multiplier_size = n;
  rq.bias_size = n;
  rq.y_scale = ys;
  rq.y_zero_point = yzp;
  const fqvit::AmxWeights amx(w.data(), k, n);
  for (bool flip : {false, true}) {
    std::vector<u8> y(want.size(), 0);
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      amx.run(x.data(), rows, term.data(), m.data(), b.data(), rq, flip, y.data(), cuts[i], cuts[i + 1]);
    }
    std::vector<u8> expect = want;
    if (flip) {
      for (auto& v : expect) v = static_cast<u8>(v ^ 0x80);
    }
    check("QLinear AMX direct " + name + (flip ? ", flipped" : ""), y, expect, 0);
  }
}

void qlinear_suite(bool quick) {
  ql_amx_direct("one call 700x768x40 (two chunks of A)", 700, 768, 40, {0, -1});
  ql_amx_direct("one call 400x1503x70 (K padded, two chunks)", 400, 1503, 70, {0, -1});
  ql_amx_direct("shares 37x1024x1040 (33 pairs: 0-10, 10-10, 10-33)", 37, 1024, 1040, {0, 10, 10, 33});
  ql_amx_direct("shares 5x100x200 (K padded, 7 pairs: 0-3, 3-7)", 5, 100, 200, {0, 3, 7});
  ql_case("1x1x1", 1, 1, 1, false);
  ql_case("K0 3x0x5", 3, 0, 5, false);
  ql_case("K1 37x1x19", 37, 1, 19, false);
  ql_case("N1 37x8x1", 37, 8, 1, false);
  ql_case("block tail 131x40x24", 131, 40, 24, false);
  ql_case("odd 65x17x33", 65, 17, 33, false);
  ql_case("broadcast m 5x20x97", 5, 20, 97, false, false, true);
  ql_case("broadcast b 5x20x97", 5, 20, 97, false, true, false);
  ql_case("broadcast both 70x9x31", 70, 9, 31, false, false, false);
  ql_case("extreme |acc| 3x4096x17", 3, 4096, 17, true);
  ql_case("deit qkv rows 197x384x64", 197, 384, 64, false);
  ql_case("column blocks 133x72x200", 133, 72, 200, false);
  ql_case("column blocks, broadcast m 70x24x97", 70, 24, 97, false, false, true);
  if (!quick) ql_case("deit fc2 rows 129x1536x40", 129, 1536, 40, false);
  // The AMX path's shapes (qlinear_amx.cc, qlinear_cpu.cc run_amx): whole tiles read in place (rows a multiple of 16,
  // K of 64), a partial last tile beside in-place ones, and blocks of more rows than one chunk of A (about 512 KiB: 672
  // rows at K = 768, 160 at K = 3072; two threads give blocks of 700 and 200 rows).
  ql_case("AMX whole tiles 96x256x64", 96, 256, 64, false);
  ql_case("AMX partial tile 101x768x80", 101, 768, 80, false);
  ql_case("AMX row chunks 1400x768x40", 1400, 768, 40, false);
  ql_case("AMX row chunks 400x3072x24", 400, 3072, 24, false);
  // Few rows against W of at least 1 MiB: each block takes all rows against a share of the 32-column pairs (N not a
  // multiple of 32, so the last pair is partial).
  ql_case("AMX column shares 37x1024x1040", 37, 1024, 1040, false);
  ql_case("AMX column shares 1x1024x1100", 1, 1024, 1100, false);
  for (int64_t wide : {500, 600, 0}) {
    ql_compensation_case(70, 80, wide);
    ql_compensation_case(5, 200, wide);
  }
  // Blocks of hundreds of rows (kQLinearBlockRows) with a few rows beyond the bounds: their sub-blocks take the int32
  // path, the others stay fused.
  {
    std::vector<int64_t> beyond(100);
    for (int64_t i = 0; i < 100; ++i) beyond[i] = 600 + i;
    ql_compensation_case(1100, 24, 500, beyond);
  }
  ql_nonfinite_cases();
  for (bool x_max : {true, false}) {
    ql_pairs_case(130, 4093, 64, x_max);
    ql_pairs_case(3, fqvit::kMaxQlinearK, 16, x_max);
  }
  {  // rejected arguments, each with a message naming the problem
    const u8 x[4] = {};
    const int8_t w[4] = {};
    const float m[2] = {1, 1}, b[2] = {0, 0};
    u8 y[4];
    struct Bad {
      int64_t rows, k, n, ms;
      int32_t xzp;
      const char* fragment;
    };
    for (const Bad& bad : {Bad{2, 2, 2, 3, 0, "multiplier must have N = 2"}, Bad{2, 2, 2, 2, 256, "x_zero_point"},
                           Bad{1, fqvit::kMaxQlinearK + 1, 2, 2, 0, "exceeds"}, Bad{2, -1, 2, 2, 0, "negative"}}) {
      ++g_cases;
      if (fqvit_qlinear_cpu(x, w, bad.xzp, m, b, 0.1f, 0, y, bad.rows, bad.k, bad.n, bad.ms, 2, -1) == 0 ||
          std::strstr(fqvit_last_error(), bad.fragment) == nullptr) {
        ++g_failures;
        std::printf("FAIL QLinear bad arguments accepted (or unclear message '%s', want '%s')\n", fqvit_last_error(),
                    bad.fragment);
      }
    }
  }
}

// --- LISAttention ------------------------------------------------------------------------------------------------------

namespace {

using fqvit::LisAttentionParams;

// q - zp and k - zp (int64) and v (codes) of head h of batch entry b, [N, D] each, from QKV [B, N, 3, heads, D].
template <typename T>
void la_parts(const std::vector<T>& qkv, const LisAttentionParams& p, int64_t b, int64_t h, std::vector<int64_t>& q,
              std::vector<int64_t>& k, std::vector<T>& v) {
  const int64_t n = p.tokens, d = p.head_dim, hd = p.heads * d;
  q.resize(static_cast<size_t>(n * d));
  k.resize(q.size());
  v.resize(q.size());
  for (int64_t t = 0; t < n; ++t) {
    const T* row = qkv.data() + (b * n + t) * 3 * hd + h * d;
    for (int64_t e = 0; e < d; ++e) {
      q[t * d + e] = static_cast<int64_t>(row[e]) - p.qkv_zero_point;
      k[t * d + e] = static_cast<int64_t>(row[hd + e]) - p.qkv_zero_point;
      v[t * d + e] = row[2 * hd + e];
    }
  }
}

// acc[i, j] = sum_d (q[i, d] - zp)(k[j, d] - zp) of one (b, h), [N, N], exact in int64.
std::vector<int64_t> la_qk(const std::vector<int64_t>& q, const std::vector<int64_t>& k, int64_t n, int64_t d) {
  std::vector<int64_t> acc(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t e = 0; e < d; ++e) s += q[i * d + e] * k[j * d + e];
      acc[i * n + j] = s;
    }
  }
  return acc;
}

// docs/ops.md Sec. 5 (fused ops, LISAttention), composed from this driver's transcriptions: per batch entry b and
// head h, with q, k, v the [N, D] parts of QKV [B, N, 3, heads, D] and zp = qkv_zero_point,
//   acc    = (q - zp)(k - zp)^T                                                  exact int64 (la_qk)
//   logits = ref_requantize(acc, qk_multiplier, bias 0.0f, logits_scale, logits_zero_point)      (Sec. 1)
//   codes  = ref_lis(logits rows, no mask, lis_multiplier, bits)                                 (Sec. 3)
//   out    = ref_lismm(codes, v, qkv_scale, zp, y_scale, y_zero_point, bits)                     (Sec. 4)
//   Y[b, i, h * D + d] = out[i, d]
// acc must lie in int32 (Requantize's input type; the D limit guarantees it): one outside is reported as a failure.
template <typename T>
std::vector<T> ref_lis_attention(const std::vector<T>& qkv, const LisAttentionParams& p) {
  const int64_t n = p.tokens, d = p.head_dim, heads = p.heads;
  std::vector<T> y(static_cast<size_t>(p.batch * n * heads * d));
  if (n == 0 || d == 0) return y;
  std::vector<int64_t> q, k;
  std::vector<T> v;
  std::vector<int32_t> acc(static_cast<size_t>(n * n));
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      la_parts(qkv, p, b, h, q, k, v);
      const std::vector<int64_t> acc64 = la_qk(q, k, n, d);
      for (size_t i = 0; i < acc.size(); ++i) {
        acc[i] = static_cast<int32_t>(acc64[i]);
        if (acc[i] != acc64[i]) {
          ++g_failures;
          std::printf("FAIL LISAttention oracle: q k^T = %lld outside int32 (D = %lld)\n",
                      static_cast<long long>(acc64[i]), static_cast<long long>(d));
          return y;
        }
      }
      const std::vector<T> logits =
          ref_requantize<T>(acc, {p.qk_multiplier}, {0.0f}, n, p.logits_scale, p.logits_zero_point);
      const std::vector<u8> codes = ref_lis(logits, {}, n, p.lis_multiplier, p.bits);
      const std::vector<T> out =
          ref_lismm(codes, v, 1, n, n, d, p.qkv_scale, p.qkv_zero_point, p.y_scale, p.y_zero_point, p.bits);
      for (int64_t i = 0; i < n; ++i) {
        std::copy(out.begin() + i * d, out.begin() + (i + 1) * d, y.begin() + ((b * n + i) * heads + h) * d);
      }
    }
  }
  return y;
}

// The int8 form of uint8 parameters: zero points z - 128 (the codes become u - 128).
LisAttentionParams la_int8(const LisAttentionParams& p) {
  LisAttentionParams p8 = p;
  p8.qkv_zero_point -= 128;
  p8.logits_zero_point -= 128;
  p8.y_zero_point -= 128;
  p8.code = fqvit::CodeType::kInt8;
  return p8;
}

template <typename T>
int la_capi(const std::vector<T>& qkv, std::vector<T>& y, const LisAttentionParams& p, int isa) {
  if constexpr (std::is_same<T, u8>::value) {
    return fqvit_lis_attention_cpu(qkv.data(), y.data(), p.batch, p.tokens, p.heads, p.head_dim, p.qkv_scale,
                                   p.qkv_zero_point, p.qk_multiplier, p.logits_scale, p.logits_zero_point, p.y_scale,
                                   p.y_zero_point, p.lis_multiplier, p.bits, isa);
  } else {
    return fqvit_lis_attention_cpu_i8(qkv.data(), y.data(), p.batch, p.tokens, p.heads, p.head_dim, p.qkv_scale,
                                      p.qkv_zero_point, p.qk_multiplier, p.logits_scale, p.logits_zero_point,
                                      p.y_scale, p.y_zero_point, p.lis_multiplier, p.bits, isa);
  }
}

// One code type on path `isa`, Y prefilled with 0xA5 each time (an item left out shows as a mismatch): the C entry
// (one call over all items); the kernel function lis_attention_cpu on [0, items) cut at 3 random points (pieces may
// be empty), the pieces on threads of their own at once, as the ORT glue's intra-op pool runs them; and on every item
// alone, in a shuffled order, on this thread (its scratch reused from item to item and head to head).
template <typename T>
void la_paths(const std::string& where, const std::vector<T>& qkv, const std::vector<T>& want,
              const LisAttentionParams& p, int isa) {
  const T fill = static_cast<T>(0xA5);
  std::vector<T> y(want.size(), fill);
  check(where, y, want, la_capi(qkv, y, p, isa));
  const fqvit::Isa path = static_cast<fqvit::Isa>(isa);
  const int64_t items = fqvit::lis_attention_cpu_items(p);
  std::vector<int64_t> cuts = {0, items, rand_int(0, items), rand_int(0, items), rand_int(0, items)};
  std::sort(cuts.begin(), cuts.end());
  std::fill(y.begin(), y.end(), fill);
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      threads.emplace_back([&, i] { fqvit::lis_attention_cpu(qkv.data(), y.data(), p, cuts[i], cuts[i + 1], path); });
    }
    for (auto& t : threads) t.join();
  }
  check(where + " items cut at " + std::to_string(cuts[1]) + "," + std::to_string(cuts[2]) + "," +
            std::to_string(cuts[3]) + " of " + std::to_string(items) + ", pieces on threads",
        y, want, 0);
  std::vector<int64_t> order(static_cast<size_t>(items));
  for (int64_t i = 0; i < items; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::fill(y.begin(), y.end(), fill);
  for (int64_t i : order) fqvit::lis_attention_cpu(qkv.data(), y.data(), p, i, i + 1, path);
  check(where + " item by item, shuffled", y, want, 0);
}

// One LISAttention case, p in its uint8 form: the oracle in both code types (int8: codes and zero points - 128, the
// int8 oracle checked against the uint8 one minus 128), the item count (batch x heads x the fewest blocks of at most
// kLisAttentionBlockRows query rows), then every CPU path in both code types.
void la_run(const std::string& name, const std::vector<u8>& qkv, const LisAttentionParams& p) {
  const std::string label = name + " (" + std::to_string(p.batch) + "x" + std::to_string(p.tokens) + " h" +
                            std::to_string(p.heads) + " d" + std::to_string(p.head_dim) + " bits" +
                            std::to_string(p.bits) + ")";
  const std::vector<u8> want = ref_lis_attention(qkv, p);
  const LisAttentionParams p8 = la_int8(p);
  const std::vector<i8> qkv8 = to_i8(qkv), want8 = ref_lis_attention(qkv8, p8);
  check("int8 oracle = uint8 - 128: LISAttention " + label, want8, to_i8(want), 0);
  const int64_t blocks = (p.tokens + fqvit::kLisAttentionBlockRows - 1) / fqvit::kLisAttentionBlockRows;
  const int64_t items = fqvit::lis_attention_cpu_items(p);
  const int64_t expect = p.batch > 0 && p.tokens > 0 && p.head_dim > 0 ? p.batch * p.heads * blocks : 0;
  ++g_cases;
  if (items != expect || fqvit::lis_attention_cpu_items(p8) != items) {
    ++g_failures;
    std::printf("FAIL LISAttention %s: %lld work items, want %lld\n", label.c_str(), static_cast<long long>(items),
                static_cast<long long>(expect));
  }
  for (int isa : g_isas) {
    const std::string tag = " [" + std::string(fqvit_cpu_isa_name(isa)) + "]";
    la_paths("LISAttention " + label + tag, qkv, want, p, isa);
    la_paths("int8 LISAttention " + label + tag, qkv8, want8, p8, isa);
  }
}

// LISAttention's lis_multiplier attribute for a logits scale s: round(s * 2^14 / ln 2) in float64, as the exporter
// (fqvit_export/ops/reference.py lis_multiplier) computes it.
int64_t la_lis_multiplier(float logits_scale) {
  const double m = std::nearbyint(static_cast<double>(logits_scale) * 16384.0 / std::log(2.0));
  return static_cast<int64_t>(std::min(m, static_cast<double>(fqvit::kMaxLisMultiplier)));
}

// What QKV holds (fqvit_export/testing/op_cases.py lis_attention_inputs' x): random codes; extreme (0 and 255 drawn,
// zero point 0 or 255: the largest |q k^T|, beyond 2^24 for D > 258, so step 2's f32(acc) rounds); all 255 with zero
// point 0 and all 0 with zero point 255 (q k^T = 65025 D everywhere); equal (one code everywhere: uniform attention).
enum class LaCodes { kRandom, kExtreme, kAll255, kAll0, kEqual };

// A case built as lis_attention_inputs builds it: QKV [b, n, 3 * heads * d], qkv_scale in [0.01, 0.1],
// qk_multiplier = f32(f32(s * s) * f32(1 / sqrt(D))), logits_scale fitted to this QKV's q k^T (max |acc| *
// qk_multiplier / 127, times `spread`: below 1 the logits saturate, above 1 they crowd a few codes, so the codes spread
// at 1), lis_multiplier from it, logits_zero_point in 100..155, y_scale = qkv_scale * [1, 2.5], y_zero_point in
// 64..191. `zp` forces the qkv zero point (random and extreme codes); `tweak` then changes any parameter.
void la_case(const std::string& name, int64_t b, int64_t n, int64_t heads, int64_t d, LaCodes x = LaCodes::kRandom,
             double spread = 1.0, int bits = 4, int32_t zp = -1,
             const std::function<void(LisAttentionParams&)>& tweak = nullptr) {
  LisAttentionParams p;
  p.batch = b;
  p.tokens = n;
  p.heads = heads;
  p.head_dim = d;
  p.bits = bits;
  p.code = fqvit::CodeType::kUint8;
  std::vector<u8> qkv(static_cast<size_t>(b * n * 3 * heads * d));
  switch (x) {
    case LaCodes::kExtreme:
      for (auto& c : qkv) c = rand_int(0, 1) ? 255 : 0;
      p.qkv_zero_point = zp >= 0 ? zp : (rand_int(0, 1) ? 255 : 0);
      break;
    case LaCodes::kAll255:
    case LaCodes::kAll0:
      std::fill(qkv.begin(), qkv.end(), x == LaCodes::kAll255 ? 255 : 0);
      p.qkv_zero_point = x == LaCodes::kAll255 ? 0 : 255;
      break;
    case LaCodes::kEqual:
      std::fill(qkv.begin(), qkv.end(), static_cast<u8>(rand_int(0, 255)));
      p.qkv_zero_point = static_cast<int32_t>(rand_int(0, 255));
      break;
    default:
      qkv = rand_u8(qkv.size());
      p.qkv_zero_point = zp >= 0 ? zp : static_cast<int32_t>(rand_int(0, 255));
  }
  p.qkv_scale = rand_f(0.01f, 0.1f);
  const float inv_sqrt_d = static_cast<float>(1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(d, 1))));
  p.qk_multiplier = (p.qkv_scale * p.qkv_scale) * inv_sqrt_d;
  double max_acc = 0.0;
  std::vector<int64_t> q, k;
  std::vector<u8> v;
  for (int64_t bb = 0; bb < b; ++bb) {
    for (int64_t h = 0; h < heads; ++h) {
      la_parts(qkv, p, bb, h, q, k, v);
      for (int64_t a : la_qk(q, k, n, d)) max_acc = std::max(max_acc, std::fabs(static_cast<double>(a)));
    }
  }
  const double t_max = std::max(max_acc * static_cast<double>(p.qk_multiplier), 1e-3);
  p.logits_scale = static_cast<float>(spread * t_max / 127.0);
  p.logits_zero_point = static_cast<int32_t>(rand_int(100, 155));
  const double y_factor = std::uniform_real_distribution<double>(1.0, 2.5)(rng);
  p.y_scale = static_cast<float>(static_cast<double>(p.qkv_scale) * y_factor);
  p.y_zero_point = static_cast<int32_t>(rand_int(64, 191));
  p.lis_multiplier = la_lis_multiplier(p.logits_scale);
  if (tweak) tweak(p);
  la_run(name, qkv, p);
}

// f32(acc) rounding, made visible: qk_multiplier 1 and logits_scale 2^s, so t / logits_scale = f32(acc) / 2^s
// exactly, and acc placed next to the midpoints (m + 1/2) 2^s between two logit codes, closer than half of f32's
// spacing there: f32(acc) lands on the midpoint and rounds half to even, where the exact acc / 2^s rounds away from it
// (an implementation that skips f32, say through int64 -> double, gives the other code). Every query row is 255 - zp
// (zp 0) or -255 (zp 255) times ones, with one last component +-1, so acc[i, j] = 255 S_j + r_j for any target in
// reach; the keys spell the targets. The logits span about 15 codes and lis_multiplier is 2^14 (one logit step, one
// LIS code), so each logit code shows in the LIS codes and the output. The case checks that it is adversarial: some
// logit of the oracle differs from exact rounding of acc / 2^s.
void la_f32_case(const std::string& name, int64_t n, int64_t d, int shift, int32_t zp,
                 const std::vector<int64_t>& offsets) {
  LisAttentionParams p;
  p.batch = 1;
  p.tokens = n;
  p.heads = 1;
  p.head_dim = d;
  p.qkv_zero_point = zp;
  p.qkv_scale = 0.05f;
  p.qk_multiplier = 1.0f;
  p.logits_scale = std::ldexp(1.0f, shift);
  p.logits_zero_point = 20;
  p.y_scale = 0.07f;
  p.y_zero_point = 128;
  p.lis_multiplier = 16384;
  p.bits = 4;
  const int32_t s = zp == 0 ? 1 : -1;  // the sign of every difference from zp
  std::vector<u8> qkv(static_cast<size_t>(n * 3 * d));
  int64_t adversarial = 0, unreachable = 0;  // keys whose f32(acc) changes the logit; targets out of reach
  for (int64_t t = 0; t < n; ++t) {
    u8* row = qkv.data() + t * 3 * d;
    for (int64_t e = 0; e < d; ++e) row[e] = static_cast<u8>(zp + s * (e + 1 < d ? 255 : 1));  // q
    // Key t: acc = (m + 1/2) 2^shift + offset, m in 100..114 (logit codes 120..135).
    const int64_t m = rand_int(100, 114);
    // Every offset in turn (a random pick could miss all the ones that change a logit in few keys).
    const int64_t target = (2 * m + 1) * (int64_t{1} << (shift - 1)) + offsets[static_cast<size_t>(t) % offsets.size()];
    int64_t sum = target / 255, r = target % 255;
    for (int64_t e = 0; e + 1 < d; ++e) {  // sum spread over the first d - 1 components, 255 at most each
      const int64_t c = std::min<int64_t>(sum, (sum + (d - 2 - e)) / (d - 1 - e));
      row[d + e] = static_cast<u8>(zp + s * c);
      sum -= c;
    }
    row[d + d - 1] = static_cast<u8>(zp + s * r);
    for (int64_t e = 0; e < d; ++e) row[2 * d + e] = static_cast<u8>(rand_int(0, 255));  // v
    const double exact = std::nearbyint(static_cast<double>(target) / std::ldexp(1.0, shift)) + p.logits_zero_point;
    const int32_t got = fqvit::requantize_one<u8>(static_cast<int32_t>(target), 1.0f, 0.0f, p.logits_scale,
                                                  p.logits_zero_point);
    unreachable += sum != 0;
    adversarial += exact != got;
  }
  ++g_cases;
  if (unreachable != 0 || adversarial == 0) {
    ++g_failures;
    std::printf("FAIL LISAttention %s: %lld targets out of reach, %lld of %lld logits changed by f32(acc)\n",
                name.c_str(), static_cast<long long>(unreachable), static_cast<long long>(adversarial),
                static_cast<long long>(n));
  }
  la_run(name, qkv, p);
}

void lis_attention_suite(bool quick) {
  for (int isa : g_isas) {
    std::printf("LISAttention q k^T [%s]: %s\n", fqvit_cpu_isa_name(isa),
                fqvit::lis_attention_gemm_name(static_cast<fqvit::Isa>(isa)).c_str());
  }
  const int64_t kD = fqvit::kMaxAttentionHeadDim;
  la_case("deit-s", quick ? 1 : 2, 197, 6, 64);
  la_case("odd", 3, 17, 5, 13);
  la_case("D=1", 2, 29, 4, 1);
  la_case("D=3 (padded to 4)", 1, 70, 2, 3);
  la_case("N=1", 4, 1, 3, 16);
  la_case("N=1 D=1", 1, 1, 1, 1);
  for (int64_t n : {2, 63, 64, 65, 128, 129}) {  // 1, 1, 1, 2, 2, 3 blocks of query rows
    la_case("N=" + std::to_string(n), 1, n, 2, 24);
  }
  la_case("N=300 (5 blocks of 60)", 1, 300, 1, 32);
  la_case("12 heads", 2, 20, 12, 8);
  for (int bits : {1, 2, 3, 4}) la_case("bits=" + std::to_string(bits), 1, 40, 2, 24, LaCodes::kRandom, 1.0, bits);
  for (double spread : {0.02, 0.25, 8.0, 64.0}) {
    la_case("logits spread " + std::to_string(spread).substr(0, 4), 2, 33, 2, 16, LaCodes::kRandom, spread);
  }
  la_case("bits=1 spread 0.25", 1, 40, 2, 24, LaCodes::kRandom, 0.25, 1);
  la_case("equal codes, uniform attention", 2, 50, 2, 8, LaCodes::kEqual);
  for (int32_t zp : {0, 255}) {
    const std::string z = " zp " + std::to_string(zp);
    la_case("random codes" + z, 1, 45, 2, 40, LaCodes::kRandom, 1.0, 4, zp);
    la_case("extreme D=512" + z, 1, 9, 1, 512, LaCodes::kExtreme, 1.0, 4, zp);
    la_case("extreme D=515 N=37 (VNNI tiles of 8, 4, 1 rows; keys padded)" + z, 1, 37, 2, 515, LaCodes::kExtreme,
            1.0, 4, zp);
    la_case("extreme D=kMaxAttentionHeadDim" + z, 1, 5, 1, kD, LaCodes::kExtreme, 1.0, 4, zp);
    la_case("extreme D=kMaxAttentionHeadDim spread 8, bits 3" + z, 1, 3, 1, kD, LaCodes::kExtreme, 8.0, 3, zp);
  }
  la_case("all 255, zp 0, D=kMaxAttentionHeadDim (q k^T = 65025 D)", 1, 2, 1, kD, LaCodes::kAll255);
  la_case("all 0, zp 255, D=kMaxAttentionHeadDim", 1, 3, 1, kD, LaCodes::kAll0);
  // f32(acc) rounding: spacing 2 in [2^24, 2^25) (D = 512, midpoints odd * 2^17), 128 in [2^30, 2^31) (D = 33025,
  // midpoints odd * 2^23; +-64 are ties of f32 itself).
  la_f32_case("f32(acc) ties D=512 zp 0", 40, 512, 18, 0, {-1, 0, 1});
  la_f32_case("f32(acc) ties D=512 zp 255", 40, 512, 18, 255, {-1, 0, 1});
  la_f32_case("f32(acc) ties D=kMaxAttentionHeadDim zp 0", quick ? 8 : 12, kD, 24, 0, {-64, -63, -1, 0, 1, 63, 64});
  la_f32_case("f32(acc) ties D=kMaxAttentionHeadDim zp 255", quick ? 8 : 12, kD, 24, 255, {-64, -1, 1, 64});
  // Parameters at their ends.
  la_case("logits zero point 0", 1, 40, 2, 24, LaCodes::kRandom, 1.0, 4, -1,
          [](LisAttentionParams& p) { p.logits_zero_point = 0; });
  la_case("logits zero point 255", 1, 40, 2, 24, LaCodes::kRandom, 1.0, 4, -1,
          [](LisAttentionParams& p) { p.logits_zero_point = 255; });
  for (int32_t yzp : {0, 255}) {
    la_case("output saturating, y zero point " + std::to_string(yzp), 1, 40, 2, 24, LaCodes::kRandom, 1.0, 4, -1,
            [yzp](LisAttentionParams& p) {
              p.y_scale = p.qkv_scale * 0.02f;
              p.y_zero_point = yzp;
            });
  }
  for (int64_t m : {int64_t{0}, int64_t{1}, fqvit::kMaxLisMultiplier}) {
    la_case("lis_multiplier " + std::to_string(m), 1, 40, 2, 24, LaCodes::kRandom, 1.0, 4, -1,
            [m](LisAttentionParams& p) { p.lis_multiplier = m; });
  }
  la_case("empty batch", 0, 7, 2, 8);
  la_case("N=0", 2, 0, 2, 8);
  la_case("D=0", 2, 5, 3, 0);

  // lis_attention_check, directly and through both C entries: rejected parameters with a message naming the problem,
  // and the limits themselves accepted.
  LisAttentionParams base;
  base.batch = 1;
  base.tokens = 4;
  base.heads = 2;
  base.head_dim = 8;
  base.qkv_zero_point = base.logits_zero_point = base.y_zero_point = 128;
  base.lis_multiplier = 1000;
  base.bits = 4;
  struct Bad {
    std::function<void(LisAttentionParams&)> set;
    const char* fragment;
  };
  const std::vector<Bad> bads = {
      {[](LisAttentionParams& p) { p.heads = 0; }, "heads = 0 must lie in 1..4096"},
      {[](LisAttentionParams& p) { p.heads = -3; }, "heads = -3 must lie in 1..4096"},
      {[](LisAttentionParams& p) { p.heads = fqvit::kMaxAttentionHeads + 1; }, "heads = 4097 must lie in 1..4096"},
      {[](LisAttentionParams& p) { p.head_dim = fqvit::kMaxAttentionHeadDim + 1; }, "D = 33026 exceeds 33025"},
      {[](LisAttentionParams& p) { p.tokens = fqvit::kMaxAttentionTokens + 1; }, "N = 16385 tokens exceeds 16384"},
      {[](LisAttentionParams& p) { p.batch = -1; }, "negative shape"},
      {[](LisAttentionParams& p) { p.tokens = -1; }, "negative shape"},
      {[](LisAttentionParams& p) { p.head_dim = -1; }, "negative shape"},
      {[](LisAttentionParams& p) { p.qkv_zero_point = 256; }, "zero points must be uint8 values"},
      {[](LisAttentionParams& p) { p.qkv_zero_point = -1; }, "zero points must be uint8 values"},
      {[](LisAttentionParams& p) { p.logits_zero_point = 256; }, "zero points must be uint8 values"},
      {[](LisAttentionParams& p) { p.y_zero_point = -1; }, "zero points must be uint8 values"},
      {[](LisAttentionParams& p) { p.bits = 0; }, "attribute bits must be in 1..4, got 0"},
      {[](LisAttentionParams& p) { p.bits = 5; }, "attribute bits must be in 1..4, got 5"},
      {[](LisAttentionParams& p) { p.lis_multiplier = -1; }, "lis_multiplier must be in 0..2147483647"},
      {[](LisAttentionParams& p) { p.lis_multiplier = fqvit::kMaxLisMultiplier + 1; },
       "lis_multiplier must be in 0..2147483647"},
      // int8 codes: the zero points are int8 values (the base's 128 is not one)
      {[](LisAttentionParams& p) { p = la_int8(p), p.qkv_zero_point = 128; }, "zero points must be int8 values"},
      {[](LisAttentionParams& p) { p = la_int8(p), p.logits_zero_point = -129; }, "zero points must be int8 values"},
      {[](LisAttentionParams& p) { p = la_int8(p), p.y_zero_point = 128; }, "zero points must be int8 values"},
      {[](LisAttentionParams& p) { p = la_int8(p), p.heads = 0; }, "heads = 0 must lie in 1..4096"},
      {[](LisAttentionParams& p) { p = la_int8(p), p.bits = 5; }, "attribute bits must be in 1..4, got 5"},
  };
  std::vector<u8> xu(64), yu(64);
  std::vector<i8> x8(64), y8(64);
  for (const Bad& bad : bads) {
    LisAttentionParams p = base;
    bad.set(p);
    const std::string err = fqvit::lis_attention_check(p);
    const int rc = p.code == fqvit::CodeType::kInt8 ? la_capi(x8, y8, p, -1) : la_capi(xu, yu, p, -1);
    ++g_cases;
    if (err.find(bad.fragment) == std::string::npos || rc == 0 ||
        std::strstr(fqvit_last_error(), bad.fragment) == nullptr) {
      ++g_failures;
      std::printf("FAIL LISAttention bad arguments accepted (check '%s', C entry %d '%s', want '%s')\n", err.c_str(),
                  rc, fqvit_last_error(), bad.fragment);
    }
  }
  const std::vector<std::function<void(LisAttentionParams&)>> goods = {
      [](LisAttentionParams& p) { p.heads = fqvit::kMaxAttentionHeads; },
      [](LisAttentionParams& p) { p.head_dim = fqvit::kMaxAttentionHeadDim; },
      [](LisAttentionParams& p) { p.tokens = fqvit::kMaxAttentionTokens; },
      [](LisAttentionParams& p) { p.batch = p.tokens = p.head_dim = 0; },
      [](LisAttentionParams& p) { p.bits = 1; },
      [](LisAttentionParams& p) { p.lis_multiplier = 0; },
      [](LisAttentionParams& p) { p.lis_multiplier = fqvit::kMaxLisMultiplier; },
      [](LisAttentionParams& p) { p.qkv_zero_point = 0, p.logits_zero_point = 255, p.y_zero_point = 0; },
      [](LisAttentionParams& p) { p = la_int8(p), p.qkv_zero_point = -128, p.y_zero_point = 127; },
  };
  for (const auto& set : goods) {
    LisAttentionParams p = base;
    set(p);
    const std::string err = fqvit::lis_attention_check(p);
    ++g_cases;
    if (!err.empty()) {
      ++g_failures;
      std::printf("FAIL LISAttention parameters at their limits rejected: %s\n", err.c_str());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  for (int isa = 0; isa <= 2; ++isa) {
    if (fqvit::resolve_isa(isa) == static_cast<fqvit::Isa>(isa)) g_isas.push_back(isa);
  }
  std::printf("CPU paths tested:");
  for (int isa : g_isas) std::printf(" %s", fqvit_cpu_isa_name(isa));
  std::printf("\n");
  {
    const std::vector<int8_t> w(64 * 64, 1);
    const fqvit::QLinearCpu ql(w.data(), 64, 64, fqvit::CodeType::kUint8);
    for (int isa : g_isas) {
      const std::string name = ql.gemm_name(static_cast<fqvit::Isa>(isa));
      std::printf("QLinear matmul [%s]: %s\n", fqvit_cpu_isa_name(isa), name.c_str());
      // The AMX tile loop runs exactly where it should: the AVX-512 path with AMX enabled (FQVIT_CPU_ISA unset).
      const bool want_amx = isa == 2 && fqvit::amx_enabled();
      ++g_cases;
      if ((name.find("AMX int8 tiles") != std::string::npos) != want_amx) {
        ++g_failures;
        std::printf("FAIL QLinear path [%s]: '%s', AMX tiles %s\n", fqvit_cpu_isa_name(isa), name.c_str(),
                    want_amx ? "expected" : "not expected");
      }
    }
    std::printf("AMX tiles usable: %s (FQVIT_CPU_ISA=avx512 turns them off)\n", fqvit::amx_usable() ? "yes" : "no");
#if (defined(__x86_64__) && defined(__linux__) && !defined(__clang__) && __GNUC__ >= 11)
    // A CPU that reports AMX-INT8 on the AVX-512 path must get the tiles (Linux grants them since 5.16): a wrong CPUID
    // bit or a failed permission request would otherwise leave every AMX case above untested, silently.
    ++g_cases;
    if (fqvit::resolve_isa(2) == fqvit::Isa::kAvx512 && __builtin_cpu_supports("amx-int8") &&
        __builtin_cpu_supports("amx-tile") && !fqvit::amx_usable()) {
      ++g_failures;
      std::printf("FAIL the CPU reports AMX-INT8 but QLinear's AMX tiles are not usable\n");
    }
#endif
  }

  // PTSLayerNorm.
  for (int64_t c : {1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 192, 384, 385, 768, 1024, 4096}) {
    pts_random("random C=" + std::to_string(c), 5, c);
  }
  pts_random("197 tokens C=192", 197, 192);
  pts_random("eps=0", 9, 97, 0.0f);
  {
    const int64_t c = 101;
    std::vector<u8> x(4 * c, 77);
    pts_case("constant rows eps=0", 4, c, x, std::vector<u8>(c, 0), 0.02f, 70, 0.0f, 0.05f, 128);
    pts_case("constant rows eps=1e-5", 4, c, x, rand_u8(c, 0, 3), 0.02f, 70, 1e-5f, 0.05f, 128);
    for (int a = 0; a <= 3; ++a) pts_case("alpha=" + std::to_string(a), 6, c, rand_u8(6 * c), std::vector<u8>(c, a),
                                          0.01f, 128, 1e-6f, 0.03f, 100);
    pts_case("extremes", 2, c, std::vector<u8>(2 * c, 255), std::vector<u8>(c, 3), 0.5f, 0, 1e-5f, 0.001f, 0);
  }
  {
    const int64_t c = 4096;
    std::vector<u8> x(2 * c);
    for (int64_t i = 0; i < 2 * c; ++i) x[i] = (i % 2) ? 255 : 0;
    pts_case("C=4096 max variance", 2, c, x, std::vector<u8>(c, 3), 0.01f, 128, 0.0f, 0.02f, 128);
  }

  // LogIntSoftmax.
  for (int64_t n : {1, 2, 7, 15, 16, 17, 31, 32, 33, 49, 63, 64, 65, 127, 197, 200, 1000}) {
    for (int bits : {4, 2}) {
      lis_case("random N=" + std::to_string(n) + " bits=" + std::to_string(bits), {3, n}, rand_u8(3 * n), {}, {},
               rand_int(1, 40000), bits);
    }
  }
  for (int bits : {1, 3}) lis_case("bits=" + std::to_string(bits), {4, 50}, rand_u8(200), {}, {}, 3000, bits);
  lis_case("all equal", {2, 197}, std::vector<u8>(394, 42), {}, {}, 5000, 4);
  {
    std::vector<u8> x(197, 0);
    x[5] = 255;
    lis_case("one dominant", {1, 197}, x, {}, {}, 20000, 4);
  }
  lis_case("multiplier 0", {2, 33}, rand_u8(66), {}, {}, 0, 4);
  lis_case("multiplier 1", {2, 33}, rand_u8(66), {}, {}, 1, 4);
  lis_case("multiplier large", {2, 70}, rand_u8(140), {}, {}, 2147483647, 4);
  {
    // Swin: X [B, nW, H, N, N], mask [1, nW, 1, N, N] with a fully masked row.
    const int64_t b = 2, nw = 4, h = 3, n = 16;
    std::vector<u8> mask = rand_u8(nw * n * n, 0, 1);
    for (int64_t j = 0; j < n; ++j) mask[(1 * n + 2) * n + j] = 1;
    lis_case("swin mask", {b, nw, h, n, n}, rand_u8(b * nw * h * n * n), {1, nw, 1, n, n}, mask, 3000, 4);
    lis_case("mask rank 2", {b, nw, n}, rand_u8(b * nw * n), {nw, n}, rand_u8(nw * n, 0, 1), 3000, 4);
    lis_case("mask broadcast along N", {3, 5, 20}, rand_u8(300), {3, 1, 1}, {0, 1, 0}, 3000, 4);
    lis_case("single false mask", {3, 20}, rand_u8(60), {1}, {0}, 3000, 4);
    lis_case("single true mask", {3, 20}, rand_u8(60), {1, 1}, {1}, 3000, 4);
  }

  // LISMatMul.
  for (int64_t d : {1, 8, 15, 16, 17, 32, 48, 64, 65, 96, 130}) {
    const int64_t m = 13, n = 29;
    lismm_case("codes from LIS D=" + std::to_string(d), 2, m, n, d, lis_codes(2 * m, n, 4), rand_u8(2 * n * d), 4);
  }
  lismm_case("ViT head", 2, 197, 197, 64, lis_codes(2 * 197, 197, 4), rand_u8(2 * 197 * 64), 4);
  lismm_case("bits 2", 3, 7, 49, 32, lis_codes(21, 49, 2), rand_u8(3 * 49 * 32), 2);
  lismm_case("random codes", 2, 11, 37, 40, rand_u8(2 * 11 * 37), rand_u8(2 * 37 * 40), 4);
  // AVX-512 runs an item on byte weights when at most 1 in 32 of its codes is below 7 (at 4 bits), those few per row
  // over the groups of 4 keys that hold one; other items on int16 weights. Codes 7..15 with a couple below 7 per row
  // take the first way, codes 0..15 drawn uniformly the second.
  for (int64_t d : {64, 17, 130}) {
    for (int64_t n : {197, 61}) {
      const int64_t m = 70;
      std::vector<u8> a = rand_u8(2 * m * n, 7, 15);
      for (int64_t r = 0; r < 2 * m; ++r) {
        for (int i = 0; i < 2 - static_cast<int>(r % 3); ++i) a[r * n + rand_int(0, n - 1)] = static_cast<u8>(rand_int(0, 6));
      }
      lismm_case("codes 7..15, a few below 7 (byte weights) N=" + std::to_string(n) + " D=" + std::to_string(d), 2, m,
                 n, d, a, rand_u8(2 * n * d), 4);
    }
  }
  lismm_case("codes 0..15 (int16 weights)", 2, 70, 197, 64, rand_u8(2 * 70 * 197, 0, 15), rand_u8(2 * 197 * 64), 4);
  lismm_case("codes 0..15, D=17", 1, 9, 61, 17, rand_u8(9 * 61, 0, 15), rand_u8(61 * 17), 4);
  for (int bits : {1, 3}) {
    lismm_case("bits " + std::to_string(bits), 2, 9, 45, 24, lis_codes(18, 45, bits), rand_u8(2 * 45 * 24), bits);
    lismm_case("bits " + std::to_string(bits) + ", random codes", 1, 7, 33, 16, rand_u8(7 * 33, 0, 15),
               rand_u8(33 * 16), bits);
  }
  lismm_case("N=1", 2, 5, 1, 16, rand_u8(10, 0, 15), rand_u8(32), 4);
  lismm_case("N=0", 2, 5, 0, 16, {}, {}, 4);
  {
    const int64_t n = quick ? 600 : 3000;
    lismm_case("codes 0, long N (int64 path)", 1, 9, n, 24, std::vector<u8>(9 * n, 0), std::vector<u8>(n * 24, 255), 4,
               0);
    lismm_case("codes 0, long N, mixed rows", 1, 9, n, 24, std::vector<u8>(9 * n, 0), rand_u8(n * 24), 4, 0);
    std::vector<u8> a = lis_codes(12, n, 4);
    for (int64_t j = 0; j < n; ++j) a[3 * n + j] = 0;  // one int64 row among int32 rows
    lismm_case("one int64 row", 1, 12, n, 33, a, rand_u8(n * 33), 4, 255);
  }

  // Lookup.
  {
    std::vector<u8> all(256), reversed(256);  // all: every code once (also the identity table)
    for (int c = 0; c < 256; ++c) {
      all[c] = static_cast<u8>(c);
      reversed[c] = static_cast<u8>(255 - c);
    }
    lookup_case("every code, random table", all, rand_u8(256));
    lookup_case("every code, reversed table", all, reversed);
    lookup_case("every code, identity table", all, all);
    for (int64_t n : {0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 191, 255, 256, 257, 1000, 4099}) {
      lookup_case("random n=" + std::to_string(n), rand_u8(n), rand_u8(256));
    }
    lookup_case("unaligned x+1 y+3", rand_u8(1000), rand_u8(256), 1, 3);
    lookup_case("unaligned x+63 y+17", rand_u8(333), rand_u8(256), 63, 17);
    lookup_case("constant table", rand_u8(500), std::vector<u8>(256, 201));
    lookup_case("large", rand_u8(quick ? 100003 : 1210003), rand_u8(256));
  }

  // Requantize.
  for (int64_t n : {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97, 384, 1152}) {
    rq_random("N=" + std::to_string(n), 5, n);
    rq_random("N=" + std::to_string(n) + " scalar multiplier", 3, n, false, true);
    rq_random("N=" + std::to_string(n) + " scalar bias", 3, n, true, false);
    rq_random("N=" + std::to_string(n) + " scalar both", 3, n, false, false);
  }
  rq_random("empty", 0, 16);
  quantize_ties_suite();
  rq_random("deit-s qkv", quick ? 20 : 197, 1152);
  rq_random("long rows, scalar both", 1, quick ? 100003 : 1000003, false, false);
  {
    // Any int32 (extremes included): f32(A) rounds beyond 2^24, most outputs saturate.
    std::vector<int32_t> a = rand_i32(3000, -2147483648LL, 2147483647LL);
    a[0] = 2147483647;
    a[1] = -2147483647 - 1;
    a[2] = 16777217;
    rq_case("any int32", 100, a, rand_fv(100, 1e-8f, 1e-6f), rand_fv(100, -1.0f, 1.0f), 0.5f, 128);
    rq_case("any int32, saturating", 100, a, std::vector<float>(100, 1.0f), std::vector<float>(1, 0.0f), 1e-3f, 7);
    rq_case("any int32, tiny y_scale", 30, rand_i32(300, -2147483648LL, 2147483647LL), {1.0f}, {0.0f}, 1e-30f, 0);
    // +-(2^24 + k): f32(A) rounds half to even on every odd k, visible with m = 1, b = -+2^24, y_scale = 1.
    std::vector<int32_t> c(70 * 13);
    std::vector<float> bias(70);
    for (size_t i = 0; i < c.size(); ++i) {
      const int32_t sign = (i % 70) % 2 ? -1 : 1;
      c[i] = sign * (16777216 + static_cast<int32_t>(rand_int(0, 127)));
    }
    for (int64_t k = 0; k < 70; ++k) bias[k] = k % 2 ? 16777216.0f : -16777216.0f;
    rq_case("f32 conversion ties", 70, c, {1.0f}, bias, 1.0f, 128);
    // .5 ties after the division: odd A * 0.5; A + 0.5; A * 0.125 / 0.25.
    const std::vector<int32_t> small = rand_i32(45 * 11, -600, 600);
    rq_case("ties m=0.5", 45, small, {0.5f}, {0.0f}, 1.0f, 128);
    rq_case("ties b=0.5", 45, small, std::vector<float>(45, 1.0f), std::vector<float>(45, 0.5f), 1.0f, 128);
    rq_case("ties after division", 45, small, {0.125f}, {0.0f}, 0.25f, 100);
    std::vector<int32_t> ramp(10000);
    for (int i = 0; i < 10000; ++i) ramp[i] = i - 5000;
    rq_case("ramp over every code", 1000, ramp, {0.01f}, {0.0f}, 0.25f, 128);
    rq_case("unaligned a+1 y+3", 33, rand_i32(33 * 31, -(1 << 20), 1 << 20), rand_fv(33, 2e-7f, 2e-6f),
            rand_fv(33, -1.0f, 1.0f), 0.02f, 128, 1, 3);
    rq_case("unaligned a+3 y+17, scalar both", 1, rand_i32(1001, -(1 << 20), 1 << 20), {1e-6f}, {0.25f}, 0.02f, 3, 3,
            17);
  }

  // Argument checks of the C entry points.
  {
    u8 x[4] = {}, y[4] = {};
    const int64_t shape[2] = {2, 2}, bad_mask_shape[2] = {3, 2};
    ++g_cases;
    if (fqvit_log_int_softmax_cpu(x, shape, 2, nullptr, nullptr, 0, y, 100, 5, -1) == 0) {
      ++g_failures;
      std::printf("FAIL bits=5 accepted\n");
    }
    ++g_cases;
    if (fqvit_log_int_softmax_cpu(x, shape, 2, x, bad_mask_shape, 2, y, 100, 4, -1) == 0) {
      ++g_failures;
      std::printf("FAIL bad mask accepted\n");
    }
    u8 alpha[2] = {0, 4};
    float g[2] = {1, 1}, b[2] = {0, 0};
    ++g_cases;
    if (fqvit_pts_layernorm_cpu(x, alpha, g, b, y, 2, 2, 0.1f, 0, 0.0f, 0.1f, 0, -1) == 0) {
      ++g_failures;
      std::printf("FAIL alpha=4 accepted\n");
    }
    const std::vector<u8> table(257, 0);
    for (int64_t size : {255, 257, 0}) {
      ++g_cases;
      if (fqvit_lookup_cpu(x, table.data(), y, 4, size, -1) == 0 ||
          std::strstr(fqvit_last_error(), "exactly 256") == nullptr) {
        ++g_failures;
        std::printf("FAIL Lookup table of %lld entries accepted (or unclear message '%s')\n",
                    static_cast<long long>(size), fqvit_last_error());
      }
    }
  }

  {
    const int32_t a[8] = {};
    const float m[8] = {}, b[8] = {};
    u8 y[8] = {};
    struct Bad {
      int64_t numel, n, ms, bs;
      int32_t zp;
      const char* fragment;
    };
    for (const Bad& bad : {Bad{8, 4, 3, 4, 0, "multiplier must have N = 4"}, Bad{8, 4, 4, 2, 0, "bias must have N = 4"},
                           Bad{8, 3, 3, 3, 0, "not a multiple of N = 3"}, Bad{8, 4, 4, 4, 256, "y_zero_point"},
                           Bad{8, -1, 1, 1, 0, "negative"}}) {
      ++g_cases;
      if (fqvit_requantize_cpu(a, m, b, y, bad.numel, bad.n, bad.ms, bad.bs, 0.1f, bad.zp, -1) == 0 ||
          std::strstr(fqvit_last_error(), bad.fragment) == nullptr) {
        ++g_failures;
        std::printf("FAIL Requantize bad arguments accepted (or unclear message '%s', want '%s')\n",
                    fqvit_last_error(), bad.fragment);
      }
    }
  }

  int8_suite(quick);
  residual_add_suite(quick);
  qlinear_suite(quick);
  lis_attention_suite(quick);

  std::printf("%d cases, %d failures\n", g_cases, g_failures);
  return g_failures == 0 ? 0 : 1;
}
