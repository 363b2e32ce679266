// Unit tests for make_plan and pairing/seeds (pure C++, no Python).
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"
#include "core/plan/pairing.h"
#include "core/rng/pcg32.h"
#include "core/plan/plan.h"

using namespace tinyvit;

namespace {

AugConfig full_config() {
  AugConfig c;
  c.interpolation = Interp::Random;
  c.ra_enabled = true;
  for (int i = 0; i < 15; ++i) c.ra_ops.push_back(static_cast<RaOp>(i));
  c.ra_interpolation = Interp::Random;
  c.cj_brightness = c.cj_contrast = c.cj_saturation = 0.4;
  c.cj_hue = 0.1;
  c.re_prob = 0.7;
  c.re_max_count = 3;
  c.mixup_alpha = 0.8;
  c.cutmix_alpha = 1.0;
  return c;
}

bool same(const Plan& a, const Plan& b) {
  if (a.crop_x != b.crop_x || a.crop_y != b.crop_y || a.crop_w != b.crop_w ||
      a.crop_h != b.crop_h || a.resize != b.resize || a.flip != b.flip || a.jitter != b.jitter ||
      a.mix != b.mix || a.lam != b.lam || a.cut_x0 != b.cut_x0 || a.cut_y0 != b.cut_y0 ||
      a.cut_x1 != b.cut_x1 || a.cut_y1 != b.cut_y1 || a.ra.size() != b.ra.size() ||
      a.erase.size() != b.erase.size())
    return false;
  for (int k = 0; k < 4; ++k)
    if (a.jitter_factors[k] != b.jitter_factors[k] || a.jitter_order[k] != b.jitter_order[k])
      return false;
  for (size_t i = 0; i < a.ra.size(); ++i)
    if (a.ra[i].op != b.ra[i].op || a.ra[i].arg != b.ra[i].arg ||
        a.ra[i].resample != b.ra[i].resample)
      return false;
  for (size_t i = 0; i < a.erase.size(); ++i)
    if (a.erase[i].x != b.erase[i].x || a.erase[i].y != b.erase[i].y ||
        a.erase[i].w != b.erase[i].w || a.erase[i].h != b.erase[i].h ||
        a.erase[i].noise_seed != b.erase[i].noise_seed)
      return false;
  return true;
}

void test_determinism_and_bounds() {
  const AugConfig cfg = full_config();
  const int sizes[][2] = {{500, 375}, {1, 1}, {1, 1000}, {1000, 1}, {7, 3}, {4000, 3000}};
  int differ = 0;
  bool bounds_ok = true, lam_ok = true;
  for (const auto& s : sizes) {
    for (uint32_t seed = 0; seed < 2000; ++seed) {
      const Plan a = make_plan(seed, s[0], s[1], cfg);
      const Plan b = make_plan(seed, s[0], s[1], cfg);
      CHECK(same(a, b));
      if (seed > 0 && !same(a, make_plan(seed - 1, s[0], s[1], cfg))) ++differ;
      bounds_ok = bounds_ok && a.crop_w >= 1 && a.crop_h >= 1 && a.crop_x >= 0 &&
                  a.crop_y >= 0 && a.crop_x + a.crop_w <= s[0] && a.crop_y + a.crop_h <= s[1];
      for (const EraseBox& e : a.erase)
        bounds_ok = bounds_ok && e.x >= 0 && e.y >= 0 && e.w < cfg.out_w && e.h < cfg.out_h &&
                    e.x + e.w <= cfg.out_w && e.y + e.h <= cfg.out_h;
      bounds_ok = bounds_ok && a.erase.size() <= 3;
      if (a.mix == MixMode::CutMix) {
        bounds_ok = bounds_ok && a.cut_x0 >= 0 && a.cut_x0 <= a.cut_x1 &&
                    a.cut_x1 <= cfg.out_w && a.cut_y0 >= 0 && a.cut_y0 <= a.cut_y1 &&
                    a.cut_y1 <= cfg.out_h;
        const double area = double(a.cut_x1 - a.cut_x0) * (a.cut_y1 - a.cut_y0);
        lam_ok = lam_ok && std::fabs(a.lam - (1.0 - area / (224.0 * 224.0))) < 1e-6;
      }
      lam_ok = lam_ok && a.lam >= 0.0f && a.lam <= 1.0f;
      for (const RaStep& r : a.ra)
        bounds_ok = bounds_ok && (ra_op_is_geometric(r.op) ? (r.resample == Interp::Bilinear ||
                                                              r.resample == Interp::Bicubic)
                                                           : r.resample == Interp::Nearest);
    }
  }
  CHECK(bounds_ok);
  CHECK(lam_ok);
  CHECK(differ > 6 * 1990);  // consecutive seeds give different plans
}

void test_fallback_crop() {
  // scale min > 1 of the area is impossible -> torchvision's centre-crop fallback
  AugConfig c;
  c.scale_min = c.scale_max = 1.0;  // full area: any aspect != source aspect fails
  const Plan p = make_plan(1, 1000, 100, c);  // aspect 10 > 4/3: clamp to 4/3
  CHECK(p.crop_h == 100);
  CHECK(p.crop_w == 133);
  CHECK(p.crop_x == (1000 - 133) / 2);
  CHECK(p.crop_y == 0);
}

void test_invalid() {
  AugConfig c;
  bool threw = false;
  try { make_plan(1, 0, 10, c); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw);
  c.hflip = 1.5;
  threw = false;
  try { validate_config(c); } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("hflip") != std::string::npos;
  }
  CHECK(threw);
  RaOp op;
  CHECK(ra_op_from_name("SolarizeIncreasing", &op) && op == RaOp::SolarizeIncreasing);
  CHECK(!ra_op_from_name("Cutout", &op));
}

// names.h: each table is a bijection between the enum values and their names.
void test_name_tables() {
  for (int i = 0; i < kNumInterp; ++i) {
    Interp v;
    CHECK(interp_from_name(interp_name(static_cast<Interp>(i)), &v) && static_cast<int>(v) == i);
  }
  for (int i = 0; i < kNumRaOps; ++i) {
    RaOp v;
    CHECK(ra_op_from_name(ra_op_name(static_cast<RaOp>(i)), &v) && static_cast<int>(v) == i);
  }
  for (int i = 0; i < kNumEraseModes; ++i) {
    EraseMode v;
    CHECK(erase_mode_from_name(erase_mode_name(static_cast<EraseMode>(i)), &v) && static_cast<int>(v) == i);
  }
  CHECK(std::string(interp_name(Interp::Bicubic)) == "bicubic");
  CHECK(std::string(erase_mode_name(EraseMode::Pixel)) == "pixel");
  CHECK(std::string(mix_mode_name(MixMode::CutMix)) == "cutmix");
  CHECK(std::string(interp_name(static_cast<Interp>(kNumInterp))) == "?");
  Interp i;
  CHECK(!interp_from_name("lanczos", &i) && !interp_from_name("Bicubic", &i));
  EraseMode m;
  CHECK(!erase_mode_from_name("", &m));
  // timm's increasing set swaps in the *Increasing variant where one exists, in place.
  for (int k = 0; k < kNumRandTransforms; ++k) {
    const std::string a = ra_op_name(kRandTransforms[k]), b = ra_op_name(kRandIncreasingTransforms[k]);
    RaOp inc;
    CHECK(b == (ra_op_from_name(a + "Increasing", &inc) ? a + "Increasing" : a));
  }
}

void test_sample_seed_is_stream_output() {
  PCG32 g((uint64_t{77} << 32) | 5, kStreamSeeds);
  bool ok = true;
  for (uint64_t i = 0; i < 1000; ++i) ok = ok && sample_seed(77, 5, i) == g.next_u32();
  CHECK(ok);
}

void test_pairing() {
  for (uint64_t n : {1ull, 2ull, 3ull, 10ull, 17ull, 1000ull, 4097ull}) {
    std::vector<int> seen(n, 0);
    bool ok = true;
    for (uint64_t pos = 0; pos < n; ++pos) {
      const uint64_t idx = pair_perm(pos, n, 42, 3);
      ok = ok && idx < n && pair_perm_inverse(idx, n, 42, 3) == pos;
      if (idx < n) seen[idx]++;
    }
    for (uint64_t i = 0; i < n; ++i) {
      ok = ok && seen[i] == 1;
      const uint64_t j = mix_partner(3, i, n, 42);
      ok = ok && j < n && mix_partner(3, j, n, 42) == i;
      ok = ok && ((n % 2 == 1) || j != i);  // even n: nobody pairs with itself
    }
    CHECK(ok);
  }
  // different epochs give different pairings
  int same_partner = 0;
  for (uint64_t i = 0; i < 1000; ++i) same_partner += mix_partner(0, i, 1000, 7) == mix_partner(1, i, 1000, 7);
  CHECK(same_partner < 20);
}

void test_erase_noise() {
  std::vector<float> a(20001), b(20001);
  erase_noise(9, a.data(), a.size());
  erase_noise(9, b.data(), b.size());
  double s = 0, s2 = 0;
  bool eq = true;
  for (size_t i = 0; i < a.size(); ++i) {
    eq = eq && a[i] == b[i];
    s += a[i];
    s2 += double(a[i]) * a[i];
  }
  CHECK(eq);
  const double mean = s / a.size();
  CHECK_NEAR(mean, 0.0, 0.03);
  CHECK_NEAR(s2 / a.size() - mean * mean, 1.0, 0.04);
  // a prefix of a longer request equals the shorter request
  std::vector<float> c(7);
  erase_noise(9, c.data(), c.size());
  for (size_t i = 0; i < c.size(); ++i) CHECK(c[i] == a[i]);
}

}  // namespace

int main() {
  test_determinism_and_bounds();
  test_fallback_crop();
  test_invalid();
  test_name_tables();
  test_sample_seed_is_stream_output();
  test_pairing();
  test_erase_noise();
  return TEST_REPORT();
}
