// Random numbers: splitmix64 streams keyed by (seed, stream, counter), so a
// run's draws depend only on its own seed and step, never on scheduling.
// Used by the label-noise field (factorization.hpp) and the probes of the
// trace estimators (trace.hpp).
#pragma once

#include <cmath>
#include <cstdint>

namespace implicitbias {

class Rng {
 public:
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0, std::uint64_t counter = 0) {
    state_ = mix(seed ^ 0x9E3779B97F4A7C15ULL);
    state_ = mix(state_ ^ (stream + 0xD1B54A32D192ED03ULL));
    state_ = mix(state_ ^ (counter + 0x8CB92BA72F3D8DD7ULL));
  }
  std::uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return mix(state_);
  }
  // uniform in (0, 1)
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double rademacher() { return (next() >> 63) ? 1.0 : -1.0; }
  // standard normal by Box-Muller (portable: no std::normal_distribution)
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = uniform(), u2 = uniform();
    const double rad = std::sqrt(-2.0 * std::log(u1));
    const double ang = 6.283185307179586476925286766559 * u2;
    spare_ = rad * std::sin(ang);
    has_spare_ = true;
    return rad * std::cos(ang);
  }

 private:
  static std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t state_ = 0;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace implicitbias
