// `sluice wait` against a real PostgreSQL, run as the application's init container runs it: with a
// role that may only SELECT the version table (no history, no DDL, no lock).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/migrate_test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

class WaitTest : public MigrateTest {
 protected:
  void SetUp() override {
    MigrateTest::SetUp();
    if (HasFatalFailure()) return;
    reader_ = "reader_" + database();
    // The version table exists from the start (Alembic's DDL), so the grant can be made before
    // any migration runs, as a platform team would make it.
    Rows(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT "
        "alembic_version_pkc PRIMARY KEY (version_num))");
    Rows(absl::StrCat("CREATE ROLE ", reader_, " LOGIN"));
    Rows("REVOKE ALL ON SCHEMA public FROM PUBLIC");
    Rows(absl::StrCat("GRANT USAGE ON SCHEMA public TO ", reader_));
    Rows(absl::StrCat("GRANT SELECT ON alembic_version TO ", reader_));
    reader_dsn_ = absl::StrCat(dsn(), " user=", reader_);
  }
  void TearDown() override {
    if (!reader_.empty()) {
      Rows(absl::StrCat("DROP OWNED BY ", reader_));
      Rows(absl::StrCat("DROP ROLE ", reader_));
    }
    MigrateTest::TearDown();
  }

  // Runs `sluice ARGS` as the reader role.
  ProcessResult AsReader(std::vector<std::string> args) {
    UseDatabaseUrl(reader_dsn_);
    ProcessResult result = Sluice(std::move(args));
    UseDatabaseUrl("");
    return result;
  }
  // Runs `sluice wait ARGS` as the reader role.
  ProcessResult WaitAsReader(std::vector<std::string> args) {
    args.insert(args.begin(), "wait");
    return AsReader(std::move(args));
  }

  std::string reader_;
  std::string reader_dsn_;
};

TEST_F(WaitTest, ReturnsOnceAnotherRunnerMigratedWithOnlySelectOnTheVersionTable) {
  WriteLinear(3);
  ProcessResult r = Sluice({"upgrade", "r001"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  // The reader cannot run `check` (it reads sluice_history), but `wait` needs nothing more.
  r = AsReader({"check"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("permission denied"));

  const absl::Time start = absl::Now();
  UseDatabaseUrl(reader_dsn_);
  std::unique_ptr<Process> waiter = StartSluice({"wait", "--timeout=60s"});
  UseDatabaseUrl("");
  // It is polling once its session is there.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Rows(absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE usename = '", reader_,
                                 "'")) == "1";
      },
      absl::Seconds(20)));
  r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ProcessResult waited = waiter->Wait(absl::Seconds(30));
  EXPECT_EQ(waited.exit_code, 0) << Describe(waited);
  EXPECT_EQ(waited.out, "up to date with head: r003\n");
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));

  // Already there: at once.
  r = WaitAsReader({"head", "--timeout=1s"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "up to date with head: r003\n");
  r = WaitAsReader({"r002"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(WaitTest, ExitsThreeWhenTheTimeoutPassesWithRevisionsPending) {
  WriteLinear(3);
  ProcessResult r = Sluice({"upgrade", "r001"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const absl::Time start = absl::Now();
  r = WaitAsReader({"--timeout=1s"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_EQ(r.out, "2 pending: r002, r003\n");
  EXPECT_THAT(r.err,
              HasSubstr("the database did not reach head within --timeout 1s; it is at r001"));
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));

  // Nothing applied yet (the version table empty): everything pending.
  Rows("DELETE FROM alembic_version");
  r = WaitAsReader({"--timeout=0s"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_EQ(r.out, "3 pending: r001, r002, r003\n");
}

TEST_F(WaitTest, ADatabaseAheadOfTheManifestsCountsAsReady) {
  WriteLinear(3);
  ProcessResult r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  RemoveManifest("r003.yaml");  // an older release's manifests
  r = WaitAsReader({"--timeout=5s"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "up to date with head: r003\n");
  EXPECT_THAT(r.err, HasSubstr("the database is ahead of the manifests: it has r003"));
}

TEST_F(WaitTest, ReportsBadTargetsMissingGrantsAndUnreachableDatabases) {
  WriteLinear(2);
  ProcessResult r = WaitAsReader({"nosuch", "--timeout=30s"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);

  Rows(absl::StrCat("REVOKE SELECT ON alembic_version FROM ", reader_));
  r = WaitAsReader({"--timeout=30s"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("permission denied for table alembic_version"));

  const absl::Time start = absl::Now();
  UseDatabaseUrl("postgresql://sluice@127.0.0.1:1/none");
  r = Sluice({"wait", "--timeout=1s", "--connect-timeout=1s"});
  UseDatabaseUrl("");
  EXPECT_EQ(r.exit_code, 7) << Describe(r);
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

}  // namespace
}  // namespace sluice::testing
