// Bindings for homogeneous classifiers and steepest descent: the batched
// trainer and the building blocks (model outputs, log-domain loss, direction
// maps) that the tests check against NumPy.
#include "common.hpp"

#include <implicitbias/steepest.hpp>

namespace implicitbias::bindings {

namespace {

std::vector<ParamBlock> make_blocks(const std::vector<std::pair<Index, Index>>& shapes, Index size) {
  std::vector<ParamBlock> b;
  Index off = 0;
  for (const auto& [r, c] : shapes) {
    if (r < 1 || c < 1) throw InvalidArgument("shapes must list positive (rows, cols) blocks");
    b.push_back({off, r, c});
    off += r * c;
  }
  if (shapes.empty()) b.push_back({0, 1, size});
  else if (off != size) throw InvalidArgument("shapes must cover the vector exactly (sum of rows * cols = its length)");
  return b;
}

void check_spec(const HomogeneousSpec& s) {
  if (s.kind == ModelKind::mlp && (s.depth < 2 || s.width < 1))
    throw InvalidArgument("mlp needs depth >= 2 and width >= 1");
}

void check_norm(const NormSpec& n) {
  if (n.kind == NormKind::lp && !(n.p > 1.0 && std::isfinite(n.p))) throw InvalidArgument("p must be in (1, inf)");
}

HomogeneousModel make_model(const ClassificationProblem& prob, const HomogeneousSpec& spec, const Vec& theta) {
  check_spec(spec);
  if (theta.size() != spec.n_params(prob.X.cols())) throw InvalidArgument("theta has the wrong length");
  return HomogeneousModel(prob, spec);
}

py::object steepest_batch(const std::vector<ClassificationProblem>& problems, const std::vector<SteepestRunSpec>& runs,
                        const SteepestOptions& options, int num_threads) {
  for (const auto& p : problems) {
    if (p.X.rows() != p.y.size()) throw InvalidArgument("y must have one label per row of X");
    if (!p.X.allFinite() || !p.y.allFinite()) throw InvalidArgument("X and y must be finite");
  }
  for (const auto& r : runs) {
    if (!r.theta0.allFinite()) throw InvalidArgument("the initial parameters must be finite");
    check_spec(r.spec);
    check_norm(r.alg.norm);
  }
  return run_released([&] { return run_steepest_batch(problems, runs, options, num_threads); });
}

}  // namespace

void register_steepest(py::module_& m) {
  py::enum_<ModelKind>(m, "ModelKind", py::module_local(), "Homogeneous model (relu2 is the mlp of depth 2).")
      .value("linear", ModelKind::linear)
      .value("diagonal", ModelKind::diagonal)
      .value("mlp", ModelKind::mlp);
  py::enum_<LossKind>(m, "LossKind", py::module_local(), "Classification loss.")
      .value("exp", LossKind::exponential)
      .value("logistic", LossKind::logistic);
  py::enum_<NormKind>(m, "NormKind", py::module_local(), "Geometry of steepest descent.")
      .value("l2", NormKind::l2)
      .value("linf", NormKind::linf)
      .value("l1", NormKind::l1)
      .value("lp", NormKind::lp)
      .value("spectral", NormKind::spectral);
  py::enum_<Optimizer>(m, "Optimizer", py::module_local())
      .value("steepest", Optimizer::steepest)
      .value("signum", Optimizer::signum)
      .value("adam", Optimizer::adam);
  py::enum_<Schedule>(m, "Schedule", py::module_local())
      .value("constant", Schedule::constant)
      .value("power", Schedule::power)
      .value("loss", Schedule::loss);

  py::class_<ClassificationProblem>(m, "ClassificationProblem", py::module_local(), "X (n x d) and labels y in {-1, +1}.")
      .def(py::init<Mat, Vec>(), py::arg("X"), py::arg("y"));
  py::class_<HomogeneousSpec>(m, "HomogeneousSpec", py::module_local())
      .def(py::init<>())
      .def_readwrite("kind", &HomogeneousSpec::kind)
      .def_readwrite("depth", &HomogeneousSpec::depth)
      .def_readwrite("width", &HomogeneousSpec::width);
  py::class_<NormSpec>(m, "NormSpec", py::module_local())
      .def(py::init<>())
      .def_readwrite("kind", &NormSpec::kind)
      .def_readwrite("p", &NormSpec::p);
  py::class_<AlgorithmSpec>(m, "AlgorithmSpec", py::module_local())
      .def(py::init<>())
      .def_readwrite("optimizer", &AlgorithmSpec::optimizer)
      .def_readwrite("norm", &AlgorithmSpec::norm)
      .def_readwrite("normalized", &AlgorithmSpec::normalized)
      .def_readwrite("lr", &AlgorithmSpec::lr)
      .def_readwrite("schedule", &AlgorithmSpec::schedule)
      .def_readwrite("decay_k0", &AlgorithmSpec::decay_k0)
      .def_readwrite("decay_power", &AlgorithmSpec::decay_power)
      .def_readwrite("lr_growth", &AlgorithmSpec::lr_growth)
      .def_readwrite("lr_backoff", &AlgorithmSpec::lr_backoff)
      .def_readwrite("beta1", &AlgorithmSpec::beta1)
      .def_readwrite("beta2", &AlgorithmSpec::beta2)
      .def_readwrite("eps", &AlgorithmSpec::eps);
  py::class_<SteepestRunSpec>(m, "SteepestRun", py::module_local(), "One run of a steepest-descent batch.")
      .def(py::init<>())
      .def(py::init([](int problem, const HomogeneousSpec& model, LossKind loss, const AlgorithmSpec& algorithm,
                       Vec theta0, bool flow) {
             return SteepestRunSpec{problem, model, loss, algorithm, std::move(theta0), flow};
           }),
           py::kw_only(), py::arg("problem"), py::arg("model"), py::arg("loss"), py::arg("algorithm"),
           py::arg("theta0"), py::arg("flow"))
      .def_readwrite("problem", &SteepestRunSpec::problem)
      .def_readwrite("model", &SteepestRunSpec::spec)
      .def_readwrite("loss", &SteepestRunSpec::loss)
      .def_readwrite("algorithm", &SteepestRunSpec::alg)
      .def_readwrite("theta0", &SteepestRunSpec::theta0)
      .def_readwrite("flow", &SteepestRunSpec::flow);
  py::class_<SteepestOptions>(m, "SteepestOptions", py::module_local(), "Options shared by a steepest batch.")
      .def(py::init<>())
      .def_readwrite("steps", &SteepestOptions::steps)
      .def_readwrite("target_log_loss", &SteepestOptions::target_log_loss)
      .def_readwrite("record_steps", &SteepestOptions::record_steps)
      .def_readwrite("record_every", &SteepestOptions::record_every)
      .def_readwrite("adaptive", &SteepestOptions::adaptive);

  m.def("steepest_batch", &steepest_batch, py::arg("problems"), py::arg("runs"), py::arg("options"),
        py::arg("num_threads"),
        "Train a batch of homogeneous classifiers (steepest descent, Signum, Adam or the flow) over\n"
        "OpenMP threads with the GIL released; one RunRecord per run. Low level: use\n"
        "implicitbias.steepest.fit / fit_many.");
  m.def(
      "homogeneous_outputs",
      [](const HomogeneousSpec& spec, const Mat& X, const Vec& theta) {
        ClassificationProblem prob(X, Vec::Ones(X.rows()));
        HomogeneousModel hm = make_model(prob, spec, theta);
        Vec f;
        hm.outputs(theta, f);
        return f;
      },
      py::arg("model"), py::arg("X"), py::arg("theta"), "f(x_i; theta) for every row of X.");
  m.def(
      "homogeneous_grad_sum",
      [](const HomogeneousSpec& spec, const Mat& X, const Vec& theta, const Vec& c) {
        if (c.size() != X.rows()) throw InvalidArgument("c needs one weight per row of X");
        ClassificationProblem prob(X, Vec::Ones(X.rows()));
        HomogeneousModel hm = make_model(prob, spec, theta);
        Vec f, G(theta.size());
        hm.outputs(theta, f);
        hm.grad_sum(theta, c, G);
        return py::make_tuple(G, static_cast<long>(spec.kind == ModelKind::mlp ? hm.samples_used() : X.rows()));
      },
      py::arg("model"), py::arg("X"), py::arg("theta"), py::arg("c"),
      "(G, samples_used): G = sum_i c_i grad_theta f(x_i; theta), and the number of samples whose backward "
      "pass ran (ReLU nets skip the samples of negligible weight when that provably changes G by at most "
      "2^-53 ||G||).");
  m.def(
      "classification_loss",
      [](const HomogeneousSpec& spec, const Mat& X, const Vec& y, const Vec& theta, LossKind loss) {
        if (y.size() != X.rows()) throw InvalidArgument("y needs one label per row of X");
        ClassificationProblem prob(X, y);
        HomogeneousModel hm = make_model(prob, spec, theta);
        Vec g(theta.size()), q;
        double ll = 0.0;
        hm.evaluate(theta, loss, ll, g, q);
        return py::make_tuple(ll, g, q);
      },
      py::arg("model"), py::arg("X"), py::arg("y"), py::arg("theta"), py::arg("loss"),
      "(log Loss, grad Loss / Loss, q = y * f) in the log domain.");
  m.def(
      "steepest_direction",
      [](const Vec& g, const NormSpec& norm, const std::vector<std::pair<Index, Index>>& shapes) {
        check_norm(norm);
        const auto blocks = make_blocks(shapes, g.size());
        Vec out(g.size());
        const double dual = steepest_direction(norm, g, blocks, out);
        return py::make_tuple(out, dual);
      },
      py::arg("g"), py::arg("norm"), py::arg("shapes"),
      "(g#, ||g||_*) for the norm; shapes are the (rows, cols) weight blocks (spectral).");
  m.def(
      "param_norm",
      [](const Vec& theta, const NormSpec& norm, const std::vector<std::pair<Index, Index>>& shapes) {
        check_norm(norm);
        return param_norm(norm, theta, make_blocks(shapes, theta.size()));
      },
      py::arg("theta"), py::arg("norm"), py::arg("shapes"), "||theta|| in the norm.");
}

}  // namespace implicitbias::bindings
