// test_gradcheck.cpp — every op of engine/ops.h with a backward, checked against central finite
// differences (gradcheck.h) on tiny shapes. Inputs are kept away from kinks: relu / abs / leaky_relu
// inputs have |x| >= 0.2, max-pool inputs are distinct values 0.05 apart, sqrt / log / div inputs
// are positive. Every TEST_CASE is named "gradcheck: ...".
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace dfq;
using dfq::test::away_from_zero;
using dfq::test::distinct;
using dfq::test::gradcheck;
using dfq::test::uniform;
using In = std::vector<Tensor>;

namespace {
Tensor i64(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector_i64(v, s); }
}  // namespace

// ---- element-wise --------------------------------------------------------------------------------
TEST_CASE("gradcheck: add/sub/mul/div with broadcasting") {
  struct Case { Shape a, b; };
  const std::vector<Case> cases = {
      {{2, 3}, {2, 3}},              // same shape
      {{2, 3, 2, 2}, {1, 3, 1, 1}},  // per-channel (BN affine)
      {{2, 3, 2, 2}, {3, 1, 1}},     // class-conditional BN style, fewer dims
      {{2, 3, 2, 2}, {2, 3, 1, 1}},  // per-sample per-channel (CBN after embedding)
      {{2, 3}, {3}},                 // row vector
      {{3, 1}, {1, 4}},              // both sides broadcast
      {{1, 3, 1, 1}, {2, 3, 2, 2}},  // broadcast on the left operand
  };
  const char* names[] = {"add", "sub", "mul", "div"};
  for (const Case& c : cases) {
    for (int op = 0; op < 4; ++op) {
      std::string label = std::string(names[op]) + " " + shape_str(c.a) + " " + shape_str(c.b);
      CAPTURE(label);
      Tensor a = uniform(c.a, -1.f, 1.f, 11), b = uniform(c.b, 0.5f, 1.5f, 12);  // b > 0 for div
      gradcheck(label, [op](const In& in) {
        switch (op) {
          case 0: return add(in[0], in[1]);
          case 1: return sub(in[0], in[1]);
          case 2: return mul(in[0], in[1]);
          default: return div(in[0], in[1]);
        }
      }, {a, b});
    }
  }
}

TEST_CASE("gradcheck: scalar and unary ops") {
  Shape s{2, 3, 2};
  Tensor any = uniform(s, -1.f, 1.f, 21), pos = uniform(s, 0.5f, 2.f, 22), kinky = away_from_zero(s, 23);
  gradcheck("add_scalar", [](const In& in) { return add_scalar(in[0], 0.7f); }, {any});
  gradcheck("mul_scalar", [](const In& in) { return mul_scalar(in[0], -1.3f); }, {any});
  gradcheck("neg", [](const In& in) { return neg(in[0]); }, {any});
  gradcheck("relu", [](const In& in) { return relu(in[0]); }, {kinky});
  gradcheck("leaky_relu 0.2", [](const In& in) { return leaky_relu(in[0], 0.2f); }, {kinky});
  gradcheck("leaky_relu default", [](const In& in) { return leaky_relu(in[0]); }, {kinky});
  gradcheck("tanh", [](const In& in) { return dfq::tanh(in[0]); }, {any});
  gradcheck("sigmoid", [](const In& in) { return sigmoid(in[0]); }, {any});
  gradcheck("sqrt", [](const In& in) { return dfq::sqrt(in[0]); }, {pos});
  gradcheck("square", [](const In& in) { return square(in[0]); }, {any});
  gradcheck("exp", [](const In& in) { return dfq::exp(in[0]); }, {any});
  gradcheck("log", [](const In& in) { return dfq::log(in[0]); }, {pos});
  gradcheck("abs", [](const In& in) { return dfq::abs(in[0]); }, {kinky});
  gradcheck("operators", [](const In& in) { return (in[0] * 2.f + 1.f) * in[1] - in[0] / in[1] - (-in[1]); },
            {any, pos});
}

TEST_CASE("gradcheck: expand") {
  gradcheck("expand (3,1)->(2,3,4)", [](const In& in) { return expand(in[0], {2, 3, 4}); }, {uniform({3, 1}, -1, 1, 31)});
  gradcheck("expand (1,3,1,1)->(2,3,2,2)", [](const In& in) { return expand(in[0], {2, 3, 2, 2}); },
            {uniform({1, 3, 1, 1}, -1, 1, 32)});
  gradcheck("expand same shape", [](const In& in) { return expand(in[0], {2, 3}); }, {uniform({2, 3}, -1, 1, 33)});
}

// ---- reductions -------------------------------------------------------------------------------
TEST_CASE("gradcheck: sum and mean over dims") {
  Tensor x = uniform({2, 3, 2, 2}, -1.f, 1.f, 41);
  gradcheck("sum all", [](const In& in) { return sum(in[0]); }, {x});
  gradcheck("mean all", [](const In& in) { return mean(in[0]); }, {x});
  const std::vector<std::vector<int64_t>> dim_sets = {{0}, {1}, {3}, {-1}, {0, 2, 3}, {1, 2}, {0, 1, 2, 3}};
  for (const auto& dims : dim_sets) {
    for (bool keep : {false, true}) {
      std::string tag = "dims " + shape_str(dims) + (keep ? " keepdim" : "");
      gradcheck("sum " + tag, [&](const In& in) { return sum(in[0], dims, keep); }, {x});
      gradcheck("mean " + tag, [&](const In& in) { return mean(in[0], dims, keep); }, {x});
    }
  }
}

TEST_CASE("gradcheck: var biased and unbiased") {
  Tensor x = uniform({3, 2, 2, 3}, -1.f, 1.f, 51);
  for (bool unbiased : {false, true})
    for (bool keep : {false, true})
      for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{0, 2, 3}, {2, 3}, {1}}) {
        std::string tag = std::string(unbiased ? "unbiased" : "biased") + " dims " + shape_str(dims) + (keep ? " keepdim" : "");
        gradcheck("var " + tag, [&](const In& in) { return var(in[0], dims, unbiased, keep); }, {x});
      }
}

// ---- layers -----------------------------------------------------------------------------------
TEST_CASE("gradcheck: conv2d") {
  struct Case { const char* name; int N, C, H, W, K, R; Conv2dOptions o; bool bias; };
  auto opts = [](int stride, int pad, int dil, int groups) {
    Conv2dOptions o;
    o.stride = {stride, stride};
    o.padding = {pad, pad};
    o.dilation = {dil, dil};
    o.groups = groups;
    return o;
  };
  const std::vector<Case> cases = {
      {"3x3 bias", 2, 2, 4, 4, 3, 3, opts(1, 0, 1, 1), true},
      {"3x3 no bias padding 1", 1, 2, 4, 5, 2, 3, opts(1, 1, 1, 1), false},
      {"3x3 stride 2 padding 1 bias", 2, 2, 5, 5, 3, 3, opts(2, 1, 1, 1), true},
      {"3x3 dilation 2 padding 2", 1, 2, 5, 5, 2, 3, opts(1, 2, 2, 1), true},
      {"3x3 groups 2", 1, 4, 4, 4, 4, 3, opts(1, 1, 1, 2), true},
      {"3x3 depthwise", 2, 3, 4, 5, 3, 3, opts(1, 1, 1, 3), true},
      {"3x3 depthwise stride 2", 2, 4, 5, 4, 4, 3, opts(2, 1, 1, 4), false},
      {"3x3 depthwise 1x1 map", 3, 2, 1, 1, 2, 3, opts(1, 1, 1, 2), true},
      {"1x1", 2, 3, 3, 3, 4, 1, opts(1, 0, 1, 1), true},
      {"1x1 stride 2 (downsample shortcut)", 1, 3, 4, 4, 2, 1, opts(2, 0, 1, 1), false},
  };
  uint32_t seed = 60;
  for (const Case& c : cases) {
    Tensor x = uniform({c.N, c.C, c.H, c.W}, -1.f, 1.f, ++seed);
    Tensor w = uniform({c.K, c.C / c.o.groups, c.R, c.R}, -0.5f, 0.5f, ++seed);
    Conv2dOptions o = c.o;
    std::string label = std::string("conv2d ") + c.name;
    if (c.bias) {
      Tensor b = uniform({c.K}, -0.5f, 0.5f, ++seed);
      gradcheck(label, [o](const In& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b});
    } else {
      gradcheck(label, [o](const In& in) { return conv2d(in[0], in[1], Tensor(), o); }, {x, w});
    }
  }
}

TEST_CASE("gradcheck: linear and matmul") {
  Tensor x = uniform({3, 4}, -1, 1, 71), w = uniform({2, 4}, -1, 1, 72), b = uniform({2}, -1, 1, 73);
  gradcheck("linear bias", [](const In& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
  gradcheck("linear no bias", [](const In& in) { return linear(in[0], in[1], Tensor()); }, {x, w});
  Tensor a = uniform({3, 4}, -1, 1, 74), m = uniform({4, 5}, -1, 1, 75);
  gradcheck("matmul", [](const In& in) { return matmul(in[0], in[1]); }, {a, m});
  gradcheck("matmul 1xK x Kx1", [](const In& in) { return matmul(in[0], in[1]); },
            {uniform({1, 4}, -1, 1, 76), uniform({4, 1}, -1, 1, 77)});
}

TEST_CASE("gradcheck: batch_norm train and eval, 4-d and 2-d, affine or not") {
  for (bool four_d : {true, false}) {
    Shape s = four_d ? Shape{3, 2, 2, 2} : Shape{4, 3};
    int64_t C = s[1];
    Tensor x = uniform(s, -1.f, 1.f, 81), gamma = uniform({C}, 0.5f, 1.5f, 82), beta = uniform({C}, -0.5f, 0.5f, 83);
    Tensor rm = uniform({C}, -0.3f, 0.3f, 84), rv = uniform({C}, 0.5f, 1.5f, 85);
    std::string tag = four_d ? "4-d" : "2-d";
    // Train mode: running statistics undefined (updating them in place on each finite-difference
    // evaluation is harmless but pointless; their update is tested against the golden files).
    gradcheck("batch_norm train affine " + tag,
              [](const In& in) { return batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true); }, {x, gamma, beta});
    gradcheck("batch_norm train no affine " + tag,
              [](const In& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); }, {x});
    // With running statistics passed (copies, updated in place on every call: output unaffected).
    Tensor rm2 = rm.clone().detach(), rv2 = rv.clone().detach();
    gradcheck("batch_norm train affine with running stats eps 0.8 " + tag,
              [&](const In& in) { return batch_norm(in[0], in[1], in[2], rm2, rv2, true, 0.1f, 0.8f); }, {x, gamma, beta});
    gradcheck("batch_norm eval affine " + tag,
              [&](const In& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); }, {x, gamma, beta});
    gradcheck("batch_norm eval no affine " + tag,
              [&](const In& in) { return batch_norm(in[0], Tensor(), Tensor(), rm, rv, false); }, {x});
  }
}

TEST_CASE("gradcheck: cond_batch_norm (fused conditional BN + leaky ReLU), train and eval") {
  // gamma / beta per (n, c), |beta| > |gamma * xhat|: pre-activations of both signs, all >= 0.1
  // from the leaky ReLU's kink (checked, so that a change of seed cannot put one on it).
  Tensor x = uniform({3, 2, 2, 2}, -1.f, 1.f, 111), gamma = uniform({3, 2}, 0.2f, 0.4f, 112);
  Tensor beta = away_from_zero({3, 2}, 113, 0.6f, 0.9f);
  Tensor rm = uniform({2}, -0.3f, 0.3f, 114), rv = uniform({2}, 0.5f, 1.5f, 115);
  for (bool training : {true, false}) {
    std::string tag = training ? "train" : "eval";
    Tensor pre = cond_batch_norm(x, gamma, beta, rm.clone(), rv.clone(), training, 0.1f, 0.8f, 1.f);
    float closest = 1e9f;
    for (float v : pre.to_vector()) closest = std::min(closest, std::fabs(v));
    REQUIRE_MESSAGE(closest > 0.1f, tag << ": a pre-activation sits " << closest << " from the kink");
    for (float slope : {1.f, 0.2f}) {
      Tensor rm2 = rm.clone().detach(), rv2 = rv.clone().detach();
      gradcheck("cond_batch_norm " + tag + " slope " + std::to_string(slope),
                [&, training, slope](const In& in) { return cond_batch_norm(in[0], in[1], in[2], rm2, rv2, training, 0.1f, 0.8f, slope); },
                {x, gamma, beta});
    }
  }
}

TEST_CASE("gradcheck: pooling and up-sampling") {
  Tensor x = distinct({2, 2, 4, 4}, 91);
  gradcheck("max_pool2d k2 s2", [](const In& in) { return max_pool2d(in[0], 2, 2); }, {x});
  gradcheck("max_pool2d k3 s2 p1 (overlapping)", [](const In& in) { return max_pool2d(in[0], 3, 2, 1); }, {x});
  Tensor x5 = distinct({1, 2, 5, 5}, 92);
  gradcheck("max_pool2d k3 s1", [](const In& in) { return max_pool2d(in[0], 3, 1); }, {x5});
  Tensor y = uniform({2, 2, 5, 5}, -1.f, 1.f, 93);
  gradcheck("avg_pool2d k2 s2", [](const In& in) { return avg_pool2d(in[0], 2, 2); }, {y});
  gradcheck("avg_pool2d k3 s2 p1", [](const In& in) { return avg_pool2d(in[0], 3, 2, 1); }, {y});
  gradcheck("avg_pool2d k3 s1 p1", [](const In& in) { return avg_pool2d(in[0], 3, 1, 1); }, {y});
  gradcheck("adaptive_avg_pool2d 7x7->1x1", [](const In& in) { return adaptive_avg_pool2d(in[0], 1, 1); },
            {uniform({2, 2, 7, 7}, -1.f, 1.f, 94)});
  gradcheck("adaptive_avg_pool2d 5x5->3x3 (uneven windows)", [](const In& in) { return adaptive_avg_pool2d(in[0], 3, 3); },
            {uniform({1, 2, 5, 5}, -1.f, 1.f, 95)});
  gradcheck("adaptive_avg_pool2d 5x4->2x3", [](const In& in) { return adaptive_avg_pool2d(in[0], 2, 3); },
            {uniform({1, 2, 5, 4}, -1.f, 1.f, 96)});
  gradcheck("upsample_nearest2x", [](const In& in) { return upsample_nearest2x(in[0]); }, {uniform({2, 2, 2, 3}, -1.f, 1.f, 97)});
  gradcheck("channel_moments 4-D", [](const In& in) { return channel_moments(in[0]); }, {uniform({3, 2, 2, 3}, -1.f, 1.f, 101)});
  gradcheck("channel_moments 2-D", [](const In& in) { return channel_moments(in[0]); }, {uniform({5, 3}, -1.f, 1.f, 102)});
  gradcheck("upsample_nearest2x_conv3x3", [](const In& in) { return upsample_nearest2x_conv3x3(in[0], in[1], in[2]); },
            {uniform({2, 3, 2, 3}, -1.f, 1.f, 98), uniform({4, 3, 3, 3}, -1.f, 1.f, 99), uniform({4}, -1.f, 1.f, 100)});
}

TEST_CASE("gradcheck: embedding w.r.t. the table, repeated indices") {
  Tensor table = uniform({5, 3}, -1.f, 1.f, 101);
  Tensor idx = i64({1, 3, 1, 4, 1, 0}, {2, 3});  // index 1 three times, 2 never
  gradcheck("embedding (2,3) ids", [idx](const In& in) { return embedding(idx, in[0]); }, {table});
  Tensor idx1 = i64({2, 2, 0, 4}, {4});
  gradcheck("embedding (4) ids", [idx1](const In& in) { return embedding(idx1, in[0]); }, {table});
  // Class-conditional BN: batch norm without affine, then per-class scale and shift from tables.
  Tensor labels = i64({2, 0, 2}, {3});
  Tensor x = uniform({3, 3, 2, 2}, -1.f, 1.f, 102), gtab = uniform({4, 3}, 0.5f, 1.5f, 103), btab = uniform({4, 3}, -0.5f, 0.5f, 104);
  gradcheck("class-conditional batch norm", [labels](const In& in) {
    Tensor y = batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 0.8f);
    Tensor g = embedding(labels, in[1]).reshape({3, 3, 1, 1}), b = embedding(labels, in[2]).reshape({3, 3, 1, 1});
    return add(mul(y, g), b);
  }, {x, gtab, btab});
}

TEST_CASE("gradcheck: concat along dims 0 and 1") {
  Tensor a = uniform({2, 3, 2}, -1, 1, 111), b = uniform({1, 3, 2}, -1, 1, 112), c = uniform({2, 1, 2}, -1, 1, 113);
  gradcheck("concat dim 0", [](const In& in) { return concat({in[0], in[1]}, 0); }, {a, b});
  gradcheck("concat dim 1", [](const In& in) { return concat({in[0], in[1]}, 1); }, {a, c});
  gradcheck("concat dim -1", [](const In& in) { return concat({in[0], in[1], in[0]}, -1); }, {a, uniform({2, 3, 1}, -1, 1, 114)});
  gradcheck("concat three along dim 1", [](const In& in) { return concat({in[0], in[1], in[2]}, 1); },
            {uniform({2, 2}, -1, 1, 115), uniform({2, 1}, -1, 1, 116), uniform({2, 3}, -1, 1, 117)});
}

// ---- softmax and losses ------------------------------------------------------------------------
TEST_CASE("gradcheck: softmax and log_softmax") {
  Tensor x = uniform({3, 5}, -2.f, 2.f, 121);
  gradcheck("softmax", [](const In& in) { return softmax(in[0]); }, {x});
  gradcheck("log_softmax", [](const In& in) { return log_softmax(in[0]); }, {x});
  gradcheck("softmax dim 1 of 2-d", [](const In& in) { return softmax(in[0], 1); }, {x});
  gradcheck("log_softmax 3-d", [](const In& in) { return log_softmax(in[0], -1); }, {uniform({2, 2, 4}, -2.f, 2.f, 122)});
}

TEST_CASE("gradcheck: nll_loss, cross_entropy, mse_loss") {
  Tensor labels = i64({2, 0, 4, 2}, {4});
  gradcheck("nll_loss", [labels](const In& in) { return nll_loss(in[0], labels); }, {uniform({4, 5}, -3.f, -0.1f, 131)});
  gradcheck("cross_entropy", [labels](const In& in) { return cross_entropy(in[0], labels); }, {uniform({4, 5}, -2.f, 2.f, 132)});
  Tensor a = uniform({2, 3, 2}, -1, 1, 133), b = uniform({2, 3, 2}, -1, 1, 134);
  gradcheck("mse_loss", [](const In& in) { return mse_loss(in[0], in[1]); }, {a, b});
}

TEST_CASE("gradcheck: kl_div, all reductions, w.r.t. input and target") {
  // input: log-probabilities; target: probabilities (positive, as log t is taken).
  Tensor input = log_softmax(uniform({3, 4}, -2.f, 2.f, 141)).detach();
  Tensor target = softmax(uniform({3, 4}, -2.f, 2.f, 142)).detach();
  for (const char* red : {"mean", "batchmean", "sum"}) {
    std::string r = red;
    gradcheck("kl_div " + r + " both", [r](const In& in) { return kl_div(in[0], in[1], r); }, {input.clone().detach(), target.clone().detach()});
    gradcheck("kl_div " + r + " through softmaxes", [r](const In& in) {
      return kl_div(log_softmax(mul_scalar(in[0], 0.5f)), softmax(mul_scalar(in[1], 0.5f)), r);
    }, {uniform({2, 5}, -2.f, 2.f, 143), uniform({2, 5}, -2.f, 2.f, 144)});
  }
}

// ---- views -------------------------------------------------------------------------------------
TEST_CASE("gradcheck: views reshape/view/flatten/narrow/select/clone") {
  Tensor x = uniform({3, 2, 2}, -1.f, 1.f, 151);
  gradcheck("reshape -1", [](const In& in) { return in[0].reshape({2, -1}); }, {x});
  gradcheck("view", [](const In& in) { return in[0].view({6, 2}); }, {x});
  gradcheck("flatten", [](const In& in) { return in[0].flatten(); }, {x});
  gradcheck("flatten 0", [](const In& in) { return in[0].flatten(0); }, {x});
  gradcheck("narrow", [](const In& in) { return in[0].narrow(1, 2); }, {x});
  gradcheck("select", [](const In& in) { return in[0].select(2); }, {x});
  gradcheck("clone", [](const In& in) { return in[0].clone(); }, {x});
  gradcheck("narrow of narrow then mul", [](const In& in) {
    Tensor n = in[0].narrow(1, 2).narrow(1, 1);
    return mul(n, in[0].select(0));
  }, {x});
  gradcheck("views in an expression", [](const In& in) {
    Tensor a = in[0].reshape({3, 4}).narrow(0, 2);    // (2,4)
    Tensor b = in[0].select(1).flatten(0).reshape({1, 4});
    return mul(add(a, b), in[0].clone().view({3, 4}).narrow(1, 2));
  }, {x});
}
