// autograd.cpp — grad mode, recording nodes, and the reverse walk behind Tensor::backward().
#include "engine/autograd.h"

#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "engine/ops.h"

namespace dfq {

namespace {
thread_local bool g_grad_enabled = true;
}
bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) node->inputs.push_back(t.defined() ? t.impl_ptr() : nullptr);
  node->backward = std::move(fn);
  out.impl().requires_grad = true;
  out.impl().grad_fn = std::move(node);
  return out;
}
Tensor record(Tensor out, const char* name, std::initializer_list<Tensor> inputs, BackwardFn fn) {
  return record(std::move(out), name, std::vector<Tensor>(inputs), std::move(fn));
}

void accumulate_grad(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
  } else {
    if (slot.shape() != g.shape())
      throw std::logic_error("dfq: gradient shape " + shape_str(g.shape()) + " does not match " + shape_str(slot.shape()));
    slot = add(slot, g);  // out of place: never mutate a gradient another tensor may share
  }
}

namespace {
void accumulate_into_impl(TensorImpl& impl, const Tensor& g) {
  Tensor slot = impl.grad ? Tensor(impl.grad) : Tensor();
  accumulate_grad(slot, g);
  impl.grad = slot.impl_ptr();
}
}  // namespace

void Tensor::backward(const Tensor& grad_output) const {
  if (!requires_grad()) throw std::logic_error("dfq: backward() on a tensor that does not require grad");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    if (numel() != 1) throw std::logic_error("dfq: backward() without a gradient needs a one-element tensor, got " + str());
    seed = Tensor::ones(shape(), device());
  }
  if (seed.shape() != shape()) throw std::logic_error("dfq: backward() gradient shape mismatch for " + str());
  NoGradGuard no_grad;
  if (is_leaf()) {
    accumulate_into_impl(impl(), seed);
    return;
  }
  // Topological order of the nodes reachable from the root (iterative DFS, post-order).
  // Shared owners: clearing a node's inputs below must not free a node still to be visited.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{grad_fn(), 0}};
  seen.insert(grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const auto& in = node->inputs[next++];
      if (in && in->grad_fn && !seen.count(in->grad_fn.get())) {
        seen.insert(in->grad_fn.get());
        stack.push_back({in->grad_fn, 0});
      }
    } else {
      order.push_back(std::move(node));
      stack.pop_back();
    }
  }
  accumulate_grad(grad_fn()->grad_out, seed);
  if (impl().retain_grad) accumulate_into_impl(impl(), seed);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    if (!node->grad_out.defined()) continue;
    if (!node->backward)
      throw std::logic_error("dfq: backward through '" + node->name + "' a second time (its graph was already freed)");
    std::vector<Tensor> grads = node->backward(node->grad_out);
    node->grad_out = Tensor();
    node->backward = nullptr;  // frees the saved tensors
    if (grads.size() != node->inputs.size())
      throw std::logic_error("dfq: node '" + node->name + "' returned the wrong number of gradients");
    for (size_t i = 0; i < grads.size(); ++i) {
      TensorImpl* in = node->inputs[i].get();
      if (!in || !in->requires_grad || !grads[i].defined()) continue;
      if (grads[i].shape() != in->shape)
        throw std::logic_error("dfq: node '" + node->name + "' gave gradient " + shape_str(grads[i].shape()) +
                               " for input " + shape_str(in->shape));
      if (in->grad_fn) {
        accumulate_grad(in->grad_fn->grad_out, grads[i]);
        if (in->retain_grad) accumulate_into_impl(*in, grads[i]);
      } else {
        accumulate_into_impl(*in, grads[i]);
      }
    }
    node->inputs.clear();  // lets the activations this node kept alive go
  }
}

}  // namespace dfq
