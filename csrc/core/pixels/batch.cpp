#include "core/pixels/batch.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/pixels/jpeg_decode.h"
#include "core/pixels/pixels.h"

namespace tinyvit {

namespace {

Error errno_error(int err, const std::string& what) {
  const std::string msg = what + ": " + std::strerror(err);
  if (err == ENOENT || err == ENOTDIR) return Error(error_kind::kNotFound, msg);
  if (err == EACCES || err == EPERM) return Error(error_kind::kPermission, msg);
  if (err == EISDIR) return Error(error_kind::kIsDirectory, msg);
  if (err == ENOMEM) return Error(error_kind::kMemory, msg);
  return Error(error_kind::kIo, msg);
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// One item, start to end; every exception becomes the slot's Error (a throw out of a
// pool thread would be std::terminate).
void run_item(const BatchItem& it, const AugConfig& cfg, const ApplyParams& params,
              int scale_denom, uint8_t* dst, BatchOutput& out) {
  Error& err = out.errors[it.slot];
  try {
    if (it.kind == BatchItem::Kind::Image) {
      const Plan plan = make_plan(it.seed, it.image.w, it.image.h, cfg);
      apply_plan(plan, it.image, params, dst);
      out.plans[it.slot] = plan;
      out.has_plan[it.slot] = 1;
      return;
    }
    std::vector<uint8_t> file;
    const uint8_t* data = it.data;
    size_t size = it.size;
    if (it.kind == BatchItem::Kind::File) {
      err = read_image_file(it.path, file);
      if (err) return;
      data = file.data();
      size = file.size();
    }
    if (size > 0 && !looks_like_jpeg(data, size)) {
      if (it.kind == BatchItem::Kind::File) out.undecoded[it.slot] = std::move(file);
      else out.undecoded[it.slot].assign(data, data + size);
      out.needs_decode[it.slot] = 1;
      return;
    }
    JpegDecoder decoder;  // the header is parsed once, for the plan and the decode
    const JpegInfo& info = decoder.open(data, size);
    const Plan plan = make_plan(it.seed, info.width, info.height, cfg);
    apply_plan_jpeg(plan, decoder, params, dst, scale_denom);
    out.plans[it.slot] = plan;
    out.has_plan[it.slot] = 1;
  } catch (...) {
    err = current_pixel_error();
  }
}

}  // namespace

Error current_pixel_error() {
  try {
    throw;
  } catch (const ImageDecodeError& e) {
    return Error(error_kind::kDecode, e.what());
  } catch (const std::invalid_argument& e) {
    return Error(error_kind::kValue, e.what());
  } catch (const std::bad_alloc&) {
    // A decodable header can declare more pixels than memory holds (a decompression bomb).
    return Error(error_kind::kDecode, "out of memory decoding the image");
  } catch (const std::exception& e) {
    return Error(error_kind::kDecode, e.what());
  } catch (...) {
    return Error(error_kind::kDecode, "unknown error");
  }
}

Error read_image_file(const std::string& path, std::vector<uint8_t>& bytes, size_t max_bytes) {
  Fd f;
  do {
    f.fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  } while (f.fd < 0 && errno == EINTR);
  if (f.fd < 0) return errno_error(errno, "cannot open file");
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return errno_error(errno, "cannot stat file");
  if (S_ISDIR(st.st_mode)) return Error(error_kind::kIsDirectory, "is a directory, not an image file");
  if (!S_ISREG(st.st_mode))
    return Error(error_kind::kIo, "not a regular file (a FIFO, socket or device), refused");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    return Error(error_kind::kDecode, "file is " + std::to_string(st.st_size) +
                                          " bytes, over the " + std::to_string(max_bytes) +
                                          "-byte limit for one image");
  const size_t n = static_cast<size_t>(st.st_size);
  try {
    bytes.resize(n);
  } catch (const std::bad_alloc&) {
    return Error(error_kind::kMemory, "out of memory reading " + std::to_string(n) + " bytes");
  }
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(f.fd, bytes.data() + done, n - done, static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_error(errno, "cannot read file");
    }
    if (r == 0) break;  // shrank since fstat: what was read is all there is
    done += static_cast<size_t>(r);
  }
  bytes.resize(done);
  return Error();
}

void run_batch(ThreadPool& pool, const std::vector<BatchItem>& items, const AugConfig& cfg,
               int scale_denom, uint8_t* pixels, BatchOutput& out) {
  for (const BatchItem& it : items)
    if (it.slot >= out.size()) throw std::invalid_argument("run_batch: item slot out of range");
  const ApplyParams params = ApplyParams::from(cfg);
  const size_t row = static_cast<size_t>(cfg.out_h) * cfg.out_w * 3;
  pool.parallel_for(items.size(), [&](size_t k) {
    const BatchItem& it = items[k];
    out.errors[it.slot] = Error();
    out.needs_decode[it.slot] = 0;
    out.has_plan[it.slot] = 0;
    run_item(it, cfg, params, scale_denom, pixels + it.slot * row, out);
  });
}

DeviceParams pack_device_params(const std::vector<Plan>& plans) {
  DeviceParams d;
  d.n = plans.size();
  for (const Plan& p : plans) d.max_boxes = std::max(d.max_boxes, p.erase.size());
  const size_t B = d.max_boxes;
  d.erase_boxes.assign(d.n * B * 4, 0);
  d.erase_seeds.assign(d.n * B, 0);
  d.erase_count.assign(d.n, 0);
  d.mix.assign(d.n, 0);
  d.lam.assign(d.n, 1.0f);
  d.cut_box.assign(d.n * 4, 0);
  for (size_t i = 0; i < d.n; ++i) {
    const Plan& p = plans[i];
    d.erase_count[i] = static_cast<int32_t>(p.erase.size());
    for (size_t b = 0; b < p.erase.size(); ++b) {
      int32_t* box = &d.erase_boxes[(i * B + b) * 4];
      box[0] = p.erase[b].x;
      box[1] = p.erase[b].y;
      box[2] = p.erase[b].w;
      box[3] = p.erase[b].h;
      d.erase_seeds[i * B + b] = p.erase[b].noise_seed;
    }
    d.mix[i] = static_cast<int8_t>(p.mix);
    d.lam[i] = p.lam;
    d.cut_box[i * 4 + 0] = p.cut_x0;
    d.cut_box[i * 4 + 1] = p.cut_y0;
    d.cut_box[i * 4 + 2] = p.cut_x1;
    d.cut_box[i * 4 + 3] = p.cut_y1;
  }
  return d;
}

}  // namespace tinyvit
