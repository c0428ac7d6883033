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

constexpr absl::Duration kPollMaxWithoutNotifications = absl::Milliseconds(50);
constexpr absl::Duration kPollMinWithoutNotifications = absl::Milliseconds(5);

}  // namespace

void Engine::Impl::ReleaseLock() {
  if (locked_ && control_ != nullptr) lock_->Release(*control_);
  locked_ = false;
}

absl::Status Engine::Impl::TakeLock() {
  SLUICE_ASSIGN_OR_RETURN(std::optional<RunResult> done, WaitForLockOrTarget(/*plan_for=*/nullptr));
  (void)done;
  return absl::OkStatus();
}

// Polls the lock (in either mode). With `plan_for`, each poll also reads the version table and
// returns a result without the lock when there is nothing left to do. Returns nullopt once the
// lock is held.
absl::StatusOr<std::optional<RunResult>> Engine::Impl::WaitForLockOrTarget(
    const std::function<absl::StatusOr<Plan>(const std::vector<std::string>&)>& plan_for) {
  SLUICE_ASSIGN_OR_RETURN(store::Store * control, ControlConnection());
  const absl::Time deadline = absl::Now() + options_.lock_wait;
  absl::Duration interval = options_.lock_poll_initial;
  // A waiter that cannot be woken by a notification (the lease, through a pooler) learns of the
  // hand-over only by polling, so it polls more often: its polls are plain reads that lock nothing.
  const absl::Duration poll_max =
      lock_->WakesWaiters() ? options_.lock_poll_max
                            : std::min(options_.lock_poll_max, kPollMaxWithoutNotifications);
  absl::Time next_holder_log =
      absl::Now() + std::min(options_.lock_holder_lookup_after, options_.lock_wait / 2);
  bool listening = false;
  // The holder's progress as this waiter saw it: the latest pending count with the time it was
  // first seen, and the count before. Without notifications, a waiter that sees the holder advance
  // expects it to be done when the pending revisions will have run at the latest pace seen, and
  // polls at half that time, then half the rest, and so on, rather than up to a whole interval
  // after the holder finished (the pace varies: with fifteen waiters starting beside it, the
  // holder's first revisions run slower than its last).
  struct Sighting {
    size_t pending = 0;
    absl::Time at = absl::InfinitePast();
  };
  std::optional<Sighting> latest_seen;
  Sighting seen_before;  // at == InfinitePast(): none yet
  size_t pending = 0;
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
      pending = plan->steps.size();
      if (!latest_seen.has_value() || latest_seen->pending != pending) {
        if (latest_seen.has_value()) seen_before = *latest_seen;
        latest_seen = Sighting{pending, absl::Now()};
      }
    }
    if (StopRequested()) return Interrupted("while waiting for the migration lock");
    SLUICE_ASSIGN_OR_RETURN(bool locked,
                            lock_->TryAcquire(*control, [this] { return WorkConnection(); }));
    if (locked) {
      locked_ = true;
      return std::optional<RunResult>();
    }
    const absl::Time now = absl::Now();
    if (now >= next_holder_log || now >= deadline) {
      absl::StatusOr<std::optional<store::LockHolder>> holder = lock_->Holder(*control);
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
    absl::Duration wait = std::min(base::Jittered(interval), deadline - now);
    if (!lock_->WakesWaiters() && latest_seen.has_value() &&
        seen_before.at != absl::InfinitePast() && latest_seen->pending < seen_before.pending) {
      // Up to the usual cap (so a holder that stops early is noticed within it); meanwhile it
      // polls less, which leaves the holder more of the machine.
      const absl::Duration per_revision =
          (latest_seen->at - seen_before.at) /
          static_cast<double>(seen_before.pending - latest_seen->pending);
      wait = std::min(
          {std::max(per_revision * static_cast<double>(pending) / 2, kPollMinWithoutNotifications),
           options_.lock_poll_max, deadline - now});
    }
    if (lock_->WakesWaiters()) {
      if (!listening) {
        SLUICE_RETURN_IF_ERROR(control->Listen(LockChannel(lock_key_)));
        listening = true;
      }
      SLUICE_RETURN_IF_ERROR(control->WaitForNotification(wait).status());
    } else {
      absl::SleepFor(wait);
    }
    interval = std::min(interval * 3 / 2, poll_max);
  }
}

}  // namespace sluice::engine
