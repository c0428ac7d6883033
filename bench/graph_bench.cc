// graph_bench: times building a 10,000-revision graph and planning a full upgrade and downgrade
// over it. The graph is a main line with a side branch every 100 revisions (20 revisions long,
// merged back by a merge revision) and a depends_on every 37 revisions, so every traversal that
// handles merges, branch rows and dependencies is exercised. Each figure is the best of several
// runs, so a busy shared machine inflates it less.
//
// Usage: graph_bench [REVISIONS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/migration.h"

namespace {

using sluice::graph::Plan;
using sluice::graph::RevisionGraph;
using sluice::manifest::Migration;

constexpr int kDefaultRevisions = 10000;
constexpr int kRuns = 5;
constexpr int kBranchEvery = 100;
constexpr int kBranchLength = 20;
constexpr int kDependsEvery = 37;
constexpr int kDependsDistance = 500;

std::vector<Migration> MakeMigrations(int count) {
  std::vector<Migration> migrations;
  migrations.reserve(count);
  const auto add = [&](std::vector<std::string> parents) {
    Migration m;
    m.revision = absl::StrFormat("%012x", 0x5eed0000000ULL + migrations.size() * 7919);
    m.down_revisions = std::move(parents);
    const int index = static_cast<int>(migrations.size());
    if (index % kDependsEvery == 0 && index >= kDependsDistance) {
      m.depends_on.push_back(migrations[index - kDependsDistance].revision);
    }
    m.upgrade_sql = "SELECT 1;";
    m.downgrade_sql = "SELECT 1;";
    m.location.file = absl::StrFormat("migrations/%s.yaml", m.revision);
    m.location.line = 1;
    migrations.push_back(std::move(m));
    return migrations.back().revision;
  };
  std::string tip = add({});
  while (static_cast<int>(migrations.size()) < count) {
    const int index = static_cast<int>(migrations.size());
    if (index % kBranchEvery == 0 && count - index > kBranchLength + 2) {
      std::string side = tip;
      for (int i = 0; i < kBranchLength; ++i) side = add({side});
      tip = add({tip});
      tip = add({tip, side});
    } else {
      tip = add({tip});
    }
  }
  return migrations;
}

// Runs `work` kRuns times and returns the best wall time in milliseconds.
double BestMs(const std::function<void()>& work) {
  double best = 1e300;
  for (int run = 0; run < kRuns; ++run) {
    const auto start = std::chrono::steady_clock::now();
    work();
    const auto end = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(end - start).count());
  }
  return best;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "graph_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int count = argc > 1 ? std::atoi(argv[1]) : kDefaultRevisions;
  if (count < 1) return Fail("REVISIONS must be a positive number");
  const std::vector<Migration> migrations = MakeMigrations(count);

  absl::StatusOr<RevisionGraph> graph = RevisionGraph::Build(migrations);
  if (!graph.ok()) return Fail(std::string(graph.status().message()));
  const double build_ms = BestMs([&] {
    absl::StatusOr<RevisionGraph> again = RevisionGraph::Build(migrations);
    if (!again.ok()) std::abort();
  });

  absl::StatusOr<Plan> up = graph->PlanUpgrade({}, "head");
  if (!up.ok()) return Fail(std::string(up.status().message()));
  if (static_cast<int>(up->steps.size()) != count) return Fail("upgrade plan is incomplete");
  const double up_ms = BestMs([&] {
    if (!graph->PlanUpgrade({}, "head").ok()) std::abort();
  });

  absl::StatusOr<Plan> down = graph->PlanDowngrade(up->to_heads, "base");
  if (!down.ok()) return Fail(std::string(down.status().message()));
  if (static_cast<int>(down->steps.size()) != count) return Fail("downgrade plan is incomplete");
  const double down_ms = BestMs([&] {
    if (!graph->PlanDowngrade(up->to_heads, "base").ok()) std::abort();
  });

  // A single query the engine makes (stamp): the worst case walks the whole graph.
  const std::string& first = migrations.front().revision;
  const std::string& last = up->to_heads.front();
  const double ancestor_ms = BestMs([&] {
    if (!graph->IsAncestorOrSelf(first, last)) std::abort();
  });
  const std::string prefix = migrations[count / 2].revision.substr(0, 10);
  const double resolve_ms = BestMs([&] {
    if (!graph->ResolveTarget(prefix, {}).ok()) std::abort();
  });

  std::printf(
      "graph_bench: build %d revisions: %.2f ms; plan base->head: %.2f ms (%zu steps); plan "
      "downgrade head->base: %.2f ms (%zu steps); IsAncestorOrSelf(base, head): %.1f us; "
      "resolve a prefix: %.1f us (best of %d runs)\n",
      count, build_ms, up_ms, up->steps.size(), down_ms, down->steps.size(), ancestor_ms * 1000,
      resolve_ms * 1000, kRuns);
  return 0;
}
