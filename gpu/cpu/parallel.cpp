#include "gpu/cpu/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace volt::cpu {

namespace {

std::atomic<int> configured_threads{0};
std::atomic<int64_t> configured_rows_per_part{0};

/// Pool threads sleep on a condition variable between jobs: spinning would
/// take cores from the expert actors, which compute between the engine's
/// parallel parts.
class compute_pool {
public:
  explicit compute_pool(int threads) {
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this, i] { work(i); });
  }

  ~compute_pool() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

  int threads() const {
    return static_cast<int>(workers_.size()) + 1;
  }

  void run(int64_t n, int64_t grain,
           const std::function<void(int64_t, int64_t)>& fn) {
    auto parts = std::min<int64_t>(threads(), n / std::max<int64_t>(grain, 1));
    std::unique_lock<std::mutex> busy{busy_, std::try_to_lock};
    if (parts < 2 || !busy.owns_lock()) {
      fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> guard{mtx_};
      job_ = &fn;
      n_ = n;
      parts_ = parts;
      remaining_ = static_cast<int>(parts - 1);
      ++generation_;
    }
    wake_.notify_all();
    auto [begin, end] = part(0);
    fn(begin, end);
    std::unique_lock<std::mutex> guard{mtx_};
    done_.wait(guard, [this] { return remaining_ == 0; });
    job_ = nullptr;
  }

private:
  std::pair<int64_t, int64_t> part(int64_t i) const {
    return {n_ * i / parts_, n_ * (i + 1) / parts_};
  }

  void work(int index) {
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> guard{mtx_};
      wake_.wait(guard, [&] { return stop_ || generation_ != seen; });
      if (stop_)
        return;
      seen = generation_;
      if (index >= parts_)
        continue;
      auto [begin, end] = part(index);
      const auto* job = job_;
      guard.unlock();
      (*job)(begin, end);
      guard.lock();
      if (--remaining_ == 0)
        done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex busy_; // one job at a time
  std::mutex mtx_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int64_t parts_ = 0;
  int remaining_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

compute_pool& pool() {
  static compute_pool instance{compute_threads()};
  return instance;
}

} // namespace

void set_compute_threads(int n) {
  configured_threads = std::max(n, 0);
}

int compute_threads() {
  auto n = configured_threads.load();
  if (n > 0)
    return n;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void set_rows_per_part(int64_t n) {
  configured_rows_per_part = std::max<int64_t>(n, 0);
}

int64_t rows_per_part() {
  auto n = configured_rows_per_part.load();
  if (n > 0)
    return n;
  return compute_threads() >= 8 ? 8 : 32;
}

void parallel_for(int64_t n, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0)
    return;
  pool().run(n, grain, fn);
}

} // namespace volt::cpu
