// Unit tests of a run asked to stop (base::StopRequest: the CLI's SIGTERM and SIGINT) against the
// in-memory database: it stops between revisions, cancels the statement under way when asked to,
// stops waiting for the lock, and releases the lock in either mode.
#include <functional>
#include <memory>
#include <string>
#include <utility>
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
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<manifest::Migration> ThreeRevisions() {
  return {Revision("a", {}, "CREATE TABLE a (id int);"),
          Revision("b", {"a"}, "CREATE TABLE b (id int);"),
          Revision("c", {"b"}, "CREATE TABLE c (id int);")};
}

class RunAfterStep : public Observer {
 public:
  explicit RunAfterStep(std::function<void(const std::string&)> action)
      : action_(std::move(action)) {}
  void OnStepFinished(const StepOutcome& step) override { action_(step.revision); }

 private:
  std::function<void(const std::string&)> action_;
};

class StopWhenWaiting : public Observer {
 public:
  explicit StopWhenWaiting(base::StopRequest& stop) : stop_(stop) {}
  void OnWaitingForLock(const store::LockHolder& /*holder*/) override { stop_.Stop(); }

 private:
  base::StopRequest& stop_;
};

std::vector<std::string> Outcomes(const std::vector<store::HistoryRow>& history) {
  std::vector<std::string> outcomes;
  for (const store::HistoryRow& row : history) {
    outcomes.push_back(absl::StrCat(row.revision, ":", row.outcome));
  }
  return outcomes;
}

class StopTest : public EngineTest, public ::testing::WithParamInterface<LockMode> {
 protected:
  StopTest() {
    options_.lock_mode = GetParam();
    options_.stop = stop_;
  }

  // Whether anyone holds the migration lock, in the mode under test.
  bool LockHeld() {
    if (GetParam() == LockMode::kLease) return db_.LeaseForTest(LockKey()).has_value();
    std::unique_ptr<store::Store> probe = db_.Connect("probe");
    absl::StatusOr<bool> taken = probe->TryLock(LockKey());
    return !(taken.ok() && *taken);
  }

  std::shared_ptr<base::StopRequest> stop_ = std::make_shared<base::StopRequest>();
};

TEST_P(StopTest, StopsBeforeTheNextRevisionAndReleasesTheLock) {
  RunAfterStep observer([&](const std::string& revision) {
    if (revision == "a") stop_->Stop();
  });
  std::unique_ptr<Engine> engine = MakeEngine(ThreeRevisions(), &observer);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitInterrupted);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("before revision b: 1 of 3 steps done"));
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(Outcomes(History()), ElementsAre("a:applied"));
  EXPECT_TRUE(stop_->taken_up());
  engine.reset();
  EXPECT_FALSE(stop_->taken_up());
  EXPECT_FALSE(LockHeld()) << "the lock outlived the stopped run";
  // The next run finishes the job.
  options_.stop = nullptr;
  ASSERT_THAT(MakeEngine(ThreeRevisions())->Upgrade("head"), IsOk());
  EXPECT_THAT(Versions(), ElementsAre("c"));
}

TEST_P(StopTest, CancelRollsBackTheRevisionUnderWayWhichStaysPendingNotFailed) {
  db_.RunOnExecuteForTest("CREATE TABLE b", [&] { stop_->Cancel(); });
  std::unique_ptr<Engine> engine = MakeEngine(ThreeRevisions());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitInterrupted);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("during revision b, which rolled back"));
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(Outcomes(History()), ElementsAre("a:applied"));
  engine.reset();
  EXPECT_FALSE(LockHeld());
}

TEST_P(StopTest, CancelRollsBackASingleTransactionWhole) {
  options_.single_transaction = true;
  db_.RunOnExecuteForTest("CREATE TABLE c", [&] { stop_->Cancel(); });
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions())->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitInterrupted);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("nothing was applied"));
  EXPECT_THAT(Versions(), IsEmpty());
  EXPECT_THAT(History(), IsEmpty());
}

TEST_P(StopTest, AStatementThatFailsOnItsOwnDuringAStopIsStillAFailure) {
  db_.RunOnExecuteForTest("CREATE TABLE b", [&] { stop_->Stop(); });
  db_.FailNextExecuteForTest(store::MemoryDatabase::ServerError("42P07", "relation exists"),
                             "CREATE TABLE b");
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions())->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitMigrationFailed);
  EXPECT_THAT(Outcomes(History()), ElementsAre("a:applied", "b:failed"));
}

TEST_P(StopTest, StopsWaitingForTheLock) {
  std::unique_ptr<store::Store> other = db_.Connect("other-pod");
  if (GetParam() == LockMode::kLease) {
    db_.SetLeaseHolderForTest(LockKey(), "other-pod-12345678");
  } else {
    absl::StatusOr<bool> taken = other->TryLock(LockKey());
    ASSERT_TRUE(taken.ok() && *taken);
  }
  options_.lock_wait = absl::Minutes(5);
  StopWhenWaiting observer(*stop_);
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions(), &observer)->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitInterrupted);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("while waiting for the migration lock"));
  EXPECT_THAT(Versions(), IsEmpty());
}

TEST_P(StopTest, ARunAlreadyAtItsTargetSucceedsDespiteAStop) {
  ASSERT_THAT(MakeEngine(ThreeRevisions())->Upgrade("head"), IsOk());
  stop_->Stop();
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions())->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_TRUE(result->already_at_target);
}

INSTANTIATE_TEST_SUITE_P(BothLockModes, StopTest,
                         ::testing::Values(LockMode::kSession, LockMode::kLease),
                         [](const ::testing::TestParamInfo<LockMode>& info) {
                           return info.param == LockMode::kLease ? "Lease" : "Session";
                         });

}  // namespace
}  // namespace sluice::engine
