#include "pkg/sql/sql_text.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace sluice::sql {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Field;

TEST(QuoteTest, IdentifiersAreAlwaysQuotedWithQuotesDoubled) {
  EXPECT_EQ(QuoteIdentifier("alembic_version"), "\"alembic_version\"");
  EXPECT_EQ(QuoteIdentifier("My Table"), "\"My Table\"");
  EXPECT_EQ(QuoteIdentifier("we\"ird; DROP"), "\"we\"\"ird; DROP\"");
  EXPECT_EQ(QualifiedName("public", "v"), "\"public\".\"v\"");
}

TEST(QuoteTest, LiteralsDoubleQuotesAndEscapeBackslashes) {
  EXPECT_EQ(QuoteLiteral("abc"), "'abc'");
  EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
  EXPECT_EQ(QuoteLiteral("a\\b'"), "E'a\\\\b'''");
}

TEST(VersionTableTest, DdlIsAlembics) {
  EXPECT_EQ(CreateVersionTableSql("public", "alembic_version"),
            "CREATE TABLE IF NOT EXISTS \"public\".\"alembic_version\" (\n"
            "    version_num VARCHAR(32) NOT NULL,\n"
            "    CONSTRAINT \"alembic_version_pkc\" PRIMARY KEY (version_num)\n)");
}

TEST(VersionTableTest, ChangesAreUpdatesDeletesAndInserts) {
  EXPECT_THAT(VersionChangeSql("s", "v", {}, {"a"}),
              ElementsAre("INSERT INTO \"s\".\"v\" (version_num) VALUES ('a')"));
  EXPECT_THAT(VersionChangeSql("s", "v", {"a"}, {"b"}),
              ElementsAre("UPDATE \"s\".\"v\" SET version_num = 'b' WHERE version_num = 'a'"));
  EXPECT_THAT(VersionChangeSql("s", "v", {"a", "b"}, {"m"}),
              ElementsAre("DELETE FROM \"s\".\"v\" WHERE version_num = 'a'",
                          "UPDATE \"s\".\"v\" SET version_num = 'm' WHERE version_num = 'b'"));
  EXPECT_THAT(VersionChangeSql("s", "v", {"m"}, {"a", "b"}),
              ElementsAre("UPDATE \"s\".\"v\" SET version_num = 'a' WHERE version_num = 'm'",
                          "INSERT INTO \"s\".\"v\" (version_num) VALUES ('b')"));
  EXPECT_THAT(VersionChangeSql("s", "v", {"a"}, {}),
              ElementsAre("DELETE FROM \"s\".\"v\" WHERE version_num = 'a'"));
  EXPECT_THAT(VersionChangeSql("s", "v", {}, {}), ElementsAre());
}

std::vector<std::string> Texts(const std::vector<Statement>& statements) {
  std::vector<std::string> texts;
  for (const Statement& s : statements) texts.push_back(s.text);
  return texts;
}

TEST(SplitStatementsTest, SplitsAtTopLevelSemicolonsWithLines) {
  auto statements = SplitStatements("CREATE TABLE a (id int);\n\n  CREATE INDEX i ON a (id);\n");
  ASSERT_TRUE(statements.ok()) << statements.status();
  EXPECT_THAT(*statements, ElementsAre(AllOf(Field(&Statement::text, "CREATE TABLE a (id int)"),
                                             Field(&Statement::first_line, 1)),
                                       AllOf(Field(&Statement::text, "CREATE INDEX i ON a (id)"),
                                             Field(&Statement::first_line, 3))));
}

TEST(SplitStatementsTest, RespectsQuotesCommentsAndDollarQuoting) {
  const char* script =
      "INSERT INTO t VALUES ('a;b', 'it''s;', E'back\\';slash');\n"
      "SELECT \"semi;colon\" FROM t; -- trailing; comment\n"
      "/* block ; /* nested ; */ still ; */ SELECT 2;\n"
      "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
      "CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\n"
      "SELECT $1, a$b FROM t";
  auto statements = SplitStatements(script);
  ASSERT_TRUE(statements.ok()) << statements.status();
  EXPECT_THAT(Texts(*statements),
              ElementsAre("INSERT INTO t VALUES ('a;b', 'it''s;', E'back\\';slash')",
                          "SELECT \"semi;colon\" FROM t", "SELECT 2",
                          "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
                          "CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ "
                          "LANGUAGE plpgsql",
                          "SELECT $1, a$b FROM t"));
  EXPECT_EQ((*statements)[2].first_line, 3);
  EXPECT_EQ((*statements)[5].first_line, 6);
}

TEST(SplitStatementsTest, KeepsBeginAtomicBodiesWhole) {
  auto statements = SplitStatements(
      "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n"
      "  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;");
  ASSERT_TRUE(statements.ok()) << statements.status();
  ASSERT_EQ(statements->size(), 2u);
  EXPECT_EQ((*statements)[1].text, "SELECT 3");
}

TEST(SplitStatementsTest, DropsEmptyAndCommentOnlyStatements) {
  auto statements = SplitStatements(";;\n-- only a comment\n;  /* c */ ;\n");
  ASSERT_TRUE(statements.ok()) << statements.status();
  EXPECT_THAT(*statements, ElementsAre());
}

TEST(SplitStatementsTest, ReportsUnterminatedRunsWithTheirLine) {
  EXPECT_THAT(SplitStatements("SELECT 1;\nSELECT 'open;"),
              StatusIs(absl::StatusCode::kInvalidArgument, "line 2: unterminated string literal"));
  EXPECT_THAT(SplitStatements("SELECT \"x"),
              StatusIs(absl::StatusCode::kInvalidArgument, "unterminated quoted identifier"));
  EXPECT_THAT(SplitStatements("\n\nSELECT $$ never closed"),
              StatusIs(absl::StatusCode::kInvalidArgument, "line 3: unterminated dollar-quoted"));
  EXPECT_THAT(SplitStatements("/* open"),
              StatusIs(absl::StatusCode::kInvalidArgument, "unterminated comment"));
}

}  // namespace
}  // namespace sluice::sql
