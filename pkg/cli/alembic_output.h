// Internal to pkg/cli: what the read-only commands print, in Alembic's formats (Revision.cmd_format
// and Revision.log_entry), so that people who know `alembic history` read sluice's output the same
// way. Pure functions over a built graph and, where a database was read, its state.
#ifndef SLUICE_PKG_CLI_ALEMBIC_OUTPUT_H_
#define SLUICE_PKG_CLI_ALEMBIC_OUTPUT_H_

#include <optional>
#include <string>

#include "pkg/engine/engine.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/migration.h"

namespace sluice::cli {

// Which of Alembic's markers a one-line revision carries.
struct LineFormat {
  bool parents = false;   // "PARENTS (DEPENDS_ON) -> " before the id
  bool branches = false;  // " (LABELS)"
  bool head = true;       // " (head)"
  bool tree = true;       // " (branchpoint)", " (mergepoint)"
  bool doc = false;       // ", DESCRIPTION"
};

// Returns one revision on one line, e.g. "a -> b (head), second".
std::string RevisionLine(const graph::RevisionGraph& graph, const manifest::Migration& m,
                         const LineFormat& format);

// Returns the verbose entry of a revision (`-v`, `show`): "Rev: ID (head)", parents, branches,
// path, checksum, and the description indented, followed by a blank line.
std::string VerboseEntry(const graph::RevisionGraph& graph, const manifest::Migration& m);

// Returns what `heads` prints.
std::string HeadsListing(const graph::RevisionGraph& graph, bool verbose);

// Returns what `branches` prints: each branch point, newest first, with its children.
std::string BranchesListing(const graph::RevisionGraph& graph, bool verbose);

// Returns what `history` prints: every revision, newest first, marked "(current)" and
// "(applied[, drifted|, unverified])" from `state` when a database was read.
std::string HistoryListing(const graph::RevisionGraph& graph,
                           const std::optional<engine::DatabaseState>& state, bool verbose);

// Returns what `current` prints: the version table's rows, those the manifests lack marked
// "(ahead of the manifests)". `graph` must know every row (Engine::Graph() after Inspect()).
std::string CurrentListing(const graph::RevisionGraph& graph, const engine::DatabaseState& state,
                           bool verbose);

}  // namespace sluice::cli

#endif  // SLUICE_PKG_CLI_ALEMBIC_OUTPUT_H_
