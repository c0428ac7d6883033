// Shared harness of the end-to-end migration tests: a scratch database, a manifests directory, and
// the `sluice` binary run as a child process, as an init container would run it.
#ifndef SLUICE_TESTS_INTEGRATION_MIGRATE_TEST_SUPPORT_H_
#define SLUICE_TESTS_INTEGRATION_MIGRATE_TEST_SUPPORT_H_

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/process.h"

namespace sluice::testing {

// One revision to write as a manifest document.
struct RevisionSpec {
  std::string id;
  std::vector<std::string> parents;
  std::string upgrade;
  std::string downgrade;  // empty: no downgrade key
  std::string extra;      // further YAML lines, e.g. "transactional: false"
};

class MigrateTest : public PgTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Writes `revisions` as one manifest file `name` in the manifests directory.
  void WriteManifest(const std::string& name, const std::vector<RevisionSpec>& revisions);
  // Writes a linear chain r001..rNNN, each creating table tNNN, as one file per revision.
  void WriteLinear(int count, const std::string& prefix = "r");
  void RemoveManifest(const std::string& name);

  // Makes Sluice, StartSluice and RunConcurrently pass `url` as --database-url instead of dsn(),
  // e.g. this test's database through a connection pooler (DsnVia).
  void UseDatabaseUrl(std::string url) { database_url_ = std::move(url); }

  // Runs sluice with --migrations and --database-url added.
  ProcessResult Sluice(std::vector<std::string> args,
                       const std::map<std::string, std::string>& env = {});
  // Starts sluice without waiting.
  std::unique_ptr<Process> StartSluice(std::vector<std::string> args,
                                       const std::map<std::string, std::string>& env = {});
  std::vector<std::string> SluiceArgs(std::vector<std::string> args) const;
  // Starts `count` sluice processes at once, as pods pod-0, pod-1, ..., and waits for them all.
  std::vector<ProcessResult> RunConcurrently(int count, const std::vector<std::string>& args);

  // Runs SQL on a connection of its own; returns rows as lines, columns separated by '|'.
  std::string Rows(const std::string& sql);
  // Starts psql running `sql` in the background (e.g. a session holding a lock).
  std::unique_ptr<Process> StartPsql(const std::string& sql, const std::string& application_name);
  // Waits, up to 10 s, until a session named `application_name` holds an advisory lock or an
  // ACCESS EXCLUSIVE table lock; returns whether it does.
  bool WaitForLockHeldBy(const std::string& application_name);
  // Terminates the server sessions named `application_name` (ending a psql child's session:
  // killing psql alone leaves its backend running until its statement ends).
  void EndSessions(const std::string& application_name) {
    Rows("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
         application_name + "'");
  }
  std::string Versions() {
    return Rows(
        "SELECT coalesce(string_agg(version_num, ',' ORDER BY version_num), '') FROM "
        "alembic_version");
  }
  bool TableExists(const std::string& table) {
    return Rows("SELECT to_regclass('" + table + "') IS NOT NULL") == "t";
  }

  std::filesystem::path manifests_;

 private:
  std::string database_url_;  // empty: dsn()
};

// Polls `condition` every `poll` until it holds or `timeout` has passed; returns whether it held.
// For waiting on what a test can observe instead of sleeping for a guessed time.
bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration poll = absl::Milliseconds(20));

// A throwaway PostgreSQL cluster of a test's own, with the two PgBouncers in front of it
// (transaction and session pooling), run by scripts/pg-test-cluster.sh on free loopback ports: for
// tests that stop or restart a server, so that the shared test cluster is not disturbed. Stopped
// and deleted when destroyed.
//
// Example:
//   OwnTestCluster cluster("restart");
//   ASSERT_TRUE(cluster.Start());
//   ... cluster.dsn(), cluster.transaction_pooler_dsn() ...
//   ASSERT_EQ(cluster.Script("restart-pgbouncer", "transaction").exit_code, 0);
class OwnTestCluster {
 public:
  // `name` goes into its directory's name; without `with_poolers` it runs PostgreSQL alone.
  explicit OwnTestCluster(const std::string& name, bool with_poolers = true);
  OwnTestCluster(const OwnTestCluster&) = delete;
  OwnTestCluster& operator=(const OwnTestCluster&) = delete;
  ~OwnTestCluster();

  // Runs scripts/pg-test-cluster.sh `command` [`argument`] on this cluster.
  ProcessResult Script(const std::string& command, const std::string& argument = "");
  // Starts (or resumes) the cluster and its poolers and reads their DSNs; returns false, with a
  // test failure, when it cannot.
  bool Start();

  // The admin DSNs that `start` printed: the server, and each pooler in front of it.
  const std::string& dsn() const { return dsn_; }
  const std::string& transaction_pooler_dsn() const { return transaction_pooler_dsn_; }
  const std::string& session_pooler_dsn() const { return session_pooler_dsn_; }

 private:
  std::map<std::string, std::string> env_;
  bool with_poolers_;
  std::string dsn_;
  std::string transaction_pooler_dsn_;
  std::string session_pooler_dsn_;
};

// The environment variables holding the admin DSNs of the poolers in front of the test server
// (scripts/pg-test-cluster.sh prints them, scripts/test.sh exports them).
inline constexpr char kTestPgBouncerTransactionDsnVariable[] =
    "SLUICE_TEST_PGBOUNCER_TRANSACTION_DSN";
inline constexpr char kTestPgBouncerSessionDsnVariable[] = "SLUICE_TEST_PGBOUNCER_SESSION_DSN";

// The path of the sluice binary under test: SLUICE_TEST_BINARY when set, else this build's.
std::string SluiceBinary();

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_INTEGRATION_MIGRATE_TEST_SUPPORT_H_
