// The PostgreSQL server stops in the middle of a run: sluice must exit with a clear error and the
// "database unreachable" code, and after a restart the next run completes with nothing lost. The
// test runs its own throwaway cluster, since it stops the server.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/migrate_test_support.h"
#include "tests/support/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

std::string Psql(const std::string& dsn, const std::string& sql) {
  ProcessResult r = RunProcess({"psql", "-X", "-A", "-t", "-q", "-d", dsn, "-c", sql});
  EXPECT_EQ(r.exit_code, 0) << sql << "\n" << r.err;
  return std::string(absl::StripTrailingAsciiWhitespace(r.out));
}

TEST(ServerRestartTest, RunFailsCleanlyAndTheNextRunCompletes) {
  OwnTestCluster cluster("restart-test", /*with_poolers=*/false);
  ASSERT_TRUE(cluster.Start());
  const std::string dsn = cluster.dsn();

  const std::filesystem::path manifests =
      std::filesystem::temp_directory_path() / absl::StrCat("sluice-restart-manifests-", getpid());
  std::filesystem::create_directories(manifests);
  absl::Cleanup remove_manifests = [&] { std::filesystem::remove_all(manifests); };
  std::ofstream(manifests / "all.yaml")
      << "revision: r1\nupgrade: CREATE TABLE t1 (id int);\n---\n"
         "revision: r2\ndown_revision: r1\nupgrade: |\n  CREATE TABLE t2 (id int);\n"
         "  SELECT pg_sleep(5);\n---\n"
         "revision: r3\ndown_revision: r2\nupgrade: CREATE TABLE t3 (id int);\n";
  const std::vector<std::string> upgrade = {SluiceBinary(),
                                            "upgrade",
                                            "head",
                                            "--migrations=" + manifests.string(),
                                            "--database-url=" + dsn,
                                            "--connect-timeout=2s"};

  Process runner(upgrade);
  bool sleeping = false;
  for (int i = 0; i < 200 && !sleeping; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    sleeping = Psql(dsn,
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5)%' "
                    "AND application_name LIKE 'sluice:%'") == "1";
  }
  ASSERT_TRUE(sleeping) << runner.ErrorsSoFar();
  ASSERT_EQ(cluster.Script("pause").exit_code, 0);

  ProcessResult r = runner.Wait(absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_THAT(r.err, HasSubstr("revision r2"));
  EXPECT_THAT(r.err, HasSubstr("connection"));

  ASSERT_TRUE(cluster.Start());
  ASSERT_EQ(cluster.dsn(), dsn);
  EXPECT_EQ(Psql(dsn, "SELECT string_agg(version_num, ',') FROM alembic_version"), "r1");
  EXPECT_EQ(Psql(dsn, "SELECT to_regclass('t2') IS NULL"), "t");

  r = RunProcess(upgrade);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Psql(dsn, "SELECT string_agg(version_num, ',') FROM alembic_version"), "r3");
  EXPECT_EQ(Psql(dsn,
                 "SELECT string_agg(revision, ',' ORDER BY id) FROM sluice_history WHERE "
                 "outcome = 'applied'"),
            "r1,r2,r3");
}

}  // namespace
}  // namespace sluice::testing
