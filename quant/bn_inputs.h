// bn_inputs.h — the BN-statistics losses of ZeroQ and GDFQ read every BN layer's input during one
// forward of the teacher: this runs the forward with nn::BatchNorm::input_hook set on every BN of
// models::Model::bn_layers() and removes the hooks whatever happens.
#pragma once
#include <functional>
#include <vector>

#include "models/model.h"

namespace dfq::quant {

// Calls fn (which runs m's forward once) and returns the input of every BN layer, in bn_layers()
// order, with its autograd history; throws naming a BN layer the forward did not call.
std::vector<Tensor> collect_bn_inputs(models::Model& m, const std::function<void()>& fn);

}  // namespace dfq::quant
