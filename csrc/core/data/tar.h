// Tar member index (POSIX ustar, GNU long names 'L', pax 'x' path / size records) over
// untrusted bytes. The walk reads headers only, never member data, and is bounded by the
// file: every numeric field is parsed with checked arithmetic, every member must end
// inside the file (header + size rounded up to 512) before anything is allocated or
// skipped, each step advances by at least one block, and long-name / pax payloads are
// capped at kTarMaxMetaBytes. Every failure is an Error {kind "value"} whose message
// names the file and the byte offset of the header. No Python, no torch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/util/error.h"

namespace tinyvit {

// GNU 'L' / 'K' and pax 'x' / 'g' payloads larger than this are refused (a file name is
// at most PATH_MAX = 4 KiB; pax headers of real archives are a few hundred bytes).
constexpr int64_t kTarMaxMetaBytes = int64_t(64) << 10;

struct TarMembers {
  std::vector<uint8_t> names;           // member names, concatenated
  std::vector<int64_t> name_off{0};     // names[name_off[k]:name_off[k+1]] = name of member k
  std::vector<int64_t> data_off;        // byte offset of member k's data
  std::vector<int64_t> sizes;           // its size in bytes
};

// A ustar numeric field of n bytes: octal digits (leading spaces / NULs, then digits, then
// only spaces / NULs; all blank = 0) or GNU base-256 (first byte 0x80, big-endian value in
// the rest). Negative base-256 values (first byte 0xFF), other first bytes with the high bit
// set, stray characters and values beyond int64 are refused: false, *out untouched.
bool tar_number(const uint8_t* p, size_t n, int64_t* out);

// Non-negative decimal of at most max_digits digits, nothing else, from s[0:n].
bool tar_decimal(const char* s, size_t n, size_t max_digits, int64_t* out);

// Parses pax extended-header records "LEN key=value\n" (all of rec, strictly: a record
// whose length is not a decimal, does not cover its own prefix, runs past rec or does
// not end in '\n' is an error). Sets *path from 'path' and *size from 'size' (-1 when
// absent). Returns an empty string, or what is wrong ("record at byte 12: ...").
std::string tar_pax_records(const std::string& rec, std::string* path, int64_t* size);

// Walks the headers of the open file fd (file_size bytes). Messages carry no file name.
Error tar_walk(int fd, int64_t file_size, TarMembers* out);

// Opens path (a regular file), walks it, closes it (also on failure). Messages are
// "<path>: <what> at byte N".
Error tar_members(const std::string& path, TarMembers* out);

}  // namespace tinyvit
