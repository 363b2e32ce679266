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

#include "core/data/tar.h"
#include "core/pixels/header.h"
#include "args.h"
#include "bindings.h"
#include "errors.h"

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


// ---- tar member index: the walk is core/data/tar.cpp (bounded, typed errors) ----

py::tuple tar_members_py(const std::string& path) {
  TarMembers t;
  Error e;
  {
    py::gil_scoped_release nogil;
    e = tar_members(path, &t);
  }
  if (e) raise_error(e);  // ValueError "<path>: <what> at byte N"
  auto arr = [](const std::vector<int64_t>& v) {
    py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(int64_t));
    return a;
  };
  py::array_t<uint8_t> nb(static_cast<py::ssize_t>(t.names.size()));
  if (!t.names.empty()) std::memcpy(nb.mutable_data(), t.names.data(), t.names.size());
  return py::make_tuple(nb, arr(t.name_off), arr(t.data_off), arr(t.sizes));
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
  m.def("_tar_members", &tar_members_py, py::arg("path"),
        "The regular-file members of a tar file, in order, without reading their data: "
        "(names blob uint8, name offsets int64 [M+1], data offsets int64 [M], sizes int64 [M]). "
        "ValueError naming the file and the byte offset of the header for a bad / truncated "
        "header (bounded: sizes checked against the file before anything is read or skipped).");
}

}  // namespace tinyvit
