// weights.cpp — the flat weight file (weights.h; layout in docs/weights_format.md).
#include "engine/io/weights.h"

#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <set>
#include <stdexcept>

#include "engine/nn/module.h"

namespace dfq {

namespace {
constexpr char kMagic[8] = {'D', 'F', 'Q', 'W', 'G', 'H', 'T', 'S'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeader = 64, kAlign = 64;
constexpr uint32_t kMaxDims = 16, kMaxName = 4096;

uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
uint32_t crc(const uint8_t* p, uint64_t n, uint32_t c = 0) {
  for (uint64_t done = 0; done < n;) {
    uInt chunk = static_cast<uInt>(std::min<uint64_t>(n - done, 1u << 30));
    c = static_cast<uint32_t>(crc32(c, p + done, chunk));
    done += chunk;
  }
  return c;
}
void put_u32(std::vector<uint8_t>& b, uint32_t v) { for (int k = 0; k < 4; ++k) b.push_back(uint8_t(v >> (8 * k))); }
void put_u64(std::vector<uint8_t>& b, uint64_t v) { for (int k = 0; k < 8; ++k) b.push_back(uint8_t(v >> (8 * k))); }
void set_u32(uint8_t* p, uint32_t v) { for (int k = 0; k < 4; ++k) p[k] = uint8_t(v >> (8 * k)); }
void set_u64(uint8_t* p, uint64_t v) { for (int k = 0; k < 8; ++k) p[k] = uint8_t(v >> (8 * k)); }
uint32_t get_u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t get_u64(const uint8_t* p) { return uint64_t(get_u32(p)) | uint64_t(get_u32(p + 4)) << 32; }
uint32_t dtype_code(DType t) { return static_cast<uint32_t>(t); }  // F32 0, I64 1, U8 2
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

// ---- reading ------------------------------------------------------------------------------------
WeightFile WeightFile::open(const std::string& path) {
  WeightFile w;
  w.path_ = path;
  w.map_ = map_file(path);
  auto bad = [&](const std::string& why) -> void {
    throw std::runtime_error("dfq: " + path + ": not a valid dfq weight file: " + why);
  };
  const uint8_t* d = w.map_.data;
  const uint64_t n = w.map_.size;
  if (n < kHeader) bad("too short (" + std::to_string(n) + " bytes)");
  if (std::memcmp(d, kMagic, 8) != 0) bad("bad magic (convert checkpoints with tools/convert_weights)");
  uint32_t version = get_u32(d + 8), count = get_u32(d + 12);
  if (version != kVersion) bad("version " + std::to_string(version) + ", this build reads version " + std::to_string(kVersion));
  uint64_t table_off = get_u64(d + 16), table_bytes = get_u64(d + 24), data_off = get_u64(d + 32), data_bytes = get_u64(d + 40);
  if (table_off != kHeader || table_bytes > n || data_off % kAlign || data_off < table_off + table_bytes || data_off > n)
    bad("bad table or data offsets");
  if (crc(d + 56, data_off - 56, crc(d, 48)) != get_u32(d + 48)) bad("header checksum mismatch (file damaged)");
  if (data_bytes != n - data_off)
    bad("truncated or padded: the header says " + std::to_string(data_off + data_bytes) + " bytes, the file has " + std::to_string(n));
  if (crc(d + data_off, data_bytes) != get_u32(d + 52)) bad("data checksum mismatch (file damaged)");
  w.num_classes_ = static_cast<int32_t>(get_u32(d + 56));
  w.data_ = d + data_off;
  // table
  const uint8_t* p = d + table_off;
  const uint8_t* end = p + table_bytes;
  auto need = [&](uint64_t k) {
    if (k > static_cast<uint64_t>(end - p)) bad("table truncated");
  };
  auto str = [&](uint32_t max) {
    need(4);
    uint32_t len = get_u32(p);
    p += 4;
    if (len > max) bad("name too long");
    need(len);
    std::string s(reinterpret_cast<const char*>(p), len);
    p += len;
    return s;
  };
  w.arch_ = str(kMaxName);
  if (count > table_bytes / 28) bad("entry count does not fit the table");
  for (uint32_t k = 0; k < count; ++k) {
    Entry e;
    e.name = str(kMaxName);
    need(8);
    uint32_t code = get_u32(p), ndim = get_u32(p + 4);
    p += 8;
    if (code > 2) bad("entry " + e.name + ": unknown dtype code " + std::to_string(code));
    if (ndim > kMaxDims) bad("entry " + e.name + ": too many dimensions");
    e.dtype = static_cast<DType>(code);
    need(8ull * ndim + 16);
    uint64_t numel = 1;
    for (uint32_t j = 0; j < ndim; ++j) {
      int64_t dim = static_cast<int64_t>(get_u64(p + 8 * j));
      if (dim < 0 || (dim && numel > (uint64_t(1) << 60) / static_cast<uint64_t>(dim))) bad("entry " + e.name + ": bad shape");
      numel *= static_cast<uint64_t>(dim);
      e.shape.push_back(dim);
    }
    p += 8 * ndim;
    e.offset = get_u64(p);
    e.nbytes = get_u64(p + 8);
    p += 16;
    if (e.nbytes != numel * static_cast<uint64_t>(dtype_size(e.dtype))) bad("entry " + e.name + ": size does not match its shape");
    if (e.offset % kAlign || e.offset > data_bytes || e.nbytes > data_bytes - e.offset) bad("entry " + e.name + ": data outside the file");
    if (!w.index_.emplace(e.name, w.entries_.size()).second) bad("entry " + e.name + " appears twice");
    w.entries_.push_back(std::move(e));
  }
  return w;
}

const WeightFile::Entry* WeightFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor WeightFile::get(const std::string& name) const {
  const Entry* e = find(name);
  if (!e) throw std::runtime_error("dfq: " + path_ + ": no tensor named '" + name + "'");
  Tensor t = Tensor::borrow(const_cast<uint8_t*>(data_ + e->offset), e->shape, e->dtype, Device::CPU, map_.owner);
  t.set_name(name);
  return t;
}

// ---- writing ------------------------------------------------------------------------------------
WeightWriter::WeightWriter(std::string path, std::string arch, int num_classes, std::vector<Meta> metas)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), metas_(std::move(metas)) {
  if (arch.size() > kMaxName) throw std::invalid_argument("dfq: architecture name too long");
  std::vector<uint8_t> table;
  put_u32(table, static_cast<uint32_t>(arch.size()));
  table.insert(table.end(), arch.begin(), arch.end());
  std::set<std::string> seen;
  uint64_t off = 0;
  for (const Meta& m : metas_) {
    if (m.name.empty() || m.name.size() > kMaxName) throw std::invalid_argument("dfq: bad tensor name '" + m.name + "'");
    if (!seen.insert(m.name).second) throw std::invalid_argument("dfq: tensor " + m.name + " given twice");
    if (m.shape.size() > kMaxDims) throw std::invalid_argument("dfq: tensor " + m.name + " has too many dimensions");
    uint64_t nbytes = static_cast<uint64_t>(numel_of(m.shape)) * dtype_size(m.dtype);
    off = align_up(off);
    offsets_.push_back(off);
    put_u32(table, static_cast<uint32_t>(m.name.size()));
    table.insert(table.end(), m.name.begin(), m.name.end());
    put_u32(table, dtype_code(m.dtype));
    put_u32(table, static_cast<uint32_t>(m.shape.size()));
    for (int64_t d : m.shape) put_u64(table, static_cast<uint64_t>(d));
    put_u64(table, off);
    put_u64(table, nbytes);
    off += nbytes;
  }
  data_bytes_ = off;
  data_offset_ = align_up(kHeader + table.size());
  header_.assign(kHeader, 0);
  std::memcpy(header_.data(), kMagic, 8);
  set_u32(&header_[8], kVersion);
  set_u32(&header_[12], static_cast<uint32_t>(metas_.size()));
  set_u64(&header_[16], kHeader);
  set_u64(&header_[24], table.size());
  set_u64(&header_[32], data_offset_);
  set_u64(&header_[40], data_bytes_);
  set_u32(&header_[56], static_cast<uint32_t>(num_classes));
  header_.insert(header_.end(), table.begin(), table.end());
  header_.resize(data_offset_, 0);
  set_u32(&header_[48], crc(header_.data() + 56, data_offset_ - 56, crc(header_.data(), 48)));
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) throw std::runtime_error("dfq: cannot write " + tmp_ + ": " + std::strerror(errno));
  put(header_.data(), header_.size());  // data CRC filled in by commit()
}

WeightWriter::~WeightWriter() {
  if (!committed_) abandon();
}

void WeightWriter::abandon() {
  if (f_) std::fclose(f_);
  f_ = nullptr;
  std::remove(tmp_.c_str());
}

void WeightWriter::put(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n) {
    abandon();
    throw std::runtime_error("dfq: error writing " + tmp_ + " (disk full?)");
  }
}

void WeightWriter::write(const void* data, size_t nbytes) {
  if (!f_) throw std::logic_error("dfq: WeightWriter used after failure or commit");
  if (next_ >= metas_.size()) throw std::logic_error("dfq: WeightWriter: more tensors than declared");
  const Meta& m = metas_[next_];
  uint64_t want = static_cast<uint64_t>(numel_of(m.shape)) * dtype_size(m.dtype);
  if (nbytes != want) throw std::logic_error("dfq: WeightWriter: " + m.name + " has " + std::to_string(nbytes) + " bytes, expected " + std::to_string(want));
  static const uint8_t zeros[kAlign] = {};
  uint64_t pad = offsets_[next_] - written_;
  put(zeros, pad);
  crc_ = crc(zeros, pad, crc_);
  put(data, nbytes);
  crc_ = crc(static_cast<const uint8_t*>(data), nbytes, crc_);
  written_ = offsets_[next_] + nbytes;
  ++next_;
}

void WeightWriter::commit() {
  if (!f_) throw std::logic_error("dfq: WeightWriter used after failure or commit");
  if (next_ != metas_.size()) throw std::logic_error("dfq: WeightWriter: commit after " + std::to_string(next_) + " of " + std::to_string(metas_.size()) + " tensors");
  uint8_t c[4];
  set_u32(c, crc_);
  bool ok = std::fseek(f_, 52, SEEK_SET) == 0 && std::fwrite(c, 1, 4, f_) == 4 && std::fflush(f_) == 0;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) {
    std::remove(tmp_.c_str());
    throw std::runtime_error("dfq: error writing " + tmp_ + " (disk full?)");
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    std::remove(tmp_.c_str());
    throw std::runtime_error("dfq: cannot rename " + tmp_ + " to " + path_ + ": " + std::strerror(e));
  }
  committed_ = true;
}

void write_weight_file(const std::string& path, const std::string& arch, int num_classes,
                       const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::vector<WeightWriter::Meta> metas;
  for (const auto& [name, t] : tensors) metas.push_back({name, t.dtype(), t.shape()});
  WeightWriter w(path, arch, num_classes, std::move(metas));
  for (const auto& [name, t] : tensors) {
    Tensor c = t.contiguous().cpu();
    w.write(c.numel() ? c.raw_data() : nullptr, static_cast<size_t>(c.numel() * dtype_size(c.dtype())));
  }
  w.commit();
}

// ---- loading into a module ----------------------------------------------------------------------
void load_state_dict(nn::Module& m, const WeightFile& f, bool strict) {
  auto sd = m.state_dict();
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> names;
  for (const auto& [name, t] : sd) {
    names.insert(name);
    const WeightFile::Entry* e = f.find(name);
    if (!e) {
      if (!ends_with(name, "num_batches_tracked")) missing.push_back(name);
      continue;
    }
    if (e->shape != t.shape() || e->dtype != t.dtype())
      mismatched.push_back(name + " (file " + dtype_name(e->dtype) + shape_str(e->shape) + ", model " + dtype_name(t.dtype()) +
                           shape_str(t.shape()) + ")");
  }
  for (const auto& e : f.entries())
    if (!names.count(e.name)) unexpected.push_back(e.name);
  if (!mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()))) {
    std::string msg = "dfq: " + f.path() + " (" + f.arch() + ") does not fit the model:";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg += " " + std::to_string(v.size()) + " " + what + ":";
      for (size_t k = 0; k < v.size(); ++k) msg += (k ? ", " : " ") + v[k];
      msg += ";";
    };
    list("mis-shaped", mismatched);
    if (strict) list("missing", missing);
    if (strict) list("unexpected", unexpected);
    msg.pop_back();
    throw std::runtime_error(msg);
  }
  for (auto& [name, t] : sd)
    if (f.find(name)) t.copy_(f.get(name));
}

}  // namespace dfq
