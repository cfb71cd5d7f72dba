// autograd.h — reverse-mode automatic differentiation on a recorded graph ("tape").
//
// Every differentiable op that sees an input requiring grad (and grad mode on) records a Node:
// its inputs and a closure that maps the output gradient to one gradient per input (undefined
// where an input needs none). Tensor::backward() orders the nodes reachable from the root
// topologically and runs the closures in reverse, accumulating into leaves' .grad (out of place,
// so a gradient tensor is never mutated behind another's back). Closures run in no-grad mode and
// are released after use: a graph is walked once (like PyTorch without retain_graph).
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dfq {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

struct Node {
  std::string name;
  std::vector<std::shared_ptr<TensorImpl>> inputs;  // nullptr where the input was undefined
  BackwardFn backward;
  Tensor grad_out;  // accumulated while walking the graph
};

// Grad mode (thread-local; on by default).
bool grad_enabled();
void set_grad_enabled(bool on);
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and any defined input requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a Node to out when any input requires grad (and grad mode is on); returns out.
// The closure must not capture `out` itself (a cycle): capture out.detach() instead.
Tensor record(Tensor out, const char* name, std::initializer_list<Tensor> inputs, BackwardFn fn);
Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn);

// Adds g into *slot (out of place); *slot may be undefined.
void accumulate_grad(Tensor& slot, const Tensor& g);

}  // namespace dfq
