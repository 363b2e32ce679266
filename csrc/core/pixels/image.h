// uint8 RGB images (H x W x 3, rows contiguous) for the pixel pipeline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tinyvit {

// Any failure to decode an image (corrupt, truncated, unsupported). The Python
// binding maps it to tinyvit.ImageDecodeError and prefixes the source name.
class ImageDecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Read-only view of an RGB uint8 image; stride is in bytes between rows.
struct ImageView {
  const uint8_t* data = nullptr;
  int h = 0, w = 0;
  ptrdiff_t stride = 0;
  const uint8_t* row(int y) const { return data + static_cast<ptrdiff_t>(y) * stride; }
};

// Owning contiguous RGB uint8 image.
struct ImageU8 {
  int h = 0, w = 0;
  std::vector<uint8_t> data;

  ImageU8() = default;
  ImageU8(int height, int width) { reset(height, width); }
  void reset(int height, int width) {
    if (height < 0 || width < 0) throw std::invalid_argument("negative image size");
    h = height;
    w = width;
    data.assign(static_cast<size_t>(h) * static_cast<size_t>(w) * 3, 0);
  }
  // New shape without clearing old bytes (contents unspecified): for reused buffers whose
  // every pixel is written next, where zeroing would be a wasted pass over memory.
  void reshape(int height, int width) {
    if (height < 0 || width < 0) throw std::invalid_argument("negative image size");
    h = height;
    w = width;
    data.resize(static_cast<size_t>(h) * static_cast<size_t>(w) * 3);
  }
  ptrdiff_t stride() const { return static_cast<ptrdiff_t>(w) * 3; }
  uint8_t* row(int y) { return data.data() + static_cast<ptrdiff_t>(y) * stride(); }
  const uint8_t* row(int y) const { return data.data() + static_cast<ptrdiff_t>(y) * stride(); }
  ImageView view() const { return ImageView{data.data(), h, w, stride()}; }
};

}  // namespace tinyvit
