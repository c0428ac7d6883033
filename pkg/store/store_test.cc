// Unit tests of pkg/store that need no database: lock keys, redaction and
// connection-string normalization.
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/store/connection_string.h"
#include "pkg/store/pg_store.h"
#include "pkg/store/store.h"
#include "tests/support/status_matchers.h"

namespace sluice::store {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(LockKeyTest, IsPinnedForTheDefaults) {
  // SHA-256("sluice:public.alembic_version") starts with these 8 bytes. This value must never
  // change: two releases deriving different keys would migrate at the same time.
  EXPECT_EQ(LockKeyFor(TableNames{}), LockKeyFor(TableNames{"public", "alembic_version"}));
  EXPECT_EQ(static_cast<uint64_t>(LockKeyFor(TableNames{})), 0x906d77adf13b6cf6ULL);
}

TEST(LockKeyTest, DependsOnSchemaAndTable) {
  EXPECT_NE(LockKeyFor({"public", "alembic_version"}), LockKeyFor({"app", "alembic_version"}));
  EXPECT_NE(LockKeyFor({"public", "alembic_version"}), LockKeyFor({"public", "other_version"}));
}

struct RedactCase {
  const char* input;
  const char* expected;
};

class RedactUrlTest : public ::testing::TestWithParam<RedactCase> {};

TEST(DescribeLockHolderTest, NamesTheSessionOrTheLease) {
  LockHolder session;
  session.application_name = "sluice:pod-1";
  session.client_address = "10.0.0.7";
  session.since = "2026-12-01 03:00:00+00";
  session.pid = 4242;
  EXPECT_EQ(DescribeLockHolder(session),
            "sluice:pod-1 (pid 4242, 10.0.0.7, connected since 2026-12-01 03:00:00+00)");
  LockHolder lease;
  lease.application_name = "pod-2-0a1b2c3d";
  lease.lease = true;
  lease.since = "2026-12-01T03:00:00.000Z";
  lease.last_heartbeat = "2026-12-01T03:00:10.000Z";
  EXPECT_EQ(DescribeLockHolder(lease),
            "pod-2-0a1b2c3d (lease taken at 2026-12-01T03:00:00.000Z, last heartbeat "
            "2026-12-01T03:00:10.000Z)");
}

TEST_P(RedactUrlTest, HidesThePassword) {
  EXPECT_EQ(RedactUrl(GetParam().input), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, RedactUrlTest,
    ::testing::Values(
        RedactCase{"postgresql://user:secret@host/db", "postgresql://user:***@host/db"},
        RedactCase{"postgres://user:secret@host:5432/db?sslmode=require",
                   "postgres://user:***@host:5432/db?sslmode=require"},
        RedactCase{"postgresql+asyncpg://app:s3cr%40t@db.example:5432/app?ssl=require",
                   "postgresql+asyncpg://app:***@db.example:5432/app?ssl=require"},
        RedactCase{"postgresql+psycopg2://app:pw@db/app", "postgresql+psycopg2://app:***@db/app"},
        RedactCase{"postgresql://user@host/db", "postgresql://user@host/db"},
        RedactCase{"postgresql://host:5432/db", "postgresql://host:5432/db"},
        RedactCase{"postgresql://host/db?user=u&password=secret&sslmode=require",
                   "postgresql://host/db?user=u&password=***&sslmode=require"},
        RedactCase{"postgresql://u:pw@host/db?password=other",
                   "postgresql://u:***@host/db?password=***"},
        // Unencoded '@', '?' and '/' in a password are hidden whole.
        RedactCase{"postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"},
        RedactCase{"postgresql://u:pa?ss@host/db", "postgresql://u:***@host/db"},
        RedactCase{"postgresql://u:pa/ss@host/db", "postgresql://u:***@host/db"},
        RedactCase{"postgresql://u:@host/db", "postgresql://u:***@host/db"},
        RedactCase{"host=db user=app password=secret dbname=app",
                   "host=db user=app password=*** dbname=app"},
        RedactCase{"host=db password = 'sec ret\\'s' dbname=app",
                   "host=db password = *** dbname=app"},
        RedactCase{"password=secret", "password=***"},
        RedactCase{"host=db sslpassword=keypass", "host=db sslpassword=***"},
        RedactCase{"dbname='postgresql://u:pw@h/db' application_name=x",
                   "dbname='postgresql://u:***@h/db' application_name=x"},
        RedactCase{"host=db password='unterminated", "host=db password=***"}, RedactCase{"", ""}));

TEST(RedactUrlTest, NeverShowsThePassword) {
  for (const char* url : {"postgresql://u:hunter2@h/d", "postgresql+asyncpg://u:hunter2@h/d",
                          "host=h password=hunter2", "host=h password='hunter2'",
                          "postgresql://h/d?password=hunter2", "postgresql://u:hunter2@h"}) {
    EXPECT_THAT(RedactUrl(url), Not(HasSubstr("hunter2"))) << url;
  }
}

TEST(ScrubSecretsTest, ReplacesRawAndDecodedPasswords) {
  EXPECT_EQ(internal::ScrubSecrets("bad token \"a%40b\" and a@b", "postgresql://u:a%40b@h/d"),
            "bad token \"***\" and ***");
  EXPECT_EQ(internal::ScrubSecrets("x pw y", "host=h password=pw"), "x *** y");
  EXPECT_EQ(internal::ScrubSecrets("nothing", "postgresql://h/d"), "nothing");
}

TEST(LibpqConnectionStringTest, KeepsPlainUrlsAndKeyValueStrings) {
  EXPECT_EQ(*LibpqConnectionString("postgresql://u:p@h:5432/d?sslmode=disable"),
            "postgresql://u:p@h:5432/d?sslmode=disable");
  EXPECT_EQ(*LibpqConnectionString("postgres://u@h/d"), "postgresql://u@h/d");
  EXPECT_EQ(*LibpqConnectionString("host=h dbname=d"), "host=h dbname=d");
  EXPECT_EQ(*LibpqConnectionString("  "), "");
  EXPECT_EQ(*LibpqConnectionString(""), "");
}

TEST(LibpqConnectionStringTest, StripsTheSqlAlchemyDriver) {
  EXPECT_EQ(*LibpqConnectionString("postgresql+psycopg2://u:p@h/d"), "postgresql://u:p@h/d");
  EXPECT_EQ(*LibpqConnectionString("postgresql+psycopg://u:p@h/d"), "postgresql://u:p@h/d");
  EXPECT_EQ(*LibpqConnectionString("postgres+asyncpg://u:p@h/d"), "postgresql://u:p@h/d");
}

TEST(LibpqConnectionStringTest, MapsAsyncpgSslAndDropsUnknownParameters) {
  EXPECT_EQ(*LibpqConnectionString(
                "postgresql+asyncpg://u:p@h/d?ssl=require&prepared_statement_cache_size=0"),
            "postgresql://u:p@h/d?sslmode=require");
  EXPECT_EQ(*LibpqConnectionString("postgresql+asyncpg://u@h/d?ssl=true"),
            "postgresql://u@h/d?sslmode=require");
  EXPECT_EQ(*LibpqConnectionString("postgresql+asyncpg://u@h/d?ssl=false&application_name=a"),
            "postgresql://u@h/d?sslmode=disable&application_name=a");
  // An explicit sslmode wins.
  EXPECT_EQ(*LibpqConnectionString("postgresql://u@h/d?ssl=disable&sslmode=verify-full"),
            "postgresql://u@h/d?sslmode=verify-full");
  EXPECT_THAT(LibpqConnectionString("postgresql+asyncpg://u:pw@h/d?ssl=maybe"),
              StatusIs(absl::StatusCode::kInvalidArgument, "ssl=maybe"));
}

TEST(LibpqConnectionStringTest, RejectsWhatLibpqCannotRead) {
  EXPECT_THAT(LibpqConnectionString("mysql://u:pw@h/d"),
              StatusIs(absl::StatusCode::kInvalidArgument, "unsupported URL scheme"));
  EXPECT_THAT(LibpqConnectionString("localhost"),
              StatusIs(absl::StatusCode::kInvalidArgument, "neither"));
  EXPECT_THAT(LibpqConnectionString("host=h bogus_option=1"),
              StatusIs(absl::StatusCode::kInvalidArgument, "bogus_option"));
  EXPECT_THAT(LibpqConnectionString("host=h password='unterminated"),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid connection string"));
  EXPECT_THAT(LibpqConnectionString("postgresql://u:pw@h:notaport/d"),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid connection string"));
  EXPECT_THAT(LibpqConnectionString("postgresql://u:p@ss@h/d"),
              StatusIs(absl::StatusCode::kInvalidArgument, "percent-encode"));
}

TEST(LibpqConnectionStringTest, ErrorsNeverHoldThePassword) {
  for (const char* url : {"postgresql://u:hunter2@h/d?ssl=maybe", "postgresql://u:hunter2%zz@h/d",
                          "mysql://u:hunter2@h/d", "host=h password=hunter2 bogus=1",
                          "postgresql://u:hunter2@h:x/d", "postgresql://u:hun@ter2@h/d"}) {
    absl::StatusOr<std::string> conninfo = LibpqConnectionString(url);
    ASSERT_FALSE(conninfo.ok()) << url;
    EXPECT_THAT(std::string(conninfo.status().message()), Not(HasSubstr("hunter2"))) << url;
    EXPECT_THAT(std::string(conninfo.status().message()), Not(HasSubstr("ter2"))) << url;
  }
}

TEST(ConnectPgTest, BadSyntaxIsNotRetried) {
  ConnectOptions options;
  options.url = "postgresql://u:pw@h:notaport/d";
  options.connect_timeout = absl::Seconds(30);
  const absl::Time start = absl::Now();
  EXPECT_THAT(ConnectPg(options), StatusIs(absl::StatusCode::kInvalidArgument, ""));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

}  // namespace
}  // namespace sluice::store
