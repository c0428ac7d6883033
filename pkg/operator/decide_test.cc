#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "pkg/operator/reconciler.h"

namespace sluice::operator_ {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

kube::MigrationJob JobAt(int64_t generation, const std::string& phase, int64_t observed,
                         const std::string& digest) {
  kube::MigrationJob job;
  job.metadata.namespace_ = "apps";
  job.metadata.name = "app-db";
  job.metadata.generation = generation;
  if (!phase.empty()) {
    kube::MigrationJobStatus status;
    status.phase = phase;
    status.observed_generation = observed;
    status.migrations_digest = digest;
    job.status = status;
  }
  return job;
}

TEST(DecideTest, ANewJobRuns) {
  const Decision d = Decide(JobAt(1, "", 0, ""), "sha256:a", "", std::nullopt, std::nullopt, kNow);
  EXPECT_EQ(d.action, Decision::Action::kRun);
  EXPECT_FALSE(d.content_changed);
}

TEST(DecideTest, AJobAtItsGenerationAndContentDoesNothing) {
  const Decision d = Decide(JobAt(3, "Succeeded", 3, "sha256:a"), "sha256:a", "", std::nullopt,
                            std::nullopt, kNow);
  EXPECT_EQ(d.action, Decision::Action::kNothing);
}

TEST(DecideTest, ANewerGenerationRuns) {
  const Decision d = Decide(JobAt(4, "Succeeded", 3, "sha256:a"), "sha256:a", "", std::nullopt,
                            std::nullopt, kNow);
  EXPECT_EQ(d.action, Decision::Action::kRun);
  EXPECT_FALSE(d.content_changed);
  EXPECT_NE(d.why.find("generation 4"), std::string::npos);
}

TEST(DecideTest, ChangedContentRunsAndSaysSo) {
  const Decision d = Decide(JobAt(3, "Succeeded", 3, "sha256:a"), "sha256:b", "", std::nullopt,
                            std::nullopt, kNow);
  EXPECT_EQ(d.action, Decision::Action::kRun);
  EXPECT_TRUE(d.content_changed);
}

TEST(DecideTest, ARunLeftRunningOrFailedRunsAgain) {
  EXPECT_EQ(
      Decide(JobAt(3, "Running", 2, "sha256:a"), "sha256:a", "", std::nullopt, std::nullopt, kNow)
          .action,
      Decision::Action::kRun);
  EXPECT_EQ(
      Decide(JobAt(3, "Failed", 3, "sha256:a"), "sha256:a", "", std::nullopt, std::nullopt, kNow)
          .action,
      Decision::Action::kRun);
}

TEST(DecideTest, TheSameFailureWaitsForItsRetryTime) {
  const kube::MigrationJob job = JobAt(3, "Failed", 2, "sha256:a");
  const FailedAttempt failed{3, "sha256:a", "db@7;", kNow + absl::Seconds(8)};
  const Decision wait = Decide(job, "sha256:a", "db@7;", failed, std::nullopt, kNow);
  EXPECT_EQ(wait.action, Decision::Action::kRetryLater);
  EXPECT_EQ(wait.retry_at, kNow + absl::Seconds(8));
  // Its time came.
  EXPECT_EQ(Decide(job, "sha256:a", "db@7;", failed, std::nullopt, kNow + absl::Seconds(8)).action,
            Decision::Action::kRun);
  // Anything it depended on changed: at once.
  EXPECT_EQ(Decide(job, "sha256:b", "db@7;", failed, std::nullopt, kNow).action,
            Decision::Action::kRun);
  EXPECT_EQ(Decide(job, "sha256:a", "db@8;", failed, std::nullopt, kNow).action,
            Decision::Action::kRun);
  EXPECT_EQ(
      Decide(JobAt(4, "Failed", 2, "sha256:a"), "sha256:a", "db@7;", failed, std::nullopt, kNow)
          .action,
      Decision::Action::kRun);
}

TEST(DecideTest, ContentOtherThanTheLastRunAppliedIsAChangeWhileTheCacheIsStale) {
  // The cache still shows the status from before this operator's run of generation 1 with
  // sha256:a, and the ConfigMap has changed since.
  const AppliedRun applied{1, "sha256:a"};
  const Decision d = Decide(JobAt(1, "", 0, ""), "sha256:b", "", std::nullopt, applied, kNow);
  EXPECT_EQ(d.action, Decision::Action::kRun);
  EXPECT_TRUE(d.content_changed);
  EXPECT_EQ(d.why, "the migrations changed");
  // The same content as that run: a newer generation runs, with Ready not turned False for it.
  const Decision same =
      Decide(JobAt(2, "Running", 0, ""), "sha256:a", "", std::nullopt, applied, kNow);
  EXPECT_EQ(same.action, Decision::Action::kRun);
  EXPECT_FALSE(same.content_changed);
}

TEST(DecideTest, ASuspendedJobNeverRuns) {
  kube::MigrationJob job = JobAt(5, "Failed", 2, "sha256:a");
  job.spec.suspend = true;
  const Decision d = Decide(job, "sha256:b", "", std::nullopt, std::nullopt, kNow);
  EXPECT_EQ(d.action, Decision::Action::kNothing);
  EXPECT_EQ(d.why, "suspended");
}

}  // namespace
}  // namespace sluice::operator_
