// onnxruntime glue of com.fqvit::Requantize: checks the inputs, allocates the output, dispatches to the CPU kernel
// (chunks of elements in parallel) or the CUDA kernel (on the EP's stream).
#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/requantize.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::Requantize> {
  using KernelBase::KernelBase;  // no attributes

  // T: the code type of y_zero_point and Y.
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& a, const Input& multiplier, const Input& bias, const Input& y_scale,
           const Input& y_zero_point) {
    require(!a.shape.empty(), "A must have rank >= 1 ([..., N], channels last), got a scalar");
    RequantizeParams p;
    p.code = code_;
    p.numel = a.numel;
    p.n = a.shape.back();
    for (const Input* in : {&multiplier, &bias}) {  // one value per channel, or one broadcast to all
      require_per_channel(*in, p.n, "N", "the last dimension of A", " (A " + shape_str(a.shape) + ")");
    }
    p.multiplier_size = multiplier.numel;
    p.bias_size = bias.numel;
    p.y_scale = scalar_f32(y_scale);
    p.y_zero_point = scalar_code(y_zero_point);
    require_valid(requantize_check(p));

    T* y = output<T>(ctx, a.shape);
    const int32_t* acc = a.as<int32_t>();
    const float* m = multiplier.as<float>();
    const float* b = bias.as<float>();
    // Elements per CPU chunk: below this the kernel runs on the calling thread (the AVX-512 body does 32 K elements
    // in about 10 microseconds, a few times the cost of handing a chunk to the pool).
    constexpr int64_t kGrain = int64_t(1) << 15;
    dispatch(ctx, p.numel, kGrain, [&](void* stream) { return requantize_cuda(acc, m, b, y, p, stream); },
             [&](int64_t begin, int64_t end) { requantize_cpu(acc, m, b, y, p, begin, end, isa_); });
  }
};

}  // namespace

const OrtCustomOp* requantize_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
