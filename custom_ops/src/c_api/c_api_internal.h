// Shared by the C entry points (c_api_cpu.cc, c_api_cuda.cc): the thread-local error message, the wrapper that turns
// a failed check or an exception into it, and the one place where a C argument list becomes an op's parameters.
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

#include "fqvit_ops/log_int_softmax.h"
#include "fqvit_ops/residual_add.h"

namespace fqvit {
namespace capi {

int fail(const std::string& message);  // records the message, returns 1
void clear_error();

// The code type of element type T (uint8_t or int8_t) of an entry point's codes.
template <typename T>
constexpr CodeType code_of() {
  return CodeRange<T>::kType;
}

// A parameter check's message ("" when fine) becomes an exception for guarded() to report.
inline void require(const std::string& err) {
  if (!err.empty()) throw std::invalid_argument(err);
}

// Runs one entry point: clears the last error, returns body()'s status, or records "<op>: <what>" and returns 1.
template <class Body>
int guarded(const char* op, Body&& body) {
  try {
    clear_error();
    return body();
  } catch (const std::exception& e) {
    return fail(std::string(op) + ": " + e.what());
  }
}

// LogIntSoftmax's X shape and optional mask -> its parameters and mask layout (both checked).
inline LisSoftmaxParams log_int_softmax_params(const int64_t* x_shape, int x_rank, const uint8_t* mask,
                                               const int64_t* m_shape, int m_rank, int64_t multiplier, int bits,
                                               MaskLayout* layout) {
  require(mask_layout_make(x_shape, x_rank, mask ? m_shape : nullptr, mask ? m_rank : 0, mask, layout));
  LisSoftmaxParams p;
  p.n = x_shape[x_rank - 1];
  int64_t numel = 1;
  for (int i = 0; i < x_rank; ++i) numel *= x_shape[i];
  p.rows = p.n == 0 ? 0 : numel / p.n;
  p.multiplier = multiplier;
  p.bits = bits;
  require(log_int_softmax_check(p));
  return p;
}

// ResidualAdd's sizes and zero points -> its parameters (checked); gamma nullptr must come with gamma_size 0.
inline ResidualAddParams residual_add_params(int64_t numel, int64_t channels, int64_t a_scale_size,
                                             int64_t b_scale_size, int64_t y_scale_size, const float* gamma,
                                             int64_t gamma_size, int32_t a_zero_point, int32_t b_zero_point,
                                             int32_t y_zero_point, CodeType code) {
  const ResidualAddParams p{numel,        channels,     a_scale_size, b_scale_size, y_scale_size,
                            gamma_size,   a_zero_point, b_zero_point, y_zero_point, code};
  require((gamma == nullptr) == (gamma_size == 0) ? std::string() : "gamma nullptr goes with gamma_size 0 (only)");
  require(residual_add_check(p));
  return p;
}

}  // namespace capi
}  // namespace fqvit
