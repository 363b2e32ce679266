// TINYVIT_HOT: compile a hot loop twice (AVX2 and baseline x86-64) and pick the version at
// load time (GCC ifunc). The code is integer or unfused float arithmetic in a fixed
// order, so both versions produce identical bytes; AVX2 only vectorises wider.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(TINYVIT_NO_DISPATCH)
#define TINYVIT_HOT __attribute__((target_clones("avx2", "default")))
#else
#define TINYVIT_HOT
#endif
#define TINYVIT_INLINE inline __attribute__((always_inline))
