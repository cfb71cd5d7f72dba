// int8_graph.h — a quantized ResNet or MobileNetV2 compiled into one integer pipeline on the CPU
// (oneDNN, engine/kernels/cpu/onednn.h): what `evaluate --int8` runs for those architectures.
//
// Int8Inference (int8_inference.h) runs each layer in integers but hands float NCHW tensors back to
// the model between layers; this runs the whole forward itself, channels last, with activations as
// u8 codes between layers and each layer's BN, bias, residual add, ReLU / ReLU6 and the next
// quantizer fused into its convolution (oneDNN post-ops):
//  - a conv whose input is u8 codes runs u8 x s8 -> s32 (weights: the forward's integer codes,
//    int8_inference.h); one whose input is float (the image; MobileNetV2's expand convs and last 1x1
//    conv under ZeroQ's placement, which keeps the block outputs float; any layer above 8 bits) runs a
//    float conv on the forward's fake-quantized weights, as the fake-quant model does;
//  - BN (eval) folds into the per-channel scale and bias: y = a * conv + c, a = gamma / sqrt(var + eps);
//  - ReLU-site quantizers (ZeroQ / GDFQ) become the epilogue of the conv before them, writing codes;
//    layer-input quantizers (SQuant) quantize the float input once per consumer (quant_code: the
//    same codes as the fake-quant model);
//  - asymmetric weights whose q + z does not fit s8 (8-bit asym) need the zero-point term; such a
//    layer runs the integer conv to float, the window-sum conv, and dfq's own epilogue loop;
//  - max pooling on codes (exact: the grid is monotone), the global average pool in float (a 1x1
//    map passes its codes through, so the classifier runs in integers at 32 px), the classifier as a
//    1x1 conv.
// The results are the fake-quant model's up to float rounding (the order of the float ops differs:
// a value within a rounding of a code boundary can take the neighbouring code). The model's weights
// and ranges are read once, at construction; they must not change while the graph lives.
#pragma once
#include <memory>
#include <string>

#include "engine/io/dataset.h"
#include "engine/tensor.h"
#include "models/eval.h"
#include "quant/qmodel.h"

namespace dfq::quant {

class Int8Graph {
 public:
  // True for the architectures this compiles (the ResNets and MobileNetV2s of models/registry).
  static bool supports(const models::Model& m);
  // Throws std::invalid_argument for another architecture, a model on CUDA or ranges still
  // observing, std::runtime_error when built without oneDNN.
  explicit Int8Graph(QuantizedModel& q);
  ~Int8Graph();
  Int8Graph(const Int8Graph&) = delete;
  Int8Graph& operator=(const Int8Graph&) = delete;
  // x (N, 3, H, W) float on the CPU -> logits (N, classes). Without gradient.
  Tensor forward(const Tensor& x);
  // "int8 graph: 20 of 21 convs / linears in integers (oneDNN 2.6.3, brgconv:avx512_core_vnni), 20 with
  // fused epilogues; float: conv1 (input float)" — after the first forward.
  std::string report() const;
  int64_t int8_layers() const;

  struct Plan;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// evaluate --int8 and a method's --int8: the integer evaluation of q on ds (frozen ranges, CPU):
// the compiled graph for a ResNet / MobileNetV2, else layer by layer (Int8Inference). Fills report
// (what ran in integers) and int8_layers; predictions as models::evaluate. Layers that stay float
// run the fake-quant forward: a caller holding q.cache_weights() quantizes their weights once.
models::EvalResult evaluate_int8(QuantizedModel& q, Dataset& ds, int64_t batch, const std::string& label,
                                 std::vector<int64_t>* predictions, std::string* report, int64_t* int8_layers);

}  // namespace dfq::quant
