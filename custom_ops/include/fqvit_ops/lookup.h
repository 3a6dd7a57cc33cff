// com.fqvit::Lookup kernels (docs/ops.md Sec. 1, GELU table): Y[i] = table[byte(X[i])], X, table and Y of type
// T = uint8 or int8; the index is X's byte (an int8 x reads entry x mod 256).
#pragma once

#include <cstdint>
#include <string>

#include "fqvit_ops/common.h"

namespace fqvit {

struct LookupParams {
  int64_t n = 0;           // elements of X (and Y)
  int64_t table_size = 0;  // elements of the table: must be kLookupTableSize
};

std::string lookup_check(const LookupParams& p);

// Elements [begin, end) of X -> Y with the 256-entry table.
void lookup_cpu(const uint8_t* x, const uint8_t* table, uint8_t* y, const LookupParams& p, int64_t begin, int64_t end,
                Isa isa);
// int8: the same bytes (the index is x's byte), so the uint8 kernel on reinterpreted pointers.
void lookup_cpu(const int8_t* x, const int8_t* table, int8_t* y, const LookupParams& p, int64_t begin, int64_t end,
                Isa isa);

// CUDA: everything, device pointers (table included). Returns a cudaError_t value.
int lookup_cuda(const uint8_t* x, const uint8_t* table, uint8_t* y, const LookupParams& p, void* stream);
int lookup_cuda(const int8_t* x, const int8_t* table, int8_t* y, const LookupParams& p, void* stream);
// The __global__ function launched for code type `code` (for cuda_kernel_image_check; one overload per op).
const void* cuda_kernel(op::Lookup, CodeType code);

}  // namespace fqvit
