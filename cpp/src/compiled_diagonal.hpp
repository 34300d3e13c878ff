// The diagonal batch, compiled in its own translation unit
// (cpp/src/diagonal_batch.cpp) apart from its pybind11 bindings
// (cpp/bindings/diagonal.cpp), so that the two build in parallel.  Both
// belong to the same core and are compiled with its -march flags
// (CMakeLists.txt); compiled_steepest.hpp and compiled_factorization.hpp do
// the same for the other families.
#pragma once

#include "diagonal_flows.hpp"  // first: the integrators stay extern wherever the batch types are seen

#include <implicitbias/diagonal_batch.hpp>
#include <implicitbias/types.hpp>

#include <vector>

namespace implicitbias {

// run_diagonal_batch (diagonal_batch.hpp), compiled in cpp/src/diagonal_batch.cpp.
std::vector<RunRecord> compiled_diagonal_batch(const std::vector<SensingProblem>& problems,
                                               const std::vector<DiagonalRun>& runs, const BatchOptions& options);

}  // namespace implicitbias
