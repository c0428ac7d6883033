// The plain manifests of manifests/: every document parses and names itself, RBAC is least
// privilege, sluice's containers are locked down, and what refers to something names what the
// folder defines. (That the CRD declares every status field sluice writes is checked by
// tests/support/fake_kube's CrdTest and by every end-to-end test against the fake API server,
// which fails on any field the schema would prune.)
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_support.h"
#include "yaml-cpp/yaml.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;

// Every document of manifests/*.yaml, by file.
std::map<std::string, std::vector<YAML::Node>> AllManifests() {
  std::map<std::string, std::vector<YAML::Node>> files;
  for (const auto& entry : fs::directory_iterator(SourcePath("manifests"))) {
    const std::string name = entry.path().filename().string();
    if (!absl::EndsWith(name, ".yaml") && !absl::EndsWith(name, ".yml")) continue;
    files[name] = Documents(ReadText(entry.path().string()), name);
  }
  return files;
}

// Returns the pod spec of a workload (Deployment, Job, ...), or a null node.
YAML::Node PodSpec(YAML::Node object) {
  const std::string kind = object["kind"].as<std::string>("");
  if (kind == "Pod") return object["spec"];
  if (kind == "CronJob") return object["spec"]["jobTemplate"]["spec"]["template"]["spec"];
  return object["spec"]["template"]["spec"];
}

TEST(ManifestsTest, EveryDocumentParsesAndNamesItself) {
  const auto files = AllManifests();
  EXPECT_GE(files.size(), 4u);
  for (const auto& [file, documents] : files) {
    EXPECT_FALSE(documents.empty()) << file;
    for (YAML::Node object : documents) ExpectWellFormed(object, file);
  }
}

TEST(ManifestsTest, RbacIsLeastPrivilegeAndBindsWhatExists) {
  std::set<std::string> service_accounts;
  std::set<std::string> roles;
  int checked = 0;
  const auto files = AllManifests();
  for (const auto& [file, documents] : files) {
    for (YAML::Node object : documents) {
      const std::string kind = object["kind"].as<std::string>("");
      const std::string name = object["metadata"]["name"].as<std::string>("");
      if (kind == "ServiceAccount") service_accounts.insert(name);
      if (kind == "Role" || kind == "ClusterRole") {
        roles.insert(kind + "/" + name);
        ExpectLeastPrivilege(object, file);
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 1);
  for (const auto& [file, documents] : files) {
    for (YAML::Node object : documents) {
      const std::string kind = object["kind"].as<std::string>("");
      if (kind != "RoleBinding" && kind != "ClusterRoleBinding") continue;
      EXPECT_EQ(roles.count(absl::StrCat(object["roleRef"]["kind"].as<std::string>(""), "/",
                                         object["roleRef"]["name"].as<std::string>(""))),
                1u)
          << file << ": " << ObjectName(object) << " binds a role the folder does not define";
      for (YAML::Node subject : object["subjects"]) {
        if (subject["kind"].as<std::string>("") != "ServiceAccount") continue;
        EXPECT_EQ(service_accounts.count(subject["name"].as<std::string>("")), 1u)
            << file << ": " << ObjectName(object);
      }
    }
  }
}

TEST(ManifestsTest, SluiceContainersAreLockedDownAndUseWhatTheFolderDefines) {
  std::set<std::string> service_accounts;
  for (const auto& [file, documents] : AllManifests()) {
    for (YAML::Node object : documents) {
      if (object["kind"].as<std::string>("") == "ServiceAccount") {
        service_accounts.insert(object["metadata"]["name"].as<std::string>(""));
      }
    }
  }
  int workloads = 0;
  for (const auto& [file, documents] : AllManifests()) {
    for (YAML::Node object : documents) {
      YAML::Node pod = PodSpec(object);
      if (!pod.IsMap() || !pod["containers"].IsDefined()) continue;
      const std::string where = absl::StrCat(file, ": ", ObjectName(object));
      if (ExpectLockedDown(pod, where) == 0) continue;
      ++workloads;
      // A pod that reports to a MigrationJob, or runs the operator, runs as a ServiceAccount with
      // that RBAC; one that only waits needs no API access at all.
      bool uses_api = false;
      for (const char* list : {"initContainers", "containers"}) {
        for (YAML::Node container : pod[list]) {
          const std::vector<std::string> args = Strings(container["args"]);
          uses_api = uses_api || (!args.empty() && args[0] == "operator");
          for (const std::string& arg : args) {
            uses_api = uses_api || absl::StartsWith(arg, "--report");
          }
        }
      }
      if (uses_api) {
        EXPECT_EQ(service_accounts.count(pod["serviceAccountName"].as<std::string>("")), 1u)
            << where;
      } else {
        EXPECT_FALSE(pod["automountServiceAccountToken"].as<bool>(true)) << where;
      }
    }
  }
  EXPECT_GE(workloads, 3);
}

// The operator's Deployment: leader election on, probes on the health port, resources set, and the
// namespace it watches is the one its Role grants.
TEST(ManifestsTest, TheOperatorRunsWithLeaderElectionProbesAndItsOwnRole) {
  const auto files = AllManifests();
  ASSERT_EQ(files.count("operator.yaml"), 1u);
  YAML::Node deployment = files.at("operator.yaml")[0];
  ASSERT_EQ(deployment["kind"].as<std::string>(""), "Deployment");
  YAML::Node pod = PodSpec(deployment);
  YAML::Node container = pod["containers"][0];
  const std::vector<std::string> args = Strings(container["args"]);
  ASSERT_FALSE(args.empty());
  EXPECT_EQ(args[0], "operator");
  EXPECT_THAT(args, ::testing::Contains("--leader-elect=true"));
  EXPECT_EQ(container["livenessProbe"]["httpGet"]["path"].as<std::string>(""), "/healthz");
  EXPECT_EQ(container["readinessProbe"]["httpGet"]["path"].as<std::string>(""), "/readyz");
  EXPECT_TRUE(container["resources"]["requests"]["memory"].IsDefined());
  EXPECT_TRUE(container["resources"]["limits"]["memory"].IsDefined());
  EXPECT_GE(deployment["spec"]["replicas"].as<int>(0), 2);
  std::string watched;
  for (const std::string& arg : args) {
    if (absl::StartsWith(arg, "--namespace=")) watched = arg.substr(12);
  }
  ASSERT_FALSE(watched.empty()) << "the manifests fix the namespace, so the RBAC can be a Role";
  bool granted = false;
  for (YAML::Node object : files.at("rbac-operator.yaml")) {
    if (object["kind"].as<std::string>("") != "Role") continue;
    if (object["metadata"]["namespace"].as<std::string>("") != watched) continue;
    for (YAML::Node rule : object["rules"]) {
      for (const std::string& resource : Strings(rule["resources"])) {
        if (resource == "secrets") {
          granted = true;
          EXPECT_EQ(Strings(rule["verbs"]), (std::vector<std::string>{"get", "list", "watch"}));
        }
      }
    }
  }
  EXPECT_TRUE(granted) << "no Role in " << watched << " lets the operator read Secrets";
}

}  // namespace
}  // namespace sluice::testing
