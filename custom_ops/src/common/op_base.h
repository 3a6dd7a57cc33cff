// The glue every op shares, driven by its spec.h struct: KernelBase (the code-type switch, spec-typed input access,
// output allocation, the CPU-or-CUDA dispatch) and CustomOp (the onnxruntime op definition: name, input types,
// memory and presence, output type, kernel creation). An op's glue (src/<op>/<op>_op.cc) is one Kernel that derives
// from KernelBase and holds only what is the op's own: its attributes, its checks, its params and its two launches.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/ort_glue.h"
#include "fqvit_ops/common.h"

namespace fqvit {
namespace glue {

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

// Whether TSpec::kInputs lists every input once, in Input order (so kInputs[i] is input i).
template <typename TSpec>
constexpr bool ports_in_order() {
  if (sizeof(TSpec::kInputs) / sizeof(op::Port) != TSpec::kNumInputs) return false;
  for (size_t i = 0; i < TSpec::kNumInputs; ++i) {
    if (TSpec::kInputs[i].index != i || TSpec::kInputs[i].name == nullptr) return false;
  }
  return true;
}

// The kernel part every op shares. TKernel (the op's kernel) provides
//   TKernel(const OrtKernelInfo*, Provider, CodeType)  reads and checks the attributes (or inherits this one);
//   template <typename T> void Run(Ort::KernelContext& ctx, const Input& <input>...)
//                                                       one Input per spec.h input, in spec order: checks them,
//                                                       allocates the output, calls dispatch();
// TSpec is the op's spec.h struct: every input's name, type and presence come from TSpec::kInputs.
template <typename TKernel, typename TSpec>
struct KernelBase {
  using Spec = TSpec;
  static_assert(ports_in_order<TSpec>(), "spec.h: kInputs must list every input once, in Input order");

  KernelBase(const OrtKernelInfo* /*info*/, Provider provider, CodeType code)
      : provider_(provider), code_(code), isa_(resolve_isa(-1)) {}

  // The input whose buffer the CPU kernel may write its output into (onnxruntime's MayInplace: the allocation planner
  // hands over the input's buffer where this node is its last reader and the sizes match), or -1: none. A kernel that
  // sets it computes each output element from the same element of that input only, reading before it writes.
  static constexpr int kInplaceInput = -1;

  // onnxruntime's compute: fetches and type-checks every input (in spec order), then the one switch on the code
  // type, TKernel::Run<uint8_t> or Run<int8_t>; every exception becomes an OrtStatus named after the op.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return guarded(TSpec::kName, [&] {
      Ort::KernelContext ctx(context);
      std::array<Input, TSpec::kNumInputs> inputs;
      for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = input(ctx, i);
      const auto in_order = std::make_index_sequence<TSpec::kNumInputs>();
      if (code_ == CodeType::kInt8) {
        run<int8_t>(ctx, inputs, in_order);
      } else {
        run<uint8_t>(ctx, inputs, in_order);
      }
    });
  }

 protected:
  // The output (spec.h kOutput: T, or uint8 for LogIntSoftmax's codes) of shape `shape`.
  template <typename TOut>
  TOut* output(const Ort::KernelContext& ctx, const std::vector<int64_t>& shape) const {
    return ctx.GetOutput(0, shape).GetTensorMutableData<TOut>();
  }

  // Runs the op over `total` units (nothing when 0: an empty output): on CUDA cuda(stream) on the EP's stream (it
  // returns the launch's cudaError_t), on the CPU cpu(begin, end) over chunks of about `grain` units on the intra-op
  // pool. In the CPU library the CUDA lambda is never called, so it is not compiled into it.
  template <typename Cuda, typename Cpu>
  void dispatch(const Ort::KernelContext& ctx, int64_t total, int64_t grain, Cuda&& cuda, Cpu&& cpu) const {
    if (total <= 0) return;
    if (provider_ == Provider::kCuda) {
      if constexpr (kWithCuda) require_launched(cuda(ctx.GetGPUComputeStream()));
      return;
    }
    parallel_for(ctx, total, grain, cpu);
  }

  Provider provider_;
  CodeType code_;  // T of this kernel's node
  Isa isa_;        // CPU path, resolved once (FQVIT_CPU_ISA may lower it)

 private:
  // Input i, checked to be a tensor of its spec.h type (kT: this node's code type); an optional input the node leaves
  // out is an Input without data.
  Input input(const Ort::KernelContext& ctx, size_t i) const {
    const op::Port& port = TSpec::kInputs[i];
    const ONNXTensorElementDataType type = onnx_type(port.dtype, code_);
    if (port.presence == op::kOptional && (i >= ctx.GetInputCount() || ctx.GetInput(i) == nullptr)) {
      Input absent;
      absent.name = port.name;
      absent.type = type;
      return absent;
    }
    return get_input(ctx, i, port.name, type);
  }

  template <typename T, size_t... I>
  void run(Ort::KernelContext& ctx, const std::array<Input, TSpec::kNumInputs>& inputs, std::index_sequence<I...>) {
    static_cast<TKernel&>(*this).template Run<T>(ctx, inputs[I]...);
  }
};

// The onnxruntime op definition of TKernel's op for one provider and code type: version 1 of com.fqvit, name and
// inputs from spec.h (TKernel::Spec), status-returning kernel creation (on CUDA after checking that this GPU has a
// kernel image of the op's __global__ function, cuda_kernel(Spec{}, code) of the op's kernel header).
template <typename TKernel>
struct CustomOp : Ort::CustomOpBase<CustomOp<TKernel>, TKernel, /*WithStatus=*/true> {
  using Spec = typename TKernel::Spec;

  CustomOp(Provider provider, CodeType code) : provider_(provider), code_(code) {
    this->start_ver_ = kOpsetVersion;
    this->end_ver_ = kOpsetVersion;
    if (provider == Provider::kCpu && TKernel::kInplaceInput >= 0) {  // the CUDA kernels are not written for it
      this->OrtCustomOp::GetMayInplace = &MayInplace;
      this->OrtCustomOp::ReleaseMayInplace = &ReleaseMayInplace;
    }
  }
  // Output 0 may take over input TKernel::kInplaceInput's buffer (arrays freed by ReleaseMayInplace).
  static size_t ORT_API_CALL MayInplace(int** input_index, int** output_index) {
    *input_index = new int[1]{TKernel::kInplaceInput};
    *output_index = new int[1]{0};
    return 1;
  }
  static void ORT_API_CALL ReleaseMayInplace(int* input_index, int* output_index) {
    delete[] input_index;
    delete[] output_index;
  }
  const char* GetName() const { return Spec::kName; }
  const char* GetExecutionProviderType() const {
    return provider_ == Provider::kCuda ? kCudaProvider : kCpuProvider;
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
    *kernel = nullptr;
    return guarded(Spec::kName, [&] {
#ifdef FQVIT_WITH_CUDA
      if (provider_ == Provider::kCuda) {
        const std::string image = cuda_kernel_image_check(cuda_kernel(Spec{}, code_));
        if (!image.empty()) throw std::runtime_error(image);
      }
#endif
      *kernel = new TKernel(info, provider_, code_);
    });
  }

  size_t GetInputTypeCount() const { return Spec::kNumInputs; }
  ONNXTensorElementDataType GetInputType(size_t i) const { return onnx_type(Spec::kInputs[i].dtype, code_); }
  // Host scalars (spec.h kHost) are read on the host, so a CUDA kernel needs no device-to-host copy; every other
  // input stays in the provider's memory.
  OrtMemType GetInputMemoryType(size_t i) const {
    const bool host = provider_ == Provider::kCuda && Spec::kInputs[i].memory == op::kHost;
    return host ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t i) const {
    return Spec::kInputs[i].presence == op::kOptional ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                                                      : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const { return onnx_type(Spec::kOutput, code_); }

 private:
  Provider provider_;
  CodeType code_;
};

// The definition of TKernel's op registered for `provider` and code type `code` (one static per op, provider and
// code type; nullptr when this build lacks the provider). Both code types register under the op's one name:
// onnxruntime merges same-name definitions of a domain into one schema and picks the kernel by the node's types.
template <typename TKernel>
const OrtCustomOp* op_for(Provider provider, CodeType code) {
  using Op = CustomOp<TKernel>;
  static const Op cpu_u8(Provider::kCpu, CodeType::kUint8);
  static const Op cpu_i8(Provider::kCpu, CodeType::kInt8);
#ifdef FQVIT_WITH_CUDA
  static const Op cuda_u8(Provider::kCuda, CodeType::kUint8);
  static const Op cuda_i8(Provider::kCuda, CodeType::kInt8);
  if (provider == Provider::kCuda) return code == CodeType::kInt8 ? &cuda_i8 : &cuda_u8;
#endif
  if (provider != Provider::kCpu) return nullptr;
  return code == CodeType::kInt8 ? &cpu_i8 : &cpu_u8;
}

}  // namespace glue
}  // namespace fqvit
