// zeroq.cpp — see zeroq.h.
#include "quant/zeroq.h"

#include "engine/diverged.h"

#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/nn/optim.h"
#include "quant/bn_inputs.h"

namespace dfq::quant {

namespace {
constexpr float kEps = 1e-6f;  // the official code's eps in both std terms

// ||target - stat||_F^2 / N for stat (N,C), target (C) broadcast over the images.
Tensor own_loss(const Tensor& target, const Tensor& stat) {
  const float n = static_cast<float>(stat.size(0));
  return mul_scalar(sum(square(sub(stat, target))), 1.f / n);
}
// Unbiased variance over H*W per image and channel; over one element it is 0 * (1/0) = NaN as in
// PyTorch (forward and backward), where engine's var() refuses.
Tensor spatial_var(const Tensor& a) {
  const int64_t hw = a.size(2) * a.size(3);
  if (hw > 1) return var(a, {2, 3}, /*unbiased=*/true);
  return mul_scalar(sum(square(sub(a, mean(a, {2, 3}, true))), {2, 3}), std::numeric_limits<float>::infinity());
}
}  // namespace

namespace {
// Adds one tensor's terms: a (N,C,H,W) against per-channel targets mu / sd (see zeroq.h for the
// 1x1 modes). own_loss divides by the rows of the statistic: N per image, 1 over the batch.
void add_terms(const Tensor& a, const Tensor& mu, const Tensor& sd, OneByOne mode, Tensor& mean_loss, Tensor& std_loss) {
  auto acc = [](Tensor& total, const Tensor& t) { total = total.defined() ? add(total, t) : t; };
  if (a.size(2) * a.size(3) == 1 && mode == OneByOne::BatchStats && a.size(0) > 1) {
    Tensor flat = a.reshape({a.size(0), a.size(1)});
    acc(mean_loss, own_loss(mu, mean(flat, {0}, true)));
    acc(std_loss, own_loss(sd, sqrt(add_scalar(var(flat, {0}, /*unbiased=*/true, true), kEps))));
    return;
  }
  acc(mean_loss, own_loss(mu, mean(a, {2, 3})));
  if (a.size(2) * a.size(3) > 1 || mode == OneByOne::Nan)  // MeanOnly (or one image): no std term
    acc(std_loss, own_loss(sd, sqrt(add_scalar(spatial_var(a), kEps))));
}
// (N,C) (BatchNorm1d inputs, an MLP's input) is read as (N,C,1,1).
Tensor as_4d(const Tensor& a) { return a.dim() == 2 ? a.reshape({a.size(0), a.size(1), 1, 1}) : a; }
}  // namespace

Tensor zeroq_loss(models::Model& teacher, const Tensor& x, OneByOne one_by_one) {
  const auto& bns = teacher.bn_layers();
  std::vector<Tensor> inputs = collect_bn_inputs(teacher, [&] { teacher.forward(x); });
  Tensor mean_loss, std_loss;  // summed as the official code: mean terms, std terms, then their sum
  for (size_t i = 0; i < bns.size(); ++i) {
    if (inputs[i].dim() != 4 && inputs[i].dim() != 2)
      throw std::runtime_error("zeroq: BN layer " + bns[i].first + " sees a " + inputs[i].str() + " input");
    const nn::BatchNorm& bn = *bns[i].second;
    Tensor mu = bn.running_mean.detach();
    Tensor sd = sqrt(add_scalar(bn.running_var.detach(), kEps));
    add_terms(as_4d(inputs[i]), mu, sd, one_by_one, mean_loss, std_loss);
  }
  const int64_t C = x.size(1);
  add_terms(as_4d(x), Tensor::zeros({C}, DType::F32, x.device()), Tensor::ones({C}, x.device()), one_by_one, mean_loss,
            std_loss);
  return add(mean_loss, std_loss);
}

Tensor distill(models::Model& teacher, const ZeroQOptions& o, Device dev,
               const std::function<void(int, float, float)>& on_iter) {
  if (o.batch_size < 1 || o.iters < 0 || (o.sample_shape.empty() && o.img_size < 8))
    throw std::invalid_argument("zeroq: batch_size >= 1, iters >= 0 and img_size >= 8 are needed");
  teacher.eval();
  Generator gen(o.seed);
  Shape shape{o.batch_size, 3, o.img_size, o.img_size};
  if (!o.sample_shape.empty()) {
    shape = {o.batch_size};
    shape.insert(shape.end(), o.sample_shape.begin(), o.sample_shape.end());
  }
  // (randint(0, 255) - 127.5) / 5418.75, drawn on the host (the same on every device).
  std::vector<int64_t> r = randint(shape, 0, 255, gen).to_vector_i64();
  std::vector<float> v(r.size());
  for (size_t i = 0; i < r.size(); ++i) v[i] = (static_cast<float>(r[i]) - 127.5f) / 5418.75f;
  Tensor x = Tensor::from_vector(v, shape, dev);
  x.set_requires_grad(true);
  AdamOptions ao;
  ao.lr = o.lr;
  Adam opt({x}, ao);
  ReduceLROnPlateau sched(opt, 0.1f, o.patience, o.min_lr);
  // The teacher's parameters need no gradient here (the official code accumulates and ignores it).
  std::vector<bool> had_grad;
  for (auto& p : teacher.parameters()) {
    had_grad.push_back(p.requires_grad());
    p.set_requires_grad(false);
  }
  auto restore = [&] {
    size_t k = 0;
    for (auto& p : teacher.parameters()) p.set_requires_grad(had_grad[k++]);
  };
  try {
    for (int it = 0; it < o.iters; ++it) {
      opt.zero_grad();
      Tensor loss = zeroq_loss(teacher, x, o.one_by_one);
      const float lv = loss.item();
      require_finite_loss(lv, "ZeroQ distillation, iteration " + std::to_string(it + 1) + " of " + std::to_string(o.iters));
      loss.backward();
      opt.step();
      sched.step(lv);
      if (on_iter) on_iter(it + 1, lv, opt.lr());
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return x.detach();
}

void calibrate(QuantizedModel& q, const Tensor& data) {
  NoGradGuard ng;
  q.model().eval();
  q.unfreeze();
  q.forward(data);
  q.freeze();
}

}  // namespace dfq::quant
