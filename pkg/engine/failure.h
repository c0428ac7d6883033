// The kinds of failure that product.md gives distinct exit codes, attached to an absl::Status as a
// payload so they survive being passed up through modules.
#ifndef SLUICE_PKG_ENGINE_FAILURE_H_
#define SLUICE_PKG_ENGINE_FAILURE_H_

#include "absl/status/status.h"

namespace sluice::engine {

enum class FailureKind {
  kMigrationFailed,   // a revision's SQL failed
  kUsage,             // a bad target or flag combination
  kInvalidManifests,  // manifests or the revision graph are invalid
  kDrift,             // applied revisions changed, or a failed revision needs resolving
  kLockTimeout,       // the migration lock was not acquired within --lock-wait
  kUnreachable,       // the database could not be reached
};

// Returns `status` marked with `kind`.
absl::Status WithFailureKind(absl::Status status, FailureKind kind);

// Returns the kind marked on `status`, else one inferred from its code: kUnavailable and kUnknown
// are kUnreachable, kDeadlineExceeded kLockTimeout, kInvalidArgument kInvalidManifests, and
// everything else kMigrationFailed.
FailureKind FailureKindOf(const absl::Status& status);

}  // namespace sluice::engine

#endif  // SLUICE_PKG_ENGINE_FAILURE_H_
