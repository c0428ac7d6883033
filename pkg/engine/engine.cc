#include "pkg/engine/engine_impl.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/failure.h"
#include "pkg/failure/migration_failure.h"

namespace sluice::engine {
namespace {

using failure::FailureKind;
using failure::WithFailureKind;
using graph::Direction;
using graph::Plan;
using graph::Step;
using internal::DirectionName;
using internal::FileLine;
using internal::IsLockTimeout;
using internal::kOutcomeApplied;
using internal::kOutcomeResolved;
using internal::MigrationFromHistory;
using manifest::Migration;

}  // namespace

namespace internal {

const char* DirectionName(graph::Direction direction) {
  return direction == graph::Direction::kUpgrade ? "upgrade" : "downgrade";
}

bool IsLockTimeout(const absl::Status& status) {
  std::optional<failure::MigrationFailure> error = failure::MigrationFailureOf(status);
  return error.has_value() && error->sqlstate == kLockTimeoutSqlState;
}

std::string FileLine(const manifest::Migration& m) {
  return absl::StrCat(m.location.file, ":", m.location.line);
}

manifest::Migration MigrationFromHistory(const store::HistoryRow& row) {
  manifest::Migration m;
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

}  // namespace internal

Engine::Impl::Impl(std::shared_ptr<const graph::RevisionGraph> graph, StoreFactory factory,
                   EngineOptions options, Observer* observer, StoreFactory lock_factory)
    : manifest_graph_(std::move(graph)),
      graph_(manifest_graph_.get()),
      factory_(std::move(factory)),
      lock_factory_(lock_factory ? std::move(lock_factory) : factory_),
      options_(std::move(options)),
      observer_(observer),
      lock_key_(options_.lock_key.value_or(store::LockKeyFor(options_.tables))) {
  for (const Migration* m : manifest_graph_->TopologicalOrder()) manifest_ids_.insert(m->revision);
  lock_ = options_.lock_mode == LockMode::kLease
              ? NewLeaseLock(options_.tables, lock_key_, options_.applied_by, options_.lease_ttl,
                             lock_factory_)
              : NewSessionLock(lock_key_, /*work_shares_lock_target=*/!lock_factory);
}

Engine::Impl::~Impl() {
  watcher_.reset();
  ReleaseLock();
  if (stop_taken_up_) options_.stop->GiveUp();
}

void Engine::Impl::TakeUpStop() {
  if (options_.stop == nullptr || stop_taken_up_) return;
  options_.stop->TakeUp();
  stop_taken_up_ = true;
  if (work_ != nullptr) options_.stop->SetCanceller(work_->StatementCanceller());
}

bool Engine::Impl::StopRequested() const {
  return options_.stop != nullptr && options_.stop->stopped();
}

absl::Status Engine::Impl::Interrupted(absl::string_view what) {
  return WithFailureKind(absl::CancelledError(absl::StrCat("stopped (SIGTERM or SIGINT) ", what)),
                         FailureKind::kInterrupted);
}

absl::StatusOr<RunResult> Engine::Impl::Migrate(Direction direction, absl::string_view target) {
  TakeUpStop();
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

absl::StatusOr<RunResult> Engine::Impl::Stamp(absl::string_view target, bool purge) {
  TakeUpStop();
  SLUICE_RETURN_IF_ERROR(TakeLock());
  SLUICE_ASSIGN_OR_RETURN(store::Store * work, WorkConnection());
  SLUICE_RETURN_IF_ERROR(work->EnsureTables(options_.tables));
  SLUICE_ASSIGN_OR_RETURN(DatabaseState state, ReadState(*work));
  absl::StatusOr<std::vector<std::string>> targets = graph_->ResolveTarget(target, state.versions);
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
    SLUICE_RETURN_IF_ERROR(work->UpdateVersions(
        options_.tables, purge ? std::vector<std::string>{} : deletes, purge ? new_rows : inserts));
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

absl::StatusOr<LockStatus> Engine::Impl::ReadLockStatus() {
  SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
  LockStatus status;
  status.key = lock_key_;
  SLUICE_ASSIGN_OR_RETURN(status.session_holder, control->LockHolderOf(lock_key_));
  SLUICE_ASSIGN_OR_RETURN(status.lease, control->ReadLease(options_.tables, lock_key_));
  return status;
}

absl::StatusOr<std::optional<store::Lease>> Engine::Impl::ForceReleaseLease() {
  SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
  SLUICE_ASSIGN_OR_RETURN(std::optional<store::Lease> deleted,
                          control->DeleteExpiredLease(options_.tables, lock_key_));
  if (deleted.has_value()) {
    log::Info("released the expired migration lease",
              {{"holder", deleted->holder}, {"key", absl::StrCat(lock_key_)}});
    return deleted;
  }
  SLUICE_ASSIGN_OR_RETURN(std::optional<store::Lease> lease,
                          control->ReadLease(options_.tables, lock_key_));
  if (!lease.has_value()) return lease;
  return WithFailureKind(
      absl::FailedPreconditionError(absl::StrCat(
          "the migration lease is held by ", lease->holder,
          ", whose heartbeat is fresh: it expires in ", absl::FormatDuration(lease->remaining),
          " unless renewed. Its holder is alive; a lease is released by force only once its "
          "holder has stopped renewing it")),
      FailureKind::kLockTimeout);
}

absl::Status Engine::Impl::Resolve(absl::string_view revision, bool applied) {
  TakeUpStop();
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
    SLUICE_RETURN_IF_ERROR(InTransaction(*work, std::nullopt, [&] {
      return work->SetHistoryOutcome(options_.tables, failed.id, kOutcomeResolved);
    }));
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
    store::HistoryRow row = HistoryRowFor(*step.migration, "upgrade", absl::Now(), kOutcomeApplied);
    row.error =
        absl::StrCat("recorded as applied by `sluice resolve` after failed run ", failed.id);
    SLUICE_RETURN_IF_ERROR(
        work->RecordStep(options_.tables, step.delete_versions, step.insert_versions, row)
            .status());
    return work->SetHistoryOutcome(options_.tables, failed.id, kOutcomeResolved);
  });
}

std::string Engine::Impl::Joined(const std::vector<std::string>& items) {
  return items.empty() ? "<base>" : absl::StrJoin(items, ",");
}

absl::Status Engine::Impl::AsUsage(absl::Status status) {
  if (status.code() == absl::StatusCode::kUnavailable) return status;
  return WithFailureKind(std::move(status), FailureKind::kUsage);
}

std::vector<std::string> Engine::Impl::PendingOf(const Plan& plan) {
  std::vector<std::string> pending;
  for (const Step& step : plan.steps) pending.push_back(step.migration->revision);
  return pending;
}

RunResult Engine::Impl::Summarize(const Plan& plan, const DatabaseState& state) const {
  RunResult result;
  result.from_versions = state.versions;
  result.to_versions = state.versions;
  result.target_versions = plan.to_heads;
  result.ahead = state.ahead;
  return result;
}

absl::StatusOr<store::Store*> Engine::Impl::ControlConnection() {
  if (control_ == nullptr) {
    SLUICE_ASSIGN_OR_RETURN(control_, lock_factory_(options_.applied_by));
  }
  return control_.get();
}

absl::StatusOr<store::Store*> Engine::Impl::WorkConnection() {
  if (work_ == nullptr) {
    SLUICE_ASSIGN_OR_RETURN(work_, factory_(options_.applied_by));
    if (stop_taken_up_) options_.stop->SetCanceller(work_->StatementCanceller());
  }
  return work_.get();
}

Engine::Engine(std::shared_ptr<const graph::RevisionGraph> graph, StoreFactory factory,
               EngineOptions options, Observer* observer, StoreFactory lock_factory)
    : impl_(std::make_unique<Impl>(std::move(graph), std::move(factory), std::move(options),
                                   observer, std::move(lock_factory))) {}
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
absl::StatusOr<VersionCheck> Engine::CheckVersions(absl::string_view target) {
  return impl_->CheckVersions(target);
}
absl::StatusOr<VersionCheck> Engine::WaitForTarget(absl::string_view target,
                                                   absl::Duration timeout) {
  return impl_->WaitForTarget(target, timeout);
}
absl::StatusOr<DatabaseState> Engine::Inspect() { return impl_->Inspect(); }
absl::StatusOr<std::vector<store::HistoryRow>> Engine::History() { return impl_->History(); }
absl::Status Engine::Resolve(absl::string_view revision, bool applied) {
  return impl_->Resolve(revision, applied);
}
absl::StatusOr<LockStatus> Engine::ReadLockStatus() { return impl_->ReadLockStatus(); }
absl::StatusOr<std::optional<store::Lease>> Engine::ForceReleaseLease() {
  return impl_->ForceReleaseLease();
}
const graph::RevisionGraph& Engine::Graph() const { return impl_->Graph(); }

}  // namespace sluice::engine
