// pickle.cpp — the pickle machine of pickle.h: opcodes, the global whitelist, the tensor rebuild
// functions. Every operand read goes through take(), which checks it against the end of the pickle.
#include "engine/io/pickle.h"

#include <cstring>
#include <stdexcept>

namespace dfq::pickle {

const char* elem_name(ElemType t) {
  switch (t) {
    case ElemType::F32: return "float32";
    case ElemType::F64: return "float64";
    case ElemType::F16: return "float16";
    case ElemType::BF16: return "bfloat16";
    case ElemType::I64: return "int64";
    case ElemType::I32: return "int32";
    case ElemType::I16: return "int16";
    case ElemType::I8: return "int8";
    case ElemType::U8: return "uint8";
    case ElemType::Bool: return "bool";
  }
  return "?";
}
int elem_size(ElemType t) {
  switch (t) {
    case ElemType::F64: case ElemType::I64: return 8;
    case ElemType::F32: case ElemType::I32: return 4;
    case ElemType::F16: case ElemType::BF16: case ElemType::I16: return 2;
    default: return 1;
  }
}
const char* kind_name(Kind k) {
  static const char* names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple", "list", "dict",
                                "global", "storage", "tensor", "legacy tensor"};
  return names[static_cast<int>(k)];
}

const Value* Value::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  for (size_t j = items.size(); j >= 2; j -= 2)
    if (items[j - 2]->kind == Kind::Str && items[j - 2]->s == key) return items[j - 1].get();
  return nullptr;
}

int64_t as_int(const Value& v, const std::string& what) {
  if (v.kind != Kind::Int && v.kind != Kind::Bool)
    throw std::runtime_error("dfq: " + what + " is a " + kind_name(v.kind) + ", expected an int");
  return v.i;
}

namespace {
constexpr size_t kMaxLine = 256;  // GLOBAL names, text INT / PUT / GET operands
constexpr int kMaxDims = 16;

struct ClassName { const char* prefix; ElemType t; };
constexpr ClassName kClasses[] = {{"Float", ElemType::F32}, {"Double", ElemType::F64}, {"Half", ElemType::F16},
                                  {"BFloat16", ElemType::BF16}, {"Long", ElemType::I64}, {"Int", ElemType::I32},
                                  {"Short", ElemType::I16}, {"Char", ElemType::I8}, {"Byte", ElemType::U8},
                                  {"Bool", ElemType::Bool}};
}  // namespace

Unpickler::Unpickler(const uint8_t* data, size_t size, std::string label, PersistentLoad persistent_load)
    : data_(data), size_(size), label_(std::move(label)), persistent_load_(std::move(persistent_load)) {}

Unpickler::~Unpickler() {
  // Empty every container first (children move to a flat list), so that no destructor recurses
  // through nested values and reference cycles are broken.
  std::vector<ValuePtr> grave;
  for (auto& c : containers_) {
    for (auto& x : c->items) grave.push_back(std::move(x));
    c->items.clear();
    if (c->attrs) grave.push_back(std::move(c->attrs));
  }
  grave.clear();
  stack_.clear();
  memo_.clear();
  containers_.clear();
}

void Unpickler::fail(const std::string& why) const {
  throw std::runtime_error("dfq: " + label_ + ": corrupt pickle at byte " + std::to_string(pos_) + ": " + why);
}

const uint8_t* Unpickler::take(size_t n) {
  if (n > size_ - pos_) fail("truncated (needs " + std::to_string(n) + " more bytes, " + std::to_string(size_ - pos_) + " left)");
  const uint8_t* p = data_ + pos_;
  pos_ += n;
  return p;
}

std::string Unpickler::line() {
  size_t start = pos_;
  while (pos_ < size_ && data_[pos_] != '\n') {
    if (pos_ - start > kMaxLine) fail("text operand longer than " + std::to_string(kMaxLine) + " bytes");
    ++pos_;
  }
  if (pos_ >= size_) fail("truncated text operand");
  ++pos_;
  return std::string(reinterpret_cast<const char*>(data_ + start), pos_ - 1 - start);
}

ValuePtr Unpickler::make(Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  if (v->is_container()) containers_.push_back(v);
  return v;
}

ValuePtr Unpickler::pop() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
  ValuePtr v = std::move(stack_.back());
  stack_.pop_back();
  return v;
}
ValuePtr& Unpickler::top() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
  return stack_.back();
}
std::vector<ValuePtr> Unpickler::pop_mark() {
  if (marks_.empty()) fail("no MARK on the stack");
  size_t m = marks_.back();
  marks_.pop_back();
  std::vector<ValuePtr> out(std::make_move_iterator(stack_.begin() + m), std::make_move_iterator(stack_.end()));
  stack_.resize(m);
  return out;
}

void Unpickler::add_item(Value& c, ValuePtr v) {
  if (c.kind != Kind::List) fail(std::string("APPEND to a ") + kind_name(c.kind));
  c.items.push_back(std::move(v));
}
void Unpickler::set_item(Value& d, ValuePtr k, ValuePtr v) {
  if (d.kind != Kind::Dict) fail(std::string("SETITEM on a ") + kind_name(d.kind));
  d.items.push_back(std::move(k));
  d.items.push_back(std::move(v));
}

ValuePtr Unpickler::global(const std::string& module, const std::string& name) {
  auto g = make(Kind::Global);
  g->s = module + "." + name;
  if (module == "collections" && name == "OrderedDict") g->fn = Fn::OrderedDict;
  else if (module == "torch._utils" && name == "_rebuild_tensor_v2") g->fn = Fn::RebuildTensorV2;
  else if (module == "torch._utils" && name == "_rebuild_tensor") g->fn = Fn::RebuildTensor;
  else if (module == "torch._utils" && name == "_rebuild_parameter") g->fn = Fn::RebuildParameter;
  else if (module == "torch._tensor" && name == "_rebuild_from_type_v2") g->fn = Fn::RebuildFromTypeV2;
  else if (module == "torch.nn.parameter" && name == "Parameter") g->fn = Fn::Parameter;
  else if (module == "torch" && name == "Tensor") g->fn = Fn::TorchTensor;
  else if (module == "torch" || module == "torch.cuda") {
    for (const ClassName& c : kClasses) {
      if (name == std::string(c.prefix) + "Storage") { g->fn = Fn::StorageClass; g->elem = c.t; }
      if (name == std::string(c.prefix) + "Tensor") { g->fn = Fn::TensorClass; g->elem = c.t; }
    }
  }
  if (g->fn == Fn::None)
    throw std::runtime_error("dfq: " + label_ + ": refused global " + g->s +
                             " (a checkpoint may only name PyTorch tensor/storage classes and collections.OrderedDict)");
  return g;
}

ValuePtr Unpickler::rebuild_tensor(const std::vector<ValuePtr>& a, const std::string& fn) {
  const Value& st = *a[0];
  if (st.kind != Kind::Storage) fail(fn + ": argument 1 is a " + kind_name(st.kind) + ", expected a storage");
  auto t = make(Kind::Tensor);
  int64_t off = as_int(*a[1], fn + " storage_offset");
  if (off < 0) fail(fn + ": negative storage offset");
  auto dims = [&](const Value& v, const char* what, std::vector<int64_t>& out) {
    if (v.kind != Kind::Tuple && v.kind != Kind::List) fail(fn + ": " + what + " is a " + kind_name(v.kind));
    if (v.items.size() > kMaxDims) fail(fn + ": more than " + std::to_string(kMaxDims) + " dimensions");
    for (const auto& x : v.items) {
      int64_t d = as_int(*x, fn + " " + what);
      if (d < 0) fail(fn + ": negative " + what);
      out.push_back(d);
    }
  };
  dims(*a[2], "size", t->shape);
  dims(*a[3], "stride", t->stride);
  if (t->shape.size() != t->stride.size()) fail(fn + ": size and stride differ in length");
  t->storage = st.i;
  t->elem = st.elem;
  if (st.view_offset > INT64_MAX - off) fail(fn + ": storage offset overflows");
  t->offset = st.view_offset + off;
  t->limit = st.view_numel < 0 ? -1 : st.view_offset + st.view_numel;
  return t;
}

ValuePtr Unpickler::call(const ValuePtr& callable, const ValuePtr& args) {
  if (callable->kind != Kind::Global) fail(std::string("call of a non-callable ") + kind_name(callable->kind));
  if (args->kind != Kind::Tuple) fail(std::string("call arguments are a ") + kind_name(args->kind) + ", not a tuple");
  const auto& a = args->items;
  const std::string& fn = callable->s;
  auto nargs = [&](size_t lo, size_t hi) {
    if (a.size() < lo || a.size() > hi) fail(fn + " called with " + std::to_string(a.size()) + " arguments");
  };
  switch (callable->fn) {
    case Fn::OrderedDict: {
      nargs(0, 1);
      auto d = make(Kind::Dict);
      if (a.size() == 1) {  // Python 2: OrderedDict([[k, v], ...])
        const Value& pairs = *a[0];
        if (pairs.kind != Kind::List && pairs.kind != Kind::Tuple) fail("OrderedDict of a " + std::string(kind_name(pairs.kind)));
        for (const auto& p : pairs.items) {
          if ((p->kind != Kind::List && p->kind != Kind::Tuple) || p->items.size() != 2) fail("OrderedDict item is not a pair");
          set_item(*d, p->items[0], p->items[1]);
        }
      }
      return d;
    }
    case Fn::RebuildTensorV2: nargs(6, 7); return rebuild_tensor(a, fn);
    case Fn::RebuildTensor: nargs(4, 4); return rebuild_tensor(a, fn);
    case Fn::RebuildParameter:
    case Fn::Parameter:
      if (callable->fn == Fn::RebuildParameter) nargs(3, 4); else nargs(1, 2);
      if (a[0]->kind != Kind::Tensor) fail(fn + " of a " + kind_name(a[0]->kind));
      return a[0];
    case Fn::RebuildFromTypeV2: {
      nargs(4, 4);
      if (a[0]->kind != Kind::Global || a[0]->fn == Fn::RebuildFromTypeV2) fail(fn + ": bad function argument");
      ValuePtr r = call(a[0], a[2]);
      if (r->kind != Kind::Tensor) fail(fn + " did not produce a tensor");
      return r;
    }
    case Fn::TensorClass: {  // very old pickles: torch.FloatTensor() then BUILD (storage, offset, size, stride)
      nargs(0, 0);
      auto t = make(Kind::LegacyTensor);
      t->elem = callable->elem;
      return t;
    }
    default: fail("cannot call " + fn);
  }
}

void Unpickler::build(const ValuePtr& target, const ValuePtr& state) {
  if (target->kind == Kind::Dict) {
    if (state->kind == Kind::Tuple && state->items.size() == 2) {  // (dict state, slots state)
      if (state->items[0]->kind == Kind::Dict) target->attrs = state->items[0];
      return;
    }
    if (state->kind != Kind::Dict && state->kind != Kind::None) fail(std::string("BUILD of a dict with a ") + kind_name(state->kind));
    if (state->kind == Kind::Dict) target->attrs = state;
    return;
  }
  if (target->kind == Kind::LegacyTensor) {
    if (state->kind != Kind::Tuple || state->items.size() != 4) fail("legacy tensor state is not (storage, offset, size, stride)");
    ElemType declared = target->elem;
    ValuePtr t = rebuild_tensor(state->items, "legacy tensor");
    if (t->elem != declared) fail("legacy tensor class and storage class disagree");
    *target = *t;
    return;
  }
  if (target->kind == Kind::Tensor) return;  // attributes of a Parameter: irrelevant to the weights
  fail(std::string("BUILD on a ") + kind_name(target->kind));
}

ValuePtr Unpickler::load() {
  auto rd16 = [](const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; };
  auto rd32 = [](const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; };
  auto rd64 = [&](const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; };
  auto push = [&](ValuePtr v) { stack_.push_back(std::move(v)); };
  auto int_value = [&](int64_t x, Kind k = Kind::Int) {
    auto v = make(k);
    v->i = x;
    return v;
  };
  auto str_value = [&](size_t n, Kind k) {
    const uint8_t* p = take(n);
    auto v = make(k);
    v->s.assign(reinterpret_cast<const char*>(p), n);
    return v;
  };
  auto parse_decimal = [&](const std::string& s, const char* what) -> int64_t {
    size_t k = 0;
    bool neg = false;
    if (k < s.size() && (s[k] == '-' || s[k] == '+')) neg = s[k++] == '-';
    if (k >= s.size()) fail(std::string("empty ") + what);
    uint64_t x = 0;
    for (; k < s.size(); ++k) {
      if (s[k] == 'L' && k + 1 == s.size()) break;  // protocol-0 LONG suffix
      if (s[k] < '0' || s[k] > '9') fail(std::string("bad ") + what + " '" + s + "'");
      if (x > (uint64_t(INT64_MAX) - 9) / 10) fail(std::string(what) + " out of 64-bit range");
      x = x * 10 + uint64_t(s[k] - '0');
    }
    return neg ? -int64_t(x) : int64_t(x);
  };
  auto memo_get = [&](uint32_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo index " + std::to_string(idx) + " was never stored");
    push(it->second);
  };
  auto memo_put = [&](uint32_t idx) { memo_[idx] = top(); };
  auto persistent = [&](const ValuePtr& pid) {
    if (!persistent_load_) fail("persistent id outside a checkpoint container");
    push(persistent_load_(*pid));
  };

  for (;;) {
    uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        uint8_t v = *take(1);
        if (v > 5) fail("unsupported pickle protocol " + std::to_string(v));
        break;
      }
      case 0x95: take(8); break;  // FRAME (protocol 4): only a length hint
      case '.': {                 // STOP
        ValuePtr r = pop();
        if (!marks_.empty()) fail("STOP inside a MARK");
        return r;
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '0': pop(); break;
      case '1': pop_mark(); break;
      case '2': push(top()); break;
      case ')': push(make(Kind::Tuple)); break;
      case 't': {
        auto t = make(Kind::Tuple);
        t->items = pop_mark();
        push(t);
        break;
      }
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        size_t n = op - 0x84;
        auto t = make(Kind::Tuple);
        t->items.resize(n);
        for (size_t k = n; k-- > 0;) t->items[k] = pop();
        push(t);
        break;
      }
      case ']': case 0x8F: push(make(Kind::List)); break;  // EMPTY_LIST, EMPTY_SET (as a list)
      case 'l': case 0x91: {                             // LIST, FROZENSET
        auto l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        break;
      }
      case 'a': {
        ValuePtr v = pop();
        add_item(*top(), std::move(v));
        break;
      }
      case 'e': case 0x90: {  // APPENDS, ADDITEMS
        auto xs = pop_mark();
        for (auto& x : xs) add_item(*top(), std::move(x));
        break;
      }
      case '}': push(make(Kind::Dict)); break;
      case 'd': {
        auto xs = pop_mark();
        if (xs.size() % 2) fail("DICT with an odd number of items");
        auto d = make(Kind::Dict);
        d->items = std::move(xs);
        push(d);
        break;
      }
      case 's': {
        ValuePtr v = pop(), k = pop();
        set_item(*top(), std::move(k), std::move(v));
        break;
      }
      case 'u': {
        auto xs = pop_mark();
        if (xs.size() % 2) fail("SETITEMS with an odd number of items");
        for (size_t k = 0; k < xs.size(); k += 2) set_item(*top(), std::move(xs[k]), std::move(xs[k + 1]));
        break;
      }
      case 'c': {  // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        ValuePtr name = pop(), module = pop();
        if (module->kind != Kind::Str || name->kind != Kind::Str) fail("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case 'R': case 0x81: {  // REDUCE, NEWOBJ
        ValuePtr args = pop(), fn = pop();
        push(call(fn, args));
        break;
      }
      case 'b': {
        ValuePtr state = pop();
        build(top(), state);
        break;
      }
      case 'Q': persistent(pop()); break;
      case 'P': {  // PERSID (protocol 0): a text id
        auto v = make(Kind::Str);
        v->s = line();
        persistent(v);
        break;
      }
      case 'J': {
        uint32_t u = rd32(take(4));
        push(int_value(static_cast<int32_t>(u)));
        break;
      }
      case 'K': push(int_value(*take(1))); break;
      case 'M': push(int_value(rd16(take(2)))); break;
      case 'I': {
        std::string s = line();
        if (s == "01" || s == "00") push(int_value(s == "01", Kind::Bool));
        else push(int_value(parse_decimal(s, "INT")));
        break;
      }
      case 'L': push(int_value(parse_decimal(line(), "LONG"))); break;
      case 0x8A: case 0x8B: {  // LONG1, LONG4
        uint32_t n = op == 0x8A ? *take(1) : rd32(take(4));
        if (n > 8) fail("integer of " + std::to_string(n) + " bytes does not fit 64 bits");
        const uint8_t* p = take(n);
        uint64_t u = 0;
        for (uint32_t k = 0; k < n; ++k) u |= uint64_t(p[k]) << (8 * k);
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~uint64_t(0) << (8 * n);  // sign-extend
        push(int_value(static_cast<int64_t>(u)));
        break;
      }
      case 'G': {
        const uint8_t* p = take(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = u << 8 | p[k];
        auto v = make(Kind::Float);
        std::memcpy(&v->f, &u, 8);
        push(v);
        break;
      }
      case 'F': {
        std::string s = line();
        auto v = make(Kind::Float);
        v->f = std::strtod(s.c_str(), nullptr);
        push(v);
        break;
      }
      case 'X': push(str_value(rd32(take(4)), Kind::Str)); break;
      case 0x8C: case 'U': push(str_value(*take(1), Kind::Str)); break;  // SHORT_BINUNICODE, SHORT_BINSTRING
      case 0x8D: {                                                       // BINUNICODE8
        uint64_t n = rd64(take(8));
        if (n > size_ - pos_) fail("string longer than the pickle");
        push(str_value(static_cast<size_t>(n), Kind::Str));
        break;
      }
      case 'T': {
        int32_t n = static_cast<int32_t>(rd32(take(4)));
        if (n < 0) fail("negative string length");
        push(str_value(static_cast<size_t>(n), Kind::Str));
        break;
      }
      case 'C': push(str_value(*take(1), Kind::Bytes)); break;
      case 'B': push(str_value(rd32(take(4)), Kind::Bytes)); break;
      case 0x8E: {
        uint64_t n = rd64(take(8));
        if (n > size_ - pos_) fail("bytes longer than the pickle");
        push(str_value(static_cast<size_t>(n), Kind::Bytes));
        break;
      }
      case 'N': push(make(Kind::None)); break;
      case 0x88: push(int_value(1, Kind::Bool)); break;
      case 0x89: push(int_value(0, Kind::Bool)); break;
      case 'q': memo_put(*take(1)); break;
      case 'r': memo_put(rd32(take(4))); break;
      case 0x94: memo_put(static_cast<uint32_t>(memo_.size())); break;  // MEMOIZE
      case 'p': {
        int64_t k = parse_decimal(line(), "PUT index");
        if (k < 0 || k > UINT32_MAX) fail("PUT index out of range");
        memo_put(static_cast<uint32_t>(k));
        break;
      }
      case 'h': memo_get(*take(1)); break;
      case 'j': memo_get(rd32(take(4))); break;
      case 'g': {
        int64_t k = parse_decimal(line(), "GET index");
        if (k < 0 || k > UINT32_MAX) fail("GET index out of range");
        memo_get(static_cast<uint32_t>(k));
        break;
      }
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%02x", op);
        --pos_;
        fail(std::string("unsupported opcode ") + buf);
      }
    }
  }
}

}  // namespace dfq::pickle
