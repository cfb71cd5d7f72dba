// pytorchcv_names.h — state dicts of osmr/pytorchcv (the checkpoints data-free quantization papers
// use) mapped onto the equivalent dfq network: which pytorchcv model a checkpoint is, from its
// tensor names and shapes, and the renaming (pytorchcv name -> dfq / torchvision-style name, with
// a reshape where the layer differs only in shape) that convert_weights applies while streaming.
//
//   pytorchcv          dfq arch                   why it is the same network
//   resnet18, 34       resnet18, resnet34         BasicBlocks as torchvision; pytorchcv's final
//                                                 AvgPool2d(7) is the global pool at 224 px
//   resnet50b          resnet50                   conv1_stride=False: stride on the 3x3 (torchvision)
//   resnet50           pytorchcv_resnet50         conv1_stride=True: stride on the first 1x1
//   mobilenetv2_w1     pytorchcv_mobilenetv2_w1   its first unit has a 1x1 expansion conv (32->32);
//                                                 output (1x1 conv, no bias) -> classifier.1 (Linear)
// Not mapped: mobilenetv2b_w1 (torchvision's block layout, but no classifier bias), other widths.
//
// Rules:
//  - A checkpoint is pytorchcv's when it has features.init_block.* (ResNet: init_block.conv.conv,
//    MobileNetV2: init_block.conv); the stage/unit counts, the bottleneck's conv3 and the expansion
//    conv of the first unit tell the model; output.weight's rows the number of classes.
//  - resnet50 and resnet50b have identical tensors. The choice comes from --arch (a dfq arch), else
//    from the file name (pytorchcv's model store names files "<model>-<error>-<sha1>.pth"), else
//    pytorchcv's default (resnet50, conv1_stride=True), with a note saying so.
//  - Every problem (a layout none of these, a missing, unexpected or mis-shaped tensor, an --arch
//    that does not fit) throws one std::runtime_error naming the pytorchcv tensors.
#pragma once
#include <string>
#include <vector>

#include "engine/io/checkpoint_arch.h"

namespace dfq {

// One state-dict entry of a pytorchcv model and where it goes in dfq.
struct PytorchcvEntry {
  std::string name;  // pytorchcv's
  Shape shape;
  std::string dfq_name;
  Shape dfq_shape;   // differs from shape only by a reshape (output.weight of MobileNetV2)
};

struct PytorchcvMapping {
  std::string model;  // pytorchcv's model name, e.g. "resnet50"
  std::string arch;   // dfq's, e.g. "pytorchcv_resnet50"
  int num_classes = 0;
  std::vector<PytorchcvEntry> tensors;  // one per checkpoint tensor, in the checkpoint's order
  std::vector<std::string> notes;       // how an ambiguity was decided
};

// True when the names are pytorchcv's (features.init_block.*).
bool is_pytorchcv(const NamedShapes& tensors);

// pytorchcv models this file maps: resnet18, resnet34, resnet50, resnet50b, mobilenetv2_w1.
const std::vector<std::string>& pytorchcv_models();
// The dfq arch of a pytorchcv model (throws for an unknown one).
std::string pytorchcv_dfq_arch(const std::string& model);

// pytorchcv's full state dict of `model` (num_batches_tracked included), in pytorchcv's order, each
// entry with its dfq name and shape.
std::vector<PytorchcvEntry> pytorchcv_state_dict(const std::string& model, int num_classes);

// Recognises the pytorchcv model of `tensors`, checks every name and shape against it and returns
// the renaming. arch: a dfq arch from --arch ("" = recognise); file: the checkpoint's path (its
// name may tell resnet50 from resnet50b; "" = none).
PytorchcvMapping map_pytorchcv(const NamedShapes& tensors, const std::string& arch = "", const std::string& file = "");

}  // namespace dfq
