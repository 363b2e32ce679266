// The record contract's content checks (store_contract.h).
#include "core/store/store_contract.h"

#include <algorithm>
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

DupFinder& thread_dups(uint32_t num_classes, size_t K) {
  thread_local std::unique_ptr<DupFinder> d;
  thread_local uint32_t d_classes = 0;
  thread_local size_t d_k = 0;
  if (!d || d_classes != num_classes || d_k != K) {
    d.reset(new DupFinder(num_classes, K));
    d_classes = num_classes;
    d_k = K;
  }
  return *d;
}

// Content half of the record contract (store_format.h): returns a Finding and the detail
// naming the field. idx/prob are the decoded record.
Finding check_content(const Layout& L, const int64_t* idx, const float* prob, DupFinder& dups,
                      std::string* detail) {
  const size_t K = L.topk;
  // Fast path, branch-free (vectorises): all in [0, 1] (NaN fails) and the sum bound.
  {
    bool out_of_range = false;
    double acc[4] = {0.0, 0.0, 0.0, 0.0};  // independent chains: no FP-add latency bound
    size_t k = 0;
    for (; k + 4 <= K; k += 4)
      for (int q = 0; q < 4; ++q) {
        const float p = prob[k + q];
        out_of_range |= !(p >= 0.0f && p <= 1.0f);
        acc[q] += p;
      }
    for (; k < K; ++k) {
      out_of_range |= !(prob[k] >= 0.0f && prob[k] <= 1.0f);
      acc[0] += prob[k];
    }
    const double total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    if (!out_of_range && total <= 1.0 + kDecodeSumTolerance) {
      const int64_t dup = dups.find(idx, K);
      if (dup < 0) return kFindOk;
      *detail = "topk_indices: class " + std::to_string(dup) + " repeated";
      return kFindDup;
    }
  }
  double sum = 0.0;  // slow path: name the first offending field
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
