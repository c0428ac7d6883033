#include "pkg/operator/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace sluice::operator_ {
namespace {

TEST(WorkQueueTest, AKeyIsQueuedOnce) {
  WorkQueue queue(absl::Seconds(1), absl::Minutes(5));
  queue.Add("apps/a");
  queue.Add("apps/b");
  queue.Add("apps/a");
  EXPECT_EQ(queue.Len(), 2);
  EXPECT_EQ(queue.Get(), "apps/a");
  EXPECT_EQ(queue.Get(), "apps/b");
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_EQ(queue.Processing(), 2);
}

TEST(WorkQueueTest, AHeldKeyAddedAgainComesBackAfterDone) {
  WorkQueue queue(absl::Seconds(1), absl::Minutes(5));
  queue.Add("apps/a");
  ASSERT_EQ(queue.Get(), "apps/a");
  queue.Add("apps/a");
  queue.Add("apps/a");
  // Not handed out while held.
  EXPECT_EQ(queue.Len(), 0);
  queue.Done("apps/a");
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_EQ(queue.Get(), "apps/a");
  queue.Done("apps/a");
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, RetryDelaysDoubleUpToTheCapAndForgetResetsThem) {
  WorkQueue queue(absl::Seconds(1), absl::Seconds(5));
  EXPECT_EQ(queue.AddRateLimited("apps/a"), absl::Seconds(1));
  EXPECT_EQ(queue.AddRateLimited("apps/a"), absl::Seconds(2));
  EXPECT_EQ(queue.AddRateLimited("apps/a"), absl::Seconds(4));
  EXPECT_EQ(queue.AddRateLimited("apps/a"), absl::Seconds(5));
  EXPECT_EQ(queue.AddRateLimited("apps/a"), absl::Seconds(5));
  EXPECT_EQ(queue.Failures("apps/a"), 5);
  for (int i = 0; i < 100; ++i) queue.AddRateLimited("apps/b");
  EXPECT_EQ(queue.AddRateLimited("apps/b"), absl::Seconds(5));
  queue.Forget("apps/a");
  EXPECT_EQ(queue.Failures("apps/a"), 0);
  EXPECT_EQ(queue.AddRateLimited("apps/a"), absl::Seconds(1));
}

TEST(WorkQueueTest, DelayedKeysArriveWhenDueAndAnAddBringsThemForward) {
  WorkQueue queue(absl::Milliseconds(10), absl::Seconds(1));
  queue.AddAfter("apps/later", absl::Milliseconds(30));
  queue.AddAfter("apps/never", absl::Hours(1));
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_EQ(queue.Delayed(), 2);
  // Get blocks until the first one is due.
  EXPECT_EQ(queue.Get(), "apps/later");
  queue.Add("apps/never");
  EXPECT_EQ(queue.Delayed(), 0);
  EXPECT_EQ(queue.Get(), "apps/never");
}

TEST(WorkQueueTest, AWaitingGetSeesAnEarlierDelayedKey) {
  WorkQueue queue(absl::Milliseconds(10), absl::Seconds(1));
  queue.AddAfter("apps/slow", absl::Hours(1));
  std::optional<std::string> got;
  std::thread worker([&] { got = queue.Get(); });
  absl::SleepFor(absl::Milliseconds(20));
  queue.AddAfter("apps/soon", absl::Milliseconds(10));
  worker.join();  // bounded: "soon" is due in 10 ms
  EXPECT_EQ(got, "apps/soon");
}

TEST(WorkQueueTest, ShutDownWakesWaitersAndDropsWork) {
  WorkQueue queue(absl::Seconds(1), absl::Minutes(5));
  std::vector<std::thread> workers;
  std::atomic<int> ended{0};
  for (int i = 0; i < 3; ++i) {
    workers.emplace_back([&] {
      if (!queue.Get().has_value()) ++ended;
    });
  }
  absl::SleepFor(absl::Milliseconds(20));
  queue.ShutDown();
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(ended.load(), 3);
  queue.Add("apps/a");
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_FALSE(queue.Get().has_value());
}

TEST(WorkQueueTest, WorkersNeverHoldOneKeyTwiceAndNeverExceedTheirNumber) {
  WorkQueue queue(absl::Milliseconds(1), absl::Milliseconds(5));
  constexpr int kWorkers = 4;
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  std::atomic<int> handled{0};
  std::atomic<bool> overlap{false};
  std::vector<std::atomic<int>> holders(10);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (std::optional<std::string> key = queue.Get()) {
        const int index = (*key)[5] - '0';
        if (holders[index]++ != 0) overlap = true;
        const int now = ++running;
        int seen = max_running.load();
        while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
        }
        absl::SleepFor(absl::Microseconds(200));
        --running;
        --holders[index];
        ++handled;
        queue.Done(*key);
      }
    });
  }
  for (int round = 0; round < 50; ++round) {
    for (int k = 0; k < 10; ++k) queue.Add("apps/" + std::to_string(k));
    absl::SleepFor(absl::Microseconds(100));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while ((queue.Len() > 0 || queue.Processing() > 0) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  queue.ShutDown();
  for (std::thread& t : workers) t.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_LE(max_running.load(), kWorkers);
  EXPECT_GE(handled.load(), 10);
}

}  // namespace
}  // namespace sluice::operator_
