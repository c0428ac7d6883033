// Unit tests of the in-memory Store: that it keeps the Store contract the engine relies on
// (transactions, reentrant session locks that go with their session, notifications delivered at
// commit, atomic RecordStep) and that its fault switches fire as documented.
#include "pkg/store/memory_store.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/failure/migration_failure.h"
#include "tests/support/status_matchers.h"

namespace sluice::store {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const TableNames kTables;

// Matches an OK absl::StatusOr whose value matches `matcher`.
MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

TEST(MemoryStoreTest, RollbackDiscardsAndCommitPublishes) {
  MemoryDatabase db;
  std::unique_ptr<Store> store = db.Connect("t");
  ASSERT_THAT(store->EnsureTables(kTables), IsOk());
  ASSERT_THAT(store->Begin(), IsOk());
  ASSERT_THAT(store->Execute("CREATE TABLE x ()"), IsOk());
  ASSERT_THAT(store->UpdateVersions(kTables, {}, {"a"}), IsOk());
  EXPECT_THAT(db.VersionsForTest(kTables), IsEmpty()) << "uncommitted rows are visible";
  ASSERT_THAT(store->Rollback(), IsOk());
  EXPECT_THAT(db.VersionsForTest(kTables), IsEmpty());
  EXPECT_THAT(db.EffectsForTest(), IsEmpty());

  ASSERT_THAT(store->Begin(), IsOk());
  ASSERT_THAT(store->Execute("CREATE TABLE x ()"), IsOk());
  ASSERT_THAT(store->UpdateVersions(kTables, {}, {"a"}), IsOk());
  ASSERT_THAT(store->Commit(), IsOk());
  EXPECT_THAT(db.VersionsForTest(kTables), ElementsAre("a"));
  EXPECT_THAT(db.EffectsForTest(), ElementsAre("CREATE TABLE x ()"));
}

TEST(MemoryStoreTest, AFailedStatementAbortsItsTransaction) {
  MemoryDatabase db;
  std::unique_ptr<Store> store = db.Connect("t");
  ASSERT_THAT(store->EnsureTables(kTables), IsOk());
  db.FailNextExecuteForTest(MemoryDatabase::ServerError("42601", "syntax error"), "BAD");
  ASSERT_THAT(store->Begin(), IsOk());
  const absl::Status failed = store->Execute("BAD SQL");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failure::MigrationFailureOf(failed)->sqlstate, "42601");
  const absl::Status next = store->Execute("SELECT 1");
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(failure::MigrationFailureOf(next)->sqlstate, "25P02");
  EXPECT_FALSE(store->Commit().ok());
  ASSERT_THAT(store->Execute("SELECT 1"), IsOk()) << "the failure fired more than once";
  EXPECT_THAT(db.EffectsForTest(), ElementsAre("SELECT 1"));
}

TEST(MemoryStoreTest, RecordStepIsAtomic) {
  MemoryDatabase db;
  std::unique_ptr<Store> store = db.Connect("t");
  db.SetVersionsForTest(kTables, {"a"});
  HistoryRow row;
  row.revision = "a";
  // Inserting a row that exists fails the whole statement: no history row either.
  EXPECT_FALSE(store->RecordStep(kTables, {}, {"a"}, row).ok());
  EXPECT_THAT(db.HistoryForTest(kTables), IsEmpty());
  absl::StatusOr<int64_t> id = store->RecordStep(kTables, {"a"}, {"b"}, row);
  ASSERT_THAT(id, IsOk());
  EXPECT_THAT(db.VersionsForTest(kTables), ElementsAre("b"));
  ASSERT_EQ(db.HistoryForTest(kTables).size(), 1u);
  EXPECT_EQ(db.HistoryForTest(kTables)[0].id, *id);
}

TEST(MemoryStoreTest, AdvisoryLocksAreReentrantPerSessionAndGoWithTheSession) {
  MemoryDatabase db;
  std::unique_ptr<Store> first = db.Connect("first");
  std::unique_ptr<Store> second = db.Connect("second");
  EXPECT_TRUE(*first->TryLock(7));
  EXPECT_TRUE(*first->TryLock(7));
  EXPECT_FALSE(*second->TryLock(7));
  absl::StatusOr<std::optional<LockHolder>> holder = second->LockHolderOf(7);
  ASSERT_THAT(holder, IsOk());
  ASSERT_TRUE(holder->has_value());
  EXPECT_EQ((*holder)->application_name, "first");
  EXPECT_EQ((*holder)->pid, first->BackendPid());
  EXPECT_FALSE(first->LockHolderOf(7)->has_value()) << "a session is not told it holds the lock";
  EXPECT_THAT(second->Unlock(7), StatusIs(absl::StatusCode::kFailedPrecondition, "not held"));

  ASSERT_THAT(first->Unlock(7), IsOk());
  EXPECT_FALSE(*second->TryLock(7)) << "taken twice, released once";
  first.reset();
  EXPECT_TRUE(*second->TryLock(7));
  EXPECT_EQ(db.LockAttemptsForTest(), 5);
}

TEST(MemoryStoreTest, ARunnersMarkIsSeenFromOtherSessionsAndGoesWithItsSession) {
  MemoryDatabase db;
  std::unique_ptr<Store> holder = db.Connect("holder");
  std::unique_ptr<Store> work = db.Connect("work");
  EXPECT_THAT(work->MarkHeldElsewhere(9), IsOkAndHolds(false));
  ASSERT_THAT(holder->TryLockAs(7, 9), IsOkAndHolds(true));
  EXPECT_THAT(work->MarkHeldElsewhere(9), IsOkAndHolds(true));
  EXPECT_THAT(work->MarkHeldElsewhere(10), IsOkAndHolds(false));
  EXPECT_THAT(holder->MarkHeldElsewhere(9), IsOkAndHolds(false)) << "its own session's mark";
  holder.reset();
  EXPECT_THAT(work->MarkHeldElsewhere(9), IsOkAndHolds(false));
}

TEST(MemoryStoreTest, NotificationsAreDeliveredToListenersAtCommit) {
  MemoryDatabase db;
  std::unique_ptr<Store> listener = db.Connect("listener");
  std::unique_ptr<Store> sender = db.Connect("sender");
  ASSERT_THAT(listener->Listen("ch"), IsOk());
  ASSERT_THAT(sender->Begin(), IsOk());
  ASSERT_THAT(sender->Notify("ch"), IsOk());
  EXPECT_FALSE(*listener->WaitForNotification(absl::ZeroDuration()));
  ASSERT_THAT(sender->Commit(), IsOk());
  EXPECT_TRUE(*listener->WaitForNotification(absl::ZeroDuration()));
  EXPECT_FALSE(*listener->WaitForNotification(absl::ZeroDuration())) << "not consumed";
  ASSERT_THAT(sender->Notify("other-channel"), IsOk());
  EXPECT_FALSE(*listener->WaitForNotification(absl::Milliseconds(1)));
}

TEST(MemoryStoreTest, IndexesTurnInvalidOnTheNamedStatement) {
  MemoryDatabase db;
  std::unique_ptr<Store> store = db.Connect("t");
  db.InvalidateIndexOnExecuteForTest("CONCURRENTLY", "t_x");
  ASSERT_THAT(store->Execute("CREATE INDEX i ON t (y)"), IsOk());
  EXPECT_THAT(*store->InvalidIndexes(), IsEmpty());
  ASSERT_THAT(store->Execute("CREATE INDEX CONCURRENTLY t_x ON t (x)"), IsOk());
  EXPECT_THAT(*store->InvalidIndexes(), ElementsAre("t_x"));
}

TEST(MemoryStoreTest, TablesMustExistBeforeTheyAreWritten) {
  MemoryDatabase db;
  std::unique_ptr<Store> store = db.Connect("t");
  EXPECT_THAT(*store->ReadVersions(kTables), IsEmpty());
  EXPECT_THAT(*store->ReadHistory(kTables), IsEmpty());
  const absl::Status status = store->UpdateVersions(kTables, {}, {"a"});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(failure::MigrationFailureOf(status)->sqlstate, "42P01");
  EXPECT_FALSE(store->AppendHistory(kTables, HistoryRow{}).ok());
}

// --- the lease and session identification (issue #9) ----------------------------------------

constexpr absl::Duration kTtl = absl::Seconds(30);

// Returns the sqlstate `status` carries ("" when none).
std::string SqlStateOf(const absl::Status& status) {
  std::optional<failure::MigrationFailure> error = failure::MigrationFailureOf(status);
  return error.has_value() ? error->sqlstate : "";
}

TEST(MemoryStoreLeaseTest, AcquireRenewReadRelease) {
  MemoryDatabase db;
  std::unique_ptr<Store> a = db.Connect("a");
  std::unique_ptr<Store> b = db.Connect("b");
  EXPECT_FALSE(a->ReadLease(kTables, 1)->has_value()) << "no table";
  ASSERT_THAT(a->ReleaseLease(kTables, 1, "a"), IsOk());
  EXPECT_FALSE(a->DeleteExpiredLease(kTables, 1)->has_value());
  absl::StatusOr<bool> acquired = a->TryAcquireLease(kTables, 1, "a", kTtl);
  EXPECT_EQ(SqlStateOf(acquired.status()), "42P01");

  ASSERT_THAT(a->EnsureLeaseTable(kTables), IsOk());
  ASSERT_THAT(a->EnsureLeaseTable(kTables), IsOk());
  EXPECT_FALSE(a->ReadLease(kTables, 1)->has_value());
  EXPECT_THAT(a->TryAcquireLease(kTables, 1, "a", kTtl), IsOkAndHolds(true));
  EXPECT_THAT(b->TryAcquireLease(kTables, 1, "b", kTtl), IsOkAndHolds(false));
  EXPECT_THAT(b->TryAcquireLease(kTables, 2, "b", kTtl), IsOkAndHolds(true));
  EXPECT_THAT(a->TryAcquireLease(TableNames{"other", "v"}, 3, "a", kTtl),
              StatusIs(absl::StatusCode::kFailedPrecondition, "other.sluice_lock"));

  absl::StatusOr<std::optional<Lease>> lease = b->ReadLease(kTables, 1);
  ASSERT_THAT(lease, IsOk());
  ASSERT_TRUE(lease->has_value());
  EXPECT_EQ((*lease)->holder, "a");
  EXPECT_EQ((*lease)->acquired_at, (*lease)->heartbeat_at);
  EXPECT_EQ((*lease)->expires_at - (*lease)->acquired_at, kTtl);
  EXPECT_GT((*lease)->remaining, absl::ZeroDuration());
  EXPECT_LE((*lease)->remaining, kTtl);

  EXPECT_THAT(a->RenewLease(kTables, 1, "a", absl::Seconds(60)), IsOkAndHolds(true));
  std::optional<Lease> renewed = db.LeaseForTest(1);
  ASSERT_TRUE(renewed.has_value());
  EXPECT_EQ(renewed->acquired_at, (*lease)->acquired_at);
  EXPECT_EQ(renewed->expires_at - renewed->heartbeat_at, absl::Seconds(60));
  EXPECT_THAT(b->RenewLease(kTables, 1, "b", kTtl), IsOkAndHolds(false));
  EXPECT_THAT(a->RenewLease(kTables, 1, "a", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument, "TTL"));

  ASSERT_THAT(b->ReleaseLease(kTables, 1, "b"), IsOk());
  EXPECT_EQ(db.LeaseForTest(1)->holder, "a") << "released by someone else";
  ASSERT_THAT(a->ReleaseLease(kTables, 1, "a"), IsOk());
  EXPECT_FALSE(db.LeaseForTest(1).has_value());
  EXPECT_THAT(a->RenewLease(kTables, 1, "a", kTtl), IsOkAndHolds(false));
  EXPECT_THAT(b->TryAcquireLease(kTables, 1, "b", kTtl), IsOkAndHolds(true));
}

TEST(MemoryStoreLeaseTest, ExpiredLeasesAreTakenOverAndDeleted) {
  MemoryDatabase db;
  std::unique_ptr<Store> a = db.Connect("a");
  std::unique_ptr<Store> b = db.Connect("b");
  ASSERT_THAT(a->EnsureLeaseTable(kTables), IsOk());
  EXPECT_THAT(a->TryAcquireLease(kTables, 1, "a", kTtl), IsOkAndHolds(true));
  EXPECT_FALSE(b->DeleteExpiredLease(kTables, 1)->has_value()) << "not expired";

  db.ExpireLeaseForTest(1);
  EXPECT_LE(db.LeaseForTest(1)->remaining, absl::ZeroDuration());
  EXPECT_THAT(a->RenewLease(kTables, 1, "a", kTtl), IsOkAndHolds(false));
  EXPECT_THAT(b->TryAcquireLease(kTables, 1, "b", kTtl), IsOkAndHolds(true));
  EXPECT_EQ(db.LeaseForTest(1)->holder, "b");

  db.ExpireLeaseForTest(1);
  absl::StatusOr<std::optional<Lease>> deleted = a->DeleteExpiredLease(kTables, 1);
  ASSERT_THAT(deleted, IsOk());
  ASSERT_TRUE(deleted->has_value());
  EXPECT_EQ((*deleted)->holder, "b");
  EXPECT_FALSE(db.LeaseForTest(1).has_value());
  db.ExpireLeaseForTest(1);  // no row: nothing happens
  EXPECT_FALSE(db.LeaseForTest(1).has_value());
}

TEST(MemoryStoreLeaseTest, SetLeaseHolderForTestTakesTheLeaseOver) {
  MemoryDatabase db;
  std::unique_ptr<Store> a = db.Connect("a");
  ASSERT_THAT(a->EnsureLeaseTable(kTables), IsOk());
  EXPECT_THAT(a->TryAcquireLease(kTables, 1, "a", kTtl), IsOkAndHolds(true));
  db.SetLeaseHolderForTest(1, "thief");
  EXPECT_THAT(a->RenewLease(kTables, 1, "a", kTtl), IsOkAndHolds(false));
  ASSERT_THAT(a->Begin(), IsOk());
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, 1, "a"), IsOkAndHolds(false));
  ASSERT_THAT(a->Rollback(), IsOk());
  EXPECT_THAT(a->TryAcquireLease(kTables, 1, "a", kTtl), IsOkAndHolds(false));

  // On a fresh database it creates the default lease table too.
  MemoryDatabase fresh;
  fresh.SetLeaseHolderForTest(5, "other", absl::Seconds(10));
  std::unique_ptr<Store> b = fresh.Connect("b");
  absl::StatusOr<std::optional<Lease>> lease = b->ReadLease(kTables, 5);
  ASSERT_THAT(lease, IsOk());
  ASSERT_TRUE(lease->has_value());
  EXPECT_EQ((*lease)->holder, "other");
  EXPECT_EQ((*lease)->expires_at - (*lease)->acquired_at, absl::Seconds(10));
}

TEST(MemoryStoreLeaseTest, TheGuardOfATransactionHoldsOffOthersUntilItEnds) {
  MemoryDatabase db;
  std::unique_ptr<Store> work = db.Connect("work");
  std::unique_ptr<Store> heartbeat = db.Connect("heartbeat");
  std::unique_ptr<Store> rival = db.Connect("rival");
  ASSERT_THAT(work->EnsureLeaseTable(kTables), IsOk());
  EXPECT_THAT(work->HoldsLeaseInTransaction(kTables, 1, "holder"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "transaction"));
  ASSERT_THAT(work->Begin(), IsOk());
  EXPECT_THAT(work->HoldsLeaseInTransaction(kTables, 1, "holder"), IsOkAndHolds(false)) << "no row";
  EXPECT_THAT(work->TryAcquireLease(kTables, 1, "holder", kTtl),
              StatusIs(absl::StatusCode::kFailedPrecondition, "transaction of its own"));
  ASSERT_THAT(work->Rollback(), IsOk());
  EXPECT_THAT(heartbeat->TryAcquireLease(kTables, 1, "holder", kTtl), IsOkAndHolds(true));

  ASSERT_THAT(work->Begin(), IsOk());
  EXPECT_THAT(work->HoldsLeaseInTransaction(kTables, 1, "holder"), IsOkAndHolds(true));
  // The heartbeat waits for the row lock (a second) and fails: an error, not "lost".
  absl::StatusOr<bool> renewed = heartbeat->RenewLease(kTables, 1, "holder", kTtl);
  EXPECT_EQ(SqlStateOf(renewed.status()), "55P03");
  // Expired, but locked: not taken over, not deleted.
  db.ExpireLeaseForTest(1);
  EXPECT_THAT(rival->TryAcquireLease(kTables, 1, "rival", kTtl), IsOkAndHolds(false));
  EXPECT_EQ(SqlStateOf(rival->DeleteExpiredLease(kTables, 1).status()), "55P03");
  // The holder's heartbeat finds it expired (as PostgreSQL, without waiting for the row).
  EXPECT_THAT(heartbeat->RenewLease(kTables, 1, "holder", kTtl), IsOkAndHolds(false));
  EXPECT_EQ(db.LeaseForTest(1)->holder, "holder");
  ASSERT_THAT(work->Commit(), IsOk());
  EXPECT_THAT(rival->TryAcquireLease(kTables, 1, "rival", kTtl), IsOkAndHolds(true));

  // A rollback, and a session's end, let go of the row too.
  ASSERT_THAT(work->Begin(), IsOk());
  EXPECT_THAT(work->HoldsLeaseInTransaction(kTables, 1, "rival"), IsOkAndHolds(true));
  ASSERT_THAT(work->Rollback(), IsOk());
  db.ExpireLeaseForTest(1);
  EXPECT_THAT(heartbeat->TryAcquireLease(kTables, 1, "holder", kTtl), IsOkAndHolds(true));
  ASSERT_THAT(work->Begin(), IsOk());
  EXPECT_THAT(work->HoldsLeaseInTransaction(kTables, 1, "holder"), IsOkAndHolds(true));
  work.reset();
  ASSERT_THAT(rival->ReleaseLease(kTables, 1, "holder"), IsOk());
  EXPECT_FALSE(db.LeaseForTest(1).has_value());
}

TEST(MemoryStoreLeaseTest, SixteenRunnersAtOnceGiveOneHolder) {
  constexpr int kRunners = 16;
  MemoryDatabase db;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kRunners; ++i) stores.push_back(db.Connect(absl::StrCat("runner-", i)));
  ASSERT_THAT(stores[0]->EnsureLeaseTable(kTables), IsOk());
  std::vector<absl::StatusOr<bool>> results(kRunners, false);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRunners; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready < kRunners) {
      }
      results[i] = stores[i]->TryAcquireLease(kTables, 1, absl::StrCat("runner-", i), kTtl);
    });
  }
  for (std::thread& thread : threads) thread.join();
  int winners = 0;
  for (int i = 0; i < kRunners; ++i) {
    ASSERT_THAT(results[i], IsOk());
    if (*results[i]) {
      ++winners;
      EXPECT_EQ(db.LeaseForTest(1)->holder, absl::StrCat("runner-", i));
    }
  }
  EXPECT_EQ(winners, 1);
}

TEST(MemoryStoreLeaseTest, InjectedFailuresHitTheNamedCallOnly) {
  MemoryDatabase db;
  std::unique_ptr<Store> a = db.Connect("a");
  ASSERT_THAT(a->EnsureLeaseTable(kTables), IsOk());
  EXPECT_THAT(a->TryAcquireLease(kTables, 1, "a", kTtl), IsOkAndHolds(true));
  db.FailNextLeaseCallForTest(absl::UnavailableError("connection lost"), "RenewLease", 2);
  EXPECT_THAT(a->ReadLease(kTables, 1).status(), IsOk());
  EXPECT_THAT(a->RenewLease(kTables, 1, "a", kTtl),
              StatusIs(absl::StatusCode::kUnavailable, "connection lost"));
  EXPECT_THAT(a->RenewLease(kTables, 1, "a", kTtl),
              StatusIs(absl::StatusCode::kUnavailable, "connection lost"));
  EXPECT_THAT(a->RenewLease(kTables, 1, "a", kTtl), IsOkAndHolds(true));

  // Inside a transaction, the failure aborts it.
  db.FailNextLeaseCallForTest(absl::UnavailableError("gone"));
  ASSERT_THAT(a->Begin(), IsOk());
  EXPECT_THAT(a->HoldsLeaseInTransaction(kTables, 1, "a"),
              StatusIs(absl::StatusCode::kUnavailable, "gone"));
  EXPECT_EQ(SqlStateOf(a->Execute("SELECT 1")), "25P02");
  ASSERT_THAT(a->Rollback(), IsOk());
}

TEST(MemoryStoreSessionTest, EachConnectionIsItsOwnSession) {
  MemoryDatabase db;
  std::unique_ptr<Store> first = db.Connect("first");
  std::unique_ptr<Store> second = db.Connect("second");
  absl::StatusOr<SessionIdentity> identity = first->IdentifySession(7, "");
  ASSERT_THAT(identity, IsOk());
  EXPECT_EQ(identity->server_pid, first->BackendPid());
  EXPECT_EQ(identity->marker, "");
  EXPECT_FALSE(identity->holds_lock);

  EXPECT_EQ(first->IdentifySession(7, "m1")->marker, "m1");
  EXPECT_EQ(first->IdentifySession(7, "")->marker, "m1") << "the marker sticks";
  EXPECT_TRUE(*first->TryLock(7));
  EXPECT_TRUE(first->IdentifySession(7, "")->holds_lock);
  EXPECT_FALSE(first->IdentifySession(8, "")->holds_lock);

  absl::StatusOr<SessionIdentity> other = second->IdentifySession(7, "");
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(other->server_pid, second->BackendPid());
  EXPECT_NE(other->server_pid, identity->server_pid);
  EXPECT_EQ(other->marker, "");
  EXPECT_FALSE(other->holds_lock);
}

TEST(MemoryStoreSessionTest, SimulatedTransactionPoolingSharesOneServerSession) {
  MemoryDatabase db;
  std::unique_ptr<Store> first = db.Connect("first");
  std::unique_ptr<Store> second = db.Connect("second");
  EXPECT_EQ(first->IdentifySession(7, "direct-1")->marker, "direct-1");
  db.SimulateTransactionPoolingForTest(true);

  absl::StatusOr<SessionIdentity> a = first->IdentifySession(7, "m1");
  absl::StatusOr<SessionIdentity> b = second->IdentifySession(7, "");
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->server_pid, b->server_pid) << "one server session for both";
  EXPECT_NE(a->server_pid, first->BackendPid());
  EXPECT_EQ(a->marker, "m1");
  EXPECT_EQ(b->marker, "m1") << "the marker first set is on the shared session";
  EXPECT_EQ(second->IdentifySession(7, "m2")->marker, "m2");
  EXPECT_EQ(first->IdentifySession(7, "")->marker, "m2");

  // The lock taken by one statement is not held by the session of the next.
  EXPECT_TRUE(*first->TryLock(7));
  EXPECT_FALSE(first->IdentifySession(7, "")->holds_lock);
  EXPECT_FALSE(*second->TryLock(7)) << "but it is held";

  db.SimulateTransactionPoolingForTest(false);
  absl::StatusOr<SessionIdentity> direct = first->IdentifySession(7, "");
  ASSERT_THAT(direct, IsOk());
  EXPECT_EQ(direct->server_pid, first->BackendPid());
  EXPECT_EQ(direct->marker, "direct-1");
  EXPECT_TRUE(direct->holds_lock);
}

TEST(MemoryStoreSessionTest, SimulatedPoolingCanKeepLocksOnTheSharedSession) {
  MemoryDatabase db;
  std::unique_ptr<Store> first = db.Connect("first");
  std::unique_ptr<Store> second = db.Connect("second");
  db.SimulateTransactionPoolingForTest(true, MemoryDatabase::PooledLocks::kOnTheSharedSession);
  EXPECT_TRUE(*first->TryLock(7));
  EXPECT_TRUE(first->IdentifySession(7, "")->holds_lock);
  EXPECT_TRUE(second->IdentifySession(7, "")->holds_lock) << "the lock is the shared session's";
  EXPECT_TRUE(*second->TryLock(7)) << "both runners hold it: what detection must catch";
  EXPECT_FALSE(second->LockHolderOf(7)->has_value());
  first.reset();
  EXPECT_TRUE(second->IdentifySession(7, "")->holds_lock) << "the server session lives on";

  db.SimulateTransactionPoolingForTest(false);
  std::unique_ptr<Store> third = db.Connect("third");
  EXPECT_FALSE(*third->TryLock(7)) << "still held by the pooler's server session";
  absl::StatusOr<std::optional<LockHolder>> holder = third->LockHolderOf(7);
  ASSERT_THAT(holder, IsOk());
  ASSERT_TRUE(holder->has_value());
  EXPECT_NE((*holder)->pid, third->BackendPid());
}

}  // namespace
}  // namespace sluice::store
