// Plain C entry points of the CUDA kernels (fqvit_ops/c_api.h): device pointers, a cudaStream_t, no synchronisation.
// Only in libfqvit_ops_cuda.so; fqvit_export/deploy/capi.py binds them through ctypes (tools/gpu_check.py, tests).
#include <string>
#include <vector>

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

using fqvit::capi::code_of;
using fqvit::capi::guarded;
using fqvit::capi::require;

namespace {
int launched(int rc, const char* op) {
  if (rc == 0) return 0;
  fqvit::capi::fail(std::string(op) + ": CUDA launch failed: " + fqvit::cuda_error_text(rc));
  return rc;
}

template <typename T>
int pts_cuda(const T* x, const uint8_t* alpha, const float* gamma, const float* beta, T* y, int64_t rows,
             int64_t channels, float x_scale, int32_t x_zero_point, float epsilon, float y_scale, int32_t y_zero_point,
             void* stream) {
  return guarded("PTSLayerNorm", [&] {
    const fqvit::PtsLayerNormParams p{rows,    channels, x_scale,     x_zero_point,
                                      epsilon, y_scale,  y_zero_point, code_of<T>()};
    require(fqvit::pts_layernorm_check(p, nullptr));
    // alpha is device memory: checked on a host copy (a synchronisation), as the CPU entry point checks it.
    std::vector<uint8_t> host(static_cast<size_t>(channels));
    if (const int rc = fqvit::pts_layernorm_cuda_alpha_to_host(alpha, channels, host.data(), stream)) {
      return launched(rc, "PTSLayerNorm");
    }
    require(fqvit::pts_layernorm_alpha_check(host.data(), channels));
    return launched(fqvit::pts_layernorm_cuda(x, alpha, gamma, beta, y, p, stream), "PTSLayerNorm");
  });
}

template <typename T>
int lis_cuda(const T* x, const int64_t* x_shape, int x_rank, const uint8_t* mask, const int64_t* m_shape, int m_rank,
             uint8_t* codes, int64_t multiplier, int bits, void* stream) {
  return guarded("LogIntSoftmax", [&] {
    fqvit::MaskLayout layout;
    const fqvit::LisSoftmaxParams p =
        fqvit::capi::log_int_softmax_params(x_shape, x_rank, mask, m_shape, m_rank, multiplier, bits, &layout);
    return launched(fqvit::log_int_softmax_cuda(x, layout, codes, p, stream), "LogIntSoftmax");
  });
}

template <typename T>
int lismm_cuda(const uint8_t* a, const T* v, T* y, int64_t batch, int64_t m, int64_t n, int64_t d, float v_scale,
               int32_t v_zero_point, float y_scale, int32_t y_zero_point, int bits, void* stream) {
  return guarded("LISMatMul", [&] {
    const fqvit::LisMatMulParams p{batch, m, n, d, v_scale, v_zero_point, y_scale, y_zero_point, bits, code_of<T>()};
    require(fqvit::lis_matmul_check(p));
    return launched(fqvit::lis_matmul_cuda(a, v, y, p, stream), "LISMatMul");
  });
}

template <typename T>
int lookup_cuda(const T* x, const T* table, T* y, int64_t n, int64_t table_size, void* stream) {
  return guarded("Lookup", [&] {
    const fqvit::LookupParams p{n, table_size};
    require(fqvit::lookup_check(p));
    return launched(fqvit::lookup_cuda(x, table, y, p, stream), "Lookup");
  });
}

template <typename T>
int rq_cuda(const int32_t* a, const float* multiplier, const float* bias, T* y, int64_t numel, int64_t n,
            int64_t multiplier_size, int64_t bias_size, float y_scale, int32_t y_zero_point, void* stream) {
  return guarded("Requantize", [&] {
    const fqvit::RequantizeParams p{numel, n, multiplier_size, bias_size, y_scale, y_zero_point, code_of<T>()};
    require(fqvit::requantize_check(p));
    return launched(fqvit::requantize_cuda(a, multiplier, bias, y, p, stream), "Requantize");
  });
}

template <typename T>
int ra_cuda(const T* a, const float* a_scale, int32_t a_zero_point, const T* b, const float* b_scale,
            int32_t b_zero_point, const float* y_scale, int32_t y_zero_point, const float* gamma, T* y, int64_t numel,
            int64_t channels, int64_t a_scale_size, int64_t b_scale_size, int64_t y_scale_size, int64_t gamma_size,
            void* stream) {
  return guarded("ResidualAdd", [&] {
    const fqvit::ResidualAddParams p = fqvit::capi::residual_add_params(
        numel, channels, a_scale_size, b_scale_size, y_scale_size, gamma, gamma_size, a_zero_point, b_zero_point,
        y_zero_point, code_of<T>());
    return launched(fqvit::residual_add_cuda(a, b, {a_scale, b_scale, y_scale, gamma}, y, p, stream), "ResidualAdd");
  });
}

template <typename T>
int ql_cuda(const T* x, const int8_t* w, int32_t x_zero_point, const float* multiplier, const float* bias,
            float y_scale, int32_t y_zero_point, T* y, int64_t m, int64_t k, int64_t n, int64_t multiplier_size,
            int64_t bias_size, void* stream) {
  return guarded("QLinear", [&] {
    const fqvit::QLinearParams p{m,       k,           n,        multiplier_size, bias_size, x_zero_point,
                                 y_scale, y_zero_point, code_of<T>()};
    require(fqvit::qlinear_check(p));
    return launched(fqvit::qlinear_cuda(x, w, multiplier, bias, y, p, stream), "QLinear");
  });
}

template <typename T>
int la_cuda(const T* qkv, T* y, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim, float qkv_scale,
            int32_t qkv_zero_point, float qk_multiplier, float logits_scale, int32_t logits_zero_point, float y_scale,
            int32_t y_zero_point, int64_t lis_multiplier, int bits, void* stream) {
  return guarded("LISAttention", [&] {
    const fqvit::LisAttentionParams p{batch, tokens, heads, head_dim, qkv_scale, qkv_zero_point, qk_multiplier,
                                      logits_scale, logits_zero_point, y_scale, y_zero_point, lis_multiplier, bits,
                                      code_of<T>()};
    require(fqvit::lis_attention_check(p));
    return launched(fqvit::lis_attention_cuda(qkv, y, p, stream), "LISAttention");
  });
}

}  // namespace

extern "C" {

int fqvit_pts_layernorm_cuda(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta,
                             uint8_t* y, int64_t rows, int64_t channels, float x_scale, int32_t x_zero_point,
                             float epsilon, float y_scale, int32_t y_zero_point, void* stream) {
  return pts_cuda(x, alpha, gamma, beta, y, rows, channels, x_scale, x_zero_point, epsilon, y_scale, y_zero_point,
                  stream);
}

int fqvit_pts_layernorm_cuda_i8(const int8_t* x, const uint8_t* alpha, const float* gamma, const float* beta,
                                int8_t* y, int64_t rows, int64_t channels, float x_scale, int32_t x_zero_point,
                                float epsilon, float y_scale, int32_t y_zero_point, void* stream) {
  return pts_cuda(x, alpha, gamma, beta, y, rows, channels, x_scale, x_zero_point, epsilon, y_scale, y_zero_point,
                  stream);
}

int fqvit_log_int_softmax_cuda(const uint8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                               const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier, int bits,
                               void* stream) {
  return lis_cuda(x, x_shape, x_rank, mask, m_shape, m_rank, codes, multiplier, bits, stream);
}

int fqvit_log_int_softmax_cuda_i8(const int8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                                  const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier, int bits,
                                  void* stream) {
  return lis_cuda(x, x_shape, x_rank, mask, m_shape, m_rank, codes, multiplier, bits, stream);
}

int fqvit_lis_matmul_cuda(const uint8_t* a, const uint8_t* v, uint8_t* y, int64_t batch, int64_t m, int64_t n,
                          int64_t d, float v_scale, int32_t v_zero_point, float y_scale, int32_t y_zero_point,
                          int bits, void* stream) {
  return lismm_cuda(a, v, y, batch, m, n, d, v_scale, v_zero_point, y_scale, y_zero_point, bits, stream);
}

int fqvit_lis_matmul_cuda_i8(const uint8_t* a, const int8_t* v, int8_t* y, int64_t batch, int64_t m, int64_t n,
                             int64_t d, float v_scale, int32_t v_zero_point, float y_scale, int32_t y_zero_point,
                             int bits, void* stream) {
  return lismm_cuda(a, v, y, batch, m, n, d, v_scale, v_zero_point, y_scale, y_zero_point, bits, stream);
}

int fqvit_lookup_cuda(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t table_size,
                      void* stream) {
  return lookup_cuda(x, table, y, n, table_size, stream);
}

int fqvit_lookup_cuda_i8(const int8_t* x, const int8_t* table, int8_t* y, int64_t n, int64_t table_size,
                         void* stream) {
  return lookup_cuda(x, table, y, n, table_size, stream);
}

int fqvit_requantize_cuda(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y, int64_t numel,
                          int64_t n, int64_t multiplier_size, int64_t bias_size, float y_scale, int32_t y_zero_point,
                          void* stream) {
  return rq_cuda(a, multiplier, bias, y, numel, n, multiplier_size, bias_size, y_scale, y_zero_point, stream);
}

int fqvit_requantize_cuda_i8(const int32_t* a, const float* multiplier, const float* bias, int8_t* y, int64_t numel,
                             int64_t n, int64_t multiplier_size, int64_t bias_size, float y_scale,
                             int32_t y_zero_point, void* stream) {
  return rq_cuda(a, multiplier, bias, y, numel, n, multiplier_size, bias_size, y_scale, y_zero_point, stream);
}

int fqvit_residual_add_cuda(const uint8_t* a, const float* a_scale, int32_t a_zero_point, const uint8_t* b,
                            const float* b_scale, int32_t b_zero_point, const float* y_scale, int32_t y_zero_point,
                            const float* gamma, uint8_t* y, int64_t numel, int64_t channels, int64_t a_scale_size,
                            int64_t b_scale_size, int64_t y_scale_size, int64_t gamma_size, void* stream) {
  return ra_cuda(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, gamma, y, numel, channels,
                 a_scale_size, b_scale_size, y_scale_size, gamma_size, stream);
}

int fqvit_residual_add_cuda_i8(const int8_t* a, const float* a_scale, int32_t a_zero_point, const int8_t* b,
                               const float* b_scale, int32_t b_zero_point, const float* y_scale, int32_t y_zero_point,
                               const float* gamma, int8_t* y, int64_t numel, int64_t channels, int64_t a_scale_size,
                               int64_t b_scale_size, int64_t y_scale_size, int64_t gamma_size, void* stream) {
  return ra_cuda(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, gamma, y, numel, channels,
                 a_scale_size, b_scale_size, y_scale_size, gamma_size, stream);
}

const char* fqvit_cuda_architectures(void) { return fqvit::cuda_built_architectures(); }

int fqvit_qlinear_cuda(const uint8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                       const float* bias, float y_scale, int32_t y_zero_point, uint8_t* y, int64_t m, int64_t k,
                       int64_t n, int64_t multiplier_size, int64_t bias_size, void* stream) {
  return ql_cuda(x, w, x_zero_point, multiplier, bias, y_scale, y_zero_point, y, m, k, n, multiplier_size, bias_size,
                 stream);
}

int fqvit_qlinear_cuda_i8(const int8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                          const float* bias, float y_scale, int32_t y_zero_point, int8_t* y, int64_t m, int64_t k,
                          int64_t n, int64_t multiplier_size, int64_t bias_size, void* stream) {
  return ql_cuda(x, w, x_zero_point, multiplier, bias, y_scale, y_zero_point, y, m, k, n, multiplier_size, bias_size,
                 stream);
}

int fqvit_lis_attention_cuda(const uint8_t* qkv, uint8_t* y, int64_t batch, int64_t tokens, int64_t heads,
                             int64_t head_dim, float qkv_scale, int32_t qkv_zero_point, float qk_multiplier,
                             float logits_scale, int32_t logits_zero_point, float y_scale, int32_t y_zero_point,
                             int64_t lis_multiplier, int bits, void* stream) {
  return la_cuda(qkv, y, batch, tokens, heads, head_dim, qkv_scale, qkv_zero_point, qk_multiplier, logits_scale,
                 logits_zero_point, y_scale, y_zero_point, lis_multiplier, bits, stream);
}

int fqvit_lis_attention_cuda_i8(const int8_t* qkv, int8_t* y, int64_t batch, int64_t tokens, int64_t heads,
                                int64_t head_dim, float qkv_scale, int32_t qkv_zero_point, float qk_multiplier,
                                float logits_scale, int32_t logits_zero_point, float y_scale, int32_t y_zero_point,
                                int64_t lis_multiplier, int bits, void* stream) {
  return la_cuda(qkv, y, batch, tokens, heads, head_dim, qkv_scale, qkv_zero_point, qk_multiplier, logits_scale,
                 logits_zero_point, y_scale, y_zero_point, lis_multiplier, bits, stream);
}

}  // extern "C"
