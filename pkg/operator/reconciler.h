// One MigrationJob's reconcile: read the ConfigMaps its spec names and the Secret of its database
// through the API, decide whether the database must be brought to the spec (Decide, pure), and run
// the engine there with the reporter of the init-container mode writing status and Events. Used by
// the operator's workers (operator.h); one Reconciler serves them all, each call on its own job.
#ifndef SLUICE_PKG_OPERATOR_RECONCILER_H_
#define SLUICE_PKG_OPERATOR_RECONCILER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pkg/base/stop_request.h"
#include "pkg/engine/engine.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/kube/client.h"
#include "pkg/kube/types.h"

namespace sluice::operator_ {

// Returns a StoreFactory for the connection string `url` (the composition root's: PgStore), or an
// error when the string is not a connection string at all; must not log it.
using ConnectorFactory =
    std::function<absl::StatusOr<engine::StoreFactory>(const std::string& url)>;

// The migrations a MigrationJob names, as read from its ConfigMaps.
struct LoadedMigrations {
  std::shared_ptr<const graph::RevisionGraph> graph;
  std::string digest;  // graph->ContentDigest()
};

// Why a reconcile could not run: a condition reason (CamelCase) and a message that names the
// object and says what to fix. Never holds a Secret's value.
struct ConfigProblem {
  std::string reason;
  std::string message;
};

// Reads the ConfigMaps `spec.migrations.configMaps` names (every key ending in .yaml or .yml, in
// key order, ConfigMaps in the given order) and builds the revision graph. Errors carry a
// ConfigProblem (see ConfigProblemOf): ConfigMapNotFound, ConfigMapForbidden, InvalidMigrations,
// NoMigrations; transient API errors are returned as they are.
absl::StatusOr<LoadedMigrations> LoadMigrations(kube::Client& client, const kube::MigrationJob& job,
                                                absl::Time deadline);

// Returns the ConfigProblem an error of LoadMigrations or ReadDatabaseUrls carries, if any.
std::optional<ConfigProblem> ConfigProblemOf(const absl::Status& status);

// The connection strings of a MigrationJob's database, from its Secrets.
struct DatabaseUrls {
  std::string url;
  std::string lock_url;  // empty: the lock goes through `url`
};

// Reads spec.database.urlSecretRef (and lockDatabaseUrlSecretRef when set). Errors carry a
// ConfigProblem: SecretNotFound, SecretForbidden, SecretKeyMissing.
absl::StatusOr<DatabaseUrls> ReadDatabaseUrls(kube::Client& client, const kube::MigrationJob& job,
                                              absl::Time deadline);

// What the last failed run of a job was about, so that its own status writes (which come back as
// watch events) do not start it again before its retry time.
struct FailedAttempt {
  int64_t generation = 0;
  std::string digest;
  std::string secrets_version;  // the resourceVersions of the Secrets it read
  absl::Time retry_at;
};

// What this operator's last successful run of a job applied. Its status write may reach the
// informer's cache after a reconcile that its own earlier writes (or a ConfigMap's change) queued:
// until then the cache still shows the status from before the run.
struct AppliedRun {
  int64_t generation = 0;
  std::string digest;
};

struct Decision {
  enum class Action { kNothing, kRun, kRetryLater };
  Action action = Action::kNothing;
  std::string why;               // for the log
  bool content_changed = false;  // the status describes other content (Ready=False at once)
  absl::Time retry_at;           // kRetryLater: when
};

// Decides what to do for `job` whose migrations have `digest`: run when the status does not say
// that this generation and this content reached the target (a newer generation, other content,
// a failed or interrupted run); but a run that failed for this same generation, content and
// Secrets waits for its retry time. Suspended jobs never run. Content other than what the status
// or `applied` (this operator's last successful run, newer than a stale cache) describes is a
// change of content: Ready turns False (MigrationsChanged) at once.
Decision Decide(const kube::MigrationJob& job, const std::string& digest,
                const std::string& secrets_version, const std::optional<FailedAttempt>& failed,
                const std::optional<AppliedRun>& applied, absl::Time now);

// Picks the direction of a run to `target`: a target below the database's versions is a
// downgrade (operator: "a changed target, up or down, runs again").
enum class Direction { kUpgrade, kDowngrade };
absl::StatusOr<Direction> DirectionTo(engine::Engine& engine, const graph::RevisionGraph& graph,
                                      const std::string& target);

struct ReconcilerOptions {
  std::string identity;  // the operator pod's name: appliedBy, Events' reportingInstance
  absl::Duration connect_timeout = absl::Seconds(30);
  absl::Duration lock_wait = absl::Minutes(10);
  absl::Duration report_timeout = absl::Seconds(30);
  absl::Duration api_timeout = absl::Seconds(30);  // reading ConfigMaps and Secrets
};

// What a run did, for metrics.
struct RunReport {
  enum class Outcome { kAtTarget, kSucceeded, kFailed, kInterrupted, kConfigError };
  Outcome outcome = Outcome::kFailed;
  int applied = 0;
  absl::Duration duration;
  std::optional<absl::Duration> lock_wait;  // set when the run waited for the lock
  std::string failure;                      // a failure kind or ConfigProblem reason
  bool status_written = false;              // the status of the run's end reached the API server
  // A successful run's reading of the database at its end (no steps; from = to): other jobs of
  // the same database, content and target may report it for a moment instead of connecting
  // again (Reconciler::ReportReading).
  std::optional<engine::RunResult> reading;
};

class Reconciler {
 public:
  // `client` and the factory's stores are shared by all runs; `client` must outlive this.
  Reconciler(kube::Client& client, ConnectorFactory connect, ReconcilerOptions options);

  // Runs `job` (whose migrations are `migrations`) to spec.target, writing status and Events;
  // `stop` asks it to stop (at its next revision) or cancel. `content_changed` as in Decision.
  RunReport Run(const kube::MigrationJob& job, const LoadedMigrations& migrations,
                bool content_changed, std::shared_ptr<base::StopRequest> stop);

  // Writes a failed run for `problem` (status Stalled with its reason, a Warning Event naming it).
  RunReport ReportProblem(const kube::MigrationJob& job, const ConfigProblem& problem);

  // Writes the status of a run that found the database at the target, from `reading` (a
  // RunReport::reading of another job's run on the same database, content and target, moments
  // ago) without connecting. `content_changed` as in Decision.
  RunReport ReportReading(const kube::MigrationJob& job, const LoadedMigrations& migrations,
                          bool content_changed, const engine::RunResult& reading);

 private:
  kube::Client& client_;
  const ConnectorFactory connect_;
  const ReconcilerOptions options_;
};

}  // namespace sluice::operator_

#endif  // SLUICE_PKG_OPERATOR_RECONCILER_H_
