// Epoch file I/O for the logit store (see store_io.h).
#include "core/store/store_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tinyvit {
namespace store {

namespace {
std::string errno_text(int err) { return std::string(std::strerror(err)); }

// Encode buffers are reused per thread: a write batch allocates nothing in steady state.
std::vector<uint8_t>& encode_buffer() {
  thread_local std::vector<uint8_t> buf;
  return buf;
}
}  // namespace

void EpochFile::fail(ErrorKind kind, const std::string& what) const {
  throw StoreException(kind, path_ + " (epoch " + std::to_string(epoch_) + "): " + what);
}

EpochFile::EpochFile(const std::string& path, const Layout& layout, uint64_t num_samples,
                     uint32_t epoch, bool writable, bool create)
    : path_(path), layout_(layout), num_samples_(num_samples), epoch_(epoch), writable_(writable) {
  if (num_samples == 0) fail(ErrorKind::kFileSize, "num_samples must be >= 1");
  const uint64_t R = layout.record_size;
  if (num_samples > (uint64_t{1} << 62) / R) fail(ErrorKind::kFileSize, "num_samples too large");
  const uint64_t expected = num_samples * R;
  int flags = (writable || create) ? O_RDWR : O_RDONLY;
  if (create) flags |= O_CREAT;  // never O_TRUNC: an existing file keeps its records
  fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    if (err == ENOENT) fail(ErrorKind::kEpochMissing, "data file does not exist");
    fail(ErrorKind::kIo, "cannot open data file: " + errno_text(err));
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail(ErrorKind::kIo, "fstat failed: " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    fail(ErrorKind::kIo, "data file is not a regular file");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (create && size == 0) {
    // Sparse preallocation: every record reads as zeros (= missing) until written.
    if (::ftruncate(fd_, static_cast<off_t>(expected)) != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      fail(ErrorKind::kIo, "ftruncate to " + std::to_string(expected) + " bytes failed: " +
                               errno_text(err));
    }
    size = expected;
  }
  if (size != expected) {
    ::close(fd_);
    fd_ = -1;
    const std::string msg = "file size " + std::to_string(size) + " bytes, expected " +
                            std::to_string(expected) + " (num_samples " +
                            std::to_string(num_samples) + " x record_size " + std::to_string(R) +
                            ")";
    fail(size < expected ? ErrorKind::kTruncatedFile : ErrorKind::kFileSize, msg);
  }
  void* m = ::mmap(nullptr, static_cast<size_t>(expected), PROT_READ, MAP_SHARED, fd_, 0);
  if (m == MAP_FAILED) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail(ErrorKind::kIo, "mmap failed: " + errno_text(err));
  }
  map_ = static_cast<const uint8_t*>(m);
  map_size_ = static_cast<size_t>(expected);
}

EpochFile::~EpochFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
  if (fd_ >= 0) ::close(fd_);
}

void EpochFile::read(const int64_t* samples, size_t B, int64_t* seeds, int64_t* indices,
                     float* probs) const {
  for (size_t b = 0; b < B; ++b) {
    if (samples[b] < 0 || static_cast<uint64_t>(samples[b]) >= num_samples_)
      fail(ErrorKind::kSampleIndex, "sample_indices[" + std::to_string(b) + "] = " +
                                        std::to_string(samples[b]) + " outside [0, num_samples=" +
                                        std::to_string(num_samples_) + ")");
  }
  const BatchStatus st = decode_batch(layout_, map_, epoch_, samples, B, seeds, indices, probs);
  if (st.ok()) return;
  const std::string where = "sample " + std::to_string(samples[st.position]) +
                            " (batch position " + std::to_string(st.position) + ")";
  const auto kind = static_cast<ErrorKind>(st.kind);
  switch (kind) {
    case ErrorKind::kRecordMissing:
      fail(kind, where + ": record missing (never written; all-zero bytes)");
    case ErrorKind::kChecksum:
      fail(kind, where + ": checksum mismatch (record torn, corrupted, or from another "
                         "epoch/store)");
    default:
      fail(kind, where + ": " + st.detail);
  }
}

void EpochFile::write(const int64_t* samples, size_t B, const int64_t* seeds,
                      const int64_t* indices, const float* probs) {
  if (!writable_) fail(ErrorKind::kReadOnly, "store opened read-only (mode='r')");
  for (size_t b = 0; b < B; ++b) {
    if (samples[b] < 0 || static_cast<uint64_t>(samples[b]) >= num_samples_)
      fail(ErrorKind::kSampleIndex, "sample_indices[" + std::to_string(b) + "] = " +
                                        std::to_string(samples[b]) + " outside [0, num_samples=" +
                                        std::to_string(num_samples_) + ")");
  }
  const size_t R = layout_.record_size;
  std::vector<uint8_t>& buf = encode_buffer();
  if (buf.size() < B * R) buf.resize(B * R);
  const BatchStatus st = encode_batch(layout_, epoch_, samples, B, seeds, indices, probs, buf.data());
  if (!st.ok())
    fail(static_cast<ErrorKind>(st.kind),
         "sample " + std::to_string(samples[st.position]) + " (batch position " +
             std::to_string(st.position) + "): " + st.detail);
  // Nothing is written unless the whole batch validated; then runs of consecutive samples go
  // out in one pwrite each.
  size_t b = 0;
  while (b < B) {
    size_t e = b + 1;
    while (e < B && samples[e] == samples[e - 1] + 1) ++e;
    const uint8_t* src = buf.data() + b * R;
    size_t len = (e - b) * R;
    off_t off = static_cast<off_t>(static_cast<uint64_t>(samples[b]) * R);
    while (len > 0) {
      const ssize_t n = ::pwrite(fd_, src, len, off);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(ErrorKind::kIo, "pwrite of sample " + std::to_string(samples[b]) + " failed: " +
                                 errno_text(errno));
      }
      src += n;
      len -= static_cast<size_t>(n);
      off += n;
    }
    b = e;
  }
}

void EpochFile::check_range(uint64_t first, uint64_t count) const {
  if (first > num_samples_ || count > num_samples_ - first)
    fail(ErrorKind::kSampleIndex, "range [" + std::to_string(first) + ", " +
                                      std::to_string(first + count) + ") outside [0, " +
                                      std::to_string(num_samples_) + ")");
}

std::vector<int64_t> EpochFile::missing(uint64_t first, uint64_t count) const {
  check_range(first, count);
  std::vector<int64_t> out;
  // Chunks bound the scratch memory; positions come back relative to the chunk start.
  constexpr uint64_t kChunk = 1 << 16;
  std::vector<int64_t> tmp(static_cast<size_t>(std::min<uint64_t>(count, kChunk)));
  for (uint64_t s = 0; s < count; s += kChunk) {
    const uint64_t n = std::min<uint64_t>(kChunk, count - s);
    const size_t m = scan_missing(layout_, map_, epoch_, first + s, n, tmp.data());
    for (size_t i = 0; i < m; ++i) out.push_back(static_cast<int64_t>(first + s) + tmp[i]);
  }
  return out;
}

AuditCounts EpochFile::audit(uint64_t first, uint64_t count) const {
  check_range(first, count);
  AuditCounts c;
  audit_range(layout_, map_, epoch_, first, count, &c);
  return c;
}

std::string EpochFile::raw_record(uint64_t sample) const {
  check_range(sample, 1);
  const size_t R = layout_.record_size;
  return std::string(reinterpret_cast<const char*>(map_ + sample * R), R);
}

void EpochFile::sync() {
  if (fd_ >= 0 && writable_ && ::fdatasync(fd_) != 0)
    fail(ErrorKind::kIo, "fdatasync failed: " + errno_text(errno));
}

uint64_t EpochFile::allocated_bytes() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace store
}  // namespace tinyvit
