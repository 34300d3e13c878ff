// Stopping long loops on request (Ctrl-C) without any Python in the kernels.
//
// The caller of a kernel (the bindings, cpp/bindings/common.hpp) makes a
// StopContext for the call and installs it on its thread with a StopScope.
// The context holds an atomic stop flag and, optionally, a `check` callback
// that only the owner (the thread that made the context) ever calls; the
// bindings' check briefly takes the GIL and runs PyErr_CheckSignals, and
// returns true when a Python exception (KeyboardInterrupt) is now pending.
// run_batch (parallel.hpp) installs the caller's context on its OpenMP
// workers too; workers never call `check`, they only read the flag.
//
// A loop polls with an InterruptPoller (every RunBook has one: book.poll()):
//   InterruptPoller poller;           // picks up this thread's context
//   for (...) { poller.poll(); ... }  // throws Interrupted once stopped
// poll() costs an increment and a compare; every `stride` calls it reads the
// clock, and adapts the stride so that clock reads are ~kClockInterval apart
// whatever a step costs.  At most every kCheckInterval the owner calls the
// check and any thread reads the flag, so a stop is seen within a few
// milliseconds plus one step.  Without a context (plain C++ callers, tests)
// poll() is a no-op.  Interrupted unwinds the loop (no result is produced);
// the bindings turn it into the pending Python exception.
//
// To make a new loop interruptible: call book.poll() (or an
// InterruptPoller's poll()) once per iteration, outside any OpenMP region
// that is not run_batch's (an exception must not leave an OpenMP region).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <thread>
#include <utility>

namespace implicitbias {

// Thrown out of a loop that was asked to stop.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

class StopContext {
 public:
  // check(): owner thread only; returns true when the work should stop.
  using Check = bool (*)();
  explicit StopContext(Check check = nullptr) : check_(check), owner_(std::this_thread::get_id()) {}
  StopContext(const StopContext&) = delete;
  StopContext& operator=(const StopContext&) = delete;

  bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }
  void request_stop() { stop_.store(true, std::memory_order_relaxed); }
  bool is_owner() const { return std::this_thread::get_id() == owner_; }
  // On the owner: runs the check (once a stop is requested, no more).
  // Returns whether a stop is requested.
  bool check_on_owner() {
    if (!stop_requested() && check_ != nullptr && check_()) request_stop();
    return stop_requested();
  }

 private:
  std::atomic<bool> stop_{false};
  Check check_;
  std::thread::id owner_;
};

// The context of the calling thread (nullptr: none).
inline StopContext*& current_stop_context() {
  thread_local StopContext* ctx = nullptr;
  return ctx;
}

// Installs ctx on this thread for the scope's lifetime.
class StopScope {
 public:
  explicit StopScope(StopContext* ctx) : prev_(std::exchange(current_stop_context(), ctx)) {}
  ~StopScope() { current_stop_context() = prev_; }
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;

 private:
  StopContext* prev_;
};

class InterruptPoller {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::microseconds kClockInterval{500};
  static constexpr std::chrono::milliseconds kCheckInterval{5};

  InterruptPoller() : ctx_(current_stop_context()), owner_(ctx_ != nullptr && ctx_->is_owner()) {
    last_clock_ = last_check_ = Clock::now();
  }

  void poll() {
    if (ctx_ == nullptr || ++count_ < stride_) return;
    slow_path();
  }

 private:
  void slow_path() {
    count_ = 0;
    const auto now = Clock::now();
    const auto since = now - last_clock_;
    last_clock_ = now;
    if (since < kClockInterval / 4 && stride_ < (std::int64_t{1} << 24)) stride_ *= 2;
    else if (since > kClockInterval * 2 && stride_ > 1) stride_ /= 2;
    if (now - last_check_ < kCheckInterval) return;
    last_check_ = now;
    if (owner_ ? ctx_->check_on_owner() : ctx_->stop_requested()) throw Interrupted();
  }

  StopContext* ctx_;
  bool owner_;
  std::int64_t count_ = 0, stride_ = 1;
  Clock::time_point last_clock_, last_check_;
};

}  // namespace implicitbias
