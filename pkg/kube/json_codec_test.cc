#include "pkg/kube/json_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "pkg/kube/client.h"
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
  EXPECT_EQ(job->spec.lock_mode, "");
  EXPECT_FALSE(job->spec.ddl_retries.has_value());
}

TEST(JsonCodecTest, ParsesTheLockSettingsOfSpecDatabase) {
  absl::StatusOr<MigrationJob> job = ParseMigrationJob(
      R"({"metadata":{"name":"db"},"spec":{"database":{"urlSecretRef":{"name":"s","key":"k"},)"
      R"("lockMode":"lease","lockDatabaseUrlSecretRef":{"name":"direct","key":"url"},)"
      R"("ddlLockTimeout":"5s","ddlRetries":0}}})");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->spec.lock_mode, "lease");
  EXPECT_EQ(job->spec.lock_url_secret_name, "direct");
  EXPECT_EQ(job->spec.lock_url_secret_key, "url");
  EXPECT_EQ(job->spec.ddl_lock_timeout, "5s");
  EXPECT_EQ(job->spec.ddl_retries, std::optional<int64_t>(0));
}

TEST(JsonCodecTest, ObjectMetaListsAndEventsKeepOnlyMetadata) {
  absl::StatusOr<ObjectMetaList> list = ParseObjectMetaList(
      R"({"kind":"SecretList","metadata":{"resourceVersion":"12","continue":"c"},)"
      R"("items":[{"metadata":{"name":"db","namespace":"apps","resourceVersion":"5"},)"
      R"("data":{"url":"cG9zdGdyZXM="}}]})");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->resource_version, "12");
  EXPECT_EQ(list->continue_token, "c");
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].name, "db");
  EXPECT_EQ(list->items[0].resource_version, "5");
  absl::StatusOr<WatchEvent<ObjectMeta>> modified = ParseObjectMetaWatchEvent(
      R"({"type":"MODIFIED","object":{"metadata":{"name":"m","namespace":"apps",)"
      R"("resourceVersion":"8"},"data":{"a.yaml":"x"}}})",
      "configmaps");
  ASSERT_TRUE(modified.ok()) << modified.status();
  EXPECT_EQ(modified->type, WatchEventType::kModified);
  EXPECT_EQ(modified->object.name, "m");
  EXPECT_EQ(modified->object.resource_version, "8");
  EXPECT_THAT(
      ParseObjectMetaWatchEvent(
          R"({"type":"ERROR","object":{"kind":"Status","message":"no","code":403}})", "secrets")
          .status(),
      StatusIs(absl::StatusCode::kPermissionDenied, "watching secrets"));
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

TEST(JsonCodecTest, WatchEventsAndErrors) {
  absl::StatusOr<WatchEvent<MigrationJob>> added = ParseMigrationJobWatchEvent(
      R"({"type":"ADDED","object":{"metadata":{"name":"db","namespace":"apps",)"
      R"("resourceVersion":"7"},"spec":{"target":"head"}}})");
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->type, WatchEventType::kAdded);
  EXPECT_EQ(added->object.metadata.resource_version, "7");
  EXPECT_EQ(added->object.spec.target, "head");
  absl::StatusOr<WatchEvent<MigrationJob>> bookmark = ParseMigrationJobWatchEvent(
      R"({"type":"BOOKMARK","object":{"kind":"MigrationJob","metadata":{"resourceVersion":"9"}}})");
  ASSERT_TRUE(bookmark.ok());
  EXPECT_EQ(bookmark->type, WatchEventType::kBookmark);
  EXPECT_EQ(bookmark->object.metadata.resource_version, "9");
  // The real server's 410 event (kubernetes/kubernetes#25151).
  absl::Status gone =
      ParseMigrationJobWatchEvent(
          R"({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},)"
          R"json("status":"Failure","message":"too old resource version: 657887 (680402)",)json"
          R"("reason":"Expired","code":410}})")
          .status();
  EXPECT_TRUE(IsResourceExpired(gone)) << gone;
  EXPECT_THAT(gone, StatusIs(absl::StatusCode::kOutOfRange, "too old resource version: 657887"));
  absl::Status internal =
      ParseMigrationJobWatchEvent(
          R"({"type":"ERROR","object":{"kind":"Status","message":"etcd","code":500}})")
          .status();
  EXPECT_THAT(internal, StatusIs(absl::StatusCode::kUnavailable, "etcd"));
  EXPECT_FALSE(IsResourceExpired(internal));
  EXPECT_THAT(ParseMigrationJobWatchEvent(R"({"type":"SOMETHING","object":{}})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "unknown type \"SOMETHING\""));
}

TEST(JsonCodecTest, ListCarriesVersionAndContinue) {
  absl::StatusOr<MigrationJobList> list = ParseMigrationJobList(
      R"({"kind":"MigrationJobList","metadata":{"resourceVersion":"12","continue":"abc"},)"
      R"("items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]})");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->resource_version, "12");
  EXPECT_EQ(list->continue_token, "abc");
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[1].metadata.name, "b");
}

TEST(JsonCodecTest, SecretValuesAreDecodedAndNeverQuotedInErrors) {
  absl::StatusOr<Secret> secret = ParseSecret(
      R"({"metadata":{"name":"db"},"type":"Opaque","data":{"url":"cG9zdGdyZXNxbDovL3g="}})");
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(secret->data.at("url"), "postgresql://x");
  absl::Status bad =
      ParseSecret(R"({"metadata":{"name":"db"},"data":{"url":"not base64 hunter2!"}})").status();
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument, "key \"url\" is not base64"));
  EXPECT_THAT(bad.message(), Not(HasSubstr("hunter2")));
  absl::Status not_json = ParseSecret(R"({"data":{"url":"hunter2)").status();
  EXPECT_THAT(not_json.message(), Not(HasSubstr("hunter2")));
}

TEST(JsonCodecTest, LeaseRoundTripsAndSendsOnlySetFields) {
  Lease lease;
  lease.metadata.namespace_ = "sluice-system";
  lease.metadata.name = "sluice";
  lease.metadata.resource_version = "5";
  lease.spec.holder_identity = "";
  lease.spec.lease_duration_seconds = 1;
  lease.spec.renew_time = "2026-12-01T06:00:00.123456Z";
  const std::string json = LeaseJson(lease);
  EXPECT_THAT(json, HasSubstr(R"("holderIdentity":"")"));
  EXPECT_THAT(json, Not(HasSubstr("acquireTime")));
  EXPECT_THAT(json, Not(HasSubstr("leaseTransitions")));
  absl::StatusOr<Lease> back = ParseLease(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spec, lease.spec);
  EXPECT_EQ(back->metadata.resource_version, "5");
}

}  // namespace
}  // namespace sluice::kube
