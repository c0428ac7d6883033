// The real kubectl (1.35, pinned by scripts/install-tools.sh) against the fake API server:
// discovery maps `mj` to migrationjobs.sluice.dev, `get` prints the CRD's printer columns from the
// served Table, status is patched through the subresource, and `get -w` follows a watch. If these
// pass, the fake serves what a real client reads, not only what sluice's own client expects.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"
#include "tests/support/process.h"

namespace sluice::fake_kube {
namespace {

using ::sluice::testing::Describe;
using ::sluice::testing::Process;
using ::sluice::testing::ProcessResult;
using ::sluice::testing::RunProcess;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

constexpr char kKubectl[] = SLUICE_KUBECTL;  // kubectl 1.35, from scripts/install-tools.sh

class KubectlTest : public FakeKubeFixture {
 protected:
  void SetUp() override {
    FakeKubeFixture::SetUp();
    if (HasFatalFailure()) return;
    kubeconfig_ = WriteKubeconfig();
  }

  std::vector<std::string> Argv(const std::vector<std::string>& args) {
    // Its own discovery cache, so that no test (or earlier run) answers for the server.
    std::vector<std::string> argv = {kKubectl, "--kubeconfig", kubeconfig_, "--cache-dir",
                                     absl::StrCat(dir(), "/kube-cache")};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  std::map<std::string, std::string> Env() { return {{"HOME", dir()}, {"KUBECONFIG", ""}}; }

  ProcessResult Kubectl(const std::vector<std::string>& args) {
    return RunProcess(Argv(args), Env(), absl::Seconds(60));
  }

  std::string kubeconfig_;
};

TEST_F(KubectlTest, GetShowsPhaseCurrentTargetAndAge) {
  CreateMigrationJob("apps", "db");
  ProcessResult patched =
      Kubectl({"-n", "apps", "patch", "mj", "db", "--subresource=status", "--type=merge", "-p",
               R"({"status":{"phase":"Succeeded","currentRevisions":["fc0e7b400c13"]}})"});
  ASSERT_EQ(patched.exit_code, 0) << Describe(patched);
  ProcessResult got = Kubectl({"-n", "apps", "get", "mj"});
  ASSERT_EQ(got.exit_code, 0) << Describe(got);
  EXPECT_THAT(got.out, ContainsRegex("NAME +PHASE +CURRENT +TARGET +AGE\n"));
  EXPECT_THAT(got.out, ContainsRegex("db +Succeeded +\\[\"fc0e7b400c13\"\\] +head +[0-9]+s\n"));
  // The request asked for a Table and got one.
  bool table_asked = false;
  for (const LoggedRequest& r : server().Requests()) {
    if (r.path == "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs") {
      table_asked = table_asked || absl::StrContains(r.accept, "as=Table");
    }
  }
  EXPECT_TRUE(table_asked);
}

TEST_F(KubectlTest, GetWatchPrintsChanges) {
  CreateMigrationJob("apps", "db");
  Process watch(Argv({"-n", "apps", "get", "mj", "-w", "--output-watch-events"}), Env());
  ASSERT_TRUE(server().WaitUntil([&] { return server().OpenWatches() == 1; }, absl::Seconds(30)))
      << watch.ErrorsSoFar();
  CreateMigrationJob("apps", "db2");
  // The event is in the stream before its end: kubectl prints it, then the stream ends.
  server().CloseWatches(/*abruptly=*/false);
  ProcessResult result = watch.Wait(absl::Seconds(30));
  EXPECT_THAT(result.out, ContainsRegex("ADDED +db +"));
  EXPECT_THAT(result.out, ContainsRegex("ADDED +db2 +"));
}

TEST_F(KubectlTest, WaitSeesTheReadyConditionArrive) {
  CreateMigrationJob("apps", "db");
  Process wait(Argv({"-n", "apps", "wait", "mj/db", "--for=condition=Ready", "--timeout=60s"}),
               Env());
  // kubectl lists the object (not Ready yet), then watches it.
  ASSERT_TRUE(server().WaitUntil([&] { return server().OpenWatches() == 1; }, absl::Seconds(30)))
      << wait.ErrorsSoFar();
  ProcessResult patched = Kubectl(
      {"-n", "apps", "patch", "mj", "db", "--subresource=status", "--type=merge", "-p",
       R"({"status":{"conditions":[{"type":"Ready","status":"True","observedGeneration":1,)"
       R"("lastTransitionTime":"2026-12-01T07:00:00Z","reason":"AtTarget","message":""}]}})"});
  ASSERT_EQ(patched.exit_code, 0) << Describe(patched);
  ProcessResult result = wait.Wait(absl::Seconds(30));
  EXPECT_EQ(result.exit_code, 0) << Describe(result);
  EXPECT_THAT(result.out, HasSubstr("migrationjob.sluice.dev/db condition met"));
}

TEST_F(KubectlTest, ApplyCreatesThenPatchesAMigrationJob) {
  auto manifest = [&](const std::string& target) {
    return WriteFile("mj.yaml", absl::StrCat(R"(apiVersion: sluice.dev/v1alpha1
kind: MigrationJob
metadata:
  name: app-db
  namespace: apps
spec:
  target: )",
                                             target, R"(
  database:
    urlSecretRef: {name: app-db, key: url}
  migrations:
    configMaps: [{name: app-migrations}]
)"));
  };
  // The fake serves no OpenAPI document, which kubectl's client-side validation reads.
  ProcessResult created = Kubectl({"apply", "--validate=false", "-f", manifest("head")});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  EXPECT_THAT(created.out, HasSubstr("migrationjob.sluice.dev/app-db created"));
  ProcessResult patched = Kubectl({"apply", "--validate=false", "-f", manifest("fc0e7b400c13")});
  ASSERT_EQ(patched.exit_code, 0) << Describe(patched);
  EXPECT_THAT(patched.out, HasSubstr("migrationjob.sluice.dev/app-db configured"));
  std::optional<std::string> stored = server().GetObject("migrationjobs", "apps", "app-db");
  ASSERT_TRUE(stored.has_value());
  EXPECT_THAT(*stored, HasSubstr(R"("target":"fc0e7b400c13")"));
  EXPECT_THAT(*stored, HasSubstr(R"("generation":2)"));
  EXPECT_THAT(*stored, HasSubstr("kubectl.kubernetes.io/last-applied-configuration"));
  // A custom resource is patched with a JSON merge patch (no strategic merge for CRs).
  bool merge_patched = false;
  for (const LoggedRequest& r : server().Requests()) {
    if (r.method == "PATCH" &&
        r.path == "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/app-db") {
      merge_patched = r.content_type == "application/merge-patch+json";
    }
  }
  EXPECT_TRUE(merge_patched);
}

// A server without the CRD: `kubectl apply -f manifests/crd.yaml` installs it.
class KubectlCrdTest : public KubectlTest {
 protected:
  void SetUp() override {
    install_crd_ = false;
    KubectlTest::SetUp();
  }
};

TEST_F(KubectlCrdTest, ApplyOfTheCrdMakesMigrationJobsServed) {
  ProcessResult before = Kubectl({"-n", "apps", "get", "mj"});
  EXPECT_NE(before.exit_code, 0) << Describe(before);
  EXPECT_THAT(before.err, HasSubstr("the server doesn't have a resource type \"mj\""));

  ProcessResult applied = Kubectl({"apply", "--validate=false", "-f", CrdPath()});
  ASSERT_EQ(applied.exit_code, 0) << Describe(applied);
  EXPECT_THAT(applied.out,
              HasSubstr("customresourcedefinition.apiextensions.k8s.io/migrationjobs.sluice.dev "
                        "created"));
  CreateMigrationJob("apps", "db");
  ProcessResult got = Kubectl({"-n", "apps", "get", "mj"});
  ASSERT_EQ(got.exit_code, 0) << Describe(got);
  EXPECT_THAT(got.out, ContainsRegex("NAME +PHASE +CURRENT +TARGET +AGE\n"));
  // Applying the same CRD again changes nothing.
  ProcessResult again = Kubectl({"apply", "--validate=false", "-f", CrdPath()});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_THAT(again.out, HasSubstr("migrationjobs.sluice.dev unchanged"));
}

}  // namespace
}  // namespace sluice::fake_kube
