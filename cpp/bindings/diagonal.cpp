// Bindings for diagonal linear networks: one batched entry point.
#include "common.hpp"

#include <pybind11/eigen.h>

#include <implicitbias/diagonal_batch.hpp>

namespace implicitbias::bindings {

namespace {

std::vector<py::dict> diagonal_batch(const std::vector<Mat>& A, const std::vector<Vec>& y,
                                     const std::vector<Vec>& x_star, const std::vector<int>& problem,
                                     const std::vector<int>& depth, const std::vector<bool>& nonnegative,
                                     const std::vector<int>& weight_norm, const std::vector<Vec>& init_scale,
                                     const std::vector<double>& lr_ratio, const std::vector<double>& lr,
                                     const std::string& method, const std::string& solver, std::int64_t steps, std::int64_t record_every,
                                     const std::vector<double>& tol, double rtol, double atol, double t_max, std::int64_t max_steps,
                                     const std::vector<double>& record_times, double h0, std::int64_t stall_steps, std::int64_t jac_every,
                                     std::size_t block_size,
                                     int num_threads, bool gd_lanes) {
  const std::size_t n_prob = A.size();
  if (y.size() != n_prob || x_star.size() != n_prob || tol.size() != n_prob)
    throw InvalidArgument("A, y, x_star and tol must be lists of equal length");
  std::vector<SensingProblem> problems(n_prob);
  for (std::size_t p = 0; p < n_prob; ++p) {
    if (A[p].rows() != y[p].size()) throw InvalidArgument("y must have one entry per row of A");
    if (x_star[p].size() != 0 && x_star[p].size() != A[p].cols())
      throw InvalidArgument("x_star must have one entry per column of A");
    problems[p] = SensingProblem{A[p], y[p], x_star[p], tol[p]};
  }
  const std::size_t n_runs = problem.size();
  for (std::size_t n : {depth.size(), nonnegative.size(), weight_norm.size(), init_scale.size(),
                        lr_ratio.size(), lr.size()})
    if (n != n_runs) throw InvalidArgument("per-run argument lists must have equal length");
  std::vector<DiagonalRun> runs(n_runs);
  for (std::size_t k = 0; k < n_runs; ++k) {
    if (weight_norm[k] < 0 || weight_norm[k] > 2) throw InvalidArgument("weight_norm code out of range");
    runs[k].problem = problem[k];
    runs[k].spec = DiagonalSpec{depth[k], static_cast<bool>(nonnegative[k]), static_cast<WeightNorm>(weight_norm[k])};
    runs[k].init_scale = init_scale[k];
    runs[k].lr_ratio = lr_ratio[k];
    runs[k].lr = lr[k];
  }
  BatchOptions opt;
  if (method == "gd") opt.method = Method::gd;
  else if (method == "flow") opt.method = Method::flow;
  else throw InvalidArgument("method must be 'gd' or 'flow'");
  if (solver == "rosw") opt.solver = Solver::rosw;
  else if (solver == "dopri5") opt.solver = Solver::dopri5;
  else throw InvalidArgument("solver must be 'rosw' or 'dopri5'");
  opt.fixed.steps = steps;
  opt.fixed.record_every = record_every;
  opt.adaptive.rtol = rtol;
  opt.adaptive.atol = atol;
  opt.adaptive.t_max = t_max;
  opt.adaptive.max_steps = max_steps;
  opt.adaptive.record_times = record_times;
  opt.adaptive.record_every = record_every;
  opt.adaptive.h0 = h0;
  opt.adaptive.stall_steps = stall_steps;
  opt.adaptive.jac_every = jac_every;
  opt.block_size = block_size;
  opt.num_threads = num_threads;
  opt.gd_lanes = gd_lanes;

  std::vector<RunRecord> records;
  {
    py::gil_scoped_release release;
    records = run_diagonal_batch(problems, runs, opt);
  }
  std::vector<py::dict> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(record_to_dict(r));
  return out;
}

}  // namespace

void register_diagonal(py::module_& m) {
  m.def("diagonal_batch", &diagonal_batch, py::arg("A"), py::arg("y"), py::arg("x_star"), py::arg("problem"),
        py::arg("depth"), py::arg("nonnegative"), py::arg("weight_norm"), py::arg("init_scale"),
        py::arg("lr_ratio"), py::arg("lr"), py::arg("method"), py::arg("solver"), py::arg("steps"), py::arg("record_every"),
        py::arg("tol"), py::arg("rtol"), py::arg("atol"), py::arg("t_max"), py::arg("max_steps"),
        py::arg("record_times"), py::arg("h0"), py::arg("stall_steps"), py::arg("jac_every"), py::arg("block_size"), py::arg("num_threads"), py::arg("gd_lanes") = true,
        "Run a batch of diagonal-network runs (gradient descent or Dormand-Prince flow) over\n"
        "OpenMP threads with the GIL released; returns one dict per run. Low level: use\n"
        "implicitbias.diagonal.fit / fit_many, which validate their input.");
}

}  // namespace implicitbias::bindings
