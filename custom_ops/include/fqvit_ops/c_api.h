// Plain C entry points of the kernels, for tests and tools that call them without onnxruntime (ctypes, the C++
// kernel test). Arrays are contiguous row-major; CUDA entries take device pointers and a cudaStream_t and do not
// synchronise. Every function returns 0 on success; otherwise fqvit_last_error() describes the problem (for CUDA
// entries a nonzero return is also the cudaError_t value when the launch itself failed).
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

// CUDA variants (only in libfqvit_ops_cuda.so). alpha, gamma, beta, mask, table, multiplier, bias and all tensors
// are device pointers.
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

#ifdef __cplusplus
}
#endif
