// End to end: `sluice operator` as a child process, against the fake Kubernetes API server (HTTPS,
// a bearer token limited to manifests/rbac-operator.yaml's rules) and a real PostgreSQL (a fresh
// database per test, SLUICE_TEST_PG_DSN). MigrationJobs, their ConfigMaps and Secrets are created
// on the fake server as `kubectl apply` would; the tests read back the status, the Events, the
// Lease, the operator's log and the database.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pkg/base/text.h"
#include "pkg/kube/json_codec.h"
#include "pkg/kube/types.h"
#include "tests/integration/migrate_test_support.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"
#include "tests/support/fake_kube/fake_kube_server.h"
#include "tests/support/fake_kube/test_pki.h"
#include "tests/support/loopback.h"

namespace sluice::testing {
namespace {

using ::sluice::fake_kube::FakeKubeServer;
using ::sluice::fake_kube::RecordedEvent;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kNamespace[] = "apps";
constexpr char kToken[] = "operator-token-9c1e7a5d3b";
// The password in every database URL the tests put in a Secret (the test server trusts, so any
// password connects): it must never show up in a log, an Event, a status or the metrics.
constexpr char kPassword[] = "Pw-canary-4e8a2f61";

std::string Revision(const std::string& id, const std::string& parent, const std::string& sql) {
  return absl::StrCat("revision: ", id, "\ndown_revision: ", parent.empty() ? "null" : parent,
                      "\nupgrade: |\n  ", sql, "\ndowngrade: |\n  DROP TABLE IF EXISTS t_", id,
                      ";\n");
}

// A revision creating table t_ID.
std::string TableRevision(const std::string& id, const std::string& parent,
                          const std::string& extra_sql = "") {
  return Revision(id, parent, absl::StrCat("CREATE TABLE t_", id, " (id int); ", extra_sql));
}

// How a test starts `sluice operator`.
struct OperatorFlags {
  std::string pod = "sluice-operator-0";
  int max_concurrent = 4;
  bool leader_elect = false;
  std::vector<std::string> extra;
};

// GETs http://127.0.0.1:`port``path` with a plain socket (HTTP/1.0: the server closes); returns
// the whole response, status line first, or "" when nothing answered.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

class OperatorE2eTest : public MigrateTest {
 protected:
  void SetUp() override {
    MigrateTest::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<fake_kube::TestCa> ca = fake_kube::TestCa::Create("sluice-operator-e2e-ca");
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
    // The operator's service account may do what manifests/rbac-operator.yaml grants, no more.
    absl::StatusOr<std::vector<fake_kube::RbacRule>> rules = fake_kube::RulesFromManifest(
        absl::StrCat(SLUICE_SOURCE_DIR, "/manifests/rbac-operator.yaml"));
    ASSERT_TRUE(rules.ok()) << rules.status();
    rbac_rules_ = *rules;
    server_->SetRbacRules(kToken, "system:serviceaccount:sluice-system:sluice-operator",
                          rbac_rules_);
    kubeconfig_ = manifests_.string() + ".kubeconfig";
    std::ofstream out(kubeconfig_, std::ios::trunc);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        << "clusters:\n- name: fake-cluster\n  cluster:\n    server: " << server_->url()
        << "\n    certificate-authority-data: " << absl::Base64Escape(ca_->cert_pem()) << "\n"
        << "contexts:\n- name: fake\n  context:\n    cluster: fake-cluster\n"
        << "    user: fake-user\n    namespace: " << kNamespace << "\n"
        << "users:\n- name: fake-user\n  user:\n    token: " << kToken << "\n";
  }

  void TearDown() override {
    for (auto& op : operators_) {
      if (op != nullptr) op->Kill(SIGKILL);
    }
    operators_.clear();
    if (server_ != nullptr) {
      fake_kube::ExpectFaithfulWrites(*server_, rejections_expected_);
      server_.reset();
    }
    for (const std::string& db : extra_databases_) {
      Query(absl::StrCat("DROP DATABASE IF EXISTS \"", db, "\" WITH (FORCE)"));
    }
    std::remove(kubeconfig_.c_str());
    MigrateTest::TearDown();
  }

  // A libpq URL of database `db` on the test server, with kPassword in it.
  std::string UrlOf(const std::string& db) {
    return absl::StrCat("postgresql://", user(), ":", kPassword, "@", host(), ":", port(), "/", db);
  }

  // Creates another database on the test server, dropped at the end of the test.
  std::string CreateDatabase(const std::string& suffix) {
    const std::string db = absl::StrCat(database(), "_", suffix);
    Query(absl::StrCat("CREATE DATABASE \"", db, "\""));
    extra_databases_.push_back(db);
    return db;
  }

  void PutSecret(const std::string& name, const std::string& url) {
    const std::string json = absl::StrCat(
        R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":")", name, R"(","namespace":")",
        kNamespace, R"("},"type":"Opaque","data":{"url":")", absl::Base64Escape(url), R"("}})");
    Put("secrets", name, json);
  }

  // Creates or replaces the ConfigMap `name` holding `files` (key -> manifest text).
  void PutConfigMap(const std::string& name, const std::map<std::string, std::string>& files) {
    std::vector<std::string> data;
    for (const auto& [key, text] : files)
      data.push_back(absl::StrCat("\"", key, "\":", base::JsonQuote(text)));
    const std::string json = absl::StrCat(
        R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")", name, R"(","namespace":")",
        kNamespace, R"("},"data":{)", absl::StrJoin(data, ","), "}}");
    Put("configmaps", name, json);
  }

  void Put(const std::string& resource, const std::string& name, const std::string& json) {
    if (server_->GetObject(resource, kNamespace, name).has_value()) {
      absl::Status replaced = server_->ReplaceObject(resource, kNamespace, json);
      ASSERT_TRUE(replaced.ok()) << replaced;
    } else {
      absl::StatusOr<std::string> created = server_->CreateObject(resource, kNamespace, json);
      ASSERT_TRUE(created.ok()) << created.status();
    }
  }

  static std::string JobJson(const std::string& name, const std::string& target,
                             const std::string& secret, const std::string& config_map,
                             bool suspend = false) {
    return absl::StrCat(
        R"({"apiVersion":"sluice.dev/v1alpha1","kind":"MigrationJob","metadata":{"name":")", name,
        R"(","namespace":")", kNamespace, R"("},)", SpecJson(target, secret, config_map, suspend),
        "}");
  }
  static std::string SpecJson(const std::string& target, const std::string& secret,
                              const std::string& config_map, bool suspend) {
    return absl::StrCat(R"("spec":{"target":")", target,
                        R"(","database":{"urlSecretRef":{"name":")", secret,
                        R"(","key":"url"}},"migrations":{"configMaps":[{"name":")", config_map,
                        R"("}]},"suspend":)", suspend ? "true" : "false", "}");
  }

  void CreateJob(const std::string& name, const std::string& target = "head",
                 const std::string& secret = "app-db",
                 const std::string& config_map = "app-migrations") {
    absl::StatusOr<std::string> created = server_->CreateObject(
        "migrationjobs", kNamespace, JobJson(name, target, secret, config_map));
    ASSERT_TRUE(created.ok()) << created.status();
  }

  void SetSpec(const std::string& name, const std::string& target, bool suspend = false) {
    // UpdateMigrationJobSpec takes the spec object itself.
    std::string spec = SpecJson(target, "app-db", "app-migrations", suspend);
    spec = spec.substr(std::string("\"spec\":").size());
    absl::Status updated = server_->UpdateMigrationJobSpec(kNamespace, name, spec);
    ASSERT_TRUE(updated.ok()) << updated;
  }

  std::optional<kube::MigrationJob> Job(const std::string& name) {
    std::optional<std::string> json = server_->GetObject("migrationjobs", kNamespace, name);
    if (!json.has_value()) return std::nullopt;
    absl::StatusOr<kube::MigrationJob> job = kube::ParseMigrationJob(*json);
    if (!job.ok()) return std::nullopt;
    return *std::move(job);
  }

  static const kube::Condition* ConditionOf(const kube::MigrationJob& job,
                                            const std::string& type) {
    if (!job.status.has_value()) return nullptr;
    for (const kube::Condition& c : job.status->conditions) {
      if (c.type == type) return &c;
    }
    return nullptr;
  }

  // Whether `name` is Ready at its current generation with `current` as its revisions.
  bool ReadyAt(const std::string& name, const std::vector<std::string>& current) {
    std::optional<kube::MigrationJob> job = Job(name);
    if (!job.has_value() || !job->status.has_value()) return false;
    const kube::Condition* ready = ConditionOf(*job, "Ready");
    return job->status->phase == "Succeeded" &&
           job->status->observed_generation == job->metadata.generation && ready != nullptr &&
           ready->status == "True" && job->status->current_revisions == current;
  }

  bool WaitReadyAt(const std::string& name, const std::vector<std::string>& current,
                   absl::Duration timeout = absl::Seconds(30)) {
    return server_->WaitUntil([&] { return ReadyAt(name, current); }, timeout);
  }

  // The Events recorded so far, one "type reason: message" a line, for failure messages.
  std::string DescribeEvents() {
    std::string out;
    for (const RecordedEvent& e : server_->Events()) {
      absl::StrAppend(&out, e.type, " ", e.reason, ": ", e.message, "\n");
    }
    return out;
  }

  std::string StalledReason(const std::string& name) {
    std::optional<kube::MigrationJob> job = Job(name);
    if (!job.has_value()) return "";
    const kube::Condition* stalled = ConditionOf(*job, "Stalled");
    return stalled != nullptr && stalled->status == "True" ? stalled->reason : "";
  }

  static OperatorFlags LeaderElecting(const std::string& pod,
                                      const std::vector<std::string>& extra = {}) {
    OperatorFlags flags;
    flags.pod = pod;
    flags.leader_elect = true;
    flags.extra = extra;
    return flags;
  }

  // Starts `sluice operator` watching kNamespace; returns its index in operators_.
  Process& StartOperator() { return StartOperator(OperatorFlags()); }
  Process& StartOperator(const OperatorFlags& flags) {
    std::vector<std::string> argv = {SluiceBinary(),
                                     "operator",
                                     "--kubeconfig",
                                     kubeconfig_,
                                     "--namespace",
                                     kNamespace,
                                     absl::StrCat("--max-concurrent=", flags.max_concurrent),
                                     absl::StrCat("--leader-elect=", flags.leader_elect),
                                     "--health-addr=0",
                                     "--metrics-addr=0",
                                     "--log-format=json"};
    argv.insert(argv.end(), flags.extra.begin(), flags.extra.end());
    operators_.push_back(std::make_unique<Process>(
        argv, std::map<std::string, std::string>{{"POD_NAME", flags.pod},
                                                 {"POD_NAMESPACE", kNamespace},
                                                 {"KUBECONFIG", ""},
                                                 {"KUBERNETES_SERVICE_HOST", ""},
                                                 {"KUBERNETES_SERVICE_PORT", ""}}));
    return *operators_.back();
  }

  std::string VersionsIn(const std::string& db) {
    return QueryOn(db,
                   "SELECT coalesce(string_agg(version_num, ',' ORDER BY version_num), '') "
                   "FROM alembic_version");
  }

  // Runs `sql` on database `db` through psql; returns its output trimmed.
  std::string QueryOn(const std::string& db, const std::string& sql) {
    ProcessResult r = RunProcess(
        {"/usr/lib/postgresql/15/bin/psql", "-XAtq", "-d",
         absl::StrCat("host=", host(), " port=", port(), " user=", user(), " dbname=", db), "-c",
         sql});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  // How many history rows record `revision` applied upward in `db`.
  int TimesApplied(const std::string& db, const std::string& revision) {
    const std::string count =
        QueryOn(db, absl::StrCat("SELECT count(*) FROM sluice_history WHERE revision = '", revision,
                                 "' AND direction = 'upgrade' AND outcome = 'applied'"));
    return std::atoi(count.c_str());
  }

  // Everything a Secret must never reach: the operator's log, the Events, the statuses.
  void ExpectNoPasswordAnywhere(Process& op) {
    EXPECT_THAT(op.ErrorsSoFar(), Not(HasSubstr(kPassword)));
    EXPECT_THAT(op.OutputSoFar(), Not(HasSubstr(kPassword)));
    for (const RecordedEvent& e : server_->Events()) {
      EXPECT_THAT(e.json, Not(HasSubstr(kPassword)));
    }
    for (const auto& request : server_->Requests()) {
      if (request.method == "GET") continue;  // reading the Secret is the one place it may be
      EXPECT_THAT(request.body, Not(HasSubstr(kPassword))) << request.method << " " << request.path;
    }
  }

  // Set by a test that cuts the server off mid-request (see ExpectFaithfulWrites).
  bool rejections_expected_ = false;
  std::unique_ptr<FakeKubeServer> server_;
  std::optional<fake_kube::TestCa> ca_;
  std::vector<fake_kube::RbacRule> rbac_rules_;
  std::string kubeconfig_;
  std::vector<std::unique_ptr<Process>> operators_;
  std::vector<std::string> extra_databases_;
};

TEST_F(OperatorE2eTest, AppliesThenFollowsTargetSuspendAndConfigMapChanges) {
  PutSecret("app-db", UrlOf(database()));
  PutConfigMap("app-migrations",
               {{"0001.yaml", TableRevision("r1", "")}, {"0002.yaml", TableRevision("r2", "r1")}});
  CreateJob("app-db");
  Process& op = StartOperator();
  ASSERT_TRUE(WaitReadyAt("app-db", {"r2"})) << op.ErrorsSoFar();
  EXPECT_EQ(VersionsIn(database()), "r2");
  std::optional<kube::MigrationJob> job = Job("app-db");
  ASSERT_TRUE(job.has_value());
  EXPECT_THAT(job->status->migrations_digest, ::testing::StartsWith("sha256:"));
  std::vector<std::string> reasons;
  for (const RecordedEvent& e : server_->Events()) reasons.push_back(e.reason);
  EXPECT_THAT(reasons, Contains("MigrationApplied"));

  // Down, then up again: each is a new generation.
  SetSpec("app-db", "r1");
  ASSERT_TRUE(WaitReadyAt("app-db", {"r1"})) << op.ErrorsSoFar();
  EXPECT_EQ(VersionsIn(database()), "r1");
  EXPECT_FALSE(TableExists("t_r2"));
  SetSpec("app-db", "head");
  ASSERT_TRUE(WaitReadyAt("app-db", {"r2"})) << op.ErrorsSoFar();

  // Suspended: a new revision in the ConfigMap is not applied.
  SetSpec("app-db", "head", /*suspend=*/true);
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "")},
                                  {"0002.yaml", TableRevision("r2", "r1")},
                                  {"0003.yaml", TableRevision("r3", "r2")}});
  absl::SleepFor(absl::Milliseconds(500));  // long enough for a wrongly run reconcile to start
  EXPECT_EQ(VersionsIn(database()), "r2");

  // Resumed: the new head is applied. From the first status write after the ConfigMap changed,
  // Ready is never True with the old content.
  SetSpec("app-db", "head");
  bool saw_ready_true_for_old_content = false;
  bool saw_migrations_changed = false;
  ASSERT_TRUE(server_->WaitUntil(
      [&] {
        std::optional<kube::MigrationJob> now = Job("app-db");
        if (!now.has_value() || !now->status.has_value()) return false;
        const kube::Condition* ready = ConditionOf(*now, "Ready");
        if (ready != nullptr && ready->reason == "MigrationsChanged") saw_migrations_changed = true;
        if (saw_migrations_changed && ready != nullptr && ready->status == "True" &&
            now->status->current_revisions != std::vector<std::string>{"r3"}) {
          saw_ready_true_for_old_content = true;
        }
        return ReadyAt("app-db", {"r3"});
      },
      absl::Seconds(30)))
      << op.ErrorsSoFar();
  EXPECT_FALSE(saw_ready_true_for_old_content);
  EXPECT_EQ(VersionsIn(database()), "r3");
  EXPECT_EQ(TimesApplied(database(), "r3"), 1);
  ExpectNoPasswordAnywhere(op);
}

TEST_F(OperatorE2eTest, ChangedConfigMapTurnsReadyFalseUntilApplied) {
  PutSecret("app-db", UrlOf(database()));
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "")}});
  CreateJob("app-db");
  Process& op = StartOperator();
  ASSERT_TRUE(WaitReadyAt("app-db", {"r1"})) << op.ErrorsSoFar();
  // The new revision takes a while, so the status in between can be seen.
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "")},
                                  {"0002.yaml", TableRevision("r2", "r1", "SELECT pg_sleep(1);")}});
  ASSERT_TRUE(server_->WaitUntil(
      [&] {
        std::optional<kube::MigrationJob> job = Job("app-db");
        const kube::Condition* ready = job.has_value() ? ConditionOf(*job, "Ready") : nullptr;
        return ready != nullptr && ready->status == "False" && ready->reason == "MigrationsChanged";
      },
      absl::Seconds(10)))
      << op.ErrorsSoFar();
  ASSERT_TRUE(WaitReadyAt("app-db", {"r2"})) << op.ErrorsSoFar();
}

TEST_F(OperatorE2eTest, FiftyJobsOverFiveDatabasesRunOnceEachWithinTheLimit) {
  std::vector<std::string> databases;
  for (int d = 0; d < 5; ++d) {
    databases.push_back(CreateDatabase(absl::StrCat("d", d)));
    PutSecret(absl::StrCat("db-", d), UrlOf(databases.back()));
  }
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "", "SELECT pg_sleep(0.1);")},
                                  {"0002.yaml", TableRevision("r2", "r1", "SELECT pg_sleep(0.1);")},
                                  {"0003.yaml", TableRevision("r3", "r2")}});
  for (int j = 0; j < 50; ++j) {
    CreateJob(absl::StrCat("job-", j), "head", absl::StrCat("db-", j % 5));
  }
  constexpr int kLimit = 3;
  OperatorFlags flags;
  flags.max_concurrent = kLimit;
  Process& op = StartOperator(flags);
  ASSERT_TRUE(server_->WaitUntil(
      [&] {
        for (int j = 0; j < 50; ++j) {
          if (!ReadyAt(absl::StrCat("job-", j), {"r3"})) return false;
        }
        return true;
      },
      absl::Seconds(120)))
      << op.ErrorsSoFar();
  for (const std::string& db : databases) {
    EXPECT_EQ(VersionsIn(db), "r3");
    for (const char* revision : {"r1", "r2", "r3"}) {
      EXPECT_EQ(TimesApplied(db, revision), 1) << db << " " << revision;
    }
  }
  // The log says when each run started and ended, in order: never more than kLimit at once.
  int running = 0;
  int most = 0;
  int runs = 0;
  int readings = 0;  // jobs that reported another job's reading of their database moments ago
  for (absl::string_view line : absl::StrSplit(op.ErrorsSoFar(), '\n')) {
    if (absl::StrContains(line, "\"reconciling the MigrationJob\"")) {
      most = std::max(most, ++running);
      ++runs;
    }
    if (absl::StrContains(line, "\"run ended\"")) --running;
    if (absl::StrContains(line, "\"read_by\"")) ++readings;
  }
  EXPECT_GE(most, 1);
  EXPECT_LE(most, kLimit);
  EXPECT_GE(runs, 5);  // at least the first job of each database connected
  EXPECT_GT(readings, 0) << "every job connected to its database again";
  EXPECT_EQ(runs + readings, 50) << op.ErrorsSoFar();
}

TEST_F(OperatorE2eTest, DroppedWatchGoneAndRestartedServerMissNothing) {
  PutSecret("app-db", UrlOf(database()));
  std::map<std::string, std::string> files = {{"0001.yaml", TableRevision("r1", "")}};
  PutConfigMap("app-migrations", files);
  CreateJob("app-db");
  Process& op = StartOperator();
  ASSERT_TRUE(WaitReadyAt("app-db", {"r1"})) << op.ErrorsSoFar();

  // The watch dropped mid-stream; a change made meanwhile.
  server_->CloseWatches(/*abruptly=*/true);
  files["0002.yaml"] = TableRevision("r2", "r1");
  PutConfigMap("app-migrations", files);
  ASSERT_TRUE(WaitReadyAt("app-db", {"r2"})) << op.ErrorsSoFar();

  // 410 Gone: the operator lists again and still sees the change.
  server_->SetHistoryLimit(1);
  files["0003.yaml"] = TableRevision("r3", "r2");
  server_->InjectWatchError(410);
  PutConfigMap("app-migrations", files);
  ASSERT_TRUE(WaitReadyAt("app-db", {"r3"})) << op.ErrorsSoFar();

  // The API server goes away, a change lands while it is down, and it comes back. A status write
  // cut off by the stop reaches cpprest's listener truncated and is answered 400: not a write the
  // real server would refuse, so rejections are no failure from here on.
  rejections_expected_ = true;
  server_->SetCloseConnections(true);
  server_->CloseWatches(/*abruptly=*/true);
  ASSERT_TRUE(server_->StopListening().ok());
  files["0004.yaml"] = TableRevision("r4", "r3");
  PutConfigMap("app-migrations", files);
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Status listening = server_->StartListening();
  ASSERT_TRUE(listening.ok()) << listening;
  ASSERT_TRUE(WaitReadyAt("app-db", {"r4"}, absl::Seconds(60))) << op.ErrorsSoFar();
  for (const char* revision : {"r1", "r2", "r3", "r4"}) {
    EXPECT_EQ(TimesApplied(database(), revision), 1) << revision;
  }
}

TEST_F(OperatorE2eTest, AStandbyTakesOverWhenTheLeaderIsKilled) {
  PutSecret("app-db", UrlOf(database()));
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "")}});
  const std::vector<std::string> fast_election = {"--leader-election-lease-duration=2s",
                                                  "--leader-election-renew-deadline=1500ms",
                                                  "--leader-election-retry-period=200ms"};
  Process& a = StartOperator(LeaderElecting("op-a", fast_election));
  ASSERT_TRUE(server_->WaitUntil(
      [&] {
        std::optional<std::string> lease =
            server_->GetObject("leases", kNamespace, "sluice-operator");
        return lease.has_value() && absl::StrContains(*lease, "\"holderIdentity\":\"op-a_");
      },
      absl::Seconds(20)))
      << a.ErrorsSoFar();
  Process& b = StartOperator(LeaderElecting("op-b", fast_election));
  CreateJob("first");
  ASSERT_TRUE(WaitReadyAt("first", {"r1"})) << a.ErrorsSoFar();
  // Only the leader reconciled.
  for (const RecordedEvent& e : server_->Events()) EXPECT_EQ(e.reporting_instance, "op-a");

  a.Kill(SIGKILL);
  (void)a.Wait(absl::Seconds(10));
  const absl::Time killed = absl::Now();
  CreateJob("second");
  ASSERT_TRUE(WaitReadyAt("second", {"r1"}, absl::Seconds(20))) << b.ErrorsSoFar();
  // Within the lease duration, plus the standby's retry period and the run.
  EXPECT_LT(absl::Now() - killed, absl::Seconds(10));
  std::optional<std::string> lease = server_->GetObject("leases", kNamespace, "sluice-operator");
  ASSERT_TRUE(lease.has_value());
  EXPECT_THAT(*lease, HasSubstr("\"holderIdentity\":\"op-b_"));
}

// client-go's rule (lease > renew deadline > 1.2 x retry period > 0): anything else is refused at
// start, naming the flags, before the operator touches the API.
TEST_F(OperatorE2eTest, LeaderElectionTimingsOutsideClientGosRulesAreAUsageError) {
  ProcessResult r =
      RunProcess({SluiceBinary(), "operator", "--kubeconfig", kubeconfig_, "--namespace",
                  kNamespace, "--leader-elect=true", "--leader-election-lease-duration=10s",
                  "--leader-election-renew-deadline=2s", "--leader-election-retry-period=2s",
                  "--health-addr=0", "--metrics-addr=0"},
                 {{"POD_NAMESPACE", kNamespace}, {"KUBECONFIG", ""}});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--leader-election-renew-deadline (2s) must be greater than 1.2 x "
                               "--leader-election-retry-period (2s)"));
  EXPECT_TRUE(server_->Events().empty());
  EXPECT_EQ(server_->GetObject("leases", kNamespace, "sluice-operator"), std::nullopt);
}

TEST_F(OperatorE2eTest, AMissingSecretStallsThenRecoversWhenCreated) {
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "")}});
  CreateJob("app-db");
  Process& op = StartOperator();
  ASSERT_TRUE(server_->WaitUntil([&] { return StalledReason("app-db") == "SecretNotFound"; },
                                 absl::Seconds(20)))
      << op.ErrorsSoFar();
  std::optional<kube::MigrationJob> job = Job("app-db");
  ASSERT_TRUE(job.has_value());
  EXPECT_THAT(ConditionOf(*job, "Stalled")->message, HasSubstr("apps/app-db"));
  // The Warning Event follows the status write.
  EXPECT_TRUE(server_->WaitUntil(
      [&] {
        for (const RecordedEvent& e : server_->Events()) {
          if (e.type == "Warning" && e.reason == "SecretNotFound" &&
              absl::StrContains(e.message, "spec.database.urlSecretRef")) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(10)))
      << DescribeEvents();
  PutSecret("app-db", UrlOf(database()));
  ASSERT_TRUE(WaitReadyAt("app-db", {"r1"})) << op.ErrorsSoFar();
  ExpectNoPasswordAnywhere(op);
}

TEST_F(OperatorE2eTest, SecretsForbiddenByRbacIsAClearStall) {
  std::vector<fake_kube::RbacRule> no_secrets;
  for (fake_kube::RbacRule rule : rbac_rules_) {
    rule.resources.erase(std::remove(rule.resources.begin(), rule.resources.end(), "secrets"),
                         rule.resources.end());
    if (!rule.resources.empty()) no_secrets.push_back(rule);
  }
  server_->SetRbacRules(kToken, "system:serviceaccount:sluice-system:sluice-operator", no_secrets);
  PutSecret("app-db", UrlOf(database()));
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "")}});
  CreateJob("app-db");
  Process& op = StartOperator();
  ASSERT_TRUE(server_->WaitUntil([&] { return StalledReason("app-db") == "SecretForbidden"; },
                                 absl::Seconds(20)))
      << op.ErrorsSoFar();
  std::optional<kube::MigrationJob> job = Job("app-db");
  EXPECT_THAT(ConditionOf(*job, "Stalled")->message, HasSubstr("may not read Secret apps/app-db"));
  // Nothing touched the database: not even the version table exists.
  EXPECT_EQ(QueryOn(database(), "SELECT to_regclass('alembic_version') IS NULL"), "t");
}

TEST_F(OperatorE2eTest, SigtermDuringALongRevisionExitsCleanlyAndReleasesTheLease) {
  PutSecret("app-db", UrlOf(database()));
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "", "SELECT pg_sleep(2);")},
                                  {"0002.yaml", TableRevision("r2", "r1")}});
  CreateJob("app-db");
  Process& op = StartOperator(LeaderElecting("op-a"));
  // r1 is under way.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return QueryOn(database(),
                       "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' "
                       "AND pid <> pg_backend_pid() AND datname = current_database()") == "1";
      },
      absl::Seconds(20)))
      << op.ErrorsSoFar();
  op.Kill(SIGTERM);
  ProcessResult ended = op.Wait(absl::Seconds(30));
  EXPECT_EQ(ended.exit_code, 0) << Describe(ended);
  // r1 finished (the running revision is let finish); r2 was not started.
  EXPECT_EQ(VersionsIn(database()), "r1");
  EXPECT_FALSE(TableExists("t_r2"));
  std::optional<std::string> lease = server_->GetObject("leases", kNamespace, "sluice-operator");
  ASSERT_TRUE(lease.has_value());
  EXPECT_THAT(*lease, Not(HasSubstr("\"holderIdentity\":\"op-a")));
}

TEST_F(OperatorE2eTest, ServesHealthReadinessAndMetricsWithoutSecrets) {
  PutSecret("app-db", UrlOf(database()));
  PutConfigMap("app-migrations",
               {{"0001.yaml", TableRevision("r1", "")}, {"0002.yaml", TableRevision("r2", "r1")}});
  CreateJob("app-db");
  absl::StatusOr<int> health_port = UnusedLoopbackPort();
  absl::StatusOr<int> metrics_port = UnusedLoopbackPort();
  ASSERT_TRUE(health_port.ok() && metrics_port.ok());
  OperatorFlags flags;
  flags.extra = {absl::StrCat("--health-addr=127.0.0.1:", *health_port),
                 absl::StrCat("--metrics-addr=127.0.0.1:", *metrics_port)};
  Process& op = StartOperator(flags);
  ASSERT_TRUE(WaitReadyAt("app-db", {"r2"})) << op.ErrorsSoFar();
  EXPECT_THAT(HttpGet(*health_port, "/healthz"), ::testing::StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(HttpGet(*health_port, "/readyz"), ::testing::StartsWith("HTTP/1.1 200"));
  std::string metrics;
  // The run's counters are written after its status: wait for them.
  ASSERT_TRUE(WaitUntil(
      [&] {
        metrics = HttpGet(*metrics_port, "/metrics");
        return absl::StrContains(metrics, "sluice_operator_applied_revisions_total 2");
      },
      absl::Seconds(10)))
      << metrics;
  EXPECT_THAT(metrics, HasSubstr("sluice_operator_runs_total{outcome=\"succeeded\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("sluice_operator_run_duration_seconds_bucket"));
  EXPECT_THAT(metrics, HasSubstr("sluice_operator_queue_depth"));
  EXPECT_THAT(metrics, HasSubstr("sluice_operator_leader 1"));
  EXPECT_THAT(metrics, Not(HasSubstr(kPassword)));
  EXPECT_THAT(HttpGet(*metrics_port, "/nothing-here"), ::testing::StartsWith("HTTP/1.1 404"));
  ExpectNoPasswordAnywhere(op);
}

// The real kubectl waits on the Ready condition the operator writes, as a kstatus reader would.
TEST_F(OperatorE2eTest, KubectlWaitReturnsOnceTheOperatorApplied) {
  constexpr char kAdminToken[] = "kubectl-admin-token-7f3a";
  server_->AddToken(kAdminToken);  // no RBAC rules: may do anything, like a cluster admin
  const std::string home = manifests_.string() + ".kubectl";
  std::filesystem::create_directories(home);
  const std::string kubeconfig = home + "/config";
  {
    std::ifstream in(kubeconfig_);
    std::stringstream text;
    text << in.rdbuf();
    std::string admin = text.str();
    admin.replace(admin.find(kToken), std::string(kToken).size(), kAdminToken);
    std::ofstream(kubeconfig) << admin;
  }
  const std::string job = home + "/job.yaml";
  std::ofstream(job) << "apiVersion: sluice.dev/v1alpha1\nkind: MigrationJob\nmetadata:\n"
                        "  name: app-db\n  namespace: apps\nspec:\n  target: head\n"
                        "  database:\n    urlSecretRef: {name: app-db, key: url}\n"
                        "  migrations:\n    configMaps: [{name: app-migrations}]\n";
  const std::vector<std::string> kubectl = {SLUICE_KUBECTL, "--kubeconfig", kubeconfig,
                                            "--cache-dir", home + "/cache"};
  const std::map<std::string, std::string> env = {{"HOME", home}, {"KUBECONFIG", ""}};
  auto with = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = kubectl;
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  PutSecret("app-db", UrlOf(database()));
  PutConfigMap("app-migrations", {{"0001.yaml", TableRevision("r1", "")}});
  // The fake serves no OpenAPI document, which kubectl's client-side validation reads.
  ProcessResult applied = RunProcess(with({"apply", "--validate=false", "-f", job}), env);
  ASSERT_EQ(applied.exit_code, 0) << Describe(applied);
  Process wait(with({"-n", "apps", "wait", "--for=condition=Ready", "mj/app-db", "--timeout=60s"}),
               env);
  absl::SleepFor(absl::Milliseconds(300));  // kubectl is waiting before the operator starts
  Process& op = StartOperator();
  ProcessResult waited = wait.Wait(absl::Seconds(90));
  EXPECT_EQ(waited.exit_code, 0) << Describe(waited) << op.ErrorsSoFar();
  EXPECT_THAT(waited.out, HasSubstr("condition met"));
  EXPECT_TRUE(ReadyAt("app-db", {"r1"}));
  ProcessResult got = RunProcess(with({"-n", "apps", "get", "mj"}), env);
  EXPECT_THAT(got.out, HasSubstr("Succeeded"));
  EXPECT_THAT(got.out, HasSubstr("r1"));
  std::filesystem::remove_all(home);
}

}  // namespace
}  // namespace sluice::testing
