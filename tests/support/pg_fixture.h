// A GoogleTest fixture that gives each test a fresh, empty PostgreSQL database, created from
// SLUICE_TEST_PG_DSN (which scripts/pg-test-cluster.sh prints) and dropped after the test. When
// the variable is unset the test fails: tests that need PostgreSQL are never skipped silently.
// Not thread-safe: use it from the test's main thread.
#ifndef SLUICE_TESTS_SUPPORT_PG_FIXTURE_H_
#define SLUICE_TESTS_SUPPORT_PG_FIXTURE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace sluice::testing {

// The environment variable holding the admin DSN of the test server.
inline constexpr char kTestPgDsnVariable[] = "SLUICE_TEST_PG_DSN";

// Example:
//   class PgStoreTest : public sluice::testing::PgTest {};
//   TEST_F(PgStoreTest, Connects) {
//     ConnectOptions options;
//     options.url = dsn();
//     ...
//     EXPECT_EQ(Query("SELECT 1")[0][0], "1");
//   }
class PgTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Makes SetUp create the test database on the server of `admin_dsn` instead of
  // SLUICE_TEST_PG_DSN's (e.g. a cluster of the test's own). Call it before PgTest::SetUp.
  void UseAdminDsn(std::string admin_dsn) { admin_dsn_ = std::move(admin_dsn); }

  // Returns a libpq key/value connection string for this test's database.
  const std::string& dsn() const { return dsn_; }
  // Returns a libpq key/value connection string for this test's database reached through another
  // server, such as a connection pooler in front of the test server: the options of `server_dsn`
  // (a URL or a key/value string) with dbname replaced. Adds a test failure and returns "" when
  // `server_dsn` cannot be parsed.
  std::string DsnVia(const std::string& server_dsn) const;
  // Returns the name of this test's database.
  const std::string& database() const { return database_; }
  // Returns a URL for this test's database with the given scheme (e.g. "postgresql+asyncpg") and
  // optional query (without '?'), made of SLUICE_TEST_PG_DSN's host, port, user and password.
  std::string UrlFor(absl::string_view scheme, absl::string_view query = "") const;
  // Returns the test server's host, port, user and password as SLUICE_TEST_PG_DSN gives them.
  const std::string& host() const { return host_; }
  const std::string& port() const { return port_; }
  const std::string& user() const { return user_; }

  // Runs `sql` on a connection of its own to this test's database and returns its rows as text
  // (NULL as "<NULL>"). Adds a test failure and returns no rows when it fails.
  std::vector<std::vector<std::string>> Query(const std::string& sql);
  // Runs `sql` like Query and returns the first column of the first row ("" when none).
  std::string QueryValue(const std::string& sql);

 private:
  std::string admin_dsn_;
  std::string database_;
  std::string dsn_;
  std::string host_;
  std::string port_;
  std::string user_;
  std::string password_;
  bool created_ = false;
};

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_SUPPORT_PG_FIXTURE_H_
