// ImportAlembic with a stand-in for Python: a shell script that prints a canned helper answer (or
// fails as the helper would), so the C++ half is tested without Python or Alembic.
// tests/integration/import_alembic_test.cc runs the real helper.
#include "pkg/alembic_import/alembic_import.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/alembic_import/helper_protocol.h"
#include "pkg/failure/failure.h"
#include "tests/support/status_matchers.h"

namespace sluice::alembic_import {
namespace {

namespace fs = std::filesystem;
using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Field(absl::string_view name, absl::string_view value) {
  return absl::StrCat(name, " ", value.size(), "\n", value, "\n");
}

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

class FakePythonImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("sluice_alembic_import_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "project");
    std::ofstream(dir_ / "project" / "alembic.ini") << "[alembic]\nscript_location = alembic\n";
    options_.config = (dir_ / "project" / "alembic.ini").string();
    options_.out_dir = (dir_ / "out").string();
    options_.python = (dir_ / "python").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Makes the stand-in Python print `answer` to stdout and `error` to stderr, then exit with
  // `status`; it also records its working directory and arguments.
  void FakePython(const std::string& answer, int status = 0, const std::string& error = "") {
    std::ofstream(dir_ / "answer") << answer;
    std::ofstream(dir_ / "error") << error;
    std::ofstream(dir_ / "python")
        << "#!/bin/sh\npwd > '" << (dir_ / "cwd").string() << "'\nprintf '%s\\n' \"$2\" \"$3\" > '"
        << (dir_ / "args").string() << "'\ncat '" << (dir_ / "answer").string() << "'\ncat '"
        << (dir_ / "error").string() << "' >&2\nexit " << status << "\n";
    chmod((dir_ / "python").c_str(), 0755);
  }

  fs::path dir_;
  ImportOptions options_;
};

TEST_F(FakePythonImportTest, WritesWhatTheHelperRenderedInRevisionOrder) {
  FakePython(
      absl::StrCat(kHelperProtocol, "\n", Field("alembic_version", "1.8.1"),
                   // The child comes first in the answer; the files follow the graph.
                   Field("revision", "b2"), Field("down_revision", "a1"),
                   Field("description", "Index it"), Field("script", "alembic/versions/b2.py"),
                   Field("upgrade_sql", "\nCREATE INDEX CONCURRENTLY i ON t (x);\n\n"),
                   Field("autocommit_block", "upgrade"),
                   Field("downgrade_sql", "DROP INDEX CONCURRENTLY i;\n\n"),
                   Field("autocommit_block", "downgrade"), Field("version_table", "app_versions"),
                   Field("revision", "a1"), Field("description", "Does nothing"),
                   Field("script", "alembic/versions/a1.py"), Field("upgrade_sql", "\n"),
                   Field("downgrade_irreversible", ""), Field("end", "")));
  absl::StatusOr<ImportResult> result = ImportAlembic(options_);
  ASSERT_TRUE(result.ok()) << result.status();

  // Python ran in the ini's directory, with the helper's text and the absolute ini.
  EXPECT_EQ(ReadFile(dir_ / "cwd"), (dir_ / "project").string() + "\n");
  EXPECT_THAT(ReadFile(dir_ / "args"),
              AllOf(HasSubstr("sluice-alembic-import"), HasSubstr(options_.config)));

  ASSERT_EQ(result->revisions.size(), 2u);
  EXPECT_EQ(result->revisions[0].revision, "a1");
  EXPECT_TRUE(result->revisions[0].irreversible);
  EXPECT_FALSE(result->revisions[1].transactional);
  EXPECT_EQ(result->UnconvertedCount(), 0u);
  const fs::path first = dir_ / "out" / "0001_a1_does_nothing.yaml";
  const fs::path second = dir_ / "out" / "0002_b2_index_it.yaml";
  EXPECT_EQ(result->revisions[0].file, first.string());
  EXPECT_EQ(ReadFile(first),
            "# Imported by `sluice import alembic` (Alembic 1.8.1) from alembic/versions/a1.py.\n"
            "revision: a1\ndown_revision: null\ndescription: Does nothing\nbranch_labels: []\n"
            "depends_on: []\nx-alembic-script: alembic/versions/a1.py\n"
            "upgrade: |\n  -- Alembic's upgrade() of this revision emits no SQL.\n");
  EXPECT_THAT(ReadFile(second),
              AllOf(HasSubstr("\ntransactional: false\n"),
                    HasSubstr("\nupgrade: |\n  CREATE INDEX CONCURRENTLY i ON t (x);\n"
                              "downgrade: |\n  DROP INDEX CONCURRENTLY i;\n")));
  EXPECT_THAT(DescribeImport(*result),
              AllOf(HasSubstr("imported 2 revisions (Alembic 1.8.1) into "),
                    HasSubstr("0001_a1_does_nothing.yaml <- alembic/versions/a1.py  [no downgrade"),
                    HasSubstr("[transactional: false (autocommit_block)]"),
                    HasSubstr("run sluice with --version-table app_versions"),
                    Not(HasSubstr("written by hand"))));
}

TEST_F(FakePythonImportTest, RefusesANonEmptyOutputDirectoryBeforeRunningPython) {
  FakePython("");
  fs::create_directories(dir_ / "out");
  std::ofstream(dir_ / "out" / "notes.txt") << "mine\n";
  absl::Status status = ImportAlembic(options_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, "pass --force"));
  EXPECT_EQ(failure::ExitCodeFor(status), failure::kExitUsage);
  EXPECT_FALSE(fs::exists(dir_ / "cwd"));  // Python never ran
}

TEST_F(FakePythonImportTest, RefusesToWriteIntoTheAlembicProjectItself) {
  FakePython(absl::StrCat(kHelperProtocol, "\n", Field("alembic_version", "1.8.1"),
                          Field("revision", "a1"), Field("script", "migrations/versions/a1.py"),
                          Field("upgrade_sql", "SELECT 1;\n"), Field("end", "")));
  fs::create_directories(dir_ / "project" / "migrations" / "versions");
  options_.force = true;
  for (const char* out : {"migrations", "migrations/versions"}) {
    options_.out_dir = (dir_ / "project" / out).string();
    absl::Status status = ImportAlembic(options_).status();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 "is the Alembic project's own directory (it holds "
                                 "migrations/versions/a1.py or its env.py)"))
        << out;
    EXPECT_EQ(failure::ExitCodeFor(status), failure::kExitUsage);
  }
  options_.out_dir = (dir_ / "project").string();
  EXPECT_THAT(ImportAlembic(options_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "is the directory of the Alembic project's alembic.ini"));
  EXPECT_TRUE(fs::is_empty(dir_ / "project" / "migrations" / "versions"));
}

TEST_F(FakePythonImportTest, MapsTheHelpersFailuresToTheirCauses) {
  FakePython("", 3, "cannot import alembic in /usr/bin/python3: ModuleNotFoundError: x\n");
  absl::Status status = ImportAlembic(options_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               "ModuleNotFoundError: x; install Alembic for it"));
  EXPECT_EQ(failure::ExitCodeFor(status), failure::kExitUsage);

  FakePython("", 4, "cannot read the Alembic project of a.ini: KeyError: 'x'\n");
  status = ImportAlembic(options_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               "cannot import the Alembic project: cannot read the Alembic "
                               "project of a.ini: KeyError: 'x'"));
  EXPECT_EQ(failure::ExitCodeFor(status), failure::kExitInvalidManifests);

  FakePython("half an answer", 1, "Traceback (most recent call last):\nBoom\n");
  EXPECT_THAT(ImportAlembic(options_).status(),
              StatusIs(absl::StatusCode::kInternal, "failed with exit status 1: Traceback"));

  FakePython("not the protocol\n");
  EXPECT_THAT(ImportAlembic(options_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "does not start with"));
  EXPECT_FALSE(fs::exists(dir_ / "out"));  // nothing written on any failure
}

TEST_F(FakePythonImportTest, RefusesRevisionIdsThatDoNotFitTheVersionTable) {
  const std::string long_id(33, 'a');
  FakePython(absl::StrCat(kHelperProtocol, "\n", Field("alembic_version", "1.8.1"),
                          Field("revision", long_id), Field("script", "alembic/versions/x.py"),
                          Field("upgrade_sql", "SELECT 1;"), Field("end", "")));
  absl::Status status = ImportAlembic(options_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               "alembic/versions/x.py: revision id \"" + long_id));
  EXPECT_EQ(failure::ExitCodeFor(status), failure::kExitInvalidManifests);
}

TEST_F(FakePythonImportTest, MarksUnconvertedRevisionsAndListsWhy) {
  FakePython(absl::StrCat(kHelperProtocol, "\n", Field("alembic_version", "1.8.1"),
                          Field("revision", "c3"), Field("description", "Backfill"),
                          Field("script", "alembic/versions/c3.py"),
                          Field("upgrade_sql", "SELECT id FROM t;\n"),
                          Field("upgrade_problem", "it uses the database connection"),
                          Field("downgrade_sql", ""), Field("end", "")));
  absl::StatusOr<ImportResult> result = ImportAlembic(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->UnconvertedCount(), 1u);
  EXPECT_THAT(result->revisions[0].problems,
              ElementsAre("upgrade: it uses the database connection"));
  EXPECT_THAT(ReadFile(dir_ / "out" / "0001_c3_backfill.yaml"),
              HasSubstr("\nunconverted: \"sluice import alembic could not convert "
                        "alembic/versions/c3.py: upgrade: it uses the database connection\"\n"
                        "revision: c3\n"));
  EXPECT_THAT(DescribeImport(*result),
              AllOf(HasSubstr("1 revision needs its SQL written by hand"), HasSubstr("  c3 ("),
                    HasSubstr("    upgrade: it uses the database connection")));
}

}  // namespace
}  // namespace sluice::alembic_import
