// Bindings for diagonal linear networks: the typed run and option structs and
// one batched entry point.
#include "common.hpp"

#include <implicitbias/diagonal_batch.hpp>

#include <cmath>
#include <map>

namespace implicitbias::bindings {

namespace {

void check_problems(const std::vector<SensingProblem>& problems) {
  for (const auto& p : problems) {
    if (p.A.rows() != p.y.size()) throw InvalidArgument("y must have one entry per row of A");
    if (p.x_star.size() != 0 && p.x_star.size() != p.A.cols())
      throw InvalidArgument("x_star must have one entry per column of A");
    if (!p.A.allFinite() || !p.y.allFinite() || !p.x_star.allFinite())
      throw InvalidArgument("A, y and x_star must be finite");
  }
}

// The runs of a batch as columns (one entry per run), made into DiagonalRun structs in C++ (one call
// per batch instead of one Python object per run).
struct DiagonalColumns {
  Eigen::VectorXi problem, depth, weight_norm;  // weight_norm: WeightNorm codes
  bool nonnegative = false;
  Vec init_scale;                               // alpha of each run (one value for every coordinate) ...
  std::map<int, Vec> init_vectors;              // ... unless the run has a per-coordinate vector here
  Vec lr_ratio, lr;                             // lr: 0 for a flow
  std::vector<StochasticSpec> stochastic;       // empty, or one per run (the stochastic methods)
};

bool positive_finite(double v) { return v > 0.0 && std::isfinite(v); }

std::vector<DiagonalRun> diagonal_runs(const std::vector<SensingProblem>& problems, const DiagonalColumns& c) {
  const Index K = c.problem.size();
  if (c.depth.size() != K || c.weight_norm.size() != K || c.init_scale.size() != K || c.lr_ratio.size() != K ||
      c.lr.size() != K || (!c.stochastic.empty() && static_cast<Index>(c.stochastic.size()) != K))
    throw InvalidArgument("every column of the runs must have one entry per run");
  for (const auto& [k, v] : c.init_vectors)
    if (k < 0 || k >= K) throw InvalidArgument("init_vectors refers to a run out of range");
  std::vector<DiagonalRun> runs(static_cast<std::size_t>(K));
  for (Index k = 0; k < K; ++k) {
    DiagonalRun& r = runs[static_cast<std::size_t>(k)];
    r.problem = c.problem(k);
    const Index n = problem_of(problems, r.problem).A.cols();
    const int wn = c.weight_norm(k);
    if (wn < static_cast<int>(WeightNorm::none) || wn > static_cast<int>(WeightNorm::separate))
      throw InvalidArgument("weight_norm code out of range");
    r.spec = DiagonalSpec{c.depth(k), c.nonnegative, static_cast<WeightNorm>(wn)};
    const auto given = c.init_vectors.find(static_cast<int>(k));
    if (given != c.init_vectors.end()) {
      r.init_scale = given->second;
      if (r.init_scale.size() != n) throw InvalidArgument("init_scale length must equal the number of columns of A");
      if (!(r.init_scale.array() > 0.0).all() || !r.init_scale.allFinite())
        throw InvalidArgument("init_scale must be positive and finite");
    } else {
      if (!positive_finite(c.init_scale(k))) throw InvalidArgument("init_scale must be positive and finite");
      r.init_scale = Vec::Constant(n, c.init_scale(k));
    }
    if (!positive_finite(c.lr_ratio(k))) throw InvalidArgument("lr_ratio must be positive and finite");
    if (!(c.lr(k) >= 0.0) || !std::isfinite(c.lr(k))) throw InvalidArgument("lr must be >= 0 and finite");
    r.lr_ratio = c.lr_ratio(k);
    r.lr = c.lr(k);
    if (!c.stochastic.empty()) r.stochastic = c.stochastic[static_cast<std::size_t>(k)];
  }
  return runs;
}

py::object diagonal_batch(const std::vector<SensingProblem>& problems, const DiagonalColumns& columns,
                          const BatchOptions& options) {
  check_problems(problems);
  const std::vector<DiagonalRun> runs = diagonal_runs(problems, columns);
  return run_released([&] { return run_diagonal_batch(problems, runs, options); });
}

// The batch indices and label-noise normals a stochastic run draws at `step`.
py::tuple diagonal_draws(std::uint64_t seed, std::int64_t step, Index n_rows, Index batch_size, bool epochs) {
  if (n_rows < 1) throw InvalidArgument("n_rows must be >= 1");
  if (batch_size < 0 || batch_size > n_rows) throw InvalidArgument("batch_size must be between 1 and n_rows (0: full)");
  if (step < 0) throw InvalidArgument("step must be >= 0");
  BatchSampler sampler(n_rows, batch_size, epochs, seed);
  std::vector<Index> idx;
  sampler.draw(step, idx);  // an epoch's permutation depends on the epoch only: drawn afresh here
  Vec xi;
  label_noise_draws(seed, step, static_cast<Index>(idx.size()), xi);
  Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> out(static_cast<Index>(idx.size()));
  for (std::size_t k = 0; k < idx.size(); ++k) out(static_cast<Index>(k)) = static_cast<std::int64_t>(idx[k]);
  return py::make_tuple(out, xi);
}

// The Brownian increments and Levy areas an SGF run draws at `step`.
py::tuple diagonal_sgf_draws(std::uint64_t seed, std::int64_t step, Index n_rows, double sde_step) {
  if (n_rows < 1) throw InvalidArgument("n_rows must be >= 1");
  if (!(sde_step > 0.0) || !std::isfinite(sde_step)) throw InvalidArgument("sde_step must be positive");
  if (step < 0) throw InvalidArgument("step must be >= 0");
  if (sgf_levy_terms(n_rows, sde_step) > kSgfMaxLevyTerms)
    throw InvalidArgument("sde_step is too small for the Levy-area series (more than 10^6 terms per step)");
  SgfDraws draws(n_rows, sde_step);
  Vec dW;
  Mat area;
  draws.draw(seed, step, dW, area);
  return py::make_tuple(dW, area, draws.terms());
}

}  // namespace

void register_diagonal(py::module_& m) {
  py::enum_<WeightNorm>(m, "WeightNorm", py::module_local(), "Polar coordinates of the diagonal network.")
      .value("none", WeightNorm::none)
      .value("joint", WeightNorm::joint)
      .value("separate", WeightNorm::separate);
  py::enum_<Method>(m, "Method", py::module_local(),
                    "Fixed-step descent, the gradient flow, or stochastic / accelerated descent.")
      .value("descent", Method::descent)
      .value("flow", Method::flow)
      .value("sgd", Method::sgd)
      .value("label_noise_sgd", Method::label_noise_sgd)
      .value("sam", Method::sam)
      .value("sgf", Method::sgf);
  py::enum_<Solver>(m, "Solver", py::module_local(), "The flow's integrator.")
      .value("rosw", Solver::rosw)
      .value("dopri5", Solver::dopri5)
      .value("rodas5", Solver::rodas5)
      .value("bdf", Solver::bdf)
      .value("automatic", Solver::automatic);

  py::class_<SensingProblem>(m, "SensingProblem", py::module_local(),
                             "A (M x N), y (M), optional x_star (N) and the loss at which runs stop (tol < 0: never).")
      .def(py::init<>())
      .def(py::init([](Mat A, Vec y, Vec x_star, double tol) {
             return SensingProblem{std::move(A), std::move(y), std::move(x_star), tol};
           }),
           py::kw_only(), py::arg("A"), py::arg("y"), py::arg("x_star"), py::arg("tol") = -1.0)
      .def_readwrite("A", &SensingProblem::A)
      .def_readwrite("y", &SensingProblem::y)
      .def_readwrite("x_star", &SensingProblem::x_star)
      .def_readwrite("tol", &SensingProblem::tol);
  py::class_<StochasticSpec>(m, "DiagonalStochastic", py::module_local(),
                             "Settings of a stochastic / accelerated descent run (diagonal_sgd.hpp).")
      .def(py::init<>())
      .def_property(
          "lr", [](const StochasticSpec& s) { return s.rule.lr; }, [](StochasticSpec& s, double v) { s.rule.lr = v; })
      .def_property(
          "schedule", [](const StochasticSpec& s) { return s.rule.schedule; },
          [](StochasticSpec& s, Schedule v) { s.rule.schedule = v; })
      .def_property(
          "decay_k0", [](const StochasticSpec& s) { return s.rule.decay_k0; },
          [](StochasticSpec& s, double v) { s.rule.decay_k0 = v; })
      .def_property(
          "decay_power", [](const StochasticSpec& s) { return s.rule.decay_power; },
          [](StochasticSpec& s, double v) { s.rule.decay_power = v; })
      .def_property(
          "warmup_steps", [](const StochasticSpec& s) { return s.rule.warmup_steps; },
          [](StochasticSpec& s, std::int64_t v) { s.rule.warmup_steps = v; })
      .def_readwrite("batch_size", &StochasticSpec::batch_size)
      .def_readwrite("epochs", &StochasticSpec::epochs)
      .def_readwrite("momentum", &StochasticSpec::momentum)
      .def_readwrite("nesterov", &StochasticSpec::nesterov)
      .def_readwrite("strength", &StochasticSpec::strength)
      .def_readwrite("sam_per_example", &StochasticSpec::sam_per_example)
      .def_readwrite("seed", &StochasticSpec::seed)
      .def_readwrite("sde_step", &StochasticSpec::sde_step);
  py::class_<DiagonalRun>(m, "DiagonalRun", py::module_local(), "One run of a diagonal-network batch.")
      .def(py::init<>())
      .def(py::init([](int problem, int depth, bool nonnegative, WeightNorm weight_norm, Vec init_scale,
                       double lr_ratio, double lr) {
             return DiagonalRun{problem, DiagonalSpec{depth, nonnegative, weight_norm}, std::move(init_scale),
                                lr_ratio, lr, StochasticSpec{}};
           }),
           py::kw_only(), py::arg("problem"), py::arg("depth"), py::arg("nonnegative"), py::arg("weight_norm"),
           py::arg("init_scale"), py::arg("lr_ratio"), py::arg("lr"))
      .def_readwrite("problem", &DiagonalRun::problem)
      .def_property(
          "depth", [](const DiagonalRun& r) { return r.spec.depth; }, [](DiagonalRun& r, int d) { r.spec.depth = d; })
      .def_property(
          "nonnegative", [](const DiagonalRun& r) { return r.spec.nonnegative; },
          [](DiagonalRun& r, bool b) { r.spec.nonnegative = b; })
      .def_property(
          "weight_norm", [](const DiagonalRun& r) { return r.spec.weight_norm; },
          [](DiagonalRun& r, WeightNorm w) { r.spec.weight_norm = w; })
      .def_readwrite("init_scale", &DiagonalRun::init_scale)
      .def_readwrite("lr_ratio", &DiagonalRun::lr_ratio)
      .def_readwrite("lr", &DiagonalRun::lr)
      .def_readwrite("stochastic", &DiagonalRun::stochastic);
  py::class_<BatchOptions>(m, "DiagonalBatchOptions", py::module_local(), "Options shared by a diagonal batch.")
      .def(py::init<>())
      .def_readwrite("method", &BatchOptions::method)
      .def_readwrite("solver", &BatchOptions::solver)
      .def_readwrite("fixed", &BatchOptions::fixed)
      .def_readwrite("adaptive", &BatchOptions::adaptive)
      .def_readwrite("block_size", &BatchOptions::block_size)
      .def_readwrite("num_threads", &BatchOptions::num_threads)
      .def_readwrite("gd_lanes", &BatchOptions::gd_lanes)
      .def_readwrite("record_state", &BatchOptions::record_state)
      .def_readwrite("sharpness", &BatchOptions::sharpness);

  py::class_<DiagonalColumns>(m, "DiagonalRuns", py::module_local(),
                              "The runs of a diagonal batch as columns, one entry per run (see DiagonalRun).")
      .def(py::init<>())
      .def(py::init([](Eigen::VectorXi problem, Eigen::VectorXi depth, Eigen::VectorXi weight_norm, bool nonnegative,
                       Vec init_scale, std::map<int, Vec> init_vectors, Vec lr_ratio, Vec lr,
                       std::vector<StochasticSpec> stochastic) {
             return DiagonalColumns{std::move(problem), std::move(depth), std::move(weight_norm), nonnegative,
                                    std::move(init_scale), std::move(init_vectors), std::move(lr_ratio), std::move(lr),
                                    std::move(stochastic)};
           }),
           py::kw_only(), py::arg("problem"), py::arg("depth"), py::arg("weight_norm"), py::arg("nonnegative"),
           py::arg("init_scale"), py::arg("init_vectors"), py::arg("lr_ratio"), py::arg("lr"),
           py::arg("stochastic") = std::vector<StochasticSpec>{})
      .def_readwrite("problem", &DiagonalColumns::problem)
      .def_readwrite("depth", &DiagonalColumns::depth)
      .def_readwrite("weight_norm", &DiagonalColumns::weight_norm)
      .def_readwrite("nonnegative", &DiagonalColumns::nonnegative)
      .def_readwrite("init_scale", &DiagonalColumns::init_scale)
      .def_readwrite("init_vectors", &DiagonalColumns::init_vectors)
      .def_readwrite("lr_ratio", &DiagonalColumns::lr_ratio)
      .def_readwrite("lr", &DiagonalColumns::lr)
      .def_readwrite("stochastic", &DiagonalColumns::stochastic);

  m.def("diagonal_batch", &diagonal_batch, py::arg("problems"), py::arg("runs"), py::arg("options"),
        "Run a batch of diagonal-network runs (descent or flow) over OpenMP threads with the GIL\n"
        "released; the runs as columns (DiagonalRuns); returns the RunRecords in the order of the runs.\n"
        "Low level: use implicitbias.diagonal.fit / fit_many.");
  m.def("diagonal_draws", &diagonal_draws, py::arg("seed"), py::arg("step"), py::arg("n_rows"), py::arg("batch_size"),
        py::arg("epochs"),
        "The batch indices (int64) and the standard normals of the label noise that a stochastic diagonal run\n"
        "with this seed draws at this step (batch_size 0: the full batch, rows in order). Low level: use\n"
        "implicitbias.diagonal.batch_draws.");
  m.def("diagonal_sgf_draws", &diagonal_sgf_draws, py::arg("seed"), py::arg("step"), py::arg("n_rows"),
        py::arg("sde_step"),
        "The Brownian increments (n_rows), Levy areas (n_rows x n_rows) and the number of series terms that\n"
        "step `step` of a stochastic-gradient-flow run with this seed draws. Low level: use\n"
        "implicitbias.diagonal.sgf_draws.");
}

}  // namespace implicitbias::bindings
