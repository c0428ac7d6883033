#include "pkg/base/backoff.h"

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

TEST(JitteredTest, StaysWithinHalfAndOneAndAHalf) {
  for (int i = 0; i < 1000; ++i) {
    const absl::Duration d = Jittered(absl::Milliseconds(100));
    EXPECT_GE(d, absl::Milliseconds(50));
    EXPECT_LT(d, absl::Milliseconds(150));
  }
}

TEST(BackoffTest, DoublesUpToTheCapAndResets) {
  Backoff backoff(absl::Milliseconds(100), absl::Milliseconds(350));
  EXPECT_EQ(backoff.Current(), absl::Milliseconds(100));
  const absl::Duration first = backoff.Next();
  EXPECT_GE(first, absl::Milliseconds(50));
  EXPECT_LT(first, absl::Milliseconds(150));
  EXPECT_EQ(backoff.Current(), absl::Milliseconds(200));
  backoff.Next();
  EXPECT_EQ(backoff.Current(), absl::Milliseconds(350));
  const absl::Duration capped = backoff.Next();
  EXPECT_GE(capped, absl::Milliseconds(175));
  EXPECT_LT(capped, absl::Milliseconds(525));
  EXPECT_EQ(backoff.Current(), absl::Milliseconds(350));
  backoff.Reset();
  EXPECT_EQ(backoff.Current(), absl::Milliseconds(100));
}

}  // namespace
}  // namespace sluice::base
