// An in-memory database behind the whole store::Store interface, for unit tests of the code above
// the store (the engine's lock polling, drift, retries, failure records) without PostgreSQL.
// Like LevelDB's NewMemEnv it is a working implementation, not a mock: versions, history,
// transactions, session-level advisory locks and notifications behave as PgStore's do. It cannot
// run SQL: Execute records the statement text as having taken effect (committed with its
// transaction), and fails on demand (FailNextExecuteForTest), e.g. with a lock timeout.
//
// One MemoryDatabase holds the state; each Connect() is one session (one Store), as each PgStore
// is one connection. MemoryDatabase is thread-safe; each MemoryStore is used by one thread at a
// time, as any Store. The database must outlive its sessions.
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
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
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

  // Sets the version table's rows and creates the tables, as a database that was migrated before.
  void SetVersionsForTest(const TableNames& tables, std::vector<std::string> versions);
  // Appends a history row (creating the tables), as a runner that applied it before; returns its
  // id.
  int64_t AppendHistoryForTest(const TableNames& tables, HistoryRow row);

  // Returns the version table's committed rows, sorted.
  std::vector<std::string> VersionsForTest(const TableNames& tables);
  // Returns the committed history rows, oldest first.
  std::vector<HistoryRow> HistoryForTest(const TableNames& tables);
  // Returns the statements that took effect (committed, or run outside a transaction), in order.
  std::vector<std::string> EffectsForTest();
  // Returns how many times any session tried to take an advisory lock.
  int LockAttemptsForTest();

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
    std::deque<std::string> notifications;
    std::set<std::string> channels;
  };
  struct LockHold {
    int pid = 0;
    int count = 0;  // advisory locks are reentrant within a session
  };

  int Open(absl::string_view application_name);
  void Close(int pid);

  absl::Mutex mutex_;
  absl::CondVar notified_;
  Data data_ ABSL_GUARDED_BY(mutex_);
  std::deque<InjectedFailure> failures_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::string> invalidate_on_execute_ ABSL_GUARDED_BY(mutex_);
  std::map<int, Session> sessions_ ABSL_GUARDED_BY(mutex_);
  std::map<int64_t, LockHold> locks_ ABSL_GUARDED_BY(mutex_);
  int next_pid_ ABSL_GUARDED_BY(mutex_) = 1000;
  int lock_attempts_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace sluice::store

#endif  // SLUICE_PKG_STORE_MEMORY_STORE_H_
