// onnxruntime glue of com.fqvit::Requantize: checks the inputs, allocates the output, dispatches to the CPU kernel
// (chunks of elements in parallel) or the CUDA kernel (on the EP's stream).
#include "common/attributes.h"
#include "common/ops.h"
#include "fqvit_ops/requantize.h"

namespace fqvit {
namespace glue {
namespace {

using Spec = op::Requantize;  // input indices, name and attributes: fqvit_ops/spec.h
// Elements per CPU chunk: below this the kernel runs on the calling thread (the AVX-512 body does 32 K elements in
// about 10 microseconds, a few times the cost of handing a chunk to the pool).
constexpr int64_t kGrain = int64_t(1) << 15;

struct Kernel : KernelBase<Kernel> {
  Kernel(const OrtKernelInfo* /*info*/, Provider provider, CodeType code) : KernelBase(Spec::kName, provider, code) {}

  void Compute(OrtKernelContext* context) {
    if (code_ == CodeType::kInt8) {
      Run<int8_t>(context);
    } else {
      Run<uint8_t>(context);
    }
  }

  // T: the code type of y_zero_point and Y.
  template <typename T>
  void Run(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input a = get_input(ctx, Spec::kA, "A", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32);
    const Input m = get_input(ctx, Spec::kMultiplier, "multiplier", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    const Input b = get_input(ctx, Spec::kBias, "bias", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    RequantizeParams p;
    p.numel = a.numel;
    require(!a.shape.empty(), "A must have rank >= 1 ([..., N], channels last), got a scalar");
    p.n = a.shape.back();
    const std::vector<int64_t> n_shape{p.n};
    for (const Input* in : {&m, &b}) {
      const char* name = in == &m ? "multiplier" : "bias";
      require((in->shape.size() == 1 && in->numel == p.n) || (in->shape.size() <= 1 && in->numel == 1),
              std::string(name) + " must have shape [N] = " + shape_str(n_shape) +
                  " (N = the last dimension of A) or be a scalar (one element), got " + shape_str(in->shape) +
                  " (A " + shape_str(a.shape) + ")");
    }
    p.multiplier_size = m.numel;
    p.bias_size = b.numel;
    p.y_scale = scalar_f32(ctx, Spec::kYScale, "y_scale");
    p.y_zero_point = scalar_code(ctx, Spec::kYZeroPoint, "y_zero_point", code_);
    p.code = code_;
    require_valid(requantize_check(p));

    T* y = ctx.GetOutput(0, a.shape).GetTensorMutableData<T>();
    if (p.numel == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(requantize_cuda(a.as<int32_t>(), m.as<float>(), b.as<float>(), y, p, ctx.GetGPUComputeStream()));
#endif
      return;
    }
    parallel_for(ctx, p.numel, kGrain, [&](int64_t begin, int64_t end) {
      requantize_cpu(a.as<int32_t>(), m.as<float>(), b.as<float>(), y, p, begin, end, isa_);
    });
  }
};

struct Op : OpBase<Op, Kernel, Spec> {
  using OpBase::OpBase;
  static ONNXTensorElementDataType FixedInputType(size_t i) {
    return i == Spec::kA ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
#ifdef FQVIT_WITH_CUDA
  static const void* CudaKernel(CodeType code) { return requantize_cuda_kernel(code); }
#endif
  static bool IsHostScalar(size_t i) { return i == Spec::kYScale || i == Spec::kYZeroPoint; }
};

}  // namespace

const OrtCustomOp* requantize_op(Provider provider, CodeType code) {
  return op_for<Op>(provider, code);
}

}  // namespace glue
}  // namespace fqvit
