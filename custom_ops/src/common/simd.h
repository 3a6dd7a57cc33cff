// Target attributes for the vector paths of the CPU kernels (function multiversioning by hand: each kernel has a
// scalar, an AVX2 and an AVX-512 body, chosen at run time by fqvit::resolve_isa).
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FQVIT_HAS_X86 1
#define FQVIT_TARGET_AVX2 __attribute__((target("avx2,bmi,bmi2,popcnt")))
#define FQVIT_TARGET_AVX512 \
  __attribute__((target("avx2,bmi,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define FQVIT_HAS_X86 0
#endif
