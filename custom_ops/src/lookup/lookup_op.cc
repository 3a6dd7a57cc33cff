// onnxruntime glue of com.fqvit::Lookup: checks the inputs, allocates the output, dispatches to the CPU kernel (chunks
// of elements in parallel) or the CUDA kernel (on the EP's stream).
#include "common/attributes.h"
#include "common/ops.h"
#include "fqvit_ops/lookup.h"

namespace fqvit {
namespace glue {
namespace {

using Spec = op::Lookup;  // input indices, name and attributes: fqvit_ops/spec.h
// Elements per CPU chunk: below this the lookup runs on the calling thread (the vector paths do 64 K elements in a
// few microseconds, about the cost of handing a chunk to the pool).
constexpr int64_t kGrain = int64_t(1) << 16;

struct Kernel : KernelBase<Kernel> {
  Kernel(const OrtKernelInfo* /*info*/, Provider provider) : KernelBase(Spec::kName, provider) {}

  void Compute(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input x = get_input(ctx, Spec::kX, "X", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    const Input table = get_input(ctx, Spec::kTable, "table", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
    require(table.shape.size() == 1 && table.numel == kLookupTableSize,
            "table must have shape [" + std::to_string(kLookupTableSize) + "] (one entry per uint8 code), got " +
                shape_str(table.shape));
    LookupParams p;
    p.n = x.numel;
    p.table_size = table.numel;
    require_valid(lookup_check(p));

    uint8_t* y = ctx.GetOutput(0, x.shape).GetTensorMutableData<uint8_t>();
    if (p.n == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(lookup_cuda(x.as<uint8_t>(), table.as<uint8_t>(), y, p, ctx.GetGPUComputeStream()));
#endif
      return;
    }
    parallel_for(ctx, p.n, kGrain, [&](int64_t begin, int64_t end) {
      lookup_cpu(x.as<uint8_t>(), table.as<uint8_t>(), y, p, begin, end, isa_);
    });
  }
};

struct Op : OpBase<Op, Kernel> {
  using OpBase::OpBase;
  const char* GetName() const { return Spec::kName; }
  size_t GetInputTypeCount() const { return Spec::kNumInputs; }
  ONNXTensorElementDataType GetInputType(size_t /*i*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8; }
};

}  // namespace

const OrtCustomOp* lookup_op(Provider provider) {
  return op_for<Op>(provider);
}

}  // namespace glue
}  // namespace fqvit
