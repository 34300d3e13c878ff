// Stochastic trace estimators over any symmetric matrix given by its products
// with blocks of vectors:  matvec(X, Y) sets Y = H X  (X: dim x k).
//
//   hutchinson: mean of z^T H z over num_matvecs probes z (Rademacher or
//               Gaussian); standard error = sample std / sqrt(num_matvecs).
//   hutchpp:    Meyer, Musco, Musco & Woodruff (2021).  k = num_matvecs / 3:
//               sketch Q = orth(H S) (k products), exact tr(Q^T H Q) (k
//               products), Hutchinson on (I - QQ^T) H (I - QQ^T) with the
//               remaining num_matvecs - 2k probes; standard error from that
//               part.  Exact when rank(H) <= k.
//   xtrace:     Epperly, Tropp & Webber (2024), the exchangeable estimator.
//               k = num_matvecs / 2 probes Omega, Y = H Omega = QR, Z = H Q.
//               For each i, Q_(i) spans the columns of Y except the i-th;
//               tr_i = tr(Q_(i)^T H Q_(i)) + w_i^T H w_i with
//               w_i = (I - Q_(i) Q_(i)^T) omega_i, evaluated without further
//               products from Q_(i) Q_(i)^T = Q Q^T - q_i q_i^T, q_i = Q s_i,
//               s_i = R^{-T} e_i / ||R^{-T} e_i||.  Estimate: mean of tr_i;
//               error estimate: std(tr_i) / sqrt(k).  Each tr_i is unbiased;
//               exact when rank(H) <= k - 1.
// Probes come from Rng(seed, stream), so results depend only on the seed.
#pragma once

#include "rng.hpp"
#include "types.hpp"

#include <Eigen/QR>

#include <cmath>
#include <cstdint>
#include <limits>

namespace implicitbias {

enum class Probe : int { rademacher = 0, gaussian = 1 };

struct TraceEstimate {
  double estimate = 0.0;
  double std_error = std::numeric_limits<double>::quiet_NaN();
  std::int64_t matvecs = 0;
};

inline void fill_probes(Mat& X, Rng& rng, Probe p) {
  for (Index c = 0; c < X.cols(); ++c)
    for (Index r = 0; r < X.rows(); ++r) X(r, c) = p == Probe::rademacher ? rng.rademacher() : rng.normal();
}

inline double sample_std_error(const Vec& v) {
  const Index k = v.size();
  if (k < 2) return std::numeric_limits<double>::quiet_NaN();
  const double mean = v.mean();
  const double var = (v.array() - mean).square().sum() / static_cast<double>(k - 1);
  return std::sqrt(var / static_cast<double>(k));
}

template <class MatVec>
TraceEstimate hutchinson(MatVec&& matvec, Index dim, std::int64_t num_matvecs, std::uint64_t seed,
                         Probe probe = Probe::rademacher) {
  if (dim < 1) throw InvalidArgument("dim must be >= 1");
  if (num_matvecs < 1) throw InvalidArgument("num_matvecs must be >= 1");
  Rng rng(seed, 0x48757463);
  Mat X(dim, num_matvecs), Y;
  fill_probes(X, rng, probe);
  matvec(X, Y);
  const Vec q = (X.array() * Y.array()).colwise().sum().transpose();
  TraceEstimate t;
  t.estimate = q.mean();
  t.std_error = sample_std_error(q);
  t.matvecs = num_matvecs;
  return t;
}

template <class MatVec>
TraceEstimate hutchpp(MatVec&& matvec, Index dim, std::int64_t num_matvecs, std::uint64_t seed,
                      Probe probe = Probe::rademacher) {
  if (dim < 1) throw InvalidArgument("dim must be >= 1");
  if (num_matvecs < 3) throw InvalidArgument("num_matvecs must be >= 3 for hutchpp");
  Index k = static_cast<Index>(num_matvecs / 3);
  if (k > dim) k = dim;
  const Index m = static_cast<Index>(num_matvecs) - 2 * k;
  Rng rng(seed, 0x48707070);
  Mat S(dim, k), Y, Z;
  fill_probes(S, rng, probe);
  matvec(S, Y);
  Eigen::HouseholderQR<Mat> qr(Y);
  const Mat Q = qr.householderQ() * Mat::Identity(dim, k);
  matvec(Q, Z);
  const double top = (Q.array() * Z.array()).sum();
  TraceEstimate t;
  t.matvecs = 2 * k + m;
  if (m <= 0) {
    t.estimate = top;
    return t;
  }
  Mat G(dim, m);
  fill_probes(G, rng, probe);
  G -= Q * (Q.transpose() * G);
  Mat HG;
  matvec(G, HG);
  HG -= Q * (Q.transpose() * HG);
  const Vec q = (G.array() * HG.array()).colwise().sum().transpose();
  t.estimate = top + q.mean();
  t.std_error = sample_std_error(q);
  return t;
}

template <class MatVec>
TraceEstimate xtrace(MatVec&& matvec, Index dim, std::int64_t num_matvecs, std::uint64_t seed,
                     Probe probe = Probe::rademacher) {
  if (dim < 1) throw InvalidArgument("dim must be >= 1");
  if (num_matvecs < 4) throw InvalidArgument("num_matvecs must be >= 4 for xtrace");
  Index k = static_cast<Index>(num_matvecs / 2);
  if (k > dim) k = dim;
  Rng rng(seed, 0x58747263);
  Mat Om(dim, k), Y, Z;
  fill_probes(Om, rng, probe);
  matvec(Om, Y);
  Eigen::HouseholderQR<Mat> qr(Y);
  const Mat Q = qr.householderQ() * Mat::Identity(dim, k);
  const Mat R = qr.matrixQR().topRows(k).template triangularView<Eigen::Upper>();
  matvec(Q, Z);
  const Mat C = Q.transpose() * Z;  // Q^T H Q
  const double trC = C.trace();
  const Mat QtOm = Q.transpose() * Om;
  // s_i = normalized columns of R^{-T}; a (near-)singular R means Y is
  // rank deficient; then fall back to an explicit basis per i.
  const double rmax = R.diagonal().cwiseAbs().maxCoeff();
  const bool well_posed = rmax > 0 && R.diagonal().cwiseAbs().minCoeff() > 1e-10 * rmax;
  Vec tr(k);
  if (well_posed) {
    Mat Sm = R.transpose().template triangularView<Eigen::Lower>().solve(Mat::Identity(k, k));
    for (Index i = 0; i < k; ++i) Sm.col(i) /= Sm.col(i).norm();
    const Mat ZS = Z * Sm;  // H q_i
    const Mat QS = Q * Sm;  // q_i
    for (Index i = 0; i < k; ++i) {
      const Vec s = Sm.col(i);
      const Vec a = QtOm.col(i);
      const double sa = s.dot(a);
      const Vec w = Om.col(i) - Q * a + QS.col(i) * sa;
      const Vec Hw = Y.col(i) - Z * a + ZS.col(i) * sa;
      tr(i) = trC - s.dot(C * s) + w.dot(Hw);
    }
  } else {
    for (Index i = 0; i < k; ++i) {
      Mat Ym(dim, k - 1);
      for (Index j = 0, c = 0; j < k; ++j)
        if (j != i) Ym.col(c++) = Y.col(j);
      Eigen::ColPivHouseholderQR<Mat> q2(Ym);
      const Index rnk = q2.rank();
      const Mat Qi = Mat(q2.householderQ()).leftCols(rnk);
      // tr(Qi^T H Qi) and w^T H w from H Q (Q spans Qi) without new products
      const Mat Bi = Q.transpose() * Qi;  // Qi = Q Bi
      const double top = (Bi.transpose() * C * Bi).trace();
      const Vec a = Qi.transpose() * Om.col(i);
      const Vec w = Om.col(i) - Qi * a;
      const Vec Hw = Y.col(i) - Z * (Bi * a);
      tr(i) = top + w.dot(Hw);
    }
  }
  TraceEstimate t;
  t.estimate = tr.mean();
  t.std_error = sample_std_error(tr);
  t.matvecs = 2 * k;
  return t;
}

}  // namespace implicitbias
