#include "pkg/reporting/status_composer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace sluice::reporting {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromUnixMillis(1714564800123);  // 2024-05-01T12:00:00.123Z

const kube::Condition* Find(const kube::MigrationJobStatus& s, const std::string& type) {
  for (const auto& c : s.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

RunView MakeRun(absl::Time started = kT0) {
  RunView run;
  run.started_at = started;
  run.instance = "api-7d9f-abcde";
  run.target = "head";
  run.generation = 3;
  return run;
}

TEST(StatusComposerTest, FormatsTimes) {
  EXPECT_EQ(FormatMillis(kT0), "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(FormatSeconds(kT0), "2024-05-01T12:00:00Z");
}

TEST(StatusComposerTest, StartIsRunningAndReconciling) {
  const kube::MigrationJobStatus s = Compose(std::nullopt, MakeRun(), kT0);
  EXPECT_EQ(s.phase, "Running");
  // A run under way has not read the database yet: it observed nothing.
  EXPECT_EQ(s.observed_generation, 0);
  EXPECT_EQ(s.started_at, "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(s.completed_at, "");
  ASSERT_NE(Find(s, kReconciling), nullptr);
  EXPECT_EQ(Find(s, kReconciling)->status, "True");
  EXPECT_EQ(Find(s, kReconciling)->reason, "Progressing");
  EXPECT_EQ(Find(s, kReconciling)->observed_generation, 3);
  EXPECT_EQ(Find(s, kReconciling)->last_transition_time, "2024-05-01T12:00:00Z");
  EXPECT_EQ(Find(s, kReady)->status, "Unknown");
  EXPECT_EQ(Find(s, kStalled)->status, "False");
}

TEST(StatusComposerTest, WaitingForLockNamesTheHolder) {
  RunView run = MakeRun();
  run.waiting_for = "api-1 (pid 42)";
  const kube::MigrationJobStatus s = Compose(std::nullopt, run, kT0);
  EXPECT_EQ(Find(s, kReconciling)->reason, "WaitingForLock");
  EXPECT_THAT(Find(s, kReconciling)->message, HasSubstr("held by api-1 (pid 42)"));
}

TEST(StatusComposerTest, PlannedRunShowsRevisions) {
  RunView run = MakeRun();
  run.planned = true;
  run.current = {"a"};
  run.target_revisions = {"c"};
  run.pending = {"b", "c"};
  run.migrations_digest = "sha256:1234";
  const kube::MigrationJobStatus s = Compose(std::nullopt, run, kT0);
  EXPECT_EQ(s.migrations_digest, "sha256:1234");
  EXPECT_THAT(s.current_revisions, ElementsAre("a"));
  EXPECT_THAT(s.target_revisions, ElementsAre("c"));
  EXPECT_THAT(s.pending_revisions, ElementsAre("b", "c"));
  EXPECT_EQ(Find(s, kReconciling)->reason, "Migrating");
  EXPECT_THAT(Find(s, kReconciling)->message, HasSubstr("applying 2 revisions (b, c) to reach c"));
}

TEST(StatusComposerTest, TheDigestChangesOnlyWithTheRevisionsItDescribes) {
  kube::MigrationJobStatus stored;
  stored.current_revisions = {"a"};
  stored.migrations_digest = "sha256:old";
  RunView run = MakeRun();
  run.migrations_digest = "sha256:new";
  // Not planned yet (e.g. the manifests failed to load, or the database is unreachable): the
  // stored revisions stay, and so does the digest that describes them.
  EXPECT_EQ(Compose(stored, run, kT0).migrations_digest, "sha256:old");
  run.planned = true;
  run.current = {"b"};
  EXPECT_EQ(Compose(stored, run, kT0).migrations_digest, "sha256:new");
}

TEST(StatusComposerTest, SuccessIsReadyAndNotReconciling) {
  RunView run = MakeRun();
  const kube::MigrationJobStatus started = Compose(std::nullopt, run, kT0);
  run.phase = RunView::Phase::kSucceeded;
  run.planned = true;
  run.current = {"c"};
  run.target_revisions = {"c"};
  run.completed_at = kT0 + absl::Seconds(5);
  const kube::MigrationJobStatus s = Compose(started, run, kT0 + absl::Seconds(5));
  EXPECT_EQ(s.phase, "Succeeded");
  EXPECT_EQ(s.completed_at, "2024-05-01T12:00:05.123Z");
  EXPECT_EQ(Find(s, kReady)->status, "True");
  EXPECT_EQ(Find(s, kReady)->reason, "AtTarget");
  EXPECT_EQ(Find(s, kReconciling)->status, "False");
  EXPECT_EQ(Find(s, kStalled)->status, "False");
  EXPECT_FALSE(s.last_error.has_value());
}

TEST(StatusComposerTest, FailureIsStalledWithLastError) {
  RunView run = MakeRun();
  run.phase = RunView::Phase::kFailed;
  run.step_failed = true;
  run.error = kube::LastError{"b", "42P01", "relation \"x\" does not exist"};
  run.completed_at = kT0;
  const kube::MigrationJobStatus s = Compose(std::nullopt, run, kT0);
  EXPECT_EQ(s.phase, "Failed");
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_EQ(s.last_error->sql_state, "42P01");
  EXPECT_EQ(Find(s, kReady)->status, "False");
  EXPECT_EQ(Find(s, kReady)->reason, "MigrationFailed");
  EXPECT_EQ(Find(s, kStalled)->status, "True");
  EXPECT_EQ(Find(s, kReconciling)->status, "False");
}

TEST(StatusComposerTest, OnlyASuccessObservesTheGeneration) {
  kube::MigrationJobStatus stored;
  stored.observed_generation = 2;
  stored.phase = "Succeeded";
  RunView run = MakeRun();  // generation 3
  EXPECT_EQ(Compose(stored, run, kT0).observed_generation, 2);
  run.phase = RunView::Phase::kFailed;
  run.error = kube::LastError{"", "", "connection refused"};
  const kube::MigrationJobStatus failed = Compose(stored, run, kT0);
  EXPECT_EQ(failed.observed_generation, 2);
  // The conditions say which generation the failure is about.
  EXPECT_EQ(Find(failed, kStalled)->observed_generation, 3);
  run.phase = RunView::Phase::kSucceeded;
  run.error.reset();
  EXPECT_EQ(Compose(stored, run, kT0).observed_generation, 3);
}

TEST(StatusComposerTest, ChangedContentIsNotReadyWhileItIsApplied) {
  kube::MigrationJobStatus stored;
  stored.phase = "Succeeded";
  SetCondition(stored.conditions, kReady, "True", kReasonAtTarget, "database at a", 3, kT0);
  RunView run = MakeRun(kT0 + absl::Seconds(1));
  run.content_changed = true;
  run.migrations_digest = "sha256:new";
  const kube::MigrationJobStatus s = Compose(stored, run, kT0 + absl::Seconds(1));
  EXPECT_EQ(Find(s, kReady)->status, "False");
  EXPECT_EQ(Find(s, kReady)->reason, "MigrationsChanged");
  EXPECT_THAT(Find(s, kReady)->message, HasSubstr("sha256:new"));
  EXPECT_EQ(Find(s, kReconciling)->status, "True");
}

TEST(StatusComposerTest, AFailureBeforeAnySqlKeepsItsOwnReason) {
  RunView run = MakeRun();
  run.phase = RunView::Phase::kFailed;
  run.failure_reason = "ConfigMapNotFound";
  run.error = kube::LastError{"", "", "ConfigMap apps/m not found"};
  const kube::MigrationJobStatus s = Compose(std::nullopt, run, kT0);
  EXPECT_EQ(Find(s, kStalled)->reason, "ConfigMapNotFound");
  EXPECT_EQ(Find(s, kReady)->reason, "ConfigMapNotFound");
}

TEST(StatusComposerTest, TransitionTimeChangesOnlyWithTheStatus) {
  std::vector<kube::Condition> conditions;
  SetCondition(conditions, "Ready", "True", "AtTarget", "at a", 1, kT0);
  SetCondition(conditions, "Ready", "True", "AtTarget", "at b", 2, kT0 + absl::Hours(1));
  ASSERT_THAT(conditions, SizeIs(1));
  EXPECT_EQ(conditions[0].last_transition_time, "2024-05-01T12:00:00Z");
  EXPECT_EQ(conditions[0].message, "at b");
  EXPECT_EQ(conditions[0].observed_generation, 2);
  SetCondition(conditions, "Ready", "False", "MigrationFailed", "x", 2, kT0 + absl::Hours(2));
  EXPECT_EQ(conditions[0].last_transition_time, "2024-05-01T14:00:00Z");
}

TEST(StatusComposerTest, MessagesAreBoundedAtUtf8Boundaries) {
  std::vector<kube::Condition> conditions;
  std::string long_message;
  for (int i = 0; i < 2000; ++i) long_message += "\xC3\xA9";  // é
  SetCondition(conditions, "Ready", "False", "RunFailed", long_message, 1, kT0);
  EXPECT_LE(conditions[0].message.size(), kMaxConditionMessage);
  EXPECT_THAT(conditions[0].message, ::testing::EndsWith("..."));
  const std::string body = conditions[0].message.substr(0, conditions[0].message.size() - 3);
  EXPECT_EQ(body.size() % 2, 0u);  // no half character

  RunView run = MakeRun();
  run.phase = RunView::Phase::kFailed;
  run.error = kube::LastError{"", "", std::string(100000, 'x')};
  EXPECT_EQ(Compose(std::nullopt, run, kT0).last_error->message.size(), kMaxErrorMessage);
}

TEST(StatusComposerTest, LastAppliedIsNewestFirstDeduplicatedAndCapped) {
  kube::MigrationJobStatus stored;
  stored.started_at = FormatMillis(kT0 - absl::Hours(1));
  for (int i = 0; i < 19; ++i) {
    stored.last_applied.push_back({absl::StrCat("old", i), "upgrade",
                                   FormatMillis(kT0 - absl::Minutes(30) - absl::Seconds(i)), 1,
                                   "pod-0"});
  }
  RunView run = MakeRun();
  run.steps = {{"a", "upgrade", FormatMillis(kT0 + absl::Seconds(1)), 5, "pod-1"},
               {"b", "upgrade", FormatMillis(kT0 + absl::Seconds(2)), 6, "pod-1"}};
  const kube::MigrationJobStatus once = Compose(stored, run, kT0);
  ASSERT_THAT(once.last_applied, SizeIs(20));
  EXPECT_EQ(once.last_applied[0].revision, "b");
  EXPECT_EQ(once.last_applied[1].revision, "a");
  EXPECT_EQ(once.last_applied[2].revision, "old0");
  // Composing again (a retried write) adds nothing.
  EXPECT_EQ(Compose(once, run, kT0).last_applied, once.last_applied);
}

TEST(StatusComposerTest, OlderRunNeverOverwritesANewerRunsStatus) {
  const absl::Time newer_start = kT0 + absl::Milliseconds(5);
  RunView newer = MakeRun(newer_start);
  newer.instance = "pod-new";
  const kube::MigrationJobStatus newer_status = Compose(std::nullopt, newer, newer_start);

  RunView older = MakeRun(kT0);
  older.instance = "pod-old";
  older.phase = RunView::Phase::kFailed;
  older.error = kube::LastError{"x", "", "old failure"};
  older.steps = {{"a", "upgrade", FormatMillis(kT0 + absl::Milliseconds(1)), 3, "pod-old"}};
  const kube::MigrationJobStatus s = Compose(newer_status, older, kT0 + absl::Seconds(1));
  EXPECT_EQ(s.phase, "Running");
  EXPECT_EQ(s.started_at, newer_status.started_at);
  EXPECT_FALSE(s.last_error.has_value());
  EXPECT_EQ(s.conditions, newer_status.conditions);
  // Its applied steps are facts, kept.
  ASSERT_THAT(s.last_applied, SizeIs(1));
  EXPECT_EQ(s.last_applied[0].applied_by, "pod-old");

  EXPECT_TRUE(IsNewerRun(newer_status.started_at, kT0));
  EXPECT_FALSE(IsNewerRun(newer_status.started_at, newer_start));
  EXPECT_FALSE(IsNewerRun("", kT0));
  EXPECT_FALSE(IsNewerRun("garbage", kT0));
}

}  // namespace
}  // namespace sluice::reporting
