// Bindings for the Hessian's spectrum: symmetric operators (the deep
// factorization's exact HVP, the diagonal network's exact Hessian, a Python
// matvec callable), block Lanczos eigenpairs and Lanczos quadrature over them.
// Compiled inside the factorization unit (factorization.cpp includes this
// file once): it needs the same factorization headers, and a unit of its own
// would parse them again in every core variant (CMakeLists.txt).
#pragma once
#include "common.hpp"

#include <pybind11/functional.h>

#include <implicitbias/diagonal_hessian.hpp>
#include <implicitbias/factorization.hpp>
#include <implicitbias/lanczos.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace implicitbias::bindings {

namespace {

// A symmetric operator: block products and (for small sizes) its dense form.
// Native operators run with the GIL released; a Python callable keeps it.
struct SymmetricOperator {
  Index dim = 0;
  bool native = true;
  std::string kind;
  std::function<void(const Mat&, Mat&)> apply;
};

template <class Fn>
auto run_on(const SymmetricOperator& op, Fn&& fn) {
  if (op.native) return interruptible(std::forward<Fn>(fn));
  return fn();
}

struct FactorizationState {
  std::shared_ptr<Measurements> meas;
  DeepLinear net;
  Vec z, y;
  FactorizationWork w;
};

SymmetricOperator factorization_operator(const std::shared_ptr<Measurements>& meas, const std::vector<Index>& dims,
                                         const Vec& z, const Vec& y) {
  if (!meas) throw InvalidArgument("meas must not be None");
  auto st = std::make_shared<FactorizationState>();
  st->meas = meas;
  st->net = DeepLinear(dims);
  if (st->net.d(0) != meas->d_in() || st->net.d(st->net.depth()) != meas->d_out())
    throw InvalidArgument("layers: the product's shape must equal the measurement shape");
  if (z.size() != st->net.n_params()) throw InvalidArgument("layers: state vector has the wrong length");
  if (y.size() != meas->n_residuals()) throw InvalidArgument("y must have one entry per measurement");
  st->z = z;
  st->y = y;
  {
    py::gil_scoped_release release;
    st->net.set(st->z.data());
    factorization_loss(st->net, *st->meas, st->y, st->w);
  }
  SymmetricOperator op;
  op.dim = st->net.n_params();
  op.kind = "factorization";
  op.apply = [st](const Mat& X, Mat& Y) {
    Y.resize(X.rows(), X.cols());
    for (Index c = 0; c < X.cols(); ++c) factorization_hvp(st->net, *st->meas, st->w, X.col(c).data(), Y.col(c).data());
  };
  return op;
}

SymmetricOperator diagonal_operator(const Mat& A, const Vec& y, const Vec& u, const std::optional<Vec>& v, int depth,
                                    bool nonnegative) {
  if (nonnegative == v.has_value())
    throw InvalidArgument(nonnegative ? "v must be None for the nonnegative model" : "v is required (signed model)");
  auto h = std::make_shared<DiagonalHessian>(A, y, u, v.value_or(Vec()), depth, nonnegative);
  SymmetricOperator op;
  op.dim = h->dim();
  op.kind = "diagonal";
  op.apply = [h](const Mat& X, Mat& Y) { h->apply(X, Y); };
  return op;
}

// A Python callable v -> H v (1-D) or V -> H V (2-D, columns) when block=True.
SymmetricOperator callable_operator(const py::function& matvec, Index dim, bool block) {
  if (dim < 1) throw InvalidArgument("dim must be >= 1");
  SymmetricOperator op;
  op.dim = dim;
  op.native = false;
  op.kind = "callable";
  op.apply = python_matvec(matvec, block);
  return op;
}

Mat op_apply(const SymmetricOperator& op, const Mat& X) {
  if (X.rows() != op.dim) throw InvalidArgument("V must have one row per dimension of the operator");
  return run_on(op, [&] {
    Mat Y;
    op.apply(X, Y);
    return Y;
  });
}

py::dict eigen(const SymmetricOperator& op, Index k, EigenWhich which, Index block, double tol,
               std::int64_t max_matvecs, std::uint64_t seed, double symmetry_tol, const Mat& start) {
  EigenOptions o;
  o.k = k;
  o.which = which;
  o.block = block;
  o.tol = tol;
  o.max_matvecs = max_matvecs;
  o.seed = seed;
  o.symmetry_tol = symmetry_tol;
  EigenResult r = run_on(op, [&] { return block_lanczos(op.apply, op.dim, o, start); });
  py::dict d;
  d["values"] = r.values;
  d["vectors"] = r.vectors;
  d["residuals"] = r.residuals;
  d["matvecs"] = r.matvecs;
  d["basis"] = r.basis;
  d["converged"] = r.converged;
  d["asymmetry"] = r.asymmetry;
  return d;
}

py::tuple quadrature(const SymmetricOperator& op, Index num_probes, Index steps, std::uint64_t seed, Probe probe) {
  Quadrature q = run_on(op, [&] { return lanczos_quadrature(op.apply, op.dim, num_probes, steps, seed, probe); });
  py::list nodes, weights;
  for (std::size_t p = 0; p < q.nodes.size(); ++p) {
    nodes.append(to_numpy(q.nodes[p]));
    weights.append(to_numpy(q.weights[p]));
  }
  return py::make_tuple(nodes, weights, q.matvecs);
}

}  // namespace

void register_spectrum(py::module_& m) {
  py::enum_<EigenWhich>(m, "EigenWhich", py::module_local(), "Which end of the spectrum block Lanczos targets.")
      .value("largest", EigenWhich::largest)
      .value("smallest", EigenWhich::smallest)
      .value("both", EigenWhich::both);
  py::class_<SymmetricOperator>(m, "SymmetricOperator", py::module_local(),
                                "A symmetric operator given by its block products (an exact Hessian or a callable).")
      .def_readonly("dim", &SymmetricOperator::dim)
      .def_readonly("kind", &SymmetricOperator::kind)
      .def("apply", &op_apply, py::arg("V"), "H V for the columns of V (dim x k).");
  m.def("factorization_operator", &factorization_operator, py::arg("meas"), py::arg("dims"), py::arg("z"),
        py::arg("y"), "The exact loss Hessian of deep matrix factorization at z as a SymmetricOperator.");
  m.def("diagonal_hessian_operator", &diagonal_operator, py::arg("A"), py::arg("y"), py::arg("u"), py::arg("v"),
        py::arg("depth"), py::arg("nonnegative"),
        "The exact Hessian of 0.5||A x - y||^2 in the diagonal network's factors (u, v) or u.");
  m.def("diagonal_hessian_dense", [](const Mat& A, const Vec& y, const Vec& u, const std::optional<Vec>& v, int depth,
                                     bool nonnegative) {
    if (nonnegative == v.has_value())
      throw InvalidArgument(nonnegative ? "v must be None for the nonnegative model" : "v is required (signed model)");
    return DiagonalHessian(A, y, u, v.value_or(Vec()), depth, nonnegative).dense();
  }, py::arg("A"), py::arg("y"), py::arg("u"), py::arg("v"), py::arg("depth"), py::arg("nonnegative"),
        "The dense form of diagonal_hessian_operator (small problems).");
  m.def("callable_operator", &callable_operator, py::arg("matvec"), py::arg("dim"), py::arg("block"),
        "A Python matvec callable as a SymmetricOperator (calls keep the GIL).");
  m.def("lanczos_eigen", &eigen, py::arg("op"), py::arg("k"), py::arg("which"), py::arg("block"), py::arg("tol"),
        py::arg("max_matvecs"), py::arg("seed"), py::arg("symmetry_tol"), py::arg("start"),
        "Block Lanczos with full reorthogonalization: dict of values (ascending), vectors, residuals,\n"
        "matvecs, basis, converged, asymmetry.");
  m.def("lanczos_quadrature", &quadrature, py::arg("op"), py::arg("num_probes"), py::arg("steps"), py::arg("seed"),
        py::arg("probe"), "Lanczos quadrature per random probe: (nodes per probe, weights per probe, matvecs).");
}

}  // namespace implicitbias::bindings
