// Unit tests of the in-memory Store: that it keeps the Store contract the engine relies on
// (transactions, reentrant session locks that go with their session, notifications delivered at
// commit, atomic RecordStep) and that its fault switches fire as documented.
#include "pkg/store/memory_store.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace sluice::store
