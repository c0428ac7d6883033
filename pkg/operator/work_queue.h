// The operator's queue of MigrationJobs to reconcile, keyed "NAMESPACE/NAME", with client-go
// workqueue's guarantees: a key waits in the queue at most once however often it is added; a key
// that a worker holds is handed to no other worker until Done, and an Add meanwhile queues it again
// for after Done. So one MigrationJob never has two runs at once, and the number of workers bounds
// the runs in all. Failures are retried after a per-key delay that doubles up to a cap.
// Thread-safe.
//
// Example (each of N worker threads):
//   while (std::optional<std::string> key = queue.Get()) {
//     if (Reconcile(*key).ok()) queue.Forget(*key); else queue.AddRateLimited(*key);
//     queue.Done(*key);
//   }
#ifndef SLUICE_PKG_OPERATOR_WORK_QUEUE_H_
#define SLUICE_PKG_OPERATOR_WORK_QUEUE_H_

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sluice::operator_ {

class WorkQueue {
 public:
  // Retry delays of AddRateLimited: `initial_retry`, doubling per failure of the key, at most
  // `max_retry`.
  WorkQueue(absl::Duration initial_retry, absl::Duration max_retry);

  // Queues `key` unless it is queued already (or held: then it is queued again at Done).
  void Add(const std::string& key);
  // Adds `key` after `delay`; a key already waiting keeps the earlier time.
  void AddAfter(const std::string& key, absl::Duration delay);
  // Adds `key` after its next retry delay and returns that delay.
  absl::Duration AddRateLimited(const std::string& key);
  // Forgets the failures of `key`: its next retry delay starts from the initial one again.
  void Forget(const std::string& key);
  // Returns the number of failures recorded for `key` since it was last forgotten.
  int Failures(const std::string& key) const;

  // Returns the next key to work on, which the caller holds until Done; blocks until there is
  // one. std::nullopt once ShutDown was called (queued keys are then dropped).
  std::optional<std::string> Get();
  // Releases `key`; queues it again if it was added while held.
  void Done(const std::string& key);

  // Makes Get return std::nullopt at once, now and later; keys are no longer handed out.
  void ShutDown();

  // Keys waiting to be handed out (due now), and keys waiting for their delay.
  int Len() const;
  int Delayed() const;
  // Keys held by workers.
  int Processing() const;

 private:
  void AddLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves delayed keys whose time came into the queue; returns the earliest time still waiting.
  absl::Time PromoteDueLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration initial_retry_;
  const absl::Duration max_retry_;

  mutable absl::Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);       // queued, or to queue again at Done
  std::set<std::string> processing_ ABSL_GUARDED_BY(mu_);  // held by a worker
  std::map<std::string, absl::Time> delayed_ ABSL_GUARDED_BY(mu_);  // key -> when it is due
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped when a delayed key is added, so a waiting Get looks at the new earliest time.
  int delayed_version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sluice::operator_

#endif  // SLUICE_PKG_OPERATOR_WORK_QUEUE_H_
