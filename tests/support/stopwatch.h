// Elapsed time for tests, on the monotonic clock: the wall clock (absl::Now) of a test machine can
// step by seconds while a test runs (seen: 18 s in a 2.5 s test), which makes "took less than N
// seconds" checks on it fail for no fault of the code under test.
#ifndef SLUICE_TESTS_SUPPORT_STOPWATCH_H_
#define SLUICE_TESTS_SUPPORT_STOPWATCH_H_

#include <chrono>

#include "absl/time/time.h"

namespace sluice::testing {

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}

  // Returns the time since construction or the last Restart().
  absl::Duration Elapsed() const {
    return absl::FromChrono(std::chrono::steady_clock::now() - start_);
  }
  void Restart() { start_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_SUPPORT_STOPWATCH_H_
