#include "tests/integration/migrate_test_support.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/support/loopback.h"

namespace sluice::testing {

std::string SluiceBinary() {
  // CI runs these tests a second time against the static build (scripts/test.sh).
  const char* other = std::getenv("SLUICE_TEST_BINARY");
  return other != nullptr && *other != '\0' ? other : SLUICE_BINARY;
}

void MigrateTest::SetUp() {
  PgTest::SetUp();
  manifests_ = std::filesystem::temp_directory_path() /
               absl::StrCat("sluice-manifests-", getpid(), "-",
                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(manifests_);
  std::filesystem::create_directories(manifests_);
}

void MigrateTest::TearDown() {
  std::filesystem::remove_all(manifests_);
  PgTest::TearDown();
}

void MigrateTest::WriteManifest(const std::string& name,
                                const std::vector<RevisionSpec>& revisions) {
  std::ofstream file(manifests_ / name);
  bool first = true;
  for (const RevisionSpec& r : revisions) {
    if (!first) file << "---\n";
    first = false;
    file << "revision: " << r.id << "\n";
    if (r.parents.empty()) {
      file << "down_revision: null\n";
    } else {
      file << "down_revision: [" << absl::StrJoin(r.parents, ", ") << "]\n";
    }
    file << "description: revision " << r.id << "\n";
    if (!r.extra.empty()) file << r.extra << "\n";
    file << "upgrade: |\n";
    for (absl::string_view line : absl::StrSplit(r.upgrade, '\n')) file << "  " << line << "\n";
    if (!r.downgrade.empty()) {
      file << "downgrade: |\n";
      for (absl::string_view line : absl::StrSplit(r.downgrade, '\n')) file << "  " << line << "\n";
    }
  }
}

void MigrateTest::WriteLinear(int count, const std::string& prefix) {
  for (int i = 1; i <= count; ++i) {
    const std::string id = absl::StrFormat("%s%03d", prefix, i);
    const std::string table = absl::StrFormat("t%03d", i);
    std::vector<std::string> parents;
    if (i > 1) parents.push_back(absl::StrFormat("%s%03d", prefix, i - 1));
    WriteManifest(id + ".yaml", {{id, parents, "CREATE TABLE " + table + " (id int);",
                                  "DROP TABLE " + table + ";", ""}});
  }
}

void MigrateTest::RemoveManifest(const std::string& name) {
  std::filesystem::remove(manifests_ / name);
}

std::vector<std::string> MigrateTest::SluiceArgs(std::vector<std::string> args) const {
  args.insert(args.begin(), SluiceBinary());
  args.push_back("--migrations=" + manifests_.string());
  args.push_back("--database-url=" + (database_url_.empty() ? dsn() : database_url_));
  return args;
}

ProcessResult MigrateTest::Sluice(std::vector<std::string> args,
                                  const std::map<std::string, std::string>& env) {
  return RunProcess(SluiceArgs(std::move(args)), env);
}

std::unique_ptr<Process> MigrateTest::StartSluice(std::vector<std::string> args,
                                                  const std::map<std::string, std::string>& env) {
  return std::make_unique<Process>(SluiceArgs(std::move(args)), env);
}

std::vector<ProcessResult> MigrateTest::RunConcurrently(int count,
                                                        const std::vector<std::string>& args) {
  std::vector<std::unique_ptr<Process>> runners;
  for (int i = 0; i < count; ++i) {
    runners.push_back(StartSluice(args, {{"HOSTNAME", absl::StrCat("pod-", i)}}));
  }
  std::vector<ProcessResult> results;
  for (auto& runner : runners) results.push_back(runner->Wait(absl::Seconds(240)));
  return results;
}

std::string MigrateTest::Rows(const std::string& sql) {
  std::vector<std::string> lines;
  for (const std::vector<std::string>& row : Query(sql)) lines.push_back(absl::StrJoin(row, "|"));
  return absl::StrJoin(lines, "\n");
}

bool MigrateTest::WaitForLockHeldBy(const std::string& application_name) {
  for (int i = 0; i < 200; ++i) {
    if (Rows("SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
             "WHERE a.application_name = '" +
             application_name +
             "' AND l.granted AND (l.locktype = 'advisory' OR l.mode = "
             "'AccessExclusiveLock')") == "t") {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

std::unique_ptr<Process> MigrateTest::StartPsql(const std::string& sql,
                                                const std::string& application_name) {
  return std::make_unique<Process>(
      std::vector<std::string>{"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                               dsn() + " application_name=" + application_name, "-c", sql});
}

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration poll) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(poll);
  }
}

namespace {

// Returns `count` distinct loopback ports that were free a moment ago, none in 54300-54499, where
// the scripts' clusters and developers' own clusters listen by default.
std::vector<int> UnusedLoopbackPorts(int count) {
  std::vector<int> ports;
  for (int attempt = 0; attempt < 100 && static_cast<int>(ports.size()) < count; ++attempt) {
    absl::StatusOr<int> port = UnusedLoopbackPort();
    if (!port.ok()) break;
    if (*port >= 54300 && *port <= 54499) continue;
    if (std::find(ports.begin(), ports.end(), *port) == ports.end()) ports.push_back(*port);
  }
  return ports;
}

}  // namespace

OwnTestCluster::OwnTestCluster(const std::string& name, bool with_poolers)
    : with_poolers_(with_poolers) {
  std::vector<int> ports = UnusedLoopbackPorts(3);
  while (ports.size() < 3) ports.push_back(0);  // Start fails and says why
  env_ = {{"SLUICE_PG_DIR", absl::StrCat("/tmp/sluice-", name, "-", getpid())},
          {"SLUICE_PG_PORT", absl::StrCat(ports[0])},
          {"SLUICE_PGBOUNCER_TRANSACTION_PORT", absl::StrCat(ports[1])},
          {"SLUICE_PGBOUNCER_SESSION_PORT", absl::StrCat(ports[2])},
          {"SLUICE_PGBOUNCER", with_poolers ? "1" : "0"}};
}

OwnTestCluster::~OwnTestCluster() {
  ProcessResult r = Script("stop");
  if (r.exit_code != 0) ADD_FAILURE() << "pg-test-cluster.sh stop: " << Describe(r);
}

ProcessResult OwnTestCluster::Script(const std::string& command, const std::string& argument) {
  std::vector<std::string> argv = {std::string(SLUICE_SOURCE_DIR) + "/scripts/pg-test-cluster.sh",
                                   command};
  if (!argument.empty()) argv.push_back(argument);
  return RunProcess(argv, env_, absl::Seconds(120));
}

bool OwnTestCluster::Start() {
  ProcessResult r = Script("start");
  if (r.exit_code != 0) {
    ADD_FAILURE() << "pg-test-cluster.sh start: " << Describe(r);
    return false;
  }
  std::map<std::string, std::string> printed;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> pair = absl::StrSplit(line, absl::MaxSplits('=', 1));
    printed[pair.first] = pair.second;
  }
  dsn_ = printed[kTestPgDsnVariable];
  transaction_pooler_dsn_ = printed[kTestPgBouncerTransactionDsnVariable];
  session_pooler_dsn_ = printed[kTestPgBouncerSessionDsnVariable];
  const bool complete =
      !dsn_.empty() &&
      (!with_poolers_ || (!transaction_pooler_dsn_.empty() && !session_pooler_dsn_.empty()));
  if (!complete) ADD_FAILURE() << "pg-test-cluster.sh start printed no DSNs: " << Describe(r);
  return complete;
}

}  // namespace sluice::testing
