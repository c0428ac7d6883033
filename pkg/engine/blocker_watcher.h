// Internal to pkg/engine: watches which sessions block a running step.
#ifndef SLUICE_PKG_ENGINE_BLOCKER_WATCHER_H_
#define SLUICE_PKG_ENGINE_BLOCKER_WATCHER_H_

#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pkg/store/store.h"

namespace sluice::engine {

// Watches the work connection's backend from the lock connection while a step runs, so that a
// lock timeout can name the sessions that blocked it (they are gone from pg_blocking_pids once the
// statement has given up).
class BlockerWatcher {
 public:
  BlockerWatcher(store::Store* watcher_connection, int watched_pid)
      : connection_(watcher_connection), pid_(watched_pid), thread_([this] { Loop(); }) {}
  ~BlockerWatcher() {
    {
      absl::MutexLock lock(&mutex_);
      stop_ = true;
    }
    thread_.join();
  }

  void StepStarted() {
    absl::MutexLock lock(&mutex_);
    step_started_ = absl::Now();
    blockers_.clear();
  }
  void StepFinished() {
    absl::MutexLock lock(&mutex_);
    step_started_ = absl::InfiniteFuture();
  }
  std::vector<store::BlockingSession> Blockers() {
    absl::MutexLock lock(&mutex_);
    return blockers_;
  }

 private:
  void Loop() {
    absl::MutexLock lock(&mutex_);
    while (!stop_) {
      mutex_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(100));
      if (stop_ || absl::Now() - step_started_ < absl::Milliseconds(200)) continue;
      mutex_.Unlock();
      absl::StatusOr<std::vector<store::BlockingSession>> blockers =
          connection_->BlockingSessionsOf(pid_);
      mutex_.Lock();
      if (blockers.ok() && !blockers->empty()) blockers_ = *std::move(blockers);
    }
  }

  store::Store* connection_;
  const int pid_;
  absl::Mutex mutex_;
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Time step_started_ ABSL_GUARDED_BY(mutex_) = absl::InfiniteFuture();
  std::vector<store::BlockingSession> blockers_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace sluice::engine

#endif  // SLUICE_PKG_ENGINE_BLOCKER_WATCHER_H_
