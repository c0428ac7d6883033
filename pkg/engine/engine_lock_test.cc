// Unit tests of the engine's lock handling against the in-memory database: polling with the lock
// held by another session, the fast no-op that takes no lock, --lock-wait, release at the end.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
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
using ::testing::Not;

std::vector<manifest::Migration> TwoRevisions() {
  return {Revision("a", {}, "CREATE TABLE a (id int);"),
          Revision("b", {"a"}, "CREATE TABLE b (id int);")};
}

// Runs `action` when the engine reports that it waits for the lock, and records for whom.
class OnWaiting : public Observer {
 public:
  explicit OnWaiting(std::function<void()> action) : action_(std::move(action)) {}
  void OnWaitingForLock(const store::LockHolder& holder) override {
    ++calls;
    waited_for.push_back(holder.application_name);
    action_();
  }
  int calls = 0;
  std::vector<std::string> waited_for;

 private:
  std::function<void()> action_;
};

TEST_F(EngineTest, AtTheTargetReturnsWithoutTryingTheLockHeldElsewhere) {
  std::vector<manifest::Migration> migrations = TwoRevisions();
  db_.SetVersionsForTest(options_.tables, {"b"});
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLock(LockKey()), IsOk());
  ASSERT_EQ(db_.LockAttemptsForTest(), 1);

  std::unique_ptr<Engine> engine = MakeEngine(migrations);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_TRUE(result->already_at_target);
  EXPECT_THAT(result->from_versions, ElementsAre("b"));
  EXPECT_TRUE(result->steps.empty());
  EXPECT_EQ(db_.LockAttemptsForTest(), 1) << "the fast no-op tried the lock";
  EXPECT_TRUE(db_.EffectsForTest().empty());
}

TEST_F(EngineTest, WaitsWhileAnotherSessionHoldsTheLockThenRunsOnce) {
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLock(LockKey()), IsOk());
  OnWaiting observer([&] { other.reset(); });  // the session ends, and its lock with it

  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions(), &observer);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_THAT(observer.waited_for, ElementsAre("other-runner"));
  EXPECT_THAT(log_.str(), HasSubstr("waiting for the migration lock"));
  EXPECT_FALSE(result->already_at_target);
  ASSERT_EQ(result->steps.size(), 2u);
  EXPECT_EQ(result->steps[0].revision, "a");
  EXPECT_EQ(result->steps[1].revision, "b");
  EXPECT_THAT(result->to_versions, ElementsAre("b"));
  EXPECT_THAT(Versions(), ElementsAre("b"));
  EXPECT_THAT(db_.EffectsForTest(),
              ElementsAre("CREATE TABLE a (id int);", "CREATE TABLE b (id int);"));
}

TEST_F(EngineTest, LockNotAcquiredWithinLockWaitIsALockTimeoutNamingTheHolder) {
  options_.lock_wait = absl::Milliseconds(50);
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLock(LockKey()), IsOk());

  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(failure::FailureKindOf(result.status()), failure::FailureKind::kLockTimeout);
  EXPECT_EQ(failure::ExitCodeFor(result.status()), failure::kExitLockTimeout);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("other-runner"));
  EXPECT_GT(db_.LockAttemptsForTest(), 2) << "the lock was not polled";
  EXPECT_TRUE(Versions().empty());
  EXPECT_TRUE(db_.EffectsForTest().empty());
}

// Replicas started together hand the lock on within a fraction of a second: a waiter looks up who
// holds it (pg_locks and pg_stat_activity: milliseconds of server time in a new session) only
// once it has waited lock_holder_lookup_after, or half of lock_wait when that is shorter.
TEST_F(EngineTest, AShortWaitDoesNotLookUpTheHolder) {
  options_.lock_holder_lookup_after = absl::Hours(1);
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLock(LockKey()), IsOk());
  OnWaiting observer([] {});
  std::thread holder([&] {
    absl::SleepFor(absl::Milliseconds(50));
    other.reset();
  });
  absl::StatusOr<RunResult> result = MakeEngine(TwoRevisions(), &observer)->Upgrade("head");
  holder.join();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(observer.calls, 0);
  EXPECT_THAT(log_.str(), Not(HasSubstr("waiting for the migration lock")));
  EXPECT_THAT(Versions(), ElementsAre("b"));
}

TEST_F(EngineTest, AWaiterLooksUpTheHolderByHalfItsLockWait) {
  options_.lock_holder_lookup_after = absl::Hours(1);
  options_.lock_wait = absl::Seconds(2);
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLock(LockKey()), IsOk());
  // Told who holds the lock halfway (a second in), the holder lets go: the run then goes on. Told
  // only at the deadline, it would fail.
  OnWaiting observer([&] { other.reset(); });
  absl::StatusOr<RunResult> result = MakeEngine(TwoRevisions(), &observer)->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_THAT(observer.waited_for, ElementsAre("other-runner"));
  EXPECT_THAT(log_.str(), HasSubstr("waiting for the migration lock"));
  EXPECT_THAT(Versions(), ElementsAre("b"));
}

TEST_F(EngineTest, ReleasesTheLockWhenDone) {
  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions());
  ASSERT_THAT(engine->Upgrade("head"), IsOk());
  std::unique_ptr<store::Store> other = db_.Connect("next-runner");
  absl::StatusOr<std::optional<store::LockHolder>> holder = other->LockHolderOf(LockKey());
  ASSERT_THAT(holder, IsOk());
  ASSERT_TRUE(holder->has_value()) << "the engine holds the lock until it is destroyed";
  EXPECT_EQ((*holder)->application_name, "unit-test");

  engine.reset();
  absl::StatusOr<bool> locked = other->TryLock(LockKey());
  ASSERT_THAT(locked, IsOk());
  EXPECT_TRUE(*locked);
}

TEST_F(EngineTest, StopsWaitingOnceTheHolderHasAppliedTheTarget) {
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLock(LockKey()), IsOk());
  // The holder applies everything while this runner waits, then lets go.
  OnWaiting observer([&] {
    db_.SetVersionsForTest(options_.tables, {"b"});
    other.reset();
  });

  std::unique_ptr<Engine> engine = MakeEngine(TwoRevisions(), &observer);
  absl::StatusOr<RunResult> result = engine->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(observer.calls, 1);
  EXPECT_TRUE(result->already_at_target);
  EXPECT_TRUE(result->steps.empty());
  EXPECT_THAT(result->from_versions, ElementsAre("b"));
  EXPECT_TRUE(db_.EffectsForTest().empty());
}

// An engine over db_ planning TwoRevisions(), whose factory counts the connections it opens: for
// what a waiter costs the server.
class WaiterTest : public EngineTest {
 protected:
  std::unique_ptr<Engine> CountingEngine(Observer* observer) {
    absl::StatusOr<graph::RevisionGraph> graph = graph::RevisionGraph::Build(TwoRevisions());
    EXPECT_THAT(graph.status(), IsOk());
    StoreFactory factory = [this](const std::string& application_name) {
      ++connections_;
      return absl::StatusOr<std::unique_ptr<store::Store>>(db_.Connect(application_name));
    };
    return std::make_unique<Engine>(std::make_shared<const graph::RevisionGraph>(*std::move(graph)),
                                    std::move(factory), options_, observer);
  }
  int connections_ = 0;
};

TEST_F(WaiterTest, OpensNoWorkConnectionWhileAnotherRunnerHoldsTheLock) {
  std::unique_ptr<store::Store> other = db_.Connect("other-runner");
  ASSERT_THAT(other->TryLockAs(LockKey(), 7), IsOk());
  ASSERT_EQ(db_.LockAttemptsForTest(), 1);
  OnWaiting observer([&] {
    db_.SetVersionsForTest(options_.tables, {"b"});
    other.reset();
  });
  absl::StatusOr<RunResult> result = CountingEngine(&observer)->Upgrade("head");
  ASSERT_THAT(result, IsOk());
  EXPECT_TRUE(result->already_at_target);
  EXPECT_EQ(observer.calls, 1);
  EXPECT_EQ(connections_, 1) << "the waiter opened a work connection it never used";
  EXPECT_EQ(db_.LockAttemptsForTest(), 1) << "the waiter tried a lock another runner visibly held";
  EXPECT_TRUE(db_.EffectsForTest().empty());
}

// A holder that is not sluice leaves no runner mark, so only the connection's own test can spare
// a waiter the one-session probe. Runs a waiter on `direct` connections (or through a proxy that
// keeps sessions: MemoryDatabase's default) while such a holder holds the lock and then finishes
// the work; returns the connections the waiter opened.
class NonSluiceHolderTest : public WaiterTest {
 protected:
  int WaiterConnections(bool direct) {
    db_.SetDirectConnectionsForTest(direct);
    std::unique_ptr<store::Store> other = db_.Connect("not-sluice");
    absl::StatusOr<bool> taken = other->TryLock(LockKey());
    EXPECT_TRUE(taken.ok() && *taken);
    OnWaiting observer([&] {
      db_.SetVersionsForTest(options_.tables, {"b"});
      other.reset();
    });
    absl::StatusOr<RunResult> result = CountingEngine(&observer)->Upgrade("head");
    EXPECT_THAT(result, IsOk());
    EXPECT_TRUE(result.ok() && result->already_at_target);
    return connections_;
  }
};

// On a direct connection one statement proves one session.
TEST_F(NonSluiceHolderTest, OnADirectConnectionTheWaiterSkipsTheOneSessionProbe) {
  EXPECT_EQ(WaiterConnections(/*direct=*/true), 1)
      << "the waiter opened a work connection for the probe";
}

TEST_F(NonSluiceHolderTest, ThroughAProxyTheWaiterRunsTheOneSessionProbe) {
  EXPECT_EQ(WaiterConnections(/*direct=*/false), 2);
}

}  // namespace
}  // namespace sluice::engine
