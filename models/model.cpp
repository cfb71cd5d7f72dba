// model.cpp — Model bookkeeping (sites, layer handles) and torchvision's initialisers (model.h).
#include "models/model.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace dfq::models {

int Model::add_act_site(const std::string& name) {
  for (const std::string& s : act_sites_)
    if (s == name) throw std::logic_error("dfq: " + arch + ": activation site '" + name + "' registered twice");
  act_sites_.push_back(name);
  return static_cast<int>(act_sites_.size()) - 1;
}

int Model::act_site_index(const std::string& name) const {
  for (size_t i = 0; i < act_sites_.size(); ++i)
    if (act_sites_[i] == name) return static_cast<int>(i);
  std::string known;
  for (const std::string& s : act_sites_) known += (known.empty() ? "" : ", ") + s;
  throw std::invalid_argument("dfq: " + arch + " has no activation site '" + name + "'; known: " + known);
}

void kaiming_normal_fan_out(nn::Conv2d& conv, Generator& gen) {
  const Shape& s = conv.weight.shape();  // (K, C/groups, R, S); fan_out = K*R*S
  float stddev = std::sqrt(2.f / static_cast<float>(s[0] * s[2] * s[3]));
  conv.weight.copy_(randn(s, gen, Device::CPU, 0.f, stddev));
  if (conv.bias.defined()) conv.bias.zero_();
}

Tensor dropout(const Tensor& x, float p, Generator& gen) {
  if (p <= 0.f) return x;
  // The mask is small (a classifier's N x features): drawn on the host, moved to x's device.
  std::vector<float> u = rand(x.shape(), gen, Device::CPU).to_vector();
  const float keep_scale = 1.f / (1.f - p);
  for (float& m : u) m = m < p ? 0.f : keep_scale;
  return mul(x, Tensor::from_vector(u, x.shape()).to(x.device()));
}

void normal_init(nn::Linear& fc, float stddev, Generator& gen) {
  fc.weight.copy_(randn(fc.weight.shape(), gen, Device::CPU, 0.f, stddev));
  if (fc.bias.defined()) fc.bias.zero_();
}

}  // namespace dfq::models
