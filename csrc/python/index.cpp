// Bindings for the dataset index (tinyvit/data/index.py): image sizes from headers
// (core/pixels/header.h), one file or a whole index in parallel with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "core/pixels/header.h"
#include "args.h"
#include "bindings.h"

namespace tinyvit {

namespace {

// Size of one file from its first bytes: 64 KiB first (enough for all but JPEGs with a
// large EXIF / ICC block before the SOF), then the next 1 MiB. -1 = leave it to Pillow.
void size_of_file(const std::string& path, std::vector<uint8_t>& buf, int32_t* wh) {
  wh[0] = wh[1] = -1;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size_t have = 0;
  for (size_t want : {size_t(64) << 10, size_t(1088) << 10}) {
    if (buf.size() < want) buf.resize(want);
    while (have < want) {
      const ssize_t r = ::pread(fd, buf.data() + have, want - have, static_cast<off_t>(have));
      if (r <= 0) break;
      have += static_cast<size_t>(r);
    }
    HeaderSize s;
    const HeaderStatus st = parse_image_header(buf.data(), have, &s);
    if (st == HeaderStatus::ok) {
      wh[0] = s.width;
      wh[1] = s.height;
      break;
    }
    if (st == HeaderStatus::unknown || have < want) break;  // need_more at end of file
  }
  ::close(fd);
}

py::object header_size(py::buffer data) {
  py::buffer_info info = data.request();
  HeaderSize s;
  const auto st = parse_image_header(static_cast<const uint8_t*>(info.ptr),
                                     static_cast<size_t>(info.size * info.itemsize), &s);
  if (st != HeaderStatus::ok) return py::none();
  return py::make_tuple(s.width, s.height);
}

py::array_t<int32_t> read_image_sizes(const std::string& root,
                                      py::array_t<uint8_t, py::array::c_style> blob,
                                      py::array_t<int64_t, py::array::c_style> offsets,
                                      py::handle num_threads_obj) {
  const int threads = static_cast<int>(checked_u64(num_threads_obj, "num_threads", 1, 1024));
  if (offsets.ndim() != 1 || offsets.shape(0) < 1)
    throw py::value_error("offsets must be a 1-d int64 array of N + 1 entries");
  const int64_t n = offsets.shape(0) - 1;
  const int64_t* off = offsets.data();
  const uint8_t* b = blob.data();
  const int64_t blen = blob.size();
  for (int64_t i = 0; i < n; ++i)
    if (off[i] < 0 || off[i] > off[i + 1] || off[i + 1] > blen)
      throw py::value_error("offsets are not a non-decreasing index into blob (entry " +
                            std::to_string(i) + ")");
  py::array_t<int32_t> out({n, int64_t(2)});
  int32_t* o = out.mutable_data();
  const std::string prefix = root.empty() || root.back() == '/' ? root : root + "/";
  {
    py::gil_scoped_release nogil;
    std::atomic<int64_t> next{0};
    auto work = [&]() {
      std::vector<uint8_t> buf;
      std::string path;
      const int64_t chunk = 256;
      for (int64_t a; (a = next.fetch_add(chunk)) < n;) {
        for (int64_t i = a; i < std::min(n, a + chunk); ++i) {
          path.assign(prefix);
          path.append(reinterpret_cast<const char*>(b + off[i]), size_t(off[i + 1] - off[i]));
          size_of_file(path, buf, o + 2 * i);
        }
      }
    };
    std::vector<std::thread> pool;
    const int t = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, n / 256)));
    for (int k = 1; k < t; ++k) pool.emplace_back(work);
    work();
    for (auto& th : pool) th.join();
  }
  return out;
}


// ---- tar member index (POSIX ustar, GNU long names 'L', pax 'x' path records) ----

int64_t tar_octal(const uint8_t* p, size_t n) {
  if (p[0] & 0x80) {  // GNU base-256 for sizes >= 8 GiB
    int64_t v = p[0] & 0x7F;
    for (size_t k = 1; k < n; ++k) v = (v << 8) | p[k];
    return v;
  }
  int64_t v = 0;
  size_t k = 0;
  while (k < n && (p[k] == ' ' || p[k] == 0)) ++k;
  for (; k < n && p[k] >= '0' && p[k] <= '7'; ++k) v = v * 8 + (p[k] - '0');
  return v;
}

std::string cstr(const uint8_t* p, size_t n) {
  size_t k = 0;
  while (k < n && p[k]) ++k;
  return std::string(reinterpret_cast<const char*>(p), k);
}

// pax extended header records "LEN key=value\n"; returns the 'path' value if present.
std::string pax_path(const std::string& rec) {
  size_t i = 0;
  std::string path;
  while (i < rec.size()) {
    size_t sp = rec.find(' ', i);
    if (sp == std::string::npos) break;
    const size_t len = std::stoul(rec.substr(i, sp - i));
    if (len == 0 || i + len > rec.size()) break;
    const std::string kv = rec.substr(sp + 1, len - (sp - i) - 2);
    if (kv.compare(0, 5, "path=") == 0) path = kv.substr(5);
    i += len;
  }
  return path;
}

py::tuple tar_members(const std::string& path) {
  std::vector<uint8_t> names;
  std::vector<int64_t> name_off{0}, data_off, sizes;
  std::string error;
  {
    py::gil_scoped_release nogil;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = "cannot open";
    } else {
      uint8_t h[512];
      int64_t pos = 0;
      std::string long_name;
      while (true) {
        const ssize_t r = ::pread(fd, h, 512, pos);
        // tar ends with zero blocks: a file ending at a header boundary is a truncated
        // shard (a copy cut short), not a short one
        if (r == 0) { error = "truncated: ends at byte " + std::to_string(pos) + " without the end-of-archive blocks"; break; }
        if (r != 512) { error = "truncated header at byte " + std::to_string(pos); break; }
        bool zero = true;
        for (int k = 0; k < 512 && zero; ++k) zero = h[k] == 0;
        if (zero) break;
        int64_t sum = 0;
        for (int k = 0; k < 512; ++k) sum += (k >= 148 && k < 156) ? ' ' : h[k];
        if (sum != tar_octal(h + 148, 8)) {
          error = "bad header checksum at byte " + std::to_string(pos) + " (not a tar file?)";
          break;
        }
        const int64_t size = tar_octal(h + 124, 12);
        const uint8_t type = h[156];
        const int64_t data = pos + 512;
        const int64_t next = data + ((size + 511) / 512) * 512;
        if (type == 'L' || type == 'x') {
          std::string rec(static_cast<size_t>(size), '\0');
          if (::pread(fd, &rec[0], size_t(size), data) != size) {
            error = "truncated long-name record at byte " + std::to_string(pos);
            break;
          }
          if (type == 'L') long_name = cstr(reinterpret_cast<const uint8_t*>(rec.data()), rec.size());
          else { std::string p = pax_path(rec); if (!p.empty()) long_name = p; }
        } else {
          if (type == '0' || type == 0 || type == '7') {
            std::string name = long_name;
            if (name.empty()) {
              name = cstr(h, 100);
              if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345]) name = cstr(h + 345, 155) + "/" + name;
            }
            names.insert(names.end(), name.begin(), name.end());
            name_off.push_back(static_cast<int64_t>(names.size()));
            data_off.push_back(data);
            sizes.push_back(size);
          }
          long_name.clear();
        }
        pos = next;
      }
      struct stat st;
      if (error.empty() && ::fstat(fd, &st) == 0) {
        for (size_t k = 0; k < sizes.size(); ++k)
          if (data_off[k] + sizes[k] > st.st_size) {
            error = "member " + std::to_string(k) + " runs past the end of the file (truncated shard)";
            break;
          }
      }
      ::close(fd);
    }
  }
  if (!error.empty()) throw py::value_error(path + ": " + error);
  auto arr = [](const std::vector<int64_t>& v) {
    py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(int64_t));
    return a;
  };
  py::array_t<uint8_t> nb(static_cast<py::ssize_t>(names.size()));
  if (!names.empty()) std::memcpy(nb.mutable_data(), names.data(), names.size());
  return py::make_tuple(nb, arr(name_off), arr(data_off), arr(sizes));
}

}  // namespace

void init_index(py::module_& m) {
  m.def("_image_header_size", &header_size, py::arg("data"),
        "(width, height) parsed from an image header (JPEG, PNG, GIF, BMP, PNM, WebP), or None "
        "when the format is not parsed here or the header is incomplete / malformed.");
  m.def("_read_image_sizes", &read_image_sizes, py::arg("root"), py::arg("blob"),
        py::arg("offsets"), py::arg("num_threads"),
        "(N, 2) int32 (width, height) of root/<path i> (path i = blob[offsets[i]:offsets[i+1]]) "
        "from the file headers, read on num_threads threads without the GIL; -1 where the "
        "header is not parsed here or the file is unreadable (the caller falls back to Pillow).");
  m.def("_tar_members", &tar_members, py::arg("path"),
        "The regular-file members of a tar file, in order, without reading their data: "
        "(names blob uint8, name offsets int64 [M+1], data offsets int64 [M], sizes int64 [M]). "
        "ValueError naming the file and byte offset for a bad / truncated header.");
}

}  // namespace tinyvit
