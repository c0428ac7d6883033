#include "pkg/graph/revision_graph.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace sluice::graph {
namespace {

using manifest::Migration;
using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Rows = std::vector<std::string>;

// Matches an OK absl::StatusOr whose value matches `matcher`.
MATCHER_P(HoldsValue, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

// Makes a migration as the loader would, from the fields the graph reads.
Migration Rev(const std::string& id, std::vector<std::string> parents,
              std::vector<std::string> depends_on = {}, std::vector<std::string> labels = {},
              bool has_downgrade = true) {
  Migration m;
  m.revision = id;
  m.down_revisions = std::move(parents);
  m.depends_on = std::move(depends_on);
  m.branch_labels = std::move(labels);
  m.upgrade_sql = absl::StrCat("-- upgrade ", id);
  if (has_downgrade) m.downgrade_sql = absl::StrCat("-- downgrade ", id);
  m.location.file = absl::StrCat("migrations/", id, ".yaml");
  m.location.line = 1;
  return m;
}

RevisionGraph MustBuild(std::vector<Migration> migrations) {
  absl::StatusOr<RevisionGraph> graph = RevisionGraph::Build(std::move(migrations));
  EXPECT_THAT(graph, IsOk());
  if (!graph.ok()) std::abort();
  return *std::move(graph);
}

// ---------------------------------------------------------------------------------------------
// The property every plan must have: replaying its steps on a simulated version table that starts
// at `from_heads` deletes only rows that are there, inserts only rows that are not, and ends at
// `to_heads`. Every plan built in these tests goes through this check.

::testing::AssertionResult ReplaysToHeads(const Plan& plan) {
  if (!std::is_sorted(plan.from_heads.begin(), plan.from_heads.end()) ||
      !std::is_sorted(plan.to_heads.begin(), plan.to_heads.end())) {
    return ::testing::AssertionFailure() << "from_heads or to_heads is not sorted";
  }
  std::set<std::string> table(plan.from_heads.begin(), plan.from_heads.end());
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& step = plan.steps[i];
    for (const std::string& row : step.delete_versions) {
      if (table.erase(row) != 1) {
        return ::testing::AssertionFailure()
               << "step " << i << " (" << step.migration->revision << ") deletes row " << row
               << ", which is not in the table";
      }
    }
    for (const std::string& row : step.insert_versions) {
      if (!table.insert(row).second) {
        return ::testing::AssertionFailure()
               << "step " << i << " (" << step.migration->revision << ") inserts row " << row
               << ", which is already in the table";
      }
    }
  }
  const Rows end(table.begin(), table.end());
  if (end != plan.to_heads) {
    return ::testing::AssertionFailure()
           << "replay ends at [" << absl::StrJoin(end, ",") << "], plan says ["
           << absl::StrJoin(plan.to_heads, ",") << "]";
  }
  return ::testing::AssertionSuccess();
}

// Renders a step as "REV -deleted +inserted", e.g. "d -b -c +d" for a merge.
std::string Show(const Step& step) {
  std::string text = step.migration->revision;
  for (const std::string& row : step.delete_versions) absl::StrAppend(&text, " -", row);
  for (const std::string& row : step.insert_versions) absl::StrAppend(&text, " +", row);
  return text;
}

std::vector<std::string> Show(const Plan& plan) {
  std::vector<std::string> steps;
  for (const Step& step : plan.steps) steps.push_back(Show(step));
  return steps;
}

Plan Up(const RevisionGraph& graph, const Rows& current, const std::string& target) {
  absl::StatusOr<Plan> plan = graph.PlanUpgrade(current, target);
  EXPECT_THAT(plan, IsOk()) << "upgrade " << target;
  if (!plan.ok()) return {};
  EXPECT_TRUE(ReplaysToHeads(*plan)) << "upgrade " << target;
  for (const Step& step : plan->steps) EXPECT_EQ(step.direction, Direction::kUpgrade);
  return *std::move(plan);
}

Plan Down(const RevisionGraph& graph, const Rows& current, const std::string& target) {
  absl::StatusOr<Plan> plan = graph.PlanDowngrade(current, target);
  EXPECT_THAT(plan, IsOk()) << "downgrade " << target;
  if (!plan.ok()) return {};
  EXPECT_TRUE(ReplaysToHeads(*plan)) << "downgrade " << target;
  for (const Step& step : plan->steps) EXPECT_EQ(step.direction, Direction::kDowngrade);
  return *std::move(plan);
}

std::vector<std::string> Ids(const std::vector<const Migration*>& migrations) {
  std::vector<std::string> ids;
  for (const Migration* m : migrations) ids.push_back(m->revision);
  return ids;
}

// a -> b -> c
RevisionGraph Linear() { return MustBuild({Rev("a", {}), Rev("b", {"a"}), Rev("c", {"b"})}); }

// a -> b (label x), a -> c (label y): two heads.
RevisionGraph Branched() {
  return MustBuild({Rev("a", {}), Rev("b", {"a"}, {}, {"x"}), Rev("c", {"a"}, {}, {"y"})});
}

// a -> b, a -> c, d merges b and c.
RevisionGraph Diamond() {
  return MustBuild({Rev("a", {}), Rev("b", {"a"}), Rev("c", {"a"}), Rev("d", {"b", "c"})});
}

// Two bases: n1 -> n2 (label net), m1 -> m2, and m2 depends on n1.
RevisionGraph CrossDependency() {
  return MustBuild(
      {Rev("n1", {}, {}, {"net"}), Rev("n2", {"n1"}), Rev("m1", {}), Rev("m2", {"m1"}, {"n1"})});
}

// ---------------------------------------------------------------------------------------------
// Build and structure

TEST(RevisionGraphTest, LinearStructure) {
  RevisionGraph graph = Linear();
  EXPECT_THAT(graph.Heads(), ElementsAre("c"));
  EXPECT_THAT(graph.Bases(), ElementsAre("a"));
  EXPECT_THAT(graph.BranchPoints(), IsEmpty());
  EXPECT_THAT(graph.Children("a"), ElementsAre("b"));
  EXPECT_THAT(graph.Children("c"), IsEmpty());
  EXPECT_THAT(graph.Children("nope"), IsEmpty());
  EXPECT_THAT(Ids(graph.TopologicalOrder()), ElementsAre("a", "b", "c"));
  ASSERT_NE(graph.Find("b"), nullptr);
  EXPECT_EQ(graph.Find("b")->revision, "b");
  EXPECT_EQ(graph.Find("bb"), nullptr);
}

TEST(RevisionGraphTest, BranchedStructure) {
  RevisionGraph graph = Branched();
  EXPECT_THAT(graph.Heads(), ElementsAre("b", "c"));
  EXPECT_THAT(graph.Bases(), ElementsAre("a"));
  EXPECT_THAT(graph.BranchPoints(), ElementsAre("a"));
  EXPECT_THAT(graph.Children("a"), ElementsAre("b", "c"));
  EXPECT_THAT(Ids(graph.TopologicalOrder()), ElementsAre("a", "b", "c"));
}

TEST(RevisionGraphTest, DiamondStructure) {
  RevisionGraph graph = Diamond();
  EXPECT_THAT(graph.Heads(), ElementsAre("d"));
  EXPECT_THAT(graph.BranchPoints(), ElementsAre("a"));
  EXPECT_THAT(graph.Children("b"), ElementsAre("d"));
  EXPECT_THAT(graph.Children("c"), ElementsAre("d"));
  EXPECT_THAT(Ids(graph.TopologicalOrder()), ElementsAre("a", "b", "c", "d"));
}

TEST(RevisionGraphTest, DependsOnIsNotAParentForHeads) {
  RevisionGraph graph = CrossDependency();
  // n1 is named only by m2's depends_on, so n2 and m2 are heads and n1 is not a branch point.
  EXPECT_THAT(graph.Heads(), ElementsAre("m2", "n2"));
  EXPECT_THAT(graph.Bases(), ElementsAre("m1", "n1"));
  EXPECT_THAT(graph.Children("n1"), ElementsAre("n2"));
  EXPECT_THAT(graph.BranchPoints(), IsEmpty());
  // Heads by id (m2 before n2); each head preceded by what it needs, down_revision first.
  EXPECT_THAT(Ids(graph.TopologicalOrder()), ElementsAre("m1", "n1", "m2", "n2"));
}

TEST(RevisionGraphTest, TopologicalOrderDoesNotDependOnInputOrder) {
  std::vector<Migration> migrations = {
      Rev("a", {}),           Rev("b", {"a"}), Rev("c", {"a"}), Rev("d", {"b", "c"}),
      Rev("e", {"d"}, {"x"}), Rev("x", {}),    Rev("f", {"c"})};
  const std::vector<std::string> expected = Ids(MustBuild(migrations).TopologicalOrder());
  std::mt19937 random(7);
  for (int i = 0; i < 20; ++i) {
    std::shuffle(migrations.begin(), migrations.end(), random);
    EXPECT_EQ(Ids(MustBuild(migrations).TopologicalOrder()), expected);
  }
  EXPECT_THAT(expected, ElementsAre("a", "b", "c", "d", "x", "e", "f"));
}

TEST(RevisionGraphTest, EmptyGraph) {
  RevisionGraph graph = MustBuild({});
  EXPECT_THAT(graph.Heads(), IsEmpty());
  EXPECT_THAT(graph.ResolveTarget("head", {}), HoldsValue(IsEmpty()));
  Plan plan = Up(graph, {}, "head");
  EXPECT_THAT(plan.steps, IsEmpty());
  EXPECT_THAT(plan.to_heads, IsEmpty());
  EXPECT_THAT(Down(graph, {}, "base").steps, IsEmpty());
}

TEST(RevisionGraphTest, RejectsUnknownParentSuggestingCloseIds) {
  EXPECT_THAT(RevisionGraph::Build({Rev("ae1027a6acf", {}), Rev("b", {"ae1072a6acf"})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "migrations/b.yaml:1: revision b: down_revision 'ae1072a6acf' is not a "
                       "known revision (did you mean ae1027a6acf?)"));
  // No suggestion when nothing is close.
  absl::StatusOr<RevisionGraph> graph = RevisionGraph::Build({Rev("a", {}), Rev("b", {"zzzzzz"})});
  EXPECT_THAT(graph, StatusIs(absl::StatusCode::kInvalidArgument, "'zzzzzz' is not a known"));
  EXPECT_THAT(std::string(graph.status().message()), ::testing::Not(HasSubstr("did you mean")));
}

TEST(RevisionGraphTest, RejectsUnknownDependsOn) {
  EXPECT_THAT(RevisionGraph::Build({Rev("a1b2c3", {}), Rev("b", {}, {"a1b2c"})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "migrations/b.yaml:1: revision b: depends_on 'a1b2c' is neither a known "
                       "revision nor a branch label (did you mean a1b2c3?)"));
}

TEST(RevisionGraphTest, DependsOnMayNameABranchLabel) {
  RevisionGraph graph = MustBuild({Rev("n1", {}, {}, {"net"}), Rev("m1", {}, {"net"})});
  EXPECT_TRUE(graph.IsAncestorOrSelf("n1", "m1"));
  EXPECT_THAT(Show(Up(graph, {}, "m1")), ElementsAre("n1 +n1", "m1 -n1 +m1"));
}

TEST(RevisionGraphTest, RejectsSelfLoop) {
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}), Rev("b", {"b"})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "migrations/b.yaml:1: revision b: names itself in down_revision/"
                       "depends_on (each names the next): b -> b"));
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}, {"a"})}),
              StatusIs(absl::StatusCode::kInvalidArgument, "a -> a"));
}

TEST(RevisionGraphTest, RejectsLongerCycleAndPrintsIt) {
  // c names b, b names a, a names c: printed from the smallest id, following what each names.
  EXPECT_THAT(RevisionGraph::Build({Rev("base0", {}), Rev("a", {"c"}), Rev("b", {"a"}),
                                    Rev("c", {"b"}), Rev("d", {"c"})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "migrations/a.yaml:1: revision a: down_revision/depends_on form a cycle "
                       "(each names the next): a -> c -> b -> a"));
}

TEST(RevisionGraphTest, RejectsCycleThroughDependsOn) {
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}, {"b"}), Rev("b", {"a"})}),
              StatusIs(absl::StatusCode::kInvalidArgument, "a -> b -> a"));
}

TEST(RevisionGraphTest, RejectsBranchLabelUsedTwice) {
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}, {}, {"x"}), Rev("b", {"a"}, {}, {"x"})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "migrations/b.yaml:1: revision b: branch label 'x' is already used by "
                       "revision a (migrations/a.yaml:1)"));
}

TEST(RevisionGraphTest, RejectsBranchLabelEqualToRevisionId) {
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}), Rev("b", {"a"}, {}, {"a"})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "migrations/b.yaml:1: revision b: branch label 'a' is also the id of "
                       "revision a (migrations/a.yaml:1); rename the label"));
}

TEST(RevisionGraphTest, RejectsUnusableNames) {
  EXPECT_THAT(RevisionGraph::Build({Rev("head", {})}),
              StatusIs(absl::StatusCode::kInvalidArgument, "'head' is a reserved target name"));
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}, {}, {"x@y"})}),
              StatusIs(absl::StatusCode::kInvalidArgument, "branch label 'x@y' cannot be used"));
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}, {}, {"heads"})}),
              StatusIs(absl::StatusCode::kInvalidArgument, "branch label 'heads' cannot be used"));
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}), Rev("a", {})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "revision a: is defined twice; the other definition is at "
                       "migrations/a.yaml:1"));
  EXPECT_THAT(RevisionGraph::Build({Rev("a", {}), Rev("b", {"a", "a"})}),
              StatusIs(absl::StatusCode::kInvalidArgument, "down_revision lists a twice"));
}

TEST(RevisionGraphTest, ReportsEveryErrorOnePerLine) {
  Migration located = Rev("e", {"x"});
  located.location.line = 42;
  absl::StatusOr<RevisionGraph> graph =
      RevisionGraph::Build({Rev("a", {}, {}, {"l"}), Rev("b", {"missing"}), Rev("c", {"d"}),
                            Rev("d", {"c"}), Rev("f", {"a"}, {"nodep"}, {"l"}), located});
  ASSERT_THAT(graph, StatusIs(absl::StatusCode::kInvalidArgument, ""));
  const std::vector<std::string> lines = absl::StrSplit(graph.status().message(), '\n');
  EXPECT_THAT(lines,
              ElementsAre(HasSubstr("migrations/f.yaml:1: revision f: branch label 'l'"),
                          HasSubstr("migrations/b.yaml:1: revision b: down_revision 'missing'"),
                          HasSubstr("migrations/f.yaml:1: revision f: depends_on 'nodep'"),
                          HasSubstr("migrations/e.yaml:42: revision e: down_revision 'x'"),
                          HasSubstr("migrations/c.yaml:1: revision c: down_revision/depends_on "
                                    "form a cycle (each names the next): c -> d -> c")));
}

TEST(RevisionGraphTest, ManyBrokenReferencesStayCheap) {
  // Every revision names a missing parent close to a real id: each gets its line, but only the
  // first ones get suggestions, so validation stays linear in the graph.
  std::vector<Migration> migrations;
  for (int i = 0; i < 5000; ++i) {
    migrations.push_back(Rev(absl::StrCat("rev", 100000 + i), {absl::StrCat("rev", 200000 + i)}));
  }
  absl::StatusOr<RevisionGraph> graph = RevisionGraph::Build(std::move(migrations));
  ASSERT_THAT(graph, StatusIs(absl::StatusCode::kInvalidArgument, "did you mean"));
  const std::vector<std::string> lines = absl::StrSplit(graph.status().message(), '\n');
  EXPECT_EQ(lines.size(), 5000u);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& line) {
                            return line.find("did you mean") != std::string::npos;
                          }),
            20);
}

// ---------------------------------------------------------------------------------------------
// Resolving ids and targets

TEST(RevisionGraphTest, ResolvesIdsAndPrefixes) {
  RevisionGraph graph = MustBuild({Rev("ae1027a6acf", {}), Rev("ae10b", {"ae1027a6acf"}),
                                   Rev("1975ea83b712", {"ae10b"}), Rev("abc", {"1975ea83b712"})});
  EXPECT_EQ((*graph.Resolve("ae1027a6acf"))->revision, "ae1027a6acf");
  EXPECT_EQ((*graph.Resolve("ae102"))->revision, "ae1027a6acf");
  EXPECT_EQ((*graph.Resolve("1"))->revision, "1975ea83b712");
  EXPECT_EQ((*graph.Resolve("ae10b"))->revision, "ae10b");  // an exact id beats a prefix match
  EXPECT_THAT(graph.Resolve("ae10"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "revision prefix 'ae10' is ambiguous: it matches ae1027a6acf, ae10b"));
  // As in Alembic, ids of three characters or fewer match only in full.
  EXPECT_THAT(graph.Resolve("ab"), StatusIs(absl::StatusCode::kNotFound, "'ab'"));
  EXPECT_EQ((*graph.Resolve("abc"))->revision, "abc");
  EXPECT_THAT(graph.Resolve("ffff"), StatusIs(absl::StatusCode::kNotFound,
                                              "no revision, branch label or id prefix matches "
                                              "'ffff'"));
}

TEST(RevisionGraphTest, ResolvesKeywordTargets) {
  RevisionGraph graph = Linear();
  EXPECT_THAT(graph.ResolveTarget("head", {}), HoldsValue(ElementsAre("c")));
  EXPECT_THAT(graph.ResolveTarget("heads", {}), HoldsValue(ElementsAre("c")));
  EXPECT_THAT(graph.ResolveTarget("base", {"b"}), HoldsValue(IsEmpty()));
  EXPECT_THAT(graph.ResolveTarget("b", {}), HoldsValue(ElementsAre("b")));
  EXPECT_THAT(graph.ResolveTarget("zz", {}), StatusIs(absl::StatusCode::kNotFound,
                                                      "no revision, branch label or id prefix "
                                                      "matches 'zz'; targets are head, heads"));
}

TEST(RevisionGraphTest, HeadWithSeveralHeadsNamesThemAll) {
  RevisionGraph graph = Branched();
  EXPECT_THAT(graph.ResolveTarget("head", {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "target 'head' is ambiguous: there are 2 heads (b, c); use `heads` for "
                       "all of them, LABEL@head for one branch"));
  EXPECT_THAT(graph.PlanUpgrade({}, "head"),
              StatusIs(absl::StatusCode::kInvalidArgument, "2 heads (b, c)"));
  EXPECT_THAT(graph.ResolveTarget("heads", {}), HoldsValue(ElementsAre("b", "c")));
}

TEST(RevisionGraphTest, ResolvesBranchLabels) {
  RevisionGraph graph = MustBuild({Rev("a", {}), Rev("b", {"a"}, {}, {"x"}), Rev("b2", {"b"}),
                                   Rev("c", {"a"}, {}, {"y"}), Rev("c2", {"c"})});
  EXPECT_THAT(graph.ResolveTarget("x", {}), HoldsValue(ElementsAre("b")));
  EXPECT_THAT(graph.ResolveTarget("x@head", {}), HoldsValue(ElementsAre("b2")));
  EXPECT_THAT(graph.ResolveTarget("y@head", {}), HoldsValue(ElementsAre("c2")));
  EXPECT_THAT(graph.ResolveTarget("y@heads", {}), HoldsValue(ElementsAre("c2")));
  EXPECT_THAT(graph.ResolveTarget("x@b2", {}), HoldsValue(ElementsAre("b2")));
  EXPECT_THAT(graph.ResolveTarget("x@base", {}), HoldsValue(IsEmpty()));
  // A revision stands in for a label, as in Alembic: c@head is the head above c.
  EXPECT_THAT(graph.ResolveTarget("c@head", {}), HoldsValue(ElementsAre("c2")));
  // a is below both branches, so a@head has two heads.
  EXPECT_THAT(graph.ResolveTarget("a@head", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "'a@head' is ambiguous"));
  EXPECT_THAT(
      graph.ResolveTarget("x@c2", {}),
      StatusIs(absl::StatusCode::kInvalidArgument, "revision c2 is not a member of branch 'x'"));
  EXPECT_THAT(graph.ResolveTarget("nolabel@head", {}),
              StatusIs(absl::StatusCode::kNotFound, "no branch label or revision 'nolabel'"));
  EXPECT_THAT(graph.ResolveTarget("@head", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "needs LABEL@REV"));
  EXPECT_THAT(graph.ResolveTarget("x@", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "needs LABEL@REV"));
}

TEST(RevisionGraphTest, ResolvesRelativeTargets) {
  RevisionGraph graph =
      MustBuild({Rev("a", {}), Rev("b", {"a"}), Rev("c", {"b"}), Rev("d", {"c"})});
  // +N / -N count revisions along down_revision from the version table's row (or from base).
  EXPECT_THAT(graph.ResolveTarget("+1", {}), HoldsValue(ElementsAre("a")));
  EXPECT_THAT(graph.ResolveTarget("+2", {}), HoldsValue(ElementsAre("b")));
  EXPECT_THAT(graph.ResolveTarget("+2", {"b"}), HoldsValue(ElementsAre("d")));
  EXPECT_THAT(graph.ResolveTarget("-1", {"c"}), HoldsValue(ElementsAre("b")));
  EXPECT_THAT(graph.ResolveTarget("-3", {"c"}), HoldsValue(IsEmpty()));  // base
  EXPECT_THAT(graph.ResolveTarget("b+2", {}), HoldsValue(ElementsAre("d")));
  EXPECT_THAT(graph.ResolveTarget("d-3", {}), HoldsValue(ElementsAre("a")));
  EXPECT_THAT(graph.ResolveTarget("d-4", {}), HoldsValue(IsEmpty()));
  EXPECT_THAT(graph.ResolveTarget("head-2", {}), HoldsValue(ElementsAre("b")));
  EXPECT_THAT(graph.ResolveTarget("base+1", {}), HoldsValue(ElementsAre("a")));

  EXPECT_THAT(graph.ResolveTarget("+2", {"c"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "target '+2' walks past a head: d has no revision above it (1 of 2 steps "
                       "taken)"));
  EXPECT_THAT(graph.ResolveTarget("d-5", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "walks below base (4 of 5 steps"));
  EXPECT_THAT(graph.ResolveTarget("-1", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "nothing is applied"));
  EXPECT_THAT(graph.ResolveTarget("+0", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "moves 0 steps"));
  EXPECT_THAT(graph.ResolveTarget("+99999999999", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "too large"));
  EXPECT_THAT(graph.ResolveTarget("+1", {"gone"}),
              StatusIs(absl::StatusCode::kFailedPrecondition, "gone"));
}

TEST(RevisionGraphTest, RelativeTargetsAtBranchesAndMerges) {
  RevisionGraph graph = MustBuild(
      {Rev("a", {}), Rev("b", {"a"}, {}, {"x"}), Rev("c", {"a"}, {}, {"y"}), Rev("d", {"b", "c"})});
  EXPECT_THAT(graph.ResolveTarget("+1", {"a"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "target '+1' is ambiguous: a is a branch point (b, c are above it)"));
  EXPECT_THAT(graph.ResolveTarget("x@+1", {"a"}), HoldsValue(ElementsAre("b")));
  EXPECT_THAT(graph.ResolveTarget("y@+2", {}), HoldsValue(ElementsAre("c")));
  EXPECT_THAT(graph.ResolveTarget("-1", {"d"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "target '-1' is ambiguous: d is a merge of b, c"));
  EXPECT_THAT(MustBuild({Rev("a", {}), Rev("b", {})}).ResolveTarget("+1", {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "target '+1' is ambiguous: there are several bases (a, b); use LABEL@+N"));
  EXPECT_THAT(graph.ResolveTarget("+1", {"b", "c"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "target '+1' is ambiguous: the version table holds b, c; use LABEL@+1"));
  EXPECT_THAT(graph.ResolveTarget("y@+1", {"b", "c"}), HoldsValue(ElementsAre("d")));
  EXPECT_THAT(graph.ResolveTarget("x@-1", {"b", "c"}), HoldsValue(ElementsAre("a")));
}

TEST(RevisionGraphTest, WholeIdsWithDashesWinOverRelativeReading) {
  RevisionGraph graph = MustBuild({Rev("v", {}), Rev("v-1", {"v"}), Rev("w", {"v-1"})});
  EXPECT_THAT(graph.ResolveTarget("v-1", {}), HoldsValue(ElementsAre("v-1")));
  EXPECT_THAT(graph.ResolveTarget("w-1", {}), HoldsValue(ElementsAre("v-1")));
  EXPECT_THAT(graph.ResolveTarget("v-1+1", {}), HoldsValue(ElementsAre("w")));
}

TEST(RevisionGraphTest, HeadsTargetSkipsRevisionsOnlyDependedOn) {
  // Alembic's `heads` are its "real" heads: n1 is applied by m2 (through depends_on), so only
  // m2 and n2 name rows; `head` sees the two down_revision heads and refuses.
  RevisionGraph graph =
      MustBuild({Rev("n1", {}, {}, {"net"}), Rev("m1", {}), Rev("m2", {"m1"}, {"n1"})});
  EXPECT_THAT(graph.Heads(), ElementsAre("m2", "n1"));
  EXPECT_THAT(graph.ResolveTarget("heads", {}), HoldsValue(ElementsAre("m2")));
  EXPECT_THAT(graph.ResolveTarget("head", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "2 heads (m2, n1)"));
  EXPECT_THAT(graph.ResolveTarget("net@head", {}), HoldsValue(ElementsAre("n1")));
}

TEST(RevisionGraphTest, IsAncestorOrSelfFollowsParentsAndDependsOn) {
  RevisionGraph graph = CrossDependency();
  EXPECT_TRUE(graph.IsAncestorOrSelf("m1", "m1"));
  EXPECT_TRUE(graph.IsAncestorOrSelf("m1", "m2"));
  EXPECT_TRUE(graph.IsAncestorOrSelf("n1", "m2"));
  EXPECT_FALSE(graph.IsAncestorOrSelf("m2", "m1"));
  EXPECT_FALSE(graph.IsAncestorOrSelf("n2", "m2"));
  EXPECT_FALSE(graph.IsAncestorOrSelf("zz", "m2"));
  EXPECT_FALSE(graph.IsAncestorOrSelf("m1", "zz"));
  RevisionGraph diamond = Diamond();
  EXPECT_TRUE(diamond.IsAncestorOrSelf("a", "d"));
  EXPECT_FALSE(diamond.IsAncestorOrSelf("b", "c"));
}

// ---------------------------------------------------------------------------------------------
// Upgrade plans

TEST(RevisionGraphTest, UpgradeLinear) {
  RevisionGraph graph = Linear();
  Plan plan = Up(graph, {}, "head");
  EXPECT_THAT(Show(plan), ElementsAre("a +a", "b -a +b", "c -b +c"));
  EXPECT_THAT(plan.from_heads, IsEmpty());
  EXPECT_THAT(plan.to_heads, ElementsAre("c"));
  EXPECT_EQ(plan.steps[0].migration, graph.Find("a"));

  EXPECT_THAT(Show(Up(graph, {"a"}, "head")), ElementsAre("b -a +b", "c -b +c"));
  EXPECT_THAT(Show(Up(graph, {}, "b")), ElementsAre("a +a", "b -a +b"));
  EXPECT_THAT(Show(Up(graph, {"a"}, "+1")), ElementsAre("b -a +b"));
  EXPECT_THAT(Show(Up(graph, {}, "+2")), ElementsAre("a +a", "b -a +b"));
  EXPECT_THAT(Show(Up(graph, {"a"}, "a+2")), ElementsAre("b -a +b", "c -b +c"));
  Plan none = Up(graph, {"c"}, "head");
  EXPECT_THAT(none.steps, IsEmpty());
  EXPECT_THAT(none.from_heads, ElementsAre("c"));
  EXPECT_THAT(none.to_heads, ElementsAre("c"));
  EXPECT_THAT(Up(graph, {"c", "c"}, "heads").steps, IsEmpty());  // a repeated row counts once
  EXPECT_THAT(Up(graph, {}, "base").steps, IsEmpty());
}

TEST(RevisionGraphTest, UpgradeRefusesTargetsBelowCurrent) {
  RevisionGraph graph = Linear();
  EXPECT_THAT(graph.PlanUpgrade({"c"}, "a"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "upgrade target 'a' (a) is below the current revisions (c): it is already "
                       "applied; use `sluice downgrade a`"));
  EXPECT_THAT(graph.PlanUpgrade({"c"}, "c-1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "use `sluice downgrade b`"));
  EXPECT_THAT(graph.PlanUpgrade({"c"}, "base"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "use `sluice downgrade base`"));
  EXPECT_THAT(graph.PlanUpgrade({"c"}, "-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, "goes down; use `downgrade -1`"));
}

TEST(RevisionGraphTest, UpgradeRejectsUnknownAndOverlappingRows) {
  RevisionGraph graph = Linear();
  EXPECT_THAT(graph.PlanUpgrade({"b", "ghost"}, "head"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "the version table names revision ghost, which no migration manifest "
                       "defines"));
  EXPECT_THAT(graph.PlanDowngrade({"ghost"}, "base"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "revision ghost"));
  EXPECT_THAT(graph.PlanUpgrade({"a", "b"}, "head"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "the version table holds a and b, but a is an ancestor of b"));
  EXPECT_THAT(graph.PlanUpgrade({}, "nope"), StatusIs(absl::StatusCode::kNotFound, "'nope'"));
}

TEST(RevisionGraphTest, UpgradeBranchedCreatesABranchRow) {
  RevisionGraph graph = Branched();
  Plan plan = Up(graph, {}, "heads");
  // c's parent a is no longer a row once b replaced it, so c inserts a row of its own.
  EXPECT_THAT(Show(plan), ElementsAre("a +a", "b -a +b", "c +c"));
  EXPECT_THAT(plan.to_heads, ElementsAre("b", "c"));
  EXPECT_THAT(Show(Up(graph, {"a"}, "y@head")), ElementsAre("c -a +c"));
  EXPECT_THAT(Show(Up(graph, {"b"}, "y@head")), ElementsAre("c +c"));
  EXPECT_THAT(Show(Up(graph, {"b"}, "c")), ElementsAre("c +c"));
  EXPECT_THAT(Up(graph, {"b"}, "c").to_heads, ElementsAre("b", "c"));
  EXPECT_THAT(Up(graph, {"b", "c"}, "heads").steps, IsEmpty());
  EXPECT_THAT(Up(graph, {"b", "c"}, "b").steps, IsEmpty());
}

TEST(RevisionGraphTest, UpgradeDiamondMergesRows) {
  RevisionGraph graph = Diamond();
  Plan plan = Up(graph, {}, "head");
  EXPECT_THAT(Show(plan), ElementsAre("a +a", "b -a +b", "c +c", "d -b -c +d"));
  EXPECT_THAT(plan.to_heads, ElementsAre("d"));
  // From one branch: the other branch's revision runs first, then the merge replaces both rows.
  EXPECT_THAT(Show(Up(graph, {"b"}, "head")), ElementsAre("c +c", "d -b -c +d"));
  EXPECT_THAT(Show(Up(graph, {"b", "c"}, "head")), ElementsAre("d -b -c +d"));
  EXPECT_THAT(Show(Up(graph, {"a"}, "c")), ElementsAre("c -a +c"));
}

TEST(RevisionGraphTest, UpgradeWithDependsOnAcrossBranches) {
  RevisionGraph graph = CrossDependency();
  // m2 needs n1 first; once m2 is applied its row replaces both m1's and n1's.
  EXPECT_THAT(Show(Up(graph, {}, "m2")), ElementsAre("m1 +m1", "n1 +n1", "m2 -m1 -n1 +m2"));
  // n1's row was already replaced by its descendant n2: m2 replaces only m1's.
  EXPECT_THAT(Show(Up(graph, {"m1", "n2"}, "m2")), ElementsAre("m2 -m1 +m2"));
  Plan all = Up(graph, {}, "heads");
  EXPECT_THAT(Show(all), ElementsAre("m1 +m1", "n1 +n1", "m2 -m1 -n1 +m2", "n2 +n2"));
  EXPECT_THAT(all.to_heads, ElementsAre("m2", "n2"));
  EXPECT_THAT(Show(Up(graph, {}, "net@head")), ElementsAre("n1 +n1", "n2 -n1 +n2"));
  // The dependency's branch is reached through m2 and counts as applied.
  EXPECT_THAT(graph.PlanUpgrade({"m2"}, "n1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "below the current revisions"));
  EXPECT_THAT(Show(Up(graph, {"m2"}, "n2")), ElementsAre("n2 +n2"));
}

TEST(RevisionGraphTest, UpgradeDependsOnAnAncestorKeepsOneRow) {
  // c depends on a, which is also its grandparent: a is never a row once b is applied.
  RevisionGraph graph = MustBuild({Rev("a", {}), Rev("b", {"a"}), Rev("c", {"b"}, {"a"})});
  EXPECT_THAT(Show(Up(graph, {}, "head")), ElementsAre("a +a", "b -a +b", "c -b +c"));
  EXPECT_THAT(Show(Down(graph, {"c"}, "base")), ElementsAre("c -c +b", "b -b +a", "a -a"));
}

// ---------------------------------------------------------------------------------------------
// Downgrade plans

TEST(RevisionGraphTest, DowngradeLinear) {
  RevisionGraph graph = Linear();
  Plan plan = Down(graph, {"c"}, "base");
  EXPECT_THAT(Show(plan), ElementsAre("c -c +b", "b -b +a", "a -a"));
  EXPECT_THAT(plan.from_heads, ElementsAre("c"));
  EXPECT_THAT(plan.to_heads, IsEmpty());
  EXPECT_THAT(Show(Down(graph, {"c"}, "-1")), ElementsAre("c -c +b"));
  EXPECT_THAT(Show(Down(graph, {"c"}, "-2")), ElementsAre("c -c +b", "b -b +a"));
  EXPECT_THAT(Show(Down(graph, {"c"}, "-3")), ElementsAre("c -c +b", "b -b +a", "a -a"));
  EXPECT_THAT(Show(Down(graph, {"c"}, "a")), ElementsAre("c -c +b", "b -b +a"));
  EXPECT_THAT(Show(Down(graph, {"c"}, "c-1")), ElementsAre("c -c +b"));
  EXPECT_THAT(Show(Down(graph, {"b"}, "base")), ElementsAre("b -b +a", "a -a"));
  EXPECT_THAT(Down(graph, {"b"}, "b").steps, IsEmpty());
  EXPECT_THAT(Down(graph, {}, "base").steps, IsEmpty());
}

TEST(RevisionGraphTest, DowngradeRefusesTargetsAboveCurrent) {
  RevisionGraph graph = Linear();
  EXPECT_THAT(graph.PlanDowngrade({"a"}, "c"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "downgrade target 'c' (c) is not applied: it is above or beside the "
                       "current revisions (a); use `sluice upgrade c`"));
  EXPECT_THAT(graph.PlanDowngrade({"a"}, "+1"),
              StatusIs(absl::StatusCode::kInvalidArgument, "goes up; use `upgrade +1`"));
  EXPECT_THAT(graph.PlanDowngrade({"a"}, "-2"),
              StatusIs(absl::StatusCode::kInvalidArgument, "walks below base"));
  EXPECT_THAT(graph.PlanDowngrade({}, "-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, "nothing is applied"));
  EXPECT_THAT(Branched().PlanDowngrade({"b", "c"}, "heads"),
              StatusIs(absl::StatusCode::kInvalidArgument, "names several revisions (b, c)"));
}

TEST(RevisionGraphTest, DowngradeStopsAtARevisionWithoutDowngradeSql) {
  RevisionGraph graph =
      MustBuild({Rev("a", {}), Rev("b", {"a"}, {}, {}, /*has_downgrade=*/false), Rev("c", {"b"})});
  EXPECT_THAT(graph.PlanDowngrade({"c"}, "base"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "cannot downgrade to 'base':\nmigrations/b.yaml:1: revision b has no "
                       "downgrade SQL, so the database cannot be downgraded past it"));
  EXPECT_THAT(graph.PlanDowngrade({"c"}, "a"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "revision b has no downgrade"));
  // Above it, downgrades work.
  EXPECT_THAT(Show(Down(graph, {"c"}, "b")), ElementsAre("c -c +b"));
}

TEST(RevisionGraphTest, DowngradeBelowAMergeRestoresBothRows) {
  RevisionGraph graph = Diamond();
  Plan unmerge = Down(graph, {"d"}, "b");
  EXPECT_THAT(Show(unmerge), ElementsAre("d -d +b +c"));
  EXPECT_THAT(unmerge.to_heads, ElementsAre("b", "c"));
  EXPECT_THAT(Show(Down(graph, {"d"}, "a")), ElementsAre("d -d +b +c", "c -c", "b -b +a"));
  EXPECT_THAT(Show(Down(graph, {"d"}, "base")),
              ElementsAre("d -d +b +c", "c -c", "b -b +a", "a -a"));
  EXPECT_THAT(graph.PlanDowngrade({"d"}, "-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, "d is a merge of b, c"));
}

TEST(RevisionGraphTest, DowngradeOneBranchKeepsTheBranchPointRow) {
  RevisionGraph graph = Branched();
  // b leaves; a stays applied because c still needs it, so a gets no row of its own.
  Plan one = Down(graph, {"b", "c"}, "x@-1");
  EXPECT_THAT(Show(one), ElementsAre("b -b"));
  EXPECT_THAT(one.to_heads, ElementsAre("c"));
  EXPECT_THAT(Show(Down(graph, {"c"}, "-1")), ElementsAre("c -c +a"));
  EXPECT_THAT(Show(Down(graph, {"b", "c"}, "y@a")), ElementsAre("c -c"));
  // A plain target below both branches unwinds both, as Alembic does.
  EXPECT_THAT(Show(Down(graph, {"b", "c"}, "a")), ElementsAre("c -c", "b -b +a"));
  // Alembic leaves branches that do not descend from the target alone: c stays at c.
  EXPECT_THAT(Down(graph, {"b", "c"}, "b").steps, IsEmpty());
  EXPECT_THAT(graph.PlanDowngrade({"b", "c"}, "-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, "use LABEL@-1"));
}

TEST(RevisionGraphTest, DowngradeWithDependsOn) {
  RevisionGraph graph = CrossDependency();
  // Reverting n1's branch reverts m2, which depends on it; m2's rows go back to m1 and n1.
  EXPECT_THAT(Show(Down(graph, {"m2", "n2"}, "net@base")),
              ElementsAre("n2 -n2", "m2 -m2 +m1 +n1", "n1 -n1"));
  EXPECT_THAT(Show(Down(graph, {"m2"}, "base")), ElementsAre("m2 -m2 +m1 +n1", "n1 -n1", "m1 -m1"));
  EXPECT_THAT(Show(Down(graph, {"m2"}, "m1")), ElementsAre("m2 -m2 +m1 +n1"));
  // Alembic's "Nothing to drop": n1 has no child through down_revision that is applied.
  EXPECT_THAT(graph.PlanDowngrade({"m2"}, "n1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "nothing to downgrade to n1"));
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(RevisionGraphTest, RoundTrips) {
  for (RevisionGraph (*make)() : {&Linear, &Branched, &Diamond, &CrossDependency}) {
    RevisionGraph graph = make();
    Plan up = Up(graph, {}, "heads");
    Plan down = Down(graph, up.to_heads, "base");
    EXPECT_THAT(down.to_heads, IsEmpty());
    ASSERT_EQ(down.steps.size(), up.steps.size());
    // Each downgrade step undoes an upgrade step exactly, in reverse order.
    for (size_t i = 0; i < up.steps.size(); ++i) {
      const Step& u = up.steps[i];
      const Step& d = down.steps[down.steps.size() - 1 - i];
      EXPECT_EQ(u.migration, d.migration);
      EXPECT_EQ(u.delete_versions, d.insert_versions);
      EXPECT_EQ(u.insert_versions, d.delete_versions);
    }
    Plan again = Up(graph, down.to_heads, "heads");
    EXPECT_EQ(Show(again), Show(up));
    EXPECT_EQ(again.to_heads, up.to_heads);
  }
}

// ---------------------------------------------------------------------------------------------
// Randomized property test: random DAGs with merges, depends_on and labels; random version
// tables; every target form. Plans are checked against a brute-force model built straight from
// the Migration structs.

class Model {
 public:
  explicit Model(const std::vector<Migration>& migrations) {
    for (const Migration& m : migrations) by_id_[m.revision] = &m;
  }

  // Ancestors-or-self through down_revision and depends_on.
  std::set<std::string> Closure(const std::vector<std::string>& starts) const {
    std::set<std::string> out;
    std::function<void(const std::string&)> visit = [&](const std::string& id) {
      if (!out.insert(id).second) return;
      for (const std::string& p : Downs(id)) visit(p);
    };
    for (const std::string& s : starts) visit(s);
    return out;
  }

  std::vector<std::string> Downs(const std::string& id) const {
    const Migration* m = by_id_.at(id);
    std::vector<std::string> downs = m->down_revisions;
    downs.insert(downs.end(), m->depends_on.begin(), m->depends_on.end());
    return downs;
  }

  // The version table for an applied set: applied revisions nothing applied names.
  Rows Maximal(const std::set<std::string>& applied) const {
    std::set<std::string> named;
    for (const std::string& id : applied) {
      for (const std::string& d : Downs(id)) named.insert(d);
    }
    Rows rows;
    for (const std::string& id : applied) {
      if (!named.count(id)) rows.push_back(id);
    }
    return rows;
  }

  // Descendants-or-self through down_revision and depends_on.
  std::set<std::string> Descendants(const std::vector<std::string>& starts) const {
    std::set<std::string> out(starts.begin(), starts.end());
    bool grew = true;
    while (grew) {
      grew = false;
      for (const auto& [id, m] : by_id_) {
        if (out.count(id)) continue;
        for (const std::string& d : Downs(id)) {
          if (out.count(d)) {
            out.insert(id);
            grew = true;
            break;
          }
        }
      }
    }
    return out;
  }

  std::vector<std::string> Children(const std::string& id) const {
    std::vector<std::string> out;
    for (const auto& [child, m] : by_id_) {
      if (std::count(m->down_revisions.begin(), m->down_revisions.end(), id)) {
        out.push_back(child);
      }
    }
    return out;
  }

  bool HasDowngrade(const std::string& id) const {
    return by_id_.at(id)->downgrade_sql.has_value();
  }

 private:
  std::map<std::string, const Migration*> by_id_;
};

// Checks the generic properties of a plan against the model: replay reaches to_heads; each
// revision appears at most once; upgrades apply a revision only after everything it names and
// never twice; downgrades revert a revision only when nothing still applied names it; to_heads is
// the version table of the resulting applied set. Returns that applied set.
std::set<std::string> CheckPlan(const Model& model, const Rows& current, const Plan& plan,
                                Direction direction, const std::string& context) {
  SCOPED_TRACE(context);
  EXPECT_TRUE(ReplaysToHeads(plan));
  Rows sorted_current(current);
  std::sort(sorted_current.begin(), sorted_current.end());
  sorted_current.erase(std::unique(sorted_current.begin(), sorted_current.end()),
                       sorted_current.end());
  EXPECT_EQ(plan.from_heads, sorted_current);
  std::set<std::string> applied = model.Closure(current);
  std::set<std::string> seen;
  for (const Step& step : plan.steps) {
    const std::string& id = step.migration->revision;
    EXPECT_EQ(step.direction, direction);
    EXPECT_TRUE(seen.insert(id).second) << id << " appears twice";
    if (direction == Direction::kUpgrade) {
      EXPECT_FALSE(applied.count(id)) << id << " is already applied";
      for (const std::string& d : model.Downs(id)) {
        EXPECT_TRUE(applied.count(d)) << id << " runs before " << d;
      }
      applied.insert(id);
    } else {
      EXPECT_TRUE(applied.count(id)) << id << " is not applied";
      applied.erase(id);
      for (const std::string& other : applied) {
        for (const std::string& d : model.Downs(other)) {
          EXPECT_NE(d, id) << id << " is reverted while " << other << " still needs it";
        }
      }
    }
  }
  EXPECT_EQ(plan.to_heads, model.Maximal(applied));
  return applied;
}

std::string RandomId(std::mt19937& random, std::set<std::string>& used) {
  static constexpr char kHex[] = "0123456789abcdef";
  while (true) {
    std::string id;
    const int length = 4 + static_cast<int>(random() % 9);
    for (int i = 0; i < length; ++i) id.push_back(kHex[random() % 16]);
    if (used.insert(id).second) return id;
  }
}

TEST(RevisionGraphTest, RandomGraphsProperty) {
  std::mt19937 random(20240611);
  int plans_checked = 0;
  int errors_seen = 0;
  for (int graph_index = 0; graph_index < 200; ++graph_index) {
    SCOPED_TRACE(absl::StrCat("graph ", graph_index));
    const int n = 1 + static_cast<int>(random() % 60);
    std::set<std::string> used;
    std::vector<Migration> migrations;
    std::vector<std::string> ids;
    std::vector<std::string> labels;
    const bool some_irreversible = graph_index % 5 == 4;
    for (int i = 0; i < n; ++i) {
      const std::string id = RandomId(random, used);
      std::vector<std::string> parents;
      std::vector<std::string> depends;
      if (i > 0 && random() % 8 != 0) {
        const int wanted = random() % 6 == 0 ? 2 + static_cast<int>(random() % 2) : 1;
        for (int k = 0; k < wanted; ++k) {
          const std::string& p = ids[random() % ids.size()];
          if (std::find(parents.begin(), parents.end(), p) == parents.end()) parents.push_back(p);
        }
      }
      if (i > 0 && random() % 5 == 0) {
        const std::string& d = ids[random() % ids.size()];
        if (std::find(parents.begin(), parents.end(), d) == parents.end()) depends.push_back(d);
      }
      std::vector<std::string> branch_labels;
      if (random() % 7 == 0) {
        branch_labels.push_back(absl::StrCat("lbl", i));
        labels.push_back(branch_labels.back());
      }
      const bool downgrade = !(some_irreversible && random() % 10 == 0);
      migrations.push_back(Rev(id, parents, depends, branch_labels, downgrade));
      ids.push_back(id);
    }
    // Shuffle so the input order says nothing about the graph.
    std::shuffle(migrations.begin(), migrations.end(), random);
    absl::StatusOr<RevisionGraph> built = RevisionGraph::Build(migrations);
    ASSERT_THAT(built, IsOk());
    const RevisionGraph& graph = *built;
    const Model model(migrations);
    ASSERT_EQ(graph.TopologicalOrder().size(), migrations.size());
    {
      std::set<std::string> before;
      for (const Migration* m : graph.TopologicalOrder()) {
        for (const std::string& d : model.Downs(m->revision)) EXPECT_TRUE(before.count(d));
        before.insert(m->revision);
      }
    }

    // Up to heads from base, back down to base, and up again.
    {
      Plan up = Up(graph, {}, "heads");
      const std::set<std::string> applied = CheckPlan(model, {}, up, Direction::kUpgrade, "heads");
      EXPECT_EQ(applied.size(), migrations.size());
      absl::StatusOr<Plan> down = graph.PlanDowngrade(up.to_heads, "base");
      if (down.ok()) {
        CheckPlan(model, up.to_heads, *down, Direction::kDowngrade, "base");
        EXPECT_THAT(down->to_heads, IsEmpty());
        EXPECT_EQ(down->steps.size(), up.steps.size());
        EXPECT_EQ(Show(Up(graph, down->to_heads, "heads")), Show(up));
      } else {
        EXPECT_THAT(down, StatusIs(absl::StatusCode::kFailedPrecondition, "no downgrade SQL"));
        EXPECT_TRUE(some_irreversible);
        ++errors_seen;
      }
    }

    for (int state_index = 0; state_index < 8; ++state_index) {
      // A random consistent version table: the heads of a random applied set.
      std::vector<std::string> picked;
      for (const std::string& id : ids) {
        if (random() % 6 == 0) picked.push_back(id);
      }
      const std::set<std::string> applied = model.Closure(picked);
      Rows current = model.Maximal(applied);
      std::shuffle(current.begin(), current.end(), random);
      const std::set<std::string> rows(current.begin(), current.end());

      // Targets naming one revision, checked against the model exactly.
      for (int t = 0; t < 4; ++t) {
        const std::string target = ids[random() % ids.size()];
        const std::string context =
            absl::StrCat("current [", absl::StrJoin(current, ","), "] target ", target);
        absl::StatusOr<Plan> up = graph.PlanUpgrade(current, target);
        if (applied.count(target) && !rows.count(target)) {
          EXPECT_THAT(up, StatusIs(absl::StatusCode::kFailedPrecondition, "below")) << context;
          ++errors_seen;
        } else {
          ASSERT_THAT(up, IsOk()) << context;
          const std::set<std::string> after =
              CheckPlan(model, current, *up, Direction::kUpgrade, "up " + context);
          std::set<std::string> expected = applied;
          for (const std::string& id : model.Closure({target})) expected.insert(id);
          EXPECT_EQ(after, expected) << context;
          ++plans_checked;
        }

        // Alembic: revert what is applied among the descendants of the target's children.
        std::set<std::string> revert;
        for (const std::string& id : model.Descendants(model.Children(target))) {
          if (applied.count(id)) revert.insert(id);
        }
        const bool reversible = std::all_of(revert.begin(), revert.end(),
                                            [&](const auto& id) { return model.HasDowngrade(id); });
        absl::StatusOr<Plan> down = graph.PlanDowngrade(current, target);
        if (revert.empty() && !rows.count(target)) {
          EXPECT_THAT(down, StatusIs(absl::StatusCode::kFailedPrecondition, "")) << context;
          ++errors_seen;
        } else if (!reversible) {
          EXPECT_THAT(down, StatusIs(absl::StatusCode::kFailedPrecondition, "no downgrade SQL"))
              << context;
          ++errors_seen;
        } else {
          ASSERT_THAT(down, IsOk()) << context;
          const std::set<std::string> after =
              CheckPlan(model, current, *down, Direction::kDowngrade, "down " + context);
          std::set<std::string> expected;
          std::set_difference(applied.begin(), applied.end(), revert.begin(), revert.end(),
                              std::inserter(expected, expected.begin()));
          EXPECT_EQ(after, expected) << context;
          ++plans_checked;
        }
      }

      // Every other target form: when the graph accepts it, the plan must still be sound.
      std::vector<std::string> targets = {"heads", "head", "base", "+1", "+2", "-1", "-2"};
      const std::string some = ids[random() % ids.size()];
      targets.push_back(some.substr(0, 4));
      targets.push_back(some + "+1");
      targets.push_back(some + "-1");
      targets.push_back(some + "@head");
      if (!labels.empty()) {
        const std::string& label = labels[random() % labels.size()];
        targets.push_back(label);
        targets.push_back(label + "@head");
        targets.push_back(label + "@+1");
        targets.push_back(label + "@-1");
        targets.push_back(label + "@base");
      }
      for (const std::string& target : targets) {
        const std::string context =
            absl::StrCat("current [", absl::StrJoin(current, ","), "] target ", target);
        for (Direction direction : {Direction::kUpgrade, Direction::kDowngrade}) {
          absl::StatusOr<Plan> plan = direction == Direction::kUpgrade
                                          ? graph.PlanUpgrade(current, target)
                                          : graph.PlanDowngrade(current, target);
          if (plan.ok()) {
            const std::set<std::string> after =
                CheckPlan(model, current, *plan, direction, context);
            absl::StatusOr<std::vector<std::string>> resolved =
                graph.ResolveTarget(target, current);
            ASSERT_THAT(resolved, IsOk()) << context;
            // The target is reached: each named revision is applied afterwards, and for a
            // downgrade nothing above the target's children remains.
            for (const std::string& id : *resolved) EXPECT_TRUE(after.count(id)) << context;
            ++plans_checked;
          } else {
            EXPECT_THAT(plan.status().code(),
                        ::testing::AnyOf(absl::StatusCode::kInvalidArgument,
                                         absl::StatusCode::kFailedPrecondition,
                                         absl::StatusCode::kNotFound))
                << context << ": " << plan.status();
            ++errors_seen;
          }
        }
      }
    }
  }
  // The generator must produce both kinds of outcome, or the test proves little.
  EXPECT_GT(plans_checked, 5000);
  EXPECT_GT(errors_seen, 500);
}

}  // namespace
}  // namespace sluice::graph

namespace sluice::graph {
namespace {

// The migration `Rev` makes, with `checksum` set as the loader sets it.
manifest::Migration RevWithChecksum(const std::string& id, std::vector<std::string> parents,
                                    const std::string& checksum) {
  manifest::Migration m = Rev(id, std::move(parents));
  m.checksum = checksum;
  return m;
}

TEST(ContentDigestTest, IsTheSha256OfTheSortedIdsAndChecksums) {
  const RevisionGraph graph =
      MustBuild({RevWithChecksum("b", {"a"}, "sha256:bb"), RevWithChecksum("a", {}, "sha256:aa")});
  // printf 'a\tsha256:aa\nb\tsha256:bb\n' | sha256sum
  EXPECT_EQ(graph.ContentDigest(),
            "sha256:b3fbfb07fe14bb0a2e94cbd66f61cef6c380c7704cf59c845dfe628c2f1a6876");
}

TEST(ContentDigestTest, DependsOnlyOnIdsAndChecksums) {
  const std::string digest =
      MustBuild({RevWithChecksum("a", {}, "sha256:aa"), RevWithChecksum("b", {"a"}, "sha256:bb")})
          .ContentDigest();
  // The manifests' order does not count.
  EXPECT_EQ(
      MustBuild({RevWithChecksum("b", {"a"}, "sha256:bb"), RevWithChecksum("a", {}, "sha256:aa")})
          .ContentDigest(),
      digest);
  // A changed checksum, a new revision and a renamed one do.
  EXPECT_NE(
      MustBuild({RevWithChecksum("a", {}, "sha256:aa"), RevWithChecksum("b", {"a"}, "sha256:bc")})
          .ContentDigest(),
      digest);
  EXPECT_NE(
      MustBuild({RevWithChecksum("a", {}, "sha256:aa"), RevWithChecksum("b", {"a"}, "sha256:bb"),
                 RevWithChecksum("c", {"b"}, "sha256:cc")})
          .ContentDigest(),
      digest);
  EXPECT_NE(
      MustBuild({RevWithChecksum("a", {}, "sha256:aa"), RevWithChecksum("c", {"a"}, "sha256:bb")})
          .ContentDigest(),
      digest);
}

}  // namespace
}  // namespace sluice::graph
