// Factories of the op definitions, one per op, used by the registration table in register.cc. Each returns the
// definition for `provider` and code type `code` (fqvit_ops/spec.h CodeType), or nullptr when this build has no
// kernel for the provider.
#pragma once

#include "common/ort_glue.h"

namespace fqvit {
namespace glue {

const OrtCustomOp* pts_layernorm_op(Provider provider, CodeType code);
const OrtCustomOp* log_int_softmax_op(Provider provider, CodeType code);
const OrtCustomOp* lis_matmul_op(Provider provider, CodeType code);
const OrtCustomOp* lookup_op(Provider provider, CodeType code);
const OrtCustomOp* requantize_op(Provider provider, CodeType code);
const OrtCustomOp* qlinear_op(Provider provider, CodeType code);
const OrtCustomOp* residual_add_op(Provider provider, CodeType code);
const OrtCustomOp* lis_attention_op(Provider provider, CodeType code);

}  // namespace glue
}  // namespace fqvit
