// Shared by the chart and manifest tests: YAML documents, the objects among them, and the checks
// every deployable object must pass (names, least-privilege RBAC, the containers' security
// context). Test support only.
#ifndef SLUICE_TESTS_DEPLOY_DEPLOY_TEST_SUPPORT_H_
#define SLUICE_TESTS_DEPLOY_DEPLOY_TEST_SUPPORT_H_

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace sluice::testing {

// Returns the repository's path of `relative`.
std::string SourcePath(const std::string& relative);
// Returns the bytes of the file at `path` ("" and a test failure when it cannot be read).
std::string ReadText(const std::string& path);

// Returns the non-empty YAML documents of `text`; a parse error is a test failure naming `where`.
std::vector<YAML::Node> Documents(const std::string& text, const std::string& where);

// Returns "Kind/name" of an object.
std::string ObjectName(YAML::Node object);

// Returns the object of `kind` named `name` among `objects`, or a null node.
YAML::Node FindObject(const std::vector<YAML::Node>& objects, const std::string& kind,
                      const std::string& name);
// Returns the objects of `kind`.
std::vector<YAML::Node> ObjectsOfKind(const std::vector<YAML::Node>& objects,
                                      const std::string& kind);

// Returns "Kind/name" of each ConfigMap, Secret and ServiceAccount that the pods of `workload` (a
// Deployment or a Job) use: the ServiceAccount when one is named, volumes, image pull Secrets and
// the containers' env references.
std::vector<std::string> ObjectsPodsUse(YAML::Node workload);

// Returns `node` as a list of strings (a scalar counts as a list of one).
std::vector<std::string> Strings(YAML::Node node);

// Checks that the object has apiVersion, kind and metadata.name.
void ExpectWellFormed(YAML::Node object, const std::string& where);
// Checks a Role or ClusterRole: no wildcard group, resource or verb; Secrets get, list and watch at
// most; nothing that escalates (bind, escalate, impersonate).
void ExpectLeastPrivilege(YAML::Node role, const std::string& where);
// Checks every sluice container of a pod spec (its image names sluice): non-root, read-only root
// filesystem, no privilege escalation, every capability dropped, seccomp RuntimeDefault (the
// container's or the pod's), and the image's entrypoint (/sluice) left alone: no `command`.
// Returns how many containers it checked.
int ExpectLockedDown(YAML::Node pod_spec, const std::string& where);

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_DEPLOY_DEPLOY_TEST_SUPPORT_H_
