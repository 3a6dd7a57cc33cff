// The com.fqvit op set in C++: domain, version, the constants of docs/ops.md, and each op's name, input indices and
// attribute names. The statement of record is fqvit_export/ops/spec.py; tests/test_op_spec.py parses this header
// and fails when a value, an input index or an attribute name differs from it (keep one `constexpr` per line and
// the input enums in spec order). No onnxruntime types; host and device code include it.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace fqvit {

// --- domain and version ---------------------------------------------------------------------------------------------
constexpr const char* kDomain = "com.fqvit";
constexpr int kOpVersion = 1;  // the kernels cover com.fqvit 1..1; other versions fall back to the function bodies

// --- constants fixed by docs/ops.md ---------------------------------------------------------------------------------
constexpr int64_t kMaxLnChannels = 4096;           // Sec. 2: C * x_c - S1 stays exact in float32 up to 4096 channels
constexpr int kMaxAlpha = 3;                       // Sec. 2: PTS shifts alpha_c in 0..K, K = 3
constexpr int kLisFracBits = 14;                   // Sec. 3: L
constexpr int64_t kLisPolyB = 63993;               // Sec. 3: B = floor(b / (a u))
constexpr int64_t kLisPolyC = 1559991451;          // Sec. 3: Cp = floor(c / (a u^2))
constexpr int kLisNormBits = 30;                   // Sec. 3: P
constexpr int kLisValueShift = 14;                 // Sec. 4: code k weighs 2^(14 - k)
constexpr int kLisMinBits = 1;                     // Sec. 3/4: attribute bits in 1..4
constexpr int kLisMaxBits = 4;
constexpr int kLisDefaultBits = 4;
constexpr int kLisMaxCodes = 15;                   // codes 0..14 stand for 2^-k at 4 bits; code 15 is probability 0
constexpr int64_t kMaxLisMultiplier = 2147483647;  // keeps t_j = d_j * M far inside int64 (|d_j| <= 255)
constexpr int kMaxRank = 8;                        // LogIntSoftmax mask broadcasting handles up to this rank
constexpr int64_t kLookupTableSize = 256;          // one Lookup table entry per uint8 code

// --- code types: the element type T of quantized activations (spec.py CODE_TYPES, in that order) --------------------
// uint8 for the CPU target, int8 for the CUDA target (onnxruntime's CUDA MatMulInteger is int8 x int8). The int8
// code of uint8 code u (zero point z) is u - 128 (zero point z - 128): q - zp and so every op's integer arithmetic are
// unchanged; only the output clamp follows T (uint8 0..255, int8 -128..127, as QuantizeLinear). One T per node.
enum class CodeType : int { kUint8, kInt8 };

// --- op signatures: input indices in spec order, k + CamelCase of the input name ------------------------------------
namespace op {

struct PTSLayerNorm {
  static constexpr const char* kName = "PTSLayerNorm";
  enum Input : size_t { kX, kXScale, kXZeroPoint, kAlpha, kGamma, kBeta, kYScale, kYZeroPoint, kNumInputs };
  // Inputs of type T (in spec order) and whether the output is T (else uint8).
  static constexpr Input kCodeInputs[] = {kX, kXZeroPoint, kYZeroPoint};
  static constexpr bool kCodeOutput = true;
  static constexpr const char* kAttrEpsilon = "epsilon";
};

struct LogIntSoftmax {
  static constexpr const char* kName = "LogIntSoftmax";
  enum Input : size_t { kX, kMask, kNumInputs };
  static constexpr Input kCodeInputs[] = {kX};
  static constexpr bool kCodeOutput = false;
  static constexpr const char* kAttrMultiplier = "multiplier";
  static constexpr const char* kAttrBits = "bits";
};

struct LISMatMul {
  static constexpr const char* kName = "LISMatMul";
  enum Input : size_t { kA, kV, kVScale, kVZeroPoint, kYScale, kYZeroPoint, kNumInputs };
  static constexpr Input kCodeInputs[] = {kV, kVZeroPoint, kYZeroPoint};
  static constexpr bool kCodeOutput = true;
  static constexpr const char* kAttrBits = "bits";
};

struct Lookup {
  static constexpr const char* kName = "Lookup";
  enum Input : size_t { kX, kTable, kNumInputs };
  static constexpr Input kCodeInputs[] = {kX, kTable};
  static constexpr bool kCodeOutput = true;
};

struct Requantize {
  static constexpr const char* kName = "Requantize";
  enum Input : size_t { kA, kMultiplier, kBias, kYScale, kYZeroPoint, kNumInputs };
  static constexpr Input kCodeInputs[] = {kYZeroPoint};
  static constexpr bool kCodeOutput = true;
};

}  // namespace op
}  // namespace fqvit
