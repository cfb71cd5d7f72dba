// zip.cpp — see zip.h. Offsets follow APPNOTE.TXT (4.3.7 local header, 4.3.12 central directory,
// 4.3.14-16 ZIP64 end records, 4.5.3 ZIP64 extra field).
#include "engine/io/zip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace dfq {

namespace {
uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t u64(const uint8_t* p) { return uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32; }
bool sig(const uint8_t* p, uint8_t a, uint8_t b) { return p[0] == 'P' && p[1] == 'K' && p[2] == a && p[3] == b; }
// [off, off + len) inside [0, n)?
bool in_range(uint64_t off, uint64_t len, uint64_t n) { return off <= n && len <= n - off; }
}  // namespace

bool is_zip(const uint8_t* p, size_t n) { return n >= 4 && sig(p, 3, 4); }

void ZipReader::fail(const std::string& why) const {
  throw std::runtime_error("dfq: " + label_ + ": corrupt ZIP archive: " + why);
}

ZipReader::ZipReader(Bytes archive, std::string label) : z_(std::move(archive)), label_(std::move(label)) {
  const uint8_t* d = z_.data;
  const uint64_t n = z_.size;
  if (n < 22) fail("too short for an end-of-central-directory record (truncated?)");
  // The EOCD is the last 22 bytes plus at most a 65535-byte comment.
  uint64_t eocd = UINT64_MAX;
  for (uint64_t k = n - 22 + 1; k-- > 0 && n - 22 - k <= 65535;)
    if (sig(d + k, 5, 6) && k + 22 + u16(d + k + 20) == n) { eocd = k; break; }
  if (eocd == UINT64_MAX) fail("no end-of-central-directory record (truncated?)");
  uint64_t count = u16(d + eocd + 10), cd_size = u32(d + eocd + 12), cd_off = u32(d + eocd + 16);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
    if (eocd < 20 || !sig(d + eocd - 20, 6, 7)) fail("ZIP64 sizes without a ZIP64 locator");
    uint64_t z64 = u64(d + eocd - 20 + 8);
    if (!in_range(z64, 56, n) || !sig(d + z64, 6, 6)) fail("bad ZIP64 end record offset");
    count = u64(d + z64 + 32);
    cd_size = u64(d + z64 + 40);
    cd_off = u64(d + z64 + 48);
  }
  if (!in_range(cd_off, cd_size, n)) fail("central directory outside the file");
  if (count > cd_size / 46) fail("entry count " + std::to_string(count) + " does not fit the central directory");
  uint64_t p = cd_off, end = cd_off + cd_size;
  entries_.reserve(count);
  for (uint64_t k = 0; k < count; ++k) {
    if (!in_range(p, 46, end) || !sig(d + p, 1, 2)) fail("bad central-directory entry " + std::to_string(k));
    const uint8_t* h = d + p;
    ZipEntry e;
    if (u16(h + 8) & 1) fail("encrypted entries are not supported");
    e.method = u16(h + 10);
    e.crc = u32(h + 16);
    e.comp_size = u32(h + 20);
    e.size = u32(h + 24);
    uint64_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
    e.local_offset = u32(h + 42);
    if (!in_range(p + 46, name_len + extra_len + comment_len, end)) fail("central-directory entry overruns the directory");
    e.name.assign(reinterpret_cast<const char*>(h + 46), name_len);
    // ZIP64 extra field: the 64-bit values, in this order, for each 32-bit field set to 0xFFFFFFFF.
    const uint8_t* x = h + 46 + name_len;
    for (uint64_t q = 0; q + 4 <= extra_len;) {
      uint16_t id = u16(x + q), len = u16(x + q + 2);
      if (q + 4 + len > extra_len) fail("extra field overruns its entry");
      if (id == 1) {
        const uint8_t* f = x + q + 4;
        uint64_t left = len;
        auto take = [&](uint64_t& v) {
          if (left < 8) fail("short ZIP64 extra field");
          v = u64(f);
          f += 8;
          left -= 8;
        };
        if (e.size == 0xFFFFFFFFu) take(e.size);
        if (e.comp_size == 0xFFFFFFFFu) take(e.comp_size);
        if (e.local_offset == 0xFFFFFFFFu) take(e.local_offset);
      }
      q += 4 + len;
    }
    entries_.push_back(std::move(e));
    p += 46 + name_len + extra_len + comment_len;
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  for (const ZipEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

Bytes ZipReader::read(const ZipEntry& e) const {
  const uint8_t* d = z_.data;
  const uint64_t n = z_.size;
  if (!in_range(e.local_offset, 30, n) || !sig(d + e.local_offset, 3, 4)) fail("bad local header offset for " + e.name);
  uint64_t data = e.local_offset + 30 + u16(d + e.local_offset + 26) + u16(d + e.local_offset + 28);
  if (!in_range(data, e.comp_size, n)) fail(e.name + " extends past the end of the file (truncated?)");
  Bytes out;
  if (e.method == 0) {
    if (e.comp_size != e.size) fail(e.name + ": stored entry with differing sizes");
    out.data = d + data;
    out.size = e.size;
    out.owner = z_.owner;
  } else if (e.method == 8) {
    // deflate cannot expand more than ~1032:1; anything beyond is a lie (or a bomb)
    if (e.size / 1032 > e.comp_size + 1) fail(e.name + ": declared size " + std::to_string(e.size) + " is impossible for its compressed size");
    auto buf = std::make_shared<std::vector<uint8_t>>(e.size);
    z_stream s{};
    if (inflateInit2(&s, -15) != Z_OK) fail("zlib inflateInit2 failed");
    const uint8_t* in = d + data;
    uint64_t in_left = e.comp_size, out_done = 0;
    int rc = Z_OK;
    while (rc == Z_OK) {
      uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(e.size - out_done, 1u << 30));
      s.next_in = const_cast<Bytef*>(in);
      s.avail_in = in_chunk;
      s.next_out = buf->data() + out_done;
      s.avail_out = out_chunk;
      rc = inflate(&s, Z_NO_FLUSH);
      uint64_t used_in = in_chunk - s.avail_in, made = out_chunk - s.avail_out;
      in += used_in;
      in_left -= used_in;
      out_done += made;
      if (rc == Z_OK && used_in == 0 && made == 0) rc = Z_BUF_ERROR;  // no progress: input or output exhausted
    }
    inflateEnd(&s);
    if (rc != Z_STREAM_END || out_done != e.size) fail(e.name + ": deflate data is corrupt or does not match its size");
    out.data = buf->data();
    out.size = buf->size();
    out.owner = buf;
  } else {
    fail(e.name + ": unsupported compression method " + std::to_string(e.method));
  }
  uint32_t crc = 0;
  for (uint64_t done = 0; done < out.size;) {
    uInt chunk = static_cast<uInt>(std::min<uint64_t>(out.size - done, 1u << 30));
    crc = static_cast<uint32_t>(crc32(crc, out.data + done, chunk));
    done += chunk;
  }
  if (crc != e.crc) fail(e.name + ": CRC-32 mismatch (file damaged)");
  return out;
}

}  // namespace dfq
