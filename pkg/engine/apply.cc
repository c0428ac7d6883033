#include "pkg/engine/engine_impl.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/backoff.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/failure.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/sql/sql_text.h"

namespace sluice::engine {
namespace {

using failure::FailureKind;
using failure::FailureKindOf;
using failure::MigrationFailure;
using failure::WithFailureKind;
using graph::Direction;
using graph::Plan;
using graph::Step;
using internal::DirectionName;
using internal::FileLine;
using internal::IsLockTimeout;
using internal::kOutcomeApplied;
using internal::kOutcomeFailed;
using manifest::Migration;

}  // namespace

store::HistoryRow Engine::Impl::HistoryRowFor(const Migration& m, absl::string_view direction,
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
absl::Status Engine::Impl::RecordStep(store::Store& work, const Step& step, absl::Time started) {
  return work
      .RecordStep(
          options_.tables, step.delete_versions, step.insert_versions,
          HistoryRowFor(*step.migration, DirectionName(step.direction), started, kOutcomeApplied))
      .status();
}

// Runs `body` between BEGIN and COMMIT, rolling back when it fails. With `lock_timeout`, it is
// set for the transaction as it begins.
absl::Status Engine::Impl::InTransaction(store::Store& work,
                                         std::optional<absl::Duration> lock_timeout,
                                         const std::function<absl::Status()>& body) {
  SLUICE_RETURN_IF_ERROR(lock_timeout.has_value() ? work.BeginWithLockTimeout(*lock_timeout)
                                                  : work.Begin());
  absl::Status status = body();
  // A lease lost meanwhile (lock mode lease) rolls the transaction back: a runner that is no
  // longer the holder commits nothing.
  if (status.ok() && locked_) status = lock_->CheckHeldInTransaction(work);
  if (status.ok()) status = work.Commit();
  if (!status.ok()) {
    absl::Status rollback = work.Rollback();
    if (!rollback.ok()) log::Debug("rollback failed", {{"error", std::string(rollback.message())}});
  }
  return status;
}

// Returns `status` as the failure of `step`: its MigrationFailure (what PostgreSQL said, if it
// said anything) completed with the revision, its file and the line of the failing statement,
// and a message that describes it all; kUnreachable when the database went away, else
// kMigrationFailed. `statement_line` is the 1-based line within the step's SQL where the failing
// statement starts.
absl::Status Engine::Impl::DescribeFailure(const Step& step, const absl::Status& status,
                                           int statement_line, absl::string_view note) {
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

void Engine::Impl::LogBlockers() {
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
absl::Status Engine::Impl::WithLockRetries(const Step& step,
                                           const std::function<absl::Status()>& attempt) {
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
    if (tries >= options_.ddl_retries || StopRequested()) return status;
    absl::SleepFor(backoff.Next());
  }
}

const std::string& Engine::Impl::SqlOf(const Step& step) const {
  static const std::string* const kEmpty = new std::string();
  if (step.direction == Direction::kUpgrade) return step.migration->upgrade_sql;
  return step.migration->downgrade_sql.has_value() ? *step.migration->downgrade_sql : *kEmpty;
}

bool Engine::Impl::EndedByStop(const absl::Status& status) const {
  return options_.stop != nullptr &&
         (options_.stop->cancelled() || (options_.stop->stopped() && IsLockTimeout(status)));
}

absl::Status Engine::Impl::ApplyEach(store::Store& work, const Plan& plan, RunResult& result) {
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& step = plan.steps[i];
    if (StopRequested()) {
      return Interrupted(absl::StrCat("before revision ", step.migration->revision, ": ", i, " of ",
                                      plan.steps.size(),
                                      " steps done, the rest still pending for the next run"));
    }
    SLUICE_RETURN_IF_ERROR(lock_->CheckHeld());
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
      // The lease was lost meanwhile: the step was rolled back because of that, not its SQL.
      if (absl::Status held = lock_->CheckHeld(); !held.ok()) {
        return WithFailureKind(
            absl::Status(held.code(), absl::StrCat(held.message(), "; revision ",
                                                   step.migration->revision, " was not recorded")),
            FailureKind::kLockTimeout);
      }
      // Cancelled by the stop (or its lock_timeout retries given up): the transaction rolled
      // back, and the revision is pending, not failed.
      if (step.migration->transactional && EndedByStop(status)) {
        return Interrupted(absl::StrCat("during revision ", step.migration->revision,
                                        ", which rolled back: ", i, " of ", plan.steps.size(),
                                        " steps done, the rest still pending for the next run"));
      }
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

void Engine::Impl::ApplyRows(std::vector<std::string>& versions, const Step& step) {
  for (const std::string& row : step.delete_versions) {
    versions.erase(std::remove(versions.begin(), versions.end(), row), versions.end());
  }
  versions.insert(versions.end(), step.insert_versions.begin(), step.insert_versions.end());
  std::sort(versions.begin(), versions.end());
}

void Engine::Impl::RecordFailure(store::Store& work, const Step& step, absl::Time started,
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

absl::Status Engine::Impl::ApplyTransactional(store::Store& work, const Step& step,
                                              absl::Time started) {
  const std::string& sql = SqlOf(step);
  absl::Status status = WithLockRetries(step, [&] {
    return InTransaction(work, options_.ddl_lock_timeout, [&]() -> absl::Status {
      if (!absl::StripAsciiWhitespace(sql).empty()) SLUICE_RETURN_IF_ERROR(work.Execute(sql));
      return RecordStep(work, step, started);
    });
  });
  return status.ok() ? status : DescribeFailure(step, status, 1);
}

absl::Status Engine::Impl::ApplyStatementByStatement(store::Store& work, const Step& step,
                                                     absl::Time started) {
  absl::StatusOr<std::vector<sql::Statement>> statements = sql::SplitStatements(SqlOf(step));
  if (!statements.ok()) {
    return WithFailureKind(DescribeFailure(step, statements.status(), 1),
                           FailureKind::kInvalidManifests);
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> invalid_before, work.InvalidIndexes());
  // These statements run outside a transaction, so lock_timeout can only be set for the session:
  // done where the work connection is known to be one server session. Through a pooler in
  // transaction mode the setting would land on a pooled server session another client gets next
  // and be missing from the next statement's, so there they run with the server's lock_timeout.
  const bool session_settings = lock_->SessionSettingsStick();
  if (session_settings) SLUICE_RETURN_IF_ERROR(work.SetLockTimeout(options_.ddl_lock_timeout));
  absl::Cleanup reset = [&work, session_settings] {
    if (session_settings) (void)work.Execute("RESET lock_timeout");
  };
  for (size_t i = 0; i < statements->size(); ++i) {
    const sql::Statement& statement = (*statements)[i];
    SLUICE_RETURN_IF_ERROR(lock_->CheckHeld());
    absl::Status status = WithLockRetries(step, [&] { return work.Execute(statement.text); });
    if (!status.ok()) {
      return DescribeFailure(
          step, status, statement.first_line,
          absl::StrCat("this revision is transactional: false; ", i, " of its ", statements->size(),
                       " statements took effect before this one"));
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
  // In a transaction of its own, so that the lock is checked before it commits.
  return InTransaction(work, std::nullopt, [&] { return RecordStep(work, step, started); });
}

absl::Status Engine::Impl::ApplyInOneTransaction(store::Store& work, const Plan& plan,
                                                 RunResult& result) {
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
    if (EndedByStop(status)) {
      return Interrupted("during the single transaction, which rolled back: nothing was applied");
    }
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

}  // namespace sluice::engine
