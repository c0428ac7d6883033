// Test support for the engine's unit tests: manifests built in code, and an Engine over an
// in-memory database (store::MemoryDatabase) instead of PostgreSQL.
#ifndef SLUICE_PKG_ENGINE_ENGINE_TEST_SUPPORT_H_
#define SLUICE_PKG_ENGINE_ENGINE_TEST_SUPPORT_H_

#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pkg/base/log.h"
#include "pkg/base/sha256.h"
#include "pkg/engine/engine.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/migration.h"
#include "pkg/store/memory_store.h"

namespace sluice::engine {

// Returns revision `id` of manifest file "m/ID.yaml" (its `revision:` key on line 1, the upgrade
// SQL from line 5), with the given parents and SQL.
inline manifest::Migration Revision(const std::string& id, std::vector<std::string> parents,
                                    const std::string& upgrade_sql) {
  manifest::Migration m;
  m.revision = id;
  m.down_revisions = std::move(parents);
  m.description = absl::StrCat("create ", id);
  m.upgrade_sql = upgrade_sql;
  m.downgrade_sql = absl::StrCat("DROP TABLE ", id, ";");
  m.checksum = absl::StrCat("sha256:", base::Sha256Hex(upgrade_sql));
  m.location = {absl::StrCat("m/", id, ".yaml"), 1, 1};
  m.upgrade_first_line = 5;
  m.downgrade_first_line = 8;
  return m;
}

// Returns the history row that a runner wrote when it applied `m`.
inline store::HistoryRow AppliedRow(const manifest::Migration& m) {
  store::HistoryRow row;
  row.revision = m.revision;
  row.direction = "upgrade";
  row.checksum = m.checksum;
  row.description = m.description;
  row.applied_by = "earlier-runner";
  row.outcome = "applied";
  row.down_revisions = m.down_revisions;
  row.depends_on = m.depends_on;
  row.upgrade_sql = m.upgrade_sql;
  row.downgrade_sql = m.downgrade_sql;
  row.transactional = m.transactional;
  return row;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    options_.applied_by = "unit-test";
    options_.lock_poll_initial = absl::Milliseconds(1);
    options_.lock_poll_max = absl::Milliseconds(5);
    options_.lock_holder_lookup_after = absl::ZeroDuration();
    options_.ddl_retry_backoff = absl::Milliseconds(1);
    log::SetSinkForTest(&log_);
  }
  ~EngineTest() override { log::SetSinkForTest(nullptr); }

  // Returns an engine over db_ that plans on the graph of `migrations`.
  std::unique_ptr<Engine> MakeEngine(std::vector<manifest::Migration> migrations,
                                     Observer* observer = nullptr) {
    absl::StatusOr<graph::RevisionGraph> graph = graph::RevisionGraph::Build(std::move(migrations));
    EXPECT_TRUE(graph.ok()) << graph.status();
    if (!graph.ok()) return nullptr;
    StoreFactory factory = [this](const std::string& application_name) {
      return absl::StatusOr<std::unique_ptr<store::Store>>(db_.Connect(application_name));
    };
    return std::make_unique<Engine>(std::make_shared<const graph::RevisionGraph>(*std::move(graph)),
                                    std::move(factory), options_, observer);
  }

  int64_t LockKey() const { return store::LockKeyFor(options_.tables); }
  std::vector<std::string> Versions() { return db_.VersionsForTest(options_.tables); }
  std::vector<store::HistoryRow> History() { return db_.HistoryForTest(options_.tables); }

  store::MemoryDatabase db_;
  EngineOptions options_;
  std::ostringstream log_;
};

}  // namespace sluice::engine

#endif  // SLUICE_PKG_ENGINE_ENGINE_TEST_SUPPORT_H_
