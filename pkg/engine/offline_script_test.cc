#include "pkg/engine/offline_script.h"

#include "gtest/gtest.h"

namespace sluice::engine {
namespace {

manifest::Migration MakeMigration(std::string revision, std::vector<std::string> parents,
                                  bool transactional = true) {
  manifest::Migration m;
  m.revision = std::move(revision);
  m.down_revisions = std::move(parents);
  m.description = "create " + m.revision;
  m.upgrade_sql = "CREATE TABLE " + m.revision + " (id int);\n";
  m.downgrade_sql = "DROP TABLE " + m.revision + "; -- gone";
  m.checksum = "sha256:00";
  m.transactional = transactional;
  return m;
}

TEST(OfflineScriptTest, UpgradeFromBaseCreatesTablesAndWrapsEachStep) {
  manifest::Migration a = MakeMigration("a", {});
  manifest::Migration b = MakeMigration("b", {"a"}, /*transactional=*/false);
  graph::Plan plan;
  plan.steps.push_back({graph::Direction::kUpgrade, &a, {}, {"a"}});
  plan.steps.push_back({graph::Direction::kUpgrade, &b, {"a"}, {"b"}});
  OfflineScriptOptions options;
  options.schema = "App";
  const std::string script = RenderOfflineScript(plan, options);

  const size_t create = script.find(
      "CREATE TABLE IF NOT EXISTS \"App\".\"alembic_version\" (\n"
      "    version_num VARCHAR(32) NOT NULL,\n"
      "    CONSTRAINT \"alembic_version_pkc\" PRIMARY KEY (version_num)\n);\n");
  const size_t step_a = script.find(
      "-- Running upgrade  -> a, create a\n\nBEGIN;\n\nCREATE TABLE a (id int);\n\n"
      "INSERT INTO \"App\".\"alembic_version\" (version_num) VALUES ('a');\n\n"
      "INSERT INTO \"App\".\"sluice_history\"");
  const size_t step_b = script.find(
      "-- Running upgrade a -> b, create b\n\n-- transactional: false; these statements run one "
      "by one\n\nCREATE TABLE b (id int);\n\nBEGIN;\n\n"
      "UPDATE \"App\".\"alembic_version\" SET version_num = 'b' WHERE version_num = 'a';\n\n");
  ASSERT_NE(create, std::string::npos) << script;
  ASSERT_NE(step_a, std::string::npos) << script;
  ASSERT_NE(step_b, std::string::npos) << script;
  EXPECT_LT(create, step_a);
  EXPECT_LT(step_a, step_b);
  EXPECT_NE(script.find("'sha256:00', 'create a', now(), now(), 0, 'sluice offline', 'applied'"),
            std::string::npos)
      << script;
  EXPECT_EQ(script.substr(script.size() - 9), "COMMIT;\n\n");
}

TEST(OfflineScriptTest, DowngradeUsesDowngradeSqlAndKeepsTrailingCommentHarmless) {
  manifest::Migration a = MakeMigration("a", {});
  graph::Plan plan;
  plan.steps.push_back({graph::Direction::kDowngrade, &a, {"a"}, {}});
  OfflineScriptOptions options;
  options.create_tables = false;
  const std::string script = RenderOfflineScript(plan, options);
  EXPECT_EQ(script.find("CREATE TABLE IF NOT EXISTS"), std::string::npos) << script;
  EXPECT_NE(script.find("-- Running downgrade a -> , create a\n\nBEGIN;\n\nDROP TABLE a; -- "
                        "gone\n;\n\nDELETE FROM \"public\".\"alembic_version\" WHERE version_num "
                        "= 'a';\n\n"),
            std::string::npos)
      << script;
  EXPECT_NE(script.find("'downgrade'"), std::string::npos);
}

}  // namespace
}  // namespace sluice::engine
