// The migration engine: runs plans from pkg/graph against a database through the store::Store
// interface, under the advisory lock, with drift, ahead-of-manifests and failed-revision checks.
// It knows no database library and no Kubernetes: progress goes to an Observer. One Engine per
// command run; not thread-safe.
#ifndef SLUICE_PKG_ENGINE_ENGINE_H_
#define SLUICE_PKG_ENGINE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pkg/base/stop_request.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/migration.h"
#include "pkg/store/store.h"

namespace sluice::engine {

// Opens a new connection named `application_name`.
using StoreFactory = std::function<absl::StatusOr<std::unique_ptr<store::Store>>(
    const std::string& application_name)>;

// How runners exclude each other (--lock-mode): a session-level advisory lock on the lock
// connection, or a lease row with a heartbeat that works through transaction-pooling proxies.
enum class LockMode { kSession, kLease };

struct EngineOptions {
  store::TableNames tables;
  LockMode lock_mode = LockMode::kSession;
  // How long a lease lasts unless its heartbeat (every third of it) renews it (--lease-ttl).
  absl::Duration lease_ttl = absl::Seconds(30);
  std::optional<int64_t> lock_key;  // default: store::LockKeyFor(tables)
  absl::Duration lock_wait = absl::Minutes(10);
  absl::Duration ddl_lock_timeout = absl::Seconds(10);
  int ddl_retries = 3;
  bool single_transaction = false;
  bool allow_drift = false;
  bool fail_if_ahead = false;
  std::string applied_by;  // pod or host name: history rows and the lock holder's application_name
  // Lock polling: first interval and cap (product.md: tens of milliseconds, well under a second).
  absl::Duration lock_poll_initial = absl::Milliseconds(50);
  absl::Duration lock_poll_max = absl::Milliseconds(250);
  // How long a waiter waits before it looks up who holds the lock, logs it and tells the observer
  // (then every 5 s; at the latest at half of lock_wait). The look-up reads pg_locks and
  // pg_stat_activity, a few milliseconds of server time in a new session; the hand-overs among
  // replicas started together are shorter, and pass without it.
  absl::Duration lock_holder_lookup_after = absl::Seconds(1);
  // Backoff before retrying a revision that hit lock_timeout.
  absl::Duration ddl_retry_backoff = absl::Milliseconds(500);
  // Asks the run to stop (SIGTERM): it stops before its next revision, or at once while it waits
  // for the lock; Cancel() also cancels the statement under way (its transaction rolls back). The
  // lock is released as at any other end of a run. None: it runs to the end.
  std::shared_ptr<base::StopRequest> stop;
  // WaitForTarget's polls of the version table: first interval and cap.
  absl::Duration wait_poll_initial = absl::Milliseconds(100);
  absl::Duration wait_poll_max = absl::Seconds(2);
};

// One applied (or failed) step, as reported to observers and returned to callers.
struct StepOutcome {
  std::string revision;
  std::string description;
  graph::Direction direction = graph::Direction::kUpgrade;
  absl::Time started_at;
  absl::Duration duration;
  bool ok = true;
  std::vector<std::string> versions_after;  // the version table's rows once the step landed
};

// What a run did.
struct RunResult {
  std::vector<std::string> from_versions;
  std::vector<std::string> to_versions;
  std::vector<std::string> target_versions;
  std::vector<StepOutcome> steps;
  bool already_at_target = false;  // nothing to do; the lock was not taken
  std::vector<std::string> ahead;  // current revisions the manifests lack
};

// Receives progress; every method has an empty default. Called on the engine's thread.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void OnPlanned(const RunResult& /*result_so_far*/,
                         const std::vector<std::string>& /*pending*/) {}
  virtual void OnWaitingForLock(const store::LockHolder& /*holder*/) {}
  virtual void OnStepFinished(const StepOutcome& /*step*/) {}
};

// Who holds the migration lock, in either mode (`sluice lock status`).
struct LockStatus {
  int64_t key = 0;
  std::optional<store::LockHolder> session_holder;  // the advisory lock's holder, if any
  std::optional<store::Lease> lease;                // the lease row, if any (maybe expired)
};

// The state of an applied revision with respect to its manifest.
enum class Verification { kVerified, kUnverified, kDrifted };

struct AppliedRevision {
  std::string revision;
  Verification verification = Verification::kUnverified;
  std::string recorded_checksum;  // empty when unverified
};

// What the database says, without the lock.
struct DatabaseState {
  std::vector<std::string> versions;
  std::vector<AppliedRevision> applied;  // ancestors-or-self of versions, in topological order
  std::vector<std::string> ahead;        // versions the manifests lack (known from history)
  // A failed non-transactional revision that needs resolving, if any.
  std::optional<store::HistoryRow> unresolved_failure;
};

// What the version table alone says about a target (`sluice wait`).
struct VersionCheck {
  std::vector<std::string> versions;  // the version table's rows, sorted
  std::vector<std::string> pending;   // revisions between them and the target, in order
  std::vector<std::string> ahead;     // rows the manifests lack: a newer release migrated
};

class Engine {
 public:
  // `graph` is the manifests' graph, built once by the caller and shared with it; `factory` opens
  // connections; `lock_factory`, when given, opens the lock's connections instead (a direct
  // connection for the advisory lock while the work goes through a pooler: --lock-database-url).
  Engine(std::shared_ptr<const graph::RevisionGraph> graph, StoreFactory factory,
         EngineOptions options, Observer* observer = nullptr, StoreFactory lock_factory = nullptr);
  ~Engine();

  // Applies revisions up to `target`. A runner that finds the database already at the target exits
  // without taking the lock.
  absl::StatusOr<RunResult> Upgrade(absl::string_view target);
  // Reverts revisions down to `target`, with stored SQL for revisions the manifests lack.
  absl::StatusOr<RunResult> Downgrade(absl::string_view target);
  // Sets the version table to `target` without running SQL; `purge` clears it first.
  absl::StatusOr<RunResult> Stamp(absl::string_view target, bool purge);
  // Returns the pending revisions up to `target`, in order, without the lock.
  absl::StatusOr<std::vector<std::string>> Pending(absl::string_view target);
  // Reads the version table, and nothing else (no history, no lock: a role that may only SELECT
  // it will do), and returns what stands between it and `target`. A database with rows the
  // manifests lack is ahead of them: nothing is pending.
  absl::StatusOr<VersionCheck> CheckVersions(absl::string_view target);
  // Polls CheckVersions, with backoff from `wait_poll_initial` to `wait_poll_max`, until nothing
  // is pending or `timeout` has passed, and returns the last check (revisions still pending when
  // the time ran out). A database that cannot be reached, or goes away, is retried until then;
  // its error is returned when the time runs out on it. A bad target fails at once.
  //
  // Example (an init container waiting for a migration Job):
  //   SLUICE_ASSIGN_OR_RETURN(VersionCheck check, engine.WaitForTarget("head", absl::Minutes(10)));
  //   if (!check.pending.empty()) return ...;  // timed out
  absl::StatusOr<VersionCheck> WaitForTarget(absl::string_view target, absl::Duration timeout);
  // Reads the database's versions, verification and history (no lock).
  absl::StatusOr<DatabaseState> Inspect();
  // Returns the history rows, oldest first (no lock).
  absl::StatusOr<std::vector<store::HistoryRow>> History();
  // Resolves a failed non-transactional revision: `applied` records it as applied (finished by
  // hand); otherwise it is marked rolled back, to be run again by the next upgrade.
  absl::Status Resolve(absl::string_view revision, bool applied);

  // Returns who holds the migration lock, in either mode, without taking it.
  absl::StatusOr<LockStatus> ReadLockStatus();
  // Deletes the lease when its holder is gone (its lease expired: no heartbeat renewed it within
  // its TTL); refuses, with kind kLockTimeout, while it is fresh. Returns the lease deleted, none
  // when there was none.
  absl::StatusOr<std::optional<store::Lease>> ForceReleaseLease();

  // Returns the graph of the manifests plus the revisions known only from the database's history
  // (after any call above that read the database; the manifests' graph before, and whenever the
  // database holds no revision the manifests lack).
  const graph::RevisionGraph& Graph() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::engine

#endif  // SLUICE_PKG_ENGINE_ENGINE_H_
