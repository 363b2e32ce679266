// Per-sample seeds and Mixup/CutMix pairing: pure functions of (base_seed, epoch, index),
// so the teacher pass and any later student pass (any sampler, any world size) agree.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tinyvit {

// Augmentation seed of dataset sample `index` in `epoch`: output number `index` (0-based)
// of PCG32(initstate = base_seed << 32 | epoch, initseq = kStreamSeeds), reached by PCG's
// O(log index) jump-ahead. This 4-byte value is what the logit store records (paper's d0).
uint32_t sample_seed(uint32_t base_seed, uint32_t epoch, uint64_t index);

// The epoch's pairing permutation pi of [0, n): pi maps a position to a sample index, and
// positions (2k, 2k + 1) form a pair. It is a keyed 8-round Feistel network on the
// smallest even number of bits covering n, with cycle walking to stay inside [0, n);
// the round keys are drawn from PCG32(base_seed << 32 | epoch, kStreamPairing). O(1)
// per element (expected < 4 walks), no O(n) table.
uint64_t pair_perm(uint64_t position, uint64_t n, uint32_t base_seed, uint32_t epoch);
uint64_t pair_perm_inverse(uint64_t index, uint64_t n, uint32_t base_seed, uint32_t epoch);

// Partner of sample `index`: pi(pi^-1(index) xor 1); with odd n the sample at the last
// position has no pair and is its own partner. An involution: partner(partner(i)) == i.
uint64_t mix_partner(uint32_t epoch, uint64_t index, uint64_t n, uint32_t base_seed);

// Batched forms (the round keys are derived once per call). Throw std::out_of_range
// naming the first element outside [0, n).
void pair_perm_batch(const uint64_t* positions, uint64_t* out, size_t count, uint64_t n,
                     uint32_t base_seed, uint32_t epoch);
void mix_partner_batch(const uint64_t* indices, uint64_t* out, size_t count, uint64_t n,
                       uint32_t base_seed, uint32_t epoch);
void sample_seed_batch(const uint64_t* indices, uint32_t* out, size_t count, uint32_t base_seed,
                       uint32_t epoch);

// RandomErasing noise of one box: n standard normals from PCG32(noise_seed,
// kStreamEraseNoise) by the polar method, BOTH outputs of each accepted pair used (u*f
// then v*f), rounded to float. 'rand' mode takes C values (one per channel), 'pixel'
// mode C*h*w values in CHW order.
void erase_noise(uint32_t noise_seed, float* out, size_t n);

}  // namespace tinyvit
