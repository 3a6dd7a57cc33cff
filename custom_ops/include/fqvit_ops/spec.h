// The com.fqvit op set in C++: domain, version, the constants of docs/ops.md, and each op's name, input indices, input
// ports (name, type, host or device memory, optional) and attribute names. The statement of record is
// fqvit_export/ops/spec.py; tests/test_op_spec.py parses this header and fails when a value, an input index, a port
// or an attribute name differs from it (keep one `constexpr` per line, the input enums and kInputs in spec order).
// No onnxruntime types; host and device code include it.
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
constexpr int64_t kMaxQlinearK = 65793;            // QLinear: |x - zp| <= 255, |w| <= 128: |acc| <= 32640 K < 2^31
constexpr int64_t kMaxAttentionHeads = 4096;       // LISAttention: a sanity bound on the attribute heads
constexpr int64_t kMaxAttentionHeadDim = 33025;    // LISAttention: |q - zp|, |k - zp| <= 255: |q k^T| <= 65025 D < 2^31
constexpr int64_t kMaxAttentionTokens = 16384;     // LISAttention: N (CUDA: 2 N bytes of shared memory per row)

// --- code types: the element type T of quantized activations (spec.py CODE_TYPES, in that order) --------------------
// uint8 for the CPU target, int8 for the CUDA target (onnxruntime's CUDA MatMulInteger is int8 x int8). The int8
// code of uint8 code u (zero point z) is u - 128 (zero point z - 128): q - zp and so every op's integer arithmetic are
// unchanged; only the output clamp follows T (uint8 0..255, int8 -128..127, as QuantizeLinear). One T per node.
enum class CodeType : int { kUint8, kInt8 };

// --- op signatures: input indices in spec order, k + CamelCase of the input name ------------------------------------
// Each op also lists its inputs as Ports (spec.py Port): the glue types and places every input from that table.
namespace op {

// An input's element type (spec.py Port.dtype): kT is the node's code type (CodeType), the others are fixed.
enum Dtype : int { kT, kUint8, kInt32, kFloat, kBool, kInt8 };
// Where a CUDA kernel reads the input (spec.py Port.host): kHost for the scale and zero-point scalars, declared
// OrtMemTypeCPUInput so the kernel needs no device-to-host copy. The CPU kernels read every input on the host.
enum Memory : int { kDevice, kHost };
// Whether a node may leave the input out (spec.py Port.optional).
enum Presence : int { kRequired, kOptional };

// One input of an op: its index (the op's Input enumerator), its name in messages (spec.py Port.name), type, memory
// and presence. kInputs lists them in Input order, one each; kOutput is the type of the op's one output.
struct Port {
  size_t index;
  const char* name;
  Dtype dtype;
  Memory memory = kDevice;
  Presence presence = kRequired;
};

struct PTSLayerNorm {
  static constexpr const char* kName = "PTSLayerNorm";
  enum Input : size_t { kX, kXScale, kXZeroPoint, kAlpha, kGamma, kBeta, kYScale, kYZeroPoint, kNumInputs };
  static constexpr Port kInputs[] = {
      {kX, "X", kT}, {kXScale, "x_scale", kFloat, kHost}, {kXZeroPoint, "x_zero_point", kT, kHost},
      {kAlpha, "alpha", kUint8}, {kGamma, "gamma", kFloat}, {kBeta, "beta", kFloat},
      {kYScale, "y_scale", kFloat, kHost}, {kYZeroPoint, "y_zero_point", kT, kHost}};
  static constexpr Dtype kOutput = kT;
  static constexpr const char* kAttrEpsilon = "epsilon";
};

struct LogIntSoftmax {
  static constexpr const char* kName = "LogIntSoftmax";
  enum Input : size_t { kX, kMask, kNumInputs };
  // The mask may be left out (no masking); the exporter always writes it (a single false when unmasked).
  static constexpr Port kInputs[] = {{kX, "X", kT}, {kMask, "mask", kBool, kDevice, kOptional}};
  static constexpr Dtype kOutput = kUint8;
  static constexpr const char* kAttrMultiplier = "multiplier";
  static constexpr const char* kAttrBits = "bits";
};

struct LISMatMul {
  static constexpr const char* kName = "LISMatMul";
  enum Input : size_t { kA, kV, kVScale, kVZeroPoint, kYScale, kYZeroPoint, kNumInputs };
  static constexpr Port kInputs[] = {{kA, "A", kUint8}, {kV, "V", kT}, {kVScale, "v_scale", kFloat, kHost},
                                     {kVZeroPoint, "v_zero_point", kT, kHost}, {kYScale, "y_scale", kFloat, kHost},
                                     {kYZeroPoint, "y_zero_point", kT, kHost}};
  static constexpr Dtype kOutput = kT;
  static constexpr const char* kAttrBits = "bits";
};

struct Lookup {
  static constexpr const char* kName = "Lookup";
  enum Input : size_t { kX, kTable, kNumInputs };
  static constexpr Port kInputs[] = {{kX, "X", kT}, {kTable, "table", kT}};
  static constexpr Dtype kOutput = kT;
};

struct Requantize {
  static constexpr const char* kName = "Requantize";
  enum Input : size_t { kA, kMultiplier, kBias, kYScale, kYZeroPoint, kNumInputs };
  static constexpr Port kInputs[] = {{kA, "A", kInt32}, {kMultiplier, "multiplier", kFloat}, {kBias, "bias", kFloat},
                                     {kYScale, "y_scale", kFloat, kHost}, {kYZeroPoint, "y_zero_point", kT, kHost}};
  static constexpr Dtype kOutput = kT;
};

struct QLinear {
  static constexpr const char* kName = "QLinear";
  enum Input : size_t { kX, kW, kXZeroPoint, kMultiplier, kBias, kYScale, kYZeroPoint, kNumInputs };
  // W: int8 [K, N] (weight zero point 0), in the exported models a constant initializer.
  static constexpr Port kInputs[] = {
      {kX, "X", kT}, {kW, "W", kInt8}, {kXZeroPoint, "x_zero_point", kT, kHost},
      {kMultiplier, "multiplier", kFloat}, {kBias, "bias", kFloat}, {kYScale, "y_scale", kFloat, kHost},
      {kYZeroPoint, "y_zero_point", kT, kHost}};
  static constexpr Dtype kOutput = kT;
};

struct ResidualAdd {
  static constexpr const char* kName = "ResidualAdd";
  enum Input : size_t { kA, kAScale, kAZeroPoint, kB, kBScale, kBZeroPoint, kYScale, kYZeroPoint, kGamma, kNumInputs };
  // Scales and gamma: [C] or one element, in the provider's memory; the zero points are host scalars.
  static constexpr Port kInputs[] = {
      {kA, "A", kT}, {kAScale, "a_scale", kFloat}, {kAZeroPoint, "a_zero_point", kT, kHost},
      {kB, "B", kT}, {kBScale, "b_scale", kFloat}, {kBZeroPoint, "b_zero_point", kT, kHost},
      {kYScale, "y_scale", kFloat}, {kYZeroPoint, "y_zero_point", kT, kHost}, {kGamma, "gamma", kFloat}};
  static constexpr Dtype kOutput = kT;
};

struct LISAttention {
  static constexpr const char* kName = "LISAttention";
  enum Input : size_t {
    kQKV, kQkvScale, kQkvZeroPoint, kQkMultiplier, kLogitsScale, kLogitsZeroPoint, kYScale, kYZeroPoint, kNumInputs
  };
  // QKV: [B, N, 3 * heads * D] codes (q, k, v of one point); every other input a host scalar.
  static constexpr Port kInputs[] = {
      {kQKV, "QKV", kT}, {kQkvScale, "qkv_scale", kFloat, kHost}, {kQkvZeroPoint, "qkv_zero_point", kT, kHost},
      {kQkMultiplier, "qk_multiplier", kFloat, kHost}, {kLogitsScale, "logits_scale", kFloat, kHost},
      {kLogitsZeroPoint, "logits_zero_point", kT, kHost}, {kYScale, "y_scale", kFloat, kHost},
      {kYZeroPoint, "y_zero_point", kT, kHost}};
  static constexpr Dtype kOutput = kT;
  static constexpr const char* kAttrHeads = "heads";
  static constexpr const char* kAttrLisMultiplier = "lis_multiplier";
  static constexpr const char* kAttrBits = "bits";
};

}  // namespace op
}  // namespace fqvit
