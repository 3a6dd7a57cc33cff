// Shared definitions of the com.fqvit kernels: constants of docs/ops.md, CPU instruction-set dispatch, and the
// float32 helpers every kernel uses for docs/ops.md Sec. 1 (QuantizeLinear). No onnxruntime types in this layer.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace fqvit {

// --- constants fixed by docs/ops.md --------------------------------------------------------------------------------
constexpr int64_t kMaxLnChannels = 4096;        // Sec. 2: C * x_c - S1 stays exact in float32 up to 4096 channels
constexpr int kMaxAlpha = 3;                    // Sec. 2: PTS shifts alpha_c in 0..K, K = 3
constexpr int kLisFracBits = 14;                // Sec. 3: L
constexpr int64_t kLisPolyB = 63993;            // Sec. 3: B = floor(b / (a u))
constexpr int64_t kLisPolyC = 1559991451;       // Sec. 3: Cp = floor(c / (a u^2))
constexpr int kLisNormBits = 30;                // Sec. 3: P
constexpr int kLisValueShift = 14;              // Sec. 4: code k weighs 2^(14 - k)
constexpr int64_t kMaxLisMultiplier = 2147483647;  // keeps t_j = d_j * M far inside int64 (|d_j| <= 255)
constexpr int kMaxRank = 8;                     // LogIntSoftmax mask broadcasting handles up to this rank

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

// --- float32 helpers (docs/ops.md Sec. 1) --------------------------------------------------------------------------
// ONNX QuantizeLinear to uint8 exactly as the PyTorch reference does it: round half to even of the float32 quotient,
// clamped to +-2^30 before the int32 conversion (a NaN quotient lands at the bottom, as x86's conversion does), plus
// the zero point, clamped to 0..255.
inline int32_t quantize_u8(float v, float y_scale, int32_t y_zero_point) {
  float r = std::nearbyint(v / y_scale);
  if (!(r >= -1073741824.0f)) r = -1073741824.0f;
  if (r > 1073741824.0f) r = 1073741824.0f;
  int32_t q = static_cast<int32_t>(r) + y_zero_point;
  return q < 0 ? 0 : (q > 255 ? 255 : q);
}

}  // namespace fqvit
