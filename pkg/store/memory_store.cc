#include "pkg/store/memory_store.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/migration_failure.h"

namespace sluice::store {
namespace {

std::string VersionTableKey(const TableNames& tables) {
  return absl::StrCat(tables.schema, ".", tables.version_table);
}

// How long a lease statement waits for the row lock of HoldsLeaseInTransaction (PgStore's
// lock_timeout for TryAcquireLease and RenewLease).
constexpr absl::Duration kLeaseLockWait = absl::Seconds(1);
// The pid of the one server session behind the simulated transaction pooler.
constexpr int kPooledServerPid = 900;

absl::Status CheckTtl(absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration() || ttl == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a lease TTL must be positive and finite, not ", absl::FormatDuration(ttl)));
  }
  return absl::OkStatus();
}

}  // namespace

// One session of a MemoryDatabase. Inside a transaction it works on a copy of the database's data
// that COMMIT writes back whole: enough for one writing session at a time, which is what the
// advisory lock guarantees the engine (other sessions only read meanwhile).
class MemoryStore final : public Store {
 public:
  MemoryStore(MemoryDatabase& db, int pid) : db_(db), pid_(pid) {}
  ~MemoryStore() override { db_.Close(pid_); }
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Store

  absl::Status Execute(absl::string_view sql) override {
    std::function<void()> during;
    {
      absl::MutexLock lock(&db_.mutex_);
      for (const auto& [containing, action] : db_.run_on_execute_) {
        if (absl::StrContains(sql, containing)) during = action;
      }
    }
    // The statement "runs" while `during` does, outside the database's mutex, so that it can use
    // other sessions or cancel this one.
    cancel_->executing = true;
    if (during) during();
    cancel_->executing = false;
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    if (cancel_->requested.exchange(false)) {
      if (transaction_.has_value()) aborted_ = true;
      return MemoryDatabase::ServerError("57014", "canceling statement due to user request");
    }
    for (auto it = db_.failures_.begin(); it != db_.failures_.end(); ++it) {
      if (!absl::StrContains(sql, it->containing)) continue;
      absl::Status status = it->status;
      if (--it->times <= 0) db_.failures_.erase(it);
      if (transaction_.has_value()) aborted_ = true;
      return status;
    }
    MemoryDatabase::Data& data = Current();
    data.effects.emplace_back(sql);
    for (const auto& [containing, index] : db_.invalidate_on_execute_) {
      if (absl::StrContains(sql, containing)) data.invalid_indexes.insert(index);
    }
    for (const auto& [containing, key] : db_.expire_lease_on_execute_) {
      auto lease = db_.leases_.find(key);
      if (absl::StrContains(sql, containing) && lease != db_.leases_.end()) {
        lease->second.expires_at = absl::Now();
      }
    }
    return absl::OkStatus();
  }

  absl::Status Begin() override {
    absl::MutexLock lock(&db_.mutex_);
    if (transaction_.has_value()) {
      return absl::FailedPreconditionError("there is already a transaction in progress");
    }
    transaction_ = db_.data_;
    aborted_ = false;
    return absl::OkStatus();
  }

  // Statements take no table locks here, so there is no lock_timeout to keep.
  absl::Status BeginWithLockTimeout(absl::Duration /*timeout*/) override { return Begin(); }

  absl::Status Commit() override {
    absl::MutexLock lock(&db_.mutex_);
    if (!transaction_.has_value()) return absl::OkStatus();  // PostgreSQL only warns
    const bool aborted = aborted_;
    if (!aborted) db_.data_ = *std::move(transaction_);
    std::vector<std::string> notifications = std::move(pending_notifications_);
    EndTransaction();
    if (aborted) {
      return InAbortedTransaction();
    }
    for (const std::string& channel : notifications) Deliver(channel);
    return absl::OkStatus();
  }

  absl::Status Rollback() override {
    absl::MutexLock lock(&db_.mutex_);
    EndTransaction();
    return absl::OkStatus();
  }

  absl::Status SetLockTimeout(absl::Duration /*timeout*/) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    return absl::OkStatus();
  }

  absl::Status EnsureTables(const TableNames& tables) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    MemoryDatabase::Data& data = Current();
    data.versions[VersionTableKey(tables)];
    data.history[tables.schema];
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ReadVersions(const TableNames& tables) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    MemoryDatabase::Data& data = Current();
    auto it = data.versions.find(VersionTableKey(tables));
    return it == data.versions.end() ? std::vector<std::string>() : it->second;
  }

  absl::Status UpdateVersions(const TableNames& tables,
                              const std::vector<std::string>& delete_versions,
                              const std::vector<std::string>& insert_versions) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    return Failing(UpdateVersionsIn(Current(), tables, delete_versions, insert_versions));
  }

  absl::Status PurgeVersions(const TableNames& tables) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    auto it = Current().versions.find(VersionTableKey(tables));
    if (it == Current().versions.end()) return Failing(MissingTable(VersionTableKey(tables)));
    it->second.clear();
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> AppendHistory(const TableNames& tables, const HistoryRow& row) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    absl::StatusOr<int64_t> id = AppendHistoryIn(Current(), tables, row);
    if (!id.ok()) return Failing(id.status());
    return id;
  }

  absl::StatusOr<int64_t> RecordStep(const TableNames& tables,
                                     const std::vector<std::string>& delete_versions,
                                     const std::vector<std::string>& insert_versions,
                                     const HistoryRow& row) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    // One statement: both changes land, or neither.
    MemoryDatabase::Data changed = Current();
    absl::Status updated = UpdateVersionsIn(changed, tables, delete_versions, insert_versions);
    if (!updated.ok()) return Failing(updated);
    absl::StatusOr<int64_t> id = AppendHistoryIn(changed, tables, row);
    if (!id.ok()) return Failing(id.status());
    Current() = std::move(changed);
    return id;
  }

  absl::Status SetHistoryOutcome(const TableNames& tables, int64_t id,
                                 absl::string_view outcome) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    auto it = Current().history.find(tables.schema);
    if (it == Current().history.end()) return Failing(MissingTable(HistoryTable(tables)));
    for (HistoryRow& row : it->second) {
      if (row.id == id) row.outcome = std::string(outcome);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<HistoryRow>> ReadHistory(const TableNames& tables) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    auto it = Current().history.find(tables.schema);
    return it == Current().history.end() ? std::vector<HistoryRow>() : it->second;
  }

  absl::StatusOr<bool> TryLock(int64_t key) override {
    absl::MutexLock lock(&db_.mutex_);
    ++db_.lock_attempts_;
    MemoryDatabase::LockHold& hold = db_.locks_[key];
    const int owner = LockOwner();
    if (hold.count > 0 && hold.pid != owner) return false;
    hold.pid = owner;
    ++hold.count;
    return true;
  }

  absl::Status Unlock(int64_t key) override {
    absl::MutexLock lock(&db_.mutex_);
    auto it = db_.locks_.find(key);
    if (it == db_.locks_.end() || it->second.pid != LockOwner()) {
      return absl::FailedPreconditionError(
          absl::StrCat("advisory lock ", key, " was not held by this session"));
    }
    if (--it->second.count == 0) db_.locks_.erase(it);
    return absl::OkStatus();
  }

  absl::StatusOr<bool> TryLockAs(int64_t key, uint32_t runner) override {
    SLUICE_ASSIGN_OR_RETURN(bool locked, TryLock(key));
    if (!locked) return false;
    absl::MutexLock lock(&db_.mutex_);
    db_.runner_marks_[LockOwner()].insert(runner);
    return true;
  }

  absl::Status UnlockAs(int64_t key, uint32_t runner) override {
    SLUICE_RETURN_IF_ERROR(Unlock(key));
    absl::MutexLock lock(&db_.mutex_);
    std::multiset<uint32_t>& marks = db_.runner_marks_[LockOwner()];
    auto mark = marks.find(runner);
    if (mark != marks.end()) marks.erase(mark);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<uint32_t>> RunnersHoldingLock(int64_t key) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    auto it = db_.locks_.find(key);
    if (it == db_.locks_.end()) return std::vector<uint32_t>();
    const std::multiset<uint32_t>& marks = db_.runner_marks_[it->second.pid];
    // Distinct, as pg_locks lists a lock once however often its session took it.
    std::set<uint32_t> distinct(marks.begin(), marks.end());
    return std::vector<uint32_t>(distinct.begin(), distinct.end());
  }

  absl::StatusOr<bool> MarkHeldElsewhere(uint32_t runner) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    const int owner = LockOwner();
    for (const auto& [pid, marks] : db_.runner_marks_) {
      if (pid != owner && marks.count(runner) > 0) return true;
    }
    return false;
  }

  absl::Status Listen(absl::string_view channel) override {
    absl::MutexLock lock(&db_.mutex_);
    db_.sessions_[pid_].channels.insert(std::string(channel));
    return absl::OkStatus();
  }

  absl::Status Notify(absl::string_view channel) override {
    absl::MutexLock lock(&db_.mutex_);
    // As in PostgreSQL, a notification sent inside a transaction is delivered when it commits.
    if (transaction_.has_value()) {
      pending_notifications_.emplace_back(channel);
    } else {
      Deliver(std::string(channel));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> WaitForNotification(absl::Duration timeout) override {
    absl::MutexLock lock(&db_.mutex_);
    const absl::Time deadline = absl::Now() + timeout;
    std::deque<std::string>& queue = db_.sessions_[pid_].notifications;
    while (queue.empty()) {
      if (db_.notified_.WaitWithDeadline(&db_.mutex_, deadline)) break;  // timed out
    }
    const bool any = !queue.empty();
    queue.clear();
    return any;
  }

  absl::StatusOr<std::optional<LockHolder>> LockHolderOf(int64_t key) override {
    absl::MutexLock lock(&db_.mutex_);
    auto it = db_.locks_.find(key);
    if (it == db_.locks_.end() || it->second.pid == LockOwner()) {
      return std::optional<LockHolder>();
    }
    LockHolder holder;
    holder.pid = it->second.pid;
    auto session = db_.sessions_.find(holder.pid);  // none for the pooler's server session
    if (session != db_.sessions_.end()) holder.application_name = session->second.application_name;
    return std::optional<LockHolder>(std::move(holder));
  }

  // Sessions never block one another here: statements do not take table locks.
  absl::StatusOr<std::vector<BlockingSession>> BlockingSessionsOf(int /*pid*/) override {
    return std::vector<BlockingSession>();
  }

  // Cancels a statement only while one runs (see RunOnExecuteForTest), as the server does.
  std::function<void()> StatementCanceller() override {
    return [cancel = cancel_] {
      if (cancel->executing) cancel->requested = true;
    };
  }

  int BackendPid() override { return pid_; }

  absl::StatusOr<SessionIdentity> IdentifySession(int64_t key,
                                                  absl::string_view set_marker) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    SessionIdentity identity;
    if (db_.transaction_pooling_) {
      if (!set_marker.empty()) db_.pooled_marker_ = std::string(set_marker);
      identity.server_pid = kPooledServerPid;
      identity.marker = db_.pooled_marker_;
      auto it = db_.locks_.find(key);
      identity.holds_lock = db_.pooled_locks_ == MemoryDatabase::PooledLocks::kOnTheSharedSession &&
                            it != db_.locks_.end() && it->second.pid == kPooledServerPid;
      return identity;
    }
    MemoryDatabase::Session& session = db_.sessions_[pid_];
    if (!set_marker.empty()) session.marker = std::string(set_marker);
    identity.server_pid = pid_;
    identity.marker = session.marker;
    identity.direct = db_.direct_connections_;
    auto it = db_.locks_.find(key);
    identity.holds_lock = it != db_.locks_.end() && it->second.pid == pid_;
    return identity;
  }

  absl::Status EnsureLeaseTable(const TableNames& tables) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    db_.lease_tables_.insert(tables.schema);
    return absl::OkStatus();
  }

  absl::StatusOr<bool> TryAcquireLease(const TableNames& tables, int64_t key,
                                       absl::string_view holder, absl::Duration ttl) override {
    SLUICE_RETURN_IF_ERROR(CheckTtl(ttl));
    absl::MutexLock lock(&db_.mutex_);
    SLUICE_RETURN_IF_ERROR(StartLeaseTransaction("TryAcquireLease", tables));
    if (!WaitForLeaseRow(key)) return false;  // lock timeout: held by a committing holder
    const absl::Time now = absl::Now();
    auto it = db_.leases_.find(key);
    if (it != db_.leases_.end() && it->second.expires_at > now) return false;
    MemoryDatabase::LeaseRow& row = db_.leases_[key];
    row.holder = std::string(holder);
    row.acquired_at = now;
    row.heartbeat_at = now;
    row.expires_at = now + ttl;
    return true;
  }

  absl::StatusOr<bool> RenewLease(const TableNames& tables, int64_t key, absl::string_view holder,
                                  absl::Duration ttl) override {
    SLUICE_RETURN_IF_ERROR(CheckTtl(ttl));
    absl::MutexLock lock(&db_.mutex_);
    SLUICE_RETURN_IF_ERROR(StartLeaseTransaction("RenewLease", tables));
    // As PostgreSQL's UPDATE: a row that does not match is passed over without waiting for its
    // lock; one that does is waited for, and checked again.
    auto renewable = [&] {
      auto it = db_.leases_.find(key);
      return it != db_.leases_.end() && it->second.holder == holder &&
             it->second.expires_at > absl::Now();
    };
    if (!renewable()) return false;
    if (!WaitForLeaseRow(key)) return MemoryDatabase::LockTimeoutError();
    if (!renewable()) return false;
    auto it = db_.leases_.find(key);
    const absl::Time now = absl::Now();
    it->second.heartbeat_at = now;
    it->second.expires_at = now + ttl;
    return true;
  }

  absl::Status ReleaseLease(const TableNames& tables, int64_t key,
                            absl::string_view holder) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    SLUICE_RETURN_IF_ERROR(Failing(InjectedLeaseFailure("ReleaseLease")));
    if (db_.lease_tables_.count(tables.schema) == 0) return absl::OkStatus();
    auto held = [&] {
      auto it = db_.leases_.find(key);
      return it != db_.leases_.end() && it->second.holder == holder;
    };
    if (!held()) return absl::OkStatus();
    if (!WaitForLeaseRow(key)) return Failing(MemoryDatabase::LockTimeoutError());
    if (held()) db_.leases_.erase(key);
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<Lease>> ReadLease(const TableNames& tables, int64_t key) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    SLUICE_RETURN_IF_ERROR(Failing(InjectedLeaseFailure("ReadLease")));
    if (db_.lease_tables_.count(tables.schema) == 0) return std::optional<Lease>();
    return db_.LeaseLocked(key);
  }

  absl::StatusOr<bool> HoldsLeaseInTransaction(const TableNames& tables, int64_t key,
                                               absl::string_view holder) override {
    absl::MutexLock lock(&db_.mutex_);
    if (!transaction_.has_value()) {
      return absl::FailedPreconditionError(
          "HoldsLeaseInTransaction needs an open transaction: outside one, its row lock would "
          "end with the statement");
    }
    if (aborted_) return InAbortedTransaction();
    SLUICE_RETURN_IF_ERROR(Failing(InjectedLeaseFailure("HoldsLeaseInTransaction")));
    if (db_.lease_tables_.count(tables.schema) == 0) return false;
    auto it = db_.leases_.find(key);
    if (it == db_.leases_.end()) return false;
    // FOR SHARE: shared with other sessions' FOR SHARE; here one holder at a time is enough (the
    // lease has one holder), so a second session's lock waits like a takeover would.
    if (!WaitForLeaseRow(key)) return Failing(MemoryDatabase::LockTimeoutError());
    it = db_.leases_.find(key);
    if (it == db_.leases_.end()) return false;
    it->second.locked_by = pid_;
    return it->second.holder == holder && it->second.expires_at > absl::Now();
  }

  absl::StatusOr<std::optional<Lease>> DeleteExpiredLease(const TableNames& tables,
                                                          int64_t key) override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    SLUICE_RETURN_IF_ERROR(Failing(InjectedLeaseFailure("DeleteExpiredLease")));
    if (db_.lease_tables_.count(tables.schema) == 0) return std::optional<Lease>();
    auto expired = [&] {
      auto it = db_.leases_.find(key);
      return it != db_.leases_.end() && it->second.expires_at <= absl::Now();
    };
    if (!expired()) return std::optional<Lease>();
    if (!WaitForLeaseRow(key)) return Failing(MemoryDatabase::LockTimeoutError());
    std::optional<Lease> lease = db_.LeaseLocked(key);
    if (!lease.has_value() || lease->remaining > absl::ZeroDuration()) {
      return std::optional<Lease>();
    }
    db_.leases_.erase(key);
    return lease;
  }

  absl::StatusOr<std::vector<std::string>> InvalidIndexes() override {
    absl::MutexLock lock(&db_.mutex_);
    if (aborted_) return InAbortedTransaction();
    const std::set<std::string>& names = Current().invalid_indexes;
    return std::vector<std::string>(names.begin(), names.end());
  }

 private:
  // Returns the session that advisory locks taken now belong to: this one, or the pooler's shared
  // server session (SimulateTransactionPoolingForTest with kOnTheSharedSession).
  int LockOwner() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex_) {
    return db_.transaction_pooling_ &&
                   db_.pooled_locks_ == MemoryDatabase::PooledLocks::kOnTheSharedSession
               ? kPooledServerPid
               : pid_;
  }

  MemoryDatabase::Data& Current() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex_) {
    return transaction_.has_value() ? *transaction_ : db_.data_;
  }

  // Returns `status`, marking the transaction aborted when it failed inside one (as PostgreSQL
  // does: later statements fail until ROLLBACK).
  absl::Status Failing(absl::Status status) {
    if (!status.ok() && transaction_.has_value()) aborted_ = true;
    return status;
  }

  static absl::Status InAbortedTransaction() {
    return MemoryDatabase::ServerError(
        "25P02", "current transaction is aborted, commands ignored until end of transaction block");
  }

  // Checks what PgStore checks before the transaction of TryAcquireLease and RenewLease: no
  // transaction open, an injected failure, the lease table.
  absl::Status StartLeaseTransaction(absl::string_view method, const TableNames& tables)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex_) {
    if (transaction_.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat(method, " runs in a transaction of its own, not inside another one"));
    }
    SLUICE_RETURN_IF_ERROR(InjectedLeaseFailure(method));
    if (db_.lease_tables_.count(tables.schema) == 0) {
      return MissingTable(absl::StrCat(tables.schema, ".sluice_lock"));
    }
    return absl::OkStatus();
  }

  // Returns the failure injected for the next call of `method`, if any (consuming it).
  absl::Status InjectedLeaseFailure(absl::string_view method)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex_) {
    for (auto it = db_.lease_failures_.begin(); it != db_.lease_failures_.end(); ++it) {
      if (!it->containing.empty() && it->containing != method) continue;
      absl::Status status = it->status;
      if (--it->times <= 0) db_.lease_failures_.erase(it);
      return status;
    }
    return absl::OkStatus();
  }

  // Waits up to kLeaseLockWait until no other session holds the lease row `key` FOR SHARE;
  // returns whether none does.
  bool WaitForLeaseRow(int64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex_) {
    const absl::Time deadline = absl::Now() + kLeaseLockWait;
    for (;;) {
      auto it = db_.leases_.find(key);
      if (it == db_.leases_.end() || it->second.locked_by == 0 || it->second.locked_by == pid_) {
        return true;
      }
      if (db_.lease_unlocked_.WaitWithDeadline(&db_.mutex_, deadline)) {
        it = db_.leases_.find(key);
        return it == db_.leases_.end() || it->second.locked_by == 0 || it->second.locked_by == pid_;
      }
    }
  }

  void EndTransaction() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex_) {
    db_.UnlockLeaseRows(pid_);
    transaction_.reset();
    pending_notifications_.clear();
    aborted_ = false;
  }

  void Deliver(const std::string& channel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex_) {
    for (auto& [pid, session] : db_.sessions_) {
      if (session.channels.count(channel) > 0) session.notifications.push_back(channel);
    }
    db_.notified_.SignalAll();
  }

  static std::string HistoryTable(const TableNames& tables) {
    return absl::StrCat(tables.schema, ".sluice_history");
  }

  static absl::Status MissingTable(absl::string_view table) {
    return MemoryDatabase::ServerError("42P01",
                                       absl::StrCat("relation \"", table, "\" does not exist"));
  }

  static absl::Status UpdateVersionsIn(MemoryDatabase::Data& data, const TableNames& tables,
                                       const std::vector<std::string>& delete_versions,
                                       const std::vector<std::string>& insert_versions) {
    auto it = data.versions.find(VersionTableKey(tables));
    if (it == data.versions.end()) return MissingTable(VersionTableKey(tables));
    std::vector<std::string> rows = it->second;
    for (const std::string& row : delete_versions) {
      rows.erase(std::remove(rows.begin(), rows.end(), row), rows.end());
    }
    for (const std::string& row : insert_versions) {
      if (std::find(rows.begin(), rows.end(), row) != rows.end()) {
        return MemoryDatabase::ServerError(
            "23505", "duplicate key value violates unique constraint \"alembic_version_pkc\"",
            absl::StrCat("Key (version_num)=(", row, ") already exists."));
      }
      rows.push_back(row);
    }
    std::sort(rows.begin(), rows.end());
    it->second = std::move(rows);
    return absl::OkStatus();
  }

  static absl::StatusOr<int64_t> AppendHistoryIn(MemoryDatabase::Data& data,
                                                 const TableNames& tables, const HistoryRow& row) {
    auto it = data.history.find(tables.schema);
    if (it == data.history.end()) return MissingTable(HistoryTable(tables));
    HistoryRow stored = row;
    stored.id = data.next_history_id++;
    it->second.push_back(std::move(stored));
    return it->second.back().id;
  }

  MemoryDatabase& db_;
  const int pid_;
  std::optional<MemoryDatabase::Data> transaction_;
  bool aborted_ = false;
  std::vector<std::string> pending_notifications_;
  struct CancelState {
    std::atomic<bool> executing{false};
    std::atomic<bool> requested{false};
  };
  const std::shared_ptr<CancelState> cancel_ = std::make_shared<CancelState>();
};

MemoryDatabase::MemoryDatabase() = default;
MemoryDatabase::~MemoryDatabase() = default;

std::unique_ptr<Store> MemoryDatabase::Connect(absl::string_view application_name) {
  return std::make_unique<MemoryStore>(*this, Open(application_name));
}

int MemoryDatabase::Open(absl::string_view application_name) {
  absl::MutexLock lock(&mutex_);
  const int pid = next_pid_++;
  sessions_[pid].application_name = std::string(application_name);
  return pid;
}

void MemoryDatabase::Close(int pid) {
  absl::MutexLock lock(&mutex_);
  // As in PostgreSQL, a session's advisory locks go with it.
  for (auto it = locks_.begin(); it != locks_.end();) {
    it = it->second.pid == pid ? locks_.erase(it) : std::next(it);
  }
  runner_marks_.erase(pid);
  UnlockLeaseRows(pid);
  sessions_.erase(pid);
}

void MemoryDatabase::UnlockLeaseRows(int pid) {
  bool any = false;
  for (auto& [key, row] : leases_) {
    if (row.locked_by == pid) {
      row.locked_by = 0;
      any = true;
    }
  }
  if (any) lease_unlocked_.SignalAll();
}

std::optional<Lease> MemoryDatabase::LeaseLocked(int64_t key) {
  auto it = leases_.find(key);
  if (it == leases_.end()) return std::nullopt;
  Lease lease;
  lease.holder = it->second.holder;
  lease.acquired_at = it->second.acquired_at;
  lease.heartbeat_at = it->second.heartbeat_at;
  lease.expires_at = it->second.expires_at;
  lease.remaining = it->second.expires_at - absl::Now();
  return lease;
}

void MemoryDatabase::FailNextExecuteForTest(absl::Status status, absl::string_view containing,
                                            int times) {
  absl::MutexLock lock(&mutex_);
  failures_.push_back({std::move(status), std::string(containing), times});
}

absl::Status MemoryDatabase::LockTimeoutError() {
  return ServerError("55P03", "canceling statement due to lock timeout");
}

absl::Status MemoryDatabase::ServerError(absl::string_view sqlstate, absl::string_view message,
                                         absl::string_view detail) {
  failure::MigrationFailure error;
  error.sqlstate = std::string(sqlstate);
  error.message = std::string(message);
  error.detail = std::string(detail);
  return failure::WithMigrationFailure(
      absl::FailedPreconditionError(absl::StrCat(message, " (SQLSTATE ", sqlstate, ")")), error);
}

void MemoryDatabase::InvalidateIndexOnExecuteForTest(absl::string_view containing,
                                                     absl::string_view index) {
  absl::MutexLock lock(&mutex_);
  invalidate_on_execute_[std::string(containing)] = std::string(index);
}

void MemoryDatabase::ExpireLeaseOnExecuteForTest(absl::string_view containing, int64_t key) {
  absl::MutexLock lock(&mutex_);
  expire_lease_on_execute_[std::string(containing)] = key;
}

void MemoryDatabase::SetDirectConnectionsForTest(bool direct) {
  absl::MutexLock lock(&mutex_);
  direct_connections_ = direct;
}

void MemoryDatabase::RunOnExecuteForTest(absl::string_view containing,
                                         std::function<void()> action) {
  absl::MutexLock lock(&mutex_);
  run_on_execute_[std::string(containing)] = std::move(action);
}

void MemoryDatabase::DropAdvisoryLockForTest(int64_t key) {
  absl::MutexLock lock(&mutex_);
  auto it = locks_.find(key);
  if (it == locks_.end()) return;
  runner_marks_.erase(it->second.pid);
  locks_.erase(it);
}

void MemoryDatabase::SetVersionsForTest(const TableNames& tables,
                                        std::vector<std::string> versions) {
  absl::MutexLock lock(&mutex_);
  std::sort(versions.begin(), versions.end());
  data_.versions[VersionTableKey(tables)] = std::move(versions);
  data_.history[tables.schema];
}

int64_t MemoryDatabase::AppendHistoryForTest(const TableNames& tables, HistoryRow row) {
  absl::MutexLock lock(&mutex_);
  data_.versions[VersionTableKey(tables)];
  row.id = data_.next_history_id++;
  data_.history[tables.schema].push_back(row);
  return row.id;
}

std::vector<std::string> MemoryDatabase::VersionsForTest(const TableNames& tables) {
  absl::MutexLock lock(&mutex_);
  return data_.versions[VersionTableKey(tables)];
}

std::vector<HistoryRow> MemoryDatabase::HistoryForTest(const TableNames& tables) {
  absl::MutexLock lock(&mutex_);
  return data_.history[tables.schema];
}

std::vector<std::string> MemoryDatabase::EffectsForTest() {
  absl::MutexLock lock(&mutex_);
  return data_.effects;
}

int MemoryDatabase::LockAttemptsForTest() {
  absl::MutexLock lock(&mutex_);
  return lock_attempts_;
}

void MemoryDatabase::ExpireLeaseForTest(int64_t key) {
  absl::MutexLock lock(&mutex_);
  auto it = leases_.find(key);
  if (it != leases_.end()) it->second.expires_at = absl::Now();
}

void MemoryDatabase::SetLeaseHolderForTest(int64_t key, absl::string_view holder,
                                           absl::Duration ttl) {
  absl::MutexLock lock(&mutex_);
  if (lease_tables_.empty()) lease_tables_.insert(TableNames().schema);
  const absl::Time now = absl::Now();
  LeaseRow& row = leases_[key];
  row.holder = std::string(holder);
  row.acquired_at = now;
  row.heartbeat_at = now;
  row.expires_at = now + ttl;
}

std::optional<Lease> MemoryDatabase::LeaseForTest(int64_t key) {
  absl::MutexLock lock(&mutex_);
  return LeaseLocked(key);
}

void MemoryDatabase::FailNextLeaseCallForTest(absl::Status status, absl::string_view method,
                                              int times) {
  absl::MutexLock lock(&mutex_);
  lease_failures_.push_back({std::move(status), std::string(method), times});
}

void MemoryDatabase::SimulateTransactionPoolingForTest(bool on, PooledLocks locks) {
  absl::MutexLock lock(&mutex_);
  transaction_pooling_ = on;
  pooled_locks_ = locks;
}

}  // namespace sluice::store
