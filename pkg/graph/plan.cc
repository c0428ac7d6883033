// Plans over the revision graph: the version table's rows checked against the graph, and the
// steps of an upgrade or a downgrade with the rows each one changes (Alembic's HeadMaintainer).
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
#include "pkg/base/status_macros.h"
#include "pkg/base/text.h"

namespace sluice::graph {
namespace {

using internal::kBase;
using internal::Quoted;
using internal::RowsText;
using internal::Where;
using manifest::Migration;

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
