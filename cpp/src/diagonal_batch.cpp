// The diagonal family's batch (descent, the SIMD-lanes kernel, the flow's
// dispatch) in its own translation unit, apart from the pybind11 bindings of
// cpp/bindings/diagonal.cpp: two units of half a minute build in parallel
// where one took a minute.  The flow integrators it calls are the explicit
// instances of cpp/src/diagonal_*.cpp (diagonal_flows.hpp).
#include "diagonal_flows.hpp"

#include <implicitbias/diagonal_batch.hpp>

#include "compiled_diagonal.hpp"

namespace implicitbias {

std::vector<RunRecord> compiled_diagonal_batch(const std::vector<SensingProblem>& problems,
                                               const std::vector<DiagonalRun>& runs, const BatchOptions& options) {
  return run_diagonal_batch(problems, runs, options);
}

}  // namespace implicitbias
