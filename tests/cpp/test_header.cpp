// Image header parser (core/pixels/header.h): hand-built headers per format, every
// truncation of each (never a read past the end: run under TINYVIT_SANITIZE=ON).
#include <cstdint>
#include <vector>

#include "check.h"
#include "core/pixels/header.h"

using namespace tinyvit;

namespace {

std::vector<uint8_t> jpeg(int w, int h, size_t app_bytes) {
  std::vector<uint8_t> d = {0xFF, 0xD8};
  while (app_bytes > 0) {  // APPn segments before the SOF (EXIF, ICC)
    const size_t len = app_bytes > 65533 ? 65533 : app_bytes;
    d.insert(d.end(), {0xFF, 0xE1, uint8_t((len + 2) >> 8), uint8_t((len + 2) & 0xFF)});
    d.insert(d.end(), len, 0x45);
    app_bytes -= len;
  }
  d.insert(d.end(), {0xFF, 0xFF, 0xC2, 0x00, 0x11, 0x08, uint8_t(h >> 8), uint8_t(h), uint8_t(w >> 8),
                     uint8_t(w), 0x03});
  d.insert(d.end(), 9, 0x11);
  d.insert(d.end(), {0xFF, 0xDA});
  return d;
}

std::vector<uint8_t> png(uint32_t w, uint32_t h) {
  std::vector<uint8_t> d = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) d.push_back(uint8_t(v >> s));
  d.insert(d.end(), 5, 0);
  return d;
}

void expect(const std::vector<uint8_t>& d, int w, int h) {
  HeaderSize s;
  CHECK(parse_image_header(d.data(), d.size(), &s) == HeaderStatus::ok);
  CHECK(s.width == w && s.height == h);
  for (size_t n = 0; n < d.size(); ++n) {  // every prefix: never ok with a wrong size
    HeaderSize t;
    const HeaderStatus st = parse_image_header(d.data(), n, &t);
    CHECK(st != HeaderStatus::ok || (t.width == w && t.height == h));
  }
}

}  // namespace

int main() {
  expect(jpeg(640, 480, 0), 640, 480);
  expect(jpeg(3, 65535, 70000), 3, 65535);
  {
    auto d = jpeg(10, 20, 70000);
    HeaderSize s;
    CHECK(parse_image_header(d.data(), 65536, &s) == HeaderStatus::need_more);
  }
  expect(png(1, 1), 1, 1);
  expect(png(100000, 7), 100000, 7);
  {
    auto d = png(0, 5);
    HeaderSize s;
    CHECK(parse_image_header(d.data(), d.size(), &s) == HeaderStatus::unknown);
  }
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0x2C, 0x01, 0x05, 0x00};
  expect(gif, 300, 5);
  std::vector<uint8_t> bmp(54, 0);
  bmp[0] = 'B';
  bmp[1] = 'M';
  bmp[14] = 40;
  bmp[18] = 0x20;                                 // width 32
  bmp[22] = 0xF0, bmp[23] = bmp[24] = bmp[25] = 0xFF;  // height -16: top-down rows
  expect(bmp, 32, 16);
  const char* pnm = "P6\n# comment\n 17 9\n255\n";
  expect(std::vector<uint8_t>(pnm, pnm + 23), 17, 9);
  const char* junk = "not an image";
  HeaderSize s;
  CHECK(parse_image_header(reinterpret_cast<const uint8_t*>(junk), 12, &s) == HeaderStatus::unknown);
  return TEST_REPORT();
}
