// Factories of the op definitions, one per op, used by the registration table in register.cc. Each returns the
// definition for `provider`, or nullptr when this build has no kernel for it.
#pragma once

#include "common/ort_glue.h"

namespace fqvit {
namespace glue {

const OrtCustomOp* pts_layernorm_op(Provider provider);
const OrtCustomOp* log_int_softmax_op(Provider provider);
const OrtCustomOp* lis_matmul_op(Provider provider);
const OrtCustomOp* lookup_op(Provider provider);
const OrtCustomOp* requantize_op(Provider provider);

}  // namespace glue
}  // namespace fqvit
