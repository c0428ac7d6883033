// `sluice lint` and `upgrade --lint` as the CLI runs them: the range's revisions from the graph,
// the dev server's connections, and the findings printed. Internal to pkg/cli (app.cc calls it).
#ifndef SLUICE_PKG_CLI_LINT_COMMAND_H_
#define SLUICE_PKG_CLI_LINT_COMMAND_H_

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "pkg/base/stop_request.h"
#include "pkg/cli/flags.h"
#include "pkg/graph/revision_graph.h"

namespace sluice::cli {

// Lints, on options.dev_url, the revisions of `range` (`[FROM:]TO`; FROM defaults to base), or
// with no range those above `current` (the database's version rows; base when nullopt) up to
// `to`. Revisions below the range are applied first, unobserved.
// Prints the findings to `out` in options.format and returns the exit code: 0 when clean (or
// only warnings, unless options.warnings_as_errors), 8 on errors, another code when the lint
// itself could not run (logged). `stop` (may be null) stops the lint and drops its scratch
// database.
int RunLintOn(const Options& options, const graph::RevisionGraph& graph,
              const std::optional<std::vector<std::string>>& current,
              const std::optional<std::string>& range, const std::string& to, std::ostream& out,
              std::shared_ptr<base::StopRequest> stop);

}  // namespace sluice::cli

#endif  // SLUICE_PKG_CLI_LINT_COMMAND_H_
