#include "pkg/failure/failure.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace sluice::failure {
namespace {

TEST(FailureKindTest, MarkedKindWinsOverTheCode) {
  const absl::Status status =
      WithFailureKind(absl::FailedPreconditionError("changed"), FailureKind::kDrift);
  EXPECT_EQ(FailureKindOf(status), FailureKind::kDrift);
  EXPECT_EQ(ExitCodeFor(status), kExitDrift);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "changed");
}

TEST(FailureKindTest, UnmarkedKindIsInferredFromTheCode) {
  EXPECT_EQ(FailureKindOf(absl::UnavailableError("down")), FailureKind::kUnreachable);
  EXPECT_EQ(FailureKindOf(absl::UnknownError("in doubt")), FailureKind::kUnreachable);
  EXPECT_EQ(FailureKindOf(absl::DeadlineExceededError("lock")), FailureKind::kLockTimeout);
  EXPECT_EQ(FailureKindOf(absl::InvalidArgumentError("yaml")), FailureKind::kInvalidManifests);
  EXPECT_EQ(FailureKindOf(absl::FailedPreconditionError("sql")), FailureKind::kMigrationFailed);
}

TEST(FailureKindTest, MalformedMarkIsIgnored) {
  absl::Status status = absl::UnavailableError("down");
  status.SetPayload("type.sluice.dev/FailureKind", absl::Cord("99"));
  EXPECT_EQ(FailureKindOf(status), FailureKind::kUnreachable);
}

TEST(ExitCodeTest, EachKindHasProductMdsCode) {
  constexpr struct {
    FailureKind kind;
    int exit_code;
  } kCases[] = {
      {FailureKind::kMigrationFailed, 1},  {FailureKind::kUsage, 2},
      {FailureKind::kInvalidManifests, 4}, {FailureKind::kDrift, 5},
      {FailureKind::kLockTimeout, 6},      {FailureKind::kUnreachable, 7},
      {FailureKind::kInterrupted, 143},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.exit_code);
    EXPECT_EQ(ExitCodeOf(c.kind), c.exit_code);
    EXPECT_EQ(ExitCodeFor(WithFailureKind(absl::InternalError("x"), c.kind)), c.exit_code);
  }
}

}  // namespace
}  // namespace sluice::failure
