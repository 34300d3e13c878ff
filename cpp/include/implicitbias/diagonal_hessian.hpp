// The exact Hessian of a diagonal linear network's loss in its factors.
//
// Loss 0.5 ||A x - y||^2 (A: M x N) with, elementwise, depth L >= 2,
//   signed:      x = u^L - v^L,  z = (u, v)  (2N parameters)
//   nonnegative: x = u^L,        z = u       (N parameters).
// With r = A x - y, g = A^T r, the derivatives a = dx/du = L u^(L-1),
// b = dx/dv = -L v^(L-1), and the second derivatives
// a' = L (L-1) u^(L-2), b' = -L (L-1) v^(L-2):
//   H = J^T J + diag(a' g, b' g),   J = A [diag(a), diag(b)]   (M x 2N),
// (the nonnegative model keeps the u blocks only).  A product H X costs two
// products with A, O(M N) per column; dense() forms H (small problems).
// The Hessian is that of the loss in z whatever the training method
// (weight normalization reparametrizes the dynamics, not the loss).
#pragma once

#include "lanczos.hpp"
#include "types.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace implicitbias {

// Elementwise integer power by repeated multiplication (exact for small p).
inline void int_pow(const Eigen::Ref<const Arr>& base, int p, Eigen::Ref<Arr> out) {
  if (p == 0) {
    out.setOnes();
    return;
  }
  out = base;
  for (int k = 1; k < p; ++k) out *= base;
}


class DiagonalHessian {
 public:
  DiagonalHessian(Mat A, const Vec& y, const Vec& u, const Vec& v, int depth, bool nonnegative)
      : A_(std::move(A)), nonneg_(nonnegative) {
    const Index N = A_.cols();
    if (depth < 2) throw InvalidArgument("depth must be >= 2");
    if (y.size() != A_.rows()) throw InvalidArgument("y must have one entry per row of A");
    if (u.size() != N) throw InvalidArgument("u must have one entry per column of A");
    if (!nonnegative && v.size() != N) throw InvalidArgument("v must have one entry per column of A");
    const double L = depth;
    Arr pu(N, 1), pu2(N, 1);
    int_pow(u.array(), depth - 1, pu);
    int_pow(u.array(), depth - 2, pu2);
    Vec x = pu.matrix().cwiseProduct(u);
    a_ = L * pu.matrix();
    Vec du2 = L * (L - 1.0) * pu2.matrix();
    if (!nonnegative) {
      Arr pv(N, 1), pv2(N, 1);
      int_pow(v.array(), depth - 1, pv);
      int_pow(v.array(), depth - 2, pv2);
      x -= pv.matrix().cwiseProduct(v);
      b_ = -L * pv.matrix();
      dv2_ = -L * (L - 1.0) * pv2.matrix();
    }
    const Vec r = A_ * x - y;
    loss_ = 0.5 * r.squaredNorm();
    g_ = A_.transpose() * r;
    cu_ = du2.cwiseProduct(g_);
    if (!nonnegative) cv_ = dv2_.cwiseProduct(g_);
  }

  Index n() const { return A_.cols(); }
  Index dim() const { return nonneg_ ? n() : 2 * n(); }
  double loss() const { return loss_; }

  // Y = H X for the columns of X (dim x k).
  void apply(const Mat& X, Mat& Y) const {
    if (X.rows() != dim()) throw InvalidArgument("the vectors must have one entry per parameter");
    const Index N = n();
    Mat S = a_.asDiagonal() * X.topRows(N);
    if (!nonneg_) S.noalias() += b_.asDiagonal() * X.bottomRows(N);
    const Mat AS = A_ * S;                      // J X = A (a X_u + b X_v)
    const Mat G = A_.transpose() * AS;          // A^T J X
    Y.resize(X.rows(), X.cols());
    Y.topRows(N) = a_.asDiagonal() * G;
    Y.topRows(N) += cu_.asDiagonal() * X.topRows(N);
    if (!nonneg_) {
      Y.bottomRows(N) = b_.asDiagonal() * G;
      Y.bottomRows(N) += cv_.asDiagonal() * X.bottomRows(N);
    }
  }

  Mat dense() const {
    const Index N = n();
    Mat J(A_.rows(), dim());
    J.leftCols(N) = A_ * a_.asDiagonal();
    if (!nonneg_) J.rightCols(N) = A_ * b_.asDiagonal();
    Mat H = J.transpose() * J;
    H.diagonal().head(N) += cu_;
    if (!nonneg_) H.diagonal().tail(N) += cv_;
    return H;
  }

 private:
  Mat A_;
  bool nonneg_;
  Vec a_, b_, dv2_, g_, cu_, cv_;
  double loss_ = 0.0;
};

// The sharpness channels of the diagonal family (record_sharpness in
// lanczos.hpp): at each record point the top eigenvalue of the Hessian above
// at the run's factors (u, v), whatever the method (weight normalization: the
// Hessian in the factors, not in the polar coordinates), warm-started from
// the run's previous point; every run's first point starts from the same
// random vector (seed 0).
class DiagonalSharpness {
 public:
  DiagonalSharpness(const Mat& A, const Vec& y, int depth, bool nonnegative, const SharpnessOptions& o)
      : A_(A), y_(y), depth_(depth), nonneg_(nonnegative), opt_(o) {}

  bool on() const { return opt_.record; }
  void names(std::vector<std::string>& names) const { sharpness_channel_names(opt_, names); }

  // out = {sharpness, residual, matvecs} of run id at the factors u, v (v unused when nonnegative).
  void operator()(int id, const Vec& u, const Vec& v, double* out) {
    const auto k = static_cast<std::size_t>(id);
    if (warm_.size() <= k) warm_.resize(k + 1);
    const bool finite = u.allFinite() && (nonneg_ || v.allFinite());
    if (!finite) {
      record_sharpness([](const Eigen::Ref<const Mat>&, Mat&) {}, 1, opt_, 0, false, warm_[k], out);
      return;
    }
    const DiagonalHessian H(A_, y_, u, v, depth_, nonneg_);
    auto apply = [&H](const Eigen::Ref<const Mat>& X, Mat& Y) { H.apply(X, Y); };
    record_sharpness(apply, H.dim(), opt_, 0, std::isfinite(H.loss()), warm_[k], out);
  }

 private:
  const Mat& A_;
  const Vec& y_;
  int depth_;
  bool nonneg_;
  SharpnessOptions opt_;
  std::vector<Vec> warm_;  // per run id: the last top Ritz vector
};

}  // namespace implicitbias
