// onnxruntime glue of com.fqvit::PTSLayerNorm: checks inputs, allocates the output, dispatches to the CPU kernel
// (rows in parallel on the intra-op pool) or the CUDA kernel (on the EP's stream).
#include <vector>

#include "common/attributes.h"
#include "common/ops.h"
#include "fqvit_ops/pts_layernorm.h"

namespace fqvit {
namespace glue {
namespace {

using Spec = op::PTSLayerNorm;  // input indices, name and attributes: fqvit_ops/spec.h

struct Kernel : KernelBase<Kernel> {
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code)
      : KernelBase(Spec::kName, provider, code), epsilon_(attr_f32(info, Spec::kAttrEpsilon)) {
    PtsLayerNormParams p;
    p.channels = 1;
    p.epsilon = epsilon_;
    require_valid(pts_layernorm_check(p, nullptr));
    if (provider_ == Provider::kCuda) check_constant_alpha(info);
  }

  // CUDA: alpha lives on the device, where a value above kMaxAlpha cannot be reported without a synchronisation. An
  // initializer alpha (what the exporter writes) is checked once here, when the session creates the kernel; the
  // CPU kernel checks every run on the host, so both reject the same models.
  void check_constant_alpha(const OrtKernelInfo* info) {
    int is_constant = 0;
    const Ort::ConstValue alpha = Ort::ConstKernelInfo(info).GetTensorConstantInput(Spec::kAlpha, &is_constant);
    if (!is_constant) return;
    const int64_t count = static_cast<int64_t>(alpha.GetTensorTypeAndShapeInfo().GetElementCount());
    const uint8_t* data = alpha.GetTensorData<uint8_t>();
    std::vector<uint8_t> host;
    if (alpha.GetTensorMemoryInfo().GetDeviceType() != OrtMemoryInfoDeviceType_CPU) {
#ifdef FQVIT_WITH_CUDA
      host.resize(static_cast<size_t>(count));
      require_launched(pts_layernorm_cuda_alpha_to_host(data, count, host.data(), nullptr));
      data = host.data();
#else
      return;
#endif
    }
    require_valid(pts_layernorm_alpha_check(data, count));
    alpha_checked_ = true;
  }

  void Compute(OrtKernelContext* context) {
    if (code_ == CodeType::kInt8) {
      Run<int8_t>(context);
    } else {
      Run<uint8_t>(context);
    }
  }

  // T: the node's code type (X, zero points, Y).
  template <typename T>
  void Run(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input x = get_input(ctx, Spec::kX, "X", onnx_code_type(code_));
    require(!x.shape.empty(), "X must have rank >= 1 (channels last), got a scalar");
    PtsLayerNormParams p;
    p.channels = x.shape.back();
    require(p.channels >= 1 && p.channels <= kMaxLnChannels,
            "the last dimension C of X must be in 1.." + std::to_string(kMaxLnChannels) + ", got C = " +
                std::to_string(p.channels) + " (X " + shape_str(x.shape) + ")");
    p.rows = x.numel / p.channels;
    const std::vector<int64_t> c_shape{p.channels};
    const Input alpha = get_input(ctx, Spec::kAlpha, "alpha", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    const Input gamma = get_input(ctx, Spec::kGamma, "gamma", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    const Input beta = get_input(ctx, Spec::kBeta, "beta", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    for (const auto* in : {&alpha, &gamma, &beta}) {
      const char* name = in == &alpha ? "alpha" : (in == &gamma ? "gamma" : "beta");
      require(in->shape == c_shape, std::string(name) + " must have shape [C] = " + shape_str(c_shape) + ", got " +
              shape_str(in->shape) + " (length mismatch with the last dimension of X)");
    }
    p.x_scale = scalar_f32(ctx, Spec::kXScale, "x_scale");
    p.x_zero_point = scalar_code(ctx, Spec::kXZeroPoint, "x_zero_point", code_);
    p.y_scale = scalar_f32(ctx, Spec::kYScale, "y_scale");
    p.y_zero_point = scalar_code(ctx, Spec::kYZeroPoint, "y_zero_point", code_);
    p.code = code_;
    p.epsilon = epsilon_;
    // alpha values: on the host on the CPU; on CUDA from the initializer when the kernel was created, else (alpha a
    // graph input, on the device) from a host copy on every run (a synchronisation, never in exported models).
    require_valid(pts_layernorm_check(p, provider_ == Provider::kCpu ? alpha.as<uint8_t>() : nullptr));
#ifdef FQVIT_WITH_CUDA
    if (provider_ == Provider::kCuda && !alpha_checked_) {
      std::vector<uint8_t> host(static_cast<size_t>(p.channels));
      require_launched(pts_layernorm_cuda_alpha_to_host(alpha.as<uint8_t>(), p.channels, host.data(),
                                                        ctx.GetGPUComputeStream()));
      require_valid(pts_layernorm_alpha_check(host.data(), p.channels));
    }
#endif

    T* y = ctx.GetOutput(0, x.shape).GetTensorMutableData<T>();
    if (p.rows == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(pts_layernorm_cuda(x.as<T>(), alpha.as<uint8_t>(), gamma.as<float>(), beta.as<float>(), y, p,
                                          ctx.GetGPUComputeStream()));
#endif
      return;
    }
    const int64_t grain = std::max<int64_t>(1, 32768 / p.channels);  // rows per chunk: about 32 K elements
    parallel_for(ctx, p.rows, grain, [&](int64_t begin, int64_t end) {
      pts_layernorm_cpu(x.as<T>(), alpha.as<uint8_t>(), gamma.as<float>(), beta.as<float>(), y, p, begin, end, isa_);
    });
  }

  float epsilon_;
  bool alpha_checked_ = false;  // CUDA: the initializer alpha was checked when the kernel was created
};

struct Op : OpBase<Op, Kernel, Spec> {
  using OpBase::OpBase;
  // Inputs that are not of the code type (those are Spec::kCodeInputs, typed by OpBase).
  static ONNXTensorElementDataType FixedInputType(size_t i) {
    switch (i) {
      case Spec::kXScale: case Spec::kGamma: case Spec::kBeta: case Spec::kYScale:
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
      default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;  // alpha
    }
  }
#ifdef FQVIT_WITH_CUDA
  static const void* CudaKernel(CodeType code) { return pts_layernorm_cuda_kernel(code); }
#endif
  static bool IsHostScalar(size_t i) {
    return i == Spec::kXScale || i == Spec::kXZeroPoint || i == Spec::kYScale || i == Spec::kYZeroPoint;
  }
};

}  // namespace

const OrtCustomOp* pts_layernorm_op(Provider provider, CodeType code) {
  return op_for<Op>(provider, code);
}

}  // namespace glue
}  // namespace fqvit
