// One epoch file of a logit store: pread for reads, pwrite for writes (pure C++, POSIX).
//
// Why pwrite and not writes through the mapping: a record lands at its own offset with one
// system call, so any number of processes (on one machine, or on machines sharing a POSIX
// file system) can fill disjoint records of the same file with no locking; a process killed
// at any instant leaves every other record untouched, and its own partly written record fails
// its checksum (see store_format.h).
//
// Reads: (1) every record is copied once into memory this process owns, and the checksum and
// the decode both read that copy, so a concurrent rewrite can never yield a record mixing two
// versions. (2) No file-system condition becomes a signal. Reading a sparse hole through a
// MAP_SHARED mapping of a tmpfs file allocates a page (a full tmpfs -> SIGBUS), as does
// reading past the end of a file someone truncated, or an I/O error. So missing()/audit() use
// pread in 1 MiB chunks and skip holes with SEEK_DATA (a hole is "missing" without reading
// it), and read() gathers from a read-only mapping under a SIGBUS guard (store_guard.h): a
// fault during the copy abandons the mapping for that batch and redoes it with pread, which
// returns zeros or an errno instead. The mapping stays because random batched reads need it:
// one pread per record costs a system call (~0.3-1 us) against ~20-150 ns per mapped record.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/store/store_format.h"

namespace tinyvit {
namespace store {

class EpochFile {
 public:
  // Opens (create: creates if absent, never truncates; an empty file is extended to
  // num_samples * record_size with ftruncate, i.e. sparse). Checks the size: shorter ->
  // kTruncatedFile, longer -> kFileSize; absent (without create) -> kEpochMissing.
  EpochFile(const std::string& path, const Layout& layout, uint64_t num_samples, uint32_t epoch,
            bool writable, bool create);
  ~EpochFile();
  EpochFile(const EpochFile&) = delete;
  EpochFile& operator=(const EpochFile&) = delete;

  // Validates samples in [0, N), preads the records (runs of consecutive samples in one call)
  // into a per-thread buffer, then decodes that copy (store_format.h decode_records); throws
  // StoreException naming file, epoch, sample and batch position.
  void read(const int64_t* samples, size_t B, int64_t* seeds, int64_t* indices,
            float* probs) const;
  // Validates and encodes, then pwrites each record (contiguous samples coalesced).
  void write(const int64_t* samples, size_t B, const int64_t* seeds, const int64_t* indices,
             const float* probs);
  // Sample indices in [first, first + count) whose record does not verify.
  std::vector<int64_t> missing(uint64_t first, uint64_t count) const;
  AuditCounts audit(uint64_t first, uint64_t count) const;
  // Raw record bytes (for inspection/tests); sample must be < N.
  std::string raw_record(uint64_t sample) const;
  void sync();                       // fdatasync
  uint64_t allocated_bytes() const;  // blocks actually allocated on disk
  const std::string& path() const { return path_; }
  const Layout& layout() const { return layout_; }
  uint64_t num_samples() const { return num_samples_; }
  uint32_t epoch() const { return epoch_; }
  bool writable() const { return writable_; }

 private:
  [[noreturn]] void fail(ErrorKind kind, const std::string& what) const;
  // SampleIndexError naming the first index outside [0, num_samples) (read and write).
  void check_samples(const int64_t* samples, size_t B) const;
  void check_range(uint64_t first, uint64_t count) const;
  // Reads records [first, first + n) into dst (n * R bytes); a short read (file shrunk by
  // someone else) is kTruncatedFile.
  void pread_records(uint64_t first, uint64_t n, uint8_t* dst) const;
  // Calls hole(first, n) for runs of records lying entirely in sparse holes and
  // data(recs, first, n) for chunks that were read, covering [first, first + count) in order.
  template <class Hole, class Data>
  void for_each_chunk(uint64_t first, uint64_t count, Hole hole, Data data) const;
  std::string path_;
  Layout layout_;
  uint64_t num_samples_;
  uint32_t epoch_;
  bool writable_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;  // read-only; only read through guarded_copy
  size_t map_size_ = 0;
};

}  // namespace store
}  // namespace tinyvit
