#include "pkg/alembic_import/helper_protocol.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace sluice::alembic_import {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Field(absl::string_view name, absl::string_view value) {
  return absl::StrCat(name, " ", value.size(), "\n", value, "\n");
}

std::string Answer(absl::string_view fields) {
  return absl::StrCat(kHelperProtocol, "\n", Field("alembic_version", "1.8.1"), fields,
                      Field("end", ""));
}

TEST(HelperProtocolTest, ReadsRevisionsWithEveryField) {
  const std::string sql = "CREATE TABLE t (\n    a TEXT\n);\n\nupgrade_sql 3\nnot a field\n";
  const absl::StatusOr<HelperAnswer> answer = ParseHelperAnswer(Answer(absl::StrCat(
      Field("version_table", "versions"), Field("revision", "m1"), Field("down_revision", "a"),
      Field("down_revision", "b"), Field("branch_label", "keys"), Field("depends_on", "c"),
      Field("description", "Merge: two\nlines"), Field("script", "alembic/versions/m1.py"),
      Field("upgrade_sql", sql), Field("upgrade_problem", "it uses op.get_bind()"),
      Field("autocommit_block", "upgrade"), Field("downgrade_irreversible", ""),
      Field("revision", "a"), Field("upgrade_sql", ""), Field("downgrade_sql", "DROP;\n"))));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->alembic_version, "1.8.1");
  EXPECT_EQ(answer->version_table, "versions");
  ASSERT_EQ(answer->revisions.size(), 2u);
  const AlembicRevision& merge = answer->revisions[0];
  EXPECT_EQ(merge.revision, "m1");
  EXPECT_THAT(merge.down_revisions, ElementsAre("a", "b"));
  EXPECT_THAT(merge.branch_labels, ElementsAre("keys"));
  EXPECT_THAT(merge.depends_on, ElementsAre("c"));
  EXPECT_EQ(merge.description, "Merge: two\nlines");
  EXPECT_EQ(merge.script, "alembic/versions/m1.py");
  EXPECT_EQ(merge.upgrade.sql, sql);  // a value is taken by length, whatever it holds
  EXPECT_THAT(merge.upgrade.problems, ElementsAre("it uses op.get_bind()"));
  EXPECT_TRUE(merge.upgrade.autocommit_block);
  EXPECT_FALSE(merge.downgrade.autocommit_block);
  EXPECT_TRUE(merge.downgrade.irreversible);
  EXPECT_EQ(answer->revisions[1].downgrade.sql, "DROP;\n");
  EXPECT_THAT(answer->revisions[1].down_revisions, IsEmpty());
}

TEST(HelperProtocolTest, RefusesAnswersCutShortOrMalformed) {
  EXPECT_THAT(ParseHelperAnswer("Traceback (most recent call last):\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "does not start with \"sluice-alembic-import 1\""));
  const std::string whole = Answer(Field("revision", "a"));
  EXPECT_THAT(ParseHelperAnswer(whole.substr(0, whole.size() - Field("end", "").size())).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "without its `end` field"));
  EXPECT_THAT(ParseHelperAnswer(absl::StrCat(kHelperProtocol, "\nrevision 40\nabc\n")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "field `revision` of 40 bytes runs past the end"));
  EXPECT_THAT(ParseHelperAnswer(absl::StrCat(kHelperProtocol, "\nrevision x\nabc\n")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected `NAME LENGTH`"));
  EXPECT_THAT(
      ParseHelperAnswer(Answer(Field("upgrade_sql", "x"))).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "field `upgrade_sql` before any `revision`"));
  EXPECT_THAT(ParseHelperAnswer(Answer(Field("revision", "a") + Field("colour", "blue"))).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "unknown field `colour`"));
  EXPECT_THAT(ParseHelperAnswer(whole + Field("revision", "b")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "after the `end` field"));
}

}  // namespace
}  // namespace sluice::alembic_import
