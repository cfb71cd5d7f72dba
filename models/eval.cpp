// eval.cpp — see eval.h.
#include "models/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/io/loader.h"
#include "engine/io/progress.h"
#include "engine/io/weights.h"
#include "models/registry.h"

namespace dfq::models {

std::shared_ptr<Model> load_model(const std::string& weights, const std::string& arch, Device dev) {
  WeightFile f = WeightFile::open(weights);
  if (!arch.empty() && f.arch() != arch)
    throw std::runtime_error(weights + " holds a " + f.arch() + " (" + std::to_string(f.num_classes()) +
                             " classes), not a " + arch + " (drop -a or convert the right checkpoint)");
  auto model = create_model(f.arch(), f.num_classes(), 0, /*torchvision_init=*/false);
  load_state_dict(*model, f, true);
  model->to(dev);
  model->eval();
  return model;
}

std::unique_ptr<Dataset> open_dataset(const std::string& dataset, const std::string& data_dir, const std::string& labels,
                                      const std::string& split) {
  if (!dataset.empty() && !data_dir.empty()) throw std::invalid_argument("give either --dataset or --data, not both");
  if (dataset.empty() && data_dir.empty()) throw std::invalid_argument("no data: give --dataset fashion-mnist or --data DIR");
  if (!dataset.empty()) {
    if (dataset != "fashion-mnist") throw std::invalid_argument("unknown --dataset '" + dataset + "' (known: fashion-mnist)");
    return std::make_unique<FashionMnistDataset>(split);
  }
  if (!labels.empty()) return std::make_unique<ImageFolderDataset>(ImageFolderDataset::from_labels_file(data_dir, labels));
  return std::make_unique<ImageFolderDataset>(ImageFolderDataset::from_class_folders(data_dir));
}

void check_labels(const Dataset& ds, const Model& model, const std::string& what) {
  const int64_t n = ds.num_classes();
  if (n > model.num_classes)
    throw std::runtime_error(what + " has " + std::to_string(n) + " classes but the model (" + model.arch + ") has " +
                             std::to_string(model.num_classes) + " outputs: these labels cannot be scored on it");
}

EvalResult evaluate(Model& model, Dataset& ds, Device dev, int64_t batch_size, const std::string& label,
                    std::vector<int64_t>* predictions, const std::function<Tensor(const Tensor&)>& forward) {
  if (predictions) predictions->clear();
  check_labels(ds, model, "the evaluation data");
  NoGradGuard ng;
  bool was_training = model.is_training();
  model.eval();
  LoaderOptions lo;
  lo.batch_size = batch_size;
  DataLoader loader(ds, lo);
  loader.start_epoch();
  EvalResult r;
  Progress bar(label, loader.num_batches());
  auto t0 = std::chrono::steady_clock::now();
  for (Batch b; loader.next(b);) {
    Tensor logits = forward ? forward(b.images.to(dev)) : model.forward(b.images.to(dev));
    r.images += b.labels.numel();
    r.top1_hits += topk_correct(logits, b.labels, 1);
    r.top5_hits += topk_correct(logits, b.labels, std::min<int>(5, model.num_classes));
    r.nonfinite += nonfinite_rows(logits);
    if (predictions) {
      const std::vector<int64_t> best = argmax_rows(logits);
      const std::vector<float> v = logits.to_vector();
      const size_t cols = best.empty() ? 0 : v.size() / best.size();
      for (size_t i = 0; i < best.size(); ++i)
        predictions->push_back(std::all_of(v.begin() + i * cols, v.begin() + (i + 1) * cols, [](float x) { return std::isfinite(x); })
                                   ? best[i]
                                   : -1);
    }
    char st[64];
    std::snprintf(st, sizeof st, "top-1 %.2f%%", r.top1());
    bar.update(b.index + 1, st);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char st[64];
  std::snprintf(st, sizeof st, "top-1 %.2f%%", r.top1());
  bar.finish(st);
  if (r.nonfinite)
    std::fprintf(stderr, "%s: %lld of %lld images gave non-finite logits (NaN or Inf), counted as wrong\n", label.c_str(),
                 (long long)r.nonfinite, (long long)r.images);
  model.train(was_training);
  return r;
}

double prediction_agreement(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size() || a.empty())
    throw std::invalid_argument("prediction agreement: " + std::to_string(a.size()) + " against " + std::to_string(b.size()) +
                                " predictions");
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] >= 0 && a[i] == b[i];
  return double(same) / double(a.size());
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") {
    if (!cuda::available()) throw std::runtime_error("--device cuda asked for, but no usable GPU: " + cuda::describe());
    return Device::CUDA;
  }
  throw std::invalid_argument("--device must be cpu or cuda, got '" + name + "'");
}

}  // namespace dfq::models
