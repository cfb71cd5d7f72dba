// model.h — the common base of the classification models (torchvision ResNet / VGG): a Module with
// a forward, its torchvision name and class count, and named handles for the quantizer and the
// BN-statistics losses:
//  - activation CALL SITES: every place the forward applies a ReLU is one site with a unique name
//    (torchvision's BasicBlock calls one ReLU module twice: "layer1.0.relu:0", "layer1.0.relu:1";
//    a module called once keeps its plain name: "relu", "features.2", "classifier.1"). The forward
//    calls act(site, relu(x)); act_hook, when set, maps that output (e.g. a fake-quantizer).
//  - conv / linear / BN layers by their state_dict prefix, in forward order.
// Rules: names are torchvision's, parameters and buffers are registered in the order of
// torchvision's __init__ (so state_dict() order equals PyTorch's); the handles are raw pointers
// owned by the model (valid while it lives). Sites and layer lists are fixed at construction.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/nn/module.h"

namespace dfq::models {

// A Module that only names its children (torchvision's nn.Sequential for state_dict names).
class Container : public nn::Module {
 public:
  using nn::Module::register_module;
};

using ActHook = std::function<Tensor(int site, const Tensor& x)>;

class Model : public nn::Module {
 public:
  Model(std::string arch_name, int classes) : arch(std::move(arch_name)), num_classes(classes) {}
  // x (N,3,H,W) -> logits (N,num_classes)
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  std::string arch;      // torchvision name, e.g. "resnet18"
  int num_classes = 0;
  ActHook act_hook;      // identity when unset

  const std::vector<std::string>& act_sites() const { return act_sites_; }
  int act_site_index(const std::string& name) const;  // throws naming the known sites
  const std::vector<std::pair<std::string, nn::BatchNorm*>>& bn_layers() const { return bns_; }
  const std::vector<std::pair<std::string, nn::Conv2d*>>& conv_layers() const { return convs_; }
  const std::vector<std::pair<std::string, nn::Linear*>>& linear_layers() const { return linears_; }
  // What a quantizer that follows the official code (weights of the tracked convs / linears,
  // activations at the call sites) leaves in float beyond the input, BN, biases and the pooled
  // classifier input, in one phrase ("" when nothing else): MobileNetV2's linear-bottleneck
  // outputs and residual adds.
  virtual std::string float_activations_note() const { return ""; }

 protected:
  // Construction helpers: record a site / a layer under its full state_dict prefix.
  int add_act_site(const std::string& name);
  nn::Conv2d* track(const std::string& full_name, nn::Conv2d* m) { convs_.push_back({full_name, m}); return m; }
  nn::BatchNorm* track(const std::string& full_name, nn::BatchNorm* m) { bns_.push_back({full_name, m}); return m; }
  nn::Linear* track(const std::string& full_name, nn::Linear* m) { linears_.push_back({full_name, m}); return m; }
  Tensor act(int site, const Tensor& x) const { return act_hook ? act_hook(site, x) : x; }

 private:
  std::vector<std::string> act_sites_;
  std::vector<std::pair<std::string, nn::BatchNorm*>> bns_;
  std::vector<std::pair<std::string, nn::Conv2d*>> convs_;
  std::vector<std::pair<std::string, nn::Linear*>> linears_;
};

// torchvision's initialisations, drawn from gen (the engine's Philox, not PyTorch's stream):
// kaiming_normal_(mode="fan_out", nonlinearity="relu") for a conv weight (bias, if any, 0).
void kaiming_normal_fan_out(nn::Conv2d& conv, Generator& gen);
// normal(0, stddev) for a Linear weight, bias 0 (VGG's classifier: 0.01). BN needs nothing (1 / 0).
void normal_init(nn::Linear& fc, float stddev, Generator& gen);

// Inverted dropout (PyTorch's semantics, not its random stream): each element zeroed with
// probability p, the rest scaled by 1 / (1 - p); the mask drawn from gen. The caller applies it only
// in train mode.
Tensor dropout(const Tensor& x, float p, Generator& gen);

}  // namespace dfq::models
