// The record contract's content checks (store_contract.h).
#include "core/store/store_contract.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tinyvit {
namespace store {
namespace contract {
namespace {
std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

}  // namespace

void DupFinder::reset(uint32_t num_classes) {
  classes_ = num_classes;
  if (num_classes <= kStampMaxClasses) {
    if (stamps_.empty()) stamps_.assign(kStampMaxClasses, 0);
    stamped_ = std::max<size_t>(stamped_, num_classes);
  } else if (num_classes <= kBitmapMaxClasses) {
    bits_.assign((static_cast<size_t>(num_classes) + 63) / 64, 0);
  }
}

template <class T>
int64_t DupFinder::find_sorted(const T* ix, size_t K) {
  sorted_.assign(ix, ix + K);
  std::sort(sorted_.begin(), sorted_.end());
  for (size_t k = 1; k < K; ++k)
    if (sorted_[k] == sorted_[k - 1]) return sorted_[k];
  return -1;
}

bool DupFinder::repeats_u32(const uint8_t* p, size_t K) {
  std::vector<uint32_t>& v = u32_;
  v.resize(K);
  std::memcpy(v.data(), p, 4 * K);
  const uint32_t* d = v.data();
  auto at = [d](size_t k) { return d[k]; };
  if (classes_ <= kStampMaxClasses) return stamp_repeats(at, K);
  if (classes_ <= kBitmapMaxClasses) return bitmap_repeats(at, K);
  return find_sorted(d, K) >= 0;
}

int64_t DupFinder::find(const int64_t* ix, size_t K) {
  auto at = [ix](size_t k) { return static_cast<uint64_t>(ix[k]); };
  bool repeats = true;  // C > 2^25: no table; the sort decides
  if (classes_ <= kStampMaxClasses) {
    repeats = stamp_repeats(at, K);
  } else if (classes_ <= kBitmapMaxClasses) {
    repeats = bitmap_repeats(at, K);
  }
  return repeats ? find_sorted(ix, K) : -1;  // the sort names the smallest repeated class
}

DupFinder& thread_dups(uint32_t num_classes) {
  thread_local std::unique_ptr<DupFinder> d;
  if (!d) d.reset(new DupFinder(num_classes));
  if (d->num_classes() != num_classes) d->reset(num_classes);
  return *d;
}

// The filter adds the K floats in 8 lanes and then reduces the lanes (3 levels), so no term
// goes through more than h = ceil(K / 8) + 3 float additions (+1 spare for a kernel that keeps
// two accumulators); records of fewer than 32 values may be added sequentially (h <= K + 3).
// For non-negative terms (the filter only consults its sum when every value passed the range
// check) the float sum S_f then satisfies |S_f - S| <= g S with g = h u / (1 - h u),
// u = 2^-24 (Higham, Accuracy and Stability of Numerical Algorithms, Sec. 4.2), and
// check_content's sequential double sum S_d <= S (1 + 2^-36) for K <= 65535. Hence
// S_f <= T (1 - g) (1 - 2^-34) implies S_d <= T (the spare 2^-34 also covers the rounding of
// this product). Only records within ~h * 6e-8 (relative) of the tolerance miss the filter.
double filter_sum_limit(size_t K) {
  const double h = static_cast<double>(K < 32 ? K + 3 : (K + 7) / 8 + 4);
  const double hu = h * std::ldexp(1.0, -24);
  const double g = hu / (1.0 - hu);
  return (1.0 + kDecodeSumTolerance) * (1.0 - g) * (1.0 - std::ldexp(1.0, -34));
}

// THE content contract (store_contract.h): returns the first finding and the detail naming
// the field. idx/prob are the decoded record.
Finding check_content(const Layout& L, const int64_t* idx, const float* prob, DupFinder& dups,
                      std::string* detail) {
  const size_t K = L.topk;
  double sum = 0.0;
  for (size_t k = 0; k < K; ++k) {
    const float p = prob[k];
    if (!(p >= 0.0f && p <= 1.0f)) {
      *detail = "topk_probs[" + std::to_string(k) + "] = " + num(p) + " not in [0, 1]";
      return kFindRange;
    }
    sum += p;
  }
  if (!(sum <= 1.0 + kDecodeSumTolerance)) {
    *detail = "topk_probs sum " + num(sum) + " > 1 + " + num(kDecodeSumTolerance);
    return kFindSum;
  }
  const int64_t dup = dups.find(idx, K);
  if (dup >= 0) {
    *detail = "topk_indices: class " + std::to_string(dup) + " repeated";
    return kFindDup;
  }
  return kFindOk;
}

}  // namespace contract
}  // namespace store
}  // namespace tinyvit
