// The README's walk-throughs cannot go stale: every `$` line between its walkthrough markers is
// run or checked here. `sluice` lines run against a scratch database left as Alembic leaves one
// (the reference revision fc0e7b400c13 applied and stamped, no sluice history) and must print what
// the README shows; `helm install` / `helm upgrade` lines run as `helm template` with the same
// arguments (there is no cluster); `kubectl` lines need a cluster, so what they name is checked:
// the files they apply parse and name their objects, every object they get, describe, wait for or
// read logs of is one that those files or the chart define, a patch file names the object it
// patches, every ConfigMap, Secret and ServiceAccount that a workload they define uses is defined
// by a command before it or by the same one, and `kubectl get mj` shows the CRD's printer
// columns. Every YAML excerpt must be a part of a file of the repository as it is, and every SQL
// excerpt must run, in a transaction rolled back, on the database as Alembic leaves it.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_support.h"
#include "tests/integration/migrate_test_support.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/process.h"
#include "yaml-cpp/yaml.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;

// One `$` command of the README (continuation lines joined) and the lines shown after it.
struct Command {
  std::string line;
  std::vector<std::string> output;
};

// A fenced block of a README section: its language ("text" when none), its text, its `$`
// commands, and the database an example block starts from (an `<!-- example-database: NAME -->`
// line before it; "" when none).
struct Block {
  std::string fence;
  std::string text;
  std::vector<Command> commands;
  std::string database;
};

// Returns the fenced blocks between `<!-- NAME:begin -->` and `<!-- NAME:end -->`. In a block, a
// line starting with "$ " is a command (a trailing backslash continues it on the next line); the
// lines after it up to the next command are its output, but for comment lines ("# ...") and
// trailing blank lines.
std::vector<Block> ReadSection(const std::string& name) {
  std::vector<Block> blocks;
  const std::string readme = ReadText(SourcePath("README.md"));
  const size_t begin = readme.find(absl::StrCat("<!-- ", name, ":begin -->"));
  const size_t end = readme.find(absl::StrCat("<!-- ", name, ":end -->"));
  EXPECT_NE(begin, std::string::npos) << name;
  EXPECT_NE(end, std::string::npos) << name;
  if (begin == std::string::npos || end == std::string::npos) return blocks;
  const std::vector<std::string> lines = absl::StrSplit(readme.substr(begin, end - begin), '\n');
  constexpr absl::string_view kDatabase = "<!-- example-database: ";
  std::string database;  // for the next block
  bool in_block = false;
  bool continued = false;  // the last command line ended with a backslash
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "```")) {
      if (!in_block) {
        blocks.push_back(Block{line.size() > 3 ? line.substr(3) : "text", "", {}, database});
        database.clear();
      }
      in_block = !in_block;
      continue;
    }
    if (!in_block) {
      if (absl::StartsWith(line, kDatabase) && absl::EndsWith(line, " -->")) {
        database = line.substr(kDatabase.size(), line.size() - kDatabase.size() - 4);
      }
      continue;
    }
    Block& block = blocks.back();
    absl::StrAppend(&block.text, line, "\n");
    std::vector<Command>& commands = block.commands;
    if (continued) {
      commands.back().line += absl::StrCat(" ", absl::StripAsciiWhitespace(line));
    } else if (absl::StartsWith(line, "$ ")) {
      commands.push_back(Command{line.substr(2), {}});
    } else if (!commands.empty() && !absl::StartsWith(line, "# ")) {
      commands.back().output.push_back(line);
    }
    continued = !commands.empty() && absl::EndsWith(line, "\\") &&
                (continued || absl::StartsWith(line, "$ "));
    if (continued) commands.back().line.pop_back();  // the backslash
  }
  for (Block& block : blocks) {
    for (Command& command : block.commands) {
      while (!command.output.empty() && command.output.back().empty()) command.output.pop_back();
    }
  }
  return blocks;
}

// A scratch folder standing for a clone's root (`work_`), with sluice on the PATH, and a shell
// that runs the README's commands in it.
class ScratchFolderTest : public PgTest {
 protected:
  void MakeScratchFolder(const std::string& name) {
    work_ = fs::temp_directory_path() / absl::StrCat(name, "-", database());
    fs::remove_all(work_);
    fs::create_directories(work_ / "bin");
    fs::create_symlink(SluiceBinary(), work_ / "bin/sluice");
  }
  void TearDown() override {
    if (!work_.empty()) fs::remove_all(work_);
    PgTest::TearDown();
  }

  // Runs `command` with bash in the scratch folder, with `env` added to PATH and a KUBECONFIG
  // that names no cluster, after the shell commands of `prelude`.
  ProcessResult Shell(const std::string& command, std::map<std::string, std::string> env,
                      const std::string& prelude = "") {
    const char* path = getenv("PATH");
    env["PATH"] = absl::StrCat((work_ / "bin").string(), ":", path ? path : "");
    env["KUBECONFIG"] = (work_ / "no-kubeconfig").string();
    return RunProcess(
        {"bash", "-c",
         absl::StrCat("set -o pipefail; ", prelude, "cd '", work_.string(), "' && ", command)},
        env, absl::Seconds(120));
  }

  fs::path work_;
};

class ReadmeTest : public ScratchFolderTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    // The database as Alembic leaves it: the reference revision applied and stamped.
    YAML::Node revision = YAML::LoadFile(SourcePath("migrations/fc0e7b400c13_initial_schema.yaml"));
    Query(revision["upgrade"].as<std::string>());
    Query(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT "
        "alembic_version_pkc PRIMARY KEY (version_num)); INSERT INTO alembic_version VALUES "
        "('fc0e7b400c13')");
    // The repository's files as they are, and helm.
    MakeScratchFolder("sluice-readme");
    for (const char* entry : {"migrations", "manifests", "helm"}) {
      fs::create_directory_symlink(SourcePath(entry), work_ / entry);
    }
    fs::create_symlink(SLUICE_HELM, work_ / "bin/helm");
  }

  ProcessResult Shell(const std::string& command) {
    return ScratchFolderTest::Shell(command,
                                    {{"DATABASE_URL", dsn()},
                                     {"HELM_CACHE_HOME", (work_ / "helm-home/cache").string()},
                                     {"HELM_CONFIG_HOME", (work_ / "helm-home/config").string()},
                                     {"HELM_DATA_HOME", (work_ / "helm-home/data").string()}});
  }

  // Records the objects of `text` as defined (applied or rendered), and returns them.
  std::vector<YAML::Node> Define(const std::string& text, const std::string& where) {
    std::vector<YAML::Node> objects = Documents(text, where);
    for (YAML::Node object : objects) {
      ExpectWellFormed(object, where);
      defined_[ObjectName(object)] = object;
    }
    return objects;
  }

  void ExpectDefined(const std::string& kind_name, const std::string& where) {
    EXPECT_EQ(defined_.count(kind_name), 1u)
        << where << ": " << kind_name << " is defined by no file applied or rendered before it";
  }

  // Expects the ConfigMaps, Secrets and ServiceAccount that the pods of `objects` (Deployments and
  // Jobs) use, and those a MigrationJob names for the operator, to be defined, so that they could
  // start.
  void ExpectWhatPodsUseDefined(const std::vector<YAML::Node>& objects, const std::string& where) {
    for (YAML::Node object : objects) {
      const std::string kind = object["kind"].as<std::string>("");
      if (kind == "MigrationJob") {
        const std::string job = absl::StrCat(where, " (", ObjectName(object), ")");
        if (object["spec"]["database"]["urlSecretRef"]) {
          ExpectDefined(
              "Secret/" + object["spec"]["database"]["urlSecretRef"]["name"].as<std::string>(),
              job);
        }
        for (YAML::Node map : object["spec"]["migrations"]["configMaps"]) {
          ExpectDefined("ConfigMap/" + map["name"].as<std::string>(), job);
        }
        continue;
      }
      if (kind != "Deployment" && kind != "Job") continue;
      const std::string pods = absl::StrCat(where, " (", ObjectName(object), ")");
      for (const std::string& used : ObjectsPodsUse(object)) ExpectDefined(used, pods);
    }
  }

  std::map<std::string, YAML::Node> defined_;
};

// Returns the argument after `flag` (`--flag VALUE` or `--flag=VALUE`) in `words`.
std::string FlagValue(const std::vector<std::string>& words, const std::string& flag) {
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i] == flag && i + 1 < words.size()) return words[i + 1];
    if (absl::StartsWith(words[i], flag + "=")) return words[i].substr(flag.size() + 1);
  }
  return "";
}

TEST_F(ReadmeTest, WalkthroughCommandsRunOrNameWhatTheRepositoryDefines) {
  std::vector<Command> commands;
  std::vector<std::string> yaml_excerpts;
  std::vector<std::string> sql_excerpts;
  for (const Block& block : ReadSection("walkthrough")) {
    if (block.fence == "sh")
      commands.insert(commands.end(), block.commands.begin(), block.commands.end());
    if (block.fence == "yaml") yaml_excerpts.push_back(block.text);
    if (block.fence == "sql") sql_excerpts.push_back(block.text);
  }
  ASSERT_GE(commands.size(), 15u);
  // The CRD's printer columns, as `kubectl get mj` prints its header.
  std::vector<std::string> header = {"NAME"};
  YAML::Node crd = YAML::LoadFile(SourcePath("manifests/crd.yaml"));
  for (YAML::Node column : crd["spec"]["versions"][0]["additionalPrinterColumns"]) {
    header.push_back(absl::AsciiStrToUpper(column["name"].as<std::string>()));
  }

  for (const Command& command : commands) {
    const std::string& line = command.line;
    const std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    ASSERT_FALSE(words.empty());
    const std::string shown =
        command.output.empty() ? "" : absl::StrCat(absl::StrJoin(command.output, "\n"), "\n");
    if (words[0] == "sluice") {
      const ProcessResult result = Shell(line);
      EXPECT_EQ(result.exit_code, 0) << line << "\n" << Describe(result);
      EXPECT_EQ(result.out, shown) << line;
    } else if (words[0] == "helm" && words.size() > 1 &&
               (words[1] == "install" || words[1] == "upgrade")) {
      std::vector<std::string> args = words;
      args[1] = "template";
      const ProcessResult result = Shell(absl::StrJoin(args, " "));
      EXPECT_EQ(result.exit_code, 0) << line << "\n" << Describe(result);
      ExpectWhatPodsUseDefined(Define(result.out, line), line);
      EXPECT_EQ(shown, "") << line << ": the test cannot compare what a cluster would print";
    } else if (words[0] == "kubectl" && words.size() > 2) {
      const std::string& verb = words[1];
      if (verb == "apply") {
        int files = 0;
        std::vector<YAML::Node> applied;
        for (size_t i = 2; i + 1 < words.size(); ++i) {
          if (words[i] != "-f") continue;
          ++files;
          const fs::path file = work_ / words[i + 1];
          if (!fs::exists(file)) {
            ADD_FAILURE() << line << ": " << words[i + 1] << " does not exist";
            continue;
          }
          for (YAML::Node object : Define(ReadText(file.string()), words[i + 1])) {
            applied.push_back(object);
          }
        }
        EXPECT_GE(files, 1) << line;
        ExpectWhatPodsUseDefined(applied, line);
      } else if (verb == "create" && words[2] == "secret") {
        ASSERT_GE(words.size(), 5u) << line;
        YAML::Node secret;
        secret["apiVersion"] = "v1";
        secret["kind"] = "Secret";
        secret["metadata"]["name"] = words[4];
        defined_["Secret/" + words[4]] = secret;
      } else if (verb == "get" && words[2] == "mj") {
        ASSERT_FALSE(command.output.empty()) << line << ": show what it prints";
        EXPECT_EQ(static_cast<std::vector<std::string>>(
                      absl::StrSplit(command.output[0], ' ', absl::SkipEmpty())),
                  header)
            << line;
        for (size_t row = 1; row < command.output.size(); ++row) {
          const std::vector<std::string> cells =
              absl::StrSplit(command.output[row], ' ', absl::SkipEmpty());
          ASSERT_EQ(cells.size(), header.size()) << command.output[row];
          ExpectDefined("MigrationJob/" + cells[0], line);
          if (defined_.count("MigrationJob/" + cells[0]) == 0) continue;
          YAML::Node mj = defined_["MigrationJob/" + cells[0]];
          EXPECT_EQ(cells[3], mj["spec"]["target"].as<std::string>("head")) << line;
          EXPECT_EQ(mj["metadata"]["namespace"].as<std::string>(""),
                    FlagValue(words, "--namespace"))
              << line;
        }
      } else if (verb == "patch" && words.size() > 3) {
        // An object of someone else's (Argo CD's argocd-cm): the patch file must be a part of it,
        // naming the object the command patches.
        const std::string file = FlagValue(words, "--patch-file");
        ASSERT_FALSE(file.empty()) << line << ": only --patch-file patches are checked";
        ASSERT_TRUE(fs::exists(work_ / file)) << line << ": " << file << " does not exist";
        const std::vector<YAML::Node> patch = Documents(ReadText((work_ / file).string()), file);
        ASSERT_EQ(patch.size(), 1u) << file;
        EXPECT_EQ(absl::AsciiStrToLower(patch[0]["kind"].as<std::string>("")), words[2]) << line;
        EXPECT_EQ(patch[0]["metadata"]["name"].as<std::string>(""), words[3]) << line;
        EXPECT_EQ(patch[0]["metadata"]["namespace"].as<std::string>(""),
                  FlagValue(words, "--namespace"))
            << line;
      } else if (verb == "describe" && words[2] == "mj") {
        ExpectDefined("MigrationJob/" + words[3], line);
      } else if (verb == "wait") {
        const std::vector<std::string> target = absl::StrSplit(words[3], '/');
        ASSERT_EQ(target.size(), 2u) << line;
        ASSERT_EQ(target[0], "mj") << line;
        ExpectDefined("MigrationJob/" + target[1], line);
      } else if (verb == "logs") {
        const std::vector<std::string> target = absl::StrSplit(words[2], '/');
        ASSERT_EQ(target.size(), 2u) << line;
        const std::string kind = target[0] == "job" ? "Job" : "Deployment";
        ExpectDefined(kind + "/" + target[1], line);
        const std::string container = FlagValue(words, "-c");
        if (!container.empty() && defined_.count(kind + "/" + target[1]) > 0) {
          bool found = false;
          for (const char* list : {"initContainers", "containers"}) {
            for (YAML::Node c :
                 defined_[kind + "/" + target[1]]["spec"]["template"]["spec"][list]) {
              found = found || c["name"].as<std::string>("") == container;
            }
          }
          EXPECT_TRUE(found) << line << ": no container " << container;
        }
      } else {
        ADD_FAILURE() << line << ": a kubectl command this test does not know how to check";
      }
    } else {
      ADD_FAILURE() << line << ": a command this test does not know how to run or check";
    }
  }

  // Every YAML excerpt is a part of a file of the repository, as it is.
  std::vector<std::string> files;
  for (const char* folder : {"manifests", "helm/sluice/templates"}) {
    for (const auto& entry : fs::directory_iterator(SourcePath(folder))) {
      files.push_back(ReadText(entry.path().string()));
    }
  }
  EXPECT_GE(yaml_excerpts.size(), 2u);
  for (const std::string& excerpt : yaml_excerpts) {
    bool found = false;
    for (const std::string& file : files) found = found || absl::StrContains(file, excerpt);
    EXPECT_TRUE(found) << "a YAML excerpt of the README is in no file of manifests/ or the "
                          "chart's templates:\n"
                       << excerpt;
  }

  // Every SQL excerpt runs on the database as Alembic leaves it (Query reports a failure).
  EXPECT_GE(sql_excerpts.size(), 1u);
  for (const std::string& excerpt : sql_excerpts) {
    Query(absl::StrCat("BEGIN;\n", excerpt, "ROLLBACK;"));
  }
}

// Whether `line` starts as sluice's log lines do: "2026-11-24T08:41:50.737Z info ...".
bool IsLogLine(const std::string& line) {
  constexpr absl::string_view kShape = "0000-00-00T00:00:00.000Z ";
  if (line.size() <= kShape.size()) return false;
  for (size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == '0' ? !absl::ascii_isdigit(line[i]) : line[i] != kShape[i]) return false;
  }
  return absl::ascii_islower(line[kShape.size()]);
}

// Returns `line` with what changes from run to run (a log line's time, durations) set aside.
std::string Normalized(const std::string& line) {
  std::string out = IsLogLine(line) ? absl::StrCat("<time>", line.substr(24)) : line;
  const std::string kDuration = "duration_ms=";
  for (size_t at = out.find(kDuration); at != std::string::npos; at = out.find(kDuration, at + 1)) {
    const size_t digits = at + kDuration.size();
    size_t end = digits;
    while (end < out.size() && absl::ascii_isdigit(out[end])) ++end;
    out.replace(digits, end - digits, "<n>");
  }
  return out;
}

// Whether `actual` is `shown`, where a shown line "..." (indented or not) stands for any lines.
bool LinesMatch(const std::vector<std::string>& shown, size_t s,
                const std::vector<std::string>& actual, size_t a) {
  if (s == shown.size()) return a == actual.size();
  if (absl::StripAsciiWhitespace(shown[s]) == "...") {
    for (size_t skip = a; skip <= actual.size(); ++skip) {
      if (LinesMatch(shown, s + 1, actual, skip)) return true;
    }
    return false;
  }
  return a < actual.size() && Normalized(shown[s]) == Normalized(actual[a]) &&
         LinesMatch(shown, s + 1, actual, a + 1);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// The README's examples outside the walk-throughs (usage, lint, the switch from Alembic), run in
// a scratch folder holding a copy of migrations/ and of the Alembic project of the import tests
// (tests/testdata/alembic_project, with `.venv/bin/python` standing for Debian's python3, which
// has Alembic). Each block starts from the database its `example-database` line names: `empty`,
// `none` (no DATABASE_URL: the offline commands), or `alembic-head` (Alembic itself upgraded it to
// that project's head), its URL in DATABASE_URL, or with ", not exported" in a variable of the
// shell only (the commands that use it say `--database-url "$DATABASE_URL"`); a block without
// one goes on with the database the block before it left. The
// database URL a command shows stands for the test's (a `DATABASE_URL=...` prefix, or
// `--dev-url`'s, the test server); `sluice` commands must print what is shown, log lines matched
// with their times and durations set aside, and "..." standing for any lines; `cat FILE` writes the
// file shown when the repository has none (the README shows it being made), else must print it;
// `echo $?` must print the last exit code; a `kubectl ... --dry-run=client -o yaml | kubectl apply
// -f -` runs up to the pipe, with the real kubectl, and must print a ConfigMap of the folder's
// files.
class ReadmeExamplesTest : public ScratchFolderTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    MakeScratchFolder("sluice-readme-examples");
    fs::create_directories(work_ / ".venv/bin");
    fs::copy(SourcePath("migrations"), work_ / "migrations", fs::copy_options::recursive);
    const fs::path alembic_project = SourcePath("tests/testdata/alembic_project");
    fs::copy(alembic_project / "alembic.ini", work_ / "alembic.ini");
    fs::copy(alembic_project / "alembic", work_ / "alembic", fs::copy_options::recursive);
    fs::create_symlink(kPython, work_ / ".venv/bin/python");
    fs::create_symlink(SLUICE_KUBECTL, work_ / "bin/kubectl");
    const char* admin = std::getenv(kTestPgDsnVariable);
    admin_dsn_ = admin == nullptr ? "" : admin;
  }
  void TearDown() override {
    for (const std::string& name : databases_) {
      Query(absl::StrCat("DROP DATABASE IF EXISTS \"", name, "\" WITH (FORCE)"));
    }
    ScratchFolderTest::TearDown();
  }

  // Makes a new empty database the commands after it use.
  void UseNewDatabase() {
    const std::string name = absl::StrCat(database(), "_", databases_.size() + 1);
    databases_.push_back(name);
    Query(absl::StrCat("CREATE DATABASE \"", name, "\""));
    url_ = UrlFor("postgresql");
    url_.replace(url_.rfind("/" + database()), database().size() + 1, "/" + name);
  }

  // Runs `command` with the database's URL in DATABASE_URL, or only in a variable of the shell.
  ProcessResult Shell(const std::string& command) {
    if (url_.empty()) return ScratchFolderTest::Shell(command, {});
    if (export_url_) return ScratchFolderTest::Shell(command, {{"DATABASE_URL", url_}});
    return ScratchFolderTest::Shell(command, {}, absl::StrCat("DATABASE_URL='", url_, "'; "));
  }

  static constexpr char kPython[] = "/usr/bin/python3";
  std::string admin_dsn_;
  std::string url_;         // the database the commands use
  bool export_url_ = true;  // in the environment, or only a variable of the shell
  std::vector<std::string> databases_;
};

TEST_F(ReadmeExamplesTest, PrintWhatTheReadmeShows) {
  const std::vector<Block> blocks = ReadSection("examples");
  int commands = 0;
  bool started = false;
  for (const Block& block : blocks) {
    if (block.commands.empty()) continue;
    std::vector<std::string> database = absl::StrSplit(block.database, ", ");
    export_url_ = true;
    if (database[0] == "empty" || (database[0].empty() && !started)) {
      UseNewDatabase();
    } else if (database[0] == "none") {
      url_.clear();
    } else if (database[0] == "alembic-head") {
      UseNewDatabase();
      const ProcessResult alembic =
          Shell(".venv/bin/python -m alembic -c alembic.ini upgrade head");
      ASSERT_EQ(alembic.exit_code, 0) << Describe(alembic);
    } else if (!database[0].empty()) {
      ADD_FAILURE() << "example-database: " << block.database
                    << " is none of empty, none and alembic-head";
    }
    export_url_ = database.size() < 2 || database[1] != "not exported";
    started = true;
    int last_exit_code = 0;
    for (size_t i = 0; i < block.commands.size(); ++i) {
      const Command& command = block.commands[i];
      ++commands;
      std::vector<std::string> words = absl::StrSplit(command.line, ' ', absl::SkipEmpty());
      ASSERT_FALSE(words.empty());
      if (absl::StartsWith(words[0], "DATABASE_URL=")) words.erase(words.begin());
      for (size_t w = 0; w + 1 < words.size(); ++w) {
        if (words[w] == "--dev-url") words[w + 1] = absl::StrCat("'", admin_dsn_, "'");
      }
      const std::string line = absl::StrJoin(words, " ");
      const bool checked_by_echo =
          i + 1 < block.commands.size() && block.commands[i + 1].line == "echo $?";
      if (words[0] == "sluice") {
        const ProcessResult result = Shell(line);
        last_exit_code = result.exit_code;
        if (!checked_by_echo) {
          EXPECT_EQ(result.exit_code, 0) << line << "\n" << Describe(result);
        }
        std::vector<std::string> shown_out;
        std::vector<std::string> shown_log;
        for (const std::string& shown : command.output) {
          (IsLogLine(shown) ? shown_log : shown_out).push_back(shown);
        }
        EXPECT_TRUE(LinesMatch(shown_out, 0, Lines(result.out), 0)) << line << " printed:\n"
                                                                    << result.out;
        std::vector<std::string> logged;
        for (const std::string& err_line : Lines(result.err)) {
          if (!shown_log.empty() || !absl::StrContains(err_line, " info ")) {
            logged.push_back(err_line);
          }
        }
        // Logs shown are compared; not shown, only information may have been logged.
        EXPECT_TRUE(LinesMatch(shown_log, 0, logged, 0)) << line << " logged:\n" << result.err;
      } else if (words[0] == "cat" && words.size() == 2) {
        const fs::path file = work_ / words[1];
        const std::string shown =
            command.output.empty() ? "" : absl::StrCat(absl::StrJoin(command.output, "\n"), "\n");
        if (fs::exists(file)) {
          EXPECT_EQ(ReadText(file.string()), shown) << line;
        } else {
          std::ofstream(file) << shown;
        }
      } else if (line == "echo $?") {
        ASSERT_EQ(command.output.size(), 1u) << line;
        EXPECT_EQ(command.output[0], absl::StrCat(last_exit_code))
            << "the exit code before " << line;
      } else if (words[0] == "kubectl" && absl::StrContains(line, "--dry-run=client -o yaml") &&
                 absl::EndsWith(line, "| kubectl apply -f -")) {
        const std::string offline = line.substr(0, line.rfind('|'));
        const ProcessResult result = Shell(offline);
        ASSERT_EQ(result.exit_code, 0) << offline << "\n" << Describe(result);
        EXPECT_TRUE(command.output.empty()) << line;
        const std::vector<YAML::Node> objects = Documents(result.out, line);
        ASSERT_EQ(objects.size(), 1u) << result.out;
        EXPECT_EQ(objects[0]["kind"].as<std::string>(""), "ConfigMap") << line;
        const std::string folder = FlagValue(words, "--from-file");
        size_t files = 0;
        for (const auto& entry : fs::directory_iterator(work_ / folder)) {
          ++files;
          EXPECT_TRUE(objects[0]["data"][entry.path().filename().string()])
              << entry.path().filename() << " is not in the ConfigMap of " << line;
        }
        EXPECT_EQ(objects[0]["data"].size(), files) << line;
        EXPECT_GE(files, 1u) << line;
      } else {
        ADD_FAILURE() << command.line << ": a command this test does not know how to run";
      }
    }
  }
  EXPECT_GE(commands, 14);
}
}  // namespace
}  // namespace sluice::testing
