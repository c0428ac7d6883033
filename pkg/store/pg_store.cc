// PgStore: the Store on libpq. Statements go through PQexec (simple query protocol, so a revision's
// SQL may hold several statements and the engine's BEGIN/COMMIT/ROLLBACK are plain statements),
// and everything that carries values through PQexecParams with bound parameters. libpq (rather
// than libpqxx's transaction classes) keeps transaction boundaries in the engine's hands and gives
// the error fields (SQLSTATE, detail, hint, position) one by one.
#include "pkg/store/pg_store.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pkg/base/backoff.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/sql/sql_text.h"
#include "pkg/store/connection_string.h"

namespace sluice::store {
namespace {

// --- SQL ---------------------------------------------------------------------------------------
// Placeholders in braces are replaced by quoted identifiers (see Names); $n are bound parameters.

constexpr char kBeginSql[] = "BEGIN";
constexpr char kCommitSql[] = "COMMIT";
constexpr char kRollbackSql[] = "ROLLBACK";
constexpr char kSavepointSql[] = "SAVEPOINT sluice_ensure_tables";
constexpr char kReleaseSavepointSql[] = "RELEASE SAVEPOINT sluice_ensure_tables";
constexpr char kRollbackToSavepointSql[] = "ROLLBACK TO SAVEPOINT sluice_ensure_tables";

// client_connection_check_interval (PostgreSQL 14 and later): a backend whose client died
// mid-statement (kill -9) ends within a second instead of running the statement to completion
// while holding its locks. Set for each transaction as it begins, never at connect: behind a
// transaction pooler a session setting would be lost, or left on a server session that another
// client gets next.
constexpr char kConnectionCheckInterval[] = "1s";
constexpr int kConnectionCheckMinServerVersion = 140000;

// $1: the lock_timeout setting, $2: whether for the transaction only (true) or the session.
constexpr char kSetLockTimeoutSql[] =
    "SELECT pg_catalog.set_config('lock_timeout', $1, $2::boolean)";
// The same, together with client_connection_check_interval.
constexpr char kSetLockTimeoutAndConnectionCheckSql[] =
    "SELECT pg_catalog.set_config('lock_timeout', $1, $2::boolean),"
    " pg_catalog.set_config('client_connection_check_interval', '1s', $2::boolean)";

// The real backend pid: behind PgBouncer, PQbackendPID is a value PgBouncer made up.
constexpr char kBackendPidSql[] = "SELECT pg_catalog.pg_backend_pid()";

constexpr char kSchemaExistsSql[] = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1";
constexpr char kTableExistsSql[] =
    "SELECT 1 FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";

// The DDL is pkg/sql's (sql::EnsureTablesSql), shared with the offline scripts.

constexpr char kSelectVersionsSql[] = "SELECT version_num FROM {version_table}";
constexpr char kPurgeVersionsSql[] = "DELETE FROM {version_table}";

// Returns a WITH clause that deletes the versions in the text array $<first_param> and inserts
// those in $<first_param + 1>, so that a version change rides in the statement that follows it:
// one round trip, and atomic without a transaction of its own. A step never deletes and inserts
// the same version.
std::string VersionChangeWith(int first_param) {
  return absl::StrCat(
      "WITH deleted AS (DELETE FROM {version_table} WHERE version_num = ANY($", first_param,
      "::text[])), inserted AS (INSERT INTO {version_table} (version_num) SELECT unnest($",
      first_param + 1, "::text[])) ");
}

// Times travel as microseconds since the Unix epoch, exactly.
constexpr char kInsertHistorySql[] =
    "INSERT INTO {history} (revision, direction, checksum, description, started_at, finished_at,"
    " duration_ms, applied_by, outcome, error, down_revisions, depends_on, upgrade_sql,"
    " downgrade_sql, transactional)"
    " VALUES ($1, $2, $3, $4,"
    " 'epoch'::timestamptz + $5::bigint * interval '1 microsecond',"
    " 'epoch'::timestamptz + $6::bigint * interval '1 microsecond',"
    " $7::bigint, $8, $9, $10, $11::text[], $12::text[], $13, $14, $15::boolean)"
    " RETURNING id";
constexpr char kUpdateHistoryOutcomeSql[] = "UPDATE {history} SET outcome = $2 WHERE id = $1";
constexpr char kSelectHistorySql[] =
    "SELECT id, revision, direction, checksum, description,"
    " (extract(epoch FROM started_at) * 1000000)::bigint,"
    " (extract(epoch FROM coalesce(finished_at, started_at)) * 1000000)::bigint,"
    " duration_ms, applied_by, outcome, error, down_revisions, depends_on, upgrade_sql,"
    " downgrade_sql, transactional"
    " FROM {history} ORDER BY id";

constexpr char kNotifySql[] = "SELECT pg_catalog.pg_notify($1, '')";

constexpr char kTryLockSql[] = "SELECT pg_catalog.pg_try_advisory_lock($1::bigint)";
constexpr char kUnlockSql[] = "SELECT pg_catalog.pg_advisory_unlock($1::bigint)";
// The lock and the runner's mark in one statement, so that both land in one server session; the
// mark only when the lock was taken (CASE evaluates in order; AND need not).
constexpr char kTryLockAsSql[] =
    "SELECT CASE WHEN pg_catalog.pg_try_advisory_lock($1::bigint)"
    " THEN pg_catalog.pg_try_advisory_lock($2::integer, $3::integer) ELSE false END";
constexpr char kUnlockAsSql[] =
    "SELECT pg_catalog.pg_advisory_unlock($1::bigint),"
    " pg_catalog.pg_advisory_unlock($2::integer, $3::integer)";
// The runner marks (two-key advisory locks: classid = mark space, objid = runner, objsubid = 2)
// held by the session that holds the bigint lock (classid, objid) = ($1, $2), objsubid = 1.
constexpr char kRunnersHoldingLockSql[] =
    "SELECT m.objid::bigint FROM pg_catalog.pg_locks k JOIN pg_catalog.pg_locks m ON m.pid = k.pid"
    " WHERE k.locktype = 'advisory' AND k.granted AND k.classid = $1::oid AND k.objid = $2::oid"
    " AND k.objsubid = 1"
    " AND k.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database())"
    " AND m.locktype = 'advisory' AND m.granted AND m.database = k.database"
    " AND m.classid = $3::oid AND m.objsubid = 2"
    " ORDER BY 1";
// Fails to take the mark shared only while another session holds it (exclusively).
constexpr char kMarkHeldElsewhereSql[] =
    "SELECT NOT pg_catalog.pg_try_advisory_xact_lock_shared($1::integer, $2::integer)";
constexpr char kUnlockAllSql[] = "SELECT pg_catalog.pg_advisory_unlock_all()";
// pg_advisory_lock(bigint) locks (classid, objid, objsubid) = (high 32 bits, low 32 bits, 1).
constexpr char kLockHolderSql[] =
    "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''),"
    " coalesce(a.backend_start::text, '')"
    " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database())"
    " AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 1"
    " AND l.pid <> pg_catalog.pg_backend_pid()"
    " ORDER BY a.backend_start LIMIT 1";
constexpr char kBlockingSessionsSql[] =
    "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),"
    " coalesce(date_trunc('millisecond', pg_catalog.clock_timestamp() - a.xact_start)::text, ''),"
    " coalesce(a.query, '')"
    " FROM pg_catalog.unnest(pg_catalog.pg_blocking_pids($1::integer)) AS b(pid)"
    " JOIN pg_catalog.pg_stat_activity a ON a.pid = b.pid ORDER BY a.pid";
// $1, $2: the high and low 32 bits of an advisory lock key (see kLockHolderSql); $3: the marker
// to set, or '' to read it. Returns the backend pid, the session's marker (a session-level
// setting), and whether this session holds the advisory lock.
constexpr char kIdentifySessionSql[] =
    "SELECT pg_catalog.pg_backend_pid(),"
    " CASE WHEN $3::text = ''"
    " THEN coalesce(pg_catalog.current_setting('sluice.session_marker', true), '')"
    " ELSE pg_catalog.set_config('sluice.session_marker', $3::text, false) END,"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.pid = pg_catalog.pg_backend_pid()"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database())"
    " AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 1),"
    " coalesce(pg_catalog.host(pg_catalog.inet_client_addr()), ''),"
    " coalesce(pg_catalog.inet_client_port(), 0)";

// --- the lease (lock mode `lease`) ---
// All times are the server's, from clock_timestamp() (now() is the transaction's start). A TTL
// travels as microseconds ($3). TryAcquire and Renew run in a transaction of their own with a
// short lock_timeout: a holder committing a revision holds the row FOR SHARE
// (kHoldsLeaseSql) until that commit.
constexpr char kCreateLeaseTableSql[] =
    "CREATE TABLE IF NOT EXISTS {lease} (lock_key bigint PRIMARY KEY, holder text NOT NULL,"
    " acquired_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL,"
    " expires_at timestamptz NOT NULL)";
// Inserts the row, or takes it over when it has expired; returns a row when $2 got the lease. ON
// CONFLICT locks the existing row before it evaluates the WHERE, so the expiry is judged by the
// clock at that moment, and the new times are taken after it too.
constexpr char kAcquireLeaseSql[] =
    "INSERT INTO {lease} AS l (lock_key, holder, acquired_at, heartbeat_at, expires_at)"
    " SELECT $1::bigint, $2::text, n.t, n.t, n.t + $3::bigint * interval '1 microsecond'"
    " FROM (SELECT pg_catalog.clock_timestamp() AS t) AS n"
    " ON CONFLICT (lock_key) DO UPDATE"
    " SET (holder, acquired_at, heartbeat_at, expires_at) ="
    " (SELECT $2::text, n.t, n.t, n.t + $3::bigint * interval '1 microsecond'"
    "  FROM (SELECT pg_catalog.clock_timestamp() AS t) AS n)"
    " WHERE l.expires_at <= pg_catalog.clock_timestamp()"
    " RETURNING l.holder";
constexpr char kRenewLeaseSql[] =
    "UPDATE {lease} SET (heartbeat_at, expires_at) ="
    " (SELECT n.t, n.t + $3::bigint * interval '1 microsecond'"
    "  FROM (SELECT pg_catalog.clock_timestamp() AS t) AS n)"
    " WHERE lock_key = $1::bigint AND holder = $2::text"
    " AND expires_at > pg_catalog.clock_timestamp()"
    " RETURNING holder";
constexpr char kReleaseLeaseSql[] =
    "DELETE FROM {lease} WHERE lock_key = $1::bigint AND holder = $2::text";
// The columns of a Lease: holder, the three times as microseconds since the Unix epoch, and the
// microseconds left until expires_at.
constexpr char kLeaseColumns[] =
    "holder, (extract(epoch FROM acquired_at) * 1000000)::bigint,"
    " (extract(epoch FROM heartbeat_at) * 1000000)::bigint,"
    " (extract(epoch FROM expires_at) * 1000000)::bigint,"
    " (extract(epoch FROM expires_at - pg_catalog.clock_timestamp()) * 1000000)::bigint";
// SELECT <kLeaseColumns> ...
constexpr char kReadLeaseSql[] = " FROM {lease} WHERE lock_key = $1::bigint";
// DELETE ... RETURNING <kLeaseColumns>
constexpr char kDeleteExpiredLeaseSql[] =
    "DELETE FROM {lease} WHERE lock_key = $1::bigint"
    " AND expires_at <= pg_catalog.clock_timestamp() RETURNING ";
// In the caller's transaction: FOR SHARE keeps the row (so the lease) from being taken over,
// renewed or deleted until that transaction ends. No row: not held.
constexpr char kHoldsLeaseSql[] =
    "SELECT holder = $2::text AND expires_at > pg_catalog.clock_timestamp()"
    " FROM {lease} WHERE lock_key = $1::bigint FOR SHARE";

constexpr char kInvalidIndexesSql[] =
    "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)"
    " FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE NOT i.indisvalid ORDER BY 1";

// --- inspection (`sluice lint`) ---
// Scans: the flushed counter plus the backend's pending one (pg_stat_xact_*'s source), whose sum
// stays put when the backend flushes between two reads. There is no pg_stat_xact view of
// indexes; pg_stat_get_xact_numscans counts an index's scans as it does a table's.
// One round trip for the relations ('r' rows), their columns ('c') and the relation locks granted
// to backend $1 ('l'; none for 0), as rows of one shape: kind, oid, name, text, and three numbers
// and three booleans whose meaning depends on the kind (see ReadCatalog). Sorted by kind, oid and
// the first number (a column's attnum).
constexpr char kCatalogSql[] =
    "SELECT 'r', c.oid::bigint, c.oid::pg_catalog.regclass::text, c.relkind::text,"
    " coalesce(i.indrelid, c.oid)::bigint, c.relfilenode::bigint,"
    " coalesce(pg_catalog.pg_stat_get_numscans(c.oid), 0)"
    " + coalesce(pg_catalog.pg_stat_get_xact_numscans(c.oid), 0), false, false, false"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid"
    " WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I')"
    " AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
    " UNION ALL"
    " SELECT 'c', a.attrelid::bigint, a.attname::text,"
    " pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnum::bigint, 0, 0, a.attnotnull,"
    " a.atthasdef, a.attidentity <> '' OR a.attgenerated <> ''"
    " FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
    " AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
    " UNION ALL"
    " SELECT 'l', l.relation::bigint, l.mode, '', 0, 0, 0, false, false, false"
    " FROM pg_catalog.pg_locks l"
    " WHERE $1::integer <> 0 AND l.pid = $1::integer AND l.locktype = 'relation' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database())"
    " ORDER BY 1, 2, 5";
constexpr char kRelationLocksSql[] =
    "SELECT l.relation::bigint, l.mode FROM pg_catalog.pg_locks l"
    " WHERE l.pid = $1::integer AND l.locktype = 'relation' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database())";

constexpr char kHistoryTable[] = "sluice_history";
constexpr char kLeaseTable[] = "sluice_lock";
// How long TryAcquireLease and RenewLease wait for the lease row's lock.
constexpr absl::Duration kLeaseLockTimeout = absl::Seconds(1);
constexpr int kMaxIdentifierBytes = 63;  // NAMEDATALEN - 1

constexpr absl::Duration kInitialBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
constexpr char kEnvironmentTarget[] = "the database named by libpq's PG* environment variables";

// --- helpers -----------------------------------------------------------------------------------

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

std::string Field(const PGresult* result, int code) {
  const char* value = result == nullptr ? nullptr : PQresultErrorField(result, code);
  return value == nullptr ? std::string() : std::string(value);
}

// Returns the 1-based line of `sql` holding the 1-based character `position` (PostgreSQL counts
// characters, and the connection's encoding is UTF-8); 0 when there is no position.
int LineOfPosition(absl::string_view sql, int position) {
  if (position <= 0) return 0;
  int line = 1;
  int characters = 0;
  for (char c : sql) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80 && ++characters >= position) break;
    if (c == '\n') ++line;
  }
  return line;
}

enum class Sent { kStatement, kCommit };

// Translates what libpq returned for `sql` into a Status: the one place where PostgreSQL errors
// become status codes. OK for successful results. Errors the server reported carry a
// failure::MigrationFailure.
//   connection lost, class 08 (connection), 57P01-57P03 (the server is shutting down, crashed or
//   starting) -> kUnavailable (kUnknown during COMMIT: the outcome is in doubt)
//   class 40 (rollback: 40001 serialization, 40P01 deadlock) -> kAborted (40003 -> kUnknown)
//   42501 (insufficient privilege) -> kPermissionDenied
//   any other SQLSTATE (55P03 lock_timeout included) -> kFailedPrecondition
//   no SQLSTATE (a client-side failure) -> kUnknown
absl::Status StatusFromResult(PGconn* conn, const PGresult* result, absl::string_view sql,
                              absl::string_view what, Sent sent = Sent::kStatement) {
  const ExecStatusType status = result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY ||
      status == PGRES_SINGLE_TUPLE) {
    return absl::OkStatus();
  }
  failure::MigrationFailure error;
  error.sqlstate = Field(result, PG_DIAG_SQLSTATE);
  error.message = Field(result, PG_DIAG_MESSAGE_PRIMARY);
  error.detail = Field(result, PG_DIAG_MESSAGE_DETAIL);
  error.hint = Field(result, PG_DIAG_MESSAGE_HINT);
  int position = 0;
  if (absl::SimpleAtoi(Field(result, PG_DIAG_STATEMENT_POSITION), &position)) {
    error.statement_line = LineOfPosition(sql, position);
  }
  const std::string context = Field(result, PG_DIAG_CONTEXT);
  if (error.message.empty()) {
    error.message = internal::OneLine(result != nullptr && PQresultErrorMessage(result)[0] != '\0'
                                          ? PQresultErrorMessage(result)
                                          : PQerrorMessage(conn));
  }
  if (error.message.empty()) {
    error.message = absl::StrCat("unexpected result ", PQresStatus(status));
  }

  const absl::string_view sql_class = absl::string_view(error.sqlstate).substr(0, 2);
  // A FATAL 57P0x may reach libpq before it sees the connection close: the server is gone either
  // way, so the run ends as "unreachable", not as a failed migration.
  const bool server_gone = PQstatus(conn) != CONNECTION_OK || sql_class == "08" ||
                           error.sqlstate == "57P01" || error.sqlstate == "57P02" ||
                           error.sqlstate == "57P03";
  absl::StatusCode code;
  if (server_gone) {
    code = sent == Sent::kCommit ? absl::StatusCode::kUnknown : absl::StatusCode::kUnavailable;
  } else if (error.sqlstate.empty()) {
    code = absl::StatusCode::kUnknown;
  } else if (error.sqlstate == "40003") {
    code = absl::StatusCode::kUnknown;
  } else if (sql_class == "40") {
    code = absl::StatusCode::kAborted;
  } else if (error.sqlstate == "42501") {
    code = absl::StatusCode::kPermissionDenied;
  } else {
    code = absl::StatusCode::kFailedPrecondition;
  }

  std::string message;
  if (!what.empty()) absl::StrAppend(&message, what, ": ");
  absl::StrAppend(&message, error.message);
  if (!error.sqlstate.empty()) absl::StrAppend(&message, " (SQLSTATE ", error.sqlstate, ")");
  if (!error.detail.empty()) absl::StrAppend(&message, "; DETAIL: ", error.detail);
  if (!error.hint.empty()) absl::StrAppend(&message, "; HINT: ", error.hint);
  if (!context.empty()) absl::StrAppend(&message, "; CONTEXT: ", internal::OneLine(context));
  if (server_gone) {
    absl::StrAppend(&message, "; the connection to the database was lost");
    if (sent == Sent::kCommit) {
      absl::StrAppend(&message,
                      " during COMMIT, so the transaction may or may not have committed: re-read "
                      "the version table before retrying");
    }
  }
  absl::Status result_status(code, message);
  if (!error.sqlstate.empty())
    result_status = failure::WithMigrationFailure(std::move(result_status), error);
  return result_status;
}

bool IsDuplicateObject(const absl::Status& status) {
  std::optional<failure::MigrationFailure> error = failure::MigrationFailureOf(status);
  if (!error.has_value()) return false;
  // unique_violation (on a catalog index), duplicate_table, duplicate_schema, duplicate_object
  return error->sqlstate == "23505" || error->sqlstate == "42P07" || error->sqlstate == "42P06" ||
         error->sqlstate == "42710";
}

// Returns `values` as a PostgreSQL text[] literal.
std::string TextArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

// Returns the bound values of kInsertHistorySql ($1 to $15) for `row`.
std::vector<std::optional<std::string>> HistoryParams(const HistoryRow& row) {
  return {row.revision,
          row.direction,
          row.checksum,
          row.description,
          absl::StrCat(absl::ToUnixMicros(row.started_at)),
          absl::StrCat(absl::ToUnixMicros(row.finished_at)),
          absl::StrCat(row.duration_ms),
          row.applied_by,
          row.outcome,
          row.error,
          TextArrayLiteral(row.down_revisions),
          TextArrayLiteral(row.depends_on),
          row.upgrade_sql,
          row.downgrade_sql,
          row.transactional ? "true" : "false"};
}

// Returns `timeout` as a lock_timeout setting ("1500ms").
absl::StatusOr<std::string> LockTimeoutSetting(absl::Duration timeout) {
  if (timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lock_timeout cannot be negative");
  }
  return absl::StrCat(absl::ToInt64Milliseconds(timeout), "ms");
}

// Parses a one-dimensional text[] as PostgreSQL prints it (NULL elements become empty strings).
absl::StatusOr<std::vector<std::string>> ParseTextArray(absl::string_view text) {
  std::vector<std::string> values;
  if (text.size() < 2 || text.front() != '{' || text.back() != '}') {
    return absl::InternalError(absl::StrCat("unexpected array value: ", text));
  }
  absl::string_view body = text.substr(1, text.size() - 2);
  size_t i = 0;
  while (i < body.size()) {
    std::string value;
    if (body[i] == '"') {
      ++i;
      while (i < body.size() && body[i] != '"') {
        if (body[i] == '\\' && i + 1 < body.size()) ++i;
        value.push_back(body[i++]);
      }
      if (i == body.size()) return absl::InternalError(absl::StrCat("bad array value: ", text));
      ++i;
    } else {
      while (i < body.size() && body[i] != ',') value.push_back(body[i++]);
      if (value == "NULL") value.clear();
    }
    values.push_back(std::move(value));
    if (i < body.size()) {
      if (body[i] != ',') return absl::InternalError(absl::StrCat("bad array value: ", text));
      ++i;
    }
  }
  return values;
}

// Logs a notice or warning PostgreSQL sent. Those caused by sluice's own statements (`internal`,
// e.g. "relation already exists, skipping" when another runner won a race) only at debug level.
void LogNotice(const PGresult* result, bool internal) {
  const std::string severity = Field(result, PG_DIAG_SEVERITY_NONLOCALIZED);
  std::string message = Field(result, PG_DIAG_MESSAGE_PRIMARY);
  if (message.empty()) message = internal::OneLine(PQresultErrorMessage(result));
  const std::string text =
      absl::StrCat("postgres ", absl::AsciiStrToLower(severity), ": ", message);
  if (internal) {
    log::Debug(text);
  } else if (severity == "WARNING") {
    log::Warning(text);
  } else if (severity == "NOTICE" || severity == "INFO") {
    log::Info(text);
  } else {
    log::Debug(text);
  }
}

// The quoted identifiers of one TableNames.
struct Names {
  std::string schema;         // "schema"
  std::string version_table;  // "schema"."table"
  std::string version_pkc;    // "table_pkc"
  std::string history;        // "schema"."sluice_history"
  std::string lease;          // "schema"."sluice_lock"
};

std::string Fill(absl::string_view sql, const Names& names) {
  return absl::StrReplaceAll(sql, {{"{schema}", names.schema},
                                   {"{version_table}", names.version_table},
                                   {"{version_pkc}", names.version_pkc},
                                   {"{history}", names.history},
                                   {"{lease}", names.lease}});
}

using Params = std::vector<std::optional<std::string>>;

// --- PgStore -----------------------------------------------------------------------------------

class PgStore final : public Store, public Inspector {
 public:
  explicit PgStore(PGconn* conn) : conn_(conn), pid_(PQbackendPID(conn)) {
    PQsetNoticeReceiver(
        conn_,
        [](void* self, const PGresult* result) {
          LogNotice(result, static_cast<PgStore*>(self)->internal_statement_);
        },
        this);
  }

  ~PgStore() override {
    if (PQstatus(conn_) == CONNECTION_OK) {
      if (PQtransactionStatus(conn_) != PQTRANS_IDLE) Result(PQexec(conn_, kRollbackSql));
      // The server releases session locks when the backend exits, which happens after PQfinish
      // returns; releasing them here lets the next holder take the lock at once. Only on a
      // connection that took one: behind a transaction pooler this statement would run in
      // whichever server session is free, and release locks of another client there.
      if (took_advisory_lock_) Result(PQexec(conn_, kUnlockAllSql));
    }
    PQfinish(conn_);
  }

  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  // Store

  absl::Status Execute(absl::string_view sql) override {
    if (sql.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError("SQL text holds a NUL byte");
    }
    const std::string text(sql);
    Result result(PQexec(conn_, text.c_str()));
    const ExecStatusType status =
        result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      return AbandonCopy(status);
    }
    return StatusFromResult(conn_, result.get(), sql, "");
  }

  absl::Status Begin() override { return BeginTransaction(std::nullopt); }

  absl::Status BeginWithLockTimeout(absl::Duration timeout) override {
    SLUICE_ASSIGN_OR_RETURN(const std::string setting, LockTimeoutSetting(timeout));
    return BeginTransaction(setting);
  }

  absl::Status Commit() override {
    Result result(PQexec(conn_, kCommitSql));
    SLUICE_RETURN_IF_ERROR(
        StatusFromResult(conn_, result.get(), kCommitSql, "COMMIT", Sent::kCommit));
    if (std::strcmp(PQcmdStatus(result.get()), "ROLLBACK") == 0) {
      return absl::FailedPreconditionError(
          "COMMIT rolled the transaction back: a statement in it had failed");
    }
    return absl::OkStatus();
  }

  absl::Status Rollback() override {
    // Nothing to roll back (e.g. after a failed COMMIT): PostgreSQL would only warn.
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return absl::OkStatus();
    return Simple(kRollbackSql, "ROLLBACK");
  }

  absl::Status SetLockTimeout(absl::Duration timeout) override {
    SLUICE_ASSIGN_OR_RETURN(const std::string setting, LockTimeoutSetting(timeout));
    const bool in_transaction = PQtransactionStatus(conn_) != PQTRANS_IDLE;
    // Outside a transaction (statements that cannot run in one) both settings are the session's:
    // `RESET lock_timeout` undoes the first; client_connection_check_interval stays, as it did
    // when it was set at connect.
    return Query("setting lock_timeout",
                 ConnectionCheckSupported() ? kSetLockTimeoutAndConnectionCheckSql
                                            : kSetLockTimeoutSql,
                 {setting, in_transaction ? "true" : "false"})
        .status();
  }

  absl::Status EnsureTables(const TableNames& tables) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(bool exists, SchemaExists(tables.schema));
    const std::vector<std::string> ddl = sql::EnsureTablesSql(tables.schema, tables.version_table);
    if (!exists) {
      SLUICE_RETURN_IF_ERROR(CreateTolerating(absl::StrCat("creating schema ", names.schema),
                                              ddl[0], [&] { return SchemaExists(tables.schema); }));
    }
    SLUICE_ASSIGN_OR_RETURN(exists, TableExists(tables.schema, tables.version_table));
    if (!exists) {
      SLUICE_RETURN_IF_ERROR(
          CreateTolerating(absl::StrCat("creating ", names.version_table), ddl[1],
                           [&] { return TableExists(tables.schema, tables.version_table); }));
    }
    SLUICE_ASSIGN_OR_RETURN(exists, TableExists(tables.schema, kHistoryTable));
    if (!exists) {
      SLUICE_RETURN_IF_ERROR(
          CreateTolerating(absl::StrCat("creating ", names.history), ddl[2],
                           [&] { return TableExists(tables.schema, kHistoryTable); }));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ReadVersions(const TableNames& tables) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    // Once seen, the version table is not looked up again: the lock poll reads it often.
    const std::string key = absl::StrCat(tables.schema, ".", tables.version_table);
    std::vector<std::string> versions;
    if (version_tables_seen_.count(key) == 0) {
      SLUICE_ASSIGN_OR_RETURN(const bool exists, TableExists(tables.schema, tables.version_table));
      if (!exists) return versions;
      version_tables_seen_.insert(key);
    }
    SLUICE_ASSIGN_OR_RETURN(Result result, Query(absl::StrCat("reading ", names.version_table),
                                                 Fill(kSelectVersionsSql, names), {}));
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      versions.emplace_back(PQgetvalue(result.get(), row, 0));
    }
    std::sort(versions.begin(), versions.end());
    return versions;
  }

  absl::Status UpdateVersions(const TableNames& tables,
                              const std::vector<std::string>& delete_versions,
                              const std::vector<std::string>& insert_versions) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    return Query(absl::StrCat("updating ", names.version_table),
                 Fill(absl::StrCat(VersionChangeWith(1), "SELECT 1"), names),
                 {TextArrayLiteral(delete_versions), TextArrayLiteral(insert_versions)})
        .status();
  }

  absl::Status PurgeVersions(const TableNames& tables) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const bool exists, TableExists(tables.schema, tables.version_table));
    if (!exists) return absl::OkStatus();
    return Query(absl::StrCat("purging ", names.version_table), Fill(kPurgeVersionsSql, names), {})
        .status();
  }

  absl::StatusOr<int64_t> AppendHistory(const TableNames& tables, const HistoryRow& row) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    return InsertHistory(absl::StrCat("appending to ", names.history),
                         Fill(kInsertHistorySql, names), HistoryParams(row));
  }

  absl::StatusOr<int64_t> RecordStep(const TableNames& tables,
                                     const std::vector<std::string>& delete_versions,
                                     const std::vector<std::string>& insert_versions,
                                     const HistoryRow& row) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    Params params = HistoryParams(row);
    const int first_version_param = static_cast<int>(params.size()) + 1;
    params.push_back(TextArrayLiteral(delete_versions));
    params.push_back(TextArrayLiteral(insert_versions));
    return InsertHistory(
        absl::StrCat("updating ", names.version_table, " and appending to ", names.history),
        Fill(absl::StrCat(VersionChangeWith(first_version_param), kInsertHistorySql), names),
        params);
  }

  absl::Status SetHistoryOutcome(const TableNames& tables, int64_t id,
                                 absl::string_view outcome) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(Result result, Query(absl::StrCat("updating ", names.history),
                                                 Fill(kUpdateHistoryOutcomeSql, names),
                                                 {absl::StrCat(id), std::string(outcome)}));
    if (std::strcmp(PQcmdTuples(result.get()), "1") != 0) {
      return absl::NotFoundError(absl::StrCat("no row ", id, " in ", names.history));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<HistoryRow>> ReadHistory(const TableNames& tables) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const bool exists, TableExists(tables.schema, kHistoryTable));
    std::vector<HistoryRow> rows;
    if (!exists) return rows;
    SLUICE_ASSIGN_OR_RETURN(Result result, Query(absl::StrCat("reading ", names.history),
                                                 Fill(kSelectHistorySql, names), {}));
    const PGresult* r = result.get();
    for (int i = 0; i < PQntuples(r); ++i) {
      HistoryRow row;
      int64_t started_us = 0;
      int64_t finished_us = 0;
      if (!absl::SimpleAtoi(PQgetvalue(r, i, 0), &row.id) ||
          !absl::SimpleAtoi(PQgetvalue(r, i, 5), &started_us) ||
          !absl::SimpleAtoi(PQgetvalue(r, i, 6), &finished_us) ||
          !absl::SimpleAtoi(PQgetvalue(r, i, 7), &row.duration_ms)) {
        return absl::InternalError(absl::StrCat("unexpected row in ", names.history));
      }
      row.revision = PQgetvalue(r, i, 1);
      row.direction = PQgetvalue(r, i, 2);
      row.checksum = PQgetvalue(r, i, 3);
      row.description = PQgetvalue(r, i, 4);
      row.started_at = absl::FromUnixMicros(started_us);
      row.finished_at = absl::FromUnixMicros(finished_us);
      row.applied_by = PQgetvalue(r, i, 8);
      row.outcome = PQgetvalue(r, i, 9);
      row.error = PQgetvalue(r, i, 10);
      SLUICE_ASSIGN_OR_RETURN(row.down_revisions, ParseTextArray(PQgetvalue(r, i, 11)));
      SLUICE_ASSIGN_OR_RETURN(row.depends_on, ParseTextArray(PQgetvalue(r, i, 12)));
      row.upgrade_sql = PQgetvalue(r, i, 13);
      if (!PQgetisnull(r, i, 14)) row.downgrade_sql = std::string(PQgetvalue(r, i, 14));
      row.transactional = std::strcmp(PQgetvalue(r, i, 15), "t") == 0;
      rows.push_back(std::move(row));
    }
    return rows;
  }

  absl::StatusOr<bool> TryLock(int64_t key) override {
    SLUICE_ASSIGN_OR_RETURN(Result result, Query(absl::StrCat("taking advisory lock ", key),
                                                 kTryLockSql, {absl::StrCat(key)}));
    const bool locked = SingleBool(result.get());
    took_advisory_lock_ = took_advisory_lock_ || locked;
    return locked;
  }

  absl::Status Unlock(int64_t key) override {
    SLUICE_ASSIGN_OR_RETURN(Result result, Query(absl::StrCat("releasing advisory lock ", key),
                                                 kUnlockSql, {absl::StrCat(key)}));
    if (!SingleBool(result.get())) {
      return absl::FailedPreconditionError(
          absl::StrCat("advisory lock ", key, " was not held by this session"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> TryLockAs(int64_t key, uint32_t runner) override {
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query(absl::StrCat("taking advisory lock ", key), kTryLockAsSql,
                                  {absl::StrCat(key), absl::StrCat(kRunnerMarkSpace),
                                   absl::StrCat(static_cast<int32_t>(runner))}));
    const bool locked = SingleBool(result.get());
    took_advisory_lock_ = took_advisory_lock_ || locked;
    return locked;
  }

  absl::Status UnlockAs(int64_t key, uint32_t runner) override {
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query(absl::StrCat("releasing advisory lock ", key), kUnlockAsSql,
                                  {absl::StrCat(key), absl::StrCat(kRunnerMarkSpace),
                                   absl::StrCat(static_cast<int32_t>(runner))}));
    if (!SingleBool(result.get())) {
      return absl::FailedPreconditionError(
          absl::StrCat("advisory lock ", key, " was not held by this session"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<uint32_t>> RunnersHoldingLock(int64_t key) override {
    const uint64_t bits = static_cast<uint64_t>(key);
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query(absl::StrCat("reading which runners hold advisory lock ", key),
                                  kRunnersHoldingLockSql,
                                  {absl::StrCat(bits >> 32), absl::StrCat(bits & 0xffffffffu),
                                   absl::StrCat(static_cast<uint32_t>(kRunnerMarkSpace))}));
    std::vector<uint32_t> runners;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      uint32_t runner = 0;
      if (!absl::SimpleAtoi(PQgetvalue(result.get(), row, 0), &runner)) {
        return absl::InternalError("pg_locks returned a bad objid");
      }
      runners.push_back(runner);
    }
    return runners;
  }

  absl::StatusOr<bool> MarkHeldElsewhere(uint32_t runner) override {
    SLUICE_ASSIGN_OR_RETURN(
        Result result,
        Query("checking the runner's mark", kMarkHeldElsewhereSql,
              {absl::StrCat(kRunnerMarkSpace), absl::StrCat(static_cast<int32_t>(runner))}));
    return SingleBool(result.get());
  }

  absl::Status Listen(absl::string_view channel) override {
    SLUICE_ASSIGN_OR_RETURN(const std::string quoted, QuoteIdentifier(channel));
    const std::string sql = absl::StrCat("LISTEN ", quoted);
    InternalStatement internal(*this);
    return Simple(sql.c_str(), "LISTEN");
  }

  absl::Status Notify(absl::string_view channel) override {
    return Query("notifying waiting runners", kNotifySql, {std::string(channel)}).status();
  }

  absl::StatusOr<bool> WaitForNotification(absl::Duration timeout) override {
    if (ConsumeNotifications()) return true;
    pollfd descriptor{PQsocket(conn_), POLLIN, 0};
    const int ready = ::poll(
        &descriptor, 1, static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(timeout))));
    if (ready < 0 && errno != EINTR) {
      return absl::UnavailableError(
          absl::StrCat("waiting for a notification: ", std::strerror(errno)));
    }
    if (ready > 0 && PQconsumeInput(conn_) == 0) {
      return absl::UnavailableError(absl::StrCat("lost the connection while waiting: ",
                                                 internal::OneLine(PQerrorMessage(conn_))));
    }
    return ConsumeNotifications();
  }

  absl::StatusOr<std::optional<LockHolder>> LockHolderOf(int64_t key) override {
    const uint64_t bits = static_cast<uint64_t>(key);
    SLUICE_ASSIGN_OR_RETURN(
        Result result,
        Query(absl::StrCat("looking up the holder of advisory lock ", key), kLockHolderSql,
              {absl::StrCat(bits >> 32), absl::StrCat(bits & 0xffffffffu)}));
    const PGresult* r = result.get();
    if (PQntuples(r) == 0) return std::optional<LockHolder>();
    LockHolder holder;
    if (!absl::SimpleAtoi(PQgetvalue(r, 0, 0), &holder.pid)) {
      return absl::InternalError("pg_stat_activity returned a bad pid");
    }
    holder.application_name = PQgetvalue(r, 0, 1);
    holder.client_address = PQgetvalue(r, 0, 2);
    holder.since = PQgetvalue(r, 0, 3);
    return std::optional<LockHolder>(std::move(holder));
  }

  absl::StatusOr<std::vector<BlockingSession>> BlockingSessionsOf(int pid) override {
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query(absl::StrCat("looking up the sessions blocking ", pid),
                                  kBlockingSessionsSql, {absl::StrCat(pid)}));
    const PGresult* r = result.get();
    std::vector<BlockingSession> sessions;
    for (int i = 0; i < PQntuples(r); ++i) {
      BlockingSession session;
      if (!absl::SimpleAtoi(PQgetvalue(r, i, 0), &session.pid)) {
        return absl::InternalError("pg_stat_activity returned a bad pid");
      }
      session.application_name = PQgetvalue(r, i, 1);
      session.state = PQgetvalue(r, i, 2);
      session.transaction_age = PQgetvalue(r, i, 3);
      session.query = PQgetvalue(r, i, 4);
      sessions.push_back(std::move(session));
    }
    return sessions;
  }

  std::function<void()> StatementCanceller() override {
    // A PGcancel holds only the server's address and the cancel key (behind PgBouncer, PgBouncer's
    // own, which it forwards), so it outlives the connection safely.
    std::shared_ptr<PGcancel> cancel(PQgetCancel(conn_), [](PGcancel* c) {
      if (c != nullptr) PQfreeCancel(c);
    });
    return [cancel] {
      if (cancel == nullptr) return;
      char error[256];
      if (PQcancel(cancel.get(), error, sizeof error) == 0) {
        log::Warning("could not cancel the statement under way", {{"error", error}});
      }
    };
  }

  int BackendPid() override {
    // PQbackendPID is the server's pid on a direct connection, but a made-up value behind
    // PgBouncer, so the server is asked; only when first needed (the blocker watcher of a run
    // that applies something), since a round trip at connect would slow every no-op run. Behind
    // a transaction pooler the answer is the server session that ran this statement, and the
    // next statement may run on another.
    if (!pid_asked_) {
      pid_asked_ = true;
      Result result(PQexec(conn_, kBackendPidSql));
      if (PQresultStatus(result.get()) == PGRES_TUPLES_OK && PQntuples(result.get()) == 1) {
        (void)absl::SimpleAtoi(PQgetvalue(result.get(), 0, 0), &pid_);
      }
    }
    return pid_;
  }

  absl::StatusOr<SessionIdentity> IdentifySession(int64_t key,
                                                  absl::string_view set_marker) override {
    if (set_marker.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError("session marker holds a NUL byte");
    }
    const uint64_t bits = static_cast<uint64_t>(key);
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query("identifying the server session", kIdentifySessionSql,
                                  {absl::StrCat(bits >> 32), absl::StrCat(bits & 0xffffffffu),
                                   std::string(set_marker)}));
    const PGresult* r = result.get();
    SessionIdentity identity;
    if (PQntuples(r) != 1 || !absl::SimpleAtoi(PQgetvalue(r, 0, 0), &identity.server_pid)) {
      return absl::InternalError("pg_backend_pid() returned no pid");
    }
    identity.marker = PQgetvalue(r, 0, 1);
    identity.holds_lock = std::strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    int client_port = 0;
    identity.direct =
        absl::SimpleAtoi(PQgetvalue(r, 0, 4), &client_port) && client_port > 0 &&
        LocalTcpEndpoint() == std::make_pair(std::string(PQgetvalue(r, 0, 3)), client_port);
    return identity;
  }

  // This connection's own TCP address (as PostgreSQL's host() prints it) and port; empty and 0
  // for a Unix socket or when it cannot be read.
  std::pair<std::string, int> LocalTcpEndpoint() const {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (getsockname(PQsocket(conn_), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      return {"", 0};
    }
    char text[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
      if (inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text)) == nullptr) return {"", 0};
      return {text, ntohs(v4->sin_port)};
    }
    if (address.ss_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
      if (inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text)) == nullptr) return {"", 0};
      return {text, ntohs(v6->sin6_port)};
    }
    return {"", 0};
  }

  absl::Status EnsureLeaseTable(const TableNames& tables) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(bool exists, SchemaExists(tables.schema));
    if (!exists) {
      SLUICE_RETURN_IF_ERROR(
          CreateTolerating(absl::StrCat("creating schema ", names.schema),
                           sql::EnsureTablesSql(tables.schema, tables.version_table)[0],
                           [&] { return SchemaExists(tables.schema); }));
    }
    SLUICE_ASSIGN_OR_RETURN(exists, TableExists(tables.schema, kLeaseTable));
    if (!exists) {
      SLUICE_RETURN_IF_ERROR(CreateTolerating(
          absl::StrCat("creating ", names.lease), Fill(kCreateLeaseTableSql, names),
          [&] { return TableExists(tables.schema, kLeaseTable); }));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> TryAcquireLease(const TableNames& tables, int64_t key,
                                       absl::string_view holder, absl::Duration ttl) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const std::string ttl_us, TtlMicros(ttl));
    absl::StatusOr<Result> result = InLeaseTransaction(
        absl::StrCat("taking the lease ", key, " in ", names.lease), Fill(kAcquireLeaseSql, names),
        {absl::StrCat(key), std::string(holder), ttl_us});
    // The row is locked by a holder committing a revision: it is not free.
    if (IsLockTimeout(result.status())) return false;
    if (!result.ok()) return result.status();
    return PQntuples(result->get()) == 1;
  }

  absl::StatusOr<bool> RenewLease(const TableNames& tables, int64_t key, absl::string_view holder,
                                  absl::Duration ttl) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const std::string ttl_us, TtlMicros(ttl));
    SLUICE_ASSIGN_OR_RETURN(
        Result result,
        InLeaseTransaction(absl::StrCat("renewing the lease ", key, " in ", names.lease),
                           Fill(kRenewLeaseSql, names),
                           {absl::StrCat(key), std::string(holder), ttl_us}));
    return PQntuples(result.get()) == 1;
  }

  absl::Status ReleaseLease(const TableNames& tables, int64_t key,
                            absl::string_view holder) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const bool exists, LeaseTableExists(tables));
    if (!exists) return absl::OkStatus();
    return Query(absl::StrCat("releasing the lease ", key, " in ", names.lease),
                 Fill(kReleaseLeaseSql, names), {absl::StrCat(key), std::string(holder)})
        .status();
  }

  absl::StatusOr<std::optional<Lease>> ReadLease(const TableNames& tables, int64_t key) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const bool exists, LeaseTableExists(tables));
    if (!exists) return std::optional<Lease>();
    SLUICE_ASSIGN_OR_RETURN(
        Result result, Query(absl::StrCat("reading the lease ", key, " in ", names.lease),
                             Fill(absl::StrCat("SELECT ", kLeaseColumns, kReadLeaseSql), names),
                             {absl::StrCat(key)}));
    return LeaseOf(result.get(), names);
  }

  absl::StatusOr<bool> HoldsLeaseInTransaction(const TableNames& tables, int64_t key,
                                               absl::string_view holder) override {
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) {
      return absl::FailedPreconditionError(
          "HoldsLeaseInTransaction needs an open transaction: outside one, its row lock would "
          "end with the statement");
    }
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const bool exists, LeaseTableExists(tables));
    if (!exists) return false;
    SLUICE_ASSIGN_OR_RETURN(
        Result result,
        Query(absl::StrCat("checking the lease ", key, " in ", names.lease),
              Fill(kHoldsLeaseSql, names), {absl::StrCat(key), std::string(holder)}));
    return SingleBool(result.get());
  }

  absl::StatusOr<std::optional<Lease>> DeleteExpiredLease(const TableNames& tables,
                                                          int64_t key) override {
    SLUICE_ASSIGN_OR_RETURN(const Names names, NamesFor(tables));
    SLUICE_ASSIGN_OR_RETURN(const bool exists, LeaseTableExists(tables));
    if (!exists) return std::optional<Lease>();
    SLUICE_ASSIGN_OR_RETURN(
        Result result, Query(absl::StrCat("deleting the expired lease ", key, " in ", names.lease),
                             Fill(absl::StrCat(kDeleteExpiredLeaseSql, kLeaseColumns), names),
                             {absl::StrCat(key)}));
    return LeaseOf(result.get(), names);
  }

  absl::StatusOr<std::vector<std::string>> InvalidIndexes() override {
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query("looking up invalid indexes", kInvalidIndexesSql, {}));
    std::vector<std::string> names;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      names.emplace_back(PQgetvalue(result.get(), i, 0));
    }
    return names;
  }

  Inspector* inspector() override { return this; }

  // Inspector

  absl::StatusOr<CatalogState> ReadCatalog(int locks_of) override {
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query("reading the catalog", kCatalogSql, {absl::StrCat(locks_of)}));
    CatalogState state;
    const PGresult* rows = result.get();
    auto flag = [rows](int row, int column) {
      return std::strcmp(PQgetvalue(rows, row, column), "t") == 0;
    };
    for (int i = 0; i < PQntuples(rows); ++i) {
      const char kind = PQgetvalue(rows, i, 0)[0];
      const uint32_t oid = static_cast<uint32_t>(Int64At(rows, i, 1));
      if (kind == 'r') {
        RelationState relation;
        relation.oid = oid;
        relation.name = PQgetvalue(rows, i, 2);
        relation.kind = PQgetvalue(rows, i, 3)[0];
        relation.table = static_cast<uint32_t>(Int64At(rows, i, 4));
        relation.filenode = static_cast<uint32_t>(Int64At(rows, i, 5));
        relation.scans = Int64At(rows, i, 6);
        state.relations.push_back(std::move(relation));
      } else if (kind == 'c') {
        ColumnState column;
        column.table = oid;
        column.name = PQgetvalue(rows, i, 2);
        column.type = PQgetvalue(rows, i, 3);
        column.number = static_cast<int>(Int64At(rows, i, 4));
        column.not_null = flag(i, 7);
        column.has_default = flag(i, 8);
        column.generated = flag(i, 9);
        state.columns.push_back(std::move(column));
      } else {
        state.locks.push_back({oid, PQgetvalue(rows, i, 2)});
      }
    }
    return state;
  }

  absl::StatusOr<std::vector<RelationLock>> RelationLocks(int pid) override {
    SLUICE_ASSIGN_OR_RETURN(
        Result result, Query("reading relation locks", kRelationLocksSql, {absl::StrCat(pid)}));
    std::vector<RelationLock> locks;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      locks.push_back(
          {static_cast<uint32_t>(Int64At(result.get(), i, 0)), PQgetvalue(result.get(), i, 1)});
    }
    return locks;
  }

 private:
  static int64_t Int64At(const PGresult* result, int row, int column) {
    int64_t value = 0;
    (void)absl::SimpleAtoi(PQgetvalue(result, row, column), &value);
    return value;
  }

  bool ConnectionCheckSupported() const {
    return PQserverVersion(conn_) >= kConnectionCheckMinServerVersion;
  }

  // Begins a transaction with the settings of every transaction (client_connection_check_interval)
  // and `lock_timeout` if given, in one round trip. The settings are digits and units, so they need
  // no quoting beyond the literals'.
  absl::Status BeginTransaction(const std::optional<std::string>& lock_timeout) {
    std::vector<std::string> settings;
    if (ConnectionCheckSupported()) {
      settings.push_back(absl::StrCat("pg_catalog.set_config('client_connection_check_interval', '",
                                      kConnectionCheckInterval, "', true)"));
    }
    if (lock_timeout.has_value()) {
      settings.push_back(
          absl::StrCat("pg_catalog.set_config('lock_timeout', '", *lock_timeout, "', true)"));
    }
    if (settings.empty()) return Simple(kBeginSql, "BEGIN");
    const std::string sql = absl::StrCat(kBeginSql, "; SELECT ", absl::StrJoin(settings, ", "));
    absl::Status status = Simple(sql.c_str(), "BEGIN");
    if (!status.ok()) (void)Rollback();
    return status;
  }

  // Runs `sql` in a short transaction of its own whose lock_timeout is kLeaseLockTimeout; returns
  // its result. Not inside the caller's transaction: its COMMIT would be this one's.
  absl::StatusOr<Result> InLeaseTransaction(absl::string_view what, const std::string& sql,
                                            const Params& params) {
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": runs in a transaction of its own, not inside another one"));
    }
    InternalStatement internal(*this);
    SLUICE_ASSIGN_OR_RETURN(const std::string setting, LockTimeoutSetting(kLeaseLockTimeout));
    SLUICE_RETURN_IF_ERROR(BeginTransaction(setting));
    absl::StatusOr<Result> result = Query(what, sql, params);
    if (!result.ok()) {
      (void)Rollback();
      return result.status();
    }
    SLUICE_RETURN_IF_ERROR(Commit());
    return result;
  }

  static bool IsLockTimeout(const absl::Status& status) {
    std::optional<failure::MigrationFailure> error = failure::MigrationFailureOf(status);
    return error.has_value() && error->sqlstate == "55P03";
  }

  static absl::StatusOr<std::string> TtlMicros(absl::Duration ttl) {
    if (ttl <= absl::ZeroDuration() || ttl == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a lease TTL must be positive and finite, not ", absl::FormatDuration(ttl)));
    }
    return absl::StrCat(absl::ToInt64Microseconds(ttl));
  }

  // Returns whether the lease table of `tables` exists. Once seen, it is not looked up again.
  absl::StatusOr<bool> LeaseTableExists(const TableNames& tables) {
    if (lease_tables_seen_.count(tables.schema) > 0) return true;
    SLUICE_ASSIGN_OR_RETURN(const bool exists, TableExists(tables.schema, kLeaseTable));
    if (exists) lease_tables_seen_.insert(tables.schema);
    return exists;
  }

  // Returns the Lease in the first row of `result` (kLeaseColumns), if any.
  static absl::StatusOr<std::optional<Lease>> LeaseOf(const PGresult* r, const Names& names) {
    if (PQntuples(r) == 0) return std::optional<Lease>();
    int64_t micros[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; ++i) {
      if (!absl::SimpleAtoi(PQgetvalue(r, 0, i + 1), &micros[i])) {
        return absl::InternalError(absl::StrCat("unexpected row in ", names.lease));
      }
    }
    Lease lease;
    lease.holder = PQgetvalue(r, 0, 0);
    lease.acquired_at = absl::FromUnixMicros(micros[0]);
    lease.heartbeat_at = absl::FromUnixMicros(micros[1]);
    lease.expires_at = absl::FromUnixMicros(micros[2]);
    lease.remaining = absl::Microseconds(micros[3]);
    return std::optional<Lease>(std::move(lease));
  }

  // Marks the statements run during its lifetime as sluice's own, for LogNotice.
  class InternalStatement {
   public:
    explicit InternalStatement(PgStore& store) : flag_(store.internal_statement_), saved_(flag_) {
      flag_ = true;
    }
    ~InternalStatement() { flag_ = saved_; }
    InternalStatement(const InternalStatement&) = delete;
    InternalStatement& operator=(const InternalStatement&) = delete;

   private:
    bool& flag_;
    const bool saved_;
  };

  // Reads what the server has sent and drops the notifications queued; returns whether any was.
  bool ConsumeNotifications() {
    PQconsumeInput(conn_);
    bool any = false;
    while (PGnotify* notification = PQnotifies(conn_)) {
      any = true;
      PQfreemem(notification);
    }
    return any;
  }

  // Runs `sql`, an INSERT into the history ending in RETURNING id; returns the id.
  absl::StatusOr<int64_t> InsertHistory(absl::string_view what, const std::string& sql,
                                        const Params& params) {
    SLUICE_ASSIGN_OR_RETURN(Result result, Query(what, sql, params));
    int64_t id = 0;
    if (PQntuples(result.get()) != 1 || !absl::SimpleAtoi(PQgetvalue(result.get(), 0, 0), &id)) {
      return absl::InternalError("INSERT ... RETURNING id returned no id");
    }
    return id;
  }

  // Runs one statement with bound text parameters (nullopt = NULL).
  absl::StatusOr<Result> Query(absl::string_view what, const std::string& sql,
                               const Params& params) {
    InternalStatement internal(*this);
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const std::optional<std::string>& param : params) {
      values.push_back(param.has_value() ? param->c_str() : nullptr);
    }
    Result result(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, /*resultFormat=*/0));
    SLUICE_RETURN_IF_ERROR(StatusFromResult(conn_, result.get(), sql, what));
    return result;
  }

  // Runs one parameterless statement through the simple query protocol.
  absl::Status Simple(const char* sql, absl::string_view what) {
    Result result(PQexec(conn_, sql));
    return StatusFromResult(conn_, result.get(), sql, what);
  }

  // Ends a COPY that a revision's SQL started: sluice has no data to feed it.
  absl::Status AbandonCopy(ExecStatusType status) {
    if (status == PGRES_COPY_IN) {
      PQputCopyEnd(conn_, "sluice does not feed COPY FROM STDIN");
    } else {
      char* buffer = nullptr;
      while (PQgetCopyData(conn_, &buffer, /*async=*/0) > 0) PQfreemem(buffer);
    }
    while (PGresult* rest = PQgetResult(conn_)) PQclear(rest);
    return absl::InvalidArgumentError(
        "COPY ... FROM STDIN / TO STDOUT is not supported in migrations: sluice sends no data");
  }

  // Runs a CREATE ... IF NOT EXISTS. A concurrent runner creating the same object makes it fail
  // with a unique violation on a catalog (or duplicate_*); that is fine when the object exists
  // afterwards. Inside a transaction the statement runs under a savepoint, so that failure does
  // not abort the caller's transaction.
  absl::Status CreateTolerating(absl::string_view what, const std::string& sql,
                                const std::function<absl::StatusOr<bool>()>& exists) {
    InternalStatement internal(*this);
    const bool in_transaction = PQtransactionStatus(conn_) == PQTRANS_INTRANS;
    if (in_transaction) SLUICE_RETURN_IF_ERROR(Simple(kSavepointSql, what));
    Result result(PQexec(conn_, sql.c_str()));
    absl::Status status = StatusFromResult(conn_, result.get(), sql, what);
    if (in_transaction) {
      if (!status.ok()) SLUICE_RETURN_IF_ERROR(Simple(kRollbackToSavepointSql, what));
      SLUICE_RETURN_IF_ERROR(Simple(kReleaseSavepointSql, what));
    }
    if (status.ok() || !IsDuplicateObject(status)) return status;
    SLUICE_ASSIGN_OR_RETURN(const bool created_elsewhere, exists());
    if (!created_elsewhere) return status;
    log::Debug("another session created it concurrently", {{"object", std::string(what)}});
    return absl::OkStatus();
  }

  absl::StatusOr<bool> SchemaExists(const std::string& schema) {
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query("looking up a schema", kSchemaExistsSql, {schema}));
    return PQntuples(result.get()) > 0;
  }

  absl::StatusOr<bool> TableExists(const std::string& schema, const std::string& table) {
    SLUICE_ASSIGN_OR_RETURN(Result result,
                            Query("looking up a table", kTableExistsSql, {schema, table}));
    return PQntuples(result.get()) > 0;
  }

  absl::StatusOr<std::string> QuoteIdentifier(absl::string_view name) {
    if (name.empty()) return absl::InvalidArgumentError("empty schema or table name");
    if (name.size() > kMaxIdentifierBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema or table name longer than ", kMaxIdentifierBytes, " bytes: ", name));
    }
    if (name.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError("schema or table name holds a NUL byte");
    }
    char* quoted = PQescapeIdentifier(conn_, name.data(), name.size());
    if (quoted == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot quote identifier: ", internal::OneLine(PQerrorMessage(conn_))));
    }
    std::string out(quoted);
    PQfreemem(quoted);
    return out;
  }

  absl::StatusOr<Names> NamesFor(const TableNames& tables) {
    Names names;
    SLUICE_ASSIGN_OR_RETURN(names.schema, QuoteIdentifier(tables.schema));
    SLUICE_ASSIGN_OR_RETURN(const std::string table, QuoteIdentifier(tables.version_table));
    SLUICE_ASSIGN_OR_RETURN(const std::string history, QuoteIdentifier(kHistoryTable));
    // Alembic names the primary key `<table>_pkc`; PostgreSQL truncates names past 63 bytes.
    std::string pkc = absl::StrCat(tables.version_table, "_pkc");
    if (pkc.size() > kMaxIdentifierBytes) pkc.resize(kMaxIdentifierBytes);
    SLUICE_ASSIGN_OR_RETURN(names.version_pkc, QuoteIdentifier(pkc));
    names.version_table = absl::StrCat(names.schema, ".", table);
    names.history = absl::StrCat(names.schema, ".", history);
    SLUICE_ASSIGN_OR_RETURN(const std::string lease, QuoteIdentifier(kLeaseTable));
    names.lease = absl::StrCat(names.schema, ".", lease);
    return names;
  }

  static bool SingleBool(const PGresult* result) {
    return PQntuples(result) == 1 && std::strcmp(PQgetvalue(result, 0, 0), "t") == 0;
  }

  PGconn* conn_;
  std::set<std::string> version_tables_seen_;
  std::set<std::string> lease_tables_seen_;  // by schema
  int pid_;                                  // PQbackendPID's until BackendPid() asks the server
  bool pid_asked_ = false;
  bool internal_statement_ = false;
  bool took_advisory_lock_ = false;  // a session-level advisory lock was taken on this connection
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> ConnectPg(const ConnectOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(const std::string conninfo, LibpqConnectionString(options.url));
  const std::string target = absl::StripAsciiWhitespace(options.url).empty()
                                 ? std::string(kEnvironmentTarget)
                                 : RedactUrl(options.url);
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + std::max(options.connect_timeout, absl::ZeroDuration());
  base::Backoff backoff(kInitialBackoff, kMaxBackoff);
  for (int attempt = 1;; ++attempt) {
    // libpq's own per-attempt timeout, in whole seconds (it treats 1 as 2); a connect_timeout in
    // the connection string wins, since it comes before dbname.
    const int64_t attempt_seconds = std::clamp<int64_t>(
        absl::ToInt64Seconds(absl::Ceil(deadline - absl::Now(), absl::Seconds(1))), 2, 10);
    const std::string attempt_timeout = absl::StrCat(attempt_seconds);
    std::vector<const char*> keys = {"client_encoding", "connect_timeout",
                                     "fallback_application_name"};
    std::vector<const char*> values = {"UTF8", attempt_timeout.c_str(), "sluice"};
    if (!conninfo.empty()) {
      keys.push_back("dbname");
      values.push_back(conninfo.c_str());
    }
    // Later keywords win over those the expanded connection string gave.
    if (!options.database.empty()) {
      keys.push_back("dbname");
      values.push_back(options.database.c_str());
    }
    if (!options.application_name.empty()) {
      keys.push_back("application_name");
      values.push_back(options.application_name.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
    if (conn != nullptr && PQstatus(conn) == CONNECTION_OK) {
      if (attempt > 1) log::Info("connected to the database", {{"target", target}});
      return std::unique_ptr<Store>(new PgStore(conn));
    }
    const std::string reason =
        conn == nullptr
            ? std::string("out of memory")
            : internal::ScrubSecrets(internal::OneLine(PQerrorMessage(conn)), options.url);
    if (conn != nullptr) PQfinish(conn);
    const absl::Duration wait = backoff.Next();
    const bool retry = absl::Now() + wait < deadline;
    log::Warning(retry ? "cannot connect to the database; retrying"
                       : "cannot connect to the database; giving up",
                 {{"target", target}, {"attempt", absl::StrCat(attempt)}, {"error", reason}});
    if (!retry) {
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to ", target, " (", attempt, attempt == 1 ? " attempt" : " attempts",
          " in ", absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
          "): ", reason));
    }
    absl::SleepFor(wait);
  }
}

}  // namespace sluice::store
