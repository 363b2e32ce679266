// Minimal test harness for the C++ unit tests (no external framework to install).
// CHECK(cond) records a failure and continues; TEST_MAIN() reports and sets the exit code.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace tinyvit_test {
inline int& failures() {
  static int n = 0;
  return n;
}
inline int& checks() {
  static int n = 0;
  return n;
}
}  // namespace tinyvit_test

#define CHECK(cond)                                                            \
  do {                                                                         \
    ++tinyvit_test::checks();                                                  \
    if (!(cond)) {                                                             \
      ++tinyvit_test::failures();                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                            \
  do {                                                                                   \
    ++tinyvit_test::checks();                                                            \
    const double va_ = (a), vb_ = (b);                                                   \
    if (!(va_ - vb_ <= (tol) && vb_ - va_ <= (tol))) {                                   \
      ++tinyvit_test::failures();                                                        \
      std::fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%.17g %s=%.17g tol=%g\n", __FILE__, \
                   __LINE__, #a, va_, #b, vb_, static_cast<double>(tol));                \
    }                                                                                    \
  } while (0)

#define TEST_REPORT()                                                                    \
  (std::printf("%d checks, %d failed\n", tinyvit_test::checks(), tinyvit_test::failures()), \
   tinyvit_test::failures() == 0 ? EXIT_SUCCESS : EXIT_FAILURE)
