// Helpers shared by the thin onnxruntime glue of each op: exception-to-status conversion, typed input access with
// checks, and row-parallel dispatch on the session's intra-op thread pool. Kernels never see onnxruntime types.
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "fqvit_ops/spec.h"

namespace fqvit {
namespace glue {

using fqvit::kDomain;                     // fqvit_ops/spec.h
constexpr int kOpsetVersion = kOpVersion;  // the kernels register com.fqvit kOpVersion..kOpVersion
constexpr const char* kCpuProvider = "CPUExecutionProvider";
constexpr const char* kCudaProvider = "CUDAExecutionProvider";

enum class Provider { kCpu, kCuda };

// Bad input or attribute: becomes ORT_INVALID_ARGUMENT with the op name in front.
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void require(bool ok, const std::string& message) {
  if (!ok) throw InvalidArgument(message);
}

// Runs f and turns any exception into an OrtStatus (nullptr = success): nothing escapes into onnxruntime.
template <typename F>
OrtStatusPtr guarded(const char* op, F&& f) noexcept {
  const OrtApi& api = Ort::GetApi();
  try {
    f();
    return nullptr;
  } catch (const InvalidArgument& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, (std::string("com.fqvit::") + op + ": " + e.what()).c_str());
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), (std::string("com.fqvit::") + op + ": " + e.what()).c_str());
  } catch (const std::bad_alloc&) {
    return api.CreateStatus(ORT_FAIL, (std::string("com.fqvit::") + op + ": out of memory").c_str());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, (std::string("com.fqvit::") + op + ": " + e.what()).c_str());
  } catch (...) {
    return api.CreateStatus(ORT_FAIL, (std::string("com.fqvit::") + op + ": unknown error").c_str());
  }
}

const char* type_name(ONNXTensorElementDataType t);
std::string shape_str(const std::vector<int64_t>& shape);

struct Input {
  std::vector<int64_t> shape;
  int64_t numel = 0;
  const void* data = nullptr;
  template <typename T>
  const T* as() const { return static_cast<const T*>(data); }
};

// Input `index` (named `name` in messages), checked to be a tensor of `type`.
Input get_input(const Ort::KernelContext& ctx, size_t index, const char* name, ONNXTensorElementDataType type);
// A one-element input (rank 0, or rank 1 with one element) in CPU memory, read on the host.
float scalar_f32(const Ort::KernelContext& ctx, size_t index, const char* name);
int32_t scalar_u8(const Ort::KernelContext& ctx, size_t index, const char* name);
// A one-element code input (zero point) of code type `code` (uint8 or int8), as int32.
int32_t scalar_code(const Ort::KernelContext& ctx, size_t index, const char* name, CodeType code);

// The ONNX element type of a code type.
inline ONNXTensorElementDataType onnx_code_type(CodeType code) {
  return code == CodeType::kInt8 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
}

// Whether input `i` of op `Spec` (fqvit_ops/spec.h) is of the code type T.
template <typename Spec>
constexpr bool is_code_input(size_t i) {
  for (const auto k : Spec::kCodeInputs) {
    if (static_cast<size_t>(k) == i) return true;
  }
  return false;
}

// Calls fn(begin, end) over [0, total) in chunks of about `grain` units on the intra-op thread pool. An exception in a
// chunk is captured and rethrown here after all chunks finished.
template <typename F>
void parallel_for(const Ort::KernelContext& ctx, int64_t total, int64_t grain, F&& fn) {
  if (total <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = std::min<int64_t>(total, (total + grain - 1) / grain);
  if (chunks == 1) {
    fn(int64_t(0), total);
    return;
  }
  struct State {
    F* fn = nullptr;
    int64_t total = 0, chunks = 0;
    std::atomic<bool> failed{false};
    std::string message;
    std::atomic_flag message_lock = ATOMIC_FLAG_INIT;
  } state;
  state.fn = &fn;
  state.total = total;
  state.chunks = chunks;
  auto trampoline = [](void* user, size_t i) {
    State* s = static_cast<State*>(user);
    const int64_t begin = s->total * static_cast<int64_t>(i) / s->chunks;
    const int64_t end = s->total * (static_cast<int64_t>(i) + 1) / s->chunks;
    try {
      (*s->fn)(begin, end);
    } catch (const std::exception& e) {
      if (!s->message_lock.test_and_set()) s->message = e.what();
      s->failed = true;
    } catch (...) {
      if (!s->message_lock.test_and_set()) s->message = "unknown error in a worker";
      s->failed = true;
    }
  };
  ctx.ParallelFor(trampoline, static_cast<size_t>(chunks), 0, &state);
  if (state.failed) throw std::runtime_error(state.message);
}

// The op instance registered for `provider` and code type `code` (one static per op type, provider and code type;
// nullptr when this build lacks the provider). Both code types register under the op's one name: onnxruntime
// merges same-name definitions of a domain into one schema and picks the kernel by the node's input types.
template <typename OpT>
const OrtCustomOp* op_for(Provider provider, CodeType code) {
  static const OpT cpu_u8(Provider::kCpu, CodeType::kUint8);
  static const OpT cpu_i8(Provider::kCpu, CodeType::kInt8);
#ifdef FQVIT_WITH_CUDA
  static const OpT cuda_u8(Provider::kCuda, CodeType::kUint8);
  static const OpT cuda_i8(Provider::kCuda, CodeType::kInt8);
  if (provider == Provider::kCuda) return code == CodeType::kInt8 ? &cuda_i8 : &cuda_u8;
#endif
  if (provider != Provider::kCpu) return nullptr;
  return code == CodeType::kInt8 ? &cpu_i8 : &cpu_u8;
}

}  // namespace glue
}  // namespace fqvit
