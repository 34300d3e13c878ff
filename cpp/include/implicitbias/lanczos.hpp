// Eigenvalues and spectral densities of a symmetric operator H given by its
// products with blocks of vectors:  matvec(X, Y) sets Y = H X  (X: dim x b),
// the same convention as trace.hpp.  No Python here; the operator is a
// template parameter, so a training loop can call these on its own HVP.
//
// block_lanczos: a few eigenpairs at one or both ends of the spectrum.
//   Block Krylov space K = span{X0, H X0, H^2 X0, ...} built one block of b
//   columns per step with full reorthogonalization (classical Gram-Schmidt
//   against the whole basis Q, twice, "twice is enough"), and
//   Rayleigh-Ritz on it: T = Q^T H Q is formed explicitly from the stored
//   products H Q (not from the three-term block recurrence), so a rank
//   deficient block (an invariant subspace was reached) is simply refilled
//   with random directions and the projection stays exact.  Ritz pairs
//   (theta, v = Q s) are ranked by value; for each wanted pair the residual
//   ||H v - theta v|| is computed from the stored products (no extra
//   matvecs).  For symmetric H an eigenvalue lies within that residual of
//   theta (Bauer-Fike / Weyl), which is the error bound reported.  Stops
//   when every wanted residual is <= tol * max|theta| (the spectral norm
//   estimate), when the basis spans the whole space (then the pairs are
//   exact to rounding), or when the matvec budget is used.  The check
//   (O(m^3) for a basis of m vectors) runs at every step while m < 8 b and
//   then each time m has grown by m / 8.  Symmetry is
//   checked over the first 8 blocks: for symmetric H the two computed values
//   of each entry of Q^T H Q, q_i^T (H q_j) and q_j^T (H q_i), agree to
//   rounding.
//   A warm start passes previous Ritz vectors as the first block.
//
// lanczos_quadrature: the Lanczos tridiagonal of each of several random
//   probes (Rademacher or Gaussian), normalized q = z / ||z||, run together
//   so that H is applied to a block of probes; full reorthogonalization
//   against each probe's own basis.  Its eigen decomposition T = S diag(theta)
//   S^T gives the Gauss quadrature  q^T f(H) q ~ sum_j S(0, j)^2 f(theta_j),
//   exact for polynomials f of degree < 2m (m steps).  A probe whose
//   recurrence breaks down (beta ~ 0: an invariant subspace) stops early with
//   an exact quadrature.
// Probes and refills come from Rng(seed, stream): results depend only on the
// seed (and the operator), not on threads.
#pragma once

#include "interrupt.hpp"
#include "rng.hpp"
#include "trace.hpp"
#include "types.hpp"

#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace implicitbias {

enum class EigenWhich : int { largest = 0, smallest = 1, both = 2 };

struct EigenOptions {
  Index k = 1;                       // wanted pairs (both: k / 2 smallest and the rest largest)
  EigenWhich which = EigenWhich::largest;
  Index block = 0;                   // block size; 0: max(k, columns of the start block)
  double tol = 1e-8;                 // relative residual at which a pair counts as converged
  std::int64_t max_matvecs = 0;      // budget (0: until the basis spans the space)
  std::uint64_t seed = 0;
  double symmetry_tol = 1e-6;        // relative asymmetry of Q^T H Q that raises
};

struct EigenResult {
  Vec values;          // ascending
  Mat vectors;         // dim x k, orthonormal, column j goes with values(j)
  Vec residuals;       // ||H v_j - values(j) v_j||
  std::int64_t matvecs = 0;
  Index basis = 0;     // size of the Krylov basis at the end
  bool converged = false;
  double asymmetry = 0.0;  // largest relative asymmetry of Q^T H Q seen
};

namespace detail {

// Orthonormalizes the columns of R against Q.leftCols(m) and each other and
// appends them to Q (columns m .. m + R.cols() - 1): one block Gram-Schmidt
// pass against the basis, then per column one more pass against the basis and
// the columns already appended, repeated when it removed more than half of
// the norm ("twice is enough", Kahan-Parlett).  Columns that vanish (below
// 1e-10 of their norm before the projections: an invariant subspace) are
// replaced by random Gaussian directions.  Returns the number of columns
// appended (fewer only when the space is exhausted).
inline Index append_orthonormal(Mat& Q, Index m, Mat R, Rng& rng) {
  const Index dim = Q.rows();
  const Vec norms0 = R.colwise().norm().transpose();
  if (m > 0) R.noalias() -= Q.leftCols(m) * (Q.leftCols(m).transpose() * R);
  Index cur = m;
  for (Index c = 0; c < R.cols() && cur < dim; ++c) {
    Vec x = R.col(c);
    double ref = norms0(c);
    for (int attempt = 0; attempt < 4; ++attempt) {
      double after = x.norm();
      for (int pass = 0; pass < 3 && cur > 0; ++pass) {
        const double before = after;
        x.noalias() -= Q.leftCols(cur) * (Q.leftCols(cur).transpose() * x);
        after = x.norm();
        if (after > 0.5 * before) break;
      }
      if (after > 1e-10 * ref && after > 0.0 && std::isfinite(after)) {
        Q.col(cur++) = x / after;
        break;
      }
      for (Index r = 0; r < dim; ++r) x(r) = rng.normal();
      ref = x.norm();
    }
  }
  return cur - m;
}

inline void wanted_indices(Index m, Index k, EigenWhich which, std::vector<Index>& idx) {
  idx.clear();
  const Index kk = std::min(k, m);
  if (which == EigenWhich::smallest) {
    for (Index i = 0; i < kk; ++i) idx.push_back(i);
  } else if (which == EigenWhich::largest) {
    for (Index i = m - kk; i < m; ++i) idx.push_back(i);
  } else {
    const Index lo = kk / 2, hi = kk - lo;
    for (Index i = 0; i < lo; ++i) idx.push_back(i);
    for (Index i = m - hi; i < m; ++i) idx.push_back(i);
  }
}

}  // namespace detail

template <class MatVec>
EigenResult block_lanczos(MatVec&& matvec, Index dim, const EigenOptions& o, const Mat& start = Mat()) {
  if (dim < 1) throw InvalidArgument("dim must be >= 1");
  if (o.k < 1 || o.k > dim) throw InvalidArgument("k must be between 1 and the operator's size");
  if (start.size() != 0 && start.rows() != dim) throw InvalidArgument("start must have one row per dimension");
  if (!(o.tol >= 0.0)) throw InvalidArgument("tol must be >= 0");
  if (o.max_matvecs < 0) throw InvalidArgument("max_matvecs must be >= 0");
  Index b = o.block > 0 ? o.block : std::max<Index>(o.k, start.cols());
  b = std::min(b, dim);
  const std::int64_t budget = o.max_matvecs > 0 ? o.max_matvecs : std::numeric_limits<std::int64_t>::max();
  if (budget < b) throw InvalidArgument("max_matvecs must be at least the block size");

  Rng rng(o.seed, 0x4c616e63);
  Mat X0(dim, b);
  const Index s = std::min<Index>(start.cols(), b);
  if (s > 0) X0.leftCols(s) = start.leftCols(s);
  for (Index c = s; c < b; ++c)
    for (Index r = 0; r < dim; ++r) X0(r, c) = rng.normal();

  // capacity grows by doubling; Q and HQ share it
  Index cap = std::min<Index>(dim, std::max<Index>(4 * b, 32));
  Mat Q(dim, cap), HQ(dim, cap), T(cap, cap);
  Index m = detail::append_orthonormal(Q, 0, X0, rng);
  Index m_old = 0;
  EigenResult res;
  std::vector<Index> idx;
  Mat W;
  Index next_check = 0;
  // appends the next block: the new products with the basis removed (the Krylov directions);
  // false when nothing could be added (the space is exhausted)
  auto next_block = [&](Index m_now, const Mat& colpart, const Mat& Wb) {
    const Index next = static_cast<Index>(std::min<std::int64_t>({static_cast<std::int64_t>(b),
                                                                   budget - res.matvecs,
                                                                   static_cast<std::int64_t>(dim - m_now)}));
    if (m_now + next > cap) {
      const Index nc = std::min<Index>(dim, std::max<Index>(2 * cap, m_now + next));
      Q.conservativeResize(Eigen::NoChange, nc);
      HQ.conservativeResize(Eigen::NoChange, nc);
      T.conservativeResize(nc, nc);
      cap = nc;
    }
    Mat R = Wb.leftCols(next) - Q.leftCols(m_now) * colpart.leftCols(next);
    m_old = m_now;
    m = m_now + detail::append_orthonormal(Q, m_now, std::move(R), rng);
    return m > m_old;
  };
  InterruptPoller poller;
  while (true) {
    poller.poll();
    const Index nb = m - m_old;
    matvec(Q.middleCols(m_old, nb), W);
    if (W.rows() != dim || W.cols() != nb) throw InvalidArgument("matvec returned a block of the wrong shape");
    if (!W.allFinite()) throw InvalidArgument("the operator returned NaN or inf");
    res.matvecs += nb;
    HQ.middleCols(m_old, nb) = W;
    // T(:, new) = Q^T (H Q_new); T(new, :) = Q_new^T (H Q) computed independently: their
    // difference measures asymmetry (zero to rounding for symmetric H)
    // (for the first 8 blocks; afterwards T(new, :) = T(:, new)^T)
    const Mat colpart = Q.leftCols(m).transpose() * W;  // m x nb
    Mat sym = colpart;
    if (m_old < 8 * b) {
      const Mat rowpart = HQ.leftCols(m).transpose() * Q.middleCols(m_old, nb);  // (H q_i)^T q_new
      const double scale = std::max(colpart.norm(), rowpart.norm());
      if (scale > 0.0) {
        const double asym = (colpart - rowpart).norm() / scale;
        res.asymmetry = std::max(res.asymmetry, asym);
        if (asym > o.symmetry_tol)
          throw InvalidArgument("the operator is not symmetric: q_i^T H q_j and q_j^T H q_i differ by a relative " +
                                std::to_string(asym) + " (symmetry_tol " + std::to_string(o.symmetry_tol) + ")");
      }
      sym = 0.5 * (colpart + rowpart);
    }
    T.block(0, m_old, m, nb) = sym;
    T.block(m_old, 0, nb, m) = sym.transpose();

    // Rayleigh-Ritz costs O(m^3): done at every step while the basis has fewer than 8 blocks, then
    // whenever it grew by an eighth (at most ~12% more products than checking at every step), and
    // when the budget or the space is used up
    const bool exhausted = m >= dim;
    const bool last = res.matvecs >= budget || budget - res.matvecs < 1;
    if (!(exhausted || last || m >= next_check) && next_block(m, colpart, W)) continue;
    next_check = m + std::max<Index>(b, m / 8);
    Eigen::SelfAdjointEigenSolver<Mat> es(T.topLeftCorner(m, m));
    const Vec& theta = es.eigenvalues();
    const double norm_est = std::max(std::abs(theta(0)), std::abs(theta(m - 1)));
    detail::wanted_indices(m, o.k, o.which, idx);
    const Index kk = static_cast<Index>(idx.size());
    Mat Sw(m, kk);
    for (Index j = 0; j < kk; ++j) Sw.col(j) = es.eigenvectors().col(idx[static_cast<std::size_t>(j)]);
    Mat V = Q.leftCols(m) * Sw, HV = HQ.leftCols(m) * Sw;
    res.values.resize(kk);
    res.residuals.resize(kk);
    bool all_converged = kk == o.k;
    for (Index j = 0; j < kk; ++j) {
      const double nv = V.col(j).norm();
      V.col(j) /= nv;
      HV.col(j) /= nv;
      const double th = V.col(j).dot(HV.col(j));  // Rayleigh quotient of the computed vector
      res.values(j) = th;
      res.residuals(j) = (HV.col(j) - th * V.col(j)).norm();
      if (res.residuals(j) > o.tol * norm_est) all_converged = false;
    }
    res.vectors = std::move(V);
    res.basis = m;
    if (all_converged || exhausted) {
      res.converged = true;
      break;
    }
    if (last || m == m_old || !next_block(m, colpart, W)) break;
  }
  return res;
}

struct Quadrature {
  std::vector<Vec> nodes;    // per probe: the Ritz values theta_j (ascending)
  std::vector<Vec> weights;  // per probe: S(0, j)^2 (sum to 1)
  std::int64_t matvecs = 0;
};

template <class MatVec>
Quadrature lanczos_quadrature(MatVec&& matvec, Index dim, Index num_probes, Index steps, std::uint64_t seed,
                              Probe probe = Probe::rademacher) {
  if (dim < 1) throw InvalidArgument("dim must be >= 1");
  if (num_probes < 1) throw InvalidArgument("num_probes must be >= 1");
  if (steps < 1) throw InvalidArgument("steps must be >= 1");
  const Index m = std::min(steps, dim);
  const Index P = num_probes;
  Rng rng(seed, 0x534c5100);
  Mat Z(dim, P);
  fill_probes(Z, rng, probe);
  std::vector<Mat> Qs(static_cast<std::size_t>(P), Mat(dim, m));
  std::vector<Vec> alpha(static_cast<std::size_t>(P), Vec::Zero(m)), beta(static_cast<std::size_t>(P), Vec::Zero(m));
  std::vector<Index> len(static_cast<std::size_t>(P), 0);
  std::vector<Index> active;
  for (Index p = 0; p < P; ++p) {
    const double nz = Z.col(p).norm();
    if (!(nz > 0.0)) throw InvalidArgument("a probe vector is zero");
    Qs[static_cast<std::size_t>(p)].col(0) = Z.col(p) / nz;
    active.push_back(p);
  }
  Quadrature out;
  InterruptPoller poller;
  Mat X, Y;
  for (Index j = 0; j < m && !active.empty(); ++j) {
    poller.poll();
    const Index na = static_cast<Index>(active.size());
    X.resize(dim, na);
    for (Index a = 0; a < na; ++a) X.col(a) = Qs[static_cast<std::size_t>(active[static_cast<std::size_t>(a)])].col(j);
    matvec(X, Y);
    if (Y.rows() != dim || Y.cols() != na) throw InvalidArgument("matvec returned a block of the wrong shape");
    if (!Y.allFinite()) throw InvalidArgument("the operator returned NaN or inf");
    out.matvecs += na;
    std::vector<Index> still;
    for (Index a = 0; a < na; ++a) {
      const auto p = static_cast<std::size_t>(active[static_cast<std::size_t>(a)]);
      Mat& Qp = Qs[p];
      Vec w = Y.col(a);
      alpha[p](j) = Qp.col(j).dot(w);
      len[p] = j + 1;
      if (j + 1 == m) continue;
      for (int pass = 0; pass < 2; ++pass) w.noalias() -= Qp.leftCols(j + 1) * (Qp.leftCols(j + 1).transpose() * w);
      const double bj = w.norm();
      double tnorm = 0.0;
      for (Index i = 0; i <= j; ++i) tnorm = std::max(tnorm, std::abs(alpha[p](i)) + (i > 0 ? beta[p](i - 1) : 0.0));
      if (!(bj > 1e-12 * std::max(tnorm, Y.col(a).norm()))) continue;  // invariant subspace: exact quadrature
      beta[p](j) = bj;
      Qp.col(j + 1) = w / bj;
      still.push_back(static_cast<Index>(p));
    }
    active.swap(still);
  }
  for (Index p = 0; p < P; ++p) {
    const auto pp = static_cast<std::size_t>(p);
    const Index n = len[pp];
    Mat Tp = Mat::Zero(n, n);
    for (Index i = 0; i < n; ++i) {
      Tp(i, i) = alpha[pp](i);
      if (i + 1 < n) Tp(i, i + 1) = Tp(i + 1, i) = beta[pp](i);
    }
    Eigen::SelfAdjointEigenSolver<Mat> es(Tp);
    out.nodes.push_back(es.eigenvalues());
    out.weights.push_back(es.eigenvectors().row(0).transpose().array().square().matrix());
  }
  return out;
}

// Sharpness recorded during training (docs/science.md, section 3.9, "Sharpness
// during training"): at each record point of a run the top eigenpair of the loss
// Hessian by block_lanczos with block 1, to the relative residual tol
// (||H v - theta v|| <= tol * |theta|), within max_matvecs products (0: no
// budget but the dimension).  A run's first point starts from the random
// vector of Rng(seed, ...); each later one from the previous point's top
// Ritz vector (warm, kept per run by the caller).  Channels: sharpness,
// sharpness_residual (an error bound on it), sharpness_matvecs.
struct SharpnessOptions {
  bool record = false;
  double tol = 1e-8;
  std::int64_t max_matvecs = 0;
};

inline void sharpness_channel_names(const SharpnessOptions& o, std::vector<std::string>& names) {
  if (o.record)
    for (const char* n : {"sharpness", "sharpness_residual", "sharpness_matvecs"}) names.emplace_back(n);
}

// out = {theta, residual, matvecs} at one record point; finite: whether the
// state and its loss are (else NaN, NaN, 0: a diverged run's last point, as
// when the products overflow).  warm: the run's previous top vector (empty at
// its first point), replaced by the new one.
template <class MatVec>
void record_sharpness(MatVec&& matvec, Index dim, const SharpnessOptions& so, std::uint64_t seed, bool finite,
                      Vec& warm, double* out) {
  out[0] = out[1] = std::numeric_limits<double>::quiet_NaN();
  out[2] = 0.0;
  if (!finite) return;
  EigenOptions o;
  o.k = 1;
  o.block = 1;
  o.tol = so.tol;
  o.max_matvecs = so.max_matvecs;
  o.seed = seed;
  EigenResult r;
  try {
    r = block_lanczos(matvec, dim, o, warm.size() == dim ? Mat(warm) : Mat());
  } catch (const InvalidArgument&) {  // the products overflowed (a state on its way to divergence)
    return;
  }
  out[0] = r.values(0);
  out[1] = r.residuals(0);
  out[2] = static_cast<double>(r.matvecs);
  if (r.vectors.allFinite()) warm = r.vectors.col(0);
}

}  // namespace implicitbias
