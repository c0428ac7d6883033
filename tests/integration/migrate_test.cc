// End-to-end tests of `sluice` against a real PostgreSQL: the commands, the version and history
// tables, failures, and the advisory lock under many concurrent runners.
#include <signal.h>

#include <thread>

#include <fstream>
#include "absl/strings/str_cat.h"

#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/migrate_test_support.h"

namespace sluice::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(MigrateTest, LinearUpDownAndBackUp) {
  WriteLinear(3);
  ProcessResult r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("upgraded <base> -> r003 (3 revisions)"));
  EXPECT_THAT(r.err, HasSubstr("applied revision revision=r001 description=\"revision r001\""));
  EXPECT_EQ(Versions(), "r003");
  EXPECT_TRUE(TableExists("t001") && TableExists("t002") && TableExists("t003"));
  EXPECT_EQ(
      Rows("SELECT string_agg(revision || ':' || direction || ':' || outcome, ',' ORDER BY id) "
           "FROM sluice_history"),
      "r001:upgrade:applied,r002:upgrade:applied,r003:upgrade:applied");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE checksum LIKE 'sha256:%' AND "
                 "upgrade_sql LIKE 'CREATE TABLE%' AND downgrade_sql LIKE 'DROP TABLE%'"),
            "3");

  r = Sluice({"current"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "r003 (head)\n");

  r = Sluice({"downgrade", "-1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r002");
  EXPECT_FALSE(TableExists("t003"));
  EXPECT_TRUE(TableExists("t002"));

  r = Sluice({"downgrade", "base"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "");
  EXPECT_FALSE(TableExists("t001"));
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE direction = 'downgrade'"), "3");

  r = Sluice({"upgrade", "+2"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r002");
  r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r003");
  EXPECT_TRUE(TableExists("t003"));
}

TEST_F(MigrateTest, BranchesAndMergesKeepOneRowPerHead) {
  WriteManifest("graph.yaml",
                {{"a", {}, "CREATE TABLE a (id int);", "DROP TABLE a;", ""},
                 {"b", {"a"}, "CREATE TABLE b (id int);", "DROP TABLE b;", ""},
                 {"c", {"a"}, "CREATE TABLE c (id int);", "DROP TABLE c;", "branch_labels: [side]"},
                 {"d", {"b", "c"}, "", "", "downgrade: \"\""}});
  ProcessResult r = Sluice({"upgrade", "b"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "b");
  r = Sluice({"upgrade", "c"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "b,c");
  r = Sluice({"current"});
  EXPECT_EQ(r.out, "b\nc\n") << Describe(r);
  r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "d");
  EXPECT_EQ(Sluice({"downgrade", "-1"}).exit_code, 2);  // ambiguous below a merge, as in Alembic
  r = Sluice({"downgrade", "b"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "b,c");
  r = Sluice({"downgrade", "base"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "");
  EXPECT_FALSE(TableExists("a") || TableExists("b") || TableExists("c"));
  r = Sluice({"upgrade", "heads"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "d");
}

TEST_F(MigrateTest, CheckStampAndHistoryMarkers) {
  WriteLinear(3);
  ProcessResult r = Sluice({"check"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_EQ(r.out, "3 pending: r001, r002, r003\n");

  r = Sluice({"stamp", "r002"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r002");
  EXPECT_FALSE(TableExists("t001"));  // stamp runs no SQL
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE direction = 'stamp'"), "1");

  r = Sluice({"check"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_EQ(r.out, "1 pending: r003\n");
  r = Sluice({"check", "r002"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);

  r = Sluice({"history"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out,
            "r002 -> r003 (head), revision r003\n"
            "r001 -> r002 (current) (applied), revision r002\n"
            "<base> -> r001 (applied, unverified), revision r001\n");

  r = Sluice({"stamp", "--purge", "r001"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r001");
  r = Sluice({"stamp", "base"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "");
}

TEST_F(MigrateTest, AdoptsADatabaseThatAlembicStamped) {
  // What Alembic leaves behind: the reference schema, and its own version table holding the
  // reference revision, with no sluice_history.
  const std::filesystem::path reference = std::filesystem::path(SLUICE_SOURCE_DIR) / "migrations";
  ProcessResult r = RunProcess({SluiceBinary(), "upgrade", "head", "--database-url=" + dsn(),
                                "--migrations=" + reference.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Rows(
      "DROP TABLE sluice_history; DROP TABLE alembic_version; "
      "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
      "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)); "
      "INSERT INTO alembic_version VALUES ('fc0e7b400c13')");
  const auto sluice_ref = [&](std::vector<std::string> args) {
    args.insert(args.begin(), SluiceBinary());
    args.push_back("--migrations=" + reference.string());
    args.push_back("--database-url=" + dsn());
    return RunProcess(args);
  };
  r = sluice_ref({"current"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "fc0e7b400c13 (head)\n");
  r = sluice_ref({"check"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = sluice_ref({"validate"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("unverified (applied before sluice kept history): fc0e7b400c13"));

  // A new revision on top, from a second migrations directory.
  WriteManifest("next.yaml", {{"a1b2c3d4e5f6",
                               {"fc0e7b400c13"},
                               "ALTER TABLE api_keys ADD COLUMN scopes TEXT;",
                               "ALTER TABLE api_keys DROP COLUMN scopes;",
                               ""}});
  r = RunProcess({SluiceBinary(), "upgrade", "head", "--migrations=" + reference.string(),
                  "--migrations=" + manifests_.string(), "--database-url=" + dsn()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "a1b2c3d4e5f6");
  EXPECT_EQ(Rows("SELECT count(*) FROM information_schema.columns WHERE table_name = 'api_keys' "
                 "AND column_name = 'scopes'"),
            "1");
}

TEST_F(MigrateTest, FailingRevisionStopsThePlanAndReportsWhereAndWhy) {
  WriteManifest("r1.yaml", {{"r1", {}, "CREATE TABLE t1 (id int);", "DROP TABLE t1;", ""}});
  WriteManifest("r2.yaml", {{"r2",
                             {"r1"},
                             "CREATE TABLE t2 (id int);\nINSERT INTO t2 VALUES (1);\n"
                             "SELEC broken FROM t2;",
                             "DROP TABLE t2;",
                             ""}});
  WriteManifest("r3.yaml", {{"r3", {"r2"}, "CREATE TABLE t3 (id int);", "DROP TABLE t3;", ""}});
  ProcessResult r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("revision r2"), HasSubstr("r2.yaml"), HasSubstr("42601"),
                           HasSubstr("syntax error"), HasSubstr("at line 3 of the upgrade SQL"),
                           HasSubstr("r2.yaml:7")));
  EXPECT_EQ(Versions(), "r1");
  EXPECT_TRUE(TableExists("t1"));
  EXPECT_FALSE(TableExists("t2"));
  EXPECT_FALSE(TableExists("t3"));
  EXPECT_EQ(Rows("SELECT outcome FROM sluice_history WHERE revision = 'r2'"), "failed");

  WriteManifest("r2.yaml", {{"r2",
                             {"r1"},
                             "CREATE TABLE t2 (id int);\nINSERT INTO t2 VALUES (1);\n"
                             "SELECT id FROM t2;",
                             "DROP TABLE t2;",
                             ""}});
  r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r3");
  EXPECT_EQ(Rows("SELECT count(*) FROM t2"), "1");
}

TEST_F(MigrateTest, FailedRevisionIsLoggedWithItsFieldsInJson) {
  WriteManifest("r1.yaml", {{"r1", {}, "CREATE TABLE t1 (id int);\nSELEC 1;", "", ""}});
  ProcessResult r = Sluice({"upgrade", "head", "--log-format=json"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("\"level\":\"error\""), HasSubstr("\"revision\":\"r1\""),
                           HasSubstr("\"sqlstate\":\"42601\""), HasSubstr("\"line\":\"6\""),
                           HasSubstr("r1.yaml")));
}

TEST_F(MigrateTest, ErrorsCarryDetailAndHint) {
  WriteManifest(
      "r1.yaml",
      {{"r1", {}, "CREATE TABLE u (id int PRIMARY KEY);\nINSERT INTO u VALUES (1), (1);", "", ""}});
  ProcessResult r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("23505"), HasSubstr("DETAIL: Key (id)=(1) already exists")));

  WriteManifest("r1.yaml", {{"r1", {}, "SELECT no_such_function(1);", "", ""}});
  r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("42883"), HasSubstr("HINT: No function matches")));
}

TEST_F(MigrateTest, DriftStopsUpgradeAndValidateUnlessAllowed) {
  WriteLinear(2);
  ASSERT_EQ(Sluice({"upgrade", "head"}).exit_code, 0);
  WriteManifest("r001.yaml",
                {{"r001", {}, "CREATE TABLE t001 (id bigint);", "DROP TABLE t001;", ""}});
  WriteManifest("r003.yaml", {{"r003", {"r002"}, "CREATE TABLE t003 (id int);", "", ""}});
  ProcessResult r = Sluice({"validate"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("r001"), HasSubstr("r001.yaml")));
  r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_EQ(Versions(), "r002");
  r = Sluice({"upgrade", "head", "--allow-drift"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("applied revisions changed"));
  EXPECT_EQ(Versions(), "r003");
}

TEST_F(MigrateTest, SingleTransactionAppliesAllOrNothing) {
  WriteManifest("all.yaml", {{"r1", {}, "CREATE TABLE t1 (id int);", "", ""},
                             {"r2", {"r1"}, "CREATE TABLE t2 (id int);", "", ""},
                             {"r3", {"r2"}, "CREATE TABLE t1 (id int);", "", ""}});
  ProcessResult r = Sluice({"upgrade", "head", "--single-transaction"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("revision r3"));
  EXPECT_EQ(Versions(), "");
  EXPECT_FALSE(TableExists("t1"));
  WriteManifest("all.yaml", {{"r1", {}, "CREATE TABLE t1 (id int);", "", ""},
                             {"r2", {"r1"}, "CREATE TABLE t2 (id int);", "", ""},
                             {"r3", {"r2"}, "CREATE TABLE t3 (id int);", "", ""}});
  r = Sluice({"upgrade", "head", "--single-transaction"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r3");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history"), "3");
}

TEST_F(MigrateTest, NonTransactionalFailureIsRecordedAndRefusedUntilResolved) {
  WriteManifest("r1.yaml",
                {{"r1",
                  {},
                  "CREATE TABLE items (id int, code text);\n"
                  "INSERT INTO items SELECT g, 'c' || (g % 10) FROM generate_series(1, 1000) g;",
                  "DROP TABLE items;",
                  ""}});
  WriteManifest("r2.yaml",
                {{"r2",
                  {"r1"},
                  "CREATE INDEX CONCURRENTLY items_id ON items (id);\n"
                  "CREATE UNIQUE INDEX CONCURRENTLY items_code ON items (code);",
                  "DROP INDEX CONCURRENTLY items_code;\nDROP INDEX CONCURRENTLY items_id;",
                  "transactional: false"}});
  ProcessResult r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err,
              AllOf(HasSubstr("revision r2"), HasSubstr("23505"),
                    HasSubstr("in the statement at line 2 of the upgrade SQL"),
                    HasSubstr("r2.yaml:7)"), HasSubstr("1 of its 2 statements took effect")));
  EXPECT_EQ(Versions(), "r1");
  EXPECT_EQ(Rows("SELECT outcome FROM sluice_history WHERE revision = 'r2'"), "failed");

  r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("sluice resolve r2 applied"),
                           HasSubstr("sluice resolve r2 rolled-back")));

  // Undo by hand, fix the manifest, resolve as rolled back: the next upgrade runs it again.
  Rows("DROP INDEX items_id; DROP INDEX IF EXISTS items_code");
  WriteManifest("r2.yaml",
                {{"r2",
                  {"r1"},
                  "CREATE INDEX CONCURRENTLY items_id ON items (id);\n"
                  "CREATE INDEX CONCURRENTLY items_code ON items (code);",
                  "DROP INDEX CONCURRENTLY items_code;\nDROP INDEX CONCURRENTLY items_id;",
                  "transactional: false"}});
  r = Sluice({"resolve", "r2", "rolled-back"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r2");
  EXPECT_EQ(Rows("SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass AND indisvalid"),
            "2");
}

TEST_F(MigrateTest, ResolveAppliedRecordsTheRevision) {
  WriteManifest(
      "r1.yaml",
      {{"r1", {}, "CREATE TABLE items (id int);\nSELECT 1/0;", "", "transactional: false"}});
  ASSERT_EQ(Sluice({"upgrade", "head"}).exit_code, 1);
  EXPECT_TRUE(TableExists("items"));
  EXPECT_EQ(Sluice({"resolve", "r9", "applied"}).exit_code, 2);
  ProcessResult r = Sluice({"resolve", "r1", "applied"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r1");
  EXPECT_EQ(Sluice({"upgrade", "head"}).exit_code, 0);
  EXPECT_EQ(Rows("SELECT string_agg(outcome, ',' ORDER BY id) FROM sluice_history"),
            "resolved,applied");
}

TEST_F(MigrateTest, InvalidIndexFailsTheRevision) {
  // The test marks the index invalid itself, standing in for a CREATE INDEX CONCURRENTLY that
  // PostgreSQL left invalid.
  WriteManifest("r1.yaml", {{"r1", {}, "CREATE TABLE items (id int);", "", ""}});
  WriteManifest("r2.yaml",
                {{"r2",
                  {"r1"},
                  "CREATE INDEX CONCURRENTLY items_id ON items (id);\n"
                  "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'items_id'::regclass;",
                  "",
                  "transactional: false"}});
  ProcessResult r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("invalid indexes"), HasSubstr("items_id")));
  EXPECT_EQ(Versions(), "r1");
}

TEST_F(MigrateTest, RetriesOnLockTimeoutAndNamesTheBlocker) {
  WriteManifest("r1.yaml", {{"r1", {}, "CREATE TABLE busy (id int);", "", ""}});
  ASSERT_EQ(Sluice({"upgrade", "head"}).exit_code, 0);
  WriteManifest("r2.yaml", {{"r2", {"r1"}, "ALTER TABLE busy ADD COLUMN note text;", "", ""}});

  std::unique_ptr<Process> blocker =
      StartPsql("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2.5); COMMIT;",
                "app-blocker");
  ASSERT_TRUE(WaitForLockHeldBy("app-blocker"));
  ProcessResult r = Sluice({"upgrade", "head", "--ddl-lock-timeout=400ms", "--ddl-retries=10"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("lock_timeout"), HasSubstr("app-blocker")));
  EXPECT_EQ(Versions(), "r2");
  blocker->Wait();

  WriteManifest("r3.yaml", {{"r3", {"r2"}, "ALTER TABLE busy ADD COLUMN other text;", "", ""}});
  blocker =
      StartPsql("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT;",
                "app-blocker");
  ASSERT_TRUE(WaitForLockHeldBy("app-blocker"));
  r = Sluice({"upgrade", "head", "--ddl-lock-timeout=200ms", "--ddl-retries=2"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("55P03"), HasSubstr("attempt=3/3")));
  EXPECT_EQ(Versions(), "r2");
  EndSessions("app-blocker");
}

TEST_F(MigrateTest, LockWaitTimesOutNamingTheHolderAndANoOpNeedsNoLock) {
  WriteLinear(1);
  std::unique_ptr<Process> holder =
      StartPsql("SELECT pg_advisory_lock(4242); SELECT pg_sleep(20);", "other-runner");
  ASSERT_TRUE(WaitForLockHeldBy("other-runner"));
  ProcessResult r = Sluice({"upgrade", "head", "--lock-key=4242", "--lock-wait=1s"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("waiting for the migration lock"), HasSubstr("other-runner")));
  EXPECT_FALSE(TableExists("alembic_version"));

  EndSessions("other-runner");
  holder->Wait();
  ASSERT_EQ(Sluice({"upgrade", "head", "--lock-key=4242"}).exit_code, 0);
  holder = StartPsql("SELECT pg_advisory_lock(4242); SELECT pg_sleep(20);", "other-runner");
  ASSERT_TRUE(WaitForLockHeldBy("other-runner"));
  r = Sluice({"upgrade", "head", "--lock-key=4242", "--lock-wait=1s"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("already at head"));
  EndSessions("other-runner");
}

TEST_F(MigrateTest, SixteenRunnersApplyEachRevisionExactlyOnce) {
  WriteLinear(100);
  for (const ProcessResult& r : RunConcurrently(16, {"upgrade", "head"})) {
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
  }
  EXPECT_EQ(Versions(), "r100");
  EXPECT_EQ(Rows("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename ~ "
                 "'^t[0-9]{3}$'"),
            "100");
  EXPECT_EQ(Rows("SELECT count(*), count(DISTINCT revision) FROM sluice_history WHERE "
                 "outcome = 'applied'"),
            "100|100");
  EXPECT_EQ(Rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT "
                 "oid FROM pg_database WHERE datname = current_database())"),
            "0");
}

TEST_F(MigrateTest, SixteenRunnersWithConcurrentIndexBuild) {
  WriteManifest("r1.yaml",
                {{"r1",
                  {},
                  "CREATE TABLE events (id bigint, kind text);\n"
                  "INSERT INTO events SELECT g, 'k' || (g % 97) FROM generate_series(1, 200000) g;",
                  "",
                  ""}});
  WriteManifest("r2.yaml", {{"r2",
                             {"r1"},
                             "CREATE INDEX CONCURRENTLY events_kind ON events (kind);",
                             "",
                             "transactional: false"}});
  WriteManifest("r3.yaml", {{"r3", {"r2"}, "ALTER TABLE events ADD COLUMN seen boolean;", "", ""}});
  for (const ProcessResult& r : RunConcurrently(16, {"upgrade", "head"})) {
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
  }
  EXPECT_EQ(Versions(), "r3");
  EXPECT_EQ(Rows("SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_kind'::regclass"),
            "t");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE revision = 'r2'"), "1");
}

TEST_F(MigrateTest, KilledRunnerLeavesNothingBehind) {
  WriteManifest("r1.yaml", {{"r1", {}, "CREATE TABLE t1 (id int);", "", ""}});
  WriteManifest("r2.yaml",
                {{"r2", {"r1"}, "CREATE TABLE t2 (id int);\nSELECT pg_sleep(4);", "", ""}});
  std::unique_ptr<Process> runner = StartSluice({"upgrade", "head"});
  bool sleeping = false;
  for (int i = 0; i < 200 && !sleeping; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    sleeping = Rows(
                   "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(4)%' "
                   "AND application_name LIKE 'sluice:%' AND datname = current_database()") == "1";
  }
  ASSERT_TRUE(sleeping) << runner->ErrorsSoFar();
  runner->Kill(SIGKILL);
  runner->Wait();
  // The server ends the dead client's sessions (and so its lock) within its connection check.
  // Only this test's database: tests running beside this one (ctest -j2) have sluice sessions too,
  // and PgBouncer's idle server connections keep the application_name of their last client.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = Rows(
               "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sluice:%' AND "
               "datname = current_database()") == "0";
    if (!gone) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(gone);
  EXPECT_EQ(Versions(), "r1");
  EXPECT_FALSE(TableExists("t2"));
  EXPECT_EQ(Rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT "
                 "oid FROM pg_database WHERE datname = current_database())"),
            "0");
  ProcessResult r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r2");
}

// The lock connection's server session ends mid-revision (pg_terminate_backend by an
// administrator, idle_session_timeout): the lock goes with it, and the runner's check before
// COMMIT rolls the revision back instead of committing it unlocked, while another runner could
// already be migrating.
TEST_F(MigrateTest, ARunnerWhoseLockConnectionEndedCommitsNothingMore) {
  WriteManifest("r1.yaml", {{"r1", {}, "CREATE TABLE t1 (id int);", "", ""}});
  WriteManifest("r2.yaml",
                {{"r2", {"r1"}, "CREATE TABLE t2 (id int);\nSELECT pg_sleep(2);", "", ""}});
  WriteManifest("r3.yaml", {{"r3", {"r2"}, "CREATE TABLE t3 (id int);", "", ""}});
  std::unique_ptr<Process> runner = StartSluice({"upgrade", "head"});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Rows(
                   "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' AND "
                   "application_name LIKE 'sluice:%' AND datname = current_database()") == "1";
      },
      absl::Seconds(10)))
      << runner->ErrorsSoFar();
  ASSERT_EQ(Rows("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND "
                 "granted AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE "
                 "datname = current_database())"),
            "t");
  ProcessResult r = runner->Wait();
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("no longer holds the migration lock"));
  EXPECT_EQ(Versions(), "r1");
  EXPECT_FALSE(TableExists("t2"));
  EXPECT_EQ(Rows("SELECT string_agg(revision || ':' || outcome, ',' ORDER BY id) FROM "
                 "sluice_history"),
            "r1:applied");
  r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r3");
}

TEST_F(MigrateTest, AheadOfTheManifestsWarnsAndDowngradesFromStoredSql) {
  WriteLinear(3);
  ASSERT_EQ(Sluice({"upgrade", "head"}).exit_code, 0);
  RemoveManifest("r003.yaml");  // an older release, rolled back
  ProcessResult r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("ahead of the manifests"));
  r = Sluice({"current"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("r003 (head) (ahead of the manifests)"));
  r = Sluice({"upgrade", "head", "--if-ahead=fail"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);

  r = Sluice({"downgrade", "r002"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r002");
  EXPECT_FALSE(TableExists("t003"));
  EXPECT_TRUE(TableExists("t002"));
}

TEST_F(MigrateTest, HostileSchemaAndTableNamesAreQuoted) {
  WriteLinear(2);
  const std::string schema = "My \"Schema\"; DROP TABLE t001; --";
  const std::string table = "Version Table";
  ProcessResult r = Sluice({"upgrade", "head", "--schema", schema, "--version-table", table});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(
      Rows("SELECT version_num FROM \"My \"\"Schema\"\"; DROP TABLE t001; --\".\"Version Table\""),
      "r002");
  EXPECT_EQ(Rows("SELECT count(*) FROM \"My \"\"Schema\"\"; DROP TABLE t001; --\".sluice_history"),
            "2");
  EXPECT_TRUE(TableExists("t001"));
  r = Sluice({"current", "--schema", schema, "--version-table", table});
  EXPECT_EQ(r.out, "r002 (head)\n") << Describe(r);
}

TEST_F(MigrateTest, ConnectionSourcesAndPasswordsNeverShown) {
  WriteLinear(1);
  // The test cluster trusts local connections, so any password is accepted and must stay hidden.
  const std::string with_password = absl::StrCat("postgresql+asyncpg://", user(), ":s3cr3t-pw@",
                                                 host(), ":", port(), "/", database());
  std::vector<std::vector<std::string>> commands = {
      {"upgrade", "head"}, {"current"},       {"history"},           {"check"},
      {"validate"},        {"stamp", "head"}, {"downgrade", "base"}, {"upgrade", "head", "-v"}};
  for (const auto& command : commands) {
    std::vector<std::string> args = {SluiceBinary()};
    args.insert(args.end(), command.begin(), command.end());
    args.push_back("--migrations=" + manifests_.string());
    args.push_back("--database-url=" + with_password);
    ProcessResult r = RunProcess(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("s3cr3t-pw"))) << command[0];
  }
  // Unreachable: retried, then exit 7, with the password still hidden.
  ProcessResult r = RunProcess(
      {SluiceBinary(), "upgrade", "head", "--migrations=" + manifests_.string(),
       "--database-url=postgresql://u:s3cr3t-pw@127.0.0.1:9/db", "--connect-timeout=1s", "-v"});
  EXPECT_EQ(r.exit_code, 7) << Describe(r);
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("s3cr3t-pw")));
  EXPECT_THAT(r.err, HasSubstr("u:***@127.0.0.1:9"));

  // --database-url-file, then DATABASE_URL.
  const std::filesystem::path secret =
      manifests_.parent_path() / (manifests_.filename().string() + ".url");
  std::ofstream(secret) << with_password << "\n";
  r = RunProcess({SluiceBinary(), "current", "--migrations=" + manifests_.string(),
                  "--database-url-file=" + secret.string()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "r001 (head)\n");
  std::filesystem::remove(secret);
  r = RunProcess({SluiceBinary(), "current", "--migrations=" + manifests_.string()},
                 {{"DATABASE_URL", with_password}});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "r001 (head)\n");
}

}  // namespace
}  // namespace sluice::testing
