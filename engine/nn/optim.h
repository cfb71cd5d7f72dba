// optim.h — optimizers and learning-rate schedules with PyTorch's exact semantics:
// torch.optim.SGD (momentum, dampening 0, Nesterov, L2 weight decay), torch.optim.Adam (betas,
// eps, L2 weight decay, no amsgrad), MultiStepLR and ReduceLROnPlateau (rel threshold 1e-4,
// cooldown 0). Parameters without a gradient are skipped, as in PyTorch. Updates are fused
// kernels on the parameters' device.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace dfq {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params, float lr) : params_(std::move(params)), lr_(lr) {}
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  float lr() const { return lr_; }
  void set_lr(float lr) { lr_ = lr; }
  const std::vector<Tensor>& params() const { return params_; }
  // State for checkpoints: every state tensor in a fixed order (momentum buffers, Adam m and v).
  virtual std::vector<Tensor> state() const = 0;
  virtual int64_t step_count() const = 0;
  virtual void set_step_count(int64_t n) = 0;
  // Everything a resumed run needs, by name ("buf.3", "m.0", "v.0", "t", "steps"; CPU copies), and
  // its inverse (same parameter list; throws naming what is missing or mis-shaped). The learning
  // rate is not included: schedules set it.
  virtual std::vector<std::pair<std::string, Tensor>> state_dict() const = 0;
  virtual void load_state_dict(const std::map<std::string, Tensor>& state) = 0;

 protected:
  std::vector<Tensor> params_;
  float lr_;
};

struct SgdOptions {
  float lr = 0.01f, momentum = 0.f, weight_decay = 0.f;
  bool nesterov = false;
};
class SGD final : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SgdOptions& o);
  void step() override;
  std::vector<Tensor> state() const override { return buf_; }
  int64_t step_count() const override { return steps_; }
  void set_step_count(int64_t n) override { steps_ = n; }
  std::vector<std::pair<std::string, Tensor>> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state) override;

 private:
  SgdOptions o_;
  std::vector<Tensor> buf_;
  std::vector<bool> has_buf_;
  int64_t steps_ = 0;
};

struct AdamOptions {  // doubles, as PyTorch's Python floats (see AdamArgs)
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};
class Adam final : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& o);
  void step() override;
  std::vector<Tensor> state() const override;
  int64_t step_count() const override { return steps_; }
  void set_step_count(int64_t n) override { steps_ = n; }
  std::vector<std::pair<std::string, Tensor>> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state) override;

 private:
  AdamOptions o_;
  std::vector<Tensor> m_, v_;
  std::vector<int64_t> t_;  // per-parameter step (PyTorch keeps one per parameter)
  int64_t steps_ = 0;
};

// lr = base_lr * gamma^(number of milestones <= epoch). Call step() once per epoch.
class MultiStepLR {
 public:
  MultiStepLR(Optimizer& opt, std::vector<int> milestones, float gamma);
  void step();
  int epoch() const { return epoch_; }
  void set_epoch(int e);

 private:
  Optimizer& opt_;
  std::vector<int> milestones_;
  float gamma_, base_lr_;
  int epoch_ = 0;
};

// mode 'min', threshold_mode 'rel': better when metric < best * (1 - threshold).
class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(Optimizer& opt, float factor = 0.1f, int patience = 10, float min_lr = 0.f,
                    float threshold = 1e-4f, float eps = 1e-8f);
  void step(float metric);
  int num_bad_epochs() const { return bad_; }

 private:
  Optimizer& opt_;
  float factor_, min_lr_, threshold_, eps_;
  int patience_, bad_ = 0;
  double best_;  // compared in double, as PyTorch's Python floats
};

}  // namespace dfq
