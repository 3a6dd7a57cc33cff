// onnxruntime glue of com.fqvit::PTSLayerNorm: checks inputs, allocates the output, dispatches to the CPU kernel
// (rows in parallel on the intra-op pool) or the CUDA kernel (on the EP's stream).
#include <vector>

#include "common/attributes.h"
#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/pts_layernorm.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::PTSLayerNorm> {
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code)
      : KernelBase(info, provider, code), epsilon_(attr<float>(info, Spec::kAttrEpsilon)) {
    PtsLayerNormParams p;
    p.channels = 1;
    p.epsilon = epsilon_;
    require_valid(pts_layernorm_check(p, nullptr));
    if (provider_ == Provider::kCuda) check_constant_alpha(info);
  }

  float epsilon_;               // attribute epsilon
  bool alpha_checked_ = false;  // CUDA: the initializer alpha was checked when the kernel was created

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

  // T: the node's code type (X, zero points, Y).
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& x, const Input& x_scale, const Input& x_zero_point,
           const Input& alpha, const Input& gamma, const Input& beta, const Input& y_scale, const Input& y_zero_point) {
    require(!x.shape.empty(), "X must have rank >= 1 (channels last), got a scalar");
    PtsLayerNormParams p;
    p.code = code_;
    p.epsilon = epsilon_;
    p.channels = x.shape.back();
    require(p.channels >= 1 && p.channels <= kMaxLnChannels,
            [&] {
              return "the last dimension C of X must be in 1.." + std::to_string(kMaxLnChannels) + ", got C = " +
                     std::to_string(p.channels) + " (X " + shape_str(x.shape) + ")";
            });
    p.rows = x.numel / p.channels;
    for (const Input* in : {&alpha, &gamma, &beta}) {  // one value per channel
      require(in->shape == std::vector<int64_t>{p.channels},
              [&] {
                return std::string(in->name) + " must have shape [C] = " + shape_str({p.channels}) + ", got " +
                       shape_str(in->shape) + " (length mismatch with the last dimension of X)";
              });
    }
    p.x_scale = scalar_f32(x_scale);
    p.x_zero_point = scalar_code(x_zero_point);
    p.y_scale = scalar_f32(y_scale);
    p.y_zero_point = scalar_code(y_zero_point);
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

    T* y = output<T>(ctx, x.shape);
    const uint8_t* shifts = alpha.as<uint8_t>();
    const float* g = gamma.as<float>();
    const float* b = beta.as<float>();
    const int64_t grain = std::max<int64_t>(1, 32768 / p.channels);  // rows per chunk: about 32 K elements
    dispatch(ctx, p.rows, grain,
             [&](void* stream) { return pts_layernorm_cuda(x.as<T>(), shifts, g, b, y, p, stream); },
             [&](int64_t begin, int64_t end) { pts_layernorm_cpu(x.as<T>(), shifts, g, b, y, p, begin, end, isa_); });
  }
};

}  // namespace

const OrtCustomOp* pts_layernorm_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
