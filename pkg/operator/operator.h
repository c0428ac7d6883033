// `sluice operator`: reconciles MigrationJobs (product.md, "Kubernetes"; issue 11). Informers keep
// the MigrationJobs of one namespace (or all) and the metadata of the ConfigMaps and Secrets there;
// a change to a job, or to a ConfigMap or Secret that a job names, queues that job; workers
// (at most `max_concurrent`) reconcile queued jobs with reconciler.h, never two runs of one job at
// once. With leader election only the Lease's holder runs workers. /healthz, /readyz and /metrics
// are served when their addresses are set.
//
// Shutdown (`stop`, the CLI's SIGTERM route): queued work is dropped, running runs are asked to
// stop at their next revision and given `shutdown_grace`; then (or at a second signal) their
// statements are cancelled and roll back. The Lease is released last.
#ifndef SLUICE_PKG_OPERATOR_OPERATOR_H_
#define SLUICE_PKG_OPERATOR_OPERATOR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "pkg/base/stop_request.h"
#include "pkg/kube/client.h"
#include "pkg/operator/reconciler.h"

namespace sluice::operator_ {

struct OperatorOptions {
  std::string namespace_;  // the namespace to watch; empty: all namespaces
  int max_concurrent = 4;  // runs at once, in all
  std::string identity;    // this replica (the pod name): Events, appliedBy, the Lease's holder

  bool leader_elect = true;
  kube::ObjectRef lease{"", "sluice-operator"};  // the leader election Lease
  // client-go's defaults.
  absl::Duration lease_duration = absl::Seconds(15);
  absl::Duration renew_deadline = absl::Seconds(10);
  absl::Duration retry_period = absl::Seconds(2);

  std::string health_addr;   // "HOST:PORT" or ":PORT" for /healthz and /readyz; empty: none
  std::string metrics_addr;  // likewise for /metrics; may equal health_addr

  absl::Duration shutdown_grace = absl::Seconds(25);
  // How long cancelled runs get to roll back before the operator exits regardless.
  absl::Duration cancel_grace = absl::Seconds(5);
  absl::Duration retry_initial = absl::Seconds(1);  // a failed run's first retry delay
  absl::Duration retry_max = absl::Minutes(5);      // and its cap
  ReconcilerOptions reconciler;
  // Informer timings (tests shorten them).
  absl::Duration watch_timeout = absl::Minutes(5);
  absl::Duration informer_initial_backoff = absl::Milliseconds(200);
  absl::Duration informer_max_backoff = absl::Seconds(30);
};

// Runs the operator until `stop` is asked. Returns OK after a clean shutdown (every run ended at a
// safe point); an error of kind kInterrupted when runs had to be cancelled; kAborted when this
// replica lost the leader election (it exits so that it starts again as a standby); the error of a
// server that could not listen at a given address.
absl::Status Run(const OperatorOptions& options, kube::Client& client, ConnectorFactory connect,
                 std::shared_ptr<base::StopRequest> stop);

}  // namespace sluice::operator_

#endif  // SLUICE_PKG_OPERATOR_OPERATOR_H_
