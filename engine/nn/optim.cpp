// optim.cpp — SGD, Adam and the two schedules (see optim.h for the exact semantics).
#include "engine/nn/optim.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/dispatch.h"

namespace dfq {

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

namespace {
void check_param(const Tensor& p, const Tensor& g) {
  if (!p.is_contiguous() || p.dtype() != DType::F32)
    throw std::invalid_argument("dfq: optimizer parameter must be a contiguous float tensor: " + p.str());
  if (g.shape() != p.shape() || g.device() != p.device())
    throw std::logic_error("dfq: gradient " + g.str() + " does not match parameter " + p.str());
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, const SgdOptions& o) : Optimizer(std::move(params), o.lr), o_(o) {
  if (o.nesterov && o.momentum <= 0) throw std::invalid_argument("dfq: SGD: Nesterov momentum requires a momentum > 0");
  buf_.resize(params_.size());
  has_buf_.assign(params_.size(), false);
}
void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    g = g.contiguous();
    check_param(p, g);
    SgdArgs a{lr_, o_.momentum, o_.weight_decay, o_.nesterov, false};
    float* buf = nullptr;
    if (o_.momentum != 0.f) {
      if (!has_buf_[i]) {
        buf_[i] = Tensor::zeros(p.shape(), DType::F32, p.device());
        has_buf_[i] = true;
        a.first_step = true;
      }
      buf = buf_[i].data<float>();
    }
    DFQ_DISPATCH(p.device(), sgd_update, a, p.numel(), p.data<float>(), g.data<float>(), buf);
  }
  ++steps_;
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o) : Optimizer(std::move(params), o.lr), o_(o) {
  for (const Tensor& p : params_) {
    m_.push_back(Tensor::zeros(p.shape(), DType::F32, p.device()));
    v_.push_back(Tensor::zeros(p.shape(), DType::F32, p.device()));
    t_.push_back(0);
  }
}
void Adam::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    g = g.contiguous();
    check_param(p, g);
    AdamArgs a{lr_, o_.beta1, o_.beta2, o_.eps, o_.weight_decay, ++t_[i]};
    DFQ_DISPATCH(p.device(), adam_update, a, p.numel(), p.data<float>(), g.data<float>(), m_[i].data<float>(), v_[i].data<float>());
  }
  ++steps_;
}
std::vector<Tensor> Adam::state() const {
  std::vector<Tensor> s = m_;
  s.insert(s.end(), v_.begin(), v_.end());
  return s;
}

namespace {
const Tensor& state_entry(const std::map<std::string, Tensor>& st, const std::string& name, const Shape& shape, DType dt) {
  auto it = st.find(name);
  if (it == st.end()) throw std::runtime_error("dfq: optimizer state: missing " + name);
  if (it->second.shape() != shape || it->second.dtype() != dt)
    throw std::runtime_error("dfq: optimizer state: " + name + " is " + it->second.str() + ", expected " +
                             dtype_name(dt) + shape_str(shape));
  return it->second;
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> SGD::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> s;
  std::vector<int64_t> has;
  for (size_t i = 0; i < params_.size(); ++i) {
    has.push_back(has_buf_[i] ? 1 : 0);
    if (has_buf_[i]) s.push_back({"buf." + std::to_string(i), buf_[i].cpu()});
  }
  s.push_back({"has_buf", Tensor::from_vector_i64(has, {int64_t(has.size())})});
  s.push_back({"steps", Tensor::from_vector_i64({steps_}, {1})});
  return s;
}
void SGD::load_state_dict(const std::map<std::string, Tensor>& st) {
  const int64_t n = int64_t(params_.size());
  std::vector<int64_t> has = state_entry(st, "has_buf", {n}, DType::I64).to_vector_i64();
  for (size_t i = 0; i < params_.size(); ++i) {
    has_buf_[i] = has[i] != 0;
    buf_[i] = Tensor();
    if (has_buf_[i])
      buf_[i] = state_entry(st, "buf." + std::to_string(i), params_[i].shape(), DType::F32).to(params_[i].device()).clone().detach();
  }
  steps_ = state_entry(st, "steps", {1}, DType::I64).to_vector_i64()[0];
}

std::vector<std::pair<std::string, Tensor>> Adam::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> s;
  for (size_t i = 0; i < params_.size(); ++i) {
    s.push_back({"m." + std::to_string(i), m_[i].cpu()});
    s.push_back({"v." + std::to_string(i), v_[i].cpu()});
  }
  s.push_back({"t", Tensor::from_vector_i64(t_, {int64_t(t_.size())})});
  s.push_back({"steps", Tensor::from_vector_i64({steps_}, {1})});
  return s;
}
void Adam::load_state_dict(const std::map<std::string, Tensor>& st) {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Device d = params_[i].device();
    m_[i] = state_entry(st, "m." + std::to_string(i), params_[i].shape(), DType::F32).to(d).clone().detach();
    v_[i] = state_entry(st, "v." + std::to_string(i), params_[i].shape(), DType::F32).to(d).clone().detach();
  }
  t_ = state_entry(st, "t", {int64_t(params_.size())}, DType::I64).to_vector_i64();
  steps_ = state_entry(st, "steps", {1}, DType::I64).to_vector_i64()[0];
}

MultiStepLR::MultiStepLR(Optimizer& opt, std::vector<int> milestones, float gamma)
    : opt_(opt), milestones_(std::move(milestones)), gamma_(gamma), base_lr_(opt.lr()) {
  std::sort(milestones_.begin(), milestones_.end());
}
void MultiStepLR::set_epoch(int e) {
  epoch_ = e;
  int passed = static_cast<int>(std::upper_bound(milestones_.begin(), milestones_.end(), epoch_) - milestones_.begin());
  opt_.set_lr(base_lr_ * std::pow(gamma_, static_cast<float>(passed)));
}
void MultiStepLR::step() { set_epoch(epoch_ + 1); }

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& opt, float factor, int patience, float min_lr, float threshold, float eps)
    : opt_(opt), factor_(factor), min_lr_(min_lr), threshold_(threshold), eps_(eps), patience_(patience),
      best_(std::numeric_limits<double>::infinity()) {
  if (factor >= 1.f) throw std::invalid_argument("dfq: ReduceLROnPlateau: factor must be < 1");
}
void ReduceLROnPlateau::step(float metric) {
  if (static_cast<double>(metric) < best_ * (1.0 - static_cast<double>(threshold_))) {
    best_ = metric;
    bad_ = 0;
  } else {
    ++bad_;
  }
  if (bad_ > patience_) {
    float old_lr = opt_.lr();
    float new_lr = std::max(old_lr * factor_, min_lr_);
    if (old_lr - new_lr > eps_) opt_.set_lr(new_lr);
    bad_ = 0;
  }
}

}  // namespace dfq
