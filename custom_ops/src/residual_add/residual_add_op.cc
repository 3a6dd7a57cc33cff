// onnxruntime glue of com.fqvit::ResidualAdd: checks the inputs, allocates the output, dispatches to the CPU kernel
// (chunks of elements in parallel) or the CUDA kernel (on the EP's stream).
#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/residual_add.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::ResidualAdd> {
  // Y may take B's buffer (the branch codes, just written by proj or fc2 and read only here): Y[i] depends on A[i]
  // and B[i] alone.
  static constexpr int kInplaceInput = Spec::kB;

  using KernelBase::KernelBase;  // no attributes

  // T: the code type of A, B, the zero points and Y.
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& a, const Input& a_scale, const Input& a_zero_point, const Input& b,
           const Input& b_scale, const Input& b_zero_point, const Input& y_scale, const Input& y_zero_point,
           const Input& gamma) {
    require(!a.shape.empty(), "A must have rank >= 1 ([..., C], channels last), got a scalar");
    require(b.shape == a.shape,
            [&] { return "B must have the shape of A " + shape_str(a.shape) + ", got " + shape_str(b.shape); });
    ResidualAddParams p;
    p.code = code_;
    p.numel = a.numel;
    p.channels = a.shape.back();
    for (const Input* in : {&a_scale, &b_scale, &y_scale, &gamma}) {  // one value per channel, or one for all
      if (in->data == nullptr) continue;  // gamma left out
      require_per_channel(*in, p.channels, "C", "the last dimension of A", " (A " + shape_str(a.shape) + ")");
    }
    p.a_scale_size = a_scale.numel;
    p.b_scale_size = b_scale.numel;
    p.y_scale_size = y_scale.numel;
    p.gamma_size = gamma.numel;
    p.a_zero_point = scalar_code(a_zero_point);
    p.b_zero_point = scalar_code(b_zero_point);
    p.y_zero_point = scalar_code(y_zero_point);
    require_valid(residual_add_check(p));

    T* y = output<T>(ctx, a.shape);
    const ResidualAddChannels ch{a_scale.as<float>(), b_scale.as<float>(), y_scale.as<float>(), gamma.as<float>()};
    // Elements per CPU chunk: below this the kernel runs on the calling thread (one division per element; the AVX2
    // and AVX-512 bodies do 32 K elements in about 20 microseconds, several times the cost of handing out a chunk).
    constexpr int64_t kGrain = int64_t(1) << 15;
    dispatch(ctx, p.numel, kGrain,
             [&](void* stream) { return residual_add_cuda(a.as<T>(), b.as<T>(), ch, y, p, stream); },
             [&](int64_t begin, int64_t end) { residual_add_cpu(a.as<T>(), b.as<T>(), ch, y, p, begin, end, isa_); });
  }
};

}  // namespace

const OrtCustomOp* residual_add_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
