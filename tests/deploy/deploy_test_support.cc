#include "tests/deploy/deploy_test_support.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace sluice::testing {

std::string SourcePath(const std::string& relative) {
  return absl::StrCat(SLUICE_SOURCE_DIR, "/", relative);
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<YAML::Node> Documents(const std::string& text, const std::string& where) {
  std::vector<YAML::Node> documents;
  try {
    for (YAML::Node document : YAML::LoadAll(text)) {
      if (document.IsDefined() && !document.IsNull()) documents.push_back(document);
    }
  } catch (const YAML::Exception& e) {
    ADD_FAILURE() << where << ": not YAML: " << e.what();
  }
  return documents;
}

std::string ObjectName(YAML::Node object) {
  return absl::StrCat(object["kind"].as<std::string>(""), "/",
                      object["metadata"]["name"].as<std::string>(""));
}

YAML::Node FindObject(const std::vector<YAML::Node>& objects, const std::string& kind,
                      const std::string& name) {
  for (YAML::Node object : objects) {
    if (object["kind"].as<std::string>("") == kind &&
        object["metadata"]["name"].as<std::string>("") == name) {
      return object;
    }
  }
  return YAML::Node(YAML::NodeType::Null);
}

std::vector<YAML::Node> ObjectsOfKind(const std::vector<YAML::Node>& objects,
                                      const std::string& kind) {
  std::vector<YAML::Node> found;
  for (YAML::Node object : objects) {
    if (object["kind"].as<std::string>("") == kind) found.push_back(object);
  }
  return found;
}

std::vector<std::string> ObjectsPodsUse(YAML::Node workload) {
  YAML::Node pod = workload["spec"]["template"]["spec"];
  std::vector<std::string> used;
  if (pod["serviceAccountName"]) {
    used.push_back("ServiceAccount/" + pod["serviceAccountName"].as<std::string>());
  }
  for (YAML::Node volume : pod["volumes"]) {
    if (volume["configMap"]) {
      used.push_back("ConfigMap/" + volume["configMap"]["name"].as<std::string>());
    }
    if (volume["secret"])
      used.push_back("Secret/" + volume["secret"]["secretName"].as<std::string>());
  }
  for (YAML::Node pull : pod["imagePullSecrets"]) {
    used.push_back("Secret/" + pull["name"].as<std::string>());
  }
  for (const char* list : {"initContainers", "containers"}) {
    for (YAML::Node container : pod[list]) {
      for (YAML::Node env : container["env"]) {
        if (env["valueFrom"]["secretKeyRef"]) {
          used.push_back("Secret/" + env["valueFrom"]["secretKeyRef"]["name"].as<std::string>());
        }
        if (env["valueFrom"]["configMapKeyRef"]) {
          used.push_back("ConfigMap/" +
                         env["valueFrom"]["configMapKeyRef"]["name"].as<std::string>());
        }
      }
    }
  }
  return used;
}

std::vector<std::string> Strings(YAML::Node node) {
  std::vector<std::string> out;
  if (node.IsScalar()) out.push_back(node.as<std::string>());
  if (node.IsSequence()) {
    for (YAML::Node item : node) out.push_back(item.as<std::string>(""));
  }
  return out;
}

void ExpectWellFormed(YAML::Node object, const std::string& where) {
  EXPECT_TRUE(object.IsMap()) << where << ": a document that is not an object";
  if (!object.IsMap()) return;
  EXPECT_FALSE(object["apiVersion"].as<std::string>("").empty()) << where << ": no apiVersion";
  EXPECT_FALSE(object["kind"].as<std::string>("").empty()) << where << ": no kind";
  EXPECT_FALSE(object["metadata"]["name"].as<std::string>("").empty())
      << where << ": no metadata.name";
}

void ExpectLeastPrivilege(YAML::Node role, const std::string& where) {
  const std::string name = absl::StrCat(where, ": ", ObjectName(role));
  ASSERT_TRUE(role["rules"].IsSequence()) << name << ": no rules";
  for (YAML::Node rule : role["rules"]) {
    const std::vector<std::string> resources = Strings(rule["resources"]);
    const std::vector<std::string> verbs = Strings(rule["verbs"]);
    EXPECT_FALSE(resources.empty()) << name << ": a rule without resources";
    EXPECT_FALSE(verbs.empty()) << name << ": a rule without verbs";
    for (const auto& list : {Strings(rule["apiGroups"]), resources, verbs}) {
      for (const std::string& item : list) EXPECT_EQ(item.find('*'), std::string::npos) << name;
    }
    for (const std::string& verb : verbs) {
      EXPECT_TRUE(verb != "bind" && verb != "escalate" && verb != "impersonate")
          << name << ": verb " << verb;
    }
    for (const std::string& resource : resources) {
      if (resource != "secrets") continue;
      for (const std::string& verb : verbs) {
        EXPECT_TRUE(verb == "get" || verb == "list" || verb == "watch")
            << name << ": secrets may be read, not " << verb;
      }
    }
  }
}

int ExpectLockedDown(YAML::Node pod_spec, const std::string& where) {
  YAML::Node pod = pod_spec["securityContext"];
  std::vector<YAML::Node> containers;
  for (const char* list : {"initContainers", "containers"}) {
    if (pod_spec[list].IsSequence()) {
      for (YAML::Node c : pod_spec[list]) {
        if (c["image"].as<std::string>("").find("sluice") != std::string::npos) {
          containers.push_back(c);
        }
      }
    }
  }
  EXPECT_FALSE(containers.empty()) << where << ": no sluice container";
  for (YAML::Node container : containers) {
    const std::string name =
        absl::StrCat(where, ": container ", container["name"].as<std::string>(""));
    YAML::Node context = container["securityContext"];
    const bool non_root =
        context["runAsNonRoot"].as<bool>(false) || pod["runAsNonRoot"].as<bool>(false);
    EXPECT_TRUE(non_root) << name << ": runAsNonRoot";
    EXPECT_TRUE(context["readOnlyRootFilesystem"].as<bool>(false)) << name;
    EXPECT_FALSE(context["allowPrivilegeEscalation"].as<bool>(true)) << name;
    EXPECT_EQ(Strings(context["capabilities"]["drop"]), std::vector<std::string>{"ALL"}) << name;
    EXPECT_TRUE(Strings(context["capabilities"]["add"]).empty()) << name;
    const std::string seccomp = context["seccompProfile"]["type"].as<std::string>(
        pod["seccompProfile"]["type"].as<std::string>(""));
    EXPECT_EQ(seccomp, "RuntimeDefault") << name;
    EXPECT_FALSE(context["privileged"].as<bool>(false)) << name;
    EXPECT_FALSE(container["command"].IsDefined())
        << name << ": the image's entrypoint is /sluice; give `args` only";
  }
  return static_cast<int>(containers.size());
}

}  // namespace sluice::testing
