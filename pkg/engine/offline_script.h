// Offline mode (`upgrade --sql`, `downgrade --sql`): the SQL script a plan would run, version-table
// and history statements included, rendered without a database. Pure; thread-safe.
#ifndef SLUICE_PKG_ENGINE_OFFLINE_SCRIPT_H_
#define SLUICE_PKG_ENGINE_OFFLINE_SCRIPT_H_

#include <string>

#include "pkg/graph/revision_graph.h"

namespace sluice::engine {

struct OfflineScriptOptions {
  std::string schema = "public";
  std::string version_table = "alembic_version";
  // Whether to emit the CREATE statements for the schema and tables (when starting from base).
  bool create_tables = true;
  // Written to the history rows' applied_by.
  std::string applied_by = "sluice offline";
};

// Returns the script for `plan`: each step in its own BEGIN/COMMIT with its version-table change
// and history row (a `transactional: false` step runs its statements outside the transaction, then
// records itself in one).
//
// Example:
//   std::cout << RenderOfflineScript(*graph.PlanUpgrade({}, "head"), {});
std::string RenderOfflineScript(const graph::Plan& plan, const OfflineScriptOptions& options);

}  // namespace sluice::engine

#endif  // SLUICE_PKG_ENGINE_OFFLINE_SCRIPT_H_
