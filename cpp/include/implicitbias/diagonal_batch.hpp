// The batch entry of diagonal networks: many runs (problems, specs, starts,
// step sizes) through GD, the lanes GD kernel or the flow, in blocks over
// threads (parallel.hpp).
#pragma once

#include "bdf.hpp"
#include "diagonal.hpp"
#include "diagonal_lanes.hpp"
#include "diagonal_sgd.hpp"
#include "diagonal_sgf.hpp"
#include "dual_flow.hpp"
#include "flow.hpp"
#include "parallel.hpp"
#include "rodas.hpp"
#include "types.hpp"

#include <vector>

namespace implicitbias {

// sgd, label_noise_sgd, sam: the stochastic / accelerated descent of
// diagonal_sgd.hpp (plain model), with the run's StochasticSpec.
// sgf: the stochastic gradient flow of diagonal_sgf.hpp (depth 2, plain model;
// lr, sde_step and seed from the run's StochasticSpec).
enum class Method : int { descent = 0, flow = 1, sgd = 2, label_noise_sgd = 3, sam = 4, sgf = 5 };

inline bool is_stochastic(Method m) { return m == Method::sgd || m == Method::label_noise_sgd || m == Method::sam; }
// The coordinates follow from the solver and the model, they are not a
// separate choice: automatic is bdf.  bdf: the plain flow in dual coordinates
// (dual_flow.hpp) with the variable-order BDF (bdf.hpp); with weight
// normalization, the BDF on the polar system in log-polar coordinates
// (LogPolarModel, diagonal.hpp).  rodas5: the plain flow in dual coordinates with
// Rodas5 (rodas.hpp), which needs the exact Jacobian that only the dual
// system has (on the 2N-dimensional or polar system, with the Gauss-Newton
// W-matrix, it lost its order: 1e-5 errors at rtol 1e-10), so plain runs
// only.  rosw and dopri5: the 2N-dimensional system (polar under weight
// normalization).  (3 was the old name "dual" of rodas5.)
enum class Solver : int { dopri5 = 0, rosw = 1, rodas5 = 2, automatic = 4, bdf = 5 };

inline constexpr const char* kRodas5WeightNorm =
    "solver 'rodas5' integrates the plain flow in dual coordinates, where its exact Jacobian exists; with weight "
    "normalization use solver 'bdf' (the default) or 'rosw'";

struct DiagonalRun {
  int problem = 0;
  DiagonalSpec spec;
  Vec init_scale;   // length N, positive
  double lr_ratio = 1.0;
  double lr = 0.0;  // descent only
  StochasticSpec stochastic;  // sgd, label_noise_sgd, sam (its kind follows the method)
};

struct BatchOptions {
  Method method = Method::flow;
  Solver solver = Solver::automatic;
  FixedStepOptions fixed;
  AdaptiveOptions adaptive;
  std::size_t block_size = 8;
  int num_threads = 0;
  // plain GD blocks of <= 8 runs take the SIMD-lanes kernel (diagonal_lanes.hpp)
  bool gd_lanes = true;
  // record x, u and v at every record point (the models' state channels,
  // state_channel_names in diagonal.hpp; flows: from the dense output)
  bool record_state = false;
  // the sharpness channels (record_sharpness in lanczos.hpp, DiagonalSharpness)
  SharpnessOptions sharpness;
};

// The flow of one block with the chosen solver.
inline void run_diagonal_flow(const SensingProblem& prob, const DiagonalSpec& spec, const std::vector<DiagonalRun>& runs,
                              std::size_t lo, std::size_t hi, DiagonalBlockModel& model, const Mat& Z0, Solver solver,
                              const AdaptiveOptions& adaptive, std::vector<RunRecord>& out,
                              bool record_state = false, const SharpnessOptions& sharpness = {}) {
  if (solver == Solver::automatic) solver = Solver::bdf;
  if (solver == Solver::bdf && spec.weight_norm != WeightNorm::none) {
    // no dual reduction: the BDF on the polar system in log-polar
    // coordinates (LogPolarModel, diagonal.hpp); the records' final states
    // are the polar [rho; w_hat]
    LogPolarModel lp(prob, spec, model.lr_ratios(), model);
    Mat L0(Z0.rows(), Z0.cols());
    for (Index c = 0; c < Z0.cols(); ++c) L0.col(c) = lp.from_polar(Z0.col(c));
    run_bdf(lp, L0, adaptive, out);
    for (auto& rec : out)
      if (rec.state.size() == L0.rows()) rec.state = lp.to_polar(rec.state);
  } else if (solver == Solver::rodas5 || solver == Solver::bdf) {
    Mat alpha(prob.A.cols(), static_cast<Index>(hi - lo));
    for (std::size_t k = lo; k < hi; ++k) alpha.col(static_cast<Index>(k - lo)) = runs[k].init_scale;
    if (solver == Solver::bdf)
      run_dual_block(prob, spec, alpha, adaptive, out,
                     [&adaptive](auto& m, const Mat& S0, const AdaptiveOptions& o, std::vector<RunRecord>& r) {
                       AdaptiveOptions ob = o;
                       ob.h0 = adaptive.h0;  // each run its own first step (bdf.hpp), not the block's smallest
                       run_bdf(m, S0, ob, r);
                     }, record_state, sharpness);
    else
      run_dual_block(prob, spec, alpha, adaptive, out,
                     [](auto& m, const Mat& S0, const AdaptiveOptions& o, std::vector<RunRecord>& r) { run_rodas5(m, S0, o, r); },
                     record_state, sharpness);
  } else if (solver == Solver::rosw) {
    run_rosw(model, Z0, adaptive, out);
  } else {
    run_dopri5(model, Z0, adaptive, out);
  }
}

// Runs with the same problem and model spec form blocks (run_grouped_batch); a block
// is one DiagonalBlockModel advanced by run_fixed_step (or the lanes kernel),
// run_rosw or run_dopri5.
inline std::vector<RunRecord> run_diagonal_batch(const std::vector<SensingProblem>& problems,
                                                 const std::vector<DiagonalRun>& runs,
                                                 const BatchOptions& opt) {
  for (const auto& r : runs) {
    const SensingProblem& prob = problem_of(problems, r.problem);
    if (r.spec.depth < 2) throw InvalidArgument("depth must be >= 2");
    if (r.spec.nonnegative && r.spec.weight_norm == WeightNorm::separate)
      throw InvalidArgument("weight_norm='separate' needs the signed model (the nonnegative model has one vector)");
    if (r.init_scale.size() != prob.A.cols())
      throw InvalidArgument("init_scale length must equal the number of columns of A");
    if (opt.method == Method::flow && opt.solver == Solver::rodas5 && r.spec.weight_norm != WeightNorm::none)
      throw InvalidArgument(kRodas5WeightNorm);
    if (is_stochastic(opt.method)) {
      const StochasticSpec& ss = r.stochastic;
      if (r.spec.weight_norm != WeightNorm::none)
        throw InvalidArgument("methods 'sgd', 'label_noise_sgd' and 'sam' train the plain model (weight_norm none)");
      if (!(ss.rule.lr > 0.0) || !std::isfinite(ss.rule.lr)) throw InvalidArgument("lr must be positive");
      if (ss.rule.schedule == Schedule::loss) throw InvalidArgument("schedule must be 'constant' or 'power'");
      if (ss.batch_size < 0 || ss.batch_size > prob.A.rows())
        throw InvalidArgument("batch_size must be between 1 and the number of rows of A");
      if (!(ss.momentum >= 0.0 && ss.momentum < 1.0)) throw InvalidArgument("momentum must be in [0, 1)");
      if (!(ss.strength >= 0.0) || !std::isfinite(ss.strength))
        throw InvalidArgument("sam_radius / label_noise_std must be >= 0");
      if (ss.warmup_steps() < 0) throw InvalidArgument("warmup_steps must be >= 0");
    }
    if (opt.method == Method::sgf) {
      const StochasticSpec& ss = r.stochastic;
      if (r.spec.weight_norm != WeightNorm::none || r.spec.depth != 2)
        throw InvalidArgument("method 'sgf' integrates the plain depth-2 model (weight_norm none, depth 2)");
      if (!(ss.rule.lr > 0.0) || !std::isfinite(ss.rule.lr)) throw InvalidArgument("lr must be positive");
      if (!(ss.sde_step > 0.0) || !std::isfinite(ss.sde_step)) throw InvalidArgument("sde_step must be positive");
      if (sgf_levy_terms(prob.A.rows(), ss.sde_step) > kSgfMaxLevyTerms)
        throw InvalidArgument("sde_step is too small for the Levy-area series (more than 10^6 terms per step)");
    }
  }
  // the grouping key: runs of one problem and model spec share blocks
  auto key = [](const DiagonalRun& r) {
    return std::make_tuple(r.problem, r.spec.depth, r.spec.nonnegative, static_cast<int>(r.spec.weight_norm));
  };
  return run_grouped_batch(runs, opt.block_size, opt.num_threads, key,
                           [&](const std::vector<DiagonalRun>& runs, std::size_t lo, std::size_t hi,
                               std::vector<RunRecord>& out) {
    const Index K = static_cast<Index>(hi - lo);
    const DiagonalRun& first = runs[lo];
    const SensingProblem& prob = problems[static_cast<std::size_t>(first.problem)];
    Vec kappa(K), lr(K);
    Mat Z0(DiagonalLayout::make(first.spec, prob.A.cols()).dim(), K);
    for (Index c = 0; c < K; ++c) {
      const DiagonalRun& r = runs[lo + static_cast<std::size_t>(c)];
      kappa(c) = r.lr_ratio;
      lr(c) = r.lr;
      Z0.col(c) = diagonal_initial_state(r.spec, r.init_scale);
    }
    const double tol = prob.tol;
    if (opt.method == Method::sgf) {
      std::vector<StochasticSpec> specs;
      std::vector<Vec> alphas;
      for (std::size_t k = lo; k < hi; ++k) {
        specs.push_back(runs[k].stochastic);
        alphas.push_back(runs[k].init_scale);
      }
      StochasticOptions so{opt.fixed.steps, tol, opt.fixed.record_every};
      run_diagonal_sgf(prob, first.spec, specs, alphas, so, out, opt.record_state, opt.sharpness);
      return;
    }
    if (is_stochastic(opt.method)) {
      std::vector<StochasticSpec> specs;
      std::vector<Vec> alphas;
      const DescentKind kind = opt.method == Method::sgd ? DescentKind::sgd
                               : opt.method == Method::sam ? DescentKind::sam : DescentKind::label_noise_sgd;
      for (std::size_t k = lo; k < hi; ++k) {
        specs.push_back(runs[k].stochastic);
        specs.back().kind = kind;
        alphas.push_back(runs[k].init_scale);
      }
      StochasticOptions so{opt.fixed.steps, tol, opt.fixed.record_every};
      run_diagonal_stochastic(prob, first.spec, specs, alphas, so, out, opt.record_state, opt.sharpness);
      return;
    }
    DiagonalBlockModel model(prob, first.spec, kappa, opt.record_state, opt.sharpness);
    if (opt.method == Method::descent) {
      FixedStepOptions fixed = opt.fixed;
      fixed.tol = tol;
      if (opt.gd_lanes && lanes_applicable(first.spec, K)) run_diagonal_gd_lanes(model, prob, first.spec, Z0, lr, fixed, out);
      else run_fixed_step(model, Z0, lr, fixed, out);
    } else {
      AdaptiveOptions adaptive = opt.adaptive;
      adaptive.tol = tol;
      run_diagonal_flow(prob, first.spec, runs, lo, hi, model, Z0, opt.solver, adaptive, out, opt.record_state,
                        opt.sharpness);
    }
  });
}

}  // namespace implicitbias
