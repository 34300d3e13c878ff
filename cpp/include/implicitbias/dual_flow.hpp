// The plain diagonal-network flow in dual coordinates (docs/science.md,
// section 1.9).
//
// Every coordinate of the plain flow on x = u^L - v^L (or u^L) is driven by
// the same vector A^T r.  With s(t) = int_0^t r (in R^M) and z = A^T s, each
// run's state is a closed-form function of z, per coordinate i (alpha_i the
// initialization, c = L (L - 2), p = L / (L - 2)):
//   L = 2:  u = alpha exp(-2 z),  v = alpha exp(2 z),
//           x = -2 alpha^2 sinh(4 z)            (nonnegative: x = alpha^2 exp(-4 z))
//   L > 2:  u^(2-L) = a + c z,  v^(2-L) = a - c z,  a = alpha^(2-L),
//           x = (a + c z)^(-p) - (a - c z)^(-p)  (nonnegative: x = (a + c z)^(-p))
// and the flow is the M-dimensional ODE
//   ds/dt = A x(A^T s) - y,   Jacobian  J = A diag(dx/dz) A^T,
// with dx/dz < 0: J is symmetric negative definite (ds/dt = -grad Psi(s) with
// Psi convex), so W = I - gamma h J is SPD and factored by Cholesky.  Here x
// and dx/dz are formed from logarithms (log alpha, log(a +- c z)), so that
// alpha down to 1e-100 neither underflows nor overflows the state.
//
// The records keep the meaning of the 2N-dimensional flow: t, loss, gradient
// evaluations (one per field evaluation, as there), the error diagnostic;
// the final state is converted to [u; v] (or [u]) by primal_state.
#pragma once

#include "diagonal.hpp"
#include "driver.hpp"
#include "types.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace implicitbias {

// The Newton rate that a dropped coordinate set may add (factor_stale).
constexpr double newton_drop = 0.01;

// An upper estimate of ||A||_2^2: 1.05 times the Rayleigh quotient after 30
// power iterations on A^T A from a fixed start (deterministic), and never
// below the largest squared column norm (a lower bound of ||A||_2^2).
inline double spectral_norm2(const Mat& A) {
  Vec v = Vec::Ones(A.cols()) / std::sqrt(static_cast<double>(A.cols()));
  double est = 0.0;
  for (int it = 0; it < 30; ++it) {
    const Vec w = A.transpose() * (A * v);
    const double nw = w.norm();
    if (!(nw > 0.0)) break;
    est = v.dot(w);
    v = w / nw;
  }
  return std::max(1.05 * est, A.colwise().squaredNorm().maxCoeff());
}

class DualDiagonalModel {
 public:
  // alpha: the initialization of each run of the block (columns, length N).
  // record_state: the diagnostics also hold x, u and v (state_channel_names).
  // sharpness: the sharpness channels (DiagonalSharpness, diagonal_hessian.hpp), at the record
  // points' (u, v).
  DualDiagonalModel(const SensingProblem& prob, const DiagonalSpec& spec, const Mat& alpha, bool record_state = false,
                    const SharpnessOptions& sharpness = {})
      : prob_(prob), spec_(spec), log_alpha_(alpha.array().log().matrix()), alpha2_(alpha.array().square().matrix()),
        record_state_(record_state),
        sharp_(prob.A, prob.y, spec.depth, spec.nonnegative, sharpness) {
    for (Index c = 0; c < alpha.cols(); ++c)
      alpha2_ok_.push_back(alpha2_.col(c).minCoeff() > 1e-250 && alpha2_.col(c).maxCoeff() < 1e40);
    const double L = spec.depth;
    if (spec.depth > 2) {
      c_ = L * (L - 2.0);
      p_ = L / (L - 2.0);
      log_a_ = (2.0 - L) * log_alpha_;
    }
  }

  Index state_dim() const { return prob_.A.rows(); }

  // x and d = -dx/dz of run id at z (length N).
  void primal(const Eigen::Ref<const Vec>& z, int id, Eigen::Ref<Vec> x, Eigen::Ref<Vec> d) const {
    const Index N = z.size();
    const bool nonneg = spec_.nonnegative;
    if (spec_.depth == 2) {
      // Fast path (vectorized): alpha^2 a normal number and |4 z| < 600, so that
      // alpha^2 e^(+-4z) is formed without overflow or underflow of e^(4z).
      if (alpha2_ok_[static_cast<std::size_t>(id)] && z.cwiseAbs().maxCoeff() < 150.0) {
        const auto a2 = alpha2_.col(id).array();
        const Arr e = (4.0 * z.array()).exp();
        const Arr ei = e.inverse();
        if (nonneg) {
          x = (a2 * ei).matrix();
          d = 4.0 * x;
        } else {
          x = (a2 * (ei - e)).matrix();
          d = (4.0 * a2 * (ei + e)).matrix();
        }
        return;
      }
      for (Index i = 0; i < N; ++i) {
        const double la2 = 2.0 * log_alpha_(i, id), z4 = 4.0 * z(i);
        const double eu = std::exp(la2 - z4);
        if (nonneg) {
          x(i) = eu;
          d(i) = 4.0 * eu;
          continue;
        }
        const double ev = std::exp(la2 + z4);
        x(i) = std::abs(z4) < 1.0 ? -2.0 * std::exp(la2) * std::sinh(z4) : eu - ev;
        d(i) = 4.0 * (eu + ev);
      }
      return;
    }
    for (Index i = 0; i < N; ++i) {
      const double la = log_a_(i, id);
      const double t = c_ * z(i) * std::exp(-la);  // c z / a
      const double lwu = la + std::log1p(t);       // log(a + c z)
      if (nonneg) {
        x(i) = std::exp(-p_ * lwu);
        d(i) = p_ * c_ * std::exp(-(p_ + 1.0) * lwu);
        continue;
      }
      const double lwv = la + std::log1p(-t);  // log(a - c z)
      // (a + cz)^-p - (a - cz)^-p = (a - cz)^-p expm1(p log((a - cz)/(a + cz))), log(.) = -2 atanh(t)
      x(i) = std::exp(-p_ * lwv) * std::expm1(-2.0 * p_ * std::atanh(t));
      d(i) = p_ * c_ * (std::exp(-(p_ + 1.0) * lwu) + std::exp(-(p_ + 1.0) * lwv));
    }
  }

  // Log-sensitivities of run id at z: log|u_i| (and log|v_i|) and
  // k_i = |d log u_i / dz_i| (and for v): 2 at L = 2, L / (a +- c z) at L > 2.
  void sensitivities(const Eigen::Ref<const Vec>& z, int id, Eigen::Ref<Arr> lu, Eigen::Ref<Arr> ku) const {
    const Index N = z.size();
    const int parts = spec_.nonnegative ? 1 : 2;
    for (Index i = 0; i < N; ++i) {
      for (int q = 0; q < parts; ++q) {
        const double sgn = q == 0 ? 1.0 : -1.0;
        if (spec_.depth == 2) {
          lu(i, q) = log_alpha_(i, id) - sgn * 2.0 * z(i);
          ku(i, q) = 2.0;
        } else {
          const double la = log_a_(i, id);
          const double lw = la + std::log1p(sgn * c_ * z(i) * std::exp(-la));  // log(a +- c z)
          lu(i, q) = lw / (2.0 - spec_.depth);
          ku(i, q) = spec_.depth * std::exp(-lw);
        }
      }
    }
  }

  // The error of a step in the primal coordinates: the dual error E maps to
  // delta z = A^T E and to delta u_i = u_i k_i delta z_i (first order), which is
  // measured as the 2N-dimensional flow measures it,
  //   sqrt(mean (delta u_i / (atol + rtol max(|u_i|, |u_new_i|)))^2)  over u and v,
  // so that rtol and atol mean the same in both coordinates.
  void error_norm(const Mat& S, const Mat& Snew, const Mat& E, const std::vector<int>& ids,
                  const AdaptiveOptions& opt, Vec& err) {
    const Index N = prob_.A.cols();
    const Index n = S.cols();
    const int parts = spec_.nonnegative ? 1 : 2;
    Ez_.resize(N, n);
    Ez_.noalias() = prob_.A.transpose() * E;
    Z_.resize(N, 2 * n);
    Z_.leftCols(n).noalias() = prob_.A.transpose() * S;
    Z_.rightCols(n).noalias() = prob_.A.transpose() * Snew;
    Arr lu(N, parts), ku(N, parts), lu1(N, parts), ku1(N, parts);
    err.resize(n);
    for (Index c = 0; c < n; ++c) {
      const int id = ids[static_cast<std::size_t>(c)];
      sensitivities(Z_.col(c), id, lu, ku);
      sensitivities(Z_.col(n + c), id, lu1, ku1);
      double acc = 0.0;
      for (int q = 0; q < parts; ++q) {
        const Arr big = lu.col(q).max(lu1.col(q)).exp();  // max(|u|, |u_new|)
        const Arr du = big * ku.col(q).max(ku1.col(q)) * Ez_.col(c).array().abs();
        acc += (du / error_weights(opt, big)).square().sum();
      }
      err(c) = std::sqrt(acc / static_cast<double>(parts * N));
    }
  }

  // A first step for the block: the time in which log u moves by 1e-3 at the
  // start (where s = 0 gives the state-relative rule of run_adaptive no scale).
  double first_step(const Mat& S0) {
    std::vector<int> ids(static_cast<std::size_t>(S0.cols()));
    for (Index c = 0; c < S0.cols(); ++c) ids[static_cast<std::size_t>(c)] = static_cast<int>(c);
    return first_step(S0, ids);
  }
  // The same for the runs ids (columns of S0): the smallest of their steps.
  double first_step(const Mat& S0, const std::vector<int>& ids) {
    const Index N = prob_.A.cols();
    const Index n = S0.cols();
    residual(S0, ids);
    Ez_.resize(N, n);
    Ez_.noalias() = prob_.A.transpose() * R_;
    const int parts = spec_.nonnegative ? 1 : 2;
    Arr lu(N, parts), ku(N, parts);
    double h = std::numeric_limits<double>::infinity();
    for (Index c = 0; c < n; ++c) {
      sensitivities(Z_.col(c), ids[static_cast<std::size_t>(c)], lu, ku);
      const double rate = (ku.col(0) * Ez_.col(c).array().abs()).maxCoeff();
      if (rate > 0 && std::isfinite(rate)) h = std::min(h, 1e-3 / rate);
    }
    return std::isfinite(h) ? h : 1e-6;
  }

  // [u; v] (or [u]) of run id at dual state s.
  Vec primal_state(const Eigen::Ref<const Vec>& s, int id) const {
    const Vec z = prob_.A.transpose() * s;
    const Index N = z.size();
    const int parts = spec_.nonnegative ? 1 : 2;
    Vec out(parts * N);
    for (Index i = 0; i < N; ++i) {
      if (spec_.depth == 2) {
        out(i) = std::exp(log_alpha_(i, id) - 2.0 * z(i));
        if (parts == 2) out(N + i) = std::exp(log_alpha_(i, id) + 2.0 * z(i));
        continue;
      }
      const double la = log_a_(i, id);
      const double t = c_ * z(i) * std::exp(-la);
      const double q = 1.0 / (2.0 - spec_.depth);
      out(i) = std::exp(q * (la + std::log1p(t)));
      if (parts == 2) out(N + i) = std::exp(q * (la + std::log1p(-t)));
    }
    return out;
  }

  void loss(const Mat& S, const std::vector<int>& ids, Vec& loss) {
    image(S, Z_);
    loss_image(Z_, ids, loss);
  }

  // F = ds/dt = A x(A^T s) - y (the residual), loss = 0.5 ||F||^2.
  void field(const Mat& S, const std::vector<int>& ids, Mat& F, Vec& loss) {
    image(S, Z_);
    field_image(Z_, ids, F, loss);
  }

  bool projects() const { return false; }
  void project(Eigen::Ref<Vec> /*s*/, int /*id*/) const {}

  // ---- the exact Jacobian J = -A diag(d) A^T (rodas.hpp, flow.hpp) --------
  void prepare_jacobian(const Mat& S, const Mat& /*FS*/, const std::vector<int>& ids,
                        const std::vector<char>& refresh) {
    const Index N = prob_.A.cols();
    if (d_.cols() != log_alpha_.cols()) d_.resize(N, log_alpha_.cols());
    Z_.resize(N, S.cols());
    Z_.noalias() = prob_.A.transpose() * S;
    Vec x(N);
    for (Index c = 0; c < S.cols(); ++c) {
      if (!refresh[static_cast<std::size_t>(c)]) continue;
      const int id = ids[static_cast<std::size_t>(c)];
      primal(Z_.col(c), id, x, d_.col(id));
      if (id == g_id_) g_dirty_ = true;
    }
  }

  // W = I + gh A diag(d) A^T = L L^T per run (the M x N x M product).
  void factor(const std::vector<int>& ids, const Vec& gh) {
    const Index M = prob_.A.rows();
    stale_id_ = -1;
    if (llt_.size() < static_cast<std::size_t>(log_alpha_.cols())) llt_.resize(static_cast<std::size_t>(log_alpha_.cols()));
    Mat W(M, M);
    for (std::size_t c = 0; c < ids.size(); ++c) {
      const int id = ids[c];
      sqd_ = d_.col(id).cwiseSqrt();  // once, not per entry of A
      B_.noalias() = prob_.A * sqd_.asDiagonal();
      W.setZero();
      W.selfadjointView<Eigen::Lower>().rankUpdate(B_, gh(static_cast<Index>(c)));  // blocked SYRK
      W.diagonal().array() += 1.0;
      llt_[static_cast<std::size_t>(id)].compute(W);
    }
  }

  // As factor, for one run at a time (bdf.hpp), where W need not be exact
  // (it is the matrix of a modified Newton iteration, whose rate
  // ||I - W^-1 (I + c A D A^T)|| it sets).  With ||A||^2 the squared spectral
  // norm of A, the coordinates with c d_i ||A||^2 <= newton_drop add a
  // symmetric term of norm <= newton_drop to I + c A D A^T, so they are
  // dropped; with the k coordinates K that remain and B = A_K diag(d_K)^(1/2):
  //   k = 0:       W = I (no factorization; early in a flow d is ~ alpha^2);
  //   k <= M / 2:  W = I + c B B^T, solved by Woodbury's identity
  //                W^-1 r = r - B (I / c + B^T B)^-1 B^T r (a k x k Cholesky);
  //   otherwise:   W = I + c A diag(d) A^T in full, with the product
  //                G = A diag(d) A^T kept from the last call for the same
  //                run and the same prepared Jacobian, so that a new c costs
  //                W = I + c G and its Cholesky only.
  // So the M x M work (O(M^2 N) per Jacobian, O(M^3) per c) is done only
  // late in a flow, when many coordinates are stiff at the step size.
  void factor_stale(const std::vector<int>& ids, const Vec& gh) {
    const Index M = prob_.A.rows();
    if (llt_.size() < static_cast<std::size_t>(log_alpha_.cols())) llt_.resize(static_cast<std::size_t>(log_alpha_.cols()));
    if (!(norm_a2_ > 0.0)) norm_a2_ = spectral_norm2(prob_.A);
    for (std::size_t c = 0; c < ids.size(); ++c) {
      const int id = ids[c];
      const double ch = gh(static_cast<Index>(c));
      stale_id_ = id;
      const double cut = newton_drop / (ch * norm_a2_);
      keep_.clear();
      for (Index i = 0; i < d_.rows(); ++i)
        if (d_(i, id) > cut) keep_.push_back(i);
      const auto k = static_cast<Index>(keep_.size());
      if (k == 0) {
        stale_mode_ = StaleMode::identity;
        continue;
      }
      if (2 * k <= M) {
        stale_mode_ = StaleMode::woodbury;
        Bk_.resize(M, k);
        for (Index j = 0; j < k; ++j) Bk_.col(j) = std::sqrt(d_(keep_[static_cast<std::size_t>(j)], id)) * prob_.A.col(keep_[static_cast<std::size_t>(j)]);
        Mat C = Mat::Zero(k, k);
        C.selfadjointView<Eigen::Lower>().rankUpdate(Bk_.transpose(), 1.0);
        C.diagonal().array() += 1.0 / ch;
        llt_k_.compute(C);
        continue;
      }
      stale_mode_ = StaleMode::dense;
      if (id != g_id_ || g_dirty_) {
        sqd_ = d_.col(id).cwiseSqrt();
        B_.noalias() = prob_.A * sqd_.asDiagonal();
        G_.setZero(M, M);
        G_.selfadjointView<Eigen::Lower>().rankUpdate(B_, 1.0);
        g_id_ = id;
        g_dirty_ = false;
      }
      Mat W = ch * G_;
      W.diagonal().array() += 1.0;
      llt_[static_cast<std::size_t>(id)].compute(W);
    }
  }

  // The error norm of error_norm with S = Snew fixed (the Newton iteration of
  // bdf.hpp): newton_weights(S, ids, opt) keeps the weights of run ids[0],
  // newton_norm(E) then costs one product A^T E.
  void newton_weights(const Mat& S, const std::vector<int>& ids, const AdaptiveOptions& opt) {
    image(S.leftCols(1), Z_);
    newton_weights_image(Z_, ids, opt);
  }
  double newton_norm(const Mat& E) {
    image(E.leftCols(1), Ez_);
    return norm_image(Ez_);
  }

  // ---- the same, given images Z = A^T S (bdf.hpp keeps the image of its
  // history, which is linear in S, so that a Newton iteration costs the two
  // products A^T dS and A x rather than four) ---------------------------------
  template <class Derived>
  void image(const Eigen::MatrixBase<Derived>& S, Mat& Z) const {
    Z.resize(prob_.A.cols(), S.cols());
    Z.noalias() = prob_.A.transpose() * S;
  }
  void field_image(const Mat& Z, const std::vector<int>& ids, Mat& F, Vec& loss) {
    residual_image(Z, ids);
    loss = 0.5 * R_.colwise().squaredNorm().transpose();
    F = R_;
  }
  void loss_image(const Mat& Z, const std::vector<int>& ids, Vec& loss) {
    residual_image(Z, ids);
    loss = 0.5 * R_.colwise().squaredNorm().transpose();
  }
  void newton_weights_image(const Mat& Z, const std::vector<int>& ids, const AdaptiveOptions& opt) {
    const Index N = prob_.A.cols();
    const int parts = spec_.nonnegative ? 1 : 2;
    Arr lu(N, parts), ku(N, parts);
    sensitivities(Z.col(0), ids[0], lu, ku);
    nw_.resize(N, parts);
    for (int q = 0; q < parts; ++q) {
      const Arr big = lu.col(q).exp();
      nw_.col(q) = big * ku.col(q) / error_weights(opt, big);
    }
  }
  // sqrt(mean (w_i (A^T E)_i)^2) with the weights of newton_weights.
  double norm_image(const Mat& Ez) const {
    double acc = 0.0;
    for (Index q = 0; q < nw_.cols(); ++q) acc += (nw_.col(q) * Ez.col(0).array()).square().sum();
    return std::sqrt(acc / static_cast<double>(nw_.size()));
  }

  void solve(Mat& R, const std::vector<int>& ids, const Vec& /*gh*/) const {
    for (Index c = 0; c < R.cols(); ++c) {
      const int id = ids[static_cast<std::size_t>(c)];
      if (id == stale_id_ && stale_mode_ == StaleMode::identity) continue;
      if (id == stale_id_ && stale_mode_ == StaleMode::woodbury) {
        const Vec w = llt_k_.solve(Bk_.transpose() * R.col(c));
        R.col(c).noalias() -= Bk_ * w;
        continue;
      }
      R.col(c) = llt_[static_cast<std::size_t>(id)].solve(R.col(c));
    }
  }

  // out = J S (for the Rosenbrock-W stepper run_rosw).
  void jac_apply(const Mat& S, const std::vector<int>& ids, Mat& out) {
    Z_.resize(prob_.A.cols(), S.cols());
    Z_.noalias() = prob_.A.transpose() * S;
    for (Index c = 0; c < S.cols(); ++c) Z_.col(c).array() *= -d_.col(ids[static_cast<std::size_t>(c)]).array();
    out.resize(S.rows(), S.cols());
    out.noalias() = prob_.A * Z_;
  }

  std::vector<std::string> diagnostic_names() const {
    std::vector<std::string> names;
    if (prob_.x_star.size() > 0) names.emplace_back("error");
    if (record_state_) state_channel_names(prob_.A.cols(), !spec_.nonnegative, names);
    sharp_.names(names);
    return names;
  }

  // At a record point s from the dense output: the same x as the recorded
  // loss (residual_image of the same s), its error and, with record_state,
  // x, u and v.
  void diagnostics(const Eigen::Ref<const Vec>& s, int id, double* out) {
    if (prob_.x_star.size() == 0 && !record_state_ && !sharp_.on()) return;
    const Index N = prob_.A.cols();
    const Vec z = prob_.A.transpose() * s;
    Vec x(N), d(N);
    primal(z, id, x, d);
    int k = 0;
    if (prob_.x_star.size() > 0) out[k++] = (x - prob_.x_star).norm();
    if (!record_state_ && !sharp_.on()) return;
    const Vec uv = primal_state(s, id);
    if (record_state_) {
      Eigen::Map<Vec>(out + k, N) = x;
      Eigen::Map<Vec>(out + k + N, uv.size()) = uv;
      k += static_cast<int>(N + uv.size());
    }
    if (sharp_.on()) sharp_(id, uv.head(N), spec_.nonnegative ? Vec() : Vec(uv.tail(N)), out + k);
  }

 private:
  // R_ = A x(A^T s) - y per column.
  void residual(const Mat& S, const std::vector<int>& ids) {
    image(S, Z_);
    residual_image(Z_, ids);
  }
  // The same from Z = A^T S.
  void residual_image(const Mat& Z, const std::vector<int>& ids) {
    const Index N = prob_.A.cols();
    const Index n = Z.cols();
    X_.resize(N, n);
    D_.resize(N, n);
    for (Index c = 0; c < n; ++c) primal(Z.col(c), ids[static_cast<std::size_t>(c)], X_.col(c), D_.col(c));
    R_.resize(prob_.A.rows(), n);
    R_.noalias() = prob_.A * X_;
    R_.colwise() -= prob_.y;
  }

  const SensingProblem& prob_;
  DiagonalSpec spec_;
  Mat log_alpha_;        // N x K: log alpha per run
  Mat alpha2_;           // N x K: alpha^2 (the fast path of primal, when normal)
  std::vector<char> alpha2_ok_;
  bool record_state_ = false;
  DiagonalSharpness sharp_;
  Mat log_a_;            // N x K: log a = (2 - L) log alpha (L > 2)
  double c_ = 0.0, p_ = 0.0;
  Mat Z_, X_, D_, R_, B_, Ez_;
  Vec sqd_;
  Mat d_;                // N x K: -dx/dz at each run's last prepared state
  Mat G_;                // A diag(d) A^T of run g_id_ (factor_stale)
  int g_id_ = -1;
  bool g_dirty_ = true;
  Arr nw_;               // N x parts: the weights of newton_norm
  std::vector<Eigen::LLT<Mat>> llt_;
  // factor_stale's matrix for run stale_id_ (dense: llt_[stale_id_])
  enum class StaleMode { dense, identity, woodbury };
  StaleMode stale_mode_ = StaleMode::dense;
  int stale_id_ = -1;
  double norm_a2_ = 0.0;  // ||A||_2^2 (an upper estimate; spectral_norm2)
  std::vector<Index> keep_;
  Mat Bk_;               // A_K diag(d_K)^(1/2)
  Eigen::LLT<Mat> llt_k_;  // of I / c + Bk^T Bk
};

// Runs a block of plain diagonal flows in dual coordinates with Rodas5 (or
// the Rosenbrock-W stepper when rosw is set); the records' final states are
// the primal [u; v] (or [u]).
template <class Stepper>
void run_dual_block(const SensingProblem& prob, const DiagonalSpec& spec, const Mat& alpha,
                    const AdaptiveOptions& opt, std::vector<RunRecord>& out, Stepper&& run,
                    bool record_state = false, const SharpnessOptions& sharpness = {}) {
  DualDiagonalModel model(prob, spec, alpha, record_state, sharpness);
  const Mat S0 = Mat::Zero(prob.A.rows(), alpha.cols());
  AdaptiveOptions o = opt;
  if (o.h0 <= 0.0) o.h0 = std::min(model.first_step(S0), o.t_max);
  run(model, S0, o, out);
  for (std::size_t j = 0; j < out.size(); ++j) out[j].state = model.primal_state(out[j].state, static_cast<int>(j));
}

}  // namespace implicitbias
