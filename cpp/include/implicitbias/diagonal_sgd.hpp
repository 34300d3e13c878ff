// Stochastic and accelerated descent on plain diagonal networks (docs/dynamics.md):
// SGD on batches, label-noise SGD, n-SAM and 1-SAM, each with heavy-ball or
// Nesterov momentum and a step-size schedule, and the exact bookkeeping of
// the effective initialization.
//
// Model x = u^L - v^L (or x = u^L), loss 0.5 ||A x - y||^2, batch loss
// 0.5 sum_{i in B} (a_i . x - y_i)^2 (summed), batch gradient g = A_B^T r_B.
// With q_u = L u^(L-2), q_v = L v^(L-2) the gradient is (q_u u g, -q_v v g),
// so every step is a per-coordinate multiplication
//   u <- u (1 + du),   v <- v (1 + dv)
// and the loop is written in these multipliers:
//   sgd, label_noise_sgd: du = -eta q_u g,  dv = eta q_v g (label noise: the
//     batch's labels y_i + sigma xi_i, xi_i ~ N(0, 1) fresh every step);
//   sam (n-SAM): at z' = z + rho grad / ||grad|| (grad of the batch loss),
//     u' = u f_u, v' = v f_v with f_u = 1 + rho q_u g / n, f_v = 1 - rho q_v g / n,
//     n = ||grad||; g' = A_B^T (A_B x' - y_B); du = -eta q_u f_u^(L-1) g',
//     dv = eta q_v f_v^(L-1) g';
//   sam per example (1-SAM): the same with one perturbation per example i of
//     the batch (its own gradient r_i a_i (q_u u, -q_v v) and norm n_i), the
//     sum of the examples' perturbed gradients: du = -eta q_u sum_i r'_i a_i f_{u,i}^(L-1);
//   heavy ball (momentum beta): z_{k+1} = z_k - eta grad_k + beta (z_k - z_{k-1}),
//     i.e. 1 + du_k = (1 + du^grad_k) + beta w_k with w_k = (u_k - u_{k-1}) / u_k
//     = du_{k-1} / (1 + du_{k-1});
//   Nesterov: the gradient step is taken from the look-ahead point
//     z~ = z_k + beta (z_k - z_{k-1}) = z_k (1 + beta w_k):
//     1 + du_k = (1 + beta w_k)(1 + du^grad(z~)).
// The range(A^T) direction h of a step is g (sgd, label noise) or the
// perturbed g' (SAM), run through the momentum buffer c_k = beta c_{k-1} + h_k.
// Bookkeeping (depth 2; docs/dynamics.md derives it), per coordinate, from
// lu = log prod_j |1 + du_j|, lv = log prod_j |1 + dv_j| and s = sum_j eta_j c_j:
//   log a_k^2 = 2 log alpha + lu + lv,   ell_k = log(alpha_+ / alpha_-) = lu - lv + 4 s_k
// so that arcsinh(x_k / (2 a_k^2)) = ell_k - 4 s_k exactly (up to rounding).
// The nonnegative model: log alpha_eff^2 = 2 log alpha + 2 lu + 4 s_k with
// x_k = alpha_eff^2 exp(-4 s_k), and ell = 0.  The multipliers are multiplied
// into running products, taken into the log domain every kFlushEvery steps.
//
// Every run is computed on its own, with loops in a fixed order (no products
// across the runs of a block; a full batch is one matrix-vector product per
// side, whose arithmetic depends on nothing but the run), so a run's numbers do not depend on its block,
// the block size or the thread count.  Batches are drawn from the counter-based
// Rng (rng.hpp) keyed by the run's seed and the step (with replacement), or the
// epoch (without replacement: one permutation per epoch).
#pragma once

#include "diagonal.hpp"
#include "rng.hpp"
#include "run_book.hpp"
#include "schedule.hpp"
#include "types.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace implicitbias {

// Stream ids of the Rng (rng.hpp): batches with replacement, epoch
// permutations, label noise (the factorization family's label-noise stream).
inline constexpr std::uint64_t kBatchStream = 0x5347;   // "SG"
inline constexpr std::uint64_t kEpochStream = 0x4550;   // "EP"
inline constexpr std::uint64_t kLabelNoiseStream = 0x4c4e;  // "LN"

enum class DescentKind : int { sgd = 0, label_noise_sgd = 1, sam = 2 };

// The settings of one stochastic run (besides the model and the start).
struct StochasticSpec {
  DescentKind kind = DescentKind::sgd;
  StepSizeRule rule;
  Index batch_size = 0;      // 0: full batch (every row, in order)
  bool epochs = false;       // without replacement, by epochs
  double momentum = 0.0;     // beta in [0, 1)
  bool nesterov = false;
  double strength = 0.0;     // sam_radius (sam) or label_noise_std (label_noise_sgd)
  bool sam_per_example = false;
  std::uint64_t seed = 0;
  double sde_step = 0.0;     // sgf: the integration step h (diagonal_sgf.hpp); lr is the SGD step it models
  std::int64_t warmup_steps() const { return rule.warmup_steps; }
};

// The batch of step `step`: indices into the M rows (full batch: all, in order).
class BatchSampler {
 public:
  BatchSampler(Index M, Index batch_size, bool epochs, std::uint64_t seed)
      : M_(M), b_(batch_size <= 0 || batch_size > M ? M : batch_size), full_(batch_size <= 0), epochs_(epochs),
        seed_(seed) {}

  Index size_at(std::int64_t step) const {
    if (full_ || !epochs_) return b_;
    const std::int64_t per = steps_per_epoch();
    const Index pos = static_cast<Index>(step % per);
    return std::min<Index>(b_, M_ - pos * b_);
  }
  bool full() const { return full_; }

  // Fills idx (resized) with the batch of `step`.
  void draw(std::int64_t step, std::vector<Index>& idx) {
    if (full_) {
      idx.resize(static_cast<std::size_t>(M_));
      for (Index i = 0; i < M_; ++i) idx[static_cast<std::size_t>(i)] = i;
      return;
    }
    if (!epochs_) {
      idx.resize(static_cast<std::size_t>(b_));
      Rng rng(seed_, kBatchStream, static_cast<std::uint64_t>(step));
      for (Index k = 0; k < b_; ++k) idx[static_cast<std::size_t>(k)] = below(rng, M_);
      return;
    }
    const std::int64_t per = steps_per_epoch();
    const std::int64_t epoch = step / per;
    if (epoch != epoch_) {  // Fisher-Yates on 0..M-1, keyed by the epoch
      perm_.resize(static_cast<std::size_t>(M_));
      for (Index i = 0; i < M_; ++i) perm_[static_cast<std::size_t>(i)] = i;
      Rng rng(seed_, kEpochStream, static_cast<std::uint64_t>(epoch));
      for (Index i = M_ - 1; i > 0; --i) std::swap(perm_[static_cast<std::size_t>(i)], perm_[static_cast<std::size_t>(below(rng, i + 1))]);
      epoch_ = epoch;
    }
    const Index start = static_cast<Index>(step % per) * b_;
    const Index len = std::min<Index>(b_, M_ - start);
    idx.assign(perm_.begin() + start, perm_.begin() + start + len);
  }

 private:
  std::int64_t steps_per_epoch() const { return (M_ + b_ - 1) / b_; }
  // uniform in {0, ..., n - 1}: floor(n U), U uniform in (0, 1) with 53 bits
  static Index below(Rng& rng, Index n) {
    const Index k = static_cast<Index>(rng.uniform() * static_cast<double>(n));
    return std::min<Index>(k, n - 1);
  }
  Index M_, b_;
  bool full_, epochs_;
  std::uint64_t seed_;
  std::vector<Index> perm_;
  std::int64_t epoch_ = -1;
};

// x = u^L - v^L (signed) or u^L, by repeated multiplication.
inline void diagonal_predictor(const Eigen::Ref<const Vec>& u, const Eigen::Ref<const Vec>& v, int L, bool signed_model,
                               Vec& x) {
  const Index N = u.size();
  x.resize(N);
  if (L == 2) {  // the common case, vectorized (the same products as below)
    if (signed_model) x = (u.array() * u.array() - v.array() * v.array()).matrix();
    else x = (u.array() * u.array()).matrix();
    return;
  }
  for (Index n = 0; n < N; ++n) {
    double pu = u(n);
    for (int k = 1; k < L; ++k) pu *= u(n);
    if (signed_model) {
      double pv = v(n);
      for (int k = 1; k < L; ++k) pv *= v(n);
      pu -= pv;
    }
    x(n) = pu;
  }
}

// The label-noise draws of step `step` (n standard normals, one per batch position).
inline void label_noise_draws(std::uint64_t seed, std::int64_t step, Index n, Vec& xi) {
  xi.resize(n);
  Rng rng(seed, kLabelNoiseStream, static_cast<std::uint64_t>(step));
  for (Index k = 0; k < n; ++k) xi(k) = rng.normal();
}

// One stochastic run on a diagonal network (plain model), step by step.
class StochasticDiagonal {
 public:
  StochasticDiagonal(const SensingProblem& prob, const RowMat& Arows, const DiagonalSpec& spec,
                     const StochasticSpec& ss, const Vec& alpha)
      : prob_(prob), A_(Arows), L_(spec.depth), signed_(!spec.nonnegative), ss_(ss),
        sampler_(prob.A.rows(), ss.batch_size, ss.epochs, ss.seed) {
    const Index N = alpha.size();
    u_ = alpha;
    if (signed_) v_ = alpha;
    wu_ = Vec::Zero(N);
    wv_ = Vec::Zero(N);
    c_ = Vec::Zero(N);
    pu_prod_ = Vec::Ones(N);
    pv_prod_ = Vec::Ones(N);
    lu_ = Vec::Zero(N);
    lv_ = Vec::Zero(N);
    s_ = Vec::Zero(N);
    log_alpha2_ = (2.0 * alpha.array().log()).matrix();
  }

  bool full_batch() const { return sampler_.full(); }
  int evals_per_step() const { return ss_.kind == DescentKind::sam ? 2 : 1; }
  // the step size of step k (the loop's clock advances by it)
  double step_size(const StochasticSpec& ss, std::int64_t k) const { return ss.rule.at(k); }

  // The state as recorded: [u; v; log a^2; ell; s] (signed) or [u; log a^2; ell; s].
  void state(Vec& z) const {
    raw(raw_);
    state_of(raw_, z);
  }
  // The state without the logs (cheap to copy): [u; v; P_u; P_v; l_u; l_v; s].
  void raw(Vec& zr) const {
    const Index N = u_.size();
    zr.resize(7 * N);
    zr.head(N) = u_;
    zr.segment(N, N) = signed_ ? v_ : u_;
    zr.segment(2 * N, N) = pu_prod_;
    zr.segment(3 * N, N) = pv_prod_;
    zr.segment(4 * N, N) = lu_;
    zr.segment(5 * N, N) = lv_;
    zr.segment(6 * N, N) = s_;
  }
  // The recorded state of a raw one.
  void state_of(const Vec& zr, Vec& z) const {
    const Index N = u_.size();
    const int parts = signed_ ? 2 : 1;
    z.resize((parts + 3) * N);
    z.head(parts * N) = zr.head(parts * N);
    for (Index n = 0; n < N; ++n) {
      // log prod_j |1 + du_j| = l_u + log|P_u| (and likewise for v)
      const double lu = zr(4 * N + n) + std::log(std::abs(zr(2 * N + n)));
      const double s = zr(6 * N + n);
      if (signed_) {
        const double lv = zr(5 * N + n) + std::log(std::abs(zr(3 * N + n)));
        z(parts * N + n) = log_alpha2_(n) + (lu + lv);
        z((parts + 1) * N + n) = (lu - lv) + 4.0 * s;
      } else {
        z(parts * N + n) = log_alpha2_(n) + (2.0 * lu + 4.0 * s);
        z((parts + 1) * N + n) = 0.0;
      }
    }
    z.segment((parts + 2) * N, N) = zr.tail(N);
  }

  // The full-batch loss 0.5 ||A x - y||^2 at the current state (its residual
  // is kept for a full-batch step from this state).
  double loss() {
    predictor(u_, v_, x_);
    full_residual(x_, rfull_);
    rfull_ready_ = true;
    return 0.5 * rfull_.squaredNorm();
  }

  // Step `step` with step size eta.  Returns false (state unchanged) when
  // the new state would not be finite.
  bool step(std::int64_t step, double eta) {
    const double beta = ss_.momentum;
    const bool look_ahead = ss_.nesterov && beta > 0.0;
    sampler_.draw(step, idx_);
    const Index b = static_cast<Index>(idx_.size());
    // the point the gradient step is taken from
    pu_ = u_;
    if (look_ahead) pu_.array() *= 1.0 + beta * wu_.array();
    if (signed_) {
      pv_ = v_;
      if (look_ahead) pv_.array() *= 1.0 + beta * wv_.array();
    }
    if (rfull_ready_ && sampler_.full() && !look_ahead) {
      r_ = rfull_;  // the residual at this state, from loss(): the same sums in the same order
    } else {
      predictor(pu_, pv_, x_);
      residual(x_, b, r_);
    }
    rfull_ready_ = false;
    if (ss_.kind == DescentKind::label_noise_sgd && ss_.strength > 0.0) {
      label_noise_draws(ss_.seed, step, b, xi_);
      r_ -= ss_.strength * xi_;
    }
    batch_gradient(r_, b, g_);
    const bool sam = ss_.kind == DescentKind::sam && ss_.strength > 0.0;
    if (sam) {
      factors(pu_, pv_, qu_, qv_);  // q = L p^(L-2)
      if (!ss_.sam_per_example) sam_step(eta, b);
      else sam_per_example_step(eta, b);
    } else {
      h_ = g_;
    }
    // The multipliers (sgd: from g; SAM: computed above), momentum (heavy
    // ball adds beta w; Nesterov multiplies by 1 + beta w), and the new
    // state, checked before anything is committed.
    if (!sam) {  // du = -eta q_u g, dv = eta q_v g, q = L p^(L-2)
      factors(pu_, pv_, qu_, qv_);
      du_ = -eta * (qu_.array() * g_.array()).matrix();
      if (signed_) dv_ = eta * (qv_.array() * g_.array()).matrix();
    }
    if (beta > 0.0) {
      if (look_ahead) {
        du_ = (du_.array() + beta * wu_.array() * (1.0 + du_.array())).matrix();
        if (signed_) dv_ = (dv_.array() + beta * wv_.array() * (1.0 + dv_.array())).matrix();
      } else {
        du_ += beta * wu_;
        if (signed_) dv_ += beta * wv_;
      }
    }
    nu_ = (u_.array() + u_.array() * du_.array()).matrix();
    if (signed_) nv_ = (v_.array() + v_.array() * dv_.array()).matrix();
    // finite check as one vectorized sum (x * 0 is NaN exactly when x is not
    // finite; Eigen's allFinite() is a scalar loop, a sixth of a batch-1 step)
    double nonfinite = (nu_.array() * 0.0).sum();
    if (signed_) nonfinite += (nv_.array() * 0.0).sum();
    if (std::isnan(nonfinite)) return false;
    u_.swap(nu_);
    if (signed_) v_.swap(nv_);
    if (beta > 0.0) c_ = beta * c_ + h_;
    else c_ = h_;
    s_ += eta * c_;
    accumulate(du_, pu_prod_, lu_, beta > 0.0 ? &wu_ : nullptr);
    if (signed_) accumulate(dv_, pv_prod_, lv_, beta > 0.0 ? &wv_ : nullptr);
    if (++since_flush_ == kFlushEvery) {  // products into the log domain
      since_flush_ = 0;
      flush(pu_prod_, lu_);
      if (signed_) flush(pv_prod_, lv_);
    }
    return true;
  }

  const Vec& u() const { return u_; }
  const Vec& v() const { return v_; }

 private:
  // The multipliers m = 1 + d of a coordinate are kept as a running product
  // P and a log-domain sum l (log prod |m| = l + log|P|): a multiplier goes
  // into P, and P into l every kFlushEvery steps; a multiplier outside
  // [1e-9, 1e9] (or exactly 0) goes into l directly, so P stays within
  // [1e-288, 1e288] and a log is taken once in kFlushEvery steps.  Also the
  // momentum ratio w = d / (1 + d) of each coordinate (0 where m = 0).
  static constexpr int kFlushEvery = 32;
  static void accumulate(const Vec& d, Vec& P, Vec& l, Vec* w) {
    const auto m = 1.0 + d.array();
    // (the multipliers of a committed step are finite; min/max reduce vectorized, any() does not)
    const double lo = m.abs().minCoeff(), hi = m.abs().maxCoeff();
    if (lo < 1e-9 || hi > 1e9) {
      for (Index n = 0; n < d.size(); ++n) {
        const double mn = 1.0 + d(n);
        if (std::abs(mn) >= 1e-9 && std::abs(mn) <= 1e9) P(n) *= mn;
        else l(n) += std::log(std::abs(mn));
      }
    } else {
      P.array() *= m;
    }
    if (w != nullptr) *w = (m != 0.0).select(d.array() / m, 0.0).matrix();
  }
  static void flush(Vec& P, Vec& l) {
    l.array() += P.array().abs().log();
    P.setOnes();
  }

  void predictor(const Vec& u, const Vec& v, Vec& x) const {
    diagonal_predictor(u, signed_ ? v : u, L_, signed_, x);
  }
  // q = L p^(L-2)
  void factors(const Vec& pu, const Vec& pv, Vec& qu, Vec& qv) const {
    const double L = static_cast<double>(L_);
    qu.setConstant(pu.size(), L);
    for (int k = 2; k < L_; ++k) qu.array() *= pu.array();
    if (signed_) {
      qv.setConstant(pv.size(), L);
      for (int k = 2; k < L_; ++k) qv.array() *= pv.array();
    }
  }
  // r = A x - y (one matrix-vector product: the same arithmetic whatever the block)
  void full_residual(const Vec& x, Vec& r) const {
    r.noalias() = A_ * x;
    r -= prob_.y;
  }
  // r(k) = a_{idx_k} . x - y_{idx_k} for the batch
  void residual(const Vec& x, Index b, Vec& r) const {
    if (sampler_.full()) {
      full_residual(x, r);
      return;
    }
    r.resize(b);
    for (Index k = 0; k < b; ++k) {
      const Index i = idx_[static_cast<std::size_t>(k)];
      r(k) = A_.row(i).dot(x) - prob_.y(i);
    }
  }
  // g = sum_k r(k) a_{idx_k}, in batch order
  void batch_gradient(const Vec& r, Index b, Vec& g) const {
    if (sampler_.full()) {
      g.noalias() = A_.transpose() * r;
      return;
    }
    g = Vec::Zero(A_.cols());
    for (Index k = 0; k < b; ++k) g += r(k) * A_.row(idx_[static_cast<std::size_t>(k)]).transpose();
  }
  static void power_into(const Vec& f, int p, Vec& out) {  // f^p, p >= 1
    out = f;
    for (int k = 1; k < p; ++k) out.array() *= f.array();
  }

  // n-SAM from the point (pu_, pv_) with its batch gradient g_.
  void sam_step(double eta, Index b) {
    const double rho = ss_.strength;
    // grad = (q_u p_u g, -q_v p_v g)
    double nsq = (qu_.array() * pu_.array() * g_.array()).square().sum();
    if (signed_) nsq += (qv_.array() * pv_.array() * g_.array()).square().sum();
    const double nrm = std::sqrt(nsq);
    fu_ = Vec::Ones(pu_.size());
    if (signed_) fv_ = Vec::Ones(pu_.size());
    if (nrm > 0.0 && std::isfinite(nrm)) {
      fu_ += (rho / nrm) * (qu_.array() * g_.array()).matrix();
      if (signed_) fv_ -= (rho / nrm) * (qv_.array() * g_.array()).matrix();
    }
    Vec xu = (pu_.array() * fu_.array()).matrix(), xv;
    if (signed_) xv = (pv_.array() * fv_.array()).matrix();
    predictor(xu, xv, x_);
    residual(x_, b, r_);
    batch_gradient(r_, b, h_);  // g'
    power_into(fu_, L_ - 1, tu_);
    du_ = -eta * (qu_.array() * tu_.array() * h_.array()).matrix();
    if (signed_) {
      power_into(fv_, L_ - 1, tv_);
      dv_ = eta * (qv_.array() * tv_.array() * h_.array()).matrix();
    }
  }

  // 1-SAM: one perturbation per example of the batch (r_ holds the batch's
  // residuals at (pu_, pv_)).
  void sam_per_example_step(double eta, Index b) {
    const double rho = ss_.strength;
    const Index N = pu_.size();
    Vec gu = Vec::Zero(N), gv = Vec::Zero(N);
    h_ = Vec::Zero(N);
    Vec su = (qu_.array() * pu_.array()).matrix(), sv;  // the gradient is r_i a_i (su, -sv)
    if (signed_) sv = (qv_.array() * pv_.array()).matrix();
    Vec xu(N), xv(N), wsq(N);
    wsq = su.array().square().matrix();
    if (signed_) wsq.array() += sv.array().square();
    for (Index k = 0; k < b; ++k) {
      const Index i = idx_[static_cast<std::size_t>(k)];
      const auto a = A_.row(i).transpose();
      const double ri = r_(k);
      // ||grad l_i|| = |r_i| sqrt(sum_n a_n^2 (q_u p_u)_n^2 + (q_v p_v)_n^2)
      const double nrm = std::abs(ri) * std::sqrt((a.array().square() * wsq.array()).sum());
      fu_ = Vec::Ones(N);
      if (signed_) fv_ = Vec::Ones(N);
      if (nrm > 0.0 && std::isfinite(nrm)) {
        const double c = rho * ri / nrm;
        fu_.array() += c * a.array() * qu_.array();
        if (signed_) fv_.array() -= c * a.array() * qv_.array();
      }
      xu = (pu_.array() * fu_.array()).matrix();
      if (signed_) xv = (pv_.array() * fv_.array()).matrix();
      predictor(xu, xv, x_);
      const double rp = a.dot(x_) - prob_.y(i);  // r'_i at its own perturbed point
      power_into(fu_, L_ - 1, tu_);
      gu += rp * (a.array() * tu_.array()).matrix();
      if (signed_) {
        power_into(fv_, L_ - 1, tv_);
        gv += rp * (a.array() * tv_.array()).matrix();
      }
      h_ += rp * a;
    }
    du_ = -eta * (qu_.array() * gu.array()).matrix();
    if (signed_) dv_ = eta * (qv_.array() * gv.array()).matrix();
  }

  const SensingProblem& prob_;
  const RowMat& A_;
  int L_;
  bool signed_;
  StochasticSpec ss_;
  BatchSampler sampler_;
  std::vector<Index> idx_;
  Vec u_, v_, wu_, wv_, c_, pu_prod_, pv_prod_, lu_, lv_, s_, log_alpha2_;
  bool rfull_ready_ = false;
  mutable Vec raw_;
  int since_flush_ = 0;
  Vec rfull_;
  Vec pu_, pv_, x_, r_, xi_, g_, h_, qu_, qv_, du_, dv_, fu_, fv_, tu_, tv_, nu_, nv_;
};

struct StochasticOptions {
  std::int64_t steps = 1000;
  double tol = -1.0;              // stop when the full loss <= tol (negative: never)
  std::int64_t record_every = 0;  // 0: first and last only
};

// Runs the block of stochastic runs one after another (each on its own: no
// arithmetic is shared).  The full-batch loss is evaluated at every record
// point and, for a full batch, at every step (where the stop rules are
// checked); a run whose state would leave the finite numbers ends as diverged
// with its current state, one whose loss is not finite at a check with the
// last checked state of finite loss; the clock is t = sum of the step sizes.
// The loop is shared with the stochastic gradient flow (diagonal_sgf.hpp):
// Run is StochasticDiagonal or SgfDiagonal (the same interface).
template <class Run>
void run_diagonal_descent_loop(const SensingProblem& prob, const DiagonalSpec& spec,
                               const std::vector<StochasticSpec>& specs, const std::vector<Vec>& alphas,
                               const StochasticOptions& opt, std::vector<RunRecord>& out, bool record_state,
                               const SharpnessOptions& sharpness) {
  const Index K = static_cast<Index>(specs.size());
  const Index N = prob.A.cols();
  const RowMat Arows = prob.A;
  const bool has_xs = prob.x_star.size() > 0;
  const int parts = spec.nonnegative ? 1 : 2;
  std::vector<std::string> names;
  if (has_xs) names.emplace_back("error");
  if (record_state) state_channel_names(N, parts == 2, names);  // x, u (and v) at every record point
  DiagonalSharpness sharp(prob.A, prob.y, spec.depth, spec.nonnegative, sharpness);
  sharp.names(names);
  auto diag = [&](const Eigen::Ref<const Vec>& z, int id, double* o) {
    Vec x;
    diagonal_predictor(z.head(N), z.segment(parts == 2 ? N : 0, N), spec.depth, parts == 2, x);
    int k = 0;
    if (has_xs) o[k++] = (x - prob.x_star).norm();
    if (record_state) {
      Eigen::Map<Vec>(o + k, N) = x;
      Eigen::Map<Vec>(o + k + N, N) = z.head(N);
      if (parts == 2) Eigen::Map<Vec>(o + k + 2 * N, N) = z.segment(N, N);
      k += (parts + 1) * static_cast<int>(N);
    }
    if (sharp.on()) sharp(id, z.head(N), parts == 2 ? Vec(z.segment(N, N)) : Vec(), o + k);
  };
  RunBook<decltype(diag)> book(K, names, diag);
  Vec z, z_ok;  // z_ok: the raw state (StochasticDiagonal::raw) of the last check
  for (Index j = 0; j < K; ++j) {
    const StochasticSpec& ss = specs[static_cast<std::size_t>(j)];
    Run run(prob, Arows, spec, ss, alphas[static_cast<std::size_t>(j)]);
    RunRecord& rec = book.rec(static_cast<int>(j));
    const Index c = 0;  // this run is the book's first active column (the earlier ones finished)
    // the last checked state of finite loss: where a diverging run ends
    double t = 0.0, t_ok = 0.0, l_ok = std::numeric_limits<double>::quiet_NaN();
    std::int64_t k_ok = -1;
    auto end = [&](Status s, const Vec& zz, std::int64_t steps, double tt, double l) {
      rec.n_steps = steps;
      book.finish(c, s, zz, tt, l);
      book.compact({});
    };
    for (std::int64_t k = 0;; ++k) {
      book.poll();
      const bool last = k >= opt.steps;
      const bool due = k == 0 || (opt.record_every > 0 && k % opt.record_every == 0);
      if (last || due || run.full_batch()) {
        const double l = run.loss();
        if (!std::isfinite(l)) {
          if (k_ok < 0) run.state(z);
          else run.state_of(z_ok, z);
          if (k_ok < 0) end(Status::diverged, z, k, t, l);
          else end(Status::diverged, z, k_ok, t_ok, l_ok);
          break;
        }
        if (l <= opt.tol || last || due) run.state(z);
        if (l <= opt.tol) { end(Status::converged, z, k, t, l); break; }
        if (last) { end(Status::max_steps, z, k, t, l); break; }
        if (due) book.record(static_cast<int>(j), z, t, l);
        run.raw(z_ok);
        k_ok = k;
        t_ok = t;
        l_ok = l;
      }
      const double eta = run.step_size(ss, k);
      book.count_evals(static_cast<int>(j), run.evals_per_step());
      if (!run.step(k, eta)) {  // the new state would not be finite: the run keeps its current one
        const double l = run.loss();
        run.state(z);
        if (std::isfinite(l) || k_ok < 0) {
          end(Status::diverged, z, k, t, l);
        } else {
          run.state_of(z_ok, z);
          end(Status::diverged, z, k_ok, t_ok, l_ok);
        }
        break;
      }
      t += eta;
    }
  }
  out = book.take();
}

inline void run_diagonal_stochastic(const SensingProblem& prob, const DiagonalSpec& spec,
                                    const std::vector<StochasticSpec>& specs, const std::vector<Vec>& alphas,
                                    const StochasticOptions& opt, std::vector<RunRecord>& out,
                                    bool record_state = false, const SharpnessOptions& sharpness = {}) {
  run_diagonal_descent_loop<StochasticDiagonal>(prob, spec, specs, alphas, opt, out, record_state, sharpness);
}

}  // namespace implicitbias
