// Plain C entry points of the CPU kernels (fqvit_ops/c_api.h): single-threaded, for the C++ kernel test and for
// ctypes callers (tools/gpu_check.py compares them with the CUDA kernels).
#include <exception>
#include <string>

#include "c_api/c_api_internal.h"
#include "fqvit_ops/c_api.h"
#include "fqvit_ops/lis_matmul.h"
#include "fqvit_ops/log_int_softmax.h"
#include "fqvit_ops/lookup.h"
#include "fqvit_ops/pts_layernorm.h"
#include "fqvit_ops/requantize.h"

namespace fqvit {
namespace capi {
namespace {
thread_local std::string g_error;
}
int fail(const std::string& message) {
  g_error = message;
  return 1;
}
void clear_error() { g_error.clear(); }
const char* last_error() { return g_error.c_str(); }
}  // namespace capi
}  // namespace fqvit

using fqvit::capi::fail;

extern "C" {

const char* fqvit_last_error(void) { return fqvit::capi::last_error(); }

const char* fqvit_cpu_isa_name(int isa) { return fqvit::isa_name(fqvit::resolve_isa(isa)); }

int fqvit_pts_layernorm_cpu(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                            int64_t rows, int64_t channels, float x_scale, int32_t x_zero_point, float epsilon,
                            float y_scale, int32_t y_zero_point, int isa) {
  try {
    fqvit::capi::clear_error();
    fqvit::PtsLayerNormParams p;
    p.rows = rows;
    p.channels = channels;
    p.x_scale = x_scale;
    p.x_zero_point = x_zero_point;
    p.epsilon = epsilon;
    p.y_scale = y_scale;
    p.y_zero_point = y_zero_point;
    std::string err = fqvit::pts_layernorm_check(p, alpha);
    if (!err.empty()) return fail("PTSLayerNorm: " + err);
    fqvit::pts_layernorm_cpu(x, alpha, gamma, beta, y, p, 0, rows, fqvit::resolve_isa(isa));
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("PTSLayerNorm: ") + e.what());
  }
}

int fqvit_log_int_softmax_cpu(const uint8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                              const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier, int bits,
                              int isa) {
  try {
    fqvit::capi::clear_error();
    fqvit::MaskLayout layout;
    std::string err = fqvit::mask_layout_make(x_shape, x_rank, mask ? m_shape : nullptr, mask ? m_rank : 0, mask,
                                              &layout);
    if (!err.empty()) return fail("LogIntSoftmax: " + err);
    fqvit::LisSoftmaxParams p;
    p.n = x_shape[x_rank - 1];
    int64_t numel = 1;
    for (int i = 0; i < x_rank; ++i) numel *= x_shape[i];
    p.rows = p.n == 0 ? 0 : numel / p.n;
    p.multiplier = multiplier;
    p.bits = bits;
    err = fqvit::log_int_softmax_check(p);
    if (!err.empty()) return fail("LogIntSoftmax: " + err);
    fqvit::log_int_softmax_cpu(x, layout, codes, p, 0, p.rows, fqvit::resolve_isa(isa));
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("LogIntSoftmax: ") + e.what());
  }
}

int fqvit_lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, int64_t batch, int64_t m, int64_t n,
                         int64_t d, float v_scale, int32_t v_zero_point, float y_scale, int32_t y_zero_point,
                         int bits, int isa) {
  try {
    fqvit::capi::clear_error();
    fqvit::LisMatMulParams p;
    p.batch = batch;
    p.m = m;
    p.n = n;
    p.d = d;
    p.v_scale = v_scale;
    p.v_zero_point = v_zero_point;
    p.y_scale = y_scale;
    p.y_zero_point = y_zero_point;
    p.bits = bits;
    const std::string err = fqvit::lis_matmul_check(p);
    if (!err.empty()) return fail("LISMatMul: " + err);
    fqvit::lis_matmul_cpu(a, v, y, p, 0, fqvit::lis_matmul_cpu_items(p), fqvit::resolve_isa(isa));
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("LISMatMul: ") + e.what());
  }
}

int fqvit_lookup_cpu(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t table_size, int isa) {
  try {
    fqvit::capi::clear_error();
    fqvit::LookupParams p;
    p.n = n;
    p.table_size = table_size;
    const std::string err = fqvit::lookup_check(p);
    if (!err.empty()) return fail("Lookup: " + err);
    fqvit::lookup_cpu(x, table, y, p, 0, n, fqvit::resolve_isa(isa));
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("Lookup: ") + e.what());
  }
}

int fqvit_requantize_cpu(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y, int64_t numel,
                         int64_t n, int64_t multiplier_size, int64_t bias_size, float y_scale, int32_t y_zero_point,
                         int isa) {
  try {
    fqvit::capi::clear_error();
    fqvit::RequantizeParams p;
    p.numel = numel;
    p.n = n;
    p.multiplier_size = multiplier_size;
    p.bias_size = bias_size;
    p.y_scale = y_scale;
    p.y_zero_point = y_zero_point;
    const std::string err = fqvit::requantize_check(p);
    if (!err.empty()) return fail("Requantize: " + err);
    fqvit::requantize_cpu(a, multiplier, bias, y, p, 0, numel, fqvit::resolve_isa(isa));
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("Requantize: ") + e.what());
  }
}

}  // extern "C"
