#include "pkg/reporting/migration_job_reporter.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pkg/base/backoff.h"
#include "pkg/base/host.h"
#include "pkg/base/log.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/kube/api_error.h"
#include "pkg/reporting/status_composer.h"

namespace sluice::reporting {
namespace {

constexpr char kComponent[] = "sluice";
constexpr char kAction[] = "Migrate";
// Conflicts re-read and recompute; many pods writing at once need a few rounds each.
constexpr int kMaxConflictRounds = 50;
// How long a run may be quiet before its Running status is written anyway.
constexpr absl::Duration kInitialGrace = absl::Seconds(1);
// While a run is under way its status is written at most this often: a run of many quick
// revisions (or fifty jobs of the operator at once) would otherwise write one status per
// revision. The run's end is written at once.
constexpr absl::Duration kProgressInterval = absl::Milliseconds(200);
// An Event's message is at most this long (the API server's limit is 1 KiB for the note).
constexpr size_t kMaxEventMessage = 1024;

// An Event waiting to be posted. Consecutive step events are posted as one (StepsMessage), as
// many as fit in one message.
struct QueuedEvent {
  explicit QueuedEvent(kube::Event e, std::string step_revision = "", std::string step = "",
                       bool step_upgrade = true)
      : event(std::move(e)),
        revision(std::move(step_revision)),
        summary(std::move(step)),
        upgrade(step_upgrade) {}
  kube::Event event;
  std::string revision;  // a step's revision; empty for other events
  std::string summary;   // "REV (DESCRIPTION) in N ms"
  bool upgrade = true;
};

// The message of one Event for steps [first, last) of the same direction.
std::string StepsMessage(std::deque<QueuedEvent>::const_iterator first,
                         std::deque<QueuedEvent>::const_iterator last) {
  const size_t count = static_cast<size_t>(last - first);
  const bool upgrade = first->upgrade;
  if (count == 1) {
    return absl::StrCat(upgrade ? "applied revision " : "reverted revision ", first->summary);
  }
  std::string message = absl::StrCat(upgrade ? "applied " : "reverted ", count, " revisions (",
                                     first->revision, " to ", (last - 1)->revision, "): ");
  for (auto it = first; it != last; ++it) {
    absl::StrAppend(&message, it == first ? "" : ", ", it->summary);
  }
  return message;
}

// RFC 1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric.
bool IsDnsLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
  });
}

// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
bool IsDnsSubdomain(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (!IsDnsLabel(label)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<kube::ObjectRef> ParseReportTarget(absl::string_view report) {
  std::vector<std::string> parts = absl::StrSplit(report, '/');
  if (parts.size() != 2 || !IsDnsLabel(parts[0]) || !IsDnsSubdomain(parts[1])) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--report \"", report,
        "\" is not NAMESPACE/NAME of a MigrationJob (lowercase letters, digits, '-' and '.')"));
  }
  return kube::ObjectRef{parts[0], parts[1]};
}

class MigrationJobReporter::Impl {
 public:
  // `owned_client` or else `shared_client` (may be null: the client could not be made, and
  // `setup_error` says why).
  Impl(const ReportOptions& options, kube::ObjectRef ref,
       std::unique_ptr<kube::Client> owned_client, kube::Client* shared_client,
       absl::Status setup_error)
      : options_(options),
        ref_(std::move(ref)),
        owned_client_(std::move(owned_client)),
        client_(owned_client_ != nullptr ? owned_client_.get() : shared_client),
        setup_error_(std::move(setup_error)),
        generation_(options.generation) {
    run_.started_at = absl::Now();
    run_.instance =
        options.instance.empty() ? base::RunnerName(base::ProcessEnvironment()) : options.instance;
    run_.target = options.target.empty() ? "head" : options.target;
    run_.content_changed = options.content_changed;
    ++version_;
    if (client_ != nullptr) worker_ = std::thread([this] { Work(); });
  }

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (owned_client_ != nullptr) owned_client_->Shutdown();
    if (worker_.joinable()) worker_.join();
  }

  void OnPlanned(const engine::RunResult& result, const std::vector<std::string>& pending) {
    absl::MutexLock lock(&mu_);
    run_.planned = true;
    run_.current = result.from_versions;
    run_.target_revisions = result.target_versions;
    run_.pending = pending;
    run_.waiting_for.reset();
    ++version_;
  }

  void SetMigrationsDigest(std::string digest) {
    absl::MutexLock lock(&mu_);
    run_.migrations_digest = std::move(digest);
  }

  void SetFailureReason(std::string reason) {
    absl::MutexLock lock(&mu_);
    run_.failure_reason = std::move(reason);
  }

  void OnWaitingForLock(const store::LockHolder& holder) {
    absl::MutexLock lock(&mu_);
    std::string who = store::DescribeLockHolder(holder);
    if (run_.waiting_for == who) return;  // polled again: nothing new to write
    run_.waiting_for = std::move(who);
    ++version_;
  }

  void OnStepFinished(const engine::StepOutcome& step) {
    absl::MutexLock lock(&mu_);
    run_.waiting_for.reset();
    const bool upgrade = step.direction == graph::Direction::kUpgrade;
    if (!step.ok) {
      failed_revision_ = step.revision;
      return;  // reported with the run's error by Finish
    }
    run_.steps.push_back(kube::AppliedStep{
        step.revision, upgrade ? "upgrade" : "downgrade", FormatMillis(step.started_at),
        absl::ToInt64Milliseconds(step.duration), run_.instance});
    run_.current = step.versions_after;
    run_.pending.erase(std::remove(run_.pending.begin(), run_.pending.end(), step.revision),
                       run_.pending.end());
    events_.emplace_back(
        MakeEvent("Normal", "MigrationApplied", ""), step.revision,
        absl::StrCat(step.revision,
                     step.description.empty() ? "" : absl::StrCat(" (", step.description, ")"),
                     " in ", absl::ToInt64Milliseconds(step.duration), " ms"),
        upgrade);
    ++version_;
  }

  absl::Status Finish(const absl::Status& run_status, const engine::RunResult* result) {
    const absl::Time deadline = absl::Now() + options_.report_timeout;
    {
      absl::MutexLock lock(&mu_);
      run_.completed_at = absl::Now();
      run_.waiting_for.reset();
      if (run_status.ok()) {
        run_.phase = RunView::Phase::kSucceeded;
        if (result != nullptr) {
          run_.planned = true;
          run_.current = result->to_versions;
          run_.target_revisions = result->target_versions;
          run_.pending.clear();
        }
        if (!run_.steps.empty()) {
          events_.emplace_back(MakeEvent(
              "Normal", "MigrationSucceeded",
              absl::StrCat("database at ", absl::StrJoin(run_.current, ", "), " after ",
                           run_.steps.size(), " revision", run_.steps.size() == 1 ? "" : "s")));
        }
      } else {
        run_.phase = RunView::Phase::kFailed;
        run_.step_failed = !failed_revision_.empty();
        const std::optional<failure::MigrationFailure> failed =
            failure::MigrationFailureOf(run_status);
        run_.error = kube::LastError{
            failed.has_value() && !failed->revision.empty() ? failed->revision : failed_revision_,
            failed.has_value() ? failed->sqlstate : "", std::string(run_status.message())};
        events_.emplace_back(MakeEvent(
            "Warning", run_.failure_reason.empty() ? "MigrationFailed" : run_.failure_reason,
            failed_revision_.empty()
                ? std::string(run_status.message())
                : absl::StrCat("revision ", failed_revision_, " failed: ", run_status.message())));
      }
      ++version_;
      finishing_ = true;
      finish_deadline_ = deadline;
    }
    if (client_ == nullptr) return Unreported(setup_error_);

    bool timed_out = false;
    {
      absl::MutexLock lock(&mu_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return permanent_error_.has_value() || (synced_version_ == version_ && events_.empty());
      };
      mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
      timed_out = !permanent_error_ && synced_version_ != version_;
      stop_ = true;
    }
    // Ends a request still in flight, so that Finish keeps its time bound. A shared client's calls
    // end by their deadlines, which are Finish's.
    if (owned_client_ != nullptr) owned_client_->Shutdown();
    if (worker_.joinable()) worker_.join();
    absl::MutexLock lock(&mu_);
    absl::Status written;
    if (permanent_error_) {
      written = *permanent_error_;
    } else if (timed_out) {
      written = absl::DeadlineExceededError(
          absl::StrCat("the status was not written within --report-timeout ",
                       absl::FormatDuration(options_.report_timeout),
                       last_error_.ok() ? "" : absl::StrCat(": ", last_error_.message())));
    }
    return Unreported(written);
  }

 private:
  // Returns OK for a written status; else logs and returns per --report-required.
  absl::Status Unreported(const absl::Status& why) {
    if (why.ok()) return absl::OkStatus();
    const std::string what = absl::StrCat(ref_.namespace_, "/", ref_.name);
    if (options_.report_required) {
      log::Error("could not report the run to the MigrationJob's status",
                 {{"migrationjob", what}, {"error", std::string(why.message())}});
      return absl::Status(why.code(), absl::StrCat("reporting to MigrationJob ", what,
                                                   " (--report-required): ", why.message()));
    }
    log::Warning(
        "could not report the run to the MigrationJob's status; the migrations are "
        "not affected",
        {{"migrationjob", what}, {"error", std::string(why.message())}});
    return absl::OkStatus();
  }

  kube::Event MakeEvent(const std::string& type, const std::string& reason,
                        const std::string& message) {
    kube::Event e;
    e.namespace_ = ref_.namespace_;
    e.object_name = ref_.name;
    e.type = type;
    e.reason = reason;
    e.message = Truncate(message, kMaxEventMessage);
    e.action = kAction;
    e.reporting_component = kComponent;
    e.reporting_instance = Truncate(run_.instance, 128);
    e.timestamp = FormatSeconds(absl::Now());
    return e;
  }

  // The deadline of one API call: Finish's, or a bound that keeps a hung server from stalling
  // the worker forever before Finish.
  absl::Time CallDeadline() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return finishing_ ? finish_deadline_ : absl::Now() + options_.report_timeout;
  }

  // Whether the run has something worth showing before it ends: a fast no-op run (every replica
  // but one, usually) goes straight to its final status, so Ready does not flap to Unknown and
  // back each time a pod starts.
  bool Substantive() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || finishing_ || run_.content_changed || run_.waiting_for.has_value() ||
           !run_.steps.empty() || (run_.planned && !run_.pending.empty());
  }

  void Work() {
    base::Backoff backoff(absl::Milliseconds(100), absl::Seconds(5));
    absl::Time next_attempt = absl::InfinitePast();
    absl::Time next_progress = absl::InfinitePast();  // kProgressInterval after a Running write
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(this, &Impl::Substantive),
                            run_.started_at + kInitialGrace);
    }
    while (true) {
      RunView run;
      int version = 0;
      bool need_sync = false;
      absl::Time deadline;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || synced_version_ != version_ || !events_.empty();
        };
        mu_.Await(absl::Condition(&ready));
        if (stop_) return;
        // The run's end is written without waiting for the progress interval.
        auto ending = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || finishing_; };
        mu_.AwaitWithDeadline(absl::Condition(&ending), next_progress);
        mu_.AwaitWithDeadline(absl::Condition(&stop_), next_attempt);
        if (stop_) return;
        run = run_;
        version = version_;
        need_sync = synced_version_ != version_;
        deadline = CallDeadline();
      }
      absl::Status status = absl::OkStatus();
      if (need_sync) status = SyncStatus(run, deadline);
      if (status.ok()) status = PostEvents(deadline);

      absl::MutexLock lock(&mu_);
      if (status.ok()) {
        synced_version_ = std::max(synced_version_, version);
        backoff.Reset();
        next_attempt = absl::InfinitePast();
        if (need_sync && run.phase == RunView::Phase::kRunning) {
          next_progress = absl::Now() + kProgressInterval;
        }
        continue;
      }
      if (status.code() == absl::StatusCode::kCancelled) {
        // Finish stopped waiting. A call it cut short says what its attempts saw (e.g. an
        // unreachable server): keep that when nothing earlier said why.
        if (last_error_.ok()) last_error_ = status;
        return;
      }
      // A call that ran out of its time says less than the error before it (e.g. "connection
      // refused" on every earlier attempt), which is what Finish should report.
      const bool ran_out = status.code() == absl::StatusCode::kDeadlineExceeded &&
                           absl::Now() >= deadline && !last_error_.ok();
      if (!ran_out) last_error_ = status;
      if (!kube::IsTransient(status)) {
        // 401/403/404/422...: retrying will not help; stop trying and say why once.
        permanent_error_ = status;
        log::Warning("giving up reporting to the MigrationJob",
                     {{"error", std::string(status.message())}});
        return;
      }
      log::Debug("status write failed, will retry",
                 {{"error", std::string(status.message())},
                  {"backoff", absl::FormatDuration(backoff.Current())}});
      next_attempt = absl::Now() + backoff.Next();
    }
  }

  // Reads the object (first time and after conflicts), composes the status and writes it
  // conditionally. Worker thread only.
  absl::Status SyncStatus(RunView run, absl::Time deadline) {
    for (int round = 0; round < kMaxConflictRounds; ++round) {
      if (!job_) {
        absl::StatusOr<kube::MigrationJob> job = client_->GetMigrationJob(ref_, deadline);
        if (!job.ok()) return job.status();
        job_ = std::move(*job);
        if (generation_ == 0) generation_ = job_->metadata.generation;
      }
      run.generation = generation_;
      const kube::MigrationJobStatus next = Compose(job_->status, run, absl::Now());
      if (job_->status && *job_->status == next) return absl::OkStatus();
      absl::StatusOr<kube::MigrationJob> written =
          client_->PatchMigrationJobStatus(ref_, next, job_->metadata.resource_version, deadline);
      if (written.ok()) {
        job_ = std::move(*written);
        return absl::OkStatus();
      }
      job_.reset();
      if (written.status().code() != absl::StatusCode::kAborted) return written.status();
      // 409: someone else wrote in between; read again and recompose.
    }
    return absl::UnavailableError(
        absl::StrCat("the status kept changing under ", kMaxConflictRounds, " conflicting writes"));
  }

  // Posts queued events in order, consecutive steps of one direction as one Event. Worker thread
  // only. An event the server rejects for its content is dropped with a warning: events are best
  // effort.
  absl::Status PostEvents(absl::Time deadline) {
    while (true) {
      kube::Event event;
      size_t count = 1;
      {
        absl::MutexLock lock(&mu_);
        if (events_.empty()) return absl::OkStatus();
        event = events_.front().event;
        if (!events_.front().revision.empty()) {
          // As many steps as one message holds: each step is named in full, never cut off.
          auto last = events_.begin() + 1;
          while (last != events_.end() && !last->revision.empty() &&
                 last->upgrade == events_.front().upgrade &&
                 StepsMessage(events_.begin(), last + 1).size() <= kMaxEventMessage) {
            ++last;
          }
          count = static_cast<size_t>(last - events_.begin());
          event.message = Truncate(StepsMessage(events_.begin(), last), kMaxEventMessage);
        }
      }
      if (job_) {
        event.object_uid = job_->metadata.uid;
        event.object_resource_version = job_->metadata.resource_version;
      }
      absl::Status status = client_->CreateEvent(event, deadline);
      if (!status.ok() &&
          (kube::IsTransient(status) || status.code() == absl::StatusCode::kCancelled)) {
        return status;
      }
      if (!status.ok()) {
        log::Warning("dropped an event the API server refused",
                     {{"reason", event.reason}, {"error", std::string(status.message())}});
      }
      absl::MutexLock lock(&mu_);
      events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(count));
    }
  }

  const ReportOptions options_;
  const kube::ObjectRef ref_;
  const std::unique_ptr<kube::Client> owned_client_;
  kube::Client* const client_;  // owned_client_ or a shared one; null when there is none
  const absl::Status setup_error_;
  std::thread worker_;

  // Worker thread only.
  std::optional<kube::MigrationJob> job_;
  int64_t generation_;

  absl::Mutex mu_;
  RunView run_ ABSL_GUARDED_BY(mu_);
  int version_ ABSL_GUARDED_BY(mu_) = 0;         // bumped on every change of run_
  int synced_version_ ABSL_GUARDED_BY(mu_) = 0;  // the last version written (or found written)
  std::deque<QueuedEvent> events_ ABSL_GUARDED_BY(mu_);
  std::string failed_revision_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time finish_deadline_ ABSL_GUARDED_BY(mu_);
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> permanent_error_ ABSL_GUARDED_BY(mu_);
};

MigrationJobReporter::MigrationJobReporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MigrationJobReporter::~MigrationJobReporter() = default;

absl::StatusOr<std::unique_ptr<MigrationJobReporter>> MigrationJobReporter::Start(
    const ReportOptions& options, absl::StatusOr<std::unique_ptr<kube::Client>> client) {
  absl::StatusOr<kube::ObjectRef> ref = ParseReportTarget(options.report);
  if (!ref.ok()) return ref.status();
  if (client.ok() && *client == nullptr) {
    return absl::InvalidArgumentError(
        "MigrationJobReporter::Start needs a Kubernetes client or the reason there is none");
  }
  const absl::Status setup = client.status();
  if (!setup.ok()) {
    log::Warning("cannot report to the MigrationJob; migrating anyway",
                 {{"migrationjob", options.report}, {"error", std::string(setup.message())}});
  }
  std::unique_ptr<kube::Client> made = setup.ok() ? *std::move(client) : nullptr;
  return std::unique_ptr<MigrationJobReporter>(new MigrationJobReporter(
      std::make_unique<Impl>(options, *ref, std::move(made), nullptr, setup)));
}

absl::StatusOr<std::unique_ptr<MigrationJobReporter>> MigrationJobReporter::Start(
    const ReportOptions& options, kube::Client& shared_client) {
  absl::StatusOr<kube::ObjectRef> ref = ParseReportTarget(options.report);
  if (!ref.ok()) return ref.status();
  return std::unique_ptr<MigrationJobReporter>(new MigrationJobReporter(
      std::make_unique<Impl>(options, *ref, nullptr, &shared_client, absl::OkStatus())));
}

void MigrationJobReporter::SetFailureReason(std::string reason) {
  impl_->SetFailureReason(std::move(reason));
}

void MigrationJobReporter::OnPlanned(const engine::RunResult& result_so_far,
                                     const std::vector<std::string>& pending) {
  impl_->OnPlanned(result_so_far, pending);
}

void MigrationJobReporter::SetMigrationsDigest(std::string digest) {
  impl_->SetMigrationsDigest(std::move(digest));
}

void MigrationJobReporter::OnWaitingForLock(const store::LockHolder& holder) {
  impl_->OnWaitingForLock(holder);
}

void MigrationJobReporter::OnStepFinished(const engine::StepOutcome& step) {
  impl_->OnStepFinished(step);
}

absl::Status MigrationJobReporter::Finish(const absl::Status& run_status,
                                          const engine::RunResult* result) {
  return impl_->Finish(run_status, result);
}

}  // namespace sluice::reporting
