// onnxruntime glue of com.fqvit::LogIntSoftmax: checks inputs and attributes, builds the mask broadcast layout,
// allocates the output, dispatches to the CPU kernel (rows in parallel) or the CUDA kernel (on the EP's stream).
#include "common/attributes.h"
#include "common/ops.h"
#include "fqvit_ops/log_int_softmax.h"

namespace fqvit {
namespace glue {
namespace {

using Spec = op::LogIntSoftmax;  // input indices, name and attributes: fqvit_ops/spec.h

struct Kernel : KernelBase<Kernel> {
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code) : KernelBase(Spec::kName, provider, code) {
    params_.multiplier = attr_i64(info, Spec::kAttrMultiplier);
    params_.bits = attr_lis_bits(info, Spec::kAttrBits);
    require_valid(log_int_softmax_check(params_));
  }

  void Compute(OrtKernelContext* context) {
    if (code_ == CodeType::kInt8) {
      Run<int8_t>(context);
    } else {
      Run<uint8_t>(context);
    }
  }

  // T: the logits' code type; the output codes are uint8.
  template <typename T>
  void Run(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input x = get_input(ctx, Spec::kX, "X", onnx_code_type(code_));
    require(!x.shape.empty() && x.shape.size() <= static_cast<size_t>(kMaxRank),
            "X must have rank 1.." + std::to_string(kMaxRank) + ", got " + shape_str(x.shape));
    LisSoftmaxParams p = params_;
    p.n = x.shape.back();
    p.rows = p.n == 0 ? 0 : x.numel / p.n;
    MaskLayout mask;
    const bool has_mask = ctx.GetInputCount() > Spec::kMask && ctx.GetInput(Spec::kMask) != nullptr;
    const Input m = has_mask ? get_input(ctx, Spec::kMask, "mask", ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL) : Input{};
    require_valid(mask_layout_make(x.shape.data(), static_cast<int>(x.shape.size()),
                                   has_mask ? m.shape.data() : nullptr, static_cast<int>(m.shape.size()),
                                   m.as<uint8_t>(), &mask));
    require_valid(log_int_softmax_check(p));

    uint8_t* codes = ctx.GetOutput(0, x.shape).GetTensorMutableData<uint8_t>();
    if (x.numel == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(log_int_softmax_cuda(x.as<T>(), mask, codes, p, ctx.GetGPUComputeStream()));
#endif
      return;
    }
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, p.n));  // about 32 K elements per chunk
    parallel_for(ctx, p.rows, grain, [&](int64_t begin, int64_t end) {
      log_int_softmax_cpu(x.as<T>(), mask, codes, p, begin, end, isa_);
    });
  }

  LisSoftmaxParams params_;
};

struct Op : OpBase<Op, Kernel, Spec> {
  using OpBase::OpBase;
  static ONNXTensorElementDataType FixedInputType(size_t /*i*/) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL; }  // mask
#ifdef FQVIT_WITH_CUDA
  static const void* CudaKernel(CodeType code) { return log_int_softmax_cuda_kernel(code); }
#endif
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t i) const {
    // The mask may be omitted (no masking); the exporter always writes it (a single false when unmasked).
    return i == Spec::kMask ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                      : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
  }
};

}  // namespace

const OrtCustomOp* log_int_softmax_op(Provider provider, CodeType code) {
  return op_for<Op>(provider, code);
}

}  // namespace glue
}  // namespace fqvit
