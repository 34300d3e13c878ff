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

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
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

// The records of a batch, handed to Python as one object: the scalars of all
// runs as columns (one array each, decoded in one pass) and the final states
// as one flat array with offsets; a run's history becomes a dict of arrays only
// when Python asks for it (history(k)).
struct RunRecords {
  std::vector<RunRecord> records;
};

// Run k's history as a dict of arrays.
inline py::dict history_dict(const RunRecord& r) {
  py::dict h;
  for (std::size_t k = 0; k < r.channels.size(); ++k) h[py::str(r.channels[k])] = to_numpy(r.history[k]);
  return h;
}

inline py::object to_python(std::vector<RunRecord>&& records) {
  return py::cast(RunRecords{std::move(records)});
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
py::object run_released(Fn&& fn) {
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
      .def_property_readonly("history", &history_dict);

  py::class_<RunRecords>(m, "RunRecords", py::module_local(),
                         "The records of a batch as columns (one array per scalar, the final states stacked).")
      .def("__len__", [](const RunRecords& b) { return b.records.size(); })
      .def(
          "__getitem__",
          [](const RunRecords& b, std::size_t k) {
            if (k >= b.records.size()) throw py::index_error("run index out of range");
            return b.records[k];
          },
          py::arg("k"), "Run k's record (a copy).")
      .def(
          "columns",
          [](const RunRecords& b) {
            const auto K = static_cast<py::ssize_t>(b.records.size());
            py::array_t<std::int8_t> status(K);
            py::array_t<std::int64_t> counts({K, static_cast<py::ssize_t>(5)});
            py::array_t<double> reals({K, static_cast<py::ssize_t>(3)});
            py::array_t<std::int64_t> offsets(K + 1);
            auto st = status.mutable_unchecked<1>();
            auto ct = counts.mutable_unchecked<2>();
            auto re = reals.mutable_unchecked<2>();
            auto of = offsets.mutable_unchecked<1>();
            of(0) = 0;
            for (py::ssize_t k = 0; k < K; ++k) {
              const RunRecord& r = b.records[static_cast<std::size_t>(k)];
              st(k) = static_cast<std::int8_t>(r.status);
              ct(k, 0) = r.n_steps;
              ct(k, 1) = r.n_rejected;
              ct(k, 2) = r.n_grad_evals;
              ct(k, 3) = r.n_jac;
              ct(k, 4) = r.n_lu;
              re(k, 0) = r.t_final;
              re(k, 1) = r.loss_final;
              re(k, 2) = r.wall_time;
              of(k + 1) = of(k) + static_cast<std::int64_t>(r.state.size());
            }
            py::array_t<double> states(static_cast<py::ssize_t>(of(K)));
            double* dst = states.mutable_data();
            for (const RunRecord& r : b.records) dst = std::copy(r.state.data(), r.state.data() + r.state.size(), dst);
            return py::make_tuple(status, counts, reals, offsets, states);
          },
          "(status codes int8 (K,), counts int64 (K, 5): n_steps, n_rejected, n_grad_evals, n_jac, n_lu;\n"
          "reals float64 (K, 3): t_final, loss_final, wall_time; offsets int64 (K + 1,); states float64:\n"
          "run k's final state is states[offsets[k]:offsets[k + 1]]).")
      .def(
          "history",
          [](const RunRecords& b, std::size_t k) {
            if (k >= b.records.size()) throw py::index_error("run index out of range");
            return history_dict(b.records[k]);
          },
          py::arg("k"), "Run k's recorded channels as a dict of arrays.")
      .def(
          "last",
          [](const RunRecords& b, const std::string& channel) {
            const auto K = static_cast<py::ssize_t>(b.records.size());
            py::array_t<double> out(K);
            auto o = out.mutable_unchecked<1>();
            for (py::ssize_t k = 0; k < K; ++k) {
              const RunRecord& r = b.records[static_cast<std::size_t>(k)];
              o(k) = std::numeric_limits<double>::quiet_NaN();
              for (std::size_t c = 0; c < r.channels.size(); ++c)
                if (r.channels[c] == channel && !r.history[c].empty()) o(k) = r.history[c].back();
            }
            return out;
          },
          py::arg("channel"), "The last recorded value of a channel in every run (NaN where it is absent).")
      .def(
          "has_channel",
          [](const RunRecords& b, const std::string& channel) {
            py::array_t<bool> out(static_cast<py::ssize_t>(b.records.size()));
            auto o = out.mutable_unchecked<1>();
            for (std::size_t k = 0; k < b.records.size(); ++k) {
              const auto& ch = b.records[k].channels;
              o(static_cast<py::ssize_t>(k)) = std::find(ch.begin(), ch.end(), channel) != ch.end();
            }
            return out;
          },
          py::arg("channel"), "Whether each run records this channel.");

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
