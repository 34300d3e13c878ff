// Conversions shared by the binding files: C++ run records to Python dicts.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <implicitbias/types.hpp>

namespace implicitbias::bindings {

namespace py = pybind11;

inline py::array_t<double> to_numpy(const std::vector<double>& v) {
  py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

inline py::array_t<double> to_numpy(const Vec& v) {
  py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.data(), v.data() + v.size(), a.mutable_data());
  return a;
}

// One run record as a dict: state, status, counters, history.
inline py::dict record_to_dict(const RunRecord& r) {
  py::dict d;
  d["state"] = to_numpy(r.state);
  d["status"] = status_name(r.status);
  d["n_steps"] = r.n_steps;
  d["n_rejected"] = r.n_rejected;
  d["n_grad_evals"] = r.n_grad_evals;
  d["t_final"] = r.t_final;
  d["loss_final"] = r.loss_final;
  d["wall_time"] = r.wall_time;
  py::dict h;
  for (std::size_t k = 0; k < r.channels.size(); ++k) h[py::str(r.channels[k])] = to_numpy(r.history[k]);
  d["history"] = h;
  return d;
}

}  // namespace implicitbias::bindings
