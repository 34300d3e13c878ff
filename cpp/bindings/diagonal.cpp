// Bindings for diagonal linear networks: the typed run and option structs and
// one batched entry point.
#include "common.hpp"

#include <implicitbias/diagonal_batch.hpp>

namespace implicitbias::bindings {

namespace {

py::list diagonal_batch(const std::vector<SensingProblem>& problems, const std::vector<DiagonalRun>& runs,
                        const BatchOptions& options) {
  for (const auto& p : problems) {
    if (p.A.rows() != p.y.size()) throw InvalidArgument("y must have one entry per row of A");
    if (p.x_star.size() != 0 && p.x_star.size() != p.A.cols())
      throw InvalidArgument("x_star must have one entry per column of A");
  }
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

  m.def("diagonal_batch", &diagonal_batch, py::arg("problems"), py::arg("runs"), py::arg("options"),
        "Run a batch of diagonal-network runs (descent or flow) over OpenMP threads with the GIL\n"
        "released; one RunRecord per run. Low level: use implicitbias.diagonal.fit / fit_many.");
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
