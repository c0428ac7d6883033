// Unit tests of the two lock modes against the in-memory database: the session lock refused behind
// a (simulated) transaction pooler, and the lease: taken, renewed, checked before each commit,
// lost, released, and freed by force only once expired.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
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
using ::testing::StartsWith;
using PooledLocks = store::MemoryDatabase::PooledLocks;

std::vector<manifest::Migration> ThreeRevisions() {
  return {Revision("a", {}, "CREATE TABLE a (id int);"),
          Revision("b", {"a"}, "CREATE TABLE b (id int);"),
          Revision("c", {"b"}, "CREATE TABLE c (id int);")};
}

// Runs `action` after each step, with the step's revision.
class AfterStep : public Observer {
 public:
  explicit AfterStep(std::function<void(const std::string&)> action) : action_(std::move(action)) {}
  void OnStepFinished(const StepOutcome& step) override { action_(step.revision); }
  void OnWaitingForLock(const store::LockHolder& holder) override {
    waited_for.push_back(holder.application_name);
  }
  std::vector<std::string> waited_for;

 private:
  std::function<void(const std::string&)> action_;
};

std::vector<std::string> AppliedRevisions(const std::vector<store::HistoryRow>& history) {
  std::vector<std::string> revisions;
  for (const store::HistoryRow& row : history) {
    revisions.push_back(absl::StrCat(row.revision, ":", row.outcome));
  }
  return revisions;
}

class SessionLockBehindAPoolerTest : public EngineTest,
                                     public ::testing::WithParamInterface<PooledLocks> {};

TEST_P(SessionLockBehindAPoolerTest, IsRefusedNamingTheCauseAndBothFixes) {
  db_.SimulateTransactionPoolingForTest(true, GetParam());
  std::unique_ptr<Engine> engine = MakeEngine(ThreeRevisions());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitLockTimeout);
  const std::string message(result.status().message());
  EXPECT_THAT(message, HasSubstr("not one server session"));
  EXPECT_THAT(message, HasSubstr("transaction"));
  EXPECT_THAT(message, HasSubstr("--lock-database-url"));
  EXPECT_THAT(message, HasSubstr("--lock-mode=lease"));
  EXPECT_TRUE(Versions().empty());
  EXPECT_TRUE(db_.EffectsForTest().empty());
}

TEST_P(SessionLockBehindAPoolerTest, StampAndResolveAreRefusedToo) {
  db_.SimulateTransactionPoolingForTest(true, GetParam());
  absl::StatusOr<RunResult> stamped = MakeEngine(ThreeRevisions())->Stamp("head", false);
  ASSERT_FALSE(stamped.ok());
  EXPECT_EQ(failure::ExitCodeFor(stamped.status()), failure::kExitLockTimeout);
  absl::Status resolved = MakeEngine(ThreeRevisions())->Resolve("a", true);
  EXPECT_EQ(failure::ExitCodeFor(resolved), failure::kExitLockTimeout);
  EXPECT_TRUE(Versions().empty());
}

TEST_P(SessionLockBehindAPoolerTest, TheFastNoOpNeedsNoLockAndSucceeds) {
  db_.SetVersionsForTest(options_.tables, {"c"});
  db_.SimulateTransactionPoolingForTest(true, GetParam());
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions())->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_TRUE(result->already_at_target);
}

TEST_P(SessionLockBehindAPoolerTest, LeaseModeWorksThere) {
  db_.SimulateTransactionPoolingForTest(true, GetParam());
  options_.lock_mode = LockMode::kLease;
  ASSERT_THAT(MakeEngine(ThreeRevisions())->Upgrade("head"), IsOk());
  EXPECT_THAT(Versions(), ElementsAre("c"));
}

INSTANTIATE_TEST_SUITE_P(BothPoolerBehaviours, SessionLockBehindAPoolerTest,
                         ::testing::Values(PooledLocks::kLostBetweenStatements,
                                           PooledLocks::kOnTheSharedSession));

// After "a", the lock connection's session ends and another runner takes the lock: this runner's
// check before committing "b" finds the lock held for another runner. The check reads the lock
// table through a proxy, and probes only this runner's mark on a direct connection.
class LockLostTest : public EngineTest, public ::testing::WithParamInterface<bool> {};

TEST_P(LockLostTest, ARunnerWhoseAdvisoryLockWentElsewhereCommitsNothingMore) {
  db_.SetDirectConnectionsForTest(GetParam());
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  AfterStep observer([&](const std::string& revision) {
    if (revision != "a") return;
    db_.DropAdvisoryLockForTest(LockKey());
    ASSERT_THAT(other->TryLockAs(LockKey(), 7), IsOk());
  });
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions(), &observer)->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitLockTimeout);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("no longer holds the migration lock"));
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(AppliedRevisions(History()), ElementsAre("a:applied"));
  EXPECT_THAT(db_.EffectsForTest(), ElementsAre("CREATE TABLE a (id int);"));
}

INSTANTIATE_TEST_SUITE_P(DirectAndProxied, LockLostTest, ::testing::Bool());

class LeaseTest : public EngineTest {
 protected:
  LeaseTest() { options_.lock_mode = LockMode::kLease; }
};

TEST_F(LeaseTest, AppliesEverythingAndReleasesTheLease) {
  std::optional<store::Lease> during;
  AfterStep observer([&](const std::string&) { during = db_.LeaseForTest(LockKey()); });
  std::unique_ptr<Engine> engine = MakeEngine(ThreeRevisions(), &observer);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_THAT(Versions(), ElementsAre("c"));
  ASSERT_TRUE(during.has_value());
  EXPECT_THAT(during->holder, StartsWith("unit-test-"));
  EXPECT_GT(during->remaining, absl::ZeroDuration());
  engine.reset();
  EXPECT_FALSE(db_.LeaseForTest(LockKey()).has_value()) << "the lease was not released";
}

TEST_F(LeaseTest, WaitsForAFreshLeaseAndTimesOutNamingItsHolder) {
  db_.SetLeaseHolderForTest(LockKey(), "other-pod-12345678");
  options_.lock_wait = absl::Milliseconds(100);
  AfterStep observer([](const std::string&) {});
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions(), &observer)->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitLockTimeout);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("other-pod-12345678"));
  EXPECT_THAT(observer.waited_for, ::testing::Contains("other-pod-12345678"));
  EXPECT_TRUE(Versions().empty());
  EXPECT_EQ(db_.LeaseForTest(LockKey())->holder, "other-pod-12345678");
}

TEST_F(LeaseTest, TakesOverAnExpiredLease) {
  db_.SetLeaseHolderForTest(LockKey(), "crashed-pod-12345678");
  db_.ExpireLeaseForTest(LockKey());
  ASSERT_THAT(MakeEngine(ThreeRevisions())->Upgrade("head"), IsOk());
  EXPECT_THAT(Versions(), ElementsAre("c"));
}

TEST_F(LeaseTest, ARunnerWhoseLeaseWasTakenOverCommitsNothingMoreAndRecordsNothing) {
  // After "a" commits, another runner takes the lease over (this runner's lease had expired).
  AfterStep observer([&](const std::string& revision) {
    if (revision == "a") db_.SetLeaseHolderForTest(LockKey(), "thief-12345678");
  });
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions(), &observer)->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitLockTimeout);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("lost the migration lease"));
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(AppliedRevisions(History()), ElementsAre("a:applied"));
  EXPECT_THAT(db_.EffectsForTest(), ElementsAre("CREATE TABLE a (id int);"));
  EXPECT_EQ(db_.LeaseForTest(LockKey())->holder, "thief-12345678") << "the thief's lease was freed";
}

TEST_F(LeaseTest, TheCheckBeforeCommitRollsBackARevisionWhoseLeaseExpiredWhileItRan) {
  // The lease expires while "b" runs (its statement expires it): the check inside its
  // transaction, before COMMIT, rolls it back.
  db_.ExpireLeaseOnExecuteForTest("CREATE TABLE b", LockKey());
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions())->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitLockTimeout);
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(AppliedRevisions(History()), ElementsAre("a:applied"));
  EXPECT_THAT(db_.EffectsForTest(), ElementsAre("CREATE TABLE a (id int);"));
}

TEST_F(LeaseTest, AHeartbeatThatCannotRenewWithinTheTtlStopsTheRunBeforeItsNextRevision) {
  options_.lease_ttl = absl::Seconds(1);
  // Every renewal fails (the heartbeat's connection is cut off) while "a" is being reported.
  AfterStep observer([&](const std::string& revision) {
    if (revision != "a") return;
    db_.FailNextLeaseCallForTest(absl::UnavailableError("connection lost"), "RenewLease", 1000);
    absl::SleepFor(absl::Milliseconds(1500));
  });
  absl::StatusOr<RunResult> result = MakeEngine(ThreeRevisions(), &observer)->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitLockTimeout);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("did not renew it within"));
  EXPECT_THAT(Versions(), ElementsAre("a"));
  EXPECT_THAT(AppliedRevisions(History()), ElementsAre("a:applied"));
}

TEST_F(LeaseTest, TheHeartbeatKeepsALongRunsLeaseAlive) {
  options_.lease_ttl = absl::Seconds(1);
  // Each step outlasts the TTL; the heartbeat (every third of it) renews the lease meanwhile.
  AfterStep observer([](const std::string&) { absl::SleepFor(absl::Milliseconds(1300)); });
  ASSERT_THAT(MakeEngine(ThreeRevisions(), &observer)->Upgrade("head"), IsOk());
  EXPECT_THAT(Versions(), ElementsAre("c"));
}

TEST_F(LeaseTest, StampAndResolveTakeTheLeaseToo) {
  db_.SetLeaseHolderForTest(LockKey(), "other-pod-12345678");
  options_.lock_wait = absl::Milliseconds(50);
  absl::StatusOr<RunResult> stamped = MakeEngine(ThreeRevisions())->Stamp("head", false);
  EXPECT_EQ(failure::ExitCodeFor(stamped.status()), failure::kExitLockTimeout);
  db_.ExpireLeaseForTest(LockKey());
  ASSERT_THAT(MakeEngine(ThreeRevisions())->Stamp("head", false), IsOk());
  EXPECT_THAT(Versions(), ElementsAre("c"));
}

TEST_F(LeaseTest, ForceReleaseRefusesAFreshLeaseAndFreesAnExpiredOne) {
  std::unique_ptr<Engine> engine = MakeEngine(ThreeRevisions());
  absl::StatusOr<std::optional<store::Lease>> none = engine->ForceReleaseLease();
  ASSERT_THAT(none, IsOk());
  EXPECT_FALSE(none->has_value());

  db_.SetLeaseHolderForTest(LockKey(), "alive-pod-12345678");
  absl::StatusOr<std::optional<store::Lease>> fresh = engine->ForceReleaseLease();
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(failure::ExitCodeFor(fresh.status()), failure::kExitLockTimeout);
  EXPECT_THAT(std::string(fresh.status().message()), HasSubstr("alive-pod-12345678"));
  EXPECT_TRUE(db_.LeaseForTest(LockKey()).has_value());

  db_.ExpireLeaseForTest(LockKey());
  absl::StatusOr<LockStatus> status = engine->ReadLockStatus();
  ASSERT_THAT(status, IsOk());
  ASSERT_TRUE(status->lease.has_value());
  EXPECT_LE(status->lease->remaining, absl::ZeroDuration());
  absl::StatusOr<std::optional<store::Lease>> released = engine->ForceReleaseLease();
  ASSERT_THAT(released, IsOk());
  ASSERT_TRUE(released->has_value());
  EXPECT_EQ((*released)->holder, "alive-pod-12345678");
  EXPECT_FALSE(db_.LeaseForTest(LockKey()).has_value());
}

TEST_F(EngineTest, LockStatusNamesTheAdvisoryLocksHolder) {
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLock(LockKey()), IsOk());
  absl::StatusOr<LockStatus> status = MakeEngine(ThreeRevisions())->ReadLockStatus();
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->key, LockKey());
  ASSERT_TRUE(status->session_holder.has_value());
  EXPECT_EQ(status->session_holder->application_name, "other-runner");
  EXPECT_FALSE(status->lease.has_value());
}

}  // namespace
}  // namespace sluice::engine
