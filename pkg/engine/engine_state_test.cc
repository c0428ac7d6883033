// Unit tests of what the engine reads from the database before it plans, against the in-memory
// database: verification and drift, a database ahead of the manifests, revisions nobody knows.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/engine/engine.h"
#include "pkg/engine/engine_test_support.h"
#include "pkg/failure/failure.h"
#include "tests/support/status_matchers.h"

namespace sluice::engine {
namespace {

using ::sluice::testing::IsOk;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<manifest::Migration> TwoRevisions() {
  return {Revision("a", {}, "CREATE TABLE a (id int);"),
          Revision("b", {"a"}, "CREATE TABLE b (id int);")};
}

TEST_F(EngineTest, InspectTellsVerifiedUnverifiedAndDriftedApart) {
  std::vector<manifest::Migration> migrations = {Revision("a", {}, "CREATE TABLE a (id int);"),
                                                 Revision("b", {"a"}, "CREATE TABLE b (id int);"),
                                                 Revision("c", {"b"}, "CREATE TABLE c (id int);")};
  db_.SetVersionsForTest(options_.tables, {"c"});
  // a: applied before sluice kept history; b: as in the manifest; c: changed since.
  db_.AppendHistoryForTest(options_.tables, AppliedRow(migrations[1]));
  store::HistoryRow changed = AppliedRow(migrations[2]);
  changed.checksum = "sha256:0000";
  db_.AppendHistoryForTest(options_.tables, changed);

  std::unique_ptr<Engine> engine = MakeEngine(migrations);
  absl::StatusOr<DatabaseState> state = engine->Inspect();
  ASSERT_THAT(state, IsOk());
  EXPECT_THAT(state->versions, ElementsAre("c"));
  ASSERT_EQ(state->applied.size(), 3u);
  EXPECT_EQ(state->applied[0].revision, "a");
  EXPECT_EQ(state->applied[0].verification, Verification::kUnverified);
  EXPECT_EQ(state->applied[1].verification, Verification::kVerified);
  EXPECT_EQ(state->applied[2].verification, Verification::kDrifted);
  EXPECT_EQ(state->applied[2].recorded_checksum, "sha256:0000");
  EXPECT_THAT(state->ahead, IsEmpty());
  EXPECT_FALSE(state->unresolved_failure.has_value());
}

TEST_F(EngineTest, DriftStopsUpgradeBeforeAnySqlRuns) {
  std::vector<manifest::Migration> migrations = TwoRevisions();
  store::HistoryRow changed = AppliedRow(migrations[0]);
  changed.checksum = "sha256:0000";
  db_.SetVersionsForTest(options_.tables, {"a"});
  db_.AppendHistoryForTest(options_.tables, changed);

  std::unique_ptr<Engine> engine = MakeEngine(migrations);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitDrift);
  EXPECT_THAT(
      std::string(result.status().message()),
      AllOf(HasSubstr("m/a.yaml:1"), HasSubstr("sha256:0000"), HasSubstr(changed.revision)));
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(db_.EffectsForTest(), IsEmpty());
}

TEST_F(EngineTest, AllowDriftWarnsAndProceeds) {
  options_.allow_drift = true;
  std::vector<manifest::Migration> migrations = TwoRevisions();
  store::HistoryRow changed = AppliedRow(migrations[0]);
  changed.checksum = "sha256:0000";
  db_.SetVersionsForTest(options_.tables, {"a"});
  db_.AppendHistoryForTest(options_.tables, changed);

  std::unique_ptr<Engine> engine = MakeEngine(migrations);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_THAT(Versions(), ElementsAre("b"));
  EXPECT_THAT(log_.str(), HasSubstr("applied revisions changed since they ran"));
}

// The database is at c, which an older release's manifests (a, b) lack; c's history row keeps
// its manifest.
class AheadTest : public EngineTest {
 protected:
  void SetUp() override {
    manifest::Migration c = Revision("c", {"b"}, "CREATE TABLE c (id int);");
    db_.SetVersionsForTest(options_.tables, {"c"});
    for (const manifest::Migration& m : TwoRevisions()) {
      db_.AppendHistoryForTest(options_.tables, AppliedRow(m));
    }
    db_.AppendHistoryForTest(options_.tables, AppliedRow(c));
  }
};

TEST_F(AheadTest, UpgradeWarnsAndSucceedsWithoutTheLock) {
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_TRUE(result->already_at_target);
  EXPECT_THAT(result->ahead, ElementsAre("c"));
  EXPECT_THAT(log_.str(), HasSubstr("ahead of the manifests"));
  EXPECT_EQ(db_.LockAttemptsForTest(), 0);
  EXPECT_NE(engine->Graph().Find("c"), nullptr) << "c is known from its history row";
}

TEST_F(AheadTest, IfAheadFailIsDrift) {
  options_.fail_if_ahead = true;
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitDrift);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("ahead of the manifests"));
}

TEST_F(AheadTest, DowngradeRevertsWithTheStoredDowngradeSql) {
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  absl::StatusOr<RunResult> result = engine->Downgrade("b");
  ASSERT_THAT(result, IsOk());
  ASSERT_EQ(result->steps.size(), 1u);
  EXPECT_EQ(result->steps[0].revision, "c");
  EXPECT_THAT(Versions(), ElementsAre("b"));
  EXPECT_THAT(db_.EffectsForTest(), ElementsAre("DROP TABLE c;"));
}

TEST_F(EngineTest, ARevisionNeitherManifestsNorHistoryKnowIsDrift) {
  db_.SetVersionsForTest(options_.tables, {"zzz"});
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitDrift);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("neither the manifests nor sluice's history know"));
  EXPECT_THAT(db_.EffectsForTest(), IsEmpty());
}

TEST_F(EngineTest, PendingListsWhatUpgradeWouldApplyWithoutTheLock) {
  db_.SetVersionsForTest(options_.tables, {"a"});
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  absl::StatusOr<std::vector<std::string>> pending = engine->Pending("head");
  ASSERT_THAT(pending, IsOk());
  EXPECT_THAT(*pending, ElementsAre("b"));
  EXPECT_EQ(db_.LockAttemptsForTest(), 0);
}

TEST_F(EngineTest, CheckVersionsReadsTheVersionTableOnly) {
  std::vector<manifest::Migration> migrations = TwoRevisions();
  std::unique_ptr<Engine> engine = MakeEngine(migrations);
  absl::StatusOr<VersionCheck> check = engine->CheckVersions("head");
  ASSERT_THAT(check, IsOk());
  EXPECT_THAT(check->versions, IsEmpty());
  EXPECT_THAT(check->pending, ElementsAre("a", "b"));

  db_.SetVersionsForTest(options_.tables, {"a"});
  check = engine->CheckVersions("head");
  ASSERT_THAT(check, IsOk());
  EXPECT_THAT(check->pending, ElementsAre("b"));
  check = engine->CheckVersions("a");
  ASSERT_THAT(check, IsOk());
  EXPECT_THAT(check->pending, IsEmpty());
  // Past the target counts as there (an upgrade to it would refuse to go down).
  db_.SetVersionsForTest(options_.tables, {"b"});
  check = engine->CheckVersions("a");
  ASSERT_THAT(check, IsOk());
  EXPECT_THAT(check->pending, IsEmpty());
  EXPECT_THAT(History(), IsEmpty());

  // A revision the manifests lack (no history needed to say so): ahead, nothing pending.
  db_.SetVersionsForTest(options_.tables, {"z-newer"});
  check = engine->CheckVersions("head");
  ASSERT_THAT(check, IsOk());
  EXPECT_THAT(check->ahead, ElementsAre("z-newer"));
  EXPECT_THAT(check->pending, IsEmpty());

  EXPECT_EQ(failure::ExitCodeFor(engine->CheckVersions("nosuch").status()), failure::kExitUsage);
}

TEST_F(EngineTest, WaitForTargetReturnsOnceAnotherRunnerMigrated) {
  options_.wait_poll_initial = absl::Milliseconds(1);
  options_.wait_poll_max = absl::Milliseconds(20);
  std::vector<manifest::Migration> migrations = TwoRevisions();
  std::unique_ptr<Engine> engine = MakeEngine(migrations);
  std::unique_ptr<Engine> runner = MakeEngine(migrations);
  const absl::Time start = absl::Now();
  std::thread migrate([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(runner->Upgrade("head"), IsOk());
  });
  absl::StatusOr<VersionCheck> check = engine->WaitForTarget("head", absl::Seconds(30));
  migrate.join();
  ASSERT_THAT(check, IsOk());
  EXPECT_THAT(check->pending, IsEmpty());
  EXPECT_THAT(check->versions, ElementsAre("b"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(EngineTest, WaitForTargetGivesUpAfterTheTimeoutWithRevisionsPending) {
  options_.wait_poll_initial = absl::Milliseconds(1);
  options_.wait_poll_max = absl::Milliseconds(20);
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  db_.SetVersionsForTest(options_.tables, {"a"});
  const absl::Time start = absl::Now();
  absl::StatusOr<VersionCheck> check = engine->WaitForTarget("head", absl::Milliseconds(200));
  ASSERT_THAT(check, IsOk());
  EXPECT_THAT(check->pending, ElementsAre("b"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // A bad target is not waited on.
  const absl::Time bad = absl::Now();
  EXPECT_EQ(failure::ExitCodeFor(engine->WaitForTarget("nosuch", absl::Seconds(30)).status()),
            failure::kExitUsage);
  EXPECT_LT(absl::Now() - bad, absl::Seconds(5));
}

}  // namespace
}  // namespace sluice::engine
