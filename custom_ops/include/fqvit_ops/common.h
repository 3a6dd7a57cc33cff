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

// Best path this CPU runs: AVX-512 needs F+BW+VL+DQ+VNNI, AVX2 needs AVX2.
Isa cpu_best_isa();
// The path FQVIT_CPU_ISA names now: 0 scalar, 1 avx2, 2 avx512 (AVX-512 VNNI without AMX tiles); -1 when it is unset,
// empty or another value.
int isa_requested_by_env();
// requested < 0: the path FQVIT_CPU_ISA names (isa_requested_by_env) if any, else the best path; any request is
// lowered to what the CPU supports.
Isa resolve_isa(int requested);
const char* isa_name(Isa isa);

// The `bits` attribute of LogIntSoftmax and LISMatMul in kLisMinBits..kLisMaxBits; "" when fine.
inline std::string lis_bits_check(int64_t bits) {
  if (bits >= kLisMinBits && bits <= kLisMaxBits) return {};
  return "attribute bits must be in " + std::to_string(kLisMinBits) + ".." + std::to_string(kLisMaxBits) + ", got " +
         std::to_string(bits);
}

// The CPUs this process may run on (its affinity mask, at least 1): about the size of onnxruntime's default intra-op
// pool, which kernels use to cut work into one item per thread where that saves memory traffic.
int64_t cpu_threads();

// --- CPU work items -------------------------------------------------------------------------------------------------
// Rows per block for m rows cut into the fewest blocks of at most max_rows rows, made equal (197 rows, max 64: 50, 50,
// 50, 47 rather than 64, 64, 64, 5), so that the blocks share the threads evenly. No block is empty:
// m > max_rows (blocks - 1) >= rows (blocks - 1). max_rows for m <= 0.
inline int64_t equal_block_rows(int64_t m, int64_t max_rows) {
  if (m <= 0) return max_rows;
  const int64_t blocks = (m + max_rows - 1) / max_rows;
  return (m + blocks - 1) / blocks;
}

// --- CUDA (libfqvit_ops_cuda.so only; defined in src/common/cuda_device.cu) ---------------------------------------
// "" when the current device can run `kernel` (the address of a __global__ function, e.g. from
// cuda_kernel(op::PTSLayerNorm{}, code)), else a message naming the device's architecture and the ones this library was built
// for ("no kernel image for this GPU (sm_120, NVIDIA ...); the library was built for sm_75,...; rebuild with ...").
// A CUDA API call (cudaGetDevice, cudaFuncGetAttributes): call it when a kernel is created, not per run.
std::string cuda_kernel_image_check(const void* kernel);
// Text for a cudaError_t value returned by a launch: its name and description (the architecture message for
// cudaErrorNoKernelImageForDevice).
std::string cuda_error_text(int rc);
// The architectures the CUDA kernels were compiled for, e.g. "75-real,80-real,...,90-virtual" (CMAKE_CUDA_ARCHITECTURES).
const char* cuda_built_architectures();

}  // namespace fqvit
