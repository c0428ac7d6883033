// Internal to pkg/engine: the engine's implementation class, shared by the files that implement
// it (engine.cc: commands and connections; lock.cc: waiting for the lock and the fast no-op;
// database_state.cc: state and drift; apply.cc: applying steps). Not part of the module's API.
#ifndef SLUICE_PKG_ENGINE_ENGINE_IMPL_H_
#define SLUICE_PKG_ENGINE_ENGINE_IMPL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkg/engine/blocker_watcher.h"
#include "pkg/engine/engine.h"
#include "pkg/engine/migration_lock.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/migration.h"
#include "pkg/store/store.h"

namespace sluice::engine {
namespace internal {

inline constexpr char kLockTimeoutSqlState[] = "55P03";
inline constexpr char kOutcomeApplied[] = "applied";
inline constexpr char kOutcomeFailed[] = "failed";
inline constexpr char kOutcomeResolved[] = "resolved";

// Returns "upgrade" or "downgrade".
const char* DirectionName(graph::Direction direction);
// Returns whether `status` is a statement that hit lock_timeout (SQLSTATE 55P03).
bool IsLockTimeout(const absl::Status& status);
// Returns "FILE:LINE" of the revision's manifest.
std::string FileLine(const manifest::Migration& m);
// Returns the migration rebuilt from the history row that applied it, for revisions the
// manifests lack.
manifest::Migration MigrationFromHistory(const store::HistoryRow& row);

}  // namespace internal

class Engine::Impl {
 public:
  Impl(std::shared_ptr<const graph::RevisionGraph> graph, StoreFactory factory,
       EngineOptions options, Observer* observer, StoreFactory lock_factory);
  ~Impl();
  const graph::RevisionGraph& Graph() const { return *graph_; }
  absl::StatusOr<RunResult> Migrate(graph::Direction direction, absl::string_view target);
  absl::StatusOr<RunResult> Stamp(absl::string_view target, bool purge);
  absl::Status Resolve(absl::string_view revision, bool applied);
  absl::StatusOr<std::vector<std::string>> Pending(absl::string_view target);
  absl::StatusOr<VersionCheck> CheckVersions(absl::string_view target);
  absl::StatusOr<VersionCheck> WaitForTarget(absl::string_view target, absl::Duration timeout);
  absl::StatusOr<DatabaseState> Inspect();
  absl::StatusOr<std::vector<store::HistoryRow>> History();
  absl::StatusOr<LockStatus> ReadLockStatus();
  absl::StatusOr<std::optional<store::Lease>> ForceReleaseLease();

 private:
  // Commands and connections (engine.cc).
  static std::string Joined(const std::vector<std::string>& items);
  static absl::Status AsUsage(absl::Status status);
  static std::vector<std::string> PendingOf(const graph::Plan& plan);
  RunResult Summarize(const graph::Plan& plan, const DatabaseState& state) const;
  absl::StatusOr<store::Store*> ControlConnection();
  absl::StatusOr<store::Store*> WorkConnection();
  // Takes up options_.stop (see StopRequest) until this engine ends, when one was given.
  void TakeUpStop();
  bool StopRequested() const;
  // A kInterrupted failure: "stopped (SIGTERM or SIGINT) <what>".
  static absl::Status Interrupted(absl::string_view what);
  // Whether a step's failure `status` came from the stop: its statement cancelled, or its
  // lock_timeout retries given up.
  bool EndedByStop(const absl::Status& status) const;

  // The migration lock (migration_lock.h) and the fast no-op (lock.cc).
  // Releases the lock, if held (and wakes the runners waiting for it, where they can be woken).
  void ReleaseLock();
  absl::Status TakeLock();
  // Polls the lock. With `plan_for`, each poll also reads the version table and returns a result
  // without the lock when there is nothing left to do. Returns nullopt once the lock is held.
  absl::StatusOr<std::optional<RunResult>> WaitForLockOrTarget(
      const std::function<absl::StatusOr<graph::Plan>(const std::vector<std::string>&)>& plan_for);

  // What the database holds: versions, verification, drift, ahead of the manifests
  // (database_state.cc).
  // Makes `graph_` know every revision in `versions`: the manifests' graph when it does, else a
  // graph of the manifests plus the revisions that history rows recorded for the versions the
  // manifests lack (and those revisions' missing ancestors). Builds a graph only in that case.
  absl::Status ExtendGraph(const std::vector<std::string>& versions,
                           const std::vector<store::HistoryRow>& history);
  absl::StatusOr<DatabaseState> ReadState(store::Store& connection);
  // Returns every revision that `versions` and their ancestors (parents and depends_on) name.
  std::set<std::string> AppliedSet(const std::vector<std::string>& versions) const;
  absl::Status CheckUnresolved(const DatabaseState& state) const;
  absl::Status CheckDrift(const DatabaseState& state) const;
  absl::Status CheckAhead(const DatabaseState& state) const;

  // Applying steps: transactions, lock_timeout retries, failures (apply.cc).
  store::HistoryRow HistoryRowFor(const manifest::Migration& m, absl::string_view direction,
                                  absl::Time started, absl::string_view outcome) const;
  // Writes what a step changes besides its SQL: the version rows and an `applied` history row.
  absl::Status RecordStep(store::Store& work, const graph::Step& step, absl::Time started);
  // Runs `body` between BEGIN and COMMIT, rolling back when it fails. With `lock_timeout`, it is
  // set for the transaction as it begins.
  absl::Status InTransaction(store::Store& work, std::optional<absl::Duration> lock_timeout,
                             const std::function<absl::Status()>& body);
  // Returns `status` as the failure of `step`: its MigrationFailure (what PostgreSQL said, if it
  // said anything) completed with the revision, its file and the line of the failing statement,
  // and a message that describes it all; kUnreachable when the database went away, else
  // kMigrationFailed. `statement_line` is the 1-based line within the step's SQL where the failing
  // statement starts.
  absl::Status DescribeFailure(const graph::Step& step, const absl::Status& status,
                               int statement_line, absl::string_view note = "");
  void LogBlockers();
  // Runs `attempt` once, and again on lock timeouts (SQLSTATE 55P03) up to --ddl-retries times.
  absl::Status WithLockRetries(const graph::Step& step,
                               const std::function<absl::Status()>& attempt);
  const std::string& SqlOf(const graph::Step& step) const;
  absl::Status ApplyEach(store::Store& work, const graph::Plan& plan, RunResult& result);
  static void ApplyRows(std::vector<std::string>& versions, const graph::Step& step);
  void RecordFailure(store::Store& work, const graph::Step& step, absl::Time started,
                     const absl::Status& status);
  absl::Status ApplyTransactional(store::Store& work, const graph::Step& step, absl::Time started);
  absl::Status ApplyStatementByStatement(store::Store& work, const graph::Step& step,
                                         absl::Time started);
  absl::Status ApplyInOneTransaction(store::Store& work, const graph::Plan& plan,
                                     RunResult& result);

  std::shared_ptr<const graph::RevisionGraph> manifest_graph_;
  // The graph plans use: manifest_graph_, or extended_graph_ once the database names revisions
  // known only from its history.
  const graph::RevisionGraph* graph_;
  std::unique_ptr<graph::RevisionGraph> extended_graph_;
  std::set<std::string> manifest_ids_;
  StoreFactory factory_;
  StoreFactory lock_factory_;  // factory_ unless the lock has a connection target of its own
  EngineOptions options_;
  Observer* observer_;
  const int64_t lock_key_;
  std::unique_ptr<MigrationLock> lock_;
  std::unique_ptr<store::Store> control_;  // polls and holds the lock
  std::unique_ptr<store::Store> work_;     // runs the revisions
  bool stop_taken_up_ = false;             // options_.stop is taken up (TakeUpStop)
  std::unique_ptr<BlockerWatcher> watcher_;
  bool locked_ = false;
};

}  // namespace sluice::engine

#endif  // SLUICE_PKG_ENGINE_ENGINE_IMPL_H_
