// One epoch file of a logit store: mmap for reads, pwrite for writes (pure C++, POSIX).
//
// Why pwrite and not writes through the mapping: a record lands at its own offset with one
// system call, so any number of processes (on one machine, or on machines sharing a POSIX
// file system) can fill disjoint records of the same file with no locking; a process killed
// at any instant leaves every other record untouched, and its own partly written record fails
// its checksum (see store_format.h). Readers map the file read-only and see completed records
// through the page cache.
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

  // Validates samples in [0, N), then decodes (store_format.h decode_batch); throws
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
  void check_range(uint64_t first, uint64_t count) const;
  std::string path_;
  Layout layout_;
  uint64_t num_samples_;
  uint32_t epoch_;
  bool writable_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
};

}  // namespace store
}  // namespace tinyvit
