// Internal to pkg/graph: RevisionGraph's representation and the helpers shared by the files that
// implement it (revision_graph.cc: build, validation and queries; target.cc: the target grammar;
// plan.cc: the version table's rows and plans). Not part of the module's API.
#ifndef SLUICE_PKG_GRAPH_REVISION_GRAPH_IMPL_H_
#define SLUICE_PKG_GRAPH_REVISION_GRAPH_IMPL_H_

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/migration.h"

namespace sluice::graph {
namespace internal {

// The node index that stands for "base", the state before any revision.
inline constexpr int kBase = -1;

inline constexpr absl::string_view kHeadKeyword = "head";
inline constexpr absl::string_view kHeadsKeyword = "heads";
inline constexpr absl::string_view kBaseKeyword = "base";

// Alembic matches a partial id only against ids longer than three characters
// (RevisionMap._revision_for_ident), so short ids can only be named in full.
inline constexpr size_t kMinPrefixMatchedIdLength = 4;

// How many close ids an error message suggests, and how far (in edits) they may be.
inline constexpr size_t kMaxSuggestions = 3;
inline constexpr size_t kMaxSuggestionDistance = 2;

// Suggestions compare a missing id with every id, so only the first unknown references get them:
// a directory of manifests that all point elsewhere must not make validation quadratic.
inline constexpr int kMaxSuggestedReferences = 20;

// How many matches an ambiguous-prefix error lists before it summarises the rest.
inline constexpr size_t kMaxListedMatches = 10;

inline constexpr absl::string_view kTargetForms =
    "targets are head, heads, base, a revision id or unique id prefix, a branch label, "
    "LABEL@head, +N, -N, REV+N or REV-N";

inline bool IsReserved(absl::string_view name) {
  return name == kHeadKeyword || name == kHeadsKeyword || name == kBaseKeyword;
}

// Returns "file:line" for error messages (just "file" when the line is unknown).
inline std::string Where(const manifest::Migration& m) {
  const std::string file = m.location.file.empty() ? "<unknown file>" : m.location.file;
  if (m.location.line <= 0) return file;
  return absl::StrCat(file, ":", m.location.line);
}

inline std::string Quoted(absl::string_view text) { return absl::StrCat("'", text, "'"); }

inline std::string RowsText(const std::vector<std::string>& rows) {
  return rows.empty() ? "<base>" : absl::StrJoin(rows, ", ");
}

// Returns " (did you mean A or B?)", or "" without suggestions.
inline std::string DidYouMean(const std::vector<std::string>& suggestions) {
  if (suggestions.empty()) return "";
  return absl::StrCat(" (did you mean ", absl::StrJoin(suggestions, " or "), "?)");
}

}  // namespace internal

struct RevisionGraph::Impl {
  // A target, resolved to nodes.
  struct Target {
    std::vector<int> nodes;     // sorted by id; empty means base
    std::optional<int> branch;  // Alembic's branch_label: limits which branches a downgrade reverts
    bool from_current = false;  // `+N` / `-N` with no symbol, counted from the version table
    int relative_steps = 0;
  };

  // The version table's rows, checked against the graph.
  struct State {
    std::vector<int> rows;      // sorted by id, no repeats
    std::vector<char> applied;  // ancestors-or-self of the rows
  };

  // The revisions that share lineage with one revision (Alembic's _shares_lineage without
  // dependencies): its ancestors and descendants through down_revision, and itself.
  struct Lineage {
    std::vector<char> members;
    bool Has(int node) const { return node != internal::kBase && members[node] != 0; }
  };

  std::vector<manifest::Migration> migrations;
  absl::flat_hash_map<std::string, int> by_id;
  absl::flat_hash_map<std::string, int> by_label;
  std::vector<std::vector<int>> parents;     // down_revision, in manifest order
  std::vector<std::vector<int>> downs;       // parents then depends_on, no repeats
  std::vector<std::vector<int>> children;    // revisions naming this one as a parent, by id
  std::vector<std::vector<int>> dependents;  // revisions naming this one in `downs`
  std::vector<int> order;                    // topological: every node after its `downs`
  std::vector<int> position;                 // node -> index in `order`
  std::vector<const manifest::Migration*> order_migrations;
  std::vector<int> sorted_ids;  // nodes sorted by id, for prefix search
  std::vector<int> heads;       // no child through down_revision (Alembic `heads`), by id
  std::vector<int> real_heads;  // no child through down_revision or depends_on, by id
  std::vector<int> bases;       // no down_revision, by id

  int size() const { return static_cast<int>(migrations.size()); }
  const std::string& Id(int node) const { return migrations[node].revision; }
  std::string Name(int node) const { return node == internal::kBase ? "base" : Id(node); }

  std::vector<std::string> Names(std::vector<int> nodes) const {
    std::vector<std::string> names;
    names.reserve(nodes.size());
    for (int node : nodes) names.push_back(Id(node));
    std::sort(names.begin(), names.end());
    return names;
  }

  void SortById(std::vector<int>& nodes) const {
    std::sort(nodes.begin(), nodes.end(), [this](int a, int b) { return Id(a) < Id(b); });
  }

  int FindNode(absl::string_view id) const {
    auto it = by_id.find(id);
    return it == by_id.end() ? internal::kBase : it->second;
  }

  // Marks every node reachable from `starts` through `edges`, the starts included.
  std::vector<char> Reach(const std::vector<int>& starts,
                          const std::vector<std::vector<int>>& edges) const {
    std::vector<char> seen(size(), 0);
    std::vector<int> todo;
    for (int start : starts) {
      if (start == internal::kBase || seen[start]) continue;
      seen[start] = 1;
      todo.push_back(start);
    }
    while (!todo.empty()) {
      const int node = todo.back();
      todo.pop_back();
      for (int next : edges[node]) {
        if (!seen[next]) {
          seen[next] = 1;
          todo.push_back(next);
        }
      }
    }
    return seen;
  }

  Lineage LineageOf(int node) const {
    Lineage lineage;
    lineage.members = Reach({node}, parents);
    const std::vector<char> below = Reach({node}, children);
    for (int i = 0; i < size(); ++i) lineage.members[i] |= below[i];
    return lineage;
  }

  void Finish();
  absl::StatusOr<State> ReadState(const std::vector<std::string>& current) const;
  absl::StatusOr<int> ResolveId(absl::string_view text, const Lineage* lineage,
                                absl::string_view branch_text) const;
  std::vector<std::string> Suggest(absl::string_view missing, bool labels) const;
  absl::StatusOr<int> SingleHead(const Lineage* lineage, absl::string_view target) const;
  absl::StatusOr<int> Walk(int start, int steps, const Lineage* lineage,
                           absl::string_view target) const;
  absl::StatusOr<Target> Resolve(absl::string_view target, const std::vector<std::string>& current,
                                 const State* state) const;
  absl::StatusOr<int> StartFromCurrent(const State& state, const Lineage* lineage,
                                       absl::string_view branch_text, int steps,
                                       absl::string_view target) const;
};

}  // namespace sluice::graph

#endif  // SLUICE_PKG_GRAPH_REVISION_GRAPH_IMPL_H_
