// Turns API server answers into absl::Status (kube-api.md section 2): the `Status` object's message
// and reason, and the code mapped as style.md says (404 NotFound, 409 Aborted, 401
// Unauthenticated, 403 PermissionDenied, 5xx Unavailable, 429 ResourceExhausted, 422/400
// InvalidArgument, 415 FailedPrecondition). Pure functions; no request or token ever appears here.
#ifndef SLUICE_PKG_KUBE_API_ERROR_H_
#define SLUICE_PKG_KUBE_API_ERROR_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sluice::kube {

// What a non-2xx response said.
struct ApiError {
  int http_code = 0;
  std::string reason;   // Status.reason, e.g. "Conflict"; empty when the body was not a Status
  std::string message;  // Status.message, or the start of the body
  std::optional<absl::Duration> retry_after;  // Retry-After header, else details.retryAfterSeconds
};

// Returns what the response with `http_code`, `body` and Retry-After header `retry_after_header`
// (may be empty) says.
ApiError ParseApiError(int http_code, absl::string_view body, absl::string_view retry_after_header);

// Returns the error for `error`, its message prefixed with `operation` (e.g.
// `patching status of migrationjobs.sluice.dev "ns/name"`).
absl::Status ApiErrorToStatus(const ApiError& error, absl::string_view operation);

// Returns whether a request that got `http_code` may be sent again as it is (429 and 5xx).
bool IsRetryableHttpCode(int http_code);

// Returns whether `status` (from a client call) is worth retrying later: the API server was
// unreachable, busy or slow.
bool IsTransient(const absl::Status& status);

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_API_ERROR_H_
