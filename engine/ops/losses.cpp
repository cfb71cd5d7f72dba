// losses.cpp — softmax / log_softmax over the last dimension, nll and cross-entropy (mean),
// kl_div with PyTorch's reductions, mse_loss, and host-side accuracy helpers.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <stdexcept>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/ops/op_util.h"

namespace dfq {

namespace {
Tensor softmax_impl(const Tensor& x_in, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_float(x_in, name);
  if (x_in.dim() < 1) throw std::invalid_argument(std::string("dfq: ") + name + " of a 0-d tensor");
  if (norm_dim(dim, x_in.dim(), name) != x_in.dim() - 1)
    throw std::invalid_argument(std::string("dfq: ") + name + ": only the last dimension is supported");
  Tensor x = x_in.contiguous();
  int64_t cols = x.shape().back(), rows = cols ? x.numel() / cols : 0;
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  if (rows && cols) DFQ_DISPATCH(x.device(), softmax_forward, rows, cols, log, x.data<float>(), y.data<float>());
  Tensor ys = y.detach();
  return record(y, name, {x_in}, [ys, rows, cols, log](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty(ys.shape(), DType::F32, ys.device());
    if (rows && cols) DFQ_DISPATCH(ys.device(), softmax_backward, rows, cols, log, ys.data<float>(), g.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor nll_loss(const Tensor& logp_in, const Tensor& labels_in) {
  check_float(logp_in, "nll_loss");
  check_dim(logp_in, 2, "nll_loss input");
  check_i64(labels_in, "nll_loss labels");
  check_same_device(logp_in, labels_in, "nll_loss");
  int64_t rows = logp_in.size(0), cols = logp_in.size(1);
  if (labels_in.numel() != rows || rows == 0)
    throw std::invalid_argument("dfq: nll_loss: " + labels_in.str() + " labels for input " + logp_in.str());
  Tensor logp = logp_in.contiguous(), labels = labels_in.contiguous();
  if (labels.device() == Device::CPU) {
    const int64_t* l = labels.data<int64_t>();
    for (int64_t i = 0; i < rows; ++i)
      if (l[i] < 0 || l[i] >= cols)
        throw std::out_of_range("dfq: nll_loss: label " + std::to_string(l[i]) + " out of range [0, " + std::to_string(cols) + ")");
  }
  Tensor loss = Tensor::empty({}, DType::F32, logp.device());
  DFQ_DISPATCH(logp.device(), nll_forward, rows, cols, logp.data<float>(), labels.data<int64_t>(), loss.data<float>());
  Tensor ls = labels.detach();
  return record(loss, "nll_loss", {logp_in}, [ls, rows, cols](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty({rows, cols}, DType::F32, g.device());
    DFQ_DISPATCH(g.device(), nll_backward, rows, cols, ls.data<int64_t>(), g.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}
Tensor cross_entropy(const Tensor& logits, const Tensor& labels) { return nll_loss(log_softmax(logits), labels); }

Tensor kl_div(const Tensor& input_in, const Tensor& target_in, const std::string& reduction) {
  check_float(input_in, "kl_div");
  check_float(target_in, "kl_div");
  check_same_device(input_in, target_in, "kl_div");
  if (input_in.shape() != target_in.shape())
    throw std::invalid_argument("dfq: kl_div: input " + input_in.str() + " vs target " + target_in.str());
  float scale;
  if (reduction == "mean") scale = 1.f / static_cast<float>(std::max<int64_t>(1, input_in.numel()));
  else if (reduction == "batchmean") scale = 1.f / static_cast<float>(std::max<int64_t>(1, input_in.size(0)));
  else if (reduction == "sum") scale = 1.f;
  else throw std::invalid_argument("dfq: kl_div: unknown reduction '" + reduction + "' (mean, batchmean or sum)");
  Tensor in = input_in.contiguous(), t = target_in.contiguous();
  int64_t n = in.numel();
  Tensor pw = Tensor::empty(in.shape(), DType::F32, in.device());
  if (n) DFQ_DISPATCH(in.device(), kl_div_forward, n, in.data<float>(), t.data<float>(), pw.data<float>());
  Tensor ins = in.detach(), ts = t.detach();
  bool need_in = input_in.requires_grad(), need_t = target_in.requires_grad();
  Tensor pointwise = record(pw, "kl_div", {input_in, target_in}, [ins, ts, n, need_in, need_t](const Tensor& g_in) {
    Tensor g = g_in.contiguous(), gi, gt;
    if (need_in) gi = Tensor::empty(ins.shape(), DType::F32, g.device());
    if (need_t) gt = Tensor::empty(ts.shape(), DType::F32, g.device());
    if (n) DFQ_DISPATCH(g.device(), kl_div_backward, n, ins.data<float>(), ts.data<float>(), g.data<float>(), opt_ptr(gi), opt_ptr(gt));
    return std::vector<Tensor>{gi, gt};
  });
  return mul_scalar(sum(pointwise), scale);
}

Tensor mse_loss(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) throw std::invalid_argument("dfq: mse_loss: " + a.str() + " vs " + b.str());
  return mean(square(sub(a, b)));
}

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  check_float(logits, "argmax_rows");
  check_dim(logits, 2, "argmax_rows");
  std::vector<float> v = logits.to_vector();
  int64_t rows = logits.size(0), cols = logits.size(1);
  std::vector<int64_t> out(rows);
  for (int64_t r = 0; r < rows; ++r)
    out[r] = std::max_element(v.begin() + r * cols, v.begin() + (r + 1) * cols) - (v.begin() + r * cols);
  return out;
}

int64_t topk_correct(const Tensor& logits, const Tensor& labels, int k) {
  check_float(logits, "topk_correct");
  check_dim(logits, 2, "topk_correct");
  std::vector<float> v = logits.to_vector();
  std::vector<int64_t> l = labels.to_vector_i64();
  const int64_t rows = logits.size(0), cols = logits.size(1);
  if (static_cast<int64_t>(l.size()) != rows)
    throw std::invalid_argument("topk_correct: " + std::to_string(l.size()) + " labels for " + std::to_string(rows) + " rows");
  int64_t hits = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v.data() + r * cols;
    if (l[r] < 0 || l[r] >= cols)
      throw std::out_of_range("dfq: topk_correct: label " + std::to_string(l[r]) + " out of range [0, " +
                              std::to_string(cols) + ") (the model's classes)");
    // A row with a NaN or an infinity is wrong, never a hit: NaN compares false with everything,
    // so such a row would otherwise rank its label first.
    if (!std::all_of(row, row + cols, [](float x) { return std::isfinite(x); })) continue;
    const float target = row[l[r]];
    int64_t greater = 0;  // classes ranked strictly above the label (ties go to the lower index, as torch.topk)
    for (int64_t c = 0; c < cols; ++c)
      if (row[c] > target || (row[c] == target && c < l[r])) ++greater;
    if (greater < k) ++hits;
  }
  return hits;
}

int64_t nonfinite_rows(const Tensor& logits) {
  check_float(logits, "nonfinite_rows");
  check_dim(logits, 2, "nonfinite_rows");
  std::vector<float> v = logits.to_vector();
  const int64_t rows = logits.size(0), cols = logits.size(1);
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r)
    n += !std::all_of(v.data() + r * cols, v.data() + (r + 1) * cols, [](float x) { return std::isfinite(x); });
  return n;
}

}  // namespace dfq
