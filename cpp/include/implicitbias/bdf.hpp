// A variable-order (1-5) BDF with a stale Jacobian and a stale factorization
// (docs/science.md, section 4.9), for models with the linear-algebra
// interface of the Rosenbrock steppers (rodas.hpp):
//   prepare_jacobian(Z, FZ, ids, refresh), factor(ids, c), solve(R, ids, c)
//   (R <- (I - c J)^{-1} R per column), and optionally error_norm (rodas.hpp).
//
// The method is the quasi-constant step size, fixed-leading-coefficient
// NDF/BDF of Shampine & Reichelt (1997) as in scipy's BDF: the history is kept
// as backward differences D_0..D_{q+2} of the solution, scaled to the current
// step h; a change of h rescales them (change_D).  Per step, with the
// predictor y_p = sum_{k<=q} D_k, psi = sum_{k=1..q} gamma_k D_k / alpha_q and
// c = h / alpha_q, the corrector solves  d = c F(y_p + d) - psi  by a modified
// Newton iteration with the matrix I - c' J' of an earlier step:
//   - J' is re-formed only when the Newton iteration fails to converge with
//     it (then once, at the last accepted state, and the step is retried);
//   - the factorization of I - c' J' is kept while the ratio c / c' stays in
//     [1 / 1.3, 1.3] (as CVODE does); inside that band each correction is
//     scaled by 2 / (1 + c / c') (CVODE's gamrat scaling);
// so that a flow forms and factors its M x M matrix a few dozen times rather
// than at every step (and a model's factor_stale may make most of those cheap:
// dual_flow.hpp).  A model with a linear image (norm_image, image,
// field_image, loss_image: Z = A^T S for the dual flow) has the image of the
// history kept and updated with it, so that the predictor, the Newton
// weights, the corrections' norms and the order estimates need no product of
// their own.  The local error is error_const_q * d, measured with the
// model's error_norm; the order is raised or lowered after q + 1 steps of
// equal size by comparing the error estimates of orders q - 1, q, q + 1.
//
// It is a stepper of the shared control (driver.hpp): records (at
// record_times from the BDF interpolating polynomial, which is its dense
// output), step accounting and the stop and stall rules are the control's;
// the BDF ends a run as diverged itself when the step size underflows or
// nothing stays finite, and the last step lands on t_max.  It counts its
// Jacobians (n_jac) and factorizations (n_lu) per run.  The runs of a block
// are integrated one after another, each with its own history, so
// block_size does not change its results.
#pragma once

#include "flow.hpp"
#include "rodas.hpp"
#include "types.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace implicitbias {

namespace detail {
template <class M, class = void>
struct has_factor_stale : std::false_type {};
template <class M>
struct has_factor_stale<M, std::void_t<decltype(std::declval<M&>().factor_stale(
                               std::declval<const std::vector<int>&>(), std::declval<const Vec&>()))>> : std::true_type {};
template <class M, class = void>
struct has_newton_norm : std::false_type {};
template <class M>
struct has_newton_norm<M, std::void_t<decltype(std::declval<M&>().newton_norm(std::declval<const Mat&>()))>>
    : std::true_type {};
template <class M, class = void>
struct has_first_step : std::false_type {};
template <class M>
struct has_first_step<M, std::void_t<decltype(std::declval<M&>().first_step(
                             std::declval<const Mat&>(), std::declval<const std::vector<int>&>()))>> : std::true_type {};
template <class M, class = void>
struct has_image : std::false_type {};
template <class M>
struct has_image<M, std::void_t<decltype(std::declval<M&>().norm_image(std::declval<const Mat&>()))>> : std::true_type {};
}  // namespace detail

namespace bdf {
constexpr int max_order = 5;
constexpr int newton_maxiter = 4;
// The Newton iteration stops when its remaining error is this fraction of
// the largest correction the error test accepts (CVODE's 0.1; see newton).
constexpr double newton_frac = 0.1;
constexpr double min_factor = 0.2, max_factor = 10.0;
constexpr double refactor_band = 1.3;  // keep the factorization while c / c' is in [1/1.3, 1.3]
// A model with a linear image (has_image: Z = A^T S for the dual flow) has
// the image of the history kept alongside it and re-formed every
// image_resync accepted steps, so that rounding in the updates does not
// accumulate.
constexpr int image_resync = 32;
constexpr std::array<double, 6> kappa = {0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0};

struct Coefficients {
  std::array<double, 6> gamma{}, alpha{}, error_const{};
  Coefficients() {
    for (int k = 1; k <= max_order; ++k) gamma[k] = gamma[k - 1] + 1.0 / k;
    for (int k = 0; k <= max_order; ++k) {
      alpha[k] = (1.0 - kappa[k]) * gamma[k];
      error_const[k] = kappa[k] * gamma[k] + 1.0 / (k + 1);
    }
  }
};

// R(order, factor): the (order+1) x (order+1) matrix that maps differences at
// step h to differences at step factor * h (scipy's compute_R).
inline Mat compute_r(int order, double factor) {
  Mat Mm = Mat::Zero(order + 1, order + 1);
  for (int i = 1; i <= order; ++i)
    for (int j = 1; j <= order; ++j) Mm(i, j) = (i - 1 - factor * j) / static_cast<double>(i);
  Mm.row(0).setOnes();
  Mat R = Mm;
  for (int i = 1; i <= order; ++i) R.row(i) = R.row(i - 1).cwiseProduct(Mm.row(i));
  return R;
}

// D holds the differences as columns 0..max_order+2 (dim x (max_order+3)).
inline void change_d(Mat& D, int order, double factor) {
  const Mat RU = compute_r(order, factor) * compute_r(order, 1.0);
  const Mat head = D.leftCols(order + 1) * RU;  // D[:q+1] <- RU^T D[:q+1] with D's rows as columns
  D.leftCols(order + 1) = head;
}
}  // namespace bdf

template <class Model>
class BdfIntegrator {
 public:
  BdfIntegrator(Model& model, const AdaptiveOptions& opt) : model_(model), opt_(opt) {}

  void run(const Mat& Z0, std::vector<RunRecord>& out) {
    auto book = model_run_book(model_, Z0.cols());
    Control control(book, opt_, Z0.rows(), Z0.cols());
    while (!book.empty()) run_one(book, control, Z0.col(book.id(0)));
    out = book.take();
  }

 private:
  using Book = decltype(model_run_book(std::declval<Model&>(), Index{}));
  using Control = AdaptiveControl<Book>;

  // Error norm of E at states Y, Y1 (one column), the model's if it has one.
  double norm(const Mat& Y, const Mat& Y1, const Mat& E) {
    step_error(model_, Y, Y1, E, ids_, opt_, errv_);
    return errv_(0);
  }

  // The norm of a step's error E with the weights of its predictor (one
  // product A^T E for a model with newton_norm; else the error norm at Y, Y1).
  double step_norm(const Mat& Y, const Mat& Y1, const Mat& E) {
    if constexpr (detail::has_newton_norm<Model>::value) return model_.newton_norm(E);
    else return norm(Y, Y1, E);
  }

  void field(Book& book, const Mat& Y, Mat& F, Vec& loss) {
    model_.field(Y, ids_, F, loss);
    book.count_evals(ids_[0]);
  }
  // The field at Y whose image is ZY (for a model with an image).
  void field_at(Book& book, const Mat& Y, const Mat& ZY, Mat& F, Vec& loss) {
    if constexpr (kImage) model_.field_image(ZY, ids_, F, loss);
    else model_.field(Y, ids_, F, loss);
    book.count_evals(ids_[0]);
  }
  // D_ (and its image) rescaled to step factor * h at the current order.
  void rescale(double factor) {
    bdf::change_d(D_, order_, factor);
    if constexpr (kImage) bdf::change_d(ZD_, order_, factor);
  }
  // The image of the history re-formed from D_ (one product with its columns).
  void resync() {
    if constexpr (kImage) {
      model_.image(D_, ZD_);
      since_sync_ = 0;
    }
  }

  // The Jacobian at Y (re-formed) and the factorization of I - c J.
  void refresh_jacobian(const Mat& Y, const Mat& FY) {
    refresh_.assign(1, 1);
    model_.prepare_jacobian(Y, FY, ids_, refresh_);
    jac_current_ = true;
    ++n_jac_;
    refactor(c_);
  }
  void refactor(double c) {
    cv_.resize(1);
    cv_(0) = c;
    if constexpr (detail::has_factor_stale<Model>::value) model_.factor_stale(ids_, cv_);
    else model_.factor(ids_, cv_);
    c_fact_ = c;
    crate_ = 1.0;
    ++n_factor_;
  }

  // Modified Newton for d = c F(y_p + d) - psi; returns whether it converged
  // (then Y_ holds y_p + d, D_new_ holds d) and the number of iterations.
  // The convergence test is CVODE's: with the rate crate_ carried across
  // steps (reset to 1 when the matrix is refactored), the iteration stops
  // when ||dy|| min(1, crate) <= newton_frac / |error_const_q|, i.e. when the
  // remaining Newton error is a fraction newton_frac of the largest
  // correction the error test accepts; it fails when a correction grows
  // (||dy_k|| > 2 ||dy_{k-1}||) or after newton_maxiter iterations.  So a step
  // usually costs one field evaluation, not the two or more of a test that
  // needs a fresh rate in every step (scipy's).
  bool newton(Book& book, const Mat& Yp, const Mat& psi, double c, int& iters) {
    const double tol = bdf::newton_frac / std::abs(coef_.error_const[order_]);
    const double scale = 2.0 / (1.0 + c / c_fact_);
    Y_ = Yp;
    d_.setZero(Yp.rows(), 1);
    double dn_old = -1.0;
    dn_first_ = -1.0;
    if constexpr (kImage) {
      ZY_ = ZYp_;
      Zd_.setZero(ZYp_.rows(), 1);
      model_.newton_weights_image(ZYp_, ids_, opt_);
    } else if constexpr (detail::has_newton_norm<Model>::value) {
      model_.newton_weights(Yp, ids_, opt_);
    }
    for (int k = 0; k < bdf::newton_maxiter; ++k) {
      iters = k + 1;
      field_at(book, Y_, ZY_, F_, lv_);
      loss_est_ = lv_(0);
      if (!F_.allFinite()) return false;
      dy_ = c * F_ - psi - d_;
      cv_(0) = c_fact_;
      model_.solve(dy_, ids_, cv_);
      if (scale != 1.0) dy_ *= scale;
      if constexpr (kImage) model_.image(dy_, Zdy_);
      // A correction at the rounding level converges: near a limit the field
      // is a difference of terms of the size of its value at the start
      // (f_scale_; for the dual flow A x - y, with |y|), so c F carries
      // absolute rounding c eps f_scale_, which the error norm may weigh
      // beyond the Newton tolerance (it measures a coordinate u_i of the
      // dual flow relative to itself: z_i absolutely).
      const double floor_c = 8.0 * std::numeric_limits<double>::epsilon() * c * f_scale_;
      if ((dy_.array().abs() <= 8.0 * std::numeric_limits<double>::epsilon() * Y_.array().abs() + floor_c).all()) {
        add_correction();
        return true;
      }
      double dn;
      if constexpr (kImage) dn = model_.norm_image(Zdy_);
      else if constexpr (detail::has_newton_norm<Model>::value) dn = model_.newton_norm(dy_);
      else dn = norm(Yp, Yp, dy_);
      if (!std::isfinite(dn)) return false;
      if (k == 0) dn_first_ = dn;
      if (k > 0) {
        if (dn > 2.0 * dn_old) return false;
        crate_ = std::max(0.3 * crate_, dn / dn_old);
      }
      add_correction();
      if (dn * std::min(1.0, crate_) <= tol) return true;
      dn_old = dn;
    }
    return false;
  }

  void add_correction() {
    Y_ += dy_;
    d_ += dy_;
    if constexpr (kImage) {
      ZY_ += Zdy_;
      Zd_ += Zdy_;
    }
  }

  // Solves the corrector at step h (order q), refactoring or re-forming the
  // Jacobian as needed.  Returns whether it converged.
  bool corrector(Book& book, double h, int& iters) {
    const int q = order_;
    Yp_ = D_.leftCols(q + 1).rowwise().sum();
    if constexpr (kImage) ZYp_ = ZD_.leftCols(q + 1).rowwise().sum();
    psi_ = Mat::Zero(Yp_.rows(), 1);
    for (int k = 1; k <= q; ++k) psi_ += (coef_.gamma[k] / coef_.alpha[q]) * D_.col(k);
    const double c = h / coef_.alpha[q];
    c_ = c;
    if (!have_jac_) {
      Yn_ = D_.col(0);
      refresh_jacobian(Yn_, F_);  // F_ = F(z0) at the first step
      have_jac_ = true;
    } else if (c_fact_ <= 0.0 || c / c_fact_ > bdf::refactor_band || c_fact_ / c > bdf::refactor_band) refactor(c);
    for (;;) {
      if (newton(book, Yp_, psi_, c, iters)) return true;
      if (c_fact_ != c) {
        refactor(c);
      } else if (!jac_current_) {
        // at the last accepted state, not at the predictor: an overshooting
        // predictor (x grows like e^(4z)) gives a Jacobian so large that the
        // corrections vanish and the iteration seems to converge
        Yn_ = D_.col(0);
        if constexpr (kImage) Zn_ = ZD_.col(0);
        field_at(book, Yn_, Zn_, F_, lv_);
        if (!F_.allFinite()) return false;
        refresh_jacobian(Yn_, F_);
      } else {
        return false;
      }
    }
  }

  void run_one(Book& book, Control& control, const Eigen::Ref<const Vec>& z0);
  bool step(Book& book, Control& control, double t, double& h, Status& status);
  void update_history();
  void next_order_and_step(double h);
  // The loss at Y_, evaluated once per accepted step when it is needed.
  void exact_loss(Book& book, double& loss) {
    if (loss_exact_) return;
    if constexpr (kImage) model_.loss_image(ZY_, ids_, lv_);
    else model_.loss(Y_, ids_, lv_);
    book.count_evals(ids_[0]);
    loss = lv_(0);
    loss_exact_ = true;
  }
  double interpolate(double t_rec, double t, double h, Vec& z);

  Model& model_;
  const AdaptiveOptions& opt_;
  bdf::Coefficients coef_;
  std::vector<int> ids_{0};
  std::vector<char> refresh_;
  static constexpr bool kImage = detail::has_image<Model>::value;
  Mat D_, Y_, Yn_, Yp_, psi_, d_, dy_, F_, E_, Yrec_, Fr_;
  // the images of D_, Y_, Yp_, d_, dy_, Yn_, Yrec_ and of the last accepted state (kImage)
  Mat ZD_, ZY_, ZYp_, Zd_, Zdy_, Zn_, Zrec_, Zold_;
  int since_sync_ = 0;
  Vec lv_, cv_, errv_;
  double c_ = 0.0, c_fact_ = -1.0, f_scale_ = 0.0, crate_ = 1.0, dn_first_ = -1.0, loss_est_ = 0.0;
  bool jac_current_ = false, have_jac_ = false, loss_exact_ = true;
  int order_ = 1, n_equal_ = 0;
  double safety_ = 0.9, err_ = 0.0, h_next_ = 0.0;
  std::int64_t n_jac_ = 0, n_factor_ = 0;  // of the current run: its n_jac and n_lu
};

// One BDF step from (t, D_) of size h, retried at smaller sizes until the
// error test accepts it (the step taken is returned in h, the proposal for
// the next in h_next_).  Returns false with status diverged (step size
// underflow) or max_steps (the control's budget, counted per attempt).
template <class Model>
bool BdfIntegrator<Model>::step(Book& book, Control& control, double t, double& h, Status& status) {
  const double min_step = 10.0 * std::abs(std::nextafter(t, std::numeric_limits<double>::infinity()) - t);
  if (h < min_step) {
    rescale(min_step / h);
    h = min_step;
    n_equal_ = 0;
  }
  jac_current_ = false;
  const int j = ids_[0];
  // a rejected attempt: the next is tried at factor * h
  auto reject = [&](double factor) {
    rescale(factor);
    h *= factor;
    n_equal_ = 0;
    status = control.rejected(j);
    return status == Status::running;
  };
  for (;;) {
    book.poll();
    if (!(h >= min_step) || !std::isfinite(h)) {
      status = Status::diverged;
      return false;
    }
    if (t + h > opt_.t_max) {
      rescale((opt_.t_max - t) / h);
      h = opt_.t_max - t;
      n_equal_ = 0;
    }
    int iters = 0;
    if (!corrector(book, h, iters)) {
      if (!reject(0.5)) return false;
      continue;
    }
    safety_ = 0.9 * (2 * bdf::newton_maxiter + 1) / static_cast<double>(2 * bdf::newton_maxiter + iters);
    E_ = coef_.error_const[order_] * d_;
    // one iteration: d = dy, whose norm (linear in E under newton_norm's
    // fixed weights) is known
    if ((kImage || detail::has_newton_norm<Model>::value) && iters == 1 && dn_first_ >= 0.0)
      err_ = std::abs(coef_.error_const[order_]) * dn_first_;
    else if constexpr (kImage)
      err_ = model_.norm_image((coef_.error_const[order_] * Zd_).eval());
    else
      err_ = step_norm(Yp_, Y_, E_);
    if (!(err_ <= 1.0)) {
      if (!reject(std::isfinite(err_) ? std::max(bdf::min_factor, safety_ * std::pow(err_, -1.0 / (order_ + 1))) : 0.1))
        return false;
      continue;
    }
    status = Status::running;
    return true;
  }
}

// The state at t_rec in (t - h, t] from D_ (scipy's BdfDenseOutput), into z;
// returns the loss there.
template <class Model>
double BdfIntegrator<Model>::interpolate(double t_rec, double t, double h, Vec& z) {
  Yrec_ = D_.col(0);
  if constexpr (kImage) Zrec_ = ZD_.col(0);
  double p = 1.0;
  for (int k = 0; k < order_; ++k) {
    p *= (t_rec - (t - h * k)) / (h * (1 + k));
    Yrec_ += p * D_.col(k + 1);
    if constexpr (kImage) Zrec_ += p * ZD_.col(k + 1);
  }
  if constexpr (kImage) model_.loss_image(Zrec_, ids_, lv_);
  else model_.loss(Yrec_, ids_, lv_);
  z = Yrec_.col(0);
  return lv_(0);
}

// The differences after an accepted step (state Y_, correction d_).
template <class Model>
void BdfIntegrator<Model>::update_history() {
  const int q = order_;
  D_.col(q + 2) = d_ - D_.col(q + 1);
  D_.col(q + 1) = d_;
  for (int i = q; i >= 0; --i) D_.col(i) += D_.col(i + 1);
  if constexpr (kImage) {
    ZD_.col(q + 2) = Zd_ - ZD_.col(q + 1);
    ZD_.col(q + 1) = Zd_;
    for (int i = q; i >= 0; --i) ZD_.col(i) += ZD_.col(i + 1);
    if (++since_sync_ >= bdf::image_resync) resync();
  }
}

// The order and the step size after an accepted step of size h: after q + 1
// steps of equal size, the order (q - 1, q or q + 1) whose error estimate
// allows the largest step.
template <class Model>
void BdfIntegrator<Model>::next_order_and_step(double h) {
  const int q = order_;
  n_equal_ += 1;
  if (n_equal_ < q + 1) {
    h_next_ = h;
    return;
  }
  const double inf = std::numeric_limits<double>::infinity();
  // the error estimates of orders q - 1 and q + 1 (with the weights of this step's Newton iteration)
  auto order_norm = [&](int col, double k) {
    if constexpr (kImage) return model_.norm_image((k * ZD_.col(col)).eval());
    else return step_norm(Y_, Y_, (k * D_.col(col)).eval());
  };
  const double em = q > 1 ? order_norm(q, coef_.error_const[q - 1]) : inf;
  const double ep = q < bdf::max_order ? order_norm(q + 2, coef_.error_const[q + 1]) : inf;
  const std::array<double, 3> errs = {em, err_, ep};
  int best = 0;
  double fmax = -1.0;
  for (int k = 0; k < 3; ++k) {
    const double f = errs[k] > 0 ? std::pow(errs[k], -1.0 / (q + k)) : inf;
    if (f > fmax) { fmax = f; best = k; }
  }
  order_ = q + best - 1;
  const double factor = std::min(bdf::max_factor, safety_ * fmax);
  rescale(factor);
  h_next_ = h * factor;
  n_equal_ = 0;
}

// Integrates the run in column 0 of the book from z0 until it stops, then
// finishes it (the book drops it).
template <class Model>
void BdfIntegrator<Model>::run_one(Book& book, Control& control, const Eigen::Ref<const Vec>& z0) {
  const int j = book.id(0);
  ids_.assign(1, j);
  const Index dim = z0.size();
  D_.setZero(dim, bdf::max_order + 3);
  D_.col(0) = z0;
  Y_ = z0;
  field(book, Y_, F_, lv_);
  double t = 0.0, loss = lv_(0);
  f_scale_ = F_.allFinite() ? F_.cwiseAbs().maxCoeff() : 0.0;
  order_ = 1;
  n_equal_ = 0;
  c_fact_ = -1.0;
  have_jac_ = false;
  loss_exact_ = true;
  crate_ = 1.0;
  n_jac_ = n_factor_ = 0;
  auto finish = [&](Status s) {
    book.rec(j).n_jac = n_jac_;
    book.rec(j).n_lu = n_factor_;
    book.finish(0, s, Y_.col(0), t, loss);
    book.compact({});
  };
  const Status s0 = control.start(j, Y_.col(0), loss, F_.allFinite());
  if (s0 != Status::running) return finish(s0);
  double h = opt_.h0 > 0.0 ? opt_.h0 : 1e-6;
  if constexpr (detail::has_first_step<Model>::value) {
    if (opt_.h0 <= 0.0) h = model_.first_step(Y_, ids_);  // this run's own first step
  }
  h = std::min(h, opt_.t_max);
  D_.col(1) = h * F_;
  resync();
  if constexpr (kImage) ZY_ = ZD_.col(0);
  auto exact = [&](double& l) { exact_loss(book, l); };
  for (;;) {
    const Vec y_old = D_.col(0);
    if constexpr (kImage) Zold_ = ZD_.col(0);
    Status status = Status::running;
    const double t_old = t;
    if (!step(book, control, t, h, status)) {
      Y_ = y_old;  // the last accepted state
      if constexpr (kImage) ZY_ = Zold_;
      exact_loss(book, loss);
      return finish(status);
    }
    t = t_old + h >= opt_.t_max * (1.0 - 1e-15) ? opt_.t_max : t_old + h;
    // The loss at the last Newton iterate stands in for the loss at the
    // accepted state in the decisions that continue the run (the stall
    // rule's progress); the loss itself (two products for the dual flow) is
    // evaluated only where it is reported or could stop the run: at records,
    // when the estimate comes within a factor 100 of the target or is not
    // finite, and at the end.
    loss = loss_est_;
    loss_exact_ = false;
    if (!(loss > 100.0 * opt_.tol) || t >= opt_.t_max) exact_loss(book, loss);
    if (!std::isfinite(loss) || !Y_.allFinite()) {
      Y_ = y_old;
      if constexpr (kImage) ZY_ = Zold_;
      t = t_old;
      return finish(Status::diverged);
    }
    update_history();
    auto dense = [&](double tr, Vec& z) { return interpolate(tr, t, h, z); };
    const Status s = control.accepted(j, t_old, t, Y_.col(0), loss, dense, exact);
    if (s != Status::running) return finish(s);
    next_order_and_step(h);
    h = h_next_;
  }
}

// The BDF flow of a block (runs one after another).
template <class Model>
void run_bdf(Model& model, const Mat& Z0, const AdaptiveOptions& opt, std::vector<RunRecord>& out) {
  BdfIntegrator<Model> integrator(model, opt);
  integrator.run(Z0, out);
}

}  // namespace implicitbias
