#include "pkg/engine/engine_impl.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/backoff.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/failure.h"
#include "pkg/failure/migration_failure.h"

namespace sluice::engine {
namespace {

using failure::FailureKind;
using failure::WithFailureKind;
using graph::Plan;
using internal::FileLine;
using internal::kOutcomeApplied;
using internal::kOutcomeFailed;
using internal::MigrationFromHistory;
using manifest::Migration;

}  // namespace

absl::StatusOr<std::vector<std::string>> Engine::Impl::Pending(absl::string_view target) {
  SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
  SLUICE_ASSIGN_OR_RETURN(DatabaseState state, ReadState(*control));
  absl::StatusOr<Plan> plan = graph_->PlanUpgrade(state.versions, target);
  if (!plan.ok()) return AsUsage(plan.status());
  return PendingOf(*plan);
}

absl::StatusOr<VersionCheck> Engine::Impl::CheckVersions(absl::string_view target) {
  SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
  VersionCheck check;
  SLUICE_ASSIGN_OR_RETURN(check.versions, control->ReadVersions(options_.tables));
  for (const std::string& version : check.versions) {
    if (manifest_ids_.count(version) == 0) check.ahead.push_back(version);
  }
  // Without the history (which this reader may not SELECT) rows the manifests lack cannot be
  // placed in the graph; they come from a newer release, so the target is behind them.
  if (!check.ahead.empty()) {
    // The target must still name something in the manifests.
    absl::StatusOr<std::vector<std::string>> resolved = graph_->ResolveTarget(target, {});
    if (!resolved.ok()) return AsUsage(resolved.status());
    return check;
  }
  absl::StatusOr<std::vector<std::string>> targets = graph_->ResolveTarget(target, check.versions);
  if (!targets.ok()) return AsUsage(targets.status());
  // At or past every target revision (an upgrade would refuse to go "down" to it): reached.
  const bool reached = std::all_of(targets->begin(), targets->end(), [&](const std::string& t) {
    return std::any_of(check.versions.begin(), check.versions.end(),
                       [&](const std::string& v) { return graph_->IsAncestorOrSelf(t, v); });
  });
  if (reached) return check;
  absl::StatusOr<Plan> plan = graph_->PlanUpgrade(check.versions, target);
  if (!plan.ok()) return AsUsage(plan.status());
  check.pending = PendingOf(*plan);
  return check;
}

absl::StatusOr<VersionCheck> Engine::Impl::WaitForTarget(absl::string_view target,
                                                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  base::Backoff backoff(options_.wait_poll_initial, options_.wait_poll_max);
  absl::Time next_log = absl::Now() + absl::Seconds(10);
  while (true) {
    absl::StatusOr<VersionCheck> check = CheckVersions(target);
    const bool unreachable =
        !check.ok() && failure::FailureKindOf(check.status()) == FailureKind::kUnreachable;
    if (!check.ok() && !unreachable) return check.status();
    if (check.ok() && check->pending.empty()) return check;
    const absl::Time now = absl::Now();
    if (now >= deadline) return check;
    if (unreachable) {
      // A new connection at the next poll (the server restarted, or is not up yet).
      control_.reset();
      log::Warning("waiting: the database cannot be read; retrying",
                   {{"error", std::string(check.status().message())}});
    } else if (now >= next_log) {
      log::Info("waiting for the database to reach the target",
                {{"target", std::string(target)},
                 {"current", Joined(check->versions)},
                 {"pending", Joined(check->pending)}});
      next_log = now + absl::Seconds(10);
    }
    absl::SleepFor(std::min(backoff.Next(), deadline - now));
  }
}

absl::StatusOr<DatabaseState> Engine::Impl::Inspect() {
  SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
  return ReadState(*control);
}

absl::StatusOr<std::vector<store::HistoryRow>> Engine::Impl::History() {
  SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
  return control->ReadHistory(options_.tables);
}

// Makes `graph_` know every revision in `versions`: the manifests' graph when it does, else a
// graph of the manifests plus the revisions that history rows recorded for the versions the
// manifests lack (and those revisions' missing ancestors). Builds a graph only in that case.
absl::Status Engine::Impl::ExtendGraph(const std::vector<std::string>& versions,
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

absl::StatusOr<DatabaseState> Engine::Impl::ReadState(store::Store& connection) {
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
std::set<std::string> Engine::Impl::AppliedSet(const std::vector<std::string>& versions) const {
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

absl::Status Engine::Impl::CheckUnresolved(const DatabaseState& state) const {
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

absl::Status Engine::Impl::CheckDrift(const DatabaseState& state) const {
  std::vector<std::string> drifted;
  for (const AppliedRevision& applied : state.applied) {
    if (applied.verification != Verification::kDrifted) continue;
    const Migration* m = graph_->Find(applied.revision);
    drifted.push_back(absl::StrCat(applied.revision, " (", FileLine(*m), ": applied as ",
                                   applied.recorded_checksum, ", manifest now ", m->checksum, ")"));
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

absl::Status Engine::Impl::CheckAhead(const DatabaseState& state) const {
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

}  // namespace sluice::engine
