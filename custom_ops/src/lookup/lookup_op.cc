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
  Kernel(const OrtKernelInfo* /*info*/, Provider provider, CodeType code) : KernelBase(Spec::kName, provider, code) {}

  void Compute(OrtKernelContext* context) {
    if (code_ == CodeType::kInt8) {
      Run<int8_t>(context);
    } else {
      Run<uint8_t>(context);
    }
  }

  // T: the code type of X, table and Y.
  template <typename T>
  void Run(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    const Input x = get_input(ctx, Spec::kX, "X", onnx_code_type(code_));
    const Input table = get_input(ctx, Spec::kTable, "table", onnx_code_type(code_));
    require(table.shape.size() == 1 && table.numel == kLookupTableSize,
            "table must have shape [" + std::to_string(kLookupTableSize) + "] (one entry per uint8 code), got " +
                shape_str(table.shape));
    LookupParams p;
    p.n = x.numel;
    p.table_size = table.numel;
    require_valid(lookup_check(p));

    T* y = ctx.GetOutput(0, x.shape).GetTensorMutableData<T>();
    if (p.n == 0) return;
    if (provider_ == Provider::kCuda) {
#ifdef FQVIT_WITH_CUDA
      require_launched(lookup_cuda(x.as<T>(), table.as<T>(), y, p, ctx.GetGPUComputeStream()));
#endif
      return;
    }
    parallel_for(ctx, p.n, kGrain, [&](int64_t begin, int64_t end) {
      lookup_cpu(x.as<T>(), table.as<T>(), y, p, begin, end, isa_);
    });
  }
};

struct Op : OpBase<Op, Kernel, Spec> {
  using OpBase::OpBase;
  static ONNXTensorElementDataType FixedInputType(size_t /*i*/) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED; }
#ifdef FQVIT_WITH_CUDA
  static const void* CudaKernel(CodeType code) { return lookup_cuda_kernel(code); }
#endif
};

}  // namespace

const OrtCustomOp* lookup_op(Provider provider, CodeType code) {
  return op_for<Op>(provider, code);
}

}  // namespace glue
}  // namespace fqvit
