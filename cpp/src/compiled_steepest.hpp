// The steepest batch, compiled in its own translation unit
// (cpp/src/steepest_batch.cpp) apart from its pybind11 bindings
// (cpp/bindings/steepest.cpp); see compiled_diagonal.hpp.
#pragma once

#include <implicitbias/steepest.hpp>
#include <implicitbias/types.hpp>

#include <vector>

namespace implicitbias {

// run_steepest_batch (steepest.hpp), compiled in cpp/src/steepest_batch.cpp.
std::vector<RunRecord> compiled_steepest_batch(const std::vector<ClassificationProblem>& problems,
                                               const std::vector<SteepestRunSpec>& runs, const SteepestOptions& options,
                                               int num_threads);

}  // namespace implicitbias
