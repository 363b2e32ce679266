// Sparse teacher-logit store: record layout, encode/decode, checksum (pure C++, no torch).
//
// A store is a directory (see tinyvit/store/logit_store.py and docs/store.md):
//   manifest.json           format, N, C, K, index dtype, value encoding, fingerprints, epochs,
//                           record size, store_id (written atomically: tmp + fsync + rename/link)
//   epoch_00000.bin ...     one file per epoch: N fixed-size records, record i at byte i * R,
//                           no header. Preallocated at full size with ftruncate (sparse), so an
//                           unwritten record reads as all-zero bytes.
//
// Record layouts (all little-endian, no padding; w = 2 for uint16 indices when C <= 65535,
// else 4 for int32):
//   fp16     seed u32 | idx[K] (w bytes each) | prob[K] fp16          | check u32
//            R = 4 + K*(w + 2) + 4                 (K=100, uint16: 408 bytes)
//   compact  seed u32 | scale f32 | idx[K]    | level bitmap (K+255 bits, ceil to bytes) | check u32
//            R = 8 + K*w + ceil((K + 255) / 8) + 4 (K=100, uint16: 257 bytes <= 4 + 3K = 304)
//
// compact values: probabilities are sorted descending and quantized to 8-bit levels on a log
// scale, level l in 0..254 -> T[l] = 2^(-l/12), level 255 -> 0. Sorted values give
// non-decreasing levels, which are stored as a "stars and bars" bitmap: the j-th set bit sits at
// position l_j + j, so K levels cost K + 255 bits instead of 8K. Decoded p_k = scale * T[l_k],
// where scale = sum(p in range) / sum(T[l] in range) is chosen by the encoder so the decoded
// top-K mass equals the true one (Eq. 2's remainder (1 - sum p) / (C - K) is then unchanged).
// Error bound: for p >= T[254] * 2^(-1/24) (~4.1e-7), p_hat / p in [2^(-1/12), 2^(1/12)]
// (relative error <= 5.95%); smaller p decode to 0 (absolute error < 4.1e-7); sum(p_hat) <=
// sum(p) up to float rounding. Nearest-level rounding alone gives +-2.93%; the shared scale
// can add at most another 2^(1/24).
//
// check: CRC32C (Castagnoli) over the record bytes except the check field, with an initial
// state derived from the constant "TVLS" + format version + layout (encoding, index width, K,
// C) + the store's random 64-bit store_id + epoch + sample index, bit-inverted at the end, and
// 0 mapped to 1. Hence the check field of a verified record is never 0: an all-zero record
// (never written, sparse hole) can never verify, a record copied to another offset, epoch or
// store does not verify, and a torn record (partly written) fails with probability 1 - 2^-32.
// CRC32C uses SSE4.2 crc32 instructions (4 records interleaved) when the CPU has them, else a
// portable slicing-by-8 table; both give identical values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tinyvit {
namespace store {

constexpr uint32_t kFormatVersion = 1;
constexpr int kCompactLevels = 256;       // 8-bit levels; level 255 means 0
constexpr int kCompactStepsPerOctave = 12;

// ---- store limits ---------------------------------------------------------------------------
// The one definition of a store's size limits. make_layout and the bindings check against
// these; Python (tinyvit/store/manifest.py, logit_store.py) reads them through
// _C._store_limits() and keeps no copy. The *Text forms are how error messages print them.
constexpr uint64_t kMaxSamples = uint64_t{1} << 48;  // N: records per epoch file
constexpr const char* kMaxSamplesText = "2^48";
constexpr uint32_t kMaxClasses = 0x7fffffffu;        // C: int32 class indices
constexpr const char* kMaxClassesText = "2^31 - 1";
constexpr uint32_t kMaxTopk = 65535;                 // K (and K <= C)
constexpr const char* kMaxTopkText = "65535";
constexpr uint32_t kMaxU16Classes = 65535;           // C up to this: uint16 indices, else int32
constexpr uint32_t kMaxEpochs = uint32_t{1} << 20;   // epoch files per store
constexpr const char* kMaxEpochsText = "2^20";
constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 24;  // manifest.json read at most this

enum class ValueEncoding : uint8_t { kFp16 = 1, kCompact = 2 };
enum class IndexType : uint8_t { kU16 = 2, kI32 = 4 };  // value = bytes per index

// Error kinds raised by the core; the Python binding maps each to a StoreError subclass.
enum class ErrorKind : int {
  kIo = 1,            // StoreIOError
  kTruncatedFile,     // TruncatedFileError (data file shorter than N * R)
  kFileSize,          // FileSizeError (data file of the wrong size, e.g. longer)
  kChecksum,          // ChecksumError (nonzero record whose check does not verify)
  kRecordMissing,     // RecordMissingError (all-zero record: never written)
  kCorruptRecord,     // CorruptRecordError (check verifies but content invalid)
  kSampleIndex,       // SampleIndexError
  kEpochMissing,      // EpochMissingError
  kShapeMismatch,     // ShapeMismatchError
  kInvalidRecord,     // InvalidRecordError (values refused on write)
  kReadOnly,          // ReadOnlyError
};

class StoreException : public std::runtime_error {
 public:
  StoreException(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

struct Layout {
  ValueEncoding encoding = ValueEncoding::kFp16;
  IndexType index_type = IndexType::kU16;
  uint32_t topk = 0;
  uint32_t num_classes = 0;
  uint64_t store_id = 0;
  // Derived byte offsets within a record.
  size_t off_seed = 0, off_scale = 0, off_indices = 0, off_values = 0, off_check = 0;
  size_t values_bytes = 0;
  size_t record_size = 0;
  uint32_t crc_base = 0;  // CRC32C state after the layout-constant prefix
};

// Validates and derives the layout. Throws std::invalid_argument naming the field.
// index_type must be kU16 when num_classes <= 65535 and kI32 otherwise (one canonical layout).
Layout make_layout(ValueEncoding encoding, uint32_t topk, uint32_t num_classes, uint64_t store_id);
size_t record_size(ValueEncoding encoding, uint32_t topk, uint32_t num_classes);

// ---- checksum -------------------------------------------------------------------------
uint32_t crc32c(uint32_t crc, const void* data, size_t n);  // raw CRC32C update (no inversion)
// The check value of a record (reads the body only, not the check field).
uint32_t record_check(const Layout& L, uint32_t epoch, uint64_t sample, const uint8_t* rec);

enum class RecordState : uint8_t { kOk = 0, kMissing = 1, kBadCheck = 2 };
RecordState record_state(const Layout& L, uint32_t epoch, uint64_t sample, const uint8_t* rec);

// ---- compact value table ---------------------------------------------------------------
float compact_level_value(int level);  // T[level], deterministic on every platform

// ---- fp16 -----------------------------------------------------------------------------
uint16_t float_to_half(float f);  // round to nearest even (portable, matches F16C)
float half_to_float(uint16_t h);

// ---- batch kernels ----------------------------------------------------------------------
// Status of a batch kernel: kind == 0 for success, else the failing position in the batch
// and a short detail (field name / value) for the message.
struct BatchStatus {
  int kind = 0;  // 0 or an ErrorKind
  int64_t position = -1;
  std::string detail;
  bool ok() const { return kind == 0; }
};

// ---- the record contract -------------------------------------------------------------------
// A record is VALID when its check verifies AND its decoded content is what encode_batch
// accepts: class indices < C and distinct, probabilities finite in [0, 1] with sum <= 1 +
// kDecodeSumTolerance (the write tolerance plus fp16 rounding), compact scale and bitmap well
// formed. Every reader applies this one definition: decode (read), scan (missing) and audit
// (verify, inspect) therefore agree on every record. A record whose check verifies but whose
// content does not is kCorruptRecord (a writer bug or a forged record, never silently used).
constexpr double kSumTolerance = 1e-3;        // write side
constexpr double kDecodeSumTolerance = 2e-3;  // read side: + fp16 rounding (<= 2^-11 relative)
constexpr double kAuditSumTolerance = kDecodeSumTolerance;

// Decodes B records held in caller-owned memory: recs + b * R is the record of samples[b].
// Verify and decode read the same (private) bytes, so no concurrent file change can mix two
// versions of a record. Validates the content (contract above) and writes widened outputs:
// seeds[B] (int64), indices[B*K] (int64), probs[B*K] (float32). The content check is fused
// into the decode (store_contract.h): its cost is part of the decode's, not a second pass.
BatchStatus decode_records(const Layout& L, const uint8_t* recs, uint32_t epoch,
                           const int64_t* samples, size_t B, int64_t* seeds, int64_t* indices,
                           float* probs);

// Encodes B records into out[B * R] after validating each (seed in [0, 2^32), indices in
// [0, C) and distinct, probs finite in [0, 1] with sum <= 1 + kSumTolerance). The compact
// encoding sorts (prob, index) pairs by descending prob first.
BatchStatus encode_batch(const Layout& L, uint32_t epoch, const int64_t* samples, size_t B,
                         const int64_t* seeds, const int64_t* indices, const float* probs,
                         uint8_t* out);

// recs holds `count` contiguous records, the first being sample `first`. Writes the positions
// (sample - first) of records that are not VALID (missing, bad check, or bad content) into
// out (capacity count), in increasing order; returns how many.
size_t scan_records(const Layout& L, const uint8_t* recs, uint32_t epoch, uint64_t first,
                    uint64_t count, int64_t* out);

// Full audit used by `tinyvit verify`: counts per finding (each record counted once, under
// its first finding) over `count` contiguous records starting with sample `first`.
struct AuditCounts {
  uint64_t ok = 0, missing = 0, bad_check = 0, bad_index = 0, duplicate_index = 0,
           prob_range = 0, prob_sum = 0, bad_encoding = 0;
  int64_t first_bad_sample = -1;
  std::string first_bad_detail;
};
void audit_records(const Layout& L, const uint8_t* recs, uint32_t epoch, uint64_t first,
                   uint64_t count, AuditCounts* counts);

// Which implementation is active ("sse4.2+avx2+f16c" or "portable"); set_isa("portable")
// forces the fallback (tests), set_isa("auto") restores the best one. Returns false for an
// unknown / unsupported name.
const char* active_isa();
bool set_isa(const std::string& name);

}  // namespace store
}  // namespace tinyvit
