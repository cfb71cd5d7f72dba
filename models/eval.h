// eval.h — what the mains share: load a model from a flat weight file (architecture checked),
// open the evaluation dataset a user names, and run a top-1 / top-5 evaluation with a progress bar.
// Errors a user can cause (wrong architecture, missing file, bad folder) throw one clear message.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/dataset.h"
#include "models/model.h"

namespace dfq::models {

// Opens `weights`, checks that its architecture equals `arch` (when arch is not empty), builds the
// model with the file's class count, loads every tensor (names and shapes checked), moves it to
// dev and sets eval mode.
std::shared_ptr<Model> load_model(const std::string& weights, const std::string& arch, Device dev);

// "fashion-mnist" (its test split, or train) or an ImageNet-style folder (class sub-folders, or a
// flat folder with labels file `labels`). Exactly one of dataset / data_dir must be given.
std::unique_ptr<Dataset> open_dataset(const std::string& dataset, const std::string& data_dir,
                                      const std::string& labels = "", const std::string& split = "test");

// Refuses data whose labels name more classes than the model has outputs (both counts in the
// message); `what` names the data ("--data DIR", "fashion-mnist").
void check_labels(const Dataset& ds, const Model& model, const std::string& what);

struct EvalResult {
  int64_t images = 0, top1_hits = 0, top5_hits = 0;
  int64_t nonfinite = 0;  // logit rows with a NaN or an infinity: counted as wrong for top-1 and top-5
  double seconds = 0;
  double top1() const { return images ? 100.0 * top1_hits / images : 0; }
  double top5() const { return images ? 100.0 * top5_hits / images : 0; }
  double images_per_s() const { return seconds > 0 ? images / seconds : 0; }
};
// Eval-mode, no-grad pass over the whole dataset on dev. `label` prefixes the progress bar.
// Labels are checked against the model first; non-finite logit rows are misses, counted in
// `nonfinite` and reported on stderr.
// predictions, when given, receives each image's top-1 class in dataset order (-1 for a non-finite row).
// forward, when given, computes the logits instead of model.forward (an integer pipeline that runs
// the model: quant/int8_graph.h).
EvalResult evaluate(Model& model, Dataset& ds, Device dev, int64_t batch_size = 256, const std::string& label = "eval",
                    std::vector<int64_t>* predictions = nullptr,
                    const std::function<Tensor(const Tensor&)>& forward = nullptr);
// The fraction of positions where two prediction lists agree (a -1 agrees with nothing); throws when
// their lengths differ or they are empty.
double prediction_agreement(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

// Device flag "cpu" / "cuda" -> Device; "cuda" without a usable GPU throws (no silent fallback).
Device parse_device(const std::string& name);

}  // namespace dfq::models
