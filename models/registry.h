// registry.h — models by torchvision name: resnet18/34/50/101/152, vgg11/13/16/19 and their _bn
// versions. An unknown name throws, listing the known ones.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace dfq::models {

// seed: the init draws; torchvision_init false keeps the engine's default layer init only (cheaper:
// one random pass instead of two, for a model whose weights are loaded next).
std::shared_ptr<Model> create_model(const std::string& arch, int num_classes = 1000, uint64_t seed = 0,
                                    bool torchvision_init = true);
std::vector<std::string> model_names();

}  // namespace dfq::models
