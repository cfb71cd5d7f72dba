// pth.cpp — the three checkpoint containers (pth.h) and the step they share: turning the
// unpickled object into named, bounds-checked tensor descriptors. The data path (read_into) lives
// in pth_convert.cpp, PthTensor::load in pth_tensor.cpp.
#include "engine/io/pth.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include "engine/io/zip.h"

namespace dfq {

using pickle::ElemType;
using pickle::Kind;
using pickle::Unpickler;
using pickle::Value;
using pickle::ValuePtr;

namespace {

[[noreturn]] void fail(const std::string& label, const std::string& why) {
  throw std::runtime_error("dfq: " + label + ": " + why);
}

std::string dims_str(const Shape& s) {
  std::string r = "(";
  for (size_t k = 0; k < s.size(); ++k) r += (k ? ", " : "") + std::to_string(s[k]);
  return r + ")";
}

bool in_range(uint64_t off, uint64_t len, uint64_t n) { return off <= n && len <= n - off; }

int64_t read_i64(const uint8_t* p, bool big) {
  uint64_t u = 0;
  for (int k = 0; k < 8; ++k) u |= uint64_t(p[big ? 7 - k : k]) << (8 * k);
  return static_cast<int64_t>(u);
}

// The storages of one checkpoint, by key. A "view" entry points into a root storage.
struct StorageTable {
  std::string label;
  std::vector<std::shared_ptr<PthStorage>> list;
  std::unordered_map<std::string, size_t> by_key;

  size_t add(const std::string& key, ElemType t, int64_t numel) {
    if (numel < 0) fail(label, "storage " + key + " has a negative size");
    auto it = by_key.find(key);
    if (it != by_key.end()) {
      const PthStorage& s = *list[it->second];
      if (s.type != t || s.numel != numel) fail(label, "storage " + key + " is declared twice with different types or sizes");
      return it->second;
    }
    auto s = std::make_shared<PthStorage>();
    s->key = key;
    s->type = t;
    s->numel = numel;
    list.push_back(s);
    by_key[key] = list.size() - 1;
    return list.size() - 1;
  }
  // Attaches bytes to a storage (checking they hold numel elements).
  void resolve(PthStorage& s, Bytes b, bool big_endian) {
    if (static_cast<uint64_t>(s.numel) > b.size / pickle::elem_size(s.type))
      fail(label, "storage " + s.key + " declares " + std::to_string(s.numel) + " elements of " +
                      pickle::elem_name(s.type) + " but has only " + std::to_string(b.size) + " bytes");
    s.bytes = std::move(b);
    s.big_endian = big_endian;
    s.resolved = true;
  }
};

ValuePtr storage_value(size_t index, ElemType t) {
  auto v = std::make_shared<Value>();
  v->kind = Kind::Storage;
  v->i = static_cast<int64_t>(index);
  v->elem = t;
  return v;
}

// Persistent id of the ZIP (5-tuple) and legacy (6-tuple, with view metadata) formats:
// ('storage', StorageClass, key, location, numel[, view_metadata]).
ValuePtr storage_pid(StorageTable& tab, const Value& pid) {
  if (pid.kind != Kind::Tuple || pid.items.size() < 5 || pid.items.size() > 6)
    fail(tab.label, "persistent id is not a ('storage', class, key, location, numel) tuple");
  const auto& a = pid.items;
  if (a[0]->kind != Kind::Str || a[0]->s != "storage") fail(tab.label, "persistent id of an unsupported kind (whole-model pickles are not supported; save model.state_dict())");
  if (a[1]->kind != Kind::Global || a[1]->fn != pickle::Fn::StorageClass) fail(tab.label, "persistent id without a storage class");
  if (a[2]->kind != Kind::Str) fail(tab.label, "storage key is not a string");
  int64_t numel = pickle::as_int(*a[4], tab.label + ": storage size");
  size_t idx = tab.add(a[2]->s, a[1]->elem, numel);
  ValuePtr v = storage_value(idx, a[1]->elem);
  if (a.size() == 6 && a[5]->kind != Kind::None) {  // (view_key, offset, size) into the root storage
    const Value& vm = *a[5];
    if (vm.kind != Kind::Tuple || vm.items.size() != 3) fail(tab.label, "bad storage view metadata");
    int64_t off = pickle::as_int(*vm.items[1], tab.label + ": view offset");
    int64_t len = pickle::as_int(*vm.items[2], tab.label + ": view size");
    if (off < 0 || len < 0 || off > numel || len > numel - off) fail(tab.label, "storage view outside storage " + a[2]->s);
    v->view_offset = off;
    v->view_numel = len;
  }
  return v;
}

bool supported(ElemType t) {
  return t == ElemType::F32 || t == ElemType::F64 || t == ElemType::F16 || t == ElemType::BF16 ||
         t == ElemType::I64 || t == ElemType::U8;
}

// From the unpickled object to named tensors.
PthCheckpoint collect(const Value& top, const StorageTable& tab, const std::string& container, uint64_t file_size) {
  const std::string& label = tab.label;
  PthCheckpoint out;
  out.container = container;
  if (top.kind != Kind::Dict) fail(label, std::string("the checkpoint holds a ") + pickle::kind_name(top.kind) + ", not a state dict");
  const Value* sd = &top;
  for (const char* k : {"state_dict", "model"}) {
    const Value* v = top.get(k);
    if (v && v->kind == Kind::Dict) {
      sd = v;
      out.notes.push_back(std::string("took the state dict stored under '") + k + "'");
      break;
    }
  }
  std::map<std::string, size_t> index;
  int64_t skipped = 0, stripped = 0;
  std::string skipped_example;
  std::map<std::string, int> conversions;
  uint64_t total_bytes = 0;
  const uint64_t byte_cap = 8 * file_size + (uint64_t(64) << 20);
  for (size_t j = 0; j + 1 < sd->items.size(); j += 2) {
    const Value& k = *sd->items[j];
    const Value& v = *sd->items[j + 1];
    if (k.kind != Kind::Str || v.kind != Kind::Tensor) {
      if (!skipped++) skipped_example = k.kind == Kind::Str ? k.s : pickle::kind_name(k.kind);
      continue;
    }
    PthTensor t;
    t.name = k.s;
    if (t.name.rfind("module.", 0) == 0) {
      t.name = t.name.substr(7);
      ++stripped;
    }
    if (v.storage < 0 || static_cast<size_t>(v.storage) >= tab.list.size()) fail(label, t.name + ": bad storage reference");
    const auto& st = tab.list[v.storage];
    if (!st->resolved) fail(label, t.name + ": the data of storage " + st->key + " is missing");
    t.src_type = st->type;
    if (!supported(t.src_type)) fail(label, t.name + " has dtype " + pickle::elem_name(t.src_type) + ", which dfq does not support");
    t.dtype = t.src_type == ElemType::I64 ? DType::I64 : t.src_type == ElemType::U8 ? DType::U8 : DType::F32;
    t.shape = v.shape;
    t.stride = v.stride;
    t.offset = v.offset;
    t.storage = st;
    // numel and extent with overflow checks; the extent must lie inside the storage (or view)
    int64_t numel = 1, last = v.offset;
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d] != 0 && numel > (int64_t{1} << 62) / t.shape[d]) fail(label, t.name + ": size " + dims_str(t.shape) + " overflows");
      numel *= t.shape[d];
    }
    int64_t limit = v.limit < 0 ? st->numel : v.limit;
    if (limit > st->numel || v.offset > limit) fail(label, t.name + ": storage offset or view outside its storage");
    if (numel > 0) {
      for (size_t d = 0; d < t.shape.size(); ++d) {
        int64_t step;
        if (__builtin_mul_overflow(t.shape[d] - 1, t.stride[d], &step) || __builtin_add_overflow(last, step, &last))
          fail(label, t.name + ": strides overflow");
      }
      if (last >= limit)
        fail(label, t.name + " (size " + dims_str(t.shape) + ", offset " + std::to_string(v.offset) +
                        ") reaches past the end of its storage of " + std::to_string(limit) + " elements");
      if (numel > limit) fail(label, t.name + " has overlapping strides (more elements than its storage), which is not supported");
    }
    total_bytes += t.nbytes();
    if (total_bytes > byte_cap) fail(label, "the tensors would total more than 8x the file's size (many tensors sharing storages?)");
    if (t.converted()) ++conversions[std::string(pickle::elem_name(t.src_type)) + " -> float32"];
    auto it = index.find(t.name);
    if (it != index.end()) {
      out.tensors[it->second] = std::move(t);
    } else {
      index[t.name] = out.tensors.size();
      out.tensors.push_back(std::move(t));
    }
  }
  if (out.tensors.empty()) fail(label, "no tensors found: not a state-dict checkpoint");
  for (auto& [what, n] : conversions) out.notes.push_back("converted " + what + ": " + std::to_string(n) + " tensor(s)");
  if (stripped) out.notes.push_back("stripped the 'module.' prefix from " + std::to_string(stripped) + " name(s)");
  if (skipped) out.notes.push_back("skipped " + std::to_string(skipped) + " non-tensor entr" + (skipped == 1 ? "y" : "ies") + " (e.g. '" + skipped_example + "')");
  return out;
}

// ---- ZIP (torch >= 1.6) -----------------------------------------------------------------------
PthCheckpoint read_zip(const Bytes& file, const std::string& label) {
  ZipReader z(file, label);
  if (z.entries().empty()) fail(label, "empty ZIP archive: not a PyTorch checkpoint");
  const ZipEntry* pkl = nullptr;
  std::string prefix = z.entries()[0].name.substr(0, z.entries()[0].name.find('/') + 1);
  pkl = z.find(prefix + "data.pkl");
  if (!pkl) {
    for (const ZipEntry& e : z.entries()) {
      const std::string& n = e.name;
      if (n == "data.pkl" || (n.size() > 9 && n.compare(n.size() - 9, 9, "/data.pkl") == 0)) {
        pkl = &e;
        prefix = n.substr(0, n.size() - 8);
        break;
      }
    }
  }
  if (z.find(prefix + "constants.pkl") || z.find(prefix + "code/"))
    fail(label, "a TorchScript archive (torch.jit.save), not a state dict; save model.state_dict() with torch.save");
  if (!pkl) fail(label, "ZIP archive without data.pkl: not a PyTorch checkpoint");
  bool big = false;
  if (const ZipEntry* bo = z.find(prefix + "byteorder")) {
    Bytes b = z.read(*bo);
    std::string s(reinterpret_cast<const char*>(b.data), b.size);
    if (s == "big") big = true;
    else if (s != "little") fail(label, "bad byteorder record '" + s.substr(0, 16) + "'");
  }
  Bytes pk = z.read(*pkl);
  StorageTable tab{label, {}, {}};
  Unpickler u(pk.data, pk.size, label + " (data.pkl)", [&](const Value& pid) { return storage_pid(tab, pid); });
  ValuePtr top = u.load();
  for (auto& s : tab.list) {
    const ZipEntry* e = z.find(prefix + "data/" + s->key);
    if (!e) fail(label, "storage record data/" + s->key + " is missing");
    tab.resolve(*s, z.read(*e), big);
  }
  return collect(*top, tab, "zip", file.size);
}

// ---- legacy magic-number stream (torch 0.1.10 - 1.5) -------------------------------------------
constexpr uint8_t kMagic[] = {0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E};

bool is_legacy(const uint8_t* p, size_t n) {
  return n >= 15 && p[0] == 0x80 && std::memcmp(p + 2, kMagic, sizeof kMagic) == 0;
}

PthCheckpoint read_legacy(const Bytes& file, const std::string& label) {
  const uint8_t* d = file.data;
  const uint64_t n = file.size;
  size_t pos = 15;
  {
    Unpickler u(d + pos, n - pos, label + " (protocol version)");
    int64_t proto = pickle::as_int(*u.load(), label + ": protocol version");
    if (proto != 1001) fail(label, "unsupported legacy protocol version " + std::to_string(proto));
    pos += u.consumed();
  }
  bool big = false;
  {
    Unpickler u(d + pos, n - pos, label + " (sys_info)");
    ValuePtr info = u.load();
    if (info->kind != Kind::Dict) fail(label, "sys_info is not a dict");
    if (const Value* le = info->get("little_endian")) big = !pickle::as_int(*le, label + ": little_endian");
    pos += u.consumed();
  }
  StorageTable tab{label, {}, {}};
  Unpickler u(d + pos, n - pos, label + " (state pickle)", [&](const Value& pid) { return storage_pid(tab, pid); });
  ValuePtr top = u.load();
  pos += u.consumed();
  Unpickler uk(d + pos, n - pos, label + " (storage keys)");
  ValuePtr keys = uk.load();
  pos += uk.consumed();
  if (keys->kind != Kind::List) fail(label, "the storage key list is not a list");
  for (const ValuePtr& k : keys->items) {
    if (k->kind != Kind::Str) fail(label, "a storage key is not a string");
    auto it = tab.by_key.find(k->s);
    if (it == tab.by_key.end()) fail(label, "storage " + k->s + " has data but no tensor (cannot tell its element size)");
    PthStorage& s = *tab.list[it->second];
    if (s.resolved) fail(label, "storage " + k->s + " appears twice");
    if (!in_range(pos, 8, n)) fail(label, "truncated before the data of storage " + k->s);
    int64_t numel = read_i64(d + pos, big);
    pos += 8;
    if (numel != s.numel) fail(label, "storage " + k->s + " holds " + std::to_string(numel) + " elements, its tensors say " + std::to_string(s.numel));
    if (static_cast<uint64_t>(numel) > (n - pos) / pickle::elem_size(s.type)) fail(label, "truncated in the data of storage " + k->s);
    uint64_t bytes = static_cast<uint64_t>(numel) * pickle::elem_size(s.type);
    tab.resolve(s, Bytes{d + pos, bytes, file.owner}, big);
    pos += bytes;
  }
  for (auto& s : tab.list)
    if (!s->resolved) fail(label, "the data of storage " + s->key + " is missing (truncated?)");
  return collect(*top, tab, "legacy stream", file.size);
}

// ---- TAR (torch <= 0.1.9) ----------------------------------------------------------------------
bool is_tar(const uint8_t* p, size_t n) { return n >= 512 && std::memcmp(p + 257, "ustar", 5) == 0; }

uint64_t octal(const uint8_t* p, size_t len, const std::string& label) {
  uint64_t v = 0;
  size_t k = 0;
  while (k < len && p[k] == ' ') ++k;
  for (; k < len && p[k] >= '0' && p[k] <= '7'; ++k) {
    if (v >> 60) fail(label, "tar number out of range");
    v = v * 8 + (p[k] - '0');
  }
  if (k < len && p[k] != ' ' && p[k] != 0) fail(label, "bad number in a tar header");
  return v;
}

struct Member { const uint8_t* data; uint64_t size; };

std::map<std::string, Member> tar_members(const Bytes& file, const std::string& label) {
  const uint8_t* d = file.data;
  const uint64_t n = file.size;
  std::map<std::string, Member> out;
  std::string next_path;
  int64_t next_size = -1;
  uint64_t pos = 0;
  for (;;) {
    if (!in_range(pos, 512, n)) fail(label, "truncated TAR container");
    const uint8_t* h = d + pos;
    bool zero = true;
    for (int k = 0; k < 512 && zero; ++k) zero = h[k] == 0;
    if (zero) {  // end of archive: two zero blocks
      bool second = in_range(pos + 512, 512, n);
      for (int k = 0; k < 512 && second; ++k) second = d[pos + 512 + k] == 0;
      if (!second) fail(label, "truncated TAR container (no end-of-archive marker)");
      break;
    }
    uint64_t sum = 0;
    for (int k = 0; k < 512; ++k) sum += (k >= 148 && k < 156) ? ' ' : h[k];
    if (sum != octal(h + 148, 8, label)) fail(label, "tar header checksum mismatch at byte " + std::to_string(pos));
    std::string name(reinterpret_cast<const char*>(h), strnlen(reinterpret_cast<const char*>(h), 100));
    uint64_t size = octal(h + 124, 12, label);
    char type = static_cast<char>(h[156]);
    uint64_t data = pos + 512;
    if (!in_range(data, size, n)) fail(label, "tar member '" + name + "' extends past the end of the file (truncated?)");
    if (type == 'x' || type == 'g') {  // PAX records "LEN key=value\n"
      std::string rec(reinterpret_cast<const char*>(d + data), size);
      for (size_t q = 0; q < rec.size();) {
        size_t sp = rec.find(' ', q);
        if (sp == std::string::npos) break;
        uint64_t len = 0;
        for (size_t k = q; k < sp; ++k) {
          if (rec[k] < '0' || rec[k] > '9' || len > rec.size()) fail(label, "bad PAX record");
          len = len * 10 + (rec[k] - '0');
        }
        if (len <= sp - q || len > rec.size() - q) fail(label, "bad PAX record");
        std::string kv = rec.substr(sp + 1, q + len - sp - 2);
        if (type == 'x' && kv.rfind("path=", 0) == 0) next_path = kv.substr(5);
        if (type == 'x' && kv.rfind("size=", 0) == 0) {
          next_size = 0;
          for (size_t k = 5; k < kv.size(); ++k) {
            if (kv[k] < '0' || kv[k] > '9' || next_size > (int64_t{1} << 56)) fail(label, "bad PAX size record");
            next_size = next_size * 10 + (kv[k] - '0');
          }
        }
        q += len;
      }
    } else {
      if (!next_path.empty()) name = next_path;
      else if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345]) name = std::string(reinterpret_cast<const char*>(h + 345), strnlen(reinterpret_cast<const char*>(h + 345), 155)) + "/" + name;
      if (next_size >= 0) {
        size = static_cast<uint64_t>(next_size);
        if (!in_range(data, size, n)) fail(label, "tar member '" + name + "' extends past the end of the file (truncated?)");
      }
      if (type == '0' || type == 0) out[name] = Member{d + data, size};
      next_path.clear();
      next_size = -1;
    }
    uint64_t padded = (size + 511) / 512 * 512;
    if (padded < size || !in_range(data, padded, n)) fail(label, "truncated TAR container");
    pos = data + padded;
  }
  return out;
}

PthCheckpoint read_tar(const Bytes& file, const std::string& label) {
  auto members = tar_members(file, label);
  for (const char* m : {"sys_info", "pickle", "tensors", "storages"})
    if (!members.count(m)) fail(label, std::string("TAR archive without a '") + m + "' member: not a PyTorch checkpoint");
  bool big = false;
  {
    const Member& m = members["sys_info"];
    Unpickler u(m.data, m.size, label + " (sys_info)");
    ValuePtr info = u.load();
    if (info->kind != Kind::Dict) fail(label, "sys_info is not a dict");
    if (const Value* le = info->get("little_endian")) big = !pickle::as_int(*le, label + ": little_endian");
  }
  StorageTable tab{label, {}, {}};
  // storages: pickle(count), then per storage pickle((key, location, StorageClass)) + i64 numel + data;
  // then pickle([(view_key, root_key, offset, numel), ...])
  struct Ref { size_t index; int64_t off, len; };
  std::unordered_map<int64_t, Ref> storage_by_key;
  {
    const Member& m = members["storages"];
    size_t pos = 0;
    auto next = [&](const char* what) {
      auto u = std::make_unique<Unpickler>(m.data + pos, m.size - pos, label + " (" + what + ")");
      return u;
    };
    auto u = next("storage count");
    int64_t count = pickle::as_int(*u->load(), label + ": storage count");
    pos += u->consumed();
    if (count < 0 || static_cast<uint64_t>(count) > m.size / 8) fail(label, "bad storage count");
    for (int64_t k = 0; k < count; ++k) {
      auto us = next("storage header");
      ValuePtr h = us->load();
      pos += us->consumed();
      if (h->kind != Kind::Tuple || h->items.size() != 3 || h->items[2]->kind != Kind::Global ||
          h->items[2]->fn != pickle::Fn::StorageClass)
        fail(label, "bad storage header in the 'storages' member");
      int64_t key = pickle::as_int(*h->items[0], label + ": storage key");
      if (!in_range(pos, 8, m.size)) fail(label, "truncated 'storages' member");
      int64_t numel = read_i64(m.data + pos, big);
      pos += 8;
      ElemType t = h->items[2]->elem;
      if (numel < 0 || static_cast<uint64_t>(numel) > (m.size - pos) / pickle::elem_size(t)) fail(label, "storage data past the end of the 'storages' member");
      uint64_t bytes = static_cast<uint64_t>(numel) * pickle::elem_size(t);
      size_t idx = tab.add(std::to_string(key), t, numel);
      if (tab.list[idx]->resolved) fail(label, "storage " + std::to_string(key) + " appears twice");
      tab.resolve(*tab.list[idx], Bytes{m.data + pos, bytes, file.owner}, big);
      storage_by_key[key] = Ref{idx, 0, -1};
      pos += bytes;
    }
    auto uv = next("storage views");
    ValuePtr views = uv->load();
    if (views->kind != Kind::List) fail(label, "storage views are not a list");
    for (const ValuePtr& v : views->items) {
      if (v->kind != Kind::Tuple || v->items.size() != 4) fail(label, "bad storage view");
      int64_t vkey = pickle::as_int(*v->items[0], label + ": view key"), root = pickle::as_int(*v->items[1], label + ": view root");
      int64_t off = pickle::as_int(*v->items[2], label + ": view offset"), len = pickle::as_int(*v->items[3], label + ": view size");
      auto it = storage_by_key.find(root);
      if (it == storage_by_key.end() || it->second.len >= 0) fail(label, "storage view of an unknown storage");
      int64_t rn = tab.list[it->second.index]->numel;
      if (off < 0 || len < 0 || off > rn || len > rn - off) fail(label, "storage view outside its storage");
      storage_by_key[vkey] = Ref{it->second.index, off, len};
    }
  }
  // tensors: pickle(count), then per tensor pickle((key, storage_key, TensorClass)) + i64 ndim,
  // sizes, strides, storage offset
  std::unordered_map<int64_t, ValuePtr> tensor_by_key;
  {
    const Member& m = members["tensors"];
    size_t pos = 0;
    Unpickler uc(m.data, m.size, label + " (tensor count)");
    int64_t count = pickle::as_int(*uc.load(), label + ": tensor count");
    pos += uc.consumed();
    if (count < 0 || static_cast<uint64_t>(count) > m.size / 8) fail(label, "bad tensor count");
    for (int64_t k = 0; k < count; ++k) {
      Unpickler u(m.data + pos, m.size - pos, label + " (tensor header)");
      ValuePtr h = u.load();
      pos += u.consumed();
      if (h->kind != Kind::Tuple || h->items.size() != 3 || h->items[2]->kind != Kind::Global ||
          h->items[2]->fn != pickle::Fn::TensorClass)
        fail(label, "bad tensor header in the 'tensors' member");
      int64_t key = pickle::as_int(*h->items[0], label + ": tensor key");
      int64_t skey = pickle::as_int(*h->items[1], label + ": tensor storage key");
      if (!in_range(pos, 8, m.size)) fail(label, "truncated 'tensors' member");
      int64_t ndim = read_i64(m.data + pos, big);
      pos += 8;
      if (ndim < 0 || ndim > 16) fail(label, "tensor with " + std::to_string(ndim) + " dimensions");
      if (!in_range(pos, 8 * (2 * ndim + 1), m.size)) fail(label, "truncated 'tensors' member");
      auto t = std::make_shared<Value>();
      t->kind = Kind::Tensor;
      for (int64_t d = 0; d < ndim; ++d) t->shape.push_back(read_i64(m.data + pos + 8 * d, big));
      for (int64_t d = 0; d < ndim; ++d) t->stride.push_back(read_i64(m.data + pos + 8 * (ndim + d), big));
      int64_t off = read_i64(m.data + pos + 16 * ndim, big);
      pos += 8 * (2 * ndim + 1);
      for (int64_t d = 0; d < ndim; ++d)
        if (t->shape[d] < 0 || t->stride[d] < 0) fail(label, "tensor with a negative size or stride");
      auto it = storage_by_key.find(skey);
      if (it == storage_by_key.end()) fail(label, "tensor of an unknown storage " + std::to_string(skey));
      const Ref& r = it->second;
      if (tab.list[r.index]->type != h->items[2]->elem) fail(label, "tensor class and storage class disagree");
      if (off < 0 || off > INT64_MAX - r.off) fail(label, "bad tensor storage offset");
      t->storage = static_cast<int64_t>(r.index);
      t->offset = r.off + off;
      t->limit = r.len < 0 ? -1 : r.off + r.len;
      t->elem = h->items[2]->elem;
      tensor_by_key[key] = t;
    }
  }
  const Member& m = members["pickle"];
  Unpickler u(m.data, m.size, label + " (pickle)", [&](const Value& pid) -> ValuePtr {
    int64_t key = 0;
    if (pid.kind == Kind::Str) {
      char* end = nullptr;
      errno = 0;
      key = std::strtoll(pid.s.c_str(), &end, 10);
      if (pid.s.empty() || *end || errno) fail(label, "bad tensor reference '" + pid.s.substr(0, 32) + "'");
    } else {
      key = pickle::as_int(pid, label + ": tensor reference");
    }
    auto it = tensor_by_key.find(key);
    if (it == tensor_by_key.end()) fail(label, "reference to an unknown tensor " + std::to_string(key));
    return it->second;
  });
  ValuePtr top = u.load();
  return collect(*top, tab, "tar", file.size);
}

}  // namespace

PthCheckpoint read_pth(const Bytes& file, const std::string& label) {
  if (is_zip(file.data, file.size)) return read_zip(file, label);
  if (is_legacy(file.data, file.size)) return read_legacy(file, label);
  if (is_tar(file.data, file.size)) return read_tar(file, label);
  if (file.size == 0) fail(label, "empty file: not a PyTorch checkpoint");
  fail(label, "not a PyTorch checkpoint (neither a ZIP archive, a legacy magic-number stream nor a TAR container)");
}

PthCheckpoint read_pth(const std::string& path) { return read_pth(map_file(path), path); }

}  // namespace dfq
