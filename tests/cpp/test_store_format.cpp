// Unit tests of the logit-store core: checksum, codecs, layouts, epoch file I/O.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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
      decode_batch(L, image.data(), 3, samples.data(), B, s2.data(), i2.data(), p2.data());
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
  CHECK(decode_batch(L, image.data(), 4, samples.data(), 1, s2.data(), i2.data(), p2.data())
            .kind == static_cast<int>(ErrorKind::kChecksum));
  std::vector<uint8_t> moved(image);
  std::memcpy(moved.data(), image.data() + L.record_size, L.record_size);
  int64_t zero = 0;
  CHECK(decode_batch(L, moved.data(), 3, &zero, 1, s2.data(), i2.data(), p2.data()).kind ==
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
    CHECK(decode_batch(L, zeros.data(), 3, &s, 1, s2.data(), i2.data(), p2.data()).kind ==
          static_cast<int>(ErrorKind::kRecordMissing));
  }
  // Missing scan finds exactly the holes.
  std::vector<int64_t> miss(B);
  std::memset(image.data() + 5 * L.record_size, 0, L.record_size);
  image[9 * L.record_size + 3] ^= 1;  // torn
  const size_t nm = scan_missing(L, image.data(), 3, 0, B, miss.data());
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
  audit_range(H, hout.data(), 0, 0, 1, &hc);
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
// for decode, listed by scan_missing, and counted by audit under the right finding.
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
    const BatchStatus st = decode_batch(L, rec.data(), 0, &s, 1, &s2, i2, p2);
    CHECK(st.kind == static_cast<int>(ErrorKind::kCorruptRecord) && st.position == 0);
    int64_t miss[1];
    CHECK(scan_missing(L, rec.data(), 0, 0, 1, miss) == 1 && miss[0] == 0);
    AuditCounts a;
    audit_range(L, rec.data(), 0, 0, 1, &a);
    CHECK(a.ok == 0 && a.*(c.field) == 1 && a.first_bad_sample == 0);
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
  test_epoch_file();
  std::printf("store isa: %s\n", active_isa());
  return TEST_REPORT();
}
