// gdfq.cpp — see gdfq.h.
#include "quant/gdfq.h"

#include "engine/diverged.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "engine/io/weights.h"
#include "engine/profile.h"
#include "quant/bn_inputs.h"

namespace dfq::quant {

namespace {
constexpr int64_t kCheckpointVersion = 1;

void prefixed(std::vector<std::pair<std::string, Tensor>>& out, const std::string& prefix,
              const std::vector<std::pair<std::string, Tensor>>& in) {
  for (const auto& [name, t] : in) out.push_back({prefix + name, t.cpu()});
}
}  // namespace

TeacherOut teacher_with_bns(models::Model& teacher, const Tensor& x) {
  TeacherOut r;
  std::vector<Tensor> ins = collect_bn_inputs(teacher, [&] { r.logits = teacher.forward(x); });
  const auto& bns = teacher.bn_layers();
  Tensor total;
  for (size_t i = 0; i < ins.size(); ++i) {
    Tensor mv = channel_moments(ins[i]);  // batch mean, biased var per channel
    Tensor mu = mv.select(0), v = mv.select(1);
    Tensor l = add(mse_loss(mu, bns[i].second->running_mean.detach()), mse_loss(v, bns[i].second->running_var.detach()));
    total = total.defined() ? add(total, l) : l;
  }
  if (!total.defined()) throw std::runtime_error("GDFQ's BNS loss needs a teacher with BN layers (" + teacher.arch + " has none)");
  r.bns = mul_scalar(total, 1.f / static_cast<float>(ins.size()));
  return r;
}

Tensor gdfq_student_loss(const Tensor& s, const Tensor& t, const Tensor& y, float T, bool use_kd) {
  Tensor ce = cross_entropy(s, y);
  if (!use_kd) return ce;
  Tensor kl = kl_div(log_softmax(mul_scalar(s, 1.f / T)), softmax(mul_scalar(t.detach(), 1.f / T)), "mean");
  return add(ce, mul_scalar(kl, T * T));
}

std::vector<int> effective_milestones(const GdfqOptions& o) {
  if (!o.milestones.empty()) return o.milestones;
  return {o.n_epochs / 4, o.n_epochs / 2, 3 * o.n_epochs / 4};
}

GdfqTrainer::GdfqTrainer(std::shared_ptr<models::Model> teacher, std::shared_ptr<models::Model> student,
                         const QuantConfig& qcfg, const GdfqOptions& o, Device dev, int img_size)
    : teacher_(std::move(teacher)), o_(o), dev_(dev), rng_(o.seed * 2654435761ull + 12345) {
  if (o.n_epochs < 1 || o.n_iter < 1 || o.batch_size < 2)
    throw std::invalid_argument("GDFQ needs n_epochs >= 1, n_iter >= 1 and batch_size >= 2 (batch statistics)");
  if (teacher_.get() == student.get()) throw std::invalid_argument("GDFQ: teacher and student must be two model copies");
  teacher_->eval();
  for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
  QuantConfig c = qcfg;
  c.observer = Observer::Ema;
  q_ = std::make_unique<QuantizedModel>(std::move(student), c);
  q_->freeze();
  g_ = std::make_shared<models::GdfqGenerator>(teacher_->num_classes, o.latent_dim, img_size, 3, o.seed);
  g_->to(dev);
  g_->train();
  AdamOptions ao;
  ao.lr = o.g_lr;
  ao.beta1 = 0.5;
  ao.beta2 = 0.999;
  opt_g_ = std::make_unique<Adam>(g_->parameters(), ao);
  SgdOptions so;
  so.lr = static_cast<float>(o.q_lr);
  so.momentum = 0.9f;
  so.nesterov = true;
  so.weight_decay = 1e-4f;
  opt_q_ = std::make_unique<SGD>(q_->model().parameters(), so);
}

EpochStats GdfqTrainer::train_epoch(const std::function<void(int, const EpochStats&)>& on_iter) {
  EpochStats st;
  st.epoch = epoch_;
  int drops = 0;
  for (int m : effective_milestones(o_)) drops += epoch_ >= m ? 1 : 0;
  double factor = 1;
  for (int i = 0; i < drops; ++i) factor *= 0.1;
  st.g_lr = o_.g_lr * factor;
  st.q_lr = o_.q_lr * factor;
  opt_g_->set_lr(static_cast<float>(st.g_lr));
  opt_q_->set_lr(static_cast<float>(st.q_lr));
  st.q_trained = epoch_ >= o_.warmup_epochs;
  st.ranges_observed = epoch_ < o_.range_epochs;
  if (st.ranges_observed) q_->unfreeze();
  q_->model().eval();
  teacher_->eval();
  g_->train();
  const int B = o_.batch_size, C = teacher_->num_classes;
  for (int it = 0; it < o_.n_iter; ++it) {
    Tensor z = randn({B, o_.latent_dim}, rng_, dev_);
    Tensor y = randint({B}, 0, C, rng_, dev_);
    // Generator step (DFQ_PROFILE=1 tables the kernels of each phase apart).
    Tensor x, g_ce, g_loss;
    TeacherOut t;
    {
      profile::Phase ph("G forward");
      x = g_->forward(z, y);
    }
    {
      profile::Phase ph("T forward + BNS");
      t = teacher_with_bns(*teacher_, x);
      g_ce = cross_entropy(t.logits, y);
      g_loss = o_.use_bns ? add(g_ce, mul_scalar(t.bns, o_.bns_weight)) : g_ce;
    }
    auto where = [&](const char* step) {
      return std::string("GDFQ ") + step + ", epoch " + std::to_string(epoch_ + 1) + " of " + std::to_string(o_.n_epochs) +
             ", iteration " + std::to_string(it + 1) + " of " + std::to_string(o_.n_iter);
    };
    require_finite_loss(g_loss.item(), where("generator step"));
    {
      profile::Phase ph("G backward (through T)");
      opt_g_->zero_grad();
      g_loss.backward();
    }
    {
      profile::Phase ph("G step");
      opt_g_->step();
    }
    // Student step (a forward only during warm-up: it still updates the ranges when observing).
    Tensor xd = x.detach(), tl = t.logits.detach();
    Tensor q_loss;
    if (st.q_trained) {
      {
        profile::Phase ph("Q forward");
        q_loss = gdfq_student_loss(q_->forward(xd), tl, y, o_.kd_temperature, o_.use_kd);
      }
      require_finite_loss(q_loss.item(), where("student step"));
      {
        profile::Phase ph("Q backward");
        opt_q_->zero_grad();
        q_loss.backward();
      }
      profile::Phase ph("Q step");
      opt_q_->step();
    } else {
      profile::Phase ph("Q forward (warm-up, no grad)");
      NoGradGuard ng;
      q_loss = gdfq_student_loss(q_->forward(xd), tl, y, o_.kd_temperature, o_.use_kd);
      require_finite_loss(q_loss.item(), where("student forward (warm-up)"));
    }
    const double k = 1.0 / (it + 1);
    st.g_loss += (g_loss.item() - st.g_loss) * k;
    st.g_ce += (g_ce.item() - st.g_ce) * k;
    st.bns += (t.bns.item() - st.bns) * k;
    st.q_loss += (q_loss.item() - st.q_loss) * k;
    if (on_iter) on_iter(it + 1, st);
  }
  q_->freeze();
  ++epoch_;
  return st;
}

Tensor GdfqTrainer::sample_grid_images(int per_class, uint64_t seed, int max_classes) {
  NoGradGuard ng;
  const int C = teacher_->num_classes, shown = std::min(C, std::max(1, max_classes));
  std::vector<int64_t> labels;
  for (int i = 0; i < shown; ++i)
    for (int k = 0; k < per_class; ++k) labels.push_back(int64_t(i) * C / shown);
  Generator gen(seed);
  Tensor z = randn({int64_t(labels.size()), o_.latent_dim}, gen, dev_);
  // Train mode as in training (batch statistics); the running statistics it touches are never used
  // by training (G is always in train mode), so they are saved and put back.
  std::vector<Tensor> saved;
  for (auto& [name, t] : g_->named_buffers()) saved.push_back(t.clone().detach());
  Tensor img = g_->forward(z, Tensor::from_vector_i64(labels, {int64_t(labels.size())}, dev_));
  size_t i = 0;
  for (auto& [name, t] : g_->named_buffers()) t.copy_(saved[i++]);
  return img;
}

void GdfqTrainer::save_checkpoint(const std::string& path, const std::vector<float>& extra) const {
  std::vector<std::pair<std::string, Tensor>> t;
  prefixed(t, "G.", g_->state_dict());
  prefixed(t, "Q.", q_->model().state_dict());
  for (size_t i = 0; i < q_->acts().size(); ++i) t.push_back({"Qact." + std::to_string(i), q_->acts()[i].state.cpu()});
  prefixed(t, "optG.", opt_g_->state_dict());
  prefixed(t, "optQ.", opt_q_->state_dict());
  std::vector<int64_t> meta = {kCheckpointVersion, epoch_, int64_t(rng_.seed()), int64_t(rng_.offset())};
  for (const auto& a : q_->acts()) meta.push_back(a.updates());
  t.push_back({"meta", Tensor::from_vector_i64(meta, {int64_t(meta.size())})});
  if (!run_options_.empty()) {
    const std::vector<uint8_t> opts(run_options_.begin(), run_options_.end());
    t.push_back({"run_options", Tensor::from_vector_u8(opts, {int64_t(opts.size())})});
  }
  t.push_back({"extra", Tensor::from_vector(extra.empty() ? std::vector<float>{0.f} : extra,
                                            {int64_t(extra.empty() ? 1 : extra.size())})});
  write_weight_file(path, "gdfq_checkpoint:" + teacher_->arch, teacher_->num_classes, t);
}

std::string GdfqTrainer::checkpoint_options(const std::string& path) {
  WeightFile f = WeightFile::open(path);
  if (!f.find("run_options"))
    throw std::runtime_error(path + " records no run options (made by an older dfq): it cannot be resumed safely");
  const std::vector<uint8_t> v = f.get("run_options").to_vector_u8();
  return std::string(v.begin(), v.end());
}

std::vector<float> GdfqTrainer::load_checkpoint(const std::string& path) {
  WeightFile f = WeightFile::open(path);
  if (f.arch() != "gdfq_checkpoint:" + teacher_->arch)
    throw std::runtime_error(path + " is not a GDFQ checkpoint of " + teacher_->arch + " (it holds " + f.arch() + ")");
  std::map<std::string, std::map<std::string, Tensor>> groups;
  for (const auto& e : f.entries()) {
    size_t dot = e.name.find('.');
    if (dot == std::string::npos) continue;
    groups[e.name.substr(0, dot)][e.name.substr(dot + 1)] = f.get(e.name);
  }
  auto load_module = [&](nn::Module& m, const std::string& group) {
    auto& g = groups[group];
    for (auto& [name, t] : m.state_dict()) {
      auto it = g.find(name);
      if (it == g.end() || it->second.shape() != t.shape() || it->second.dtype() != t.dtype())
        throw std::runtime_error(path + ": checkpoint does not fit this run (" + group + "." + name + ")");
      t.copy_(it->second);
    }
  };
  load_module(*g_, "G");
  load_module(q_->model(), "Q");
  for (size_t i = 0; i < q_->acts().size(); ++i) {
    const WeightFile::Entry* e = f.find("Qact." + std::to_string(i));
    if (!e || e->shape != Shape{3}) throw std::runtime_error(path + ": checkpoint lacks activation range " + std::to_string(i));
    q_->acts()[i].state = f.get("Qact." + std::to_string(i)).to(dev_).clone().detach();
  }
  opt_g_->load_state_dict(groups["optG"]);
  opt_q_->load_state_dict(groups["optQ"]);
  if (!f.find("meta") || !f.find("extra")) throw std::runtime_error(path + ": checkpoint lacks its counters");
  std::vector<int64_t> meta = f.get("meta").to_vector_i64();
  if (meta.size() != 4 + q_->acts().size() || meta[0] != kCheckpointVersion)
    throw std::runtime_error(path + ": checkpoint version or layout not supported");
  epoch_ = int(meta[1]);
  rng_.set_state(uint64_t(meta[2]), uint64_t(meta[3]));
  for (size_t i = 0; i < q_->acts().size(); ++i) q_->acts()[i].set_updates(meta[4 + i]);
  q_->freeze();
  return f.get("extra").to_vector();
}

}  // namespace dfq::quant
