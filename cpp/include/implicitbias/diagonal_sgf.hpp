// The stochastic gradient flow (SGF) of diagonal networks (Pesme, Pillaud-Vivien
// & Flammarion 2021), depth 2, signed x = u^2 - v^2 or nonnegative x = u^2;
// docs/dynamics.md derives everything below.
//
// The Ito SDE in the flow's time t (loss 0.5 ||A x - y||^2, summed), with eta
// the step of the SGD it models (batch 1 on 0.5 r_i^2):
//   dz = -grad L(z) dt + sqrt(eta) sum_i r_i(z) grad r_i(z) dW~_i,
//   W~ = C W, C = I - 1 1^T / M, W an M-dimensional Brownian motion,
// whose noise covariance eta sum_ij r_i r_j C_ij grad r_i grad r_j^T is that of
// SGD's batch gradient (per unit of t).  In the log variables X = log u,
// Y = log v (u, v > 0 for all t), with g = A^T r, w = u^2 + v^2 (nonnegative: u^2):
//   dX = (-2 g - 2 eta q) dt + 2 sqrt(eta) A^T (r o dW~),
//   dY = (+2 g - 2 eta q) dt - 2 sqrt(eta) A^T (r o dW~),
//   q  = (A o A)^T (r o r) - (g o g) / M       (the Ito correction),
// so X - Y moves in range(A^T) and X + Y = 2 log alpha - 4 eta int q dt.
// The diffusion is not commutative (in the basis of W, L^j b_l - L^l b_j =
// 8 eta A^T [C_l o (K R C)_j - C_j o (K R C)_l] with K = A diag(w) A^T,
// R = diag(r): nonzero for generic data with M > 2), so the Milstein step
// needs the iterated integrals
//   I~ = (dW~ dW~^T - h C) / 2 + C A~ C    (A~ the Levy areas of W over the step):
//   D = A^T (-2 h r + 2 sqrt(eta) r o dW~ + 8 eta m),  m_l = sum_j K_lj r_j I~_jl,
//   E = 2 eta h q,   X <- X + D - E,   Y <- Y - D - E.
// The Levy areas: the Fourier series of Kloeden, Platen & Wright truncated at
// p terms plus Wiktorsson's Gaussian approximation of its tail (whose
// covariance square root has a closed form), p = ceil(sqrt(5 M^2 (M - 1) /
// (24 pi^2 h))): the mean-square area error <= h^3 (Wiktorsson 2001), so the
// scheme keeps strong order 1.  The draws of step k depend only on (seed, k).
//
// Bookkeeping (exact in the discrete scheme, like the SGD identity of
// diagonal_sgd.hpp): s = -sum D / 2 (a range(A^T) vector),
//   signed: log a^2 = X + Y, ell = X - Y + 4 s (= 0 up to rounding),
//   arcsinh(x / (2 a^2)) = X - Y = -4 s;
//   nonnegative: log alpha_+^2 = 2 X + 4 s, x = alpha_+^2 exp(-4 s), ell = 0.
#pragma once

#include "diagonal.hpp"
#include "diagonal_sgd.hpp"
#include "rng.hpp"
#include "types.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace implicitbias {

inline constexpr std::uint64_t kSgfStream = 0x5346;  // "SF": Brownian increments and Levy areas
inline constexpr double kSgfPi = 3.141592653589793238462643383279502884;
inline constexpr std::int64_t kSgfMaxLevyTerms = 1000000;

// Terms p of the Levy-area series for M Brownian motions over a step h
// (Wiktorsson's bound: mean-square error 5 M^2 (M - 1) h^2 / (24 pi^2 p^2) <= h^3).
inline std::int64_t sgf_levy_terms(Index M, double h) {
  const double m = static_cast<double>(M);
  const double p = std::ceil(std::sqrt(5.0 * m * m * std::max(m - 1.0, 0.0) / (24.0 * kSgfPi * kSgfPi * h)));
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::min(p, 1e12)));
}

// The draws of SGF step `step`: the increments dW (M) of the Brownian motion
// over [t, t + h] and its Levy areas area (M x M, antisymmetric),
// area_jk = (int (W_j - W_j(t)) dW_k - int (W_k - W_k(t)) dW_j) / 2.
// Order of the draws from Rng(seed, kSgfStream, step): dW (M normals), then the
// p x M matrices Z and H of the series (row r: zeta_r, then eta_r, row after
// row, alternating), then the tail normals G_jk, j < k, row-major:
//   c = sqrt(2 / h) dW,
//   area = (h / 2 pi) [z c^T - c z^T + Z_w^T H - H^T Z_w],  Z_w row r = zeta_r / r, z = sum_r zeta_r / r,
//   + (h / 2 pi) sqrt(a_p) [sqrt(2) G + ((G c) c^T - c (G c)^T) / (sqrt(2) (1 + s))],
//   a_p = sum_{r > p} 1 / r^2,  s = sqrt(1 + |c|^2 / 2),  G antisymmetric.
class SgfDraws {
 public:
  SgfDraws(Index M, double h) : M_(M), h_(h), p_(sgf_levy_terms(M, h)) {
    double partial = 0.0;
    for (std::int64_t r = p_; r >= 1; --r) partial += 1.0 / (static_cast<double>(r) * static_cast<double>(r));
    tail_ = std::max(kSgfPi * kSgfPi / 6.0 - partial, 0.0);
  }
  std::int64_t terms() const { return p_; }

  void draw(std::uint64_t seed, std::int64_t step, Vec& dW, Mat& area) {
    const Index M = M_;
    Rng rng(seed, kSgfStream, static_cast<std::uint64_t>(step));
    const double sh = std::sqrt(h_);
    dW.resize(M);
    for (Index j = 0; j < M; ++j) dW(j) = sh * rng.normal();
    area.setZero(M, M);
    if (M < 2) return;
    const Index p = static_cast<Index>(p_);
    Z_.resize(p, M);
    H_.resize(p, M);
    for (Index r = 0; r < p; ++r) {
      const double inv = 1.0 / static_cast<double>(r + 1);
      for (Index j = 0; j < M; ++j) Z_(r, j) = inv * rng.normal();
      for (Index j = 0; j < M; ++j) H_(r, j) = rng.normal();
    }
    const Vec c = (std::sqrt(2.0) / sh) * dW;
    const Vec z = Z_.colwise().sum().transpose();
    area.noalias() = Z_.transpose() * H_;
    area += z * c.transpose();
    G_.setZero(M, M);
    for (Index j = 0; j < M; ++j)
      for (Index k = j + 1; k < M; ++k) {
        G_(j, k) = rng.normal();
        G_(k, j) = -G_(j, k);
      }
    const Vec Gc = G_ * c;
    const double s = std::sqrt(1.0 + 0.5 * c.squaredNorm());
    // sqrt(Sigma) G, Sigma = 2 I + Q, Q X = (X c) c^T - c (X c)^T, Q^2 = |c|^2 Q
    const Mat tail = std::sqrt(2.0) * G_ + (Gc * c.transpose() - c * Gc.transpose()) / (std::sqrt(2.0) * (1.0 + s));
    // the series part is B - B^T with B = Z_w^T H + z c^T; the tail is already antisymmetric
    const Mat B = area;
    area = (h_ / (2.0 * kSgfPi)) * ((B - B.transpose()) + std::sqrt(tail_) * tail);
  }

 private:
  Index M_;
  double h_;
  std::int64_t p_;
  double tail_ = 0.0;
  Mat Z_, H_, G_;
};

// One SGF run (the interface of StochasticDiagonal, so the loop of
// diagonal_sgd.hpp runs it): the state is (X, Y) = (log u, log v) and s.
class SgfDiagonal {
 public:
  SgfDiagonal(const SensingProblem& prob, const RowMat& Arows, const DiagonalSpec& spec, const StochasticSpec& ss,
              const Vec& alpha)
      : prob_(prob), A_(Arows), signed_(!spec.nonnegative), eta_(ss.rule.lr), h_(ss.sde_step), seed_(ss.seed),
        draws_(Arows.rows(), ss.sde_step) {
    const Index N = alpha.size();
    X_ = alpha.array().log().matrix();
    if (signed_) Y_ = X_;
    s_ = Vec::Zero(N);
    A2_ = A_.array().square().matrix();
  }

  bool full_batch() const { return true; }
  int evals_per_step() const { return 1; }
  double step_size(const StochasticSpec& ss, std::int64_t) const { return ss.sde_step; }

  // [u; v; log a^2; ell; s] (signed) or [u; log a^2; ell; s], as StochasticDiagonal::state.
  void state(Vec& z) const {
    raw(raw_);
    state_of(raw_, z);
  }
  // [X; Y; s] (signed) or [X; s]
  void raw(Vec& zr) const {
    const Index N = X_.size();
    zr.resize((signed_ ? 3 : 2) * N);
    zr.head(N) = X_;
    if (signed_) zr.segment(N, N) = Y_;
    zr.tail(N) = s_;
  }
  void state_of(const Vec& zr, Vec& z) const {
    const Index N = X_.size();
    const int parts = signed_ ? 2 : 1;
    z.resize((parts + 3) * N);
    const auto X = zr.head(N).array();
    const auto s = zr.tail(N).array();
    z.head(N) = X.exp().matrix();
    if (signed_) {
      const auto Y = zr.segment(N, N).array();
      z.segment(N, N) = Y.exp().matrix();
      z.segment(2 * N, N) = (X + Y).matrix();
      z.segment(3 * N, N) = ((X - Y) + 4.0 * s).matrix();
    } else {
      z.segment(N, N) = (2.0 * X + 4.0 * s).matrix();
      z.segment(2 * N, N).setZero();
    }
    z.tail(N) = zr.tail(N);
  }

  // 0.5 ||A x - y||^2 (its residual is kept for the step from this state)
  double loss() {
    residual();
    r_ready_ = true;
    return 0.5 * r_.squaredNorm();
  }

  // One Milstein step of size h (the `eta` argument of the loop's interface is h).
  bool step(std::int64_t step, double h) {
    if (!r_ready_) residual();
    r_ready_ = false;
    const Index M = A_.rows();
    const double Md = static_cast<double>(M);
    draws_.draw(seed_, step, dW_, area_);
    dWt_ = dW_.array() - dW_.mean();
    // C A~ C = A~ - (rho 1^T - 1 rho^T) / M, rho = A~ 1 (1^T A~ 1 = 0)
    const Vec rho = area_.rowwise().sum();
    P_ = area_;
    P_.colwise() -= rho / Md;
    P_.rowwise() += rho.transpose() / Md;
    // K = A diag(w) A^T
    AW_ = A_ * w_.asDiagonal();
    K_.noalias() = AW_ * A_.transpose();
    // m_l = sum_j K_lj r_j I~_jl, I~ = (dW~ dW~^T - h C) / 2 + P
    KR_ = K_ * r_.asDiagonal();
    const Vec Krw = KR_ * dWt_;
    m_ = 0.5 * (dWt_.array() * Krw.array()).matrix();
    const Vec Kr = KR_.rowwise().sum();
    m_ -= 0.5 * h * (K_.diagonal().array() * r_.array() - Kr.array() / Md).matrix();
    m_ += KR_.cwiseProduct(P_.transpose()).rowwise().sum();
    // q = (A o A)^T (r o r) - (g o g) / M
    q_.noalias() = A2_.transpose() * r_.cwiseAbs2();
    q_ -= g_.cwiseAbs2() / Md;
    coef_ = -2.0 * h * r_ + 2.0 * std::sqrt(eta_) * (r_.array() * dWt_.array()).matrix() + 8.0 * eta_ * m_;
    D_.noalias() = A_.transpose() * coef_;
    const double e = 2.0 * eta_ * h;
    nX_ = X_ + D_ - e * q_;
    if (signed_) nY_ = Y_ - D_ - e * q_;
    if (!nX_.allFinite() || (signed_ && !nY_.allFinite())) return false;
    X_.swap(nX_);
    if (signed_) Y_.swap(nY_);
    s_ -= 0.5 * D_;
    return true;
  }

 private:
  // x, w = u^2 + v^2 (or u^2), r = A x - y, g = A^T r at the current state
  void residual() {
    const Vec u2 = (2.0 * X_.array()).exp().matrix();
    if (signed_) {
      const Vec v2 = (2.0 * Y_.array()).exp().matrix();
      x_ = u2 - v2;
      w_ = u2 + v2;
    } else {
      x_ = u2;
      w_ = u2;
    }
    r_.noalias() = A_ * x_;
    r_ -= prob_.y;
    g_.noalias() = A_.transpose() * r_;
  }

  const SensingProblem& prob_;
  const RowMat& A_;
  bool signed_;
  double eta_, h_;
  std::uint64_t seed_;
  SgfDraws draws_;
  Vec X_, Y_, s_;
  RowMat A2_;
  bool r_ready_ = false;
  mutable Vec raw_;
  Vec x_, w_, r_, g_, dW_, dWt_, m_, q_, coef_, D_, nX_, nY_;
  Mat area_, P_, AW_, K_, KR_;
};

// A block of SGF runs, one after another (the loop of diagonal_sgd.hpp).
inline void run_diagonal_sgf(const SensingProblem& prob, const DiagonalSpec& spec,
                             const std::vector<StochasticSpec>& specs, const std::vector<Vec>& alphas,
                             const StochasticOptions& opt, std::vector<RunRecord>& out, bool record_state = false,
                             const SharpnessOptions& sharpness = {}) {
  run_diagonal_descent_loop<SgfDiagonal>(prob, spec, specs, alphas, opt, out, record_state, sharpness);
}

}  // namespace implicitbias
