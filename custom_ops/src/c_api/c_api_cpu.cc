// Plain C entry points of the CPU kernels (fqvit_ops/c_api.h): single-threaded, for the C++ kernel test and for
// ctypes callers (tools/gpu_check.py compares them with the CUDA kernels).
#include <string>

#include "c_api/c_api_internal.h"
#include "fqvit_ops/c_api.h"
#include "fqvit_ops/lis_attention.h"
#include "fqvit_ops/lis_matmul.h"
#include "fqvit_ops/log_int_softmax.h"
#include "fqvit_ops/lookup.h"
#include "fqvit_ops/pts_layernorm.h"
#include "fqvit_ops/qlinear.h"
#include "fqvit_ops/requantize.h"
#include "fqvit_ops/residual_add.h"

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

using fqvit::capi::code_of;
using fqvit::capi::guarded;
using fqvit::capi::require;

namespace {

template <typename T>
int pts_cpu(const T* x, const uint8_t* alpha, const float* gamma, const float* beta, T* y, int64_t rows,
            int64_t channels, float x_scale, int32_t x_zero_point, float epsilon, float y_scale, int32_t y_zero_point,
            int isa) {
  return guarded("PTSLayerNorm", [&] {
    const fqvit::PtsLayerNormParams p{rows,    channels, x_scale,     x_zero_point,
                                      epsilon, y_scale,  y_zero_point, code_of<T>()};
    require(fqvit::pts_layernorm_check(p, alpha));
    fqvit::pts_layernorm_cpu(x, alpha, gamma, beta, y, p, 0, rows, fqvit::resolve_isa(isa));
    return 0;
  });
}

template <typename T>
int lis_cpu(const T* x, const int64_t* x_shape, int x_rank, const uint8_t* mask, const int64_t* m_shape, int m_rank,
            uint8_t* codes, int64_t multiplier, int bits, int isa) {
  return guarded("LogIntSoftmax", [&] {
    fqvit::MaskLayout layout;
    const fqvit::LisSoftmaxParams p =
        fqvit::capi::log_int_softmax_params(x_shape, x_rank, mask, m_shape, m_rank, multiplier, bits, &layout);
    fqvit::log_int_softmax_cpu(x, layout, codes, p, 0, p.rows, fqvit::resolve_isa(isa));
    return 0;
  });
}

template <typename T>
int lismm_cpu(const uint8_t* a, const T* v, T* y, int64_t batch, int64_t m, int64_t n, int64_t d, float v_scale,
              int32_t v_zero_point, float y_scale, int32_t y_zero_point, int bits, int isa) {
  return guarded("LISMatMul", [&] {
    const fqvit::LisMatMulParams p{batch, m, n, d, v_scale, v_zero_point, y_scale, y_zero_point, bits, code_of<T>()};
    require(fqvit::lis_matmul_check(p));
    fqvit::lis_matmul_cpu(a, v, y, p, 0, fqvit::lis_matmul_cpu_items(p), fqvit::resolve_isa(isa));
    return 0;
  });
}

template <typename T>
int lookup_cpu(const T* x, const T* table, T* y, int64_t n, int64_t table_size, int isa) {
  return guarded("Lookup", [&] {
    const fqvit::LookupParams p{n, table_size};
    require(fqvit::lookup_check(p));
    fqvit::lookup_cpu(x, table, y, p, 0, n, fqvit::resolve_isa(isa));
    return 0;
  });
}

template <typename T>
int rq_cpu(const int32_t* a, const float* multiplier, const float* bias, T* y, int64_t numel, int64_t n,
           int64_t multiplier_size, int64_t bias_size, float y_scale, int32_t y_zero_point, int isa) {
  return guarded("Requantize", [&] {
    const fqvit::RequantizeParams p{numel, n, multiplier_size, bias_size, y_scale, y_zero_point, code_of<T>()};
    require(fqvit::requantize_check(p));
    fqvit::requantize_cpu(a, multiplier, bias, y, p, 0, numel, fqvit::resolve_isa(isa));
    return 0;
  });
}

template <typename T>
int ra_cpu(const T* a, const float* a_scale, int32_t a_zero_point, const T* b, const float* b_scale,
           int32_t b_zero_point, const float* y_scale, int32_t y_zero_point, const float* gamma, T* y, int64_t numel,
           int64_t channels, int64_t a_scale_size, int64_t b_scale_size, int64_t y_scale_size, int64_t gamma_size,
           int isa) {
  return guarded("ResidualAdd", [&] {
    const fqvit::ResidualAddParams p = fqvit::capi::residual_add_params(
        numel, channels, a_scale_size, b_scale_size, y_scale_size, gamma, gamma_size, a_zero_point, b_zero_point,
        y_zero_point, code_of<T>());
    fqvit::residual_add_cpu(a, b, {a_scale, b_scale, y_scale, gamma}, y, p, 0, numel, fqvit::resolve_isa(isa));
    return 0;
  });
}

template <typename T>
int ql_cpu(const T* x, const int8_t* w, int32_t x_zero_point, const float* multiplier, const float* bias,
           float y_scale, int32_t y_zero_point, T* y, int64_t m, int64_t k, int64_t n, int64_t multiplier_size,
           int64_t bias_size, int isa) {
  return guarded("QLinear", [&] {
    const fqvit::QLinearParams p{m,       k,           n,        multiplier_size, bias_size, x_zero_point,
                                 y_scale, y_zero_point, code_of<T>()};
    require(fqvit::qlinear_check(p));
    const fqvit::QLinearCpu packed(w, k, n, p.code);
    packed.run_items(x, multiplier, bias, y, p, 0, packed.items(p), fqvit::resolve_isa(isa));
    return 0;
  });
}

template <typename T>
int la_cpu(const T* qkv, T* y, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim, float qkv_scale,
           int32_t qkv_zero_point, float qk_multiplier, float logits_scale, int32_t logits_zero_point, float y_scale,
           int32_t y_zero_point, int64_t lis_multiplier, int bits, int isa) {
  return guarded("LISAttention", [&] {
    const fqvit::LisAttentionParams p{batch, tokens, heads, head_dim, qkv_scale, qkv_zero_point, qk_multiplier,
                                      logits_scale, logits_zero_point, y_scale, y_zero_point, lis_multiplier, bits,
                                      code_of<T>()};
    require(fqvit::lis_attention_check(p));
    fqvit::lis_attention_cpu(qkv, y, p, 0, fqvit::lis_attention_cpu_items(p), fqvit::resolve_isa(isa));
    return 0;
  });
}

}  // namespace

extern "C" {

const char* fqvit_last_error(void) { return fqvit::capi::last_error(); }

const char* fqvit_cpu_isa_name(int isa) { return fqvit::isa_name(fqvit::resolve_isa(isa)); }

int fqvit_pts_layernorm_cpu(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, uint8_t* y,
                            int64_t rows, int64_t channels, float x_scale, int32_t x_zero_point, float epsilon,
                            float y_scale, int32_t y_zero_point, int isa) {
  return pts_cpu(x, alpha, gamma, beta, y, rows, channels, x_scale, x_zero_point, epsilon, y_scale, y_zero_point, isa);
}

int fqvit_pts_layernorm_cpu_i8(const int8_t* x, const uint8_t* alpha, const float* gamma, const float* beta, int8_t* y,
                               int64_t rows, int64_t channels, float x_scale, int32_t x_zero_point, float epsilon,
                               float y_scale, int32_t y_zero_point, int isa) {
  return pts_cpu(x, alpha, gamma, beta, y, rows, channels, x_scale, x_zero_point, epsilon, y_scale, y_zero_point, isa);
}

int fqvit_log_int_softmax_cpu(const uint8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                              const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier, int bits,
                              int isa) {
  return lis_cpu(x, x_shape, x_rank, mask, m_shape, m_rank, codes, multiplier, bits, isa);
}

int fqvit_log_int_softmax_cpu_i8(const int8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                                 const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier, int bits,
                                 int isa) {
  return lis_cpu(x, x_shape, x_rank, mask, m_shape, m_rank, codes, multiplier, bits, isa);
}

int fqvit_lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, int64_t batch, int64_t m, int64_t n,
                         int64_t d, float v_scale, int32_t v_zero_point, float y_scale, int32_t y_zero_point,
                         int bits, int isa) {
  return lismm_cpu(a, v, y, batch, m, n, d, v_scale, v_zero_point, y_scale, y_zero_point, bits, isa);
}

int fqvit_lis_matmul_cpu_i8(const uint8_t* a, const int8_t* v, int8_t* y, int64_t batch, int64_t m, int64_t n,
                            int64_t d, float v_scale, int32_t v_zero_point, float y_scale, int32_t y_zero_point,
                            int bits, int isa) {
  return lismm_cpu(a, v, y, batch, m, n, d, v_scale, v_zero_point, y_scale, y_zero_point, bits, isa);
}

int fqvit_lookup_cpu(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t table_size, int isa) {
  return lookup_cpu(x, table, y, n, table_size, isa);
}

int fqvit_lookup_cpu_i8(const int8_t* x, const int8_t* table, int8_t* y, int64_t n, int64_t table_size, int isa) {
  return lookup_cpu(x, table, y, n, table_size, isa);
}

int fqvit_requantize_cpu(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y, int64_t numel,
                         int64_t n, int64_t multiplier_size, int64_t bias_size, float y_scale, int32_t y_zero_point,
                         int isa) {
  return rq_cpu(a, multiplier, bias, y, numel, n, multiplier_size, bias_size, y_scale, y_zero_point, isa);
}

int fqvit_requantize_cpu_i8(const int32_t* a, const float* multiplier, const float* bias, int8_t* y, int64_t numel,
                            int64_t n, int64_t multiplier_size, int64_t bias_size, float y_scale, int32_t y_zero_point,
                            int isa) {
  return rq_cpu(a, multiplier, bias, y, numel, n, multiplier_size, bias_size, y_scale, y_zero_point, isa);
}

int fqvit_residual_add_cpu(const uint8_t* a, const float* a_scale, int32_t a_zero_point, const uint8_t* b,
                           const float* b_scale, int32_t b_zero_point, const float* y_scale, int32_t y_zero_point,
                           const float* gamma, uint8_t* y, int64_t numel, int64_t channels, int64_t a_scale_size,
                           int64_t b_scale_size, int64_t y_scale_size, int64_t gamma_size, int isa) {
  return ra_cpu(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, gamma, y, numel, channels,
                a_scale_size, b_scale_size, y_scale_size, gamma_size, isa);
}

int fqvit_residual_add_cpu_i8(const int8_t* a, const float* a_scale, int32_t a_zero_point, const int8_t* b,
                              const float* b_scale, int32_t b_zero_point, const float* y_scale, int32_t y_zero_point,
                              const float* gamma, int8_t* y, int64_t numel, int64_t channels, int64_t a_scale_size,
                              int64_t b_scale_size, int64_t y_scale_size, int64_t gamma_size, int isa) {
  return ra_cpu(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, gamma, y, numel, channels,
                a_scale_size, b_scale_size, y_scale_size, gamma_size, isa);
}

int fqvit_qlinear_cpu(const uint8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                      const float* bias, float y_scale, int32_t y_zero_point, uint8_t* y, int64_t m, int64_t k,
                      int64_t n, int64_t multiplier_size, int64_t bias_size, int isa) {
  return ql_cpu(x, w, x_zero_point, multiplier, bias, y_scale, y_zero_point, y, m, k, n, multiplier_size, bias_size,
                isa);
}

int fqvit_qlinear_cpu_i8(const int8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                         const float* bias, float y_scale, int32_t y_zero_point, int8_t* y, int64_t m, int64_t k,
                         int64_t n, int64_t multiplier_size, int64_t bias_size, int isa) {
  return ql_cpu(x, w, x_zero_point, multiplier, bias, y_scale, y_zero_point, y, m, k, n, multiplier_size, bias_size,
                isa);
}

int fqvit_lis_attention_cpu(const uint8_t* qkv, uint8_t* y, int64_t batch, int64_t tokens, int64_t heads,
                            int64_t head_dim, float qkv_scale, int32_t qkv_zero_point, float qk_multiplier,
                            float logits_scale, int32_t logits_zero_point, float y_scale, int32_t y_zero_point,
                            int64_t lis_multiplier, int bits, int isa) {
  return la_cpu(qkv, y, batch, tokens, heads, head_dim, qkv_scale, qkv_zero_point, qk_multiplier, logits_scale,
                logits_zero_point, y_scale, y_zero_point, lis_multiplier, bits, isa);
}

int fqvit_lis_attention_cpu_i8(const int8_t* qkv, int8_t* y, int64_t batch, int64_t tokens, int64_t heads,
                               int64_t head_dim, float qkv_scale, int32_t qkv_zero_point, float qk_multiplier,
                               float logits_scale, int32_t logits_zero_point, float y_scale, int32_t y_zero_point,
                               int64_t lis_multiplier, int bits, int isa) {
  return la_cpu(qkv, y, batch, tokens, heads, head_dim, qkv_scale, qkv_zero_point, qk_multiplier, logits_scale,
                logits_zero_point, y_scale, y_zero_point, lis_multiplier, bits, isa);
}

}  // extern "C"
