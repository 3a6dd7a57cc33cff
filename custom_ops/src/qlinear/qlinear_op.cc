// onnxruntime glue of com.fqvit::QLinear: checks the inputs, allocates the output, dispatches to the CPU kernel (its
// work items on the intra-op pool, qlinear.h: AMX tiles where the CPU has them, else oneDNN or the portable loop,
// qlinear_cpu.cc) or the CUDA kernel (on the EP's stream). Whether the CPU kernel may use AMX is read once, when the
// kernel is created (qlinear.h amx_enabled), as its path is.
//
// The CPU kernel packs W once: when W is a constant initializer (as the exporter writes it) onnxruntime hands it over
// at kernel creation; a W fed at run time is packed on every run, since its contents may change under one address.
#include <algorithm>
#include <memory>

#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/qlinear.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::QLinear> {
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code)
      : KernelBase(info, provider, code), amx_(provider == Provider::kCpu && amx_enabled()) {
    if (provider != Provider::kCpu) return;
    int is_constant = 0;
    const Ort::ConstValue w = Ort::ConstKernelInfo(info).GetTensorConstantInput(op::QLinear::kW, &is_constant);
    if (!is_constant || !w) return;
    const auto info_w = w.GetTensorTypeAndShapeInfo();
    const std::vector<int64_t> shape = info_w.GetShape();
    // A wrong W is reported by Compute, with the shapes of X beside it.
    if (info_w.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 || shape.size() != 2) return;
    packed_ = std::make_shared<const QLinearCpu>(w.GetTensorData<int8_t>(), shape[0], shape[1], code, amx_);
  }

  // T: the code type of X, the zero points and Y.
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& x, const Input& w, const Input& x_zero_point, const Input& multiplier,
           const Input& bias, const Input& y_scale, const Input& y_zero_point) {
    require(!x.shape.empty(), "X must have rank >= 1 ([..., K]), got a scalar");
    require(w.shape.size() == 2, [&] { return "W must have shape [K, N], got " + shape_str(w.shape); });
    QLinearParams p;
    p.code = code_;
    p.k = w.shape[0];
    p.n = w.shape[1];
    require(x.shape.back() == p.k, [&] {
      return "X " + shape_str(x.shape) + " and W " + shape_str(w.shape) +
             " disagree on K (the last dimension of X, the first of W)";
    });
    p.m = 1;  // rows: the leading dimensions of X (also when K = 0)
    for (size_t i = 0; i + 1 < x.shape.size(); ++i) p.m *= x.shape[i];
    for (const Input* in : {&multiplier, &bias}) {  // one value per output channel, or one broadcast to all
      require_per_channel(*in, p.n, "N", "the last dimension of W", "");
    }
    p.multiplier_size = multiplier.numel;
    p.bias_size = bias.numel;
    p.x_zero_point = scalar_code(x_zero_point);
    p.y_scale = scalar_f32(y_scale);
    p.y_zero_point = scalar_code(y_zero_point);
    require_valid(qlinear_check(p));

    std::vector<int64_t> y_shape = x.shape;
    y_shape.back() = p.n;
    T* y = output<T>(ctx, y_shape);
    const T* xd = x.as<T>();
    const int8_t* wd = w.as<int8_t>();
    const float* m = multiplier.as<float>();
    const float* b = bias.as<float>();
    if (p.m == 0 || p.n == 0) return;
    std::shared_ptr<const QLinearCpu> packed;
    if (provider_ == Provider::kCpu) {
      // A W fed at run time is packed for this run only.
      packed = packed_ && packed_->fits(p) ? packed_ : std::make_shared<const QLinearCpu>(wd, p.k, p.n, code_, amx_);
    }
    // CPU: one task per work item (qlinear.h).
    const int64_t items = packed ? packed->items(p) : 1;
    dispatch(ctx, items, 1, [&](void* stream) { return qlinear_cuda(xd, wd, m, b, y, p, stream); },
             [&](int64_t begin, int64_t end) { packed->run_items(xd, m, b, y, p, begin, end, isa_); });
  }

 private:
  bool amx_;                                  // the CPU kernel may use AMX tiles (read at creation)
  std::shared_ptr<const QLinearCpu> packed_;  // W packed at kernel creation (CPU, constant W only)
};

}  // namespace

const OrtCustomOp* qlinear_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
