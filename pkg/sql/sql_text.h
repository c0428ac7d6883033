// PostgreSQL SQL text that sluice generates or takes apart: identifier and literal quoting, the
// version-table and history-table statements, and a statement splitter. Pure functions of text: no
// database, no libpq. Thread-safe.
#ifndef SLUICE_PKG_SQL_SQL_TEXT_H_
#define SLUICE_PKG_SQL_SQL_TEXT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice::sql {

// Returns `name` as a quoted identifier: "name", with embedded double quotes doubled. Always
// quoted, so upper case, spaces and keywords keep their meaning and nothing can be injected.
std::string QuoteIdentifier(absl::string_view name);

// Returns `value` as a standard-conforming string literal: 'value', with embedded quotes doubled.
// A value with a backslash is written as E'...' with backslashes doubled, so it reads back the same
// whatever `standard_conforming_strings` is.
std::string QuoteLiteral(absl::string_view value);

// Returns "schema"."table".
std::string QualifiedName(absl::string_view schema, absl::string_view table);

// Returns Alembic's version-table DDL, created only when missing:
// CREATE TABLE IF NOT EXISTS "schema"."table" (version_num VARCHAR(32) NOT NULL,
//   CONSTRAINT "table_pkc" PRIMARY KEY (version_num))
std::string CreateVersionTableSql(absl::string_view schema, absl::string_view table);

// Returns the statements that create, when missing, the schema, the version table and the history
// table, in that order.
std::vector<std::string> EnsureTablesSql(absl::string_view schema, absl::string_view table);

// Returns the DDL of sluice's history table, "schema"."sluice_history", created only when missing.
std::string CreateHistoryTableSql(absl::string_view schema);

// The history table's name and its columns in insertion order (id and defaults excluded).
inline constexpr char kHistoryTable[] = "sluice_history";
inline constexpr char kHistoryColumns[] =
    "revision, direction, checksum, description, started_at, finished_at, duration_ms, "
    "applied_by, outcome, error, down_revisions, depends_on, upgrade_sql, downgrade_sql, "
    "transactional";

// Returns the statements that change the version table's rows as Alembic does: one replaced row is
// an UPDATE, further removed rows are DELETEs, further added rows are INSERTs.
std::vector<std::string> VersionChangeSql(absl::string_view schema, absl::string_view table,
                                          const std::vector<std::string>& delete_versions,
                                          const std::vector<std::string>& insert_versions);

// One statement of a script, with the 1-based line of the script where it starts.
struct Statement {
  std::string text;  // without the terminating semicolon
  int first_line = 1;
};

// Splits `script` into statements at top-level semicolons, respecting single-quoted and E''
// strings, quoted identifiers, dollar quoting ($$ and $tag$), `--` and nested `/* */` comments, and
// `BEGIN ATOMIC ... END` bodies. Statements that hold only white space and comments are dropped.
// Returns kInvalidArgument, naming the line, for an unterminated string, identifier, dollar quote
// or comment.
absl::StatusOr<std::vector<Statement>> SplitStatements(absl::string_view script);

}  // namespace sluice::sql

#endif  // SLUICE_PKG_SQL_SQL_TEXT_H_
