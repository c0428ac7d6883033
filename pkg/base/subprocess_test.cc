#include "pkg/base/subprocess.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace sluice::base {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

SubprocessOptions Options(std::vector<std::string> argv) {
  SubprocessOptions options;
  options.argv = std::move(argv);
  return options;
}

TEST(SubprocessTest, CapturesStdoutStderrAndTheExitCode) {
  absl::StatusOr<SubprocessResult> result =
      RunSubprocess(Options({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_FALSE(result->ok());
  EXPECT_EQ(result->out, "out\n");
  EXPECT_EQ(result->err, "err\n");
}

TEST(SubprocessTest, PassesArgumentsVerbatimWithoutAShell) {
  const std::string text = "$(touch /tmp/sluice-never); `id` * ; 'quoted' \"too\"\nnext line";
  absl::StatusOr<SubprocessResult> result = RunSubprocess(Options({"printf", "%s", text}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->out, text);
  EXPECT_FALSE(std::filesystem::exists("/tmp/sluice-never"));
}

TEST(SubprocessTest, ReadsLargeOutputOnBothStreams) {
  // More than a pipe holds on each stream, so a reader of one stream only would deadlock.
  absl::StatusOr<SubprocessResult> result = RunSubprocess(Options(
      {"/bin/sh", "-c", "head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2; echo done"}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->out.size(), 300000u + 5u);
  EXPECT_EQ(result->err.size(), 200000u);
}

TEST(SubprocessTest, RunsInTheWorkingDirectory) {
  SubprocessOptions options = Options({"pwd"});
  options.working_directory = "/tmp";
  absl::StatusOr<SubprocessResult> result = RunSubprocess(options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->out, "/tmp\n");
}

TEST(SubprocessTest, NamesAMissingProgram) {
  EXPECT_THAT(
      RunSubprocess(Options({"sluice-no-such-program", "x"})).status(),
      StatusIs(absl::StatusCode::kNotFound, "cannot run sluice-no-such-program: No such file"));
}

TEST(SubprocessTest, NamesAMissingWorkingDirectory) {
  SubprocessOptions options = Options({"pwd"});
  options.working_directory = "/nonexistent/sluice";
  EXPECT_THAT(RunSubprocess(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "/nonexistent/sluice"));
}

TEST(SubprocessTest, ReportsTheSignalThatEndedTheChild) {
  absl::StatusOr<SubprocessResult> result =
      RunSubprocess(Options({"/bin/sh", "-c", "kill -TERM $$"}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, -1);
  EXPECT_EQ(result->signal, 15);
}

TEST(SubprocessTest, StopsAChildPastItsTimeout) {
  SubprocessOptions options = Options({"sleep", "30"});
  options.timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunSubprocess(options).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded, "sleep did not finish"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(SubprocessTest, StopsAChildThatWritesTooMuch) {
  SubprocessOptions options = Options({"/bin/sh", "-c", "head -c 100000 /dev/zero; exec sleep 30"});
  options.max_output_bytes = 1000;
  EXPECT_THAT(RunSubprocess(options).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, "more than 1000 bytes"));
}

TEST(SubprocessTest, RefusesAnEmptyCommand) {
  EXPECT_THAT(RunSubprocess(Options({})).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "no program"));
}

}  // namespace
}  // namespace sluice::base
