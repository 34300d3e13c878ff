// The factorization batch, compiled in its own translation unit
// (cpp/src/factorization_batch.cpp) apart from its pybind11 bindings
// (cpp/bindings/factorization.cpp); see compiled_diagonal.hpp.
#pragma once

#include <implicitbias/factorization.hpp>
#include <implicitbias/types.hpp>

#include <vector>

namespace implicitbias {

// run_factorization_batch (factorization.hpp), compiled in cpp/src/factorization_batch.cpp.
std::vector<RunRecord> compiled_factorization_batch(const std::vector<FactorizationProblem>& problems,
                                                    const std::vector<FactorizationRun>& runs,
                                                    const FactorizationBatchOptions& options);

}  // namespace implicitbias
