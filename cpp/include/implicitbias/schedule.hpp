// Step-size schedules shared by the fixed-step methods (steepest.hpp, the
// stochastic descent of diagonal networks in diagonal_sgd.hpp):
//   constant: lr_k = lr
//   power:    lr_k = lr (1 + k / decay_k0)^(-decay_power)
//   loss:     steepest descent only (its own rule, steepest.hpp)
// and a linear warm-up that multiplies any of them by min(1, (k + 1) / warmup_steps).
#pragma once

#include <cmath>
#include <cstdint>

namespace implicitbias {

enum class Schedule : int { constant = 0, power = 1, loss = 2 };

// lr (1 + k / k0)^(-a): the "power" schedule at step k (0-based).
inline double power_decay(double lr, std::int64_t k, double k0, double a) {
  return lr * std::pow(1.0 + static_cast<double>(k) / k0, -a);
}

// The step size of step k under "constant" or "power" and a linear warm-up
// over the first warmup_steps steps (0: none).
struct StepSizeRule {
  double lr = 0.0;
  Schedule schedule = Schedule::constant;
  double decay_k0 = 100.0;
  double decay_power = 0.5;
  std::int64_t warmup_steps = 0;

  double at(std::int64_t k) const {
    double e = schedule == Schedule::power ? power_decay(lr, k, decay_k0, decay_power) : lr;
    if (k < warmup_steps) e *= static_cast<double>(k + 1) / static_cast<double>(warmup_steps);
    return e;
  }
};

}  // namespace implicitbias
