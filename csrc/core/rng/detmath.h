// Deterministic elementary functions for the augmentation decoder.
//
// libm's log/exp are not bit-identical across C libraries (glibc, musl, MSVC CRT,
// macOS), so a seed would replay to slightly different crop boxes on another
// platform. These use only IEEE-754 +,-,*,/ and sqrt (all correctly rounded), in a
// fixed evaluation order. Build with -ffp-contract=off (setup.py and CMake do) so
// the compiler cannot fuse them into FMAs. Accuracy: a few ulp, plenty for sampling.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace tinyvit {
namespace detmath {

constexpr double kLn2Hi = 6.93147180369123816490e-01;  // upper bits of ln 2, exact in double
constexpr double kLn2Lo = 1.90821492927058770002e-10;  // ln 2 - kLn2Hi
constexpr double kSqrtHalf = 0.70710678118654752440;

// x = m * 2^e with m in [0.5, 1); exact bit manipulation (std::frexp is exact too,
// but spelling it out keeps the function free of any libm call).
inline double split_exponent(double x, int* e) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int biased = static_cast<int>((bits >> 52) & 0x7ff);
  if (biased == 0) {  // subnormal: scale into the normal range first
    x *= 18014398509481984.0;  // 2^54
    std::memcpy(&bits, &x, sizeof bits);
    biased = static_cast<int>((bits >> 52) & 0x7ff) - 54;
  }
  *e = biased - 1022;
  bits = (bits & ~(uint64_t{0x7ff} << 52)) | (uint64_t{1022} << 52);
  double m;
  std::memcpy(&m, &bits, sizeof m);
  return m;
}

// 2^n for integer n in the normal range, by building the exponent field.
inline double pow2i(int n) {
  if (n < -1022) return pow2i(n + 54) / 18014398509481984.0;
  if (n > 1023) return std::numeric_limits<double>::infinity();
  uint64_t bits = static_cast<uint64_t>(n + 1023) << 52;
  double r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
}

// Natural log for x > 0 (returns -inf for 0, NaN for negatives/NaN).
inline double log(double x) {
  if (!(x > 0.0)) return x == 0.0 ? -std::numeric_limits<double>::infinity()
                                  : std::numeric_limits<double>::quiet_NaN();
  if (x == std::numeric_limits<double>::infinity()) return x;
  int e;
  double m = split_exponent(x, &e);  // m in [0.5, 1)
  if (m < kSqrtHalf) {  // move m into [sqrt(1/2), sqrt(2)) so |s| <= 0.1716
    m *= 2.0;
    e -= 1;
  }
  // log(m) = 2 atanh(s), s = (m-1)/(m+1); s^2 <= 0.0295, 12 terms reach 1e-19.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double poly = 1.0 / 25.0;
  for (int k = 23; k >= 1; k -= 2) poly = 1.0 / k + s2 * poly;
  const double log_m = 2.0 * s * poly;
  const double de = static_cast<double>(e);
  return (de * kLn2Hi + log_m) + de * kLn2Lo;
}

// e^x; overflows to +inf above ~709.78 and underflows to 0 below ~-745.
inline double exp(double x) {
  if (x != x) return x;
  if (x > 709.782712893384) return std::numeric_limits<double>::infinity();
  if (x < -745.1332191019412) return 0.0;
  // x = n ln2 + r, |r| <= ln2/2; n by round-half-away (deterministic, no fenv dependence)
  const double t = x * 1.44269504088896340736;
  const int n = static_cast<int>(t < 0 ? t - 0.5 : t + 0.5);
  const double r = (x - n * kLn2Hi) - n * kLn2Lo;
  // Taylor series to r^17/17!: |r| <= 0.347 gives error < 1e-19.
  double poly = 1.0;
  for (int k = 17; k >= 1; --k) poly = 1.0 + poly * r / k;
  // split 2^n when n = 1024 so values just below DBL_MAX do not overflow early
  return n > 1023 ? poly * 2.0 * pow2i(n - 1) : poly * pow2i(n);
}

}  // namespace detmath
}  // namespace tinyvit
