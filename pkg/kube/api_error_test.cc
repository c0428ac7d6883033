#include "pkg/kube/api_error.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace sluice::kube {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(ApiErrorTest, ReadsTheStatusObject) {
  const ApiError e = ParseApiError(
      404,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
      R"("message":"migrationjobs.sluice.dev \"x\" not found","reason":"NotFound",)"
      R"("details":{"name":"x","group":"sluice.dev","kind":"migrationjobs"},"code":404})",
      "");
  EXPECT_EQ(e.http_code, 404);
  EXPECT_EQ(e.reason, "NotFound");
  EXPECT_EQ(e.message, "migrationjobs.sluice.dev \"x\" not found");
  EXPECT_FALSE(e.retry_after.has_value());
}

TEST(ApiErrorTest, RetryAfterHeaderWinsOverDetails) {
  const std::string body = R"({"kind":"Status","reason":"TooManyRequests","message":"slow down",)"
                           R"("details":{"retryAfterSeconds":7},"code":429})";
  EXPECT_EQ(ParseApiError(429, body, "3").retry_after, absl::Seconds(3));
  EXPECT_EQ(ParseApiError(429, body, "").retry_after, absl::Seconds(7));
  EXPECT_EQ(ParseApiError(429, body, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after,
            absl::Seconds(1));
}

TEST(ApiErrorTest, NonStatusBodiesKeepTheirStart) {
  const ApiError e = ParseApiError(502, "<html>Bad Gateway</html>", "");
  EXPECT_EQ(e.reason, "");
  EXPECT_EQ(e.message, "<html>Bad Gateway</html>");
  EXPECT_EQ(ParseApiError(503, "", "").message, "HTTP 503");
}

TEST(ApiErrorTest, MapsHttpCodesToStatusCodes) {
  struct Case {
    int http;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {400, absl::StatusCode::kInvalidArgument},
      {401, absl::StatusCode::kUnauthenticated},
      {403, absl::StatusCode::kPermissionDenied},
      {404, absl::StatusCode::kNotFound},
      {409, absl::StatusCode::kAborted},
      {410, absl::StatusCode::kOutOfRange},
      {415, absl::StatusCode::kFailedPrecondition},
      {422, absl::StatusCode::kInvalidArgument},
      {429, absl::StatusCode::kResourceExhausted},
      {500, absl::StatusCode::kUnavailable},
      {503, absl::StatusCode::kUnavailable},
      {504, absl::StatusCode::kDeadlineExceeded},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.http);
    ApiError e;
    e.http_code = c.http;
    e.message = "m";
    EXPECT_EQ(ApiErrorToStatus(e, "op").code(), c.code);
  }
}

TEST(ApiErrorTest, MessagesNameTheOperationAndGiveAHint) {
  ApiError e;
  e.http_code = 403;
  e.reason = "Forbidden";
  e.message = "User \"system:serviceaccount:apps:app\" cannot patch resource";
  EXPECT_THAT(ApiErrorToStatus(e, "patching the status of x"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "patching the status of x: User \"system:serviceaccount:apps:app\" cannot "
                       "patch resource (HTTP 403, reason Forbidden); check the RBAC Role"));
  e.http_code = 401;
  e.reason = "Unauthorized";
  e.message = "Unauthorized";
  EXPECT_THAT(ApiErrorToStatus(e, "getting x"),
              StatusIs(absl::StatusCode::kUnauthenticated, "expired or invalid"));
}

TEST(ApiErrorTest, ClassifiesRetryableAnswers) {
  EXPECT_TRUE(IsRetryableHttpCode(429));
  EXPECT_TRUE(IsRetryableHttpCode(500));
  EXPECT_TRUE(IsRetryableHttpCode(503));
  EXPECT_FALSE(IsRetryableHttpCode(409));
  EXPECT_FALSE(IsRetryableHttpCode(422));
  EXPECT_TRUE(IsTransient(absl::UnavailableError("x")));
  EXPECT_TRUE(IsTransient(absl::DeadlineExceededError("x")));
  EXPECT_FALSE(IsTransient(absl::PermissionDeniedError("x")));
  EXPECT_FALSE(IsTransient(absl::FailedPreconditionError("tls")));
}

}  // namespace
}  // namespace sluice::kube
