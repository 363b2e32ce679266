// A small fixed-size thread pool for batch decoding. The calling thread takes part,
// so ThreadPool(n) runs n items at once with n - 1 worker threads; the pool object is
// reused across batches (no thread start-up per call).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <memory>
#include <vector>

#if !defined(_WIN32)
#include <unistd.h>
#endif

namespace tinyvit {

inline long current_pid() {
#if defined(_WIN32)
  return 0;
#else
  return static_cast<long>(getpid());
#endif
}

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads)
      : size_(num_threads < 1 ? 1 : num_threads), owner_pid_(current_pid()),
        workers_(new std::vector<std::thread>()) {
    for (int i = 1; i < size_; ++i) workers_->emplace_back([this] { worker_loop(); });
  }
  // After fork() the child has a copy of this object but none of its threads (e.g. a
  // DataLoader worker forked from a process that used the pool): it must neither join
  // nor wait for them. The child leaks the thread handles and runs work serially.
  ~ThreadPool() {
    if (current_pid() != owner_pid_) {
      (void)workers_.release();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : *workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Calls fn(i) for every i in [0, n), each exactly once, spread over the pool; returns
  // when all are done. fn must not throw (catch inside and record per item). One
  // parallel_for at a time per pool (callers serialise on run_mu_).
  void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
    if (current_pid() != owner_pid_) {  // forked copy: no worker threads here
      for (size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mu_);
    if (n == 0) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &fn;
      job_n_ = n;
      next_.store(0);
      active_ = static_cast<int>(workers_->size());
      ++generation_;
    }
    wake_.notify_all();
    drain(fn, n);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return active_ == 0; });
    job_ = nullptr;
  }

 private:
  void drain(const std::function<void(size_t)>& fn, size_t n) {
    for (;;) {
      const size_t i = next_.fetch_add(1);
      if (i >= n) return;
      fn(i);
    }
  }

  void worker_loop() {
    size_t seen = 0;
    for (;;) {
      const std::function<void(size_t)>* job;
      size_t n;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
        n = job_n_;
      }
      drain(*job, n);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (--active_ == 0) done_.notify_all();
      }
    }
  }

  const int size_;
  const long owner_pid_;
  std::unique_ptr<std::vector<std::thread>> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t job_n_ = 0;
  size_t generation_ = 0;
  int active_ = 0;
  bool stop_ = false;
  std::atomic<size_t> next_{0};
};

}  // namespace tinyvit
