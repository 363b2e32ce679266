// The content half of the record contract (docs/store.md): what write() refuses, checked again
// on every decoded record -- probabilities finite in [0, 1], their sum <= 1 + tolerance, class
// indices distinct -- so read(), missing(), audit/verify and inspect agree. Internal to
// csrc/core/store (store_format.cpp is the only user).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/store/store_format.h"

namespace tinyvit {
namespace store {
namespace contract {

// Duplicate-class detection. For C up to 2^25 a bitmap of C bits (L1-resident for C <= 2^18:
// 21841 classes are 2.7 KiB) costs K bit tests per record; only the words touched are cleared
// afterwards. Beyond that the bitmap would be too large per thread, so the K indices are
// sorted instead.
constexpr uint32_t kBitmapMaxClasses = 1u << 25;
class DupFinder {
 public:
  DupFinder(uint32_t num_classes, size_t K)
      : use_bits_(num_classes <= kBitmapMaxClasses),
        bits_(use_bits_ ? (static_cast<size_t>(num_classes) + 63) / 64 : 0, 0) {
    sorted_.reserve(K);
  }
  // Returns a repeated class of ix[0..K) or -1. Indices must already be in [0, C).
  int64_t find(const int64_t* ix, size_t K) {
    if (use_bits_) {
      // Branch-free: no mispredicted exits in the common (no duplicate) case.
      uint64_t seen_twice = 0;
      for (size_t k = 0; k < K; ++k) {
        const uint64_t c = static_cast<uint64_t>(ix[k]);
        uint64_t& w = bits_[c >> 6];
        const uint64_t m = uint64_t{1} << (c & 63);
        seen_twice |= w & m;
        w |= m;
      }
      for (size_t k = 0; k < K; ++k) bits_[static_cast<uint64_t>(ix[k]) >> 6] = 0;
      if (!seen_twice) return -1;
      return find_sorted(ix, K);  // rare: name the repeated class
    }
    return find_sorted(ix, K);
  }

 private:
  int64_t find_sorted(const int64_t* ix, size_t K) {
    sorted_.assign(ix, ix + K);
    std::sort(sorted_.begin(), sorted_.end());
    for (size_t k = 1; k < K; ++k)
      if (sorted_[k] == sorted_[k - 1]) return sorted_[k];
    return -1;
  }
  bool use_bits_;
  std::vector<uint64_t> bits_;
  std::vector<int64_t> sorted_;
};


// One duplicate finder per thread and class count (the C-bit bitmap is allocated once).
DupFinder& thread_dups(uint32_t num_classes, size_t K);

enum Finding { kFindOk = 0, kFindDup, kFindRange, kFindSum };
// Returns kFindOk or the finding, with *detail naming the field. idx/prob: one decoded record.
Finding check_content(const Layout& L, const int64_t* idx, const float* prob, DupFinder& dups,
                      std::string* detail);

}  // namespace contract
}  // namespace store
}  // namespace tinyvit
