#include "pkg/failure/migration_failure.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice::failure {
namespace {

// Bytes that a naive encoding would mangle: newlines, colons, a NUL.
constexpr char kAwkwardDetail[] = "Key (id)=(1) already exists.\n3:colons:and\0nul";

MigrationFailure FullFailure() {
  MigrationFailure f;
  f.sqlstate = "23505";
  f.message = "duplicate key value violates unique constraint \"t_pkey\"";
  f.detail = std::string(kAwkwardDetail, sizeof(kAwkwardDetail) - 1);
  f.hint = "";
  f.statement_line = 2;
  f.revision = "r2";
  f.description = "seed";
  f.direction = "upgrade";
  f.file = "migrations/r2.yaml";
  f.revision_line = 1;
  f.sql_line = 4;
  f.placed_by_server = true;
  f.line = 9;
  f.note = "this revision is transactional: false";
  return f;
}

TEST(MigrationFailureTest, RoundTripsEveryFieldThroughTheStatusPayload) {
  const MigrationFailure f = FullFailure();
  const absl::Status status = WithMigrationFailure(absl::FailedPreconditionError("applying r2"), f);
  std::optional<MigrationFailure> read = MigrationFailureOf(status);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->sqlstate, f.sqlstate);
  EXPECT_EQ(read->message, f.message);
  EXPECT_EQ(read->detail, f.detail);
  EXPECT_EQ(read->hint, "");
  EXPECT_EQ(read->statement_line, 2);
  EXPECT_EQ(read->revision, "r2");
  EXPECT_EQ(read->description, "seed");
  EXPECT_EQ(read->direction, "upgrade");
  EXPECT_EQ(read->file, "migrations/r2.yaml");
  EXPECT_EQ(read->revision_line, 1);
  EXPECT_EQ(read->sql_line, 4);
  EXPECT_TRUE(read->placed_by_server);
  EXPECT_EQ(read->line, 9);
  EXPECT_EQ(read->note, f.note);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "applying r2");
}

TEST(MigrationFailureTest, SurvivesACopiedStatus) {
  MigrationFailure f;
  f.sqlstate = "55P03";
  const absl::Status status = WithMigrationFailure(absl::FailedPreconditionError("x"), f);
  const absl::Status copy = status;
  EXPECT_EQ(MigrationFailureOf(copy)->sqlstate, "55P03");
}

TEST(MigrationFailureTest, AbsentOnPlainStatusAndOk) {
  EXPECT_FALSE(MigrationFailureOf(absl::UnavailableError("down")).has_value());
  EXPECT_FALSE(MigrationFailureOf(absl::OkStatus()).has_value());
  EXPECT_TRUE(WithMigrationFailure(absl::OkStatus(), MigrationFailure{}).ok());
}

TEST(MigrationFailureTest, MalformedPayloadIsIgnored) {
  absl::Status status = absl::InternalError("x");
  status.SetPayload("type.sluice.dev/MigrationFailure", absl::Cord("99:short"));
  EXPECT_FALSE(MigrationFailureOf(status).has_value());
}

TEST(DescribeMigrationFailureTest, NamesRevisionFileSqlstateDetailHintAndLines) {
  MigrationFailure f = FullFailure();
  f.hint = "Drop the row first.";
  EXPECT_EQ(DescribeMigrationFailure(f),
            "revision r2 (seed, migrations/r2.yaml:1) failed to upgrade: SQLSTATE 23505: "
            "duplicate key value violates unique constraint \"t_pkey\"\n  DETAIL: " +
                f.detail +
                "\n  HINT: Drop the row first.\n  at line 4 of the upgrade SQL "
                "(migrations/r2.yaml:9)\n  this revision is transactional: false");
}

TEST(DescribeMigrationFailureTest, RevisionWithoutDescriptionHasNoEmptyPart) {
  MigrationFailure f;
  f.revision = "a";
  f.direction = "upgrade";
  f.file = "m/a.yaml";
  f.revision_line = 3;
  f.sqlstate = "42601";
  f.message = "syntax error at end of input";
  EXPECT_EQ(DescribeMigrationFailure(f),
            "revision a (m/a.yaml:3) failed to upgrade: SQLSTATE 42601: syntax error at end of "
            "input");
}

TEST(DescribeMigrationFailureTest, StatementStartWhenTheServerGaveNoPosition) {
  MigrationFailure f;
  f.revision = "b";
  f.description = "backfill";
  f.direction = "downgrade";
  f.file = "m/b.yaml";
  f.revision_line = 1;
  f.message = "the connection to the database was lost";
  f.sql_line = 5;
  f.line = 12;
  EXPECT_EQ(DescribeMigrationFailure(f),
            "revision b (backfill, m/b.yaml:1) failed to downgrade: the connection to the "
            "database was lost\n  in the statement at line 5 of the downgrade SQL (m/b.yaml:12)");
}

TEST(DescribeMigrationFailureTest, FailureOutsideARevisionIsTheServersWords) {
  MigrationFailure f;
  f.sqlstate = "42P01";
  f.message = "relation \"t\" does not exist";
  EXPECT_EQ(DescribeMigrationFailure(f), "SQLSTATE 42P01: relation \"t\" does not exist");
}

}  // namespace
}  // namespace sluice::failure
