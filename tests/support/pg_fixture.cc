#include "tests/support/pg_fixture.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice::testing {
namespace {

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
using Result = std::unique_ptr<PGresult, ResultDeleter>;

void IgnoreNotice(void*, const char*) {}

// Connects to `conninfo`; adds a failure and returns null when it cannot.
Conn Connect(const std::string& conninfo) {
  Conn conn(PQconnectdb(conninfo.c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect to the test PostgreSQL server: "
                  << (conn ? PQerrorMessage(conn.get()) : "out of memory")
                  << " (start it with `eval \"$(scripts/pg-test-cluster.sh start)\"; export "
                  << kTestPgDsnVariable << "`)";
    return nullptr;
  }
  PQsetNoticeProcessor(conn.get(), &IgnoreNotice, nullptr);
  return conn;
}

bool RunSql(PGconn* conn, const std::string& sql) {
  Result result(PQexec(conn, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    ADD_FAILURE() << "`" << sql << "` failed: " << PQerrorMessage(conn);
    return false;
  }
  return true;
}

// Returns `value` quoted for a libpq key/value string.
std::string QuoteValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string PercentEncode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The parts of a connection string that PgTest keeps.
struct ParsedDsn {
  std::string with_database;  // every option, with dbname replaced
  std::string host;
  std::string port;
  std::string user;
  std::string password;
};

// Parses `conninfo` (a URL or key/value string) and replaces its dbname with `database`.
bool ParseDsn(const std::string& conninfo, const std::string& database, ParsedDsn* parsed,
              std::string* error) {
  char* message = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &message);
  if (options == nullptr) {
    *error = message ? message : "out of memory";
    PQfreemem(message);
    return false;
  }
  std::vector<std::string> pairs;
  for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val == nullptr) continue;
    const std::string keyword = option->keyword;
    const std::string value = option->val;
    if (keyword == "host" || keyword == "hostaddr") {
      if (parsed->host.empty() || keyword == "host") parsed->host = value;
    }
    if (keyword == "port") parsed->port = value;
    if (keyword == "user") parsed->user = value;
    if (keyword == "password") parsed->password = value;
    if (keyword == "dbname") continue;
    pairs.push_back(absl::StrCat(keyword, "=", QuoteValue(value)));
  }
  PQconninfoFree(options);
  pairs.push_back(absl::StrCat("dbname=", QuoteValue(database)));
  parsed->with_database = absl::StrJoin(pairs, " ");
  return true;
}

std::string UniqueDatabaseName() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return absl::StrCat("sluice_test_", getpid(), "_", counter++, "_", random() % 1000000);
}

}  // namespace

void PgTest::SetUp() {
  if (admin_dsn_.empty()) {
    const char* admin = std::getenv(kTestPgDsnVariable);
    if (admin == nullptr || admin[0] == '\0') {
      GTEST_FAIL() << kTestPgDsnVariable
                   << " is not set: this test needs PostgreSQL. Start the throwaway server with "
                      "`eval \"$(scripts/pg-test-cluster.sh start)\"; export "
                   << kTestPgDsnVariable << "` (scripts/test.sh does it).";
    }
    admin_dsn_ = admin;
  }

  // The test database's DSN: every option of the admin DSN, with dbname replaced.
  database_ = UniqueDatabaseName();
  ParsedDsn parsed;
  std::string error;
  if (!ParseDsn(admin_dsn_, database_, &parsed, &error)) {
    GTEST_FAIL() << "the admin DSN (" << kTestPgDsnVariable
                 << ", or UseAdminDsn's) cannot be parsed: " << error;
  }
  dsn_ = parsed.with_database;
  host_ = parsed.host;
  port_ = parsed.port;
  user_ = parsed.user;
  password_ = parsed.password;

  Conn conn = Connect(admin_dsn_);
  if (conn == nullptr) GTEST_FAIL() << "no test database";
  RunSql(conn.get(), absl::StrCat("DROP DATABASE IF EXISTS \"", database_, "\" WITH (FORCE)"));
  if (!RunSql(conn.get(), absl::StrCat("CREATE DATABASE \"", database_, "\""))) {
    GTEST_FAIL() << "cannot create the test database " << database_;
  }
  created_ = true;
}

void PgTest::TearDown() {
  if (!created_) return;
  Conn conn = Connect(admin_dsn_);
  if (conn == nullptr) return;
  RunSql(conn.get(), absl::StrCat("DROP DATABASE IF EXISTS \"", database_, "\" WITH (FORCE)"));
  created_ = false;
}

std::string PgTest::DsnVia(const std::string& server_dsn) const {
  ParsedDsn parsed;
  std::string error;
  if (!ParseDsn(server_dsn, database_, &parsed, &error)) {
    ADD_FAILURE() << "`" << server_dsn << "` cannot be parsed: " << error;
    return "";
  }
  return parsed.with_database;
}

std::string PgTest::UrlFor(absl::string_view scheme, absl::string_view query) const {
  std::string url = absl::StrCat(scheme, "://", PercentEncode(user_));
  if (!password_.empty()) absl::StrAppend(&url, ":", PercentEncode(password_));
  absl::StrAppend(&url, "@", host_.empty() ? "127.0.0.1" : host_);
  if (!port_.empty()) absl::StrAppend(&url, ":", port_);
  absl::StrAppend(&url, "/", database_);
  if (!query.empty()) absl::StrAppend(&url, "?", query);
  return url;
}

std::vector<std::vector<std::string>> PgTest::Query(const std::string& sql) {
  std::vector<std::vector<std::string>> rows;
  Conn conn = Connect(dsn_);
  if (conn == nullptr) return rows;
  Result result(PQexec(conn.get(), sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    ADD_FAILURE() << "`" << sql << "` failed: " << PQerrorMessage(conn.get());
    return rows;
  }
  for (int row = 0; row < PQntuples(result.get()); ++row) {
    std::vector<std::string> values;
    for (int column = 0; column < PQnfields(result.get()); ++column) {
      values.emplace_back(PQgetisnull(result.get(), row, column)
                              ? "<NULL>"
                              : PQgetvalue(result.get(), row, column));
    }
    rows.push_back(std::move(values));
  }
  return rows;
}

std::string PgTest::QueryValue(const std::string& sql) {
  std::vector<std::vector<std::string>> rows = Query(sql);
  if (rows.empty() || rows[0].empty()) return "";
  return rows[0][0];
}

}  // namespace sluice::testing
