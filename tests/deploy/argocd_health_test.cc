// The Argo CD health check of manifests/argocd-health.yaml, run by Lua 5.1 (the language of Argo
// CD's gopher-lua) as Argo CD runs it: a chunk with the object in the global `obj` that returns
// {status, message}. The objects' statuses are what sluice writes: composed by
// reporting::Compose from a run and encoded by the Kubernetes client's JSON codec, so the script
// reads the field names and values the API server would hold.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/kube/json_codec.h"
#include "pkg/kube/types.h"
#include "pkg/reporting/status_composer.h"
#include "tests/deploy/deploy_test_support.h"
#include "tests/support/process.h"
#include "yaml-cpp/yaml.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using reporting::RunView;
using ::testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// Returns `text` as a Lua string literal.
std::string LuaString(const std::string& text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\", std::string(1, static_cast<char>(c)));
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, "\\", static_cast<int>(c));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Returns JSON (parsed as YAML) as a Lua value, as gopher-lua gets an object from Argo CD:
// objects and arrays as tables, numbers as numbers, null as absent.
std::string LuaValue(YAML::Node node) {
  if (node.IsMap()) {
    std::string out = "{";
    for (auto entry : node) {
      if (entry.second.IsNull()) continue;
      absl::StrAppend(&out, "[", LuaString(entry.first.as<std::string>()),
                      "] = ", LuaValue(entry.second), ", ");
    }
    return out + "}";
  }
  if (node.IsSequence()) {
    std::string out = "{";
    for (YAML::Node item : node) absl::StrAppend(&out, LuaValue(item), ", ");
    return out + "}";
  }
  const std::string scalar = node.as<std::string>();
  // Quoted in the JSON: a string; else a number, true or false, which Lua writes the same way.
  return node.Tag() == "!" ? LuaString(scalar) : scalar;
}

struct Health {
  std::string status;
  std::string message;
};

class ArgoCdHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("sluice-argocd-health-", ::testing::UnitTest::GetInstance()->random_seed(),
                        "-", getpid());
    fs::create_directories(dir_);
    YAML::Node config = YAML::LoadFile(SourcePath("manifests/argocd-health.yaml"));
    ASSERT_EQ(config["metadata"]["name"].as<std::string>(""), "argocd-cm");
    const YAML::Node script =
        config["data"]["resource.customizations.health.sluice.dev_MigrationJob"];
    ASSERT_TRUE(script.IsScalar());
    std::ofstream(dir_ / "health.lua") << script.as<std::string>();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Returns what the check says of a MigrationJob at `generation` with `status`.
  Health Check(int64_t generation, const std::optional<kube::MigrationJobStatus>& status,
               bool suspend = false) {
    std::string object =
        absl::StrCat("{metadata = {name = \"app-db\", generation = ", generation,
                     "}, spec = {target = \"head\", suspend = ", suspend ? "true" : "false", "}");
    if (status.has_value()) {
      const YAML::Node patch = YAML::Load(kube::StatusMergePatch(*status, ""));
      absl::StrAppend(&object, ", status = ", LuaValue(patch["status"]));
    }
    absl::StrAppend(&object, "}");
    std::ofstream(dir_ / "run.lua")
        << "obj = " << object << "\n"
        << "local hs = dofile(" << LuaString((dir_ / "health.lua").string()) << ")\n"
        << "io.write(hs.status, \"\\n\", hs.message or \"\", \"\\n\")\n";
    const ProcessResult lua = RunProcess({SLUICE_LUA, (dir_ / "run.lua").string()});
    EXPECT_EQ(lua.exit_code, 0) << Describe(lua);
    const size_t newline = lua.out.find('\n');
    if (newline == std::string::npos) return Health{};
    return Health{lua.out.substr(0, newline), lua.out.substr(newline + 1)};
  }

  static RunView Run(int64_t generation, RunView::Phase phase) {
    RunView run;
    run.started_at = kStart;
    run.instance = "sluice-operator-0";
    run.target = "head";
    run.generation = generation;
    run.phase = phase;
    run.planned = true;
    run.current = {"r1"};
    run.target_revisions = {"r2"};
    run.pending = {"r2"};
    run.migrations_digest = "sha256:a";
    run.completed_at = kStart + absl::Seconds(2);
    return run;
  }

  fs::path dir_;
};

TEST_F(ArgoCdHealthTest, ReadyAtTheCurrentGenerationIsHealthy) {
  RunView run = Run(1, RunView::Phase::kSucceeded);
  run.current = {"r2"};
  const kube::MigrationJobStatus status = reporting::Compose(std::nullopt, run, kStart);
  const Health health = Check(1, status);
  EXPECT_EQ(health.status, "Healthy");
  EXPECT_THAT(health.message, HasSubstr("database at r2"));
  // The spec changed since: that run says nothing about the new generation.
  EXPECT_EQ(Check(2, status).status, "Progressing");
}

TEST_F(ArgoCdHealthTest, ARunUnderWayOrNewContentIsProgressing) {
  const kube::MigrationJobStatus running =
      reporting::Compose(std::nullopt, Run(1, RunView::Phase::kRunning), kStart);
  EXPECT_EQ(Check(1, running).status, "Progressing");

  RunView done = Run(1, RunView::Phase::kSucceeded);
  const kube::MigrationJobStatus succeeded = reporting::Compose(std::nullopt, done, kStart);
  RunView changed = Run(1, RunView::Phase::kRunning);
  changed.started_at = kStart + absl::Minutes(1);
  changed.content_changed = true;
  changed.migrations_digest = "sha256:b";
  const Health health = Check(1, reporting::Compose(succeeded, changed, kStart + absl::Minutes(1)));
  EXPECT_EQ(health.status, "Progressing");
  EXPECT_THAT(health.message, HasSubstr("the migrations changed"));
}

TEST_F(ArgoCdHealthTest, AFailedRunOrAProblemIsDegradedWithItsMessage) {
  RunView failed = Run(1, RunView::Phase::kFailed);
  failed.step_failed = true;
  failed.error = kube::LastError{"r2", "42P07", "relation \"orders\" already exists"};
  Health health = Check(1, reporting::Compose(std::nullopt, failed, kStart));
  EXPECT_EQ(health.status, "Degraded");
  EXPECT_THAT(health.message, HasSubstr("relation \"orders\" already exists"));

  RunView problem = Run(1, RunView::Phase::kFailed);
  problem.planned = false;
  problem.failure_reason = "ConfigMapNotFound";
  problem.error = kube::LastError{"", "", "ConfigMap apps/app-migrations not found"};
  health = Check(1, reporting::Compose(std::nullopt, problem, kStart));
  EXPECT_EQ(health.status, "Degraded");
  EXPECT_THAT(health.message, HasSubstr("app-migrations not found"));
}

TEST_F(ArgoCdHealthTest, NoStatusYetIsProgressingAndSuspendedIsSuspended) {
  EXPECT_EQ(Check(1, std::nullopt).status, "Progressing");
  EXPECT_EQ(Check(1, std::nullopt, /*suspend=*/true).status, "Suspended");
}

}  // namespace
}  // namespace sluice::testing
