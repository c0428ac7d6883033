// Reports a migration run to the status of a MigrationJob (`--report NAMESPACE/NAME`) and as
// core/v1 Events, from the init container or a Job: the `engine::Observer` of the run.
//
// The database comes first. Observer callbacks never block: they record what happened and a
// background thread writes it to the API server (merge patches of /status, conditional on the
// resourceVersion just read; re-read and recomputed on 409; 429/5xx/unreachable retried with
// backoff). Only Finish waits, and for at most `report_timeout`; a status that could not be
// written by then is a logged warning, and an error from Finish only with `report_required`.
// Stale writes of older runs never overwrite a newer run's status (see status_composer.h).
//
// The reporter does not make its Kubernetes client: the caller (pkg/cli, the composition root)
// does, and hands over either the client or the reason it has none, which Finish then reports.
//
// Usage (pkg/cli):
//   reporting::ReportOptions report;
//   report.report = flags.report;                 // "apps/app-db"
//   report.report_required = flags.report_required;
//   report.report_timeout = flags.report_timeout;
//   report.instance = pod_name;                   // POD_NAME or the host name
//   report.target = target;                       // "head"
//   absl::StatusOr<std::unique_ptr<kube::Client>> client =
//       kube::NewRestClientFromConfig(flags.kubeconfig);  // an error here is not fatal
//   SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<reporting::MigrationJobReporter> reporter,
//                           reporting::MigrationJobReporter::Start(report, std::move(client)));
//   // ^ fails only on a bad --report
//   engine::Engine engine(graph, factory, options, reporter.get());
//   absl::StatusOr<engine::RunResult> result = engine.Upgrade(target);
//   absl::Status reported =
//       reporter->Finish(result.status(), result.ok() ? &*result : nullptr);
//   if (!result.ok()) return result.status();   // the run's own error decides the exit code
//   return reported;                            // non-OK only with --report-required
//
// Thread-safe: the Observer methods and Finish may be called from any one thread.
#ifndef SLUICE_PKG_REPORTING_MIGRATION_JOB_REPORTER_H_
#define SLUICE_PKG_REPORTING_MIGRATION_JOB_REPORTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pkg/engine/engine.h"
#include "pkg/kube/client.h"

namespace sluice::reporting {

struct ReportOptions {
  std::string report;            // "NAMESPACE/NAME" of the MigrationJob (--report)
  bool report_required = false;  // --report-required
  absl::Duration report_timeout = absl::Seconds(30);  // --report-timeout: Finish's wait bound
  std::string instance;  // the pod name: Events' reportingInstance and lastApplied's appliedBy.
                         // Empty: $POD_NAME, else $HOSTNAME, else the host name.
  std::string target;    // the target as asked ("head"), for messages
  // The metadata.generation the run works for (the operator's, from the object it read); 0: the
  // generation of the object when the reporter first reads it.
  int64_t generation = 0;
  // The run applies migrations whose content differs from what the stored status describes: its
  // first write, at once, sets Ready=False with reason MigrationsChanged (status_composer.h).
  bool content_changed = false;
};

class MigrationJobReporter final : public engine::Observer {
 public:
  // Starts reporting a run that begins now through `client`, which the reporter then owns.
  // Returns kInvalidArgument when `options.report` is not NAMESPACE/NAME. A `client` that is an
  // error (no Kubernetes configuration, an unreadable certificate) is not: it is logged as a
  // warning now and reported by Finish, as is an API server that cannot be reached, so the
  // migration runs regardless.
  static absl::StatusOr<std::unique_ptr<MigrationJobReporter>> Start(
      const ReportOptions& options, absl::StatusOr<std::unique_ptr<kube::Client>> client);
  // The same through a client shared with others (the operator's), which must outlive the
  // reporter; Finish's time bound then rests on its calls' deadlines, since shutting the shared
  // client down would end everyone's requests.
  static absl::StatusOr<std::unique_ptr<MigrationJobReporter>> Start(const ReportOptions& options,
                                                                     kube::Client& shared_client);

  ~MigrationJobReporter() override;

  // Sets the digest of the manifests the run plans with (graph::RevisionGraph::ContentDigest), for
  // status.migrationsDigest beside the revision fields it describes. Call before the run.
  void SetMigrationsDigest(std::string digest);
  // Sets the condition reason of a failure found before any SQL ran (e.g. "ConfigMapNotFound"),
  // for the Stalled and Ready conditions and the Warning Event. Call before Finish.
  void SetFailureReason(std::string reason);

  // engine::Observer. Never block on the API server.
  void OnPlanned(const engine::RunResult& result_so_far,
                 const std::vector<std::string>& pending) override;
  void OnWaitingForLock(const store::LockHolder& holder) override;
  void OnStepFinished(const engine::StepOutcome& step) override;

  // Records the run's outcome (`run_status`, and `result` when the run succeeded; may be null),
  // waits up to `report_timeout` for the status and events to be written, and stops. Returns OK
  // when the status was written, or when it was not and reporting is not required (a warning is
  // logged); otherwise the reason it could not be written. Call once.
  absl::Status Finish(const absl::Status& run_status, const engine::RunResult* result);

  class Impl;

 private:
  explicit MigrationJobReporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Returns {namespace, name} of "NAMESPACE/NAME", or kInvalidArgument.
absl::StatusOr<kube::ObjectRef> ParseReportTarget(absl::string_view report);

}  // namespace sluice::reporting

#endif  // SLUICE_PKG_REPORTING_MIGRATION_JOB_REPORTER_H_
