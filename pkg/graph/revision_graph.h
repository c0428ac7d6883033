// The revision graph of a set of migrations, with Alembic's semantics: heads, bases, branch labels,
// merges, `depends_on`, target resolution, and upgrade/downgrade plans that include the
// version-table rows each step changes. Pure code: no I/O, no database. A built graph is immutable
// and thread-safe.
//
// The version table holds, as Alembic's HeadMaintainer keeps it, one row per applied revision that
// no applied revision names in `down_revision` or `depends_on`. Everything these functions do is
// linear in the size of the graph.
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
  // Builds the graph and validates it: unknown `down_revision` / `depends_on` targets (with close
  // ids suggested), cycles through either (the cycle printed), branch labels used twice or equal to
  // a revision id, duplicate ids, and ids or labels that cannot be named in a target (`head`,
  // `heads`, `base`, a label with '@'). `depends_on` may name a branch label, as in Alembic.
  // Errors are kInvalidArgument, all of them in one message, one per line, each starting with the
  // manifest's `FILE:LINE:`.
  static absl::StatusOr<RevisionGraph> Build(std::vector<manifest::Migration> migrations);

  RevisionGraph(RevisionGraph&&) noexcept;
  RevisionGraph& operator=(RevisionGraph&&) noexcept;
  RevisionGraph(const RevisionGraph&) = delete;
  RevisionGraph& operator=(const RevisionGraph&) = delete;
  ~RevisionGraph();

  // Returns every migration, each after its `down_revision` and `depends_on`, in an order that
  // depends only on the manifests' content: depth-first from each head (heads by id), a revision
  // preceded by whatever it names that is not listed yet (its parents in `down_revision` order,
  // then its `depends_on`). So a branch's chain stays together. Plans follow this order.
  const std::vector<const manifest::Migration*>& TopologicalOrder() const;
  // Returns "sha256:" and the SHA-256 of the revisions' ids and checksums, sorted by id: what a
  // MigrationJob's status.migrationsDigest says it describes. Computed on each call.
  std::string ContentDigest() const;
  // Returns the revisions that no other revision names as a parent, sorted (Alembic's `heads`;
  // `depends_on` does not count).
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
  // kInvalidArgument listing the matches when the prefix is ambiguous. As in Alembic, a prefix
  // matches only ids of four characters or more; shorter ids must be given in full.
  absl::StatusOr<const manifest::Migration*> Resolve(absl::string_view id_or_prefix) const;

  // Resolves `target` against the version table's rows `current`: `head`, `heads`, `base`, a full
  // id, a unique prefix, a branch label, `LABEL@head`, `LABEL@heads`, `LABEL@base`, `LABEL@REV`,
  // `+N`, `-N`, `REV+N`, `REV-N`, `LABEL@+N`, `LABEL@-N`. Returns the revisions the target names,
  // sorted (empty for `base`).
  //
  // As in Alembic: `head` is the only head (kInvalidArgument naming them all when there are
  // several); `heads` are the revisions nothing names, through `down_revision` or `depends_on`
  // (a revision only depended on is applied by its dependents); a label may be a revision id
  // (`REV@head` is the head above REV); `+N` / `-N` count revisions along `down_revision` from the
  // version table's row (from base when it is empty), and are ambiguous at a branch point, a merge,
  // or with several rows unless LABEL@ picks the branch. A string that is a whole revision id is
  // that revision even when it looks relative (sluice ids may contain '-'). Unknown names are
  // kNotFound. `current` is read (and checked) only for `+N` / `-N`.
  absl::StatusOr<std::vector<std::string>> ResolveTarget(
      absl::string_view target, const std::vector<std::string>& current) const;

  // Plans the steps that take the version table from `current` up to `target`: every ancestor (or
  // self) of the target through `down_revision` and `depends_on` that is not applied yet, in
  // TopologicalOrder(). Revisions already applied (ancestors of `current`) are skipped; a target
  // already in the table gives an empty plan.
  //
  // Errors: kFailedPrecondition when `current` names a revision the graph lacks or holds a row
  // that is an ancestor of another, and when the target is below `current` (Alembic silently
  // does nothing there; sluice points at downgrade instead). Target errors as ResolveTarget.
  absl::StatusOr<Plan> PlanUpgrade(const std::vector<std::string>& current,
                                   absl::string_view target) const;
  // Plans the steps that take the version table from `current` down to `target`, children before
  // parents (reverse TopologicalOrder()). As in Alembic, it reverts the applied revisions that
  // descend (through `down_revision` or `depends_on`) from the target's children, or from the
  // bases for `base`; branches that do not descend from the target are left alone. With a branch
  // (`LABEL@REV`, `LABEL@-N`, or `-N`, whose branch is the row it counts from) a branch point only
  // unwinds that branch.
  //
  // Errors: kFailedPrecondition naming each revision and its file when a revision to revert has
  // no downgrade SQL, when the target is not applied (above or beside `current`), and for
  // `current` as in PlanUpgrade; kInvalidArgument when the target names several revisions.
  absl::StatusOr<Plan> PlanDowngrade(const std::vector<std::string>& current,
                                     absl::string_view target) const;

  // Returns whether `ancestor` is `revision` itself or is reachable from it through parents and
  // `depends_on`. False when either is unknown.
  bool IsAncestorOrSelf(absl::string_view ancestor, absl::string_view revision) const;

 private:
  struct Impl;
  explicit RevisionGraph(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::graph

#endif  // SLUICE_PKG_GRAPH_REVISION_GRAPH_H_
