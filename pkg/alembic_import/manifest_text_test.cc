#include "pkg/alembic_import/manifest_text.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/manifest/loader.h"
#include "tests/support/status_matchers.h"

namespace sluice::alembic_import {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Reads `text` back with the manifest loader; it must hold one revision.
manifest::Migration ReadBack(const std::string& text) {
  absl::StatusOr<std::vector<manifest::Migration>> read = manifest::ParseManifest(text, "m.yaml");
  EXPECT_TRUE(read.ok()) << read.status() << "\n" << text;
  if (!read.ok() || read->size() != 1) return {};
  return read->front();
}

TEST(ManifestTextTest, WritesTheSeedsShape) {
  ManifestFields fields;
  fields.revision = "fc0e7b400c13";
  fields.description = "Initial schema with executions and api_keys";
  fields.upgrade_sql =
      "CREATE TABLE api_keys (\n    id BIGINT, \n    name TEXT\n);\n\nCREATE INDEX i ON api_keys "
      "(name);\n";
  fields.downgrade_sql = "DROP TABLE api_keys;\n";
  fields.script = "alembic/versions/fc0e7b400c13_initial_schema.py";
  EXPECT_EQ(ManifestText(fields, "1.8.1"),
            "# Imported by `sluice import alembic` (Alembic 1.8.1) from "
            "alembic/versions/fc0e7b400c13_initial_schema.py.\n"
            "revision: fc0e7b400c13\n"
            "down_revision: null\n"
            "description: Initial schema with executions and api_keys\n"
            "branch_labels: []\n"
            "depends_on: []\n"
            "x-alembic-script: alembic/versions/fc0e7b400c13_initial_schema.py\n"
            "upgrade: |\n"
            "  CREATE TABLE api_keys (\n"
            "      id BIGINT, \n"
            "      name TEXT\n"
            "  );\n"
            "\n"
            "  CREATE INDEX i ON api_keys (name);\n"
            "downgrade: |\n"
            "  DROP TABLE api_keys;\n");
  const manifest::Migration read = ReadBack(ManifestText(fields, "1.8.1"));
  EXPECT_EQ(read.upgrade_sql, fields.upgrade_sql);
  EXPECT_EQ(read.downgrade_sql, fields.downgrade_sql);
}

TEST(ManifestTextTest, ReadsBackWhateverTheTextHolds) {
  ManifestFields fields;
  fields.revision = "null";  // a YAML word: quoted
  fields.down_revisions = {"a1", "0012"};
  fields.description = "Merge: \"keys\" # and logs\tmore";
  fields.branch_labels = {"keys,v2", "true"};
  fields.depends_on = {"1e3"};
  fields.transactional = false;
  fields.upgrade_sql = "    SELECT 1; -- indented first line\n\tSELECT 2;\n";
  fields.downgrade_sql = "SELECT 'a\r\nb';\n";  // a carriage return: a quoted string instead
  fields.script = "alembic/versions/x: y.py";
  const manifest::Migration read = ReadBack(ManifestText(fields, "1.8.1"));
  EXPECT_EQ(read.revision, "null");
  EXPECT_THAT(read.down_revisions, ElementsAre("a1", "0012"));
  EXPECT_EQ(read.description, fields.description);
  EXPECT_THAT(read.branch_labels, ElementsAre("keys,v2", "true"));
  EXPECT_THAT(read.depends_on, ElementsAre("1e3"));
  EXPECT_FALSE(read.transactional);
  EXPECT_EQ(read.upgrade_sql, fields.upgrade_sql);
  EXPECT_EQ(read.downgrade_sql, fields.downgrade_sql);
}

TEST(ManifestTextTest, LeavesOutTheDowngradeOfAnIrreversibleRevision) {
  ManifestFields fields;
  fields.revision = "a";
  fields.upgrade_sql = "SELECT 1;\n";
  fields.script = "a.py";
  const std::string text = ManifestText(fields, "1.8.1");
  EXPECT_THAT(text, ::testing::Not(HasSubstr("downgrade")));
  EXPECT_FALSE(ReadBack(text).downgrade_sql.has_value());
  fields.downgrade_sql = "";  // downgrade() that does nothing: an empty downgrade
  EXPECT_EQ(ReadBack(ManifestText(fields, "1.8.1")).downgrade_sql, "");
}

TEST(ManifestTextTest, MarksAnUnconvertedRevisionSoThatItDoesNotLoad) {
  ManifestFields fields;
  fields.revision = "e7d6c5b4a392";
  fields.down_revisions = {"f1a2b3c4d5e6"};
  fields.upgrade_sql = "SELECT id FROM api_keys;\n";
  fields.downgrade_sql = "";
  fields.script = "alembic/versions/e7d6c5b4a392_backfill.py";
  fields.unconverted_reason = "upgrade: it uses the database connection (op.get_bind())";
  std::string without_marker;
  const std::string text = ManifestText(fields, "1.8.1", &without_marker);
  EXPECT_THAT(text, HasSubstr("\nunconverted: \"upgrade: it uses the database connection "
                              "(op.get_bind())\"\nrevision: e7d6c5b4a392\n"));
  EXPECT_THAT(manifest::ParseManifest(text, "m.yaml").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "m.yaml:2:1: revision e7d6c5b4a392 is marked `unconverted`: "
                       "upgrade: it uses the database connection"));
  EXPECT_EQ(ReadBack(without_marker).upgrade_sql, fields.upgrade_sql);
}

TEST(ManifestTextTest, TidiesOnlyBlankEdges) {
  EXPECT_EQ(TidySql("\n  \nCREATE TABLE t (a INT);\n\n\n"), "CREATE TABLE t (a INT);\n");
  EXPECT_EQ(TidySql("\n    SELECT 1;  \n"), "    SELECT 1;\n");
  EXPECT_EQ(TidySql("SELECT 'a  \n  b';"), "SELECT 'a  \n  b';\n");
  EXPECT_EQ(TidySql(" \n\n"), "");
}

TEST(ManifestTextTest, NamesFilesInRevisionOrder) {
  EXPECT_EQ(ManifestFileName(1, 8, "fc0e7b400c13", "Initial schema with executions and api_keys"),
            "0001_fc0e7b400c13_initial_schema_with_executions_and_api_k.yaml");
  EXPECT_EQ(ManifestFileName(12, 12345, "ab12", "Merge: keys & logs!"),
            "00012_ab12_merge_keys_logs.yaml");
  EXPECT_EQ(ManifestFileName(3, 3, "x", "???"), "0003_x.yaml");
}

}  // namespace
}  // namespace sluice::alembic_import
