// Unit tests of how the engine applies steps, against the in-memory database: lock_timeout
// retries, failures and the structure they carry, transactional: false revisions that fail
// part-way and their resolution, invalid indexes.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/engine/engine.h"
#include "pkg/engine/engine_test_support.h"
#include "pkg/failure/failure.h"
#include "pkg/failure/migration_failure.h"
#include "tests/support/status_matchers.h"

namespace sluice::engine {
namespace {

using ::sluice::testing::IsOk;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kCreateB[] = "CREATE TABLE b (id int);";

std::vector<manifest::Migration> TwoRevisions() {
  return {Revision("a", {}, "CREATE TABLE a (id int);"), Revision("b", {"a"}, kCreateB)};
}

// Records the steps the engine reports.
class StepRecorder : public Observer {
 public:
  void OnStepFinished(const StepOutcome& step) override { steps.push_back(step); }
  std::vector<StepOutcome> steps;
};

TEST_F(EngineTest, LockTimeoutIsRetriedUntilTheRevisionLands) {
  options_.ddl_retries = 3;
  db_.FailNextExecuteForTest(store::MemoryDatabase::LockTimeoutError(), kCreateB, /*times=*/2);
  StepRecorder observer;
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions(), &observer);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_THAT(Versions(), ElementsAre("b"));
  EXPECT_THAT(db_.EffectsForTest(), ElementsAre("CREATE TABLE a (id int);", kCreateB));
  EXPECT_THAT(log_.str(), AllOf(HasSubstr("attempt=1/4"), HasSubstr("attempt=2/4"),
                                Not(HasSubstr("attempt=3/4"))));
  ASSERT_EQ(observer.steps.size(), 2u);
  EXPECT_TRUE(observer.steps[1].ok);
  EXPECT_THAT(observer.steps[1].versions_after, ElementsAre("b"));
}

TEST_F(EngineTest, LockTimeoutBeyondTheRetriesFailsTheRevisionWithItsStructure) {
  options_.ddl_retries = 2;
  db_.FailNextExecuteForTest(store::MemoryDatabase::LockTimeoutError(), kCreateB, /*times=*/100);
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitMigrationFailed);
  std::optional<failure::MigrationFailure> failed = failure::MigrationFailureOf(result.status());
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->sqlstate, "55P03");
  EXPECT_EQ(failed->revision, "b");
  EXPECT_EQ(failed->direction, "upgrade");
  EXPECT_EQ(failed->file, "m/b.yaml");
  EXPECT_EQ(failed->revision_line, 1);
  EXPECT_THAT(log_.str(), HasSubstr("attempt=3/3"));
  EXPECT_THAT(Versions(), ElementsAre("a")) << "a landed before b failed";
  const std::vector<store::HistoryRow> history = History();
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().revision, "b");
  EXPECT_EQ(history.back().outcome, "failed");
  EXPECT_THAT(history.back().error, HasSubstr("SQLSTATE 55P03"));
}

TEST_F(EngineTest, FailedTransactionalRevisionIsRolledBackAndDescribed) {
  db_.FailNextExecuteForTest(
      store::MemoryDatabase::ServerError("42P01", "relation \"t\" does not exist"), kCreateB);
  StepRecorder observer;
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions(), &observer);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()),
              StartsWith("revision b (create b, m/b.yaml:1) failed to upgrade: SQLSTATE 42P01: "
                         "relation \"t\" does not exist"));
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(db_.EffectsForTest(), ElementsAre("CREATE TABLE a (id int);"));
  ASSERT_EQ(observer.steps.size(), 2u);
  EXPECT_FALSE(observer.steps[1].ok);
}

TEST_F(EngineTest, FailedRevisionWithoutDescriptionHasNoEmptyParentheses) {
  std::vector<manifest::Migration> migrations = TwoRevisions();
  migrations[1].description.clear();
  db_.FailNextExecuteForTest(store::MemoryDatabase::ServerError("42601", "syntax error"), kCreateB);
  std::unique_ptr<Engine> engine = MakeEngine(migrations);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()),
              StartsWith("revision b (m/b.yaml:1) failed to upgrade: SQLSTATE 42601"));
  EXPECT_THAT(std::string(result.status().message()), Not(HasSubstr("(, ")));
}

// b runs outside a transaction, statement by statement; its second statement fails.
class NonTransactionalTest : public EngineTest {
 protected:
  // Run one by one, each without its terminating semicolon.
  static constexpr char kFirst[] = "CREATE INDEX CONCURRENTLY b_x ON a (id)";
  static constexpr char kSecond[] = "CREATE UNIQUE INDEX CONCURRENTLY b_y ON a (id)";

  std::vector<manifest::Migration> Migrations() {
    std::vector<manifest::Migration> migrations = {
        Revision("a", {}, "CREATE TABLE a (id int);"),
        Revision("b", {"a"}, absl::StrCat(kFirst, ";\n", kSecond, ";"))};
    migrations[1].transactional = false;
    return migrations;
  }

  // Runs the upgrade that fails, and returns its status.
  absl::Status FailPartWay() {
    db_.FailNextExecuteForTest(
        store::MemoryDatabase::ServerError("23505", "could not create unique index \"b_y\"",
                                           "Key (id)=(1) is duplicated."),
        kSecond);
    std::unique_ptr<Engine> engine = MakeEngine(Migrations());
    return engine->Upgrade("head").status();
  }
};

TEST_F(NonTransactionalTest, FailurePartWayCarriesRevisionFileLineAndWhatTookEffect) {
  const absl::Status status = FailPartWay();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(failure::ExitCodeFor(status), failure::kExitMigrationFailed);
  std::optional<failure::MigrationFailure> failed = failure::MigrationFailureOf(status);
  ASSERT_TRUE(failed.has_value()) << status;
  EXPECT_EQ(failed->sqlstate, "23505");
  EXPECT_EQ(failed->message, "could not create unique index \"b_y\"");
  EXPECT_EQ(failed->detail, "Key (id)=(1) is duplicated.");
  EXPECT_EQ(failed->revision, "b");
  EXPECT_EQ(failed->file, "m/b.yaml");
  EXPECT_EQ(failed->sql_line, 2);  // the second statement starts on the SQL's second line
  EXPECT_FALSE(failed->placed_by_server);
  EXPECT_EQ(failed->line, 6);  // upgrade SQL from file line 5
  EXPECT_THAT(failed->note, HasSubstr("1 of its 2 statements took effect"));
  EXPECT_EQ(std::string(status.message()), failure::DescribeMigrationFailure(*failed));

  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(db_.EffectsForTest(), Contains(kFirst));
  EXPECT_THAT(db_.EffectsForTest(), Not(Contains(kSecond)));
  const std::vector<store::HistoryRow> history = History();
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().revision, "b");
  EXPECT_EQ(history.back().outcome, "failed");
  EXPECT_FALSE(history.back().transactional);
}

TEST_F(NonTransactionalTest, LaterRunsRefuseUntilResolvedAsRolledBack) {
  ASSERT_FALSE(FailPartWay().ok());
  {
    std::unique_ptr<Engine> engine = MakeEngine(Migrations());
    absl::StatusOr<RunResult> refused = engine->Upgrade("head");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(failure::ExitCodeFor(refused.status()), failure::kExitDrift);
    EXPECT_THAT(
        std::string(refused.status().message()),
        AllOf(HasSubstr("sluice resolve b applied"), HasSubstr("sluice resolve b rolled-back")));
  }
  {
    std::unique_ptr<Engine> engine = MakeEngine(Migrations());
    ASSERT_THAT(engine->Resolve("b", /*applied=*/false), IsOk());
  }
  std::unique_ptr<Engine> engine = MakeEngine(Migrations());
  ASSERT_THAT(engine->Upgrade("head"), IsOk());
  EXPECT_THAT(Versions(), ElementsAre("b"));
  EXPECT_EQ(History().back().outcome, "applied");
}

TEST_F(NonTransactionalTest, ResolvedAsAppliedRecordsTheRevisionWithoutRunningIt) {
  ASSERT_FALSE(FailPartWay().ok());
  const size_t effects_before = db_.EffectsForTest().size();
  std::unique_ptr<Engine> engine = MakeEngine(Migrations());
  ASSERT_THAT(engine->Resolve("b", /*applied=*/true), IsOk());
  EXPECT_THAT(Versions(), ElementsAre("b"));
  EXPECT_EQ(db_.EffectsForTest().size(), effects_before);
  const std::vector<store::HistoryRow> history = History();
  ASSERT_GE(history.size(), 2u);
  EXPECT_EQ(history[history.size() - 2].outcome, "resolved");
  EXPECT_EQ(history.back().outcome, "applied");
}

TEST_F(NonTransactionalTest, AnIndexLeftInvalidFailsTheRevision) {
  db_.InvalidateIndexOnExecuteForTest(kSecond, "b_y");
  std::unique_ptr<Engine> engine = MakeEngine(Migrations());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitMigrationFailed);
  EXPECT_THAT(std::string(result.status().message()),
              AllOf(HasSubstr("revision b"), HasSubstr("invalid indexes: b_y")));
  EXPECT_THAT(Versions(), ElementsAre("a"));
}

TEST_F(NonTransactionalTest, SingleTransactionRefusesIt) {
  options_.single_transaction = true;
  std::unique_ptr<Engine> engine = MakeEngine(Migrations());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitUsage);
  EXPECT_THAT(db_.EffectsForTest(), IsEmpty());
}

}  // namespace
}  // namespace sluice::engine
