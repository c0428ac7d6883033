// Exponential backoff with jitter: the one way sluice spaces out retries and polls (lock polling,
// lock_timeout retries, reconnecting to PostgreSQL, status writes, Kubernetes API requests), so
// that many pods retrying the same thing do not stay in step.
#ifndef SLUICE_PKG_BASE_BACKOFF_H_
#define SLUICE_PKG_BASE_BACKOFF_H_

#include "absl/time/time.h"

namespace sluice::base {

// Returns `duration` scaled by a random factor in [0.5, 1.5). Thread-safe.
absl::Duration Jittered(absl::Duration duration);

// Delays that double from `initial` up to `max`. Not thread-safe; one per retry loop.
//
// Example:
//   base::Backoff backoff(absl::Milliseconds(100), absl::Seconds(2));
//   while (!TryOnce()) absl::SleepFor(backoff.Next());
class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max)
      : initial_(initial), max_(max), current_(initial) {}

  // Returns the current delay, jittered, and doubles the delay for the next call (up to `max`).
  absl::Duration Next();
  // Returns the current delay without jitter and without advancing.
  absl::Duration Current() const { return current_; }
  // Starts again from `initial` (after a success).
  void Reset() { current_ = initial_; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  absl::Duration current_;
};

}  // namespace sluice::base

#endif  // SLUICE_PKG_BASE_BACKOFF_H_
