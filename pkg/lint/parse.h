// What PostgreSQL's own parser (libpg_query) says about one SQL statement: the parts of it that
// `sluice lint`'s rules need. Internal to pkg/lint; the only code that includes libpg_query.
// Thread-safe: libpg_query keeps a memory context per thread, made on its first use there and
// freed when the thread exits (freeing it earlier leaves libpg_query unable to report errors).
#ifndef SLUICE_PKG_LINT_PARSE_H_
#define SLUICE_PKG_LINT_PARSE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice::lint::internal {

struct StatementFacts {
  std::string kind;  // e.g. "CREATE INDEX", "ALTER TABLE ... ADD COLUMN", "TRUNCATE"
  // CONCURRENTLY (index build, drop or reindex, DETACH PARTITION) or another statement that
  // PostgreSQL refuses to run inside a transaction block (VACUUM, CREATE DATABASE, ...).
  bool outside_transaction_only = false;
  bool concurrently = false;  // the CONCURRENTLY case of the above
  bool create_index = false;  // CREATE INDEX, either way
  bool truncate = false;
};

// Parses `sql` (one statement) and returns its facts; kInvalidArgument with the parser's message
// when it is not valid PostgreSQL 15 SQL.
absl::StatusOr<StatementFacts> ParseStatement(absl::string_view sql);

}  // namespace sluice::lint::internal

#endif  // SLUICE_PKG_LINT_PARSE_H_
