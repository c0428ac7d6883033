#include "pkg/reporting/status_composer.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice::reporting {
namespace {

absl::Time ParseOr(absl::string_view text, absl::Time fallback) {
  absl::Time t;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &error)) return t;
  return fallback;
}

std::string Revisions(const std::vector<std::string>& revisions) {
  return revisions.empty() ? "base" : absl::StrJoin(revisions, ", ");
}

}  // namespace

std::string FormatMillis(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

std::string FormatSeconds(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

bool IsNewerRun(absl::string_view stored_started_at, absl::Time started_at) {
  if (stored_started_at.empty()) return false;
  return ParseOr(stored_started_at, absl::InfinitePast()) > started_at;
}

std::string Truncate(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  constexpr absl::string_view kEllipsis = "...";
  size_t cut = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
  // Back up to the start of a UTF-8 character.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(text.substr(0, cut), kEllipsis);
}

void SetCondition(std::vector<kube::Condition>& conditions, absl::string_view type,
                  absl::string_view status, absl::string_view reason, absl::string_view message,
                  int64_t observed_generation, absl::Time now) {
  kube::Condition* existing = nullptr;
  for (kube::Condition& c : conditions) {
    if (c.type == type) existing = &c;
  }
  if (existing == nullptr) {
    conditions.push_back(kube::Condition{std::string(type), "", 0, "", "", ""});
    existing = &conditions.back();
  }
  if (existing->status != status || existing->last_transition_time.empty()) {
    existing->last_transition_time = FormatSeconds(now);
  }
  existing->status = std::string(status);
  existing->reason = std::string(reason);
  existing->message = Truncate(message, kMaxConditionMessage);
  existing->observed_generation = observed_generation;
}

kube::MigrationJobStatus Compose(const std::optional<kube::MigrationJobStatus>& stored,
                                 const RunView& run, absl::Time now) {
  kube::MigrationJobStatus s = stored.value_or(kube::MigrationJobStatus{});

  // lastApplied: every run's steps, newest first, without duplicates, at most 20.
  // This run's steps go first, newest first, so that steps started in the same millisecond keep
  // their order through the stable sort.
  std::vector<kube::AppliedStep> steps;
  std::set<std::tuple<std::string, std::string, std::string, std::string>> seen;
  auto add = [&](const kube::AppliedStep& step) {
    if (seen.insert({step.revision, step.direction, step.started_at, step.applied_by}).second) {
      steps.push_back(step);
    }
  };
  for (auto it = run.steps.rbegin(); it != run.steps.rend(); ++it) add(*it);
  for (const kube::AppliedStep& step : s.last_applied) add(step);
  std::stable_sort(steps.begin(), steps.end(),
                   [](const kube::AppliedStep& a, const kube::AppliedStep& b) {
                     return ParseOr(a.started_at, absl::InfinitePast()) >
                            ParseOr(b.started_at, absl::InfinitePast());
                   });
  if (steps.size() > kMaxLastApplied) steps.resize(kMaxLastApplied);
  s.last_applied = std::move(steps);

  if (IsNewerRun(s.started_at, run.started_at)) return s;

  const int64_t generation = run.generation;
  if (run.phase == RunView::Phase::kSucceeded) s.observed_generation = generation;
  s.started_at = FormatMillis(run.started_at);
  if (run.planned) {
    s.current_revisions = run.current;
    s.target_revisions = run.target_revisions;
    s.pending_revisions = run.pending;
    // The digest describes the content these revision fields were planned with, so it changes
    // with them and only with them.
    s.migrations_digest = run.migrations_digest;
  }
  s.last_error = run.error;
  if (s.last_error) {
    s.last_error->message = Truncate(s.last_error->message, kMaxErrorMessage);
  }
  const std::string by = run.instance.empty() ? "" : absl::StrCat(" by ", run.instance);
  switch (run.phase) {
    case RunView::Phase::kRunning: {
      s.phase = "Running";
      s.completed_at.clear();
      std::string reason = kReasonProgressing;
      std::string message = absl::StrCat("run", by, " started, target ", run.target);
      if (run.waiting_for) {
        reason = kReasonWaitingForLock;
        message = absl::StrCat("waiting for the migration lock held by ", *run.waiting_for);
      } else if (run.planned && !run.pending.empty()) {
        reason = kReasonMigrating;
        message = absl::StrCat("applying ", run.pending.size(), " revision",
                               run.pending.size() == 1 ? "" : "s", " (", Revisions(run.pending),
                               ") to reach ", Revisions(run.target_revisions));
      } else if (!run.steps.empty()) {
        reason = kReasonMigrating;
        message = absl::StrCat("applied ", run.steps.size(), " revision",
                               run.steps.size() == 1 ? "" : "s", "; finishing");
      }
      SetCondition(s.conditions, kReconciling, "True", reason, message, generation, now);
      if (run.content_changed) {
        SetCondition(s.conditions, kReady, "False", kReasonMigrationsChanged,
                     absl::StrCat("the migrations changed (", run.migrations_digest, "); a run", by,
                                  " is applying them"),
                     generation, now);
      } else {
        SetCondition(s.conditions, kReady, "Unknown", kReasonProgressing,
                     absl::StrCat("a run", by, " is in progress"), generation, now);
      }
      SetCondition(s.conditions, kStalled, "False", kReasonProgressing, "", generation, now);
      break;
    }
    case RunView::Phase::kSucceeded: {
      s.phase = "Succeeded";
      s.completed_at = FormatMillis(run.completed_at);
      const std::string applied = run.steps.empty()
                                      ? "nothing to apply"
                                      : absl::StrCat(run.steps.size(), " revision",
                                                     run.steps.size() == 1 ? "" : "s", " applied");
      SetCondition(s.conditions, kReady, "True", kReasonAtTarget,
                   absl::StrCat("database at ", Revisions(s.current_revisions)), generation, now);
      SetCondition(s.conditions, kReconciling, "False", kReasonSucceeded,
                   absl::StrCat("run", by, " finished: ", applied), generation, now);
      SetCondition(s.conditions, kStalled, "False", kReasonSucceeded, "", generation, now);
      break;
    }
    case RunView::Phase::kFailed: {
      s.phase = "Failed";
      s.completed_at = FormatMillis(run.completed_at);
      const std::string reason = !run.failure_reason.empty() ? run.failure_reason
                                 : run.step_failed           ? kReasonMigrationFailed
                                                             : kReasonRunFailed;
      const std::string message = run.error ? run.error->message : "the run failed";
      SetCondition(s.conditions, kReady, "False", reason, message, generation, now);
      SetCondition(s.conditions, kReconciling, "False", reason, absl::StrCat("run", by, " failed"),
                   generation, now);
      SetCondition(s.conditions, kStalled, "True", reason, message, generation, now);
      break;
    }
  }
  return s;
}

}  // namespace sluice::reporting
