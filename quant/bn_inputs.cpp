// bn_inputs.cpp — see bn_inputs.h.
#include "quant/bn_inputs.h"

#include <stdexcept>

namespace dfq::quant {

std::vector<Tensor> collect_bn_inputs(models::Model& m, const std::function<void()>& fn) {
  const auto& bns = m.bn_layers();
  std::vector<Tensor> inputs(bns.size());
  for (size_t i = 0; i < bns.size(); ++i) bns[i].second->input_hook = [&inputs, i](const Tensor& t) { inputs[i] = t; };
  try {
    fn();
  } catch (...) {
    for (auto& [name, bn] : bns) bn->input_hook = nullptr;
    throw;
  }
  for (auto& [name, bn] : bns) bn->input_hook = nullptr;
  for (size_t i = 0; i < bns.size(); ++i)
    if (!inputs[i].defined()) throw std::runtime_error("BN layer " + bns[i].first + " was not called by the forward");
  return inputs;
}

}  // namespace dfq::quant
