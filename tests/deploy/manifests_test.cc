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
      // A pod that reports to a MigrationJob runs as a ServiceAccount with that RBAC; one that
      // only waits needs no API access at all.
      bool reports = false;
      for (YAML::Node container : pod["initContainers"]) {
        for (const std::string& arg : Strings(container["args"])) {
          reports = reports || absl::StartsWith(arg, "--report");
        }
      }
      if (reports) {
        EXPECT_EQ(service_accounts.count(pod["serviceAccountName"].as<std::string>("")), 1u)
            << where;
      } else {
        EXPECT_FALSE(pod["automountServiceAccountToken"].as<bool>(true)) << where;
      }
    }
  }
  EXPECT_GE(workloads, 2);
}

}  // namespace
}  // namespace sluice::testing
