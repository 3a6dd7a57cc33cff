// onnxruntime glue of com.fqvit::Lookup: checks the inputs, allocates the output, dispatches to the CPU kernel (chunks
// of elements in parallel) or the CUDA kernel (on the EP's stream).
#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/lookup.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::Lookup> {
  using KernelBase::KernelBase;  // no attributes
  // Y may take X's buffer (the fc1 codes, which only this node reads): Y[i] depends on X[i] alone.
  static constexpr int kInplaceInput = Spec::kX;

  // T: the code type of X, table and Y.
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& x, const Input& table) {
    require(table.shape.size() == 1 && table.numel == kLookupTableSize,
            [&] {
              return "table must have shape [" + std::to_string(kLookupTableSize) +
                     "] (one entry per uint8 code), got " + shape_str(table.shape);
            });
    const LookupParams p{x.numel, table.numel};
    require_valid(lookup_check(p));

    T* y = output<T>(ctx, x.shape);
    // Elements per CPU chunk: below this the lookup runs on the calling thread (the vector paths do 64 K elements in a
    // few microseconds, about the cost of handing a chunk to the pool).
    constexpr int64_t kGrain = int64_t(1) << 16;
    dispatch(ctx, p.n, kGrain, [&](void* stream) { return lookup_cuda(x.as<T>(), table.as<T>(), y, p, stream); },
             [&](int64_t begin, int64_t end) { lookup_cpu(x.as<T>(), table.as<T>(), y, p, begin, end, isa_); });
  }
};

}  // namespace

const OrtCustomOp* lookup_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
