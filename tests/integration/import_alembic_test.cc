// `sluice import alembic` against Debian's python3-alembic and a real PostgreSQL: the Alembic
// project under tests/testdata/alembic_project (the seed's fc0e7b400c13, a branch, a depends_on, a
// merge, an enum with a bulk insert, an autocommit block) is imported, then applied by sluice and
// by `alembic upgrade head` to two databases whose schemas and version rows must agree, up and
// down. Python runs six times in the whole suite: the import is shared.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/migrate_test_support.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Debian's python3-alembic lives in /usr/bin/python3's dist-packages; a `python3` earlier on PATH
// (pyenv, a virtualenv) may not have it, so the tests name the interpreter.
constexpr char kPython[] = "/usr/bin/python3";
constexpr char kPgDump[] = "/usr/lib/postgresql/15/bin/pg_dump";
constexpr char kHead[] = "f1a2b3c4d5e6";

std::string ProjectDir() { return SLUICE_SOURCE_DIR "/tests/testdata/alembic_project"; }
std::string MainConfig() { return ProjectDir() + "/alembic.ini"; }
std::string PythonOnlyConfig() { return ProjectDir() + "/python_only.ini"; }

ProcessResult Import(const std::string& config, const fs::path& out,
                     std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {SluiceBinary(), "import",     "alembic",  "--config", config,
                                   "--out",        out.string(), "--python", kPython};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunProcess(argv);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Returns the names of the files in `dir`, sorted.
std::vector<std::string> FileNames(const fs::path& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ImportAlembicTest : public MigrateTest {
 protected:
  // Returns the import of alembic.ini that most tests apply, made once per process (ctest runs
  // each test in a process of its own, so only the tests that use it pay for it); null, with the
  // import's output in import_result_, when it failed.
  static const fs::path* Imported() {
    if (imported_ == nullptr) {
      imported_ = new fs::path(fs::temp_directory_path() /
                               absl::StrCat("sluice-import-alembic-", getpid()));
      fs::remove_all(*imported_);
      import_result_ = new ProcessResult(Import(MainConfig(), *imported_));
    }
    return import_result_->exit_code == 0 ? imported_ : nullptr;
  }
  static void TearDownTestSuite() {
    if (imported_ == nullptr) return;
    fs::remove_all(*imported_);
    delete imported_;
    delete import_result_;
    imported_ = nullptr;
  }

  void TearDown() override {
    for (const std::string& name : extra_databases_) {
      Query(absl::StrCat("DROP DATABASE IF EXISTS \"", name, "\" WITH (FORCE)"));
    }
    MigrateTest::TearDown();
  }

  // Creates another empty database beside the test's; returns its libpq DSN.
  std::string NewDatabase(const std::string& suffix) {
    const std::string name = absl::StrCat(database(), "_", suffix);
    Query(absl::StrCat("CREATE DATABASE \"", name, "\""));
    extra_databases_.push_back(name);
    return DsnOf(name);
  }
  std::string DsnOf(const std::string& name) const {
    return absl::StrCat(dsn(), " dbname='", name, "'");
  }
  std::string AlembicUrl(const std::string& name) const {
    std::string url = UrlFor("postgresql+psycopg2");
    url.replace(url.rfind("/" + database()), database().size() + 1, "/" + name);
    return url;
  }

  // Runs sluice on `migrations` against the database of `database_dsn`.
  ProcessResult SluiceOn(const std::string& database_dsn, const fs::path& migrations,
                         std::vector<std::string> args) {
    args.insert(args.begin(), SluiceBinary());
    args.push_back("--migrations=" + migrations.string());
    args.push_back("--database-url=" + database_dsn);
    return RunProcess(args);
  }
  // Runs `alembic -c alembic.ini ARGS` online against the database `name`, from the project's
  // directory as a developer would.
  ProcessResult Alembic(const std::string& name, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/bin/sh",    "-c",    "cd \"$0\" && exec \"$@\"",
                                     ProjectDir(), kPython, "-m",
                                     "alembic",    "-c",    MainConfig()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {{"DATABASE_URL", AlembicUrl(name)}});
  }

  // Returns the schema of database `name` as pg_dump prints it, without sluice's history table
  // and without pg_dump's per-run \restrict key.
  std::string Schema(const std::string& name) {
    ProcessResult dump = RunProcess(
        {kPgDump, "--schema-only", "--exclude-table=sluice_history*", "-d", DsnOf(name)});
    EXPECT_EQ(dump.exit_code, 0) << Describe(dump);
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(dump.out, '\n')) {
      if (absl::StartsWith(line, "\\restrict") || absl::StartsWith(line, "\\unrestrict")) continue;
      lines.push_back(std::string(line));
    }
    return absl::StrJoin(lines, "\n");
  }
  std::string VersionRows(const std::string& name) {
    ProcessResult rows =
        RunProcess({"psql", "-X", "-At", "-d", DsnOf(name), "-c",
                    "SELECT coalesce(string_agg(version_num, ',' ORDER BY version_num), '') FROM "
                    "alembic_version"});
    EXPECT_EQ(rows.exit_code, 0) << Describe(rows);
    return std::string(absl::StripTrailingAsciiWhitespace(rows.out));
  }

  static ProcessResult* import_result_;

 private:
  static fs::path* imported_;
  std::vector<std::string> extra_databases_;
};

fs::path* ImportAlembicTest::imported_ = nullptr;
ProcessResult* ImportAlembicTest::import_result_ = nullptr;

TEST_F(ImportAlembicTest, WritesOneManifestPerRevisionInRevisionOrder) {
  const fs::path* imported = Imported();
  ASSERT_NE(imported, nullptr) << Describe(*import_result_);
  EXPECT_THAT(import_result_->out,
              AllOf(HasSubstr("imported 8 revisions (Alembic "),
                    HasSubstr("0008_f1a2b3c4d5e6_index_executions_by_worker_and_time_conc.yaml <- "
                              "alembic/versions/f1a2b3c4d5e6_index_executions_concurrently.py  "
                              "[transactional: false (autocommit_block)]"),
                    Not(HasSubstr("unconverted"))));
  EXPECT_THAT(
      FileNames(*imported),
      ::testing::ElementsAre("0001_fc0e7b400c13_initial_schema_with_executions_and_api_k.yaml",
                             "0002_3a7d2c91e5b0_add_executions_worker.yaml",
                             "0003_5c2e8f14a9d7_add_api_keys_scopes.yaml",
                             "0004_8b41d6e07f23_add_execution_logs.yaml",
                             "0005_9e0f3b5a2c68_add_the_active_api_keys_view.yaml",
                             "0006_b7c9a1d3e5f2_merge_the_keys_and_logs_branches.yaml",
                             "0007_d2e4f6a8b0c1_add_quotas_with_a_period_enum_and_the_de.yaml",
                             "0008_f1a2b3c4d5e6_index_executions_by_worker_and_time_conc.yaml"));
  // The graph's shape survives: labels, depends_on, the merge's parents; no version-table SQL.
  const std::string scopes = ReadFile(*imported / "0003_5c2e8f14a9d7_add_api_keys_scopes.yaml");
  EXPECT_THAT(scopes, AllOf(HasSubstr("\nbranch_labels: [keys]\n"),
                            HasSubstr("\ndescription: Add api_keys.scopes\n")));
  EXPECT_THAT(ReadFile(*imported / "0005_9e0f3b5a2c68_add_the_active_api_keys_view.yaml"),
              HasSubstr("\ndown_revision: 8b41d6e07f23\n"
                        "description: Add the active_api_keys view\n"
                        "branch_labels: []\ndepends_on: [5c2e8f14a9d7]\n"));
  EXPECT_THAT(ReadFile(*imported / "0006_b7c9a1d3e5f2_merge_the_keys_and_logs_branches.yaml"),
              HasSubstr("\ndown_revision: [5c2e8f14a9d7, 9e0f3b5a2c68]\n"));
  for (const std::string& name : FileNames(*imported)) {
    const std::string text = ReadFile(*imported / name);
    EXPECT_THAT(text, AllOf(Not(HasSubstr("alembic_version")), Not(HasSubstr("BEGIN;")),
                            Not(HasSubstr("COMMIT;")), Not(HasSubstr("-- Running"))))
        << name;
  }

  ProcessResult validate = SluiceOn(dsn(), *imported, {"validate", "--single-head"});
  EXPECT_EQ(validate.exit_code, 0) << Describe(validate);
  EXPECT_THAT(validate.out, HasSubstr("OK: 8 revisions, head f1a2b3c4d5e6"));
}

TEST_F(ImportAlembicTest, SluiceAndAlembicBuildTheSameSchemaUpAndDown) {
  const fs::path* imported = Imported();
  ASSERT_NE(imported, nullptr) << Describe(*import_result_);
  const std::string by_alembic = absl::StrCat(database(), "_alembic");
  NewDatabase("alembic");
  const std::string seed = NewDatabase("seed");

  // The imported first revision builds what the seed's own manifest builds.
  ProcessResult r = SluiceOn(dsn(), *imported, {"upgrade", "fc0e7b400c13"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = SluiceOn(seed, SLUICE_SOURCE_DIR "/migrations", {"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Schema(database()), Schema(absl::StrCat(database(), "_seed")));

  r = SluiceOn(dsn(), *imported, {"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("upgraded fc0e7b400c13 -> f1a2b3c4d5e6 (7 revisions)"));
  r = Alembic(by_alembic, {"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string schema = Schema(database());
  EXPECT_THAT(schema, AllOf(HasSubstr("CREATE TYPE public.quota_period AS ENUM"),
                            HasSubstr("CREATE VIEW public.active_api_keys AS"),
                            HasSubstr("ix_executions_worker_created_at"),
                            Not(HasSubstr("sluice_history"))));
  EXPECT_EQ(schema, Schema(by_alembic));
  EXPECT_EQ(VersionRows(database()), kHead);
  EXPECT_EQ(VersionRows(by_alembic), kHead);
  // The database Alembic migrated is at head for sluice too: its alembic_version row stands.
  r = SluiceOn(DsnOf(by_alembic), *imported, {"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("already at head: f1a2b3c4d5e6"));
  // The bulk insert is data, which the schema leaves out.
  EXPECT_EQ(Rows("SELECT string_agg(period || ':' || max_executions, ',' ORDER BY id) FROM quotas"),
            "daily:1000,monthly:20000");

  r = SluiceOn(dsn(), *imported, {"downgrade", "base"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Alembic(by_alembic, {"downgrade", "base"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(Schema(database()), AllOf(Not(HasSubstr("api_keys")), HasSubstr("alembic_version")));
  EXPECT_EQ(Schema(database()), Schema(by_alembic));
  EXPECT_EQ(VersionRows(database()), "");
  EXPECT_EQ(VersionRows(by_alembic), "");
}

TEST_F(ImportAlembicTest, SluiceTakesOverADatabaseAlembicLeftInTheMiddle) {
  const fs::path* imported = Imported();
  ASSERT_NE(imported, nullptr) << Describe(*import_result_);
  // Alembic applies 9e0f3b5a2c68 and, before it, the other branch's 5c2e8f14a9d7 that it depends
  // on; the dependency needs no row of its own.
  const std::string middle = absl::StrCat(database(), "_middle");
  const std::string middle_dsn = NewDatabase("middle");
  ProcessResult r = Alembic(middle, {"upgrade", "9e0f3b5a2c68"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(VersionRows(middle), "9e0f3b5a2c68");
  EXPECT_THAT(Schema(middle), HasSubstr("scopes text[]"));
  // sluice, on a database of its own, keeps the same rows at the same target.
  r = SluiceOn(dsn(), *imported, {"upgrade", "9e0f3b5a2c68"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(VersionRows(database()), VersionRows(middle));

  r = SluiceOn(middle_dsn, *imported, {"current"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "9e0f3b5a2c68\n");
  r = SluiceOn(middle_dsn, *imported, {"check"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("3 pending: b7c9a1d3e5f2, d2e4f6a8b0c1, f1a2b3c4d5e6"));

  r = SluiceOn(middle_dsn, *imported, {"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("-> f1a2b3c4d5e6 (3 revisions)"));
  EXPECT_EQ(VersionRows(middle), kHead);
  r = SluiceOn(dsn(), *imported, {"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Schema(middle), Schema(database()));
}

TEST_F(ImportAlembicTest, PythonOnlyRevisionsAreListedMarkedAndFailValidate) {
  // python_only.ini adds e7d6c5b4a392 (rows read through op.get_bind()) and 0b1c2d3e4f5a (an
  // upgrade that asks is_offline_mode(), a downgrade that raises NotImplementedError).
  ProcessResult r = Import(PythonOnlyConfig(), manifests_);
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.out,
              AllOf(HasSubstr("imported 10 revisions"),
                    HasSubstr("2 revisions need their SQL written by hand"),
                    HasSubstr("  e7d6c5b4a392 (" + manifests_.string()),
                    HasSubstr("    upgrade: offline rendering failed: AttributeError: 'NoneType' "
                              "object has no attribute 'fetchall' "
                              "(alembic/versions_python_only/"
                              "e7d6c5b4a392_backfill_key_prefixes.py line 21)\n"
                              "    upgrade: it uses the database connection (op.get_bind())"),
                    HasSubstr("  0b1c2d3e4f5a ("),
                    HasSubstr("    upgrade: it branches on context.is_offline_mode()"),
                    HasSubstr("[UNCONVERTED; no downgrade (downgrade() raises)]")));
  EXPECT_THAT(r.err, HasSubstr("2 of 10 revisions were written marked `unconverted`"));
  const fs::path backfill =
      manifests_ / "0009_e7d6c5b4a392_backfill_key_prefixes_from_the_hashed_ke.yaml";
  const fs::path owner =
      manifests_ / "0010_0b1c2d3e4f5a_add_api_keys_owner_filled_differently_of.yaml";
  EXPECT_THAT(ReadFile(backfill),
              HasSubstr("\nunconverted: \"sluice import alembic could not convert "
                        "alembic/versions_python_only/e7d6c5b4a392_backfill_key_prefixes.py: "
                        "upgrade: offline rendering failed"));
  EXPECT_THAT(ReadFile(owner), AllOf(HasSubstr("\nunconverted: "), Not(HasSubstr("downgrade"))));

  r = Sluice({"validate"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(
      r.err,
      AllOf(HasSubstr(backfill.string() + ":2:1: revision e7d6c5b4a392 is marked `unconverted`: "
                                          "sluice import alembic could not convert"),
            HasSubstr(owner.string() + ":2:1: revision 0b1c2d3e4f5a is marked `unconverted`"),
            HasSubstr("write its upgrade and downgrade SQL by hand")));

  // Written by hand, markers deleted: the directory validates and applies.
  for (const fs::path& file : {backfill, owner}) {
    std::string filled;
    for (absl::string_view line : absl::StrSplit(ReadFile(file), '\n')) {
      if (absl::StartsWith(line, "unconverted:")) continue;
      if (line == "  SELECT id, hashed_key FROM api_keys;") {
        line = "  UPDATE api_keys SET key_prefix = left(hashed_key, 8);";
      } else if (line == "  UPDATE api_keys SET owner = 'unknown';") {
        line = "  UPDATE api_keys SET owner = current_user;";
      }
      absl::StrAppend(&filled, line, "\n");
    }
    std::ofstream(file) << filled;
  }
  r = Sluice({"validate"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("OK: 10 revisions, head 0b1c2d3e4f5a"));
  r = Sluice({"upgrade", "head"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "0b1c2d3e4f5a");
  // Alembic's "irreversible" is sluice's: no downgrade past it.
  r = Sluice({"downgrade", "-1"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("0b1c2d3e4f5a"));
  EXPECT_EQ(Versions(), "0b1c2d3e4f5a");
}

TEST_F(ImportAlembicTest, RefusesAnExistingDirectoryUnlessForcedAndWritesTheSameFiles) {
  // A directory holding only a .gitkeep counts as empty.
  std::ofstream(manifests_ / ".gitkeep") << "";
  ProcessResult r = Import(MainConfig(), manifests_);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::map<std::string, std::string> first;
  for (const std::string& name : FileNames(manifests_)) first[name] = ReadFile(manifests_ / name);
  ASSERT_EQ(first.size(), 9u);

  std::ofstream(manifests_ / "0000_old.yaml") << "revision: old\nupgrade: SELECT 1;\n";
  std::ofstream(manifests_ / "README") << "kept\n";
  r = Import(MainConfig(), manifests_);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("already exists and is not empty; pass --force"));
  EXPECT_EQ(ReadFile(manifests_ / "0000_old.yaml"), "revision: old\nupgrade: SELECT 1;\n");

  r = Import(MainConfig(), manifests_, {"--force"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("replaced (--force): 9 earlier manifest file(s)"));
  EXPECT_FALSE(fs::exists(manifests_ / "0000_old.yaml"));
  EXPECT_EQ(ReadFile(manifests_ / "README"), "kept\n");
  fs::remove(manifests_ / "README");
  // Deterministic: the same project gives the same names and bytes.
  std::map<std::string, std::string> again;
  for (const std::string& name : FileNames(manifests_)) again[name] = ReadFile(manifests_ / name);
  EXPECT_EQ(again, first);
}

TEST_F(ImportAlembicTest, NamesWhatIsMissing) {
  ProcessResult r = RunProcess({SluiceBinary(), "import", "alembic", "--out", manifests_.string()});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("import alembic needs --config PATH/alembic.ini"));
  r = RunProcess({SluiceBinary(), "import", "alembic", "--config", ProjectDir() + "/missing.ini"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("missing.ini: no such file"));
  r = RunProcess({SluiceBinary(), "import", "flyway", "--config", MainConfig()});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("import knows `alembic` only"));
  r = Import(MainConfig(), manifests_, {"--python", "/nonexistent/python3"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("cannot run /nonexistent/python3: No such file or directory; "
                               "import needs Python 3 with Alembic"));
  EXPECT_TRUE(FileNames(manifests_).empty());
}

}  // namespace
}  // namespace sluice::testing
