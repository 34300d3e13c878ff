// The steepest batch in its own translation unit (compiled_steepest.hpp).
#include "compiled_steepest.hpp"

namespace implicitbias {

std::vector<RunRecord> compiled_steepest_batch(const std::vector<ClassificationProblem>& problems,
                                               const std::vector<SteepestRunSpec>& runs, const SteepestOptions& options,
                                               int num_threads) {
  return run_steepest_batch(problems, runs, options, num_threads);
}

}  // namespace implicitbias
