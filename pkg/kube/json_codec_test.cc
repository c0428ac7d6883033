#include "pkg/kube/json_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace sluice::kube {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

MigrationJobStatus FullStatus() {
  MigrationJobStatus s;
  s.observed_generation = 3;
  s.phase = "Failed";
  s.current_revisions = {"a1"};
  s.target_revisions = {"b2"};
  s.pending_revisions = {"b2"};
  s.last_applied = {{"a1", "upgrade", "2024-05-01T12:00:00.250Z", 41, "pod-1"}};
  s.last_error = LastError{"b2", "42P01", "relation \"x\" does not exist"};
  s.started_at = "2024-05-01T12:00:00.000Z";
  s.completed_at = "2024-05-01T12:00:01.000Z";
  s.conditions = {{"Ready", "False", 3, "2024-05-01T12:00:01Z", "MigrationFailed", "b2 failed"}};
  return s;
}

TEST(JsonCodecTest, StatusRoundTrips) {
  const MigrationJobStatus s = FullStatus();
  const std::string patch = StatusMergePatch(s, "");
  absl::StatusOr<MigrationJob> job = ParseMigrationJob(patch);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->status.has_value());
  EXPECT_EQ(*job->status, s);
}

TEST(JsonCodecTest, UnsetFieldsAreNullSoTheMergePatchRemovesThem) {
  MigrationJobStatus s;
  s.phase = "Running";
  const std::string patch = StatusMergePatch(s, "");
  EXPECT_THAT(patch, HasSubstr(R"("lastError":null)"));
  EXPECT_THAT(patch, HasSubstr(R"("completedAt":null)"));
  EXPECT_THAT(patch, HasSubstr(R"("conditions":[])"));
  EXPECT_THAT(patch, Not(HasSubstr("metadata")));
}

TEST(JsonCodecTest, ResourceVersionMakesThePatchConditional) {
  EXPECT_THAT(StatusMergePatch(MigrationJobStatus{}, "1234"),
              HasSubstr(R"("metadata":{"resourceVersion":"1234"})"));
}

TEST(JsonCodecTest, ParsesObjectMetaAndSpec) {
  absl::StatusOr<MigrationJob> job = ParseMigrationJob(
      R"({"apiVersion":"sluice.dev/v1alpha1","kind":"MigrationJob","metadata":{"name":"db",)"
      R"("namespace":"apps","uid":"u-1","resourceVersion":"77","generation":4},)"
      R"("spec":{"target":"head","suspend":true,"database":{"urlSecretRef":{"name":"s","key":"k"},)"
      R"("schema":"app","versionTable":"v"},"migrations":{"configMaps":[{"name":"m1"},{"name":"m2"}]}}})");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->metadata.name, "db");
  EXPECT_EQ(job->metadata.namespace_, "apps");
  EXPECT_EQ(job->metadata.uid, "u-1");
  EXPECT_EQ(job->metadata.resource_version, "77");
  EXPECT_EQ(job->metadata.generation, 4);
  EXPECT_EQ(job->spec.target, "head");
  EXPECT_TRUE(job->spec.suspend);
  EXPECT_EQ(job->spec.url_secret_name, "s");
  EXPECT_EQ(job->spec.url_secret_key, "k");
  EXPECT_EQ(job->spec.schema, "app");
  EXPECT_EQ(job->spec.version_table, "v");
  EXPECT_THAT(job->spec.config_maps, ::testing::ElementsAre("m1", "m2"));
  EXPECT_FALSE(job->status.has_value());
}

TEST(JsonCodecTest, RejectsNonJson) {
  EXPECT_THAT(ParseMigrationJob("<html>").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "not JSON"));
}

TEST(JsonCodecTest, EventCarriesTheInvolvedObjectAndReporter) {
  Event e;
  e.namespace_ = "apps";
  e.name = "db.17";
  e.object_name = "db";
  e.object_uid = "u-1";
  e.type = "Normal";
  e.reason = "MigrationApplied";
  e.message = "applied a1";
  e.action = "Migrate";
  e.reporting_component = "sluice";
  e.reporting_instance = "pod-1";
  e.timestamp = "2024-05-01T12:00:00Z";
  const std::string json = EventJson(e);
  EXPECT_THAT(json,
              HasSubstr(R"("involvedObject":{"apiVersion":"sluice.dev/v1alpha1",)"
                        R"("kind":"MigrationJob","name":"db","namespace":"apps","uid":"u-1"})"));
  EXPECT_THAT(json, HasSubstr(R"("reportingInstance":"pod-1")"));
  EXPECT_THAT(json, HasSubstr(R"("firstTimestamp":"2024-05-01T12:00:00Z")"));
  EXPECT_THAT(json, Not(HasSubstr("eventTime")));
}

}  // namespace
}  // namespace sluice::kube
