// Attribute readers of the glue, used when a kernel is created: a missing or mistyped required attribute becomes an
// InvalidArgument that names it (so the session fails to load with a clear message).
#pragma once

#include <string>
#include <type_traits>

#include "common/ort_glue.h"
#include "fqvit_ops/common.h"

namespace fqvit {
namespace glue {

// Reads attribute `name` into *value; false (its status released) when the node has no such attribute of that type.
inline bool read_attribute(const OrtKernelInfo* info, const char* name, float* value) {
  return succeeded(Ort::GetApi().KernelInfoGetAttribute_float(info, name, value));
}
inline bool read_attribute(const OrtKernelInfo* info, const char* name, int64_t* value) {
  return succeeded(Ort::GetApi().KernelInfoGetAttribute_int64(info, name, value));
}

// Required attribute `name` of type T (float or int64_t).
template <typename T>
T attr(const OrtKernelInfo* info, const char* name) {
  T value{};
  const char* type = std::is_same<T, float>::value ? "float" : "int";
  require(read_attribute(info, name, &value),
          [&] { return std::string("attribute '") + name + "' (" + type + ") is required on the node"; });
  return value;
}

// Optional attribute `name`: `fallback` when the node does not set it.
template <typename T>
T attr_or(const OrtKernelInfo* info, const char* name, T fallback) {
  T value{};
  return read_attribute(info, name, &value) ? value : fallback;
}

// The `bits` attribute (named `name`) of LogIntSoftmax and LISMatMul (default and range: fqvit_ops/spec.h).
inline int attr_lis_bits(const OrtKernelInfo* info, const char* name) {
  const int64_t bits = attr_or<int64_t>(info, name, kLisDefaultBits);
  require_valid(lis_bits_check(bits));
  return static_cast<int>(bits);
}

}  // namespace glue
}  // namespace fqvit
