#include "pkg/kube/api_error.h"

#include <cpprest/json.h>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pkg/kube/client.h"

namespace sluice::kube {
namespace {

// Marks the error of a 410 (Gone / Expired) answer or watch event, so that callers tell "list
// again" apart from any other kOutOfRange.
constexpr char kExpiredPayload[] = "type.sluice.dev/kube.ResourceExpired";

// Retry-After is seconds or an HTTP date; the API server sends seconds. Dates are treated as "a
// second" rather than parsed: the client's backoff cap bounds the wait anyway.
std::optional<absl::Duration> ParseRetryAfterHeader(absl::string_view header) {
  header = absl::StripAsciiWhitespace(header);
  if (header.empty()) return std::nullopt;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(header, &seconds)) return absl::Seconds(seconds < 0 ? 0 : seconds);
  return absl::Seconds(1);
}

absl::StatusCode CodeFor(int http_code) {
  switch (http_code) {
    case 400:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kOutOfRange;
    case 415:
      return absl::StatusCode::kFailedPrecondition;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      if (http_code >= 500) return absl::StatusCode::kUnavailable;
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace

ApiError ParseApiError(int http_code, absl::string_view body,
                       absl::string_view retry_after_header) {
  ApiError error;
  error.http_code = http_code;
  error.retry_after = ParseRetryAfterHeader(retry_after_header);
  try {
    const web::json::value value = web::json::value::parse(std::string(body));
    if (value.is_object() && value.has_string_field("kind") &&
        value.at("kind").as_string() == "Status") {
      if (value.has_string_field("reason")) error.reason = value.at("reason").as_string();
      if (value.has_string_field("message")) error.message = value.at("message").as_string();
      if (!error.retry_after && value.has_object_field("details")) {
        const web::json::value& details = value.at("details");
        if (details.has_number_field("retryAfterSeconds")) {
          error.retry_after = absl::Seconds(details.at("retryAfterSeconds").as_number().to_int64());
        }
      }
      return error;
    }
  } catch (const std::exception&) {
    // Not JSON: a proxy or load balancer answered. Keep the start of the body below.
  }
  std::string text(absl::StripAsciiWhitespace(body.substr(0, 200)));
  error.message = text.empty() ? absl::StrCat("HTTP ", http_code) : text;
  return error;
}

absl::Status ApiErrorToStatus(const ApiError& error, absl::string_view operation) {
  std::string message = absl::StrCat(operation, ": ", error.message, " (HTTP ", error.http_code);
  if (!error.reason.empty()) absl::StrAppend(&message, ", reason ", error.reason);
  absl::StrAppend(&message, ")");
  switch (error.http_code) {
    case 401:
      absl::StrAppend(&message, "; the bearer token is missing, expired or invalid");
      break;
    case 403:
      absl::StrAppend(&message,
                      "; check the RBAC Role bound to the service account "
                      "(manifests/rbac-init-container.yaml)");
      break;
    default:
      break;
  }
  absl::Status status(CodeFor(error.http_code), message);
  if (error.http_code == 410) status.SetPayload(kExpiredPayload, absl::Cord(error.reason));
  return status;
}

bool IsResourceExpired(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange &&
         status.GetPayload(kExpiredPayload).has_value();
}

bool IsRetryableHttpCode(int http_code) { return http_code == 429 || http_code >= 500; }

bool IsTransient(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

}  // namespace sluice::kube
