// onnxruntime glue of com.fqvit::LogIntSoftmax: checks inputs and attributes, builds the mask broadcast layout,
// allocates the output, dispatches to the CPU kernel (rows in parallel) or the CUDA kernel (on the EP's stream).
#include "common/attributes.h"
#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/log_int_softmax.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::LogIntSoftmax> {
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code) : KernelBase(info, provider, code) {
    params_.multiplier = attr<int64_t>(info, Spec::kAttrMultiplier);
    params_.bits = attr_lis_bits(info, Spec::kAttrBits);
    require_valid(log_int_softmax_check(params_));
  }

  LisSoftmaxParams params_;  // the attributes (multiplier, bits); Run adds the shape

  // T: the logits' code type; the output codes are uint8. The mask is optional (no data when the node leaves it out).
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& x, const Input& mask) {
    require(!x.shape.empty() && x.shape.size() <= static_cast<size_t>(kMaxRank),
            [&] { return "X must have rank 1.." + std::to_string(kMaxRank) + ", got " + shape_str(x.shape); });
    LisSoftmaxParams p = params_;
    p.n = x.shape.back();
    p.rows = p.n == 0 ? 0 : x.numel / p.n;
    MaskLayout layout;
    require_valid(mask_layout_make(x.shape.data(), static_cast<int>(x.shape.size()),
                                   mask.data ? mask.shape.data() : nullptr, static_cast<int>(mask.shape.size()),
                                   mask.as<uint8_t>(), &layout));
    require_valid(log_int_softmax_check(p));

    uint8_t* codes = output<uint8_t>(ctx, x.shape);
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, p.n));  // about 32 K elements per chunk
    dispatch(ctx, p.rows, grain,
             [&](void* stream) { return log_int_softmax_cuda(x.as<T>(), layout, codes, p, stream); },
             [&](int64_t begin, int64_t end) { log_int_softmax_cpu(x.as<T>(), layout, codes, p, begin, end, isa_); });
  }
};

}  // namespace

const OrtCustomOp* log_int_softmax_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
