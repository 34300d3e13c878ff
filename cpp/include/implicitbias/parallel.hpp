// Many independent runs spread over OpenMP threads.
//
// Runs are cut into blocks by a rule that looks only at the batch (never at
// the thread count): consecutive runs that share a problem and a model spec
// form a group, and each group is split into nearly equal blocks of at most
// `block_size` runs.  A block advances as one matrix (see flow.hpp), so a
// run's arithmetic depends only on its block, and the results are bitwise the
// same for any number of threads.
#pragma once

#include "diagonal.hpp"
#include "diagonal_lanes.hpp"
#include "flow.hpp"
#include "types.hpp"

#include <exception>
#include <mutex>
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

// Runs body(b) for every block index b over up to num_threads threads
// (0: OpenMP's default), rethrowing the first exception on the caller.
template <class Body>
void parallel_blocks(std::size_t n_blocks, int num_threads, Body body) {
  std::exception_ptr error;
  std::mutex error_mutex;
  const long nb = static_cast<long>(n_blocks);
#ifdef IMPLICITBIAS_HAVE_OPENMP
  const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#else
  (void)num_threads;
#endif
  for (long b = 0; b < nb; ++b) {
    try {
      body(static_cast<std::size_t>(b));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

enum class Method : int { descent = 0, flow = 1 };
enum class Solver : int { dopri5 = 0, rosw = 1 };

struct DiagonalRun {
  int problem = 0;
  DiagonalSpec spec;
  Vec init_scale;   // length N, positive
  double lr_ratio = 1.0;
  double lr = 0.0;  // gd only
};

struct BatchOptions {
  Method method = Method::flow;
  Solver solver = Solver::rosw;
  FixedStepOptions fixed;
  AdaptiveOptions adaptive;
  std::size_t block_size = 8;
  int num_threads = 0;
  // plain GD blocks of <= 8 runs take the SIMD-lanes kernel (diagonal_lanes.hpp)
  bool gd_lanes = true;
};

inline std::vector<RunRecord> run_diagonal_batch(const std::vector<SensingProblem>& problems,
                                                 const std::vector<DiagonalRun>& runs,
                                                 const BatchOptions& opt) {
  for (const auto& r : runs) {
    if (r.problem < 0 || static_cast<std::size_t>(r.problem) >= problems.size())
      throw InvalidArgument("run refers to a problem index out of range");
    if (r.spec.depth < 2) throw InvalidArgument("depth must be >= 2");
    if (r.init_scale.size() != problems[static_cast<std::size_t>(r.problem)].A.cols())
      throw InvalidArgument("init_scale length must equal the number of columns of A");
  }
  std::vector<RunRecord> results(runs.size());
  const auto blocks = make_blocks(runs.size(), opt.block_size, [&](std::size_t a, std::size_t b) {
    const DiagonalRun& x = runs[a];
    const DiagonalRun& y = runs[b];
    return x.problem == y.problem && x.spec.depth == y.spec.depth &&
           x.spec.nonnegative == y.spec.nonnegative && x.spec.weight_norm == y.spec.weight_norm;
  });
  parallel_blocks(blocks.size(), opt.num_threads, [&](std::size_t b) {
    const auto [lo, hi] = blocks[b];
    const Index K = static_cast<Index>(hi - lo);
    const DiagonalRun& first = runs[lo];
    const SensingProblem& prob = problems[static_cast<std::size_t>(first.problem)];
    Vec kappa(K), lr(K);
    Mat Z0(DiagonalLayout::make(first.spec, prob.A.cols()).dim(), K);
    for (Index c = 0; c < K; ++c) {
      const DiagonalRun& r = runs[lo + static_cast<std::size_t>(c)];
      kappa(c) = r.lr_ratio;
      lr(c) = r.lr;
      Z0.col(c) = diagonal_initial_state(r.spec, r.init_scale);
    }
    DiagonalBlockModel model(prob, first.spec, kappa);
    std::vector<RunRecord> out;
    const double tol = prob.tol;
    if (opt.method == Method::descent) {
      FixedStepOptions fixed = opt.fixed;
      fixed.tol = tol;
      if (opt.gd_lanes && lanes_applicable(first.spec, K)) run_diagonal_gd_lanes(model, prob, first.spec, Z0, lr, fixed, out);
      else run_fixed_step(model, Z0, lr, fixed, out);
    } else {
      AdaptiveOptions adaptive = opt.adaptive;
      adaptive.tol = tol;
      if (opt.solver == Solver::rosw) run_rosw(model, Z0, adaptive, out);
      else run_dopri5(model, Z0, adaptive, out);
    }
    for (Index c = 0; c < K; ++c) results[lo + static_cast<std::size_t>(c)] = std::move(out[static_cast<std::size_t>(c)]);
  });
  return results;
}

}  // namespace implicitbias
