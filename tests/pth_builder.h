// pth_builder.h — writes small checkpoints byte by byte for the reader's tests: a pickle emitter
// (the opcodes torch.save uses), a state-dict pickle from tensor specs, a minimal ZIP writer
// (stored or deflated members, no data descriptors), and file helpers. Test-only code.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dfq::test {

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("test: cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
inline std::string le32(uint32_t v) { std::string s(4, '\0'); for (int k = 0; k < 4; ++k) s[k] = char(v >> (8 * k)); return s; }
inline std::string le16(uint16_t v) { return std::string{char(v & 0xff), char(v >> 8)}; }
inline std::string le64(uint64_t v) { return le32(uint32_t(v)) + le32(uint32_t(v >> 32)); }

// Pickle opcodes (protocol 2) appended to a byte string.
struct PickleWriter {
  std::string b;
  PickleWriter& proto() { b += "\x80\x02"; return *this; }
  PickleWriter& global(const std::string& m, const std::string& n) { b += "c" + m + "\n" + n + "\n"; return *this; }
  PickleWriter& str(const std::string& s) { b += "X" + le32(uint32_t(s.size())) + s; return *this; }
  PickleWriter& py2str(const std::string& s) { b += "U"; b += char(s.size()); b += s; return *this; }
  PickleWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) { b += "K"; b += char(v); }
    else if (v >= 0 && v < 65536) b += "M" + le16(uint16_t(v));
    else if (v >= INT32_MIN && v <= INT32_MAX) b += "J" + le32(uint32_t(v));
    else b += std::string("\x8a\x08", 2) + le64(uint64_t(v));
    return *this;
  }
  PickleWriter& ints(const std::vector<int64_t>& v) { mark(); for (int64_t x : v) integer(x); return tuple(); }
  PickleWriter& mark() { b += "("; return *this; }
  PickleWriter& tuple() { b += "t"; return *this; }
  PickleWriter& empty_tuple() { b += ")"; return *this; }
  PickleWriter& empty_dict() { b += "}"; return *this; }
  PickleWriter& empty_list() { b += "]"; return *this; }
  PickleWriter& reduce() { b += "R"; return *this; }
  PickleWriter& persid() { b += "Q"; return *this; }
  PickleWriter& setitem() { b += "s"; return *this; }
  PickleWriter& setitems() { b += "u"; return *this; }
  PickleWriter& appends() { b += "e"; return *this; }
  PickleWriter& none() { b += "N"; return *this; }
  PickleWriter& newfalse() { b += "\x89"; return *this; }
  PickleWriter& build() { b += "b"; return *this; }
  PickleWriter& stop() { b += "."; return *this; }
  PickleWriter& long_put(uint32_t i) { b += "r" + le32(i); return *this; }
  PickleWriter& long_get(uint32_t i) { b += "j" + le32(i); return *this; }
  PickleWriter& raw(const std::string& s) { b += s; return *this; }
};

struct TensorSpec {
  std::string name, storage_class = "FloatStorage", key;
  int64_t storage_numel = 0, offset = 0;
  std::vector<int64_t> size, stride;
};

// OrderedDict{name: _rebuild_tensor_v2(storage pid, offset, size, stride, False, OrderedDict())},
// with the ZIP format's 5-tuple persistent ids (6-tuple with a None view for legacy = true).
inline std::string state_dict_pickle(const std::vector<TensorSpec>& ts, bool legacy = false, const std::string& wrapper_key = "") {
  PickleWriter p;
  p.proto();
  if (!wrapper_key.empty()) p.empty_dict().mark().str(wrapper_key);  // {wrapper_key: state dict, "epoch": 3}
  p.global("collections", "OrderedDict").empty_tuple().reduce().mark();
  for (const TensorSpec& t : ts) {
    p.str(t.name).global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().str("storage").global("torch", t.storage_class).str(t.key).str("cpu").integer(t.storage_numel);
    if (legacy) p.none();
    p.tuple().persid();
    p.integer(t.offset).ints(t.size).ints(t.stride).newfalse().global("collections", "OrderedDict").empty_tuple().reduce();
    p.tuple().reduce();
  }
  p.setitems();
  if (!wrapper_key.empty()) p.str("epoch").integer(3).setitems();
  return p.stop().b;
}

// A ZIP archive of (name, bytes) members, stored (method 0) or deflated (method 8).
inline std::string make_zip(const std::vector<std::pair<std::string, std::string>>& members, bool use_deflate = false) {
  std::string out, cd;
  for (const auto& [name, data] : members) {
    std::string body = data;
    if (use_deflate) {
      z_stream s{};
      deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
      std::string buf(deflateBound(&s, uLong(data.size())), '\0');
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
      s.avail_in = uInt(data.size());
      s.next_out = reinterpret_cast<Bytef*>(buf.data());
      s.avail_out = uInt(buf.size());
      deflate(&s, Z_FINISH);
      buf.resize(s.total_out);
      deflateEnd(&s);
      body = buf;
    }
    uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(data.data()), uInt(data.size())));
    uint16_t method = use_deflate ? 8 : 0;
    uint32_t off = uint32_t(out.size());
    out += "PK\x03\x04" + le16(20) + le16(0) + le16(method) + le32(0) + le32(crc) + le32(uint32_t(body.size())) +
           le32(uint32_t(data.size())) + le16(uint16_t(name.size())) + le16(0) + name + body;
    cd += "PK\x01\x02" + le16(20) + le16(20) + le16(0) + le16(method) + le32(0) + le32(crc) + le32(uint32_t(body.size())) +
          le32(uint32_t(data.size())) + le16(uint16_t(name.size())) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) +
          le32(off) + name;
  }
  uint32_t cd_off = uint32_t(out.size());
  out += cd;
  out += "PK\x05\x06" + le16(0) + le16(0) + le16(uint16_t(members.size())) + le16(uint16_t(members.size())) +
         le32(uint32_t(cd.size())) + le32(cd_off) + le16(0);
  return out;
}

// A ZIP checkpoint: archive/data.pkl plus archive/data/<key> records.
inline std::string zip_checkpoint(const std::string& pkl, const std::vector<std::pair<std::string, std::string>>& records,
                                  bool use_deflate = false) {
  std::vector<std::pair<std::string, std::string>> m{{"archive/data.pkl", pkl}};
  for (const auto& [k, v] : records) m.push_back({"archive/data/" + k, v});
  m.push_back({"archive/version", "3\n"});
  return make_zip(m, use_deflate);
}

// A legacy magic-number stream: magic, protocol 1001, sys_info, the state pickle (6-tuple ids),
// the key list, then per key int64 numel + data. records: (key, raw data, numel).
struct LegacyRecord { std::string key, data; int64_t numel; };
inline std::string legacy_header() {
  std::string magic("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);
  std::string proto("\x80\x02M\xe9\x03.", 6);
  PickleWriter info;
  info.proto().empty_dict().mark().str("protocol_version").integer(1001).str("little_endian").raw("\x88").setitems().stop();
  return magic + proto + info.b;
}
inline std::string legacy_checkpoint(const std::string& state_pkl, const std::vector<LegacyRecord>& records) {
  PickleWriter keys;
  keys.proto().empty_list().mark();
  for (const auto& r : records) keys.str(r.key);
  keys.appends().stop();
  std::string out = legacy_header() + state_pkl + keys.b;
  for (const auto& r : records) out += le64(uint64_t(r.numel)) + r.data;
  return out;
}

template <class T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace dfq::test
