// onnxruntime glue of com.fqvit::LISMatMul: checks shapes and attributes, allocates the output, dispatches to the CPU
// kernel (work items in parallel) or the CUDA kernel (on the EP's stream).
#include "common/attributes.h"
#include "common/ops.h"
#include "fqvit_ops/lis_matmul.h"

namespace fqvit {
namespace glue {
namespace {

using Spec = op::LISMatMul;  // input indices, name and attributes: fqvit_ops/spec.h

struct Kernel : KernelBase<Kernel> {
  Kernel(const OrtKernelInfo* info, Provider provider) : KernelBase(Spec::kName, provider) {
    bits_ = attr_lis_bits(info, Spec::kAttrBits);
  }

  void Compute(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input a = get_input(ctx, Spec::kA, "A", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    const Input v = get_input(ctx, Spec::kV, "V", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    require(a.shape.size() >= 2 && a.shape.size() == v.shape.size(),
            "A [..., M, N] and V [..., N, D] must have the same rank >= 2, got A " + shape_str(a.shape) + " and V " +
            shape_str(v.shape));
    const size_t r = a.shape.size();
    LisMatMulParams p;
    p.m = a.shape[r - 2];
    p.n = a.shape[r - 1];
    p.d = v.shape[r - 1];
    require(v.shape[r - 2] == p.n, "A's last dimension N = " + std::to_string(p.n) + " must equal V's rows " +
            std::to_string(v.shape[r - 2]) + " (A " + shape_str(a.shape) + ", V " + shape_str(v.shape) + ")");
    p.batch = 1;
    for (size_t i = 0; i + 2 < r; ++i) {
      require(a.shape[i] == v.shape[i], "A and V must have the same leading dimensions, got A " + shape_str(a.shape) +
              " and V " + shape_str(v.shape));
      p.batch *= a.shape[i];
    }
    p.v_scale = scalar_f32(ctx, Spec::kVScale, "v_scale");
    p.v_zero_point = scalar_u8(ctx, Spec::kVZeroPoint, "v_zero_point");
    p.y_scale = scalar_f32(ctx, Spec::kYScale, "y_scale");
    p.y_zero_point = scalar_u8(ctx, Spec::kYZeroPoint, "y_zero_point");
    p.bits = bits_;
    require_valid(lis_matmul_check(p));

    std::vector<int64_t> y_shape = a.shape;
    y_shape[r - 1] = p.d;
    uint8_t* y = ctx.GetOutput(0, y_shape).GetTensorMutableData<uint8_t>();
    if (p.batch == 0 || p.m == 0 || p.d == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(lis_matmul_cuda(a.as<uint8_t>(), v.as<uint8_t>(), y, p, ctx.GetGPUComputeStream()));
#endif
      return;
    }
    parallel_for(ctx, lis_matmul_cpu_items(p), 1, [&](int64_t begin, int64_t end) {
      lis_matmul_cpu(a.as<uint8_t>(), v.as<uint8_t>(), y, p, begin, end, isa_);
    });
  }

  int bits_ = 4;
};

struct Op : OpBase<Op, Kernel> {
  using OpBase::OpBase;
  const char* GetName() const { return Spec::kName; }
  size_t GetInputTypeCount() const { return Spec::kNumInputs; }
  ONNXTensorElementDataType GetInputType(size_t i) const {
    return (i == Spec::kVScale || i == Spec::kYScale) ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
                                                      : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
  }
  static bool IsHostScalar(size_t i) {
    return i == Spec::kVScale || i == Spec::kVZeroPoint || i == Spec::kYScale || i == Spec::kYZeroPoint;
  }
};

}  // namespace

const OrtCustomOp* lis_matmul_op(Provider provider) {
  return op_for<Op>(provider);
}

}  // namespace glue
}  // namespace fqvit
