// The content half of the record contract (docs/store.md): what write() refuses, checked again
// on every decoded record -- probabilities finite in [0, 1], their sum <= 1 + tolerance, class
// indices distinct -- so read(), missing(), audit/verify and inspect agree. Internal to
// csrc/core/store (store_format.cpp and the kernels it includes are the only users).
//
// Two layers. check_content() is THE definition (one precise pass, and it names the finding).
// The decode kernels (store_kernels.inc) run a cheaper filter fused into the decode; a record
// the filter passes provably passes check_content, and every other record is decided by
// check_content itself -- so the verdict never depends on the ISA or on the filter.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/store/store_format.h"

namespace tinyvit {
namespace store {
namespace contract {

// Duplicate-class detection.
//  - C <= 65536: one byte "stamp" per class value. Record r writes stamp r into the slot of each
//    of its classes; a slot already holding stamp r is a repeat. One load and one store per
//    index and no clearing pass (a bitmap needs a second store per index to clear); the
//    first C slots are zeroed once every 255 records.
//  - larger C (int32 indices): a C-bit bitmap up to 2^25 classes, cleared after each record;
//    beyond that the K indices are sorted.
constexpr uint32_t kStampMaxClasses = 1u << 16;
constexpr uint32_t kBitmapMaxClasses = 1u << 25;
class DupFinder {
 public:
  explicit DupFinder(uint32_t num_classes) { reset(num_classes); }
  // Re-targets the finder at another class count (allocates only when the mode changes).
  void reset(uint32_t num_classes);
  uint32_t num_classes() const { return classes_; }

  // Every value passed in must be < C (callers check the range first).
  // True when the K little-endian uint16 at p repeat a value (only for C <= 65536).
  bool repeats_u16(const uint8_t* p, size_t K) {
    return stamp_repeats(
        [p](size_t k) {
          uint16_t c;
          std::memcpy(&c, p + 2 * k, 2);
          return c;
        },
        K);
  }
  // Same for K little-endian uint32 values, each already known to be < C.
  bool repeats_u32(const uint8_t* p, size_t K);
  // A repeated class of ix[0..K) (values in [0, C)) or -1; used to name a finding.
  int64_t find(const int64_t* ix, size_t K);

 private:
  uint8_t next_stamp() {
    if (++stamp_ == 0) {  // wrapped: old stamps would read as this record's
      std::memset(stamps_.data(), 0, stamped_);
      stamped_ = classes_;
      stamp_ = 1;
    }
    return stamp_;
  }
  // The two repeat tests, over K values at(0..K-1), each < C. Stamps (C <= 65536): one load and
  // one store per value, branch-free (slots only ever hold stamps <= s). Bitmap (C <= 2^25):
  // the words touched are cleared afterwards.
  template <class At>
  bool stamp_repeats(At at, size_t K) {
    const uint8_t s = next_stamp();
    uint8_t* t = stamps_.data();
    size_t fresh = 0;
#pragma GCC unroll 8
    for (size_t k = 0; k < K; ++k) {
      const size_t c = at(k);
      fresh += t[c] < s;
      t[c] = s;
    }
    return fresh != K;
  }
  template <class At>
  bool bitmap_repeats(At at, size_t K) {
    uint64_t seen_twice = 0;  // branch-free in the common (no repeat) case
    for (size_t k = 0; k < K; ++k) {
      const uint64_t c = at(k);
      uint64_t& w = bits_[c >> 6];
      const uint64_t m = uint64_t{1} << (c & 63);
      seen_twice |= w & m;
      w |= m;
    }
    for (size_t k = 0; k < K; ++k) bits_[static_cast<uint64_t>(at(k)) >> 6] = 0;
    return seen_twice != 0;
  }
  template <class T>
  int64_t find_sorted(const T* ix, size_t K);
  uint32_t classes_ = 0;
  std::vector<uint8_t> stamps_;  // C <= 65536: 65536 slots
  uint8_t stamp_ = 0;
  size_t stamped_ = 0;           // slots [0, stamped_) may hold stamps (max C since zeroed)
  std::vector<uint64_t> bits_;   // 65536 < C <= 2^25
  std::vector<int64_t> sorted_;  // naming a repeat; C > 2^25
  std::vector<uint32_t> u32_;    // aligned copy of packed uint32 indices
};

// One duplicate finder per thread (the tables are allocated once).
DupFinder& thread_dups(uint32_t num_classes);

// Upper bound that the fused filter compares its float sum of K probabilities against: a float
// sum <= this bound implies check_content's double sum <= 1 + kDecodeSumTolerance (see the .cpp
// for the error bound). Records above it are left to check_content.
double filter_sum_limit(size_t K);

enum Finding { kFindOk = 0, kFindDup, kFindRange, kFindSum };
// Returns kFindOk or the first finding (range, then sum, then duplicates), with *detail naming
// the field. idx/prob: one decoded record (indices already known to be in [0, C)).
Finding check_content(const Layout& L, const int64_t* idx, const float* prob, DupFinder& dups,
                      std::string* detail);

}  // namespace contract
}  // namespace store
}  // namespace tinyvit
