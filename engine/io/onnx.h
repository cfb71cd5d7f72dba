// onnx.h — an ONNX model as plain structs, and its protobuf encoding (onnx.proto, IR version 7,
// opset 13), written by hand: the exporter (quant/onnx_export.h) needs only the write side of six
// messages (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), which
// is ~150 lines of wire format here, against libprotobuf + protoc + Debian's libonnx-dev (whose
// onnx.proto is 1.12's) as build dependencies for the same bytes. The same structs are the graph
// dfq's own interpreter runs (quant/onnx_export.h run_graph), so what is written is what is tested.
//
// Rules: every field is written in its declared order; repeated scalars are written unpacked
// (valid proto2, which onnx.proto is); initializers carry raw little-endian bytes (raw_data);
// write_model() is atomic (PATH.tmp, then rename; removed on failure).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dfq::onnx {

// TensorProto.DataType values.
enum class Elem : int32_t { Float = 1, Uint8 = 2, Int8 = 3, Int32 = 6, Int64 = 7 };
const char* elem_name(Elem e);
int elem_size(Elem e);

struct Attribute {
  enum class Kind { Int, Ints, Float } kind = Kind::Int;
  std::string name;
  int64_t i = 0;
  std::vector<int64_t> ints;
  float f = 0.f;
  static Attribute integer(std::string n, int64_t v);
  static Attribute integers(std::string n, std::vector<int64_t> v);
  static Attribute real(std::string n, float v);
};

struct Node {
  std::string op, name, domain;  // domain "" = the default ONNX domain
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attrs;
  const Attribute* attr(const std::string& n) const;  // nullptr if absent
};

struct Initializer {
  std::string name;
  Elem type = Elem::Float;
  std::vector<int64_t> dims;
  std::vector<uint8_t> raw;  // little-endian, product(dims) elements
  int64_t numel() const;
};

struct ValueInfo {
  std::string name;
  Elem type = Elem::Float;
  std::vector<int64_t> dims;          // -1: symbolic, named by the next of dim_params
  std::vector<std::string> dim_params;  // ("N", "H", "W")
};

struct Model {
  int64_t ir_version = 7, opset = 13;
  std::string producer = "dfq", producer_version, graph_name = "dfq", doc;
  std::vector<Node> nodes;
  std::vector<Initializer> initializers;
  std::vector<ValueInfo> inputs, outputs;
  const Initializer* find_initializer(const std::string& name) const;  // nullptr if absent
};

// Initializers from host values (converted to the element type; int values must fit it).
Initializer make_float(std::string name, std::vector<int64_t> dims, const std::vector<float>& v);
Initializer make_int(std::string name, Elem type, std::vector<int64_t> dims, const std::vector<int64_t>& v);
// An initializer's values as floats (any of the element types above).
std::vector<float> values(const Initializer& t);

std::vector<uint8_t> serialize(const Model& m);
// Atomic write of serialize(m); throws std::runtime_error naming the path on failure.
void write_model(const std::string& path, const Model& m);

}  // namespace dfq::onnx
