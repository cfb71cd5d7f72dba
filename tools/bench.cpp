// bench.cpp — engine throughput on this machine: conv2d 3x3 64->64 on 8x64x56x56 (forward, and
// forward + backward data + backward filter), depthwise 3x3 convs at MobileNetV2's shapes (the
// same two), a linear layer (forward + backward), and a conv-BN-ReLU stack trained one step
// (forward + backward through autograd), and whole models. Prints one line
// per case: "name  ms  GFLOP/s" (median of the timed repeats after a warm-up), the format that
// tools/bench_torch.py prints too, so tools/bench.sh can put the two side by side as ratios.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "engine/io/flags.h"
#include "engine/kernels/kernels.h"
#include "engine/nn/optim.h"
#include "engine/ops.h"
#include "models/generator.h"
#include "models/eval.h"
#include "models/registry.h"
#include "quant/int8_graph.h"
#include "quant/qmodel.h"
#include "quant/zeroq.h"

using namespace dfq;

namespace {

const char* kUsage =
    "usage: bench [--device cpu|cuda] [--repeats N] [--only NAME] [--cudnn_heuristics] [--conv_algo auto|im2col]\n"
    "--only NAME: just the cases main() runs under NAME (conv3x3_fwd, depthwise, conv_algos, int8, ...);\n"
    "  int8:TEXT: the int8 cases whose name has TEXT (int8:resnet18_32px).\n"
    "--conv_algo im2col: the CPU convolution without its shifted-GEMM, direct and depthwise paths (to compare).\n"
    "On CUDA, convolution algorithms are measured once per shape (cudnnFind, as PyTorch's\n"
    "cudnn.benchmark in bench_torch.py) unless --cudnn_heuristics.\n"
    "Times the engine's hot ops and prints: name, milliseconds, GFLOP/s.\n";

double time_ms(const std::function<void()>& fn, int repeats, Device dev) {
  fn();  // warm-up (allocator caches, cuDNN algorithm choice)
  if (dev == Device::CUDA) cuda::synchronize();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn();
    if (dev == Device::CUDA) cuda::synchronize();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const std::string& name, double ms, double flops) {
  std::printf("%-28s %10.3f ms %10.1f GFLOP/s\n", name.c_str(), ms, flops / (ms * 1e-3) / 1e9);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  std::string device = flags.str("--device", "cpu");
  int repeats = static_cast<int>(flags.integer("--repeats", 5));
  std::string only = flags.str("--only", "");
  bool heuristics = flags.boolean("--cudnn_heuristics");
  std::string conv_algo = flags.str("--conv_algo", "auto");
  flags.done();
  if (device != "cpu" && device != "cuda") flags.fail("--device must be cpu or cuda");
  if (repeats < 1) flags.fail("--repeats must be >= 1");
  if (conv_algo != "auto" && conv_algo != "im2col") flags.fail("--conv_algo must be auto or im2col");
  if (conv_algo == "im2col") cpu::set_conv_algo(cpu::ConvAlgo::Im2col);
  Device dev = device == "cuda" ? Device::CUDA : Device::CPU;
  if (dev == Device::CUDA && !cuda::available()) {
    std::fprintf(stderr, "bench: --device cuda, but no usable GPU: %s\n", cuda::describe().c_str());
    return 1;
  }
  if (dev == Device::CUDA) cuda::set_conv_benchmark(!heuristics);
  try {
    Generator gen(0);
    auto want = [&](const std::string& n) { return only.empty() || only == n; };
    std::printf("# dfq bench, device %s%s\n", device_name(dev), dev == Device::CUDA ? (", " + cuda::describe()).c_str() : "");
    // conv2d 3x3 64->64, 8x64x56x56, padding 1
    if (want("conv3x3_fwd") || want("conv3x3_fwdbwd")) {
      Tensor x = randn({8, 64, 56, 56}, gen, dev), w = randn({64, 64, 3, 3}, gen, dev, 0.f, 0.05f);
      Conv2dOptions o;
      o.padding = {1, 1};
      double flops = 2.0 * 8 * 64 * 56 * 56 * 64 * 9;
      if (want("conv3x3_fwd")) {
        NoGradGuard ng;
        report("conv3x3_fwd", time_ms([&] { conv2d(x, w, Tensor(), o); }, repeats, dev), flops);
      }
      if (want("conv3x3_fwdbwd")) {
        x.set_requires_grad(true);
        w.set_requires_grad(true);
        Tensor g = randn({8, 64, 56, 56}, gen, dev);
        report("conv3x3_fwdbwd", time_ms([&] {
                 x.zero_grad();
                 w.zero_grad();
                 conv2d(x, w, Tensor(), o).backward(g);
               }, repeats, dev), 3 * flops);
      }
    }
    // Depthwise 3x3 convs (groups == C, pad 1, no bias) at MobileNetV2's shapes, batch 128: forward,
    // and forward + backward data + backward filter. --only depthwise runs just these.
    if (want("depthwise")) {
      struct Dw { const char* name; int C, H, stride; };
      for (const Dw& d : {Dw{"dw3x3_c96_32px_s2", 96, 32, 2}, Dw{"dw3x3_c144_16px", 144, 16, 1},
                          Dw{"dw3x3_c384_4px", 384, 4, 1}, Dw{"dw3x3_c960_2px", 960, 2, 1}}) {
        const int n = 128, p = (d.H - 1) / d.stride + 1;
        Tensor x = randn({n, d.C, d.H, d.H}, gen, dev), w = randn({d.C, 1, 3, 3}, gen, dev, 0.f, 0.3f);
        Conv2dOptions o;
        o.stride = {d.stride, d.stride};
        o.padding = {1, 1};
        o.groups = d.C;
        const double flops = 2.0 * n * d.C * p * p * 9;
        {
          NoGradGuard ng;
          report(std::string(d.name) + "_fwd", time_ms([&] { conv2d(x, w, Tensor(), o); }, repeats, dev), flops);
        }
        x.set_requires_grad(true);
        w.set_requires_grad(true);
        Tensor g = randn({n, d.C, p, p}, gen, dev);
        report(std::string(d.name) + "_fwdbwd", time_ms([&] {
                 x.zero_grad();
                 w.zero_grad();
                 conv2d(x, w, Tensor(), o).backward(g);
               }, repeats, dev), 3 * flops);
      }
    }
    // The CPU convolution's two algorithms (kernels.h ConvAlgo) on the shapes of resnet18 at 32x32
    // (batch 256, train_fp) and of GDFQ's 32x32 generator (batch 64): forward + both backwards.
    if (only == "conv_algos" && dev == Device::CPU) {
      struct Shape { const char* name; int N, C, H, K, R, stride, pad; };
      const Shape shapes[] = {
          {"r18 stem 32px", 256, 3, 32, 64, 7, 2, 3},   {"r18 layer1 8x8", 256, 64, 8, 64, 3, 1, 1},
          {"r18 l2.0 s2", 256, 64, 8, 128, 3, 2, 1},    {"r18 l2 4x4", 256, 128, 4, 128, 3, 1, 1},
          {"r18 l2 ds", 256, 64, 8, 128, 1, 2, 0},      {"r18 l3.0 s2", 256, 128, 4, 256, 3, 2, 1},
          {"r18 l3 2x2", 256, 256, 2, 256, 3, 1, 1},    {"r18 l4.0 s2", 256, 256, 2, 512, 3, 2, 1},
          {"r18 l4 1x1", 256, 512, 1, 512, 3, 1, 1},    {"gen conv1 16x16", 64, 128, 16, 128, 3, 1, 1},
          {"gen conv2 32x32", 64, 128, 32, 64, 3, 1, 1}, {"gen conv3 32x32", 64, 64, 32, 3, 3, 1, 1},
      };
      for (const Shape& sh : shapes) {
        Conv2dArgs a{sh.N, sh.C, sh.H, sh.H, sh.K, sh.R, sh.R, sh.stride, sh.stride, sh.pad, sh.pad, 1, 1, 1, 0, 0};
        conv2d_out_size(a);
        std::vector<float> x(size_t(a.N) * a.C * a.H * a.W, 0.5f), w(size_t(a.K) * a.C * a.R * a.S, 0.01f),
            y(size_t(a.N) * a.K * a.P * a.Q), gx(x.size()), gw(w.size());
        double flops = 3 * 2.0 * a.N * a.K * a.P * a.Q * a.C * a.R * a.S;
        for (auto algo : {cpu::ConvAlgo::Im2col, cpu::ConvAlgo::Shifted, cpu::ConvAlgo::Auto}) {
          cpu::set_conv_algo(algo);
          double ms = time_ms([&] {
            cpu::conv2d_forward(a, x.data(), w.data(), nullptr, y.data());
            cpu::conv2d_backward_data(a, y.data(), w.data(), gx.data());
            cpu::conv2d_backward_filter(a, x.data(), y.data(), gw.data(), nullptr);
          }, repeats, dev);
          report(std::string(sh.name) + (algo == cpu::ConvAlgo::Im2col ? " im2col" : algo == cpu::ConvAlgo::Shifted ? " shifted" : " auto"), ms, flops);
        }
      }
      cpu::set_conv_algo(conv_algo == "im2col" ? cpu::ConvAlgo::Im2col : cpu::ConvAlgo::Auto);
      // the generator's up-sampling + conv, fused (GFLOP/s counted as the unfused conv's)
      for (const Shape& sh : {Shape{"gen up2+conv1 8->16", 64, 128, 8, 128, 3, 1, 1}, Shape{"gen up2+conv2 16->32", 64, 128, 16, 64, 3, 1, 1}}) {
        cpu::Up2ConvArgs u{sh.N, sh.C, sh.H, sh.H, sh.K};
        std::vector<float> x(size_t(u.N) * u.C * u.H * u.W, 0.5f), w(size_t(u.K) * u.C * 9, 0.01f),
            y(size_t(u.N) * u.K * 4 * u.H * u.W), gx(x.size()), gw(w.size());
        double ms = time_ms([&] {
          cpu::conv2d_up2_forward(u, x.data(), w.data(), nullptr, y.data());
          cpu::conv2d_up2_backward(u, x.data(), y.data(), w.data(), gx.data(), gw.data(), nullptr);
        }, repeats, dev);
        report(sh.name, ms, 3 * 2.0 * u.N * u.K * 4 * u.H * u.W * u.C * 9);
      }
    }
    // linear 512 -> 1000 at batch 256, forward + backward
    if (want("linear_fwdbwd")) {
      Tensor x = randn({256, 512}, gen, dev).set_requires_grad(true);
      Tensor w = randn({1000, 512}, gen, dev, 0.f, 0.05f).set_requires_grad(true);
      Tensor b = Tensor::zeros({1000}, DType::F32, dev).set_requires_grad(true);
      Tensor g = randn({256, 1000}, gen, dev);
      report("linear_fwdbwd", time_ms([&] {
               x.zero_grad();
               w.zero_grad();
               b.zero_grad();
               linear(x, w, b).backward(g);
             }, repeats, dev), 3 * 2.0 * 256 * 512 * 1000);
    }
    // conv-BN-ReLU x4, 64 channels, 56x56, batch 16, one training step's forward + backward
    if (want("convstack_fwdbwd")) {
      int n = dev == Device::CUDA ? 32 : 8;
      Tensor x = randn({n, 64, 56, 56}, gen, dev);
      std::vector<Tensor> ws, gs, bs;
      for (int i = 0; i < 4; ++i) {
        ws.push_back(randn({64, 64, 3, 3}, gen, dev, 0.f, 0.05f).set_requires_grad(true));
        gs.push_back(Tensor::ones({64}, dev).set_requires_grad(true));
        bs.push_back(Tensor::zeros({64}, DType::F32, dev).set_requires_grad(true));
      }
      Conv2dOptions o;
      o.padding = {1, 1};
      double flops = 4 * 3 * 2.0 * n * 64 * 56 * 56 * 64 * 9;
      report("convstack_fwdbwd_n" + std::to_string(n), time_ms([&] {
               Tensor h = x;
               for (int i = 0; i < 4; ++i) h = relu(batch_norm(conv2d(h, ws[i], Tensor(), o), gs[i], bs[i], Tensor(), Tensor(), true));
               mean(h).backward();
               for (int i = 0; i < 4; ++i) {
                 ws[i].zero_grad();
                 gs[i].zero_grad();
                 bs[i].zero_grad();
               }
             }, repeats, dev), flops);
    }
    // ResNet18 and MobileNetV2 (torchvision, 10 classes) at Fashion-MNIST's 32x32: eval forward at
    // batch 256, and one SGD training step at batch 128 (train_fp's inner loop). FLOPs = 2 * MACs;
    // the MACs per image at 224 (1.8186 G / 0.3008 G) scale with the area: 0.0372 G / 0.00614 G at 32.
    const std::pair<const char*, double> fmnist_models[] = {{"resnet18", 0.03716e9}, {"mobilenet_v2", 0.006139e9}};
    for (const auto& [arch, macs] : fmnist_models) {
      const std::string name = arch;
      if (want(name + "_32px_fwd")) {
        auto m = models::create_model(arch, 10, 0, false);
        m->to(dev);
        m->eval();
        NoGradGuard ng;
        Tensor x = randn({256, 3, 32, 32}, gen, dev);
        report(name + "_32px_fwd_b256", time_ms([&] { m->forward(x); }, repeats, dev), 256 * 2 * macs);
      }
      if (want(name + "_32px_train")) {
        auto m = models::create_model(arch, 10, 0, false);
        m->to(dev);
        m->train();
        SgdOptions so;
        so.lr = 0.01f;
        so.momentum = 0.9f;
        so.nesterov = true;
        so.weight_decay = 5e-4f;
        SGD opt(m->parameters(), so);
        Tensor x = randn({128, 3, 32, 32}, gen, dev);
        Tensor y = randint({128}, 0, 10, gen, dev);
        report(name + "_32px_train_b128", time_ms([&] {
                 Tensor loss = cross_entropy(m->forward(x), y);
                 opt.zero_grad();
                 loss.backward();
                 opt.step();
               }, repeats, dev), 128 * 3 * 2 * macs);
      }
    }
    // Integer inference (quant/int8_graph.h, oneDNN u8 x s8) against the float model: resnet18 and
    // mobilenet_v2 eval forwards at 224 px (1000 classes) batch 1 and 32, and at 32 px (10 classes)
    // batch 256, float32 first. The quantized model is W8A8 with symmetric
    // weights, calibrated on the timed batch; each int8 case first prints, as a '#' line, what ran in
    // integers, its logits' largest difference from the fake-quant forward's and the argmax agreement.
    // --only int8 runs them all; --only int8:TEXT those whose fp32 name contains TEXT
    const bool int8_all = want("int8");
    const std::string int8_filter = only.rfind("int8:", 0) == 0 ? only.substr(5) : "";
    if ((int8_all || !int8_filter.empty()) && dev == Device::CPU) {
      struct Int8Case { const char* arch; int classes, px, batch; double macs; };
      const Int8Case cases[] = {{"resnet18", 1000, 224, 1, 1.8186e9},      {"resnet18", 1000, 224, 32, 1.8186e9},
                                {"resnet18", 10, 32, 256, 0.03716e9},      {"mobilenet_v2", 1000, 224, 1, 0.3008e9},
                                {"mobilenet_v2", 1000, 224, 32, 0.3008e9}, {"mobilenet_v2", 10, 32, 256, 0.006139e9}};
      for (const Int8Case& k : cases) {
        const std::string tag = std::string(k.arch) + "_" + std::to_string(k.px) + "px_";
        const std::string b = "_b" + std::to_string(k.batch);
        if (!int8_filter.empty() && (tag + "fp32" + b).find(int8_filter) == std::string::npos) continue;
        auto m = models::create_model(k.arch, k.classes, 0, false);
        m->eval();
        NoGradGuard ng;
        Tensor x = randn({k.batch, 3, k.px, k.px}, gen);
        report(tag + "fp32" + b, time_ms([&] { m->forward(x); }, repeats, dev), k.batch * 2 * k.macs);
        // "int8": a quantizer on every conv / linear input but the image's (SQuant's placement; PyTorch's
        // int8 model quantizes every layer input too); "int8zq": ZeroQ's, after every ReLU (MobileNetV2's
        // block outputs, and so its expand convs, stay float there)
        for (const auto& [suffix, placement] : {std::pair{"int8", quant::ActPlacement::LayerInputs},
                                                std::pair{"int8zq", quant::ActPlacement::ReluSites}}) {
          quant::QuantConfig qc;
          qc.weight_scheme = quant::WeightScheme::Sym;
          qc.act_placement = placement;
          quant::QuantizedModel q(m, qc);
          quant::calibrate(q, x);
          auto cached = q.cache_weights();
          const Tensor fake_t = q.forward(x);
          quant::Int8Graph i8(q);
          const Tensor got_t = i8.forward(x);
          const std::vector<float> fake = fake_t.to_vector(), got = got_t.to_vector();
          double worst = 0, top = 0;
          for (size_t i = 0; i < fake.size(); ++i)
            worst = std::max(worst, double(std::fabs(got[i] - fake[i]))), top = std::max(top, double(std::fabs(fake[i])));
          const double agree = models::prediction_agreement(argmax_rows(fake_t), argmax_rows(got_t));
          const std::string name = tag + suffix + b;
          std::printf("# %s: %s; logits vs fake-quant: max |diff| / max |logit| %.2e, argmax %lld / %d\n", name.c_str(),
                      i8.report().c_str(), worst / std::max(top, 1e-30), std::llround(agree * k.batch), k.batch);
          report(name, time_ms([&] { i8.forward(x); }, repeats, dev), k.batch * 2 * k.macs);
        }
      }
    }
    // GDFQ's two halves at the short CPU schedule's batch 64 on 32x32 Fashion-MNIST: the 10-class
    // generator's forward + backward (train mode), and resnet18's forward + backward to its input
    // (eval mode, as the teacher in the generator's step)
    if (want("gdfq_generator") || want("gdfq_teacher")) {
      Tensor z = randn({64, 100}, gen, dev);
      Tensor y = randint({64}, 0, 10, gen, dev);
      models::GdfqGenerator g(10, 100, 32, 3, 0);
      g.to(dev);
      g.train();
      if (want("gdfq_generator"))
        report("gdfq_generator_fwdbwd_b64", time_ms([&] {
                 g.zero_grad();
                 mean(g.forward(z, y)).backward();
               }, repeats, dev), 64 * 3 * 2 * 0.1158e9);  // 0.1158 GMAC per 32x32 image (convs as written, before fusion)
      if (want("gdfq_teacher")) {
        auto m = models::create_model("resnet18", 10, 0, false);
        m->to(dev);
        m->eval();
        for (auto& p : m->parameters()) p.set_requires_grad(false);  // frozen, as GDFQ's teacher
        Tensor x = randn({64, 3, 32, 32}, gen, dev).set_requires_grad(true);
        report("gdfq_teacher_fwdbwd_b64", time_ms([&] {
                 x.zero_grad();
                 cross_entropy(m->forward(x), y).backward();
               }, repeats, dev), 64 * 3 * 2 * 0.03716e9);
      }
    }
    // ResNet18 (1000 classes) at 224x224, one training step's forward + backward (batch 32 on the
    // GPU, 8 on the CPU)
    if (want("resnet18_224_fwdbwd")) {
      int n = dev == Device::CUDA ? 32 : 8;
      auto m = models::create_model("resnet18", 1000, 0, false);
      m->to(dev);
      m->train();
      Tensor x = randn({n, 3, 224, 224}, gen, dev);
      Tensor y = randint({n}, 0, 1000, gen, dev);
      report("resnet18_224_fwdbwd_b" + std::to_string(n), time_ms([&] {
               Tensor loss = cross_entropy(m->forward(x), y);
               m->zero_grad();
               loss.backward();
             }, repeats, dev), n * 3 * 2 * 1.8186e9);
    }
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "bench: %s\n", ex.what());
    return 1;
  }
  return 0;
}
