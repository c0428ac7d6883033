#include "pkg/engine/engine.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "pkg/base/backoff.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/failure.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/pgsql/sql_text.h"

namespace sluice::engine {
namespace {

using failure::FailureKind;
using failure::FailureKindOf;
using failure::MigrationFailure;
using failure::WithFailureKind;
using graph::Direction;
using graph::Plan;
using graph::Step;
using manifest::Migration;

constexpr char kLockTimeoutSqlState[] = "55P03";
constexpr char kOutcomeApplied[] = "applied";
constexpr char kOutcomeFailed[] = "failed";
constexpr char kOutcomeResolved[] = "resolved";

const char* DirectionName(Direction direction) {
  return direction == Direction::kUpgrade ? "upgrade" : "downgrade";
}

bool IsLockTimeout(const absl::Status& status) {
  std::optional<MigrationFailure> error = failure::MigrationFailureOf(status);
  return error.has_value() && error->sqlstate == kLockTimeoutSqlState;
}

std::string FileLine(const Migration& m) {
  return absl::StrCat(m.location.file, ":", m.location.line);
}

// Migration rebuilt from the history row that applied it, for revisions the manifests lack.
Migration MigrationFromHistory(const store::HistoryRow& row) {
  Migration m;
  m.revision = row.revision;
  m.down_revisions = row.down_revisions;
  m.depends_on = row.depends_on;
  m.description = row.description;
  m.transactional = row.transactional;
  m.upgrade_sql = row.upgrade_sql;
  m.downgrade_sql = row.downgrade_sql;
  m.checksum = row.checksum;
  m.location.file = absl::StrCat("(sluice_history row ", row.id, ")");
  return m;
}

}  // namespace

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

class Engine::Impl {
 public:
  Impl(std::shared_ptr<const graph::RevisionGraph> graph, StoreFactory factory,
       EngineOptions options, Observer* observer)
      : manifest_graph_(std::move(graph)),
        graph_(manifest_graph_.get()),
        factory_(std::move(factory)),
        options_(std::move(options)),
        observer_(observer),
        lock_key_(options_.lock_key.value_or(store::LockKeyFor(options_.tables))) {
    for (const Migration* m : manifest_graph_->TopologicalOrder())
      manifest_ids_.insert(m->revision);
  }

  ~Impl() {
    watcher_.reset();
    if (locked_ && control_ != nullptr) {
      absl::Status status = control_->Unlock(lock_key_);
      // Wake the runners waiting for the lock now rather than at their next poll.
      if (status.ok()) status = control_->Notify(LockChannel());
      if (status.ok())
        log::Debug("released the migration lock", {{"key", absl::StrCat(lock_key_)}});
      if (!status.ok())
        log::Warning("could not release the migration lock",
                     {{"error", std::string(status.message())}});
    }
  }

  const graph::RevisionGraph& Graph() const { return *graph_; }

  absl::StatusOr<RunResult> Migrate(Direction direction, absl::string_view target) {
    const auto plan_for = [&](const std::vector<std::string>& versions) {
      return direction == Direction::kUpgrade ? graph_->PlanUpgrade(versions, target)
                                              : graph_->PlanDowngrade(versions, target);
    };
    SLUICE_ASSIGN_OR_RETURN(std::optional<RunResult> done, WaitForLockOrTarget(plan_for));
    if (done.has_value()) return *done;

    SLUICE_ASSIGN_OR_RETURN(store::Store * work, WorkConnection());
    SLUICE_RETURN_IF_ERROR(work->EnsureTables(options_.tables));
    SLUICE_ASSIGN_OR_RETURN(DatabaseState state, ReadState(*work));
    SLUICE_RETURN_IF_ERROR(CheckUnresolved(state));
    if (direction == Direction::kUpgrade) SLUICE_RETURN_IF_ERROR(CheckDrift(state));
    SLUICE_RETURN_IF_ERROR(CheckAhead(state));
    absl::StatusOr<Plan> plan = plan_for(state.versions);
    if (!plan.ok()) return AsUsage(plan.status());

    RunResult result = Summarize(*plan, state);
    if (observer_ != nullptr) observer_->OnPlanned(result, PendingOf(*plan));
    if (plan->steps.empty()) {
      result.already_at_target = true;
      return result;
    }
    log::Info(absl::StrCat(DirectionName(direction), " plan"),
              {{"from", Joined(plan->from_heads)},
               {"to", Joined(plan->to_heads)},
               {"steps", absl::StrCat(plan->steps.size())}});
    watcher_ = std::make_unique<BlockerWatcher>(control_.get(), work->BackendPid());
    absl::Status status = options_.single_transaction ? ApplyInOneTransaction(*work, *plan, result)
                                                      : ApplyEach(*work, *plan, result);
    watcher_.reset();
    if (!status.ok()) return status;
    result.to_versions = plan->to_heads;
    return result;
  }

  absl::StatusOr<RunResult> Stamp(absl::string_view target, bool purge) {
    SLUICE_RETURN_IF_ERROR(TakeLock());
    SLUICE_ASSIGN_OR_RETURN(store::Store * work, WorkConnection());
    SLUICE_RETURN_IF_ERROR(work->EnsureTables(options_.tables));
    SLUICE_ASSIGN_OR_RETURN(DatabaseState state, ReadState(*work));
    absl::StatusOr<std::vector<std::string>> targets =
        graph_->ResolveTarget(target, state.versions);
    if (!targets.ok()) return AsUsage(targets.status());

    // Keep the rows of branches the target does not touch, as Alembic's stamp does.
    std::set<std::string> rows(targets->begin(), targets->end());
    if (!purge && !targets->empty()) {
      for (const std::string& version : state.versions) {
        const bool related = std::any_of(targets->begin(), targets->end(), [&](const auto& t) {
          return graph_->IsAncestorOrSelf(version, t) || graph_->IsAncestorOrSelf(t, version);
        });
        if (!related) rows.insert(version);
      }
    }
    const std::vector<std::string> new_rows(rows.begin(), rows.end());
    std::vector<std::string> deletes;
    std::vector<std::string> inserts;
    std::set_difference(state.versions.begin(), state.versions.end(), new_rows.begin(),
                        new_rows.end(), std::back_inserter(deletes));
    std::set_difference(new_rows.begin(), new_rows.end(), state.versions.begin(),
                        state.versions.end(), std::back_inserter(inserts));

    RunResult result;
    result.from_versions = state.versions;
    result.to_versions = new_rows;
    result.target_versions = *targets;
    const absl::Time started = absl::Now();
    SLUICE_RETURN_IF_ERROR(InTransaction(*work, std::nullopt, [&]() -> absl::Status {
      if (purge) SLUICE_RETURN_IF_ERROR(work->PurgeVersions(options_.tables));
      SLUICE_RETURN_IF_ERROR(work->UpdateVersions(options_.tables,
                                                  purge ? std::vector<std::string>{} : deletes,
                                                  purge ? new_rows : inserts));
      for (const std::string& revision : *targets) {
        const Migration* m = graph_->Find(revision);
        store::HistoryRow row = HistoryRowFor(*m, "stamp", started, kOutcomeApplied);
        SLUICE_RETURN_IF_ERROR(work->AppendHistory(options_.tables, row).status());
      }
      return absl::OkStatus();
    }));
    log::Info("stamped", {{"versions", Joined(new_rows)}});
    return result;
  }

  absl::StatusOr<std::vector<std::string>> Pending(absl::string_view target) {
    SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
    SLUICE_ASSIGN_OR_RETURN(DatabaseState state, ReadState(*control));
    absl::StatusOr<Plan> plan = graph_->PlanUpgrade(state.versions, target);
    if (!plan.ok()) return AsUsage(plan.status());
    return PendingOf(*plan);
  }

  absl::StatusOr<DatabaseState> Inspect() {
    SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
    return ReadState(*control);
  }

  absl::StatusOr<std::vector<store::HistoryRow>> History() {
    SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
    return control->ReadHistory(options_.tables);
  }

  absl::Status Resolve(absl::string_view revision, bool applied) {
    SLUICE_RETURN_IF_ERROR(TakeLock());
    SLUICE_ASSIGN_OR_RETURN(store::Store * work, WorkConnection());
    SLUICE_RETURN_IF_ERROR(work->EnsureTables(options_.tables));
    SLUICE_ASSIGN_OR_RETURN(DatabaseState state, ReadState(*work));
    if (!state.unresolved_failure.has_value() || state.unresolved_failure->revision != revision) {
      return WithFailureKind(
          absl::FailedPreconditionError(absl::StrCat(
              "revision ", revision, " has no failed run to resolve",
              state.unresolved_failure.has_value()
                  ? absl::StrCat("; the failed one is ", state.unresolved_failure->revision)
                  : "")),
          FailureKind::kUsage);
    }
    const store::HistoryRow failed = *state.unresolved_failure;
    if (!applied) {
      SLUICE_RETURN_IF_ERROR(work->SetHistoryOutcome(options_.tables, failed.id, kOutcomeResolved));
      log::Info("marked the failed revision as rolled back; the next upgrade runs it again",
                {{"revision", failed.revision}});
      return absl::OkStatus();
    }
    absl::StatusOr<Plan> plan = graph_->PlanUpgrade(state.versions, revision);
    if (!plan.ok()) return AsUsage(plan.status());
    if (plan->steps.size() != 1 || plan->steps[0].migration->revision != revision) {
      return WithFailureKind(absl::FailedPreconditionError(absl::StrCat(
                                 "revision ", revision, " is not the next step from ",
                                 Joined(state.versions), "; it cannot be recorded as applied")),
                             FailureKind::kUsage);
    }
    const Step& step = plan->steps[0];
    return InTransaction(*work, std::nullopt, [&]() -> absl::Status {
      store::HistoryRow row =
          HistoryRowFor(*step.migration, "upgrade", absl::Now(), kOutcomeApplied);
      row.error =
          absl::StrCat("recorded as applied by `sluice resolve` after failed run ", failed.id);
      SLUICE_RETURN_IF_ERROR(
          work->RecordStep(options_.tables, step.delete_versions, step.insert_versions, row)
              .status());
      return work->SetHistoryOutcome(options_.tables, failed.id, kOutcomeResolved);
    });
  }

 private:
  std::string LockChannel() const { return absl::StrCat("sluice_lock_", lock_key_); }

  static std::string Joined(const std::vector<std::string>& items) {
    return items.empty() ? "<base>" : absl::StrJoin(items, ",");
  }

  static absl::Status AsUsage(absl::Status status) {
    if (status.code() == absl::StatusCode::kUnavailable) return status;
    return WithFailureKind(std::move(status), FailureKind::kUsage);
  }

  static std::vector<std::string> PendingOf(const Plan& plan) {
    std::vector<std::string> pending;
    for (const Step& step : plan.steps) pending.push_back(step.migration->revision);
    return pending;
  }

  RunResult Summarize(const Plan& plan, const DatabaseState& state) const {
    RunResult result;
    result.from_versions = state.versions;
    result.to_versions = state.versions;
    result.target_versions = plan.to_heads;
    result.ahead = state.ahead;
    return result;
  }

  absl::StatusOr<store::Store*> ControlConnection() {
    if (control_ == nullptr) {
      SLUICE_ASSIGN_OR_RETURN(control_, factory_(options_.applied_by));
    }
    return control_.get();
  }

  absl::StatusOr<store::Store*> WorkConnection() {
    if (work_ == nullptr) {
      SLUICE_ASSIGN_OR_RETURN(work_, factory_(options_.applied_by));
    }
    return work_.get();
  }

  // Makes `graph_` know every revision in `versions`: the manifests' graph when it does, else a
  // graph of the manifests plus the revisions that history rows recorded for the versions the
  // manifests lack (and those revisions' missing ancestors). Builds a graph only in that case.
  absl::Status ExtendGraph(const std::vector<std::string>& versions,
                           const std::vector<store::HistoryRow>& history) {
    std::vector<std::string> missing;
    for (const std::string& version : versions) {
      if (graph_->Find(version) == nullptr) missing.push_back(version);
    }
    if (missing.empty()) return absl::OkStatus();
    std::map<std::string, const store::HistoryRow*> stored;
    for (const store::HistoryRow& row : history) {
      if (row.direction == "upgrade" && row.outcome == kOutcomeApplied) stored[row.revision] = &row;
    }
    std::vector<Migration> migrations;
    for (const Migration* m : manifest_graph_->TopologicalOrder()) migrations.push_back(*m);
    std::set<std::string> known = manifest_ids_;
    while (!missing.empty()) {
      const std::string revision = missing.back();
      missing.pop_back();
      if (known.count(revision) > 0) continue;
      auto it = stored.find(revision);
      if (it == stored.end()) {
        return WithFailureKind(
            absl::FailedPreconditionError(absl::StrCat(
                "the database is at revision ", revision,
                ", which neither the manifests nor sluice's history know; add its manifest to "
                "--migrations, or `sluice stamp` the database to a known revision")),
            FailureKind::kDrift);
      }
      migrations.push_back(MigrationFromHistory(*it->second));
      known.insert(revision);
      for (const auto* list : {&it->second->down_revisions, &it->second->depends_on}) {
        for (const std::string& parent : *list) missing.push_back(parent);
      }
    }
    absl::StatusOr<graph::RevisionGraph> graph = graph::RevisionGraph::Build(std::move(migrations));
    if (!graph.ok()) return WithFailureKind(graph.status(), FailureKind::kInvalidManifests);
    extended_graph_ = std::make_unique<graph::RevisionGraph>(*std::move(graph));
    graph_ = extended_graph_.get();
    return absl::OkStatus();
  }

  absl::StatusOr<DatabaseState> ReadState(store::Store& connection) {
    DatabaseState state;
    SLUICE_ASSIGN_OR_RETURN(state.versions, connection.ReadVersions(options_.tables));
    SLUICE_ASSIGN_OR_RETURN(std::vector<store::HistoryRow> history,
                            connection.ReadHistory(options_.tables));
    SLUICE_RETURN_IF_ERROR(ExtendGraph(state.versions, history));
    for (const std::string& version : state.versions) {
      if (manifest_ids_.count(version) == 0) state.ahead.push_back(version);
    }

    // The latest row of each revision decides its verification and whether it failed.
    std::map<std::string, const store::HistoryRow*> latest;
    std::map<std::string, const store::HistoryRow*> latest_applied;
    for (const store::HistoryRow& row : history) {
      latest[row.revision] = &row;
      if (row.outcome == kOutcomeApplied && row.direction != "downgrade") {
        latest_applied[row.revision] = &row;
      }
    }
    const std::set<std::string> applied = AppliedSet(state.versions);
    for (const Migration* m : graph_->TopologicalOrder()) {
      if (applied.count(m->revision) == 0) continue;
      AppliedRevision entry{m->revision, Verification::kUnverified, ""};
      auto it = latest_applied.find(m->revision);
      if (it != latest_applied.end() && !it->second->checksum.empty()) {
        entry.recorded_checksum = it->second->checksum;
        entry.verification =
            it->second->checksum == m->checksum ? Verification::kVerified : Verification::kDrifted;
      }
      state.applied.push_back(std::move(entry));
    }
    for (const auto& [revision, row] : latest) {
      if (row->outcome == kOutcomeFailed && !row->transactional && applied.count(revision) == 0) {
        state.unresolved_failure = *row;
      }
    }
    return state;
  }

  // Returns every revision that `versions` and their ancestors (parents and depends_on) name.
  std::set<std::string> AppliedSet(const std::vector<std::string>& versions) const {
    std::set<std::string> applied;
    std::vector<std::string> stack = versions;
    while (!stack.empty()) {
      std::string revision = std::move(stack.back());
      stack.pop_back();
      if (!applied.insert(revision).second) continue;
      const Migration* m = graph_->Find(revision);
      if (m == nullptr) continue;
      stack.insert(stack.end(), m->down_revisions.begin(), m->down_revisions.end());
      stack.insert(stack.end(), m->depends_on.begin(), m->depends_on.end());
    }
    return applied;
  }

  absl::Status CheckUnresolved(const DatabaseState& state) const {
    if (!state.unresolved_failure.has_value()) return absl::OkStatus();
    const store::HistoryRow& row = *state.unresolved_failure;
    return WithFailureKind(
        absl::FailedPreconditionError(absl::StrCat(
            "revision ", row.revision, " (transactional: false) failed part-way at ",
            absl::FormatTime(row.started_at),
            " and ran outside a transaction, so some of its "
            "statements may have taken effect: ",
            row.error,
            "\nInspect the database, then either finish it by hand and run `sluice resolve ",
            row.revision, " applied`, or undo what it did and run `sluice resolve ", row.revision,
            " rolled-back` so that the next upgrade runs it again")),
        FailureKind::kDrift);
  }

  absl::Status CheckDrift(const DatabaseState& state) const {
    std::vector<std::string> drifted;
    for (const AppliedRevision& applied : state.applied) {
      if (applied.verification != Verification::kDrifted) continue;
      const Migration* m = graph_->Find(applied.revision);
      drifted.push_back(absl::StrCat(applied.revision, " (", FileLine(*m), ": applied as ",
                                     applied.recorded_checksum, ", manifest now ", m->checksum,
                                     ")"));
    }
    if (drifted.empty()) return absl::OkStatus();
    const std::string message =
        absl::StrCat("applied revisions changed since they ran: ", absl::StrJoin(drifted, "; "),
                     ". Restore the manifests as applied, or add a new revision for the change; "
                     "--allow-drift proceeds anyway");
    if (options_.allow_drift) {
      log::Warning(message);
      return absl::OkStatus();
    }
    return WithFailureKind(absl::FailedPreconditionError(message), FailureKind::kDrift);
  }

  absl::Status CheckAhead(const DatabaseState& state) const {
    if (state.ahead.empty()) return absl::OkStatus();
    const std::string message =
        absl::StrCat("the database is ahead of the manifests: it has ", Joined(state.ahead),
                     ", which --migrations lacks (known from sluice's history; an older release?)");
    if (options_.fail_if_ahead) {
      return WithFailureKind(absl::FailedPreconditionError(message), FailureKind::kDrift);
    }
    log::Warning(message);
    return absl::OkStatus();
  }

  absl::Status TakeLock() {
    SLUICE_ASSIGN_OR_RETURN(std::optional<RunResult> done,
                            WaitForLockOrTarget(/*plan_for=*/nullptr));
    (void)done;
    return absl::OkStatus();
  }

  // Polls the lock. With `plan_for`, each poll also reads the version table and returns a result
  // without the lock when there is nothing left to do. Returns nullopt once the lock is held.
  absl::StatusOr<std::optional<RunResult>> WaitForLockOrTarget(
      const std::function<absl::StatusOr<Plan>(const std::vector<std::string>&)>& plan_for) {
    SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
    const absl::Time deadline = absl::Now() + options_.lock_wait;
    absl::Duration interval = options_.lock_poll_initial;
    absl::Time next_holder_log = absl::InfinitePast();
    bool listening = false;
    std::vector<store::HistoryRow> no_history;
    while (true) {
      if (plan_for) {
        SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> versions,
                                control->ReadVersions(options_.tables));
        bool known = true;
        for (const std::string& v : versions) known = known && graph_->Find(v) != nullptr;
        if (!known) {
          SLUICE_ASSIGN_OR_RETURN(std::vector<store::HistoryRow> history,
                                  control->ReadHistory(options_.tables));
          SLUICE_RETURN_IF_ERROR(ExtendGraph(versions, history));
        }
        absl::StatusOr<Plan> plan = plan_for(versions);
        if (!plan.ok()) return AsUsage(plan.status());
        if (plan->steps.empty()) {
          // The fast no-op: no lock and no history read, unless the database is ahead.
          DatabaseState state;
          state.versions = versions;
          for (const std::string& v : versions) {
            if (manifest_ids_.count(v) == 0) state.ahead.push_back(v);
          }
          SLUICE_RETURN_IF_ERROR(CheckAhead(state));
          RunResult result = Summarize(*plan, state);
          result.already_at_target = true;
          if (observer_ != nullptr) observer_->OnPlanned(result, {});
          return std::optional<RunResult>(std::move(result));
        }
      }
      SLUICE_ASSIGN_OR_RETURN(bool locked, control->TryLock(lock_key_));
      if (locked) {
        locked_ = true;
        return std::optional<RunResult>();
      }
      const absl::Time now = absl::Now();
      if (now >= next_holder_log || now >= deadline) {
        absl::StatusOr<std::optional<store::LockHolder>> holder = control->LockHolderOf(lock_key_);
        std::string who = "an unknown session";
        if (holder.ok() && holder->has_value()) {
          const store::LockHolder& h = **holder;
          who = store::DescribeLockHolder(h);
          if (observer_ != nullptr) observer_->OnWaitingForLock(h);
        }
        if (now >= deadline) {
          return WithFailureKind(
              absl::DeadlineExceededError(
                  absl::StrCat("the migration lock (key ", lock_key_, ") was not acquired within ",
                               absl::FormatDuration(options_.lock_wait), "; it is held by ", who,
                               ". Raise --lock-wait, or find out why that runner takes so long")),
              FailureKind::kLockTimeout);
        }
        log::Info("waiting for the migration lock",
                  {{"holder", who}, {"key", absl::StrCat(lock_key_)}});
        next_holder_log = now + absl::Seconds(5);
      }
      if (!listening) {
        SLUICE_RETURN_IF_ERROR(control->Listen(LockChannel()));
        listening = true;
      }
      SLUICE_RETURN_IF_ERROR(
          control->WaitForNotification(std::min(base::Jittered(interval), deadline - now))
              .status());
      interval = std::min(interval * 3 / 2, options_.lock_poll_max);
    }
  }

  store::HistoryRow HistoryRowFor(const Migration& m, absl::string_view direction,
                                  absl::Time started, absl::string_view outcome) const {
    store::HistoryRow row;
    row.revision = m.revision;
    row.direction = std::string(direction);
    row.checksum = m.checksum;
    row.description = m.description;
    row.started_at = started;
    row.finished_at = absl::Now();
    row.duration_ms = absl::ToInt64Milliseconds(row.finished_at - started);
    row.applied_by = options_.applied_by;
    row.outcome = std::string(outcome);
    row.down_revisions = m.down_revisions;
    row.depends_on = m.depends_on;
    row.upgrade_sql = m.upgrade_sql;
    row.downgrade_sql = m.downgrade_sql;
    row.transactional = m.transactional;
    return row;
  }

  // Writes what a step changes besides its SQL: the version rows and an `applied` history row.
  absl::Status RecordStep(store::Store& work, const Step& step, absl::Time started) {
    return work
        .RecordStep(
            options_.tables, step.delete_versions, step.insert_versions,
            HistoryRowFor(*step.migration, DirectionName(step.direction), started, kOutcomeApplied))
        .status();
  }

  // Runs `body` between BEGIN and COMMIT, rolling back when it fails. With `lock_timeout`, it is
  // set for the transaction as it begins.
  absl::Status InTransaction(store::Store& work, std::optional<absl::Duration> lock_timeout,
                             const std::function<absl::Status()>& body) {
    SLUICE_RETURN_IF_ERROR(lock_timeout.has_value() ? work.BeginWithLockTimeout(*lock_timeout)
                                                    : work.Begin());
    absl::Status status = body();
    if (status.ok()) status = work.Commit();
    if (!status.ok()) {
      absl::Status rollback = work.Rollback();
      if (!rollback.ok())
        log::Debug("rollback failed", {{"error", std::string(rollback.message())}});
    }
    return status;
  }

  // Returns `status` as the failure of `step`: its MigrationFailure (what PostgreSQL said, if it
  // said anything) completed with the revision, its file and the line of the failing statement,
  // and a message that describes it all; kUnreachable when the database went away, else
  // kMigrationFailed. `statement_line` is the 1-based line within the step's SQL where the failing
  // statement starts.
  absl::Status DescribeFailure(const Step& step, const absl::Status& status, int statement_line,
                               absl::string_view note = "") {
    const Migration& m = *step.migration;
    std::optional<MigrationFailure> from_server = failure::MigrationFailureOf(status);
    MigrationFailure f = from_server.value_or(MigrationFailure{});
    if (!from_server.has_value()) f.message = std::string(status.message());
    f.revision = m.revision;
    f.description = m.description;
    f.direction = DirectionName(step.direction);
    f.file = m.location.file;
    f.revision_line = m.location.line;
    f.note = std::string(note);
    if (from_server.has_value() && f.statement_line > 0) {
      f.sql_line = statement_line + f.statement_line - 1;
      f.placed_by_server = true;
    } else if (from_server.has_value() && statement_line > 1) {
      f.sql_line = statement_line;
    }
    const int first_line =
        step.direction == Direction::kUpgrade ? m.upgrade_first_line : m.downgrade_first_line;
    if (f.sql_line > 0 && first_line > 0) f.line = first_line + f.sql_line - 1;

    absl::Status described(status.code(), failure::DescribeMigrationFailure(f));
    status.ForEachPayload(
        [&](absl::string_view key, const absl::Cord& value) { described.SetPayload(key, value); });
    described =
        WithFailureKind(std::move(described), FailureKindOf(status) == FailureKind::kUnreachable
                                                  ? FailureKind::kUnreachable
                                                  : FailureKind::kMigrationFailed);
    return failure::WithMigrationFailure(std::move(described), f);
  }

  void LogBlockers() {
    if (watcher_ == nullptr) return;
    for (const store::BlockingSession& blocker : watcher_->Blockers()) {
      log::Warning("blocked by", {{"pid", absl::StrCat(blocker.pid)},
                                  {"application_name", blocker.application_name},
                                  {"state", blocker.state},
                                  {"transaction_open_for", blocker.transaction_age},
                                  {"query", blocker.query}});
    }
  }

  // Runs `attempt` once, and again on lock timeouts (SQLSTATE 55P03) up to --ddl-retries times.
  absl::Status WithLockRetries(const Step& step, const std::function<absl::Status()>& attempt) {
    base::Backoff backoff(options_.ddl_retry_backoff, absl::Seconds(30));
    for (int tries = 0;; ++tries) {
      if (watcher_ != nullptr) watcher_->StepStarted();
      absl::Status status = attempt();
      if (watcher_ != nullptr) watcher_->StepFinished();
      if (status.ok() || !IsLockTimeout(status)) return status;
      log::Warning("lock_timeout: the revision waited too long for a lock held by other sessions",
                   {{"revision", step.migration->revision},
                    {"attempt", absl::StrCat(tries + 1, "/", options_.ddl_retries + 1)},
                    {"lock_timeout", absl::FormatDuration(options_.ddl_lock_timeout)}});
      LogBlockers();
      if (tries >= options_.ddl_retries) return status;
      absl::SleepFor(backoff.Next());
    }
  }

  const std::string& SqlOf(const Step& step) const {
    static const std::string* const kEmpty = new std::string();
    if (step.direction == Direction::kUpgrade) return step.migration->upgrade_sql;
    return step.migration->downgrade_sql.has_value() ? *step.migration->downgrade_sql : *kEmpty;
  }

  absl::Status ApplyEach(store::Store& work, const Plan& plan, RunResult& result) {
    for (const Step& step : plan.steps) {
      const absl::Time started = absl::Now();
      absl::Status status = step.migration->transactional
                                ? ApplyTransactional(work, step, started)
                                : ApplyStatementByStatement(work, step, started);
      if (status.ok()) ApplyRows(result.to_versions, step);
      StepOutcome outcome{step.migration->revision, step.migration->description,
                          step.direction,           started,
                          absl::Now() - started,    status.ok(),
                          result.to_versions};
      result.steps.push_back(outcome);
      if (observer_ != nullptr) observer_->OnStepFinished(outcome);
      if (!status.ok()) {
        RecordFailure(work, step, started, status);
        return status;
      }
      log::Info(step.direction == Direction::kUpgrade ? "applied revision" : "reverted revision",
                {{"revision", step.migration->revision},
                 {"description", step.migration->description},
                 {"duration_ms", absl::StrCat(absl::ToInt64Milliseconds(outcome.duration))}});
    }
    return absl::OkStatus();
  }

  static void ApplyRows(std::vector<std::string>& versions, const Step& step) {
    for (const std::string& row : step.delete_versions) {
      versions.erase(std::remove(versions.begin(), versions.end(), row), versions.end());
    }
    versions.insert(versions.end(), step.insert_versions.begin(), step.insert_versions.end());
    std::sort(versions.begin(), versions.end());
  }

  void RecordFailure(store::Store& work, const Step& step, absl::Time started,
                     const absl::Status& status) {
    if (FailureKindOf(status) == FailureKind::kUnreachable) return;
    store::HistoryRow row =
        HistoryRowFor(*step.migration, DirectionName(step.direction), started, kOutcomeFailed);
    row.error = std::string(status.message());
    absl::StatusOr<int64_t> id = work.AppendHistory(options_.tables, row);
    if (!id.ok())
      log::Warning("could not record the failure in the history",
                   {{"error", std::string(id.status().message())}});
  }

  absl::Status ApplyTransactional(store::Store& work, const Step& step, absl::Time started) {
    const std::string& sql = SqlOf(step);
    absl::Status status = WithLockRetries(step, [&] {
      return InTransaction(work, options_.ddl_lock_timeout, [&]() -> absl::Status {
        if (!absl::StripAsciiWhitespace(sql).empty()) SLUICE_RETURN_IF_ERROR(work.Execute(sql));
        return RecordStep(work, step, started);
      });
    });
    return status.ok() ? status : DescribeFailure(step, status, 1);
  }

  absl::Status ApplyStatementByStatement(store::Store& work, const Step& step, absl::Time started) {
    absl::StatusOr<std::vector<pgsql::Statement>> statements = pgsql::SplitStatements(SqlOf(step));
    if (!statements.ok()) {
      return WithFailureKind(DescribeFailure(step, statements.status(), 1),
                             FailureKind::kInvalidManifests);
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> invalid_before, work.InvalidIndexes());
    SLUICE_RETURN_IF_ERROR(work.SetLockTimeout(options_.ddl_lock_timeout));
    absl::Cleanup reset = [&work] { (void)work.Execute("RESET lock_timeout"); };
    for (size_t i = 0; i < statements->size(); ++i) {
      const pgsql::Statement& statement = (*statements)[i];
      absl::Status status = WithLockRetries(step, [&] { return work.Execute(statement.text); });
      if (!status.ok()) {
        return DescribeFailure(
            step, status, statement.first_line,
            absl::StrCat("this revision is transactional: false; ", i, " of its ",
                         statements->size(), " statements took effect before this one"));
      }
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> invalid_after, work.InvalidIndexes());
    std::vector<std::string> invalid;
    std::set_difference(invalid_after.begin(), invalid_after.end(), invalid_before.begin(),
                        invalid_before.end(), std::back_inserter(invalid));
    if (!invalid.empty()) {
      return DescribeFailure(
          step,
          absl::FailedPreconditionError(absl::StrCat(
              "it left invalid indexes: ", absl::StrJoin(invalid, ", "),
              " (pg_index.indisvalid is false: CREATE INDEX CONCURRENTLY did not finish). Drop "
              "them with DROP INDEX CONCURRENTLY and run the revision again")),
          1);
    }
    return RecordStep(work, step, started);  // one statement: atomic on its own
  }

  absl::Status ApplyInOneTransaction(store::Store& work, const Plan& plan, RunResult& result) {
    for (const Step& step : plan.steps) {
      if (!step.migration->transactional) {
        return WithFailureKind(
            absl::InvalidArgumentError(
                absl::StrCat("--single-transaction cannot run revision ", step.migration->revision,
                             " (", FileLine(*step.migration), "): it is transactional: false")),
            FailureKind::kUsage);
      }
    }
    const Step* failed_step = nullptr;
    std::vector<StepOutcome> outcomes;
    std::vector<std::string> versions;
    absl::Status status = WithLockRetries(plan.steps.front(), [&] {
      outcomes.clear();
      versions = result.to_versions;
      return InTransaction(work, options_.ddl_lock_timeout, [&]() -> absl::Status {
        for (const Step& step : plan.steps) {
          const absl::Time started = absl::Now();
          failed_step = &step;
          const std::string& sql = SqlOf(step);
          if (!absl::StripAsciiWhitespace(sql).empty()) SLUICE_RETURN_IF_ERROR(work.Execute(sql));
          SLUICE_RETURN_IF_ERROR(RecordStep(work, step, started));
          ApplyRows(versions, step);
          outcomes.push_back({step.migration->revision, step.migration->description, step.direction,
                              started, absl::Now() - started, true, versions});
        }
        failed_step = nullptr;
        return absl::OkStatus();
      });
    });
    if (!status.ok()) {
      return failed_step != nullptr ? DescribeFailure(*failed_step, status, 1) : status;
    }
    for (const StepOutcome& outcome : outcomes) {
      result.steps.push_back(outcome);
      if (observer_ != nullptr) observer_->OnStepFinished(outcome);
      log::Info("applied revision",
                {{"revision", outcome.revision},
                 {"description", outcome.description},
                 {"duration_ms", absl::StrCat(absl::ToInt64Milliseconds(outcome.duration))}});
    }
    result.to_versions = versions;
    return absl::OkStatus();
  }

  std::shared_ptr<const graph::RevisionGraph> manifest_graph_;
  // The graph plans use: manifest_graph_, or extended_graph_ once the database names revisions
  // known only from its history.
  const graph::RevisionGraph* graph_;
  std::unique_ptr<graph::RevisionGraph> extended_graph_;
  std::set<std::string> manifest_ids_;
  StoreFactory factory_;
  EngineOptions options_;
  Observer* observer_;
  const int64_t lock_key_;
  std::unique_ptr<store::Store> control_;  // polls and holds the advisory lock
  std::unique_ptr<store::Store> work_;     // runs the revisions
  std::unique_ptr<BlockerWatcher> watcher_;
  bool locked_ = false;
};

Engine::Engine(std::shared_ptr<const graph::RevisionGraph> graph, StoreFactory factory,
               EngineOptions options, Observer* observer)
    : impl_(std::make_unique<Impl>(std::move(graph), std::move(factory), std::move(options),
                                   observer)) {}
Engine::~Engine() = default;

absl::StatusOr<RunResult> Engine::Upgrade(absl::string_view target) {
  return impl_->Migrate(Direction::kUpgrade, target);
}
absl::StatusOr<RunResult> Engine::Downgrade(absl::string_view target) {
  return impl_->Migrate(Direction::kDowngrade, target);
}
absl::StatusOr<RunResult> Engine::Stamp(absl::string_view target, bool purge) {
  return impl_->Stamp(target, purge);
}
absl::StatusOr<std::vector<std::string>> Engine::Pending(absl::string_view target) {
  return impl_->Pending(target);
}
absl::StatusOr<DatabaseState> Engine::Inspect() { return impl_->Inspect(); }
absl::StatusOr<std::vector<store::HistoryRow>> Engine::History() { return impl_->History(); }
absl::Status Engine::Resolve(absl::string_view revision, bool applied) {
  return impl_->Resolve(revision, applied);
}
const graph::RevisionGraph& Engine::Graph() const { return impl_->Graph(); }

}  // namespace sluice::engine
