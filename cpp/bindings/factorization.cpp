// Bindings for deep matrix factorization: measurement operators, the exact
// Hessian trace and its gradient, Hessian-vector products, trace estimators
// (for this model and for a Python matvec callable), and batched training.
#include "common.hpp"

#include <pybind11/eigen.h>
#include <pybind11/functional.h>

#include <implicitbias/factorization.hpp>
#include <implicitbias/trace.hpp>

#include "spectrum.hpp"  // the spectrum bindings, compiled in this unit

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <utility>

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
  if (y.size() != m.n_residuals()) throw InvalidArgument("y must have one entry per measurement");
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

enum class Estimator : int { hutchinson = 0, hutchpp = 1, xtrace = 2 };

template <class MatVec>
TraceEstimate dispatch_estimate(Estimator method, MatVec&& mv, Index dim, std::int64_t num_matvecs,
                                std::uint64_t seed, Probe probe) {
  switch (method) {
    case Estimator::hutchinson: return hutchinson(mv, dim, num_matvecs, seed, probe);
    case Estimator::hutchpp: return hutchpp(mv, dim, num_matvecs, seed, probe);
    case Estimator::xtrace: return xtrace(mv, dim, num_matvecs, seed, probe);
  }
  throw InvalidArgument("unknown trace estimator");
}

py::tuple to_tuple(const TraceEstimate& t) { return py::make_tuple(t.estimate, t.std_error, t.matvecs); }

py::tuple fact_estimate(Estimator method, const Measurements& m, const std::vector<Index>& dims,
                        const Vec& z, const Vec& y, std::int64_t num_matvecs, std::uint64_t seed, Probe p) {
  DeepLinear net = make_net(m, dims, z);
  check_y(m, y);
  const TraceEstimate t = interruptible([&] {
    FactorizationWork w;
    net.set(z.data());
    factorization_loss(net, m, y, w);
    InterruptPoller poller;
    auto mv = [&](const Mat& X, Mat& Y) {
      Y.resize(X.rows(), X.cols());
      for (Index c = 0; c < X.cols(); ++c) {
        poller.poll();
        factorization_hvp(net, m, w, X.col(c).data(), Y.col(c).data());
      }
    };
    return dispatch_estimate(method, mv, net.n_params(), num_matvecs, seed, p);
  });
  return to_tuple(t);
}

// A Python callable v -> H v (1-D arrays) or V -> H V (2-D, columns) when block=True.
py::tuple callable_estimate(Estimator method, const py::function& matvec, Index dim,
                            std::int64_t num_matvecs, std::uint64_t seed, Probe p, bool block) {
  return to_tuple(dispatch_estimate(method, python_matvec(matvec, block), dim, num_matvecs, seed, p));
}

std::shared_ptr<Measurements> make_gaussian(Index d_out, Index d_in, const Eigen::Ref<const RowMat>& stack,
                                            bool prepare) {
  py::gil_scoped_release release;
  return std::make_shared<Measurements>(Measurements::gaussian(d_out, d_in, stack, prepare));
}
std::shared_ptr<Measurements> make_completion(Index d_out, Index d_in, const std::vector<Index>& rows,
                                           const std::vector<Index>& cols) {
  return std::make_shared<Measurements>(Measurements::completion(d_out, d_in, rows, cols));
}

std::shared_ptr<Measurements> make_regression(const Mat& X, const Mat& Y) {
  py::gil_scoped_release release;
  return std::make_shared<Measurements>(Measurements::regression(X, Y));
}

const char* kind_name(Measurements::Kind k) {
  switch (k) {
    case Measurements::Kind::gaussian: return "gaussian";
    case Measurements::Kind::completion: return "completion";
    case Measurements::Kind::regression: return "regression";
  }
  return "";
}

void check_problems(const std::vector<FactorizationProblem>& problems) {
  for (const auto& p : problems) {
    check_y(p.meas, p.y);
    if (p.M_star.size() != 0 && (p.M_star.rows() != p.meas.d_out() || p.M_star.cols() != p.meas.d_in()))
      throw InvalidArgument("M_star must have the measurement shape");
    if (!p.y.allFinite() || !p.M_star.allFinite()) throw InvalidArgument("y and M_star must be finite");
  }
}

// The runs of a batch as columns (one entry per run), made into FactorizationRun structs in C++; a run
// without given layers draws them in the core (factorization_initial_layers, inside its block).
struct FactorizationColumns {
  Eigen::VectorXi problem, method, depth, width, init;  // method, init: enum codes; width 0: max(d_out, d_in)
  Vec init_scale, lr, strength;                          // lr: 0 for a flow
  Eigen::Matrix<std::uint64_t, Eigen::Dynamic, 1> seed;
  std::map<int, std::pair<std::vector<Index>, Vec>> given;  // run -> (dims, z0) of its given initial layers
};

std::vector<FactorizationRun> fact_runs(const std::vector<FactorizationProblem>& problems,
                                        const FactorizationColumns& c) {
  const Index K = c.problem.size();
  if (c.method.size() != K || c.depth.size() != K || c.width.size() != K || c.init.size() != K ||
      c.init_scale.size() != K || c.lr.size() != K || c.strength.size() != K || c.seed.size() != K)
    throw InvalidArgument("every column of the runs must have one entry per run");
  for (const auto& g : c.given)
    if (g.first < 0 || g.first >= K) throw InvalidArgument("given layers refer to a run out of range");
  std::vector<FactorizationRun> runs(static_cast<std::size_t>(K));
  for (Index k = 0; k < K; ++k) {
    FactorizationRun& r = runs[static_cast<std::size_t>(k)];
    r.problem = c.problem(k);
    const Measurements& m = problem_of(problems, r.problem).meas;
    if (c.method(k) < static_cast<int>(FactMethod::descent) || c.method(k) > static_cast<int>(FactMethod::sam))
      throw InvalidArgument("method code out of range");
    r.method = static_cast<FactMethod>(c.method(k));
    r.lr = c.lr(k);
    r.strength = c.strength(k);
    r.seed = c.seed(k);
    if (!(r.lr >= 0.0) || !std::isfinite(r.lr)) throw InvalidArgument("lr must be >= 0 and finite");
    if (!(r.strength >= 0.0) || !std::isfinite(r.strength))
      throw InvalidArgument("trace_weight / label_noise_std / sam_radius must be >= 0 and finite");
    const auto given = c.given.find(static_cast<int>(k));
    if (given != c.given.end()) {
      r.dims = given->second.first;
      r.z0 = given->second.second;
      continue;
    }
    if (c.depth(k) < 1) throw InvalidArgument("depth must be >= 1");
    if (c.width(k) < 0) throw InvalidArgument("width must be >= 1");
    if (c.init(k) != static_cast<int>(FactInit::gaussian) && c.init(k) != static_cast<int>(FactInit::balanced))
      throw InvalidArgument("init code out of range");
    const Index w = c.width(k) == 0 ? std::max(m.d_out(), m.d_in()) : c.width(k);
    r.dims.assign(static_cast<std::size_t>(c.depth(k)) + 1, w);
    r.dims.front() = m.d_in();
    r.dims.back() = m.d_out();
    r.init = static_cast<FactInit>(c.init(k));
    r.init_scale = c.init_scale(k);
  }
  return runs;
}

py::object fact_batch(const std::vector<FactorizationProblem>& problems, const FactorizationColumns& columns,
                      const FactorizationBatchOptions& options) {
  check_problems(problems);
  const std::vector<FactorizationRun> runs = fact_runs(problems, columns);
  return run_released([&] { return run_factorization_batch(problems, runs, options); });
}

Vec fact_initial_layers(const std::vector<Index>& dims, double init_scale, FactInit init, std::uint64_t seed) {
  if (!(init_scale > 0.0) || !std::isfinite(init_scale)) throw InvalidArgument("init_scale must be positive and finite");
  for (Index d : dims)
    if (d < 1) throw InvalidArgument("layer widths must be >= 1");
  return factorization_initial_layers(dims, init_scale, init, seed);
}

}  // namespace

void register_factorization(py::module_& m) {
  py::enum_<FactMethod>(m, "FactorizationMethod", py::module_local(), "Training method of a deep linear network.")
      .value("descent", FactMethod::descent)
      .value("flow", FactMethod::flow)
      .value("trace_penalty", FactMethod::trace_penalty)
      .value("label_noise_sgd", FactMethod::label_noise_sgd)
      .value("sam", FactMethod::sam);
  py::enum_<FactInit>(m, "FactorizationInit", py::module_local(), "How the initial layers are drawn.")
      .value("gaussian", FactInit::gaussian)
      .value("balanced", FactInit::balanced);
  py::enum_<Probe>(m, "Probe", py::module_local(), "Random probe vectors of the trace estimators.")
      .value("rademacher", Probe::rademacher)
      .value("gaussian", Probe::gaussian);
  py::enum_<Estimator>(m, "TraceEstimator", py::module_local())
      .value("hutchinson", Estimator::hutchinson)
      .value("hutchpp", Estimator::hutchpp)
      .value("xtrace", Estimator::xtrace);
  py::class_<Measurements, std::shared_ptr<Measurements>>(
      m, "FactorizationMeasurements", py::module_local(),
      "A measurement operator f_i = <A_i, E>: dense sensing matrices, entry sampling or regression data.")
      .def_static("gaussian", &make_gaussian, py::arg("d_out"), py::arg("d_in"), py::arg("A_stack"),
                  py::arg("prepare") = true,
                  "Dense sensing; A_stack is the C-ordered (n, d_out, d_in) array reshaped to (n*d_out, d_in).\n"
                  "prepare: form sum_i A_i (x) A_i when small (pays off over many trace evaluations).")
      .def_static("completion", &make_completion, py::arg("d_out"), py::arg("d_in"), py::arg("rows"),
                  py::arg("cols"), "Entry sampling (matrix completion) A_i = e_{rows[i]} e_{cols[i]}^T.")
      .def_static("regression", &make_regression, py::arg("X"), py::arg("Y"),
                  "Regression data: inputs X (n, d_in), targets Y (n, d_out); loss (1/n) ||E X^T - Y^T||_F^2.\n"
                  "Kept as a QR factor of [X Y] when n > d_in + d_out; the targets in residual space are\n"
                  "`targets`.")
      .def_property_readonly("n", &Measurements::n)
      .def_property_readonly("n_residuals", &Measurements::n_residuals)
      .def_property_readonly("targets", &Measurements::regression_targets)
      .def_property_readonly("gram", &Measurements::gram)
      .def_property_readonly("d_out", &Measurements::d_out)
      .def_property_readonly("d_in", &Measurements::d_in)
      .def_property_readonly("kind", [](const Measurements& x) { return kind_name(x.kind()); })
      .def_property_readonly("uses_kronecker", &Measurements::uses_kronecker);
  py::class_<FactorizationProblem>(m, "FactorizationProblem", py::module_local(),
                                   "Measurements, labels y, optional M_star and the loss at which runs stop.")
      .def(py::init([](const std::shared_ptr<Measurements>& meas) {
             if (!meas) throw InvalidArgument("meas must not be None");
             return FactorizationProblem{*meas, Vec(), Mat(), -1.0};
           }),
           py::arg("meas"))
      .def_readwrite("y", &FactorizationProblem::y)
      .def_readwrite("M_star", &FactorizationProblem::M_star)
      .def_readwrite("tol", &FactorizationProblem::tol);
  py::class_<FactorizationRun>(m, "FactorizationRun", py::module_local(), "One run of a factorization batch.")
      .def(py::init<>())
      .def(py::init([](int problem, FactMethod method, std::vector<Index> dims, Vec z0, double lr, double strength,
                       std::uint64_t seed) {
             return FactorizationRun{problem, method, std::move(dims), std::move(z0), lr, strength, seed};
           }),
           py::kw_only(), py::arg("problem"), py::arg("method"), py::arg("dims"), py::arg("z0"), py::arg("lr"),
           py::arg("strength"), py::arg("seed"))
      .def_readwrite("problem", &FactorizationRun::problem)
      .def_readwrite("method", &FactorizationRun::method)
      .def_readwrite("dims", &FactorizationRun::dims)
      .def_readwrite("z0", &FactorizationRun::z0)
      .def_readwrite("lr", &FactorizationRun::lr)
      .def_readwrite("strength", &FactorizationRun::strength)
      .def_readwrite("seed", &FactorizationRun::seed)
      .def_readwrite("init", &FactorizationRun::init)
      .def_readwrite("init_scale", &FactorizationRun::init_scale);
  py::class_<FactorizationColumns>(m, "FactorizationRuns", py::module_local(),
                                   "The runs of a factorization batch as columns, one entry per run.")
      .def(py::init<>())
      .def_readwrite("problem", &FactorizationColumns::problem)
      .def_readwrite("method", &FactorizationColumns::method)
      .def_readwrite("depth", &FactorizationColumns::depth)
      .def_readwrite("width", &FactorizationColumns::width)
      .def_readwrite("init", &FactorizationColumns::init)
      .def_readwrite("init_scale", &FactorizationColumns::init_scale)
      .def_readwrite("lr", &FactorizationColumns::lr)
      .def_readwrite("strength", &FactorizationColumns::strength)
      .def_readwrite("seed", &FactorizationColumns::seed)
      .def_readwrite("given", &FactorizationColumns::given);
  py::class_<StrengthSchedule>(m, "StrengthSchedule", py::module_local(), "Annealing of the regularizer strength.")
      .def(py::init<>())
      .def_readwrite("anneal_steps", &StrengthSchedule::anneal_steps)
      .def_readwrite("final_ratio", &StrengthSchedule::final_ratio);
  py::class_<SharpnessOptions>(m, "SharpnessOptions", py::module_local(),
                               "Sharpness (top Hessian eigenvalue) recorded at each record point.")
      .def(py::init<>())
      .def_readwrite("record", &SharpnessOptions::record)
      .def_readwrite("tol", &SharpnessOptions::tol)
      .def_readwrite("max_matvecs", &SharpnessOptions::max_matvecs);
  py::class_<FactorizationBatchOptions>(m, "FactorizationBatchOptions", py::module_local())
      .def(py::init<>())
      .def_readwrite("fixed", &FactorizationBatchOptions::fixed)
      .def_readwrite("adaptive", &FactorizationBatchOptions::adaptive)
      .def_readwrite("schedule", &FactorizationBatchOptions::schedule)
      .def_readwrite("sharpness", &FactorizationBatchOptions::sharpness)
      .def_readwrite("block_size", &FactorizationBatchOptions::block_size)
      .def_readwrite("num_threads", &FactorizationBatchOptions::num_threads);
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
  m.def("factorization_batch", &fact_batch, py::arg("problems"), py::arg("runs"), py::arg("options"),
        "Run a batch of deep-linear-network trainings over OpenMP threads with the GIL released; the runs\n"
        "as columns (FactorizationRuns); returns the RunRecords in the order of the runs.\n"
        "Low level: use implicitbias.factorization.fit / fit_many.");
  m.def("factorization_initial_layers", &fact_initial_layers, py::arg("dims"), py::arg("init_scale"), py::arg("init"),
        py::arg("seed"),
        "The initial layers for widths dims (d_0 .. d_L), stacked like z, drawn from the seed.\n"
        "Low level: use implicitbias.factorization.initial_layers.");
}

}  // namespace implicitbias::bindings
