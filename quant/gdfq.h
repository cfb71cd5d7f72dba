// gdfq.h — GDFQ as the official code trains it (../shared/docs/dfq_algorithms.md §3):
//  - the class-conditional generator G (models/generator.h), always in train mode, Adam(g_lr,
//    betas 0.5 / 0.999); z ~ N(0, I), labels uniform;
//  - L_G = CE(teacher(G(z, y)), y) + bns_weight * BNS, BNS = mean over the teacher's BN layers of
//    MSE(batch mean, running_mean) + MSE(biased batch var, running_var) of each BN input (the
//    teacher in eval mode; its parameters get no gradient: the official code accumulates and never
//    uses them, which changes nothing);
//  - the quantized student Q (eval mode: BN statistics fixed, BN affine trained), SGD(q_lr,
//    momentum 0.9, Nesterov, weight decay 1e-4) over all its parameters; L_Q = CE(Q(x), y) +
//    T^2 * KLDiv_mean(log_softmax(Q(x) / T), softmax(t / T)) on x = G's images (detached) and the
//    teacher logits t of the same images; Q is only stepped from warmup_epochs on;
//  - both learning rates x0.1 at each milestone (lr = base * 0.1^(#milestones <= epoch), set at the
//    start of an epoch);
//  - activation ranges: GDFQ's EMA (beta 0.9), observing in epochs 0..range_epochs-1 (hard-coded 4
//    in the official code, whatever the warm-up), frozen after every epoch.
// Switches (not official, for the ablations users ask about): use_bns = false drops the BNS term,
// use_kd = false drops the KD term.
// Everything is deterministic for a seed (Philox streams, fixed-order kernels), and a checkpoint
// holds every tensor and counter, so a resumed run continues bit for bit.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/optim.h"
#include "models/generator.h"
#include "models/model.h"
#include "quant/qmodel.h"

namespace dfq::quant {

// Teacher forward that also returns GDFQ's BNS loss of x (differentiable in x).
struct TeacherOut {
  Tensor logits, bns;
};
TeacherOut teacher_with_bns(models::Model& teacher, const Tensor& x);

// CE(s, y) + T^2 * kl_div(log_softmax(s / T), softmax(t / T), "mean"); either term can be dropped.
Tensor gdfq_student_loss(const Tensor& s, const Tensor& t, const Tensor& y, float T, bool use_kd = true);

struct GdfqOptions {
  int n_epochs = 400, n_iter = 200, batch_size = 16;
  double q_lr = 1e-6, g_lr = 1e-3;
  int warmup_epochs = 50;
  std::vector<int> milestones;  // empty: n_epochs/4, n_epochs/2, 3*n_epochs/4 (100/200/300 officially)
  float bns_weight = 0.1f, kd_temperature = 20.f;
  bool use_bns = true, use_kd = true;
  int range_epochs = 4;
  int latent_dim = 100;
  uint64_t seed = 0;
};
std::vector<int> effective_milestones(const GdfqOptions& o);

struct EpochStats {
  int epoch = 0;
  double g_loss = 0, g_ce = 0, bns = 0, q_loss = 0;  // means over the epoch's iterations
  double g_lr = 0, q_lr = 0;
  bool q_trained = false, ranges_observed = false;
};

class GdfqTrainer {
 public:
  // teacher: the float model; student: a second copy of it, wrapped here at qcfg (observer EMA).
  GdfqTrainer(std::shared_ptr<models::Model> teacher, std::shared_ptr<models::Model> student, const QuantConfig& qcfg,
              const GdfqOptions& o, Device dev, int img_size);
  // Runs epoch `epoch()` (n_iter iterations); on_iter(iteration + 1, running means) after each.
  EpochStats train_epoch(const std::function<void(int, const EpochStats&)>& on_iter = nullptr);
  int epoch() const { return epoch_; }  // the next epoch to run
  QuantizedModel& qmodel() { return *q_; }
  models::GdfqGenerator& generator() { return *g_; }
  models::Model& teacher() { return *teacher_; }
  // Images of G (no grad): `per_class` for each of at most max_classes classes (all of them when
  // there are that few, else max_classes spread evenly over [0, classes): 0, 100, 200, ... of
  // ImageNet's 1000 — a grid of every class at 224 px would be gigabytes), class-major (one row
  // per class in a grid).
  Tensor sample_grid_images(int per_class, uint64_t seed, int max_classes = 10);
  // Checkpoint: every tensor and counter (G, Q weights and ranges, both optimizers, RNG, epoch),
  // plus `extra` (the caller's record, e.g. the best accuracy so far). Atomic (tmp + rename).
  // `run_options` (set_run_options) is stored with it: what the caller ran with (method_cli.h
  // RunOptions), read back by checkpoint_options() to refuse a resume with other settings.
  void save_checkpoint(const std::string& path, const std::vector<float>& extra) const;
  std::vector<float> load_checkpoint(const std::string& path);
  void set_run_options(std::string text) { run_options_ = std::move(text); }
  // The run options a checkpoint recorded; throws when it recorded none (an older checkpoint).
  static std::string checkpoint_options(const std::string& path);

 private:
  std::shared_ptr<models::Model> teacher_;
  std::unique_ptr<QuantizedModel> q_;
  std::shared_ptr<models::GdfqGenerator> g_;
  std::unique_ptr<Adam> opt_g_;
  std::unique_ptr<SGD> opt_q_;
  GdfqOptions o_;
  Device dev_;
  Generator rng_;
  int epoch_ = 0;
  std::string run_options_;
};

}  // namespace dfq::quant
