// loader.h — DataLoader: batches of a Dataset (dataset.h), prepared by std::thread workers ahead of
// the model in a bounded prefetch queue.
//
//   FashionMnistDataset ds("test");                  // or ImageFolderDataset::from_class_folders(dir)
//   DataLoader loader(ds, {.batch_size = 256, .workers = 2});
//   Progress bar("eval", loader.num_batches());      // counts are known up front
//   loader.start_epoch();                            // start_epoch(&gen) when shuffling / augmenting
//   for (Batch b; loader.next(b);) {                 // b.images f32 (B,C,H,W), b.labels i64 (B), CPU
//     Tensor logits = model.forward(b.images.to(dev));
//     bar.update(b.index + 1);
//   }
//
// Rules:
//  - Output order is fixed when the epoch starts (the item order, shuffled by the Generator when
//    asked; the dataset's random draws in Dataset::begin_epoch): batch k always holds the same items
//    with the same augmentation, whatever the thread timing or the number of workers.
//  - Workers take whole batches in order; at most `prefetch` batches are in flight or ready beyond
//    the one the consumer last took. workers = 0 loads on the calling thread, inside next().
//  - An exception while loading batch k (e.g. an unreadable image) is thrown by next() when batch k
//    is due, after the workers stop. The last batch is partial unless drop_last.
//  - start_epoch() again (or the destructor) abandons an unfinished epoch cleanly.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/io/dataset.h"

namespace dfq {

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  int workers = 2;   // decoding threads (0: on the calling thread)
  int prefetch = 4;  // batches prepared ahead (>= 1)
};

struct Batch {
  Tensor images;      // f32 (B, item_shape...) CPU
  Tensor labels;      // i64 (B) CPU
  int64_t index = 0;  // batch number within the epoch, 0-based
  std::vector<int64_t> items;  // the dataset indices in this batch
};

class DataLoader {
 public:
  // The dataset must outlive the loader; start_epoch calls its begin_epoch (augmentation draws).
  DataLoader(Dataset& ds, LoaderOptions opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_samples() const;  // items yielded per epoch (drop_last taken into account)
  int64_t num_batches() const;
  const LoaderOptions& options() const { return opt_; }

  // Starts a pass: item order (shuffled with gen when opt.shuffle), the dataset's begin_epoch(gen),
  // then the workers. gen is required when shuffling or when the dataset draws augmentation.
  void start_epoch(Generator* gen = nullptr);
  // The next batch in order; false once the epoch is done (or when no epoch was started).
  bool next(Batch& out);

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  void build(int64_t b, Batch& out) const;
  void worker_loop();
  void stop_workers();

  Dataset* ds_;
  LoaderOptions opt_;
  std::vector<int64_t> order_;
  int64_t nb_ = 0;
  bool active_ = false;
  // shared with the workers (under mu_)
  std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  int64_t next_claim_ = 0, consumed_ = 0;
  bool stop_ = false;
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> threads_;
};

}  // namespace dfq
