// The compiled module implicitbias._core: registers each area's bindings.
#include "common.hpp"

#include <implicitbias/parallel.hpp>

#include <Eigen/Core>

#include <cstdlib>
#include <cstring>
#include <string>

namespace implicitbias::bindings {
void register_diagonal(py::module_& m);
void register_steepest(py::module_& m);
void register_factorization(py::module_& m);
void register_spectrum(py::module_& m);
}

namespace {
// Eigen's list of the instruction sets in use, completed with AVX2 and FMA
// when the compiler targets them: Eigen 3.4 names an AVX2 + FMA build "AVX".
std::string simd_instruction_sets() {
  std::string sets = Eigen::SimdInstructionSetsInUse();
#if defined(__AVX2__)
  if (sets.find("AVX2") == std::string::npos) sets = "AVX2, " + sets;
#endif
#if defined(__FMA__)
  if (sets.find("FMA") == std::string::npos) sets = "FMA, " + sets;
#endif
  return sets;
}
}  // namespace

PYBIND11_MODULE(IMPLICITBIAS_MODULE_NAME, m) {
  namespace py = pybind11;
  using namespace implicitbias;
  m.doc() = "implicitbias compiled core (Eigen kernels, OpenMP batches).";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const Interrupted&) {
      // the exception a signal handler raised is pending (common.hpp)
      if (PyErr_Occurred() == nullptr) PyErr_SetNone(PyExc_KeyboardInterrupt);
    }
  });
  m.def("openmp_enabled", &openmp_enabled, "True when the core was built with OpenMP.");
  m.def("max_threads", &max_threads, "Threads a batch uses by default (OpenMP's default, 1 without OpenMP).");
  m.def("simd_instruction_sets", &simd_instruction_sets,
        "The SIMD instruction sets Eigen was compiled for (e.g. 'SSE, SSE2').");
  m.def("openmp_version", &openmp_version,
        "The OpenMP specification the core was built against as its _OPENMP date (201511 = 4.5); 0 without.");
  m.attr("isa") = IMPLICITBIAS_ISA;
#if defined(__clang__)
  m.attr("compiler") = "Clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("compiler") = "GCC " __VERSION__;
#elif defined(_MSC_VER)
  m.attr("compiler") = "MSVC " + std::to_string(_MSC_VER);
#else
  m.attr("compiler") = "unknown";
#endif
  m.attr("eigen_version") = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                            std::to_string(EIGEN_MINOR_VERSION);
  m.attr("__version__") = IMPLICITBIAS_VERSION;  // checked against implicitbias._version by _native.py
  m.def(
      "cpu_supports",
      [](const std::string& feature) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        if (feature == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        if (feature == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
        (void)feature;
        return false;
      },
      py::arg("feature"), "Whether this CPU supports 'avx2' (x86-64-v3) or 'avx512' (x86-64-v4).");
  m.def(
      "_leak_for_tests",
      [](std::size_t bytes) {
        // never freed, and written so that the pages are resident: a C++ leak of this size per call
        char* block = static_cast<char*>(std::malloc(bytes));
        if (block != nullptr) std::memset(block, 1, bytes);
        return block != nullptr;
      },
      py::arg("bytes"),
      "Allocates `bytes` and never frees them (tests/test_memory.py: its bound catches a C++ leak of this size "
      "per call). Not for use.");
  implicitbias::bindings::register_run_types(m);
  // steepest and factorization before diagonal: the diagonal family's options take the step-size Schedule
  // enum and the SharpnessOptions struct those register (registered first, they appear by name in the
  // diagonal signatures and stubs)
  implicitbias::bindings::register_steepest(m);
  implicitbias::bindings::register_factorization(m);
  implicitbias::bindings::register_diagonal(m);
  implicitbias::bindings::register_spectrum(m);
}
