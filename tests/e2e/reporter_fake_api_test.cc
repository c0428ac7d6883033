// The MigrationJobReporter against the fake API server over HTTPS, driven through the
// engine::Observer interface with synthetic runs (no PostgreSQL needed). The fixture fails a test
// when a write was pruned or rejected by the CRD schema.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/kube/client.h"
#include "pkg/kube/json_codec.h"
#include "pkg/reporting/migration_job_reporter.h"
#include "pkg/reporting/status_composer.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"
#include "tests/support/status_matchers.h"

namespace sluice::reporting {
namespace {

using ::sluice::fake_kube::Fault;
using ::sluice::fake_kube::KubeconfigOptions;
using ::sluice::fake_kube::RecordedEvent;
using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// What sluice logs during a test, as text that a test can wait on. The logger writes from the
// reporter's thread while the test reads, so the text is kept under a lock.
class WaitableLog : public std::streambuf {
 public:
  std::string str() const {
    absl::MutexLock lock(&mu_);
    return text_;
  }

  // Waits until the log holds `needle`, at most `timeout`; returns whether it does.
  bool WaitFor(const std::string& needle, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return text_.find(needle) != std::string::npos;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&found), timeout);
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      absl::MutexLock lock(&mu_);
      text_.push_back(static_cast<char>(c));
    }
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    return n;
  }

 private:
  mutable absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
};

class ReporterTest : public fake_kube::FakeKubeFixture {
 protected:
  void SetUp() override {
    FakeKubeFixture::SetUp();
    if (HasFatalFailure()) return;
    uid_ = CreateMigrationJob("apps", "db");
    kubeconfig_ = WriteKubeconfig();
    log::SetSinkForTest(&log_stream_);
  }
  void TearDown() override {
    log::SetSinkForTest(nullptr);
    log::SetVerbose(false);
    EXPECT_THAT(log_.str(), ::testing::Not(HasSubstr(token())));
    FakeKubeFixture::TearDown();
  }

  ReportOptions Options(const std::string& instance = "api-7d9f-abcde") {
    ReportOptions o;
    o.report = "apps/db";
    o.report_timeout = absl::Seconds(10);
    o.instance = instance;
    o.target = "head";
    return o;
  }

  static kube::ClientOptions FastClientOptions() {
    kube::ClientOptions o;
    o.request_timeout = absl::Seconds(2);
    o.initial_backoff = absl::Milliseconds(20);
    o.max_backoff = absl::Milliseconds(200);
    return o;
  }

  // The client as sluice's CLI makes it, from a kubeconfig or in-cluster (an empty `kubeconfig`
  // and no KUBECONFIG).
  absl::StatusOr<std::unique_ptr<kube::Client>> Client(
      const std::string& kubeconfig, const kube::InClusterPaths& in_cluster = {},
      const kube::ClientOptions& client_options = FastClientOptions()) {
    return kube::NewRestClientFromConfig(kubeconfig, in_cluster, client_options);
  }
  // The same from the fixture's kubeconfig.
  absl::StatusOr<std::unique_ptr<kube::Client>> Client() { return Client(kubeconfig_); }

  std::unique_ptr<MigrationJobReporter> StartReporter(const ReportOptions& options) {
    return StartReporter(options, Client());
  }
  std::unique_ptr<MigrationJobReporter> StartReporter(
      const ReportOptions& options, absl::StatusOr<std::unique_ptr<kube::Client>> client) {
    absl::StatusOr<std::unique_ptr<MigrationJobReporter>> r =
        MigrationJobReporter::Start(options, std::move(client));
    EXPECT_THAT(r.status(), IsOk());
    return r.ok() ? std::move(*r) : nullptr;
  }

  kube::MigrationJob Stored() {
    std::optional<std::string> json = server().GetObject("migrationjobs", "apps", "db");
    EXPECT_TRUE(json.has_value());
    absl::StatusOr<kube::MigrationJob> job = kube::ParseMigrationJob(json.value_or("{}"));
    EXPECT_THAT(job.status(), IsOk());
    return job.value_or(kube::MigrationJob{});
  }

  kube::MigrationJobStatus StoredStatus() {
    kube::MigrationJob job = Stored();
    EXPECT_TRUE(job.status.has_value());
    return job.status.value_or(kube::MigrationJobStatus{});
  }

  static const kube::Condition* Find(const kube::MigrationJobStatus& s, const std::string& type) {
    for (const auto& c : s.conditions) {
      if (c.type == type) return &c;
    }
    return nullptr;
  }

  static std::string ConditionStatus(const kube::MigrationJobStatus& s, const std::string& type) {
    const kube::Condition* c = Find(s, type);
    return c == nullptr ? "<absent>" : c->status;
  }

  // Waits until `predicate` holds for the stored status, re-checked whenever the fake server
  // answers a request (bounded).
  bool WaitForStatus(const std::function<bool(const kube::MigrationJobStatus&)>& predicate) {
    return server().WaitUntil(
        [&] {
          kube::MigrationJob job = Stored();
          return job.status.has_value() && predicate(*job.status);
        },
        absl::Seconds(10));
  }

  static engine::StepOutcome Step(const std::string& revision, bool ok = true,
                                  absl::Time started = absl::Now()) {
    engine::StepOutcome step;
    step.revision = revision;
    step.description = absl::StrCat("revision ", revision);
    step.direction = graph::Direction::kUpgrade;
    step.started_at = started;
    step.duration = absl::Milliseconds(41);
    step.ok = ok;
    if (ok) step.versions_after = {revision};  // a linear history
    return step;
  }

  static engine::RunResult Planned(std::vector<std::string> from, std::vector<std::string> target) {
    engine::RunResult r;
    r.from_versions = from;
    r.to_versions = from;
    r.target_versions = target;
    return r;
  }

  // Runs a whole successful upgrade through `reporter`: plan, steps, finish.
  absl::Status RunUpgrade(MigrationJobReporter& reporter, const std::vector<std::string>& from,
                          const std::vector<std::string>& revisions) {
    const std::vector<std::string> target = {revisions.back()};
    engine::RunResult result = Planned(from, target);
    reporter.OnPlanned(result, revisions);
    for (const std::string& revision : revisions) {
      engine::StepOutcome step = Step(revision);
      result.steps.push_back(step);
      reporter.OnStepFinished(step);
    }
    result.to_versions = target;
    return reporter.Finish(absl::OkStatus(), &result);
  }

  void ExpectStoredValid() { EXPECT_THAT(server().ValidateStored("apps", "db"), IsEmpty()); }

  std::vector<std::string> Reasons() { return fake_kube::ReasonsCollapsed(server().Events()); }

  std::string uid_;
  std::string kubeconfig_;
  WaitableLog log_;
  std::ostream log_stream_{&log_};
};

TEST_F(ReporterTest, SuccessfulRunWithSeveralRevisions) {
  auto reporter = StartReporter(Options());
  ASSERT_NE(reporter, nullptr);
  ASSERT_THAT(RunUpgrade(*reporter, {}, {"a1", "b2", "c3"}), IsOk());

  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_EQ(s.observed_generation, 1);
  EXPECT_THAT(s.current_revisions, ElementsAre("c3"));
  EXPECT_THAT(s.target_revisions, ElementsAre("c3"));
  EXPECT_THAT(s.pending_revisions, IsEmpty());
  ASSERT_THAT(s.last_applied, SizeIs(3));
  EXPECT_EQ(s.last_applied[0].revision, "c3");
  EXPECT_EQ(s.last_applied[1].revision, "b2");
  EXPECT_EQ(s.last_applied[2].revision, "a1");
  for (const auto& step : s.last_applied) {
    EXPECT_EQ(step.direction, "upgrade");
    EXPECT_EQ(step.duration_ms, 41);
    EXPECT_EQ(step.applied_by, "api-7d9f-abcde");
  }
  EXPECT_FALSE(s.started_at.empty());
  EXPECT_FALSE(s.completed_at.empty());
  EXPECT_FALSE(s.last_error.has_value());
  EXPECT_EQ(ConditionStatus(s, kReady), "True");
  EXPECT_EQ(ConditionStatus(s, kReconciling), "False");
  EXPECT_EQ(ConditionStatus(s, kStalled), "False");
  for (const auto& c : s.conditions) EXPECT_EQ(c.observed_generation, 1) << c.type;
  ExpectStoredValid();

  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationSucceeded"));
  for (const RecordedEvent& e : server().Events()) {
    EXPECT_EQ(e.involved_kind, "MigrationJob");
    EXPECT_EQ(e.involved_name, "db");
    EXPECT_EQ(e.involved_uid, uid_);
    EXPECT_EQ(e.reporting_instance, "api-7d9f-abcde");
    EXPECT_EQ(e.type, "Normal");
  }
  EXPECT_THAT(fake_kube::RevisionsInAppliedEvents(server().Events()),
              ElementsAre("a1", "b2", "c3"));

  // Every status write went to /status as a merge patch.
  for (const auto& r : server().Requests()) {
    if (r.method == "PATCH") {
      EXPECT_EQ(r.path, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/db/status");
      EXPECT_EQ(r.content_type, "application/merge-patch+json");
    }
    EXPECT_NE(r.method, "PUT");
  }
}

TEST_F(ReporterTest, WorksWithExactlyTheInitContainerRole) {
  absl::StatusOr<std::vector<fake_kube::RbacRule>> rules = fake_kube::RulesFromManifest(
      absl::StrCat(SLUICE_SOURCE_DIR, "/manifests/rbac-init-container.yaml"));
  ASSERT_THAT(rules.status(), IsOk());
  server().SetRbacRules(token(), "system:serviceaccount:apps:app-migrator", *rules);
  ReportOptions options = Options();
  options.report_required = true;
  auto reporter = StartReporter(options);
  ASSERT_THAT(RunUpgrade(*reporter, {}, {"a1", "b2"}), IsOk());
  EXPECT_EQ(StoredStatus().phase, "Succeeded");
  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationSucceeded"));
  for (const auto& r : server().Requests())
    EXPECT_NE(r.response_code, 403) << r.method << " " << r.path;
}

TEST_F(ReporterTest, InClusterServiceAccountWorksAndFollowsTokenRotation) {
  // The pod's view: service host and port in the environment, the service account's files.
  const std::string port = absl::StrCat(server().port());
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", port.c_str(), 1);
  unsetenv("KUBECONFIG");
  ReportOptions options = Options();
  options.report_required = true;
  kube::InClusterPaths in_cluster;
  in_cluster.token_file = token_file();
  in_cluster.ca_file = WriteFile("ca.crt", ca().cert_pem());
  in_cluster.namespace_file = WriteFile("namespace", "apps");
  auto reporter = StartReporter(options, Client("", in_cluster));
  reporter->OnPlanned(Planned({}, {"b2"}), {"a1", "b2"});
  ASSERT_TRUE(
      WaitForStatus([](const kube::MigrationJobStatus& s) { return s.phase == "Running"; }));
  RotateToken("token-rotated-by-the-kubelet");
  reporter->OnStepFinished(Step("a1"));
  reporter->OnStepFinished(Step("b2"));
  engine::RunResult result = Planned({"b2"}, {"b2"});
  const absl::Status status = reporter->Finish(absl::OkStatus(), &result);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(StoredStatus().phase, "Succeeded");
  EXPECT_EQ(server().Requests().back().authorization, "Bearer token-rotated-by-the-kubelet");
}

TEST_F(ReporterTest, FailedRunIsStalledWithLastError) {
  auto reporter = StartReporter(Options());
  reporter->OnPlanned(Planned({}, {"b2"}), {"a1", "b2"});
  reporter->OnStepFinished(Step("a1"));
  reporter->OnStepFinished(Step("b2", /*ok=*/false));
  // The SQLSTATE and revision come from the failure's payload, not from the message's text.
  failure::MigrationFailure failed;
  failed.sqlstate = "42P01";
  failed.message = "relation \"missing\" does not exist";
  failed.revision = "b2";
  const absl::Status run_status = failure::WithMigrationFailure(
      absl::FailedPreconditionError(
          "revision b2 (add index, migrations/b2.yaml:1) failed to upgrade: relation "
          "\"missing\" does not exist"),
      failed);
  ASSERT_THAT(reporter->Finish(run_status, nullptr), IsOk());

  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Failed");
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_EQ(s.last_error->revision, "b2");
  EXPECT_EQ(s.last_error->sql_state, "42P01");
  EXPECT_THAT(s.last_error->message, HasSubstr("relation \"missing\" does not exist"));
  EXPECT_THAT(s.current_revisions, ElementsAre("a1"));
  EXPECT_THAT(s.pending_revisions, ElementsAre("b2"));
  ASSERT_THAT(s.last_applied, SizeIs(1));
  EXPECT_EQ(s.last_applied[0].revision, "a1");
  EXPECT_EQ(ConditionStatus(s, kReady), "False");
  EXPECT_EQ(Find(s, kReady)->reason, "MigrationFailed");
  EXPECT_EQ(ConditionStatus(s, kStalled), "True");
  EXPECT_EQ(ConditionStatus(s, kReconciling), "False");
  ExpectStoredValid();

  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationFailed"));
  EXPECT_EQ(server().Events().back().type, "Warning");
  EXPECT_THAT(server().Events().back().message, HasSubstr("revision b2 failed"));
}

// Many quick revisions: the status is written at most every 200 ms while the run is under way (and
// at once at its end), and the steps queued meanwhile go out as one MigrationApplied Event that
// names each of them.
TEST_F(ReporterTest, ManyQuickStepsArePacedAndTheirEventsCombined) {
  auto reporter = StartReporter(Options());
  std::vector<std::string> revisions;
  for (int i = 0; i < 40; ++i) revisions.push_back(absl::StrCat("r", 100 + i));
  ASSERT_THAT(RunUpgrade(*reporter, {}, revisions), IsOk());
  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_THAT(s.current_revisions, ElementsAre("r139"));
  int patches = 0;
  for (const auto& r : server().Requests()) patches += r.method == "PATCH" ? 1 : 0;
  EXPECT_LE(patches, 5) << "one status write per revision instead of a paced few";
  EXPECT_THAT(fake_kube::RevisionsInAppliedEvents(server().Events()), ElementsAreArray(revisions));
  EXPECT_LT(server().Events().size(), 10u);
  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationSucceeded"));
  for (const RecordedEvent& e : server().Events()) EXPECT_LE(e.message.size(), 1024u);
}

TEST_F(ReporterTest, NothingToDoIsSucceededWithoutEvents) {
  auto reporter = StartReporter(Options());
  engine::RunResult result = Planned({"c3"}, {"c3"});
  result.already_at_target = true;
  reporter->OnPlanned(result, {});
  ASSERT_THAT(reporter->Finish(absl::OkStatus(), &result), IsOk());
  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_THAT(s.current_revisions, ElementsAre("c3"));
  EXPECT_THAT(s.last_applied, IsEmpty());
  EXPECT_EQ(ConditionStatus(s, kReady), "True");
  EXPECT_THAT(server().Events(), IsEmpty());
  ExpectStoredValid();
  // A fast no-op run goes straight to its final status: no Running write, Ready never Unknown.
  for (const auto& r : server().Requests()) {
    EXPECT_THAT(r.body, ::testing::Not(HasSubstr(R"("phase":"Running")")));
  }
}

TEST_F(ReporterTest, EachStepBecomesVisibleAsItIsApplied) {
  auto reporter = StartReporter(Options());
  const std::vector<std::string> revisions = {"a1", "b2", "c3"};
  reporter->OnPlanned(Planned({}, {"c3"}), revisions);
  ASSERT_TRUE(WaitForStatus([](const kube::MigrationJobStatus& s) {
    return s.phase == "Running" && s.pending_revisions.size() == 3;
  }));
  for (size_t i = 0; i < revisions.size(); ++i) {
    reporter->OnStepFinished(Step(revisions[i], true, absl::Now()));
    EXPECT_TRUE(WaitForStatus([&](const kube::MigrationJobStatus& s) {
      return s.last_applied.size() == i + 1 && s.last_applied[0].revision == revisions[i] &&
             s.pending_revisions.size() == revisions.size() - i - 1 &&
             s.current_revisions == std::vector<std::string>{revisions[i]};
    })) << revisions[i];
    EXPECT_EQ(StoredStatus().phase, "Running");
    EXPECT_EQ(Find(StoredStatus(), kReconciling)->reason, "Migrating");
  }
  engine::RunResult result = Planned({"c3"}, {"c3"});
  ASSERT_THAT(reporter->Finish(absl::OkStatus(), &result), IsOk());
  EXPECT_EQ(StoredStatus().phase, "Succeeded");
}

TEST_F(ReporterTest, NewRunKeepsEarlierStepsAndClearsTheOldError) {
  {
    auto reporter = StartReporter(Options("pod-a"));
    reporter->OnPlanned(Planned({}, {"b2"}), {"a1", "b2"});
    reporter->OnStepFinished(Step("a1"));
    reporter->OnStepFinished(Step("b2", false));
    ASSERT_THAT(reporter->Finish(absl::InternalError("SQLSTATE 23505: duplicate key"), nullptr),
                IsOk());
  }
  ASSERT_EQ(StoredStatus().phase, "Failed");
  auto reporter = StartReporter(Options("pod-b"));
  ASSERT_THAT(RunUpgrade(*reporter, {"a1"}, {"b2"}), IsOk());
  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_FALSE(s.last_error.has_value());
  EXPECT_EQ(ConditionStatus(s, kStalled), "False");
  ASSERT_THAT(s.last_applied, SizeIs(2));
  EXPECT_EQ(s.last_applied[0].applied_by, "pod-b");
  EXPECT_EQ(s.last_applied[1].applied_by, "pod-a");
  ExpectStoredValid();
}

TEST_F(ReporterTest, WaitingForLockNamesTheHolder) {
  auto reporter = StartReporter(Options());
  reporter->OnPlanned(Planned({}, {"a1"}), {"a1"});
  store::LockHolder holder;
  holder.application_name = "api-7d9f-zzzzz";
  holder.pid = 4242;
  holder.client_address = "10.0.0.7";
  reporter->OnWaitingForLock(holder);
  EXPECT_TRUE(WaitForStatus([](const kube::MigrationJobStatus& s) {
    const kube::Condition* c = Find(s, kReconciling);
    return c != nullptr && c->status == "True" && c->reason == "WaitingForLock" &&
           c->message.find("api-7d9f-zzzzz (pid 4242, 10.0.0.7)") != std::string::npos;
  }));
  EXPECT_EQ(StoredStatus().phase, "Running");
  engine::RunResult done = Planned({"a1"}, {"a1"});
  done.already_at_target = true;
  ASSERT_THAT(reporter->Finish(absl::OkStatus(), &done), IsOk());
  EXPECT_EQ(Find(StoredStatus(), kReconciling)->reason, "Succeeded");
}

TEST_F(ReporterTest, ConditionTransitionTimesChangeOnlyWithStatus) {
  auto reporter = StartReporter(Options());
  reporter->OnPlanned(Planned({}, {"a1"}), {"a1"});
  ASSERT_TRUE(WaitForStatus([](const kube::MigrationJobStatus& s) {
    const kube::Condition* c = Find(s, kReconciling);
    return c != nullptr && c->reason == "Migrating";
  }));
  const std::string stalled_since = Find(StoredStatus(), kStalled)->last_transition_time;
  // Condition times have second precision: wait for the clock to reach the next second, so that
  // a transition now gets a different time.
  const absl::Time tick_deadline = absl::Now() + absl::Seconds(3);
  while (FormatSeconds(absl::Now()) == stalled_since && absl::Now() < tick_deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(FormatSeconds(absl::Now()), stalled_since);
  ASSERT_THAT(RunUpgrade(*reporter, {}, {"a1"}), IsOk());
  const kube::MigrationJobStatus s = StoredStatus();
  // Stalled stayed False: same time. Reconciling went True -> False: a new time.
  EXPECT_EQ(Find(s, kStalled)->last_transition_time, stalled_since);
  EXPECT_NE(Find(s, kReconciling)->last_transition_time, stalled_since);
}

TEST_F(ReporterTest, ObservedGenerationIsTheGenerationRead) {
  ASSERT_THAT(server().UpdateMigrationJobSpec("apps", "db", R"({"target":"c3"})"), IsOk());
  ASSERT_EQ(Stored().metadata.generation, 2);
  auto reporter = StartReporter(Options());
  ASSERT_THAT(RunUpgrade(*reporter, {}, {"c3"}), IsOk());
  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.observed_generation, 2);
  for (const auto& c : s.conditions) EXPECT_EQ(c.observed_generation, 2);
  EXPECT_EQ(Stored().metadata.generation, 2);  // status writes never bump it
}

TEST_F(ReporterTest, RotatedTokenKeepsWorking) {
  auto reporter = StartReporter(Options());
  reporter->OnPlanned(Planned({}, {"b2"}), {"a1", "b2"});
  ASSERT_TRUE(
      WaitForStatus([](const kube::MigrationJobStatus& s) { return s.phase == "Running"; }));
  RotateToken("token-after-rotation-42");
  reporter->OnStepFinished(Step("a1"));
  engine::RunResult result = Planned({"b2"}, {"b2"});
  reporter->OnStepFinished(Step("b2"));
  ASSERT_THAT(reporter->Finish(absl::OkStatus(), &result), IsOk());
  EXPECT_EQ(StoredStatus().phase, "Succeeded");
  EXPECT_EQ(server().Requests().back().authorization, "Bearer token-after-rotation-42");
}

TEST_F(ReporterTest, WrongCaIsRefusedAndReportedClearly) {
  absl::StatusOr<fake_kube::TestCa> other = fake_kube::TestCa::Create("not-the-cluster-ca");
  ASSERT_THAT(other.status(), IsOk());
  KubeconfigOptions kc;
  kc.ca_pem = other->cert_pem();
  ReportOptions options = Options();
  options.report_required = true;
  auto reporter = StartReporter(options, Client(WriteKubeconfig(kc)));
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunUpgrade(*reporter, {}, {"a1"}),
              StatusIs(absl::StatusCode::kFailedPrecondition, "TLS handshake"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));  // not retried until the timeout
  EXPECT_TRUE(server().Requests().empty());
}

TEST_F(ReporterTest, ExpiredTokenIsAClearError) {
  server().RevokeToken(token());
  ReportOptions options = Options();
  options.report_required = true;
  auto reporter = StartReporter(options);
  absl::Status status = RunUpgrade(*reporter, {}, {"a1"});
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnauthenticated,
                               "the bearer token is missing, expired or invalid"));
  EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr(token())));
}

TEST_F(ReporterTest, ExpiredTokenIsOnlyAWarningUnlessRequired) {
  server().RevokeToken(token());
  auto reporter = StartReporter(Options());
  EXPECT_THAT(RunUpgrade(*reporter, {}, {"a1"}), IsOk());
  EXPECT_THAT(log_.str(), HasSubstr("could not report the run"));
  EXPECT_THAT(log_.str(), HasSubstr("Unauthorized"));
}

TEST_F(ReporterTest, ApiServerDownForTheWholeRunGivesUpWithinTheTimeout) {
  ASSERT_THAT(server().StopListening(), IsOk());
  ReportOptions options = Options();
  options.report_timeout = absl::Seconds(4);  // see ApiServerDownIsAnErrorWhenRequired
  auto reporter = StartReporter(options);
  const absl::Time start = absl::Now();
  reporter->OnPlanned(Planned({}, {"a1"}), {"a1"});
  engine::StepOutcome step = Step("a1");
  reporter->OnStepFinished(step);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));  // callbacks never block
  engine::RunResult result = Planned({"a1"}, {"a1"});
  const absl::Time finish = absl::Now();
  EXPECT_THAT(reporter->Finish(absl::OkStatus(), &result), IsOk());
  EXPECT_LT(absl::Now() - finish, absl::Milliseconds(4600));
  EXPECT_THAT(log_.str(), HasSubstr("could not report the run"));
  EXPECT_THAT(log_.str(), HasSubstr("cannot reach the API server"));
}

TEST_F(ReporterTest, ApiServerDownIsAnErrorWhenRequired) {
  ASSERT_THAT(server().StopListening(), IsOk());
  ReportOptions options = Options();
  // Long enough for the first refused attempt to be seen even on a loaded sanitizer build.
  options.report_timeout = absl::Seconds(4);
  options.report_required = true;
  auto reporter = StartReporter(options);
  const absl::Time start = absl::Now();
  absl::Status status = RunUpgrade(*reporter, {}, {"a1"});
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(4600));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded, "--report-required"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot reach the API server"));
}

TEST_F(ReporterTest, HangingApiServerDoesNotHoldTheRunBeyondTheTimeout) {
  server().InjectFault(Fault{"", "", 1000, 0, -1, absl::Seconds(30)});
  ReportOptions options = Options();
  options.report_timeout = absl::Seconds(2);
  kube::ClientOptions client_options = FastClientOptions();
  client_options.request_timeout = absl::Seconds(10);
  auto reporter = StartReporter(options, Client(kubeconfig_, {}, client_options));
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunUpgrade(*reporter, {}, {"a1"}), IsOk());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(2600));
}

TEST_F(ReporterTest, ApiServerBackAfterAnOutageGetsTheFinalStatus) {
  log::SetVerbose(true);
  ASSERT_THAT(server().StopListening(), IsOk());
  auto reporter = StartReporter(Options());
  reporter->OnPlanned(Planned({}, {"a1"}), {"a1"});
  reporter->OnStepFinished(Step("a1"));
  // The outage is seen: an attempt was refused and is to be retried (the fake server cannot
  // observe a refused connection; the client logs each retry at debug level).
  ASSERT_TRUE(log_.WaitFor("cannot reach the API server", absl::Seconds(10))) << log_.str();
  EXPECT_TRUE(server().Requests().empty());
  ASSERT_THAT(server().StartListening(), IsOk());
  server().InjectFault(Fault{"PATCH", "", 2, 500, -1, absl::ZeroDuration()});
  server().InjectFault(Fault{"GET", "", 1, 429, 1, absl::ZeroDuration()});
  engine::RunResult result = Planned({"a1"}, {"a1"});
  ASSERT_THAT(reporter->Finish(absl::OkStatus(), &result), IsOk());
  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Succeeded");
  ASSERT_THAT(s.last_applied, SizeIs(1));
  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationSucceeded"));
}

TEST_F(ReporterTest, ConflictsAreReReadAndRetried) {
  server().InjectConflicts(3);
  auto reporter = StartReporter(Options());
  ASSERT_THAT(RunUpgrade(*reporter, {}, {"a1"}), IsOk());
  EXPECT_EQ(StoredStatus().phase, "Succeeded");
  int conflicts = 0;
  for (const auto& r : server().Requests()) conflicts += r.response_code == 409 ? 1 : 0;
  EXPECT_EQ(conflicts, 3);
}

TEST_F(ReporterTest, MissingMigrationJobIsAWarningOrAnError) {
  ReportOptions options = Options();
  options.report = "apps/nope";
  auto reporter = StartReporter(options);
  EXPECT_THAT(RunUpgrade(*reporter, {}, {"a1"}), IsOk());
  EXPECT_THAT(log_.str(), HasSubstr("not found"));

  options.report_required = true;
  auto required = StartReporter(options);
  EXPECT_THAT(RunUpgrade(*required, {}, {"a1"}),
              StatusIs(absl::StatusCode::kNotFound, "migrationjobs.sluice.dev \"nope\" not found"));
}

TEST_F(ReporterTest, NoKubernetesConfigurationIsAWarningOrAnError) {
  // The CLI's path: the client cannot be made, the reporter gets the reason, the run goes on.
  const std::string missing = absl::StrCat(dir(), "/no-such-kubeconfig");
  ReportOptions options = Options();
  auto reporter = StartReporter(options, Client(missing));
  EXPECT_THAT(RunUpgrade(*reporter, {}, {"a1"}), IsOk());
  options.report_required = true;
  auto required = StartReporter(options, Client(missing));
  EXPECT_THAT(RunUpgrade(*required, {}, {"a1"}),
              StatusIs(absl::StatusCode::kFailedPrecondition, "cannot read kubeconfig"));
}

TEST_F(ReporterTest, BadReportTargetIsAUsageError) {
  for (const char* bad : {"db", "apps/", "/db", "Apps/db", "a/b/c"}) {
    ReportOptions options = Options();
    options.report = bad;
    EXPECT_THAT(MigrationJobReporter::Start(options, Client()).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, "NAMESPACE/NAME"))
        << bad;
  }
}

TEST_F(ReporterTest, StartNeedsAClientOrTheReasonThereIsNone) {
  EXPECT_THAT(MigrationJobReporter::Start(Options(), std::unique_ptr<kube::Client>()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "needs a Kubernetes client"));
}

TEST_F(ReporterTest, OlderRunNeverOverwritesANewerRun) {
  auto older = StartReporter(Options("pod-old"));
  older->OnPlanned(Planned({}, {"a1"}), {"a1"});
  ASSERT_TRUE(
      WaitForStatus([](const kube::MigrationJobStatus& s) { return s.phase == "Running"; }));
  // Runs are told apart by startedAt in milliseconds: start the newer run in a later one.
  const std::string older_started = StoredStatus().started_at;
  const absl::Time ms_deadline = absl::Now() + absl::Seconds(1);
  while (FormatMillis(absl::Now()) <= older_started && absl::Now() < ms_deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_GT(FormatMillis(absl::Now()), older_started);
  auto newer = StartReporter(Options("pod-new"));
  older->OnStepFinished(Step("a1"));
  engine::RunResult done = Planned({"a1"}, {"a1"});
  done.already_at_target = true;
  newer->OnPlanned(done, {});
  ASSERT_THAT(newer->Finish(absl::OkStatus(), &done), IsOk());
  ASSERT_EQ(StoredStatus().phase, "Succeeded");
  const std::string newer_started = StoredStatus().started_at;

  // The older run fails late (e.g. its connection dropped after the step).
  ASSERT_THAT(older->Finish(absl::UnavailableError("connection to the database lost"), nullptr),
              IsOk());
  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_EQ(s.started_at, newer_started);
  EXPECT_FALSE(s.last_error.has_value());
  EXPECT_EQ(ConditionStatus(s, kReady), "True");
  // The older run's applied step is still recorded.
  ASSERT_THAT(s.last_applied, SizeIs(1));
  EXPECT_EQ(s.last_applied[0].applied_by, "pod-old");
  ExpectStoredValid();
}

TEST_F(ReporterTest, SixteenConcurrentReportersAgree) {
  constexpr int kPods = 16;
  absl::Barrier* start = new absl::Barrier(kPods);
  std::vector<std::thread> pods;
  std::vector<absl::Status> results(kPods);
  for (int i = 0; i < kPods; ++i) {
    pods.emplace_back([&, i] {
      std::mt19937 rng(i);
      if (start->Block()) delete start;
      ReportOptions options = Options(absl::StrCat("api-7d9f-pod", i));
      options.report_timeout = absl::Seconds(30);
      absl::StatusOr<std::unique_ptr<MigrationJobReporter>> reporter =
          MigrationJobReporter::Start(options, Client());
      if (!reporter.ok()) {
        results[i] = reporter.status();
        return;
      }
      absl::SleepFor(absl::Milliseconds(rng() % 50));
      if (i == 0) {
        // The pod that got the lock applies everything.
        results[i] = RunUpgrade(**reporter, {}, {"a1", "b2"});
        return;
      }
      store::LockHolder holder;
      holder.application_name = "api-7d9f-pod0";
      (*reporter)->OnWaitingForLock(holder);
      absl::SleepFor(absl::Milliseconds(rng() % 100));
      engine::RunResult done = Planned({"b2"}, {"b2"});
      done.already_at_target = true;
      (*reporter)->OnPlanned(done, {});
      results[i] = (*reporter)->Finish(absl::OkStatus(), &done);
    });
  }
  for (auto& t : pods) t.join();
  for (int i = 0; i < kPods; ++i) EXPECT_THAT(results[i], IsOk()) << "pod " << i;

  const kube::MigrationJobStatus s = StoredStatus();
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_THAT(s.current_revisions, ElementsAre("b2"));
  EXPECT_THAT(s.target_revisions, ElementsAre("b2"));
  EXPECT_THAT(s.pending_revisions, IsEmpty());
  EXPECT_FALSE(s.last_error.has_value());
  EXPECT_FALSE(s.completed_at.empty());
  EXPECT_EQ(ConditionStatus(s, kReady), "True");
  EXPECT_EQ(ConditionStatus(s, kReconciling), "False");
  EXPECT_EQ(ConditionStatus(s, kStalled), "False");
  ASSERT_THAT(s.last_applied, SizeIs(2));  // each step exactly once
  EXPECT_EQ(s.last_applied[0].revision, "b2");
  EXPECT_EQ(s.last_applied[1].revision, "a1");
  ExpectStoredValid();
  EXPECT_THAT(Reasons(), ElementsAre("MigrationApplied", "MigrationSucceeded"));
}

}  // namespace
}  // namespace sluice::reporting
