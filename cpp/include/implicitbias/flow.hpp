// The generic integrator shared by every model: a fixed-step descent loop,
// the loop of the one-step adaptive methods over a block (run_adaptive, with
// the control of driver.hpp) and its explicit Dormand-Prince 5(4) and
// Rosenbrock-W ROS34PW2 steppers for the gradient flow.
//
// Both advance a *block* of independent runs whose states are the columns of
// one matrix, so that a model can evaluate all vector fields with
// matrix-matrix products.  Each run keeps its own step size and stop state.
// The loops hold the algorithms only: the records, counters, clock, the set
// of active runs and the end of a run are a RunBook's (run_book.hpp), the
// adaptive records and stop rules an AdaptiveControl's (driver.hpp); a run
// that stops leaves the working set, and the others go on.  Nothing here
// depends on the number of threads.
//
// A model is any type with
//   Index state_dim() const;
//   // F(:, c) = dz/dt of run ids[c] at Z(:, c) (the negative gradient for a
//   // gradient flow) and loss(c) its loss.
//   void field(const Mat& Z, const std::vector<int>& ids, Mat& F, Vec& loss);
//   // loss only (cheaper; used where no gradient is needed)
//   void loss(const Mat& Z, const std::vector<int>& ids, Vec& loss);
//   // fixed-step only: map a state after an Euler step back to the model's
//   // manifold (e.g. renormalize a direction); projects() says whether it
//   // does anything
//   bool projects() const;
//   void project(Eigen::Ref<Vec> z, int id) const;
//   // diagnostic channels recorded in the history besides t, loss, counters
//   std::vector<std::string> diagnostic_names() const;
//   void diagnostics(const Eigen::Ref<const Vec>& z, int id, double* out);
// and optionally, for fixed-step methods whose field depends on the step
// (annealed penalties, fresh label noise per step),
//   void begin_step(std::int64_t step);
// which run_fixed_step calls before the field evaluations of each step.
#pragma once

#include "driver.hpp"
#include "run_book.hpp"
#include "types.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

namespace implicitbias {

struct FixedStepOptions {
  std::int64_t steps = 1000;
  double tol = -1.0;              // stop when loss <= tol (negative: never)
  std::int64_t record_every = 0;  // 0: record only the first and last state
};

namespace detail {

template <class M, class = void>
struct has_begin_step : std::false_type {};
template <class M>
struct has_begin_step<M, std::void_t<decltype(std::declval<M&>().begin_step(std::int64_t{}))>> : std::true_type {};

}  // namespace detail

// Whether a fixed-step loop records the point at the start of step `step`:
// the first, and every record_every-th.
inline bool fixed_step_due(const FixedStepOptions& opt, std::int64_t step) {
  return step == 0 || (opt.record_every > 0 && step % opt.record_every == 0);
}

// Fixed-step descent: z <- project(z + lr * F(z)) for `steps` steps, per run
// step size lr(j).  The recorded time is steps * lr, so that GD and the flow
// share a clock.  A run whose loss or field is non-finite, or whose next state
// would be, stops with status diverged and keeps its last finite state.
template <class Model>
void run_fixed_step(Model& model, const Mat& Z0, const Vec& lr, const FixedStepOptions& opt,
                    std::vector<RunRecord>& out) {
  const Index K = Z0.cols();
  const Index dim = Z0.rows();
  auto book = model_run_book(model, K);
  Mat Z = Z0;
  Mat Zprev = Z0;  // the state one step back, for a run whose loss turns non-finite
  Mat Znext(dim, K);
  Mat F(dim, K);
  Vec loss(K), lr_active(K);

  for (std::int64_t step = 0; !book.empty(); ++step) {
    book.poll();
    const Index n_active = book.n_active();
    const bool last = step >= opt.steps;
    if constexpr (detail::has_begin_step<Model>::value) model.begin_step(step);
    if (last) model.loss(Z, book.ids(), loss);
    else model.field(Z, book.ids(), F, loss);
    const bool due = fixed_step_due(opt, step);
    for (Index c = 0; c < n_active; ++c) {
      const int j = book.id(c);
      auto state = [&](bool back) -> Eigen::Ref<const Vec> { return back ? Zprev.col(c) : Z.col(c); };
      if (book.fixed_step_check(c, loss(c), step, lr(j), last, due, opt.tol, state)) lr_active(c) = lr(j);
    }
    book.compact({&Z, &Zprev}, {&Znext, &F});
    if (book.empty() || last) continue;
    // The step for the whole block at once; a run whose new state is not
    // finite stops as diverged and keeps its current state.
    const Index n = book.n_active();
    // (columns of F and loss were compacted in step with Z only if no run
    // stopped above; recompute the field in that case to stay aligned)
    if (F.cols() != Z.cols() || n != n_active) {
      model.field(Z, book.ids(), F, loss);
      for (Index c = 0; c < n; ++c) lr_active(c) = lr(book.id(c));
    }
    Znext.noalias() = Z + F * lr_active.head(n).asDiagonal();
    for (Index c = 0; c < n; ++c) {
      const int j = book.id(c);
      if (model.projects()) model.project(Znext.col(c), j);
      if (!Znext.col(c).allFinite()) {
        book.fixed_step_diverged(c, Z.col(c), step, lr(j), loss(c));
        Znext.col(c) = Z.col(c);
      } else {
        book.fixed_step_taken(c, loss(c));
      }
    }
    Zprev.swap(Z);
    Z.swap(Znext);
    book.compact({&Z, &Zprev}, {&Znext, &F});
  }
  out = book.take();
}

// The loop of the one-step embedded methods over a block (the control of
// the runs is driver.hpp's).  A stepper advances all active runs by their own
// step sizes hv(c) from (Z, FZ = F(Z)) and returns Znew, Fnew = F(Znew),
// loss_new = loss(Znew) and err(c), the embedded error estimate in the error
// norm of driver.hpp, accepted when <= 1; dense(c, theta, h, Z, Znew, FZ,
// Fnew, z) writes the state at t + theta h of the accepted step of column c
// (its continuous extension), from which the records between the steps are
// taken: steps land on t_max only, never on a record time.  The step size follows
//   h <- h * min(fac_max, max(fac_min, 0.9 err^(-1 / (error_order + 1))))
// (no growth right after a rejection); a run whose step size underflows
// (h <= 1e-14 max(1, t)) or that leaves the finite numbers ends as diverged
// with its last accepted state.
//   stepper(book, Z, FZ, ids, hv, Znew, Fnew, loss_new, err) -> grad evals per run
// (the stepper counts its Jacobians and factorizations in the book).
template <class Model, class Stepper, class Dense>
void run_adaptive(Model& model, const Mat& Z0, const AdaptiveOptions& opt, std::vector<RunRecord>& out,
                  Stepper&& stepper, Dense&& dense, double error_order) {
  constexpr double safety = 0.9, fac_min = 0.2, fac_max = 10.0;
  const double expo = -1.0 / (error_order + 1.0);
  const Index K = Z0.cols();
  const Index dim = Z0.rows();
  auto book = model_run_book(model, K);
  AdaptiveControl<decltype(book)> control(book, opt, dim, K);

  Mat Z = Z0, FZ(dim, K), Znew(dim, K), Fnew(dim, K), Zs(dim, K), F1(dim, K);
  Vec loss(K), loss_new(K), err(K), hv(K), lrec(1);
  Mat zrec(dim, 1);  // a state from the dense output, and its run
  std::vector<int> idrec(1);

  std::vector<double> t(K, 0.0), h(K, opt.h0), cur_loss(K, 0.0);
  std::vector<char> last_rejected(K, 0), clipped;

  auto finish = [&](Index c, Status s) {
    const int j = book.id(c);
    book.finish(c, s, Z.col(c), t[j], cur_loss[j]);
  };
  auto compact = [&]() { book.compact({&Z, &FZ}, {&Znew, &Fnew, &Zs, &F1}); };
  auto exact = [](double&) {};  // the loss of a step is exact

  // First evaluation and the initial record.
  model.field(Z, book.ids(), FZ, loss);
  for (Index c = 0; c < K; ++c) {
    const int j = static_cast<int>(c);
    book.count_evals(j);
    cur_loss[j] = loss(c);
    const Status s = control.start(j, Z.col(c), loss(c), FZ.col(c).allFinite());
    if (s != Status::running) finish(c, s);
  }
  compact();

  // Automatic first step (Hairer, Norsett & Wanner, Sec. II.4), all runs at once.
  if (opt.h0 <= 0.0 && !book.empty()) {
    const Index n = book.n_active();
    Vec d1(n);
    for (Index c = 0; c < n; ++c) {
      const double d0 = error_norm(opt, Z.col(c), Z.col(c), Z.col(c));
      d1(c) = error_norm(opt, FZ.col(c), Z.col(c), Z.col(c));
      hv(c) = std::min((d0 < 1e-5 || d1(c) < 1e-5) ? 1e-6 : 0.01 * d0 / d1(c), opt.t_max);
    }
    Zs.noalias() = Z + FZ * hv.head(n).asDiagonal();
    model.field(Zs, book.ids(), F1, loss_new);
    for (Index c = 0; c < n; ++c) {
      const int j = book.id(c);
      book.count_evals(j);
      double d2 = error_norm(opt, F1.col(c) - FZ.col(c), Z.col(c), Z.col(c)) / hv(c);
      if (!std::isfinite(d2)) d2 = 1e300;
      const double dm = std::max(d1(c), d2);
      const double h1 = dm <= 1e-15 ? std::max(1e-6, hv(c) * 1e-3) : std::pow(0.01 / dm, -expo);
      h[j] = std::min({100.0 * hv(c), h1, opt.t_max});
    }
  }

  while (!book.empty()) {
    book.poll();
    const Index n = book.n_active();
    // Step sizes, clipped to land on t_max.
    clipped.assign(static_cast<std::size_t>(n), 0);
    for (Index c = 0; c < n; ++c) {
      const int j = book.id(c);
      double hc = h[j];
      if (t[j] + hc >= opt.t_max * (1.0 - 1e-14)) {
        hc = opt.t_max - t[j];
        clipped[static_cast<std::size_t>(c)] = 1;
      }
      hv(c) = hc;
    }
    const int evals = stepper(book, Z, FZ, book.ids(), hv.head(n), Znew, Fnew, loss_new, err);

    for (Index c = 0; c < n; ++c) {
      const int j = book.id(c);
      book.count_evals(j, evals);
      const double hc = hv(c);
      const double e = err(c);
      const bool finite = std::isfinite(e) && std::isfinite(loss_new(c)) && Znew.col(c).allFinite() &&
                          Fnew.col(c).allFinite();
      Status s = Status::running;
      if (finite && e <= 1.0) {
        const bool hit = clipped[static_cast<std::size_t>(c)] != 0;
        const double t_old = t[j];
        t[j] = hit ? opt.t_max : t[j] + hc;  // a clipped step lands exactly on t_max
        cur_loss[j] = loss_new(c);
        double fac = e > 0 ? safety * std::pow(e, expo) : fac_max;
        fac = std::min(last_rejected[j] ? 1.0 : fac_max, std::max(fac_min, fac));
        h[j] = hit ? std::max(h[j], hc * fac) : hc * fac;
        last_rejected[j] = 0;
        auto dense_at = [&](double tr, Vec& zr) {
          dense(c, (tr - t_old) / hc, hc, Z, Znew, FZ, Fnew, zr);
          zrec.col(0) = zr;
          idrec[0] = j;
          model.loss(zrec, idrec, lrec);
          return lrec(0);
        };
        s = control.accepted(j, t_old, t[j], Znew.col(c), cur_loss[j], dense_at, exact);
        Z.col(c) = Znew.col(c);
        FZ.col(c) = Fnew.col(c);
      } else {
        const double fac = finite ? std::max(fac_min, safety * std::pow(e, expo)) : 0.1;
        h[j] = hc * std::min(1.0, fac);
        last_rejected[j] = 1;
        s = control.rejected(j);
        if (!(h[j] > 1e-14 * std::max(1.0, std::abs(t[j])))) s = Status::diverged;
      }
      if (s != Status::running) finish(c, s);
    }
    compact();
  }
  out = book.take();
}

namespace detail {
// The embedded error of the steps Z -> Znew with error vectors h(c) E(:, c)
// (step_error, driver.hpp).
template <class Model>
void scaled_error(Model& model, const Mat& Z, const Mat& Znew, const Mat& E, const std::vector<int>& ids,
                  const Eigen::Ref<const Vec>& hv, const AdaptiveOptions& opt, Vec& err) {
  step_error(model, Z, Znew, E, ids, opt, err);
  err.array() *= hv.array();
}
}  // namespace detail

// The cubic Hermite interpolant of a step from the states and fields at
// both ends (Hairer, Norsett & Wanner, Sec. II.6, eq. 6.7), the dense output
// of ROS34PW2: order 3 (local error O(h^4)), the order of the method,
//   z(t + theta h) = (1 - theta) z + theta z_new
//                    + theta (theta - 1) ((1 - 2 theta) (z_new - z) + (theta - 1) h F(z) + theta h F(z_new)).
inline void hermite_dense(Index c, double th, double h, const Mat& Z, const Mat& Znew, const Mat& FZ, const Mat& Fnew,
                          Vec& z) {
  const Vec dz = Znew.col(c) - Z.col(c);
  z = (1.0 - th) * Z.col(c) + th * Znew.col(c) +
      (th * (th - 1.0)) * ((1.0 - 2.0 * th) * dz + ((th - 1.0) * h) * FZ.col(c) + (th * h) * Fnew.col(c));
}

// Dormand-Prince 5(4) with FSAL (Dormand & Prince 1980; Hairer, Norsett &
// Wanner, Table II.5.2): explicit, 6 gradient evaluations per step.
template <class Model>
void run_dopri5(Model& model, const Mat& Z0, const AdaptiveOptions& opt, std::vector<RunRecord>& out) {
  constexpr double a21 = 1.0 / 5;
  constexpr double a31 = 3.0 / 40, a32 = 9.0 / 40;
  constexpr double a41 = 44.0 / 45, a42 = -56.0 / 15, a43 = 32.0 / 9;
  constexpr double a51 = 19372.0 / 6561, a52 = -25360.0 / 2187, a53 = 64448.0 / 6561,
                   a54 = -212.0 / 729;
  constexpr double a61 = 9017.0 / 3168, a62 = -355.0 / 33, a63 = 46732.0 / 5247, a64 = 49.0 / 176,
                   a65 = -5103.0 / 18656;
  constexpr double b1 = 35.0 / 384, b3 = 500.0 / 1113, b4 = 125.0 / 192, b5 = -2187.0 / 6784,
                   b6 = 11.0 / 84;
  constexpr double e1 = 71.0 / 57600, e3 = -71.0 / 16695, e4 = 71.0 / 1920,
                   e5 = -17253.0 / 339200, e6 = 22.0 / 525, e7 = -1.0 / 40;
  // the continuous extension (Shampine 1986; Hairer, Norsett & Wanner, Sec. II.6)
  constexpr double d1 = -12715105075.0 / 11282082432, d3 = 87487479700.0 / 32700410799,
                   d4 = -10690763975.0 / 1880347072, d5 = 701980252875.0 / 199316789632,
                   d6 = -1453857185.0 / 822651844, d7 = 69997945.0 / 29380423;
  Mat k2, k3, k4, k5, k6, Zs, S;
  Vec lscratch;
  auto stepper = [&](auto&, const Mat& Z, const Mat& k1, const std::vector<int>& ids,
                     const Eigen::Ref<const Vec>& hv, Mat& Znew, Mat& k7, Vec& loss_new, Vec& err) {
    const auto H = hv.asDiagonal();
    Zs.noalias() = Z + (a21 * k1) * H;
    model.field(Zs, ids, k2, lscratch);
    S.noalias() = a31 * k1 + a32 * k2;
    Zs.noalias() = Z + S * H;
    model.field(Zs, ids, k3, lscratch);
    S.noalias() = a41 * k1 + a42 * k2 + a43 * k3;
    Zs.noalias() = Z + S * H;
    model.field(Zs, ids, k4, lscratch);
    S.noalias() = a51 * k1 + a52 * k2 + a53 * k3 + a54 * k4;
    Zs.noalias() = Z + S * H;
    model.field(Zs, ids, k5, lscratch);
    S.noalias() = a61 * k1 + a62 * k2 + a63 * k3 + a64 * k4 + a65 * k5;
    Zs.noalias() = Z + S * H;
    model.field(Zs, ids, k6, lscratch);
    S.noalias() = b1 * k1 + b3 * k3 + b4 * k4 + b5 * k5 + b6 * k6;
    Znew.noalias() = Z + S * H;
    model.field(Znew, ids, k7, loss_new);
    S.noalias() = e1 * k1 + e3 * k3 + e4 * k4 + e5 * k5 + e6 * k6 + e7 * k7;
    detail::scaled_error(model, Z, Znew, S, ids, hv, opt, err);
    return 6;
  };
  // z(t + theta h) = z + theta (r2 + (1 - theta) (r3 + theta (r4 + (1 - theta) r5))), order 4
  auto dense = [&](Index c, double th, double h, const Mat& Z, const Mat& Znew, const Mat& k1, const Mat& k7, Vec& z) {
    const Vec r2 = Znew.col(c) - Z.col(c);
    const Vec r3 = h * k1.col(c) - r2;
    const Vec r4 = r2 - h * k7.col(c) - r3;
    const Vec r5 = h * (d1 * k1.col(c) + d3 * k3.col(c) + d4 * k4.col(c) + d5 * k5.col(c) + d6 * k6.col(c) +
                        d7 * k7.col(c));
    z = Z.col(c) + th * (r2 + (1.0 - th) * (r3 + th * (r4 + (1.0 - th) * r5)));
  };
  run_adaptive(model, Z0, opt, out, stepper, dense, 4.0);
}

// ROS34PW2 (Rang & Angermann 2005): a 4-stage, order-3, L-stable
// Rosenbrock-W method with an embedded order-2 solution.  Being a W-method it
// keeps its order for any matrix J in  (I - gamma h J) k_i = F(Y_i) + h J sum_j
// gamma_ij k_j,  so the model may supply a Gauss-Newton approximation of the
// Jacobian.  The model provides, at a prepared state,
//   prepare_jacobian(Z, FZ, ids, refresh) (rebuild the runs flagged in refresh),
//   factor(ids, gamma * hv), solve(R, ids, gamma * hv) (R <- (I - gamma h J)^{-1} R
//   per column) and jac_apply(S, ids, out) (out = J S), keeping the Jacobian
//   data per run id.  A run rebuilds its Jacobian every jac_every attempts and
//   after each rejected step.
// Four gradient evaluations per step; no step-size limit from stiffness.
template <class Model>
void run_rosw(Model& model, const Mat& Z0, const AdaptiveOptions& opt, std::vector<RunRecord>& out) {
  constexpr double g = 0.435866521508459;
  constexpr double a21 = 0.87173304301691801, a31 = 0.84457060015369423, a32 = -0.11299064236484185;
  constexpr double g21 = -0.87173304301691801, g31 = -0.90338057013044082, g32 = 0.054180672388095326,
                   g41 = 0.24212380706095346, g42 = -1.2232505839045147, g43 = 0.54526025533510214;
  constexpr double b1 = 0.24212380706095346, b2 = -1.2232505839045147, b3 = 1.5452602553351020, b4 = g;
  constexpr double e1 = b1 - 0.37810903145819369, e2 = b2 + 0.096042292212423178, e3 = b3 - 0.5,
                   e4 = b4 - 0.21793326075422950;
  Mat k1, k2, k3, k4, Ys, S, JS, Fs;
  Vec lscratch, gh;
  // Per run id: attempts since its Jacobian was rebuilt; -1 forces a rebuild.
  std::vector<std::int64_t> since_jac(static_cast<std::size_t>(Z0.cols()), -1);
  std::vector<char> refresh;
  auto stepper = [&](auto& book, const Mat& Z, const Mat& FZ, const std::vector<int>& ids,
                     const Eigen::Ref<const Vec>& hv, Mat& Znew, Mat& Fnew, Vec& loss_new, Vec& err) {
    const auto H = hv.asDiagonal();
    gh = g * hv;
    refresh.assign(ids.size(), 0);
    for (std::size_t c = 0; c < ids.size(); ++c) {
      auto& sj = since_jac[static_cast<std::size_t>(ids[c])];
      if (sj < 0 || sj >= opt.jac_every) {
        refresh[c] = 1;
        sj = 0;
        book.count_jacobian(ids[c]);
      }
      ++sj;
      book.count_factorization(ids[c]);  // one factorization per run and attempt
    }
    model.prepare_jacobian(Z, FZ, ids, refresh);
    model.factor(ids, gh);
    k1 = FZ;
    model.solve(k1, ids, gh);
    // stage 2
    Ys.noalias() = Z + (a21 * k1) * H;
    model.field(Ys, ids, Fs, lscratch);
    S.noalias() = g21 * k1;
    model.jac_apply(S, ids, JS);
    k2.noalias() = Fs + JS * H;
    model.solve(k2, ids, gh);
    // stage 3
    S.noalias() = a31 * k1 + a32 * k2;
    Ys.noalias() = Z + S * H;
    model.field(Ys, ids, Fs, lscratch);
    S.noalias() = g31 * k1 + g32 * k2;
    model.jac_apply(S, ids, JS);
    k3.noalias() = Fs + JS * H;
    model.solve(k3, ids, gh);
    // stage 4 (alpha_4 = (0, 0, 1))
    Ys.noalias() = Z + k3 * H;
    model.field(Ys, ids, Fs, lscratch);
    S.noalias() = g41 * k1 + g42 * k2 + g43 * k3;
    model.jac_apply(S, ids, JS);
    k4.noalias() = Fs + JS * H;
    model.solve(k4, ids, gh);
    S.noalias() = b1 * k1 + b2 * k2 + b3 * k3 + b4 * k4;
    Znew.noalias() = Z + S * H;
    model.field(Znew, ids, Fnew, loss_new);
    S.noalias() = e1 * k1 + e2 * k2 + e3 * k3 + e4 * k4;
    detail::scaled_error(model, Z, Znew, S, ids, hv, opt, err);
    // A rejected step may come from a stale Jacobian: rebuild it next time.
    for (std::size_t c = 0; c < ids.size(); ++c)
      if (!(err(static_cast<Index>(c)) <= 1.0)) since_jac[static_cast<std::size_t>(ids[c])] = -1;
    return 4;
  };
  run_adaptive(model, Z0, opt, out, stepper, hermite_dense, 2.0);
}

}  // namespace implicitbias
