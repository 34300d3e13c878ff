// The factorization batch in its own translation unit (compiled_factorization.hpp).
#include "compiled_factorization.hpp"

namespace implicitbias {

std::vector<RunRecord> compiled_factorization_batch(const std::vector<FactorizationProblem>& problems,
                                                    const std::vector<FactorizationRun>& runs,
                                                    const FactorizationBatchOptions& options) {
  return run_factorization_batch(problems, runs, options);
}

}  // namespace implicitbias
