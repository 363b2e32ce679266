#include "core/plan/pairing.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/rng/pcg32.h"
#include "core/plan/plan.h"

namespace tinyvit {
namespace {

// splitmix64's finalizer: a strong 64-bit mixer for the Feistel round function.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr int kRounds = 8;

struct Feistel {
  int half_bits;
  uint64_t mask;
  uint64_t keys[kRounds];

  Feistel(uint64_t n, uint32_t base_seed, uint32_t epoch) {
    int bits = 2;
    while (bits < 64 && (uint64_t{1} << bits) < n) ++bits;
    if (bits & 1) ++bits;
    half_bits = bits / 2;
    mask = half_bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << half_bits) - 1u;
    PCG32 g((static_cast<uint64_t>(base_seed) << 32) | epoch, kStreamPairing);
    for (auto& k : keys) {
      const uint64_t hi = g.next_u32();
      k = (hi << 32) | g.next_u32();
    }
  }
  uint64_t forward(uint64_t x) const {
    uint64_t l = (x >> half_bits) & mask, r = x & mask;
    for (int i = 0; i < kRounds; ++i) {
      const uint64_t t = l ^ (mix64(r ^ keys[i]) & mask);
      l = r;
      r = t;
    }
    return (l << half_bits) | r;
  }
  uint64_t inverse(uint64_t x) const {
    uint64_t l = (x >> half_bits) & mask, r = x & mask;
    for (int i = kRounds - 1; i >= 0; --i) {
      const uint64_t t = r ^ (mix64(l ^ keys[i]) & mask);
      r = l;
      l = t;
    }
    return (l << half_bits) | r;
  }
};

void check_domain(uint64_t x, uint64_t n, const char* what) {
  if (n == 0) throw std::invalid_argument("num_samples must be > 0");
  if (n > (uint64_t{1} << 62)) throw std::invalid_argument("num_samples must be <= 2**62");
  if (x >= n)
    throw std::out_of_range(std::string(what) + " " + std::to_string(x) +
                            " is out of range for num_samples " + std::to_string(n));
}

}  // namespace

uint32_t sample_seed(uint32_t base_seed, uint32_t epoch, uint64_t index) {
  PCG32 g((static_cast<uint64_t>(base_seed) << 32) | epoch, kStreamSeeds);
  g.advance(index);
  return g.next_u32();
}

uint64_t pair_perm(uint64_t position, uint64_t n, uint32_t base_seed, uint32_t epoch) {
  check_domain(position, n, "position");
  const Feistel f(n, base_seed, epoch);
  uint64_t x = position;
  do { x = f.forward(x); } while (x >= n);  // cycle walking: terminates, x's cycle holds position
  return x;
}

uint64_t pair_perm_inverse(uint64_t index, uint64_t n, uint32_t base_seed, uint32_t epoch) {
  check_domain(index, n, "index");
  const Feistel f(n, base_seed, epoch);
  uint64_t x = index;
  do { x = f.inverse(x); } while (x >= n);
  return x;
}

namespace {
uint64_t partner_with(const Feistel& f, uint64_t index, uint64_t n) {
  uint64_t pos = index;
  do { pos = f.inverse(pos); } while (pos >= n);
  uint64_t x = pos ^ 1u;
  if (x >= n) return index;
  do { x = f.forward(x); } while (x >= n);
  return x;
}
}  // namespace

uint64_t mix_partner(uint32_t epoch, uint64_t index, uint64_t n, uint32_t base_seed) {
  check_domain(index, n, "index");
  return partner_with(Feistel(n, base_seed, epoch), index, n);
}

void pair_perm_batch(const uint64_t* positions, uint64_t* out, size_t count, uint64_t n,
                     uint32_t base_seed, uint32_t epoch) {
  for (size_t i = 0; i < count; ++i) check_domain(positions[i], n, "position");
  const Feistel f(n, base_seed, epoch);
  for (size_t i = 0; i < count; ++i) {
    uint64_t x = positions[i];
    do { x = f.forward(x); } while (x >= n);
    out[i] = x;
  }
}

void mix_partner_batch(const uint64_t* indices, uint64_t* out, size_t count, uint64_t n,
                       uint32_t base_seed, uint32_t epoch) {
  for (size_t i = 0; i < count; ++i) check_domain(indices[i], n, "index");
  const Feistel f(n, base_seed, epoch);
  for (size_t i = 0; i < count; ++i) out[i] = partner_with(f, indices[i], n);
}

void sample_seed_batch(const uint64_t* indices, uint32_t* out, size_t count, uint32_t base_seed,
                       uint32_t epoch) {
  const PCG32 start((static_cast<uint64_t>(base_seed) << 32) | epoch, kStreamSeeds);
  for (size_t i = 0; i < count; ++i) {
    PCG32 g = start;
    g.advance(indices[i]);
    out[i] = g.next_u32();
  }
}

void erase_noise(uint32_t noise_seed, float* out, size_t n) {
  PCG32 g(noise_seed, kStreamEraseNoise);
  size_t i = 0;
  while (i < n) {
    const double u = 2.0 * g.uniform() - 1.0;
    const double v = 2.0 * g.uniform() - 1.0;
    const double s = u * u + v * v;
    if (!(s > 0.0 && s < 1.0)) continue;
    const double f = std::sqrt(-2.0 * detmath::log(s) / s);
    out[i++] = static_cast<float>(u * f);
    if (i < n) out[i++] = static_cast<float>(v * f);
  }
}

}  // namespace tinyvit
