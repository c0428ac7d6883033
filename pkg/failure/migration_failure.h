// What is known about a failed statement or revision, as ONE typed payload of an absl::Status: what
// PostgreSQL said (filled in by the store, the only code that sees libpq) and where in the
// manifests it happened (added by the engine when a revision fails). It crosses module boundaries
// without libpq and without anyone parsing a message. Thread-safe: plain data and pure functions.
#ifndef SLUICE_PKG_FAILURE_MIGRATION_FAILURE_H_
#define SLUICE_PKG_FAILURE_MIGRATION_FAILURE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"

namespace sluice::failure {

struct MigrationFailure {
  // What PostgreSQL said.
  std::string sqlstate;  // e.g. "42P01"; empty when the error did not come from the server
  std::string message;   // the primary message, without "ERROR:"; else what failed, in words
  std::string detail;
  std::string hint;
  // 1-based line, within the statement text sent, where PostgreSQL placed the error; 0 when it
  // gave no position (run-time errors carry none).
  int statement_line = 0;

  // Where in the manifests; empty / 0 until the engine knows which revision failed.
  std::string revision;
  std::string description;
  std::string direction;  // "upgrade" | "downgrade"
  std::string file;       // the revision's manifest file
  int revision_line = 0;  // the line of the revision in `file`
  // The line within the revision's SQL: where PostgreSQL placed the error when
  // `placed_by_server`, else where the failing statement starts; 0 when unknown.
  int sql_line = 0;
  bool placed_by_server = false;
  int line = 0;  // `sql_line` as a line of `file`; 0 when unknown
  // What else the reader must know (e.g. that statements of a transactional: false revision took
  // effect before the failing one).
  std::string note;
};

// Returns the MigrationFailure attached to `status`, if any.
//
// Example:
//   if (std::optional<MigrationFailure> f = MigrationFailureOf(status); f && f->sqlstate ==
//   "55P03")
//     ...  // a lock timeout: retry
std::optional<MigrationFailure> MigrationFailureOf(const absl::Status& status);

// Returns `status` with `failure` attached (replacing any attached before). An OK status is
// returned as it is: it carries no payload.
absl::Status WithMigrationFailure(absl::Status status, const MigrationFailure& failure);

// Returns the report of product.md for a failed revision: the revision, its description and file,
// SQLSTATE, message, detail, hint, the line within the SQL and the note, e.g.
//   revision r2 (add index, migrations/r2.yaml:1) failed to upgrade: SQLSTATE 42P01: relation "t"
//   does not exist
//     at line 3 of the upgrade SQL (migrations/r2.yaml:7)
// For a failure not tied to a revision, the message with SQLSTATE, detail and hint.
std::string DescribeMigrationFailure(const MigrationFailure& failure);

}  // namespace sluice::failure

#endif  // SLUICE_PKG_FAILURE_MIGRATION_FAILURE_H_
