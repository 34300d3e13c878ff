// Bindings for deep matrix factorization: measurement operators, the exact
// Hessian trace and its gradient, Hessian-vector products, trace estimators
// (for this model and for a Python matvec callable), and batched training.
#include "common.hpp"

#include <pybind11/eigen.h>
#include <pybind11/functional.h>

#include <implicitbias/factorization.hpp>
#include <implicitbias/trace.hpp>

#include <memory>

namespace implicitbias::bindings {

namespace {

DeepLinear make_net(const Measurements& m, const std::vector<Index>& dims, const Vec& z) {
  DeepLinear net(dims);
  if (net.d(0) != m.d_in() || net.d(net.depth()) != m.d_out())
    throw InvalidArgument("layers: the product's shape must equal the measurement shape");
  if (z.size() != net.n_params()) throw InvalidArgument("layers: state vector has the wrong length");
  return net;
}

void check_y(const Measurements& m, const Vec& y) {
  if (y.size() != m.n()) throw InvalidArgument("y must have one entry per measurement");
}

py::dict fact_eval(const Measurements& m, const std::vector<Index>& dims, const Vec& z, const Vec& y) {
  DeepLinear net = make_net(m, dims, z);
  check_y(m, y);
  FactorizationWork w;
  Vec g(net.n_params());
  double loss = 0.0, tr = 0.0;
  {
    py::gil_scoped_release release;
    net.set(z.data());
    loss = factorization_loss(net, m, y, w);
    factorization_gradient_from_residual(net, m, w.r, w, g.data());
    tr = factorization_trace(net, m, w);
  }
  py::dict d;
  d["loss"] = loss;
  d["gradient"] = g;
  d["trace"] = tr;
  d["residual"] = w.r;
  return d;
}

double fact_trace(const Measurements& m, const std::vector<Index>& dims, const Vec& z) {
  DeepLinear net = make_net(m, dims, z);
  FactorizationWork w;
  py::gil_scoped_release release;
  net.set(z.data());
  return factorization_trace(net, m, w);
}

std::pair<double, Vec> fact_trace_gradient(const Measurements& m, const std::vector<Index>& dims, const Vec& z) {
  DeepLinear net = make_net(m, dims, z);
  FactorizationWork w;
  Vec g(net.n_params());
  double tr = 0.0;
  {
    py::gil_scoped_release release;
    net.set(z.data());
    tr = factorization_trace_gradient(net, m, w, g.data());
  }
  return {tr, g};
}

// H V for the columns of V.
Mat fact_hvp(const Measurements& m, const std::vector<Index>& dims, const Vec& z, const Vec& y, const Mat& V) {
  DeepLinear net = make_net(m, dims, z);
  check_y(m, y);
  if (V.rows() != net.n_params()) throw InvalidArgument("v must have one entry per parameter");
  Mat out(V.rows(), V.cols());
  {
    py::gil_scoped_release release;
    FactorizationWork w;
    net.set(z.data());
    factorization_loss(net, m, y, w);
    for (Index c = 0; c < V.cols(); ++c) factorization_hvp(net, m, w, V.col(c).data(), out.col(c).data());
  }
  return out;
}

Mat fact_jacobian(const Measurements& m, const std::vector<Index>& dims, const Vec& z) {
  DeepLinear net = make_net(m, dims, z);
  py::gil_scoped_release release;
  FactorizationWork w;
  net.set(z.data());
  return factorization_jacobian(net, m, w);
}

Probe parse_probe(const std::string& p) {
  if (p == "rademacher") return Probe::rademacher;
  if (p == "gaussian") return Probe::gaussian;
  throw InvalidArgument("probe must be 'rademacher' or 'gaussian'");
}

template <class MatVec>
TraceEstimate dispatch_estimate(const std::string& method, MatVec&& mv, Index dim, std::int64_t num_matvecs,
                                std::uint64_t seed, Probe probe) {
  if (method == "hutchinson") return hutchinson(mv, dim, num_matvecs, seed, probe);
  if (method == "hutchpp") return hutchpp(mv, dim, num_matvecs, seed, probe);
  if (method == "xtrace") return xtrace(mv, dim, num_matvecs, seed, probe);
  throw InvalidArgument("method must be 'hutchinson', 'hutchpp' or 'xtrace'");
}

py::tuple to_tuple(const TraceEstimate& t) { return py::make_tuple(t.estimate, t.std_error, t.matvecs); }

py::tuple fact_estimate(const std::string& method, const Measurements& m, const std::vector<Index>& dims,
                        const Vec& z, const Vec& y, std::int64_t num_matvecs, std::uint64_t seed,
                        const std::string& probe) {
  DeepLinear net = make_net(m, dims, z);
  check_y(m, y);
  const Probe p = parse_probe(probe);
  TraceEstimate t;
  {
    py::gil_scoped_release release;
    FactorizationWork w;
    net.set(z.data());
    factorization_loss(net, m, y, w);
    auto mv = [&](const Mat& X, Mat& Y) {
      Y.resize(X.rows(), X.cols());
      for (Index c = 0; c < X.cols(); ++c) factorization_hvp(net, m, w, X.col(c).data(), Y.col(c).data());
    };
    t = dispatch_estimate(method, mv, net.n_params(), num_matvecs, seed, p);
  }
  return to_tuple(t);
}

// A Python callable v -> H v (1-D arrays) or V -> H V (2-D, columns) when block=True.
py::tuple callable_estimate(const std::string& method, const py::function& matvec, Index dim,
                            std::int64_t num_matvecs, std::uint64_t seed, const std::string& probe, bool block) {
  const Probe p = parse_probe(probe);
  auto mv = [&](const Mat& X, Mat& Y) {
    Y.resize(X.rows(), X.cols());
    if (block) {
      const Mat out = matvec(X).cast<Mat>();
      if (out.rows() != X.rows() || out.cols() != X.cols())
        throw InvalidArgument("matvec must return an array of the shape of its input");
      Y = out;
      return;
    }
    for (Index c = 0; c < X.cols(); ++c) {
      const Vec out = matvec(Vec(X.col(c))).cast<Vec>();
      if (out.size() != X.rows()) throw InvalidArgument("matvec must return a vector of length dim");
      Y.col(c) = out;
    }
  };
  return to_tuple(dispatch_estimate(method, mv, dim, num_matvecs, seed, p));
}

std::shared_ptr<Measurements> make_gaussian(Index d_out, Index d_in, const Eigen::Ref<const RowMat>& stack,
                                            bool prepare) {
  py::gil_scoped_release release;
  return std::make_shared<Measurements>(Measurements::gaussian(d_out, d_in, stack, prepare));
}
std::shared_ptr<Measurements> make_entries(Index d_out, Index d_in, const std::vector<Index>& rows,
                                           const std::vector<Index>& cols) {
  return std::make_shared<Measurements>(Measurements::entries(d_out, d_in, rows, cols));
}

std::vector<py::dict> fact_batch(const std::vector<std::shared_ptr<Measurements>>& meas, const std::vector<Vec>& y,
                                 const std::vector<Mat>& M_star, const std::vector<double>& tol,
                                 const std::vector<int>& problem, const std::vector<int>& method,
                                 const std::vector<std::vector<Index>>& dims, const std::vector<Vec>& z0,
                                 const std::vector<double>& lr, const std::vector<double>& strength,
                                 const std::vector<std::uint64_t>& seed, std::int64_t steps, std::int64_t record_every,
                                 std::int64_t anneal_steps, double final_ratio, double rtol, double atol, double t_max,
                                 std::int64_t max_steps, const std::vector<double>& record_times,
                                 std::int64_t stall_steps, std::size_t block_size, int num_threads) {
  const std::size_t n_prob = meas.size();
  if (y.size() != n_prob || M_star.size() != n_prob || tol.size() != n_prob)
    throw InvalidArgument("meas, y, M_star and tol must be lists of equal length");
  std::vector<FactorizationProblem> problems(n_prob);
  for (std::size_t p = 0; p < n_prob; ++p) {
    if (!meas[p]) throw InvalidArgument("meas must not contain None");
    check_y(*meas[p], y[p]);
    if (M_star[p].size() != 0 && (M_star[p].rows() != meas[p]->d_out() || M_star[p].cols() != meas[p]->d_in()))
      throw InvalidArgument("M_star must have the measurement shape");
    problems[p] = FactorizationProblem{*meas[p], y[p], M_star[p], tol[p]};
  }
  const std::size_t n_runs = problem.size();
  for (std::size_t n : {method.size(), dims.size(), z0.size(), lr.size(), strength.size(), seed.size()})
    if (n != n_runs) throw InvalidArgument("per-run argument lists must have equal length");
  std::vector<FactorizationRun> runs(n_runs);
  for (std::size_t k = 0; k < n_runs; ++k) {
    if (method[k] < 0 || method[k] > 4) throw InvalidArgument("method code out of range");
    runs[k] = FactorizationRun{problem[k], static_cast<FactMethod>(method[k]), dims[k], z0[k], lr[k], strength[k], seed[k]};
  }
  FactorizationBatchOptions opt;
  opt.fixed.steps = steps;
  opt.fixed.record_every = record_every;
  opt.adaptive.rtol = rtol;
  opt.adaptive.atol = atol;
  opt.adaptive.t_max = t_max;
  opt.adaptive.max_steps = max_steps;
  opt.adaptive.record_times = record_times;
  opt.adaptive.record_every = 0;
  opt.adaptive.stall_steps = stall_steps;
  opt.schedule.anneal_steps = anneal_steps;
  opt.schedule.final_ratio = final_ratio;
  opt.block_size = block_size;
  opt.num_threads = num_threads;
  std::vector<RunRecord> records;
  {
    py::gil_scoped_release release;
    records = run_factorization_batch(problems, runs, opt);
  }
  std::vector<py::dict> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(record_to_dict(r));
  return out;
}

}  // namespace

void register_factorization(py::module_& m) {
  // module_local: the baseline core and its AVX2 / AVX-512 variants are
  // separate extension modules in one process; each registers its own type.
  py::class_<Measurements, std::shared_ptr<Measurements>>(
      m, "FactorizationMeasurements", py::module_local(),
      "A measurement operator f_i = <A_i, E>: dense sensing matrices or entry sampling.")
      .def_static("gaussian", &make_gaussian, py::arg("d_out"), py::arg("d_in"), py::arg("A_stack"),
                  py::arg("prepare") = true,
                  "Dense sensing; A_stack is the C-ordered (n, d_out, d_in) array reshaped to (n*d_out, d_in).\n"
                  "prepare: form sum_i A_i (x) A_i when small (pays off over many trace evaluations).")
      .def_static("entries", &make_entries, py::arg("d_out"), py::arg("d_in"), py::arg("rows"), py::arg("cols"),
                  "Entry sampling A_i = e_{rows[i]} e_{cols[i]}^T.")
      .def_property_readonly("n", &Measurements::n)
      .def_property_readonly("d_out", &Measurements::d_out)
      .def_property_readonly("d_in", &Measurements::d_in)
      .def_property_readonly("kind", [](const Measurements& x) {
        return x.kind() == Measurements::Kind::gaussian ? "gaussian" : "entries";
      })
      .def_property_readonly("uses_kronecker", &Measurements::uses_kronecker);
  m.def("factorization_eval", &fact_eval, py::arg("meas"), py::arg("dims"), py::arg("z"), py::arg("y"),
        "Loss, gradient (stacked like z), exact Hessian trace and residual at z.");
  m.def("factorization_trace", &fact_trace, py::arg("meas"), py::arg("dims"), py::arg("z"),
        "Exact trace of the loss Hessian at z (closed form).");
  m.def("factorization_trace_gradient", &fact_trace_gradient, py::arg("meas"), py::arg("dims"), py::arg("z"),
        "(trace, gradient of the trace with respect to z).");
  m.def("factorization_hvp", &fact_hvp, py::arg("meas"), py::arg("dims"), py::arg("z"), py::arg("y"),
        py::arg("V"), "Exact Hessian-vector products H V (columns of V), residual term included.");
  m.def("factorization_jacobian", &fact_jacobian, py::arg("meas"), py::arg("dims"), py::arg("z"),
        "Per-measurement gradients: row i is grad f_i (stacked like z).");
  m.def("factorization_estimate", &fact_estimate, py::arg("method"), py::arg("meas"), py::arg("dims"), py::arg("z"),
        py::arg("y"), py::arg("num_matvecs"), py::arg("seed"), py::arg("probe"),
        "Stochastic trace estimate (hutchinson, hutchpp, xtrace) over exact HVPs: (estimate, stderr, matvecs).");
  m.def("callable_estimate", &callable_estimate, py::arg("method"), py::arg("matvec"), py::arg("dim"),
        py::arg("num_matvecs"), py::arg("seed"), py::arg("probe"), py::arg("block"),
        "Stochastic trace estimate over a Python matvec callable: (estimate, stderr, matvecs).");
  m.def("factorization_batch", &fact_batch, py::arg("meas"), py::arg("y"), py::arg("M_star"), py::arg("tol"),
        py::arg("problem"), py::arg("method"), py::arg("dims"), py::arg("z0"), py::arg("lr"), py::arg("strength"),
        py::arg("seed"), py::arg("steps"), py::arg("record_every"), py::arg("anneal_steps"), py::arg("final_ratio"),
        py::arg("rtol"), py::arg("atol"), py::arg("t_max"), py::arg("max_steps"), py::arg("record_times"),
        py::arg("stall_steps"), py::arg("block_size"), py::arg("num_threads"),
        "Run a batch of deep-linear-network trainings over OpenMP threads with the GIL released;\n"
        "one dict per run. Low level: use implicitbias.factorization.fit / fit_many.");
}

}  // namespace implicitbias::bindings
