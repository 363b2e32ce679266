// PCG32 reference stream, bounded/uniform definitions, and the deterministic math
// that the distributions rely on.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>

#include "check.h"
#include "core/rng/detmath.h"
#include "core/rng/pcg32.h"

using tinyvit::PCG32;
namespace dm = tinyvit::detmath;

static void reference_vectors() {
  // Published output of O'Neill's pcg32-demo, seeded pcg32_srandom_r(42, 54).
  const uint32_t expected[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                                0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
  PCG32 g(42, 54);
  for (uint32_t e : expected) CHECK(g.next_u32() == e);
  const char* coins = "HHTTTHTHHHTHTTTHHHHHTTTHHHTHTHTHTTHTTTHHHHHHTTTTHHTTTTTHTTTTTTTHT";
  for (const char* c = coins; *c; ++c) CHECK((g.bounded(2) ? 'H' : 'T') == *c);
  const int rolls[33] = {3, 4, 1, 1, 2, 2, 3, 2, 4, 3, 2, 4, 3, 3, 5, 2, 3,
                         1, 3, 1, 5, 1, 4, 1, 5, 6, 4, 6, 6, 2, 6, 3, 3};
  for (int r : rolls) CHECK(static_cast<int>(g.bounded(6)) + 1 == r);
}

static void uniform_is_one_draw() {
  PCG32 a(1, 2), b(1, 2);
  for (int i = 0; i < 1000; ++i) {
    const double u = a.uniform();
    CHECK(u == b.next_u32() / 4294967296.0);
    CHECK(u >= 0.0 && u < 1.0);
  }
}

static void detmath_accuracy() {
  // Against libm (correctly rounded or nearly so on glibc): a few ulp is the contract.
  double worst_log = 0, worst_exp = 0;
  PCG32 g(5, 6);
  for (int i = 0; i < 200000; ++i) {
    const double x = std::ldexp(1.0 + g.uniform(), static_cast<int>(g.bounded(200)) - 100);
    const double l = dm::log(x), ref = std::log(x);
    if (ref != 0.0) worst_log = std::fmax(worst_log, std::fabs(l - ref) / std::fabs(ref));
    const double y = -700.0 + 1400.0 * g.uniform();
    const double e = dm::exp(y), eref = std::exp(y);
    worst_exp = std::fmax(worst_exp, std::fabs(e - eref) / eref);
  }
  std::printf("detmath worst relative error: log %.3g, exp %.3g\n", worst_log, worst_exp);
  CHECK(worst_log < 1e-15);
  CHECK(worst_exp < 1e-14);
  CHECK(dm::log(1.0) == 0.0);
  CHECK(dm::exp(0.0) == 1.0);
  CHECK(std::isinf(dm::log(0.0)) && dm::log(0.0) < 0);
  CHECK(std::isnan(dm::log(-1.0)));
  CHECK(dm::exp(-1000.0) == 0.0);
  CHECK(std::isinf(dm::exp(1000.0)));
  CHECK(std::isfinite(dm::exp(709.78)));  // just below overflow must stay finite
  CHECK_NEAR(dm::log(std::numeric_limits<double>::denorm_min()), -744.4400719213812, 1e-9);
  CHECK_NEAR(dm::log(std::numeric_limits<double>::max()), 709.782712893384, 1e-9);
}

static void distributions_moments() {
  PCG32 g(11, 12);
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = g.normal();
    s += x;
    s2 += x * x;
  }
  CHECK_NEAR(s / n, 0.0, 0.01);
  CHECK_NEAR(s2 / n, 1.0, 0.015);
  for (double shape : {0.25, 1.0, 4.0}) {
    double m = 0;
    for (int i = 0; i < n; ++i) m += g.gamma(shape);
    CHECK_NEAR(m / n, shape, 5 * std::sqrt(shape / n));
  }
  double bm = 0;
  for (int i = 0; i < n; ++i) {
    const double b = g.beta(0.8, 0.8);
    CHECK(b >= 0.0 && b <= 1.0);
    bm += b;
  }
  CHECK_NEAR(bm / n, 0.5, 0.005);
}

static void replay_is_bit_exact() {
  PCG32 a(123, 456), b(123, 456);
  for (int i = 0; i < 10000; ++i) {
    CHECK(a.beta(0.3, 0.3) == b.beta(0.3, 0.3));
    CHECK(a.normal() == b.normal());
  }
  CHECK(a.state() == b.state());
}

// advance(n) is the jump-ahead the per-sample seeds rely on (plan/pairing.cpp): it must
// land exactly where n calls of next_u32 do, on any stream, and compose additively.
static void advance_equals_stepping() {
  for (uint64_t seq : {uint64_t{0}, uint64_t{54}, uint64_t{0x7469'6e79'7669'7404ULL}}) {
    PCG32 stepped(42, seq);
    uint64_t done = 0;
    for (uint64_t n : {0u, 1u, 2u, 3u, 7u, 64u, 1000u, 4097u}) {
      while (done < n) {
        stepped.next_u32();
        ++done;
      }
      PCG32 jumped(42, seq);
      jumped.advance(n);
      CHECK(jumped.state() == stepped.state());
      CHECK(jumped.inc() == stepped.inc());
      PCG32 copy = stepped;
      CHECK(jumped.next_u32() == copy.next_u32());
      CHECK(PCG32::output(stepped.state()) == PCG32(stepped).next_u32());
    }
  }
  PCG32 a(7, 9), b(7, 9);
  a.advance(123456789);
  a.advance(987654321);
  b.advance(123456789ull + 987654321ull);
  CHECK(a.state() == b.state());
  // A full period (2^64 steps) is the identity: advance(2^64 - 1) then one step.
  PCG32 c(3, 5), d(3, 5);
  c.advance(~uint64_t{0});
  c.next_u32();
  CHECK(c.state() == d.state());
}

int main() {
  reference_vectors();
  uniform_is_one_draw();
  detmath_accuracy();
  distributions_moments();
  replay_is_bit_exact();
  advance_equals_stepping();
  return TEST_REPORT();
}
