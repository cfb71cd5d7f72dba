// onnx_export.h — a dfq quantized model as an ONNX QDQ graph (opset 13), in three profiles
// (docs/onnx_export.md has the graphs, op by op):
//  - Faithful: exactly dfq's fake-quantized graph. QuantizeLinear / DequantizeLinear where dfq
//    quantizes (activation sites; the weights as int8 codes with per-channel scale and zero point,
//    asymmetric ones included), float elsewhere (BN as BatchNormalization, residual adds, pooling,
//    biases). A < 8-bit activation is a uint8 Q/DQ pair plus a Clip at its top code (opset 13's
//    QuantizeLinear saturates at 255 only). Under ONNX Runtime with graph optimisations off it
//    computes dfq's logits up to float rounding.
//  - Ort: what ONNX Runtime's CPU int8 kernels fuse (QLinearConv / QGemm / QLinearAdd): symmetric
//    int8 weights (zero point 0, one scale per output channel) with BN folded into the per-channel
//    scales (exact: BN is linear after the conv; a negative BN scale negates the codes), int32
//    biases at scale s_x * s_w[o] (weight and < 8-bit activation codes written m times finer, the
//    same values, so that this grid is fine: docs/onnx_export.md), uint8 activations; every conv /
//    linear input comes from a DequantizeLinear and every conv output goes into a QuantizeLinear. Where dfq's graph has no
//    quantizer there (the image, conv outputs entering a residual add, the residual sums of
//    MobileNetV2, the pooled classifier input) an 8-bit quantizer is added and calibrated on the
//    given calibration images (min/max, observing as dfq's ZeroQ observer does: downstream of the
//    quantizers before it). A ReLU / ReLU6 before a site's quantizer is left out when the uint8
//    grid (zero point 0, top code at or below 6) already does it, so ONNX Runtime sees Conv -> Q.
//    Asymmetric weights are re-quantized symmetrically from the latent weights (a note says so).
//  - Trt: as Ort with int8 activations at zero point 0 (TensorRT's rule): a < 8-bit site is exact
//    in int8 (its codes shifted by the zero point), an 8-bit one is re-quantized symmetrically
//    (127 levels), added quantizers are symmetric; ReLU / Clip nodes stay (TensorRT fuses them).
//  - Float: the same network with no quantization at all (the latent float weights, BN as
//    BatchNormalization): the float32 baseline ONNX Runtime's int8 speed is measured against.
// Supported: the ResNets (basic and bottleneck blocks) and MobileNetV2 (torchvision and pytorchcv
// layouts); other architectures are refused by name.
#pragma once
#include <string>
#include <vector>

#include "engine/io/onnx.h"
#include "quant/qmodel.h"

namespace dfq::quant {

enum class OnnxProfile { Faithful, Ort, Trt, Float };
OnnxProfile parse_onnx_profile(const std::string& s);  // throws std::invalid_argument
const char* onnx_profile_name(OnnxProfile p);

struct OnnxExportOptions {
  OnnxProfile profile = OnnxProfile::Faithful;
  Tensor calib;              // (N,3,H,W) float, CPU: required by ort / trt (their added quantizers)
  int64_t calib_batch = 64;  // images per interpreter pass while calibrating
  // ort / trt: the image input quantizer's range {lo, hi} when known from the preprocessing
  // (lo < hi); unset (lo == hi): calibrated on `calib` like the other added quantizers. Distilled
  // images (ZeroQ) span a far wider range than normalised real ones (fmnist_mobilenet_v2: [-12, 14]
  // against [-0.81, 2.02]), which costs the input most of its 256 codes.
  std::pair<float, float> input_range{0.f, 0.f};
};

// The input range of a named preprocessing: "fashion-mnist" ((0 - mean) / std .. (1 - mean) / std of
// dfq's loader), "imagenet" (torchvision's mean / std, the widest channel); else "LO,HI". Throws.
std::pair<float, float> parse_input_range(const std::string& s);

struct OnnxExport {
  onnx::Model model;
  std::vector<std::string> notes;  // where the graph departs from dfq's evaluated graph, one line each
  int int_convs = 0, int_gemms = 0;  // convs / linears with quantized weights and a quantized input
  int float_layers = 0;              // convs / linears left in float (weights above 8 bits)
  int added_quantizers = 0;          // ort / trt: calibrated quantizers dfq's graph does not have
};

OnnxExport export_onnx(QuantizedModel& q, const OnnxExportOptions& o);

// dfq's interpreter of the graphs export_onnx writes (CPU, float32, ONNX semantics: QuantizeLinear
// rounds x / scale half to even, adds the zero point and saturates to its type; DequantizeLinear
// computes (q - zero point) * scale): x (N,3,H,W) -> logits (N, classes). Throws on an op it does not
// know. Its Conv / Gemm / BatchNormalization are the engine's ops, so a Faithful graph run here
// computes what the QuantizedModel computes, up to the float rounding of 1 / scale.
Tensor run_onnx_graph(const onnx::Model& m, const Tensor& x);

// A graph as a models::Model (forward = run_onnx_graph), so that models::evaluate scores it.
std::shared_ptr<models::Model> onnx_graph_model(onnx::Model m, const std::string& arch, int num_classes);

}  // namespace dfq::quant
