// Diagonal linear networks, plain and weight-normalized (SCIENCE.md section 1).
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
// weight-normalized descent step of SCIENCE.md.
#pragma once

#include "types.hpp"

#include <cmath>
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

// Elementwise integer power by repeated multiplication (exact for small p).
inline void int_pow(const Eigen::Ref<const Arr>& base, int p, Eigen::Ref<Arr> out) {
  if (p == 0) {
    out.setOnes();
    return;
  }
  out = base;
  for (int k = 1; k < p; ++k) out *= base;
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
  DiagonalBlockModel(const SensingProblem& prob, const DiagonalSpec& spec, const Vec& kappa)
      : prob_(prob), spec_(spec), kappa_(kappa), lay_(DiagonalLayout::make(spec, prob.A.cols())) {}

  Index state_dim() const { return lay_.dim(); }
  const DiagonalLayout& layout() const { return lay_; }

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

  void project(Eigen::Ref<Vec> z, int /*id*/) const {
    if (lay_.n_radii == 0) return;
    const Index N = lay_.N;
    for (int r = 0; r < lay_.n_radii; ++r) {
      const Index start = lay_.n_radii + (lay_.n_radii == 2 ? r * N : 0);
      const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
      auto w = z.segment(start, len);
      const double nw = w.norm();
      if (nw > 0 && std::isfinite(nw)) w /= nw;
    }
  }

  // ---- Gauss-Newton structure for the Rosenbrock-W flow (flow.hpp) --------
  // The field is F = -G V^T r with V = dr/dstate (M x dim) and G diagonal:
  // G = I (plain), G = diag(1 per radius, kappa per direction entry) (WN).
  // The W-matrix is J = -G V^T V, and (I - gh J)^{-1} = (I + gh G V^T V)^{-1}
  // = I - gh G V^T (I_M + gh V G V^T)^{-1} V (Woodbury), so each run needs
  // one M x M Cholesky factorization of I + gh * Gram, Gram = V G V^T:
  //   plain: A diag(p_u^2 + p_v^2) A^T
  //   WN:    sum over radius groups of  kappa s^2 A diag(p_g^2) A^T
  //          + (1 - kappa s^2) q q^T,  s = rho / ||w||, q = A (p_g * w_hat)
  // with p_u = L u^(L-1), p_v = -L v^(L-1).
  void prepare_jacobian(const Mat& Z, const std::vector<int>& ids) {
    const Index n = Z.cols();
    const Index N = lay_.N;
    const Index M = prob_.A.rows();
    const double L = spec_.depth;
    factors(Z);
    jac_ids_ = ids;
    JPu_ = L * Pu_;  // p_u = L u^(L-1)
    if (lay_.n_parts == 2) JPv_ = -L * Pv_;
    jac_scale_.resize(lay_.n_radii > 0 ? lay_.n_radii : 1, n);
    What_.resize(lay_.n_parts * N, lay_.n_radii > 0 ? n : 0);
    gram_.resize(static_cast<std::size_t>(n));
    llt_.resize(static_cast<std::size_t>(n));
    Mat B(M, N);
    for (Index c = 0; c < n; ++c) {
      Mat& Gr = gram_[static_cast<std::size_t>(c)];
      Gr.setZero(M, M);
      if (lay_.n_radii == 0) {
        Arr d = JPu_.col(c).square();
        if (lay_.n_parts == 2) d += JPv_.col(c).square();
        B = prob_.A * d.sqrt().matrix().asDiagonal();
        Gr.selfadjointView<Eigen::Lower>().rankUpdate(B);
        continue;
      }
      const double kappa = kappa_(ids[static_cast<std::size_t>(c)]);
      const Index off = lay_.n_radii;
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        const double nw = Z.col(c).segment(off + start, len).norm();
        What_.col(c).segment(start, len) = Z.col(c).segment(off + start, len) / nw;
        const double sc = Z(r, c) / nw;
        jac_scale_(r, c) = sc;
        Vec ew = Vec::Zero(N);
        Arr d = Arr::Zero(N, 1);
        for (int p = 0; p < lay_.n_parts; ++p) {
          if (lay_.n_radii == 2 && p != r) continue;
          const Arr& P = p == 0 ? JPu_ : JPv_;
          ew.array() += P.col(c) * What_.col(c).segment(p * N, N).array();
          d.col(0) += P.col(c).square();
        }
        B = prob_.A * (std::sqrt(kappa) * sc * d.col(0).sqrt()).matrix().asDiagonal();
        Gr.selfadjointView<Eigen::Lower>().rankUpdate(B);
        const Vec q = prob_.A * ew;
        Gr.selfadjointView<Eigen::Lower>().rankUpdate(q, 1.0 - kappa * sc * sc);
      }
    }
  }

  void factor(const Vec& gh) {
    const Index M = prob_.A.rows();
    for (std::size_t c = 0; c < gram_.size(); ++c) {
      Mat S = gh(static_cast<Index>(c)) * gram_[c];
      S.diagonal().array() += 1.0;
      llt_[c].compute(S);
    }
    (void)M;
  }

  // out (M x n) = V S, column by column.
  void apply_V(const Mat& S, Mat& out) {
    const Index n = S.cols();
    const Index N = lay_.N;
    T_.resize(N, n);
    if (lay_.n_radii == 0) {
      T_ = (JPu_ * S.topRows(N).array()).matrix();
      if (lay_.n_parts == 2) T_ += (JPv_ * S.middleRows(N, N).array()).matrix();
    } else {
      const Index off = lay_.n_radii;
      for (Index c = 0; c < n; ++c) {
        T_.col(c).setZero();
        for (int r = 0; r < lay_.n_radii; ++r) {
          const Index start = (lay_.n_radii == 2 ? r * N : 0);
          const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
          auto wh = What_.col(c).segment(start, len);
          auto sw = S.col(c).segment(off + start, len);
          // tangent of z: w_hat s_rho + s (I - w_hat w_hat^T) s_w
          const Vec tz = wh * S(r, c) + jac_scale_(r, c) * (sw - wh * wh.dot(sw));
          for (int p = 0; p < lay_.n_parts; ++p) {
            if (lay_.n_radii == 2 && p != r) continue;
            const Arr& P = p == 0 ? JPu_ : JPv_;
            const Index zoff = (lay_.n_radii == 2 ? 0 : p * N);
            T_.col(c).array() += P.col(c) * tz.segment(zoff, N).array();
          }
        }
      }
    }
    out.resize(prob_.A.rows(), n);
    out.noalias() = prob_.A * T_;
  }

  // out (dim x n) = G V^T m, column by column.
  void apply_GVt(const Mat& m, Mat& out) {
    const Index n = m.cols();
    const Index N = lay_.N;
    E_.resize(N, n);
    E_.noalias() = prob_.A.transpose() * m;
    out.resize(lay_.dim(), n);
    const Index off = lay_.n_radii;
    out.middleRows(off, N) = (JPu_ * E_.array()).matrix();
    if (lay_.n_parts == 2) out.middleRows(off + N, N) = (JPv_ * E_.array()).matrix();
    if (lay_.n_radii == 0) return;
    for (Index c = 0; c < n; ++c) {
      const double kappa = kappa_(jac_ids_[static_cast<std::size_t>(c)]);
      for (int r = 0; r < lay_.n_radii; ++r) {
        const Index start = (lay_.n_radii == 2 ? r * N : 0);
        const Index len = (lay_.n_radii == 2 ? N : lay_.n_parts * N);
        auto wh = What_.col(c).segment(start, len);
        auto t = out.col(c).segment(off + start, len);  // grad_z L part
        const double proj = wh.dot(t);
        out(r, c) = proj;
        t = kappa * jac_scale_(r, c) * (t - wh * proj);
      }
    }
  }

  // R <- (I + gh G V^T V)^{-1} R per column (Woodbury with the factored Gram).
  void solve(Mat& R, const Vec& gh) {
    apply_V(R, Mv_);
    for (Index c = 0; c < R.cols(); ++c) Mv_.col(c) = llt_[static_cast<std::size_t>(c)].solve(Mv_.col(c));
    apply_GVt(Mv_, Gv_);
    R -= Gv_ * gh.asDiagonal();
  }

  // out = J S = -G V^T V S.
  void jac_apply(const Mat& S, Mat& out) {
    apply_V(S, Mv_);
    apply_GVt(Mv_, out);
    out = -out;
  }

  std::vector<std::string> diagnostic_names() const {
    std::vector<std::string> names;
    if (prob_.x_star.size() > 0) names.emplace_back("error");
    if (lay_.n_radii == 1) names.emplace_back("radius");
    if (lay_.n_radii == 2) {
      names.emplace_back("radius_u");
      names.emplace_back("radius_v");
    }
    return names;
  }

  void diagnostics(const Eigen::Ref<const Vec>& z, int /*id*/, double* out) {
    int k = 0;
    if (prob_.x_star.size() > 0) {
      Mat Z1 = z;
      predictor(Z1, X_);
      out[k++] = (X_.col(0) - prob_.x_star).norm();
    }
    for (int r = 0; r < lay_.n_radii; ++r) out[k++] = z(r);
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
  Arr U_, V_, Pu_, Pv_;
  Mat X_, R_, G_;
  // Gauss-Newton data at the prepared state
  std::vector<int> jac_ids_;
  Arr JPu_, JPv_;
  Mat jac_scale_, What_, T_, E_, Mv_, Gv_;
  std::vector<Mat> gram_;
  std::vector<Eigen::LLT<Mat>> llt_;
};

}  // namespace implicitbias
