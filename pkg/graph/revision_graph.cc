// The revision graph: validation, target resolution and plans, following Alembic's RevisionMap
// (alembic/script/revision.py) and HeadMaintainer (alembic/runtime/migration.py).
//
// Every traversal here is one pass over the nodes and edges (O(n + e)), so a graph of tens of
// thousands of revisions builds and plans in milliseconds; nothing computes an ancestor set per
// node or per step.
#include "pkg/graph/revision_graph.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/status_macros.h"
#include "pkg/base/text.h"

namespace sluice::graph {
namespace {

using manifest::Migration;

// The node index that stands for "base", the state before any revision.
constexpr int kBase = -1;

constexpr absl::string_view kHeadKeyword = "head";
constexpr absl::string_view kHeadsKeyword = "heads";
constexpr absl::string_view kBaseKeyword = "base";

// Alembic matches a partial id only against ids longer than three characters
// (RevisionMap._revision_for_ident), so short ids can only be named in full.
constexpr size_t kMinPrefixMatchedIdLength = 4;

// How many close ids an error message suggests, and how far (in edits) they may be.
constexpr size_t kMaxSuggestions = 3;
constexpr size_t kMaxSuggestionDistance = 2;

// Suggestions compare a missing id with every id, so only the first unknown references get them:
// a directory of manifests that all point elsewhere must not make validation quadratic.
constexpr int kMaxSuggestedReferences = 20;

// How many matches an ambiguous-prefix error lists before it summarises the rest.
constexpr size_t kMaxListedMatches = 10;

constexpr absl::string_view kTargetForms =
    "targets are head, heads, base, a revision id or unique id prefix, a branch label, "
    "LABEL@head, +N, -N, REV+N or REV-N";

bool IsReserved(absl::string_view name) {
  return name == kHeadKeyword || name == kHeadsKeyword || name == kBaseKeyword;
}

// Returns "file:line" for error messages (just "file" when the line is unknown).
std::string Where(const Migration& m) {
  const std::string file = m.location.file.empty() ? "<unknown file>" : m.location.file;
  if (m.location.line <= 0) return file;
  return absl::StrCat(file, ":", m.location.line);
}

std::string Quoted(absl::string_view text) { return absl::StrCat("'", text, "'"); }

std::string RowsText(const std::vector<std::string>& rows) {
  return rows.empty() ? "<base>" : absl::StrJoin(rows, ", ");
}

// A relative target `[SYMBOL]+N` / `[SYMBOL]-N` split into its parts.
struct Relative {
  std::string symbol;  // empty: relative to the version table's rows
  int steps = 0;       // signed
};

// Parses `text` as a relative target; nullopt when it is not one. N must fit an int.
absl::StatusOr<std::optional<Relative>> ParseRelative(absl::string_view text) {
  const size_t sign = text.find_last_of("+-");
  if (sign == absl::string_view::npos || sign + 1 == text.size()) return std::nullopt;
  const absl::string_view digits = text.substr(sign + 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  int count = 0;
  if (!absl::SimpleAtoi(digits, &count) || count > 1000000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("relative target ", Quoted(text), ": the step count is too large"));
  }
  if (count == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "relative target ", Quoted(text), " moves 0 steps; use +N or -N with N of at least 1"));
  }
  Relative relative;
  relative.symbol = std::string(text.substr(0, sign));
  relative.steps = text[sign] == '+' ? count : -count;
  return relative;
}

}  // namespace

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
    bool Has(int node) const { return node != kBase && members[node] != 0; }
  };

  std::vector<Migration> migrations;
  absl::flat_hash_map<std::string, int> by_id;
  absl::flat_hash_map<std::string, int> by_label;
  std::vector<std::vector<int>> parents;     // down_revision, in manifest order
  std::vector<std::vector<int>> downs;       // parents then depends_on, no repeats
  std::vector<std::vector<int>> children;    // revisions naming this one as a parent, by id
  std::vector<std::vector<int>> dependents;  // revisions naming this one in `downs`
  std::vector<int> order;                    // topological: every node after its `downs`
  std::vector<int> position;                 // node -> index in `order`
  std::vector<const Migration*> order_migrations;
  std::vector<int> sorted_ids;  // nodes sorted by id, for prefix search
  std::vector<int> heads;       // no child through down_revision (Alembic `heads`), by id
  std::vector<int> real_heads;  // no child through down_revision or depends_on, by id
  std::vector<int> bases;       // no down_revision, by id

  int size() const { return static_cast<int>(migrations.size()); }
  const std::string& Id(int node) const { return migrations[node].revision; }
  std::string Name(int node) const { return node == kBase ? "base" : Id(node); }

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
    return it == by_id.end() ? kBase : it->second;
  }

  // Marks every node reachable from `starts` through `edges`, the starts included.
  std::vector<char> Reach(const std::vector<int>& starts,
                          const std::vector<std::vector<int>>& edges) const {
    std::vector<char> seen(size(), 0);
    std::vector<int> todo;
    for (int start : starts) {
      if (start == kBase || seen[start]) continue;
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

namespace {

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

namespace {

std::string DidYouMean(const std::vector<std::string>& suggestions) {
  if (suggestions.empty()) return "";
  return absl::StrCat(" (did you mean ", absl::StrJoin(suggestions, " or "), "?)");
}

}  // namespace

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

absl::StatusOr<RevisionGraph::Impl::State> RevisionGraph::Impl::ReadState(
    const std::vector<std::string>& current) const {
  State state;
  std::vector<std::string> unknown;
  for (const std::string& row : current) {
    const int node = FindNode(row);
    if (node == kBase) {
      unknown.push_back(row);
    } else {
      state.rows.push_back(node);
    }
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    unknown.erase(std::unique(unknown.begin(), unknown.end()), unknown.end());
    return absl::FailedPreconditionError(
        absl::StrCat("the version table names ", unknown.size() == 1 ? "revision " : "revisions ",
                     absl::StrJoin(unknown, ", "),
                     ", which no migration manifest defines: the migrations directory is missing a "
                     "manifest or is not the one this database was migrated with"));
  }
  SortById(state.rows);
  state.rows.erase(std::unique(state.rows.begin(), state.rows.end()), state.rows.end());
  state.applied = Reach(state.rows, downs);
  // Alembic refuses a version table whose rows overlap (_get_ancestor_nodes with check=True):
  // each row must be a head of what is applied.
  for (int row : state.rows) {
    for (int dependent : dependents[row]) {
      if (!state.applied[dependent]) continue;
      std::vector<std::string> above;
      for (int other : state.rows) {
        if (other != row && Reach({other}, downs)[row]) above.push_back(Id(other));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "the version table holds ", Id(row), " and ", absl::StrJoin(above, ", "), ", but ",
          Id(row), " is an ancestor of ", absl::StrJoin(above, ", "),
          "; the table must hold only the current heads: repair it with `sluice stamp`"));
    }
  }
  return state;
}

absl::StatusOr<int> RevisionGraph::Impl::ResolveId(absl::string_view text, const Lineage* lineage,
                                                   absl::string_view branch_text) const {
  const auto not_on_branch = [&](int node) {
    return absl::InvalidArgumentError(
        absl::StrCat("revision ", Id(node), " is not a member of branch ", Quoted(branch_text)));
  };
  int node = FindNode(text);
  if (node == kBase) {
    auto label = by_label.find(text);
    if (label != by_label.end()) node = label->second;
  }
  if (node != kBase) {
    if (lineage != nullptr && !lineage->Has(node)) return not_on_branch(node);
    return node;
  }
  std::vector<int> matches;
  auto it = std::lower_bound(sorted_ids.begin(), sorted_ids.end(), text,
                             [this](int a, absl::string_view b) { return Id(a) < b; });
  for (; it != sorted_ids.end() && absl::StartsWith(Id(*it), text); ++it) {
    if (Id(*it).size() < kMinPrefixMatchedIdLength) continue;
    if (lineage != nullptr && !lineage->Has(*it)) continue;
    matches.push_back(*it);
  }
  if (matches.empty()) {
    std::string message = absl::StrCat("no revision, branch label or id prefix matches ",
                                       Quoted(text), DidYouMean(Suggest(text, true)));
    if (lineage != nullptr) absl::StrAppend(&message, " on branch ", Quoted(branch_text));
    return absl::NotFoundError(absl::StrCat(message, "; ", kTargetForms));
  }
  if (matches.size() > 1) {
    std::vector<std::string> names;
    for (size_t i = 0; i < matches.size() && i < kMaxListedMatches; ++i) {
      names.push_back(Id(matches[i]));
    }
    std::string more;
    if (matches.size() > kMaxListedMatches) {
      more = absl::StrCat(" and ", matches.size() - kMaxListedMatches, " more");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("revision prefix ", Quoted(text), " is ambiguous: it matches ",
                     absl::StrJoin(names, ", "), more, "; give more characters"));
  }
  return matches.front();
}

absl::StatusOr<int> RevisionGraph::Impl::SingleHead(const Lineage* lineage,
                                                    absl::string_view target) const {
  std::vector<int> found;
  for (int head : heads) {
    if (lineage == nullptr || lineage->Has(head)) found.push_back(head);
  }
  if (found.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target ", Quoted(target), " is ambiguous: there are ", found.size(), " heads (",
        absl::StrJoin(Names(found), ", "),
        "); use `heads` for all of them, LABEL@head for one branch, or a revision id"));
  }
  return found.empty() ? kBase : found.front();
}

absl::StatusOr<int> RevisionGraph::Impl::Walk(int start, int steps, const Lineage* lineage,
                                              absl::string_view target) const {
  int node = start;
  const int count = steps < 0 ? -steps : steps;
  for (int step = 0; step < count; ++step) {
    if (steps > 0) {
      std::vector<int> next;
      for (int child : node == kBase ? bases : children[node]) {
        if (lineage == nullptr || lineage->Has(child)) next.push_back(child);
      }
      if (next.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("target ", Quoted(target), " walks past a head: ", Name(node),
                         " has no revision above it", lineage != nullptr ? " on the branch" : "",
                         " (", step, " of ", count, " steps taken)"));
      }
      if (next.size() > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("target ", Quoted(target), " is ambiguous: ",
                         node == kBase ? "there are several bases ("
                                       : absl::StrCat(Id(node), " is a branch point ("),
                         absl::StrJoin(Names(next), ", "), node == kBase ? "" : " are above it",
                         "); use LABEL@+N to pick a branch, or name the revision"));
      }
      node = next.front();
    } else {
      if (node == kBase) {
        return absl::InvalidArgumentError(absl::StrCat("target ", Quoted(target),
                                                       " walks below base (", step, " of ", count,
                                                       " steps taken)"));
      }
      if (parents[node].size() > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "target ", Quoted(target), " is ambiguous: ", Id(node), " is a merge of ",
            absl::StrJoin(Names(parents[node]), ", "), "; name the revision to go down to"));
      }
      node = parents[node].empty() ? kBase : parents[node].front();
    }
  }
  return node;
}

// Picks the revision that `+N` / `-N` count from: the version table's row (on the branch, when
// one is named). Alembic refuses several with +N and warns with -N that it will refuse them too.
absl::StatusOr<int> RevisionGraph::Impl::StartFromCurrent(const State& state,
                                                          const Lineage* lineage,
                                                          absl::string_view branch_text, int steps,
                                                          absl::string_view target) const {
  std::vector<int> starts;
  for (int row : state.rows) {
    if (lineage == nullptr || lineage->Has(row)) starts.push_back(row);
  }
  if (starts.empty() && lineage != nullptr) {
    // The branch's latest applied revision is hidden below a row on another branch (a merge or a
    // dependency): count from the tips of what is applied on the branch.
    std::vector<char> covered(size(), 0);
    for (int node = 0; node < size(); ++node) {
      if (!state.applied[node] || !lineage->Has(node)) continue;
      for (int down : downs[node]) covered[down] = 1;
    }
    for (int node = 0; node < size(); ++node) {
      if (state.applied[node] && lineage->Has(node) && !covered[node]) starts.push_back(node);
    }
  }
  if (starts.empty()) {
    if (steps > 0) return kBase;
    return absl::InvalidArgumentError(absl::StrCat(
        "target ", Quoted(target), " counts down from the current revision, but nothing is applied",
        lineage != nullptr ? absl::StrCat(" on branch ", Quoted(branch_text)) : ""));
  }
  if (starts.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("target ", Quoted(target), " is ambiguous: the version table holds ",
                     absl::StrJoin(Names(starts), ", "), "; use LABEL@", steps > 0 ? "+" : "-",
                     steps > 0 ? steps : -steps, " to pick a branch, or REV", steps > 0 ? "+" : "-",
                     steps > 0 ? steps : -steps));
  }
  return starts.front();
}

absl::StatusOr<RevisionGraph::Impl::Target> RevisionGraph::Impl::Resolve(
    absl::string_view target, const std::vector<std::string>& current, const State* state) const {
  Target result;
  if (target.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("empty target; ", kTargetForms));
  }
  // A whole id wins over every other reading: sluice ids may contain '-' (Alembic's may not), so
  // `v-2` names revision v-2 when there is one, and means "two below v" only when there is not.
  if (const int node = FindNode(target); node != kBase) {
    result.nodes = {node};
    return result;
  }
  if (auto label = by_label.find(target); label != by_label.end()) {
    result.nodes = {label->second};
    return result;
  }
  if (target == kHeadsKeyword) {
    // Alembic upgrades `heads` to its "real" heads: a revision that only others' depends_on
    // name is applied by them, and its row is replaced by theirs.
    result.nodes = real_heads;
    return result;
  }
  if (target == kHeadKeyword) {
    SLUICE_ASSIGN_OR_RETURN(const int head, SingleHead(nullptr, target));
    if (head != kBase) result.nodes = {head};
    return result;
  }
  if (target == kBaseKeyword) return result;

  absl::string_view rest = target;
  absl::string_view branch_text;
  std::optional<Lineage> lineage;
  if (const size_t at = target.find('@'); at != absl::string_view::npos) {
    branch_text = target.substr(0, at);
    rest = target.substr(at + 1);
    if (branch_text.empty() || rest.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("target ", Quoted(target), " needs LABEL@REV, e.g. LABEL@head"));
    }
    // Alembic accepts a revision where a label is expected (RevisionMap._resolve_branch).
    absl::StatusOr<int> branch = ResolveId(branch_text, nullptr, "");
    if (!branch.ok()) {
      if (branch.status().code() != absl::StatusCode::kNotFound) return branch.status();
      return absl::NotFoundError(absl::StrCat("no branch label or revision ", Quoted(branch_text),
                                              " (in target ", Quoted(target), ")",
                                              DidYouMean(Suggest(branch_text, true))));
    }
    result.branch = *branch;
    lineage = LineageOf(*branch);
  }
  const Lineage* on_branch = lineage.has_value() ? &*lineage : nullptr;

  // `LABEL@REV` where REV is a whole id or label (before the relative reading, as above).
  if (on_branch != nullptr && (FindNode(rest) != kBase || by_label.contains(rest))) {
    SLUICE_ASSIGN_OR_RETURN(const int node, ResolveId(rest, on_branch, branch_text));
    result.nodes = {node};
    return result;
  }

  SLUICE_ASSIGN_OR_RETURN(std::optional<Relative> relative, ParseRelative(rest));
  if (relative.has_value()) {
    int start = kBase;
    result.relative_steps = relative->steps;
    if (relative->symbol.empty()) {
      result.from_current = true;
      std::optional<State> read;
      if (state == nullptr) {
        SLUICE_ASSIGN_OR_RETURN(read, ReadState(current));
        state = &*read;
      }
      SLUICE_ASSIGN_OR_RETURN(
          start, StartFromCurrent(*state, on_branch, branch_text, relative->steps, target));
      // Alembic's `downgrade -N` treats the row it counts from as the branch, so that a branch
      // point below it only unwinds this branch.
      if (!result.branch.has_value() && relative->steps < 0) result.branch = start;
    } else if (relative->symbol == kHeadKeyword) {
      SLUICE_ASSIGN_OR_RETURN(start, SingleHead(on_branch, target));
    } else if (relative->symbol == kBaseKeyword) {
      start = kBase;
    } else {
      SLUICE_ASSIGN_OR_RETURN(start, ResolveId(relative->symbol, on_branch, branch_text));
    }
    SLUICE_ASSIGN_OR_RETURN(
        const int node,
        Walk(start, relative->steps, relative->steps > 0 ? on_branch : nullptr, target));
    if (node != kBase) result.nodes = {node};
    return result;
  }

  if (on_branch == nullptr) {
    SLUICE_ASSIGN_OR_RETURN(const int node, ResolveId(rest, nullptr, ""));
    result.nodes = {node};
    return result;
  }
  if (rest == kHeadKeyword) {
    SLUICE_ASSIGN_OR_RETURN(const int head, SingleHead(on_branch, target));
    if (head != kBase) result.nodes = {head};
    return result;
  }
  if (rest == kHeadsKeyword) {
    for (int head : heads) {
      if (on_branch->Has(head)) result.nodes.push_back(head);
    }
    return result;
  }
  if (rest == kBaseKeyword) return result;
  SLUICE_ASSIGN_OR_RETURN(const int node, ResolveId(rest, on_branch, branch_text));
  result.nodes = {node};
  return result;
}

absl::StatusOr<std::vector<std::string>> RevisionGraph::ResolveTarget(
    absl::string_view target, const std::vector<std::string>& current) const {
  SLUICE_ASSIGN_OR_RETURN(Impl::Target resolved, impl_->Resolve(target, current, nullptr));
  return impl_->Names(resolved.nodes);
}

namespace {

// The version table while a plan is built, kept the way Alembic's HeadMaintainer keeps it: one
// row per revision that is applied and that no applied revision names in down_revision or
// depends_on. Upgrading X removes the rows X names (an UPDATE for one, a merge for several, none
// for a new branch) and adds X; downgrading X removes X and restores each revision X named that
// nothing applied names any more (an unmerge, or a deleted branch when there is none).
class VersionTable {
 public:
  VersionTable(const std::vector<std::vector<int>>& downs, std::vector<char> applied,
               const std::vector<int>& rows)
      : downs_(downs),
        applied_(std::move(applied)),
        is_row_(downs.size(), 0),
        named_by_(downs.size(), 0) {
    for (size_t node = 0; node < downs_.size(); ++node) {
      if (!applied_[node]) continue;
      for (int down : downs_[node]) ++named_by_[down];
    }
    for (int row : rows) is_row_[row] = 1;
  }

  void Upgrade(int node, std::vector<int>& deleted, std::vector<int>& inserted) {
    for (int down : downs_[node]) {
      if (is_row_[down]) {
        is_row_[down] = 0;
        deleted.push_back(down);
      }
      ++named_by_[down];
    }
    applied_[node] = 1;
    is_row_[node] = 1;
    inserted.push_back(node);
  }

  void Downgrade(int node, std::vector<int>& deleted, std::vector<int>& inserted) {
    applied_[node] = 0;
    is_row_[node] = 0;
    deleted.push_back(node);
    for (int down : downs_[node]) {
      if (--named_by_[down] == 0) {
        is_row_[down] = 1;
        inserted.push_back(down);
      }
    }
  }

  std::vector<int> Rows() const {
    std::vector<int> rows;
    for (size_t node = 0; node < is_row_.size(); ++node) {
      if (is_row_[node]) rows.push_back(static_cast<int>(node));
    }
    return rows;
  }

 private:
  const std::vector<std::vector<int>>& downs_;
  std::vector<char> applied_;
  std::vector<char> is_row_;
  std::vector<int> named_by_;  // how many applied revisions name the node
};

}  // namespace

absl::StatusOr<Plan> RevisionGraph::PlanUpgrade(const std::vector<std::string>& current,
                                                absl::string_view target) const {
  const Impl& g = *impl_;
  SLUICE_ASSIGN_OR_RETURN(const Impl::State state, g.ReadState(current));
  SLUICE_ASSIGN_OR_RETURN(const Impl::Target resolved, g.Resolve(target, current, &state));
  if (resolved.from_current && resolved.relative_steps < 0) {
    return absl::InvalidArgumentError(absl::StrCat("upgrade target ", Quoted(target),
                                                   " goes down; use `downgrade ", target, "`"));
  }
  std::vector<char> is_row(g.size(), 0);
  for (int row : state.rows) is_row[row] = 1;
  const std::vector<std::string> from = g.Names(state.rows);
  // Alembic's upgrade silently does nothing for a target below the current revisions; an init
  // container asked for an older schema than the database has must not start the app as if all
  // were well, so sluice refuses and points at downgrade.
  for (int node : resolved.nodes) {
    if (state.applied[node] && !is_row[node]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upgrade target ", Quoted(target), " (", g.Id(node), ") is below the current revisions (",
          RowsText(from), "): it is already applied; use `sluice downgrade ", g.Id(node),
          "` to go back to it"));
    }
  }
  if (resolved.nodes.empty() && !state.rows.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("upgrade target ", Quoted(target), " is base, below the current revisions (",
                     RowsText(from), "); use `sluice downgrade base`"));
  }

  const std::vector<char> needed = g.Reach(resolved.nodes, g.downs);
  Plan plan;
  plan.from_heads = from;
  VersionTable table(g.downs, state.applied, state.rows);
  std::vector<int> deleted;
  std::vector<int> inserted;
  for (int node : g.order) {
    if (!needed[node] || state.applied[node]) continue;
    deleted.clear();
    inserted.clear();
    table.Upgrade(node, deleted, inserted);
    plan.steps.push_back(
        {Direction::kUpgrade, &g.migrations[node], g.Names(deleted), g.Names(inserted)});
  }
  plan.to_heads = g.Names(table.Rows());
  return plan;
}

absl::StatusOr<Plan> RevisionGraph::PlanDowngrade(const std::vector<std::string>& current,
                                                  absl::string_view target) const {
  const Impl& g = *impl_;
  SLUICE_ASSIGN_OR_RETURN(const Impl::State state, g.ReadState(current));
  SLUICE_ASSIGN_OR_RETURN(const Impl::Target resolved, g.Resolve(target, current, &state));
  if (resolved.from_current && resolved.relative_steps > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("downgrade target ", Quoted(target), " goes up; use `upgrade ", target, "`"));
  }
  if (resolved.nodes.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "downgrade target ", Quoted(target), " names several revisions (",
        absl::StrJoin(g.Names(resolved.nodes), ", "), "); a downgrade goes down to one"));
  }
  const std::vector<std::string> from = g.Names(state.rows);
  const int target_node = resolved.nodes.empty() ? kBase : resolved.nodes.front();

  // As Alembic's _collect_downgrade_revisions: revert what is applied above the target, that is
  // every descendant (through down_revision and depends_on) of the target's children, or of the
  // bases for `base`. Branches that do not descend from the target keep their revisions.
  std::vector<int> roots = target_node == kBase ? g.bases : g.children[target_node];
  if (resolved.branch.has_value() && roots.size() > 1) {
    const std::vector<char> on_branch = g.Reach({*resolved.branch}, g.parents);
    roots.erase(std::remove_if(roots.begin(), roots.end(), [&](int n) { return !on_branch[n]; }),
                roots.end());
    if (roots.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("downgrade target ", Quoted(target), " is not below branch ",
                       g.Id(*resolved.branch), "; nothing on that branch goes down to it"));
    }
  }
  std::vector<char> revert = g.Reach(roots, g.dependents);
  bool any = false;
  for (int node = 0; node < g.size(); ++node) {
    revert[node] = revert[node] && state.applied[node];
    any = any || revert[node];
  }
  if (!any && target_node != kBase &&
      std::find(state.rows.begin(), state.rows.end(), target_node) == state.rows.end()) {
    if (!state.applied[target_node]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "downgrade target ", Quoted(target), " (", g.Id(target_node),
          ") is not applied: it is above or beside the current revisions (", RowsText(from),
          "); use `sluice upgrade ", g.Id(target_node), "` to go up to it"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("nothing to downgrade to ", g.Id(target_node), ": no applied revision has ",
                     g.Id(target_node), " as its down_revision (current: ", RowsText(from), ")"));
  }

  std::vector<std::string> irreversible;
  for (auto it = g.order.rbegin(); it != g.order.rend(); ++it) {
    const Migration& m = g.migrations[*it];
    if (revert[*it] && !m.downgrade_sql.has_value()) {
      irreversible.push_back(absl::StrCat(Where(m), ": revision ", m.revision,
                                          " has no downgrade SQL, so the database cannot be "
                                          "downgraded past it"));
    }
  }
  if (!irreversible.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot downgrade to ", Quoted(target), ":\n",
                                                      absl::StrJoin(irreversible, "\n")));
  }

  Plan plan;
  plan.from_heads = from;
  VersionTable table(g.downs, state.applied, state.rows);
  std::vector<int> deleted;
  std::vector<int> inserted;
  for (auto it = g.order.rbegin(); it != g.order.rend(); ++it) {
    if (!revert[*it]) continue;
    deleted.clear();
    inserted.clear();
    table.Downgrade(*it, deleted, inserted);
    plan.steps.push_back(
        {Direction::kDowngrade, &g.migrations[*it], g.Names(deleted), g.Names(inserted)});
  }
  plan.to_heads = g.Names(table.Rows());
  return plan;
}

}  // namespace sluice::graph
