#include "pkg/engine/migration_lock.h"

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/failure.h"

namespace sluice::engine {
namespace {

using failure::FailureKind;
using failure::WithFailureKind;

uint32_t RandomWord() {
  thread_local std::mt19937 random{std::random_device{}()};
  return static_cast<uint32_t>(random());
}

// Eight random hex digits: tells apart two runners of one name (a restarted pod) and the session
// marker of one run from a stale one left on a pooled server session.
std::string RandomSuffix() { return absl::StrFormat("%08x", RandomWord()); }

absl::Status LockFailure(std::string message) {
  return WithFailureKind(absl::FailedPreconditionError(std::move(message)),
                         FailureKind::kLockTimeout);
}

constexpr char kPoolerFixes[] =
    "A connection pooler in transaction or statement pooling mode (e.g. PgBouncer with "
    "pool_mode = transaction) sits between sluice and PostgreSQL, and a session-level advisory "
    "lock is lost between transactions there: two runners could migrate at once. Give the lock a "
    "direct connection to PostgreSQL with --lock-database-url (or SLUICE_LOCK_DATABASE_URL, "
    "--lock-database-url-file), or use --lock-mode=lease";

class SessionLock final : public MigrationLock {
 public:
  SessionLock(int64_t key, bool work_shares_lock_target)
      : key_(key), work_shares_lock_target_(work_shares_lock_target), runner_(RandomRunnerMark()) {}

  absl::StatusOr<bool> TryAcquire(store::Store& control, const WorkConnection& work) override {
    if (route_ == Route::kUnknown) {
      // A direct connection (the server sees this connection's own address and port) is one
      // server session by construction: one statement proves it, without the probe below and
      // the work connection it needs. Through any proxy the probe runs.
      const std::string marker = absl::StrCat("sluice-", RandomSuffix());
      SLUICE_ASSIGN_OR_RETURN(store::SessionIdentity identity,
                              control.IdentifySession(key_, marker));
      route_ = identity.direct ? Route::kDirect : Route::kProxied;
      if (route_ == Route::kDirect) {
        server_pid_ = identity.server_pid;
        marker_ = marker;
      }
    }
    if (server_pid_ == 0) {
      // While another runner visibly holds the lock, trying would fail anyway: the one-session
      // check below (nine statements), and the work connection it opens, wait until the lock
      // looks free. Of sixteen runners started at once, fifteen usually never get there (they find
      // the target reached), so each opens one connection, not two. This only ever answers "not
      // taken", so what the check guards is unchanged; a holder that left no runner mark (not
      // sluice) is not seen here, and the check runs as before.
      SLUICE_ASSIGN_OR_RETURN(std::vector<uint32_t> holders, control.RunnersHoldingLock(key_));
      if (!holders.empty()) return false;
      SLUICE_ASSIGN_OR_RETURN(store::Store * work_connection, work());
      SLUICE_RETURN_IF_ERROR(CheckOneSession(control, *work_connection));
    }
    SLUICE_ASSIGN_OR_RETURN(bool locked, control.TryLockAs(key_, runner_));
    if (!locked) return false;
    // The lock belongs to the server session that ran pg_try_advisory_lock: it must be ours still,
    // and hold no other runner's mark.
    absl::StatusOr<store::SessionIdentity> now = control.IdentifySession(key_, "");
    absl::Status refused;
    if (!now.ok()) {
      refused = now.status();
    } else if (now->server_pid != server_pid_ || now->marker != marker_ || !now->holds_lock) {
      refused = LockFailure(absl::StrCat(
          "the lock connection is not one server session: the advisory lock was taken by backend ",
          server_pid_, " but the next statement ran in backend ", now->server_pid,
          now->holds_lock ? "" : ", which does not hold it", ". ", kPoolerFixes));
    } else {
      refused = CheckOnlyThisRunnerHolds(control);
    }
    if (!refused.ok()) {
      (void)control.UnlockAs(key_, runner_);
      return refused;
    }
    held_ = true;
    return true;
  }

  absl::StatusOr<std::optional<store::LockHolder>> Holder(store::Store& control) override {
    return control.LockHolderOf(key_);
  }
  bool WakesWaiters() const override { return true; }
  bool SessionSettingsStick() const override { return work_shares_lock_target_; }
  absl::Status CheckHeld() override { return lost_; }

  // Before each commit: the lock's session still holds it for this runner alone. This catches
  // what the one-session check at the start cannot rule out: a transaction pooler that handed the
  // lock's server session to another runner later (that runner's TryLockAs succeeds re-entrantly
  // and leaves its mark there), or a lock connection that died, letting another runner take the
  // lock elsewhere.
  //
  // A direct lock connection (no pooler: no other runner can be handed its session) needs less:
  // its backend took the lock and the mark together and lets go of both together, so while some
  // other session holds this runner's mark, that session is the lock connection's and still holds
  // the lock. One lock-manager probe says so, where reading pg_locks copies the server's whole
  // lock table before every commit.
  absl::Status CheckHeldInTransaction(store::Store& work) override {
    SLUICE_RETURN_IF_ERROR(lost_);
    absl::Status held =
        route_ == Route::kDirect ? CheckMarkHeld(work) : CheckOnlyThisRunnerHolds(work);
    if (!held.ok() && failure::FailureKindOf(held) == FailureKind::kLockTimeout) lost_ = held;
    return held;
  }

  void Release(store::Store& control) override {
    if (!held_) return;
    held_ = false;
    absl::Status status = control.UnlockAs(key_, runner_);
    if (!lost_.ok()) return;  // where the lock went, unlocking it is best effort
    // Wake the runners waiting for the lock now rather than at their next poll.
    if (status.ok()) status = control.Notify(LockChannel(key_));
    if (status.ok()) log::Debug("released the migration lock", {{"key", absl::StrCat(key_)}});
    if (!status.ok()) {
      log::Warning("could not release the migration lock",
                   {{"error", std::string(status.message())}});
    }
  }

 private:
  static uint32_t RandomRunnerMark() {
    uint32_t mark = 0;
    while (mark == 0) mark = RandomWord();
    return mark;
  }

  // A server session keeps its pid and its settings, and no other client connection shares it. A
  // pooler in transaction mode hands each transaction whichever server session is free (PgBouncer
  // the one used last), so the lock connection's statements land in different sessions, or the
  // work connection's statement lands in the lock connection's session.
  //
  // A lone runner behind PgBouncer is caught at once: the work connection's statement gets the
  // server session the lock connection just released. Among concurrent runners, one may by chance
  // get the same server session for each of its statements, so the check runs several rounds (the
  // runner's mark, checked before every commit, keeps the lock safe when it is fooled anyway).
  absl::Status CheckOneSession(store::Store& control, store::Store& work) {
    constexpr int kRounds = 3;
    int server_pid = 0;
    std::string marker;
    for (int round = 0; round < kRounds; ++round) {
      marker = absl::StrCat("sluice-", RandomSuffix());
      SLUICE_ASSIGN_OR_RETURN(store::SessionIdentity first, control.IdentifySession(key_, marker));
      SLUICE_ASSIGN_OR_RETURN(store::SessionIdentity other, work.IdentifySession(key_, ""));
      SLUICE_ASSIGN_OR_RETURN(store::SessionIdentity second, control.IdentifySession(key_, ""));
      std::string seen;
      if (other.server_pid == first.server_pid) {
        seen = absl::StrCat("another connection's statement ran in the lock connection's backend (",
                            first.server_pid, ")");
      } else if (second.server_pid != first.server_pid ||
                 (server_pid != 0 && first.server_pid != server_pid)) {
        seen = absl::StrCat(
            "its statements ran in backend ", server_pid != 0 ? server_pid : first.server_pid,
            ", then in backend ",
            second.server_pid != first.server_pid ? second.server_pid : first.server_pid);
      } else if (second.marker != marker) {
        seen = "a setting it made for its session was gone by its next statement";
      }
      if (!seen.empty()) {
        return LockFailure(absl::StrCat("the lock connection is not one server session (", seen,
                                        "). ", kPoolerFixes));
      }
      server_pid = first.server_pid;
    }
    server_pid_ = server_pid;
    marker_ = marker;
    return absl::OkStatus();
  }

  absl::Status CheckMarkHeld(store::Store& work) {
    SLUICE_ASSIGN_OR_RETURN(bool held, work.MarkHeldElsewhere(runner_));
    if (held) return absl::OkStatus();
    return LockFailure(absl::StrCat(
        "this runner no longer holds the migration lock (key ", key_,
        "): its lock connection's server session ended (the connection was lost or the backend "
        "terminated), which released the lock"));
  }

  absl::Status CheckOnlyThisRunnerHolds(store::Store& connection) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<uint32_t> runners, connection.RunnersHoldingLock(key_));
    const bool ours = std::find(runners.begin(), runners.end(), runner_) != runners.end();
    if (ours && runners.size() == 1) return absl::OkStatus();
    if (ours) {
      return LockFailure(absl::StrCat(
          "the server session that holds the migration lock (key ", key_, ") holds it for ",
          runners.size(),
          " runners: the lock connection is not one server session, and other runners were "
          "handed that session and took the lock in it. ",
          kPoolerFixes));
    }
    return LockFailure(absl::StrCat(
        "this runner no longer holds the migration lock (key ", key_,
        "): ", runners.empty() ? "nobody does" : "another runner does",
        ". Its lock connection's server session ended (the connection was lost or the backend "
        "terminated), or it never was one session. ",
        kPoolerFixes));
  }

  const int64_t key_;
  const bool work_shares_lock_target_;
  const uint32_t runner_;  // this runner's mark beside the lock (TryLockAs)
  int server_pid_ = 0;     // the lock connection's backend, once shown to be one session
  std::string marker_;
  // How the lock connection reaches the server, once seen: directly (the server sees the
  // connection's own address and port, so it is one server session by construction) or through
  // a proxy.
  enum class Route { kUnknown, kDirect, kProxied };
  Route route_ = Route::kUnknown;
  bool held_ = false;
  absl::Status lost_;  // why the lock is no longer this runner's, once seen
};

class LeaseLock final : public MigrationLock {
 public:
  static constexpr char kTimeFormat[] = "%Y-%m-%dT%H:%M:%E3SZ";

  LeaseLock(const store::TableNames& tables, int64_t key, const std::string& holder_prefix,
            absl::Duration ttl, StoreFactory heartbeat_factory)
      : tables_(tables),
        key_(key),
        holder_(absl::StrCat(holder_prefix, "-", RandomSuffix())),
        ttl_(ttl),
        heartbeat_factory_(std::move(heartbeat_factory)) {}

  ~LeaseLock() override { StopHeartbeat(); }

  absl::StatusOr<bool> TryAcquire(store::Store& control, const WorkConnection& /*work*/) override {
    if (!table_ready_) {
      SLUICE_RETURN_IF_ERROR(control.EnsureLeaseTable(tables_));
      table_ready_ = true;
    }
    // Look before taking: the taking statement locks the row even when it finds the lease fresh
    // (ON CONFLICT locks the row, then checks its WHERE), which would make the holder's heartbeat
    // and its check before each commit wait behind every poller.
    SLUICE_ASSIGN_OR_RETURN(std::optional<store::Lease> current, control.ReadLease(tables_, key_));
    if (current.has_value() && current->remaining > absl::ZeroDuration()) return false;
    const absl::Time sent = absl::Now();
    SLUICE_ASSIGN_OR_RETURN(bool acquired, control.TryAcquireLease(tables_, key_, holder_, ttl_));
    if (!acquired) return false;
    {
      absl::MutexLock lock(&mu_);
      // Counted from before the statement was sent: the server's expiry is no earlier.
      valid_until_ = sent + ttl_;
      lost_reason_.clear();
      stop_ = false;
    }
    held_ = true;
    log::Debug("took the migration lease",
               {{"holder", holder_}, {"ttl", absl::FormatDuration(ttl_)}});
    heartbeat_ = std::thread([this] { Heartbeat(); });
    return true;
  }

  absl::StatusOr<std::optional<store::LockHolder>> Holder(store::Store& control) override {
    SLUICE_ASSIGN_OR_RETURN(std::optional<store::Lease> lease, control.ReadLease(tables_, key_));
    if (!lease.has_value()) return std::optional<store::LockHolder>();
    store::LockHolder holder;
    holder.application_name = lease->holder;
    holder.lease = true;
    holder.since = absl::FormatTime(kTimeFormat, lease->acquired_at, absl::UTCTimeZone());
    holder.last_heartbeat = absl::FormatTime(kTimeFormat, lease->heartbeat_at, absl::UTCTimeZone());
    return std::optional<store::LockHolder>(std::move(holder));
  }
  bool WakesWaiters() const override { return false; }
  bool SessionSettingsStick() const override { return false; }

  absl::Status CheckHeld() override {
    absl::MutexLock lock(&mu_);
    if (lost_reason_.empty() && absl::Now() >= valid_until_) {
      lost_reason_ = absl::StrCat("its heartbeat did not renew it within --lease-ttl ",
                                  absl::FormatDuration(ttl_));
    }
    if (lost_reason_.empty()) return absl::OkStatus();
    return LostError(lost_reason_);
  }

  absl::Status CheckHeldInTransaction(store::Store& work) override {
    SLUICE_RETURN_IF_ERROR(CheckHeld());
    SLUICE_ASSIGN_OR_RETURN(bool holds, work.HoldsLeaseInTransaction(tables_, key_, holder_));
    if (holds) return absl::OkStatus();
    absl::MutexLock lock(&mu_);
    if (lost_reason_.empty()) lost_reason_ = "it expired or was taken over by another runner";
    return LostError(lost_reason_);
  }

  void Release(store::Store& control) override {
    StopHeartbeat();
    if (!held_) return;
    held_ = false;
    bool lost = false;
    {
      absl::MutexLock lock(&mu_);
      lost = !lost_reason_.empty();
    }
    if (lost) return;  // another runner's now: not ours to delete
    absl::Status status = control.ReleaseLease(tables_, key_, holder_);
    if (status.ok()) log::Debug("released the migration lease", {{"holder", holder_}});
    if (!status.ok()) {
      log::Warning("could not release the migration lease; it expires by itself",
                   {{"holder", holder_},
                    {"ttl", absl::FormatDuration(ttl_)},
                    {"error", std::string(status.message())}});
    }
  }

 private:
  absl::Status LostError(const std::string& reason) const {
    return LockFailure(absl::StrCat("this runner (", holder_, ") lost the migration lease: ",
                                    reason, "; it stops without committing anything more"));
  }

  void StopHeartbeat() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  // Renews the lease every third of its TTL on a connection of its own (the lock connection serves
  // the engine meanwhile), retrying sooner after a failure, until stopped or the lease is lost.
  void Heartbeat() {
    std::unique_ptr<store::Store> connection;
    const absl::Duration every = ttl_ / 3;
    absl::Duration wait = every;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), wait);
        if (stop_ || !lost_reason_.empty()) return;
      }
      wait = std::max(every / 4, absl::Milliseconds(10));
      if (connection == nullptr) {
        absl::StatusOr<std::unique_ptr<store::Store>> opened = heartbeat_factory_(holder_);
        if (!opened.ok()) {
          log::Warning("lease heartbeat: cannot connect",
                       {{"error", std::string(opened.status().message())}});
          continue;
        }
        connection = *std::move(opened);
      }
      const absl::Time sent = absl::Now();
      absl::StatusOr<bool> renewed = connection->RenewLease(tables_, key_, holder_, ttl_);
      absl::MutexLock lock(&mu_);
      if (renewed.ok() && *renewed) {
        valid_until_ = sent + ttl_;
        wait = every;
      } else if (renewed.ok()) {
        lost_reason_ = "it expired or was taken over by another runner";
        log::Warning("lost the migration lease", {{"holder", holder_}, {"reason", lost_reason_}});
        return;
      } else {
        log::Warning("lease heartbeat failed; retrying",
                     {{"error", std::string(renewed.status().message())},
                      {"valid_for", absl::FormatDuration(valid_until_ - absl::Now())}});
        connection.reset();  // a broken connection is not reused
      }
    }
  }

  const store::TableNames tables_;
  const int64_t key_;
  const std::string holder_;
  const absl::Duration ttl_;
  const StoreFactory heartbeat_factory_;
  bool table_ready_ = false;
  bool held_ = false;
  std::thread heartbeat_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Until when the lease is ours for sure, by this machine's clock.
  absl::Time valid_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string lost_reason_ ABSL_GUARDED_BY(mu_);  // empty while held
};

}  // namespace

std::string LockChannel(int64_t key) { return absl::StrCat("sluice_lock_", key); }

std::unique_ptr<MigrationLock> NewSessionLock(int64_t key, bool work_shares_lock_target) {
  return std::make_unique<SessionLock>(key, work_shares_lock_target);
}

std::unique_ptr<MigrationLock> NewLeaseLock(const store::TableNames& tables, int64_t key,
                                            const std::string& holder_prefix, absl::Duration ttl,
                                            StoreFactory heartbeat_factory) {
  return std::make_unique<LeaseLock>(tables, key, holder_prefix, ttl, std::move(heartbeat_factory));
}

}  // namespace sluice::engine
