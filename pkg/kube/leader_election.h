// Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does
// it (kube-api.md section 6), on a thread of its own:
//   - a standby tries to acquire every retry_period, jittered by client-go's JitterFactor 1.2 (a
//     wait in [retry_period, 2.2 * retry_period)): GET the Lease; NotFound: CREATE it with us as
//     holder; held by another: take it over only once its record has not changed for its
//     leaseDurationSeconds, timed on this process's monotonic clock from when we last saw the
//     record change (client-go's observedTime; the holder's renewTime is never compared with our
//     clock). A takeover is a PUT at the resourceVersion read, with acquireTime now and
//     leaseTransitions + 1. A 409 or any other error means "not this round";
//   - the leader renews every retry_period (a PUT of the Lease as last written, then GET + PUT
//     when that fails). When no renewal succeeded for renew_deadline, counted from the start of
//     the last successful one, it stops leading: on_stopped_leading runs and the elector never
//     tries to lead again. The caller is expected to exit and restart as a standby (the operator
//     does), as client-go's callers do, since work started as leader may still be running;
//   - Stop(release = true) while leading gives the Lease up (client-go's ReleaseOnCancel), so a
//     standby takes over within about one retry period instead of a lease duration.
// leaseDurationSeconds is lease_duration rounded up to whole seconds (client-go truncates): a
// standby then never waits less than this leader assumes. Leader election does not fence: a
// deposed leader may still act for a moment, so the work it guards must stay idempotent.
//
// Each try (up to two API calls) has one deadline: for a standby, renew_deadline from its start;
// for the leader, the end of its renew deadline, so that a hung API server cannot keep it leading
// past it. Stop() wakes a waiting thread at once but waits for a call in flight, so it returns
// within renew_deadline (twice that with release: the release has its own renew_deadline).
//
// Example:
//   kube::LeaderElectionOptions options;
//   options.lease = {"sluice", "sluice-operator"};
//   options.identity = pod_name;
//   SLUICE_RETURN_IF_ERROR(kube::ValidateLeaderElectionOptions(options));
//   kube::LeaderElector elector(*client, options, StartWorkers, RequestExit);
//   elector.Start();
//   ...
//   elector.Stop(/*release=*/true);
#ifndef SLUICE_PKG_KUBE_LEADER_ELECTION_H_
#define SLUICE_PKG_KUBE_LEADER_ELECTION_H_

#include <chrono>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pkg/kube/client.h"
#include "pkg/kube/types.h"

namespace sluice::kube {

struct LeaderElectionOptions {
  ObjectRef lease;       // namespace and name of the coordination.k8s.io/v1 Lease
  std::string identity;  // holderIdentity written by this replica; unique per process
  // client-go's defaults.
  absl::Duration lease_duration = absl::Seconds(15);
  absl::Duration renew_deadline = absl::Seconds(10);
  absl::Duration retry_period = absl::Seconds(2);
};

// Returns OK when lease_duration > renew_deadline > 1.2 * retry_period > 0 (client-go's rules,
// JitterFactor included) and the Lease and identity are named; otherwise InvalidArgument naming
// every offending option by its command-line flag.
absl::Status ValidateLeaderElectionOptions(const LeaderElectionOptions& options);

class LeaderElector {
 public:
  // `client` must outlive the elector; `options` should be valid (ValidateLeaderElectionOptions).
  // The callbacks run on the elector's thread and must return promptly (renewals wait for them):
  // `on_started_leading` once the Lease is ours; `on_stopped_leading` only when leadership is lost
  // (no renewal within renew_deadline), never because of Stop().
  LeaderElector(Client& client, LeaderElectionOptions options,
                std::function<void()> on_started_leading, std::function<void()> on_stopped_leading);
  // Stop(false).
  ~LeaderElector();

  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Starts the thread. Call once; does nothing after Stop().
  void Start();
  // Stops the thread and waits for it. When this replica leads and `release`, gives the Lease up
  // if it still holds it (holderIdentity "", leaseDurationSeconds 1, acquireTime and renewTime
  // now; a PUT at the resourceVersion read, so a new holder's record is never overwritten).
  // Calls no callback. Idempotent; thread-safe.
  void Stop(bool release);

  // Returns whether this replica leads: from the acquisition (before on_started_leading) until
  // leadership is lost (before on_stopped_leading) or Stop() returns.
  bool IsLeader() const;

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  void Run();
  // Leads until stopped (returns true) or leadership is lost (returns false).
  bool Lead(SteadyTime acquired);
  // One round of client-go's tryAcquireOrRenew; returns whether the Lease is ours now.
  bool TryAcquireOrRenew(bool leading, absl::Time deadline);
  // Gives the Lease up if we still hold it.
  void Release();
  // Waits `d` unless stopped first; returns false when stopped.
  bool Wait(absl::Duration d);
  // Notes `spec` as seen now; restarts the expiry clock when it differs from the last one seen.
  void Observe(const LeaseSpec& spec, SteadyTime now);
  std::string Describe() const;

  Client& client_;
  const LeaderElectionOptions options_;
  const std::function<void()> on_started_leading_;
  const std::function<void()> on_stopped_leading_;
  std::thread thread_;
  absl::Mutex stop_mu_;  // serialises Stop(), which joins the thread

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool leader_ ABSL_GUARDED_BY(mu_) = false;

  // Only the elector's thread uses these.
  std::optional<Lease> last_written_;  // the Lease as our last successful write stored it
  std::optional<LeaseSpec> observed_;  // the record as last seen...
  SteadyTime observed_time_;           // ...and when it last changed, on our clock
  std::mt19937_64 random_;             // retry jitter
};

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_LEADER_ELECTION_H_
