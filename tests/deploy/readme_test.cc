// The README's walk-throughs cannot go stale: every `$` line between its walkthrough markers is
// run or checked here. `sluice` lines run against a scratch database left as Alembic leaves one
// (the reference revision fc0e7b400c13 applied and stamped, no sluice history) and must print what
// the README shows; `helm install` / `helm upgrade` lines run as `helm template` with the same
// arguments (there is no cluster); `kubectl` lines need a cluster, so what they name is checked:
// the files they apply parse and name their objects, every object they get, describe, wait for or
// read logs of is one that those files or the chart define, and `kubectl get mj` shows the CRD's
// printer columns. Every YAML excerpt must be a part of a file of the repository as it is.
#include <stdlib.h>

#include <filesystem>
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

// One command of a walk-through and the lines the README shows it printing.
struct Command {
  std::string line;
  std::vector<std::string> output;
};

// The README's walk-through section: its commands, in order, and its YAML excerpts.
struct Walkthrough {
  std::vector<Command> commands;
  std::vector<std::string> yaml_excerpts;
};

Walkthrough ReadWalkthrough() {
  Walkthrough walkthrough;
  const std::string readme = ReadText(SourcePath("README.md"));
  const size_t begin = readme.find("<!-- walkthrough:begin -->");
  const size_t end = readme.find("<!-- walkthrough:end -->");
  EXPECT_NE(begin, std::string::npos);
  EXPECT_NE(end, std::string::npos);
  if (begin == std::string::npos || end == std::string::npos) return walkthrough;
  const std::vector<std::string> lines = absl::StrSplit(readme.substr(begin, end - begin), '\n');
  std::string fence;  // the open block's language; empty outside blocks
  std::string excerpt;
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "```")) {
      if (fence.empty()) {
        fence = line.size() > 3 ? line.substr(3) : "text";
        excerpt.clear();
      } else {
        if (fence == "yaml") walkthrough.yaml_excerpts.push_back(excerpt);
        fence.clear();
      }
      continue;
    }
    if (fence == "yaml") absl::StrAppend(&excerpt, line, "\n");
    if (fence != "sh") continue;
    if (absl::StartsWith(line, "$ ")) {
      walkthrough.commands.push_back(Command{line.substr(2), {}});
    } else if (!walkthrough.commands.empty()) {
      walkthrough.commands.back().output.push_back(line);
    }
  }
  return walkthrough;
}

class ReadmeTest : public PgTest {
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
    // A scratch folder standing for a clone's root, with sluice and helm on the PATH.
    work_ = fs::temp_directory_path() / absl::StrCat("sluice-readme-", database());
    fs::remove_all(work_);
    fs::create_directories(work_ / "bin");
    for (const char* entry : {"migrations", "manifests", "helm"}) {
      fs::create_directory_symlink(SourcePath(entry), work_ / entry);
    }
    fs::create_symlink(SluiceBinary(), work_ / "bin/sluice");
    fs::create_symlink(SLUICE_HELM, work_ / "bin/helm");
  }
  void TearDown() override {
    fs::remove_all(work_);
    PgTest::TearDown();
  }

  // Runs `command` with bash in the scratch folder.
  ProcessResult Shell(const std::string& command) {
    const char* path = getenv("PATH");
    return RunProcess(
        {"bash", "-c", absl::StrCat("set -o pipefail; cd '", work_.string(), "' && ", command)},
        {{"PATH", absl::StrCat((work_ / "bin").string(), ":", path ? path : "")},
         {"DATABASE_URL", dsn()},
         {"HELM_CACHE_HOME", (work_ / "helm-home/cache").string()},
         {"HELM_CONFIG_HOME", (work_ / "helm-home/config").string()},
         {"HELM_DATA_HOME", (work_ / "helm-home/data").string()},
         {"KUBECONFIG", (work_ / "no-kubeconfig").string()}},
        absl::Seconds(60));
  }

  // Records the objects of `text` as defined (applied or rendered).
  void Define(const std::string& text, const std::string& where) {
    for (YAML::Node object : Documents(text, where)) {
      ExpectWellFormed(object, where);
      defined_[ObjectName(object)] = object;
    }
  }

  void ExpectDefined(const std::string& kind_name, const std::string& where) {
    EXPECT_EQ(defined_.count(kind_name), 1u)
        << where << ": " << kind_name << " is defined by no file applied or rendered before it";
  }

  fs::path work_;
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
  const Walkthrough walkthrough = ReadWalkthrough();
  ASSERT_GE(walkthrough.commands.size(), 15u);
  // The CRD's printer columns, as `kubectl get mj` prints its header.
  std::vector<std::string> header = {"NAME"};
  YAML::Node crd = YAML::LoadFile(SourcePath("manifests/crd.yaml"));
  for (YAML::Node column : crd["spec"]["versions"][0]["additionalPrinterColumns"]) {
    header.push_back(absl::AsciiStrToUpper(column["name"].as<std::string>()));
  }

  for (const Command& command : walkthrough.commands) {
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
      Define(result.out, line);
      EXPECT_EQ(shown, "") << line << ": the test cannot compare what a cluster would print";
    } else if (words[0] == "kubectl" && words.size() > 2) {
      const std::string& verb = words[1];
      if (verb == "apply") {
        int files = 0;
        for (size_t i = 2; i + 1 < words.size(); ++i) {
          if (words[i] != "-f") continue;
          ++files;
          const fs::path file = work_ / words[i + 1];
          if (!fs::exists(file)) {
            ADD_FAILURE() << line << ": " << words[i + 1] << " does not exist";
            continue;
          }
          Define(ReadText(file.string()), words[i + 1]);
        }
        EXPECT_GE(files, 1) << line;
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
  EXPECT_GE(walkthrough.yaml_excerpts.size(), 2u);
  for (const std::string& excerpt : walkthrough.yaml_excerpts) {
    bool found = false;
    for (const std::string& file : files) found = found || absl::StrContains(file, excerpt);
    EXPECT_TRUE(found) << "a YAML excerpt of the README is in no file of manifests/ or the "
                          "chart's templates:\n"
                       << excerpt;
  }
}

}  // namespace
}  // namespace sluice::testing
