// module.cpp — Module bookkeeping and the basic layers (see module.h).
#include "engine/nn/module.h"

#include <cmath>
#include <stdexcept>

namespace dfq::nn {

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  if (t.defined()) t.set_requires_grad(true).set_name(name);
  entries_.push_back({name, t, true});
  return entries_.back().t;
}
Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  if (t.defined()) t.set_name(name);
  entries_.push_back({name, t, false});
  return entries_.back().t;
}
void Module::collect(const std::string& prefix, bool params, bool buffers, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const Entry& e : entries_)
    if (e.t.defined() && ((e.is_param && params) || (!e.is_param && buffers))) out.push_back({prefix + e.name, e.t});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, buffers, out);
}
std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, false, out);
  return out;
}
std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, true, out);
  return out;
}
std::vector<std::pair<std::string, Tensor>> Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, true, out);
  return out;
}
std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}
void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}
void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) {
    Tensor tt = t;
    tt.zero_grad();
  }
}
void Module::to(Device d) {
  // The registered tensors are shared handles: move each storage in place by swapping impls.
  for (auto& [n, t] : state_dict()) {
    if (t.device() == d) continue;
    Tensor moved = t.detach().to(d);
    TensorImpl& dst = t.impl();
    dst.storage = moved.impl().storage;
    dst.offset = moved.impl().offset;
    dst.device = d;
    dst.grad = nullptr;
  }
}
std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  for (const auto& [name, child] : children_) {
    out.push_back({name, child.get()});
    for (auto& [n, m] : child->named_modules()) out.push_back({name + "." + n, m});
  }
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void default_init(Tensor& weight, Tensor* bias, int64_t fan_in, Generator& gen) {
  float bound = 1.f / std::sqrt(static_cast<float>(fan_in));  // kaiming_uniform(a=sqrt(5)) gives 1/sqrt(fan_in)
  weight.copy_(rand(weight.shape(), gen, Device::CPU, -bound, bound));
  if (bias && bias->defined()) bias->copy_(rand(bias->shape(), gen, Device::CPU, -bound, bound));
}

Conv2d::Conv2d(int in, int out, int kernel, Conv2dOptions o, bool with_bias, Generator& gen) : opts(o) {
  Tensor w = Tensor::empty({out, in / o.groups, kernel, kernel});
  Tensor b = with_bias ? Tensor::empty({out}) : Tensor();
  default_init(w, with_bias ? &b : nullptr, static_cast<int64_t>(in / o.groups) * kernel * kernel, gen);
  weight = register_parameter("weight", w);
  if (with_bias) bias = register_parameter("bias", b);
}

Linear::Linear(int in, int out, bool with_bias, Generator& gen) {
  Tensor w = Tensor::empty({out, in});
  Tensor b = with_bias ? Tensor::empty({out}) : Tensor();
  default_init(w, with_bias ? &b : nullptr, in, gen);
  weight = register_parameter("weight", w);
  if (with_bias) bias = register_parameter("bias", b);
}

BatchNorm::BatchNorm(int channels, float eps_, float momentum_, bool affine) : eps(eps_), momentum(momentum_) {
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({channels}));
    bias = register_parameter("bias", Tensor::zeros({channels}));
  }
  running_mean = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var = register_buffer("running_var", Tensor::ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I64));
}
void BatchNorm::before_forward(const Tensor& x) {
  if (input_hook) input_hook(x);
  if (training_) {
    // num_batches_tracked lives on the host-side counter only when on the CPU; it is bookkeeping.
    if (num_batches_tracked.device() == Device::CPU) num_batches_tracked.data<int64_t>()[0] += 1;
  }
}

Tensor BatchNorm::forward(const Tensor& x, BatchStats* stats) {
  before_forward(x);
  return batch_norm(x, weight, bias, running_mean, running_var, training_, momentum, eps, stats);
}

Tensor BatchNorm::forward_conditional(const Tensor& x, const Tensor& gamma, const Tensor& beta, float slope) {
  if (weight.defined()) throw std::logic_error("dfq: BatchNorm::forward_conditional on an affine layer (its gamma/beta would be ignored)");
  before_forward(x);
  return cond_batch_norm(x, gamma, beta, running_mean, running_var, training_, momentum, eps, slope);
}

}  // namespace dfq::nn
