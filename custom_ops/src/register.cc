// The one table of com.fqvit ops and the library's entry points: RegisterCustomOps, and fqvit_registered_kernels
// (what RegisterCustomOps registers, as text).
//
// onnxruntime calls RegisterCustomOps for every SessionOptions that loads this library
// (SessionOptions.register_custom_ops_library in Python). The domain holds one definition per op, execution
// provider (CPU always, CUDA in libfqvit_ops_cuda.so) and code type T (uint8, int8): the two code types of an op
// share its name and differ in their T ports' types; onnxruntime merges them into one schema with a type constraint
// per port and picks the kernel whose types match the node's.
#include <mutex>
#include <string>

#include "common/ops.h"

namespace {

using fqvit::glue::Provider;
using fqvit::CodeType;
using OpFactory = const OrtCustomOp* (*)(Provider, CodeType);

// Adding an op: write src/<op>/ (kernels + glue) and add its factory here.
constexpr OpFactory kOps[] = {
    &fqvit::glue::pts_layernorm_op,
    &fqvit::glue::log_int_softmax_op,
    &fqvit::glue::lis_matmul_op,
    &fqvit::glue::lookup_op,
    &fqvit::glue::requantize_op,
    &fqvit::glue::qlinear_op,
    &fqvit::glue::residual_add_op,
    &fqvit::glue::lis_attention_op,
};

constexpr Provider kProviders[] = {
    Provider::kCpu,
#ifdef FQVIT_WITH_CUDA
    Provider::kCuda,
#endif
};

constexpr CodeType kCodeTypes[] = {CodeType::kUint8, CodeType::kInt8};

// Calls f(op) for every definition this build registers, in table order: op, then provider, then code type.
template <typename F>
void for_each_op(F&& f) {
  for (const OpFactory make : kOps) {
    for (const Provider provider : kProviders) {
      for (const CodeType code : kCodeTypes) {
        if (const OrtCustomOp* op = make(provider, code)) f(op);
      }
    }
  }
}

const char* element_type_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED: return "any";
    default: return "other";
  }
}

// One line per definition: "<op> <provider> <input types> -> <output types>", types comma-separated, an optional
// input's type followed by '?'. Built from the OrtCustomOp callbacks onnxruntime itself reads; no onnxruntime or CUDA
// API call, so it works on a machine without either.
std::string describe_kernels() {
  std::string out;
  for_each_op([&](const OrtCustomOp* op) {
    out += op->GetName(op);
    out += ' ';
    out += op->GetExecutionProviderType(op);
    out += ' ';
    const size_t n_in = op->GetInputTypeCount(op);
    for (size_t i = 0; i < n_in; ++i) {
      if (i) out += ',';
      out += element_type_name(op->GetInputType(op, i));
      if (op->GetInputCharacteristic != nullptr &&
          op->GetInputCharacteristic(op, i) == OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL) {
        out += '?';
      }
    }
    out += " -> ";
    const size_t n_out = op->GetOutputTypeCount(op);
    for (size_t i = 0; i < n_out; ++i) {
      if (i) out += ',';
      out += element_type_name(op->GetOutputType(op, i));
    }
    out += '\n';
  });
  return out;
}

OrtCustomOpDomain* domain() {
  // Created once and shared by every session: the domain must outlive them, so it lives as long as the library.
  static Ort::CustomOpDomain d = [] {
    Ort::CustomOpDomain dom(fqvit::glue::kDomain);
    for_each_op([&](const OrtCustomOp* op) { dom.Add(op); });
    return dom;
  }();
  return d;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    // Older runtime than the headers we were built with; version 1 of the API can still report it.
    return api_base->GetApi(1)->CreateStatus(
        ORT_FAIL, "libfqvit_ops: onnxruntime is older than 1.21 (the headers this library was built against)");
  }
  static std::once_flag init;
  std::call_once(init, [api] { Ort::InitApi(api); });
  return fqvit::glue::guarded("RegisterCustomOps", [&] {
    Ort::UnownedSessionOptions session_options(options);
    session_options.Add(domain());
  });
}

// The kernels RegisterCustomOps registers, one line each (describe_kernels); a static string, valid as long as the
// library is loaded. For ctypes callers (fqvit_export/kernels.py): needs neither onnxruntime nor a GPU.
extern "C" __attribute__((visibility("default"))) const char* fqvit_registered_kernels(void) {
  static const std::string text = describe_kernels();
  return text.c_str();
}
