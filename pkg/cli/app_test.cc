#include "pkg/cli/app.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/base/log.h"
#include "pkg/failure/failure.h"

namespace sluice::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A branched and merged history: a -> b -> d (merge of b, c), a -> c (label "feature").
constexpr char kBranchedManifests[] = R"(revision: a
down_revision: null
description: first
upgrade: CREATE TABLE a (id int);
downgrade: DROP TABLE a;
---
revision: b
down_revision: a
description: second
upgrade: CREATE TABLE b (id int);
downgrade: DROP TABLE b;
---
revision: c
down_revision: a
branch_labels: [feature]
description: side
upgrade: CREATE TABLE c (id int);
downgrade: DROP TABLE c;
---
revision: d
down_revision: [b, c]
description: merge
upgrade: ""
downgrade: ""
)";

class AppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice_app_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    log::SetSinkForTest(&log_);
  }
  void TearDown() override {
    log::SetSinkForTest(nullptr);
    std::filesystem::remove_all(dir_);
  }

  void WriteManifest(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }

  int RunSluice(std::vector<std::string> args) {
    out_.str("");
    args.push_back("--migrations=" + dir_.string());
    return cli::Run(args, out_,
                    [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
  }

  std::filesystem::path dir_;
  std::ostringstream out_;
  std::ostringstream log_;
};

TEST_F(AppTest, HistoryListsNewestFirstWithAlembicMarkers) {
  WriteManifest("all.yaml", kBranchedManifests);
  ASSERT_EQ(RunSluice({"history"}), failure::kExitOk) << log_.str();
  EXPECT_EQ(out_.str(),
            "b, c -> d (head) (mergepoint), merge\n"
            "a -> c (feature), side\n"
            "a -> b, second\n"
            "<base> -> a (branchpoint), first\n");
}

TEST_F(AppTest, HistoryVerboseShowsChecksumsAndPaths) {
  WriteManifest("all.yaml", kBranchedManifests);
  ASSERT_EQ(RunSluice({"history", "-v"}), failure::kExitOk) << log_.str();
  EXPECT_THAT(out_.str(), HasSubstr("Rev: d (head) (mergepoint)\nMerges: b, c\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Checksum: sha256:"));
  EXPECT_THAT(out_.str(), HasSubstr("all.yaml:1\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Branches into: b, c\n"));
}

TEST_F(AppTest, LintChecksItsArgumentsBeforeAnyDatabase) {
  WriteManifest("all.yaml", kBranchedManifests);
  EXPECT_EQ(RunSluice({"lint"}), failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("lint needs --dev-url (or SLUICE_DEV_URL)"));
  EXPECT_EQ(RunSluice({"lint", "zzz:head", "--dev-url", "host=127.0.0.1 port=1"}),
            failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("lint FROM: "));
  // A range with nothing in it needs no dev server at all.
  ASSERT_EQ(RunSluice({"lint", "d:d", "--dev-url", "host=127.0.0.1 port=1"}), failure::kExitOk)
      << log_.str();
  EXPECT_EQ(out_.str(), "nothing to lint: no revisions in the range\n");
  ASSERT_EQ(RunSluice({"lint", "--help"}), failure::kExitOk);
  EXPECT_THAT(out_.str(), AllOf(HasSubstr("Usage: sluice lint [[FROM:]TO] --dev-url URL"),
                                HasSubstr("--warnings-as-errors")));
}

TEST_F(AppTest, HeadsBranchesAndShow) {
  WriteManifest("all.yaml", kBranchedManifests);
  ASSERT_EQ(RunSluice({"heads"}), failure::kExitOk) << log_.str();
  EXPECT_EQ(out_.str(), "d (head)\n");
  ASSERT_EQ(RunSluice({"branches"}), failure::kExitOk) << log_.str();
  EXPECT_EQ(out_.str(), "a (branchpoint)\n  -> b\n  -> c (feature)\n\n");
  ASSERT_EQ(RunSluice({"show", "c"}), failure::kExitOk) << log_.str();
  EXPECT_THAT(out_.str(), HasSubstr("Rev: c\nParent: a\nBranch names: feature\n"));
  EXPECT_EQ(RunSluice({"show", "zzz"}), failure::kExitUsage);
}

TEST_F(AppTest, ValidateChecksHeadsAndManifests) {
  WriteManifest("a.yaml", "revision: a\nupgrade: SELECT 1;\n");
  WriteManifest("b.yaml", "revision: b\nupgrade: SELECT 1;\n");
  EXPECT_EQ(RunSluice({"validate"}), failure::kExitOk) << log_.str();
  EXPECT_EQ(out_.str(), "OK: 2 revisions, heads a, b\n");
  EXPECT_EQ(RunSluice({"validate", "--single-head"}), failure::kExitInvalidManifests);
  EXPECT_THAT(log_.str(), HasSubstr("2 heads (a, b)"));

  WriteManifest("c.yaml", "revision: c\ndown_revision: nowhere\nupgrade: SELECT 1;\n");
  EXPECT_EQ(RunSluice({"validate"}), failure::kExitInvalidManifests);
  EXPECT_THAT(log_.str(), HasSubstr("c.yaml"));
  EXPECT_THAT(log_.str(), HasSubstr("nowhere"));
}

TEST_F(AppTest, UpgradeSqlPrintsTheWholeScriptFromBase) {
  WriteManifest("all.yaml", kBranchedManifests);
  ASSERT_EQ(RunSluice({"upgrade", "--sql", "head"}), failure::kExitOk) << log_.str();
  const std::string script = out_.str();
  EXPECT_THAT(script, HasSubstr("CREATE TABLE IF NOT EXISTS \"public\".\"alembic_version\""));
  EXPECT_THAT(script, HasSubstr("BEGIN;\n\nCREATE TABLE a (id int);\n\nINSERT INTO "
                                "\"public\".\"alembic_version\" (version_num) VALUES ('a');"));
  EXPECT_THAT(script, HasSubstr("-- Running upgrade b, c -> d, merge"));
  EXPECT_THAT(script, HasSubstr("DELETE FROM \"public\".\"alembic_version\""));
}

TEST_F(AppTest, UpgradeSqlFromARevisionSkipsTableCreation) {
  WriteManifest("all.yaml", kBranchedManifests);
  ASSERT_EQ(RunSluice({"upgrade", "--sql", "b:d"}), failure::kExitOk) << log_.str();
  EXPECT_THAT(out_.str(), Not(HasSubstr("CREATE TABLE IF NOT EXISTS")));
  EXPECT_THAT(out_.str(), Not(HasSubstr("CREATE TABLE b")));
  EXPECT_THAT(out_.str(), HasSubstr("CREATE TABLE c"));
}

TEST_F(AppTest, DowngradeSqlNeedsARange) {
  WriteManifest("all.yaml", kBranchedManifests);
  EXPECT_EQ(RunSluice({"downgrade", "--sql", "base"}), failure::kExitUsage);
  ASSERT_EQ(RunSluice({"downgrade", "--sql", "d:base"}), failure::kExitOk) << log_.str();
  EXPECT_THAT(out_.str(), HasSubstr("DROP TABLE a;"));
  EXPECT_LT(out_.str().find("DROP TABLE b;"), out_.str().find("DROP TABLE a;"));
}

TEST_F(AppTest, UsageErrorsAndHelp) {
  EXPECT_EQ(RunSluice({"frobnicate"}), failure::kExitUsage);
  EXPECT_EQ(RunSluice({"history", "--no-such-flag"}), failure::kExitUsage);
  EXPECT_EQ(RunSluice({"show"}), failure::kExitUsage);
  for (const char* command :
       {"upgrade", "downgrade", "history", "heads", "branches", "show", "validate", "version"}) {
    ASSERT_EQ(RunSluice({command, "--help"}), failure::kExitOk) << command;
    EXPECT_THAT(out_.str(), HasSubstr(std::string("Usage: sluice ") + command)) << command;
    EXPECT_THAT(out_.str(), HasSubstr("--migrations VALUE")) << command;
  }
  ASSERT_EQ(RunSluice({"--help"}), failure::kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Commands:"));
}

TEST_F(AppTest, LockCommandUsage) {
  EXPECT_EQ(RunSluice({"lock"}), failure::kExitUsage);
  EXPECT_EQ(RunSluice({"lock", "steal"}), failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("lock takes `status`"));
  EXPECT_EQ(RunSluice({"lock", "release"}), failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("needs --force"));
  ASSERT_EQ(RunSluice({"lock", "--help"}), failure::kExitOk);
  EXPECT_THAT(out_.str(), AllOf(HasSubstr("Usage: sluice lock status | lock release --force"),
                                HasSubstr("--force"), HasSubstr("--lock-mode VALUE"),
                                HasSubstr("--lock-database-url VALUE")));
  ASSERT_EQ(RunSluice({"upgrade", "--help"}), failure::kExitOk);
  EXPECT_THAT(out_.str(), AllOf(HasSubstr("--lock-mode VALUE"), HasSubstr("--lease-ttl DURATION"),
                                HasSubstr("--lock-database-url-file VALUE")));
}

TEST_F(AppTest, ImportCommandUsage) {
  EXPECT_EQ(RunSluice({"import"}), failure::kExitUsage);
  EXPECT_EQ(RunSluice({"import", "flyway", "--config", "x.ini"}), failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("import knows `alembic` only (not \"flyway\")"));
  EXPECT_EQ(RunSluice({"import", "alembic"}), failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("import alembic needs --config PATH/alembic.ini"));
  EXPECT_EQ(RunSluice({"import", "alembic", "--config", (dir_ / "none.ini").string()}),
            failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("none.ini: no such file"));
  ASSERT_EQ(RunSluice({"import", "--help"}), failure::kExitOk);
  EXPECT_THAT(out_.str(),
              AllOf(HasSubstr("Usage: sluice import alembic --config PATH/alembic.ini"),
                    HasSubstr("--config VALUE"), HasSubstr("--out VALUE"),
                    HasSubstr("--python VALUE"), HasSubstr("replace the manifests in --out")));
  ASSERT_EQ(RunSluice({"--help"}), failure::kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("import     convert an Alembic project"));
}

TEST_F(AppTest, VersionFlagIsTheVersionCommand) {
  ASSERT_EQ(RunSluice({"version"}), failure::kExitOk) << log_.str();
  const std::string version = out_.str();
  EXPECT_THAT(version, StartsWith("sluice "));
  ASSERT_EQ(RunSluice({"--version"}), failure::kExitOk) << log_.str();
  EXPECT_EQ(out_.str(), version);
  EXPECT_THAT(log_.str(), Not(HasSubstr("unknown flag")));
}

TEST_F(AppTest, ShortAndLongHelpWithoutCommandPrintTheCommands) {
  for (const char* flag : {"-h", "--help"}) {
    ASSERT_EQ(RunSluice({flag}), failure::kExitOk) << flag << log_.str();
    EXPECT_THAT(out_.str(), AllOf(HasSubstr("Usage: sluice COMMAND"), HasSubstr("Commands:"),
                                  HasSubstr("--version")))
        << flag;
  }
  ASSERT_EQ(RunSluice({"-h", "upgrade"}), failure::kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Usage: sluice upgrade"));
}

TEST_F(AppTest, InvalidManifestsExitFour) {
  WriteManifest("bad.yaml", "revision: [not, a, string]\nupgrade: x\n");
  EXPECT_EQ(RunSluice({"history"}), failure::kExitInvalidManifests);
  EXPECT_THAT(log_.str(), HasSubstr("bad.yaml:1"));
}

}  // namespace
}  // namespace sluice::cli
