// The lint's pure parts: the rule catalog against the manifest's list of allowable ids, the
// parser's facts, and the output formats. What PostgreSQL is seen doing is tested against a real
// server in tests/integration/lint_test.cc.
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "pkg/lint/lint.h"
#include "pkg/lint/parse.h"
#include "pkg/manifest/lint_rules.h"

namespace sluice::lint {
namespace {

TEST(LintRulesTest, AllowableRulesAreTheManifestsList) {
  std::set<std::string> allowable;
  for (const Rule& rule : Rules()) {
    if (rule.allowable) allowable.insert(std::string(rule.id));
  }
  std::set<std::string> manifest;
  for (absl::string_view id : manifest::kAllowableLintRules) manifest.insert(std::string(id));
  EXPECT_EQ(allowable, manifest);
  EXPECT_EQ(FindRule("revision-failed")->severity, Severity::kError);
  EXPECT_FALSE(FindRule("revision-failed")->allowable);
  EXPECT_EQ(FindRule("rename")->severity, Severity::kWarning);
  EXPECT_EQ(FindRule("access-exclusive")->severity, Severity::kInfo);
  EXPECT_EQ(FindRule("no-such-rule"), nullptr);
}

TEST(LintParseTest, NamesStatementsAndTheirTransactionNeeds) {
  struct Case {
    const char* sql;
    const char* kind;
    bool outside_transaction_only;
    bool create_index;
    bool truncate;
  };
  const Case cases[] = {
      {"CREATE INDEX i ON t (a)", "CREATE INDEX", false, true, false},
      {"CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", "CREATE UNIQUE INDEX CONCURRENTLY", true,
       true, false},
      {"DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY", true, false, false},
      {"DROP TABLE t", "DROP TABLE", false, false, false},
      {"REINDEX (CONCURRENTLY) INDEX i", "REINDEX CONCURRENTLY", true, false, false},
      {"ALTER TABLE t ADD COLUMN c int DEFAULT 0", "ALTER TABLE ... ADD COLUMN", false, false,
       false},
      {"ALTER TABLE t ALTER COLUMN c SET NOT NULL, ADD CONSTRAINT k CHECK (c > 0) NOT VALID",
       "ALTER TABLE ... ALTER COLUMN ... SET NOT NULL, ADD CONSTRAINT", false, false, false},
      {"ALTER TABLE p DETACH PARTITION c CONCURRENTLY", "ALTER TABLE ... DETACH PARTITION", true,
       false, false},
      {"ALTER TABLE t RENAME COLUMN a TO b", "ALTER TABLE ... RENAME COLUMN", false, false, false},
      {"TRUNCATE t", "TRUNCATE", false, false, true},
      {"VACUUM t", "VACUUM", true, false, false},
      {"UPDATE t SET a = 1", "UPDATE", false, false, false},
      {"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
       "create_function_stmt", false, false, false},
  };
  for (const Case& c : cases) {
    absl::StatusOr<internal::StatementFacts> facts = internal::ParseStatement(c.sql);
    ASSERT_TRUE(facts.ok()) << c.sql << ": " << facts.status();
    EXPECT_EQ(facts->kind, c.kind) << c.sql;
    EXPECT_EQ(facts->outside_transaction_only, c.outside_transaction_only) << c.sql;
    EXPECT_EQ(facts->create_index, c.create_index) << c.sql;
    EXPECT_EQ(facts->truncate, c.truncate) << c.sql;
  }
}

TEST(LintParseTest, RejectsWhatPostgresWouldNotParse) {
  absl::StatusOr<internal::StatementFacts> facts = internal::ParseStatement("ALTER TABEL t");
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(facts.status().message().find("syntax error"), absl::string_view::npos)
      << facts.status();
}

LintReport SampleReport() {
  LintReport report;
  Finding f;
  f.rule = "table-rewrite";
  f.severity = Severity::kError;
  f.revision = "a1";
  f.file = "migrations/a, b.yaml";
  f.line = 7;
  f.statement = "ALTER TABLE ... ADD COLUMN";
  f.message = "rewrites \"t\"";
  f.observed = "AccessExclusiveLock held on t";
  report.findings.push_back(f);
  f.rule = "rename";
  f.severity = Severity::kWarning;
  f.allowed = true;
  f.allow_reason = "nothing reads it: 100%";
  f.observed.clear();
  report.findings.push_back(f);
  report.revisions_linted = 1;
  report.statements = 2;
  report.errors = 1;
  return report;
}

TEST(LintFormatTest, Text) {
  EXPECT_EQ(FormatText(SampleReport()),
            "migrations/a, b.yaml:7: error table-rewrite a1: rewrites \"t\" (observed: "
            "AccessExclusiveLock held on t)\n"
            "migrations/a, b.yaml:7: warning rename a1: rewrites \"t\" [allowed: nothing reads "
            "it: 100%]\n"
            "1 revision, 2 statements: 1 error, 0 warnings\n");
}

TEST(LintFormatTest, JsonOneObjectPerFinding) {
  EXPECT_EQ(FormatJson(SampleReport()),
            "{\"file\":\"migrations/a, b.yaml\",\"line\":7,\"severity\":\"error\",\"rule\":"
            "\"table-rewrite\",\"revision\":\"a1\",\"statement\":\"ALTER TABLE ... ADD COLUMN\","
            "\"message\":\"rewrites \\\"t\\\"\",\"observed\":\"AccessExclusiveLock held on t\","
            "\"allowed\":false}\n"
            "{\"file\":\"migrations/a, b.yaml\",\"line\":7,\"severity\":\"warning\",\"rule\":"
            "\"rename\",\"revision\":\"a1\",\"statement\":\"ALTER TABLE ... ADD COLUMN\","
            "\"message\":\"rewrites \\\"t\\\"\",\"observed\":\"\",\"allowed\":true,"
            "\"allow_reason\":\"nothing reads it: 100%\"}\n");
}

TEST(LintFormatTest, GithubAnnotationsEscapeProperties) {
  EXPECT_EQ(FormatGithub(SampleReport()),
            "::error file=migrations/a%2C b.yaml,line=7,title=sluice lint table-rewrite::a1: "
            "rewrites \"t\" (observed: AccessExclusiveLock held on t)\n"
            "::notice file=migrations/a%2C b.yaml,line=7,title=sluice lint rename::a1: rewrites "
            "\"t\" [allowed: nothing reads it: 100%25]\n");
}

}  // namespace
}  // namespace sluice::lint
