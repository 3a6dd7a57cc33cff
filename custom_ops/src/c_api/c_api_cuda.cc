// Plain C entry points of the CUDA kernels (fqvit_ops/c_api.h): device pointers, a cudaStream_t, no synchronisation.
// Only in libfqvit_ops_cuda.so; tools/gpu_check.py calls them through ctypes on torch CUDA tensors.
#include <exception>
#include <string>

#include "c_api/c_api_internal.h"
#include "fqvit_ops/c_api.h"
#include "fqvit_ops/lis_matmul.h"
#include "fqvit_ops/log_int_softmax.h"
#include "fqvit_ops/lookup.h"
#include "fqvit_ops/pts_layernorm.h"
#include "fqvit_ops/requantize.h"

using fqvit::capi::fail;

namespace {
int launched(int rc, const char* op) {
  if (rc == 0) return 0;
  fail(std::string(op) + ": CUDA launch failed (cudaError_t " + std::to_string(rc) + ")");
  return rc;
}
}  // namespace

extern "C" {

int fqvit_pts_layernorm_cuda(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta,
                             uint8_t* y, int64_t rows, int64_t channels, float x_scale, int32_t x_zero_point,
                             float epsilon, float y_scale, int32_t y_zero_point, void* stream) {
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
    const std::string err = fqvit::pts_layernorm_check(p, nullptr);
    if (!err.empty()) return fail("PTSLayerNorm: " + err);
    return launched(fqvit::pts_layernorm_cuda(x, alpha, gamma, beta, y, p, stream), "PTSLayerNorm");
  } catch (const std::exception& e) {
    return fail(std::string("PTSLayerNorm: ") + e.what());
  }
}

int fqvit_log_int_softmax_cuda(const uint8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                               const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier, int bits,
                               void* stream) {
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
    return launched(fqvit::log_int_softmax_cuda(x, layout, codes, p, stream), "LogIntSoftmax");
  } catch (const std::exception& e) {
    return fail(std::string("LogIntSoftmax: ") + e.what());
  }
}

int fqvit_lis_matmul_cuda(const uint8_t* a, const uint8_t* v, uint8_t* y, int64_t batch, int64_t m, int64_t n,
                          int64_t d, float v_scale, int32_t v_zero_point, float y_scale, int32_t y_zero_point,
                          int bits, void* stream) {
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
    return launched(fqvit::lis_matmul_cuda(a, v, y, p, stream), "LISMatMul");
  } catch (const std::exception& e) {
    return fail(std::string("LISMatMul: ") + e.what());
  }
}

int fqvit_lookup_cuda(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t table_size,
                      void* stream) {
  try {
    fqvit::capi::clear_error();
    fqvit::LookupParams p;
    p.n = n;
    p.table_size = table_size;
    const std::string err = fqvit::lookup_check(p);
    if (!err.empty()) return fail("Lookup: " + err);
    return launched(fqvit::lookup_cuda(x, table, y, p, stream), "Lookup");
  } catch (const std::exception& e) {
    return fail(std::string("Lookup: ") + e.what());
  }
}

int fqvit_requantize_cuda(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y, int64_t numel,
                          int64_t n, int64_t multiplier_size, int64_t bias_size, float y_scale, int32_t y_zero_point,
                          void* stream) {
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
    return launched(fqvit::requantize_cuda(a, multiplier, bias, y, p, stream), "Requantize");
  } catch (const std::exception& e) {
    return fail(std::string("Requantize: ") + e.what());
  }
}

}  // extern "C"
