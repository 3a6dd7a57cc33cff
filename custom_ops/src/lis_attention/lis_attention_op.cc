// onnxruntime glue of com.fqvit::LISAttention: checks the shape and attributes, allocates the output, dispatches to
// the CPU kernel (work items of one head and a block of query rows on the intra-op pool) or the CUDA kernel (on the
// EP's stream).
#include "common/attributes.h"
#include "common/op_base.h"
#include "common/ops.h"
#include "fqvit_ops/lis_attention.h"

namespace fqvit {
namespace glue {
namespace {

struct Kernel : KernelBase<Kernel, op::LISAttention> {
  Kernel(const OrtKernelInfo* info, Provider provider, CodeType code) : KernelBase(info, provider, code) {
    attrs_.heads = attr<int64_t>(info, Spec::kAttrHeads);
    attrs_.lis_multiplier = attr<int64_t>(info, Spec::kAttrLisMultiplier);
    attrs_.bits = attr_lis_bits(info, Spec::kAttrBits);
    attrs_.code = code;
    require_valid(lis_attention_check(attrs_));  // the attributes alone (the shape is still 0)
  }

  LisAttentionParams attrs_;  // heads, lis_multiplier, bits; Run adds the shape and the scalars

  // T: the code type of QKV, the zero points and Y.
  template <typename T>
  void Run(Ort::KernelContext& ctx, const Input& qkv, const Input& qkv_scale, const Input& qkv_zero_point,
           const Input& qk_multiplier, const Input& logits_scale, const Input& logits_zero_point,
           const Input& y_scale, const Input& y_zero_point) {
    LisAttentionParams p = attrs_;
    require(qkv.shape.size() == 3 && qkv.shape[2] % (3 * p.heads) == 0,
            [&] {
              return "QKV must have shape [B, N, 3 * heads * D] with heads = " + std::to_string(p.heads) + ", got " +
                     shape_str(qkv.shape);
            });
    p.batch = qkv.shape[0];
    p.tokens = qkv.shape[1];
    p.head_dim = qkv.shape[2] / (3 * p.heads);
    p.qkv_scale = scalar_f32(qkv_scale);
    p.qkv_zero_point = scalar_code(qkv_zero_point);
    p.qk_multiplier = scalar_f32(qk_multiplier);
    p.logits_scale = scalar_f32(logits_scale);
    p.logits_zero_point = scalar_code(logits_zero_point);
    p.y_scale = scalar_f32(y_scale);
    p.y_zero_point = scalar_code(y_zero_point);
    require_valid(lis_attention_check(p));

    T* y = output<T>(ctx, {p.batch, p.tokens, p.heads * p.head_dim});
    const T* x = qkv.as<T>();
    // A task per head (b, h) where the heads share the CPU threads (cpu_threads(), about the pool's size) evenly or
    // are at least three per thread (a head's items then pack its keys and values once), else a task per item (a
    // block of query rows), so that few heads still spread over many threads. deit_small at batch 1 (6 heads, 2
    // threads): a task per head.
    // Per head, the units handed out are heads (so that no chunk splits one), each covering its items.
    const int64_t items = lis_attention_cpu_items(p), batch_heads = p.batch * p.heads, threads = cpu_threads();
    const bool per_head = items > 0 && (batch_heads % threads == 0 || batch_heads >= 3 * threads);
    const int64_t unit = per_head ? items / batch_heads : 1;  // items per unit
    dispatch(ctx, items / unit, 1,
             [&](void* stream) { return lis_attention_cuda(x, y, p, stream); },
             [&](int64_t begin, int64_t end) { lis_attention_cpu(x, y, p, begin * unit, end * unit, isa_); });
  }
};

}  // namespace

const OrtCustomOp* lis_attention_op(Provider provider, CodeType code) { return op_for<Kernel>(provider, code); }

}  // namespace glue
}  // namespace fqvit
