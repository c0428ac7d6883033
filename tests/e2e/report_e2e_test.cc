// End to end: the real `sluice` binary, run as a child process as an init container runs it
// (`sluice upgrade head --report NAMESPACE/NAME`), against a real PostgreSQL (SLUICE_TEST_PG_DSN,
// a fresh database per test) and the fake Kubernetes API server over HTTPS. Checks the
// MigrationJob's status and the Events sluice leaves behind, the database, and the exit code.
// Like FakeKubeFixture, TearDown fails a test when a write was pruned or rejected by the CRD.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pkg/kube/json_codec.h"
#include "pkg/kube/types.h"
#include "tests/integration/migrate_test_support.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"
#include "tests/support/fake_kube/fake_kube_server.h"
#include "tests/support/fake_kube/test_pki.h"
#include "tests/support/loopback.h"

namespace sluice::fake_kube {
// For readable failure messages.
void PrintTo(const RecordedEvent& e, std::ostream* os) {
  *os << "{" << e.type << " " << e.reason << " by " << e.reporting_instance << ": " << e.message
      << "}";
}
}  // namespace sluice::fake_kube

namespace sluice::testing {
namespace {

using ::sluice::fake_kube::FakeKubeServer;
using ::sluice::fake_kube::LoggedRequest;
using ::sluice::fake_kube::RecordedEvent;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kNamespace[] = "apps";
constexpr char kName[] = "app-db";
constexpr char kReport[] = "apps/app-db";
constexpr char kPod[] = "app-7d9f8c6b5-x2k4q";
constexpr char kToken[] = "e2e-token-5f1d0c2b9a8e7d6c";

// A MigrateTest (database, manifests, the binary) that also runs a fake API server holding the
// MigrationJob apps/app-db, and a kubeconfig for it.
class ReportE2eTest : public MigrateTest {
 protected:
  void SetUp() override {
    MigrateTest::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<fake_kube::TestCa> ca = fake_kube::TestCa::Create("sluice-e2e-ca");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    absl::StatusOr<fake_kube::PemPair> leaf = ca_->Issue({});
    ASSERT_TRUE(leaf.ok()) << leaf.status();
    fake_kube::ServerOptions options;
    options.crd_path = fake_kube::CrdPath();
    options.cert_pem = leaf->cert_pem;
    options.key_pem = leaf->key_pem;
    absl::StatusOr<std::unique_ptr<FakeKubeServer>> server = FakeKubeServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->AddToken(kToken);
    CreateMigrationJob();
    kubeconfig_ = WriteKubeconfig(server_->url());
  }

  void TearDown() override {
    if (server_ != nullptr) {
      fake_kube::ExpectFaithfulWrites(*server_, /*rejections_expected=*/false);
      server_.reset();
    }
    for (const std::string& path : kubeconfigs_) std::remove(path.c_str());
    MigrateTest::TearDown();
  }

  FakeKubeServer& server() { return *server_; }

  void CreateMigrationJob() {
    absl::StatusOr<std::string> stored = server_->CreateObject(
        "migrationjobs", kNamespace, fake_kube::MigrationJobJson(kNamespace, kName));
    ASSERT_TRUE(stored.ok()) << stored.status();
    absl::StatusOr<kube::MigrationJob> job = kube::ParseMigrationJob(*stored);
    ASSERT_TRUE(job.ok()) << job.status();
    uid_ = job->metadata.uid;
    generation_ = job->metadata.generation;
  }

  // Writes a kubeconfig (CA data, bearer token, namespace "apps") pointing at `server_url`.
  std::string WriteKubeconfig(const std::string& server_url) {
    const std::string path =
        (manifests_.parent_path() / absl::StrCat(manifests_.filename().string(), ".kubeconfig"))
            .string();
    kubeconfigs_.push_back(path);
    std::ofstream out(path, std::ios::trunc);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        << "clusters:\n- name: fake-cluster\n  cluster:\n    server: " << server_url
        << "\n    certificate-authority-data: " << absl::Base64Escape(ca_->cert_pem()) << "\n"
        << "contexts:\n- name: fake\n  context:\n    cluster: fake-cluster\n"
        << "    user: fake-user\n    namespace: " << kNamespace << "\n"
        << "users:\n- name: fake-user\n  user:\n    token: " << kToken << "\n";
    return path;
  }

  // Runs `sluice upgrade head --report apps/app-db` as pod `pod`, plus `extra` flags.
  std::vector<std::string> UpgradeArgs(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"upgrade", "head",         "--report",
                                     kReport,   "--kubeconfig", kubeconfig_};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  static std::map<std::string, std::string> PodEnv(const std::string& pod) {
    // No ambient Kubernetes configuration may leak in from the environment running the tests.
    return {{"POD_NAME", pod},
            {"KUBECONFIG", ""},
            {"KUBERNETES_SERVICE_HOST", ""},
            {"KUBERNETES_SERVICE_PORT", ""}};
  }
  ProcessResult Upgrade(const std::vector<std::string>& extra = {}, const std::string& pod = kPod) {
    ProcessResult r = Sluice(UpgradeArgs(extra), PodEnv(pod));
    EXPECT_THAT(r.out, Not(HasSubstr(kToken)));
    EXPECT_THAT(r.err, Not(HasSubstr(kToken)));
    return r;
  }

  kube::MigrationJob Stored() {
    std::optional<std::string> json = server_->GetObject("migrationjobs", kNamespace, kName);
    EXPECT_TRUE(json.has_value());
    absl::StatusOr<kube::MigrationJob> job = kube::ParseMigrationJob(json.value_or("{}"));
    EXPECT_TRUE(job.ok()) << job.status();
    return job.value_or(kube::MigrationJob{});
  }
  kube::MigrationJobStatus StoredStatus() {
    kube::MigrationJob job = Stored();
    EXPECT_TRUE(job.status.has_value()) << "the MigrationJob has no status";
    return job.status.value_or(kube::MigrationJobStatus{});
  }
  static std::string ConditionStatus(const kube::MigrationJobStatus& s, const std::string& type) {
    for (const kube::Condition& c : s.conditions) {
      if (c.type == type) return c.status;
    }
    return "<absent>";
  }
  static std::string ConditionReason(const kube::MigrationJobStatus& s, const std::string& type) {
    for (const kube::Condition& c : s.conditions) {
      if (c.type == type) return c.reason;
    }
    return "<absent>";
  }
  std::vector<std::string> Reasons() { return fake_kube::ReasonsCollapsed(server_->Events()); }
  void ExpectStoredValid() { EXPECT_THAT(server_->ValidateStored(kNamespace, kName), IsEmpty()); }
  // Expects the final status of a successful run at `head`.
  void ExpectSucceededAt(const kube::MigrationJobStatus& s, const std::string& head) {
    EXPECT_EQ(s.phase, "Succeeded");
    EXPECT_EQ(s.observed_generation, generation_);
    EXPECT_THAT(s.current_revisions, ElementsAre(head));
    EXPECT_THAT(s.target_revisions, ElementsAre(head));
    EXPECT_THAT(s.pending_revisions, IsEmpty());
    EXPECT_FALSE(s.last_error.has_value());
    EXPECT_FALSE(s.started_at.empty());
    EXPECT_FALSE(s.completed_at.empty());
    EXPECT_EQ(ConditionStatus(s, "Ready"), "True");
    EXPECT_EQ(ConditionStatus(s, "Reconciling"), "False");
    EXPECT_EQ(ConditionStatus(s, "Stalled"), "False");
    for (const kube::Condition& c : s.conditions) {
      EXPECT_EQ(c.observed_generation, generation_) << c.type;
    }
    ExpectStoredValid();
  }

  std::optional<fake_kube::TestCa> ca_;
  std::unique_ptr<FakeKubeServer> server_;
  std::string kubeconfig_;
  std::vector<std::string> kubeconfigs_;
  std::string uid_;
  int64_t generation_ = 0;
};

TEST_F(ReportE2eTest, SeveralRevisionsSucceed) {
  WriteLinear(3);
  const absl::Time run_start = absl::Now();
  ProcessResult r = Upgrade();
  const absl::Time run_end = absl::Now();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r003");

  const kube::MigrationJobStatus s = StoredStatus();
  ExpectSucceededAt(s, "r003");
  EXPECT_EQ(s.observed_generation, 1);  // the MigrationJob as created
  // The digest of the content the status describes, computed here by the server from the
  // checksums sluice recorded.
  EXPECT_EQ(s.migrations_digest,
            Rows("SELECT 'sha256:' || encode(sha256(convert_to(string_agg(revision || E'\\t' || "
                 "checksum || E'\\n', '' ORDER BY revision COLLATE \"C\"), 'UTF8')), 'hex') FROM "
                 "sluice_history WHERE outcome = 'applied'"));
  ASSERT_THAT(s.last_applied, SizeIs(3));
  EXPECT_EQ(s.last_applied[0].revision, "r003");
  EXPECT_EQ(s.last_applied[1].revision, "r002");
  EXPECT_EQ(s.last_applied[2].revision, "r001");
  // Each step lies within the run as measured here (times are in milliseconds, so allow one for
  // rounding), and the steps ran one after the other: newest first, none overlapping the next.
  std::vector<absl::Time> started(s.last_applied.size());
  for (size_t i = 0; i < s.last_applied.size(); ++i) {
    const kube::AppliedStep& step = s.last_applied[i];
    EXPECT_EQ(step.direction, "upgrade") << step.revision;
    EXPECT_EQ(step.applied_by, kPod) << step.revision;
    std::string error;
    ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, step.started_at, &started[i], &error))
        << step.revision << ": " << step.started_at << ": " << error;
    EXPECT_GE(started[i], run_start - absl::Milliseconds(1)) << step.revision;
    EXPECT_LE(started[i] + absl::Milliseconds(step.duration_ms), run_end + absl::Milliseconds(1))
        << step.revision << " took " << step.duration_ms << " ms";
  }
  for (size_t i = 1; i < s.last_applied.size(); ++i) {
    EXPECT_LE(started[i] + absl::Milliseconds(s.last_applied[i].duration_ms),
              started[i - 1] + absl::Milliseconds(1))
        << s.last_applied[i].revision << " overlaps " << s.last_applied[i - 1].revision;
  }

  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationSucceeded"));
  const std::vector<RecordedEvent> events = server().Events();
  for (const RecordedEvent& e : events) {
    EXPECT_EQ(e.namespace_, kNamespace);
    EXPECT_EQ(e.type, "Normal") << e.reason;
    EXPECT_EQ(e.involved_kind, "MigrationJob");
    EXPECT_EQ(e.involved_name, kName);
    EXPECT_EQ(e.involved_uid, uid_);
    EXPECT_EQ(e.reporting_instance, kPod) << e.reason;
    EXPECT_FALSE(e.reporting_component.empty());
  }
  // Each revision once, in order, whether the reporter posted them one by one or together.
  EXPECT_THAT(fake_kube::RevisionsInAppliedEvents(events), ElementsAre("r001", "r002", "r003"));

  // Status writes go to the /status subresource as merge patches; the main resource is never
  // written.
  int status_patches = 0;
  for (const LoggedRequest& req : server().Requests()) {
    if (req.method == "PATCH" || req.method == "PUT") {
      EXPECT_EQ(req.path, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/app-db/status");
      EXPECT_EQ(req.content_type, "application/merge-patch+json");
      ++status_patches;
    }
    EXPECT_EQ(req.authorization, absl::StrCat("Bearer ", kToken)) << req.method << " " << req.path;
  }
  EXPECT_GE(status_patches, 1);
}

TEST_F(ReportE2eTest, EachStepVisibleWhileRunning) {
  // r002 and r003 each wait for an advisory lock that a psql session of the test holds (its own
  // lock_timeout lifted, so the engine's does not end the wait): the run stops before each of them
  // until the test has seen the status of the step before, then the test lets it go on.
  constexpr int64_t kGate2 = 7700002;
  constexpr int64_t kGate3 = 7700003;
  auto gated = [](const std::string& table, int64_t gate) {
    return absl::StrCat("SET LOCAL lock_timeout = 0;\nSELECT pg_advisory_xact_lock(", gate,
                        ");\nCREATE TABLE ", table, " (id int);");
  };
  WriteManifest("r001.yaml", {{"r001", {}, "CREATE TABLE s1 (id int);", "", ""}});
  WriteManifest("r002.yaml", {{"r002", {"r001"}, gated("s2", kGate2), "", ""}});
  WriteManifest("r003.yaml", {{"r003", {"r002"}, gated("s3", kGate3), "", ""}});
  std::unique_ptr<Process> gate2 =
      StartPsql(absl::StrCat("SELECT pg_advisory_lock(", kGate2, "); SELECT pg_sleep(600)"),
                "sluice-test-gate2");
  std::unique_ptr<Process> gate3 =
      StartPsql(absl::StrCat("SELECT pg_advisory_lock(", kGate3, "); SELECT pg_sleep(600)"),
                "sluice-test-gate3");
  ASSERT_TRUE(WaitForLockHeldBy("sluice-test-gate2"));
  ASSERT_TRUE(WaitForLockHeldBy("sluice-test-gate3"));

  std::unique_ptr<Process> sluice = StartSluice(UpgradeArgs(), PodEnv(kPod));
  // Waits until the stored status is Running with `current`, that many steps and `pending`.
  auto wait_for_running = [&](const std::string& current, size_t applied,
                              const std::vector<std::string>& pending) {
    std::optional<kube::MigrationJobStatus> seen;
    const bool ok = server().WaitUntil(
        [&] {
          kube::MigrationJob job = Stored();
          if (!job.status.has_value() || job.status->phase != "Running") return false;
          seen = job.status;
          return job.status->current_revisions == std::vector<std::string>{current} &&
                 job.status->last_applied.size() == applied &&
                 job.status->pending_revisions == pending;
        },
        absl::Seconds(60));
    EXPECT_TRUE(ok) << "no Running status at " << current << "; last seen: "
                    << (seen ? absl::StrCat(absl::StrJoin(seen->current_revisions, ","), " with ",
                                            seen->last_applied.size(), " applied")
                             : "none");
    if (seen.has_value()) {
      EXPECT_EQ(ConditionStatus(*seen, "Reconciling"), "True");
      EXPECT_NE(ConditionStatus(*seen, "Ready"), "True");  // Unknown or False while running
    }
    return ok;
  };
  const bool saw_r001 = wait_for_running("r001", 1, {"r002", "r003"});
  EXPECT_EQ(Versions(), "r001");  // r002 is still waiting for its gate
  EndSessions("sluice-test-gate2");
  const bool saw_r002 = saw_r001 && wait_for_running("r002", 2, {"r003"});
  EndSessions("sluice-test-gate3");
  ProcessResult r = sluice->Wait();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(saw_r002);
  ExpectSucceededAt(StoredStatus(), "r003");
  EXPECT_THAT(StoredStatus().last_applied, SizeIs(3));
}

TEST_F(ReportE2eTest, FailingRevisionFails) {
  WriteManifest("r001.yaml", {{"r001", {}, "CREATE TABLE ok1 (id int);", "", ""}});
  WriteManifest("r002.yaml", {{"r002", {"r001"}, "CREATE TABLE broken (id int,;", "", ""}});
  ProcessResult r = Upgrade();
  ASSERT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(Versions(), "r001");
  EXPECT_FALSE(TableExists("broken"));

  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Failed");
  // observedGeneration is written only when a run reached the target (status_composer.h); the
  // conditions say which generation failed.
  EXPECT_EQ(s.observed_generation, 0);
  for (const kube::Condition& c : s.conditions) {
    EXPECT_EQ(c.observed_generation, generation_) << c.type;
  }
  EXPECT_EQ(ConditionStatus(s, "Ready"), "False");
  EXPECT_EQ(ConditionStatus(s, "Stalled"), "True");
  EXPECT_EQ(ConditionStatus(s, "Reconciling"), "False");
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_EQ(s.last_error->revision, "r002");
  EXPECT_EQ(s.last_error->sql_state, "42601");
  EXPECT_FALSE(s.last_error->message.empty());
  EXPECT_THAT(s.current_revisions, ElementsAre("r001"));
  EXPECT_THAT(s.target_revisions, ElementsAre("r002"));
  EXPECT_THAT(s.pending_revisions, ElementsAre("r002"));
  ASSERT_THAT(s.last_applied, SizeIs(1));
  EXPECT_EQ(s.last_applied[0].revision, "r001");
  EXPECT_EQ(s.last_applied[0].applied_by, kPod);
  EXPECT_FALSE(s.completed_at.empty());
  ExpectStoredValid();

  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationFailed"));
  for (const RecordedEvent& e : server().Events()) {
    EXPECT_EQ(e.reporting_instance, kPod) << e.reason;
    EXPECT_EQ(e.involved_uid, uid_);
    if (e.reason == "MigrationFailed") {
      EXPECT_EQ(e.type, "Warning");
      EXPECT_THAT(e.message, HasSubstr("r002"));
    }
  }
}

TEST_F(ReportE2eTest, NothingToDoSucceeds) {
  WriteLinear(2);
  ProcessResult r = Upgrade();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const size_t events_after_first = server().Events().size();

  r = Upgrade({}, "app-7d9f8c6b5-second");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("already at head"));
  EXPECT_EQ(Versions(), "r002");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history"), "2");

  const kube::MigrationJobStatus s = StoredStatus();
  ExpectSucceededAt(s, "r002");
  // The second run applied nothing: it writes the status but records no Event (a no-op at every
  // pod start would otherwise flood the namespace with Events).
  EXPECT_THAT(server().Events(), SizeIs(events_after_first));
  // What was applied stays visible, by whom it was applied.
  EXPECT_THAT(s.last_applied, SizeIs(2));
  for (const kube::AppliedStep& step : s.last_applied) EXPECT_EQ(step.applied_by, kPod);
}

TEST_F(ReportE2eTest, ApiServerDownMigratesAndWarns) {
  WriteLinear(3);
  ASSERT_TRUE(server().StopListening().ok());
  const absl::Time start = absl::Now();
  ProcessResult r = Upgrade({"--report-timeout", "2s"});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r003");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE outcome = 'applied'"), "3");
  EXPECT_THAT(r.err, HasSubstr("warning"));
  EXPECT_THAT(r.err, HasSubstr("MigrationJob"));
  EXPECT_LT(took, absl::Seconds(30)) << "--report-timeout 2s not honoured";
  EXPECT_EQ(server().RequestsReceived(), 0);
  ASSERT_TRUE(server().StartListening().ok());
  EXPECT_FALSE(Stored().status.has_value());
  EXPECT_THAT(server().Events(), IsEmpty());
}

TEST_F(ReportE2eTest, ApiServerDownWithReportRequiredFailsAfterMigrating) {
  WriteLinear(3);
  ASSERT_TRUE(server().StopListening().ok());
  const absl::Time start = absl::Now();
  ProcessResult r = Upgrade({"--report-required", "--report-timeout", "2s"});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(Versions(), "r003");
  EXPECT_EQ(Rows("SELECT count(*) FROM sluice_history WHERE outcome = 'applied'"), "3");
  EXPECT_THAT(r.err, HasSubstr("--report-required"));
  EXPECT_LT(took, absl::Seconds(30)) << "--report-timeout 2s not honoured";
}

TEST_F(ReportE2eTest, ClosedPortWithReportRequiredFailsAfterMigrating) {
  // A loopback port nobody listens on: bound to learn a free port, then closed.
  absl::StatusOr<int> closed_port = UnusedLoopbackPort();
  ASSERT_TRUE(closed_port.ok()) << closed_port.status();
  kubeconfig_ = WriteKubeconfig(absl::StrCat("https://127.0.0.1:", *closed_port));
  WriteLinear(2);
  ProcessResult r = Upgrade({"--report-timeout", "2s"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("warning"));
  EXPECT_EQ(Versions(), "r002");

  WriteLinear(3);
  r = Upgrade({"--report-required", "--report-timeout", "2s"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(Versions(), "r003");
  EXPECT_THAT(r.err, HasSubstr("--report-required"));
}

TEST_F(ReportE2eTest, SixteenConcurrentInitContainers) {
  constexpr int kRevisions = 20;
  constexpr int kRunners = 16;
  WriteLinear(kRevisions);
  const std::string head = absl::StrFormat("r%03d", kRevisions);

  std::vector<std::unique_ptr<Process>> runners;
  std::vector<std::string> pods;
  for (int i = 0; i < kRunners; ++i) {
    pods.push_back(absl::StrFormat("app-7d9f8c6b5-%02d", i));
    runners.push_back(StartSluice(UpgradeArgs({"--report-timeout", "60s", "--lock-wait", "300s"}),
                                  PodEnv(pods.back())));
  }
  for (int i = 0; i < kRunners; ++i) {
    ProcessResult r = runners[i]->Wait(absl::Seconds(400));
    EXPECT_EQ(r.exit_code, 0) << pods[i] << ": " << Describe(r);
    EXPECT_THAT(r.err, Not(HasSubstr(kToken)));
    EXPECT_THAT(r.err, Not(HasSubstr("could not report"))) << pods[i];
  }

  // The database: every revision applied exactly once.
  EXPECT_EQ(Versions(), head);
  EXPECT_EQ(Rows("SELECT count(*), count(DISTINCT revision) FROM sluice_history WHERE direction = "
                 "'upgrade'"),
            absl::StrFormat("%d|%d", kRevisions, kRevisions));

  const kube::MigrationJobStatus s = StoredStatus();
  ExpectSucceededAt(s, head);
  // lastApplied: distinct revisions, newest first, each from one of the runners.
  std::set<std::string> seen;
  for (const kube::AppliedStep& step : s.last_applied) {
    EXPECT_TRUE(seen.insert(step.revision).second) << "twice in lastApplied: " << step.revision;
    EXPECT_THAT(pods, Contains(step.applied_by));
  }
  EXPECT_THAT(s.last_applied, SizeIs(kRevisions));
  for (size_t i = 1; i < s.last_applied.size(); ++i) {
    EXPECT_GT(s.last_applied[i - 1].revision, s.last_applied[i].revision) << "not newest first";
  }

  // Events: each revision applied once; a MigrationSucceeded from each runner that applied
  // something (runners that found the database at head record no Event).
  const std::vector<std::string> revisions = fake_kube::RevisionsInAppliedEvents(server().Events());
  const std::multiset<std::string> applied(revisions.begin(), revisions.end());
  std::set<std::string> applied_by;
  std::multiset<std::string> succeeded_by;
  for (const RecordedEvent& e : server().Events()) {
    if (e.reason == "MigrationApplied") applied_by.insert(e.reporting_instance);
    if (e.reason == "MigrationSucceeded") succeeded_by.insert(e.reporting_instance);
    EXPECT_NE(e.reason, "MigrationFailed") << e.message;
  }
  EXPECT_THAT(applied, SizeIs(kRevisions));
  EXPECT_EQ(std::set<std::string>(applied.begin(), applied.end()).size(), applied.size())
      << "a revision was reported applied twice";
  EXPECT_EQ(std::set<std::string>(succeeded_by.begin(), succeeded_by.end()), applied_by);
  EXPECT_THAT(succeeded_by, SizeIs(applied_by.size()));
}

}  // namespace
}  // namespace sluice::testing
