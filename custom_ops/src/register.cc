// The one table of com.fqvit ops and the library's only exported symbol, RegisterCustomOps.
//
// onnxruntime calls RegisterCustomOps for every SessionOptions that loads this library
// (SessionOptions.register_custom_ops_library in Python). The domain holds one definition per op and execution
// provider: CPU always, CUDA in libfqvit_ops_cuda.so.
#include <mutex>

#include "common/ops.h"

namespace {

using fqvit::glue::Provider;
using OpFactory = const OrtCustomOp* (*)(Provider);

// Adding an op: write src/<op>/ (kernels + glue) and add its factory here.
constexpr OpFactory kOps[] = {
    &fqvit::glue::pts_layernorm_op,
    &fqvit::glue::log_int_softmax_op,
    &fqvit::glue::lis_matmul_op,
    &fqvit::glue::lookup_op,
    &fqvit::glue::requantize_op,
};

constexpr Provider kProviders[] = {
    Provider::kCpu,
#ifdef FQVIT_WITH_CUDA
    Provider::kCuda,
#endif
};

OrtCustomOpDomain* domain() {
  // Created once and shared by every session: the domain must outlive them, so it lives as long as the library.
  static Ort::CustomOpDomain d = [] {
    Ort::CustomOpDomain dom(fqvit::glue::kDomain);
    for (const OpFactory make : kOps) {
      for (const Provider provider : kProviders) {
        if (const OrtCustomOp* op = make(provider)) dom.Add(op);
      }
    }
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
