// A request from another thread to stop work under way: the CLI's SIGTERM and SIGINT
// (cli::RouteStopSignals), an operator's shutdown. The work takes the request up while it runs and
// stops at its next safe point: the engine before its next revision (a wait for the lock at once),
// a lint at once. Cancel() also runs the work's canceller (the engine's: PQcancel of the
// statement under way). One request serves one piece of work at a time (one canceller, one stop
// action). Thread-safe.
#ifndef SLUICE_PKG_BASE_STOP_REQUEST_H_
#define SLUICE_PKG_BASE_STOP_REQUEST_H_

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace sluice::base {

class StopRequest {
 public:
  // Asks the work to stop; the first call also runs the work's stop action, on this thread.
  void Stop();
  // Stop(), and runs the work's canceller, on this thread.
  void Cancel();
  bool stopped() const;
  bool cancelled() const;
  // Whether work has taken the request up: when none has, there is nothing to stop cleanly, and a
  // signal handler may end the process at once.
  bool taken_up() const;

  // For the work: takes the request up, and gives it up at its end (waiting for a stop action or
  // canceller that runs on another thread to return, so that what they use may go away then).
  void TakeUp();
  void SetCanceller(std::function<void()> canceller);
  void SetOnStop(std::function<void()> action);
  void GiveUp();

 private:
  void Request(bool cancel);

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int runs_ ABSL_GUARDED_BY(mu_) = 0;
  int hooks_running_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> canceller_ ABSL_GUARDED_BY(mu_);
  std::function<void()> on_stop_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::base

#endif  // SLUICE_PKG_BASE_STOP_REQUEST_H_
