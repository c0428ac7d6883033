// Integration tests of PgStore against a real PostgreSQL (SLUICE_TEST_PG_DSN; each test gets a
// fresh database from tests/support/pg_fixture.h).
#include "pkg/store/pg_store.h"

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/base/log.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/store/store.h"
#include "tests/support/loopback.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/status_matchers.h"

namespace sluice::store {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Matches an OK absl::StatusOr whose value matches `matcher`.
MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

class PgStoreTest : public sluice::testing::PgTest {
 protected:
  std::unique_ptr<Store> Connect(const std::string& application_name = "sluice-test") {
    ConnectOptions options;
    options.url = dsn();
    options.application_name = application_name;
    options.connect_timeout = absl::Seconds(10);
    absl::StatusOr<std::unique_ptr<Store>> store = ConnectPg(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Returns what the server said about `status`, failing the test when it carries nothing.
  static failure::MigrationFailure ErrorOf(const absl::Status& status) {
    std::optional<failure::MigrationFailure> error = failure::MigrationFailureOf(status);
    EXPECT_TRUE(error.has_value()) << status;
    return error.value_or(failure::MigrationFailure{});
  }

  // Returns whether `store` sees no other session holding advisory lock `key`.
  static bool NoOtherHolder(Store& store, int64_t key) {
    absl::StatusOr<std::optional<LockHolder>> holder = store.LockHolderOf(key);
    EXPECT_THAT(holder, IsOk());
    return holder.ok() && !holder->has_value();
  }

  int Count(const std::string& table) {
    int count = -1;
    EXPECT_TRUE(absl::SimpleAtoi(QueryValue("SELECT count(*) FROM " + table), &count));
    return count;
  }
};

// --- statements and transactions ---------------------------------------------------------------

// What `sluice lint` reads (store::Inspector): relations with their relfilenode and scan counts,
// columns, and the locks a backend holds inside its open transaction.
TEST_F(PgStoreTest, InspectorSeesRewritesScansColumnsAndLocks) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  ASSERT_NE(store->inspector(), nullptr);
  SLUICE_ASSERT_OK(store->Execute("CREATE TABLE t (id int PRIMARY KEY, a int, name varchar(20))"));
  auto find = [](const CatalogState& state, const std::string& name) -> const RelationState* {
    for (const RelationState& relation : state.relations) {
      if (relation.name == name) return &relation;
    }
    return nullptr;
  };
  absl::StatusOr<CatalogState> before = store->inspector()->ReadCatalog(0);
  SLUICE_ASSERT_OK(before);
  const RelationState* table = find(*before, "t");
  const RelationState* index = find(*before, "t_pkey");
  ASSERT_NE(table, nullptr);
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(table->kind, 'r');
  EXPECT_EQ(index->table, table->oid);
  EXPECT_THAT(before->locks, IsEmpty());
  ASSERT_EQ(before->columns.size(), 3u);
  EXPECT_EQ(before->columns[2].name, "name");
  EXPECT_EQ(before->columns[2].type, "character varying(20)");
  EXPECT_TRUE(before->columns[0].not_null);

  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->Execute("ALTER TABLE t ALTER COLUMN a SET NOT NULL"));
  absl::StatusOr<CatalogState> scanned = store->inspector()->ReadCatalog(store->BackendPid());
  SLUICE_ASSERT_OK(scanned);
  // SET NOT NULL scanned the (empty) table once, under ACCESS EXCLUSIVE; no rewrite.
  EXPECT_EQ(find(*scanned, "t")->scans, table->scans + 1);
  EXPECT_EQ(find(*scanned, "t")->filenode, table->filenode);
  bool access_exclusive = false;
  for (const RelationLock& lock : scanned->locks) {
    access_exclusive |= lock.relation == table->oid && lock.mode == "AccessExclusiveLock";
  }
  EXPECT_TRUE(access_exclusive);
  SLUICE_ASSERT_OK(store->Execute("ALTER TABLE t ALTER COLUMN a TYPE bigint"));
  absl::StatusOr<CatalogState> rewritten = store->inspector()->ReadCatalog(0);
  SLUICE_ASSERT_OK(rewritten);
  EXPECT_NE(find(*rewritten, "t")->filenode, table->filenode);
  EXPECT_NE(find(*rewritten, "t_pkey")->filenode, index->filenode);
  EXPECT_EQ(rewritten->columns[1].type, "bigint");
  EXPECT_THAT(rewritten->locks, IsEmpty());  // 0: no backend's locks asked for
  SLUICE_ASSERT_OK(store->Commit());

  // The sum of flushed and pending counts does not move when the backend flushes them (as it may,
  // once idle after COMMIT): only statements change it.
  absl::StatusOr<CatalogState> after = store->inspector()->ReadCatalog(0);
  SLUICE_ASSERT_OK(after);
  EXPECT_EQ(find(*after, "t")->scans, find(*rewritten, "t")->scans);
}

TEST_F(PgStoreTest, ExecuteRunsSeveralStatements) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->Execute("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (2);"));
  EXPECT_EQ(Count("t"), 2);
  SLUICE_EXPECT_OK(store->Execute(""));
  SLUICE_EXPECT_OK(store->Execute("-- only a comment\n"));
}

TEST_F(PgStoreTest, BeginCommitRollback) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->Execute("CREATE TABLE t (id int)"));
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->Execute("INSERT INTO t VALUES (1)"));
  SLUICE_ASSERT_OK(store->Rollback());
  EXPECT_EQ(Count("t"), 0);
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->Execute("INSERT INTO t VALUES (1)"));
  EXPECT_EQ(Count("t"), 0);  // not visible before COMMIT
  SLUICE_ASSERT_OK(store->Commit());
  EXPECT_EQ(Count("t"), 1);
}

TEST_F(PgStoreTest, DdlRollsBackWithItsTransaction) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->Execute("CREATE TABLE t (id int)"));
  SLUICE_ASSERT_OK(store->Rollback());
  EXPECT_EQ(QueryValue("SELECT to_regclass('public.t') IS NULL"), "t");
}

TEST_F(PgStoreTest, CommitOfAFailedTransactionFails) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->Begin());
  EXPECT_FALSE(store->Execute("SELECT * FROM missing").ok());
  EXPECT_THAT(store->Commit(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "rolled the transaction back"));
  SLUICE_EXPECT_OK(store->Rollback());  // harmless afterwards, as the engine may call it
  SLUICE_EXPECT_OK(store->Execute("SELECT 1"));
}

// --- errors ------------------------------------------------------------------------------------

TEST_F(PgStoreTest, SyntaxErrorNamesItsLine) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const absl::Status status = store->Execute("SELECT 1,\n  2,\n  3 4,\n  5");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const failure::MigrationFailure error = ErrorOf(status);
  EXPECT_EQ(error.sqlstate, "42601");
  EXPECT_EQ(error.message, "syntax error at or near \"4\"");
  EXPECT_EQ(error.statement_line, 3);
  EXPECT_THAT(std::string(status.message()), HasSubstr("SQLSTATE 42601"));
}

TEST_F(PgStoreTest, ErrorLineCountsTheWholeScriptAndCharactersNotBytes) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const absl::Status status = store->Execute(
      "CREATE TABLE t (id int);\n"
      "SELECT 'ééééééééééééééééééééééééééééééééééééééé' AS x,\n"
      "  'üü' AS y,\n"
      "  nosuchcolumn FROM t;\n");
  const failure::MigrationFailure error = ErrorOf(status);
  EXPECT_EQ(error.sqlstate, "42703");
  EXPECT_EQ(error.statement_line, 4);
}

TEST_F(PgStoreTest, UnknownTypeOnLineThreeOfFour) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const failure::MigrationFailure error =
      ErrorOf(store->Execute("CREATE TABLE t (\n  id int,\n  name txet\n);"));
  EXPECT_EQ(error.sqlstate, "42704");
  EXPECT_EQ(error.statement_line, 3);
}

TEST_F(PgStoreTest, UniqueViolationCarriesDetail) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->Execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"));
  const absl::Status status = store->Execute("INSERT INTO t VALUES (2);\nINSERT INTO t VALUES (1)");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const failure::MigrationFailure error = ErrorOf(status);
  EXPECT_EQ(error.sqlstate, "23505");
  EXPECT_EQ(error.message, "duplicate key value violates unique constraint \"t_pkey\"");
  EXPECT_EQ(error.detail, "Key (id)=(1) already exists.");
  EXPECT_EQ(error.statement_line, 0);  // run-time errors have no position
  EXPECT_EQ(Count("t"), 1);            // the script ran as one transaction
}

TEST_F(PgStoreTest, HintIsCarried) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const failure::MigrationFailure error = ErrorOf(store->Execute("SELECT pg_catalog.lower(1, 2)"));
  EXPECT_EQ(error.sqlstate, "42883");
  EXPECT_THAT(error.hint, HasSubstr("No function matches"));
  EXPECT_EQ(error.statement_line, 1);
}

TEST_F(PgStoreTest, InsufficientPrivilegeIsPermissionDenied) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const std::string role = database() + "_reader";
  SLUICE_ASSERT_OK(store->Execute("CREATE TABLE t (id int); CREATE ROLE " + role + " NOLOGIN"));
  const absl::Status status = store->Execute("SET ROLE " + role + "; SELECT * FROM t");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_EQ(ErrorOf(status).sqlstate, "42501");
  SLUICE_EXPECT_OK(store->Execute("RESET ROLE; DROP ROLE " + role));
}

TEST_F(PgStoreTest, DeadlockIsAborted) {
  std::unique_ptr<Store> a = Connect();
  std::unique_ptr<Store> b = Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  SLUICE_ASSERT_OK(
      a->Execute("CREATE TABLE t (id int PRIMARY KEY, v int);"
                 "INSERT INTO t VALUES (1, 0), (2, 0)"));
  SLUICE_ASSERT_OK(a->Begin());
  SLUICE_ASSERT_OK(b->Begin());
  SLUICE_ASSERT_OK(a->Execute("UPDATE t SET v = 1 WHERE id = 1"));
  SLUICE_ASSERT_OK(b->Execute("UPDATE t SET v = 1 WHERE id = 2"));
  // Before a's statement runs: BackendPid() may need a round trip on its connection.
  const std::string a_waits_for_b = absl::StrCat(
      "SELECT ", b->BackendPid(), " = ANY (pg_catalog.pg_blocking_pids(", a->BackendPid(), "))");
  absl::Status a_status;
  std::thread thread([&] { a_status = a->Execute("UPDATE t SET v = 2 WHERE id = 2"); });
  // Close the cycle only once a waits for b's row lock.
  bool waiting = false;
  for (int i = 0; i < 200 && !waiting; ++i) {
    waiting = QueryValue(a_waits_for_b) == "t";
    if (!waiting) absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_TRUE(waiting) << "a never waited for b";  // not ASSERT: the thread must be joined
  const absl::Status b_status = b->Execute("UPDATE t SET v = 2 WHERE id = 1");
  if (b_status.ok()) {
    SLUICE_EXPECT_OK(b->Rollback());  // unblocks a, if a was the victim
  }
  thread.join();
  const absl::Status& victim = b_status.ok() ? a_status : b_status;
  EXPECT_EQ(victim.code(), absl::StatusCode::kAborted) << victim;
  EXPECT_EQ(ErrorOf(victim).sqlstate, "40P01");
  SLUICE_EXPECT_OK(a->Rollback());
  SLUICE_EXPECT_OK(b->Rollback());
}

TEST_F(PgStoreTest, LostConnectionIsUnavailableAndLostCommitIsUnknown) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const std::string pid = absl::StrCat(store->BackendPid());
  EXPECT_EQ(QueryValue("SELECT pg_terminate_backend(" + pid + ", 5000)"), "t");
  EXPECT_THAT(store->Execute("SELECT 1"), StatusIs(absl::StatusCode::kUnavailable, "lost"));

  std::unique_ptr<Store> other = Connect();
  ASSERT_NE(other, nullptr);
  SLUICE_ASSERT_OK(other->Begin());
  EXPECT_EQ(
      QueryValue(absl::StrCat("SELECT pg_terminate_backend(", other->BackendPid(), ", 5000)")),
      "t");
  EXPECT_THAT(other->Commit(), StatusIs(absl::StatusCode::kUnknown, "re-read the version table"));
}

TEST_F(PgStoreTest, TerminatedMidStatementIsUnavailable) {
  // What a fast shutdown of the server does to a running revision: FATAL 57P01, then the socket
  // closes. Either may reach libpq first; both mean "unreachable".
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const std::string pid = absl::StrCat(store->BackendPid());
  std::atomic<bool> terminated{false};
  std::thread terminator([&] {
    for (int i = 0; i < 200 && !terminated; ++i) {
      absl::SleepFor(absl::Milliseconds(25));
      terminated = QueryValue(
                       "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                       "WHERE pid = " +
                       pid + " AND query LIKE 'SELECT pg_sleep%'") == "t";
    }
  });
  const absl::Status status = store->Execute("SELECT pg_sleep(30)");
  terminator.join();
  ASSERT_TRUE(terminated);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST_F(PgStoreTest, LockTimeoutGives55P03) {
  std::unique_ptr<Store> holder = Connect("holder");
  std::unique_ptr<Store> waiter = Connect("waiter");
  ASSERT_NE(holder, nullptr);
  ASSERT_NE(waiter, nullptr);
  SLUICE_ASSERT_OK(holder->Execute("CREATE TABLE t (id int)"));
  SLUICE_ASSERT_OK(holder->Begin());
  SLUICE_ASSERT_OK(holder->Execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE"));

  SLUICE_ASSERT_OK(waiter->Begin());
  SLUICE_ASSERT_OK(waiter->SetLockTimeout(absl::Milliseconds(100)));
  const absl::Time start = absl::Now();
  const absl::Status status = waiter->Execute("ALTER TABLE t ADD COLUMN c int");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorOf(status).sqlstate, "55P03");
  SLUICE_ASSERT_OK(waiter->Rollback());
  SLUICE_ASSERT_OK(holder->Rollback());
}

TEST_F(PgStoreTest, SetLockTimeoutIsLocalInATransactionAndSessionWideOutside) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  auto expect = [&store](const std::string& value) {
    return store->Execute(
        "DO $$ BEGIN IF current_setting('lock_timeout') <> '" + value +
        "' THEN RAISE EXCEPTION 'lock_timeout is %', current_setting('lock_timeout'); END IF; "
        "END $$");
  };
  SLUICE_ASSERT_OK(store->SetLockTimeout(absl::Milliseconds(250)));
  SLUICE_EXPECT_OK(expect("250ms"));
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->SetLockTimeout(absl::Seconds(10)));
  SLUICE_EXPECT_OK(expect("10s"));
  SLUICE_ASSERT_OK(store->Commit());
  SLUICE_EXPECT_OK(expect("250ms"));
  EXPECT_THAT(store->SetLockTimeout(absl::Seconds(-1)),
              StatusIs(absl::StatusCode::kInvalidArgument, "negative"));

  // BeginWithLockTimeout: the same, set as the transaction begins.
  SLUICE_ASSERT_OK(store->BeginWithLockTimeout(absl::Milliseconds(1500)));
  SLUICE_EXPECT_OK(expect("1500ms"));
  SLUICE_ASSERT_OK(store->Rollback());
  SLUICE_EXPECT_OK(expect("250ms"));
  EXPECT_THAT(store->BeginWithLockTimeout(absl::Seconds(-1)),
              StatusIs(absl::StatusCode::kInvalidArgument, "negative"));
  SLUICE_EXPECT_OK(store->Begin());  // no transaction was left open
  SLUICE_EXPECT_OK(store->Rollback());
}

// --- tables ------------------------------------------------------------------------------------

TEST_F(PgStoreTest, EnsureTablesCreatesAlembicsExactVersionTable) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->EnsureTables(TableNames{}));
  SLUICE_ASSERT_OK(store->EnsureTables(TableNames{}));  // idempotent

  EXPECT_EQ(
      Query("SELECT column_name, data_type, character_maximum_length, is_nullable"
            " FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = 'alembic_version'"),
      (std::vector<std::vector<std::string>>{{"version_num", "character varying", "32", "NO"}}));
  EXPECT_EQ(Query("SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint"
                  " WHERE conrelid = 'public.alembic_version'::regclass"),
            (std::vector<std::vector<std::string>>{
                {"alembic_version_pkc", "p", "PRIMARY KEY (version_num)"}}));
  EXPECT_EQ(Query("SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', '"
                  " ORDER BY ordinal_position) FROM information_schema.columns"
                  " WHERE table_schema = 'public' AND table_name = 'sluice_history'")[0][0],
            "id bigint NO, revision character varying NO, direction text NO, checksum text NO, "
            "description text NO, started_at timestamp with time zone NO, "
            "finished_at timestamp with time zone YES, duration_ms bigint NO, applied_by text NO, "
            "outcome text NO, error text NO, down_revisions ARRAY NO, depends_on ARRAY NO, "
            "upgrade_sql text NO, downgrade_sql text YES, transactional boolean NO");
}

TEST_F(PgStoreTest, EnsureTablesCreatesTheSchemaAndWorksInATransaction) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const TableNames tables{"app", "app_version"};
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->EnsureTables(tables));
  SLUICE_ASSERT_OK(store->EnsureTables(tables));
  SLUICE_ASSERT_OK(store->Commit());
  EXPECT_EQ(QueryValue("SELECT conname FROM pg_constraint"
                       " WHERE conrelid = 'app.app_version'::regclass"),
            "app_version_pkc");
  EXPECT_EQ(QueryValue("SELECT to_regclass('app.sluice_history') IS NOT NULL"), "t");
}

TEST_F(PgStoreTest, EnsureTablesIsSafeFromConcurrentRunners) {
  constexpr int kRunners = 8;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kRunners; ++i) {
    stores.push_back(Connect(absl::StrCat("runner-", i)));
    ASSERT_NE(stores.back(), nullptr);
  }
  for (int round = 0; round < 3; ++round) {
    const TableNames tables{absl::StrCat("race", round), "alembic_version"};
    std::vector<absl::Status> statuses(kRunners);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kRunners; ++i) {
      threads.emplace_back([&, i] {
        ++ready;
        while (ready < kRunners) {
        }
        statuses[i] = stores[i]->EnsureTables(tables);
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const absl::Status& status : statuses) SLUICE_EXPECT_OK(status);
  }
}

TEST_F(PgStoreTest, EnsureTablesNeedsNoCreatePrivilegeWhenTheTablesExist) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->EnsureTables(TableNames{}));
  const std::string role = database() + "_app";
  SLUICE_ASSERT_OK(store->Execute("CREATE ROLE " + role +
                                  " NOLOGIN; GRANT SELECT, INSERT, UPDATE, DELETE ON "
                                  "alembic_version, sluice_history TO " +
                                  role + "; SET ROLE " + role));
  SLUICE_EXPECT_OK(store->EnsureTables(TableNames{}));
  SLUICE_EXPECT_OK(store->ReadVersions(TableNames{}).status());
  SLUICE_EXPECT_OK(store->Execute("RESET ROLE; DROP OWNED BY " + role + "; DROP ROLE " + role));
}

TEST_F(PgStoreTest, HostileNamesAreQuotedAndInjectNothing) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->Execute("CREATE TABLE x (id int)"));
  for (const TableNames& tables :
       {TableNames{"we\"ird; DROP TABLE x; --", "alembic_version"},
        TableNames{"Upper Case", "Version Table"}, TableNames{"public", "v'); DROP TABLE x; --"},
        TableNames{"{schema}", "{version_table}"}}) {
    SCOPED_TRACE(tables.schema + "." + tables.version_table);
    SLUICE_ASSERT_OK(store->EnsureTables(tables));
    SLUICE_ASSERT_OK(store->EnsureTables(tables));
    SLUICE_ASSERT_OK(store->UpdateVersions(tables, {}, {"abc"}));
    EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(ElementsAre("abc")));
    HistoryRow row;
    row.revision = "abc";
    row.direction = "upgrade";
    row.outcome = "applied";
    SLUICE_ASSERT_OK(store->AppendHistory(tables, row).status());
    absl::StatusOr<std::vector<HistoryRow>> history = store->ReadHistory(tables);
    SLUICE_ASSERT_OK(history);
    EXPECT_EQ(history->size(), 1u);
    SLUICE_ASSERT_OK(store->PurgeVersions(tables));
    EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(IsEmpty()));
    EXPECT_EQ(QueryValue("SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                         " ON n.oid = c.relnamespace WHERE n.nspname = $x$" +
                         tables.schema + "$x$ AND c.relname = $x$" + tables.version_table + "$x$"),
              "1");
  }
  EXPECT_EQ(QueryValue("SELECT to_regclass('public.x') IS NOT NULL"), "t");
  EXPECT_THAT(store->EnsureTables(TableNames{"", "v"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "empty"));
  EXPECT_THAT(store->EnsureTables(TableNames{"public", std::string(64, 'v')}),
              StatusIs(absl::StatusCode::kInvalidArgument, "longer than 63"));
}

TEST_F(PgStoreTest, ReadingMissingTablesGivesNothing) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->ReadVersions(TableNames{}), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store->ReadHistory(TableNames{}), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store->ReadVersions(TableNames{"no_such_schema", "alembic_version"}),
              IsOkAndHolds(IsEmpty()));
  SLUICE_EXPECT_OK(store->PurgeVersions(TableNames{"no_such_schema", "alembic_version"}));
  // A view of the same name is not the version table.
  SLUICE_ASSERT_OK(
      store->Execute("CREATE VIEW alembic_version AS SELECT 'x'::text AS version_num"));
  EXPECT_THAT(store->ReadVersions(TableNames{}), IsOkAndHolds(IsEmpty()));
}

TEST_F(PgStoreTest, UpdateAndPurgeVersions) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const TableNames tables;
  SLUICE_ASSERT_OK(store->EnsureTables(tables));
  SLUICE_ASSERT_OK(store->UpdateVersions(tables, {}, {"b2", "a1"}));
  EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(ElementsAre("a1", "b2")));
  SLUICE_ASSERT_OK(store->UpdateVersions(tables, {"a1", "b2"}, {"c3"}));
  EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(ElementsAre("c3")));
  // A failing update changes nothing: it runs in a transaction of its own.
  const absl::Status duplicate = store->UpdateVersions(tables, {"c3"}, {"d4", "d4"});
  EXPECT_EQ(ErrorOf(duplicate).sqlstate, "23505");
  EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(ElementsAre("c3")));
  // Too long for VARCHAR(32).
  EXPECT_EQ(ErrorOf(store->UpdateVersions(tables, {}, {std::string(33, 'x')})).sqlstate, "22001");
  SLUICE_ASSERT_OK(store->PurgeVersions(tables));
  EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(IsEmpty()));
  // Alembic's own statements read our rows.
  SLUICE_ASSERT_OK(store->UpdateVersions(tables, {}, {"e5"}));
  EXPECT_EQ(QueryValue("SELECT version_num FROM alembic_version"), "e5");
}

TEST_F(PgStoreTest, UpdateVersionsJoinsTheCallersTransaction) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const TableNames tables;
  SLUICE_ASSERT_OK(store->EnsureTables(tables));
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->UpdateVersions(tables, {}, {"a1"}));
  SLUICE_ASSERT_OK(store->Rollback());
  EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(IsEmpty()));
}

TEST_F(PgStoreTest, RecordStepChangesVersionsAndHistoryTogetherOrNeither) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const TableNames tables{"Odd \"Schema\"", "Version Table"};
  SLUICE_ASSERT_OK(store->EnsureTables(tables));
  SLUICE_ASSERT_OK(store->UpdateVersions(tables, {}, {"a1", "b1"}));
  HistoryRow row;
  row.revision = "m2";
  row.direction = "upgrade";
  row.outcome = "applied";
  row.upgrade_sql = "SELECT 1";
  absl::StatusOr<int64_t> id = store->RecordStep(tables, {"a1", "b1"}, {"m2"}, row);
  SLUICE_ASSERT_OK(id);
  EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(ElementsAre("m2")));
  absl::StatusOr<std::vector<HistoryRow>> history = store->ReadHistory(tables);
  SLUICE_ASSERT_OK(history);
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].id, *id);
  EXPECT_EQ((*history)[0].revision, "m2");

  // A version too long for VARCHAR(32): the statement fails whole, without a transaction.
  row.revision = "x";
  EXPECT_EQ(
      ErrorOf(store->RecordStep(tables, {"m2"}, {std::string(33, 'x')}, row).status()).sqlstate,
      "22001");
  EXPECT_THAT(store->ReadVersions(tables), IsOkAndHolds(ElementsAre("m2")));
  history = store->ReadHistory(tables);
  SLUICE_ASSERT_OK(history);
  EXPECT_EQ(history->size(), 1u);
}

TEST_F(PgStoreTest, HistoryRoundTripsEveryField) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const TableNames tables;
  SLUICE_ASSERT_OK(store->EnsureTables(tables));
  HistoryRow row;
  row.revision = "0002_add_users";
  row.direction = "upgrade";
  row.checksum = "sha256:0123abcd";
  row.description = "add users ('quoted', \"double\", ü)";
  row.started_at = absl::FromUnixMicros(1700000000123456);
  row.finished_at = absl::FromUnixMicros(1700000001654321);
  row.duration_ms = 1531;
  row.applied_by = "pod-7";
  row.outcome = "failed";
  row.error = "SQLSTATE 23505: duplicate key";
  row.down_revisions = {"0001", "we,ird\"{}\\ NULL", "NULL", ""};
  row.depends_on = {"lib_0003"};
  row.upgrade_sql = "CREATE TABLE users (id int);\n-- $1 'x' \\ \n";
  row.downgrade_sql = "DROP TABLE users;";
  row.transactional = false;
  absl::StatusOr<int64_t> id = store->AppendHistory(tables, row);
  SLUICE_ASSERT_OK(id);

  HistoryRow stamp;
  stamp.revision = "0003";
  stamp.direction = "stamp";
  stamp.outcome = "applied";
  stamp.started_at = absl::FromUnixSeconds(1);
  stamp.finished_at = absl::FromUnixSeconds(1);
  absl::StatusOr<int64_t> stamp_id = store->AppendHistory(tables, stamp);
  SLUICE_ASSERT_OK(stamp_id);
  EXPECT_GT(*stamp_id, *id);

  absl::StatusOr<std::vector<HistoryRow>> history = store->ReadHistory(tables);
  SLUICE_ASSERT_OK(history);
  ASSERT_EQ(history->size(), 2u);
  const HistoryRow& read = (*history)[0];
  EXPECT_EQ(read.id, *id);
  EXPECT_EQ(read.revision, row.revision);
  EXPECT_EQ(read.direction, row.direction);
  EXPECT_EQ(read.checksum, row.checksum);
  EXPECT_EQ(read.description, row.description);
  EXPECT_EQ(read.started_at, row.started_at);
  EXPECT_EQ(read.finished_at, row.finished_at);
  EXPECT_EQ(read.duration_ms, row.duration_ms);
  EXPECT_EQ(read.applied_by, row.applied_by);
  EXPECT_EQ(read.outcome, row.outcome);
  EXPECT_EQ(read.error, row.error);
  EXPECT_EQ(read.down_revisions, row.down_revisions);
  EXPECT_EQ(read.depends_on, row.depends_on);
  EXPECT_EQ(read.upgrade_sql, row.upgrade_sql);
  EXPECT_EQ(read.downgrade_sql, row.downgrade_sql);
  EXPECT_EQ(read.transactional, false);

  const HistoryRow& read_stamp = (*history)[1];
  EXPECT_EQ(read_stamp.revision, "0003");
  EXPECT_EQ(read_stamp.downgrade_sql, std::nullopt);
  EXPECT_TRUE(read_stamp.down_revisions.empty());
  EXPECT_TRUE(read_stamp.transactional);
  EXPECT_EQ(read_stamp.started_at, absl::FromUnixSeconds(1));
}

TEST_F(PgStoreTest, SetHistoryOutcome) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const TableNames tables;
  SLUICE_ASSERT_OK(store->EnsureTables(tables));
  HistoryRow row;
  row.revision = "0001";
  row.direction = "upgrade";
  row.outcome = "failed";
  absl::StatusOr<int64_t> id = store->AppendHistory(tables, row);
  SLUICE_ASSERT_OK(id);
  SLUICE_ASSERT_OK(store->SetHistoryOutcome(tables, *id, "resolved"));
  absl::StatusOr<std::vector<HistoryRow>> history = store->ReadHistory(tables);
  SLUICE_ASSERT_OK(history);
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].outcome, "resolved");
  EXPECT_THAT(store->SetHistoryOutcome(tables, *id + 100, "resolved"),
              StatusIs(absl::StatusCode::kNotFound, "no row"));
}

// --- locks -------------------------------------------------------------------------------------

TEST_F(PgStoreTest, AdvisoryLockIsExclusiveAndNamesItsHolder) {
  std::unique_ptr<Store> first = Connect("sluice:pod-a");
  std::unique_ptr<Store> second = Connect("sluice:pod-b");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const int64_t key = LockKeyFor(TableNames{});
  EXPECT_TRUE(NoOtherHolder(*second, key));
  EXPECT_THAT(first->TryLock(key), IsOkAndHolds(true));
  EXPECT_THAT(second->TryLock(key), IsOkAndHolds(false));

  absl::StatusOr<std::optional<LockHolder>> holder = second->LockHolderOf(key);
  SLUICE_ASSERT_OK(holder);
  ASSERT_TRUE(holder->has_value());
  EXPECT_EQ((*holder)->application_name, "sluice:pod-a");
  EXPECT_EQ((*holder)->pid, first->BackendPid());
  EXPECT_EQ((*holder)->client_address, "127.0.0.1");
  EXPECT_FALSE((*holder)->since.empty());
  // The holder does not report itself.
  EXPECT_TRUE(NoOtherHolder(*first, key));
  // Another key is free.
  EXPECT_TRUE(NoOtherHolder(*second, key + 1));

  SLUICE_ASSERT_OK(first->Unlock(key));
  EXPECT_TRUE(NoOtherHolder(*second, key));
  EXPECT_THAT(second->TryLock(key), IsOkAndHolds(true));
  EXPECT_THAT(first->Unlock(key), StatusIs(absl::StatusCode::kFailedPrecondition, "not held"));
}

TEST_F(PgStoreTest, LockHolderOfSplitsTheKeyLikePostgres) {
  std::unique_ptr<Store> first = Connect("holder");
  std::unique_ptr<Store> second = Connect("watcher");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  for (int64_t key : {int64_t{-2}, std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max(), int64_t{0}, int64_t{1} << 32}) {
    SCOPED_TRACE(key);
    EXPECT_THAT(first->TryLock(key), IsOkAndHolds(true));
    absl::StatusOr<std::optional<LockHolder>> holder = second->LockHolderOf(key);
    SLUICE_ASSERT_OK(holder);
    ASSERT_TRUE(holder->has_value());
    EXPECT_EQ((*holder)->application_name, "holder");
    // Only that key is held.
    EXPECT_TRUE(NoOtherHolder(*second, key ^ 1));
    SLUICE_ASSERT_OK(first->Unlock(key));
  }
}

TEST_F(PgStoreTest, DestroyingAStoreReleasesItsLock) {
  const int64_t key = LockKeyFor(TableNames{});
  std::unique_ptr<Store> second = Connect("second");
  ASSERT_NE(second, nullptr);
  {
    std::unique_ptr<Store> first = Connect("first");
    ASSERT_NE(first, nullptr);
    EXPECT_THAT(first->TryLock(key), IsOkAndHolds(true));
    SLUICE_ASSERT_OK(first->Begin());  // even with a transaction open
    EXPECT_FALSE(first->Execute("SELECT * FROM missing").ok());
  }
  EXPECT_THAT(second->TryLock(key), IsOkAndHolds(true));
}

TEST_F(PgStoreTest, BlockingSessionsNamesTheBlocker) {
  std::unique_ptr<Store> blocker = Connect("sluice-test-blocker");
  std::unique_ptr<Store> blocked = Connect("sluice-test-blocked");
  std::unique_ptr<Store> watcher = Connect("sluice-test-watcher");
  ASSERT_NE(blocker, nullptr);
  ASSERT_NE(blocked, nullptr);
  ASSERT_NE(watcher, nullptr);
  SLUICE_ASSERT_OK(blocker->Execute("CREATE TABLE t (id int)"));
  SLUICE_ASSERT_OK(blocker->Begin());
  SLUICE_ASSERT_OK(blocker->Execute("SELECT * FROM t"));  // holds ACCESS SHARE

  EXPECT_THAT(watcher->BlockingSessionsOf(blocked->BackendPid()), IsOkAndHolds(IsEmpty()));
  absl::Status blocked_status;
  std::thread thread([&] { blocked_status = blocked->Execute("ALTER TABLE t ADD COLUMN c int"); });
  std::vector<BlockingSession> sessions;
  for (int i = 0; i < 100 && sessions.empty(); ++i) {
    absl::StatusOr<std::vector<BlockingSession>> found =
        watcher->BlockingSessionsOf(blocked->BackendPid());
    SLUICE_ASSERT_OK(found);
    sessions = *found;
    if (sessions.empty()) absl::SleepFor(absl::Milliseconds(50));
  }
  SLUICE_ASSERT_OK(blocker->Commit());
  thread.join();
  SLUICE_EXPECT_OK(blocked_status);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].pid, blocker->BackendPid());
  EXPECT_EQ(sessions[0].application_name, "sluice-test-blocker");
  EXPECT_EQ(sessions[0].state, "idle in transaction");
  EXPECT_FALSE(sessions[0].transaction_age.empty());
  EXPECT_EQ(sessions[0].query, "SELECT * FROM t");
}

TEST_F(PgStoreTest, InvalidIndexesAfterAFailedConcurrentBuild) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(
      store->Execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (1);"
                     "CREATE INDEX t_ok ON t (id)"));
  EXPECT_THAT(store->InvalidIndexes(), IsOkAndHolds(IsEmpty()));
  EXPECT_EQ(ErrorOf(store->Execute("CREATE UNIQUE INDEX CONCURRENTLY t_unique ON t (id)")).sqlstate,
            "23505");
  SLUICE_ASSERT_OK(
      store->Execute("CREATE SCHEMA \"Odd Schema\"; CREATE TABLE \"Odd Schema\".u (id "
                     "int); INSERT INTO \"Odd Schema\".u VALUES (2), (2)"));
  EXPECT_FALSE(
      store->Execute("CREATE UNIQUE INDEX CONCURRENTLY \"U idx\" ON \"Odd Schema\".u (id)").ok());
  EXPECT_THAT(store->InvalidIndexes(),
              IsOkAndHolds(ElementsAre("\"Odd Schema\".\"U idx\"", "public.t_unique")));
}

// --- connecting --------------------------------------------------------------------------------

TEST_F(PgStoreTest, ApplicationNameFromOptionsWins) {
  ConnectOptions options;
  options.url = UrlFor("postgresql", "application_name=from-url");
  options.application_name = "sluice:pod-9";
  absl::StatusOr<std::unique_ptr<Store>> store = ConnectPg(options);
  SLUICE_ASSERT_OK(store);
  EXPECT_EQ(QueryValue(absl::StrCat("SELECT application_name FROM pg_stat_activity WHERE pid = ",
                                    (*store)->BackendPid())),
            "sluice:pod-9");
  options.application_name.clear();
  store = ConnectPg(options);
  SLUICE_ASSERT_OK(store);
  EXPECT_EQ(QueryValue(absl::StrCat("SELECT application_name FROM pg_stat_activity WHERE pid = ",
                                    (*store)->BackendPid())),
            "from-url");
}

TEST_F(PgStoreTest, SqlAlchemyUrlsConnect) {
  for (const std::string& url :
       {UrlFor("postgresql"), UrlFor("postgres"), UrlFor("postgresql+psycopg2"),
        UrlFor("postgresql+psycopg", "sslmode=disable"),
        UrlFor("postgresql+asyncpg", "ssl=disable&prepared_statement_cache_size=0"),
        UrlFor("postgresql+asyncpg", "prepared_statement_cache_size=0&ssl=prefer"), dsn()}) {
    SCOPED_TRACE(url);
    ConnectOptions options;
    options.url = url;
    options.application_name = "sqlalchemy-test";
    absl::StatusOr<std::unique_ptr<Store>> store = ConnectPg(options);
    SLUICE_ASSERT_OK(store);
    SLUICE_EXPECT_OK((*store)->Execute("SELECT 1"));
    EXPECT_EQ(QueryValue(absl::StrCat("SELECT datname FROM pg_stat_activity WHERE pid = ",
                                      (*store)->BackendPid())),
              database());
  }
}

TEST(PgStoreConnectTest, UnreachableDatabaseIsUnavailableAndHidesThePassword) {
  std::ostringstream logs;
  log::SetSinkForTest(&logs);
  ConnectOptions options;
  absl::StatusOr<int> closed_port = sluice::testing::UnusedLoopbackPort();
  ASSERT_TRUE(closed_port.ok()) << closed_port.status();
  options.url =
      absl::StrCat("postgresql+asyncpg://app:hunter2@127.0.0.1:", *closed_port, "/app?ssl=disable");
  options.connect_timeout = absl::Milliseconds(1500);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Store>> store = ConnectPg(options);
  const absl::Duration elapsed = absl::Now() - start;
  log::SetSinkForTest(nullptr);
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kUnavailable, "app:***@127.0.0.1"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("Connection refused"));
  EXPECT_THAT(std::string(store.status().message()), Not(HasSubstr("hunter2")));
  // Retried with backoff, then given up once the next wait would pass --connect-timeout (which
  // can be up to one wait early: how long that takes is jittered, so count attempts, not time).
  const std::string logged = logs.str();
  size_t retries = 0;
  for (size_t at = logged.find("cannot connect to the database; retrying"); at != std::string::npos;
       at = logged.find("cannot connect to the database; retrying", at + 1)) {
    ++retries;
  }
  EXPECT_GE(retries, 2u) << logged;
  EXPECT_THAT(logged, HasSubstr("cannot connect to the database; giving up"));
  EXPECT_LT(elapsed, absl::Seconds(5));
  EXPECT_THAT(logs.str(), HasSubstr("app:***@127.0.0.1"));
  EXPECT_THAT(logs.str(), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace sluice::store

namespace sluice::store {
namespace {

class PgStoreNotifyTest : public sluice::testing::PgTest {};

TEST_F(PgStoreNotifyTest, WaiterWakesOnNotificationAndTimesOutWithoutOne) {
  ConnectOptions options;
  options.url = dsn();
  absl::StatusOr<std::unique_ptr<Store>> waiter = ConnectPg(options);
  absl::StatusOr<std::unique_ptr<Store>> holder = ConnectPg(options);
  SLUICE_ASSERT_OK(waiter);
  SLUICE_ASSERT_OK(holder);
  SLUICE_ASSERT_OK((*waiter)->Listen("sluice_lock_42"));

  absl::StatusOr<bool> woke = (*waiter)->WaitForNotification(absl::Milliseconds(50));
  SLUICE_ASSERT_OK(woke);
  EXPECT_FALSE(*woke);

  // Another channel does not wake it; its own does, and the notification is consumed.
  SLUICE_ASSERT_OK((*holder)->Notify("sluice_lock_7"));
  SLUICE_ASSERT_OK((*holder)->Notify("sluice_lock_42"));
  woke = (*waiter)->WaitForNotification(absl::Seconds(5));
  SLUICE_ASSERT_OK(woke);
  EXPECT_TRUE(*woke);
  woke = (*waiter)->WaitForNotification(absl::Milliseconds(50));
  SLUICE_ASSERT_OK(woke);
  EXPECT_FALSE(*woke);

  // A notification sent inside a transaction arrives at COMMIT.
  SLUICE_ASSERT_OK((*holder)->Begin());
  SLUICE_ASSERT_OK((*holder)->Notify("sluice_lock_42"));
  woke = (*waiter)->WaitForNotification(absl::Milliseconds(100));
  SLUICE_ASSERT_OK(woke);
  EXPECT_FALSE(*woke);
  SLUICE_ASSERT_OK((*holder)->Commit());
  woke = (*waiter)->WaitForNotification(absl::Seconds(5));
  SLUICE_ASSERT_OK(woke);
  EXPECT_TRUE(*woke);
}

}  // namespace
}  // namespace sluice::store

// --- per-transaction settings, session identity and the lease (issue #9) -----------------------

namespace sluice::store {
namespace {

class PgLeaseTest : public PgStoreTest {
 protected:
  // Returns a statement that fails unless setting `name` is `value` in the session that runs it.
  static std::string ExpectSetting(const std::string& name, const std::string& value) {
    return "DO $$ BEGIN IF current_setting('" + name + "') <> '" + value +
           "' THEN RAISE EXCEPTION '" + name + " is %', current_setting('" + name +
           "'); END IF; END $$";
  }

  // Makes lease `key` expire, as if its holder had stopped renewing it (on a connection of its
  // own: it waits for a row lock a transaction holds).
  void ExpireLease(int64_t key) {
    Query(
        absl::StrCat("UPDATE sluice_lock SET expires_at = clock_timestamp() - interval '1s'"
                     " WHERE lock_key = ",
                     key));
  }

  // Returns the lease `key` as `store` reads it, failing the test when there is none.
  static Lease ReadLeaseOf(Store& store, int64_t key) {
    absl::StatusOr<std::optional<Lease>> lease = store.ReadLease(kTables, key);
    EXPECT_THAT(lease, IsOk());
    EXPECT_TRUE(lease.ok() && lease->has_value()) << "no lease " << key;
    return lease.ok() && lease->has_value() ? **lease : Lease{};
  }

  static inline const TableNames kTables{};
  static constexpr absl::Duration kTtl = absl::Seconds(30);
};

TEST_F(PgLeaseTest, ConnectSetsNoSessionSettingsAndBeginSetsThemForItsTransactionOnly) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  const std::string off = ExpectSetting("client_connection_check_interval", "0");
  const std::string on = ExpectSetting("client_connection_check_interval", "1s");
  SLUICE_EXPECT_OK(store->Execute(off));

  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_EXPECT_OK(store->Execute(on));
  SLUICE_ASSERT_OK(store->Commit());
  SLUICE_EXPECT_OK(store->Execute(off));

  SLUICE_ASSERT_OK(store->BeginWithLockTimeout(absl::Milliseconds(700)));
  SLUICE_EXPECT_OK(store->Execute(on));
  SLUICE_EXPECT_OK(store->Execute(ExpectSetting("lock_timeout", "700ms")));
  SLUICE_ASSERT_OK(store->Rollback());
  SLUICE_EXPECT_OK(store->Execute(off));
  SLUICE_EXPECT_OK(store->Execute(ExpectSetting("lock_timeout", "0")));

  // Inside a transaction SetLockTimeout sets both for the transaction only.
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->SetLockTimeout(absl::Milliseconds(300)));
  SLUICE_EXPECT_OK(store->Execute(on));
  SLUICE_ASSERT_OK(store->Commit());
  SLUICE_EXPECT_OK(store->Execute(off));
  SLUICE_EXPECT_OK(store->Execute(ExpectSetting("lock_timeout", "0")));

  // Outside one (statements that cannot run in a transaction) both are the session's, and
  // `RESET lock_timeout` undoes lock_timeout as the engine does.
  SLUICE_ASSERT_OK(store->SetLockTimeout(absl::Milliseconds(300)));
  SLUICE_EXPECT_OK(store->Execute(on));
  SLUICE_EXPECT_OK(store->Execute(ExpectSetting("lock_timeout", "300ms")));
  SLUICE_ASSERT_OK(store->Execute("RESET lock_timeout"));
  SLUICE_EXPECT_OK(store->Execute(ExpectSetting("lock_timeout", "0")));
}

TEST_F(PgLeaseTest, BackendPidIsTheServersPid) {
  std::unique_ptr<Store> store = Connect("pid-check");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(QueryValue("SELECT pid FROM pg_stat_activity WHERE application_name = 'pid-check'"),
            absl::StrCat(store->BackendPid()));
}

TEST_F(PgLeaseTest, TheLocksSessionHoldsTheMarksOfTheRunnersThatTookItThere) {
  std::unique_ptr<Store> first = Connect("first");
  std::unique_ptr<Store> second = Connect("second");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const int64_t key = std::numeric_limits<int64_t>::min() + 7;
  const uint32_t high_mark = 0xfedcba98u;  // above INT32_MAX: the mark is an unsigned objid

  EXPECT_THAT(second->RunnersHoldingLock(key), IsOkAndHolds(::testing::IsEmpty()));
  EXPECT_THAT(first->TryLockAs(key, high_mark), IsOkAndHolds(true));
  EXPECT_THAT(second->TryLockAs(key, 12), IsOkAndHolds(false));
  EXPECT_THAT(second->RunnersHoldingLock(key), IsOkAndHolds(ElementsAre(high_mark)));
  // The same session taking it again (as a pooler's shared server session would for a second
  // runner) adds that runner's mark.
  EXPECT_THAT(first->TryLockAs(key, 12), IsOkAndHolds(true));
  EXPECT_THAT(second->RunnersHoldingLock(key), IsOkAndHolds(ElementsAre(12u, high_mark)));
  SLUICE_ASSERT_OK(first->UnlockAs(key, 12));
  SLUICE_ASSERT_OK(second->Begin());  // also readable inside a transaction (the commit check)
  EXPECT_THAT(second->RunnersHoldingLock(key), IsOkAndHolds(ElementsAre(high_mark)));
  SLUICE_ASSERT_OK(second->Commit());
  SLUICE_ASSERT_OK(first->UnlockAs(key, high_mark));
  EXPECT_THAT(second->RunnersHoldingLock(key), IsOkAndHolds(::testing::IsEmpty()));
  EXPECT_THAT(second->TryLockAs(key, 12), IsOkAndHolds(true));
  EXPECT_FALSE(first->UnlockAs(key, 12).ok()) << "not the holder";
}

TEST_F(PgLeaseTest, MarkHeldElsewhereSeesTheMarkOfAnotherSessionOnly) {
  std::unique_ptr<Store> holder = Connect("holder");
  std::unique_ptr<Store> work = Connect("work");
  ASSERT_NE(holder, nullptr);
  ASSERT_NE(work, nullptr);
  const int64_t key = std::numeric_limits<int64_t>::min() + 9;
  const uint32_t mark = 0xfedcba97u;  // above INT32_MAX, as a random mark can be
  const std::string mark_locks =
      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND objid = " +
      absl::StrCat(mark);

  SLUICE_ASSERT_OK(work->Begin());
  EXPECT_THAT(work->MarkHeldElsewhere(mark), IsOkAndHolds(false)) << "nobody holds it yet";
  EXPECT_EQ(QueryValue(mark_locks), "1") << "the probe holds the mark shared in its transaction";
  SLUICE_ASSERT_OK(work->Rollback());
  EXPECT_EQ(QueryValue(mark_locks), "0") << "and lets go of it when the transaction ends";

  ASSERT_THAT(holder->TryLockAs(key, mark), IsOkAndHolds(true));
  SLUICE_ASSERT_OK(work->Begin());
  EXPECT_THAT(work->MarkHeldElsewhere(mark), IsOkAndHolds(true));
  EXPECT_THAT(work->MarkHeldElsewhere(mark + 1), IsOkAndHolds(false)) << "another runner's mark";
  SLUICE_ASSERT_OK(work->Rollback());
  // The session that holds the mark does not see it as held elsewhere.
  SLUICE_ASSERT_OK(holder->Begin());
  EXPECT_THAT(holder->MarkHeldElsewhere(mark), IsOkAndHolds(false));
  SLUICE_ASSERT_OK(holder->Rollback());

  SLUICE_ASSERT_OK(holder->UnlockAs(key, mark));
  SLUICE_ASSERT_OK(work->Begin());
  EXPECT_THAT(work->MarkHeldElsewhere(mark), IsOkAndHolds(false));
  SLUICE_ASSERT_OK(work->Rollback());
}

TEST_F(PgLeaseTest, IdentifySessionOnDirectConnections) {
  std::unique_ptr<Store> first = Connect("first");
  std::unique_ptr<Store> second = Connect("second");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const int64_t key = std::numeric_limits<int64_t>::min() + 5;  // both halves of the key matter

  absl::StatusOr<SessionIdentity> identity = first->IdentifySession(key, "");
  SLUICE_ASSERT_OK(identity);
  EXPECT_EQ(identity->server_pid, first->BackendPid());
  EXPECT_EQ(identity->marker, "");
  EXPECT_FALSE(identity->holds_lock);

  identity = first->IdentifySession(key, "runner-1:abc");
  SLUICE_ASSERT_OK(identity);
  EXPECT_EQ(identity->marker, "runner-1:abc");
  // The marker is the session's: it sticks across statements and transactions.
  SLUICE_ASSERT_OK(first->Begin());
  SLUICE_ASSERT_OK(first->Commit());
  identity = first->IdentifySession(key, "");
  SLUICE_ASSERT_OK(identity);
  EXPECT_EQ(identity->marker, "runner-1:abc");
  EXPECT_EQ(identity->server_pid, first->BackendPid());

  EXPECT_THAT(first->TryLock(key), IsOkAndHolds(true));
  identity = first->IdentifySession(key, "");
  SLUICE_ASSERT_OK(identity);
  EXPECT_TRUE(identity->holds_lock);
  identity = first->IdentifySession(key + 1, "");
  SLUICE_ASSERT_OK(identity);
  EXPECT_FALSE(identity->holds_lock) << "another key";

  // Another connection is another session: its own pid and marker, and not the lock holder.
  absl::StatusOr<SessionIdentity> other = second->IdentifySession(key, "");
  SLUICE_ASSERT_OK(other);
  EXPECT_NE(other->server_pid, identity->server_pid);
  EXPECT_EQ(other->server_pid, second->BackendPid());
  EXPECT_EQ(other->marker, "");
  EXPECT_FALSE(other->holds_lock);

  SLUICE_ASSERT_OK(first->Unlock(key));
  identity = first->IdentifySession(key, "");
  SLUICE_ASSERT_OK(identity);
  EXPECT_FALSE(identity->holds_lock);
}

TEST_F(PgLeaseTest, LeaseTableShape) {
  std::unique_ptr<Store> store = Connect();
  ASSERT_NE(store, nullptr);
  SLUICE_ASSERT_OK(store->EnsureLeaseTable(kTables));
  SLUICE_ASSERT_OK(store->EnsureLeaseTable(kTables));  // idempotent
  EXPECT_EQ(QueryValue("SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable,"
                       " ', ' ORDER BY ordinal_position) FROM information_schema.columns"
                       " WHERE table_schema = 'public' AND table_name = 'sluice_lock'"),
            "lock_key bigint NO, holder text NO, acquired_at timestamp with time zone NO, "
            "heartbeat_at timestamp with time zone NO, expires_at timestamp with time zone NO");
  EXPECT_EQ(QueryValue("SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                       " WHERE conrelid = 'public.sluice_lock'::regclass AND contype = 'p'"),
            "PRIMARY KEY (lock_key)");

  // Another schema, with a name that needs quoting, is created too, also inside a transaction.
  const TableNames odd{"Odd \"schema\"", "alembic_version"};
  SLUICE_ASSERT_OK(store->Begin());
  SLUICE_ASSERT_OK(store->EnsureLeaseTable(odd));
  SLUICE_ASSERT_OK(store->Commit());
  EXPECT_EQ(QueryValue("SELECT to_regclass('\"Odd \"\"schema\"\"\".sluice_lock') IS NOT NULL"),
            "t");
  EXPECT_THAT(store->TryAcquireLease(odd, 1, "a", kTtl), IsOkAndHolds(true));
  EXPECT_THAT(store->TryAcquireLease(kTables, 1, "b", kTtl), IsOkAndHolds(true))
      << "each schema has its own lease table";
}

TEST_F(PgLeaseTest, EnsureLeaseTableIsSafeFromConcurrentRunners) {
  constexpr int kRunners = 16;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kRunners; ++i) {
    stores.push_back(Connect(absl::StrCat("runner-", i)));
    ASSERT_NE(stores.back(), nullptr);
  }
  for (int round = 0; round < 4; ++round) {
    // Round 0 creates the table in an existing schema; the others create the schema too.
    const TableNames tables{round == 0 ? "public" : absl::StrCat("race", round), "alembic_version"};
    std::vector<absl::Status> statuses(kRunners);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kRunners; ++i) {
      threads.emplace_back([&, i] {
        ++ready;
        while (ready < kRunners) {
        }
        statuses[i] = stores[i]->EnsureLeaseTable(tables);
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const absl::Status& status : statuses) SLUICE_EXPECT_OK(status);
    EXPECT_THAT(stores[0]->TryAcquireLease(tables, 7, "runner-0", kTtl), IsOkAndHolds(true));
  }
}

TEST_F(PgLeaseTest, AcquireRenewReadRelease) {
  std::unique_ptr<Store> a = Connect("a");
  std::unique_ptr<Store> b = Connect("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const int64_t key = LockKeyFor(kTables);

  // No table yet: nothing to read, release or delete; acquiring says what is missing.
  EXPECT_THAT(a->ReadLease(kTables, key), IsOkAndHolds(::testing::Eq(std::nullopt)));
  SLUICE_EXPECT_OK(a->ReleaseLease(kTables, key, "a"));
  EXPECT_THAT(a->DeleteExpiredLease(kTables, key), IsOkAndHolds(::testing::Eq(std::nullopt)));
  EXPECT_THAT(a->TryAcquireLease(kTables, key, "a", kTtl),
              StatusIs(absl::StatusCode::kFailedPrecondition, "sluice_lock"));

  SLUICE_ASSERT_OK(a->EnsureLeaseTable(kTables));
  EXPECT_THAT(a->ReadLease(kTables, key), IsOkAndHolds(::testing::Eq(std::nullopt)));
  EXPECT_THAT(a->TryAcquireLease(kTables, key, "a", kTtl), IsOkAndHolds(true));
  EXPECT_THAT(b->TryAcquireLease(kTables, key, "b", kTtl), IsOkAndHolds(false));
  EXPECT_THAT(b->TryAcquireLease(kTables, key + 1, "b", kTtl), IsOkAndHolds(true))
      << "another key is another lease";

  const Lease taken = ReadLeaseOf(*b, key);
  EXPECT_EQ(taken.holder, "a");
  EXPECT_EQ(taken.acquired_at, taken.heartbeat_at);
  EXPECT_EQ(taken.expires_at - taken.acquired_at, kTtl);
  EXPECT_GT(taken.remaining, absl::ZeroDuration());
  EXPECT_LE(taken.remaining, kTtl);
  // The server's clock (clock_timestamp(), not the transaction's start).
  EXPECT_EQ(QueryValue(absl::StrCat("SELECT acquired_at = 'epoch'::timestamptz + ",
                                    absl::ToUnixMicros(taken.acquired_at),
                                    " * interval '1 microsecond' FROM sluice_lock"
                                    " WHERE lock_key = ",
                                    key)),
            "t");

  EXPECT_THAT(a->RenewLease(kTables, key, "a", absl::Seconds(60)), IsOkAndHolds(true));
  const Lease renewed = ReadLeaseOf(*a, key);
  EXPECT_EQ(renewed.holder, "a");
  EXPECT_EQ(renewed.acquired_at, taken.acquired_at);
  EXPECT_GE(renewed.heartbeat_at, taken.heartbeat_at);
  EXPECT_EQ(renewed.expires_at - renewed.heartbeat_at, absl::Seconds(60));
  EXPECT_THAT(b->RenewLease(kTables, key, "b", kTtl), IsOkAndHolds(false)) << "not b's";

  // Releasing someone else's lease does nothing; releasing one's own frees it.
  SLUICE_ASSERT_OK(b->ReleaseLease(kTables, key, "b"));
  EXPECT_EQ(ReadLeaseOf(*b, key).holder, "a");
  SLUICE_ASSERT_OK(a->ReleaseLease(kTables, key, "a"));
  EXPECT_THAT(a->ReadLease(kTables, key), IsOkAndHolds(::testing::Eq(std::nullopt)));
  EXPECT_THAT(a->RenewLease(kTables, key, "a", kTtl), IsOkAndHolds(false));
  EXPECT_THAT(b->TryAcquireLease(kTables, key, "b", kTtl), IsOkAndHolds(true));

  EXPECT_THAT(a->TryAcquireLease(kTables, key, "a", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument, "TTL"));
  EXPECT_THAT(a->RenewLease(kTables, key, "a", -absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, "TTL"));
}

TEST_F(PgLeaseTest, AnExpiredLeaseIsTakenOverAndItsHolderCannotRenewIt) {
  std::unique_ptr<Store> a = Connect("a");
  std::unique_ptr<Store> b = Connect("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const int64_t key = 42;
  SLUICE_ASSERT_OK(a->EnsureLeaseTable(kTables));
  EXPECT_THAT(a->TryAcquireLease(kTables, key, "a", kTtl), IsOkAndHolds(true));
  const Lease before = ReadLeaseOf(*b, key);

  ExpireLease(key);
  EXPECT_LE(ReadLeaseOf(*b, key).remaining, absl::ZeroDuration());
  EXPECT_THAT(a->RenewLease(kTables, key, "a", kTtl), IsOkAndHolds(false)) << "expired";
  EXPECT_THAT(b->TryAcquireLease(kTables, key, "b", kTtl), IsOkAndHolds(true));
  const Lease after = ReadLeaseOf(*a, key);
  EXPECT_EQ(after.holder, "b");
  EXPECT_GE(after.acquired_at, before.acquired_at);
  EXPECT_GT(after.remaining, absl::ZeroDuration());
  EXPECT_THAT(a->RenewLease(kTables, key, "a", kTtl), IsOkAndHolds(false)) << "taken over";
  SLUICE_ASSERT_OK(a->ReleaseLease(kTables, key, "a"));
  EXPECT_EQ(ReadLeaseOf(*a, key).holder, "b") << "a's release must not free b's lease";
}

TEST_F(PgLeaseTest, DeleteExpiredLeaseDeletesOnlyAnExpiredOne) {
  std::unique_ptr<Store> a = Connect("a");
  std::unique_ptr<Store> admin = Connect("admin");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(admin, nullptr);
  const int64_t key = 42;
  SLUICE_ASSERT_OK(a->EnsureLeaseTable(kTables));
  EXPECT_THAT(a->TryAcquireLease(kTables, key, "a", kTtl), IsOkAndHolds(true));
  EXPECT_THAT(admin->DeleteExpiredLease(kTables, key), IsOkAndHolds(::testing::Eq(std::nullopt)));
  EXPECT_EQ(ReadLeaseOf(*admin, key).holder, "a");

  ExpireLease(key);
  absl::StatusOr<std::optional<Lease>> deleted = admin->DeleteExpiredLease(kTables, key);
  SLUICE_ASSERT_OK(deleted);
  ASSERT_TRUE(deleted->has_value());
  EXPECT_EQ((*deleted)->holder, "a");
  EXPECT_LE((*deleted)->remaining, absl::ZeroDuration());
  EXPECT_THAT(admin->ReadLease(kTables, key), IsOkAndHolds(::testing::Eq(std::nullopt)));
  EXPECT_THAT(admin->DeleteExpiredLease(kTables, key), IsOkAndHolds(::testing::Eq(std::nullopt)));
}

TEST_F(PgLeaseTest, HoldsLeaseInTransaction) {
  std::unique_ptr<Store> a = Connect("a");
  ASSERT_NE(a, nullptr);
  const int64_t key = 42;
  // Outside a transaction the row lock would not outlive the statement.
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, key, "a"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "transaction"));
  SLUICE_ASSERT_OK(a->Begin());
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, key, "a"), IsOkAndHolds(false)) << "no table";
  SLUICE_ASSERT_OK(a->Commit());

  SLUICE_ASSERT_OK(a->EnsureLeaseTable(kTables));
  SLUICE_ASSERT_OK(a->Begin());
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, key, "a"), IsOkAndHolds(false)) << "no row";
  SLUICE_ASSERT_OK(a->Commit());
  EXPECT_THAT(a->TryAcquireLease(kTables, key, "a", kTtl), IsOkAndHolds(true));
  // Lease statements run in transactions of their own, never inside the caller's.
  SLUICE_ASSERT_OK(a->Begin());
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, key, "a"), IsOkAndHolds(true));
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, key, "b"), IsOkAndHolds(false));
  EXPECT_THAT(a->RenewLease(kTables, key, "a", kTtl),
              StatusIs(absl::StatusCode::kFailedPrecondition, "transaction of its own"));
  // While the row is locked, the holder's heartbeat on another connection waits about a second
  // for it and fails (an error, not "lost"); a rival's takeover reports "not taken".
  std::unique_ptr<Store> heartbeat = Connect("heartbeat");
  ASSERT_NE(heartbeat, nullptr);
  absl::StatusOr<bool> renewed = heartbeat->RenewLease(kTables, key, "a", kTtl);
  EXPECT_FALSE(renewed.ok());
  EXPECT_EQ(ErrorOf(renewed.status()).sqlstate, "55P03");
  EXPECT_THAT(heartbeat->TryAcquireLease(kTables, key, "rival", kTtl), IsOkAndHolds(false));
  SLUICE_ASSERT_OK(a->Commit());
  EXPECT_THAT(heartbeat->RenewLease(kTables, key, "a", kTtl), IsOkAndHolds(true));

  ExpireLease(key);
  SLUICE_ASSERT_OK(a->Begin());
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, key, "a"), IsOkAndHolds(false)) << "expired";
  SLUICE_ASSERT_OK(a->Rollback());
}

// A holder committing a revision locks its lease row (HoldsLeaseInTransaction): until that
// transaction ends, nobody takes the lease over, even once it has expired, and the holder's own
// heartbeat fails (it does not report the lease lost); after the COMMIT the takeover works.
TEST_F(PgLeaseTest, TheGuardOfATransactionBlocksATakeoverUntilItEnds) {
  std::unique_ptr<Store> work = Connect("holder-work");
  std::unique_ptr<Store> heartbeat = Connect("holder-heartbeat");
  std::unique_ptr<Store> rival = Connect("rival");
  ASSERT_NE(work, nullptr);
  ASSERT_NE(heartbeat, nullptr);
  ASSERT_NE(rival, nullptr);
  const int64_t key = 42;
  constexpr absl::Duration kShortTtl = absl::Seconds(2);
  SLUICE_ASSERT_OK(work->EnsureLeaseTable(kTables));
  SLUICE_ASSERT_OK(work->Execute("CREATE TABLE applied (revision text)"));
  EXPECT_THAT(heartbeat->TryAcquireLease(kTables, key, "holder", kShortTtl), IsOkAndHolds(true));

  SLUICE_ASSERT_OK(work->Begin());
  SLUICE_ASSERT_OK(work->Execute("INSERT INTO applied VALUES ('r1')"));
  ASSERT_THAT(work->HoldsLeaseInTransaction(kTables, key, "holder"), IsOkAndHolds(true))
      << "the lease expired within its " << kShortTtl << " TTL before the guard: a slow machine";

  // Wait (bounded) until the lease has expired by the server's clock.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (ReadLeaseOf(*rival, key).remaining > absl::ZeroDuration() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_LE(ReadLeaseOf(*rival, key).remaining, absl::ZeroDuration());

  // Expired, but locked: the rival's attempt times out on the row lock and reports "not taken".
  EXPECT_THAT(rival->TryAcquireLease(kTables, key, "rival", kTtl), IsOkAndHolds(false));
  EXPECT_EQ(ReadLeaseOf(*rival, key).holder, "holder");
  // The holder's own heartbeat finds it expired: lost, although the transaction that checked it
  // in time can still commit.
  EXPECT_THAT(heartbeat->RenewLease(kTables, key, "holder", kShortTtl), IsOkAndHolds(false));

  // A forced delete of the expired lease waits for the COMMIT (bounded wait in a thread).
  std::atomic<bool> deleted{false};
  absl::StatusOr<std::optional<Lease>> deleted_lease;
  std::thread deleter([&] {
    deleted_lease = rival->DeleteExpiredLease(kTables, key);
    deleted = true;
  });
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(deleted) << "deleted a lease row locked by a transaction";

  SLUICE_ASSERT_OK(work->Commit());
  deleter.join();
  SLUICE_ASSERT_OK(deleted_lease);
  ASSERT_TRUE(deleted_lease->has_value());
  EXPECT_EQ((*deleted_lease)->holder, "holder");
  EXPECT_EQ(Count("applied"), 1);
  EXPECT_THAT(rival->TryAcquireLease(kTables, key, "rival", kTtl), IsOkAndHolds(true));
  EXPECT_THAT(heartbeat->RenewLease(kTables, key, "holder", kShortTtl), IsOkAndHolds(false));
  SLUICE_ASSERT_OK(work->Begin());
  EXPECT_THAT(work->HoldsLeaseInTransaction(kTables, key, "holder"), IsOkAndHolds(false));
  SLUICE_ASSERT_OK(work->Rollback());
}

TEST_F(PgLeaseTest, SixteenRunnersAtOnceGiveOneHolder) {
  constexpr int kRunners = 16;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kRunners; ++i) {
    stores.push_back(Connect(absl::StrCat("runner-", i)));
    ASSERT_NE(stores.back(), nullptr);
  }
  SLUICE_ASSERT_OK(stores[0]->EnsureLeaseTable(kTables));
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    const int64_t key = 100 + round;
    // Round 1 races for a lease that exists but has expired; the others for a free key.
    if (round == 1) {
      EXPECT_THAT(stores[0]->TryAcquireLease(kTables, key, "gone", kTtl), IsOkAndHolds(true));
      ExpireLease(key);
    }
    std::vector<absl::StatusOr<bool>> results(kRunners, false);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kRunners; ++i) {
      threads.emplace_back([&, i] {
        ++ready;
        while (ready < kRunners) {
        }
        results[i] = stores[i]->TryAcquireLease(kTables, key, absl::StrCat("runner-", i), kTtl);
      });
    }
    for (std::thread& thread : threads) thread.join();
    int winners = 0;
    std::string winner;
    for (int i = 0; i < kRunners; ++i) {
      SLUICE_ASSERT_OK(results[i]);
      if (*results[i]) {
        ++winners;
        winner = absl::StrCat("runner-", i);
      }
    }
    EXPECT_EQ(winners, 1);
    EXPECT_EQ(ReadLeaseOf(*stores[0], key).holder, winner);
  }
}

}  // namespace
}  // namespace sluice::store
