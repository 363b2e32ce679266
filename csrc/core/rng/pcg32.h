// PCG32 (O'Neill, pcg-random.org): 64-bit LCG state, XSH-RR 32-bit output.
// Every random number in tinyvit comes from here, so a 4-byte augmentation seed
// replays the same parameters on any platform, compiler and thread count.
//
// Determinism contract: only integer arithmetic and IEEE +,-,*,/,sqrt (no libm
// transcendental, no std::*_distribution whose algorithms differ between standard
// libraries), and a documented number of draws per call:
//   next_u32      1 draw
//   advance(n)    skips n draws (jump-ahead, O(log n))
//   bounded(n)    1 draw, plus 1 per rejection (probability < n / 2^32)
//   uniform()     1 draw: u32 * 2^-32, exact in double, in [0, 1)
//   uniform(a,b)  1 draw: a + (b - a) * uniform()
//   normal()      Marsaglia polar method, 2 draws per attempt (acceptance pi/4)
//   gamma(a)      Marsaglia-Tsang; for a < 1 one extra uniform after gamma(a + 1)
//   beta(a, b)    gamma(a) then gamma(b)
#pragma once

#include <cmath>
#include <cstdint>

#include "core/rng/detmath.h"

namespace tinyvit {

class PCG32 {
 public:
  static constexpr uint64_t kMultiplier = 6364136223846793005ULL;

  // pcg32_srandom_r(initstate, initseq): stream selected by initseq, position by initstate.
  PCG32(uint64_t initstate, uint64_t initseq) { seed(initstate, initseq); }

  void seed(uint64_t initstate, uint64_t initseq) {
    state_ = 0u;
    inc_ = (initseq << 1u) | 1u;
    next_u32();
    state_ += initstate;
    next_u32();
  }

  uint32_t next_u32() {
    const uint64_t old = state_;
    state_ = old * kMultiplier + inc_;
    return output(old);
  }

  // The XSH-RR output function: the u32 next_u32 returns while the state is `state`.
  static uint32_t output(uint64_t state) {
    const uint32_t xorshifted = static_cast<uint32_t>(((state >> 18u) ^ state) >> 27u);
    const uint32_t rot = static_cast<uint32_t>(state >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((0u - rot) & 31u));
  }

  // Skip `delta` outputs in O(log delta) steps (pcg32_advance_r; Brown, "Random number
  // generation with arbitrary strides"): afterwards next_u32 returns output number delta.
  void advance(uint64_t delta) {
    uint64_t cur_mult = kMultiplier, cur_plus = inc_;
    uint64_t acc_mult = 1u, acc_plus = 0u;
    while (delta > 0) {
      if (delta & 1u) {
        acc_mult *= cur_mult;
        acc_plus = acc_plus * cur_mult + cur_plus;
      }
      cur_plus = (cur_mult + 1u) * cur_plus;
      cur_mult *= cur_mult;
      delta >>= 1u;
    }
    state_ = acc_mult * state_ + acc_plus;
  }

  // Unbiased integer in [0, bound) by rejection (pcg32_boundedrand_r). bound must be > 0.
  uint32_t bounded(uint32_t bound) {
    const uint32_t threshold = (0u - bound) % bound;
    for (;;) {
      const uint32_t r = next_u32();
      if (r >= threshold) return r % bound;
    }
  }

  double uniform() { return next_u32() * (1.0 / 4294967296.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Standard normal, Marsaglia polar method (needs only log and sqrt).
  double normal() {
    for (;;) {
      const double u = 2.0 * uniform() - 1.0;
      const double v = 2.0 * uniform() - 1.0;
      const double s = u * u + v * v;
      if (s > 0.0 && s < 1.0) return u * std::sqrt(-2.0 * detmath::log(s) / s);
    }
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  // Gamma(shape, 1), Marsaglia & Tsang (2000). shape must be > 0.
  double gamma(double shape) {
    if (shape < 1.0) {
      // G(a) = G(a + 1) * U^(1/a); 1 - uniform() is in (0, 1] so log is finite.
      const double g = gamma(shape + 1.0);
      const double u = 1.0 - uniform();
      return g * detmath::exp(detmath::log(u) / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = 1.0 - uniform();  // (0, 1]
      const double x2 = x * x;
      if (u < 1.0 - 0.0331 * x2 * x2) return d * v;  // cheap squeeze, no log
      if (detmath::log(u) < 0.5 * x2 + d * (1.0 - v + detmath::log(v))) return d * v;
    }
  }

  // Beta(a, b) = X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b). a, b must be > 0.
  double beta(double a, double b) {
    const double x = gamma(a);
    const double y = gamma(b);
    const double s = x + y;
    // Both can underflow to 0 for tiny shapes; fall back to the limiting Bernoulli(a/(a+b)).
    if (s == 0.0) return uniform() * (a + b) < a ? 1.0 : 0.0;
    return x / s;
  }

  uint64_t state() const { return state_; }
  uint64_t inc() const { return inc_; }

 private:
  uint64_t state_ = 0;
  uint64_t inc_ = 1;
};

}  // namespace tinyvit
