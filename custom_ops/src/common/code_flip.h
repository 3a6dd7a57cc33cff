// uint8 <-> int8 codes on the CPU: the int8 code c of uint8 code u is u - 128, the same byte with bit 7 flipped
// (c = u ^ 0x80 as bytes), and the zero points shift alike, so q - zp is unchanged. The CPU kernels run int8 codes
// through their uint8 bodies (SIMD paths included) on flipped copies of the inputs and flip the outputs in place:
// bit-identical to computing in int8 (QuantizeLinear to -128..127 with zp - 128 is QuantizeLinear to 0..255 with zp,
// minus 128).
#pragma once

#include <cstdint>

namespace fqvit {

constexpr int32_t kCodeOffset = 128;  // uint8 code = int8 code + 128 (spec.py CODE_OFFSET["int8"])

// dst[i] = src[i] ^ 0x80 for i < n (src == dst allowed). A plain loop: the compiler vectorises it.
inline void flip_codes(const void* src, void* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(s[i] ^ 0x80u);
}

// Bytes of flipped input handled per block (a scratch buffer of this size per call, cache resident).
constexpr int64_t kFlipBlockBytes = int64_t(1) << 16;

}  // namespace fqvit
