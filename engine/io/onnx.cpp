// onnx.cpp — see onnx.h. Field numbers from onnx.proto (onnx/onnx, IR version 7).
#include "engine/io/onnx.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace dfq::onnx {

const char* elem_name(Elem e) {
  switch (e) {
    case Elem::Float: return "float";
    case Elem::Uint8: return "uint8";
    case Elem::Int8: return "int8";
    case Elem::Int32: return "int32";
    case Elem::Int64: return "int64";
  }
  return "?";
}

int elem_size(Elem e) {
  switch (e) {
    case Elem::Float: case Elem::Int32: return 4;
    case Elem::Uint8: case Elem::Int8: return 1;
    case Elem::Int64: return 8;
  }
  throw std::invalid_argument("onnx: unknown element type");
}

Attribute Attribute::integer(std::string n, int64_t v) {
  Attribute a;
  a.kind = Kind::Int;
  a.name = std::move(n);
  a.i = v;
  return a;
}
Attribute Attribute::integers(std::string n, std::vector<int64_t> v) {
  Attribute a;
  a.kind = Kind::Ints;
  a.name = std::move(n);
  a.ints = std::move(v);
  return a;
}
Attribute Attribute::real(std::string n, float v) {
  Attribute a;
  a.kind = Kind::Float;
  a.name = std::move(n);
  a.f = v;
  return a;
}

const Attribute* Node::attr(const std::string& n) const {
  for (const Attribute& a : attrs)
    if (a.name == n) return &a;
  return nullptr;
}

int64_t Initializer::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

const Initializer* Model::find_initializer(const std::string& name) const {
  for (const Initializer& t : initializers)
    if (t.name == name) return &t;
  return nullptr;
}

Initializer make_float(std::string name, std::vector<int64_t> dims, const std::vector<float>& v) {
  Initializer t{std::move(name), Elem::Float, std::move(dims), {}};
  if (t.numel() != int64_t(v.size())) throw std::invalid_argument("onnx: " + t.name + ": values do not fit its dims");
  t.raw.resize(v.size() * 4);
  std::memcpy(t.raw.data(), v.data(), t.raw.size());
  return t;
}

Initializer make_int(std::string name, Elem type, std::vector<int64_t> dims, const std::vector<int64_t>& v) {
  Initializer t{std::move(name), type, std::move(dims), {}};
  if (t.numel() != int64_t(v.size())) throw std::invalid_argument("onnx: " + t.name + ": values do not fit its dims");
  int64_t lo = 0, hi = 0;
  switch (type) {
    case Elem::Uint8: lo = 0, hi = 255; break;
    case Elem::Int8: lo = -128, hi = 127; break;
    case Elem::Int32: lo = INT32_MIN, hi = INT32_MAX; break;
    case Elem::Int64: lo = INT64_MIN, hi = INT64_MAX; break;
    default: throw std::invalid_argument("onnx: " + t.name + ": make_int needs an integer type");
  }
  const int sz = elem_size(type);
  t.raw.resize(v.size() * size_t(sz));
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < lo || v[i] > hi)
      throw std::invalid_argument("onnx: " + t.name + ": value " + std::to_string(v[i]) + " does not fit " + elem_name(type));
    const uint64_t u = static_cast<uint64_t>(v[i]);
    for (int b = 0; b < sz; ++b) t.raw[i * size_t(sz) + size_t(b)] = static_cast<uint8_t>(u >> (8 * b));
  }
  return t;
}

std::vector<float> values(const Initializer& t) {
  const int64_t n = t.numel();
  if (int64_t(t.raw.size()) != n * elem_size(t.type)) throw std::runtime_error("onnx: " + t.name + ": raw size mismatch");
  std::vector<float> v(static_cast<size_t>(n));
  const uint8_t* p = t.raw.data();
  for (int64_t i = 0; i < n; ++i) {
    switch (t.type) {
      case Elem::Float: std::memcpy(&v[size_t(i)], p + 4 * i, 4); break;
      case Elem::Uint8: v[size_t(i)] = float(p[i]); break;
      case Elem::Int8: v[size_t(i)] = float(static_cast<int8_t>(p[i])); break;
      case Elem::Int32: {
        int32_t x;
        std::memcpy(&x, p + 4 * i, 4);
        v[size_t(i)] = float(x);
        break;
      }
      case Elem::Int64: {
        int64_t x;
        std::memcpy(&x, p + 8 * i, 8);
        v[size_t(i)] = float(x);
        break;
      }
    }
  }
  return v;
}

namespace {
// Protobuf wire format: tag = field << 3 | wire type (0 varint, 2 length-delimited, 5 fixed32).
class Writer {
 public:
  std::vector<uint8_t> buf;
  void varint(uint64_t v) {
    while (v >= 0x80) {
      buf.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    buf.push_back(static_cast<uint8_t>(v));
  }
  void tag(int field, int wire) { varint(uint64_t(field) << 3 | uint64_t(wire)); }
  void int_field(int field, int64_t v) {  // int32 / int64 / enum: negative values as 10-byte varints
    tag(field, 0);
    varint(static_cast<uint64_t>(v));
  }
  void float_field(int field, float f) {
    tag(field, 5);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    for (int b = 0; b < 4; ++b) buf.push_back(static_cast<uint8_t>(u >> (8 * b)));
  }
  void bytes_field(int field, const void* p, size_t n) {
    tag(field, 2);
    varint(n);
    const auto* c = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), c, c + n);
  }
  void string_field(int field, const std::string& s) { bytes_field(field, s.data(), s.size()); }
  void message_field(int field, const Writer& w) { bytes_field(field, w.buf.data(), w.buf.size()); }
};

Writer encode(const Attribute& a) {  // AttributeProto
  Writer w;
  w.string_field(1, a.name);
  switch (a.kind) {
    case Attribute::Kind::Float: w.float_field(2, a.f); break;
    case Attribute::Kind::Int: w.int_field(3, a.i); break;
    case Attribute::Kind::Ints:
      for (int64_t v : a.ints) w.int_field(8, v);
      break;
  }
  // AttributeType: FLOAT 1, INT 2, INTS 7
  w.int_field(20, a.kind == Attribute::Kind::Float ? 1 : a.kind == Attribute::Kind::Int ? 2 : 7);
  return w;
}

Writer encode(const Node& n) {  // NodeProto
  Writer w;
  for (const auto& s : n.inputs) w.string_field(1, s);
  for (const auto& s : n.outputs) w.string_field(2, s);
  if (!n.name.empty()) w.string_field(3, n.name);
  w.string_field(4, n.op);
  for (const auto& a : n.attrs) w.message_field(5, encode(a));
  if (!n.domain.empty()) w.string_field(7, n.domain);
  return w;
}

Writer encode(const Initializer& t) {  // TensorProto
  Writer w;
  for (int64_t d : t.dims) w.int_field(1, d);
  w.int_field(2, static_cast<int32_t>(t.type));
  w.string_field(8, t.name);
  w.bytes_field(9, t.raw.data(), t.raw.size());
  return w;
}

Writer encode(const ValueInfo& v) {  // ValueInfoProto { name 1, type 2: TypeProto { tensor_type 1 } }
  Writer shape;  // TensorShapeProto { dim 1: Dimension { dim_value 1 | dim_param 2 } }
  size_t next_param = 0;
  for (int64_t d : v.dims) {
    Writer dim;
    if (d < 0) dim.string_field(2, next_param < v.dim_params.size() ? v.dim_params[next_param++] : "?");
    else dim.int_field(1, d);
    shape.message_field(1, dim);
  }
  Writer tensor;  // TypeProto.Tensor { elem_type 1, shape 2 }
  tensor.int_field(1, static_cast<int32_t>(v.type));
  tensor.message_field(2, shape);
  Writer type;
  type.message_field(1, tensor);
  Writer w;
  w.string_field(1, v.name);
  w.message_field(2, type);
  return w;
}
}  // namespace

std::vector<uint8_t> serialize(const Model& m) {
  Writer g;  // GraphProto
  for (const auto& n : m.nodes) g.message_field(1, encode(n));
  g.string_field(2, m.graph_name);
  for (const auto& t : m.initializers) g.message_field(5, encode(t));
  if (!m.doc.empty()) g.string_field(10, m.doc);
  for (const auto& v : m.inputs) g.message_field(11, encode(v));
  for (const auto& v : m.outputs) g.message_field(12, encode(v));
  Writer opset;  // OperatorSetIdProto { domain 1, version 2 }
  opset.string_field(1, "");
  opset.int_field(2, m.opset);
  Writer w;  // ModelProto
  w.int_field(1, m.ir_version);
  w.string_field(2, m.producer);
  if (!m.producer_version.empty()) w.string_field(3, m.producer_version);
  w.message_field(7, g);
  w.message_field(8, opset);
  return std::move(w.buf);
}

void write_model(const std::string& path, const Model& m) {
  const std::vector<uint8_t> bytes = serialize(m);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + tmp);
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + path);
  }
}

}  // namespace dfq::onnx
