// Common types of the implicitbias kernels: dense aliases, run status codes,
// and the per-run record that every integrator fills.  No Python here.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace implicitbias {

using Index = Eigen::Index;
using Vec = Eigen::VectorXd;
using Mat = Eigen::MatrixXd;
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Arr = Eigen::ArrayXXd;

// How a run ended.  The names are what Python sees.
enum class Status : int {
  running = -1,
  converged = 0,   // loss <= tol
  max_steps = 1,   // step budget used up
  max_time = 2,    // reached t_max (flow) without loss <= tol
  diverged = 3,    // non-finite values or step-size underflow; last finite state kept
  stalled = 4,     // adaptive flow: the loss stopped falling before reaching tol
};

inline const char* status_name(Status s) {
  switch (s) {
    case Status::converged: return "converged";
    case Status::max_steps: return "max_steps";
    case Status::max_time: return "max_time";
    case Status::diverged: return "diverged";
    case Status::stalled: return "stalled";
    default: return "running";
  }
}

// Thrown for inputs the kernels cannot accept (Python validates first; this is
// the last line of defence and is translated to ValueError by the bindings).
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// The problem a run refers to, checked against the batch's problem list.
template <class Problem>
const Problem& problem_of(const std::vector<Problem>& problems, int index) {
  if (index < 0 || static_cast<std::size_t>(index) >= problems.size())
    throw InvalidArgument("run refers to a problem index out of range");
  return problems[static_cast<std::size_t>(index)];
}

// Everything one run produces.  `history` holds one vector per channel, all of
// equal length, channel names in `channels`.
struct RunRecord {
  Vec state;                   // final state (last finite one if diverged)
  Status status = Status::running;
  std::int64_t n_steps = 0;    // accepted steps (GD: steps taken)
  std::int64_t n_rejected = 0; // rejected adaptive steps
  std::int64_t n_grad_evals = 0;
  std::int64_t n_jac = 0;      // Jacobian evaluations (implicit flow methods)
  std::int64_t n_lu = 0;       // factorizations of their Newton / stage matrix
  double t_final = 0.0;        // flow time (GD: steps * lr)
  double loss_final = 0.0;
  double wall_time = 0.0;      // seconds spent in the block that held this run
  std::vector<std::string> channels;
  std::vector<std::vector<double>> history;

  void add_channel(const std::string& name) {
    channels.push_back(name);
    history.emplace_back();
  }
};

}  // namespace implicitbias
