// Epoch file I/O for the logit store (see store_io.h).
#include "core/store/store_io.h"
#include "core/store/store_guard.h"

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

// Encode / read buffers are reused per thread: a batch allocates nothing in steady state.
std::vector<uint8_t>& encode_buffer() {
  thread_local std::vector<uint8_t> buf;
  return buf;
}
std::vector<uint8_t>& read_buffer() {
  thread_local std::vector<uint8_t> buf;
  return buf;
}
// Bytes read per chunk by missing()/audit(): bounds the scratch memory.
constexpr uint64_t kChunkBytes = 1 << 20;
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
  // O_NONBLOCK: opening a FIFO (or a device) put where an epoch file belongs must not block;
  // it is refused as "not a regular file" below.
  fd_ = ::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, 0644);
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
    fail(ErrorKind::kIo, "data file is not a regular file (mode " +
                             std::to_string(st.st_mode & S_IFMT) + ")");
  }
  const int fl = ::fcntl(fd_, F_GETFL);
  if (fl >= 0) ::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK);
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

void EpochFile::pread_records(uint64_t first, uint64_t n, uint8_t* dst) const {
  const uint64_t R = layout_.record_size;
  size_t len = static_cast<size_t>(n * R);
  off_t off = static_cast<off_t>(first * R);
  while (len > 0) {
    const ssize_t got = ::pread(fd_, dst, len, off);
    if (got < 0) {
      if (errno == EINTR) continue;
      fail(ErrorKind::kIo, "pread of sample " + std::to_string(off / R) + " failed: " +
                               errno_text(errno));
    }
    if (got == 0)
      fail(ErrorKind::kTruncatedFile, "sample " + std::to_string(off / R) +
                                          ": file ends early (shrunk since it was opened; "
                                          "expected " +
                                          std::to_string(num_samples_ * R) + " bytes)");
    dst += got;
    len -= static_cast<size_t>(got);
    off += got;
  }
}

void EpochFile::check_samples(const int64_t* samples, size_t B) const {
  for (size_t b = 0; b < B; ++b) {
    if (samples[b] < 0 || static_cast<uint64_t>(samples[b]) >= num_samples_)
      fail(ErrorKind::kSampleIndex, "sample_indices[" + std::to_string(b) + "] = " +
                                        std::to_string(samples[b]) + " outside [0, num_samples=" +
                                        std::to_string(num_samples_) + ")");
  }
}

void EpochFile::read(const int64_t* samples, size_t B, int64_t* seeds, int64_t* indices,
                     float* probs) const {
  check_samples(samples, B);
  const size_t R = layout_.record_size;
  std::vector<uint8_t>& buf = read_buffer();
  if (buf.size() < B * R) buf.resize(B * R);
  if (!guarded_gather(map_, R, samples, B, buf.data())) {
    // The mapping faulted (hole on a full tmpfs, file truncated, I/O error): pread instead.
    for (size_t b = 0; b < B;) {
      size_t e = b + 1;
      while (e < B && samples[e] == samples[e - 1] + 1) ++e;
      pread_records(static_cast<uint64_t>(samples[b]), e - b, buf.data() + b * R);
      b = e;
    }
  }
  const BatchStatus st =
      decode_records(layout_, buf.data(), epoch_, samples, B, seeds, indices, probs);
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
  check_samples(samples, B);
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

template <class Hole, class Data>
void EpochFile::for_each_chunk(uint64_t first, uint64_t count, Hole hole, Data data) const {
  const uint64_t R = layout_.record_size;
  const uint64_t chunk = std::max<uint64_t>(1, kChunkBytes / R);
  std::vector<uint8_t>& buf = read_buffer();
  const uint64_t end = first + count;
  uint64_t s = first;
  bool seek_ok = true;  // SEEK_DATA unsupported (EINVAL) -> read everything
  while (s < end) {
    uint64_t data_end = end;  // records [s, data_end) may hold data
    if (seek_ok) {
      const off_t d = ::lseek(fd_, static_cast<off_t>(s * R), SEEK_DATA);
      if (d < 0 && errno == ENXIO) {  // only holes from here to the end of the file
        hole(s, end - s);
        return;
      }
      if (d < 0) {
        seek_ok = false;
      } else {
        const uint64_t first_data = static_cast<uint64_t>(d) / R;  // record holding byte d
        if (first_data > s) {
          const uint64_t n = std::min(first_data, end) - s;
          hole(s, n);
          s += n;
          continue;
        }
        const off_t h = ::lseek(fd_, static_cast<off_t>(d), SEEK_HOLE);
        if (h > d) data_end = std::min<uint64_t>(end, (static_cast<uint64_t>(h) + R - 1) / R);
      }
    }
    const uint64_t n = std::min<uint64_t>({chunk, end - s, std::max<uint64_t>(1, data_end - s)});
    if (buf.size() < n * R) buf.resize(static_cast<size_t>(n * R));
    pread_records(s, n, buf.data());
    data(buf.data(), s, n);
    s += n;
  }
}

std::vector<int64_t> EpochFile::missing(uint64_t first, uint64_t count) const {
  check_range(first, count);
  std::vector<int64_t> out;
  std::vector<int64_t> tmp;
  for_each_chunk(
      first, count,
      [&](uint64_t a, uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) out.push_back(static_cast<int64_t>(a + i));
      },
      [&](const uint8_t* recs, uint64_t a, uint64_t n) {
        if (tmp.size() < n) tmp.resize(static_cast<size_t>(n));
        const size_t m = scan_records(layout_, recs, epoch_, a, n, tmp.data());
        for (size_t i = 0; i < m; ++i) out.push_back(static_cast<int64_t>(a) + tmp[i]);
      });
  return out;
}

AuditCounts EpochFile::audit(uint64_t first, uint64_t count) const {
  check_range(first, count);
  AuditCounts c;
  for_each_chunk(
      first, count,
      [&](uint64_t a, uint64_t n) {
        c.missing += n;
        if (c.first_bad_sample < 0) {
          c.first_bad_sample = static_cast<int64_t>(a);
          c.first_bad_detail = "record missing (never written)";
        }
      },
      [&](const uint8_t* recs, uint64_t a, uint64_t n) {
        audit_records(layout_, recs, epoch_, a, n, &c);
      });
  return c;
}

std::string EpochFile::raw_record(uint64_t sample) const {
  check_range(sample, 1);
  std::string out(layout_.record_size, '\0');
  pread_records(sample, 1, reinterpret_cast<uint8_t*>(&out[0]));
  return out;
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
