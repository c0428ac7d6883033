#include "pkg/base/stop_request.h"

#include <utility>

namespace sluice::base {

void StopRequest::Stop() { Request(/*cancel=*/false); }

void StopRequest::Cancel() { Request(/*cancel=*/true); }

void StopRequest::Request(bool cancel) {
  std::function<void()> on_stop;
  std::function<void()> canceller;
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) on_stop = on_stop_;
    stopped_ = true;
    if (cancel) {
      cancelled_ = true;
      canceller = canceller_;
    }
    if (!on_stop && !canceller) return;
    ++hooks_running_;
  }
  // Outside the mutex: they talk to the server and wait for its answer.
  if (on_stop) on_stop();
  if (canceller) canceller();
  absl::MutexLock lock(&mu_);
  --hooks_running_;
}

bool StopRequest::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

bool StopRequest::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool StopRequest::taken_up() const {
  absl::MutexLock lock(&mu_);
  return runs_ > 0;
}

void StopRequest::TakeUp() {
  absl::MutexLock lock(&mu_);
  ++runs_;
}

void StopRequest::SetCanceller(std::function<void()> canceller) {
  absl::MutexLock lock(&mu_);
  canceller_ = std::move(canceller);
}

void StopRequest::SetOnStop(std::function<void()> action) {
  absl::MutexLock lock(&mu_);
  on_stop_ = std::move(action);
}

void StopRequest::GiveUp() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* running) { return *running == 0; }, &hooks_running_));
  if (--runs_ == 0) {
    canceller_ = nullptr;
    on_stop_ = nullptr;
  }
}

}  // namespace sluice::base
