#include "pkg/failure/failure.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace sluice::failure {
namespace {
constexpr char kPayloadKey[] = "type.sluice.dev/FailureKind";
}  // namespace

absl::Status WithFailureKind(absl::Status status, FailureKind kind) {
  status.SetPayload(kPayloadKey, absl::Cord(std::to_string(static_cast<int>(kind))));
  return status;
}

FailureKind FailureKindOf(const absl::Status& status) {
  if (auto payload = status.GetPayload(kPayloadKey); payload.has_value()) {
    int value = -1;
    if (absl::SimpleAtoi(std::string(*payload), &value) && value >= 0 &&
        value <= static_cast<int>(FailureKind::kInterrupted)) {
      return static_cast<FailureKind>(value);
    }
  }
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnknown:
      return FailureKind::kUnreachable;
    case absl::StatusCode::kDeadlineExceeded:
      return FailureKind::kLockTimeout;
    case absl::StatusCode::kInvalidArgument:
      return FailureKind::kInvalidManifests;
    default:
      return FailureKind::kMigrationFailed;
  }
}

ExitCode ExitCodeOf(FailureKind kind) {
  switch (kind) {
    case FailureKind::kMigrationFailed:
      return kExitMigrationFailed;
    case FailureKind::kUsage:
      return kExitUsage;
    case FailureKind::kInvalidManifests:
      return kExitInvalidManifests;
    case FailureKind::kDrift:
      return kExitDrift;
    case FailureKind::kLockTimeout:
      return kExitLockTimeout;
    case FailureKind::kUnreachable:
      return kExitUnreachable;
    case FailureKind::kInterrupted:
      return kExitInterrupted;
  }
  return kExitMigrationFailed;
}

ExitCode ExitCodeFor(const absl::Status& status) { return ExitCodeOf(FailureKindOf(status)); }

}  // namespace sluice::failure
