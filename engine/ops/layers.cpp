// layers.cpp — conv2d, linear / matmul, batch norm, pooling, nearest up-sampling, embedding and
// concat: argument checks, kernel calls, and their recorded backward.
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/ops/op_util.h"

namespace dfq {

// ---- convolution ------------------------------------------------------------------------------
Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const Conv2dOptions& o) {
  check_float(x_in, "conv2d");
  check_float(w_in, "conv2d");
  check_dim(x_in, 4, "conv2d input");
  check_dim(w_in, 4, "conv2d weight");
  check_same_device(x_in, w_in, "conv2d");
  Conv2dArgs a{};
  a.N = static_cast<int>(x_in.size(0)); a.C = static_cast<int>(x_in.size(1));
  a.H = static_cast<int>(x_in.size(2)); a.W = static_cast<int>(x_in.size(3));
  a.K = static_cast<int>(w_in.size(0)); a.R = static_cast<int>(w_in.size(2)); a.S = static_cast<int>(w_in.size(3));
  a.stride_h = o.stride[0]; a.stride_w = o.stride[1];
  a.pad_h = o.padding[0]; a.pad_w = o.padding[1];
  a.dil_h = o.dilation[0]; a.dil_w = o.dilation[1];
  a.groups = o.groups;
  if (a.groups < 1 || a.C % a.groups || a.K % a.groups || w_in.size(1) != a.C / a.groups)
    throw std::invalid_argument("dfq: conv2d: weight " + w_in.str() + " does not fit input " + x_in.str() +
                                " with groups=" + std::to_string(a.groups));
  if (b_in.defined()) {
    check_float(b_in, "conv2d bias");
    check_same_device(x_in, b_in, "conv2d");
    if (b_in.numel() != a.K) throw std::invalid_argument("dfq: conv2d: bias " + b_in.str() + " for " + std::to_string(a.K) + " channels");
  }
  conv2d_out_size(a);
  if (a.P <= 0 || a.Q <= 0) throw std::invalid_argument("dfq: conv2d: input " + x_in.str() + " too small for the kernel");
  Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.defined() ? b_in.contiguous() : Tensor();
  Tensor y = Tensor::empty({a.N, a.K, a.P, a.Q}, DType::F32, x.device());
  if (a.N > 0) DFQ_DISPATCH(x.device(), conv2d_forward, a, x.data<float>(), w.data<float>(), opt_ptr(b), y.data<float>());
  Tensor xs = x.detach(), ws = w.detach();
  bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad(), need_b = b_in.defined() && b_in.requires_grad();
  return record(y, "conv2d", {x_in, w_in, b_in}, [a, xs, ws, need_x, need_w, need_b](const Tensor& g_in) {
    Tensor g = g_in.contiguous(), gx, gw, gb;
    Device dev = g.device();
    if (need_x) {
      gx = Tensor::empty(xs.shape(), DType::F32, dev);
      if (a.N > 0) DFQ_DISPATCH(dev, conv2d_backward_data, a, g.data<float>(), ws.data<float>(), gx.data<float>());
    }
    if (need_w || need_b) {
      gw = Tensor::empty(ws.shape(), DType::F32, dev);
      if (need_b) gb = Tensor::empty({a.K}, DType::F32, dev);
      if (a.N > 0)
        DFQ_DISPATCH(dev, conv2d_backward_filter, a, xs.data<float>(), g.data<float>(), gw.data<float>(), opt_ptr(gb));
      else {
        gw.zero_();
        if (gb.defined()) gb.zero_();
      }
      if (!need_w) gw = Tensor();
    }
    return std::vector<Tensor>{gx, gw, gb};
  });
}

// ---- matrix products --------------------------------------------------------------------------
Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_float(a_in, "matmul");
  check_float(b_in, "matmul");
  check_dim(a_in, 2, "matmul");
  check_dim(b_in, 2, "matmul");
  check_same_device(a_in, b_in, "matmul");
  if (a_in.size(1) != b_in.size(0)) throw std::invalid_argument("dfq: matmul: " + a_in.str() + " x " + b_in.str());
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  int M = static_cast<int>(a.size(0)), K = static_cast<int>(a.size(1)), N = static_cast<int>(b.size(1));
  Tensor y = Tensor::empty({M, N}, DType::F32, a.device());
  if (M && N) {
    if (K == 0) y.zero_();
    else DFQ_DISPATCH(a.device(), gemm, false, false, M, N, K, 1.f, a.data<float>(), K, b.data<float>(), N, 0.f, y.data<float>(), N);
  }
  Tensor as = a.detach(), bs = b.detach();
  bool need_a = a_in.requires_grad(), need_b = b_in.requires_grad();
  return record(y, "matmul", {a_in, b_in}, [as, bs, need_a, need_b, M, N, K](const Tensor& g_in) {
    Tensor g = g_in.contiguous(), ga, gb;
    Device dev = g.device();
    if (need_a) {  // (M,N) x (K,N)^T
      ga = Tensor::zeros({M, K}, DType::F32, dev);
      if (M && N && K) DFQ_DISPATCH(dev, gemm, false, true, M, K, N, 1.f, g.data<float>(), N, bs.data<float>(), N, 0.f, ga.data<float>(), K);
    }
    if (need_b) {  // (M,K)^T x (M,N)
      gb = Tensor::zeros({K, N}, DType::F32, dev);
      if (M && N && K) DFQ_DISPATCH(dev, gemm, true, false, K, N, M, 1.f, as.data<float>(), K, g.data<float>(), N, 0.f, gb.data<float>(), N);
    }
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  check_float(x_in, "linear");
  check_float(w_in, "linear");
  check_dim(x_in, 2, "linear input");
  check_dim(w_in, 2, "linear weight");
  check_same_device(x_in, w_in, "linear");
  if (x_in.size(1) != w_in.size(1)) throw std::invalid_argument("dfq: linear: input " + x_in.str() + " for weight " + w_in.str());
  if (b_in.defined() && (b_in.numel() != w_in.size(0) || b_in.device() != x_in.device()))
    throw std::invalid_argument("dfq: linear: bias " + b_in.str() + " for weight " + w_in.str());
  Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.defined() ? b_in.contiguous() : Tensor();
  int B = static_cast<int>(x.size(0)), I = static_cast<int>(x.size(1)), O = static_cast<int>(w.size(0));
  Tensor y = Tensor::empty({B, O}, DType::F32, x.device());
  if (B && O) {
    if (I == 0) y.zero_();
    else DFQ_DISPATCH(x.device(), gemm, false, true, B, O, I, 1.f, x.data<float>(), I, w.data<float>(), I, 0.f, y.data<float>(), O);
    if (b.defined()) DFQ_DISPATCH(x.device(), add_bias_rows, B, O, b.data<float>(), y.data<float>());
  }
  Tensor xs = x.detach(), ws = w.detach();
  bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad(), need_b = b.defined() && b_in.requires_grad();
  return record(y, "linear", {x_in, w_in, b_in}, [xs, ws, need_x, need_w, need_b, B, I, O](const Tensor& g_in) {
    Tensor g = g_in.contiguous(), gx, gw, gb;
    Device dev = g.device();
    if (need_x) {  // (B,O) x (O,I)
      gx = Tensor::zeros({B, I}, DType::F32, dev);
      if (B && I && O) DFQ_DISPATCH(dev, gemm, false, false, B, I, O, 1.f, g.data<float>(), O, ws.data<float>(), I, 0.f, gx.data<float>(), I);
    }
    if (need_w) {  // (B,O)^T x (B,I)
      gw = Tensor::zeros({O, I}, DType::F32, dev);
      if (B && I && O) DFQ_DISPATCH(dev, gemm, true, false, O, I, B, 1.f, g.data<float>(), O, xs.data<float>(), I, 0.f, gw.data<float>(), I);
    }
    if (need_b) gb = sum(g, {0}, false);
    return std::vector<Tensor>{gx, gw, gb};
  });
}

// ---- batch norm -------------------------------------------------------------------------------
namespace {
// What batch_norm and cond_batch_norm check alike, and their (N, C, HW) view of x: x float (N,C) or
// (N,C,H,W); every defined per-channel tensor float, on x's device, C values; running statistics
// in eval mode; more than one value per channel when training.
BatchNormArgs bn_args(const Tensor& x, std::initializer_list<const Tensor*> per_channel, const Tensor& running_mean,
                      const Tensor& running_var, bool training, float momentum, float eps, const std::string& op) {
  check_float(x, op.c_str());
  if (x.dim() != 2 && x.dim() != 4)
    throw std::invalid_argument("dfq: " + op + ": expected (N,C) or (N,C,H,W), got " + x.str());
  BatchNormArgs a{};
  a.N = static_cast<int>(x.size(0));
  a.C = static_cast<int>(x.size(1));
  a.HW = x.dim() == 4 ? static_cast<int>(x.size(2) * x.size(3)) : 1;
  a.eps = eps;
  a.momentum = momentum;
  for (const Tensor* p : per_channel) {
    if (!p->defined()) continue;
    check_float(*p, (op + " parameter").c_str());
    check_same_device(x, *p, op.c_str());
    if (p->numel() != a.C)
      throw std::invalid_argument("dfq: " + op + ": parameter " + p->str() + " for " + std::to_string(a.C) + " channels");
  }
  if (!training && !(running_mean.defined() && running_var.defined()))
    throw std::invalid_argument("dfq: " + op + ": eval mode needs running statistics");
  if (training && static_cast<int64_t>(a.N) * a.HW <= 1)
    throw std::invalid_argument("dfq: " + op + ": training needs more than one value per channel, got " + x.str());
  return a;
}
}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps, BatchStats* stats_out) {
  if (gamma.defined() != beta.defined()) throw std::invalid_argument("dfq: batch_norm: gamma and beta go together");
  const BatchNormArgs a =
      bn_args(x_in, {&gamma, &beta, &running_mean, &running_var}, running_mean, running_var, training, momentum, eps, "batch_norm");
  Tensor x = x_in.contiguous();
  Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), DType::F32, dev);
  Tensor xs = x.detach(), gs = gamma.defined() ? gamma.contiguous().detach() : Tensor();
  bool need_x = x_in.requires_grad(), need_gb = gamma.defined() && (gamma.requires_grad() || beta.requires_grad());
  if (training) {
    Tensor save_mean = Tensor::empty({a.C}, DType::F32, dev), save_invstd = Tensor::empty({a.C}, DType::F32, dev);
    DFQ_DISPATCH(dev, batch_norm_forward_train, a, x.data<float>(), opt_ptr(gs), beta.defined() ? beta.contiguous().data<float>() : nullptr,
                 opt_ptr(running_mean), opt_ptr(running_var), y.data<float>(), save_mean.data<float>(), save_invstd.data<float>());
    if (stats_out) {
      stats_out->mean = save_mean;
      stats_out->var = Tensor::empty({a.C}, DType::F32, dev);
      Tensor tmp_mean = Tensor::empty({a.C}, DType::F32, dev);
      DFQ_DISPATCH(dev, channel_mean_var, a.N, a.C, a.HW, x.data<float>(), tmp_mean.data<float>(), stats_out->var.data<float>());
    }
    return record(y, "batch_norm_train", {x_in, gamma, beta}, [a, xs, gs, save_mean, save_invstd, need_x, need_gb](const Tensor& g_in) {
      Tensor g = g_in.contiguous(), gx, gg, gbeta;
      Device d = g.device();
      if (need_x) gx = Tensor::empty(xs.shape(), DType::F32, d);
      if (need_gb) { gg = Tensor::empty({a.C}, DType::F32, d); gbeta = Tensor::empty({a.C}, DType::F32, d); }
      DFQ_DISPATCH(d, batch_norm_backward_train, a, xs.data<float>(), g.data<float>(), opt_ptr(gs), save_mean.data<float>(),
                   save_invstd.data<float>(), opt_ptr(gx), opt_ptr(gg), opt_ptr(gbeta));
      return std::vector<Tensor>{gx, gg, gbeta};
    });
  }
  Tensor rm = running_mean.contiguous().detach(), rv = running_var.contiguous().detach();
  DFQ_DISPATCH(dev, batch_norm_forward_eval, a, x.data<float>(), opt_ptr(gs), beta.defined() ? beta.contiguous().data<float>() : nullptr,
               rm.data<float>(), rv.data<float>(), y.data<float>());
  return record(y, "batch_norm_eval", {x_in, gamma, beta}, [a, xs, gs, rm, rv, need_x, need_gb](const Tensor& g_in) {
    Tensor g = g_in.contiguous(), gx, gg, gbeta;
    Device d = g.device();
    if (need_x) gx = Tensor::empty(xs.shape(), DType::F32, d);
    if (need_gb) { gg = Tensor::empty({a.C}, DType::F32, d); gbeta = Tensor::empty({a.C}, DType::F32, d); }
    DFQ_DISPATCH(d, batch_norm_backward_eval, a, xs.data<float>(), g.data<float>(), opt_ptr(gs), rm.data<float>(), rv.data<float>(),
                 opt_ptr(gx), opt_ptr(gg), opt_ptr(gbeta));
    return std::vector<Tensor>{gx, gg, gbeta};
  });
}

Tensor cond_batch_norm(const Tensor& x_in, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                       const Tensor& running_var, bool training, float momentum, float eps, float slope) {
  const BatchNormArgs bn =
      bn_args(x_in, {&running_mean, &running_var}, running_mean, running_var, training, momentum, eps, "cond_batch_norm");
  const int64_t N = bn.N, C = bn.C;
  for (const Tensor* p : {&gamma, &beta}) {
    check_float(*p, "cond_batch_norm gamma/beta");
    check_same_device(x_in, *p, "cond_batch_norm");
    if (p->shape() != Shape{N, C})
      throw std::invalid_argument("dfq: cond_batch_norm: gamma/beta " + p->str() + " for input " + x_in.str() + " (want (N, C))");
  }
  if (x_in.device() != Device::CPU) {
    Shape bc = x_in.dim() == 4 ? Shape{N, C, 1, 1} : Shape{N, C};
    Tensor y = add(mul(gamma.reshape(bc), batch_norm(x_in, Tensor(), Tensor(), running_mean, running_var, training, momentum, eps)),
                   beta.reshape(bc));
    return slope == 1.f ? y : leaky_relu(y, slope);
  }
  const cpu::CondBnArgs a{bn.N, bn.C, bn.HW, eps, momentum, slope, training};
  Tensor x = x_in.contiguous(), g = gamma.contiguous(), b = beta.contiguous();
  Tensor y = Tensor::empty(x.shape(), DType::F32, Device::CPU);
  Tensor save_mean = Tensor::empty({C}, DType::F32, Device::CPU), save_invstd = Tensor::empty({C}, DType::F32, Device::CPU);
  {
    profile::Scope prof("cond_batch_norm_forward");
    cpu::cond_batch_norm_forward(a, x.data<float>(), g.data<float>(), b.data<float>(), opt_ptr(running_mean), opt_ptr(running_var),
                                 y.data<float>(), save_mean.data<float>(), save_invstd.data<float>());
  }
  Tensor xs = x.detach(), gs = g.detach(), bs = b.detach();
  bool need_x = x_in.requires_grad(), need_gb = gamma.requires_grad() || beta.requires_grad();
  return record(y, "cond_batch_norm", {x_in, gamma, beta}, [a, xs, gs, bs, save_mean, save_invstd, need_x, need_gb](const Tensor& g_in) {
    Tensor gy = g_in.contiguous(), gx, gg, gbeta;
    if (need_x) gx = Tensor::empty(xs.shape(), DType::F32, Device::CPU);
    if (need_gb) {
      gg = Tensor::empty(gs.shape(), DType::F32, Device::CPU);
      gbeta = Tensor::empty(gs.shape(), DType::F32, Device::CPU);
    }
    profile::Scope prof("cond_batch_norm_backward");
    cpu::cond_batch_norm_backward(a, xs.data<float>(), gy.data<float>(), gs.data<float>(), bs.data<float>(), save_mean.data<float>(),
                                  save_invstd.data<float>(), opt_ptr(gx), opt_ptr(gg), opt_ptr(gbeta));
    return std::vector<Tensor>{gx, gg, gbeta};
  });
}

// ---- pooling and resampling ---------------------------------------------------------------------
namespace {
Pool2dArgs pool_args(const Tensor& x, int kernel, int stride, int padding, const char* op) {
  check_float(x, op);
  check_dim(x, 4, op);
  Pool2dArgs a{};
  a.N = static_cast<int>(x.size(0)); a.C = static_cast<int>(x.size(1));
  a.H = static_cast<int>(x.size(2)); a.W = static_cast<int>(x.size(3));
  a.R = a.S = kernel;
  a.stride_h = a.stride_w = stride;
  a.pad_h = a.pad_w = padding;
  if (kernel < 1 || stride < 1 || padding < 0 || 2 * padding > kernel)
    throw std::invalid_argument(std::string("dfq: ") + op + ": bad kernel/stride/padding");
  pool2d_out_size(a);
  if (a.P <= 0 || a.Q <= 0) throw std::invalid_argument(std::string("dfq: ") + op + ": input " + x.str() + " too small");
  return a;
}
}  // namespace

Tensor max_pool2d(const Tensor& x_in, int kernel, int stride, int padding) {
  Pool2dArgs a = pool_args(x_in, kernel, stride, padding, "max_pool2d");
  Tensor x = x_in.contiguous();
  Device dev = x.device();
  Tensor y = Tensor::empty({a.N, a.C, a.P, a.Q}, DType::F32, dev);
  auto idx = std::make_shared<Storage>(static_cast<std::size_t>(y.numel()) * sizeof(int32_t), dev);
  DFQ_DISPATCH(dev, max_pool2d_forward, a, x.data<float>(), y.data<float>(), static_cast<int32_t*>(idx->data()));
  return record(y, "max_pool2d", {x_in}, [a, idx, dev](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty({a.N, a.C, a.H, a.W}, DType::F32, dev);
    DFQ_DISPATCH(dev, max_pool2d_backward, a, g.data<float>(), static_cast<const int32_t*>(idx->data()), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}
Tensor avg_pool2d(const Tensor& x_in, int kernel, int stride, int padding) {
  Pool2dArgs a = pool_args(x_in, kernel, stride, padding, "avg_pool2d");
  Tensor x = x_in.contiguous();
  Device dev = x.device();
  Tensor y = Tensor::empty({a.N, a.C, a.P, a.Q}, DType::F32, dev);
  DFQ_DISPATCH(dev, avg_pool2d_forward, a, x.data<float>(), y.data<float>());
  return record(y, "avg_pool2d", {x_in}, [a, dev](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty({a.N, a.C, a.H, a.W}, DType::F32, dev);
    DFQ_DISPATCH(dev, avg_pool2d_backward, a, g.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}
Tensor adaptive_avg_pool2d(const Tensor& x_in, int P, int Q) {
  check_float(x_in, "adaptive_avg_pool2d");
  check_dim(x_in, 4, "adaptive_avg_pool2d");
  if (P < 1 || Q < 1) throw std::invalid_argument("dfq: adaptive_avg_pool2d: output size must be positive");
  Tensor x = x_in.contiguous();
  Device dev = x.device();
  int N = static_cast<int>(x.size(0)), C = static_cast<int>(x.size(1)), H = static_cast<int>(x.size(2)), W = static_cast<int>(x.size(3));
  Tensor y = Tensor::empty({N, C, P, Q}, DType::F32, dev);
  DFQ_DISPATCH(dev, adaptive_avg_pool2d_forward, N * C, H, W, P, Q, x.data<float>(), y.data<float>());
  return record(y, "adaptive_avg_pool2d", {x_in}, [N, C, H, W, P, Q, dev](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty({N, C, H, W}, DType::F32, dev);
    DFQ_DISPATCH(dev, adaptive_avg_pool2d_backward, N * C, H, W, P, Q, g.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}
Tensor upsample_nearest2x(const Tensor& x_in) {
  check_float(x_in, "upsample_nearest2x");
  check_dim(x_in, 4, "upsample_nearest2x");
  Tensor x = x_in.contiguous();
  Device dev = x.device();
  int N = static_cast<int>(x.size(0)), C = static_cast<int>(x.size(1)), H = static_cast<int>(x.size(2)), W = static_cast<int>(x.size(3));
  Tensor y = Tensor::empty({N, C, 2 * H, 2 * W}, DType::F32, dev);
  DFQ_DISPATCH(dev, upsample_nearest2x_forward, N * C, H, W, x.data<float>(), y.data<float>());
  return record(y, "upsample_nearest2x", {x_in}, [N, C, H, W, dev](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty({N, C, H, W}, DType::F32, dev);
    DFQ_DISPATCH(dev, upsample_nearest2x_backward, N * C, H, W, g.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}

Tensor upsample_nearest2x_conv3x3(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  check_float(x_in, "upsample_nearest2x_conv3x3");
  check_float(w_in, "upsample_nearest2x_conv3x3");
  check_dim(x_in, 4, "upsample_nearest2x_conv3x3 input");
  check_dim(w_in, 4, "upsample_nearest2x_conv3x3 weight");
  check_same_device(x_in, w_in, "upsample_nearest2x_conv3x3");
  if (w_in.size(1) != x_in.size(1) || w_in.size(2) != 3 || w_in.size(3) != 3)
    throw std::invalid_argument("dfq: upsample_nearest2x_conv3x3: weight " + w_in.str() + " is not (K, " +
                                std::to_string(x_in.size(1)) + ", 3, 3) for input " + x_in.str());
  if (x_in.device() != Device::CPU) {
    Conv2dOptions o;
    o.padding = {1, 1};
    return conv2d(upsample_nearest2x(x_in), w_in, b_in, o);
  }
  if (b_in.defined()) {
    check_float(b_in, "upsample_nearest2x_conv3x3 bias");
    check_same_device(x_in, b_in, "upsample_nearest2x_conv3x3");
    if (b_in.numel() != w_in.size(0))
      throw std::invalid_argument("dfq: upsample_nearest2x_conv3x3: bias " + b_in.str() + " for " + std::to_string(w_in.size(0)) + " channels");
  }
  cpu::Up2ConvArgs a{static_cast<int>(x_in.size(0)), static_cast<int>(x_in.size(1)), static_cast<int>(x_in.size(2)),
                     static_cast<int>(x_in.size(3)), static_cast<int>(w_in.size(0))};
  Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.defined() ? b_in.contiguous() : Tensor();
  Tensor y = Tensor::empty({a.N, a.K, 2 * a.H, 2 * a.W}, DType::F32, Device::CPU);
  Tensor xs = x.detach(), ws = w.detach();
  bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad(), need_b = b_in.defined() && b_in.requires_grad();
  // the filter gradient reuses the forward's channel-major copy of x
  Tensor xt = need_w && grad_enabled() ? Tensor::empty({x.numel()}, DType::F32, Device::CPU) : Tensor();
  { profile::Scope prof("conv2d_up2_forward");
  cpu::conv2d_up2_forward(a, x.data<float>(), w.data<float>(), opt_ptr(b), y.data<float>(), opt_ptr(xt)); }
  return record(y, "upsample_nearest2x_conv3x3", {x_in, w_in, b_in}, [a, xs, ws, xt, need_x, need_w, need_b](const Tensor& g_in) {
    Tensor g = g_in.contiguous(), gx, gw, gb;
    if (need_x) gx = Tensor::empty(xs.shape(), DType::F32, Device::CPU);
    if (need_w) gw = Tensor::empty(ws.shape(), DType::F32, Device::CPU);
    if (need_b) gb = Tensor::empty({a.K}, DType::F32, Device::CPU);
    profile::Scope prof("conv2d_up2_backward");
    cpu::conv2d_up2_backward(a, xs.data<float>(), g.data<float>(), ws.data<float>(), opt_ptr(gx), opt_ptr(gw), opt_ptr(gb),
                             opt_ptr(xt));
    return std::vector<Tensor>{gx, gw, gb};
  });
}

Tensor channel_moments(const Tensor& x_in) {
  check_float(x_in, "channel_moments");
  if (x_in.dim() < 2) throw std::invalid_argument("dfq: channel_moments needs (N, C, ...), got " + x_in.str());
  Tensor x = x_in.contiguous();
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / std::max<int64_t>(N * C, 1);
  if (N * HW < 1) throw std::invalid_argument("dfq: channel_moments of an empty batch " + x_in.str());
  Device dev = x.device();
  Tensor out = Tensor::empty({2, C}, DType::F32, dev);
  if (C > 0)
    DFQ_DISPATCH(dev, channel_mean_var, static_cast<int>(N), static_cast<int>(C), static_cast<int>(HW), x.data<float>(),
                 out.data<float>(), out.data<float>() + C);
  Tensor xs = x.detach(), mean_s = out.detach().select(0);
  return record(out, "channel_moments", {x_in}, [xs, mean_s, N, C, HW](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    // dx = (x - mean) * (2 g_var / M) + g_mean / M, one per-channel affine pass over x:
    // scale = 2 g_var / M, shift = g_mean / M - mean * scale (C-sized ops)
    const float M = static_cast<float>(N * HW);
    Tensor scale = mul_scalar(g.select(1), 2.f / M).contiguous();
    Tensor shift = sub(mul_scalar(g.select(0), 1.f / M), mul(mean_s, scale)).contiguous();
    Tensor gx = Tensor::empty(xs.shape(), DType::F32, xs.device());
    DFQ_DISPATCH(xs.device(), channel_affine, static_cast<int>(N), static_cast<int>(C), static_cast<int>(HW), xs.data<float>(),
                 scale.data<float>(), shift.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}

// ---- embedding and concat -----------------------------------------------------------------------
Tensor embedding(const Tensor& idx_in, const Tensor& table_in) {
  check_i64(idx_in, "embedding indices");
  check_float(table_in, "embedding table");
  check_dim(table_in, 2, "embedding table");
  check_same_device(idx_in, table_in, "embedding");
  Tensor idx = idx_in.contiguous(), table = table_in.contiguous();
  int64_t rows = table.size(0), dim = table.size(1);
  if (idx.device() == Device::CPU) {
    const int64_t* p = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
      if (p[i] < 0 || p[i] >= rows)
        throw std::out_of_range("dfq: embedding: index " + std::to_string(p[i]) + " out of range [0, " + std::to_string(rows) + ")");
  }
  Shape out_shape = idx.shape();
  out_shape.push_back(dim);
  Tensor y = Tensor::empty(out_shape, DType::F32, idx.device());
  DFQ_DISPATCH(idx.device(), embedding_forward, idx.numel(), dim, idx.data<int64_t>(), table.data<float>(), y.data<float>());
  Tensor is = idx.detach();
  Shape ts = table.shape();
  return record(y, "embedding", {idx_in, table_in}, [is, ts, dim](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gt = Tensor::zeros(ts, DType::F32, g.device());
    DFQ_DISPATCH(g.device(), embedding_backward, is.numel(), dim, is.data<int64_t>(), g.data<float>(), gt.data<float>());
    return std::vector<Tensor>{Tensor(), gt};
  });
}

Tensor concat(const std::vector<Tensor>& xs_in, int64_t dim) {
  if (xs_in.empty()) throw std::invalid_argument("dfq: concat of no tensors");
  const Tensor& first = xs_in[0];
  check_float(first, "concat");
  int64_t d = norm_dim(dim, first.dim(), "concat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  std::vector<Tensor> xs;
  for (const Tensor& t : xs_in) {
    check_float(t, "concat");
    check_same_device(first, t, "concat");
    if (t.dim() != first.dim()) throw std::invalid_argument("dfq: concat: " + t.str() + " vs " + first.str());
    for (int64_t i = 0; i < t.dim(); ++i)
      if (i != d && t.shape()[i] != first.shape()[i])
        throw std::invalid_argument("dfq: concat: " + t.str() + " vs " + first.str());
    out_shape[d] += t.shape()[d];
    xs.push_back(t.contiguous());
  }
  int64_t outer = 1;
  for (int64_t i = 0; i < d; ++i) outer *= out_shape[i];
  int64_t out_inner = numel_of(out_shape) / std::max<int64_t>(outer, 1);
  Device dev = first.device();
  Tensor y = Tensor::empty(out_shape, DType::F32, dev);
  std::vector<int64_t> inners, offsets;
  int64_t off = 0;
  for (const Tensor& t : xs) {
    int64_t inner = t.numel() / std::max<int64_t>(outer, 1);
    if (outer > 0 && inner > 0)
      DFQ_DISPATCH(dev, block_copy, outer, inner, t.data<float>(), inner, 0, y.data<float>(), out_inner, off);
    inners.push_back(inner);
    offsets.push_back(off);
    off += inner;
  }
  std::vector<Shape> shapes;
  for (const Tensor& t : xs) shapes.push_back(t.shape());
  return record(y, "concat", xs_in, [outer, out_inner, inners, offsets, shapes, dev](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    std::vector<Tensor> grads;
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor gx = Tensor::empty(shapes[i], DType::F32, dev);
      if (outer > 0 && inners[i] > 0)
        DFQ_DISPATCH(dev, block_copy, outer, inners[i], g.data<float>(), out_inner, offsets[i], gx.data<float>(), inners[i], 0);
      grads.push_back(gx);
    }
    return grads;
  });
}

}  // namespace dfq
