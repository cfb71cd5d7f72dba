// elementwise.cpp — unary and scalar ops, broadcasting binary ops, expand and sum_to, and the
// random-number constructors. Backward of a broadcast input sums the gradient down to its shape.
#include <stdexcept>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/ops/op_util.h"

namespace dfq {

// ---- random ---------------------------------------------------------------------------------
Tensor randn(const Shape& shape, Generator& gen, Device dev, float mean, float stddev) {
  Tensor t = Tensor::empty(shape, DType::F32, dev);
  uint64_t off = gen.advance(t.numel());
  DFQ_DISPATCH(dev, philox_normal, t.numel(), gen.seed(), off, mean, stddev, t.data<float>());
  return t;
}
Tensor rand(const Shape& shape, Generator& gen, Device dev, float lo, float hi) {
  Tensor t = Tensor::empty(shape, DType::F32, dev);
  uint64_t off = gen.advance(t.numel());
  DFQ_DISPATCH(dev, philox_uniform, t.numel(), gen.seed(), off, lo, hi, t.data<float>());
  return t;
}
Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen, Device dev) {
  if (hi <= lo) throw std::invalid_argument("dfq: randint needs lo < hi");
  Tensor t = Tensor::empty(shape, DType::I64, dev);
  uint64_t off = gen.advance(t.numel());
  DFQ_DISPATCH(dev, philox_randint, t.numel(), gen.seed(), off, lo, hi, t.data<int64_t>());
  return t;
}

// ---- unary ----------------------------------------------------------------------------------
namespace {
Tensor unary(const Tensor& x_in, UnaryOp op, float alpha, const char* name) {
  check_float(x_in, name);
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  DFQ_DISPATCH(x.device(), unary_forward, op, alpha, x.numel(), x.data<float>(), y.data<float>());
  Tensor xs = x.detach(), ys = y.detach();
  return record(y, name, {x_in}, [op, alpha, xs, ys](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty(xs.shape(), DType::F32, xs.device());
    DFQ_DISPATCH(xs.device(), unary_backward, op, alpha, xs.numel(), xs.data<float>(), ys.data<float>(),
                 g.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}
}  // namespace

Tensor add_scalar(const Tensor& x, float s) { return unary(x, UnaryOp::AddScalar, s, "add_scalar"); }
Tensor mul_scalar(const Tensor& x, float s) { return unary(x, UnaryOp::MulScalar, s, "mul_scalar"); }
Tensor neg(const Tensor& x) { return unary(x, UnaryOp::Neg, 0.f, "neg"); }
Tensor relu(const Tensor& x) { return unary(x, UnaryOp::Relu, 0.f, "relu"); }
Tensor relu6(const Tensor& x) { return unary(x, UnaryOp::Relu6, 0.f, "relu6"); }
Tensor leaky_relu(const Tensor& x, float slope) { return unary(x, UnaryOp::LeakyRelu, slope, "leaky_relu"); }
Tensor tanh(const Tensor& x) { return unary(x, UnaryOp::Tanh, 0.f, "tanh"); }
Tensor sigmoid(const Tensor& x) { return unary(x, UnaryOp::Sigmoid, 0.f, "sigmoid"); }
Tensor sqrt(const Tensor& x) { return unary(x, UnaryOp::Sqrt, 0.f, "sqrt"); }
Tensor square(const Tensor& x) { return unary(x, UnaryOp::Square, 0.f, "square"); }
Tensor exp(const Tensor& x) { return unary(x, UnaryOp::Exp, 0.f, "exp"); }
Tensor log(const Tensor& x) { return unary(x, UnaryOp::Log, 0.f, "log"); }
Tensor abs(const Tensor& x) { return unary(x, UnaryOp::Abs, 0.f, "abs"); }

// ---- broadcasting -----------------------------------------------------------------------------
Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument("dfq: shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  if (n > static_cast<size_t>(kMaxDims)) throw std::invalid_argument("dfq: broadcasting beyond 6 dims");
  return out;
}

namespace {
// Strides (in elements) of contiguous shape `s` read as `out` (left-padded, 0 on broadcast dims).
void broadcast_strides(const Shape& s, const Shape& out, int64_t* strides) {
  size_t n = out.size(), pad = n - s.size();
  Shape cs = contiguous_strides(s);
  for (size_t i = 0; i < n; ++i) strides[i] = (i < pad || s[i - pad] == 1) ? 0 : cs[i - pad];
}
}  // namespace

Tensor expand(const Tensor& x_in, const Shape& shape) {
  check_float(x_in, "expand");
  Tensor x = x_in.contiguous();
  if (broadcast_shapes(x.shape(), shape) != shape)
    throw std::invalid_argument("dfq: cannot expand " + x.str() + " to " + shape_str(shape));
  Tensor y = Tensor::empty(shape, DType::F32, x.device());
  StridedArgs a{};
  a.ndim = static_cast<int>(shape.size());
  for (int i = 0; i < a.ndim; ++i) a.shape[i] = shape[i];
  broadcast_strides(x.shape(), shape, a.stride);
  if (a.ndim == 0) {
    a.ndim = 1;
    a.shape[0] = 1;
    a.stride[0] = 0;
  }
  DFQ_DISPATCH(x.device(), strided_copy, a, x.data<float>(), y.data<float>());
  Shape in_shape = x.shape();
  return record(y, "expand", {x_in}, [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
}

Tensor sum_to(const Tensor& g_in, const Shape& shape) {
  if (g_in.shape() == shape) return g_in;
  Tensor g = g_in.contiguous();
  const Shape& gs = g.shape();
  if (gs.size() < shape.size() || gs.size() > static_cast<size_t>(kMaxDims))
    throw std::invalid_argument("dfq: cannot sum " + g.str() + " to " + shape_str(shape));
  size_t pad = gs.size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < gs.size(); ++i) {
    int64_t want = i < pad ? 1 : shape[i - pad];
    if (want == 1 && gs[i] != 1) dims.push_back(static_cast<int64_t>(i));
    else if (want != gs[i]) throw std::invalid_argument("dfq: cannot sum " + g.str() + " to " + shape_str(shape));
  }
  Tensor r = dims.empty() ? g : sum(g, dims, true);
  return r.reshape(shape);
}

namespace {
Tensor binary(const Tensor& a_in, const Tensor& b_in, BinaryOp op, const char* name) {
  check_float(a_in, name);
  check_float(b_in, name);
  check_same_device(a_in, b_in, name);
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Shape out_shape = broadcast_shapes(a.shape(), b.shape());
  Tensor y = Tensor::empty(out_shape, DType::F32, a.device());
  if (y.numel() > 0) {
    BroadcastArgs args{};
    args.ndim = static_cast<int>(out_shape.size());
    for (int i = 0; i < args.ndim; ++i) args.shape[i] = out_shape[i];
    broadcast_strides(a.shape(), out_shape, args.stride_a);
    broadcast_strides(b.shape(), out_shape, args.stride_b);
    if (args.ndim == 0) {
      args.ndim = 1;
      args.shape[0] = 1;
      args.stride_a[0] = args.stride_b[0] = 0;
    }
    DFQ_DISPATCH(a.device(), binary_forward, op, args, a.data<float>(), b.data<float>(), y.data<float>());
  }
  Tensor as = a.detach(), bs = b.detach();
  bool need_a = a_in.requires_grad(), need_b = b_in.requires_grad();
  Tensor ys = (op == BinaryOp::Div) ? y.detach() : Tensor();
  return record(y, name, {a_in, b_in}, [op, as, bs, ys, need_a, need_b](const Tensor& g) {
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::Add:
        if (need_a) ga = sum_to(g, as.shape());
        if (need_b) gb = sum_to(g, bs.shape());
        break;
      case BinaryOp::Sub:
        if (need_a) ga = sum_to(g, as.shape());
        if (need_b) gb = sum_to(neg(g), bs.shape());
        break;
      case BinaryOp::Mul:
        if (need_a) ga = sum_to(mul(g, bs), as.shape());
        if (need_b) gb = sum_to(mul(g, as), bs.shape());
        break;
      case BinaryOp::Div:  // y = a / b: ga = g / b, gb = -g * y / b
        if (need_a) ga = sum_to(div(g, bs), as.shape());
        if (need_b) gb = sum_to(neg(div(mul(g, ys), bs)), bs.shape());
        break;
    }
    return std::vector<Tensor>{ga, gb};
  });
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Add, "add"); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Sub, "sub"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Mul, "mul"); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Div, "div"); }

}  // namespace dfq
