// Tar header walk (core/data/tar.h): numeric fields, pax records, and hostile headers that
// once looped forever (negative base-256 size), allocated before the bounds check (2 GiB
// long name, 2^40 size) or leaked the descriptor. Archives are built by hand in a temp file.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "core/data/tar.h"

using namespace tinyvit;

namespace {

using Bytes = std::vector<uint8_t>;

// One 512-byte header: name, type, octal size (or a raw 12-byte size field), checksum.
Bytes header(const std::string& name, char type, int64_t size, const Bytes* raw_size = nullptr) {
  Bytes h(512, 0);
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(reinterpret_cast<char*>(h.data() + 100), 8, "%07o", 0644);
  if (raw_size) std::memcpy(h.data() + 124, raw_size->data(), 12);
  else std::snprintf(reinterpret_cast<char*>(h.data() + 124), 12, "%011llo", (unsigned long long)size);
  h[156] = static_cast<uint8_t>(type);
  std::memcpy(h.data() + 257, "ustar\0" "00", 8);
  unsigned sum = 0;
  for (int k = 0; k < 512; ++k) sum += (k >= 148 && k < 156) ? ' ' : h[k];
  std::snprintf(reinterpret_cast<char*>(h.data() + 148), 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

void add(Bytes* t, const std::string& name, char type, const std::string& data) {
  Bytes h = header(name, type, static_cast<int64_t>(data.size()));
  t->insert(t->end(), h.begin(), h.end());
  t->insert(t->end(), data.begin(), data.end());
  t->insert(t->end(), (512 - data.size() % 512) % 512, 0);
}

void finish(Bytes* t) { t->insert(t->end(), 1024, 0); }

std::string write_tmp(const Bytes& b) {
  char path[] = "/tmp/tinyvit_test_tar_XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return "";
  const bool ok = ::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size());
  ::close(fd);
  return ok ? path : "";
}

// Walk b from a temp file; returns the error message ("" = ok).
std::string walk(const Bytes& b, TarMembers* out = nullptr) {
  TarMembers local;
  const std::string p = write_tmp(b);
  CHECK(!p.empty());
  const Error e = tar_members(p, out ? out : &local);
  ::unlink(p.c_str());
  return e ? e.message : std::string();
}

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  while (::readdir(d)) ++n;
  ::closedir(d);
  return n;
}

Bytes raw(std::initializer_list<uint8_t> head, int64_t be_value) {
  Bytes f(head);
  for (int s = 56; s >= 0; s -= 8) f.push_back(static_cast<uint8_t>(uint64_t(be_value) >> s));
  return f;
}

void test_numbers() {
  int64_t v = -7;
  const uint8_t oct[12] = {'0', '0', '0', '0', '0', '0', '0', '0', '1', '7', '7', 0};
  CHECK(tar_number(oct, 12, &v) && v == 0177);
  const uint8_t blank_field[12] = {' ', ' ', 0};
  CHECK(tar_number(blank_field, 12, &v) && v == 0);
  const uint8_t garbage[12] = {'0', '0', '9', '1', 0};
  CHECK(!tar_number(garbage, 12, &v));
  const uint8_t inner_space[12] = {'1', ' ', '2', 0};
  CHECK(!tar_number(inner_space, 12, &v));
  Bytes big = raw({0x80, 0, 0, 0}, int64_t(1) << 40);
  CHECK(tar_number(big.data(), 12, &v) && v == (int64_t(1) << 40));
  Bytes neg = raw({0xFF, 0xFF, 0xFF, 0xFF}, -1024);
  CHECK(!tar_number(neg.data(), 12, &v));
  Bytes over = raw({0x80, 0, 0, 1}, 0);  // 2^64: beyond int64
  CHECK(!tar_number(over.data(), 12, &v));
  CHECK(tar_decimal("123", 3, 18, &v) && v == 123);
  CHECK(!tar_decimal("99999999999999999999", 20, 18, &v));
  CHECK(!tar_decimal("12a", 3, 18, &v) && !tar_decimal("", 0, 18, &v) && !tar_decimal("-1", 2, 18, &v));
}

void test_pax_records() {
  std::string path;
  int64_t size = 0;
  CHECK(tar_pax_records("16 path=a/b.jpg\n11 size=42\n", &path, &size).empty());
  CHECK(path == "a/b.jpg" && size == 42);
  CHECK(has(tar_pax_records("99999999999999999999 path=a.jpg\n", &path, &size), "not a decimal"));
  CHECK(has(tar_pax_records("x6 path=a.jpg\n", &path, &size), "not a decimal"));
  CHECK(has(tar_pax_records("99 path=a.jpg\n", &path, &size), "runs past"));
  CHECK(has(tar_pax_records("0 path=a.jpg\n", &path, &size), "shorter"));
  CHECK(has(tar_pax_records("15 path=a.jpg\n!", &path, &size), "newline"));
  CHECK(has(tar_pax_records("11 size=-4\n", &path, &size), "size is not"));
  CHECK(has(tar_pax_records("path=a.jpg\n", &path, &size), "no 'LENGTH '"));
}

void test_good_archive() {
  Bytes t;
  add(&t, "a.jpg", '0', std::string(700, 'x'));
  add(&t, "dir/", '5', "");
  add(&t, "././@LongLink", 'L', std::string(150, 'n') + std::string(1, '\0'));
  add(&t, "short", '0', "abc");
  add(&t, "pax", 'x', "16 path=p/q.cls\n10 size=3\n");
  add(&t, "ignored", '0', "7\n!");  // the pax size (3) is what the header's 3 says too
  finish(&t);
  TarMembers m;
  CHECK(walk(t, &m).empty());
  CHECK(m.sizes.size() == 3);
  if (m.sizes.size() == 3) {
    std::string n(m.names.begin(), m.names.end());
    CHECK(n == "a.jpg" + std::string(150, 'n') + "p/q.cls");
    CHECK(m.data_off[0] == 512 && m.sizes[0] == 700);
    CHECK(m.sizes[1] == 3 && m.sizes[2] == 3);
  }
  // every truncation of a good archive is refused, never accepted or overrun
  for (size_t cut = 0; cut < t.size() - 1024; cut += 97) {
    Bytes c(t.begin(), t.begin() + static_cast<long>(cut));
    CHECK(!walk(c).empty());
  }
}

void test_hostile_headers() {
  Bytes neg = raw({0xFF, 0xFF, 0xFF, 0xFF}, -1024);  // looped forever on one header
  Bytes t = header("a.jpg", '0', 0, &neg);
  finish(&t);
  std::string e = walk(t);
  CHECK(has(e, "bad size field") && has(e, "at byte 0"));
  Bytes huge = raw({0x80, 0, 0, 0}, int64_t(1) << 40);  // MemoryError / skip past the end
  t = header("a.jpg", '0', 0, &huge);
  finish(&t);
  e = walk(t);
  CHECK(has(e, "runs past the end") && has(e, "at byte 0"));
  t = header("././@LongLink", 'L', int64_t(2) << 30);  // allocated 2 GiB before the check
  finish(&t);
  e = walk(t);
  CHECK(has(e, "runs past the end"));
  Bytes t2;
  add(&t2, "ok.jpg", '0', "x");
  add(&t2, "././@LongLink", 'L', std::string(kTarMaxMetaBytes + 1, 'n'));
  finish(&t2);
  e = walk(t2);
  CHECK(has(e, "GNU long-name record of 65537 bytes") && has(e, "at byte 1024"));
  Bytes t3;
  add(&t3, "pax", 'x', "99999999999999999999 path=a.jpg\n");
  add(&t3, "a.jpg", '0', "x");
  finish(&t3);
  e = walk(t3);
  CHECK(has(e, "bad pax extended header") && has(e, "at byte 0"));
  Bytes t4;
  add(&t4, "pax", 'x', "20 size=99999999999\n");  // pax size past the end of the file
  add(&t4, "a.jpg", '0', "");
  finish(&t4);
  CHECK(has(walk(t4), "runs past the end"));
  Bytes t6;  // two long names for one member: refused, not guessed
  add(&t6, "././@LongLink", 'L', "first.jpg");
  add(&t6, "junk", 'K', "link");
  add(&t6, "././@LongLink", 'L', "second.cls");
  add(&t6, "x", '0', "1");
  finish(&t6);
  e = walk(t6);
  CHECK(has(e, "a second long name") && has(e, "at byte 2048"));
  Bytes t7;  // a long-name size cut to 1: the rest of the name is still in the block
  add(&t7, "././@LongLink", 'L', "dddd/s1.jpg");
  add(&t7, "x", '0', "1");
  finish(&t7);
  Bytes h7 = header("././@LongLink", 'L', 1);
  std::copy(h7.begin(), h7.end(), t7.begin());
  CHECK(has(walk(t7), "non-NUL byte after its 1 bytes"));
  for (char type : {'1', '2', '5', 'S'}) {  // no data (or sparse maps): readers disagree
    Bytes t8;
    add(&t8, "a.jpg", type, std::string(600, 'x'));
    finish(&t8);
    CHECK(has(walk(t8), type == 'S' ? "GNU sparse" : "(no data) with size 600"));
  }
  Bytes t9;
  add(&t9, "d/", '5', "");  // a directory of size 0 is fine
  add(&t9, "pax", 'g', "10 path=a\n");  // global pax: checked, unused
  add(&t9, "a.jpg", '0', "x");
  finish(&t9);
  TarMembers m9;
  CHECK(walk(t9, &m9).empty() && m9.sizes.size() == 1);
  Bytes t10;
  add(&t10, "pax", 'g', "1x path=a\n");
  finish(&t10);
  CHECK(has(walk(t10), "bad pax extended header"));
  Bytes t5 = header("a.jpg", '0', 3);
  t5[150] ^= 1;  // checksum edit
  finish(&t5);
  CHECK(has(walk(t5), "checksum"));
  CHECK(walk(Bytes(512, 0)).empty());  // one zero block ends the archive (as tarfile reads it)
  CHECK(walk(Bytes(1024, 0)).empty());  // an empty archive: no members
}

void test_no_fd_leak() {
  Bytes neg = raw({0xFF, 0xFF, 0xFF, 0xFF}, -1024);
  Bytes t = header("a.jpg", '0', 0, &neg);
  finish(&t);
  const std::string p = write_tmp(t);
  const int before = open_fds();
  for (int k = 0; k < 3; ++k) {
    TarMembers m;
    CHECK(static_cast<bool>(tar_members(p, &m)));
    CHECK(static_cast<bool>(tar_members("/nonexistent/x.tar", &m)));
    CHECK(static_cast<bool>(tar_members("/tmp", &m)));  // a directory: not a regular file
  }
  CHECK(open_fds() == before);
  ::unlink(p.c_str());
}

// Random header edits (checksum fixed up so the walk goes past it): every result is an
// error or members that lie inside the file in increasing order. Run under
// TINYVIT_SANITIZE=ON this also checks for reads out of bounds.
void test_random_edits() {
  Bytes base;
  add(&base, "a.jpg", '0', std::string(700, 'x'));
  add(&base, "././@LongLink", 'L', std::string(150, 'n') + std::string(1, '\0'));
  add(&base, "b.cls", '0', "3");
  add(&base, "pax", 'x', "16 path=p/q.jpg\n");
  add(&base, "c.jpg", '0', std::string(1500, 'y'));
  finish(&base);
  const int64_t heads[] = {0, 1536, 2560, 3072, 3584, 4096};
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto next = [&s]() { return s ^= s << 13, s ^= s >> 7, s ^= s << 17, s; };
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    Bytes t = base;
    const int64_t pos = heads[next() % 6];
    for (int k = 0, n = 1 + int(next() % 4); k < n; ++k) {
      const size_t at = next() % 3 == 0 ? 124 + next() % 12 : next() % 512;  // size field often
      t[size_t(pos) + at] = uint8_t(next());
    }
    unsigned sum = 0;
    for (int k = 0; k < 512; ++k) sum += (k >= 148 && k < 156) ? ' ' : t[size_t(pos) + k];
    std::snprintf(reinterpret_cast<char*>(t.data() + pos + 148), 8, "%06o", sum);
    t[size_t(pos) + 155] = ' ';
    TarMembers m;
    if (!walk(t, &m).empty()) continue;
    ++accepted;
    int64_t prev = 0;
    for (size_t k = 0; k < m.sizes.size(); ++k) {
      CHECK(m.data_off[k] > prev && m.sizes[k] >= 0);
      CHECK(m.data_off[k] + m.sizes[k] <= int64_t(t.size()));
      prev = m.data_off[k];
    }
  }
  CHECK(accepted > 0 && accepted < 3000);  // both outcomes occur
}

}  // namespace

int main() {
  test_numbers();
  test_pax_records();
  test_good_archive();
  test_hostile_headers();
  test_no_fd_leak();
  test_random_edits();
  return TEST_REPORT();
}
