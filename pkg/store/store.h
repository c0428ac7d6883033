// The database behind sluice, as the engine sees it: one connection per `Store`, statements, the
// version table, the history table and the advisory lock. PgStore (pg_store.h) is the PostgreSQL
// implementation and the only code that sees libpq. A Store is used by one thread at a time.
#ifndef SLUICE_PKG_STORE_STORE_H_
#define SLUICE_PKG_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkg/store/inspect.h"

namespace sluice::store {

// Where sluice keeps its state: `<schema>.<version_table>` (Alembic's) and
// `<schema>.sluice_history`.
struct TableNames {
  std::string schema = "public";
  std::string version_table = "alembic_version";
};

// One row of `sluice_history`.
struct HistoryRow {
  int64_t id = 0;
  std::string revision;
  std::string direction;  // "upgrade" | "downgrade" | "stamp"
  std::string checksum;   // "sha256:<hex>"; empty for stamps of unknown revisions
  std::string description;
  absl::Time started_at;
  absl::Time finished_at;
  int64_t duration_ms = 0;
  std::string applied_by;
  std::string outcome;  // "applied" | "failed" | "resolved"
  std::string error;    // for failed steps: what failed
  // The revision's manifest as applied, so a database ahead of its manifests can still be reverted.
  std::vector<std::string> down_revisions;
  std::vector<std::string> depends_on;
  std::string upgrade_sql;
  std::optional<std::string> downgrade_sql;
  bool transactional = true;
};

// Who holds the advisory lock, from pg_stat_activity.
// Who holds the migration lock: the advisory lock's session (from pg_stat_activity), or the
// lease's holder (lock mode lease: `lease` set, no pid or address).
struct LockHolder {
  std::string application_name;  // the lease's holder name for a lease
  std::string client_address;
  std::string since;  // backend start, as PostgreSQL prints it; when the lease was taken
  int pid = 0;
  bool lease = false;
  std::string last_heartbeat;  // a lease's last renewal
};

// Returns `holder` for logs and status messages: "NAME (pid N, ADDRESS, connected since T)", or
// for a lease "NAME (lease taken at T, last heartbeat T)".
std::string DescribeLockHolder(const LockHolder& holder);

// The lease of lock mode `lease`: one row per lock key in `<schema>.sluice_lock`, for databases
// reached through a pooler that does not keep a server session per client (where a session-level
// advisory lock is lost between transactions). Times are the server's.
struct Lease {
  std::string holder;  // the holder's lease name: pod or host name plus a random suffix
  absl::Time acquired_at;
  absl::Time heartbeat_at;
  absl::Time expires_at;
  absl::Duration remaining;  // until expires_at by the server's clock; <= 0 when expired
};

// The server session a connection reaches at the moment of asking: how sluice tells whether its
// lock connection is one server session or is handed a different one per transaction by a
// pooler.
struct SessionIdentity {
  int server_pid = 0;       // pg_backend_pid()
  std::string marker;       // the session's `sluice.session_marker` setting; empty when unset
  bool holds_lock = false;  // whether this session holds the advisory lock asked about
  // Whether the server sees this connection's own TCP address and port as its client's: nothing
  // (no pooler, no proxy) sits in between, so the connection is one server session. False also
  // when it cannot tell (a Unix socket, an address translated on the way).
  bool direct = false;
};

// A session that blocks a statement (from pg_blocking_pids).
struct BlockingSession {
  int pid = 0;
  std::string application_name;
  std::string state;
  std::string transaction_age;  // how long its transaction has been open, as PostgreSQL prints it
  std::string query;
};

class Store {
 public:
  virtual ~Store() = default;

  // Runs `sql` (one or more statements) as one simple query. Errors the server reported carry a
  // failure::MigrationFailure payload with what it said (SQLSTATE, message, detail, hint, line).
  virtual absl::Status Execute(absl::string_view sql) = 0;

  // Transactions on this connection. Settings sluice needs are made for the transaction (SET
  // LOCAL) as it begins, in the same round trip, never for the session: a pooler in transaction
  // mode would lose them, or leave them on a server session another client gets next.
  // `client_connection_check_interval` (1s) is set in every transaction, so that a backend whose
  // client died mid-statement (kill -9) ends within a second instead of running on while holding
  // its locks.
  virtual absl::Status Begin() = 0;
  // Begins a transaction with `lock_timeout` set for it too.
  virtual absl::Status BeginWithLockTimeout(absl::Duration timeout) = 0;
  virtual absl::Status Commit() = 0;
  virtual absl::Status Rollback() = 0;
  // Sets `lock_timeout` for the current transaction (SET LOCAL) or, outside one, for the session
  // together with client_connection_check_interval (for statements that cannot run in a
  // transaction; only on a connection known to be one server session).
  virtual absl::Status SetLockTimeout(absl::Duration timeout) = 0;

  // Creates the schema (if missing), the version table and the history table, idempotently.
  virtual absl::Status EnsureTables(const TableNames& tables) = 0;
  // Returns the version table's rows, sorted; empty when the table does not exist.
  virtual absl::StatusOr<std::vector<std::string>> ReadVersions(const TableNames& tables) = 0;
  // Deletes and inserts version rows, atomically.
  virtual absl::Status UpdateVersions(const TableNames& tables,
                                      const std::vector<std::string>& delete_versions,
                                      const std::vector<std::string>& insert_versions) = 0;
  // Deletes every version row (`stamp --purge`).
  virtual absl::Status PurgeVersions(const TableNames& tables) = 0;

  // Appends one history row; returns its id.
  virtual absl::StatusOr<int64_t> AppendHistory(const TableNames& tables,
                                                const HistoryRow& row) = 0;
  // Does what UpdateVersions and AppendHistory do, in one statement (one round trip): how a step
  // is recorded. Returns the history row's id.
  virtual absl::StatusOr<int64_t> RecordStep(const TableNames& tables,
                                             const std::vector<std::string>& delete_versions,
                                             const std::vector<std::string>& insert_versions,
                                             const HistoryRow& row) = 0;
  // Sets the outcome of a history row (e.g. a failed step marked "resolved").
  virtual absl::Status SetHistoryOutcome(const TableNames& tables, int64_t id,
                                         absl::string_view outcome) = 0;
  // Returns all history rows, oldest first; empty when the table does not exist.
  virtual absl::StatusOr<std::vector<HistoryRow>> ReadHistory(const TableNames& tables) = 0;

  // Tries once to take the session-level advisory lock `key` (pg_try_advisory_lock).
  virtual absl::StatusOr<bool> TryLock(int64_t key) = 0;
  // Releases the advisory lock `key`.
  virtual absl::Status Unlock(int64_t key) = 0;
  // Tries once to take advisory lock `key` together with the runner's mark, the advisory lock
  // (kRunnerMarkSpace, `runner`), in one statement, so that both belong to the same server
  // session: the session that holds `key` also holds the marks of the runners that took it
  // there. Returns whether `key` was taken.
  virtual absl::StatusOr<bool> TryLockAs(int64_t key, uint32_t runner) = 0;
  // Releases `key` and the runner's mark, in one statement.
  virtual absl::Status UnlockAs(int64_t key, uint32_t runner) = 0;
  // Returns the runner marks held by the server session that holds advisory lock `key`, sorted;
  // empty when nobody holds it. One mark: one runner holds it. Several: a pooler handed that
  // server session to several runners, each of which took the lock there (re-entrantly).
  virtual absl::StatusOr<std::vector<uint32_t>> RunnersHoldingLock(int64_t key) = 0;
  // Inside a transaction: whether another server session holds the runner's mark
  // (kRunnerMarkSpace, `runner`). One lock-manager probe (pg_try_advisory_xact_lock_shared),
  // where RunnersHoldingLock copies the server's whole lock table. When nobody else holds the
  // mark, the probe leaves this transaction holding it shared until the transaction ends.
  virtual absl::StatusOr<bool> MarkHeldElsewhere(uint32_t runner) = 0;
  // Subscribes this connection to notifications on `channel` (LISTEN), so that runners waiting for
  // the lock wake as soon as the holder lets go instead of at their next poll.
  virtual absl::Status Listen(absl::string_view channel) = 0;
  // Sends a notification on `channel`; it is delivered when the current transaction commits (at
  // once outside a transaction).
  virtual absl::Status Notify(absl::string_view channel) = 0;
  // Waits up to `timeout` for a notification on a channel this connection listens to; returns
  // whether one came. Notifications that arrived earlier count, and are consumed.
  virtual absl::StatusOr<bool> WaitForNotification(absl::Duration timeout) = 0;
  // Returns who holds the advisory lock `key`, if anyone else does.
  virtual absl::StatusOr<std::optional<LockHolder>> LockHolderOf(int64_t key) = 0;
  // Returns the sessions blocking the backend `pid` (pg_blocking_pids).
  virtual absl::StatusOr<std::vector<BlockingSession>> BlockingSessionsOf(int pid) = 0;
  // Returns a function that asks the server to cancel the statement this connection is running
  // (its transaction then fails and rolls back); callable from any thread, also once the
  // connection is gone, when it does nothing.
  virtual std::function<void()> StatementCanceller() = 0;
  // Returns this connection's backend pid (the server's, also behind a pooler). The first call
  // may cost a round trip on this connection: make it before another thread runs a statement on
  // the connection.
  virtual int BackendPid() = 0;
  // Returns the server session this connection reaches now (see SessionIdentity) and whether it
  // holds advisory lock `key`. A non-empty `set_marker` first sets the session's marker to it
  // (a session-level setting: it stays with the server session, wherever a pooler hands that).
  virtual absl::StatusOr<SessionIdentity> IdentifySession(int64_t key,
                                                          absl::string_view set_marker) = 0;

  // The lease (lock mode `lease`). Every statement is one transaction of its own, or runs inside
  // the caller's: nothing depends on the server session staying the same.
  // Creates the schema (if missing) and `<schema>.sluice_lock`, idempotently, also when other
  // runners do so at the same time.
  virtual absl::Status EnsureLeaseTable(const TableNames& tables) = 0;
  // Takes the lease `key` for `holder` for `ttl` in one atomic statement that succeeds only when
  // it is free or expired. Returns false when someone else holds it. Waits at most about a
  // second for a row lock (a holder committing a revision holds one briefly).
  virtual absl::StatusOr<bool> TryAcquireLease(const TableNames& tables, int64_t key,
                                               absl::string_view holder, absl::Duration ttl) = 0;
  // Extends `holder`'s unexpired lease to now + `ttl`. Returns false when it is no longer held
  // by `holder` (expired, or taken over).
  virtual absl::StatusOr<bool> RenewLease(const TableNames& tables, int64_t key,
                                          absl::string_view holder, absl::Duration ttl) = 0;
  // Deletes `holder`'s lease row, if it is still `holder`'s.
  virtual absl::Status ReleaseLease(const TableNames& tables, int64_t key,
                                    absl::string_view holder) = 0;
  // Returns the lease row of `key`, if any (also when the table does not exist: none).
  virtual absl::StatusOr<std::optional<Lease>> ReadLease(const TableNames& tables, int64_t key) = 0;
  // Inside the caller's transaction: locks the lease row (FOR SHARE, so nobody can take it over
  // before this transaction ends) and returns whether `holder` holds it unexpired.
  virtual absl::StatusOr<bool> HoldsLeaseInTransaction(const TableNames& tables, int64_t key,
                                                       absl::string_view holder) = 0;
  // Deletes the lease row of `key` only when it has expired; returns the row deleted, if any.
  virtual absl::StatusOr<std::optional<Lease>> DeleteExpiredLease(const TableNames& tables,
                                                                  int64_t key) = 0;

  // Returns whether every index in the database is valid (pg_index.indisvalid), naming the invalid
  // ones otherwise: after `CREATE INDEX CONCURRENTLY` an invalid index fails the revision.
  virtual absl::StatusOr<std::vector<std::string>> InvalidIndexes() = 0;

  // Returns this connection's catalog inspector (for `sluice lint`), or nullptr when the store
  // cannot inspect its database (the in-memory one).
  virtual Inspector* inspector() { return nullptr; }
};

// How to reach the database.
struct ConnectOptions {
  std::string url;               // postgresql:// URL, SQLAlchemy-style URL, or key=value string;
                                 // empty: libpq's PG* variables
  std::string application_name;  // shown in pg_stat_activity (the holder's pod or host name)
  absl::Duration connect_timeout = absl::Seconds(30);  // total time to keep retrying
  std::string database;  // when set, the database to connect to instead of the URL's
};

// The first key of the two-key advisory locks that mark which runner took a lock (TryLockAs):
// "sluc" as a big-endian int32.
inline constexpr int32_t kRunnerMarkSpace = 0x736c7563;

// Returns `url` with any password replaced by `***`, for every kind of connection string accepted.
std::string RedactUrl(absl::string_view url);

// Returns the advisory-lock key derived from schema and version table (stable across releases):
// the first 8 bytes of SHA-256("sluice:" + schema + "." + version_table), read big-endian as a
// two's complement int64 (0x906d77adf13b6cf6 for public.alembic_version).
int64_t LockKeyFor(const TableNames& tables);

}  // namespace sluice::store

#endif  // SLUICE_PKG_STORE_STORE_H_
