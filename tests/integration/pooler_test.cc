// sluice behind PgBouncer (issue 9): the `sluice` binary run against the test database reached
// through the two PgBouncers that scripts/pg-test-cluster.sh starts in front of the test server,
// one in transaction pooling mode and one in session pooling mode. PgBouncer's `*` entry forwards
// each test's own scratch database. The tests that restart a pooler or the server run a cluster of
// their own (OwnTestCluster), so that the shared one is not disturbed.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/migrate_test_support.h"
#include "tests/support/process.h"

namespace sluice::testing {
namespace {

using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;

// The exit codes of product.md that these tests meet.
constexpr int kExitSqlFailed = 1;
constexpr int kExitLockNotAcquired = 6;
constexpr int kExitUnreachable = 7;

// The upgrade of a lease-mode runner with a short TTL, so that a lost holder's lease expires
// within the test's time.
const std::vector<std::string> kLeaseUpgrade = {"upgrade", "head", "--lock-mode=lease",
                                                "--lease-ttl=2s"};

// Runs of sluice against this test's database through the poolers, and what the tests read back.
class PoolerTest : public MigrateTest {
 protected:
  void SetUp() override {
    MigrateTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* variable :
         {kTestPgBouncerTransactionDsnVariable, kTestPgBouncerSessionDsnVariable}) {
      const char* value = std::getenv(variable);
      if (value == nullptr || value[0] == '\0') {
        GTEST_FAIL() << variable
                     << " is not set: this test needs PgBouncer in front of the test server. "
                        "Start both with `eval \"$(scripts/pg-test-cluster.sh start)\"` and export "
                     << kTestPgDsnVariable << ", " << kTestPgBouncerTransactionDsnVariable
                     << " and " << kTestPgBouncerSessionDsnVariable
                     << " (scripts/test.sh does it; Debian's pgbouncer package must be installed).";
      }
    }
    transaction_pooled_ = DsnVia(std::getenv(kTestPgBouncerTransactionDsnVariable));
    session_pooled_ = DsnVia(std::getenv(kTestPgBouncerSessionDsnVariable));
  }

  // This test's database through the transaction-pooling and the session-pooling PgBouncer.
  const std::string& transaction_pooled() const { return transaction_pooled_; }
  const std::string& session_pooled() const { return session_pooled_; }

  // Returns the revisions of the applied upgrade steps in the order they were applied, one per
  // history row, comma-separated.
  std::string AppliedUpgrades() {
    return Rows(
        "SELECT coalesce(string_agg(revision, ',' ORDER BY id), '') FROM sluice_history WHERE "
        "direction = 'upgrade' AND outcome = 'applied'");
  }
  // Returns how many upgrade rows the history holds, and for how many distinct revisions.
  std::string UpgradeRowsAndRevisions() {
    return Rows(
        "SELECT count(*) || '/' || count(DISTINCT revision) FROM sluice_history WHERE direction = "
        "'upgrade'");
  }
  // Returns how many of t001..tNNN exist.
  std::string LinearTablesThatExist() {
    return Rows(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename ~ "
        "'^t[0-9]{3}$'");
  }

  // Whether a backend of this test's database runs a statement that sleeps (a revision's
  // pg_sleep), other than the one asking.
  bool SleepingRevisionRuns() {
    return Rows(
               "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
               "pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%pg_sleep(%'") != "0";
  }
  // Waits (bounded) until a revision sleeps; returns whether one does.
  bool WaitForSleepingRevision() {
    return WaitUntil([&] { return SleepingRevisionRuns(); }, absl::Seconds(20));
  }

  // The lease row's holder ("" when there is no lease table or no row).
  std::string LeaseHolder() {
    if (Rows("SELECT to_regclass('public.sluice_lock') IS NULL") == "t") return "";
    return Rows("SELECT coalesce(string_agg(holder, ','), '') FROM sluice_lock");
  }

  // Creates the gate that the sleeping revisions read: while `sleep_gate.sleeping` is true their
  // pg_sleep runs, and a test opens the gate (OpenSleepGate) so that the runner taking over does
  // not sleep again.
  void CreateSleepGate() {
    Rows("CREATE TABLE sleep_gate (sleeping bool NOT NULL); INSERT INTO sleep_gate VALUES (true)");
  }
  void OpenSleepGate() { Rows("UPDATE sleep_gate SET sleeping = false"); }

  // Writes r001..rNNN (WriteLinear) but with revision `cic` a `transactional: false` revision that
  // builds index iNNN on t001 with CREATE INDEX CONCURRENTLY instead of creating a table.
  void WriteLinearWithConcurrentIndex(int count, int cic) {
    WriteLinear(count);
    const std::string id = absl::StrFormat("r%03d", cic);
    WriteManifest(id + ".yaml",
                  {{id,
                    {absl::StrFormat("r%03d", cic - 1)},
                    absl::StrFormat("CREATE INDEX CONCURRENTLY i%03d ON t001 (id);", cic),
                    absl::StrFormat("DROP INDEX CONCURRENTLY i%03d;", cic),
                    "transactional: false"}});
  }
  // The SQL of a revision that creates `table` and then sleeps `seconds` while the gate is shut.
  static std::string CreateAndSleep(const std::string& table, int seconds) {
    return absl::StrCat("CREATE TABLE ", table, " (id int);\nSELECT pg_sleep(", seconds,
                        ") FROM sleep_gate WHERE sleeping;");
  }

  // Asserts that nothing was applied: no revision's table, no version row, no history row.
  void ExpectNothingApplied() {
    EXPECT_EQ(LinearTablesThatExist(), "0");
    if (!TableExists("alembic_version")) return;
    EXPECT_EQ(Versions(), "");
    if (TableExists("sluice_history")) {
      EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history"), "0");
    }
  }

 private:
  std::string transaction_pooled_;
  std::string session_pooled_;
};

// a. The session advisory lock through transaction pooling: detected and refused.
TEST_F(PoolerTest, SessionLockThroughTransactionPoolingIsRefused) {
  WriteLinear(3);
  UseDatabaseUrl(transaction_pooled());
  ProcessResult r = Sluice({"upgrade", "head"});
  EXPECT_EQ(r.exit_code, kExitLockNotAcquired) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("transaction"));
  EXPECT_THAT(r.err, HasSubstr("--lock-database-url"));
  EXPECT_THAT(r.err, HasSubstr("--lock-mode=lease"));
  ExpectNothingApplied();

  // The same for the other commands that take the lock.
  r = Sluice({"stamp", "head"});
  EXPECT_EQ(r.exit_code, kExitLockNotAcquired) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--lock-mode=lease"));
  ExpectNothingApplied();
}

// Runners at once make the pooler hand server sessions around between them, so that one runner's
// statements may land in one server session by chance; each must still be refused. A few rounds,
// since a detection that can be fooled is fooled only in some of them.
TEST_F(PoolerTest, SessionLockThroughTransactionPoolingIsRefusedByEveryConcurrentRunner) {
  WriteLinear(3);
  UseDatabaseUrl(transaction_pooled());
  for (int round = 1; round <= 3 && !HasFailure(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    std::vector<ProcessResult> results = RunConcurrently(4, {"upgrade", "head"});
    for (const ProcessResult& r : results) {
      EXPECT_EQ(r.exit_code, kExitLockNotAcquired) << Describe(r);
      EXPECT_THAT(r.err, HasSubstr("transaction"));
      EXPECT_THAT(r.err, HasSubstr("--lock-database-url"));
      EXPECT_THAT(r.err, HasSubstr("--lock-mode=lease"));
    }
    ExpectNothingApplied();
  }
}

// b. The lease through transaction pooling: sixteen runners, each revision applied exactly once.
TEST_F(PoolerTest, LeaseThroughTransactionPoolingAppliesEachRevisionOnceUnderSixteenRunners) {
  WriteLinear(100);
  UseDatabaseUrl(transaction_pooled());
  std::vector<ProcessResult> results =
      RunConcurrently(16, {"upgrade", "head", "--lock-mode=lease"});
  for (const ProcessResult& r : results) EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r100");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "100/100");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE outcome = 'applied'"), "100");
  EXPECT_EQ(LinearTablesThatExist(), "100");
  // The lease table has the columns issue 9 names, and the lease was released at the end.
  EXPECT_EQ(Rows("SELECT string_agg(column_name, ',' ORDER BY column_name) FROM "
                 "information_schema.columns WHERE table_schema = 'public' AND table_name = "
                 "'sluice_lock' AND column_name IN ('holder', 'acquired_at', 'heartbeat_at', "
                 "'expires_at')"),
            "acquired_at,expires_at,heartbeat_at,holder");
  EXPECT_EQ(LeaseHolder(), "");

  // Downgrade takes the same lock.
  ProcessResult r = Sluice({"downgrade", "-5", "--lock-mode=lease"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r095");
  EXPECT_EQ(LinearTablesThatExist(), "95");
}

TEST_F(PoolerTest, LeaseThroughTransactionPoolingWithCreateIndexConcurrently) {
  WriteLinearWithConcurrentIndex(30, 15);
  UseDatabaseUrl(transaction_pooled());
  std::vector<ProcessResult> results =
      RunConcurrently(16, {"upgrade", "head", "--lock-mode=lease"});
  for (const ProcessResult& r : results) EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r030");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "30/30");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE outcome = 'applied'"), "30");
  EXPECT_EQ(Rows("SELECT indisvalid FROM pg_index WHERE indexrelid = 'i015'::regclass"), "t");
  EXPECT_EQ(LinearTablesThatExist(), "29");  // r015 builds an index instead of a table
}

// c. kill -9 of the lease holder mid-revision.
TEST_F(PoolerTest, KilledLeaseHolderRollsBackAndTheNextRunnerTakesOverAfterTheTtl) {
  CreateSleepGate();
  WriteManifest("all.yaml", {{"r001", {}, "CREATE TABLE t001 (id int);", "", ""},
                             {"r002", {"r001"}, CreateAndSleep("t002", 30), "", ""},
                             {"r003", {"r002"}, "CREATE TABLE t003 (id int);", "", ""}});
  UseDatabaseUrl(transaction_pooled());
  std::unique_ptr<Process> holder = StartSluice(kLeaseUpgrade, {{"HOSTNAME", "pod-a"}});
  ASSERT_TRUE(WaitForSleepingRevision()) << holder->ErrorsSoFar();
  EXPECT_THAT(LeaseHolder(), HasSubstr("pod-a"));
  holder->Kill(SIGKILL);
  ProcessResult a = holder->Wait(absl::Seconds(10));
  EXPECT_EQ(a.signal, SIGKILL) << Describe(a);
  const std::string expires_at = Rows("SELECT expires_at FROM sluice_lock");
  ASSERT_FALSE(expires_at.empty()) << "the killed holder's lease row is gone";

  // Its transaction rolls back: PgBouncer closes the server connection of a client that went
  // away mid-transaction, and the backend notices within client_connection_check_interval.
  EXPECT_TRUE(WaitUntil([&] { return !SleepingRevisionRuns(); }, absl::Seconds(10)))
      << "the killed holder's revision still runs on the server";
  OpenSleepGate();
  EXPECT_FALSE(TableExists("t002"));
  EXPECT_EQ(Versions(), "r001");
  EXPECT_EQ(AppliedUpgrades(), "r001");

  // The next runner (flags from the environment this time) waits for the lease to expire, then
  // completes.
  ProcessResult b =
      RunProcess(SluiceArgs({"upgrade", "head"}),
                 {{"HOSTNAME", "pod-b"}, {"SLUICE_LOCK_MODE", "lease"}, {"SLUICE_LEASE_TTL", "2s"}},
                 absl::Seconds(60));
  ASSERT_EQ(b.exit_code, 0) << Describe(b);
  EXPECT_EQ(Versions(), "r003");
  EXPECT_EQ(AppliedUpgrades(), "r001,r002,r003");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "3/3");
  EXPECT_TRUE(TableExists("t002") && TableExists("t003"));
  EXPECT_EQ(Rows("SELECT started_at >= '" + expires_at +
                 "'::timestamptz AND applied_by LIKE 'pod-b%' FROM sluice_history WHERE "
                 "revision = 'r002'"),
            "t")
      << "r002 started before the killed holder's lease expired at " << expires_at;
}

// d. A holder frozen past its TTL, then resumed.
TEST_F(PoolerTest, FrozenLeaseHolderCommitsNothingAfterLosingItsLease) {
  CreateSleepGate();
  WriteManifest("all.yaml", {{"r001", {}, "CREATE TABLE t001 (id int);", "", ""},
                             {"r002", {"r001"}, CreateAndSleep("t002", 1), "", ""},
                             {"r003", {"r002"}, "CREATE TABLE t003 (id int);", "", ""},
                             {"r004", {"r003"}, "CREATE TABLE t004 (id int);", "", ""}});
  UseDatabaseUrl(transaction_pooled());
  std::unique_ptr<Process> frozen = StartSluice(kLeaseUpgrade, {{"HOSTNAME", "pod-a"}});
  ASSERT_TRUE(WaitForSleepingRevision()) << frozen->ErrorsSoFar();
  frozen->Kill(SIGSTOP);

  // Its heartbeat stops with it: after the TTL the next runner takes the lease over, and then
  // waits for the frozen holder's open transaction (t002) or applies r002 itself.
  std::unique_ptr<Process> next = StartSluice(kLeaseUpgrade, {{"HOSTNAME", "pod-b"}});
  const bool taken_over = WaitUntil(
      [&] { return LeaseHolder().find("pod-b") != std::string::npos; }, absl::Seconds(20));
  OpenSleepGate();
  frozen->Kill(SIGCONT);
  ASSERT_TRUE(taken_over) << "lease holder: " << LeaseHolder() << "\n" << next->ErrorsSoFar();

  ProcessResult a = frozen->Wait(absl::Seconds(40));
  ProcessResult b = next->Wait(absl::Seconds(40));
  EXPECT_EQ(a.exit_code, kExitLockNotAcquired) << Describe(a);
  EXPECT_THAT(a.err, HasSubstr("lease"));
  EXPECT_EQ(b.exit_code, 0) << Describe(b);
  EXPECT_EQ(Versions(), "r004");
  EXPECT_EQ(AppliedUpgrades(), "r001,r002,r003,r004");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "4/4");
  EXPECT_EQ(Rows("SELECT string_agg(revision, ',' ORDER BY id) FROM sluice_history WHERE "
                 "applied_by LIKE 'pod-a%'"),
            "r001")
      << "the frozen holder recorded a step after it lost the lease";
  EXPECT_TRUE(TableExists("t002") && TableExists("t004"));
}

// e2. A holder asked to stop (SIGTERM: the pod is being deleted) lets the revision under way
// finish, stops before the next, and releases its lease, so that the next pod need not wait for
// the TTL.
TEST_F(PoolerTest, SigtermedLeaseHolderFinishesItsRevisionAndReleasesTheLease) {
  CreateSleepGate();
  WriteManifest("all.yaml", {{"r001", {}, "CREATE TABLE t001 (id int);", "", ""},
                             {"r002", {"r001"}, CreateAndSleep("t002", 2), "", ""},
                             {"r003", {"r002"}, "CREATE TABLE t003 (id int);", "", ""}});
  UseDatabaseUrl(transaction_pooled());
  std::unique_ptr<Process> holder = StartSluice(kLeaseUpgrade, {{"HOSTNAME", "pod-a"}});
  ASSERT_TRUE(WaitForSleepingRevision()) << holder->ErrorsSoFar();
  holder->Kill(SIGTERM);
  ProcessResult a = holder->Wait(absl::Seconds(20));
  EXPECT_EQ(a.exit_code, 143) << Describe(a);
  EXPECT_THAT(a.err, HasSubstr("before revision r003"));
  EXPECT_EQ(Versions(), "r002");
  EXPECT_EQ(AppliedUpgrades(), "r001,r002");
  EXPECT_EQ(LeaseHolder(), "") << "the stopped holder left its lease";

  OpenSleepGate();
  ProcessResult b = RunProcess(SluiceArgs(kLeaseUpgrade), {{"HOSTNAME", "pod-b"}});
  ASSERT_EQ(b.exit_code, 0) << Describe(b);
  EXPECT_EQ(Versions(), "r003");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "3/3");
}

// A second SIGTERM cancels the statement under way: its revision rolls back and stays pending
// (not failed), and the lease is released.
TEST_F(PoolerTest, SecondSigtermCancelsTheRevisionUnderWayWhichRollsBack) {
  CreateSleepGate();
  WriteManifest("all.yaml", {{"r001", {}, "CREATE TABLE t001 (id int);", "", ""},
                             {"r002", {"r001"}, CreateAndSleep("t002", 60), "", ""}});
  UseDatabaseUrl(transaction_pooled());
  std::unique_ptr<Process> holder = StartSluice(kLeaseUpgrade, {{"HOSTNAME", "pod-a"}});
  ASSERT_TRUE(WaitForSleepingRevision()) << holder->ErrorsSoFar();
  holder->Kill(SIGTERM);
  // Signals of one kind do not queue: the second is sent once the first was taken.
  ASSERT_TRUE(WaitUntil(
      [&] { return holder->ErrorsSoFar().find("stopping before the next") != std::string::npos; },
      absl::Seconds(10)))
      << holder->ErrorsSoFar();
  holder->Kill(SIGTERM);
  ProcessResult a = holder->Wait(absl::Seconds(20));
  EXPECT_EQ(a.exit_code, 143) << Describe(a);
  EXPECT_THAT(a.err, HasSubstr("during revision r002, which rolled back"));
  EXPECT_FALSE(SleepingRevisionRuns());
  EXPECT_FALSE(TableExists("t002"));
  EXPECT_EQ(Versions(), "r001");
  EXPECT_EQ(Rows("SELECT string_agg(revision || ':' || outcome, ',' ORDER BY id) FROM "
                 "sluice_history"),
            "r001:applied");
  EXPECT_EQ(LeaseHolder(), "");
}

// f. The advisory lock keeps working through session pooling and with a direct lock connection.
TEST_F(PoolerTest, SessionLockThroughSessionPoolingAppliesEachRevisionOnceUnderSixteenRunners) {
  WriteLinear(100);
  UseDatabaseUrl(session_pooled());
  std::vector<ProcessResult> results = RunConcurrently(16, {"upgrade", "head"});
  for (const ProcessResult& r : results) EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r100");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "100/100");
  EXPECT_EQ(LinearTablesThatExist(), "100");
}

TEST_F(PoolerTest, SessionLockOnADirectConnectionWhileTheWorkGoesThroughTransactionPooling) {
  WriteLinear(40);
  UseDatabaseUrl(transaction_pooled());
  std::vector<ProcessResult> results =
      RunConcurrently(8, {"upgrade", "head", "--lock-database-url=" + dsn()});
  for (const ProcessResult& r : results) EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r040");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "40/40");

  // The lock's URL from a file (a mounted Secret), and from the environment.
  WriteLinear(60);
  const std::filesystem::path url_file = manifests_.parent_path() / (database() + "-lock-url");
  std::ofstream(url_file) << dsn() << "\n";
  results =
      RunConcurrently(8, {"upgrade", "r050", "--lock-database-url-file=" + url_file.string()});
  std::filesystem::remove(url_file);
  for (const ProcessResult& r : results) EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r050");
  ProcessResult r = Sluice({"upgrade", "head"}, {{"SLUICE_LOCK_DATABASE_URL", dsn()}});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r060");
  EXPECT_EQ(UpgradeRowsAndRevisions(), "60/60");
  EXPECT_EQ(LinearTablesThatExist(), "60");
}

// `sluice lock status` and `sluice lock release --force`.
TEST_F(PoolerTest, LockStatusNamesTheLeaseHolderAndReleaseFreesOnlyAnExpiredLease) {
  CreateSleepGate();
  WriteManifest("all.yaml", {{"r001", {}, CreateAndSleep("t001", 30), "", ""}});
  UseDatabaseUrl(transaction_pooled());
  std::unique_ptr<Process> holder = StartSluice(kLeaseUpgrade, {{"HOSTNAME", "pod-a"}});
  ASSERT_TRUE(WaitForSleepingRevision()) << holder->ErrorsSoFar();

  ProcessResult r = Sluice({"lock", "status"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("pod-a"));
  r = Sluice({"lock", "release", "--force"});
  EXPECT_THAT(r.exit_code, Not(Eq(0))) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("alive"));
  EXPECT_THAT(LeaseHolder(), HasSubstr("pod-a"));

  holder->Kill(SIGKILL);
  holder->Wait(absl::Seconds(10));
  OpenSleepGate();
  ASSERT_TRUE(
      WaitUntil([&] { return Rows("SELECT bool_and(expires_at < now()) FROM sluice_lock") == "t"; },
                absl::Seconds(10)));
  r = Sluice({"lock", "release", "--force"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(LeaseHolder(), "");
  r = Sluice({"lock", "status"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, Not(HasSubstr("pod-a")));
  r = Sluice({"lock", "release", "--force"});  // nothing left: says so, and succeeds
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("nothing to release"));

  // With the lease freed the next runner starts at once.
  r = Sluice(kLeaseUpgrade);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(AppliedUpgrades(), "r001");
}

TEST_F(PoolerTest, LockStatusNamesTheSessionLockHolder) {
  CreateSleepGate();
  WriteManifest("all.yaml", {{"r001", {}, CreateAndSleep("t001", 30), "", ""}});
  std::unique_ptr<Process> holder = StartSluice({"upgrade", "head"}, {{"HOSTNAME", "pod-s"}});
  ASSERT_TRUE(WaitForSleepingRevision()) << holder->ErrorsSoFar();
  ProcessResult r = Sluice({"lock", "status"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("pod-s"));
  holder->Kill(SIGKILL);
  holder->Wait(absl::Seconds(10));
  // Its backend, still in pg_sleep, ends with the test database (dropped WITH (FORCE)).
}

// e. PgBouncer restarted mid-run, and the server restarted behind it, on a cluster of this test's
// own.
class PoolerRestartTest : public PoolerTest {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new OwnTestCluster("pooler-restart-test");
    if (!cluster_->Start()) {
      delete cluster_;
      cluster_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    if (cluster_ == nullptr) GTEST_FAIL() << "the test's own cluster did not start";
    UseAdminDsn(cluster_->dsn());
    MigrateTest::SetUp();
    if (HasFatalFailure()) return;
    UseDatabaseUrl(DsnVia(cluster_->transaction_pooler_dsn()));
  }

  // Runs a lease-mode upgrade through the transaction pooler; while it sleeps in r002, runs
  // `pg-test-cluster.sh COMMAND ARGUMENT`; returns how the runner ended.
  ProcessResult RunInterruptedBy(const std::string& command, const std::string& argument) {
    CreateSleepGate();
    WriteManifest("all.yaml", {{"r001", {}, "CREATE TABLE t001 (id int);", "", ""},
                               {"r002", {"r001"}, CreateAndSleep("t002", 30), "", ""},
                               {"r003", {"r002"}, "CREATE TABLE t003 (id int);", "", ""}});
    std::vector<std::string> args = kLeaseUpgrade;
    args.push_back("--connect-timeout=3s");
    std::unique_ptr<Process> runner = StartSluice(args, {{"HOSTNAME", "pod-a"}});
    if (!WaitForSleepingRevision()) {
      ADD_FAILURE() << "r002 never ran: " << runner->ErrorsSoFar();
      return runner->Wait(absl::Seconds(10));
    }
    ProcessResult script = cluster_->Script(command, argument);
    EXPECT_EQ(script.exit_code, 0) << Describe(script);
    return runner->Wait(absl::Seconds(40));
  }

  // Asserts that r002 left nothing behind, then that the next run completes.
  void ExpectNothingHalfAppliedAndTheNextRunCompletes() {
    EXPECT_TRUE(WaitUntil([&] { return !SleepingRevisionRuns(); }, absl::Seconds(10)))
        << "the interrupted revision still runs on the server";
    OpenSleepGate();
    EXPECT_FALSE(TableExists("t002"));
    EXPECT_EQ(Versions(), "r001");
    EXPECT_EQ(AppliedUpgrades(), "r001");

    ProcessResult r =
        RunProcess(SluiceArgs(kLeaseUpgrade), {{"HOSTNAME", "pod-b"}}, absl::Seconds(60));
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Versions(), "r003");
    EXPECT_EQ(AppliedUpgrades(), "r001,r002,r003");
    EXPECT_EQ(UpgradeRowsAndRevisions(), "3/3");
    EXPECT_TRUE(TableExists("t002") && TableExists("t003"));
  }

  static OwnTestCluster* cluster_;
};

OwnTestCluster* PoolerRestartTest::cluster_ = nullptr;

TEST_F(PoolerRestartTest, PoolerRestartedMidRunFailsCleanlyAndTheNextRunCompletes) {
  ProcessResult r = RunInterruptedBy("restart-pgbouncer", "transaction");
  EXPECT_THAT(r.exit_code, AnyOf(Eq(kExitUnreachable), Eq(kExitSqlFailed))) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("r002"));
  EXPECT_THAT(r.err, HasSubstr("connection"));
  ExpectNothingHalfAppliedAndTheNextRunCompletes();
}

TEST_F(PoolerRestartTest, ServerRestartedBehindThePoolerMidRunFailsCleanlyAndTheNextRunCompletes) {
  ProcessResult r = RunInterruptedBy("restart-server", "");
  EXPECT_THAT(r.exit_code, AnyOf(Eq(kExitUnreachable), Eq(kExitSqlFailed))) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("r002"));
  EXPECT_THAT(r.err, HasSubstr("connection"));
  ExpectNothingHalfAppliedAndTheNextRunCompletes();
}

}  // namespace
}  // namespace sluice::testing
