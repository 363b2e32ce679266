// A batch of replays on the thread pool: for every item one plan is made (from its seed
// and the source size the decoder reports), applied to the pixels, and kept, so the device
// part of the same plan (erase boxes, mix mode, lam, CutMix box) is packed without a second
// make_plan. No item failure throws: each is recorded as an Error for its slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/pixels/image.h"
#include "core/plan/plan.h"
#include "core/util/error.h"
#include "core/util/thread_pool.h"

namespace tinyvit {

// One image is never more than this many encoded bytes: a bigger "image" file (a huge
// sparse file, a misnamed archive) is refused before any allocation.
constexpr size_t kMaxImageFileBytes = size_t{1} << 30;

struct BatchItem {
  enum class Kind : uint8_t { Encoded, File, Image };
  Kind kind = Kind::Encoded;
  uint32_t seed = 0;
  size_t slot = 0;                  // output row, plan and error index
  const uint8_t* data = nullptr;    // Encoded: bytes (owned by the caller)
  size_t size = 0;
  std::string path;                 // File: read by the worker thread
  ImageView image;                  // Image: decoded RGB (owned by the caller)
};

struct BatchOutput {
  explicit BatchOutput(size_t n) : plans(n), has_plan(n, 0), errors(n), undecoded(n), needs_decode(n, 0) {}
  std::vector<Plan> plans;        // the plan each row was made with (has_plan[slot] = 1)
  std::vector<uint8_t> has_plan;
  std::vector<Error> errors;      // per slot; empty kind = fine
  // Encoded/File items that are not JPEG: their bytes, for the caller to decode (e.g. with
  // Pillow) and run again as an Image item in the same slot.
  std::vector<std::vector<uint8_t>> undecoded;
  std::vector<uint8_t> needs_decode;
  size_t size() const { return plans.size(); }
};

// Runs every item (GIL-free, torch-free): writes out_h * out_w * 3 bytes at
// pixels + slot * row_bytes, and plans/errors/undecoded at `slot` of `out`.
void run_batch(ThreadPool& pool, const std::vector<BatchItem>& items, const AugConfig& cfg,
               int scale_denom, uint8_t* pixels, BatchOutput& out);

// Inside a catch block: the Error the in-flight exception stands for on the pixel path
// (ImageDecodeError and anything unexpected -> decode, std::invalid_argument -> value).
Error current_pixel_error();

// The whole file at `path` into `bytes`: a regular file only (opened non-blocking, so a
// FIFO or device cannot hang the reader), at most max_bytes. Returns the Error (kind
// not_found / permission / is_directory / io / decode for an oversized file) or none.
Error read_image_file(const std::string& path, std::vector<uint8_t>& bytes,
                      size_t max_bytes = kMaxImageFileBytes);

// The device part of many plans, packed: n rows, B = most erase boxes of any plan.
struct DeviceParams {
  size_t n = 0, max_boxes = 0;
  std::vector<int32_t> erase_boxes;  // n * B * 4: x, y, w, h (unused rows 0)
  std::vector<int64_t> erase_seeds;  // n * B
  std::vector<int32_t> erase_count;  // n
  std::vector<int8_t> mix;           // n: 0 none, 1 mixup, 2 cutmix
  std::vector<float> lam;            // n
  std::vector<int32_t> cut_box;      // n * 4: x0, y0, x1, y1
};
DeviceParams pack_device_params(const std::vector<Plan>& plans);

}  // namespace tinyvit
