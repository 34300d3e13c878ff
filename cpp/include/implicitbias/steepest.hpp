// Steepest descent in several geometries, Adam and Signum, on homogeneous
// classifiers (docs/science.md, section 2).
//
// For a norm ||.|| with dual ||.||_*, the steepest direction of a gradient g is
//   g# = argmax_u <u, g> - ||u||^2 / 2,   so ||g#|| = ||g||_*, <g#, g> = ||g||_*^2:
//   l2       g# = g
//   linf     g# = ||g||_1 sign(g)
//   l1       g# = g_j e_j, j the FIRST index with |g_j| = ||g||_inf (tie rule)
//   lp       g# = ||g||_q^(2-q) sign(g) |g|^(q-1),  q = p/(p-1), 1 < p < inf
//   spectral g#_k = (sum_j ||G_j||_nuc) U_k V_k^T per weight block G_k = U_k S_k V_k^T
//            (the norm is max_k ||W_k||_2, its dual sum_k ||G_k||_nuc; vectors are
//            1 x n blocks, for which both are the l2 norm)
// The vector norms act on the whole flattened parameter vector.
#pragma once

#include "flow.hpp"
#include "homogeneous.hpp"
#include "parallel.hpp"
#include "run_book.hpp"
#include "schedule.hpp"
#include "types.hpp"

#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace implicitbias {

enum class NormKind : int { l2 = 0, linf = 1, l1 = 2, lp = 3, spectral = 4 };

struct NormSpec {
  NormKind kind = NormKind::l2;
  double p = 2.0;  // lp only
};

// (sum_i |v_i|^p)^(1/p) computed as m (sum_i (|v_i|/m)^p)^(1/p), m = max_i |v_i|:
// the powers stay in [0, 1] and the sum in [1, n], so no overflow or underflow
// for any p > 0 and any finite v (0 for v = 0; inf or NaN entries give inf or NaN).
inline double scaled_lp_norm(const Eigen::Ref<const Vec>& v, double p) {
  if (v.size() == 0) return 0.0;
  const double mx = v.cwiseAbs().maxCoeff();
  if (!(mx > 0.0) || !std::isfinite(mx)) return v.hasNaN() ? std::numeric_limits<double>::quiet_NaN() : mx;
  return mx * std::pow((v.cwiseAbs() / mx).array().pow(p).sum(), 1.0 / p);
}

// ||theta|| in the given norm.
inline double param_norm(const NormSpec& n, const Eigen::Ref<const Vec>& theta, const std::vector<ParamBlock>& blocks) {
  switch (n.kind) {
    case NormKind::l2: return theta.norm();
    case NormKind::linf: return theta.cwiseAbs().maxCoeff();
    case NormKind::l1: return theta.cwiseAbs().sum();
    case NormKind::lp: return scaled_lp_norm(theta, n.p);
    case NormKind::spectral: {
      double best = 0.0;
      for (const auto& b : blocks) {
        Eigen::Map<const Mat> W(theta.data() + b.offset, b.rows, b.cols);
        double s;
        if (b.rows == 1 || b.cols == 1) s = W.norm();
        else s = Eigen::JacobiSVD<Mat>(W).singularValues()(0);
        best = std::max(best, s);
      }
      return best;
    }
  }
  return 0.0;
}

// Writes g# into out and returns the dual norm ||g||_*.
inline double steepest_direction(const NormSpec& n, const Eigen::Ref<const Vec>& g, const std::vector<ParamBlock>& blocks,
                                 Eigen::Ref<Vec> out) {
  switch (n.kind) {
    case NormKind::l2: {
      out = g;
      return g.norm();
    }
    case NormKind::linf: {
      const double d = g.cwiseAbs().sum();
      out = g.array().sign().matrix() * d;  // sign(0) = 0
      return d;
    }
    case NormKind::l1: {
      Index j = 0;
      double best = -1.0;
      for (Index i = 0; i < g.size(); ++i) {
        const double a = std::abs(g(i));
        if (a > best) {  // strict: the first maximal index wins
          best = a;
          j = i;
        }
      }
      out.setZero();
      out(j) = g(j);
      return best;
    }
    case NormKind::lp: {
      // ||g||_q^(2-q) sign(g) |g|^(q-1) = m (||g||_q/m)^(2-q) sign(g) (|g|/m)^(q-1), m = max |g_i|:
      // every power has a base in [0, 1] or [1, n^(1/q)], so nothing overflows or underflows
      // (p near 1 makes q huge; huge or tiny gradients make m huge or tiny).
      const double q = n.p / (n.p - 1.0);
      const double dual = scaled_lp_norm(g, q);
      if (!(dual > 0.0) || !std::isfinite(dual)) {
        if (dual == 0.0) out.setZero();
        else out.setConstant(std::numeric_limits<double>::quiet_NaN());
        return dual;
      }
      const double mx = g.cwiseAbs().maxCoeff();
      out = (g.array().sign() * (g.array().abs() / mx).pow(q - 1.0)).matrix() * (mx * std::pow(dual / mx, 2.0 - q));
      return dual;
    }
    case NormKind::spectral: {
      double dual = 0.0;
      for (const auto& b : blocks) {
        Eigen::Map<const Mat> G(g.data() + b.offset, b.rows, b.cols);
        Eigen::Map<Mat> O(out.data() + b.offset, b.rows, b.cols);
        if (b.rows == 1 || b.cols == 1) {
          const double nrm = G.norm();
          dual += nrm;
          if (nrm > 0) O = G / nrm;
          else O.setZero();
        } else {
          Eigen::JacobiSVD<Mat> svd(G, Eigen::ComputeThinU | Eigen::ComputeThinV);
          const Vec& s = svd.singularValues();
          dual += s.sum();
          const double cut = s.size() > 0 ? s(0) * 1e-13 * static_cast<double>(std::max(b.rows, b.cols)) : 0.0;
          Index r = 0;
          while (r < s.size() && s(r) > cut) ++r;
          O.noalias() = svd.matrixU().leftCols(r) * svd.matrixV().leftCols(r).transpose();
        }
      }
      out *= dual;
      return dual;
    }
  }
  return 0.0;
}

inline double dual_norm(const NormSpec& n, const Eigen::Ref<const Vec>& g, const std::vector<ParamBlock>& blocks) {
  switch (n.kind) {
    case NormKind::l2: return g.norm();
    case NormKind::linf: return g.cwiseAbs().sum();
    case NormKind::l1: return g.cwiseAbs().maxCoeff();
    case NormKind::lp: return scaled_lp_norm(g, n.p / (n.p - 1.0));
    case NormKind::spectral: {
      double s = 0.0;
      for (const auto& b : blocks) {
        Eigen::Map<const Mat> G(g.data() + b.offset, b.rows, b.cols);
        if (b.rows == 1 || b.cols == 1) s += G.norm();
        else s += Eigen::JacobiSVD<Mat>(G).singularValues().sum();
      }
      return s;
    }
  }
  return 0.0;
}

enum class Optimizer : int { steepest = 0, signum = 1, adam = 2 };

// One algorithm: optimizer, geometry and step-size rule.
struct AlgorithmSpec {
  Optimizer optimizer = Optimizer::steepest;
  NormSpec norm;            // steepest: the geometry; also the margin/alignment norm
  bool normalized = true;   // steepest only
  double lr = 0.1;
  Schedule schedule = Schedule::constant;
  double decay_k0 = 100.0;  // power: lr * (1 + k / k0)^(-a)
  double decay_power = 0.5;
  double lr_growth = 1.1;   // loss: after an accepted step
  double lr_backoff = 0.5;  // loss: after a rejected (loss-increasing) step
  int max_retries = 60;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam / signum (beta1 only)
};

struct SteepestOptions {
  std::int64_t steps = 1000;
  double target_log_loss = -std::numeric_limits<double>::infinity();  // stop when log(Loss) <= this
  std::vector<std::int64_t> record_steps;  // increasing step indices to record (plus first and last)
  std::int64_t record_every = 0;
  // flow only
  AdaptiveOptions adaptive;
};

// Margins, smoothed margin and alignment of a state (the diagnostics).
//   margin_p     = min_i q_i / ||theta||_p^L      (p = l2, linf, l1, spectral for mlp)
//   smoothed     = log(1/Loss) / ||theta||^L       (exp; logistic: log(1/(e^Loss - 1)))
//   alignment    = 1 - <theta, -g> / (||theta|| ||g||_*)   in the algorithm's norm
inline std::vector<std::string> steepest_diagnostic_names(const HomogeneousSpec& spec) {
  std::vector<std::string> n{"accuracy", "margin_l2", "margin_linf", "margin_l1"};
  if (spec.kind == ModelKind::mlp) n.push_back("margin_spectral");
  n.insert(n.end(), {"smoothed_margin", "alignment", "param_norm"});
  return n;
}

inline void steepest_diagnostics(HomogeneousModel& model, LossKind loss, const NormSpec& alg_norm,
                                 const Eigen::Ref<const Vec>& theta, Vec& gbuf, Vec& q, double* out) {
  double log_loss;
  gbuf.resize(theta.size());
  const bool ok = model.evaluate(theta, loss, log_loss, gbuf, q);
  const double L = model.degree();
  const double qmin = q.minCoeff();
  int k = 0;
  out[k++] = static_cast<double>((q.array() > 0.0).count()) / static_cast<double>(q.size());
  const std::vector<NormKind> kinds = model.spec().kind == ModelKind::mlp
                                         ? std::vector<NormKind>{NormKind::l2, NormKind::linf, NormKind::l1, NormKind::spectral}
                                         : std::vector<NormKind>{NormKind::l2, NormKind::linf, NormKind::l1};
  for (NormKind nk : kinds) out[k++] = qmin / std::pow(param_norm(NormSpec{nk, 2.0}, theta, model.blocks()), L);
  const double nrm = param_norm(alg_norm, theta, model.blocks());
  out[k++] = smoothed_margin_numerator(log_loss, loss) / std::pow(nrm, L);
  const double dn = ok ? dual_norm(alg_norm, gbuf, model.blocks()) : std::numeric_limits<double>::quiet_NaN();
  out[k++] = 1.0 - (-theta.dot(gbuf)) / (nrm * dn);
  out[k++] = nrm;
}

// One run of a discrete algorithm (steepest descent, Signum or Adam), in the
// log domain throughout.  The state passed to the driver is theta; optimizer
// moments live here, stored as m = exp(sm) * mt and v = exp(sv) * vt so that
// they survive losses below the double range.
class SteepestRun {
 public:
  SteepestRun(const ClassificationProblem& prob, const HomogeneousSpec& spec, LossKind loss, const AlgorithmSpec& alg)
      : model_(prob, spec), loss_(loss), alg_(alg) {
    const Index P = model_.n_params();
    g_.resize(P);
    g_new_.resize(P);
    dir_.resize(P);
    if (alg_.optimizer != Optimizer::steepest) {
      mt_ = Vec::Zero(P);
      vt_ = Vec::Zero(P);
    }
  }

  HomogeneousModel& model() { return model_; }

  // Evaluates at the start; returns the log-loss.
  double start(const Eigen::Ref<const Vec>& theta, std::int64_t& evals) {
    ok_ = model_.evaluate(theta, loss_, log_loss_, g_, q_);
    evals += 1;
    c_ = 1.0;
    return ok_ ? log_loss_ : std::numeric_limits<double>::quiet_NaN();
  }

  // Step k (0-based) from theta (evaluated in start / the last step) in
  // place; returns the new log-loss (NaN when anything turned non-finite)
  // and adds the step size used to t.
  double step(Eigen::Ref<Vec> theta, std::int64_t k, std::int64_t& evals, double& t) {
    double lr = alg_.lr;
    if (alg_.schedule == Schedule::power) lr = power_decay(alg_.lr, k, alg_.decay_k0, alg_.decay_power);
    switch (alg_.optimizer) {
      case Optimizer::steepest: {
        const double dual = steepest_direction(alg_.norm, g_, model_.blocks(), dir_);
        if (alg_.schedule == Schedule::loss) return loss_based_step(theta, evals, t);
        double mult;
        if (alg_.normalized) mult = dual > 0 ? lr / dual : 0.0;
        else mult = std::exp(std::log(lr) + log_loss_);
        theta -= mult * dir_;
        t += lr;
        break;
      }
      case Optimizer::signum: {
        update_first_moment();
        theta -= lr * mt_.array().sign().matrix();
        t += lr;
        break;
      }
      case Optimizer::adam: {
        update_first_moment();
        // v = beta2 v + (1 - beta2) g^2 with g = exp(log_loss) g~: scale exp(2 log_loss)
        const double s_new = std::max(sv_ + std::log(alg_.beta2), 2.0 * log_loss_);
        const double a = adam_k_ == 1 ? 0.0 : alg_.beta2 * std::exp(sv_ - s_new);
        vt_ = a * vt_ + ((1.0 - alg_.beta2) * std::exp(2.0 * log_loss_ - s_new)) * g_.cwiseAbs2();
        sv_ = s_new;
        const double kk = static_cast<double>(adam_k_);
        const double bc1 = 1.0 - std::pow(alg_.beta1, kk), bc2 = 1.0 - std::pow(alg_.beta2, kk);
        // m_hat / (sqrt(v_hat) + eps) = e^{sm - sv/2} mt/bc1 / (sqrt(vt/bc2) + eps e^{-sv/2})
        const double ratio = std::exp(sm_ - 0.5 * sv_);
        // eps e^{-sv/2} may overflow to inf (the step is then 0); eps = 0 stays exactly 0
        const double eps_scaled = alg_.eps == 0.0 ? 0.0 : alg_.eps * std::exp(-0.5 * sv_);
        if (std::isinf(eps_scaled)) {
          dir_.setZero();
        } else {
          dir_ = ((mt_.array() / bc1) / ((vt_.array() / bc2).sqrt() + eps_scaled)).matrix() * ratio;
          for (Index i = 0; i < dir_.size(); ++i)
            if (vt_(i) == 0.0 && eps_scaled == 0.0) dir_(i) = 0.0;  // 0/0 with eps = 0: no move
        }
        theta -= lr * dir_;
        t += lr;
        break;
      }
    }
    ok_ = model_.evaluate(theta, loss_, log_loss_, g_, q_);
    evals += 1;
    return ok_ ? log_loss_ : std::numeric_limits<double>::quiet_NaN();
  }

  double current_lr_factor() const { return c_; }
  // The loss-based schedule found no decrease in max_retries + 1 attempts
  // (the state was kept): the run cannot go on.
  bool stalled() const { return stalled_; }

 private:
  void update_first_moment() {
    adam_k_ += 1;
    const double s_new = adam_k_ == 1 ? log_loss_ : std::max(sm_ + std::log(alg_.beta1 > 0 ? alg_.beta1 : 1e-300), log_loss_);
    const double a = adam_k_ == 1 ? 0.0 : alg_.beta1 * std::exp(sm_ - s_new);
    mt_ = a * mt_ + ((1.0 - alg_.beta1) * std::exp(log_loss_ - s_new)) * g_;
    sm_ = s_new;
    if (adam_k_ == 1) sv_ = 2.0 * log_loss_ + std::log(alg_.beta2);
  }

  // Unnormalized steepest descent with lr_k = lr0 c_k / Loss_k: the update is
  // lr0 c_k g~#.  A step that does not decrease the loss is retried with
  // c <- c * lr_backoff; an accepted one sets c <- c * lr_growth.
  double loss_based_step(Eigen::Ref<Vec> theta, std::int64_t& evals, double& t) {
    theta_old_ = theta;
    const double old = log_loss_;
    for (int attempt = 0; attempt <= alg_.max_retries; ++attempt) {
      const double mult = alg_.lr * c_;
      theta = theta_old_ - mult * dir_;
      double ll;
      const bool ok = model_.evaluate(theta, loss_, ll, g_new_, q_);
      evals += 1;
      if (ok && ll < old) {
        log_loss_ = ll;
        g_.swap(g_new_);
        t += mult;
        c_ *= alg_.lr_growth;
        return ll;
      }
      c_ *= alg_.lr_backoff;
    }
    // no decrease found: keep the old state (the loss is at its floor in
    // floating point); its loss and gradient are still those of theta_old_,
    // and the run ends as stalled
    theta = theta_old_;
    stalled_ = true;
    return log_loss_;
  }

  HomogeneousModel model_;
  LossKind loss_;
  AlgorithmSpec alg_;
  Vec g_, g_new_, dir_, q_, mt_, vt_, theta_old_;
  double log_loss_ = 0.0, sm_ = 0.0, sv_ = 0.0, c_ = 1.0;
  std::int64_t adam_k_ = 0;
  bool ok_ = true, stalled_ = false;
};

// Runs one discrete algorithm for opt.steps steps (or to the target
// log-loss); a step whose loss or state is non-finite ends the run as
// diverged with the last finite state.  History channels: step, t, log_loss,
// n_grad_evals, wall_time, then the diagnostics (a RunBook with a step
// channel; the step count is the record's n_steps).
inline RunRecord run_steepest_discrete(const ClassificationProblem& prob, const HomogeneousSpec& spec, LossKind loss,
                                       const AlgorithmSpec& alg, const Vec& theta0, const SteepestOptions& opt) {
  SteepestRun run(prob, spec, loss, alg);
  const NormSpec alg_norm = alg.optimizer == Optimizer::steepest ? alg.norm : NormSpec{NormKind::linf, 2.0};
  Vec theta = theta0, prev = theta0, gbuf, q;
  auto diag = [&](const Eigen::Ref<const Vec>& z, int /*id*/, double* out) {
    steepest_diagnostics(run.model(), loss, alg_norm, z, gbuf, q, out);
  };
  RunBook<decltype(diag)> book(1, steepest_diagnostic_names(spec), diag, BookChannels{"log_loss", true});
  RunRecord& rec = book.rec(0);
  double t = 0.0;
  std::size_t next_rec = 0;
  double ll = run.start(theta, rec.n_grad_evals);
  Status status = Status::running;
  if (!std::isfinite(ll)) status = Status::diverged;
  book.record(0, theta, t, ll);
  while (status == Status::running) {
    book.poll();
    if (ll <= opt.target_log_loss) {
      status = Status::converged;
      break;
    }
    if (rec.n_steps >= opt.steps) {
      status = Status::max_steps;
      break;
    }
    prev = theta;
    const double prev_ll = ll;
    const double prev_t = t;
    ll = run.step(theta, rec.n_steps, rec.n_grad_evals, t);
    if (run.stalled()) {  // no step was taken: theta, ll and t are unchanged
      status = Status::stalled;
      break;
    }
    if (!std::isfinite(ll) || !theta.allFinite()) {
      theta = prev;
      ll = prev_ll;
      t = prev_t;
      status = Status::diverged;
      break;
    }
    const std::int64_t k = ++rec.n_steps;
    bool due = opt.record_every > 0 && k % opt.record_every == 0;
    while (next_rec < opt.record_steps.size() && opt.record_steps[next_rec] <= k) {
      if (opt.record_steps[next_rec] == k) due = true;
      ++next_rec;
    }
    if (due) book.record(0, theta, t, ll);
  }
  book.finish(0, status, theta, t, ll);
  return std::move(book.take()[0]);
}

// The flow d theta/dt = -Loss g~# (unnormalized) or -g~#/||g~||_* (normalized)
// for the smooth geometries (l2, lp), by the shared adaptive integrator.  The
// integrator's loss channel carries the log-loss.
class SteepestFlowModel {
 public:
  SteepestFlowModel(const ClassificationProblem& prob, const HomogeneousSpec& spec, LossKind loss, const AlgorithmSpec& alg)
      : model_(prob, spec), loss_(loss), alg_(alg) {}
  Index state_dim() const { return model_.n_params(); }
  void field(const Mat& Z, const std::vector<int>& /*ids*/, Mat& F, Vec& loss) {
    F.resize(Z.rows(), Z.cols());
    loss.resize(Z.cols());
    g_.resize(Z.rows());
    for (Index c = 0; c < Z.cols(); ++c) {
      double ll;
      if (!model_.evaluate(Z.col(c), loss_, ll, g_, q_)) {
        F.col(c).setConstant(std::numeric_limits<double>::quiet_NaN());
        loss(c) = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      const double dual = steepest_direction(alg_.norm, g_, model_.blocks(), F.col(c));
      const double mult = alg_.normalized ? (dual > 0 ? 1.0 / dual : 0.0) : std::exp(ll);
      F.col(c) *= -mult;
      loss(c) = ll;
    }
  }
  void loss(const Mat& Z, const std::vector<int>& /*ids*/, Vec& loss) {
    loss.resize(Z.cols());
    for (Index c = 0; c < Z.cols(); ++c) loss(c) = model_.log_loss(Z.col(c), loss_, q_);
  }
  bool projects() const { return false; }
  void project(Eigen::Ref<Vec>, int) const {}
  std::vector<std::string> diagnostic_names() const { return steepest_diagnostic_names(model_.spec()); }
  void diagnostics(const Eigen::Ref<const Vec>& z, int /*id*/, double* out) {
    steepest_diagnostics(model_, loss_, alg_.norm, z, gd_, qd_, out);
  }

 private:
  HomogeneousModel model_;
  LossKind loss_;
  AlgorithmSpec alg_;
  Vec g_, q_, gd_, qd_;
};

// One run of a batch: which problem, model, loss, algorithm and start.
struct SteepestRunSpec {
  int problem = 0;
  HomogeneousSpec spec;
  LossKind loss = LossKind::exponential;
  AlgorithmSpec alg;
  Vec theta0;
  bool flow = false;  // the adaptive flow instead of the discrete algorithm
};

// Runs every spec over up to num_threads threads.  Each run is its own block
// (its arithmetic never depends on other runs), so the results are bitwise
// the same for any thread count.
inline std::vector<RunRecord> run_steepest_batch(const std::vector<ClassificationProblem>& problems,
                                                 const std::vector<SteepestRunSpec>& runs, const SteepestOptions& opt,
                                                 int num_threads) {
  for (const auto& r : runs) {
    const auto& prob = problem_of(problems, r.problem);
    if (r.theta0.size() != r.spec.n_params(prob.X.cols()))
      throw InvalidArgument("theta0 has the wrong number of parameters for its model");
    if (r.flow && r.alg.optimizer != Optimizer::steepest)
      throw InvalidArgument("the flow is defined for steepest descent only");
    if (r.flow && !(r.alg.norm.kind == NormKind::l2 || r.alg.norm.kind == NormKind::lp))
      throw InvalidArgument("the flow needs a smooth direction map (norm l2 or lp)");
    if (r.alg.schedule == Schedule::loss && (r.alg.optimizer != Optimizer::steepest || r.alg.normalized))
      throw InvalidArgument("the loss-based schedule is for unnormalized steepest descent");
  }
  // Each run is its own block.
  auto same = [](std::size_t, std::size_t) { return false; };
  return run_batch(runs.size(), 1, num_threads, same, [&](std::size_t k, std::size_t, std::vector<RunRecord>& out) {
    const SteepestRunSpec& r = runs[k];
    const auto& prob = problems[static_cast<std::size_t>(r.problem)];
    if (!r.flow) {
      out.push_back(run_steepest_discrete(prob, r.spec, r.loss, r.alg, r.theta0, opt));
      return;
    }
    SteepestFlowModel model(prob, r.spec, r.loss, r.alg);
    AdaptiveOptions a = opt.adaptive;
    a.tol = opt.target_log_loss;
    a.stall_steps = 0;  // the log-loss is negative: the relative stall rule does not apply
    Mat Z0 = r.theta0;
    run_dopri5(model, Z0, a, out);
  });
}

}  // namespace implicitbias
