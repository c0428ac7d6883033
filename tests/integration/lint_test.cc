// `sluice lint` against a real PostgreSQL: the corpus of risky and safe revisions
// (tests/testdata/lint/corpus, with the findings each must give), the scratch database's life
// (gone after success, failure and SIGTERM; two lints at once), a role without CREATEDB, the
// reference schema, the output formats, `lint_allow`, and `upgrade --lint`.
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/migrate_test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::filesystem::path kCorpus =
    std::filesystem::path(SLUICE_SOURCE_DIR) / "tests/testdata/lint/corpus";

RevisionSpec Rev(std::string id, std::vector<std::string> parents, std::string upgrade,
                 std::string extra = "") {
  RevisionSpec spec;
  spec.id = std::move(id);
  spec.parents = std::move(parents);
  spec.upgrade = std::move(upgrade);
  spec.extra = std::move(extra);
  return spec;
}

class LintTest : public MigrateTest {
 protected:
  // The admin DSN of the test server: lint's dev server.
  static std::string DevUrl() {
    const char* dsn = std::getenv(kTestPgDsnVariable);
    return dsn == nullptr ? std::string() : std::string(dsn);
  }

  void CopyCorpus() {
    for (const auto& entry : std::filesystem::directory_iterator(kCorpus)) {
      if (entry.path().extension() == ".yaml") {
        std::filesystem::copy_file(entry.path(), manifests_ / entry.path().filename());
      }
    }
  }

  // Returns the scratch database a lint's log named ("" when none).
  static std::string ScratchDatabase(const std::string& err) {
    static const std::string kCreated = "scratch database created database=";
    const size_t at = err.find(kCreated);
    if (at == std::string::npos) return "";
    const size_t start = at + kCreated.size();
    const size_t end = err.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_", start);
    return err.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }

  // Returns the string value of `"key":"..."` in one line of --format json ("" when absent). The
  // values read here (rule ids, revision ids) hold no escapes.
  static std::string JsonString(const std::string& line, const std::string& key) {
    const std::string prefix = "\"" + key + "\":\"";
    const size_t at = line.find(prefix);
    if (at == std::string::npos) return "";
    const size_t start = at + prefix.size();
    return line.substr(start, line.find('"', start) - start);
  }

  bool DatabaseExists(const std::string& name) {
    return Rows("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "1";
  }

  // Returns REVISION -> sorted findings ("rule" or "rule(allowed)") from --format json output.
  static std::map<std::string, std::string> FindingsOf(const std::string& json) {
    std::map<std::string, std::vector<std::string>> rules;
    for (absl::string_view line : absl::StrSplit(json, '\n', absl::SkipEmpty())) {
      const std::string text(line);
      const std::string rule = JsonString(text, "rule");
      const std::string revision = JsonString(text, "revision");
      EXPECT_FALSE(rule.empty() || revision.empty()) << text;
      if (rule.empty() || revision.empty()) continue;
      const bool allowed = text.find("\"allowed\":true") != std::string::npos;
      rules[revision].push_back(rule + (allowed ? "(allowed)" : ""));
    }
    std::map<std::string, std::string> out;
    for (auto& [revision, list] : rules) {
      std::sort(list.begin(), list.end());
      out[revision] = absl::StrJoin(list, " ");
    }
    return out;
  }

  // Returns REVISION -> expected findings from the corpus's expected.txt (clean ones omitted).
  static std::map<std::string, std::string> ExpectedFindings(int* revisions) {
    std::ifstream in(kCorpus / "expected.txt");
    std::map<std::string, std::string> expected;
    std::string line;
    *revisions = 0;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(": ", 1));
      EXPECT_EQ(parts.size(), 2u) << line;
      if (parts.size() != 2) continue;
      ++*revisions;
      if (parts[1] != "-") expected[parts[0]] = parts[1];
    }
    return expected;
  }
};

TEST_F(LintTest, CorpusGivesTheExpectedFindingsAndDropsTheScratchDatabase) {
  CopyCorpus();
  int revisions = 0;
  const std::map<std::string, std::string> expected = ExpectedFindings(&revisions);
  ASSERT_GE(revisions, 40);
  const absl::Time start = absl::Now();
  ProcessResult r = Sluice({"lint", "--dev-url", DevUrl(), "--format", "json"});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(r.exit_code, 8) << Describe(r);
  EXPECT_EQ(FindingsOf(r.out), expected);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("linted=", revisions)));
  // Revisions that failed on the dev server do not stop the lint of the ones after them.
  const std::string scratch = ScratchDatabase(r.err);
  ASSERT_FALSE(scratch.empty()) << r.err;
  EXPECT_FALSE(DatabaseExists(scratch));
  // The test database (--database-url) was only read: nothing was applied there.
  EXPECT_EQ(Rows("SELECT count(*) FROM pg_class WHERE relname = 'rw1'"), "0");
  std::cerr << "lint of " << revisions << " corpus revisions took " << took << "\n";
}

TEST_F(LintTest, TextAndGithubFormatsNameFileLineRuleAndRevision) {
  WriteManifest("001_orders.yaml",
                {Rev("o1", {}, "CREATE TABLE orders (id bigint PRIMARY KEY, total int);\n")});
  WriteManifest("002_risky.yaml",
                {Rev("o2", {"o1"},
                     "-- a comment line\nALTER TABLE orders ADD COLUMN token float8 DEFAULT "
                     "random();\nALTER TABLE orders RENAME COLUMN total TO amount;\n")});
  ProcessResult r = Sluice({"lint", "--dev-url", DevUrl()});
  ASSERT_EQ(r.exit_code, 8) << Describe(r);
  const std::string file = (manifests_ / "002_risky.yaml").string();
  // WriteManifest puts `upgrade: |` on line 4, so SQL line 1 (the comment) is file line 5.
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat(file,
                                            ":6: error table-rewrite o2: ALTER TABLE ... "
                                            "ADD COLUMN rewrites orders")));
  EXPECT_THAT(r.out, HasSubstr("(observed: AccessExclusiveLock held on orders; relfilenode "
                               "changed: orders, orders_pkey)"));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat(file, ":7: warning rename o2: ")));
  EXPECT_THAT(r.out, HasSubstr("2 revisions, 3 statements: 1 error, 1 warning\n"));

  r = Sluice({"lint", "--dev-url", DevUrl(), "--format", "github"});
  ASSERT_EQ(r.exit_code, 8) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("::error file=", file,
                                            ",line=6,title=sluice lint table-rewrite::o2: ")));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("::warning file=", file,
                                            ",line=7,title=sluice lint rename::o2: ")));
}

TEST_F(LintTest, WarningsPassUnlessWarningsAsErrors) {
  WriteManifest("001.yaml", {Rev("w1", {}, "CREATE TABLE t (a int);\n"),
                             Rev("w2", {"w1"}, "ALTER TABLE t RENAME COLUMN a TO b;\n")});
  ProcessResult r = Sluice({"lint", "--dev-url", DevUrl()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("warning rename w2"));
  r = Sluice({"lint", "--dev-url", DevUrl(), "--warnings-as-errors"});
  EXPECT_EQ(r.exit_code, 8) << Describe(r);
}

TEST_F(LintTest, RangeAppliesTheRevisionsBelowItUnobserved) {
  WriteManifest("001.yaml",
                {Rev("g1", {}, "CREATE TABLE t (a int);\n"),
                 Rev("g2", {"g1"}, "ALTER TABLE t ADD COLUMN r float8 DEFAULT random();\n"),
                 Rev("g3", {"g2"}, "ALTER TABLE t RENAME COLUMN a TO b;\n")});
  // g2 is below the range: applied, not reported; g3 is linted with t existing.
  ProcessResult r = Sluice({"lint", "g2:g3", "--dev-url", DevUrl()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, Not(HasSubstr("table-rewrite")));
  EXPECT_THAT(r.out, HasSubstr("warning rename g3"));
  EXPECT_THAT(r.out, HasSubstr("1 revision, 1 statement: 0 errors, 1 warning"));
  EXPECT_THAT(r.err, HasSubstr("applied_first=2 linted=1"));

  // Without a range, the revisions pending on --database-url: the test database is at g2.
  ASSERT_EQ(Sluice({"upgrade", "g2"}).exit_code, 0);
  r = Sluice({"lint", "--dev-url", DevUrl()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("applied_first=2 linted=1"));
  EXPECT_THAT(r.out, HasSubstr("warning rename g3"));
}

TEST_F(LintTest, AFailedRevisionIsAFindingAndTheScratchDatabaseIsDropped) {
  WriteManifest("001.yaml",
                {Rev("f1", {}, "CREATE TABLE t (a int);\n"),
                 Rev("f2", {"f1"}, "ALTER TABLE t ADD COLUMN b int;\nSELECT 1 / 0;\n")});
  ProcessResult r = Sluice({"lint", "--dev-url", DevUrl()});
  ASSERT_EQ(r.exit_code, 8) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("error revision-failed f2: SELECT fails on the dev server"));
  EXPECT_THAT(r.out, HasSubstr("(observed: PostgreSQL: division by zero (SQLSTATE 22012))"));
  const std::string scratch = ScratchDatabase(r.err);
  ASSERT_FALSE(scratch.empty()) << r.err;
  EXPECT_FALSE(DatabaseExists(scratch));
}

TEST_F(LintTest, SigtermAndSigintDropTheScratchDatabase) {
  WriteManifest("001.yaml", {Rev("s1", {}, "CREATE TABLE t (a int);\n"),
                             Rev("s2", {"s1"}, "SELECT pg_sleep(60);\n")});
  for (const auto& [signal, name] : {std::pair<int, std::string>{SIGTERM, "SIGTERM"},
                                     std::pair<int, std::string>{SIGINT, "SIGINT"}}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Process> lint = StartSluice({"lint", "--dev-url", DevUrl()});
    std::string scratch;
    // Signalled in the middle of a statement of the revision being observed.
    ASSERT_TRUE(WaitUntil(
        [&] {
          scratch = ScratchDatabase(lint->ErrorsSoFar());
          return !scratch.empty() &&
                 Rows("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + scratch +
                      "' AND query LIKE 'SELECT pg_sleep%'") == "1";
        },
        absl::Seconds(20)))
        << lint->ErrorsSoFar();
    EXPECT_TRUE(DatabaseExists(scratch));
    lint->Kill(signal);
    ProcessResult r = lint->Wait(absl::Seconds(30));
    EXPECT_EQ(r.exit_code, 143) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("interrupted (SIGTERM or SIGINT)"));
    EXPECT_FALSE(DatabaseExists(scratch));
    EXPECT_EQ(Rows("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + scratch + "'"), "0");
  }
}

TEST_F(LintTest, TwoLintsAtOnceDoNotCollide) {
  CopyCorpus();
  int revisions = 0;
  const std::map<std::string, std::string> expected = ExpectedFindings(&revisions);
  std::unique_ptr<Process> first = StartSluice({"lint", "--dev-url", DevUrl(), "--format", "json"});
  std::unique_ptr<Process> second =
      StartSluice({"lint", "--dev-url", DevUrl(), "--format", "json"});
  ProcessResult a = first->Wait(absl::Seconds(120));
  ProcessResult b = second->Wait(absl::Seconds(120));
  ASSERT_EQ(a.exit_code, 8) << Describe(a);
  ASSERT_EQ(b.exit_code, 8) << Describe(b);
  EXPECT_EQ(FindingsOf(a.out), expected);
  EXPECT_EQ(FindingsOf(b.out), expected);
  EXPECT_NE(ScratchDatabase(a.err), ScratchDatabase(b.err));
  EXPECT_FALSE(DatabaseExists(ScratchDatabase(a.err)));
  EXPECT_FALSE(DatabaseExists(ScratchDatabase(b.err)));
}

TEST_F(LintTest, ARoleWithoutCreatedbGetsAClearError) {
  const std::string role = absl::StrCat("lint_nocreatedb_", getpid());
  Rows("DROP ROLE IF EXISTS " + role);
  Rows("CREATE ROLE " + role + " LOGIN NOCREATEDB");
  WriteManifest("001.yaml", {Rev("n1", {}, "CREATE TABLE t (a int);\n")});
  ProcessResult r =
      Sluice({"lint", "--dev-url",
              absl::StrCat("host=", host(), " port=", port(), " dbname=postgres user=", role)});
  Rows("DROP ROLE " + role);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--dev-url: the role cannot create databases"));
  EXPECT_THAT(r.err, HasSubstr("ALTER ROLE <role> CREATEDB"));
}

TEST_F(LintTest, DevUrlIsRequired) {
  WriteManifest("001.yaml", {Rev("d1", {}, "CREATE TABLE t (a int);\n")});
  ProcessResult r = Sluice({"lint"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("lint needs --dev-url"));
}

TEST_F(LintTest, ReferenceMigrationsLintClean) {
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(SLUICE_SOURCE_DIR) / "migrations")) {
    std::filesystem::copy_file(entry.path(), manifests_ / entry.path().filename());
  }
  ProcessResult r = Sluice({"lint", "--dev-url", DevUrl()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(": 0 errors, 0 warnings\n"));
}

TEST_F(LintTest, LintAllowNeedsAKnownRuleAndAReason) {
  WriteManifest("001.yaml",
                {Rev("a1", {}, "CREATE TABLE t (a int);\n", "lint_allow:\n  data-los: x\n")});
  ProcessResult r = Sluice({"validate"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("001.yaml:"));
  EXPECT_THAT(r.err,
              HasSubstr("001.yaml:5:3: unknown lint rule `data-los` in `lint_allow` (did you mean "
                        "`data-loss`?)"));
  WriteManifest("001.yaml",
                {Rev("a1", {}, "CREATE TABLE t (a int);\n", "lint_allow:\n  rename:\n")});
  r = Sluice({"validate"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("001.yaml:5:3: `lint_allow` entry `rename` needs a reason"));
}

TEST_F(LintTest, UpgradeWithLintRefusesOnErrorsAndAppliesWhenClean) {
  WriteManifest("001.yaml", {Rev("u1", {}, "CREATE TABLE t (a int);\n"),
                             Rev("u2", {"u1"}, "ALTER TABLE t ALTER COLUMN a TYPE bigint;\n")});
  ASSERT_EQ(Sluice({"upgrade", "u1"}).exit_code, 0);
  ProcessResult r = Sluice({"upgrade", "head", "--lint", "--dev-url", DevUrl()});
  EXPECT_EQ(r.exit_code, 8) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("error table-rewrite u2"));
  EXPECT_THAT(r.err, HasSubstr("upgrade --lint: the lint failed; nothing was applied"));
  EXPECT_EQ(Versions(), "u1");

  WriteManifest("001.yaml", {Rev("u1", {}, "CREATE TABLE t (a int);\n"),
                             Rev("u2", {"u1"}, "ALTER TABLE t ADD COLUMN b int;\n")});
  r = Sluice({"upgrade", "head", "--lint", "--dev-url", DevUrl()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("info access-exclusive u2"));
  EXPECT_THAT(r.out, HasSubstr("upgraded u1 -> u2 (1 revision)"));
  EXPECT_EQ(Versions(), "u2");
}

}  // namespace
}  // namespace sluice::testing
