#include <vector>

#include "pkg/lint/lint.h"

namespace sluice::lint {

absl::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
  }
  return "error";
}

const std::vector<Rule>& Rules() {
  static const auto* rules = new std::vector<Rule>{
      {"table-rewrite", Severity::kError,
       "a table (or its indexes) existing before the revision was rewritten under ACCESS "
       "EXCLUSIVE: a volatile default, a column type change, VACUUM FULL, CLUSTER, ...",
       true},
      {"validation-scan", Severity::kError,
       "a table existing before the revision was scanned to validate something while a lock that "
       "blocks writes was held: SET NOT NULL without a validated CHECK, a FOREIGN KEY or CHECK "
       "added without NOT VALID",
       true},
      {"index-not-concurrent", Severity::kError,
       "an index was built on a table existing before the revision without CONCURRENTLY (writes "
       "blocked for the whole build)",
       true},
      {"concurrently-in-transaction", Severity::kError,
       "CONCURRENTLY in a transactional revision: PostgreSQL refuses it inside a transaction block",
       true},
      {"data-loss", Severity::kError,
       "a table or column dropped, a table truncated, or a column's type narrowed", true},
      {"add-not-null-column", Severity::kError,
       "ADD COLUMN ... NOT NULL without a default on an existing table: fails as soon as the "
       "table has a row (an empty dev table hides it)",
       true},
      {"rename", Severity::kWarning,
       "a table or column that existed before the revision was renamed: the application's "
       "running version still reads the old name",
       true},
      {"access-exclusive", Severity::kInfo,
       "a brief, catalog-only ACCESS EXCLUSIVE lock on an existing table (no rewrite, no scan); "
       "sluice takes it under lock_timeout",
       true},
      {"revision-failed", Severity::kError,
       "the revision failed on the dev server, so it would fail in production too", false},
  };
  return *rules;
}

const Rule* FindRule(absl::string_view id) {
  for (const Rule& rule : Rules()) {
    if (rule.id == id) return &rule;
  }
  return nullptr;
}

}  // namespace sluice::lint
