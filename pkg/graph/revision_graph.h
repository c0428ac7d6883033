// The revision graph of a set of migrations, with Alembic's semantics: heads, bases, branch labels,
// merges, `depends_on`, target resolution, and upgrade/downgrade plans that include the
// version-table rows each step changes. Pure code: no I/O, no database. A built graph is immutable
// and thread-safe.
#ifndef SLUICE_PKG_GRAPH_REVISION_GRAPH_H_
#define SLUICE_PKG_GRAPH_REVISION_GRAPH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pkg/manifest/migration.h"

namespace sluice::graph {

enum class Direction { kUpgrade, kDowngrade };

// One step of a plan: run one revision's upgrade or downgrade SQL, and change the version table so
// that it holds one row per current head afterwards. A step whose rows are one deleted and one
// inserted is what Alembic writes as `UPDATE ... SET version_num = new WHERE version_num = old`.
struct Step {
  Direction direction = Direction::kUpgrade;
  const manifest::Migration* migration = nullptr;  // owned by the RevisionGraph
  std::vector<std::string> delete_versions;        // rows removed from the version table
  std::vector<std::string> insert_versions;        // rows added to the version table
};

// An ordered list of steps from the version table's rows `from_heads` to `to_heads` (both sorted).
struct Plan {
  std::vector<std::string> from_heads;
  std::vector<std::string> to_heads;
  std::vector<Step> steps;
};

class RevisionGraph {
 public:
  // Builds the graph and validates it: unknown `down_revision` / `depends_on` targets, cycles (the
  // cycle printed), branch labels used twice. Errors are kInvalidArgument, all of them in one
  // message, one per line, each naming the manifest file and line.
  static absl::StatusOr<RevisionGraph> Build(std::vector<manifest::Migration> migrations);

  RevisionGraph(RevisionGraph&&) noexcept;
  RevisionGraph& operator=(RevisionGraph&&) noexcept;
  RevisionGraph(const RevisionGraph&) = delete;
  RevisionGraph& operator=(const RevisionGraph&) = delete;
  ~RevisionGraph();

  // Returns every migration, parents before children, in a deterministic order.
  const std::vector<const manifest::Migration*>& TopologicalOrder() const;
  // Returns the revisions that no other revision names as a parent, sorted.
  std::vector<std::string> Heads() const;
  // Returns the revisions with no parent, sorted.
  std::vector<std::string> Bases() const;
  // Returns the revisions that two or more revisions name as a parent (Alembic's branch points).
  std::vector<std::string> BranchPoints() const;
  // Returns the revisions that name `revision` as a parent, sorted.
  std::vector<std::string> Children(absl::string_view revision) const;

  // Returns the migration with exactly this id, or nullptr.
  const manifest::Migration* Find(absl::string_view revision) const;
  // Returns the migration with this id or unique id prefix; kNotFound when none matches,
  // kInvalidArgument listing the matches when the prefix is ambiguous.
  absl::StatusOr<const manifest::Migration*> Resolve(absl::string_view id_or_prefix) const;

  // Resolves `target` against the version table's rows `current`: `head`, `heads`, `base`, a full
  // id, a unique prefix, `LABEL@head`, `+N`, `-N`, `REV+N`, `REV-N`. Returns the revisions the
  // version table should name when the target is reached (empty for `base`).
  absl::StatusOr<std::vector<std::string>> ResolveTarget(
      absl::string_view target, const std::vector<std::string>& current) const;

  // Plans the steps that take the version table from `current` up to `target`: parents before
  // children, a merge after all its parents, `depends_on` before dependents, independent branches
  // in a deterministic order. Revisions already applied (ancestors of `current`) are skipped.
  absl::StatusOr<Plan> PlanUpgrade(const std::vector<std::string>& current,
                                   absl::string_view target) const;
  // Plans the steps that take the version table from `current` down to `target`, children before
  // parents. Fails with kFailedPrecondition naming the revision when a step has no downgrade SQL.
  absl::StatusOr<Plan> PlanDowngrade(const std::vector<std::string>& current,
                                     absl::string_view target) const;

  // Returns whether `ancestor` is `revision` itself or is reachable from it through parents and
  // `depends_on`.
  bool IsAncestorOrSelf(absl::string_view ancestor, absl::string_view revision) const;

 private:
  struct Impl;
  explicit RevisionGraph(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::graph

#endif  // SLUICE_PKG_GRAPH_REVISION_GRAPH_H_
