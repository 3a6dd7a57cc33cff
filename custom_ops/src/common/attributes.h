// What every op's glue shares: attribute reading (a missing or mistyped attribute becomes a clear InvalidArgument),
// the kernel and op bases, and the checks that turn a kernel's parameter check or CUDA launch status into an error.
#pragma once

#include <stdexcept>
#include <string>

#include "common/ort_glue.h"
#include "fqvit_ops/common.h"

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

// A kernel parameter check's message ("" when fine) becomes an InvalidArgument.
inline void require_valid(const std::string& check_message) { require(check_message.empty(), check_message); }

// The `bits` attribute (named `name`) of LogIntSoftmax and LISMatMul (default and range: fqvit_ops/spec.h).
inline int attr_lis_bits(const OrtKernelInfo* info, const char* name) {
  const int64_t bits = attr_i64_or(info, name, kLisDefaultBits);
  require_valid(lis_bits_check(bits));
  return static_cast<int>(bits);
}

// A CUDA kernel's launch status (a cudaError_t value, 0 = success): its name and text, or, for a GPU without a
// kernel image, the device's and the library's architectures.
inline void require_launched(int rc) {
  if (rc == 0) return;
#ifdef FQVIT_WITH_CUDA
  throw std::runtime_error("CUDA kernel launch failed: " + cuda_error_text(rc));
#else
  throw std::runtime_error("CUDA kernel launch failed (cudaError_t " + std::to_string(rc) + ")");
#endif
}

// The kernel part every op shares: the provider it runs on, the CPU ISA resolved once, and ComputeV2, which runs
// TKernel::Compute with every exception turned into an OrtStatus named after the op.
template <typename TKernel>
struct KernelBase {
  KernelBase(const char* name, Provider provider, CodeType code)
      : name_(name), provider_(provider), code_(code), isa_(resolve_isa(-1)) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return guarded(name_, [&] { static_cast<TKernel*>(this)->Compute(context); });
  }

  const char* name_;
  Provider provider_;
  CodeType code_;  // T of this kernel's node
  Isa isa_;
};

// The CustomOpBase part every op shares: provider, code type, name and input count from TSpec (fqvit_ops/spec.h),
// version 1 of com.fqvit, status-returning kernel creation (on CUDA after checking that this GPU has a kernel image:
// TOp::CudaKernel(code) names the __global__ function).
template <typename TOp, typename TKernel, typename TSpec>
struct OpBase : Ort::CustomOpBase<TOp, TKernel, /*WithStatus=*/true> {
  OpBase(Provider provider, CodeType code) : provider_(provider), code_(code) {
    this->start_ver_ = kOpsetVersion;
    this->end_ver_ = kOpsetVersion;
  }
  const char* GetName() const { return TSpec::kName; }
  size_t GetInputTypeCount() const { return TSpec::kNumInputs; }
  const char* GetExecutionProviderType() const {
    return provider_ == Provider::kCuda ? kCudaProvider : kCpuProvider;
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
    *kernel = nullptr;
    return guarded(TSpec::kName, [&] {
#ifdef FQVIT_WITH_CUDA
      if (provider_ == Provider::kCuda) {
        const std::string image = cuda_kernel_image_check(TOp::CudaKernel(code_));
        if (!image.empty()) throw std::runtime_error(image);
      }
#endif
      *kernel = new TKernel(info, provider_, code_);
    });
  }
  // The input's type: T where spec.h lists it in TSpec::kCodeInputs, else TOp::FixedInputType(i).
  ONNXTensorElementDataType GetInputType(size_t i) const {
    return is_code_input<TSpec>(i) ? onnx_code_type(code_) : TOp::FixedInputType(i);
  }
  // Scale and zero-point scalars (TOp::IsHostScalar) are read on the host, so a CUDA kernel needs no device-to-host
  // copy; every other input stays in the provider's memory.
  OrtMemType GetInputMemoryType(size_t i) const {
    const bool host = provider_ == Provider::kCuda && static_cast<const TOp*>(this)->IsHostScalar(i);
    return host ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }
  static bool IsHostScalar(size_t /*index*/) { return false; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return TSpec::kCodeOutput ? onnx_code_type(code_) : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
  }

 protected:
  Provider provider_;
  CodeType code_;
};

}  // namespace glue
}  // namespace fqvit
