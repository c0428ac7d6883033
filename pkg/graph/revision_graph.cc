// The revision graph: building and validating it, and the queries over it, following Alembic's
// RevisionMap (alembic/script/revision.py) and HeadMaintainer (alembic/runtime/migration.py).
//
// Every traversal here is one pass over the nodes and edges (O(n + e)), so a graph of tens of
// thousands of revisions builds and plans in milliseconds; nothing computes an ancestor set per
// node or per step.
#include "pkg/graph/revision_graph.h"

#include "pkg/graph/revision_graph_impl.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/sha256.h"
#include "pkg/base/status_macros.h"
#include "pkg/base/text.h"

namespace sluice::graph {
namespace {

using internal::DidYouMean;
using internal::IsReserved;
using internal::kBase;
using internal::kMaxSuggestedReferences;
using internal::kMaxSuggestionDistance;
using internal::kMaxSuggestions;
using internal::kMinPrefixMatchedIdLength;
using internal::Quoted;
using internal::Where;
using manifest::Migration;

// Finds the cycles among `edges` (one per strongly connected component that has one, Tarjan's
// algorithm without recursion so that long chains cannot overflow the stack). Each cycle lists
// its nodes in edge order, starting at the smallest id.
std::vector<std::vector<int>> FindCycles(const std::vector<std::vector<int>>& edges,
                                         const std::vector<Migration>& migrations) {
  const int n = static_cast<int>(edges.size());
  std::vector<int> index(n, -1);
  std::vector<int> low(n, 0);
  std::vector<char> on_stack(n, 0);
  std::vector<int> stack;
  std::vector<std::pair<int, size_t>> calls;
  std::vector<std::vector<int>> components;
  int counter = 0;
  for (int root = 0; root < n; ++root) {
    if (index[root] != -1) continue;
    index[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack[root] = 1;
    calls.push_back({root, 0});
    while (!calls.empty()) {
      auto& [node, next_edge] = calls.back();
      if (next_edge < edges[node].size()) {
        const int next = edges[node][next_edge++];
        if (index[next] == -1) {
          index[next] = low[next] = counter++;
          stack.push_back(next);
          on_stack[next] = 1;
          calls.push_back({next, 0});
        } else if (on_stack[next]) {
          low[node] = std::min(low[node], index[next]);
        }
        continue;
      }
      const int done = node;
      calls.pop_back();
      if (!calls.empty()) low[calls.back().first] = std::min(low[calls.back().first], low[done]);
      if (low[done] != index[done]) continue;
      std::vector<int> component;
      int member;
      do {
        member = stack.back();
        stack.pop_back();
        on_stack[member] = 0;
        component.push_back(member);
      } while (member != done);
      const bool self_loop =
          std::find(edges[done].begin(), edges[done].end(), done) != edges[done].end();
      if (component.size() > 1 || self_loop) components.push_back(std::move(component));
    }
  }

  std::vector<std::vector<int>> cycles;
  std::vector<char> in_component(n, 0);
  std::vector<int> seen_at(n, -1);
  for (const std::vector<int>& component : components) {
    for (int node : component) in_component[node] = 1;
    const int start = *std::min_element(component.begin(), component.end(), [&](int a, int b) {
      return migrations[a].revision < migrations[b].revision;
    });
    // Every member has an edge to another member, so walking such edges must come back to a
    // node already walked: the walk from there on is a cycle.
    std::vector<int> path;
    int node = start;
    while (seen_at[node] == -1) {
      seen_at[node] = static_cast<int>(path.size());
      path.push_back(node);
      for (int next : edges[node]) {
        if (in_component[next]) {
          node = next;
          break;
        }
      }
    }
    std::vector<int> cycle(path.begin() + seen_at[node], path.end());
    std::rotate(cycle.begin(),
                std::min_element(
                    cycle.begin(), cycle.end(),
                    [&](int a, int b) { return migrations[a].revision < migrations[b].revision; }),
                cycle.end());
    for (int member : path) seen_at[member] = -1;
    for (int member : component) in_component[member] = 0;
    cycles.push_back(std::move(cycle));
  }
  std::sort(cycles.begin(), cycles.end(), [&](const auto& a, const auto& b) {
    return migrations[a.front()].revision < migrations[b.front()].revision;
  });
  return cycles;
}

}  // namespace

std::vector<std::string> RevisionGraph::Impl::Suggest(absl::string_view missing,
                                                      bool labels) const {
  std::vector<std::pair<size_t, std::string>> close;
  const auto consider = [&](const std::string& name) {
    size_t distance = base::EditDistance(missing, name, kMaxSuggestionDistance);
    // A truncated or over-long id is a likely typo too, however many characters differ.
    if (distance > kMaxSuggestionDistance && missing.size() >= kMinPrefixMatchedIdLength &&
        (absl::StartsWith(name, missing) || absl::StartsWith(missing, name))) {
      distance = kMaxSuggestionDistance;
    }
    if (distance <= kMaxSuggestionDistance && distance < std::max(missing.size(), name.size())) {
      close.push_back({distance, name});
    }
  };
  for (const Migration& m : migrations) consider(m.revision);
  if (labels) {
    for (const auto& [label, node] : by_label) consider(label);
  }
  std::sort(close.begin(), close.end());
  close.erase(std::unique(close.begin(), close.end()), close.end());
  std::vector<std::string> names;
  for (size_t i = 0; i < close.size() && i < kMaxSuggestions; ++i) names.push_back(close[i].second);
  return names;
}

// Derives children, heads, bases and the topological order from validated edges.
void RevisionGraph::Impl::Finish() {
  const int n = size();
  children.assign(n, {});
  dependents.assign(n, {});
  for (int node = 0; node < n; ++node) {
    for (int parent : parents[node]) children[parent].push_back(node);
    for (int down : downs[node]) dependents[down].push_back(node);
  }
  for (int node = 0; node < n; ++node) {
    SortById(children[node]);
    SortById(dependents[node]);
    if (children[node].empty()) heads.push_back(node);
    if (dependents[node].empty()) real_heads.push_back(node);
    if (parents[node].empty()) bases.push_back(node);
  }
  SortById(heads);
  SortById(real_heads);
  SortById(bases);
  sorted_ids.resize(n);
  for (int node = 0; node < n; ++node) sorted_ids[node] = node;
  SortById(sorted_ids);

  // Depth-first from each real head (by id), emitting a node once everything it names is out:
  // a valid topological order that keeps each branch's chain together, and that depends only on
  // the manifests' content, not on the order files were read in.
  std::vector<char> visited(n, 0);
  std::vector<std::pair<int, size_t>> calls;
  order.reserve(n);
  for (int head : real_heads) {
    visited[head] = 1;
    calls.push_back({head, 0});
    while (!calls.empty()) {
      auto& [node, next_edge] = calls.back();
      if (next_edge < downs[node].size()) {
        const int next = downs[node][next_edge++];
        if (!visited[next]) {
          visited[next] = 1;
          calls.push_back({next, 0});
        }
        continue;
      }
      order.push_back(node);
      calls.pop_back();
    }
  }
  position.assign(n, 0);
  order_migrations.reserve(n);
  for (int i = 0; i < n; ++i) {
    position[order[i]] = i;
    order_migrations.push_back(&migrations[order[i]]);
  }
}

absl::StatusOr<RevisionGraph> RevisionGraph::Build(std::vector<Migration> migrations) {
  auto impl = std::make_unique<Impl>();
  Impl& g = *impl;
  g.migrations = std::move(migrations);
  const int n = g.size();
  std::vector<std::string> errors;
  int suggested = 0;
  const auto suggest = [&](absl::string_view missing, bool labels) {
    return ++suggested > kMaxSuggestedReferences ? std::string()
                                                 : DidYouMean(g.Suggest(missing, labels));
  };
  const auto error = [&](int node, const std::string& text) {
    errors.push_back(absl::StrCat(Where(g.migrations[node]), ": revision ",
                                  g.migrations[node].revision, ": ", text));
  };

  for (int node = 0; node < n; ++node) {
    const std::string& id = g.Id(node);
    if (IsReserved(id)) {
      error(node, absl::StrCat(Quoted(id), " is a reserved target name; choose another id"));
    }
    auto [it, inserted] = g.by_id.emplace(id, node);
    if (!inserted) {
      error(node, absl::StrCat("is defined twice; the other definition is at ",
                               Where(g.migrations[it->second])));
    }
  }
  for (int node = 0; node < n; ++node) {
    for (const std::string& label : g.migrations[node].branch_labels) {
      if (label.empty() || absl::StrContains(label, "@") || IsReserved(label)) {
        error(node, absl::StrCat("branch label ", Quoted(label),
                                 " cannot be used in a target; a label must be non-empty, "
                                 "contain no '@' and not be head, heads or base"));
        continue;
      }
      auto id_match = g.by_id.find(label);
      if (id_match != g.by_id.end()) {
        error(node,
              absl::StrCat("branch label ", Quoted(label), " is also the id of revision ", label,
                           " (", Where(g.migrations[id_match->second]), "); rename the label"));
        continue;
      }
      auto [it, inserted] = g.by_label.emplace(label, node);
      if (!inserted) {
        error(node, absl::StrCat("branch label ", Quoted(label), " is already used by revision ",
                                 g.Id(it->second), " (", Where(g.migrations[it->second]),
                                 "); a label must name one branch"));
      }
    }
  }

  g.parents.assign(n, {});
  g.downs.assign(n, {});
  for (int node = 0; node < n; ++node) {
    const Migration& m = g.migrations[node];
    std::vector<int>& parents = g.parents[node];
    std::vector<int>& downs = g.downs[node];
    for (const std::string& parent : m.down_revisions) {
      const int found = g.FindNode(parent);
      if (found == kBase) {
        error(node, absl::StrCat("down_revision ", Quoted(parent), " is not a known revision",
                                 suggest(parent, /*labels=*/false)));
        continue;
      }
      if (std::find(parents.begin(), parents.end(), found) != parents.end()) {
        error(node, absl::StrCat("down_revision lists ", parent, " twice"));
        continue;
      }
      parents.push_back(found);
      downs.push_back(found);
    }
    for (const std::string& dependency : m.depends_on) {
      // Alembic resolves depends_on through ids and branch labels alike (_add_depends_on).
      int found = g.FindNode(dependency);
      if (found == kBase) {
        auto label = g.by_label.find(dependency);
        if (label != g.by_label.end()) found = label->second;
      }
      if (found == kBase) {
        error(node, absl::StrCat("depends_on ", Quoted(dependency),
                                 " is neither a known revision nor a branch label",
                                 suggest(dependency, /*labels=*/true)));
        continue;
      }
      if (std::find(downs.begin(), downs.end(), found) == downs.end()) downs.push_back(found);
    }
  }

  for (const std::vector<int>& cycle : FindCycles(g.downs, g.migrations)) {
    std::vector<std::string> names;
    for (int node : cycle) names.push_back(g.Id(node));
    names.push_back(g.Id(cycle.front()));
    error(cycle.front(), absl::StrCat(cycle.size() == 1 ? "names itself in down_revision/depends_on"
                                                        : "down_revision/depends_on form a cycle",
                                      " (each names the next): ", absl::StrJoin(names, " -> ")));
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  g.Finish();
  return RevisionGraph(std::move(impl));
}

RevisionGraph::RevisionGraph(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RevisionGraph::RevisionGraph(RevisionGraph&&) noexcept = default;
RevisionGraph& RevisionGraph::operator=(RevisionGraph&&) noexcept = default;
RevisionGraph::~RevisionGraph() = default;

const std::vector<const Migration*>& RevisionGraph::TopologicalOrder() const {
  return impl_->order_migrations;
}

std::string RevisionGraph::ContentDigest() const {
  std::vector<std::pair<absl::string_view, absl::string_view>> entries;
  entries.reserve(impl_->order_migrations.size());
  for (const Migration* m : impl_->order_migrations) entries.emplace_back(m->revision, m->checksum);
  std::sort(entries.begin(), entries.end());
  std::string text;
  // Ids and checksums hold neither a tab nor a newline, so the joined text is unambiguous.
  for (const auto& [revision, checksum] : entries)
    absl::StrAppend(&text, revision, "\t", checksum, "\n");
  return absl::StrCat("sha256:", base::Sha256Hex(text));
}

std::vector<std::string> RevisionGraph::Heads() const { return impl_->Names(impl_->heads); }

std::vector<std::string> RevisionGraph::Bases() const { return impl_->Names(impl_->bases); }

std::vector<std::string> RevisionGraph::BranchPoints() const {
  std::vector<int> points;
  for (int node = 0; node < impl_->size(); ++node) {
    if (impl_->children[node].size() > 1) points.push_back(node);
  }
  return impl_->Names(std::move(points));
}

std::vector<std::string> RevisionGraph::Children(absl::string_view revision) const {
  const int node = impl_->FindNode(revision);
  if (node == kBase) return {};
  return impl_->Names(impl_->children[node]);
}

const Migration* RevisionGraph::Find(absl::string_view revision) const {
  const int node = impl_->FindNode(revision);
  return node == kBase ? nullptr : &impl_->migrations[node];
}

absl::StatusOr<const Migration*> RevisionGraph::Resolve(absl::string_view id_or_prefix) const {
  SLUICE_ASSIGN_OR_RETURN(const int node,
                          impl_->ResolveId(id_or_prefix, /*lineage=*/nullptr, /*branch_text=*/""));
  return &impl_->migrations[node];
}

bool RevisionGraph::IsAncestorOrSelf(absl::string_view ancestor, absl::string_view revision) const {
  const Impl& g = *impl_;
  const int target = g.FindNode(ancestor);
  const int start = g.FindNode(revision);
  if (target == kBase || start == kBase) return false;
  if (target == start) return true;
  // Only nodes after `target` in topological order can lie on a path down to it.
  const int floor = g.position[target];
  std::vector<char> seen(g.size(), 0);
  std::vector<int> todo = {start};
  seen[start] = 1;
  while (!todo.empty()) {
    const int node = todo.back();
    todo.pop_back();
    for (int next : g.downs[node]) {
      if (next == target) return true;
      if (!seen[next] && g.position[next] > floor) {
        seen[next] = 1;
        todo.push_back(next);
      }
    }
  }
  return false;
}

}  // namespace sluice::graph
