// What every adaptive method shares (docs/science.md, section 4.9): the
// options, the one error norm, and the control of a run: its records, its
// step accounting and the rules that end it.  A stepper (dopri5, rosw, rodas5
// in flow.hpp / rodas.hpp, the BDF in bdf.hpp) owns the step, the step size
// and the order; it tells the driver of each attempt (accepted or not) and
// gives it the state at any time of the last step (its dense output).
//
//   - error norm: sqrt(mean_i (e_i / w_i)^2) with the weights
//     w_i = max(atol + rtol * m_i, 1e-300), m_i the magnitude of coordinate i
//     (max(|z_i|, |z_new_i|) over a step); a step is accepted when <= 1.
//   - records: the start (t = 0), each record time in (t_old, t] of an
//     accepted step from the stepper's dense output (the state itself where
//     the record time is t), and every record_every-th accepted step.
//   - stop rules, after each accepted step in this order: loss <= tol
//     (converged), t >= t_max (max_time), max_steps attempts (max_steps), and
//     the stall rule (stalled, see AdaptiveOptions); after a rejected attempt,
//     max_steps.  A stepper ends a run as diverged itself (step size
//     underflow, nothing finite) with its last accepted state.
#pragma once

#include "run_book.hpp"
#include "types.hpp"

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace implicitbias {

struct AdaptiveOptions {
  double rtol = 1e-8;
  double atol = 0.0;
  double tol = -1.0;              // stop when loss <= tol (negative: never)
  double t_max = 1e6;
  std::int64_t max_steps = 10'000'000;  // accepted + rejected attempts
  double h0 = 0.0;                // first step; 0 picks it automatically
  std::vector<double> record_times;     // increasing; recorded from the dense output
  std::int64_t record_every = 0;  // also record every k accepted steps (0: off)
  // Stop as `stalled` when, over the last stall_steps accepted steps, the
  // best loss has not fallen by the factor stall_factor AND no coordinate of
  // the state has moved by more than stall_rel_change relative to itself.
  // This ends runs at a stationary point that is not a zero of the loss
  // (no interpolator), and explicit runs stuck at their accuracy floor (the
  // loss of a stiff problem cannot go much below (rtol |z|)^2); a plateau of
  // the dynamics (saddle to saddle) keeps moving its small coordinates and
  // is not stopped.  stall_steps = 0 turns the rule off.
  std::int64_t stall_steps = 5000;
  double stall_factor = 0.99;
  double stall_rel_change = 1e-3;
  // Rosenbrock-W only: rebuild the Jacobian approximation every jac_every
  // step attempts (and after any rejection or change of the set of runs).
  std::int64_t jac_every = 4;
};

// The error weights w_i = max(atol + rtol * m_i, 1e-300) of magnitudes m
// (an array expression; the result is one too, evaluated where it is used).
template <class Derived>
auto error_weights(const AdaptiveOptions& opt, const Eigen::ArrayBase<Derived>& m) {
  return (opt.atol + opt.rtol * m).max(1e-300);
}

// The error norm sqrt(mean_i (e_i / w_i)^2) of e with the weights of the
// magnitudes max(|a_i|, |b_i|).
template <class E, class A, class B>
double error_norm(const AdaptiveOptions& opt, const E& e, const A& a, const B& b) {
  return std::sqrt((e.array() / error_weights(opt, a.array().abs().max(b.array().abs()))).square().mean());
}

namespace detail {
template <class M, class = void>
struct has_error_norm : std::false_type {};
template <class M>
struct has_error_norm<M, std::void_t<decltype(std::declval<M&>().error_norm(
                             std::declval<const Mat&>(), std::declval<const Mat&>(), std::declval<const Mat&>(),
                             std::declval<const std::vector<int>&>(), std::declval<const AdaptiveOptions&>(),
                             std::declval<Vec&>()))>> : std::true_type {};
}  // namespace detail

// The error of the steps Z -> Znew (one per column) with error vectors E:
// err(c) <= 1 accepts a step.  A model may define it itself,
//   error_norm(Z, Znew, E, ids, opt, err),
// e.g. to measure the error of a transformed state in its original
// coordinates (dual_flow.hpp); otherwise the error norm above.
template <class Model>
void step_error(Model& model, const Mat& Z, const Mat& Znew, const Mat& E, const std::vector<int>& ids,
                const AdaptiveOptions& opt, Vec& err) {
  if constexpr (detail::has_error_norm<Model>::value) {
    model.error_norm(Z, Znew, E, ids, opt, err);
  } else {
    err.resize(Z.cols());
    for (Index c = 0; c < Z.cols(); ++c) err(c) = error_norm(opt, E.col(c), Z.col(c), Znew.col(c));
  }
}

// The control of the runs of one block (by run id): records, accounting and
// stop rules over a RunBook.  The loop that drives a stepper calls start()
// once per run, then rejected() or accepted() after each attempt, and ends
// the run (book.finish) when one of them returns a status other than running.
template <class Book>
class AdaptiveControl {
 public:
  AdaptiveControl(Book& book, const AdaptiveOptions& opt, Index dim, Index n_runs)
      : book_(book),
        opt_(opt),
        next_rec_(static_cast<std::size_t>(n_runs), 0),
        attempts_(static_cast<std::size_t>(n_runs), 0),
        best_step_(static_cast<std::size_t>(n_runs), 0),
        best_loss_(static_cast<std::size_t>(n_runs), 0.0),
        zref_(dim, n_runs) {}

  // Run j starts at state z with loss l (finite: whether loss and field
  // are): records t = 0; diverged, converged or running.
  Status start(int j, const Eigen::Ref<const Vec>& z, double l, bool finite) {
    const auto& rt = opt_.record_times;
    std::size_t& k = next_rec_[static_cast<std::size_t>(j)];
    while (k < rt.size() && rt[k] <= 0.0) ++k;
    book_.record(j, z, 0.0, l);
    best_loss_[static_cast<std::size_t>(j)] = l;
    best_step_[static_cast<std::size_t>(j)] = 0;
    zref_.col(j) = z;
    if (!std::isfinite(l) || !finite) return Status::diverged;
    if (l <= opt_.tol) return Status::converged;
    return Status::running;
  }

  // A rejected attempt of run j: max_steps when the budget is used up.
  Status rejected(int j) {
    book_.rec(j).n_rejected += 1;
    return ++attempt(j) >= opt_.max_steps ? Status::max_steps : Status::running;
  }

  // An accepted step of run j from t_old to t, to state z with loss l.
  // Records the record times in (t_old, t]: dense(tr, zr) writes the state at
  // tr < t into zr and returns its loss (not counted as a gradient
  // evaluation); at tr = t the state z.  exact(l) replaces a loss that was
  // only an estimate by the loss at z before it is recorded or ends the run.
  // Then the stop rules (see the top of this file).
  template <class Dense, class Exact>
  Status accepted(int j, double t_old, double t, const Eigen::Ref<const Vec>& z, double& l, Dense&& dense,
                  Exact&& exact) {
    RunRecord& rec = book_.rec(j);
    ++attempt(j);
    rec.n_steps += 1;
    const auto& rt = opt_.record_times;
    std::size_t& k = next_rec_[static_cast<std::size_t>(j)];
    bool recorded = false;
    for (; k < rt.size() && rt[k] <= t; ++k) {
      const double tr = rt[k];
      if (tr <= t_old) continue;
      if (tr >= t) {
        exact(l);
        book_.record(j, z, t, l);
        recorded = true;
      } else {
        const double lr = dense(tr, zrec_);
        book_.record(j, zrec_, tr, lr);
      }
    }
    if (!recorded && opt_.record_every > 0 && rec.n_steps % opt_.record_every == 0) {
      exact(l);
      book_.record(j, z, t, l);
    }
    return stop_rules(j, t, z, l, exact);
  }

 private:
  std::int64_t& attempt(int j) { return attempts_[static_cast<std::size_t>(j)]; }

  template <class Exact>
  Status stop_rules(int j, double t, const Eigen::Ref<const Vec>& z, double& l, Exact&& exact) {
    const std::size_t u = static_cast<std::size_t>(j);
    const std::int64_t n = book_.rec(j).n_steps;
    if (l < opt_.stall_factor * best_loss_[u]) {
      best_loss_[u] = l;
      best_step_[u] = n;
      zref_.col(j) = z;
    }
    if (l <= opt_.tol) return Status::converged;
    if (t >= opt_.t_max) return Status::max_time;
    if (attempts_[u] >= opt_.max_steps) {
      exact(l);
      return Status::max_steps;
    }
    if (opt_.stall_steps > 0 && n - best_step_[u] >= opt_.stall_steps) {
      const double moved =
          ((z - zref_.col(j)).array().abs() / (zref_.col(j).array().abs() + opt_.atol).max(1e-300)).maxCoeff();
      if (moved <= opt_.stall_rel_change) {
        exact(l);
        return Status::stalled;
      }
      best_step_[u] = n;  // still moving: a plateau; look again one window later
      zref_.col(j) = z;
    }
    return Status::running;
  }

  Book& book_;
  const AdaptiveOptions& opt_;
  std::vector<std::size_t> next_rec_;       // per run id: the next record time
  std::vector<std::int64_t> attempts_;      // per run id: accepted + rejected
  std::vector<std::int64_t> best_step_;     // per run id: when the best loss last fell by stall_factor
  std::vector<double> best_loss_;
  Mat zref_;                                // per run id: the state at best_step_
  Vec zrec_;                                // a state from the dense output
};

}  // namespace implicitbias
