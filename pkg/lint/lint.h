// `sluice lint`: runs revisions on a scratch database of a dev server exactly as `upgrade` would
// (same transaction mode, same splitter) and reports what PostgreSQL was seen doing to relations
// that existed before each revision: the locks it took, rewrites, validation scans, drops and
// renames. Statements are classified with PostgreSQL's own parser (libpg_query), which stays
// inside this module and is touched only when a lint runs.
#ifndef SLUICE_PKG_LINT_LINT_H_
#define SLUICE_PKG_LINT_LINT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkg/base/stop_request.h"
#include "pkg/manifest/migration.h"
#include "pkg/store/store.h"

namespace sluice::lint {

enum class Severity { kInfo, kWarning, kError };

// Returns "info", "warning" or "error".
absl::string_view SeverityName(Severity severity);

// One rule: its id (what `lint_allow` names), severity, and what it catches.
struct Rule {
  absl::string_view id;
  Severity severity;
  absl::string_view summary;
  bool allowable;  // whether a manifest's `lint_allow` may name it
};

// Returns every rule, in the order the README lists them.
const std::vector<Rule>& Rules();

// Returns the rule `id`, or nullptr.
const Rule* FindRule(absl::string_view id);

// What one statement of a revision was seen to do, and what to do instead.
struct Finding {
  std::string rule;
  Severity severity = Severity::kError;
  std::string revision;
  std::string file;
  int line = 0;           // file line of the statement (of the revision when unknown)
  std::string statement;  // the statement's kind, e.g. "ALTER TABLE ... ADD COLUMN"
  std::string message;    // what is wrong and the fix
  std::string observed;   // what PostgreSQL was seen doing, e.g. "AccessExclusiveLock on orders"
  bool allowed = false;   // the revision's `lint_allow` names the rule
  std::string allow_reason;
};

// Connects to the dev server: to `database` when non-empty, else to the dev URL's own database.
using DevConnector = std::function<absl::StatusOr<std::unique_ptr<store::Store>>(
    const std::string& database, const std::string& application_name)>;

struct LintOptions {
  // Applied first, without observing, in this order (the revisions below the range).
  std::vector<const manifest::Migration*> before;
  // Run and observed, in this order.
  std::vector<const manifest::Migration*> range;
  absl::Duration ddl_lock_timeout = absl::Seconds(10);  // as `upgrade` sets it
  // The scratch database's name starts with this; a random suffix makes it unique.
  std::string database_prefix = "sluice_lint_";
  // Stops the lint (the CLI's SIGINT and SIGTERM): the scratch database is dropped at once, and
  // Lint returns a kInterrupted failure. None: it runs to the end.
  std::shared_ptr<base::StopRequest> stop;
};

struct LintReport {
  std::vector<Finding> findings;  // in revision and statement order
  int revisions_linted = 0;
  int statements = 0;
  std::string scratch_database;  // its name (dropped by the time Lint returns)
  int errors = 0;                // findings of severity error that no `lint_allow` allows
  int warnings = 0;              // likewise for warnings
};

// Creates a scratch database on the dev server, applies `options.before`, runs and observes
// `options.range`, and drops the scratch database, also when a step fails or `options.stop` asks
// it to stop (then the run ends with kCancelled, of failure kind kInterrupted). A revision that
// fails on the dev server is a finding (`revision-failed`, or the rule that explains why), and the
// lint goes on with the next. Returns kPermissionDenied, saying what to grant, when the dev URL's
// role cannot create databases; kUnavailable when the dev server cannot be reached.
//
// Example:
//   LintOptions options;
//   options.range = {graph.Find("a1b2")};
//   SLUICE_ASSIGN_OR_RETURN(LintReport report, Lint(options, connector));
//   std::cout << FormatText(report);
absl::StatusOr<LintReport> Lint(const LintOptions& options, const DevConnector& connect);

// Returns the findings one per line: `FILE:LINE: SEVERITY RULE revision: message (observed: ...)`,
// then a summary line.
std::string FormatText(const LintReport& report);
// Returns one JSON object per finding, one per line.
std::string FormatJson(const LintReport& report);
// Returns GitHub Actions workflow commands (`::error file=F,line=N,title=RULE::message`).
std::string FormatGithub(const LintReport& report);

}  // namespace sluice::lint

#endif  // SLUICE_PKG_LINT_LINT_H_
