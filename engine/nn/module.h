// module.h — a minimal module system: named parameters (trainable tensors), buffers (running
// statistics), children, train/eval mode and device moves. Names follow PyTorch's state_dict
// ("layer1.0.conv1.weight"), so models can be loaded by name. Plus the three basic layers.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops.h"

namespace dfq::nn {

class Module {
 public:
  virtual ~Module() = default;
  // Depth-first, in registration order, names joined with '.'.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  // Parameters and buffers in registration order (PyTorch's state_dict order per module).
  std::vector<std::pair<std::string, Tensor>> state_dict() const;
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Moves every parameter and buffer to d (in place: the registered tensors are replaced).
  void to(Device d);
  int64_t num_parameters() const;
  // Every descendant module (not this one), depth-first in registration order, with its dotted name.
  std::vector<std::pair<std::string, const Module*>> named_modules() const;

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.push_back({name, m});
    return m;
  }
  bool training_ = true;

 private:
  struct Entry { std::string name; Tensor t; bool is_param; };
  std::vector<Entry> entries_;  // parameters and buffers, in registration order
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  void collect(const std::string& prefix, bool params, bool buffers, std::vector<std::pair<std::string, Tensor>>& out) const;
};

// PyTorch's default init: kaiming_uniform_(a=sqrt(5)) for weights, U(-1/sqrt(fan_in), ..) for bias.
void default_init(Tensor& weight, Tensor* bias, int64_t fan_in, Generator& gen);

// Hooks for quantization (issue 6): weight_hook, when set, maps the weight (and bias_hook the
// bias) before every use, e.g. a fake-quantizer; it must be differentiable if training needs it.
// input_hook maps a Conv2d's / Linear's input before the layer uses it (SQuant quantizes layer
// inputs, not ReLU outputs: quant/qmodel.h ActPlacement::LayerInputs).
using TensorHook = std::function<Tensor(const Tensor&)>;
// t through h when both are set, else t
inline Tensor hooked(const TensorHook& h, const Tensor& t) { return (t.defined() && h) ? h(t) : t; }

class Conv2d : public Module {
 public:
  Conv2d(int in, int out, int kernel, Conv2dOptions o, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) const {
    if (forward_override) return forward_override(hooked(input_hook, x));
    return conv2d(hooked(input_hook, x), hooked(weight_hook, weight), hooked(bias_hook, bias), opts);
  }
  // forward(upsample_nearest2x(x)), fused (upsample_nearest2x_conv3x3) when this is a 3x3, stride 1,
  // padding 1 conv without groups or dilation
  Tensor forward_upsampled2x(const Tensor& x) const {
    bool fusable = weight.size(2) == 3 && weight.size(3) == 3 && opts.stride == std::array<int, 2>{1, 1} &&
                   opts.padding == std::array<int, 2>{1, 1} && opts.dilation == std::array<int, 2>{1, 1} && opts.groups == 1;
    if (!fusable || forward_override) return forward(upsample_nearest2x(x));
    // the input hook sees the conv's input (the up-sampled map); nearest up-sampling commutes with
    // an element-wise hook, so applying it before the fused op is the same
    return upsample_nearest2x_conv3x3(hooked(input_hook, x), hooked(weight_hook, weight), hooked(bias_hook, bias));
  }
  Tensor weight, bias;
  Conv2dOptions opts;
  TensorHook weight_hook, bias_hook, input_hook;
  // When set, computes the layer's output from its (input-hooked) input instead of conv2d with the
  // hooked weight and bias: integer inference (quant/int8_inference.h) runs the layer in integers.
  TensorHook forward_override;
};

class Linear : public Module {
 public:
  Linear(int in, int out, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) const {
    if (forward_override) return forward_override(hooked(input_hook, x));
    return linear(hooked(input_hook, x), hooked(weight_hook, weight), hooked(bias_hook, bias));
  }
  Tensor weight, bias;
  TensorHook weight_hook, bias_hook, input_hook;
  TensorHook forward_override;  // as Conv2d's
};

// BatchNorm2d / BatchNorm1d (same module; the op takes (N,C,H,W) or (N,C)).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int channels, float eps = 1e-5f, float momentum = 0.1f, bool affine = true);
  Tensor forward(const Tensor& x, BatchStats* stats = nullptr);
  // cond_batch_norm with this layer's statistics (affine=false layers): leaky_relu(gamma * bn(x) +
  // beta, slope), gamma / beta (N, C); same hook and bookkeeping as forward().
  Tensor forward_conditional(const Tensor& x, const Tensor& gamma, const Tensor& beta, float slope = 1.f);
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  float eps, momentum;
  // Called with the BN layer's input before normalising (the BN-statistics losses of ZeroQ and
  // GDFQ read it; it keeps its autograd history).
  std::function<void(const Tensor& input)> input_hook;

 private:
  void before_forward(const Tensor& x);
};

}  // namespace dfq::nn
