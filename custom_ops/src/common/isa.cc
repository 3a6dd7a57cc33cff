// CPU instruction-set selection shared by the kernels (see fqvit_ops/common.h).
#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

#include "fqvit_ops/common.h"

namespace fqvit {

Isa cpu_best_isa() {
  static const Isa best = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni")) {
      return Isa::kAvx512;
    }
    if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
#endif
    return Isa::kScalar;
  }();
  return best;
}

int isa_requested_by_env() {
  const char* env = std::getenv("FQVIT_CPU_ISA");
  if (env == nullptr) return -1;
  if (std::strcmp(env, "scalar") == 0) return 0;
  if (std::strcmp(env, "avx2") == 0) return 1;
  if (std::strcmp(env, "avx512") == 0) return 2;  // AVX-512 VNNI without AMX (QLinear: qlinear_amx.h)
  return -1;
}

Isa resolve_isa(int requested) {
  const Isa best = cpu_best_isa();
  if (requested < 0) requested = isa_requested_by_env();
  if (requested < 0) return best;
  return requested < static_cast<int>(best) ? static_cast<Isa>(requested) : best;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

int64_t cpu_threads() {
  static const int64_t count = [] {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<int64_t>(CPU_COUNT(&set));
#endif
    const unsigned n = std::thread::hardware_concurrency();
    return static_cast<int64_t>(n > 0 ? n : 1);
  }();
  return count;
}

}  // namespace fqvit
