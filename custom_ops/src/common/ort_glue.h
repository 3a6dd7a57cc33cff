// Helpers shared by the thin onnxruntime glue of each op: exception-to-status conversion, typed input access with
// checks, the ONNX type of a spec.h port, and row-parallel dispatch on the session's intra-op thread pool. Kernels
// never see onnxruntime types; the per-op bases built on these are in op_base.h.
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "fqvit_ops/common.h"
#include "fqvit_ops/spec.h"

namespace fqvit {
namespace glue {

using fqvit::kDomain;                     // fqvit_ops/spec.h
constexpr int kOpsetVersion = kOpVersion;  // the kernels register com.fqvit kOpVersion..kOpVersion
constexpr const char* kCpuProvider = "CPUExecutionProvider";
constexpr const char* kCudaProvider = "CUDAExecutionProvider";

enum class Provider { kCpu, kCuda };

#ifdef FQVIT_WITH_CUDA
constexpr bool kWithCuda = true;  // libfqvit_ops_cuda.so: the CUDA kernels are linked in
#else
constexpr bool kWithCuda = false;
#endif

// Bad input or attribute: becomes ORT_INVALID_ARGUMENT with the op name in front.
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws InvalidArgument unless ok. `message` is a string, or a callable returning one, called only on failure: the
// checks run on every node of every run, and a message built eagerly from pieces costs allocations each time (a few
// microseconds per node: most of a small QLinear's time in onnxruntime).
template <typename Message>
void require(bool ok, Message&& message) {
  if (ok) return;
  if constexpr (std::is_invocable_v<Message&>) {
    throw InvalidArgument(std::string(message()));
  } else {
    throw InvalidArgument(std::string(message));
  }
}

// A kernel parameter check's message ("" when fine) becomes an InvalidArgument.
inline void require_valid(const std::string& check_message) { require(check_message.empty(), check_message); }

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

// Whether an onnxruntime call succeeded (status nullptr); a failure status is released (the caller reports it).
inline bool succeeded(OrtStatus* status) {
  if (status == nullptr) return true;
  Ort::GetApi().ReleaseStatus(status);
  return false;
}

const char* type_name(ONNXTensorElementDataType t);
std::string shape_str(const std::vector<int64_t>& shape);

// An input of the node as the glue sees it: its spec.h name and ONNX type (for messages and the scalar readers), its
// shape and data (nullptr for an optional input the node leaves out, with rank 0 and no elements).
struct Input {
  const char* name = "";
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  const void* data = nullptr;
  template <typename T>
  const T* as() const { return static_cast<const T*>(data); }
};

// Input `index` (named `name` in messages), checked to be a tensor of `type`.
Input get_input(const Ort::KernelContext& ctx, size_t index, const char* name, ONNXTensorElementDataType type);
// The one element of a scale (float) or zero-point (uint8 or int8 code, returned as int32) input, checked to be a
// scalar (rank 0, or rank 1 with one element); host memory (spec.h kHost on CUDA).
float scalar_f32(const Input& in);
int32_t scalar_code(const Input& in);
// Checks that a per-channel input holds one value per channel (shape [n]) or one for all (rank 0, or [1]); the
// message names the channel axis (`axis` "N", `of` "the last dimension of W") and ends with `context`.
void require_per_channel(const Input& in, int64_t n, const char* axis, const char* of, const std::string& context);

// The ONNX element type of a spec.h port type; kT is the node's code type `code`.
constexpr ONNXTensorElementDataType onnx_type(op::Dtype dtype, CodeType code) {
  switch (dtype) {
    case op::kT:
      return code == CodeType::kInt8 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case op::kUint8: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case op::kInt32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case op::kFloat: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case op::kBool: return ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
    case op::kInt8: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

// Calls fn(begin, end) over [0, total) in chunks of about `grain` units on the intra-op thread pool. An exception in a
// chunk is captured and rethrown here after all chunks finished. More than one chunk are made a multiple of the CPU
// threads (fqvit::cpu_threads, about the pool's size) where `total` allows, so that equal chunks share the threads
// evenly: 75 K elements in chunks of about 32 K are 4 chunks on 2 threads, not 3 (one thread doing two, the other one).
// The chunks go to the pool in as many batches of consecutive chunks as CPU threads (ParallelFor's num_batch), so a
// thread takes a contiguous range, as the op before it did, rather than one chunk at a time: 1-3% on deit_small and
// deit_base (AMX Xeon, 2 threads).
template <typename F>
void parallel_for(const Ort::KernelContext& ctx, int64_t total, int64_t grain, F&& fn) {
  if (total <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = std::min<int64_t>(total, (total + grain - 1) / grain);
  if (chunks > 1) {
    const int64_t threads = fqvit::cpu_threads();
    chunks = std::min<int64_t>(total, (chunks + threads - 1) / threads * threads);
  }
  if (chunks == 1) {
    fn(int64_t(0), total);
    return;
  }
  struct State {
    std::remove_reference_t<F>* fn = nullptr;
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
  const int64_t batches = std::min<int64_t>(chunks, fqvit::cpu_threads());
  ctx.ParallelFor(trampoline, static_cast<size_t>(chunks), static_cast<size_t>(batches), &state);
  if (state.failed) throw std::runtime_error(state.message);
}

}  // namespace glue
}  // namespace fqvit
