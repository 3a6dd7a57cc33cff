// onnxruntime glue of com.fqvit::PTSLayerNorm: checks inputs, allocates the output, dispatches to the CPU kernel
// (rows in parallel on the intra-op pool) or the CUDA kernel (on the EP's stream).
#include "common/attributes.h"
#include "common/ops.h"
#include "fqvit_ops/pts_layernorm.h"

namespace fqvit {
namespace glue {
namespace {

enum : size_t { kX, kXScale, kXZeroPoint, kAlpha, kGamma, kBeta, kYScale, kYZeroPoint, kNumInputs };
constexpr const char* kName = "PTSLayerNorm";

struct Kernel : KernelBase<Kernel> {
  Kernel(const OrtKernelInfo* info, Provider provider)
      : KernelBase(kName, provider), epsilon_(attr_f32(info, "epsilon")) {
    PtsLayerNormParams p;
    p.channels = 1;
    p.epsilon = epsilon_;
    require_valid(pts_layernorm_check(p, nullptr));
  }

  void Compute(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input x = get_input(ctx, kX, "X", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    require(!x.shape.empty(), "X must have rank >= 1 (channels last), got a scalar");
    PtsLayerNormParams p;
    p.channels = x.shape.back();
    require(p.channels >= 1 && p.channels <= kMaxLnChannels,
            "the last dimension C of X must be in 1.." + std::to_string(kMaxLnChannels) + ", got C = " +
                std::to_string(p.channels) + " (X " + shape_str(x.shape) + ")");
    p.rows = x.numel / p.channels;
    const std::vector<int64_t> c_shape{p.channels};
    const Input alpha = get_input(ctx, kAlpha, "alpha", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    const Input gamma = get_input(ctx, kGamma, "gamma", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    const Input beta = get_input(ctx, kBeta, "beta", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    for (const auto* in : {&alpha, &gamma, &beta}) {
      const char* name = in == &alpha ? "alpha" : (in == &gamma ? "gamma" : "beta");
      require(in->shape == c_shape, std::string(name) + " must have shape [C] = " + shape_str(c_shape) + ", got " +
              shape_str(in->shape) + " (length mismatch with the last dimension of X)");
    }
    p.x_scale = scalar_f32(ctx, kXScale, "x_scale");
    p.x_zero_point = scalar_u8(ctx, kXZeroPoint, "x_zero_point");
    p.y_scale = scalar_f32(ctx, kYScale, "y_scale");
    p.y_zero_point = scalar_u8(ctx, kYZeroPoint, "y_zero_point");
    p.epsilon = epsilon_;
    // alpha values are checked on the host only (on CUDA they live on the device; the kernel clamps them to 3).
    require_valid(pts_layernorm_check(p, provider_ == Provider::kCpu ? alpha.as<uint8_t>() : nullptr));

    uint8_t* y = ctx.GetOutput(0, x.shape).GetTensorMutableData<uint8_t>();
    if (p.rows == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(pts_layernorm_cuda(x.as<uint8_t>(), alpha.as<uint8_t>(), gamma.as<float>(), beta.as<float>(),
                                          y, p, ctx.GetGPUComputeStream()));
#endif
      return;
    }
    const int64_t grain = std::max<int64_t>(1, 32768 / p.channels);  // rows per chunk: about 32 K elements
    parallel_for(ctx, p.rows, grain, [&](int64_t begin, int64_t end) {
      pts_layernorm_cpu(x.as<uint8_t>(), alpha.as<uint8_t>(), gamma.as<float>(), beta.as<float>(), y, p, begin, end,
                        isa_);
    });
  }

  float epsilon_;
};

struct Op : OpBase<Op, Kernel> {
  using OpBase::OpBase;
  const char* GetName() const { return kName; }
  size_t GetInputTypeCount() const { return kNumInputs; }
  ONNXTensorElementDataType GetInputType(size_t i) const {
    switch (i) {
      case kXScale: case kGamma: case kBeta: case kYScale: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
      default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    }
  }
  static bool IsHostScalar(size_t i) { return i == kXScale || i == kXZeroPoint || i == kYScale || i == kYZeroPoint; }
};

}  // namespace

const OrtCustomOp* pts_layernorm_op(Provider provider) {
  return op_for<Op>(provider);
}

}  // namespace glue
}  // namespace fqvit
