// Plain C entry points of the kernels, for tests and tools that call them without onnxruntime (ctypes, the C++
// kernel test). Arrays are contiguous row-major; CUDA entries take device pointers and a cudaStream_t and do not
// synchronise. Every function returns 0 on success; otherwise fqvit_last_error() describes the problem (for CUDA
// entries a nonzero return is also the cudaError_t value when the launch itself failed; the message then names the
// error, and for a GPU without a kernel image its architecture and the library's).
//
// Code types (fqvit_ops/spec.h CodeType): every op has a uint8 entry (fqvit_<op>_<cpu|cuda>) and an int8 one
// (fqvit_<op>_<cpu|cuda>_i8) with the same arguments in the same order, where the ports of type T (spec.py) are
// int8_t pointers and their zero points int32 values in -128..127 (uint8: 0..255):
//   PTSLayerNorm   x, y, x_zero_point, y_zero_point      (alpha stays uint8)
//   LogIntSoftmax  x                                     (codes stay uint8)
//   LISMatMul      v, y, v_zero_point, y_zero_point      (a, the LIS codes, stays uint8)
//   Lookup         x, table, y                           (the index is x's byte: x = -128 reads table[128])
//   Requantize     y, y_zero_point                       (a stays int32)
//   QLinear        x, y, x_zero_point, y_zero_point      (w stays int8)
//   ResidualAdd    a, b, y and the three zero points
//   LISAttention   qkv, y and the three zero points
// An int8 result is the uint8 one minus 128 for inputs shifted by -128, bit for bit.
#pragma once

#include <stdint.h>

#if defined(__GNUC__)
#define FQVIT_C_API __attribute__((visibility("default")))
#else
#define FQVIT_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Message of the last failed call on this thread ("" if none).
FQVIT_C_API const char* fqvit_last_error(void);
// Name of the CPU path that `isa` (-1 = automatic, 0 scalar, 1 avx2, 2 avx512) resolves to on this machine.
FQVIT_C_API const char* fqvit_cpu_isa_name(int isa);

// PTSLayerNorm over X [rows, channels] (docs/ops.md Sec. 2). Single-threaded.
FQVIT_C_API int fqvit_pts_layernorm_cpu(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta,
                                        uint8_t* y, int64_t rows, int64_t channels, float x_scale, int32_t x_zero_point,
                                        float epsilon, float y_scale, int32_t y_zero_point, int isa);
// LogIntSoftmax over X (shape x_shape, rank x_rank, softmax on the last axis) with an optional bool mask (nullptr
// or shape m_shape of rank m_rank, broadcast to X). Single-threaded.
FQVIT_C_API int fqvit_log_int_softmax_cpu(const uint8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                                          const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier,
                                          int bits, int isa);
// LISMatMul: A [batch, m, n] codes, V [batch, n, d] -> Y [batch, m, d]. Single-threaded.
FQVIT_C_API int fqvit_lis_matmul_cpu(const uint8_t* a, const uint8_t* v, uint8_t* y, int64_t batch, int64_t m,
                                     int64_t n, int64_t d, float v_scale, int32_t v_zero_point, float y_scale,
                                     int32_t y_zero_point, int bits, int isa);
// Lookup: y[i] = table[x[i]] for i < n; table_size must be 256. Single-threaded.
FQVIT_C_API int fqvit_lookup_cpu(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t table_size,
                                 int isa);
// Requantize: A int32 [numel / n, n] -> Y uint8, channel i % n; multiplier_size and bias_size are n or 1 (broadcast).
// Single-threaded.
FQVIT_C_API int fqvit_requantize_cpu(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y,
                                     int64_t numel, int64_t n, int64_t multiplier_size, int64_t bias_size,
                                     float y_scale, int32_t y_zero_point, int isa);
// ResidualAdd: A, B [numel / channels, channels] -> Y, channel i % channels; the inputs in spec order, then Y and the
// sizes: a_scale_size, b_scale_size, y_scale_size are channels or 1 (broadcast), gamma_size too, or gamma nullptr
// with gamma_size 0 (no LayerScale). Single-threaded.
FQVIT_C_API int fqvit_residual_add_cpu(const uint8_t* a, const float* a_scale, int32_t a_zero_point, const uint8_t* b,
                                       const float* b_scale, int32_t b_zero_point, const float* y_scale,
                                       int32_t y_zero_point, const float* gamma, uint8_t* y, int64_t numel,
                                       int64_t channels, int64_t a_scale_size, int64_t b_scale_size,
                                       int64_t y_scale_size, int64_t gamma_size, int isa);
// QLinear: X [m, k] codes times int8 W [k, n] (zero point 0), then Requantize's epilogue -> Y [m, n]; the inputs in
// spec order, then Y and the sizes (multiplier_size and bias_size are n or 1). Packs W on every call (oneDNN's
// layout when the library has it); single-threaded.
FQVIT_C_API int fqvit_qlinear_cpu(const uint8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                                  const float* bias, float y_scale, int32_t y_zero_point, uint8_t* y, int64_t m,
                                  int64_t k, int64_t n, int64_t multiplier_size, int64_t bias_size, int isa);
// LISAttention: QKV [batch, tokens, 3 * heads * head_dim] codes -> Y [batch, tokens, heads * head_dim]
// (docs/ops.md Sec. 5, fused ops); the scalars as the op's inputs, then its attributes lis_multiplier and bits.
// Single-threaded.
FQVIT_C_API int fqvit_lis_attention_cpu(const uint8_t* qkv, uint8_t* y, int64_t batch, int64_t tokens, int64_t heads,
                                        int64_t head_dim, float qkv_scale, int32_t qkv_zero_point,
                                        float qk_multiplier, float logits_scale, int32_t logits_zero_point,
                                        float y_scale, int32_t y_zero_point, int64_t lis_multiplier, int bits,
                                        int isa);

// int8 variants of the CPU entries (see the top of this file).
FQVIT_C_API int fqvit_pts_layernorm_cpu_i8(const int8_t* x, const uint8_t* alpha, const float* gamma,
                                           const float* beta, int8_t* y, int64_t rows, int64_t channels,
                                           float x_scale, int32_t x_zero_point, float epsilon, float y_scale,
                                           int32_t y_zero_point, int isa);
FQVIT_C_API int fqvit_log_int_softmax_cpu_i8(const int8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                                             const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier,
                                             int bits, int isa);
FQVIT_C_API int fqvit_lis_matmul_cpu_i8(const uint8_t* a, const int8_t* v, int8_t* y, int64_t batch, int64_t m,
                                        int64_t n, int64_t d, float v_scale, int32_t v_zero_point, float y_scale,
                                        int32_t y_zero_point, int bits, int isa);
FQVIT_C_API int fqvit_lookup_cpu_i8(const int8_t* x, const int8_t* table, int8_t* y, int64_t n, int64_t table_size,
                                    int isa);
FQVIT_C_API int fqvit_requantize_cpu_i8(const int32_t* a, const float* multiplier, const float* bias, int8_t* y,
                                        int64_t numel, int64_t n, int64_t multiplier_size, int64_t bias_size,
                                        float y_scale, int32_t y_zero_point, int isa);
FQVIT_C_API int fqvit_residual_add_cpu_i8(const int8_t* a, const float* a_scale, int32_t a_zero_point, const int8_t* b,
                                          const float* b_scale, int32_t b_zero_point, const float* y_scale,
                                          int32_t y_zero_point, const float* gamma, int8_t* y, int64_t numel,
                                          int64_t channels, int64_t a_scale_size, int64_t b_scale_size,
                                          int64_t y_scale_size, int64_t gamma_size, int isa);
FQVIT_C_API int fqvit_qlinear_cpu_i8(const int8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                                     const float* bias, float y_scale, int32_t y_zero_point, int8_t* y, int64_t m,
                                     int64_t k, int64_t n, int64_t multiplier_size, int64_t bias_size, int isa);
FQVIT_C_API int fqvit_lis_attention_cpu_i8(const int8_t* qkv, int8_t* y, int64_t batch, int64_t tokens,
                                           int64_t heads, int64_t head_dim, float qkv_scale, int32_t qkv_zero_point,
                                           float qk_multiplier, float logits_scale, int32_t logits_zero_point,
                                           float y_scale, int32_t y_zero_point, int64_t lis_multiplier, int bits,
                                           int isa);

// The kernels RegisterCustomOps registers (both libraries), one line each:
//   "<op> <provider> <input types> -> <output types>\n"
// e.g. "Lookup CUDAExecutionProvider int8,int8 -> int8"; types are ONNX element type names (uint8, int8, int32,
// float, bool), comma-separated in input order, an optional input's followed by '?'. A static string; calls no
// onnxruntime or CUDA API (works without a GPU or a driver). Python: fqvit_export.kernels.registered_kernels.
FQVIT_C_API const char* fqvit_registered_kernels(void);

// CUDA variants (only in libfqvit_ops_cuda.so). alpha, gamma, beta, mask, table, multiplier, bias, ResidualAdd's
// scales and all tensors are device pointers.
FQVIT_C_API int fqvit_pts_layernorm_cuda(const uint8_t* x, const uint8_t* alpha, const float* gamma, const float* beta,
                                         uint8_t* y, int64_t rows, int64_t channels, float x_scale,
                                         int32_t x_zero_point, float epsilon, float y_scale, int32_t y_zero_point,
                                         void* stream);
FQVIT_C_API int fqvit_log_int_softmax_cuda(const uint8_t* x, const int64_t* x_shape, int x_rank, const uint8_t* mask,
                                           const int64_t* m_shape, int m_rank, uint8_t* codes, int64_t multiplier,
                                           int bits, void* stream);
FQVIT_C_API int fqvit_lis_matmul_cuda(const uint8_t* a, const uint8_t* v, uint8_t* y, int64_t batch, int64_t m,
                                      int64_t n, int64_t d, float v_scale, int32_t v_zero_point, float y_scale,
                                      int32_t y_zero_point, int bits, void* stream);
FQVIT_C_API int fqvit_lookup_cuda(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t table_size,
                                  void* stream);
FQVIT_C_API int fqvit_requantize_cuda(const int32_t* a, const float* multiplier, const float* bias, uint8_t* y,
                                      int64_t numel, int64_t n, int64_t multiplier_size, int64_t bias_size,
                                      float y_scale, int32_t y_zero_point, void* stream);
FQVIT_C_API int fqvit_residual_add_cuda(const uint8_t* a, const float* a_scale, int32_t a_zero_point,
                                        const uint8_t* b, const float* b_scale, int32_t b_zero_point,
                                        const float* y_scale, int32_t y_zero_point, const float* gamma, uint8_t* y,
                                        int64_t numel, int64_t channels, int64_t a_scale_size, int64_t b_scale_size,
                                        int64_t y_scale_size, int64_t gamma_size, void* stream);
FQVIT_C_API int fqvit_qlinear_cuda(const uint8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                                   const float* bias, float y_scale, int32_t y_zero_point, uint8_t* y, int64_t m,
                                   int64_t k, int64_t n, int64_t multiplier_size, int64_t bias_size, void* stream);
FQVIT_C_API int fqvit_lis_attention_cuda(const uint8_t* qkv, uint8_t* y, int64_t batch, int64_t tokens,
                                         int64_t heads, int64_t head_dim, float qkv_scale, int32_t qkv_zero_point,
                                         float qk_multiplier, float logits_scale, int32_t logits_zero_point,
                                         float y_scale, int32_t y_zero_point, int64_t lis_multiplier, int bits,
                                         void* stream);
// int8 variants of the CUDA entries (see the top of this file); device pointers, as above.
FQVIT_C_API int fqvit_pts_layernorm_cuda_i8(const int8_t* x, const uint8_t* alpha, const float* gamma,
                                            const float* beta, int8_t* y, int64_t rows, int64_t channels,
                                            float x_scale, int32_t x_zero_point, float epsilon, float y_scale,
                                            int32_t y_zero_point, void* stream);
FQVIT_C_API int fqvit_log_int_softmax_cuda_i8(const int8_t* x, const int64_t* x_shape, int x_rank,
                                              const uint8_t* mask, const int64_t* m_shape, int m_rank, uint8_t* codes,
                                              int64_t multiplier, int bits, void* stream);
FQVIT_C_API int fqvit_lis_matmul_cuda_i8(const uint8_t* a, const int8_t* v, int8_t* y, int64_t batch, int64_t m,
                                         int64_t n, int64_t d, float v_scale, int32_t v_zero_point, float y_scale,
                                         int32_t y_zero_point, int bits, void* stream);
FQVIT_C_API int fqvit_lookup_cuda_i8(const int8_t* x, const int8_t* table, int8_t* y, int64_t n, int64_t table_size,
                                     void* stream);
FQVIT_C_API int fqvit_requantize_cuda_i8(const int32_t* a, const float* multiplier, const float* bias, int8_t* y,
                                         int64_t numel, int64_t n, int64_t multiplier_size, int64_t bias_size,
                                         float y_scale, int32_t y_zero_point, void* stream);
FQVIT_C_API int fqvit_residual_add_cuda_i8(const int8_t* a, const float* a_scale, int32_t a_zero_point,
                                           const int8_t* b, const float* b_scale, int32_t b_zero_point,
                                           const float* y_scale, int32_t y_zero_point, const float* gamma, int8_t* y,
                                           int64_t numel, int64_t channels, int64_t a_scale_size,
                                           int64_t b_scale_size, int64_t y_scale_size, int64_t gamma_size,
                                           void* stream);
FQVIT_C_API int fqvit_qlinear_cuda_i8(const int8_t* x, const int8_t* w, int32_t x_zero_point, const float* multiplier,
                                      const float* bias, float y_scale, int32_t y_zero_point, int8_t* y, int64_t m,
                                      int64_t k, int64_t n, int64_t multiplier_size, int64_t bias_size, void* stream);
FQVIT_C_API int fqvit_lis_attention_cuda_i8(const int8_t* qkv, int8_t* y, int64_t batch, int64_t tokens,
                                            int64_t heads, int64_t head_dim, float qkv_scale, int32_t qkv_zero_point,
                                            float qk_multiplier, float logits_scale, int32_t logits_zero_point,
                                            float y_scale, int32_t y_zero_point, int64_t lis_multiplier, int bits,
                                            void* stream);
// The architectures libfqvit_ops_cuda.so was compiled for (CMAKE_CUDA_ARCHITECTURES, e.g.
// "75-real,80-real,86-real,89-real,90-real,90-virtual"); no CUDA API call.
FQVIT_C_API const char* fqvit_cuda_architectures(void);

#ifdef __cplusplus
}
#endif
