// Diagonal linear networks, plain and weight-normalized (docs/science.md, section 1).
//
// Signed model x = u^L - v^L, nonnegative model x = u^L (elementwise powers),
// loss 0.5 ||A x - y||^2.  With r = A x - y and g = A^T r:
//   dL/du = L u^(L-1) * g,   dL/dv = -L v^(L-1) * g.
//
// State of one run (a column of the block's state matrix):
//   plain:            [u; v]                 (signed)  or [u]      (nonnegative)
//   weight_norm joint:[rho; w_u; w_v]        (signed)  or [rho; w] (nonnegative)
//   weight_norm sep.: [rho_u; rho_v; w_u; w_v]
// with z = rho * w in the polar form.  The flow is
//   d rho/dt = -<w, grad_z L>,
//   dw/dt    = -kappa * rho * (I - w w^T) grad_z L     (kappa = lr_ratio),
// per radius group.  The field is evaluated at the normalized direction
// w / ||w||, which makes it tangent to the sphere everywhere: ||w|| is then a
// first integral of the flow instead of an (unstable, when rho shrinks)
// equilibrium, and a fixed step followed by renormalization is exactly the
// weight-normalized descent step of docs/science.md, section 1.6.
#pragma once

#include "diagonal_hessian.hpp"
#include "types.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace implicitbias {

enum class WeightNorm : int { none = 0, joint = 1, separate = 2 };

// One sensing problem: A (M x N), y (M), optionally x_star (N).
struct SensingProblem {
  Mat A;
  Vec y;
  Vec x_star;  // empty when not given
  double tol = -1.0;  // a run stops as converged at loss <= tol (negative: never)
};

struct DiagonalSpec {
  int depth = 2;
  bool nonnegative = false;
  WeightNorm weight_norm = WeightNorm::none;
};

// Layout helpers for a model spec.
struct DiagonalLayout {
  Index N = 0;
  int n_parts = 2;   // vector parts: u, v (signed) or u (nonnegative)
  int n_radii = 0;   // 0 plain, 1 joint / nonnegative, 2 separate signed
  Index dim() const { return n_radii + n_parts * N; }
  static DiagonalLayout make(const DiagonalSpec& s, Index N) {
    DiagonalLayout l;
    l.N = N;
    l.n_parts = s.nonnegative ? 1 : 2;
    if (s.weight_norm == WeightNorm::none) l.n_radii = 0;
    else if (s.weight_norm == WeightNorm::separate && !s.nonnegative) l.n_radii = 2;
    else l.n_radii = 1;
    return l;
  }
};

// The diagnostic channels of a recorded state, appended to names: x[0..N),
// u[0..N) and, for the signed model, v[0..N) (the predictor and the factors
// at each record point; Python stacks them into (n_records, N) arrays).
inline void state_channel_names(Index N, bool signed_model, std::vector<std::string>& names) {
  for (const char* part : {"x", "u", "v"}) {
    if (part[0] == 'v' && !signed_model) break;
    for (Index i = 0; i < N; ++i) names.push_back(std::string(part) + "[" + std::to_string(i) + "]");
  }
}

// Initial state for init_scale alpha (length N, positive): u = v = alpha.
inline Vec diagonal_initial_state(const DiagonalSpec& s, const Vec& alpha) {
  const DiagonalLayout l = DiagonalLayout::make(s, alpha.size());
  const Index N = l.N;
  Vec z(l.dim());
  if (l.n_radii == 0) {
    for (int p = 0; p < l.n_parts; ++p) z.segment(p * N, N) = alpha;
    return z;
  }
  if (l.n_radii == 1) {
    const double rho = std::sqrt(static_cast<double>(l.n_parts)) * alpha.norm();
    z(0) = rho;
    for (int p = 0; p < l.n_parts; ++p) z.segment(1 + p * N, N) = alpha / rho;
    return z;
  }
  const double rho = alpha.norm();
  z(0) = rho;
  z(1) = rho;
  for (int p = 0; p < 2; ++p) z.segment(2 + p * N, N) = alpha / rho;
  return z;
}

// A block of runs of one spec on one problem; per-run lr_ratio (kappa).
class DiagonalBlockModel {
 public:
  // record_state: the diagnostics also hold x, u and v (state_channel_names).
  // sharpness: the sharpness channels (DiagonalSharpness, diagonal_hessian.hpp).
  DiagonalBlockModel(const SensingProblem& prob, const DiagonalSpec& spec, const Vec& kappa, bool record_state = false,
                     const SharpnessOptions& sharpness = {})
      : prob_(prob), spec_(spec), kappa_(kappa), lay_(DiagonalLayout::make(spec, prob.A.cols())),
        record_state_(record_state), sharp_(prob.A, prob.y, spec.depth, spec.nonnegative, sharpness) {}

  Index state_dim() const { return lay_.dim(); }
  const DiagonalLayout& layout() const { return lay_; }
  const Vec& lr_ratios() const { return kappa_; }

  // x = u^L - v^L (or u^L) for the columns of Z.
  void predictor(const Mat& Z, Mat& X) {
    const Index n = Z.cols();
    factors(Z);
    X.resize(lay_.N, n);
    X = (Pu_ * U_).matrix();
    if (lay_.n_parts == 2) X -= (Pv_ * V_).matrix();
  }

  void loss(const Mat& Z, const std::vector<int>& /*ids*/, Vec& loss) {
    predictor(Z, X_);
    residual(loss);
  }

  void field(const Mat& Z, const std::vector<int>& ids, Mat& F, Vec& loss) {
    const Index n = Z.cols();
    const Index N = lay_.N;
    const int L = spec_.depth;
    predictor(Z, X_);  // fills U_, V_, Pu_ (= u^(L-1)), Pv_
    residual(loss);
    G_.resize(N, n);
    G_.noalias() = prob_.A.transpose() * R_;
    F.resize(lay_.dim(), n);
    // grad_u = L u^(L-1) g, grad_v = -L v^(L-1) g; stored negated (descent).
    const Index off = lay_.n_radii;
    F.middleRows(off, N) = (-static_cast<double>(L) * Pu_ * G_.array()).matrix();
    if (lay_.n_parts == 2) F.middleRows(off + N, N) = (static_cast<double>(L) * Pv_ * G_.array()).matrix();
    if (lay_.n_radii == 0) return;
    // Polar coordinates: F holds -grad_z; convert per run and radius group.
    for (Index c = 0; c < n; ++c) {
      const double kappa = kappa_(ids[static_cast<std::size_t>(c)]);
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = off + (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        const double rho = Z(r, c);
        const double wn = Z.col(c).segment(start, len).norm();
        auto w = Z.col(c).segment(start, len);
        auto f = F.col(c).segment(start, len);       // = -grad_z
        const double s = -f.dot(w) / wn;              // <w_hat, grad_z>
        F(r, c) = -s;                                 // d rho/dt
        // dw/dt = -kappa rho (grad_z - w_hat s) = kappa rho (f + w_hat s)
        f = kappa * rho * (f + (s / wn) * w);
      }
    }
  }

  bool projects() const { return lay_.n_radii > 0; }

  void project(Eigen::Ref<Vec> z, int /*id*/) const {
    if (lay_.n_radii == 0) return;
    const Index N = lay_.N;
    for (int r = 0; r < lay_.n_radii; ++r) {
      const Index start = lay_.n_radii + (lay_.n_radii == 2 ? r * N : 0);
      const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
      auto w = z.segment(start, len);
      const double nw = w.norm();
      // A direction that cannot be normalized ends the run as diverged.
      if (nw > 0 && std::isfinite(nw)) w /= nw;
      else w.setConstant(std::numeric_limits<double>::quiet_NaN());
    }
  }

  // ---- Jacobian approximation for the Rosenbrock-W flow (flow.hpp) --------
  // The field is F = -G grad L in the state coordinates (G = I plain;
  // 1 per radius and kappa per direction entry for WN), and
  //   grad^2_z L = P^T A^T A P + C,  P = dx/dz = [diag(p_u), diag(p_v)],
  //   C = diag(L(L-1) u^(L-2) g, -L(L-1) v^(L-2) g),  g = A^T r,
  // with p_u = L u^(L-1), p_v = -L v^(L-1).  The W-matrix keeps the
  // Gauss-Newton part and the *decaying* diagonal modes:
  //   plain: J = -P^T A^T A P - C+,  C+ = max(C, 0)
  //   WN, per radius group r (z = rho w_hat, sigma = rho / ||w||,
  //   P_T = I - w_hat w_hat^T):
  //     J = -G V^T V - P_T E_r P_T / gh   on the directions, where
  //     E_r = gh (kappa sigma^2 C+ - c_r),  c_r = min(0, kappa rho s / ||w||),
  //     s = <w_hat, grad_z L> = -drho/dt (the sphere's curvature term: the
  //     fast decay of the directions the data do not hold, which is what
  //     shrinks alpha_eff).
  // Growing modes are left to the explicit part (any J is allowed in a
  // W-method).  With D = I - gh (J + G V^T V), Woodbury gives
  //   (I - gh J)^{-1} = D^{-1} - gh D^{-1} G V^T S^{-1} V D^{-1},
  //   S = I_M + gh V D^{-1} G V^T.
  // Plain: D^{-1} = diag(lambda), lambda = 1 / (1 + gh C+),
  //   S = I + gh A diag(p_u^2 lambda_u + p_v^2 lambda_v) A^T.
  // WN: with Lambda = (I + E)^{-1}, a = Lambda w_hat, beta = <w_hat, a>:
  //   D^{-1} x_w = Lambda x_w - a <a, x_w> / beta + w_hat <w_hat, x_w>,
  //   S = I + gh sum_r [q q^T + kappa sigma^2 (A diag(p^2 Lambda) A^T - qa qa^T / beta)],
  //   q = A (p * w_hat), qa = A (p * a).
  // One M x N x M product and one M x M Cholesky per run and step.

  // Rebuilds the Jacobian data of the runs ids[c] with refresh[c] true, from
  // their states Z(:, c) and fields FZ(:, c).  Kept per run id, so a run's
  // schedule never depends on the other runs of its block.
  void prepare_jacobian(const Mat& Z, const Mat& FZ, const std::vector<int>& ids,
                        const std::vector<char>& refresh) {
    const Index n = Z.cols();
    const Index N = lay_.N;
    const double L = spec_.depth;
    if (jac_.size() != static_cast<std::size_t>(kappa_.size())) jac_.resize(static_cast<std::size_t>(kappa_.size()));
    for (Index c = 0; c < n; ++c) {
      if (!refresh[static_cast<std::size_t>(c)]) continue;
      const int id = ids[static_cast<std::size_t>(c)];
      RunJacobian& J = jac_[static_cast<std::size_t>(id)];
      Mat z1 = Z.col(c);
      predictor(z1, X_);  // U_, V_, Pu_ = u^(L-1), Pv_ at this state
      Vec loss1;
      residual(loss1);
      const Vec g = prob_.A.transpose() * R_.col(0);
      J.pu = L * Pu_.col(0);
      // C+ on the z coordinates: L(L-1) u^(L-2) g (u part), -L(L-1) v^(L-2) g (v part)
      J.cplus.resize(lay_.n_parts * N);
      Arr um2(N, 1), vm2(N, 1);
      int_pow(U_, spec_.depth - 2, um2);
      J.cplus.head(N) = (L * (L - 1.0) * um2.col(0) * g.array()).max(0.0).matrix();
      if (lay_.n_parts == 2) {
        J.pv = -L * Pv_.col(0);
        int_pow(V_, spec_.depth - 2, vm2);
        J.cplus.tail(N) = (-L * (L - 1.0) * vm2.col(0) * g.array()).max(0.0).matrix();
      }
      if (lay_.n_radii == 0) continue;
      const double kappa = kappa_(id);
      const Index off = lay_.n_radii;
      J.what.resize(lay_.n_parts * N);
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        const double nw = Z.col(c).segment(off + start, len).norm();
        J.what.segment(start, len) = Z.col(c).segment(off + start, len) / nw;
        J.sigma[r] = Z(r, c) / nw;
        J.curv[r] = std::min(0.0, -kappa * Z(r, c) * FZ(r, c) / nw);  // s = -F_rho
        J.q[r] = prob_.A * pw(J, J.what, start, len);
      }
    }
  }

  // Factorizes S for run ids[c] at step factor gh(c) (= gamma h).
  void factor(const std::vector<int>& ids, const Vec& gh) {
    const Index M = prob_.A.rows();
    const Index N = lay_.N;
    Mat B(M, N), S(M, M);
    for (std::size_t c = 0; c < ids.size(); ++c) {
      const int id = ids[c];
      RunJacobian& J = jac_[static_cast<std::size_t>(id)];
      const double g = gh(static_cast<Index>(c));
      S.setZero();
      if (lay_.n_radii == 0) {
        J.lambda = (1.0 + g * J.cplus.array()).inverse().matrix();
        Arr d = J.pu.col(0).square() * J.lambda.head(N).array();
        if (lay_.n_parts == 2) d += J.pv.col(0).square() * J.lambda.tail(N).array();
        const Vec sd = d.sqrt().matrix();  // once, not per entry of A
        B = prob_.A * sd.asDiagonal();
        S.selfadjointView<Eigen::Lower>().rankUpdate(B, g);
      } else {
        const double kappa = kappa_(id);
        J.lambda.resize(lay_.n_parts * N);
        J.avec.resize(lay_.n_parts * N);
        for (int r = 0; r < lay_.n_radii; ++r) {
          const Index start = (lay_.n_radii == 2 ? r * N : 0);
          const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
          const double ks2 = kappa * J.sigma[r] * J.sigma[r];
          auto lam = J.lambda.segment(start, len);
          lam = (1.0 + g * (ks2 * J.cplus.segment(start, len).array() - J.curv[r])).inverse().matrix();
          J.avec.segment(start, len) = (lam.array() * J.what.segment(start, len).array()).matrix();
          J.beta[r] = J.what.segment(start, len).dot(J.avec.segment(start, len));
          Arr d = Arr::Zero(N, 1);
          for (int p = 0; p < lay_.n_parts; ++p) {
            if (lay_.n_radii == 2 && p != r) continue;
            const Arr& P = p == 0 ? J.pu : J.pv;
            const Index zoff = (lay_.n_radii == 2 ? 0 : p * N);
            d += P.square() * lam.segment(zoff, N).array();
          }
          const Vec sd = d.col(0).sqrt().matrix();  // once, not per entry of A
          B = prob_.A * sd.asDiagonal();
          S.selfadjointView<Eigen::Lower>().rankUpdate(B, g * ks2);
          const Vec qa = prob_.A * pw(J, J.avec, start, len);
          S.selfadjointView<Eigen::Lower>().rankUpdate(qa, -g * ks2 / J.beta[r]);
          S.selfadjointView<Eigen::Lower>().rankUpdate(J.q[r], g);
        }
      }
      S.diagonal().array() += 1.0;
      J.llt.compute(S);
    }
  }

  // X <- D^{-1} X, column by column.
  void apply_Dinv(Mat& X, const std::vector<int>& ids) const {
    const Index N = lay_.N;
    for (Index c = 0; c < X.cols(); ++c) {
      const RunJacobian& J = jac_[static_cast<std::size_t>(ids[static_cast<std::size_t>(c)])];
      if (lay_.n_radii == 0) {
        X.col(c).array() *= J.lambda.array();
        continue;
      }
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        auto wh = J.what.segment(start, len);
        auto av = J.avec.segment(start, len);
        auto x = X.col(c).segment(lay_.n_radii + start, len);
        const double along_a = av.dot(x) / J.beta[r];
        const double along_w = wh.dot(x);
        x = (J.lambda.segment(start, len).array() * x.array()).matrix() - along_a * av + along_w * wh;
      }
    }
  }

  // out (M x n) = V S, column by column.
  void apply_V(const Mat& S, const std::vector<int>& ids, Mat& out) {
    const Index n = S.cols();
    const Index N = lay_.N;
    T_.resize(N, n);
    const Index off = lay_.n_radii;
    for (Index c = 0; c < n; ++c) {
      const RunJacobian& J = jac_[static_cast<std::size_t>(ids[static_cast<std::size_t>(c)])];
      if (lay_.n_radii == 0) {
        T_.col(c) = (J.pu.col(0) * S.col(c).head(N).array()).matrix();
        if (lay_.n_parts == 2) T_.col(c).array() += J.pv.col(0) * S.col(c).segment(N, N).array();
        continue;
      }
      T_.col(c).setZero();
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        auto wh = J.what.segment(start, len);
        auto sw = S.col(c).segment(off + start, len);
        // tangent of z: w_hat s_rho + sigma (I - w_hat w_hat^T) s_w
        const Vec tz = wh * S(r, c) + J.sigma[r] * (sw - wh * wh.dot(sw));
        for (int p = 0; p < lay_.n_parts; ++p) {
          if (lay_.n_radii == 2 && p != r) continue;
          const Arr& P = p == 0 ? J.pu : J.pv;
          const Index zoff = (lay_.n_radii == 2 ? 0 : p * N);
          T_.col(c).array() += P.col(0) * tz.segment(zoff, N).array();
        }
      }
    }
    out.resize(prob_.A.rows(), n);
    out.noalias() = prob_.A * T_;
  }

  // out (dim x n) = G V^T m, column by column.
  void apply_GVt(const Mat& m, const std::vector<int>& ids, Mat& out) {
    const Index n = m.cols();
    const Index N = lay_.N;
    E_.resize(N, n);
    E_.noalias() = prob_.A.transpose() * m;
    out.resize(lay_.dim(), n);
    const Index off = lay_.n_radii;
    for (Index c = 0; c < n; ++c) {
      const int id = ids[static_cast<std::size_t>(c)];
      const RunJacobian& J = jac_[static_cast<std::size_t>(id)];
      out.col(c).segment(off, N) = (J.pu.col(0) * E_.col(c).array()).matrix();
      if (lay_.n_parts == 2) out.col(c).segment(off + N, N) = (J.pv.col(0) * E_.col(c).array()).matrix();
      if (lay_.n_radii == 0) continue;
      const double kappa = kappa_(id);
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        auto wh = J.what.segment(start, len);
        auto t = out.col(c).segment(off + start, len);  // grad_z L part
        const double proj = wh.dot(t);
        out(r, c) = proj;
        t = kappa * J.sigma[r] * (t - wh * proj);
      }
    }
  }

  // R <- (I - gh J)^{-1} R per column (Woodbury, see above).
  void solve(Mat& R, const std::vector<int>& ids, const Vec& gh) {
    apply_Dinv(R, ids);
    apply_V(R, ids, Mv_);
    for (Index c = 0; c < R.cols(); ++c)
      Mv_.col(c) = jac_[static_cast<std::size_t>(ids[static_cast<std::size_t>(c)])].llt.solve(Mv_.col(c));
    apply_GVt(Mv_, ids, Gv_);
    apply_Dinv(Gv_, ids);
    R -= Gv_ * gh.asDiagonal();
  }

  // out = J S (see above; consistent with the factored W-matrix).
  void jac_apply(const Mat& S, const std::vector<int>& ids, Mat& out) {
    apply_V(S, ids, Mv_);
    apply_GVt(Mv_, ids, out);
    out = -out;
    const Index N = lay_.N;
    for (Index c = 0; c < S.cols(); ++c) {
      const int id = ids[static_cast<std::size_t>(c)];
      const RunJacobian& J = jac_[static_cast<std::size_t>(id)];
      if (lay_.n_radii == 0) {
        out.col(c).array() -= J.cplus.array() * S.col(c).array();
        continue;
      }
      const double kappa = kappa_(id);
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        auto wh = J.what.segment(start, len);
        const Vec st = S.col(c).segment(lay_.n_radii + start, len) - wh * wh.dot(S.col(c).segment(lay_.n_radii + start, len));
        Vec e = ((kappa * J.sigma[r] * J.sigma[r]) * J.cplus.segment(start, len).array() * st.array() -
                 J.curv[r] * st.array()).matrix();
        e -= wh * wh.dot(e);
        out.col(c).segment(lay_.n_radii + start, len) -= e;
      }
    }
  }

  std::vector<std::string> diagnostic_names() const {
    std::vector<std::string> names;
    if (prob_.x_star.size() > 0) names.emplace_back("error");
    if (lay_.n_radii == 1) names.emplace_back("radius");
    if (lay_.n_radii == 2) {
      names.emplace_back("radius_u");
      names.emplace_back("radius_v");
    }
    if (record_state_) state_channel_names(lay_.N, lay_.n_parts == 2, names);
    sharp_.names(names);
    return names;
  }

  void diagnostics(const Eigen::Ref<const Vec>& z, int id, double* out) {
    int k = 0;
    const bool need_x = prob_.x_star.size() > 0 || record_state_ || sharp_.on();
    if (need_x) {
      Mat Z1 = z;
      predictor(Z1, X_);  // U_, V_: u and v at z
    }
    if (prob_.x_star.size() > 0) out[k++] = (X_.col(0) - prob_.x_star).norm();
    for (int r = 0; r < lay_.n_radii; ++r) out[k++] = z(r);
    const Index N = lay_.N;
    if (record_state_) {
      Eigen::Map<Vec>(out + k, N) = X_.col(0);
      Eigen::Map<Vec>(out + k + N, N) = U_.col(0).matrix();
      if (lay_.n_parts == 2) Eigen::Map<Vec>(out + k + 2 * N, N) = V_.col(0).matrix();
      k += static_cast<int>(lay_.n_parts + 1) * static_cast<int>(N);
    }
    if (sharp_.on()) sharp_(id, U_.col(0).matrix(), lay_.n_parts == 2 ? Vec(V_.col(0).matrix()) : Vec(), out + k);
  }

 private:
  // U_ = u, V_ = v and Pu_ = u^(L-1), Pv_ = v^(L-1) for every column.
  void factors(const Mat& Z) {
    const Index n = Z.cols();
    const Index N = lay_.N;
    const int L = spec_.depth;
    U_.resize(N, n);
    Pu_.resize(N, n);
    if (lay_.n_parts == 2) {
      V_.resize(N, n);
      Pv_.resize(N, n);
    }
    if (lay_.n_radii == 0) {
      U_ = Z.topRows(N).array();
      if (lay_.n_parts == 2) V_ = Z.middleRows(N, N).array();
    } else {
      const Index off = lay_.n_radii;
      for (Index c = 0; c < n; ++c) {
        if (lay_.n_radii == 2) {
          const double su = Z(0, c) / Z.col(c).segment(off, N).norm();
          const double sv = Z(1, c) / Z.col(c).segment(off + N, N).norm();
          U_.col(c) = su * Z.col(c).segment(off, N).array();
          V_.col(c) = sv * Z.col(c).segment(off + N, N).array();
        } else {
          const double s = Z(0, c) / Z.col(c).segment(off, lay_.n_parts * N).norm();
          U_.col(c) = s * Z.col(c).segment(off, N).array();
          if (lay_.n_parts == 2) V_.col(c) = s * Z.col(c).segment(off + N, N).array();
        }
      }
    }
    int_pow(U_, L - 1, Pu_);
    if (lay_.n_parts == 2) int_pow(V_, L - 1, Pv_);
  }

  // R_ = A X_ - y, loss = 0.5 ||R_||^2 per column.
  void residual(Vec& loss) {
    const Index n = X_.cols();
    R_.resize(prob_.A.rows(), n);
    R_.noalias() = prob_.A * X_;
    R_.colwise() -= prob_.y;
    loss = 0.5 * R_.colwise().squaredNorm().transpose();
  }

  const SensingProblem& prob_;
  DiagonalSpec spec_;
  Vec kappa_;
  DiagonalLayout lay_;
  bool record_state_ = false;
  DiagonalSharpness sharp_;
  Arr U_, V_, Pu_, Pv_;
  Mat X_, R_, G_;
  // Gauss-Newton data of each run at the state where it was last prepared
  struct RunJacobian {
    Arr pu, pv;                      // p_u = L u^(L-1), p_v = -L v^(L-1)  (N x 1)
    Vec cplus;                       // C+ on the z coordinates
    Vec what;                        // unit directions (WN)
    double sigma[2] = {0.0, 0.0};    // rho / ||w|| per radius group (WN)
    double curv[2] = {0.0, 0.0};     // c_r <= 0 (WN)
    Vec q[2];                        // A (p * w_hat) per group (WN)
    // at the last factorization:
    Vec lambda, avec;                // Lambda (diagonal) and a = Lambda w_hat
    double beta[2] = {1.0, 1.0};
    Eigen::LLT<Mat> llt;
  };

  // p * v on the z block [start, start + len) mapped to x (length N).
  Vec pw(const RunJacobian& J, const Vec& v, Index start, Index len) const {
    const Index N = lay_.N;
    if (len == N) {
      const Arr& P = (lay_.n_radii == 2 && start == N) ? J.pv : J.pu;
      return (P.col(0) * v.segment(start, N).array()).matrix();
    }
    Vec out = (J.pu.col(0) * v.segment(start, N).array()).matrix();
    if (lay_.n_parts == 2) out.array() += J.pv.col(0) * v.segment(start + N, N).array();
    return out;
  }
  std::vector<RunJacobian> jac_;
  Mat T_, E_, Mv_, Gv_;
};


// ---- The weight-normalized flow in log-polar coordinates (the BDF's) -------
// Under the flow of DiagonalBlockModel every direction entry w_k keeps its
// sign (dw_k/dt is w_k times a bounded rate, for every depth L >= 2) and
// starts positive, so ell_k = log w_k is a coordinate.  State of one run:
//   [rho_r (n_radii); ell (n_parts N)]   (the layout of the polar state)
// with w_hat = exp(ell) / ||exp(ell)|| per radius group r and the factor
// entries u_k = rho_r w_hat_k (u for k < N, v for k >= N).  With
// sigma_k = +1 (u) or -1 (v), x = sum_k sigma_k u_k^L (folded to i = k mod N),
// g = A^T (A x - y):
//   s_r          = sum_{k in r} sigma_k L u_k^(L-1) w_hat_k g_i   (= <w_hat, grad_z L>)
//   d rho_r/dt   = -s_r
//   d ell_k/dt   = kappa rho_r s_r + l_k g_i,  l_k = -kappa sigma_k L rho_r^2 u_k^(L-2),
// i.e. (dw_k/dt) / w_k of the polar flow.  A coordinate that decays to zero,
// w_k ~ exp(-c t), is a straight line in ell: the BDF's steps follow the
// accuracy of x instead of the decay rates of its vanishing entries, and a
// purely relative error on w (atol = 0) is an absolute error on ell
// (error_norm below: weight rtol + atol / w_hat_k on ell_k).
//
// The W-matrix of the BDF's Newton iteration is the Gauss-Newton Jacobian in
// these coordinates, J = D + Row A^T A Col, where Col maps a change of the
// state to the change of x,
//   Col (d rho, d ell) = fold(b * d ell) + sum_r (eta_r d rho_r - beta_r <omega_r, d ell_r>),
//   b_k = sigma_k L u_k^L,  eta_r = fold_r(sigma L u^(L-1) w_hat) = dx/drho_r,
//   beta_r = fold_r(b) = L x_r,  omega_k = w_hat_k^2  (the normalization),
// Row maps a change t of g to the change of the field,
//   Row t = (-<eta_r, t>; kappa rho_r <eta_r, t> + l_k t_i),
// and D = min(0, (L - 2) l_k g_i) is the decaying part of the curvature of
// u_k^(L-2) (zero at depth 2).  Nothing is clipped from the Gauss-Newton
// part: with Lambda = (I - c D)^(-1) (1 on the radii), Woodbury gives
//   (I - c J)^(-1) = Lambda + c Lambda Row A^T S^(-1) A Col Lambda,
//   S = I_M - c A Col Lambda Row A^T
//     = I + c A diag(-e) A^T - c sum_r [(A a_r)(A eta_r)^T - (A beta_r)(A gamma_r)^T],
//   e = fold(b lambda l) <= 0,  gamma_r = fold_r(omega lambda l),
//   a_r = kappa rho_r fold_r(b lambda) - eta_r - kappa rho_r <omega_r, lambda_r> beta_r,
// one M x N x M product and one M x M LU per factorization (S is not
// symmetric: the rank-one terms of the radius and the sphere).
class LogPolarModel {
 public:
  LogPolarModel(const SensingProblem& prob, const DiagonalSpec& spec, const Vec& kappa, DiagonalBlockModel& polar)
      : prob_(prob), spec_(spec), kappa_(kappa), lay_(DiagonalLayout::make(spec, prob.A.cols())), polar_(polar) {}

  Index state_dim() const { return lay_.dim(); }

  // The log-polar state of a polar one [rho; w] (w > 0) and back ([rho; w_hat]).
  Vec from_polar(const Eigen::Ref<const Vec>& z) const {
    Vec out = z;
    out.tail(lay_.n_parts * lay_.N) = z.tail(lay_.n_parts * lay_.N).array().log().matrix();
    return out;
  }
  Vec to_polar(const Eigen::Ref<const Vec>& z) const {
    Vec out = z;
    for (int r = 0; r < lay_.n_radii; ++r) {
      auto e = z.segment(lay_.n_radii + start(r), len());
      out.segment(lay_.n_radii + start(r), len()) = direction(e);
    }
    return out;
  }

  void loss(const Mat& Z, const std::vector<int>& /*ids*/, Vec& loss) {
    loss.resize(Z.cols());
    for (Index c = 0; c < Z.cols(); ++c) {
      decode(Z.col(c));
      loss(c) = 0.5 * r_.squaredNorm();
    }
  }

  void field(const Mat& Z, const std::vector<int>& ids, Mat& F, Vec& loss) {
    const Index n = Z.cols();
    F.resize(lay_.dim(), n);
    loss.resize(n);
    const double L = spec_.depth;
    for (Index c = 0; c < n; ++c) {
      decode(Z.col(c));
      loss(c) = 0.5 * r_.squaredNorm();
      g_.noalias() = prob_.A.transpose() * r_;
      const double kappa = kappa_(ids[static_cast<std::size_t>(c)]);
      for (int r = 0; r < lay_.n_radii; ++r) {
        const double rho = Z(r, c);
        double s = 0.0;
        for (Index k = start(r); k < start(r) + len(); ++k) s += sgn(k) * L * pw(u_(k), spec_.depth - 1) * wh_(k) * g_(k % lay_.N);
        F(r, c) = -s;
        for (Index k = start(r); k < start(r) + len(); ++k)
          F(lay_.n_radii + k, c) = kappa * rho * s - kappa * sgn(k) * L * rho * rho * pw(u_(k), spec_.depth - 2) * g_(k % lay_.N);
      }
    }
  }

  // Relative error on rho (atol + rtol |rho|), on w_hat through ell: the
  // weight of ell_k is rtol + atol / w_hat_k (w_hat_k the larger of the two
  // states'), so at atol = 0 an absolute error rtol on ell.
  void error_norm(const Mat& Z, const Mat& Znew, const Mat& E, const std::vector<int>& /*ids*/,
                  const AdaptiveOptions& opt, Vec& err) {
    err.resize(Z.cols());
    const Index K = lay_.n_parts * lay_.N;
    for (Index c = 0; c < Z.cols(); ++c) {
      double acc = 0.0;
      for (int r = 0; r < lay_.n_radii; ++r) {
        const double m = std::max(std::abs(Z(r, c)), std::abs(Znew(r, c)));
        acc += sq(E(r, c) / std::max(opt.atol + opt.rtol * m, 1e-300));
      }
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Vec w0 = direction(Z.col(c).segment(lay_.n_radii + start(r), len()));
        const Vec w1 = direction(Znew.col(c).segment(lay_.n_radii + start(r), len()));
        for (Index k = 0; k < len(); ++k) {
          const double w = std::max(w0(k), w1(k));
          const double wt = opt.rtol + (opt.atol > 0.0 ? opt.atol / w : 0.0);
          acc += sq(E(lay_.n_radii + start(r) + k, c) / std::max(wt, 1e-300));
        }
      }
      err(c) = std::sqrt(acc / static_cast<double>(lay_.n_radii + K));
    }
  }

  void prepare_jacobian(const Mat& Z, const Mat& /*FZ*/, const std::vector<int>& ids, const std::vector<char>& refresh) {
    const double L = spec_.depth;
    const Index N = lay_.N;
    if (jac_.size() != static_cast<std::size_t>(kappa_.size())) jac_.resize(static_cast<std::size_t>(kappa_.size()));
    for (Index c = 0; c < Z.cols(); ++c) {
      if (!refresh[static_cast<std::size_t>(c)]) continue;
      const int id = ids[static_cast<std::size_t>(c)];
      Jac& J = jac_[static_cast<std::size_t>(id)];
      const double kappa = kappa_(id);
      decode(Z.col(c));
      g_.noalias() = prob_.A.transpose() * r_;
      const Index K = lay_.n_parts * N;
      J.b.resize(K);
      J.l.resize(K);
      J.dcurv.resize(K);
      J.omega = wh_.array().square().matrix();
      for (int r = 0; r < lay_.n_radii; ++r) {
        const double rho = Z(r, c);
        J.kr[r] = kappa * rho;
        J.eta[r].setZero(N);
        J.beta[r].setZero(N);
        for (Index k = start(r); k < start(r) + len(); ++k) {
          const double sg = sgn(k);
          J.b(k) = sg * L * pw(u_(k), spec_.depth);
          J.l(k) = -kappa * sg * L * rho * rho * pw(u_(k), spec_.depth - 2);
          J.dcurv(k) = std::min(0.0, (L - 2.0) * J.l(k) * g_(k % N));
          J.eta[r](k % N) += sg * L * pw(u_(k), spec_.depth - 1) * wh_(k);
          J.beta[r](k % N) += J.b(k);
        }
        J.Aeta[r] = prob_.A * J.eta[r];
        J.Abeta[r] = prob_.A * J.beta[r];
      }
    }
  }

  // Factorizes S for run ids[c] at c = cs(c).
  void factor(const std::vector<int>& ids, const Vec& cs) {
    const Index M = prob_.A.rows();
    const Index N = lay_.N;
    const Index K = lay_.n_parts * N;
    for (std::size_t j = 0; j < ids.size(); ++j) {
      Jac& J = jac_[static_cast<std::size_t>(ids[j])];
      const double c = cs(static_cast<Index>(j));
      J.lambda = (1.0 - c * J.dcurv.array()).inverse().matrix();
      Vec d = Vec::Zero(N);  // -e
      for (Index k = 0; k < K; ++k) d(k % N) -= J.b(k) * J.lambda(k) * J.l(k);
      B_ = prob_.A * d.cwiseMax(0.0).cwiseSqrt().asDiagonal();
      S_.setZero(M, M);
      S_.selfadjointView<Eigen::Lower>().rankUpdate(B_, c);
      S_.triangularView<Eigen::StrictlyUpper>() = S_.transpose();
      S_.diagonal().array() += 1.0;
      for (int r = 0; r < lay_.n_radii; ++r) {
        Vec a = Vec::Zero(N), gam = Vec::Zero(N);
        double ol = 0.0;
        for (Index k = start(r); k < start(r) + len(); ++k) {
          a(k % N) += J.kr[r] * J.b(k) * J.lambda(k);
          gam(k % N) += J.omega(k) * J.lambda(k) * J.l(k);
          ol += J.omega(k) * J.lambda(k);
        }
        a -= J.eta[r] + (J.kr[r] * ol) * J.beta[r];
        S_.noalias() -= c * (prob_.A * a) * J.Aeta[r].transpose();
        S_.noalias() += c * J.Abeta[r] * (prob_.A * gam).transpose();
      }
      J.lu.compute(S_);
    }
  }

  // R <- (I - c J)^{-1} R per column (Woodbury, see above).
  void solve(Mat& R, const std::vector<int>& ids, const Vec& cs) {
    const Index N = lay_.N;
    const Index off = lay_.n_radii;
    for (Index col = 0; col < R.cols(); ++col) {
      const Jac& J = jac_[static_cast<std::size_t>(ids[static_cast<std::size_t>(col)])];
      const double c = cs(col);
      auto y = R.col(col);
      y.tail(lay_.n_parts * N).array() *= J.lambda.array();
      dx_.setZero(N);
      for (int r = 0; r < lay_.n_radii; ++r) {
        auto ye = y.segment(off + start(r), len());
        dx_ += y(r) * J.eta[r] - J.omega.segment(start(r), len()).dot(ye) * J.beta[r];
        for (Index k = 0; k < len(); ++k) dx_((start(r) + k) % N) += J.b(start(r) + k) * ye(k);
      }
      m_.noalias() = prob_.A * dx_;
      m_ = J.lu.solve(m_);
      t_.noalias() = prob_.A.transpose() * m_;
      for (int r = 0; r < lay_.n_radii; ++r) {
        const double et = J.eta[r].dot(t_);
        y(r) -= c * et;
        for (Index k = start(r); k < start(r) + len(); ++k)
          y(off + k) += c * J.lambda(k) * (J.kr[r] * et + J.l(k) * t_(k % N));
      }
    }
  }

  std::vector<std::string> diagnostic_names() const { return polar_.diagnostic_names(); }
  void diagnostics(const Eigen::Ref<const Vec>& z, int id, double* out) { polar_.diagnostics(to_polar(z), id, out); }

 private:
  Index start(int r) const { return lay_.n_radii == 2 ? r * lay_.N : 0; }
  Index len() const { return lay_.n_radii == 2 ? lay_.N : lay_.n_parts * lay_.N; }
  double sgn(Index k) const { return k < lay_.N ? 1.0 : -1.0; }
  static double sq(double v) { return v * v; }
  static double pw(double v, int p) {
    double out = 1.0;
    for (int k = 0; k < p; ++k) out *= v;
    return out;
  }
  // exp(e) / ||exp(e)||, shifted by max(e) so that nothing overflows.
  static Vec direction(const Eigen::Ref<const Vec>& e) {
    const Vec w = (e.array() - e.maxCoeff()).exp().matrix();
    return w / w.norm();
  }
  // wh_ = w_hat, u_ = rho_r w_hat (the factor entries), r_ = A x - y at z.
  void decode(const Eigen::Ref<const Vec>& z) {
    const Index N = lay_.N;
    wh_.resize(lay_.n_parts * N);
    for (int r = 0; r < lay_.n_radii; ++r) wh_.segment(start(r), len()) = direction(z.segment(lay_.n_radii + start(r), len()));
    u_.resize(lay_.n_parts * N);
    for (int r = 0; r < lay_.n_radii; ++r) u_.segment(start(r), len()) = z(r) * wh_.segment(start(r), len());
    x_.setZero(N);
    for (Index k = 0; k < lay_.n_parts * N; ++k) x_(k % N) += sgn(k) * pw(u_(k), spec_.depth);
    r_.noalias() = prob_.A * x_;
    r_ -= prob_.y;
  }

  const SensingProblem& prob_;
  DiagonalSpec spec_;
  Vec kappa_;
  DiagonalLayout lay_;
  DiagonalBlockModel& polar_;
  Vec wh_, u_, x_, r_, g_, dx_, m_, t_;
  Mat B_, S_;
  struct Jac {
    Vec b, l, dcurv, omega, lambda;
    double kr[2] = {0.0, 0.0};  // kappa rho_r
    Vec eta[2], beta[2], Aeta[2], Abeta[2];
    Eigen::PartialPivLU<Mat> lu;
  };
  std::vector<Jac> jac_;
};

}  // namespace implicitbias
