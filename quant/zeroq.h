// zeroq.h — ZeroQ's distilled data and calibration, as the official code does it
// (../shared/docs/dfq_algorithms.md §2):
//  - one batch (32) initialised with (randint(0, 255) - 127.5) / 5418.75 (the official code's
//    near-zero uniform noise; its comment says N(0,1), 5418.75 is the variance of U(-128,127));
//  - Adam(lr 0.5) on the pixels, ReduceLROnPlateau(factor 0.1, patience 100, min_lr 1e-4) stepped
//    with the loss every iteration, 500 iterations, no clamping;
//  - the loss: for every BN layer's input (= the conv output the official hooks read), per image and
//    channel mean and sqrt(unbiased var over H*W + 1e-6) against running_mean and
//    sqrt(running_var + 1e-6): ||.||^2 / N each, summed over layers, plus the same for the image
//    itself against mean 0 / std 1 per channel;
//  - calibration: one no-grad forward of the batch through the quantized eval-mode model with
//    cumulative min/max observers, then the ranges are frozen.
#pragma once
#include <cstdint>
#include <functional>

#include "models/model.h"
#include "quant/qmodel.h"

namespace dfq::quant {

// What the loss does at a BN layer whose input is 1x1 (ResNet's layer4 on 32x32 images, as the
// Fashion-MNIST model): a per-image standard deviation over one value does not exist. PyTorch
// computes the unbiased variance there as 0/0 = NaN, so the official loss is NaN and its first Adam
// step turns every pixel into NaN (the golden ../shared/golden/losses/zeroq_loss.npy is NaN for
// exactly this reason).
//  - Nan: as the official code (reproduces the golden NaN; useless for distillation);
//  - MeanOnly: keep the per-image mean term, drop the std term;
//  - BatchStats (DEVIATION, default): statistics over the images instead of over the one position
//    (mean and sqrt(unbiased var + 1e-6) over N, ||.||^2 once): the BN statistics such a layer
//    actually keeps. MeanOnly pulls every image's layer4 features onto the running mean, so the
//    distilled batch has layer4 activations up to ~1 where real images reach ~7.7 and the 8-bit
//    ranges clip (measured: W8A8 91.24 vs 91.44 FP with MeanOnly).
enum class OneByOne { Nan, MeanOnly, BatchStats };

// The ZeroQ loss of x (N,3,H,W) through the eval-mode teacher (differentiable in x).
Tensor zeroq_loss(models::Model& teacher, const Tensor& x, OneByOne one_by_one = OneByOne::BatchStats);

struct ZeroQOptions {
  int batch_size = 32;
  int iters = 500;
  int img_size = 224;
  double lr = 0.5;
  int patience = 100;
  float min_lr = 1e-4f;
  uint64_t seed = 0;
  OneByOne one_by_one = OneByOne::BatchStats;
  Shape sample_shape;  // empty: (3, img_size, img_size); e.g. {2} for points (an MLP's input)
};

// Distils one batch from teacher's BN statistics (teacher in eval mode on dev). on_iter, when set,
// is called after every iteration with (iteration + 1, loss, lr).
Tensor distill(models::Model& teacher, const ZeroQOptions& o, Device dev,
               const std::function<void(int, float, float)>& on_iter = nullptr);

// One no-grad forward of data through q with every range observing (then frozen).
void calibrate(QuantizedModel& q, const Tensor& data);

}  // namespace dfq::quant
