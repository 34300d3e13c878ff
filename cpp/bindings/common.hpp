// What every binding file shares: the run record and the option structs of
// the integrator, bound once as typed Python classes, and the conversions.
//
// Convention at the boundary: per-run settings and options cross as bound
// structs (py::class_ with def_readwrite fields, default-constructed and
// filled by attribute in implicitbias/_batch.py) and enums (py::enum_, whose
// member names are the Python vocabulary), never as positional integer codes
// or string-keyed dicts.  Every bound type is py::module_local(): the
// baseline, AVX2 and AVX-512 variants of the core are loaded side by side.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <implicitbias/flow.hpp>
#include <implicitbias/interrupt.hpp>
#include <implicitbias/types.hpp>

#include <functional>
#include <utility>
#include <vector>

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

// Run records handed to Python one object each (moved, not copied); the
// state and history become arrays only when Python reads them.
inline py::list to_python(std::vector<RunRecord>&& records) {
  py::list out(records.size());
  for (std::size_t k = 0; k < records.size(); ++k) out[k] = py::cast(std::move(records[k]));
  return out;
}

// Interrupts (see cpp/include/implicitbias/interrupt.hpp).  The check the
// kernels' pollers call on the calling thread, every few ms: takes the GIL,
// runs Python's signal handlers (PyErr_CheckSignals) and reports whether one
// raised (KeyboardInterrupt for Ctrl-C); that exception stays pending and is
// what the call raises (module.cpp translates Interrupted).  Only the main
// thread receives signals, so a call from another thread gets no check (and
// never waits for the GIL).
inline bool python_signal_pending() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

inline bool on_main_thread() {
  static const unsigned long main_ident = [] {
    return py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  }();
  return PyThread_get_thread_ident() == main_ident;
}

// Runs fn() with the GIL released and Ctrl-C enabled: every loop that polls
// (RunBook::poll, InterruptPoller) throws Interrupted soon after a signal
// handler raised.  Call with the GIL held.  Reuse it for any new long call:
//   auto result = interruptible([&] { return my_kernel(...); });
template <class Fn>
auto interruptible(Fn&& fn) {
  StopContext ctx(on_main_thread() ? &python_signal_pending : nullptr);
  StopScope scope(&ctx);
  py::gil_scoped_release release;
  return fn();
}

// Runs fn with the GIL released (and Ctrl-C enabled) and returns its records
// as Python objects.
template <class Fn>
py::list run_released(Fn&& fn) {
  std::vector<RunRecord> records = interruptible(std::forward<Fn>(fn));
  return to_python(std::move(records));
}

// The block product of a Python callable: matvec(V) -> H V on (dim, k) arrays when block is true,
// else matvec(v) -> H v on vectors, column by column.  Call with the GIL held.
inline std::function<void(const Mat&, Mat&)> python_matvec(const py::function& matvec, bool block) {
  return [matvec, block](const Mat& X, Mat& Y) {
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
}

inline void register_run_types(py::module_& m) {
  py::enum_<Status>(m, "Status", py::module_local(), "How a run ended.")
      .value("running", Status::running)
      .value("converged", Status::converged)
      .value("max_steps", Status::max_steps)
      .value("max_time", Status::max_time)
      .value("diverged", Status::diverged)
      .value("stalled", Status::stalled);

  py::class_<RunRecord>(m, "RunRecord", py::module_local(), "Everything one run produced.")
      .def_property_readonly("state", [](const RunRecord& r) { return to_numpy(r.state); })
      .def_readonly("status", &RunRecord::status)
      .def_readonly("n_steps", &RunRecord::n_steps)
      .def_readonly("n_rejected", &RunRecord::n_rejected)
      .def_readonly("n_grad_evals", &RunRecord::n_grad_evals)
      .def_readonly("n_jac", &RunRecord::n_jac)
      .def_readonly("n_lu", &RunRecord::n_lu)
      .def_readonly("t_final", &RunRecord::t_final)
      .def_readonly("loss_final", &RunRecord::loss_final)
      .def_readonly("wall_time", &RunRecord::wall_time)
      .def_property_readonly("history", [](const RunRecord& r) {
        py::dict h;
        for (std::size_t k = 0; k < r.channels.size(); ++k) h[py::str(r.channels[k])] = to_numpy(r.history[k]);
        return h;
      });

  py::class_<FixedStepOptions>(m, "FixedStepOptions", py::module_local(), "Options of the fixed-step loop.")
      .def(py::init<>())
      .def_readwrite("steps", &FixedStepOptions::steps)
      .def_readwrite("tol", &FixedStepOptions::tol)
      .def_readwrite("record_every", &FixedStepOptions::record_every);

  py::class_<AdaptiveOptions>(m, "AdaptiveOptions", py::module_local(), "Options of the adaptive flow integrators.")
      .def(py::init<>())
      .def_readwrite("rtol", &AdaptiveOptions::rtol)
      .def_readwrite("atol", &AdaptiveOptions::atol)
      .def_readwrite("tol", &AdaptiveOptions::tol)
      .def_readwrite("t_max", &AdaptiveOptions::t_max)
      .def_readwrite("max_steps", &AdaptiveOptions::max_steps)
      .def_readwrite("h0", &AdaptiveOptions::h0)
      .def_readwrite("record_times", &AdaptiveOptions::record_times)
      .def_readwrite("record_every", &AdaptiveOptions::record_every)
      .def_readwrite("stall_steps", &AdaptiveOptions::stall_steps)
      .def_readwrite("stall_factor", &AdaptiveOptions::stall_factor)
      .def_readwrite("stall_rel_change", &AdaptiveOptions::stall_rel_change)
      .def_readwrite("jac_every", &AdaptiveOptions::jac_every);
}

}  // namespace implicitbias::bindings
