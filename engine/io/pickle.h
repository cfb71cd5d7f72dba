// pickle.h — a small, safe pickle machine for PyTorch checkpoints (protocol 2, plus the protocol
// 3/4 opcodes and the Python-2 leftovers that checkpoints use; see ../shared/docs/pth_format.md §3).
//
// Rules:
//  - Nothing is ever executed. GLOBAL / STACK_GLOBAL resolve only a whitelist (collections.OrderedDict,
//    torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter,
//    torch._tensor._rebuild_from_type_v2, torch.nn.parameter.Parameter, torch.Tensor and the
//    torch[.cuda].*Storage / *Tensor classes); any other global is refused at once with
//    "refused global MODULE.NAME".
//  - Tensors are not materialised here: a rebuilt tensor is a descriptor (storage reference, offset,
//    size, stride) that the container reader (pth.cpp) resolves and bounds-checks.
//  - Every read is bounds-checked; memo entries alias (shared ownership); values are never deep-copied.
//    Container values are registered with the Unpickler, which empties them iteratively when it is
//    destroyed, so reference cycles (a list appended to itself) neither leak nor recurse.
//  - The Unpickler must outlive every Value it returned.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace dfq::pickle {

// Element types of torch storages (the *Storage class names).
enum class ElemType { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };
const char* elem_name(ElemType t);  // "float32", "float16", ...
int elem_size(ElemType t);

// What a whitelisted global stands for.
enum class Fn { None, OrderedDict, RebuildTensorV2, RebuildTensor, RebuildParameter, RebuildFromTypeV2,
                Parameter, TorchTensor, StorageClass, TensorClass };

enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor, LegacyTensor };
const char* kind_name(Kind k);

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;                // Int, Bool; Storage: the container's storage index
  double f = 0;                 // Float
  std::string s;                // Str, Bytes; Global: "module.name"
  std::vector<ValuePtr> items;  // Tuple, List; Dict: key0, value0, key1, value1, ... (in insertion order)
  ValuePtr attrs;               // Dict: the BUILD state (e.g. {'_metadata': ...}), if any
  // Global
  Fn fn = Fn::None;
  ElemType elem = ElemType::F32;  // StorageClass / TensorClass
  // Storage (a persistent-load result): storage index in i, element type, and the view window
  int64_t view_offset = 0, view_numel = -1;  // -1: the whole storage
  // Tensor: storage index, storage offset and view window (elements), size, stride
  int64_t storage = -1, offset = 0, limit = -1;  // limit: elements [0, limit) of the storage may be read; -1 = whole
  std::vector<int64_t> shape, stride;

  bool is_container() const { return kind == Kind::Tuple || kind == Kind::List || kind == Kind::Dict; }
  // Dict lookup by string key (last match wins, as in Python); nullptr if absent.
  const Value* get(const std::string& key) const;
};

// Called for BINPERSID / PERSID with the persistent id; returns the object it stands for.
using PersistentLoad = std::function<ValuePtr(const Value& pid)>;

class Unpickler {
 public:
  // Reads one pickle from [data, data + size); label names the source in error messages.
  Unpickler(const uint8_t* data, size_t size, std::string label, PersistentLoad persistent_load = nullptr);
  ~Unpickler();
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  ValuePtr load();                          // runs to STOP; throws std::runtime_error on anything malformed
  size_t consumed() const { return pos_; }  // bytes read, STOP included (legacy files concatenate pickles)
  ValuePtr make(Kind k);                    // a new value (containers are registered for teardown)

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0;
  std::string label_;
  PersistentLoad persistent_load_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, ValuePtr> memo_;
  std::vector<ValuePtr> containers_;

  [[noreturn]] void fail(const std::string& why) const;
  const uint8_t* take(size_t n);
  std::string line();
  ValuePtr pop();
  ValuePtr& top();
  std::vector<ValuePtr> pop_mark();
  ValuePtr global(const std::string& module, const std::string& name);
  ValuePtr call(const ValuePtr& callable, const ValuePtr& args);
  ValuePtr rebuild_tensor(const std::vector<ValuePtr>& a, const std::string& fn);
  void build(const ValuePtr& target, const ValuePtr& state);
  void add_item(Value& container, ValuePtr v);
  void set_item(Value& dict, ValuePtr k, ValuePtr v);
};

// Convenience: the integer of an Int / Bool value, or throws naming what.
int64_t as_int(const Value& v, const std::string& what);

}  // namespace dfq::pickle
