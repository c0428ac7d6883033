#include "pkg/base/status_macros.h"

#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace sluice {
namespace {

absl::StatusOr<int> Half(int n) {
  if (n % 2 != 0) return absl::InvalidArgumentError("odd");
  return n / 2;
}

absl::StatusOr<int> Quarter(int n) {
  SLUICE_ASSIGN_OR_RETURN(int half, Half(n));
  SLUICE_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int n) {
  SLUICE_RETURN_IF_ERROR(Half(n).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6), testing::StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
  SLUICE_EXPECT_OK(CheckEven(4));
  EXPECT_THAT(CheckEven(3), testing::StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
}

}  // namespace
}  // namespace sluice
