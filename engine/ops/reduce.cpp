// reduce.cpp — sum, mean and var over dimensions. sum is the one reduction kernel; mean scales it;
// var is composed (x - mean)^2 so its gradient comes from the parts.
#include <algorithm>
#include <stdexcept>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/ops/op_util.h"

namespace dfq {

namespace {
std::vector<int64_t> norm_dims(const std::vector<int64_t>& dims, int64_t ndim, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty())  // every dim (PyTorch 1.13's dim=[])
    for (int64_t d = 0; d < ndim; ++d) out.push_back(d);
  for (int64_t d : dims) out.push_back(norm_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw std::invalid_argument(std::string("dfq: ") + op + ": repeated dim");
  return out;
}
Shape reduced_shape(const Shape& s, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    bool red = std::find(dims.begin(), dims.end(), i) != dims.end();
    if (!red) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}
}  // namespace

Tensor sum(const Tensor& x_in, const std::vector<int64_t>& dims_in, bool keepdim) {
  check_float(x_in, "sum");
  if (x_in.dim() > kMaxDims) throw std::invalid_argument("dfq: sum: more than 6 dims");
  Tensor x = x_in.contiguous();
  std::vector<int64_t> dims = norm_dims(dims_in, x.dim(), "sum");
  Shape keep = reduced_shape(x.shape(), dims, true);
  Tensor y = Tensor::empty(keep, DType::F32, x.device());
  if (x.dim() == 0) {
    y = x.clone().detach();
  } else if (y.numel() > 0) {
    ReduceArgs a{};
    a.ndim = static_cast<int>(x.dim());
    for (int i = 0; i < a.ndim; ++i) {
      a.shape[i] = x.shape()[i];
      a.reduce[i] = std::find(dims.begin(), dims.end(), i) != dims.end();
    }
    if (x.numel() == 0)
      y.zero_();
    else
      DFQ_DISPATCH(x.device(), reduce_sum, a, x.data<float>(), y.data<float>());
  }
  Tensor out = keepdim ? y : y.detach().view(reduced_shape(x.shape(), dims, false));
  Shape in_shape = x.shape();
  return record(out, "sum", {x_in}, [in_shape, keep](const Tensor& g) {
    return std::vector<Tensor>{expand(g.contiguous().view(keep), in_shape)};
  });
}
Tensor sum(const Tensor& x) {
  Tensor flat = x.reshape({x.numel()});
  return sum(flat, {0}, false);
}
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  std::vector<int64_t> nd = norm_dims(dims, x.dim(), "mean");
  int64_t n = 1;
  for (int64_t d : nd) n *= x.shape()[d];
  return mul_scalar(sum(x, dims, keepdim), 1.f / static_cast<float>(std::max<int64_t>(n, 1)));
}
Tensor mean(const Tensor& x) { return mul_scalar(sum(x), 1.f / static_cast<float>(std::max<int64_t>(x.numel(), 1))); }

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  std::vector<int64_t> nd = norm_dims(dims, x.dim(), "var");
  int64_t n = 1;
  for (int64_t d : nd) n *= x.shape()[d];
  int64_t denom = unbiased ? n - 1 : n;
  if (denom <= 0) throw std::invalid_argument("dfq: var over " + std::to_string(n) + " element(s) is undefined");
  Tensor m = mean(x, dims, true);
  Tensor d = sub(x, m);
  return mul_scalar(sum(square(d), dims, keepdim), 1.f / static_cast<float>(denom));
}

}  // namespace dfq
