// The Helm chart (helm/sluice), checked with the real helm (scripts/install-tools.sh puts helm
// 4.1.4 in tools/bin): `helm lint --strict`, and `helm template` with the default values and the
// value sets of tests/deploy/values, whose objects are parsed and checked against the values that
// made them: hook annotations and weights in order, every ConfigMap, Secret and ServiceAccount the
// Job refers to rendered or named by the values, the security context, least-privilege RBAC, the
// MigrationJob valid against the CRD. Bad values must be refused by values.schema.json.
#include <cpprest/json.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_support.h"
#include "tests/support/fake_kube/crd_schema.h"
#include "tests/support/process.h"
#include "yaml-cpp/yaml.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kRelease[] = "shop";
constexpr char kNamespace[] = "apps";
constexpr char kHookAnnotation[] = "helm.sh/hook";

std::string ChartDir() { return SourcePath("helm/sluice"); }

// Runs the real helm with its caches and configuration in a folder of the test's own.
ProcessResult RunHelm(std::vector<std::string> args) {
  static const std::string home = [] {
    std::string dir =
        (fs::temp_directory_path() / absl::StrCat("sluice-helm-", ::getpid())).string();
    fs::create_directories(dir);
    return dir;
  }();
  EXPECT_TRUE(fs::exists(SLUICE_HELM))
      << SLUICE_HELM << " is missing: run scripts/install-tools.sh (scripts/test.sh does)";
  args.insert(args.begin(), SLUICE_HELM);
  return RunProcess(args,
                    {{"HELM_CACHE_HOME", home + "/cache"},
                     {"HELM_CONFIG_HOME", home + "/config"},
                     {"HELM_DATA_HOME", home + "/data"},
                     {"KUBECONFIG", home + "/no-kubeconfig"}},
                    absl::Seconds(60));
}

// Returns `overlay` merged into `base` (maps key by key, anything else replaced), as Helm merges a
// values file into the chart's values.
YAML::Node Merged(YAML::Node base, YAML::Node overlay) {
  if (!base.IsMap() || !overlay.IsMap()) return YAML::Clone(overlay);
  YAML::Node out = YAML::Clone(base);
  for (const auto& entry : overlay) {
    const std::string key = entry.first.as<std::string>();
    out[key] = out[key].IsDefined() ? Merged(out[key], entry.second) : YAML::Clone(entry.second);
  }
  return out;
}

// What `helm template` made with one value set.
struct Rendered {
  std::string name;  // the value set's
  YAML::Node values;
  std::vector<YAML::Node> objects;
};

// Renders the chart with `values_file` (tests/deploy/values/NAME.yaml; "" for the defaults).
Rendered Render(const std::string& values_file) {
  Rendered rendered;
  rendered.name = values_file.empty() ? "defaults" : values_file;
  std::vector<std::string> args = {"template", kRelease, ChartDir(), "--namespace", kNamespace};
  rendered.values = YAML::LoadFile(ChartDir() + "/values.yaml");
  if (!values_file.empty()) {
    const std::string path = SourcePath("tests/deploy/values/" + values_file);
    args.insert(args.end(), {"--values", path});
    rendered.values = Merged(rendered.values, YAML::LoadFile(path));
  }
  const ProcessResult result = RunHelm(args);
  EXPECT_EQ(result.exit_code, 0) << rendered.name << ": " << Describe(result);
  rendered.objects = Documents(result.out, rendered.name);
  return rendered;
}

std::string Fullname() { return absl::StrCat(kRelease, "-sluice"); }

bool IsHook(YAML::Node object) {
  return object["metadata"]["annotations"][kHookAnnotation].IsDefined();
}

int HookWeight(YAML::Node object) {
  return std::stoi(object["metadata"]["annotations"]["helm.sh/hook-weight"].as<std::string>("0"));
}

// Returns the arguments of the first container of a pod template.
std::vector<std::string> Args(YAML::Node pod_spec) {
  return Strings(pod_spec["containers"][0]["args"]);
}

// Returns the volume named `name` of a pod spec.
YAML::Node Volume(YAML::Node pod_spec, const std::string& name) {
  for (YAML::Node volume : pod_spec["volumes"]) {
    if (volume["name"].as<std::string>("") == name) return volume;
  }
  return YAML::Node(YAML::NodeType::Null);
}

std::string ExpectedImage(YAML::Node values) {
  const std::string repository = values["image"]["repository"].as<std::string>();
  const std::string digest = values["image"]["digest"].as<std::string>("");
  if (!digest.empty()) return absl::StrCat(repository, "@", digest);
  const std::string tag = values["image"]["tag"].as<std::string>("");
  return absl::StrCat(repository, ":", tag.empty() ? "0.1.0" : tag);
}

// Checks the object rendered from `MigrationJob` against the CRD's schema, as the API server would
// (tests/support/fake_kube): nothing pruned, no field error.
void ExpectValidMigrationJob(YAML::Node object, const std::string& where) {
  absl::StatusOr<fake_kube::CrdInfo> crd = fake_kube::LoadCrd(SourcePath("manifests/crd.yaml"));
  ASSERT_TRUE(crd.ok()) << crd.status();
  const std::string path =
      (fs::temp_directory_path() / absl::StrCat("sluice-chart-mj-", ::getpid(), ".yaml")).string();
  std::ofstream(path) << YAML::Dump(object) << "\n";
  absl::StatusOr<std::vector<std::string>> json = fake_kube::YamlFileToJson(path);
  fs::remove(path);
  ASSERT_TRUE(json.ok()) << json.status();
  ASSERT_EQ(json->size(), 1u);
  web::json::value value = web::json::value::parse((*json)[0]);
  EXPECT_THAT(fake_kube::Prune(*crd->schema, value), IsEmpty()) << where;
  std::vector<fake_kube::FieldError> errors;
  fake_kube::Validate(*crd->schema, value, "", errors);
  for (const fake_kube::FieldError& error : errors) {
    ADD_FAILURE() << where << ": " << error.field << ": " << error.message;
  }
}

// Every check of one rendering against the values that made it.
// Expects every ConfigMap, Secret and ServiceAccount that a rendered pod uses to be rendered too,
// or to be one that the values name for the user to provide (values.yaml says so of each): the
// database URL's Secret, the image pull Secrets, an existing ConfigMap or ServiceAccount.
void ExpectPodReferencesResolved(const Rendered& r) {
  YAML::Node v = r.values;
  std::set<std::string> provided = {"Secret/" +
                                    v["database"]["urlSecret"]["name"].as<std::string>()};
  for (YAML::Node pull : v["imagePullSecrets"]) {
    provided.insert("Secret/" + pull["name"].as<std::string>());
  }
  if (!v["migrations"]["existingConfigMap"].as<std::string>("").empty()) {
    provided.insert("ConfigMap/" + v["migrations"]["existingConfigMap"].as<std::string>());
  }
  for (const char* part : {"migrationJob", "operator"}) {
    if (!v[part]["serviceAccount"]["create"].as<bool>()) {
      provided.insert("ServiceAccount/" + v[part]["serviceAccount"]["name"].as<std::string>());
    }
  }
  int pods = 0;
  for (const char* kind : {"Job", "Deployment"}) {
    for (YAML::Node workload : ObjectsOfKind(r.objects, kind)) {
      ++pods;
      const std::string where = absl::StrCat(r.name, ": ", ObjectName(workload));
      const std::vector<std::string> used = ObjectsPodsUse(workload);
      for (const std::string& object : used) {
        const size_t slash = object.find('/');
        const bool rendered =
            !FindObject(r.objects, object.substr(0, slash), object.substr(slash + 1)).IsNull();
        EXPECT_TRUE(rendered || provided.count(object) > 0)
            << where << " uses " << object
            << ", which the chart neither renders nor names in its values";
      }
    }
  }
  EXPECT_GE(pods, 1) << r.name;
}

void ExpectChartObjects(const Rendered& r) {
  YAML::Node v = r.values;
  const std::string& where = r.name;
  const bool job_enabled = v["migrationJob"]["enabled"].as<bool>();
  const bool report = v["migrationJob"]["report"]["enabled"].as<bool>();
  const bool operator_enabled = v["operator"]["enabled"].as<bool>();
  ASSERT_FALSE(r.objects.empty()) << where;

  // Names, namespaces, labels and extra annotations; hooks as the chart means them.
  for (YAML::Node object : r.objects) {
    const std::string name = absl::StrCat(where, ": ", ObjectName(object));
    ExpectWellFormed(object, name);
    const std::string kind = object["kind"].as<std::string>();
    if (kind != "ClusterRole" && kind != "ClusterRoleBinding") {
      EXPECT_FALSE(object["metadata"]["namespace"].as<std::string>("").empty()) << name;
    }
    EXPECT_EQ(object["metadata"]["labels"]["app.kubernetes.io/instance"].as<std::string>(""),
              kRelease)
        << name;
    for (const auto& label : v["commonLabels"]) {
      EXPECT_EQ(object["metadata"]["labels"][label.first.as<std::string>()].as<std::string>(""),
                label.second.as<std::string>())
          << name;
    }
    for (const auto& annotation : v["commonAnnotations"]) {
      EXPECT_EQ(
          object["metadata"]["annotations"][annotation.first.as<std::string>()].as<std::string>(""),
          annotation.second.as<std::string>())
          << name;
    }
    EXPECT_NE(kind, "Secret") << name << ": the chart never holds the database URL";
    if (IsHook(object)) {
      YAML::Node annotations = object["metadata"]["annotations"];
      EXPECT_EQ(annotations[kHookAnnotation].as<std::string>(), "pre-install,pre-upgrade") << name;
      EXPECT_EQ(annotations["helm.sh/hook-delete-policy"].as<std::string>(""),
                "before-hook-creation")
          << name;
      EXPECT_TRUE(job_enabled) << name << ": a hook without the migration Job";
      EXPECT_EQ(object["metadata"]["labels"]["app.kubernetes.io/component"].as<std::string>(""),
                "migration")
          << name;
    }
  }
  for (const char* kind : {"Role", "ClusterRole"}) {
    for (YAML::Node role : ObjectsOfKind(r.objects, kind)) ExpectLeastPrivilege(role, where);
  }

  // The migration Job and what it needs, rendered as hooks of lower weight, or named by the values.
  YAML::Node job = FindObject(r.objects, "Job", Fullname() + "-migrate");
  EXPECT_EQ(job.IsNull(), !job_enabled) << where;
  if (job_enabled && !job.IsNull()) {
    ASSERT_TRUE(IsHook(job)) << where;
    const int job_weight = HookWeight(job);
    EXPECT_EQ(job["spec"]["backoffLimit"].as<int>(), v["migrationJob"]["backoffLimit"].as<int>());
    EXPECT_EQ(job["spec"]["activeDeadlineSeconds"].as<int>(),
              v["migrationJob"]["activeDeadlineSeconds"].as<int>());
    YAML::Node pod = job["spec"]["template"]["spec"];
    EXPECT_EQ(pod["restartPolicy"].as<std::string>(), "Never");
    ExpectLockedDown(pod, where + ": the migration Job");
    EXPECT_EQ(pod["containers"][0]["image"].as<std::string>(), ExpectedImage(v)) << where;
    EXPECT_EQ(pod["automountServiceAccountToken"].as<bool>(), report) << where;
    for (const auto& annotation : v["migrationJob"]["podAnnotations"]) {
      EXPECT_EQ(
          job["spec"]["template"]["metadata"]["annotations"][annotation.first.as<std::string>()]
              .as<std::string>(""),
          annotation.second.as<std::string>());
    }

    // ServiceAccount: the chart's own hook, or the existing one the values name; never "default".
    const std::string service_account = pod["serviceAccountName"].as<std::string>("");
    EXPECT_NE(service_account, "") << where;
    EXPECT_NE(service_account, "default") << where;
    YAML::Node sa_object = FindObject(r.objects, "ServiceAccount", service_account);
    if (v["migrationJob"]["serviceAccount"]["create"].as<bool>()) {
      ASSERT_FALSE(sa_object.IsNull()) << where << ": ServiceAccount " << service_account;
      EXPECT_TRUE(IsHook(sa_object));
      EXPECT_LT(HookWeight(sa_object), job_weight) << where;
    } else {
      EXPECT_TRUE(sa_object.IsNull()) << where;
      EXPECT_EQ(service_account, v["migrationJob"]["serviceAccount"]["name"].as<std::string>());
    }

    // Migrations: the chart's ConfigMap hook holding its files byte for byte, or the existing one.
    const std::string config_map =
        Volume(pod, "migrations")["configMap"]["name"].as<std::string>("");
    const std::string existing = v["migrations"]["existingConfigMap"].as<std::string>("");
    YAML::Node cm_object = FindObject(r.objects, "ConfigMap", config_map);
    if (!existing.empty()) {
      EXPECT_EQ(config_map, existing) << where;
      EXPECT_TRUE(ObjectsOfKind(r.objects, "ConfigMap").empty()) << where;
    } else {
      ASSERT_FALSE(cm_object.IsNull()) << where << ": ConfigMap " << config_map;
      EXPECT_TRUE(IsHook(cm_object));
      EXPECT_LT(HookWeight(cm_object), job_weight) << where;
      std::set<std::string> keys;
      for (const auto& entry : fs::directory_iterator(ChartDir() + "/migrations")) {
        const std::string key = entry.path().filename().string();
        keys.insert(key);
        EXPECT_EQ(cm_object["data"][key].as<std::string>(""), ReadText(entry.path().string()))
            << where << ": " << key;
      }
      EXPECT_EQ(cm_object["data"].size(), keys.size());
    }
    const std::vector<std::string> args = Args(pod);
    EXPECT_THAT(args, Contains("--migrations=/migrations"));

    // The database URL: from the values' Secret, mounted as a file, never in the chart.
    YAML::Node secret = Volume(pod, "database-url")["secret"];
    EXPECT_EQ(secret["secretName"].as<std::string>(""),
              v["database"]["urlSecret"]["name"].as<std::string>());
    EXPECT_EQ(secret["items"][0]["key"].as<std::string>(""),
              v["database"]["urlSecret"]["key"].as<std::string>());
    EXPECT_THAT(args, Contains("--database-url-file=/var/run/secrets/sluice/database-url"));
    EXPECT_EQ(args[0], "upgrade");
    EXPECT_EQ(args[1], v["migrationJob"]["target"].as<std::string>());
    EXPECT_THAT(args, Contains("--schema=" + v["database"]["schema"].as<std::string>()));
    for (YAML::Node extra : v["migrationJob"]["extraArgs"]) {
      EXPECT_THAT(args, Contains(extra.as<std::string>()));
    }

    // The MigrationJob it reports to, and the RBAC that allows exactly that.
    YAML::Node migration_job = FindObject(r.objects, "MigrationJob", Fullname());
    EXPECT_EQ(migration_job.IsNull(), !report) << where;
    const std::string report_arg = absl::StrCat("--report=$(POD_NAMESPACE)/", Fullname());
    EXPECT_EQ(std::count(args.begin(), args.end(), report_arg), report ? 1 : 0) << where;
    if (report) {
      EXPECT_LT(HookWeight(migration_job), job_weight) << where;
      ExpectValidMigrationJob(migration_job, where);
      EXPECT_EQ(migration_job["spec"]["database"]["urlSecretRef"]["name"].as<std::string>(),
                secret["secretName"].as<std::string>());
      EXPECT_EQ(migration_job["spec"]["migrations"]["configMaps"][0]["name"].as<std::string>(),
                config_map);
      EXPECT_EQ(migration_job["spec"]["target"].as<std::string>(),
                v["migrationJob"]["target"].as<std::string>());
      if (v["migrationJob"]["serviceAccount"]["create"].as<bool>()) {
        YAML::Node role = FindObject(r.objects, "Role", service_account);
        YAML::Node binding = FindObject(r.objects, "RoleBinding", service_account);
        ASSERT_FALSE(role.IsNull() || binding.IsNull()) << where;
        EXPECT_LT(HookWeight(role), HookWeight(migration_job));
        EXPECT_LT(HookWeight(binding), job_weight);
        for (YAML::Node rule : role["rules"]) {
          if (Strings(rule["apiGroups"]) == std::vector<std::string>{"sluice.dev"}) {
            EXPECT_THAT(Strings(rule["resourceNames"]), ElementsAre(Fullname()));
          }
        }
        EXPECT_EQ(binding["subjects"][0]["name"].as<std::string>(), service_account);
        EXPECT_EQ(binding["roleRef"]["name"].as<std::string>(), service_account);
      }
    } else {
      EXPECT_TRUE(FindObject(r.objects, "Role", service_account).IsNull()) << where;
    }
  }

  // The operator, only when enabled, with issue 11's command line, probes and metrics.
  YAML::Node deployment = FindObject(r.objects, "Deployment", Fullname() + "-operator");
  YAML::Node service = FindObject(r.objects, "Service", Fullname() + "-operator-metrics");
  EXPECT_EQ(deployment.IsNull(), !operator_enabled) << where;
  EXPECT_EQ(service.IsNull(), !operator_enabled) << where;
  if (operator_enabled && !deployment.IsNull()) {
    YAML::Node o = v["operator"];
    EXPECT_FALSE(IsHook(deployment));
    EXPECT_EQ(deployment["spec"]["replicas"].as<int>(), o["replicas"].as<int>());
    YAML::Node pod = deployment["spec"]["template"]["spec"];
    ExpectLockedDown(pod, where + ": the operator");
    YAML::Node container = pod["containers"][0];
    EXPECT_EQ(container["image"].as<std::string>(), ExpectedImage(v));
    const std::vector<std::string> args = Args(pod);
    ASSERT_FALSE(args.empty());
    EXPECT_EQ(args[0], "operator");
    EXPECT_THAT(args, Contains(absl::StrCat("--leader-elect=",
                                            o["leaderElect"].as<bool>() ? "true" : "false")));
    EXPECT_THAT(args, Contains("--health-addr=:" + o["healthPort"].as<std::string>()));
    EXPECT_THAT(args, Contains("--metrics-addr=:" + o["metricsPort"].as<std::string>()));
    EXPECT_THAT(args, Contains("--max-concurrent=" + o["maxConcurrent"].as<std::string>()));
    // The Lease the operator elects its leader with is the one its Role may get and update.
    const std::string lease = Fullname() + "-operator";
    EXPECT_THAT(args, Contains("--leader-election-id=" + lease));
    bool lease_named = false;
    for (YAML::Node object : r.objects) {
      if (object["kind"].as<std::string>("") != "Role" ||
          !absl::EndsWith(object["metadata"]["name"].as<std::string>(""), "-leader-election")) {
        continue;
      }
      for (YAML::Node rule : object["rules"]) {
        for (YAML::Node n : rule["resourceNames"]) {
          lease_named = lease_named || n.as<std::string>() == lease;
        }
      }
    }
    EXPECT_EQ(lease_named, o["leaderElect"].as<bool>()) << where;
    const std::string watch = o["watchNamespace"].as<std::string>("");
    EXPECT_EQ(std::count(args.begin(), args.end(), "--namespace=" + watch), watch.empty() ? 0 : 1);
    std::map<std::string, int> ports;
    for (YAML::Node port : container["ports"]) {
      ports[port["name"].as<std::string>()] = port["containerPort"].as<int>();
    }
    EXPECT_EQ(ports["health"], o["healthPort"].as<int>());
    EXPECT_EQ(ports["metrics"], o["metricsPort"].as<int>());
    EXPECT_EQ(container["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
    EXPECT_EQ(container["livenessProbe"]["httpGet"]["port"].as<std::string>(), "health");
    EXPECT_EQ(container["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
    EXPECT_EQ(service["spec"]["ports"][0]["targetPort"].as<std::string>(), "metrics");
    EXPECT_EQ(service["spec"]["ports"][0]["port"].as<int>(), o["metricsPort"].as<int>());
    for (const auto& selector : deployment["spec"]["selector"]["matchLabels"]) {
      const std::string key = selector.first.as<std::string>();
      EXPECT_EQ(deployment["spec"]["template"]["metadata"]["labels"][key].as<std::string>(""),
                selector.second.as<std::string>());
      EXPECT_EQ(service["spec"]["selector"][key].as<std::string>(""),
                selector.second.as<std::string>());
    }
    const std::string account = pod["serviceAccountName"].as<std::string>("");
    ASSERT_FALSE(FindObject(r.objects, "ServiceAccount", account).IsNull()) << where;
    const std::string role_kind = watch.empty() ? "ClusterRole" : "Role";
    YAML::Node role = FindObject(r.objects, role_kind, account);
    YAML::Node binding = FindObject(r.objects, role_kind + "Binding", account);
    ASSERT_FALSE(role.IsNull() || binding.IsNull()) << where << ": " << role_kind;
    if (!watch.empty()) {
      EXPECT_EQ(role["metadata"]["namespace"].as<std::string>(), watch);
    }
    EXPECT_EQ(binding["subjects"][0]["name"].as<std::string>(), account);
    EXPECT_EQ(binding["subjects"][0]["namespace"].as<std::string>(), kNamespace);
    YAML::Node lease_role = FindObject(r.objects, "Role", account + "-leader-election");
    EXPECT_EQ(lease_role.IsNull(), !o["leaderElect"].as<bool>()) << where;
    if (!lease_role.IsNull()) {
      EXPECT_EQ(lease_role["metadata"]["namespace"].as<std::string>(), kNamespace);
      EXPECT_THAT(Strings(lease_role["rules"][0]["resources"]), ElementsAre("leases"));
    }
  }
}

class ChartValuesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ChartValuesTest, LintsStrictAndRendersWhatTheValuesSay) {
  const std::string file = GetParam();
  std::vector<std::string> lint = {"lint", "--strict", ChartDir(), "--namespace", kNamespace};
  if (!file.empty())
    lint.insert(lint.end(), {"--values", SourcePath("tests/deploy/values/" + file)});
  const ProcessResult linted = RunHelm(lint);
  EXPECT_EQ(linted.exit_code, 0) << Describe(linted);
  EXPECT_THAT(linted.out, HasSubstr("0 chart(s) failed"));
  const Rendered rendered = Render(file);
  ExpectChartObjects(rendered);
  ExpectPodReferencesResolved(rendered);
}

INSTANTIATE_TEST_SUITE_P(ValueSets, ChartValuesTest,
                         ::testing::Values("", "operator-cluster.yaml", "operator-namespaced.yaml",
                                           "existing-configmap.yaml", "digest.yaml",
                                           "annotations.yaml"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.empty() ? "defaults" : info.param;
                           name = name.substr(0, name.find('.'));
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

TEST(ChartTest, DefaultsRunTheHookJobAndNoOperator) {
  const Rendered r = Render("");
  std::map<std::string, int> weight_of_kind;
  for (YAML::Node object : r.objects) {
    ASSERT_TRUE(IsHook(object)) << ObjectName(object) << ": the defaults render hooks only";
    const std::string kind = object["kind"].as<std::string>();
    ASSERT_EQ(weight_of_kind.count(kind), 0u) << "two hooks of kind " << kind;
    weight_of_kind[kind] = HookWeight(object);
  }
  // Helm runs hooks by weight (and the same weight by name, then kind): the RBAC, then the
  // ConfigMap, then the MigrationJob, each created before the Job runs.
  EXPECT_THAT(weight_of_kind, ::testing::SizeIs(6));
  for (const char* rbac : {"ServiceAccount", "Role", "RoleBinding"}) {
    EXPECT_LT(weight_of_kind[rbac], weight_of_kind["ConfigMap"]) << rbac;
  }
  EXPECT_LT(weight_of_kind["ConfigMap"], weight_of_kind["MigrationJob"]);
  EXPECT_LT(weight_of_kind["MigrationJob"], weight_of_kind["Job"]);
}

TEST(ChartTest, RefusesBadValues) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--set", "migrationJob.backofLimit=2"}, "additional properties 'backofLimit' not allowed"},
      {{"--set", "migrationJob.backoffLimit=two"}, "/migrationJob/backoffLimit"},
      {{"--set", "operator.enabled=yes"}, "/operator/enabled"},
      {{"--set", "image.digest=sha256:abc"}, "/image/digest"},
      {{"--set", "image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
      {{"--set", "database.urlSecret.name="}, "/database/urlSecret/name"},
      {{"--set", "migrationJob.logFormat=xml"}, "/migrationJob/logFormat"},
      {{"--set", "migrationJob.lockWait=soon"}, "/migrationJob/lockWait"},
      {{"--set", "operator.metricsPort=70000"}, "/operator/metricsPort"},
      {{"--set-string", "commonAnnotations.helm\\.sh/hook-weight=5"}, "helm.sh/hook-weight"},
      {{"--set", "migrationJob.serviceAccount.create=false"},
       "name the existing ServiceAccount the migration Job runs as"},
      {{"--set", "migrations.filesGlob=nothing/*.yaml"}, "no chart file matches"},
  };
  for (const auto& [flags, expected] : cases) {
    std::vector<std::string> args = {"template", kRelease, ChartDir(), "--namespace", kNamespace};
    args.insert(args.end(), flags.begin(), flags.end());
    const ProcessResult result = RunHelm(args);
    EXPECT_NE(result.exit_code, 0) << flags.back() << ": " << Describe(result);
    EXPECT_THAT(result.err, HasSubstr(expected)) << flags.back();
  }
}

TEST(ChartTest, ShipsTheManifestsCrdAndTheReferenceMigrations) {
  EXPECT_EQ(ReadText(ChartDir() + "/crds/migrationjobs.sluice.dev.yaml"),
            ReadText(SourcePath("manifests/crd.yaml")))
      << "helm/sluice/crds/ must hold manifests/crd.yaml as it is: copy it over";
  std::set<std::string> chart_files;
  for (const auto& entry : fs::directory_iterator(ChartDir() + "/migrations")) {
    chart_files.insert(entry.path().filename().string());
  }
  std::set<std::string> repository_files;
  for (const auto& entry : fs::directory_iterator(SourcePath("migrations"))) {
    repository_files.insert(entry.path().filename().string());
    EXPECT_EQ(ReadText(ChartDir() + "/migrations/" + entry.path().filename().string()),
              ReadText(entry.path().string()))
        << entry.path();
  }
  EXPECT_EQ(chart_files, repository_files);
}

TEST(ChartTest, ValuesYamlCommentsEveryValue) {
  // Each key has a comment line right above it, but for the free-form maps under `resources`.
  const std::vector<std::string> lines =
      absl::StrSplit(ReadText(ChartDir() + "/values.yaml"), '\n');
  int free_form_indent = -1;
  int keys = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    // A key line: indentation, then [A-Za-z][A-Za-z0-9_.-]* and a colon. (No <regex>: g++ 12
    // warns inside it under the sanitizers.)
    const std::string& line = lines[i];
    const size_t at = line.find_first_not_of(' ');
    if (at == std::string::npos || !absl::ascii_isalpha(line[at])) continue;
    size_t after = at;
    while (after < line.size() && (absl::ascii_isalnum(line[after]) || line[after] == '_' ||
                                   line[after] == '.' || line[after] == '-')) {
      ++after;
    }
    if (after >= line.size() || line[after] != ':') continue;
    const int indent = static_cast<int>(at);
    const std::string name = line.substr(at, after - at);
    if (free_form_indent >= 0 && indent > free_form_indent) continue;
    free_form_indent = name == "resources" ? indent : -1;
    ++keys;
    const std::string above =
        i > 0 ? std::string(absl::StripLeadingAsciiWhitespace(lines[i - 1])) : "";
    EXPECT_TRUE(absl::StartsWith(above, "#"))
        << "values.yaml:" << i + 1 << ": " << lines[i] << " has no comment above it";
  }
  EXPECT_GT(keys, 40);
}

}  // namespace
}  // namespace sluice::testing
