// The bookkeeping of a block of runs, shared by every loop: the fixed-step and
// adaptive drivers (flow.hpp), the SIMD-lanes GD kernel (diagonal_lanes.hpp)
// and the discrete steepest-descent loop (steepest.hpp).  A loop owns its
// algorithm (states, fields, step sizes, stop rules); a RunBook owns what
// every loop repeats around it:
//   - the records: per run the channels [step,] t, <loss>, n_grad_evals,
//     wall_time, then the model's diagnostics, one value per recorded point;
//     the step channel (steepest) holds the run's n_steps at the time;
//   - the counters (n_steps, n_rejected, n_grad_evals, n_jac, n_lu of each
//     record);
//   - the clock of the block (wall_time: seconds since the book was made);
//   - the active set: the ids of the runs still going, one per column of the
//     loop's matrices; finish() marks a column, compact() drops the marked
//     columns from the ids and from the loop's matrices (compact_columns);
//   - finishing a run: status, final state, time and loss, and its final
//     point recorded unless the last recorded point is that one (same step,
//     or without a step channel the same t);
//   - for fixed-step methods, the loss one step back, so that a run whose
//     loss turns non-finite ends with its last finite state and that loss;
//   - interrupts: poll(), called once per iteration of the loop, throws
//     Interrupted once the call was asked to stop (interrupt.hpp).
// Nothing here touches the arithmetic of a run.
#pragma once

#include "interrupt.hpp"
#include "types.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace implicitbias {

// Keeps the columns c of each matrix with keep[c] true, in order, and the
// matching entries of ids.
inline void compact_columns(const std::vector<Mat*>& mats, std::vector<int>& ids, const std::vector<char>& keep) {
  Index dst = 0;
  const Index n = static_cast<Index>(ids.size());
  for (Index c = 0; c < n; ++c) {
    if (!keep[static_cast<std::size_t>(c)]) continue;
    if (dst != c) {
      for (Mat* m : mats) m->col(dst) = m->col(c);
      ids[static_cast<std::size_t>(dst)] = ids[static_cast<std::size_t>(c)];
    }
    ++dst;
  }
  for (Mat* m : mats) m->conservativeResize(Eigen::NoChange, dst);
  ids.resize(static_cast<std::size_t>(dst));
}

// Names of the leading channels: the loss channel ("loss"; steepest descent
// records "log_loss") and whether a "step" channel comes first.
struct BookChannels {
  const char* loss = "loss";
  bool step = false;
};

// Diag: void(const Eigen::Ref<const Vec>& z, int id, double* out), writing
// the diagnostics of run id at state z (as many as diagnostic names).
template <class Diag>
class RunBook {
 public:
  RunBook(Index n_runs, const std::vector<std::string>& diagnostic_names, Diag diag, BookChannels channels = {})
      : diag_(std::move(diag)),
        step_channel_(channels.step),
        n_diag_(diagnostic_names.size()),
        recs_(static_cast<std::size_t>(n_runs)),
        ids_(static_cast<std::size_t>(n_runs)),
        keep_(static_cast<std::size_t>(n_runs), 1),
        prev_loss_(static_cast<std::size_t>(n_runs), std::numeric_limits<double>::quiet_NaN()),
        start_(std::chrono::steady_clock::now()) {
    for (auto& rec : recs_) {
      if (step_channel_) rec.add_channel("step");
      for (const char* base : {"t", channels.loss, "n_grad_evals", "wall_time"}) rec.add_channel(base);
      for (const auto& n : diagnostic_names) rec.add_channel(n);
    }
    std::iota(ids_.begin(), ids_.end(), 0);
  }

  // Once per iteration of the loop: throws Interrupted when the call was
  // asked to stop (cheap: a counter, a clock read every ~0.5 ms).
  void poll() { poller_.poll(); }

  // Seconds since the book was made.
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  RunRecord& rec(int j) { return recs_[static_cast<std::size_t>(j)]; }
  void count_evals(int j, std::int64_t n = 1) { rec(j).n_grad_evals += n; }
  void count_jacobian(int j) { rec(j).n_jac += 1; }
  void count_factorization(int j) { rec(j).n_lu += 1; }
  // The records, moved out (the book is done).
  std::vector<RunRecord> take() { return std::move(recs_); }

  // ---- the active runs, one per column of the loop's matrices ------------
  const std::vector<int>& ids() const { return ids_; }
  int id(Index c) const { return ids_[static_cast<std::size_t>(c)]; }
  Index n_active() const { return static_cast<Index>(ids_.size()); }
  bool empty() const { return ids_.empty(); }

  // Drops the columns finished since the last call: from the ids, from each
  // matrix in `cols` (whose columns follow the ids), and resizes each work
  // matrix in `work` to the new number of columns (contents not kept).
  // Returns whether anything was dropped.
  bool compact(const std::vector<Mat*>& cols, const std::vector<Mat*>& work = {}) {
    if (std::find(keep_.begin(), keep_.end(), 0) == keep_.end()) return false;
    compact_columns(cols, ids_, keep_);
    keep_.assign(ids_.size(), 1);
    for (Mat* w : work) w->resize(w->rows(), n_active());
    return true;
  }

  // ---- points and the end of a run ----------------------------------------
  // Appends a point of run j: [n_steps,] t, loss, n_grad_evals, wall_time and
  // the diagnostics at state z.
  void record(int j, const Eigen::Ref<const Vec>& z, double t, double loss) { record_at(j, z, t, loss, seconds()); }

  // Ends the run in column c with status s at state z, time t and loss, and
  // records that point unless it is the last one recorded.  Its column is
  // dropped at the next compact().
  void finish(Index c, Status s, const Eigen::Ref<const Vec>& z, double t, double loss) {
    const int j = id(c);
    RunRecord& r = rec(j);
    r.status = s;
    r.t_final = t;
    r.loss_final = loss;
    r.state = z;
    r.wall_time = seconds();
    const double key = step_channel_ ? static_cast<double>(r.n_steps) : t;
    if (r.history[0].empty() || r.history[0].back() != key) record_at(j, r.state, t, loss, r.wall_time);
    keep_[static_cast<std::size_t>(c)] = 0;
  }

  // ---- fixed-step methods (time = step * lr) -------------------------------
  // The run in column c at the start of step `step`, with loss l: it ends as
  // diverged when l is not finite (from step 1 on with the state and loss one
  // step back, its last finite ones), as converged when l <= tol, as
  // max_steps at the last step; otherwise its point is recorded when `due`
  // and its gradient evaluation counted.  state(back) gives the current state
  // (back = false) or the one a step back.  Returns whether the run goes on.
  template <class State>
  bool fixed_step_check(Index c, double l, std::int64_t step, double lr, bool last, bool due, double tol,
                        State&& state) {
    Status s = Status::running;
    if (!std::isfinite(l)) s = Status::diverged;
    else if (l <= tol) s = Status::converged;
    else if (last) s = Status::max_steps;
    const int j = id(c);
    if (s == Status::running) {
      if (due) record(j, state(false), static_cast<double>(step) * lr, l);
      count_evals(j);
      return true;
    }
    if (s == Status::diverged && step > 0) finish_fixed(c, s, state(true), step - 1, lr, prev_loss_[static_cast<std::size_t>(j)]);
    else finish_fixed(c, s, state(false), step, lr, l);
    return false;
  }
  // The step of step `step` from state z (loss l) of the run in column c
  // left the finite numbers: the run ends as diverged at z.
  void fixed_step_diverged(Index c, const Eigen::Ref<const Vec>& z, std::int64_t step, double lr, double l) {
    finish_fixed(c, Status::diverged, z, step, lr, l);
  }
  // The step from loss l of the run in column c was taken: l is now the
  // loss one step back.
  void fixed_step_taken(Index c, double l) { prev_loss_[static_cast<std::size_t>(id(c))] = l; }

 private:
  void finish_fixed(Index c, Status s, const Eigen::Ref<const Vec>& z, std::int64_t step, double lr, double l) {
    rec(id(c)).n_steps = step;
    finish(c, s, z, static_cast<double>(step) * lr, l);
  }

  void record_at(int j, const Eigen::Ref<const Vec>& z, double t, double loss, double wall) {
    RunRecord& r = rec(j);
    std::size_t k = 0;
    if (step_channel_) r.history[k++].push_back(static_cast<double>(r.n_steps));
    r.history[k++].push_back(t);
    r.history[k++].push_back(loss);
    r.history[k++].push_back(static_cast<double>(r.n_grad_evals));
    r.history[k++].push_back(wall);
    if (n_diag_ > 0) {
      scratch_.assign(n_diag_, 0.0);
      diag_(z, j, scratch_.data());
      for (std::size_t i = 0; i < n_diag_; ++i) r.history[k + i].push_back(scratch_[i]);
    }
  }

  Diag diag_;
  bool step_channel_;
  std::size_t n_diag_;
  std::vector<RunRecord> recs_;
  std::vector<int> ids_;       // active runs, in column order
  std::vector<char> keep_;     // per column: 0 once finished, until compact()
  std::vector<double> prev_loss_;  // per run id: the loss one step back (fixed-step)
  std::vector<double> scratch_;
  std::chrono::steady_clock::time_point start_;
  InterruptPoller poller_;
};

// A book for a block model (the model concept of flow.hpp): its diagnostic
// names and diagnostics(z, id, out).
template <class Model>
auto model_run_book(Model& model, Index n_runs) {
  auto diag = [&model](const Eigen::Ref<const Vec>& z, int id, double* out) { model.diagnostics(z, id, out); };
  return RunBook<decltype(diag)>(n_runs, model.diagnostic_names(), diag);
}

}  // namespace implicitbias
