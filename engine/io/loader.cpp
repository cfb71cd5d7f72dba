// loader.cpp — DataLoader (loader.h): an epoch's order is fixed up front; workers claim batch numbers
// in increasing order, build whole batches, and park them in ready_ keyed by batch number; next()
// waits for exactly the batch that is due, so the output order never depends on thread timing.
#include "engine/io/loader.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace dfq {

DataLoader::DataLoader(Dataset& ds, LoaderOptions opt) : ds_(&ds), opt_(opt) {
  if (opt_.batch_size <= 0) throw std::invalid_argument("dfq: DataLoader batch_size must be > 0");
  if (opt_.workers < 0) throw std::invalid_argument("dfq: DataLoader workers must be >= 0");
  if (opt_.prefetch < 1) throw std::invalid_argument("dfq: DataLoader prefetch must be >= 1");
}

DataLoader::~DataLoader() { stop_workers(); }

int64_t DataLoader::num_batches() const {
  int64_t n = ds_->size();
  return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
}

int64_t DataLoader::num_samples() const {
  return opt_.drop_last ? num_batches() * opt_.batch_size : ds_->size();
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  ready_.clear();
  active_ = false;
}

void DataLoader::start_epoch(Generator* gen) {
  stop_workers();
  const int64_t n = ds_->size();
  order_.resize(static_cast<std::size_t>(n));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (opt_.shuffle) {
    if (!gen) throw std::invalid_argument("dfq: DataLoader with shuffle needs a Generator (start_epoch(&gen))");
    // A random permutation: indices ordered by uniform keys (stable, so ties stay deterministic).
    std::vector<float> key = rand({n}, *gen).to_vector();
    std::stable_sort(order_.begin(), order_.end(), [&](int64_t a, int64_t b) { return key[a] < key[b]; });
  }
  ds_->begin_epoch(gen);
  nb_ = num_batches();
  next_claim_ = 0;
  consumed_ = 0;
  stop_ = false;
  active_ = true;
  int nthreads = static_cast<int>(std::min<int64_t>(opt_.workers, nb_));
  for (int i = 0; i < nthreads; ++i) threads_.emplace_back([this] { worker_loop(); });
}

void DataLoader::build(int64_t b, Batch& out) const {
  const int64_t start = b * opt_.batch_size;
  const int64_t bs = std::min<int64_t>(opt_.batch_size, static_cast<int64_t>(order_.size()) - start);
  Shape item = ds_->item_shape();
  const int64_t item_numel = numel_of(item);
  Shape shape{bs};
  shape.insert(shape.end(), item.begin(), item.end());
  out.images = Tensor::empty(shape);
  out.labels = Tensor::empty({bs}, DType::I64);
  out.index = b;
  out.items.assign(order_.begin() + start, order_.begin() + start + bs);
  float* img = out.images.data<float>();
  int64_t* lab = out.labels.data<int64_t>();
  for (int64_t i = 0; i < bs; ++i) lab[i] = ds_->get(out.items[i], img + i * item_numel);
}

void DataLoader::worker_loop() {
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || next_claim_ >= nb_ || next_claim_ <= consumed_ + opt_.prefetch - 1; });
      if (stop_ || next_claim_ >= nb_) return;
      b = next_claim_++;
    }
    Slot slot;
    try {
      build(b, slot.batch);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      ready_.emplace(b, std::move(slot));
    }
    cv_ready_.notify_all();
  }
}

bool DataLoader::next(Batch& out) {
  if (!active_) return false;
  if (consumed_ >= nb_) {
    stop_workers();
    return false;
  }
  if (threads_.empty()) {  // workers = 0: load here
    int64_t b = consumed_++;
    build(b, out);
    return true;
  }
  Slot slot;
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_ready_.wait(lk, [&] { return ready_.count(consumed_) > 0; });
    auto it = ready_.find(consumed_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++consumed_;
  }
  cv_work_.notify_all();
  if (slot.error) {
    stop_workers();
    std::rethrow_exception(slot.error);
  }
  out = std::move(slot.batch);
  return true;
}

}  // namespace dfq
