// Logit-store record format: layout, checksums, encoders/decoders (see store_format.h).
#include "core/store/store_format.h"
#include "core/store/store_contract.h"
#include "core/util/cpu_dispatch.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <limits>
#include <memory>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TV_HAVE_X86_FAST 1
#include <immintrin.h>
#else
#define TV_HAVE_X86_FAST 0
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the logit-store format is little-endian; big-endian hosts are not supported"
#endif

namespace tinyvit {
namespace store {

namespace {

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t load_partial_u64(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  std::memcpy(&v, p, n);
  return v;
}
inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void store_f32(uint8_t* p, float v) { std::memcpy(p, &v, 4); }

// Slicing-by-8 tables for the portable CRC32C (reflected polynomial 0x82F63B78).
struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[0][i] = c;
    }
    for (int s = 1; s < 8; ++s)
      for (uint32_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};
const CrcTables& crc_tables() {
  static const CrcTables tables;
  return tables;
}

// T[l] = 2^(-l/12): 2^(-q) * 2^(-m/12) with l = 12q + m. The 12 constants are written out so
// the table is bit-identical on every platform (no libm pow/exp2 involved).
struct CompactTable {
  float v[kCompactLevels];
  float lower_edge;  // smallest p that gets a nonzero level: T[254] * 2^(-1/24)
  CompactTable() {
    static const double frac[12] = {
        1.0,
        0.94387431268169349664,  // 2^(-1/12)
        0.89089871814033930474,  // 2^(-2/12)
        0.84089641525371454303,  // 2^(-3/12)
        0.79370052598409973738,  // 2^(-4/12)
        0.74915353843834074940,  // 2^(-5/12)
        0.70710678118654752440,  // 2^(-6/12)
        0.66741992708501718242,  // 2^(-7/12)
        0.62996052494743658238,  // 2^(-8/12)
        0.59460355750136053336,  // 2^(-9/12)
        0.56123102415468649071,  // 2^(-10/12)
        0.52973154717964763228,  // 2^(-11/12)
    };
    for (int l = 0; l < kCompactLevels - 1; ++l)
      v[l] = static_cast<float>(std::ldexp(frac[l % 12], -(l / 12)));
    v[kCompactLevels - 1] = 0.0f;
    lower_edge = static_cast<float>(std::ldexp(frac[254 % 12], -(254 / 12)) *
                                    0.97153194115360586874);  // * 2^(-1/24)
  }
};
const CompactTable& compact_table() {
  static const CompactTable table;
  return table;
}

// For the vectorised compact decoder: for each byte value, (position - rank) of its set bits,
// padded to 8 lanes, and their count.
struct BitPosTable {
  alignas(32) int32_t pos[256][8];
  uint8_t count[256];
  BitPosTable() {
    for (int b = 0; b < 256; ++b) {
      int n = 0;
      for (int i = 0; i < 8; ++i) pos[b][i] = 0;
      for (int i = 0; i < 8; ++i)
        if (b & (1 << i)) {
          pos[b][n] = i - n;  // position minus rank within the byte
          ++n;
        }
      count[b] = static_cast<uint8_t>(n);
    }
  }
};
const BitPosTable& bit_pos_table() {
  static const BitPosTable table;
  return table;
}

// Per-call state of the fused decode kernels, fetched once per batch (one TLS lookup) rather
// than per record.
struct DecodeScratch {
  contract::DupFinder* dups;
  int32_t* levels;   // K + 8 ints: compact levels (the AVX2 decoder stores 8 lanes at a time)
  int64_t* idx;      // K: indices of a scanned record the filter hands to check_content
  float* prob;       // K: probabilities of a scanned record
  double sum_limit;  // contract::filter_sum_limit(K)
};
DecodeScratch& decode_scratch(const Layout& L) {
  thread_local DecodeScratch ds;
  thread_local std::vector<int32_t> levels;
  thread_local std::vector<int64_t> idx;
  thread_local std::vector<float> prob;
  thread_local size_t k_for = 0;
  const size_t K = L.topk;
  if (levels.size() < K + 8) {
    levels.resize(K + 8);
    idx.resize(K);
    prob.resize(K);
  }
  if (k_for != K) {
    ds.sum_limit = contract::filter_sum_limit(K);
    k_for = K;
  }
  ds.dups = &contract::thread_dups(L.num_classes);
  ds.levels = levels.data();
  ds.idx = idx.data();
  ds.prob = prob.data();
  return ds;
}

// decode_checked's verdict for a record the content filter did not pass (not an ErrorKind).
constexpr int kNeedsContract = -1;

}  // namespace

// ---- fp16 (portable; RNE like F16C) --------------------------------------------------
uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  uint32_t o;
  if (x >= 0x47800000u) {  // >= 65536 (incl. inf/nan): inf, or a quiet nan
    o = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (x < 0x38800000u) {  // below 2^-14: fp16 subnormal or zero; FP add rounds (RNE)
    const uint32_t magic_bits = 0x3f000000u;  // 0.5f: aligns the fp16 subnormal ulp 2^-24 to bit 0
    float magic, v;
    std::memcpy(&magic, &magic_bits, 4);
    std::memcpy(&v, &x, 4);
    v += magic;
    uint32_t vb;
    std::memcpy(&vb, &v, 4);
    o = vb - magic_bits;
  } else {
    const uint32_t odd = (x >> 13) & 1u;
    x += 0xC8000000u + 0xfffu + odd;  // rebias exponent (-112 << 23) and round to nearest even
    o = x >> 13;                      // may carry into inf for values >= 65520: correct RNE
  }
  return static_cast<uint16_t>(o | sign);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-08f;  // m * 2^-24, exact
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (e == 31) {
    bits = sign | 0x7f800000u | (m << 13);
  } else {
    bits = sign | ((e + 112) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float compact_level_value(int level) {
  if (level < 0 || level >= kCompactLevels) return 0.0f;
  return compact_table().v[level];
}

// ---- the two kernel builds ---------------------------------------------------------
#define TV_NS portable
#define TV_FAST 0
#include "core/store/store_kernels.inc"
#undef TV_NS
#undef TV_FAST

#if TV_HAVE_X86_FAST
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("sse4.2,avx2,f16c,bmi,bmi2,popcnt"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("sse4.2,avx2,f16c,bmi,bmi2,popcnt")
#endif
#define TV_NS fast
#define TV_FAST 1
#include "core/store/store_kernels.inc"
#undef TV_NS
#undef TV_FAST
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace {

struct Kernels {
  const char* name;
  BatchStatus (*decode_records)(const Layout&, const uint8_t*, uint32_t, const int64_t*, size_t,
                                int64_t*, int64_t*, float*, DecodeScratch&);
  size_t (*scan_records)(const Layout&, const uint8_t*, uint32_t, uint64_t, uint64_t, int64_t*,
                         DecodeScratch&);
  uint32_t (*record_check)(const Layout&, uint32_t, uint64_t, const uint8_t*);
  uint32_t (*crc32c_raw)(uint32_t, const uint8_t*, size_t);
  void (*encode_values_fp16)(const float*, uint8_t*, size_t);
  int (*decode_one)(const Layout&, const uint8_t*, DecodeScratch&, int64_t*, int64_t*, float*,
                    const char**);
};

const Kernels kPortable = {"portable",           portable::decode_records,
                           portable::scan_records, portable::record_check,
                           portable::crc32c_raw,   portable::encode_values_fp16,
                           portable::decode_one};
#if TV_HAVE_X86_FAST
const Kernels kFast = {"sse4.2+avx2+f16c", fast::decode_records,     fast::scan_records,
                       fast::record_check, fast::crc32c_raw,         fast::encode_values_fp16,
                       fast::decode_one};
bool cpu_has_fast() {
  const CpuFeatures& f = cpu_features();  // the one dispatch idiom (core/util/cpu_dispatch.h)
  return f.sse42 && f.avx2 && f.f16c && f.bmi && f.bmi2 && f.popcnt;
}
#endif

const Kernels* best_kernels() {
#if TV_HAVE_X86_FAST
  static const bool fast_ok = cpu_has_fast();
  if (fast_ok) return &kFast;
#endif
  return &kPortable;
}

std::atomic<const Kernels*>& active() {
  static std::atomic<const Kernels*> k{best_kernels()};
  return k;
}
inline const Kernels& K() { return *active().load(std::memory_order_relaxed); }

}  // namespace

const char* active_isa() { return K().name; }

bool set_isa(const std::string& name) {
  if (name == "auto") {
    active().store(best_kernels());
    return true;
  }
  if (name == "portable") {
    active().store(&kPortable);
    return true;
  }
#if TV_HAVE_X86_FAST
  if (name == kFast.name && best_kernels() == &kFast) {
    active().store(&kFast);
    return true;
  }
#endif
  return false;
}

// ---- layout ----------------------------------------------------------------------------
size_t record_size(ValueEncoding encoding, uint32_t topk, uint32_t num_classes) {
  const size_t w = num_classes <= kMaxU16Classes ? 2 : 4;
  if (encoding == ValueEncoding::kFp16) return 4 + size_t(topk) * (w + 2) + 4;
  return 8 + size_t(topk) * w + (size_t(topk) + kCompactLevels - 1 + 7) / 8 + 4;
}

Layout make_layout(ValueEncoding encoding, uint32_t topk, uint32_t num_classes, uint64_t store_id) {
  if (encoding != ValueEncoding::kFp16 && encoding != ValueEncoding::kCompact)
    throw std::invalid_argument("value_encoding must be fp16 or compact");
  if (num_classes < 1 || num_classes > kMaxClasses)
    throw std::invalid_argument(std::string("num_classes must be in [1, ") + kMaxClassesText +
                                "], got " + std::to_string(num_classes));
  if (topk < 1 || topk > num_classes || topk > kMaxTopk)
    throw std::invalid_argument(std::string("topk must be in [1, min(num_classes, ") +
                                kMaxTopkText + ")], got " + std::to_string(topk));
  Layout L;
  L.encoding = encoding;
  L.topk = topk;
  L.num_classes = num_classes;
  L.store_id = store_id;
  L.index_type = num_classes <= kMaxU16Classes ? IndexType::kU16 : IndexType::kI32;
  const size_t w = static_cast<size_t>(L.index_type);
  L.off_seed = 0;
  if (encoding == ValueEncoding::kFp16) {
    L.off_indices = 4;
    L.off_values = L.off_indices + topk * w;
    L.values_bytes = size_t(topk) * 2;
  } else {
    L.off_scale = 4;
    L.off_indices = 8;
    L.off_values = L.off_indices + topk * w;
    L.values_bytes = (size_t(topk) + kCompactLevels - 1 + 7) / 8;
  }
  L.off_check = L.off_values + L.values_bytes;
  L.record_size = L.off_check + 4;
  // Prefix: "TVLS", version, encoding, index width, 0, K, C, store_id (24 bytes).
  uint8_t prefix[24] = {'T', 'V', 'L', 'S'};
  prefix[4] = static_cast<uint8_t>(kFormatVersion);
  prefix[5] = static_cast<uint8_t>(encoding);
  prefix[6] = static_cast<uint8_t>(w);
  store_u32(prefix + 8, topk);
  store_u32(prefix + 12, num_classes);
  std::memcpy(prefix + 16, &store_id, 8);
  L.crc_base = K().crc32c_raw(0xFFFFFFFFu, prefix, sizeof prefix);
  return L;
}

uint32_t crc32c(uint32_t crc, const void* data, size_t n) {
  return K().crc32c_raw(crc, static_cast<const uint8_t*>(data), n);
}

uint32_t record_check(const Layout& L, uint32_t epoch, uint64_t sample, const uint8_t* rec) {
  return K().record_check(L, epoch, sample, rec);
}

RecordState record_state(const Layout& L, uint32_t epoch, uint64_t sample, const uint8_t* rec) {
  if (record_check(L, epoch, sample, rec) == load_u32(rec + L.off_check)) return RecordState::kOk;
  for (size_t i = 0; i < L.record_size; ++i)
    if (rec[i]) return RecordState::kBadCheck;
  return RecordState::kMissing;
}

namespace {
BatchStatus fail(ErrorKind kind, size_t position, std::string detail) {
  BatchStatus st;
  st.kind = static_cast<int>(kind);
  st.position = static_cast<int64_t>(position);
  st.detail = std::move(detail);
  return st;
}

}  // namespace

using contract::check_content;
using contract::DupFinder;
using contract::kFindDup;
using contract::kFindOk;
using contract::kFindRange;
using contract::kFindSum;

// The kernels verify, decode and check each record in one pass; a record the fused content
// filter does not pass is decided (and named) by check_content inside the kernel.
BatchStatus decode_records(const Layout& L, const uint8_t* recs, uint32_t epoch,
                           const int64_t* samples, size_t B, int64_t* seeds, int64_t* indices,
                           float* probs) {
  return K().decode_records(L, recs, epoch, samples, B, seeds, indices, probs,
                            decode_scratch(L));
}

size_t scan_records(const Layout& L, const uint8_t* recs, uint32_t epoch, uint64_t first,
                    uint64_t count, int64_t* out) {
  return K().scan_records(L, recs, epoch, first, count, out, decode_scratch(L));
}

// ---- encode ----------------------------------------------------------------------------
BatchStatus encode_batch(const Layout& L, uint32_t epoch, const int64_t* samples, size_t B,
                         const int64_t* seeds, const int64_t* indices, const float* probs,
                         uint8_t* out) {
  const size_t K = L.topk, R = L.record_size, w = static_cast<size_t>(L.index_type);
  const Kernels& kern = ::tinyvit::store::K();
  DupFinder& dups = contract::thread_dups(L.num_classes);
  std::vector<std::pair<float, int64_t>> pairs(K);
  std::vector<float> sorted_p(K);
  std::vector<int> levels(K);
  const CompactTable& table = compact_table();
  for (size_t b = 0; b < B; ++b) {
    const int64_t seed = seeds[b];
    if (seed < 0 || seed > int64_t{0xffffffff})
      return fail(ErrorKind::kInvalidRecord, b,
                  "seed " + std::to_string(seed) + " outside [0, 2^32)");
    const int64_t* ix = indices + b * K;
    const float* pr = probs + b * K;
    double sum = 0.0;
    bool sorted = true;
    for (size_t k = 0; k < K; ++k) {
      const int64_t c = ix[k];
      if (c < 0 || c >= static_cast<int64_t>(L.num_classes))
        return fail(ErrorKind::kShapeMismatch, b,
                    "topk_indices value " + std::to_string(c) + " outside [0, num_classes=" +
                        std::to_string(L.num_classes) + ") (C mismatch)");
      const float p = pr[k];
      if (!(p >= 0.0f && p <= 1.0f))
        return fail(ErrorKind::kInvalidRecord, b,
                    "topk_probs value " + std::to_string(p) + " outside [0, 1]");
      sum += p;
      if (k && p > pr[k - 1]) sorted = false;
    }
    const int64_t dup = dups.find(ix, K);
    if (dup >= 0)
      return fail(ErrorKind::kInvalidRecord, b,
                  "topk_indices value " + std::to_string(dup) + " repeated");
    if (sum > 1.0 + kSumTolerance)
      return fail(ErrorKind::kInvalidRecord, b,
                  "topk_probs sum " + std::to_string(sum) + " > 1 + " +
                      std::to_string(kSumTolerance));
    uint8_t* rec = out + b * R;
    std::memset(rec, 0, R);
    store_u32(rec, static_cast<uint32_t>(seed));
    const int64_t* ix_out = ix;
    const float* pr_out = pr;
    std::vector<int64_t> sorted_ix;
    if (L.encoding == ValueEncoding::kCompact && !sorted) {
      // Level bitmap needs descending probabilities: reorder (prob, index) pairs.
      for (size_t k = 0; k < K; ++k) pairs[k] = {pr[k], ix[k]};
      std::stable_sort(pairs.begin(), pairs.end(),
                       [](const std::pair<float, int64_t>& a,
                          const std::pair<float, int64_t>& c) { return a.first > c.first; });
      sorted_ix.resize(K);
      for (size_t k = 0; k < K; ++k) {
        sorted_p[k] = pairs[k].first;
        sorted_ix[k] = pairs[k].second;
      }
      ix_out = sorted_ix.data();
      pr_out = sorted_p.data();
    }
    uint8_t* ip = rec + L.off_indices;
    for (size_t k = 0; k < K; ++k) {
      if (w == 2)
        store_u16(ip + 2 * k, static_cast<uint16_t>(ix_out[k]));
      else
        store_u32(ip + 4 * k, static_cast<uint32_t>(ix_out[k]));
    }
    if (L.encoding == ValueEncoding::kFp16) {
      kern.encode_values_fp16(pr_out, rec + L.off_values, K);
    } else {
      double sum_p = 0.0, sum_t = 0.0;
      for (size_t k = 0; k < K; ++k) {
        const float p = pr_out[k];
        int level = kCompactLevels - 1;
        if (p >= table.lower_edge) {
          const double x = -static_cast<double>(kCompactStepsPerOctave) * std::log2(double(p));
          level = static_cast<int>(std::lround(x));
          level = std::min(std::max(level, 0), kCompactLevels - 2);
          sum_p += p;
          sum_t += table.v[level];
        }
        // Monotone by construction (p non-increasing); the max() guards float ties of log2.
        if (k && level < levels[k - 1]) level = levels[k - 1];
        levels[k] = level;
      }
      const float scale = sum_t > 0.0 ? static_cast<float>(sum_p / sum_t) : 1.0f;
      store_f32(rec + L.off_scale, scale);
      uint8_t* bm = rec + L.off_values;
      for (size_t k = 0; k < K; ++k) {
        const size_t pos = static_cast<size_t>(levels[k]) + k;
        bm[pos >> 3] |= static_cast<uint8_t>(1u << (pos & 7));
      }
    }
    store_u32(rec + L.off_check,
              kern.record_check(L, epoch, static_cast<uint64_t>(samples[b]), rec));
  }
  return BatchStatus{};
}

// ---- audit -------------------------------------------------------------------------------
// The scan kernel finds the records that are not VALID; only those are classified (each under
// its first finding), so a clean range costs what missing() costs.
void audit_records(const Layout& L, const uint8_t* recs, uint32_t epoch, uint64_t first,
                   uint64_t count, AuditCounts* counts) {
  const Kernels& kern = K();
  const size_t K = L.topk, R = L.record_size;
  thread_local std::vector<int64_t> bad;
  if (bad.size() < count) bad.resize(static_cast<size_t>(count));
  DecodeScratch& ds = decode_scratch(L);
  const size_t n_bad = kern.scan_records(L, recs, epoch, first, count, bad.data(), ds);
  counts->ok += count - n_bad;
  std::vector<int64_t> idx(K);
  std::vector<float> prob(K);
  std::string detail;
  for (size_t j = 0; j < n_bad; ++j) {
    const uint64_t i = static_cast<uint64_t>(bad[j]);
    const uint64_t s = first + i;
    const uint8_t* rec = recs + i * R;
    auto note = [&](const std::string& what) {
      if (counts->first_bad_sample < 0) {
        counts->first_bad_sample = static_cast<int64_t>(s);
        counts->first_bad_detail = what;
      }
    };
    const RecordState state = record_state(L, epoch, s, rec);
    if (state == RecordState::kMissing) {
      ++counts->missing;
      note("record missing (never written)");
      continue;
    }
    if (state == RecordState::kBadCheck) {
      ++counts->bad_check;
      note("checksum mismatch");
      continue;
    }
    int64_t seed;
    const char* d = nullptr;
    const int kind = kern.decode_one(L, rec, ds, &seed, idx.data(), prob.data(), &d);
    if (kind > 0) {
      if (d && std::strstr(d, "class index")) {
        ++counts->bad_index;
      } else {
        ++counts->bad_encoding;
      }
      note(d ? d : "corrupt record");
      continue;
    }
    switch (check_content(L, idx.data(), prob.data(), *ds.dups, &detail)) {
      case kFindOk:  // not reached: the scan and check_content agree
        ++counts->ok;
        continue;
      case kFindDup:
        ++counts->duplicate_index;
        break;
      case kFindRange:
        ++counts->prob_range;
        break;
      case kFindSum:
        ++counts->prob_sum;
        break;
    }
    note(detail);
  }
}

}  // namespace store
}  // namespace tinyvit
