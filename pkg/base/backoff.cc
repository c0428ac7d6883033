#include "pkg/base/backoff.h"

#include <algorithm>
#include <random>

namespace sluice::base {

absl::Duration Jittered(absl::Duration duration) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::uniform_real_distribution<double> factor(0.5, 1.5);
  return duration * factor(random);
}

absl::Duration Backoff::Next() {
  const absl::Duration wait = Jittered(current_);
  current_ = std::min(current_ * 2, max_);
  return wait;
}

}  // namespace sluice::base
