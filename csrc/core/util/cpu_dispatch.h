// The one CPU-feature dispatch idiom of csrc/core. Two tools, both byte-neutral (every
// fast path computes the same integers, or the scalar's float operations in the same
// order, as its scalar twin; tests compare them):
//  - TINYVIT_HOT: the compiler builds a plain loop twice (AVX2 and baseline x86-64) and
//    the loader picks one (GCC ifunc). For loops the auto-vectoriser handles.
//  - hand-written intrinsics: compiled only under TINYVIT_X86_SIMD, marked TINYVIT_AVX2 /
//    TINYVIT_SSE41, and chosen at run time by cpu_features() (probed once per process).
// Use these rather than calling __builtin_cpu_supports or keeping a flag of one's own.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(TINYVIT_NO_DISPATCH)
#include <immintrin.h>
#define TINYVIT_X86_SIMD 1
#define TINYVIT_AVX2 __attribute__((target("avx2")))
#define TINYVIT_AVX2_INLINE inline __attribute__((target("avx2"), always_inline))
#define TINYVIT_SSE41 __attribute__((target("sse4.1")))
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(TINYVIT_NO_DISPATCH)
#define TINYVIT_HOT __attribute__((target_clones("avx2", "default")))
#else
#define TINYVIT_HOT
#endif
#define TINYVIT_INLINE inline __attribute__((always_inline))

namespace tinyvit {

struct CpuFeatures {
  bool sse41 = false, sse42 = false, popcnt = false;
  bool avx2 = false, fma = false, f16c = false, bmi = false, bmi2 = false;
};

// What the running CPU offers the TINYVIT_X86_SIMD paths (all false in other builds).
// Safe during static initialisation (hence __builtin_cpu_init).
inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#ifdef TINYVIT_X86_SIMD
    __builtin_cpu_init();
    c.sse41 = __builtin_cpu_supports("sse4.1") != 0;
    c.sse42 = __builtin_cpu_supports("sse4.2") != 0;
    c.popcnt = __builtin_cpu_supports("popcnt") != 0;
    c.avx2 = __builtin_cpu_supports("avx2") != 0;
    c.fma = __builtin_cpu_supports("fma") != 0;
    c.f16c = __builtin_cpu_supports("f16c") != 0;
    c.bmi = __builtin_cpu_supports("bmi") != 0;
    c.bmi2 = __builtin_cpu_supports("bmi2") != 0;
#endif
    return c;
  }();
  return f;
}

}  // namespace tinyvit
