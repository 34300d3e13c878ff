// Many independent runs spread over OpenMP threads: threading only.
//
// Runs are cut into blocks by a rule that looks only at the batch (never at
// the thread count): run_grouped_batch sorts the runs stably by the family's
// grouping key (problem and model spec), so the runs of one key form one
// group whatever their order in the batch, and each group is split into
// nearly equal blocks of at most `block_size` runs; the records come back in
// the caller's order.  This is the one place a batch is grouped and ordered.  A block advances as one matrix
// (see flow.hpp), so a run's arithmetic depends only on its block, and the
// results are bitwise the same for any number of threads.
//
// Each model header owns its batch entry (run_diagonal_batch in
// diagonal_batch.hpp, run_steepest_batch in steepest.hpp,
// run_factorization_batch in factorization.hpp), which checks its runs and
// hands run_grouped_batch its grouping key and the body that runs one block.
#pragma once

#include "interrupt.hpp"
#include "types.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#ifdef IMPLICITBIAS_HAVE_OPENMP
#include <omp.h>
#endif

namespace implicitbias {

inline bool openmp_enabled() {
#ifdef IMPLICITBIAS_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

// The OpenMP specification the core was compiled against, as the _OPENMP date (yyyymm, e.g.
// 201511 for OpenMP 4.5); 0 without OpenMP.
inline int openmp_version() {
#if defined(IMPLICITBIAS_HAVE_OPENMP) && defined(_OPENMP)
  return _OPENMP;
#else
  return 0;
#endif
}

inline int max_threads() {
#ifdef IMPLICITBIAS_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Splits [0, n) into ranges [begin, end) of runs for which same(a, b) holds
// between neighbours, each range cut into ceil(len / block_size) nearly equal
// blocks.
template <class Same>
std::vector<std::pair<std::size_t, std::size_t>> make_blocks(std::size_t n, std::size_t block_size, Same same) {
  std::vector<std::pair<std::size_t, std::size_t>> blocks;
  if (block_size == 0) block_size = 1;
  std::size_t start = 0;
  while (start < n) {
    std::size_t end = start + 1;
    while (end < n && same(start, end)) ++end;
    const std::size_t len = end - start;
    const std::size_t nb = (len + block_size - 1) / block_size;
    for (std::size_t b = 0; b < nb; ++b) {
      const std::size_t lo = start + b * len / nb, hi = start + (b + 1) * len / nb;
      blocks.emplace_back(lo, hi);
    }
    start = end;
  }
  return blocks;
}

// Runs a batch of n_runs runs: cuts it into blocks (make_blocks with `same`),
// calls body(lo, hi, out) for each block [lo, hi), which fills out with the
// hi - lo records of its runs, and places them at their runs' positions.
// Threads: num_threads (0: OpenMP's default), never more than there are
// blocks; with one block or one thread the body runs on the calling thread
// without entering a parallel region (waking parked threads costs far more
// than a small run).  The first exception of any block is rethrown here.
//
// Interrupts (interrupt.hpp): the calling thread's StopContext is installed
// on every worker, so the loops of all blocks poll it.  Blocks are taken from
// a shared counter; once the calling thread finds none left it waits for
// the other threads' last blocks, woken as soon as they are done, and checks
// for a stop every 2 ms meanwhile, so a Ctrl-C is seen while the last blocks
// run on other threads (and a short batch never waits out a sleep).  Once a stop is
// requested, blocks not yet started are skipped and Interrupted is thrown.
template <class Same, class Body>
std::vector<RunRecord> run_batch(std::size_t n_runs, std::size_t block_size, int num_threads, Same same, Body body) {
  std::vector<RunRecord> results(n_runs);
  const auto blocks = make_blocks(n_runs, block_size, same);
  StopContext* const ctx = current_stop_context();
  auto run_block = [&](std::size_t b) {
    if (ctx != nullptr && ctx->stop_requested()) throw Interrupted();
    const auto [lo, hi] = blocks[b];
    std::vector<RunRecord> out;
    body(lo, hi, out);
    if (out.size() != hi - lo) throw std::logic_error("run_batch: a block returned the wrong number of records");
    for (std::size_t k = 0; k < out.size(); ++k) results[lo + k] = std::move(out[k]);
  };
  const long nb = static_cast<long>(blocks.size());
  const long nt = std::min<long>(num_threads > 0 ? num_threads : max_threads(), nb);
  if (nt <= 1) {
    for (long b = 0; b < nb; ++b) run_block(static_cast<std::size_t>(b));
    return results;
  }
  std::exception_ptr error;
  std::mutex error_mutex, done_mutex;
  std::condition_variable done_cv;  // wakes the waiting calling thread as soon as the last block is done
  std::atomic<long> next{0};
  long done = 0;  // guarded by done_mutex
  auto worker = [&]() {
    StopScope scope(ctx);
    for (long b = next.fetch_add(1); b < nb; b = next.fetch_add(1)) {
      try {
        run_block(static_cast<std::size_t>(b));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(done_mutex);
        ++done;
      }
      done_cv.notify_all();
    }
    if (ctx == nullptr || !ctx->is_owner()) return;
    std::unique_lock<std::mutex> lock(done_mutex);
    while (done < nb) {
      if (done_cv.wait_for(lock, std::chrono::milliseconds(2), [&] { return done >= nb; })) break;
      lock.unlock();
      ctx->check_on_owner();
      lock.lock();
    }
  };
#ifdef IMPLICITBIAS_HAVE_OPENMP
#pragma omp parallel num_threads(static_cast<int>(nt))
#endif
  worker();
  if (error) std::rethrow_exception(error);
  return results;
}

// The stable grouping of a batch: the runs sorted by key(run) (operator<; runs
// with equal keys keep their order), cut into blocks of equal keys by
// run_batch, and the records returned in the order of `runs`.  body(sorted,
// lo, hi, out) runs the block [lo, hi) of `sorted` (the runs in group order).
// The blocks depend only on the batch, so a run's numbers do not depend on
// the thread count, and a batch given in any order groups the same way.
template <class Run, class Key, class Body>
std::vector<RunRecord> run_grouped_batch(const std::vector<Run>& runs, std::size_t block_size, int num_threads, Key key,
                                         Body body) {
  std::vector<std::size_t> order(runs.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return key(runs[a]) < key(runs[b]); });
  const bool identity = std::is_sorted(order.begin(), order.end());
  std::vector<Run> permuted;
  if (!identity) {
    permuted.reserve(runs.size());
    for (std::size_t k : order) permuted.push_back(runs[k]);
  }
  const std::vector<Run>& sorted = identity ? runs : permuted;
  auto same = [&](std::size_t a, std::size_t b) { return key(sorted[a]) == key(sorted[b]); };
  std::vector<RunRecord> records = run_batch(
      sorted.size(), block_size, num_threads, same,
      [&](std::size_t lo, std::size_t hi, std::vector<RunRecord>& out) { body(sorted, lo, hi, out); });
  if (identity) return records;
  std::vector<RunRecord> result(records.size());
  for (std::size_t pos = 0; pos < order.size(); ++pos) result[order[pos]] = std::move(records[pos]);
  return result;
}

}  // namespace implicitbias
