#include "pkg/cli/flags.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace sluice::cli {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;

EnvLookup FakeEnv(std::map<std::string, std::string> values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ParseCommandLineTest, CommandArgsAndFlagsInAnyOrder) {
  auto parsed =
      ParseCommandLine({"--schema", "app", "upgrade", "head", "--lock-wait=2m", "-v"}, FakeEnv({}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->command, "upgrade");
  EXPECT_THAT(parsed->args, ElementsAre("head"));
  EXPECT_EQ(parsed->options.schema, "app");
  EXPECT_EQ(parsed->options.lock_wait, absl::Minutes(2));
  EXPECT_TRUE(parsed->options.verbose);
  EXPECT_THAT(parsed->options.migrations, ElementsAre("./migrations"));
}

TEST(ParseCommandLineTest, LintFlags) {
  auto parsed = ParseCommandLine({"lint", "fc0e:head", "--dev-url", "postgresql://dev/postgres",
                                  "--format=github", "--warnings-as-errors"},
                                 FakeEnv({}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->command, "lint");
  EXPECT_THAT(parsed->args, ElementsAre("fc0e:head"));
  EXPECT_EQ(parsed->options.dev_url, "postgresql://dev/postgres");
  EXPECT_EQ(parsed->options.format, "github");
  EXPECT_TRUE(parsed->options.warnings_as_errors);
  EXPECT_FALSE(parsed->options.lint);

  auto from_env = ParseCommandLine({"upgrade", "--lint"},
                                   FakeEnv({{"SLUICE_DEV_URL", "host=dev dbname=postgres"}}));
  SLUICE_ASSERT_OK(from_env);
  EXPECT_TRUE(from_env->options.lint);
  EXPECT_EQ(from_env->options.dev_url, "host=dev dbname=postgres");
  EXPECT_EQ(from_env->options.format, "text");

  EXPECT_THAT(ParseCommandLine({"lint", "--format", "yaml"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "flag --format: \"yaml\" is not one of text, json, github"));
}

TEST(ParseCommandLineTest, VersionAndHelpFlagsNeedNoCommand) {
  auto version = ParseCommandLine({"--version"}, FakeEnv({}));
  SLUICE_ASSERT_OK(version);
  EXPECT_TRUE(version->version);
  EXPECT_FALSE(version->help);
  EXPECT_EQ(version->command, "");
  for (const char* flag : {"-h", "--help"}) {
    auto help = ParseCommandLine({flag}, FakeEnv({}));
    SLUICE_ASSERT_OK(help);
    EXPECT_TRUE(help->help) << flag;
    EXPECT_FALSE(help->version) << flag;
  }
}

TEST(ParseCommandLineTest, UnknownFlagWithoutCommandPointsAtGeneralHelp) {
  EXPECT_THAT(ParseCommandLine({"--frobnicate"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unknown flag --frobnicate; see `sluice --help`"));
}

TEST(ParseCommandLineTest, ImportAlembicFlagsAndTheirDefaults) {
  auto defaults = ParseCommandLine({"import", "alembic"}, FakeEnv({}));
  SLUICE_ASSERT_OK(defaults);
  EXPECT_EQ(defaults->options.config, "");
  EXPECT_EQ(defaults->options.out, "./migrations");
  EXPECT_EQ(defaults->options.python, "python3");
  EXPECT_FALSE(defaults->options.force);

  auto parsed = ParseCommandLine(
      {"import", "alembic", "--config", "app/alembic.ini", "--out=deploy/migrations", "--force"},
      FakeEnv({{"SLUICE_PYTHON", "/usr/bin/python3"}, {"SLUICE_OUT", "ignored"}}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->command, "import");
  EXPECT_THAT(parsed->args, ElementsAre("alembic"));
  EXPECT_EQ(parsed->options.config, "app/alembic.ini");
  EXPECT_EQ(parsed->options.out, "deploy/migrations");  // the command line wins
  EXPECT_EQ(parsed->options.python, "/usr/bin/python3");
  EXPECT_TRUE(parsed->options.force);
  EXPECT_THAT(ParseCommandLine({"import", "alembic", "--config"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "flag --config needs a value"));
}

TEST(ParseCommandLineTest, LockModeLeaseTtlAndTheLocksOwnDatabase) {
  auto parsed = ParseCommandLine({"upgrade", "--lock-mode", "lease", "--lease-ttl", "5s"},
                                 FakeEnv({{"SLUICE_LOCK_DATABASE_URL", "postgresql://db/app"}}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->options.lock_mode, "lease");
  EXPECT_EQ(parsed->options.lease_ttl, absl::Seconds(5));
  EXPECT_EQ(parsed->options.lock_database_url, "postgresql://db/app");

  auto defaults = ParseCommandLine({"upgrade"}, FakeEnv({}));
  SLUICE_ASSERT_OK(defaults);
  EXPECT_EQ(defaults->options.lock_mode, "session");
  EXPECT_EQ(defaults->options.lease_ttl, absl::Seconds(30));

  EXPECT_THAT(ParseCommandLine({"upgrade", "--lock-mode=pooled"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "session, lease"));
  EXPECT_THAT(ParseCommandLine({"upgrade", "--lease-ttl=500ms"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "under 1s"));
}

TEST(ParseCommandLineTest, RelativeTargetsAreNotFlags) {
  auto parsed = ParseCommandLine({"downgrade", "-1"}, FakeEnv({}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_THAT(parsed->args, ElementsAre("-1"));
}

TEST(ParseCommandLineTest, MigrationsIsRepeatable) {
  auto parsed = ParseCommandLine({"heads", "--migrations", "a", "--migrations=b"}, FakeEnv({}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_THAT(parsed->options.migrations, ElementsAre("a", "b"));
}

TEST(ParseCommandLineTest, EnvironmentFillsFlagsAndCommandLineWins) {
  auto env = FakeEnv({{"SLUICE_SCHEMA", "from_env"},
                      {"SLUICE_DDL_RETRIES", "5"},
                      {"SLUICE_MIGRATIONS", "x,y"},
                      {"SLUICE_SINGLE_TRANSACTION", "true"},
                      {"SLUICE_VERBOSE", "1"}});
  auto parsed = ParseCommandLine({"upgrade"}, env);
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->options.schema, "from_env");
  EXPECT_EQ(parsed->options.ddl_retries, 5);
  EXPECT_THAT(parsed->options.migrations, ElementsAre("x", "y"));
  EXPECT_TRUE(parsed->options.single_transaction);
  EXPECT_TRUE(parsed->options.verbose);

  parsed = ParseCommandLine({"upgrade", "--schema=cli", "--migrations", "z"}, env);
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->options.schema, "cli");
  EXPECT_THAT(parsed->options.migrations, ElementsAre("z"));
}

TEST(ParseCommandLineTest, BadInputNamesTheFlag) {
  EXPECT_THAT(ParseCommandLine({"upgrade", "--shema", "x"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "unknown flag --shema"));
  EXPECT_THAT(ParseCommandLine({"upgrade", "--lock-wait", "soon"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "flag --lock-wait: \"soon\""));
  EXPECT_THAT(ParseCommandLine({"upgrade", "--schema"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "flag --schema needs a value"));
  EXPECT_THAT(ParseCommandLine({"upgrade", "--log-format=xml"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "not one of text, json"));
  EXPECT_THAT(ParseCommandLine({"upgrade"}, FakeEnv({{"SLUICE_CONNECT_TIMEOUT", "x"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, "SLUICE_CONNECT_TIMEOUT"));
}

TEST(ParseCommandLineTest, DurationsAcceptBareSeconds) {
  auto parsed = ParseCommandLine({"upgrade", "--connect-timeout", "5"}, FakeEnv({}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->options.connect_timeout, absl::Seconds(5));
}

TEST(ParseCommandLineTest, WaitTimeoutAndConfigMapNamespace) {
  auto parsed = ParseCommandLine({"wait", "head", "--timeout", "90s"}, FakeEnv({}));
  SLUICE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->command, "wait");
  EXPECT_THAT(parsed->args, ElementsAre("head"));
  EXPECT_EQ(parsed->options.timeout, absl::Seconds(90));
  auto defaults = ParseCommandLine({"wait"}, FakeEnv({{"SLUICE_NAMESPACE", "apps"}}));
  SLUICE_ASSERT_OK(defaults);
  EXPECT_EQ(defaults->options.timeout, absl::Minutes(10));
  EXPECT_EQ(defaults->options.namespace_name, "apps");
  auto from_env = ParseCommandLine({"wait"}, FakeEnv({{"SLUICE_TIMEOUT", "5m"}}));
  SLUICE_ASSERT_OK(from_env);
  EXPECT_EQ(from_env->options.timeout, absl::Minutes(5));
  auto configmap =
      ParseCommandLine({"configmap", "app-migrations", "--namespace=apps"}, FakeEnv({}));
  SLUICE_ASSERT_OK(configmap);
  EXPECT_THAT(configmap->args, ElementsAre("app-migrations"));
  EXPECT_EQ(configmap->options.namespace_name, "apps");
  EXPECT_THAT(ParseCommandLine({"wait", "--timeout=soon"}, FakeEnv({})),
              StatusIs(absl::StatusCode::kInvalidArgument, "flag --timeout: \"soon\""));
}

TEST(FlagHelpTest, NamesFlagValueAndEnvironmentVariable) {
  const std::string help = FlagHelp({"lock-wait", "v"});
  EXPECT_NE(help.find("--lock-wait DURATION"), std::string::npos) << help;
  EXPECT_NE(help.find("[SLUICE_LOCK_WAIT]"), std::string::npos) << help;
  EXPECT_NE(help.find("-v "), std::string::npos) << help;
}

}  // namespace
}  // namespace sluice::cli
