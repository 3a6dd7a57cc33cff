// Shared definitions of the com.fqvit CPU kernels: the op spec and arithmetic every kernel includes (spec.h:
// constants and signatures of docs/ops.md; arith.h: its per-element and per-row steps, host and device) and the CPU
// instruction-set dispatch. No onnxruntime types in this layer.
#pragma once

#include <cstdint>
#include <string>

#include "fqvit_ops/arith.h"
#include "fqvit_ops/spec.h"

namespace fqvit {

// --- CPU instruction sets ------------------------------------------------------------------------------------------
// Every path computes the same bits: integer steps are exact and the float32 steps are the same single IEEE
// operations in the same order (no FMA, no reciprocal approximations), so the choice only changes the speed.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Best path this CPU runs: AVX-512 needs F+BW+VL+VNNI, AVX2 needs AVX2.
Isa cpu_best_isa();
// requested < 0: the environment variable FQVIT_CPU_ISA (scalar|avx2|avx512) if set, else the best path; any request
// is lowered to what the CPU supports.
Isa resolve_isa(int requested);
const char* isa_name(Isa isa);

// The `bits` attribute of LogIntSoftmax and LISMatMul in kLisMinBits..kLisMaxBits; "" when fine.
inline std::string lis_bits_check(int64_t bits) {
  if (bits >= kLisMinBits && bits <= kLisMaxBits) return {};
  return "attribute bits must be in " + std::to_string(kLisMinBits) + ".." + std::to_string(kLisMaxBits) + ", got " +
         std::to_string(bits);
}

}  // namespace fqvit
