// onnxruntime glue of com.fqvit::LISMatMul: checks shapes and attributes, allocates the output, dispatches to the CPU
// kernel (work items in parallel) or the CUDA kernel (on the EP's stream).
#include "common/attributes.h"
#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/lis_matmul.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::LISMatMul> {
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code)
      : KernelBase(info, provider, code), bits_(attr_lis_bits(info, Spec::kAttrBits)) {}

  int bits_;  // attribute bits

  // T: the code type of V, the zero points and Y; A holds uint8 LIS codes.
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& a, const Input& v, const Input& v_scale, const Input& v_zero_point,
           const Input& y_scale, const Input& y_zero_point) {
    require(a.shape.size() >= 2 && a.shape.size() == v.shape.size(),
            [&] {
              return "A [..., M, N] and V [..., N, D] must have the same rank >= 2, got A " + shape_str(a.shape) +
                     " and V " + shape_str(v.shape);
            });
    const size_t r = a.shape.size();
    LisMatMulParams p;
    p.code = code_;
    p.bits = bits_;
    p.m = a.shape[r - 2];
    p.n = a.shape[r - 1];
    p.d = v.shape[r - 1];
    require(v.shape[r - 2] == p.n, [&] {
      return "A's last dimension N = " + std::to_string(p.n) + " must equal V's rows " +
             std::to_string(v.shape[r - 2]) + " (A " + shape_str(a.shape) + ", V " + shape_str(v.shape) + ")";
    });
    p.batch = 1;
    for (size_t i = 0; i + 2 < r; ++i) {
      require(a.shape[i] == v.shape[i], [&] {
        return "A and V must have the same leading dimensions, got A " + shape_str(a.shape) + " and V " +
               shape_str(v.shape);
      });
      p.batch *= a.shape[i];
    }
    p.v_scale = scalar_f32(v_scale);
    p.v_zero_point = scalar_code(v_zero_point);
    p.y_scale = scalar_f32(y_scale);
    p.y_zero_point = scalar_code(y_zero_point);
    require_valid(lis_matmul_check(p));

    std::vector<int64_t> y_shape = a.shape;
    y_shape[r - 1] = p.d;
    T* y = output<T>(ctx, y_shape);
    // Work items of 64 rows of one batch entry (none when the output is empty).
    dispatch(ctx, lis_matmul_cpu_items(p), 1,
             [&](void* stream) { return lis_matmul_cuda(a.as<uint8_t>(), v.as<T>(), y, p, stream); },
             [&](int64_t begin, int64_t end) { lis_matmul_cpu(a.as<uint8_t>(), v.as<T>(), y, p, begin, end, isa_); });
  }
};

}  // namespace

const OrtCustomOp* lis_matmul_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
