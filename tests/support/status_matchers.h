// GoogleTest matchers for absl::Status and absl::StatusOr (abseil 20220623 ships none).
#ifndef SLUICE_TESTS_SUPPORT_STATUS_MATCHERS_H_
#define SLUICE_TESTS_SUPPORT_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"

namespace sluice::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Matches an OK absl::Status or absl::StatusOr.
MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

// Matches a status with `code` whose message contains `substring`.
MATCHER_P2(StatusIs, code, substring,
           "has code " + absl::StatusCodeToString(code) + " and a message containing \"" +
               std::string(substring) + "\"") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code && absl::StrContains(status.message(), substring);
}

}  // namespace sluice::testing

// Asserts that `expr` (a Status or StatusOr) is OK, printing the status otherwise.
#define SLUICE_ASSERT_OK(expr) ASSERT_THAT((expr), ::sluice::testing::IsOk())
#define SLUICE_EXPECT_OK(expr) EXPECT_THAT((expr), ::sluice::testing::IsOk())

#endif  // SLUICE_TESTS_SUPPORT_STATUS_MATCHERS_H_
