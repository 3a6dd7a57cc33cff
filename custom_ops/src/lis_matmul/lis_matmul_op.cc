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
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code) : KernelBase(Spec::kName, provider, code) {
    bits_ = attr_lis_bits(info, Spec::kAttrBits);
  }

  void Compute(OrtKernelContext* context) {
    if (code_ == CodeType::kInt8) {
      Run<int8_t>(context);
    } else {
      Run<uint8_t>(context);
    }
  }

  // T: the code type of V, the zero points and Y; A holds uint8 LIS codes.
  template <typename T>
  void Run(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input a = get_input(ctx, Spec::kA, "A", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    const Input v = get_input(ctx, Spec::kV, "V", onnx_code_type(code_));
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
    p.v_zero_point = scalar_code(ctx, Spec::kVZeroPoint, "v_zero_point", code_);
    p.y_scale = scalar_f32(ctx, Spec::kYScale, "y_scale");
    p.y_zero_point = scalar_code(ctx, Spec::kYZeroPoint, "y_zero_point", code_);
    p.code = code_;
    p.bits = bits_;
    require_valid(lis_matmul_check(p));

    std::vector<int64_t> y_shape = a.shape;
    y_shape[r - 1] = p.d;
    T* y = ctx.GetOutput(0, y_shape).GetTensorMutableData<T>();
    if (p.batch == 0 || p.m == 0 || p.d == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(lis_matmul_cuda(a.as<uint8_t>(), v.as<T>(), y, p, ctx.GetGPUComputeStream()));
#endif
      return;
    }
    parallel_for(ctx, lis_matmul_cpu_items(p), 1, [&](int64_t begin, int64_t end) {
      lis_matmul_cpu(a.as<uint8_t>(), v.as<T>(), y, p, begin, end, isa_);
    });
  }

  int bits_ = 4;
};

struct Op : OpBase<Op, Kernel, Spec> {
  using OpBase::OpBase;
  static ONNXTensorElementDataType FixedInputType(size_t i) {
    return (i == Spec::kVScale || i == Spec::kYScale) ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
                                                      : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;  // A
  }
#ifdef FQVIT_WITH_CUDA
  static const void* CudaKernel(CodeType code) { return lis_matmul_cuda_kernel(code); }
#endif
  static bool IsHostScalar(size_t i) {
    return i == Spec::kVScale || i == Spec::kVZeroPoint || i == Spec::kYScale || i == Spec::kYZeroPoint;
  }
};

}  // namespace

const OrtCustomOp* lis_matmul_op(Provider provider, CodeType code) {
  return op_for<Op>(provider, code);
}

}  // namespace glue
}  // namespace fqvit
