#include "pkg/kube/leader_election.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"

namespace sluice::kube {
namespace {

// client-go's JitterFactor: a standby waits retry_period * [1, 2.2) between tries.
constexpr double kJitterFactor = 1.2;

// Lease times are MicroTime (kube-api.md section 6).
std::string MicroTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

// Rounded up so that a standby never waits less than the leader assumes it has.
int64_t LeaseSeconds(absl::Duration lease_duration) {
  return static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(lease_duration)));
}

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

}  // namespace

absl::Status ValidateLeaderElectionOptions(const LeaderElectionOptions& options) {
  std::vector<std::string> problems;
  if (options.lease.namespace_.empty()) {
    problems.push_back("--leader-election-namespace (the Lease's namespace) is empty");
  }
  if (options.lease.name.empty()) {
    problems.push_back("--leader-election-id (the Lease's name) is empty");
  }
  if (options.identity.empty()) problems.push_back("the leader election identity is empty");
  const std::string lease = absl::FormatDuration(options.lease_duration);
  const std::string renew = absl::FormatDuration(options.renew_deadline);
  const std::string retry = absl::FormatDuration(options.retry_period);
  if (options.retry_period <= absl::ZeroDuration()) {
    problems.push_back(
        absl::StrCat("--leader-election-retry-period (", retry, ") must be greater than 0"));
  }
  if (options.renew_deadline <= kJitterFactor * options.retry_period) {
    problems.push_back(absl::StrCat("--leader-election-renew-deadline (", renew,
                                    ") must be greater than 1.2 x --leader-election-retry-period (",
                                    retry, ")"));
  }
  if (options.lease_duration <= options.renew_deadline) {
    problems.push_back(absl::StrCat("--leader-election-lease-duration (", lease,
                                    ") must be greater than --leader-election-renew-deadline (",
                                    renew, ")"));
  }
  if (options.lease_duration > absl::Seconds(std::numeric_limits<int32_t>::max())) {
    // leaseDurationSeconds is an int32.
    problems.push_back(absl::StrCat("--leader-election-lease-duration (", lease, ") is too long"));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid leader election options: ", absl::StrJoin(problems, "; ")));
}

LeaderElector::LeaderElector(Client& client, LeaderElectionOptions options,
                             std::function<void()> on_started_leading,
                             std::function<void()> on_stopped_leading)
    : client_(client),
      options_(std::move(options)),
      on_started_leading_(std::move(on_started_leading)),
      on_stopped_leading_(std::move(on_stopped_leading)),
      random_(std::random_device()()) {}

LeaderElector::~LeaderElector() { Stop(false); }

void LeaderElector::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopped_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop(bool release) {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  if (thread_.joinable()) thread_.join();
  bool leading;
  {
    absl::MutexLock lock(&mu_);
    leading = leader_;
  }
  // After the join: no renewal is in flight, and the thread's state is ours.
  if (leading && release) Release();
  absl::MutexLock lock(&mu_);
  leader_ = false;
}

bool LeaderElector::IsLeader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

bool LeaderElector::Wait(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopped_), d);
  return !stopped_;
}

std::string LeaderElector::Describe() const {
  return absl::StrCat(options_.lease.namespace_, "/", options_.lease.name);
}

void LeaderElector::Run() {
  std::uniform_real_distribution<double> jitter(0.0, kJitterFactor);
  SteadyTime acquired;
  while (true) {
    // The renew deadline counts from the start of the successful try, as for renewals.
    acquired = std::chrono::steady_clock::now();
    if (TryAcquireOrRenew(/*leading=*/false, absl::Now() + options_.renew_deadline)) break;
    if (!Wait(options_.retry_period * (1.0 + jitter(random_)))) return;
  }
  {
    absl::MutexLock lock(&mu_);
    leader_ = true;
    // Stopped meanwhile: the Lease is ours all the same, so Stop(true) gives it up.
    if (stopped_) return;
  }
  log::Info("acquired the leader election Lease",
            {{"lease", Describe()},
             {"identity", options_.identity},
             {"transitions", absl::StrCat(last_written_->spec.lease_transitions.value_or(0))}});
  if (on_started_leading_) on_started_leading_();
  if (Lead(acquired)) return;
  {
    absl::MutexLock lock(&mu_);
    leader_ = false;
  }
  log::Warning("lost the leader election Lease: no renewal within the renew deadline",
               {{"lease", Describe()},
                {"identity", options_.identity},
                {"renew_deadline", absl::FormatDuration(options_.renew_deadline)}});
  if (on_stopped_leading_) on_stopped_leading_();
}

bool LeaderElector::Lead(SteadyTime last_renewal) {
  const auto renew_deadline = ToSteady(options_.renew_deadline);
  while (true) {
    if (!Wait(options_.retry_period)) return true;
    while (true) {
      // Counted from the start of the last successful renewal: its renewTime is no older, so
      // standbys wait at least lease_duration (> renew_deadline) from then.
      const SteadyTime start = std::chrono::steady_clock::now();
      absl::Duration left = absl::FromChrono(last_renewal + renew_deadline - start);
      if (left <= absl::ZeroDuration()) return false;
      if (TryAcquireOrRenew(/*leading=*/true, absl::Now() + left)) {
        last_renewal = start;
        break;
      }
      left = absl::FromChrono(last_renewal + renew_deadline - std::chrono::steady_clock::now());
      if (left <= absl::ZeroDuration()) return false;
      if (!Wait(std::min(options_.retry_period, left))) return true;
    }
  }
}

void LeaderElector::Observe(const LeaseSpec& spec, SteadyTime now) {
  if (observed_.has_value() && *observed_ == spec) return;
  observed_ = spec;
  observed_time_ = now;
}

bool LeaderElector::TryAcquireOrRenew(bool leading, absl::Time deadline) {
  const SteadyTime now = std::chrono::steady_clock::now();
  const std::string now_text = MicroTime(absl::Now());
  const int32_t seconds =
      static_cast<int32_t>(std::max<int64_t>(1, LeaseSeconds(options_.lease_duration)));
  auto wrote = [&](const Lease& stored) {
    last_written_ = stored;
    // Our own write restarts the expiry clock, as client-go's setObservedRecord does.
    observed_ = stored.spec;
    observed_time_ = now;
    return true;
  };
  auto failed = [&](absl::string_view what, const absl::Status& status) {
    // A conflict is a race lost to another replica: expected, not worth a warning.
    const log::Level level =
        (!leading && absl::IsAborted(status)) ? log::Level::kDebug : log::Level::kWarning;
    log::Write(level, what,
               {{"lease", Describe()},
                {"identity", options_.identity},
                {"error", std::string(status.message())}});
    return false;
  };

  // 1. The leader's fast path: a PUT of the Lease as we last wrote it.
  if (leading && last_written_.has_value()) {
    Lease lease = *last_written_;
    lease.spec.holder_identity = options_.identity;
    lease.spec.lease_duration_seconds = seconds;
    lease.spec.renew_time = now_text;
    absl::StatusOr<Lease> stored = client_.UpdateLease(lease, deadline);
    if (stored.ok()) return wrote(*stored);
    log::Debug("renewing the leader election Lease failed; reading it again",
               {{"lease", Describe()}, {"error", std::string(stored.status().message())}});
  }

  // 2. Read it, or create it.
  absl::StatusOr<Lease> current = client_.GetLease(options_.lease, deadline);
  if (!current.ok()) {
    if (!absl::IsNotFound(current.status())) {
      return failed("reading the leader election Lease failed", current.status());
    }
    Lease lease;
    lease.metadata.namespace_ = options_.lease.namespace_;
    lease.metadata.name = options_.lease.name;
    lease.spec.holder_identity = options_.identity;
    lease.spec.lease_duration_seconds = seconds;
    lease.spec.acquire_time = now_text;
    lease.spec.renew_time = now_text;
    lease.spec.lease_transitions = 0;
    absl::StatusOr<Lease> stored = client_.CreateLease(lease, deadline);
    if (!stored.ok()) return failed("creating the leader election Lease failed", stored.status());
    return wrote(*stored);
  }

  // 3. Held by another whose record changed within its lease duration: wait. An empty holder is
  // a released Lease, free at once.
  Observe(current->spec, now);
  const std::string holder = current->spec.holder_identity.value_or("");
  const bool ours = holder == options_.identity;
  if (!holder.empty() && !ours) {
    const int32_t held_seconds = current->spec.lease_duration_seconds.value_or(0);
    // A record without a valid duration is judged by ours rather than taken at once.
    const absl::Duration held =
        held_seconds > 0 ? absl::Seconds(held_seconds) : options_.lease_duration;
    if (observed_time_ + ToSteady(held) > now) {
      log::Debug("the leader election Lease is held by another replica",
                 {{"lease", Describe()}, {"holder", holder}});
      return false;
    }
    log::Info("the leader election Lease expired; taking it over",
              {{"lease", Describe()}, {"holder", holder}});
  }

  // 4. Renew it, or take it over (at the resourceVersion read: a 409 means someone was quicker).
  Lease lease = *current;
  lease.spec.holder_identity = options_.identity;
  lease.spec.lease_duration_seconds = seconds;
  lease.spec.renew_time = now_text;
  if (!ours) {
    lease.spec.acquire_time = now_text;
    lease.spec.lease_transitions = current->spec.lease_transitions.value_or(0) + 1;
  }
  absl::StatusOr<Lease> stored = client_.UpdateLease(lease, deadline);
  if (!stored.ok()) {
    return failed(ours ? "renewing the leader election Lease failed"
                       : "taking over the leader election Lease failed",
                  stored.status());
  }
  return wrote(*stored);
}

void LeaderElector::Release() {
  const absl::Time deadline = absl::Now() + options_.renew_deadline;
  absl::StatusOr<Lease> current = client_.GetLease(options_.lease, deadline);
  if (!current.ok()) {
    log::Warning("releasing the leader election Lease failed",
                 {{"lease", Describe()}, {"error", std::string(current.status().message())}});
    return;
  }
  if (current->spec.holder_identity.value_or("") != options_.identity) {
    log::Info("not releasing the leader election Lease: another replica holds it",
              {{"lease", Describe()}, {"holder", current->spec.holder_identity.value_or("")}});
    return;
  }
  const std::string now = MicroTime(absl::Now());
  Lease lease = *current;
  lease.spec.holder_identity = "";
  lease.spec.lease_duration_seconds = 1;
  lease.spec.acquire_time = now;
  lease.spec.renew_time = now;
  absl::StatusOr<Lease> stored = client_.UpdateLease(lease, deadline);
  if (!stored.ok()) {
    log::Warning("releasing the leader election Lease failed",
                 {{"lease", Describe()}, {"error", std::string(stored.status().message())}});
    return;
  }
  log::Info("released the leader election Lease",
            {{"lease", Describe()}, {"identity", options_.identity}});
}

}  // namespace sluice::kube
