// The pure part of status reporting: what a run has seen so far (RunView), and how it is folded
// into the status stored on the MigrationJob (Compose), following metav1.Condition and kstatus
// conventions. No I/O, so every rule here is unit-tested without an API server.
//
// observedGeneration: written only when a run succeeded, that is when the database's version table
// was read and is at the target of that generation's spec; a run under way or failed leaves the
// stored value, so a kstatus reader (Flux, Argo CD, Helm 4's --wait) that sees observedGeneration
// equal to metadata.generation knows the database reached that spec. The conditions carry the
// generation of the run that wrote them.
//
// Stale writes: each run is identified by its start time (`status.startedAt`, millisecond
// precision). A run writes phase, conditions, revisions, lastError and the timestamps only while
// the stored `startedAt` is not newer than its own, so a slow or retried write of an older run
// never overwrites a newer run's status. Every run, older or not, still merges the steps it applied
// into `lastApplied`, because those are facts about the database that the newer run did not see.
// Compose runs on the status just read, and the write is conditional on that read's
// resourceVersion, so a concurrent change makes the write fail with 409 and Compose runs again.
#ifndef SLUICE_PKG_REPORTING_STATUS_COMPOSER_H_
#define SLUICE_PKG_REPORTING_STATUS_COMPOSER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkg/kube/types.h"

namespace sluice::reporting {

// Condition types and reasons (CamelCase, kstatus conventions).
inline constexpr char kReady[] = "Ready";
inline constexpr char kReconciling[] = "Reconciling";
inline constexpr char kStalled[] = "Stalled";

inline constexpr char kReasonProgressing[] = "Progressing";
inline constexpr char kReasonMigrating[] = "Migrating";
inline constexpr char kReasonWaitingForLock[] = "WaitingForLock";
inline constexpr char kReasonAtTarget[] = "AtTarget";
inline constexpr char kReasonSucceeded[] = "Succeeded";
inline constexpr char kReasonMigrationFailed[] = "MigrationFailed";
inline constexpr char kReasonRunFailed[] = "RunFailed";
// The referenced ConfigMaps changed since the status's digest: Ready is False until the new
// content is applied, so no kstatus reader sees Ready=True for content that is not in the database.
inline constexpr char kReasonMigrationsChanged[] = "MigrationsChanged";

// Limits from manifests/crd.yaml.
inline constexpr size_t kMaxLastApplied = 20;
inline constexpr size_t kMaxErrorMessage = 32768;
// Condition messages are for `kubectl describe`; the whole error is in lastError.
inline constexpr size_t kMaxConditionMessage = 1024;

// What one run knows about itself.
struct RunView {
  absl::Time started_at;
  std::string instance;    // pod name
  std::string target;      // the target as asked ("head")
  int64_t generation = 0;  // metadata.generation when the run first read the object

  enum class Phase { kRunning, kSucceeded, kFailed };
  Phase phase = Phase::kRunning;

  bool planned = false;  // the revision fields below are known
  std::vector<std::string> current;
  std::vector<std::string> target_revisions;
  std::vector<std::string> pending;
  std::string migrations_digest;  // of the manifests this run plans with (empty: unknown)
  // The run applies content other than the stored status describes (the operator saw the
  // referenced ConfigMaps change): while it runs, Ready is False with reason MigrationsChanged.
  bool content_changed = false;

  std::optional<std::string> waiting_for;  // lock holder, while waiting for the lock
  std::vector<kube::AppliedStep> steps;    // this run's steps, oldest first
  std::optional<kube::LastError> error;
  bool step_failed = false;  // the error is a revision's failure (not, e.g., a lock timeout)
  // The reason of a failure found before any SQL ran (the operator's "ConfigMapNotFound",
  // "SecretForbidden", ...); empty: MigrationFailed or RunFailed.
  std::string failure_reason;
  absl::Time completed_at = absl::InfinitePast();
};

// Returns `time` as RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.123Z").
std::string FormatMillis(absl::Time time);
// Returns `time` as RFC 3339 UTC in seconds, as metav1.Time serialises.
std::string FormatSeconds(absl::Time time);

// Returns whether `stored_started_at` (a status.startedAt) belongs to a run newer than one
// started at `started_at`. An unparsable stored value is treated as older.
bool IsNewerRun(absl::string_view stored_started_at, absl::Time started_at);

// Sets condition `type` in `conditions` as meta.SetStatusCondition does: a new condition gets
// `now` as lastTransitionTime; an existing one keeps it unless its status changes. The message is
// cut to kMaxConditionMessage characters (at a UTF-8 boundary).
void SetCondition(std::vector<kube::Condition>& conditions, absl::string_view type,
                  absl::string_view status, absl::string_view reason, absl::string_view message,
                  int64_t observed_generation, absl::Time now);

// Returns `text` cut to at most `max_bytes` bytes without splitting a UTF-8 character, with "..."
// at the end when cut.
std::string Truncate(absl::string_view text, size_t max_bytes);

// Returns the status to write: `stored` (the status read from the API server, absent on a new
// object) updated with what `run` knows, at time `now`. See the file comment for ownership.
kube::MigrationJobStatus Compose(const std::optional<kube::MigrationJobStatus>& stored,
                                 const RunView& run, absl::Time now);

}  // namespace sluice::reporting

#endif  // SLUICE_PKG_REPORTING_STATUS_COMPOSER_H_
