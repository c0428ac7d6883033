// An in-memory database behind the whole store::Store interface, for unit tests of the code above
// the store (the engine's lock polling, drift, retries, failure records) without PostgreSQL.
// Like LevelDB's NewMemEnv it is a working implementation, not a mock: versions, history,
// transactions, session-level advisory locks, notifications, the lease and session identification
// behave as PgStore's do. It cannot
// run SQL: Execute records the statement text as having taken effect (committed with its
// transaction), and fails on demand (FailNextExecuteForTest), e.g. with a lock timeout.
//
// One MemoryDatabase holds the state; each Connect() is one session (one Store), as each PgStore
// is one connection. MemoryDatabase is thread-safe; each MemoryStore is used by one thread at a
// time, as any Store. The database must outlive its sessions.
//
// The lease (lock mode `lease`): one row per lock key, timed by absl::Now() as the server's clock.
// As in PgStore, TryAcquireLease and RenewLease are transactions of their own (they fail inside
// another), and HoldsLeaseInTransaction locks the row until the caller's transaction ends: while
// another session holds that lock, TryAcquireLease waits up to a second for it and then returns
// false; RenewLease, ReleaseLease and DeleteExpiredLease, when the row is one they would change
// (otherwise they return at once, as PostgreSQL's UPDATE/DELETE do), wait up to a second and then
// fail with LockTimeoutError() (PostgreSQL would wait for ever in the last two; a bound keeps a
// single-threaded test from hanging). Unlike PostgreSQL, two sessions' HoldsLeaseInTransaction do
// not share the row lock (the second waits like the others), and ReleaseLease and
// DeleteExpiredLease called inside a transaction take effect at once: a rollback does not undo
// them.
//
// Example:
//   store::MemoryDatabase db;
//   std::unique_ptr<store::Store> other = db.Connect("other-runner");
//   ASSERT_TRUE(*other->TryLock(key));  // the lock is now held by another session
//   db.FailNextExecuteForTest(store::MemoryDatabase::LockTimeoutError());
#ifndef SLUICE_PKG_STORE_MEMORY_STORE_H_
#define SLUICE_PKG_STORE_MEMORY_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pkg/store/store.h"

namespace sluice::store {

class MemoryStore;

class MemoryDatabase {
 public:
  MemoryDatabase();
  ~MemoryDatabase();
  MemoryDatabase(const MemoryDatabase&) = delete;
  MemoryDatabase& operator=(const MemoryDatabase&) = delete;

  // Opens a session whose application_name is `application_name`.
  std::unique_ptr<Store> Connect(absl::string_view application_name);

  // Makes the next `times` Execute calls (of any session) whose SQL contains `containing` (any SQL
  // when empty) fail with `status`, without taking effect.
  void FailNextExecuteForTest(absl::Status status, absl::string_view containing = "",
                              int times = 1);
  // Returns what PgStore returns for a statement that hit lock_timeout (SQLSTATE 55P03).
  static absl::Status LockTimeoutError();
  // Returns what PgStore returns for a statement that the server rejected with `sqlstate`.
  static absl::Status ServerError(absl::string_view sqlstate, absl::string_view message,
                                  absl::string_view detail = "");

  // Sets the indexes that InvalidIndexes() reports from the next Execute of SQL containing
  // `containing` on (as after a CREATE INDEX CONCURRENTLY that did not finish).
  void InvalidateIndexOnExecuteForTest(absl::string_view containing, absl::string_view index);
  // Expires lease `key` (as ExpireLeaseForTest) when SQL containing `containing` is executed: a
  // lease that runs out while a revision runs.
  void ExpireLeaseOnExecuteForTest(absl::string_view containing, int64_t key);
  // Runs `action` while a statement containing `containing` executes (any session), outside the
  // database's mutex: a statement that its session's StatementCanceller() cancels meanwhile fails
  // with SQLSTATE 57014, as on the server.
  void RunOnExecuteForTest(absl::string_view containing, std::function<void()> action);

  // Sets the version table's rows and creates the tables, as a database that was migrated before.
  void SetVersionsForTest(const TableNames& tables, std::vector<std::string> versions);
  // Appends a history row (creating the tables), as a runner that applied it before; returns its
  // id.
  int64_t AppendHistoryForTest(const TableNames& tables, HistoryRow row);

  // Drops advisory lock `key` and its holder's runner marks, as when the session holding it ended
  // (its connection died, or an administrator terminated it) while its client ran on.
  void DropAdvisoryLockForTest(int64_t key);
  // Returns the version table's committed rows, sorted.
  std::vector<std::string> VersionsForTest(const TableNames& tables);
  // Returns the committed history rows, oldest first.
  std::vector<HistoryRow> HistoryForTest(const TableNames& tables);
  // Returns the statements that took effect (committed, or run outside a transaction), in order.
  std::vector<std::string> EffectsForTest();
  // Returns how many times any session tried to take an advisory lock.
  int LockAttemptsForTest();

  // The lease. These act on the lease row of lock `key` directly, whatever its table; they do not
  // wait for the row lock of HoldsLeaseInTransaction (a test hook may do what no session could).
  //
  // Makes the lease `key` expire now (expires_at = now, remaining 0), as when its holder stopped
  // renewing it for longer than its TTL. No-op when there is no lease row.
  void ExpireLeaseForTest(int64_t key);
  // Makes `holder` the holder of lease `key` from now for `ttl` (creating the row, and the lease
  // table of the default TableNames if no lease table exists), as when another runner took it
  // over: the previous holder's RenewLease then returns false and its HoldsLeaseInTransaction
  // false.
  void SetLeaseHolderForTest(int64_t key, absl::string_view holder,
                             absl::Duration ttl = absl::Seconds(30));
  // Returns the lease row of `key` (remaining computed now), if any.
  std::optional<Lease> LeaseForTest(int64_t key);
  // Makes the next `times` calls of the lease method `method` ("TryAcquireLease", "RenewLease",
  // "ReleaseLease", "ReadLease", "HoldsLeaseInTransaction" or "DeleteExpiredLease"; any of them
  // when empty), of any session, fail with `status` without taking effect, e.g. a heartbeat that
  // loses its connection (absl::UnavailableError). Inside a transaction the failure aborts it.
  void FailNextLeaseCallForTest(absl::Status status, absl::string_view method = "", int times = 1);

  // Where advisory locks go behind the simulated transaction pooler (see below).
  enum class PooledLocks {
    // TryLock's lock stays on the server session of that statement, which is not the one the next
    // statement gets: IdentifySession's `holds_lock` is false. TryLock, Unlock and LockHolderOf
    // keep working per connection (the lock is held somewhere; only IdentifySession tells that it
    // is not held by the session asking).
    kLostBetweenStatements,
    // What PgBouncer really does when it reuses one server session for everybody (measured with
    // PgBouncer 1.18, pool_mode = transaction, one client at a time): the lock belongs to the
    // shared server session, so every connection's TryLock succeeds (re-entrantly), every
    // connection's IdentifySession reports `holds_lock` true, and a connection's end does not
    // release it. This is the failure of issue #9: two runners both "hold" the lock.
    kOnTheSharedSession,
  };
  // Makes IdentifySession report `direct` (the server sees the connection's own address: nothing
  // in between) for every connection while no pooler is simulated. Off by default: connections
  // then look like ones through a proxy that keeps sessions (a session pooler), which the lock
  // checks with its one-session probe.
  void SetDirectConnectionsForTest(bool direct);
  // Makes the sessions behave as through a transaction pooler (PgBouncer, pool_mode =
  // transaction) that reuses its most recently used server session (LIFO) while clients do not
  // overlap: every statement of every connection lands on one shared server session. Then
  // IdentifySession reports
  // - `server_pid`: that shared session's pid, the same for every connection (and never any
  //   connection's BackendPid(), which stays what the client was told at connect);
  // - `marker`: the shared session's: a marker set through one connection is what every
  //   connection reads next, and setting one overwrites the other's;
  // - `holds_lock`: as `locks` says.
  // Switching it off returns to direct connections: each connection its own session with its own
  // pid, marker and locks (locks taken on the shared session stay there).
  void SimulateTransactionPoolingForTest(bool on,
                                         PooledLocks locks = PooledLocks::kLostBetweenStatements);

 private:
  friend class MemoryStore;

  // What a transaction can change; a transaction works on a copy and commit writes it back.
  struct Data {
    std::map<std::string, std::vector<std::string>> versions;  // by "schema.table"; sorted
    std::map<std::string, std::vector<HistoryRow>> history;    // by schema
    std::vector<std::string> effects;
    std::set<std::string> invalid_indexes;
    int64_t next_history_id = 1;
  };
  struct InjectedFailure {
    absl::Status status;
    std::string containing;
    int times = 0;
  };
  struct Session {
    std::string application_name;
    std::string marker;  // sluice.session_marker
    std::deque<std::string> notifications;
    std::set<std::string> channels;
  };
  struct LeaseRow {
    std::string holder;
    absl::Time acquired_at;
    absl::Time heartbeat_at;
    absl::Time expires_at;
    int locked_by = 0;  // the session holding it FOR SHARE until its transaction ends; 0: none
  };
  struct LockHold {
    int pid = 0;
    int count = 0;  // advisory locks are reentrant within a session
  };

  int Open(absl::string_view application_name);
  void Close(int pid);
  // Ends the FOR SHARE locks of session `pid` on lease rows (its transaction ended).
  void UnlockLeaseRows(int pid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Returns the lease row of `key` as a Lease, remaining computed now.
  std::optional<Lease> LeaseLocked(int64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  absl::Mutex mutex_;
  absl::CondVar notified_;
  Data data_ ABSL_GUARDED_BY(mutex_);
  std::deque<InjectedFailure> failures_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::string> invalidate_on_execute_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, int64_t> expire_lease_on_execute_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::function<void()>> run_on_execute_ ABSL_GUARDED_BY(mutex_);
  std::map<int, Session> sessions_ ABSL_GUARDED_BY(mutex_);
  std::map<int64_t, LockHold> locks_ ABSL_GUARDED_BY(mutex_);
  // The runner marks (TryLockAs) each session holds, by pid.
  std::map<int, std::multiset<uint32_t>> runner_marks_ ABSL_GUARDED_BY(mutex_);
  std::set<std::string> lease_tables_ ABSL_GUARDED_BY(mutex_);          // by schema
  std::map<int64_t, LeaseRow> leases_ ABSL_GUARDED_BY(mutex_);          // by lock key
  std::deque<InjectedFailure> lease_failures_ ABSL_GUARDED_BY(mutex_);  // containing: method
  absl::CondVar lease_unlocked_;
  bool transaction_pooling_ ABSL_GUARDED_BY(mutex_) = false;
  bool direct_connections_ ABSL_GUARDED_BY(mutex_) = false;
  PooledLocks pooled_locks_ ABSL_GUARDED_BY(mutex_) = PooledLocks::kLostBetweenStatements;
  std::string pooled_marker_ ABSL_GUARDED_BY(mutex_);  // the shared server session's marker
  int next_pid_ ABSL_GUARDED_BY(mutex_) = 1000;
  int lock_attempts_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace sluice::store

#endif  // SLUICE_PKG_STORE_MEMORY_STORE_H_
