#include "pkg/cli/alembic_output.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace sluice::cli {
namespace {

using graph::RevisionGraph;
using manifest::Migration;

std::string FormatParents(const Migration& m) {
  return m.down_revisions.empty() ? "<base>" : absl::StrJoin(m.down_revisions, ", ");
}

bool IsHead(const RevisionGraph& graph, const Migration& m) {
  return graph.Children(m.revision).empty();
}

bool IsBranchPoint(const RevisionGraph& graph, const Migration& m) {
  return graph.Children(m.revision).size() > 1;
}

}  // namespace

std::string RevisionLine(const RevisionGraph& graph, const Migration& m, const LineFormat& format) {
  std::string text;
  if (format.parents) {
    absl::StrAppend(&text, FormatParents(m));
    if (!m.depends_on.empty()) absl::StrAppend(&text, " (", absl::StrJoin(m.depends_on, ", "), ")");
    absl::StrAppend(&text, " -> ");
  }
  absl::StrAppend(&text, m.revision);
  if (format.branches && !m.branch_labels.empty()) {
    absl::StrAppend(&text, " (", absl::StrJoin(m.branch_labels, ", "), ")");
  }
  if (format.head && IsHead(graph, m)) absl::StrAppend(&text, " (head)");
  if (format.tree) {
    if (IsBranchPoint(graph, m)) absl::StrAppend(&text, " (branchpoint)");
    if (m.is_merge()) absl::StrAppend(&text, " (mergepoint)");
  }
  if (format.doc) absl::StrAppend(&text, ", ", m.description);
  return text;
}

std::string VerboseEntry(const RevisionGraph& graph, const Migration& m) {
  std::string text = absl::StrCat("Rev: ", m.revision);
  if (IsHead(graph, m)) absl::StrAppend(&text, " (head)");
  if (IsBranchPoint(graph, m)) absl::StrAppend(&text, " (branchpoint)");
  if (m.is_merge()) absl::StrAppend(&text, " (mergepoint)");
  absl::StrAppend(&text, "\n", m.is_merge() ? "Merges: " : "Parent: ", FormatParents(m), "\n");
  if (!m.depends_on.empty()) {
    absl::StrAppend(&text, "Also depends on: ", absl::StrJoin(m.depends_on, ", "), "\n");
  }
  if (IsBranchPoint(graph, m)) {
    absl::StrAppend(&text, "Branches into: ", absl::StrJoin(graph.Children(m.revision), ", "),
                    "\n");
  }
  if (!m.branch_labels.empty()) {
    absl::StrAppend(&text, "Branch names: ", absl::StrJoin(m.branch_labels, ", "), "\n");
  }
  absl::StrAppend(&text, "Path: ", m.location.file, ":", m.location.line, "\n");
  absl::StrAppend(&text, "Checksum: ", m.checksum, "\n");
  absl::StrAppend(&text, "Transactional: ", m.transactional ? "yes" : "no", "\n");
  absl::StrAppend(&text, "Downgrade: ", m.downgrade_sql.has_value() ? "yes" : "no", "\n\n");
  for (absl::string_view line : absl::StrSplit(m.description, '\n')) {
    absl::StrAppend(&text, "    ", line, "\n");
  }
  return absl::StrCat(text, "\n");
}

std::string HeadsListing(const RevisionGraph& graph, bool verbose) {
  std::string text;
  for (const std::string& head : graph.Heads()) {
    const Migration& m = *graph.Find(head);
    absl::StrAppend(&text, verbose
                               ? VerboseEntry(graph, m)
                               : RevisionLine(graph, m, {.branches = true, .tree = false}) + "\n");
  }
  return text;
}

std::string BranchesListing(const RevisionGraph& graph, bool verbose) {
  std::string text;
  const std::vector<const Migration*>& order = graph.TopologicalOrder();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Migration& m = **it;
    if (!IsBranchPoint(graph, m)) continue;
    absl::StrAppend(&text, verbose ? VerboseEntry(graph, m)
                                   : RevisionLine(graph, m, {.branches = true}) + "\n");
    const std::string indent(m.revision.size(), ' ');
    for (const std::string& child : graph.Children(m.revision)) {
      absl::StrAppend(&text, indent, " -> ",
                      RevisionLine(graph, *graph.Find(child), {.branches = true, .doc = verbose}),
                      "\n");
    }
    absl::StrAppend(&text, "\n");
  }
  return text;
}

std::string HistoryListing(const RevisionGraph& graph,
                           const std::optional<engine::DatabaseState>& state, bool verbose) {
  std::map<std::string, std::string> markers;
  if (state.has_value()) {
    for (const engine::AppliedRevision& applied : state->applied) {
      markers[applied.revision] =
          applied.verification == engine::Verification::kDrifted      ? " (applied, drifted)"
          : applied.verification == engine::Verification::kUnverified ? " (applied, unverified)"
                                                                      : " (applied)";
    }
    for (const std::string& version : state->versions) {
      markers[version] = absl::StrCat(" (current)", markers[version]);
    }
  }
  std::string text;
  const std::vector<const Migration*>& order = graph.TopologicalOrder();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Migration& m = **it;
    const std::string marker = markers.count(m.revision) > 0 ? markers[m.revision] : "";
    if (verbose) {
      std::string entry = VerboseEntry(graph, m);
      entry.insert(entry.find('\n'), marker);
      absl::StrAppend(&text, entry);
    } else {
      absl::StrAppend(&text, RevisionLine(graph, m, {.parents = true, .branches = true}), marker,
                      ", ", m.description, "\n");
    }
  }
  return text;
}

std::string CurrentListing(const RevisionGraph& graph, const engine::DatabaseState& state,
                           bool verbose) {
  std::string text;
  for (const std::string& version : state.versions) {
    const Migration& m = *graph.Find(version);
    const bool ahead =
        std::find(state.ahead.begin(), state.ahead.end(), version) != state.ahead.end();
    absl::StrAppend(&text, verbose ? VerboseEntry(graph, m)
                                   : absl::StrCat(RevisionLine(graph, m, {.tree = false}),
                                                  ahead ? " (ahead of the manifests)" : "", "\n"));
  }
  return text;
}

}  // namespace sluice::cli
