// Unit tests of the logit-store core: checksum, codecs, layouts, epoch file I/O.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "check.h"
#include "core/rng/pcg32.h"
#include "core/store/store_format.h"
#include "core/store/store_io.h"

using namespace tinyvit;
using namespace tinyvit::store;

namespace {

// Bitwise reference CRC32C (no tables, no instructions): the definition itself.
uint32_t crc_reference(uint32_t c, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return c;
}

// Copies records samples[b] of an epoch image into a private buffer, then decodes that copy
// (what EpochFile::read does with its mapping).
BatchStatus gather_decode(const Layout& L, const std::vector<uint8_t>& image, uint32_t epoch,
                          const int64_t* samples, size_t B, int64_t* seeds, int64_t* indices,
                          float* probs) {
  const size_t R = L.record_size;
  std::vector<uint8_t> buf(B * R);
  for (size_t b = 0; b < B; ++b)
    std::memcpy(buf.data() + b * R, image.data() + static_cast<size_t>(samples[b]) * R, R);
  return decode_records(L, buf.data(), epoch, samples, B, seeds, indices, probs);
}

// Descending top-K of a random peaked distribution over C classes.
void make_record(PCG32& g, uint32_t C, uint32_t K, std::vector<int64_t>* idx,
                 std::vector<float>* prob) {
  std::vector<double> logit(C);
  double mx = -1e30;
  for (uint32_t c = 0; c < C; ++c) {
    logit[c] = 3.0 * g.normal();
    mx = std::max(mx, logit[c]);
  }
  double z = 0;
  for (auto& l : logit) z += (l = std::exp(l - mx));
  std::vector<uint32_t> order(C);
  for (uint32_t c = 0; c < C; ++c) order[c] = c;
  std::partial_sort(order.begin(), order.begin() + K, order.end(),
                    [&](uint32_t a, uint32_t b) { return logit[a] > logit[b]; });
  idx->resize(K);
  prob->resize(K);
  for (uint32_t k = 0; k < K; ++k) {
    (*idx)[k] = order[k];
    (*prob)[k] = static_cast<float>(logit[order[k]] / z);
  }
}

void test_crc() {
  const char* s = "123456789";
  for (const char* isa : {"portable", "auto"}) {
    CHECK(set_isa(isa));
    CHECK(~crc32c(0xFFFFFFFFu, s, 9) == 0xE3069283u);  // the standard CRC32C check value
    PCG32 g(1, 2);
    for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 401, 1000}) {
      std::vector<uint8_t> buf(n);
      for (auto& b : buf) b = static_cast<uint8_t>(g.next_u32());
      CHECK(crc32c(0x12345678u, buf.data(), n) == crc_reference(0x12345678u, buf.data(), n));
    }
  }
  set_isa("auto");
}

void test_half() {
  // Portable conversions must agree with IEEE binary16 RNE: exhaustive over halves, and
  // float->half->float within half an ulp for a sweep.
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    CHECK(float_to_half(f) == h);
  }
  CHECK(float_to_half(1e-8f) == 0);
  CHECK(float_to_half(3.0e-8f) == 1);                   // rounds up to the smallest subnormal
  CHECK(float_to_half(65520.0f) == 0x7c00);             // RNE overflow to inf
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(half_to_float(float_to_half(0.1f)) == 0.0999755859375f);
}

void test_layout() {
  CHECK(record_size(ValueEncoding::kFp16, 100, 21841) == 408);
  CHECK(record_size(ValueEncoding::kFp16, 100, 70000) == 608);
  CHECK(record_size(ValueEncoding::kCompact, 100, 21841) == 257);
  CHECK(record_size(ValueEncoding::kCompact, 100, 65535) <= 4 + 3 * 100);
  const Layout L = make_layout(ValueEncoding::kCompact, 100, 21841, 7);
  CHECK(L.record_size == 257 && L.off_check == 253 && L.index_type == IndexType::kU16);
  bool threw = false;
  try {
    make_layout(ValueEncoding::kFp16, 0, 10, 0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  // Compact table: T[0] = 1, one octave per 12 levels, T[255] = 0.
  CHECK(compact_level_value(0) == 1.0f);
  CHECK(compact_level_value(12) == 0.5f);
  CHECK(compact_level_value(255) == 0.0f);
  for (int l = 1; l < 255; ++l)
    CHECK_NEAR(compact_level_value(l), std::exp2(-l / 12.0), 1e-7 * std::exp2(-l / 12.0));
}

void test_roundtrip(ValueEncoding enc, uint32_t C, const char* isa) {
  CHECK(set_isa(isa));
  const uint32_t K = 100, B = 37;
  const Layout L = make_layout(enc, K, C, 0xabcdef0123456789ull);
  PCG32 g(C, static_cast<uint64_t>(enc));
  std::vector<int64_t> samples(B), seeds(B), idx(B * K);
  std::vector<float> prob(B * K);
  for (uint32_t b = 0; b < B; ++b) {
    samples[b] = (b * 7) % B;  // a permutation: random-order gather
    seeds[b] = g.next_u32();
    std::vector<int64_t> i;
    std::vector<float> p;
    make_record(g, C, K, &i, &p);
    std::copy(i.begin(), i.end(), idx.begin() + b * K);
    std::copy(p.begin(), p.end(), prob.begin() + b * K);
  }
  // Encode record b at slot samples[b] of an epoch image.
  std::vector<uint8_t> enc_buf(B * L.record_size), image(B * L.record_size, 0);
  CHECK(encode_batch(L, 3, samples.data(), B, seeds.data(), idx.data(), prob.data(),
                     enc_buf.data())
            .ok());
  for (uint32_t b = 0; b < B; ++b)
    std::memcpy(image.data() + samples[b] * L.record_size, enc_buf.data() + b * L.record_size,
                L.record_size);
  std::vector<int64_t> s2(B), i2(B * K);
  std::vector<float> p2(B * K);
  const BatchStatus st =
      gather_decode(L, image, 3, samples.data(), B, s2.data(), i2.data(), p2.data());
  CHECK(st.ok());
  double worst = 0;
  for (uint32_t b = 0; b < B; ++b) {
    CHECK(s2[b] == seeds[b]);
    double sum_in = 0, sum_out = 0;
    for (uint32_t k = 0; k < K; ++k) {
      CHECK(i2[b * K + k] == idx[b * K + k]);  // inputs are sorted: order kept
      const double p = prob[b * K + k], q = p2[b * K + k];
      sum_in += p;
      sum_out += q;
      if (enc == ValueEncoding::kFp16) {
        CHECK(q == half_to_float(float_to_half(static_cast<float>(p))));
      } else if (p >= 4.2e-7) {
        worst = std::max(worst, std::fabs(q / p - 1));
      } else {
        CHECK(q < 4.2e-7);
      }
    }
    if (enc == ValueEncoding::kCompact) CHECK(sum_out <= sum_in * (1 + 1e-6));
  }
  if (enc == ValueEncoding::kCompact) CHECK(worst <= std::exp2(1.0 / 12) - 1 + 1e-6);
  // Wrong epoch / wrong slot / one flipped bit / all zero: never verifies.
  CHECK(gather_decode(L, image, 4, samples.data(), 1, s2.data(), i2.data(), p2.data()).kind ==
        static_cast<int>(ErrorKind::kChecksum));
  std::vector<uint8_t> moved(image);
  std::memcpy(moved.data(), image.data() + L.record_size, L.record_size);
  int64_t zero = 0;
  CHECK(gather_decode(L, moved, 3, &zero, 1, s2.data(), i2.data(), p2.data()).kind ==
        static_cast<int>(ErrorKind::kChecksum));
  for (size_t bit = 0; bit < L.record_size * 8; bit += 13) {
    std::vector<uint8_t> flip(image);
    flip[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    CHECK(record_state(L, 3, 0, flip.data()) == RecordState::kBadCheck);
  }
  std::vector<uint8_t> zeros(L.record_size * 5, 0);
  for (int64_t s = 0; s < 5; ++s) {
    CHECK(record_state(L, 3, static_cast<uint64_t>(s), zeros.data() + s * L.record_size) ==
          RecordState::kMissing);
    CHECK(gather_decode(L, zeros, 3, &s, 1, s2.data(), i2.data(), p2.data()).kind ==
          static_cast<int>(ErrorKind::kRecordMissing));
  }
  // Missing scan finds exactly the holes.
  std::vector<int64_t> miss(B);
  std::memset(image.data() + 5 * L.record_size, 0, L.record_size);
  image[9 * L.record_size + 3] ^= 1;  // torn
  const size_t nm = scan_records(L, image.data(), 3, 0, B, miss.data());
  CHECK(nm == 2 && miss[0] == 5 && miss[1] == 9);
  set_isa("auto");
}

void test_encode_rejects() {
  const Layout L = make_layout(ValueEncoding::kFp16, 2, 10, 1);
  std::vector<uint8_t> out(L.record_size);
  int64_t s = 0, seed = 1;
  int64_t idx_dup[2] = {3, 3}, idx_big[2] = {3, 10}, idx_ok[2] = {3, 4};
  float p_ok[2] = {0.5f, 0.25f}, p_neg[2] = {0.5f, -0.1f}, p_sum[2] = {0.9f, 0.2f},
        p_nan[2] = {NAN, 0.1f};
  CHECK(encode_batch(L, 0, &s, 1, &seed, idx_ok, p_ok, out.data()).ok());
  CHECK(encode_batch(L, 0, &s, 1, &seed, idx_dup, p_ok, out.data()).kind ==
        static_cast<int>(ErrorKind::kInvalidRecord));
  CHECK(encode_batch(L, 0, &s, 1, &seed, idx_big, p_ok, out.data()).kind ==
        static_cast<int>(ErrorKind::kShapeMismatch));
  CHECK(encode_batch(L, 0, &s, 1, &seed, idx_ok, p_neg, out.data()).kind ==
        static_cast<int>(ErrorKind::kInvalidRecord));
  CHECK(encode_batch(L, 0, &s, 1, &seed, idx_ok, p_sum, out.data()).kind ==
        static_cast<int>(ErrorKind::kInvalidRecord));
  CHECK(encode_batch(L, 0, &s, 1, &seed, idx_ok, p_nan, out.data()).kind ==
        static_cast<int>(ErrorKind::kInvalidRecord));
  // Huge C (> 2^25) takes the sort-based duplicate check (no C-bit bitmap).
  const Layout H = make_layout(ValueEncoding::kFp16, 2, 40000000, 1);
  std::vector<uint8_t> hout(H.record_size);
  int64_t hdup[2] = {39999999, 39999999}, hok[2] = {39999999, 7};
  CHECK(encode_batch(H, 0, &s, 1, &seed, hdup, p_ok, hout.data()).kind ==
        static_cast<int>(ErrorKind::kInvalidRecord));
  CHECK(encode_batch(H, 0, &s, 1, &seed, hok, p_ok, hout.data()).ok());
  AuditCounts hc;
  audit_records(H, hout.data(), 0, 0, 1, &hc);
  CHECK(hc.ok == 1 && hc.duplicate_index == 0);
  int64_t bad_seed = int64_t{1} << 32;
  CHECK(encode_batch(L, 0, &s, 1, &bad_seed, idx_ok, p_ok, out.data()).kind ==
        static_cast<int>(ErrorKind::kInvalidRecord));
}

void test_epoch_file() {
  char dir[] = "/tmp/tinyvit_store_test_XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/epoch_00000.bin";
  const Layout L = make_layout(ValueEncoding::kCompact, 10, 1000, 99);
  const uint64_t N = 50;
  {
    EpochFile f(path, L, N, 0, true, true);
    CHECK(f.missing(0, N).size() == N);
    PCG32 g(5, 6);
    std::vector<int64_t> samples = {7, 8, 9, 20}, seeds = {1, 2, 3, 4}, idx;
    std::vector<float> prob;
    for (int b = 0; b < 4; ++b) {
      std::vector<int64_t> i;
      std::vector<float> p;
      make_record(g, 1000, 10, &i, &p);
      idx.insert(idx.end(), i.begin(), i.end());
      prob.insert(prob.end(), p.begin(), p.end());
    }
    f.write(samples.data(), 4, seeds.data(), idx.data(), prob.data());
    const auto miss = f.missing(0, N);
    CHECK(miss.size() == N - 4);
    std::vector<int64_t> s2(4), i2(40);
    std::vector<float> p2(40);
    f.read(samples.data(), 4, s2.data(), i2.data(), p2.data());
    CHECK(s2 == seeds && i2 == idx);
    int64_t unwritten = 10;
    bool threw = false;
    try {
      f.read(&unwritten, 1, s2.data(), i2.data(), p2.data());
    } catch (const StoreException& e) {
      threw = e.kind() == ErrorKind::kRecordMissing &&
              std::string(e.what()).find("sample 10") != std::string::npos;
    }
    CHECK(threw);
    int64_t outside = 50;
    threw = false;
    try {
      f.read(&outside, 1, s2.data(), i2.data(), p2.data());
    } catch (const StoreException& e) {
      threw = e.kind() == ErrorKind::kSampleIndex;
    }
    CHECK(threw);
  }
  // Reopening with another N: wrong size is detected, never silently accepted.
  bool threw = false;
  try {
    EpochFile f(path, L, N + 1, 0, false, false);
  } catch (const StoreException& e) {
    threw = e.kind() == ErrorKind::kTruncatedFile;
  }
  CHECK(threw);
  CHECK(truncate(path.c_str(), 17) == 0);
  threw = false;
  try {
    EpochFile f(path, L, N, 0, false, false);
  } catch (const StoreException& e) {
    threw = e.kind() == ErrorKind::kTruncatedFile;
  }
  CHECK(threw);
  std::remove(path.c_str());
  threw = false;
  try {
    EpochFile f(path, L, N, 0, false, false);
  } catch (const StoreException& e) {
    threw = e.kind() == ErrorKind::kEpochMissing;
  }
  CHECK(threw);
  rmdir(dir);
}

}  // namespace

// The record contract: a valid check over content that encode_batch refuses is kCorruptRecord
// for decode, listed by scan_records, and counted by audit under the right finding.
void test_decode_contract() {
  const Layout L = make_layout(ValueEncoding::kFp16, 3, 100, 7);
  const size_t R = L.record_size;
  int64_t s = 0, seed = 1, idx[3] = {1, 2, 3};
  float p[3] = {0.5f, 0.2f, 0.1f};
  struct Case {
    int64_t i0, i1;
    float p0, p1;
    uint64_t AuditCounts::*field;
  };
  const Case cases[] = {{1, 1, 0.5f, 0.2f, &AuditCounts::duplicate_index},
                        {1, 2, NAN, 0.2f, &AuditCounts::prob_range},
                        {1, 2, -0.1f, 0.2f, &AuditCounts::prob_range},
                        {1, 2, 0.9f, 0.9f, &AuditCounts::prob_sum}};
  for (const Case& c : cases) {
    std::vector<uint8_t> rec(R);
    CHECK(encode_batch(L, 0, &s, 1, &seed, idx, p, rec.data()).ok());
    const uint16_t ix[2] = {static_cast<uint16_t>(c.i0), static_cast<uint16_t>(c.i1)};
    std::memcpy(rec.data() + L.off_indices, ix, 4);
    const uint16_t h[2] = {float_to_half(c.p0), float_to_half(c.p1)};
    std::memcpy(rec.data() + L.off_values, h, 4);
    const uint32_t chk = record_check(L, 0, 0, rec.data());
    std::memcpy(rec.data() + L.off_check, &chk, 4);
    CHECK(record_state(L, 0, 0, rec.data()) == RecordState::kOk);
    int64_t s2, i2[3];
    float p2[3];
    const BatchStatus st = decode_records(L, rec.data(), 0, &s, 1, &s2, i2, p2);
    CHECK(st.kind == static_cast<int>(ErrorKind::kCorruptRecord) && st.position == 0);
    int64_t miss[1];
    CHECK(scan_records(L, rec.data(), 0, 0, 1, miss) == 1 && miss[0] == 0);
    AuditCounts a;
    audit_records(L, rec.data(), 0, 0, 1, &a);
    CHECK(a.ok == 0 && a.*(c.field) == 1 && a.first_bad_sample == 0);
  }
}

// ---- the fused content filter against the contract written out -------------------------------
// The decode kernels fold the content checks into the decode (store_contract.h) and defer to
// check_content only when the fold does not pass a record. These tests build records with
// valid checks over every kind of content -- NaN / inf / negative / > 1 / -0 probabilities,
// sums on both sides of the tolerance (to the last fp16 step), repeated classes at the first,
// middle and last positions, classes >= C, malformed compact values -- and require read
// (decode_records), missing (scan_records) and verify (audit_records), under both ISAs, to
// agree with an independent statement of the contract on every record. The configurations
// cover every path of the fold: fp16 and compact (bitmap and set-bit decoders), K below / at /
// above the vector widths, the register duplicate check (K <= 16) and the stamp table (with
// its 255-record wrap), C beyond the register check's sentinels, and int32 indices.
namespace {

enum Verdict { kValid, kBadIndex, kBadEncoding, kRange, kSum, kDup };

struct Content {
  std::vector<uint32_t> idx;   // raw stored index values
  std::vector<uint16_t> half;  // fp16: the stored halves
  float scale = 1.0f;          // compact
  std::vector<int> level;      // compact: non-decreasing levels in [0, 255]
  int flip_bit = -1;           // compact: a bitmap bit to flip after encoding
};

// The record's bytes with a valid check over exactly this content.
std::vector<uint8_t> craft(const Layout& L, uint32_t epoch, uint64_t sample, const Content& c) {
  std::vector<uint8_t> rec(L.record_size, 0);
  const uint32_t seed = static_cast<uint32_t>(sample * 2654435761u + 1);
  std::memcpy(rec.data(), &seed, 4);
  const size_t w = static_cast<size_t>(L.index_type);
  for (size_t k = 0; k < L.topk; ++k) std::memcpy(rec.data() + L.off_indices + w * k, &c.idx[k], w);
  if (L.encoding == ValueEncoding::kFp16) {
    std::memcpy(rec.data() + L.off_values, c.half.data(), 2 * L.topk);
  } else {
    std::memcpy(rec.data() + L.off_scale, &c.scale, 4);
    for (size_t j = 0; j < L.topk; ++j) {
      const size_t pos = static_cast<size_t>(c.level[j]) + j;
      rec[L.off_values + pos / 8] |= static_cast<uint8_t>(1u << (pos % 8));
    }
    if (c.flip_bit >= 0) rec[L.off_values + c.flip_bit / 8] ^= static_cast<uint8_t>(1u << (c.flip_bit % 8));
  }
  const uint32_t chk = record_check(L, epoch, sample, rec.data());
  std::memcpy(rec.data() + L.off_check, &chk, 4);
  return rec;
}

// The contract (docs/store.md), written out from the record bytes: what every reader must say.
Verdict reference(const Layout& L, const uint8_t* rec, std::vector<int64_t>* idx_out,
                  std::vector<float>* prob_out) {
  const size_t K = L.topk, w = static_cast<size_t>(L.index_type);
  std::vector<int64_t> idx(K);
  for (size_t k = 0; k < K; ++k) {
    uint32_t v = 0;
    std::memcpy(&v, rec + L.off_indices + w * k, w);
    if (v >= L.num_classes) return kBadIndex;
    idx[k] = v;
  }
  std::vector<float> p(K);
  if (L.encoding == ValueEncoding::kFp16) {
    for (size_t k = 0; k < K; ++k) {
      uint16_t h;
      std::memcpy(&h, rec + L.off_values + 2 * k, 2);
      p[k] = half_to_float(h);
    }
  } else {
    float scale;
    std::memcpy(&scale, rec + L.off_scale, 4);
    if (!(scale >= 0.5f && scale <= 2.0f)) return kBadEncoding;
    std::vector<size_t> pos;
    for (size_t b = 0; b < L.values_bytes * 8; ++b)
      if (rec[L.off_values + b / 8] >> (b % 8) & 1) pos.push_back(b);
    if (pos.size() != K || pos.back() >= K + 255) return kBadEncoding;
    for (size_t j = 0; j < K; ++j) p[j] = scale * compact_level_value(static_cast<int>(pos[j] - j));
  }
  double sum = 0;
  for (size_t k = 0; k < K; ++k) {
    if (!(p[k] >= 0.0f && p[k] <= 1.0f)) return kRange;
    sum += p[k];
  }
  if (!(sum <= 1.0 + kDecodeSumTolerance)) return kSum;
  if (std::set<int64_t>(idx.begin(), idx.end()).size() != K) return kDup;
  if (idx_out) *idx_out = idx;
  if (prob_out) *prob_out = p;
  return kValid;
}

// Halves whose exact sum is 1 + m * 2^-24 (m < 2^15 + 2^14): 0.5 + 0.5 + a + r, a a multiple
// of 2^-19 (a normal fp16 near 2^-9) and r < 2^-19 (a subnormal), the other K - 4 values 0.
std::vector<uint16_t> halves_summing_to(size_t K, uint32_t m) {
  std::vector<uint16_t> h(K, 0);
  h[0] = h[1] = 0x3800;  // 0.5
  h[2] = float_to_half(std::ldexp(static_cast<float>(m / 32), -19));
  h[3] = static_cast<uint16_t>(m % 32);  // subnormal: (m % 32) * 2^-24
  return h;
}

// A random record of layout L whose content is valid, or broken in one random way.
Content random_content(PCG32& g, const Layout& L) {
  const size_t K = L.topk;
  const uint32_t C = L.num_classes;
  const bool fp16 = L.encoding == ValueEncoding::kFp16;
  Content c;
  // Distinct classes: a random start, then random strides of at most C / K.
  const uint32_t stride = C / static_cast<uint32_t>(K);  // >= 1: K <= C
  const uint32_t v = g.next_u32() % (C - static_cast<uint32_t>(K - 1) * stride);
  for (size_t k = 0; k < K; ++k) c.idx.push_back(v + static_cast<uint32_t>(k) * stride);
  for (size_t k = K; k > 1; --k) std::swap(c.idx[k - 1], c.idx[g.next_u32() % k]);
  // Probabilities: descending-ish, total mass u in (0.3, 1].
  std::vector<float> p(K);
  double z = 0;
  for (size_t k = 0; k < K; ++k) z += (p[k] = static_cast<float>(1.0 / (1.0 + k + g.uniform())));
  const double mass = 0.3 + 0.7 * g.uniform();
  for (auto& x : p) x = static_cast<float>(x / z * mass);
  if (fp16) {
    for (float x : p) c.half.push_back(float_to_half(x));
  } else {
    int l = static_cast<int>(g.next_u32() % 40);
    for (size_t j = 0; j < K; ++j) {
      c.level.push_back(std::min(l, 254));
      l += static_cast<int>(g.next_u32() % 3 == 0) * static_cast<int>(g.next_u32() % 8);
    }
    // A scale in [0.5, 2] giving the mass: shift all levels by octaves until one exists.
    for (int tries = 0; tries < 40; ++tries) {
      double t = 0;
      for (int lv : c.level) t += compact_level_value(lv);
      c.scale = static_cast<float>(mass / t);
      if (c.scale < 0.5f) {
        for (auto& lv : c.level) lv = std::min(lv + 12, 254);
      } else if (c.scale > 2.0f) {
        for (auto& lv : c.level) lv = std::max(lv - 12, 0);
      } else {
        break;
      }
    }
  }
  const size_t first = 0, last = K - 1, mid = K / 2, any = g.next_u32() % K;
  const size_t at[4] = {first, last, mid, any};
  const size_t pos = at[g.next_u32() % 4];
  switch (g.next_u32() % 14) {
    case 0:  // a repeated class at first/last/middle pairs
    case 1: {
      if (K < 2) break;
      const size_t pairs[4][2] = {{0, 1}, {0, K - 1}, {K - 2, K - 1}, {mid > 0 ? mid - 1 : 0, mid}};
      const auto& pr = pairs[g.next_u32() % 4];
      if (pr[0] != pr[1]) c.idx[pr[1]] = c.idx[pr[0]];
      break;
    }
    case 2:  // a class >= C (also huge int32 values: negative as int32)
      c.idx[pos] = L.index_type == IndexType::kU16
                       ? C + g.next_u32() % (65536 - C)
                       : (g.next_u32() % 2 ? C : 0x80000000u + static_cast<uint32_t>(pos));
      break;
    case 3:  // fp16 specials; compact: level 0 at scale > 1 (p_0 > 1)
      if (fp16) {
        const uint16_t special[7] = {0x7e00, 0x7c00, 0xfc00, 0xbc00, 0x8001, 0x3c01, 0x8000};
        c.half[pos] = special[g.next_u32() % 7];  // NaN, inf, -inf, -1, -tiny, 1+, -0 (valid)
      } else {
        c.scale = 1.0f + static_cast<float>(g.uniform());
        for (auto& l : c.level) l = std::max(l - c.level[0], 0);
      }
      break;
    case 4:  // the sum on either side of the tolerance, to the last fp16 step
      if (fp16 && K >= 4) {
        const uint32_t m = 33554 + g.next_u32() % 2;  // 1 + 33554 * 2^-24 <= 1.002 < 1 + 33555 * 2^-24
        c.half = halves_summing_to(K, m);
        for (size_t k = K; k > 1; --k) std::swap(c.half[k - 1], c.half[g.next_u32() % k]);
      } else if (!fp16) {  // levels whose scaled sum straddles 1 + tolerance
        double t = 0;
        for (int l : c.level) t += compact_level_value(l);
        c.scale = static_cast<float>((1.0 + kDecodeSumTolerance) / t * (1.0 + (g.uniform() - 0.5) * 2e-6));
      }
      break;
    case 5:  // compact: scale outside [0.5, 2] or a malformed bitmap
      if (!fp16) {
        if (g.next_u32() % 2)
          c.scale = g.next_u32() % 2 ? 2.0000002f : 0.4999999f;
        else
          c.flip_bit = static_cast<int>(g.next_u32() % (L.values_bytes * 8));
      }
      break;
    case 6:  // fp16: mass pushed just over / under the tolerance by the largest value
      if (fp16) {
        double s = 0;
        for (uint16_t h : c.half) s += half_to_float(h);
        const float want = static_cast<float>(half_to_float(c.half[0]) + (1.0 + kDecodeSumTolerance - s));
        uint16_t h0 = float_to_half(std::min(want, 1.0f));
        if (g.next_u32() % 2) ++h0;  // one fp16 step up
        c.half[0] = h0;
      }
      break;
    case 7:  // one value just over 1, the rest (nearly) 0: only the range check refuses it
      if (fp16) {
        std::fill(c.half.begin(), c.half.end(), uint16_t{0});
        c.half[pos] = g.next_u32() % 2 ? 0x3c01 : 0x3c00;  // 1 + 2^-10 (refused) or 1 (valid)
      } else {
        c.scale = g.next_u32() % 2 ? 1.001f : 1.0f;
        std::fill(c.level.begin(), c.level.end(), 255);  // decoded 0
        c.level[0] = 0;
      }
      break;
    case 8:  // classes at the top of [0, C): where the register check keeps its sentinels
      for (size_t k = 0; k < K && k < 16; ++k)
        if (g.next_u32() % 2) c.idx[k] = C - 1 - (g.next_u32() % 16 + k * 16) % C;
      break;
    default:  // valid
      break;
  }
  return c;
}

void expect_finding(const BatchStatus& st, Verdict want) {
  CHECK(st.kind == static_cast<int>(ErrorKind::kCorruptRecord));
  const char* needle[] = {"", "class index", "compact", "topk_probs[", "topk_probs sum",
                          "topk_indices"};
  CHECK(st.detail.find(needle[want]) != std::string::npos);
}

void differential(ValueEncoding enc, uint32_t K, uint32_t C, uint64_t seed) {
  const Layout L = make_layout(enc, K, C, seed * 77 + 5);
  const uint32_t epoch = 2;
  const size_t M = 400, R = L.record_size;  // > 255 records: the stamp table wraps
  PCG32 g(seed, K * 1000003ull + C);
  std::vector<uint8_t> image(M * R);
  std::vector<Verdict> want(M);
  std::vector<std::vector<int64_t>> ref_idx(M);
  std::vector<std::vector<float>> ref_prob(M);
  for (size_t i = 0; i < M; ++i) {
    const std::vector<uint8_t> rec = craft(L, epoch, i, random_content(g, L));
    std::memcpy(image.data() + i * R, rec.data(), R);
    want[i] = reference(L, rec.data(), &ref_idx[i], &ref_prob[i]);
  }
  std::vector<int64_t> bad_ref;
  AuditCounts ref_counts;
  for (size_t i = 0; i < M; ++i) {
    if (want[i] != kValid) bad_ref.push_back(static_cast<int64_t>(i));
    uint64_t AuditCounts::*field[] = {&AuditCounts::ok, &AuditCounts::bad_index,
                                      &AuditCounts::bad_encoding, &AuditCounts::prob_range,
                                      &AuditCounts::prob_sum, &AuditCounts::duplicate_index};
    ++(ref_counts.*field[want[i]]);
  }
  for (const char* isa : {"portable", "auto"}) {
    CHECK(set_isa(isa));
    // missing(): exactly the records the contract refuses.
    std::vector<int64_t> miss(M);
    miss.resize(scan_records(L, image.data(), epoch, 0, M, miss.data()));
    CHECK(miss == bad_ref);
    // verify: each record under its finding.
    AuditCounts a;
    audit_records(L, image.data(), epoch, 0, M, &a);
    CHECK(a.ok == ref_counts.ok && a.bad_index == ref_counts.bad_index &&
          a.bad_encoding == ref_counts.bad_encoding && a.prob_range == ref_counts.prob_range &&
          a.prob_sum == ref_counts.prob_sum && a.duplicate_index == ref_counts.duplicate_index);
    CHECK(a.first_bad_sample == (bad_ref.empty() ? -1 : bad_ref[0]));
    // read(): one record at a time -- refused with the finding, or exactly the reference values.
    std::vector<int64_t> s2(M), i2(M * K);
    std::vector<float> p2(M * K);
    for (size_t i = 0; i < M; ++i) {
      const int64_t smp = static_cast<int64_t>(i);
      const BatchStatus st = decode_records(L, image.data() + i * R, epoch, &smp, 1, s2.data(),
                                            i2.data(), p2.data());
      if (want[i] == kValid) {
        CHECK(st.ok());
        CHECK(std::equal(ref_idx[i].begin(), ref_idx[i].end(), i2.begin()));
        CHECK(std::memcmp(ref_prob[i].data(), p2.data(), 4 * K) == 0);
      } else {
        CHECK(st.position == 0);
        expect_finding(st, want[i]);
      }
    }
    // read() of the whole image stops at the first refused record; of the valid ones, succeeds.
    std::vector<int64_t> all(M);
    for (size_t i = 0; i < M; ++i) all[i] = static_cast<int64_t>(i);
    const BatchStatus st = decode_records(L, image.data(), epoch, all.data(), M, s2.data(),
                                          i2.data(), p2.data());
    CHECK(bad_ref.empty() ? st.ok() : st.position == bad_ref[0]);
    std::vector<int64_t> good;
    for (size_t i = 0; i < M; ++i)
      if (want[i] == kValid) good.push_back(static_cast<int64_t>(i));
    CHECK(gather_decode(L, image, epoch, good.data(), good.size(), s2.data(), i2.data(),
                        p2.data())
              .ok());
  }
  set_isa("auto");
  // Enough of every finding to mean something (valid records are ~half).
  CHECK(ref_counts.ok > M / 4 && ref_counts.ok < M);
}

}  // namespace

void test_fused_filter_matches_contract() {
  uint64_t seed = 1;
  for (ValueEncoding enc : {ValueEncoding::kFp16, ValueEncoding::kCompact})
    for (uint32_t K : {1u, 2u, 4u, 7u, 8u, 9u, 10u, 15u, 16u, 17u, 31u, 32u, 33u, 100u})
      for (uint32_t C : {200u, 21841u, 65519u, 65520u, 65535u, 70000u})
        differential(enc, K, C, seed++);
}

// The sum boundary exactly: 1 + 33554 * 2^-24 is the largest fp16-representable total <= 1 +
// tolerance (valid, although no float filter can pass it), the next one is refused.
void test_sum_boundary() {
  for (uint32_t K : {4u, 10u, 100u}) {
    const Layout L = make_layout(ValueEncoding::kFp16, K, 21841, 3);
    for (uint32_t m : {33554u, 33555u}) {
      Content c;
      for (uint32_t k = 0; k < K; ++k) c.idx.push_back(k * 7);
      c.half = halves_summing_to(K, m);
      double sum = 0;
      for (uint16_t h : c.half) sum += half_to_float(h);
      CHECK(sum == 1.0 + std::ldexp(static_cast<double>(m), -24));
      CHECK((sum <= 1.0 + kDecodeSumTolerance) == (m == 33554));
      const std::vector<uint8_t> rec = craft(L, 0, 0, c);
      for (const char* isa : {"portable", "auto"}) {
        CHECK(set_isa(isa));
        int64_t s = 0, s2, i2[100], miss[1];
        float p2[100];
        const BatchStatus st = decode_records(L, rec.data(), 0, &s, 1, &s2, i2, p2);
        AuditCounts a;
        audit_records(L, rec.data(), 0, 0, 1, &a);
        if (m == 33554) {
          CHECK(st.ok() && scan_records(L, rec.data(), 0, 0, 1, miss) == 0 && a.ok == 1);
        } else {
          CHECK(st.kind == static_cast<int>(ErrorKind::kCorruptRecord) &&
                st.detail.find("topk_probs sum 1.00200003") != std::string::npos);
          CHECK(scan_records(L, rec.data(), 0, 0, 1, miss) == 1 && a.prob_sum == 1);
        }
      }
      set_isa("auto");
    }
  }
}

int main() {
  test_crc();
  test_half();
  test_layout();
  for (const char* isa : {"portable", "auto"}) {
    for (uint32_t C : {1000u, 21841u, 70000u}) {
      test_roundtrip(ValueEncoding::kFp16, C, isa);
      test_roundtrip(ValueEncoding::kCompact, C, isa);
    }
  }
  test_encode_rejects();
  test_decode_contract();
  test_fused_filter_matches_contract();
  test_sum_boundary();
  test_epoch_file();
  std::printf("store isa: %s\n", active_isa());
  return TEST_REPORT();
}
