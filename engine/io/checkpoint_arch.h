// checkpoint_arch.h — which architecture a state dict belongs to, from its tensor names and shapes
// alone: resnet18/34/50 (blocks per stage; bottleneck blocks have conv3), vgg11_bn/13_bn/16_bn/19_bn
// (number of 4-D features.N.weight), mobilenet_v2 and the pytorchcv_mobilenetv2_w1 variant
// (classifier.1 without bias); num_classes from the rows of fc.weight / classifier.6.weight /
// classifier.1.weight. Plus the expected state dict for each, to check a checkpoint against it by
// name and shape. pytorchcv_resnet50 (pytorchcv's resnet50: stride on the first 1x1 conv of a
// bottleneck) has exactly resnet50's tensors, so detect_arch, which sees only names and shapes,
// answers resnet50 for both; --arch or pytorchcv's names (pytorchcv_names.h) pick it.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace dfq {

using NamedShapes = std::vector<std::pair<std::string, Shape>>;

const std::vector<std::string>& known_archs();  // resnet18, resnet34, resnet50, pytorchcv_resnet50, vgg11_bn, ...

// Throws std::runtime_error "unknown architecture: ..." when nothing fits.
std::string detect_arch(const NamedShapes& tensors);
// Rows of fc.weight (ResNet) or classifier.6.weight (VGG); throws if absent.
int detect_num_classes(const std::string& arch, const NamedShapes& tensors);
// torchvision's state dict for arch (num_batches_tracked included); throws for an unknown arch.
NamedShapes expected_tensors(const std::string& arch, int num_classes);
// Every difference between tensors and expected_tensors(arch, num_classes): missing (except
// num_batches_tracked), unexpected and mis-shaped names (the first 12 of each), as one message;
// "" when they fit.
std::string check_arch(const std::string& arch, int num_classes, const NamedShapes& tensors);
// The same comparison against any expected list; `owner` names it in the mis-shaped entries
// ("conv1.weight (64, 3, 3, 3) (resnet18 has (64, 3, 7, 7))").
std::string diff_tensors(const NamedShapes& want, const NamedShapes& tensors, const std::string& owner);

}  // namespace dfq
