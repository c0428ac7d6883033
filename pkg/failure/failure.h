// How sluice fails: the kinds of failure that product.md gives distinct exit codes, carried on an
// absl::Status as a payload so that they survive being passed up through modules, and the exit
// codes themselves. Used by the engine (which marks failures) and the CLI (which maps them to exit
// codes). Depends on abseil only. Thread-safe: pure functions.
#ifndef SLUICE_PKG_FAILURE_FAILURE_H_
#define SLUICE_PKG_FAILURE_FAILURE_H_

#include "absl/status/status.h"

namespace sluice::failure {

// Exit codes of product.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitMigrationFailed = 1,
  kExitUsage = 2,
  kExitPending = 3,
  kExitInvalidManifests = 4,
  kExitDrift = 5,
  kExitLockTimeout = 6,
  kExitUnreachable = 7,
  kExitLintErrors = 8,  // `lint` (or `upgrade --lint`) found errors; README documents it
  // Stopped by SIGTERM or SIGINT (128 + SIGTERM, as a container runtime reports a process that a
  // signal ended): the revisions before the stop are applied, the rest are still pending.
  kExitInterrupted = 143,
};

enum class FailureKind {
  kMigrationFailed,   // a revision's SQL failed
  kUsage,             // a bad target or flag combination
  kInvalidManifests,  // manifests or the revision graph are invalid
  kDrift,             // applied revisions changed, or a failed revision needs resolving
  kLockTimeout,       // the migration lock was not acquired within --lock-wait
  kUnreachable,       // the database could not be reached
  kInterrupted,       // asked to stop (SIGTERM, SIGINT) before the run was done
};

// Returns `status` marked with `kind`.
absl::Status WithFailureKind(absl::Status status, FailureKind kind);

// Returns the kind marked on `status`, else one inferred from its code: kUnavailable and kUnknown
// are kUnreachable, kDeadlineExceeded kLockTimeout, kInvalidArgument kInvalidManifests, and
// everything else kMigrationFailed.
FailureKind FailureKindOf(const absl::Status& status);

// Returns the exit code of a failure of `kind`.
ExitCode ExitCodeOf(FailureKind kind);

// Returns the exit code for a failed `status` (that of FailureKindOf(status)).
ExitCode ExitCodeFor(const absl::Status& status);

}  // namespace sluice::failure

#endif  // SLUICE_PKG_FAILURE_FAILURE_H_
