// Attribute reading for the glue: a missing or mistyped attribute becomes a clear InvalidArgument.
#pragma once

#include <string>

#include "common/ort_glue.h"

namespace fqvit {
namespace glue {

inline float attr_f32(const OrtKernelInfo* info, const char* name) {
  float v = 0.0f;
  OrtStatus* st = Ort::GetApi().KernelInfoGetAttribute_float(info, name, &v);
  if (st != nullptr) {
    Ort::GetApi().ReleaseStatus(st);
    throw InvalidArgument(std::string("attribute '") + name + "' (float) is required on the node");
  }
  return v;
}

inline int64_t attr_i64(const OrtKernelInfo* info, const char* name) {
  int64_t v = 0;
  OrtStatus* st = Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &v);
  if (st != nullptr) {
    Ort::GetApi().ReleaseStatus(st);
    throw InvalidArgument(std::string("attribute '") + name + "' (int) is required on the node");
  }
  return v;
}

inline int64_t attr_i64_or(const OrtKernelInfo* info, const char* name, int64_t fallback) {
  int64_t v = 0;
  OrtStatus* st = Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &v);
  if (st != nullptr) {
    Ort::GetApi().ReleaseStatus(st);
    return fallback;
  }
  return v;
}

// The CustomOpBase part every op shares: provider, version 1 of com.fqvit, status-returning kernel creation.
template <typename TOp, typename TKernel>
struct OpBase : Ort::CustomOpBase<TOp, TKernel, /*WithStatus=*/true> {
  explicit OpBase(Provider provider) : provider_(provider) {
    this->start_ver_ = kOpsetVersion;
    this->end_ver_ = kOpsetVersion;
  }
  const char* GetExecutionProviderType() const {
    return provider_ == Provider::kCuda ? kCudaProvider : kCpuProvider;
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
    *kernel = nullptr;
    return guarded(static_cast<const TOp*>(this)->GetName(), [&] { *kernel = new TKernel(info, provider_); });
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8; }

 protected:
  Provider provider_;
};

}  // namespace glue
}  // namespace fqvit
