// Tar header walk: see tar.h. Every size is checked against the bytes left in the file
// before it is used to allocate, read or skip, so a hostile header costs at most one
// 512-byte block of work and kTarMaxMetaBytes of memory.
#include "core/data/tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tinyvit {

namespace {

constexpr int64_t kBlock = 512;
constexpr int64_t kInt64Max = INT64_MAX;

bool blank(uint8_t c) { return c == ' ' || c == 0; }

// pread until n bytes or end of file (EINTR retried); -1 on a read error.
int64_t read_at(int fd, void* buf, size_t n, int64_t off) {
  size_t have = 0;
  while (have < n) {
    const ssize_t r = ::pread(fd, static_cast<char*>(buf) + have, n - have,
                              static_cast<off_t>(off + static_cast<int64_t>(have)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    have += static_cast<size_t>(r);
  }
  return static_cast<int64_t>(have);
}

std::string cstr(const uint8_t* p, size_t n) {
  size_t k = 0;
  while (k < n && p[k]) ++k;
  return std::string(reinterpret_cast<const char*>(p), k);
}

Error fail(const std::string& what, int64_t pos) {
  return Error(error_kind::kValue, what + " at byte " + std::to_string(pos));
}

bool is_meta(uint8_t type) { return type == 'L' || type == 'K' || type == 'x' || type == 'g'; }
bool is_regular(uint8_t type) { return type == '0' || type == 0 || type == '7'; }

// The name a regular member gets: the pending long name, else ustar prefix + "/" + name.
std::string header_name(const uint8_t* h) {
  std::string name = cstr(h, 100);
  if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345]) name = cstr(h + 345, 155) + "/" + name;
  return name;
}

// State carried from GNU long-name / pax headers to the member they describe.
struct Pending {
  std::string name;
  bool has_name = false;
  int64_t size = -1;  // pax 'size' record: overrides the next header's size field
  void clear() { name.clear(), has_name = false, size = -1; }
};

// One long-name / pax payload (size already checked to lie inside the file).
Error read_meta(int fd, uint8_t type, int64_t data, int64_t size, int64_t pos, Pending* p) {
  if (size > kTarMaxMetaBytes)
    return fail(std::string(type == 'L' || type == 'K' ? "GNU long-name" : "pax") + " record of " +
                    std::to_string(size) + " bytes (over " + std::to_string(kTarMaxMetaBytes) +
                    ") in the header",
                pos);
  // Read with its padding (inside the file: checked by the caller), which must be NULs:
  // readers that take the name up to the first NUL of the block (Python's tarfile) would
  // otherwise see another name than the size says.
  const int64_t padded = size + (kBlock - size % kBlock) % kBlock;
  std::string rec(static_cast<size_t>(padded), '\0');
  if (padded > 0 && read_at(fd, &rec[0], rec.size(), data) != padded)
    return fail("truncated long-name / pax record of the header", pos);
  for (int64_t k = size; k < padded; ++k)
    if (rec[static_cast<size_t>(k)] != 0)
      return fail("long-name / pax record: non-NUL byte after its " + std::to_string(size) +
                      " bytes (size field edited?) in the header",
                  pos);
  rec.resize(static_cast<size_t>(size));
  // Two long names for one member (readers disagree on which wins: tarfile takes the
  // first, we took the last) are refused rather than guessed.
  const char* twice = "a second long name (GNU 'L' / pax path) before the member it names";
  if (type == 'L') {
    if (p->has_name) return fail(twice, pos);
    p->name = cstr(reinterpret_cast<const uint8_t*>(rec.data()), rec.size());
    p->has_name = true;
  } else if (type == 'x' || type == 'g') {  // 'g' (global) is checked, its values unused
    std::string path;
    int64_t pax_size = -1;
    const std::string why = tar_pax_records(rec, &path, &pax_size);
    if (!why.empty()) return fail("bad pax extended header (" + why + ")", pos);
    if (type == 'g') return Error();
    if (!path.empty() && p->has_name) return fail(twice, pos);
    if (!path.empty()) p->name = path, p->has_name = true;
    if (pax_size >= 0) p->size = pax_size;
  }  // 'K' (long link name) describes nothing indexed here
  return Error();
}

// Headers whose data extent readers disagree on: links, devices, FIFOs and directories
// (POSIX: no data follows; Python's tarfile then reads the next header right after, GNU
// tar skips `size` bytes), an old-style regular file named like a directory (tarfile
// turns it into one), and GNU sparse files (extension blocks before the data). Refused
// rather than guessed.
std::string ambiguous_member(const uint8_t* h, uint8_t type, int64_t size) {
  if (type == 'S') return "GNU sparse member (not supported)";
  if (size == 0) return std::string();
  const void* nul = std::memchr(h, 0, 100);
  const size_t n = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - h) : 100;
  if ((type >= '1' && type <= '6') || (type == 0 && n > 0 && h[n - 1] == '/'))
    return std::string("member of type '") + (type ? char(type) : '0') + "' (no data) with size " +
           std::to_string(size);
  return std::string();
}

}  // namespace

bool tar_number(const uint8_t* p, size_t n, int64_t* out) {
  if (n == 0) return false;
  if (p[0] & 0x80) {
    if (p[0] != 0x80) return false;  // 0xFF = negative base-256; other high bytes are garbage
    uint64_t v = 0;
    for (size_t k = 1; k < n; ++k) {
      if (v > (static_cast<uint64_t>(kInt64Max) >> 8)) return false;
      v = (v << 8) | p[k];
    }
    *out = static_cast<int64_t>(v);
    return true;
  }
  size_t k = 0;
  while (k < n && blank(p[k])) ++k;
  uint64_t v = 0;
  for (; k < n && p[k] >= '0' && p[k] <= '7'; ++k) {
    if (v > (static_cast<uint64_t>(kInt64Max) >> 3)) return false;
    v = v * 8 + static_cast<uint64_t>(p[k] - '0');
  }
  for (; k < n; ++k)
    if (!blank(p[k])) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

bool tar_decimal(const char* s, size_t n, size_t max_digits, int64_t* out) {
  if (n == 0 || n > max_digits || n > 18) return false;  // 18 digits cannot overflow int64
  int64_t v = 0;
  for (size_t k = 0; k < n; ++k) {
    if (s[k] < '0' || s[k] > '9') return false;
    v = v * 10 + (s[k] - '0');
  }
  *out = v;
  return true;
}

std::string tar_pax_records(const std::string& rec, std::string* path, int64_t* size) {
  *size = -1;
  size_t i = 0;
  while (i < rec.size()) {
    const std::string where = "record at byte " + std::to_string(i);
    const size_t digits_max = std::min<size_t>(32, rec.size() - i);
    const void* sp_ptr = std::memchr(rec.data() + i, ' ', digits_max);
    if (sp_ptr == nullptr) return where + ": no 'LENGTH ' prefix";
    const size_t sp = static_cast<size_t>(static_cast<const char*>(sp_ptr) - rec.data());
    int64_t len = 0;
    if (!tar_decimal(rec.data() + i, sp - i, 18, &len))
      return where + ": length is not a decimal number of at most 18 digits";
    const size_t ulen = static_cast<size_t>(len);
    if (ulen < (sp - i) + 4)  // "LEN k=\n" at the least
      return where + ": length " + std::to_string(len) + " shorter than the record";
    if (ulen > rec.size() - i)
      return where + ": length " + std::to_string(len) + " runs past the header's " +
             std::to_string(rec.size()) + " bytes";
    if (rec[i + ulen - 1] != '\n') return where + ": does not end in a newline";
    const size_t kv = sp + 1, end = i + ulen - 1;
    const size_t eq = rec.find('=', kv);
    if (eq == std::string::npos || eq >= end || eq == kv) return where + ": no key=value";
    const std::string key = rec.substr(kv, eq - kv);
    if (key == "path") {
      *path = rec.substr(eq + 1, end - eq - 1);
    } else if (key == "size") {
      if (!tar_decimal(rec.data() + eq + 1, end - eq - 1, 18, size))
        return where + ": size is not a decimal number of at most 18 digits";
    }
    i += ulen;
  }
  return std::string();
}

Error tar_walk(int fd, int64_t file_size, TarMembers* out) {
  uint8_t h[kBlock];
  int64_t pos = 0;
  Pending pending;
  while (true) {
    // tar ends with zero blocks: a file ending at a header boundary is a truncated shard
    // (a copy cut short), not a short one
    if (pos >= file_size)
      return Error(error_kind::kValue, "truncated: ends at byte " + std::to_string(pos) +
                                           " without the end-of-archive blocks");
    const int64_t r = file_size - pos < kBlock ? 0 : read_at(fd, h, kBlock, pos);
    if (r < 0) return fail(std::string("read failed (") + std::strerror(errno) + ")", pos);
    if (r != kBlock) return fail("truncated header", pos);
    bool zero = true;
    for (int k = 0; k < kBlock && zero; ++k) zero = h[k] == 0;
    if (zero) return Error();
    int64_t sum = 0, stored = -1;
    for (int k = 0; k < kBlock; ++k) sum += (k >= 148 && k < 156) ? ' ' : h[k];
    if (!tar_number(h + 148, 8, &stored) || stored != sum)
      return fail("bad header checksum (not a tar file?)", pos);
    int64_t size = 0;
    if (!tar_number(h + 124, 12, &size))
      return fail("bad size field (negative, beyond int64 or not octal) in the header", pos);
    const uint8_t type = h[156];
    if (!is_meta(type) && pending.size >= 0) size = pending.size;
    // Bounds before anything is allocated, read or skipped: the member's data and its
    // padding to a whole block lie inside the file (room >= 0, so no overflow below).
    const int64_t room = file_size - pos - kBlock;
    const int64_t padded = size > room ? -1 : size + (kBlock - size % kBlock) % kBlock;
    if (padded < 0 || padded > room)
      return fail("member of " + std::to_string(size) + " bytes runs past the end of the file (" +
                      std::to_string(file_size) + " bytes: truncated shard?) in the header",
                  pos);
    const int64_t data = pos + kBlock;
    const std::string odd = is_meta(type) ? std::string() : ambiguous_member(h, type, size);
    if (!odd.empty()) return fail(odd + " in the header", pos);
    if (is_meta(type)) {
      const Error e = read_meta(fd, type, data, size, pos, &pending);
      if (e) return e;
    } else {
      if (is_regular(type)) {
        const std::string name = pending.has_name ? pending.name : header_name(h);
        out->names.insert(out->names.end(), name.begin(), name.end());
        out->name_off.push_back(static_cast<int64_t>(out->names.size()));
        out->data_off.push_back(data);
        out->sizes.push_back(size);
      }
      pending.clear();
    }
    pos = data + padded;  // advances by >= one block
  }
}

Error tar_members(const std::string& path, TarMembers* out) {
  struct Fd {  // closed on every path out (no descriptor leaks on a failing open)
    int fd;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  } f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return Error(error_kind::kValue, path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(f.fd, &st) != 0)
    return Error(error_kind::kValue, path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Error(error_kind::kValue, path + ": not a regular file");
  Error e = tar_walk(f.fd, static_cast<int64_t>(st.st_size), out);
  if (e) e.message = path + ": " + e.message;
  return e;
}

}  // namespace tinyvit
