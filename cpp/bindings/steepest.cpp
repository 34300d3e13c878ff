// Bindings for homogeneous classifiers and steepest descent: the batched
// trainer and the building blocks (model outputs, log-domain loss, direction
// maps) that the tests check against NumPy.
#include "common.hpp"

#include <pybind11/eigen.h>

#include <implicitbias/steepest.hpp>

namespace implicitbias::bindings {

namespace {

HomogeneousSpec make_spec(const std::string& kind, int depth, Index width) {
  HomogeneousSpec s;
  if (kind == "linear") s.kind = ModelKind::linear;
  else if (kind == "diagonal") s.kind = ModelKind::diagonal;
  else if (kind == "mlp") s.kind = ModelKind::mlp;
  else throw InvalidArgument("model must be 'linear', 'diagonal' or 'mlp'");
  s.depth = depth;
  s.width = width;
  if (s.kind == ModelKind::mlp && (depth < 2 || width < 1)) throw InvalidArgument("mlp needs depth >= 2 and width >= 1");
  return s;
}

NormSpec make_norm(const std::string& norm, double p) {
  NormSpec n;
  if (norm == "l2") n.kind = NormKind::l2;
  else if (norm == "linf") n.kind = NormKind::linf;
  else if (norm == "l1") n.kind = NormKind::l1;
  else if (norm == "lp") n.kind = NormKind::lp;
  else if (norm == "spectral") n.kind = NormKind::spectral;
  else throw InvalidArgument("norm must be 'l2', 'linf', 'l1', 'lp' or 'spectral'");
  if (n.kind == NormKind::lp && !(p > 1.0 && std::isfinite(p))) throw InvalidArgument("p must be in (1, inf)");
  n.p = p;
  return n;
}

LossKind make_loss(const std::string& loss) {
  if (loss == "exp") return LossKind::exponential;
  if (loss == "logistic") return LossKind::logistic;
  throw InvalidArgument("loss must be 'exp' or 'logistic'");
}

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

template <class T>
T get(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw InvalidArgument(std::string("run spec lacks '") + key + "'");
  return d[key].cast<T>();
}

std::vector<py::dict> steepest_batch(const std::vector<Mat>& X, const std::vector<Vec>& y, const std::vector<py::dict>& runs,
                                     std::int64_t steps, double target_log_loss, const std::vector<std::int64_t>& record_steps,
                                     std::int64_t record_every, double rtol, double atol, double t_max,
                                     std::int64_t max_steps, const std::vector<double>& record_times, int num_threads) {
  if (X.size() != y.size()) throw InvalidArgument("X and y must be lists of equal length");
  std::vector<ClassificationProblem> problems;
  for (std::size_t p = 0; p < X.size(); ++p) {
    if (X[p].rows() != y[p].size()) throw InvalidArgument("y must have one label per row of X");
    problems.emplace_back(X[p], y[p]);
  }
  std::vector<SteepestRunSpec> specs;
  for (const auto& d : runs) {
    SteepestRunSpec r;
    r.problem = get<int>(d, "problem");
    r.spec = make_spec(get<std::string>(d, "model"), get<int>(d, "depth"), get<Index>(d, "width"));
    r.loss = make_loss(get<std::string>(d, "loss"));
    const std::string opt = get<std::string>(d, "optimizer");
    if (opt == "steepest") r.alg.optimizer = Optimizer::steepest;
    else if (opt == "signum") r.alg.optimizer = Optimizer::signum;
    else if (opt == "adam") r.alg.optimizer = Optimizer::adam;
    else throw InvalidArgument("optimizer must be 'steepest', 'signum' or 'adam'");
    r.alg.norm = make_norm(get<std::string>(d, "norm"), get<double>(d, "p"));
    r.alg.normalized = get<bool>(d, "normalized");
    r.alg.lr = get<double>(d, "lr");
    const std::string sched = get<std::string>(d, "schedule");
    if (sched == "constant") r.alg.schedule = Schedule::constant;
    else if (sched == "power") r.alg.schedule = Schedule::power;
    else if (sched == "loss") r.alg.schedule = Schedule::loss;
    else throw InvalidArgument("schedule must be 'constant', 'power' or 'loss'");
    r.alg.decay_k0 = get<double>(d, "decay_k0");
    r.alg.decay_power = get<double>(d, "decay_power");
    r.alg.lr_growth = get<double>(d, "lr_growth");
    r.alg.lr_backoff = get<double>(d, "lr_backoff");
    r.alg.beta1 = get<double>(d, "beta1");
    r.alg.beta2 = get<double>(d, "beta2");
    r.alg.eps = get<double>(d, "eps");
    r.theta0 = get<Vec>(d, "theta0");
    r.flow = get<bool>(d, "flow");
    specs.push_back(std::move(r));
  }
  SteepestOptions o;
  o.steps = steps;
  o.target_log_loss = target_log_loss;
  o.record_steps = record_steps;
  o.record_every = record_every;
  o.adaptive.rtol = rtol;
  o.adaptive.atol = atol;
  o.adaptive.t_max = t_max;
  o.adaptive.max_steps = max_steps;
  o.adaptive.record_times = record_times;
  o.adaptive.record_every = record_every;
  std::vector<RunRecord> records;
  {
    py::gil_scoped_release release;
    records = run_steepest_batch(problems, specs, o, num_threads);
  }
  std::vector<py::dict> out;
  for (const auto& r : records) out.push_back(record_to_dict(r));
  return out;
}

}  // namespace

void register_steepest(py::module_& m) {
  m.def("steepest_batch", &steepest_batch, py::arg("X"), py::arg("y"), py::arg("runs"), py::arg("steps"),
        py::arg("target_log_loss"), py::arg("record_steps"), py::arg("record_every"), py::arg("rtol"), py::arg("atol"),
        py::arg("t_max"), py::arg("max_steps"), py::arg("record_times"), py::arg("num_threads"),
        "Train a batch of homogeneous classifiers (steepest descent, Signum, Adam or the flow), one\n"
        "run per dict in `runs`, over OpenMP threads with the GIL released. Low level: use\n"
        "implicitbias.steepest.fit / fit_many.");
  m.def(
      "homogeneous_outputs",
      [](const std::string& model, int depth, Index width, const Mat& X, const Vec& theta) {
        const HomogeneousSpec spec = make_spec(model, depth, width);
        if (theta.size() != spec.n_params(X.cols())) throw InvalidArgument("theta has the wrong length");
        ClassificationProblem prob(X, Vec::Ones(X.rows()));
        HomogeneousModel hm(prob, spec);
        Vec f;
        hm.outputs(theta, f);
        return f;
      },
      py::arg("model"), py::arg("depth"), py::arg("width"), py::arg("X"), py::arg("theta"),
      "f(x_i; theta) for every row of X.");
  m.def(
      "homogeneous_grad_sum",
      [](const std::string& model, int depth, Index width, const Mat& X, const Vec& theta, const Vec& c) {
        const HomogeneousSpec spec = make_spec(model, depth, width);
        if (theta.size() != spec.n_params(X.cols())) throw InvalidArgument("theta has the wrong length");
        if (c.size() != X.rows()) throw InvalidArgument("c needs one weight per row of X");
        ClassificationProblem prob(X, Vec::Ones(X.rows()));
        HomogeneousModel hm(prob, spec);
        Vec f, G(theta.size());
        hm.outputs(theta, f);
        hm.grad_sum(theta, c, G);
        return G;
      },
      py::arg("model"), py::arg("depth"), py::arg("width"), py::arg("X"), py::arg("theta"), py::arg("c"),
      "sum_i c_i grad_theta f(x_i; theta).");
  m.def(
      "classification_loss",
      [](const std::string& model, int depth, Index width, const Mat& X, const Vec& y, const Vec& theta,
         const std::string& loss) {
        const HomogeneousSpec spec = make_spec(model, depth, width);
        if (theta.size() != spec.n_params(X.cols())) throw InvalidArgument("theta has the wrong length");
        if (y.size() != X.rows()) throw InvalidArgument("y needs one label per row of X");
        ClassificationProblem prob(X, y);
        HomogeneousModel hm(prob, spec);
        Vec g(theta.size()), q;
        double ll = 0.0;
        hm.evaluate(theta, make_loss(loss), ll, g, q);
        return py::make_tuple(ll, g, q);
      },
      py::arg("model"), py::arg("depth"), py::arg("width"), py::arg("X"), py::arg("y"), py::arg("theta"), py::arg("loss"),
      "(log Loss, grad Loss / Loss, q = y * f) in the log domain.");
  m.def(
      "steepest_direction",
      [](const Vec& g, const std::string& norm, double p, const std::vector<std::pair<Index, Index>>& shapes) {
        const NormSpec n = make_norm(norm, p);
        const auto blocks = make_blocks(shapes, g.size());
        Vec out(g.size());
        const double dual = steepest_direction(n, g, blocks, out);
        return py::make_tuple(out, dual);
      },
      py::arg("g"), py::arg("norm"), py::arg("p"), py::arg("shapes"),
      "(g#, ||g||_*) for the norm; shapes are the (rows, cols) weight blocks (spectral).");
  m.def(
      "param_norm",
      [](const Vec& theta, const std::string& norm, double p, const std::vector<std::pair<Index, Index>>& shapes) {
        return param_norm(make_norm(norm, p), theta, make_blocks(shapes, theta.size()));
      },
      py::arg("theta"), py::arg("norm"), py::arg("p"), py::arg("shapes"), "||theta|| in the norm.");
}

}  // namespace implicitbias::bindings
