// zeroq.cpp — see zeroq.h.
#include "quant/zeroq.h"

#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/nn/optim.h"

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

Tensor zeroq_loss(models::Model& teacher, const Tensor& x, OneByOne one_by_one) {
  const auto& bns = teacher.bn_layers();
  std::vector<Tensor> inputs(bns.size());
  for (size_t i = 0; i < bns.size(); ++i) bns[i].second->input_hook = [&inputs, i](const Tensor& t) { inputs[i] = t; };
  try {
    teacher.forward(x);
  } catch (...) {
    for (auto& [name, bn] : bns) bn->input_hook = nullptr;
    throw;
  }
  for (auto& [name, bn] : bns) bn->input_hook = nullptr;
  Tensor mean_loss, std_loss;  // summed as the official code: mean terms, std terms, then their sum
  for (size_t i = 0; i < bns.size(); ++i) {
    if (!inputs[i].defined()) throw std::runtime_error("zeroq: BN layer " + bns[i].first + " was not called");
    if (inputs[i].dim() != 4) throw std::runtime_error("zeroq: BN layer " + bns[i].first + " sees a non-4-d input");
    const nn::BatchNorm& bn = *bns[i].second;
    Tensor mu = bn.running_mean.detach();
    Tensor sd = sqrt(add_scalar(bn.running_var.detach(), kEps));
    const Tensor& a = inputs[i];
    Tensor lm, ls;
    if (a.size(2) * a.size(3) == 1 && one_by_one == OneByOne::BatchStats && a.size(0) > 1) {  // deviation: see zeroq.h
      Tensor flat = a.reshape({a.size(0), a.size(1)});
      lm = own_loss(mu, mean(flat, {0}, true));
      ls = own_loss(sd, sqrt(add_scalar(var(flat, {0}, /*unbiased=*/true, true), kEps)));
    } else {
      lm = own_loss(mu, mean(a, {2, 3}));
      if (a.size(2) * a.size(3) > 1 || one_by_one == OneByOne::Nan)  // (one image: MeanOnly)
        ls = own_loss(sd, sqrt(add_scalar(spatial_var(a), kEps)));
    }
    mean_loss = mean_loss.defined() ? add(mean_loss, lm) : lm;
    if (!ls.defined()) continue;  // MeanOnly at a 1x1 layer
    std_loss = std_loss.defined() ? add(std_loss, ls) : ls;
  }
  const int64_t C = x.size(1);
  Tensor lm = own_loss(Tensor::zeros({C}, DType::F32, x.device()), mean(x, {2, 3}));
  Tensor ls = own_loss(Tensor::ones({C}, x.device()), sqrt(add_scalar(spatial_var(x), kEps)));
  mean_loss = mean_loss.defined() ? add(mean_loss, lm) : lm;
  std_loss = std_loss.defined() ? add(std_loss, ls) : ls;
  return add(mean_loss, std_loss);
}

Tensor distill(models::Model& teacher, const ZeroQOptions& o, Device dev,
               const std::function<void(int, float, float)>& on_iter) {
  if (o.batch_size < 1 || o.iters < 0 || o.img_size < 8)
    throw std::invalid_argument("zeroq: batch_size >= 1, iters >= 0 and img_size >= 8 are needed");
  teacher.eval();
  Generator gen(o.seed);
  const Shape shape{o.batch_size, 3, o.img_size, o.img_size};
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
      loss.backward();
      opt.step();
      const float lv = loss.item();
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
