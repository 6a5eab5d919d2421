#include "worker/data/loader.h"

#include <ATen/ATen.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "common/errors.h"
#include "common/host_memory.h"
#include "worker/data/random.h"

namespace vicreg::data {

// ---- sharding and seeds -----------------------------------------------------------------------

std::vector<int64_t> EpochPermutation(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(perm.begin(), perm.end(), 0);
  if (!shuffle) return perm;
  SampleRng rng(MixSeed(MixSeed(seed, 0x7065726d /* "perm" */), static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(rng.Below(i + 1))]);
  return perm;
}

std::vector<int64_t> EpochShard(int64_t dataset_size, int batch_size, int rank, int world_size, bool shuffle,
                                uint64_t seed, int64_t epoch) {
  VICREG_CHECK(batch_size >= 1 && world_size >= 1 && rank >= 0 && rank < world_size,
               "EpochShard: need batch_size >= 1 and 0 <= rank < world_size");
  const int64_t global = static_cast<int64_t>(batch_size) * world_size;
  const int64_t batches = dataset_size / global;  // drop_last: every rank gets the same count
  const std::vector<int64_t> perm = EpochPermutation(dataset_size, shuffle, seed, epoch);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(batches * batch_size));
  for (int64_t k = 0; k < batches; ++k) {
    const int64_t start = k * global + static_cast<int64_t>(rank) * batch_size;
    out.insert(out.end(), perm.begin() + start, perm.begin() + start + batch_size);
  }
  return out;
}

uint64_t ViewSeed(uint64_t seed, int64_t epoch, int64_t batch_index, int view) {
  return MixSeed(MixSeed(MixSeed(MixSeed(seed, 0x76696577 /* "view" */), static_cast<uint64_t>(epoch)),
                         static_cast<uint64_t>(batch_index)),
                 static_cast<uint64_t>(view));
}

// ---- loader -----------------------------------------------------------------------------------

namespace {

template <typename Fallback>
std::array<double, 3> Stat(const std::vector<double>& v, Fallback fallback, const char* field) {
  if (v.empty()) return fallback();  // the dataset's statistics are computed only when needed
  if (v.size() != 1 && v.size() != 3)
    throw UserError(std::string("augment.") + field + " must have 1 or 3 values (per channel), got " +
                    std::to_string(v.size()));
  std::array<double, 3> out{};
  for (size_t c = 0; c < 3; ++c) out[c] = v[v.size() == 1 ? 0 : c];
  return out;
}

}  // namespace

struct Loader::Impl {
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  std::shared_ptr<const Dataset> dataset;
  LoaderOptions opts;
  std::array<double, 3> mean{}, std{};
  std::unique_ptr<ViewAugmenter> aug1, aug2;
  int64_t batches = 0;

  // Current epoch (guarded by mu, except `shard` which is immutable while threads run).
  std::mutex mu;
  std::condition_variable cv_work, cv_ready;
  bool started = false, stop = false;
  int64_t epoch = 0;
  std::vector<int64_t> shard;
  int64_t next_claim = 0, next_deliver = 0;
  std::map<int64_t, Slot> ready;
  std::vector<std::thread> threads;

  Batch Produce(int64_t k) const {
    const int b = opts.batch_size;
    Batch out;
    out.batch_index = k;
    out.indices.assign(shard.begin() + k * b, shard.begin() + (k + 1) * b);
    out.sample_offset = static_cast<int64_t>(opts.rank) * b;
    out.view_seed1 = ViewSeed(opts.seed, epoch, k, 1);
    out.view_seed2 = ViewSeed(opts.seed, epoch, k, 2);
    at::Tensor raw;
    dataset->Fetch(out.indices, &raw, &out.labels);
    if (!opts.augment_in_loader) {
      out.raw = raw;
    } else if (opts.two_views) {
      out.view1 = (*aug1)(raw, out.view_seed1, out.sample_offset);
      out.view2 = (*aug2)(raw, out.view_seed2, out.sample_offset);
    } else {
      out.view1 = EvalTransform(raw, opts.image_size, mean, std);
    }
    if (opts.pin_memory)  // done here, in the loader thread, not on the step's critical path
      for (at::Tensor* t : {&out.raw, &out.view1, &out.view2})
        if (t->defined()) *t = t->pin_memory();
    return out;
  }

  void WorkerLoop() {
    for (;;) {
      int64_t k;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv_work.wait(
            lock, [&] { return stop || (next_claim < batches && next_claim < next_deliver + opts.prefetch_batches); });
        if (stop) return;
        k = next_claim++;
      }
      Slot slot;
      try {
        slot.batch = Produce(k);
      } catch (...) {
        slot.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        ready[k] = std::move(slot);
      }
      cv_ready.notify_all();
    }
  }

  void StopThreads() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv_work.notify_all();
    for (auto& t : threads) t.join();  // a worker finishes at most its current batch
    threads.clear();
  }
};

Loader::Loader(std::shared_ptr<const Dataset> dataset, const config::AugmentConfig& augment, LoaderOptions opts)
    : impl_(std::make_unique<Impl>()) {
  VICREG_CHECK(dataset != nullptr, "Loader needs a dataset");
  auto bad = [](const std::string& what) { throw UserError("data loader: " + what); };
  if (opts.batch_size < 1) bad("batch_size must be >= 1, got " + std::to_string(opts.batch_size));
  if (opts.world_size < 1) bad("world_size must be >= 1, got " + std::to_string(opts.world_size));
  if (opts.rank < 0 || opts.rank >= opts.world_size)
    bad("rank must be in [0, " + std::to_string(opts.world_size) + "), got " + std::to_string(opts.rank));
  if (opts.num_workers < 0)
    bad("data.num_workers must be >= 0 (0 = load in the caller), got " + std::to_string(opts.num_workers));
  if (opts.prefetch_batches < 1)
    bad("data.prefetch_batches must be >= 1, got " + std::to_string(opts.prefetch_batches));
  if (opts.image_size < 1) bad("image_size must be >= 1, got " + std::to_string(opts.image_size));
  TuneHostAllocator();  // no page faults on every fresh batch tensor (common/host_memory.h)
  Impl& s = *impl_;
  s.dataset = std::move(dataset);
  s.opts = opts;
  s.mean = Stat(
      augment.mean, [&] { return s.dataset->mean(); }, "mean");
  s.std = Stat(
      augment.std, [&] { return s.dataset->std(); }, "std");
  for (double v : s.std)
    if (!(v > 0)) bad("augment.std values must be > 0, got " + std::to_string(v));
  ViewAugmenterOptions vo = opts.augment_options;
  vo.order = AugmentOrderFromConfig(augment);  // augment.order decides, for the loader and the device path
  s.aug1 = std::make_unique<ViewAugmenter>(augment.view1, opts.image_size, s.mean, s.std, vo);
  s.aug2 = std::make_unique<ViewAugmenter>(augment.view2, opts.image_size, s.mean, s.std, vo);
  const int64_t global = static_cast<int64_t>(opts.batch_size) * opts.world_size;
  s.batches = s.dataset->size() / global;
  if (s.batches == 0)
    bad(s.dataset->name() + " has " + std::to_string(s.dataset->size()) + " images, fewer than one global batch (" +
        std::to_string(opts.world_size) + " ranks x batch_size " + std::to_string(opts.batch_size) + " = " +
        std::to_string(global) + "); lower train.batch_size or raise data.limit");
}

Loader::~Loader() { impl_->StopThreads(); }

int64_t Loader::batches_per_epoch() const { return impl_->batches; }

const ViewAugmenter& Loader::augmenter(int view) const {
  VICREG_CHECK(view == 1 || view == 2, "view must be 1 or 2");
  return view == 1 ? *impl_->aug1 : *impl_->aug2;
}
std::array<double, 3> Loader::mean() const { return impl_->mean; }
std::array<double, 3> Loader::std() const { return impl_->std; }

void Loader::StartEpoch(int64_t epoch, int64_t skip_batches) {
  Impl& s = *impl_;
  if (skip_batches < 0 || skip_batches > s.batches)  // checked first: a failed call leaves the current epoch running
    throw UserError("data loader: cannot skip " + std::to_string(skip_batches) + " batches of epoch " +
                    std::to_string(epoch) + ": an epoch has " + std::to_string(s.batches) +
                    " (did the dataset or batch size change since the checkpoint?)");
  s.StopThreads();
  s.shard = EpochShard(s.dataset->size(), s.opts.batch_size, s.opts.rank, s.opts.world_size, s.opts.shuffle,
                       s.opts.seed, epoch);
  s.epoch = epoch;
  s.ready.clear();
  s.next_claim = s.next_deliver = skip_batches;
  s.stop = false;
  s.started = true;
  for (int i = 0; i < s.opts.num_workers; ++i) s.threads.emplace_back([&s] { s.WorkerLoop(); });
}

std::optional<Batch> Loader::Next() {
  Impl& s = *impl_;
  VICREG_CHECK(s.started, "Loader::Next() before StartEpoch()");
  const auto t0 = std::chrono::steady_clock::now();
  if (s.next_deliver >= s.batches) return std::nullopt;
  Impl::Slot slot;
  if (s.opts.num_workers == 0) {
    try {
      slot.batch = s.Produce(s.next_deliver);
    } catch (...) {
      slot.error = std::current_exception();
    }
    ++s.next_deliver;
  } else {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv_ready.wait(lock, [&] { return s.ready.count(s.next_deliver) > 0; });
    auto it = s.ready.find(s.next_deliver);
    slot = std::move(it->second);
    s.ready.erase(it);
    ++s.next_deliver;
    lock.unlock();
    s.cv_work.notify_all();
  }
  if (slot.error) std::rethrow_exception(slot.error);
  slot.batch->wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::move(slot.batch);
}

}  // namespace vicreg::data
