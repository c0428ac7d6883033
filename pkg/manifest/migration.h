// The in-memory form of one migration manifest (one revision). Plain data; no behaviour.
#ifndef SLUICE_PKG_MANIFEST_MIGRATION_H_
#define SLUICE_PKG_MANIFEST_MIGRATION_H_

#include <optional>
#include <string>
#include <vector>

namespace sluice::manifest {

// Where a piece of a manifest came from, for error messages. Lines and columns are 1-based; 0 means
// unknown.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

// A `sluice lint` rule that a revision allows (its manifest's `lint_allow` mapping), and why.
struct LintAllowance {
  std::string rule;    // one of kAllowableLintRules (lint_rules.h)
  std::string reason;  // non-empty
  int line = 0;        // file line of the entry
};

// One revision, as read from a manifest document.
struct Migration {
  std::string revision;                     // 1-32 chars of [A-Za-z0-9_.-]
  std::vector<std::string> down_revisions;  // empty: a base; two or more: a merge
  std::string description;
  std::vector<std::string> branch_labels;
  std::vector<std::string> depends_on;
  bool transactional = true;
  std::string upgrade_sql;                   // exactly as parsed
  std::optional<std::string> downgrade_sql;  // absent or null: cannot be downgraded past
  std::string checksum;                      // "sha256:<hex of upgrade_sql>"
  std::vector<LintAllowance> lint_allow;     // rules `sluice lint` lets pass, in manifest order

  SourceLocation location;  // the document's `revision:` key
  // File line holding the first line of the SQL text (0: unknown or absent): the line after
  // `upgrade: |` for a block, the key's line for `upgrade: SELECT 1;`. SQL line n is then at
  // file line upgrade_first_line + n - 1, exactly for a block scalar (the usual form).
  int upgrade_first_line = 0;
  int downgrade_first_line = 0;  // likewise for the downgrade SQL

  bool is_merge() const { return down_revisions.size() > 1; }
};

}  // namespace sluice::manifest

#endif  // SLUICE_PKG_MANIFEST_MIGRATION_H_
