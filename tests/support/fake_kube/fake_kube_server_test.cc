// The fake API server against raw HTTPS requests: the semantics tests of sluice rely on.
#include "tests/support/fake_kube/fake_kube_server.h"

#include <cpprest/http_client.h>
#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "tests/support/fake_kube/crd_schema.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"

namespace sluice::fake_kube {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using web::json::value;
namespace http = web::http;

constexpr char kJobPath[] = "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/db";
constexpr char kStatusPath[] = "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/db/status";

struct Answer {
  int code = 0;
  value body;
  std::string warning;
  std::string retry_after;
};

class FakeKubeServerTest : public FakeKubeFixture {
 protected:
  void SetUp() override {
    FakeKubeFixture::SetUp();
    if (HasFatalFailure()) return;
    uid_ = CreateMigrationJob("apps", "db");
  }

  Answer Send(const http::method& method, const std::string& path, const std::string& body = "",
              const std::string& content_type = "application/json",
              std::optional<std::string> token = std::nullopt,
              std::chrono::seconds timeout = std::chrono::seconds(10)) {
    http::client::http_client_config config;
    config.set_timeout(timeout);
    const std::string ca = this->ca().cert_pem();
    config.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) {
      SSL_CTX_set_cert_store(ctx.native_handle(), X509_STORE_new());
      ctx.add_certificate_authority(boost::asio::buffer(ca));
    });
    http::client::http_client client(server().url(), config);
    http::http_request request(method);
    request.set_request_uri(path);
    const std::string bearer = token.value_or(this->token());
    if (!bearer.empty()) request.headers().add("Authorization", "Bearer " + bearer);
    if (!body.empty()) request.set_body(body, content_type);
    http::http_response response = client.request(request).get();
    Answer answer;
    answer.code = response.status_code();
    const std::string text = response.extract_string(true).get();
    answer.body = text.empty() ? value::null() : value::parse(text);
    auto w = response.headers().find("Warning");
    if (w != response.headers().end()) answer.warning = w->second;
    auto r = response.headers().find("Retry-After");
    if (r != response.headers().end()) answer.retry_after = r->second;
    return answer;
  }

  static std::string Rv(const value& object) {
    return object.at("metadata").at("resourceVersion").as_string();
  }
  static int64_t Generation(const value& object) {
    return object.at("metadata").at("generation").as_number().to_int64();
  }

  // A valid status patch body.
  static std::string StatusPatch(const std::string& phase) {
    return absl::StrCat(R"({"status":{"phase":")", phase,
                        R"(","observedGeneration":1,"conditions":[{"type":"Ready","status":"True",)"
                        R"("lastTransitionTime":"2024-05-01T12:00:00Z","reason":"Succeeded",)"
                        R"("message":"at head","observedGeneration":1}]}})");
  }

  void ExpectStatusFailure(const Answer& a, int code, const std::string& reason) {
    EXPECT_EQ(a.code, code);
    ASSERT_TRUE(a.body.is_object());
    EXPECT_EQ(a.body.at("kind").as_string(), "Status");
    EXPECT_EQ(a.body.at("apiVersion").as_string(), "v1");
    EXPECT_EQ(a.body.at("status").as_string(), "Failure");
    EXPECT_EQ(a.body.at("reason").as_string(), reason);
    EXPECT_EQ(a.body.at("code").as_integer(), code);
  }

  std::string uid_;
};

TEST_F(FakeKubeServerTest, CreateSetsServerFieldsAndDropsStatus) {
  Answer a = Send(http::methods::POST, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs",
                  R"({"metadata":{"name":"other"},"spec":{"target":"head"},)"
                  R"("status":{"phase":"Succeeded"}})");
  ASSERT_EQ(a.code, 201) << a.body.serialize();
  EXPECT_EQ(Generation(a.body), 1);
  EXPECT_FALSE(Rv(a.body).empty());
  EXPECT_EQ(a.body.at("metadata").at("namespace").as_string(), "apps");
  EXPECT_EQ(a.body.at("metadata").at("uid").as_string().size(), 36u);
  EXPECT_FALSE(a.body.has_field("status"));
  EXPECT_EQ(a.body.at("kind").as_string(), "MigrationJob");

  Answer again =
      Send(http::methods::POST, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs",
           R"({"metadata":{"name":"other"},"spec":{}})");
  ExpectStatusFailure(again, 409, "AlreadyExists");
}

TEST_F(FakeKubeServerTest, WatchListOptionsAreValidatedAsTheApiServerDoes) {
  // The stream itself (ADDED events, then the initial-events-end bookmark) is what kubectl 1.35
  // reads in kubectl_test; here, the options the API server refuses before any stream.
  const std::string collection = "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs";
  Answer a = Send(http::methods::GET, collection + "?watch=true&sendInitialEvents=true");
  ExpectStatusFailure(a, 422, "Invalid");
  EXPECT_THAT(a.body.at("message").as_string(),
              HasSubstr("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
  EXPECT_THAT(a.body.at("message").as_string(),
              HasSubstr("sendInitialEvents requires setting allowWatchBookmarks to true"));
  ExpectStatusFailure(
      Send(http::methods::GET, collection + "?watch=true&resourceVersionMatch=NotOlderThan"), 422,
      "Invalid");
  ExpectStatusFailure(
      Send(http::methods::GET, collection +
                                   "?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&"
                                   "resourceVersionMatch=NotOlderThan&resourceVersion=999999"),
      504, "Timeout");
}

TEST_F(FakeKubeServerTest, RequiresAValidBearerToken) {
  ExpectStatusFailure(Send(http::methods::GET, kJobPath, "", "", std::string()), 401,
                      "Unauthorized");
  ExpectStatusFailure(Send(http::methods::GET, kJobPath, "", "", std::string("wrong")), 401,
                      "Unauthorized");
  EXPECT_EQ(Send(http::methods::GET, kJobPath).code, 200);
  RotateToken("token-rotated");
  ExpectStatusFailure(
      Send(http::methods::GET, kJobPath, "", "", std::string("token-initial-0123456789")), 401,
      "Unauthorized");
  EXPECT_EQ(Send(http::methods::GET, kJobPath).code, 200);
}

TEST_F(FakeKubeServerTest, UnknownPathsAndObjectsAre404Status) {
  ExpectStatusFailure(
      Send(http::methods::GET, "/apis/sluice.dev/v1alpha1/namespaces/apps/widgets/x"), 404,
      "NotFound");
  ExpectStatusFailure(
      Send(http::methods::GET, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/db/scale"),
      404, "NotFound");
  Answer missing =
      Send(http::methods::GET, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/nope");
  ExpectStatusFailure(missing, 404, "NotFound");
  EXPECT_EQ(missing.body.at("message").as_string(), "migrationjobs.sluice.dev \"nope\" not found");
  EXPECT_EQ(missing.body.at("details").at("kind").as_string(), "migrationjobs");
}

TEST_F(FakeKubeServerTest, StatusPatchChangesOnlyStatus) {
  const value before = Send(http::methods::GET, kJobPath).body;
  Answer a = Send(http::methods::PATCH, kStatusPath,
                  R"({"spec":{"target":"abc"},"metadata":{"labels":{"x":"y"}},)"
                  R"("status":{"phase":"Running"}})",
                  "application/merge-patch+json");
  ASSERT_EQ(a.code, 200) << a.body.serialize();
  EXPECT_EQ(a.body.at("status").at("phase").as_string(), "Running");
  EXPECT_EQ(a.body.at("spec").at("target").as_string(), "head");
  EXPECT_FALSE(a.body.at("metadata").has_field("labels"));
  EXPECT_EQ(Generation(a.body), 1);
  EXPECT_NE(Rv(a.body), Rv(before));
}

TEST_F(FakeKubeServerTest, MainResourceWritesIgnoreStatusAndBumpGenerationOnSpecChanges) {
  ASSERT_EQ(Send(http::methods::PATCH, kStatusPath, StatusPatch("Succeeded"),
                 "application/merge-patch+json")
                .code,
            200);
  Answer spec = Send(http::methods::PATCH, kJobPath,
                     R"({"spec":{"target":"abc"},"status":{"phase":"Failed"}})",
                     "application/merge-patch+json");
  ASSERT_EQ(spec.code, 200);
  EXPECT_EQ(spec.body.at("status").at("phase").as_string(), "Succeeded");
  EXPECT_EQ(spec.body.at("spec").at("target").as_string(), "abc");
  EXPECT_EQ(Generation(spec.body), 2);

  Answer label = Send(http::methods::PATCH, kJobPath, R"({"metadata":{"labels":{"a":"b"}}})",
                      "application/merge-patch+json");
  ASSERT_EQ(label.code, 200);
  EXPECT_EQ(Generation(label.body), 2);
  EXPECT_NE(Rv(label.body), Rv(spec.body));
}

TEST_F(FakeKubeServerTest, IdenticalWritesKeepTheResourceVersion) {
  Answer first = Send(http::methods::PATCH, kStatusPath, StatusPatch("Succeeded"),
                      "application/merge-patch+json");
  Answer second = Send(http::methods::PATCH, kStatusPath, StatusPatch("Succeeded"),
                       "application/merge-patch+json");
  ASSERT_EQ(second.code, 200);
  EXPECT_EQ(Rv(first.body), Rv(second.body));
}

TEST_F(FakeKubeServerTest, ResourceVersionsComeFromOneCounter) {
  absl::StatusOr<std::string> cm = server().CreateObject(
      "configmaps", "apps", R"({"metadata":{"name":"m"},"data":{"a.yaml":"x"}})");
  ASSERT_TRUE(cm.ok()) << cm.status();
  const int64_t cm_rv = std::stoll(Rv(value::parse(*cm)));
  Answer job = Send(http::methods::PATCH, kStatusPath, StatusPatch("Running"),
                    "application/merge-patch+json");
  EXPECT_GT(std::stoll(Rv(job.body)), cm_rv);
}

TEST_F(FakeKubeServerTest, PutNeedsTheCurrentResourceVersion) {
  ExpectRejectedWrites();
  value job = Send(http::methods::GET, kJobPath).body;
  const std::string rv = Rv(job);
  job["spec"]["target"] = value::string("abc");

  value stale = job;
  stale["metadata"]["resourceVersion"] = value::string("1");
  ExpectStatusFailure(Send(http::methods::PUT, kJobPath, stale.serialize()), 409, "Conflict");

  value without = job;
  without["metadata"].erase("resourceVersion");
  Answer invalid = Send(http::methods::PUT, kJobPath, without.serialize());
  ExpectStatusFailure(invalid, 422, "Invalid");
  EXPECT_THAT(invalid.body.at("message").as_string(), HasSubstr("must be specified for an update"));

  value renamed = job;
  renamed["metadata"]["name"] = value::string("other");
  ExpectStatusFailure(Send(http::methods::PUT, kJobPath, renamed.serialize()), 400, "BadRequest");

  ExpectStatusFailure(
      Send(http::methods::PUT, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/gone",
           R"({"metadata":{"name":"gone","resourceVersion":"1"}})"),
      404, "NotFound");

  Answer ok = Send(http::methods::PUT, kJobPath, job.serialize());
  ASSERT_EQ(ok.code, 200) << ok.body.serialize();
  EXPECT_EQ(Generation(ok.body), 2);
  EXPECT_NE(Rv(ok.body), rv);
}

TEST_F(FakeKubeServerTest, PutToStatusWithoutStatusClearsIt) {
  ASSERT_EQ(Send(http::methods::PATCH, kStatusPath, StatusPatch("Running"),
                 "application/merge-patch+json")
                .code,
            200);
  value job = Send(http::methods::GET, kJobPath).body;
  job.erase("status");
  Answer a = Send(http::methods::PUT, kStatusPath, job.serialize());
  ASSERT_EQ(a.code, 200);
  EXPECT_FALSE(a.body.has_field("status"));
}

TEST_F(FakeKubeServerTest, PatchWithAResourceVersionIsConditional) {
  const std::string rv = Rv(Send(http::methods::GET, kJobPath).body);
  ASSERT_EQ(Send(http::methods::PATCH, kStatusPath, StatusPatch("Running"),
                 "application/merge-patch+json")
                .code,
            200);
  ExpectStatusFailure(Send(http::methods::PATCH, kStatusPath,
                           absl::StrCat(R"({"metadata":{"resourceVersion":")", rv,
                                        R"("},"status":{"phase":"Failed"}})"),
                           "application/merge-patch+json"),
                      409, "Conflict");
  server().InjectConflicts(1);
  ExpectStatusFailure(Send(http::methods::PATCH, kStatusPath, StatusPatch("Failed"),
                           "application/merge-patch+json"),
                      409, "Conflict");
  EXPECT_EQ(
      Send(http::methods::PATCH, kStatusPath, StatusPatch("Failed"), "application/merge-patch+json")
          .code,
      200);
}

TEST_F(FakeKubeServerTest, JsonPatchAppliesOperationsAndFailsOnTest) {
  ExpectRejectedWrites();
  Answer a = Send(http::methods::PATCH, kStatusPath,
                  R"([{"op":"add","path":"/status","value":{"phase":"Running"}},)"
                  R"({"op":"add","path":"/status/currentRevisions","value":["a"]},)"
                  R"({"op":"add","path":"/status/currentRevisions/-","value":"b"}])",
                  "application/json-patch+json");
  ASSERT_EQ(a.code, 200) << a.body.serialize();
  EXPECT_EQ(a.body.at("status").at("currentRevisions").serialize(), R"(["a","b"])");
  ExpectStatusFailure(Send(http::methods::PATCH, kStatusPath,
                           R"([{"op":"test","path":"/status/phase","value":"Failed"},)"
                           R"({"op":"replace","path":"/status/phase","value":"Failed"}])",
                           "application/json-patch+json"),
                      422, "Invalid");
}

TEST_F(FakeKubeServerTest, WrongContentTypesAre415) {
  ExpectRejectedWrites();
  Answer strategic = Send(http::methods::PATCH, kStatusPath, StatusPatch("Running"),
                          "application/strategic-merge-patch+json");
  ExpectStatusFailure(strategic, 415, "UnsupportedMediaType");
  EXPECT_THAT(strategic.body.at("message").as_string(),
              HasSubstr("accepted media types include: application/json-patch+json"));
  ExpectStatusFailure(Send(http::methods::PATCH, kStatusPath, StatusPatch("Running"), "text/plain"),
                      415, "UnsupportedMediaType");
}

struct InvalidCase {
  const char* name;
  const char* status;  // the JSON of status
  const char* field;   // expected in the causes
};

TEST_F(FakeKubeServerTest, SchemaViolationsAre422WithCauses) {
  ExpectRejectedWrites();
  const std::string condition = R"("lastTransitionTime":"2024-05-01T12:00:00Z","message":"m")";
  std::string many_steps = "[";
  for (int i = 0; i < 21; ++i) {
    absl::StrAppend(&many_steps, i ? "," : "", R"({"revision":"r)", i,
                    R"(","direction":"upgrade","startedAt":"2024-05-01T12:00:00Z"})");
  }
  many_steps += "]";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"phase":3})", "status.phase"},
      {R"({"phase":"Done"})", "status.phase"},
      {R"({"observedGeneration":-1})", "status.observedGeneration"},
      {R"({"startedAt":"yesterday"})", "status.startedAt"},
      {R"({"currentRevisions":"abc"})", "status.currentRevisions"},
      {absl::StrCat(R"({"conditions":[{"type":"Ready","status":"Yes","reason":"Ok",)", condition,
                    "}]}"),
       "status.conditions[0].status"},
      {absl::StrCat(R"({"conditions":[{"type":"Ready","status":"True",)", condition, "}]}"),
       "status.conditions[0].reason"},
      {absl::StrCat(R"({"conditions":[{"type":"Ready","status":"True","reason":"not camel",)",
                    condition, "}]}"),
       "status.conditions[0].reason"},
      {absl::StrCat(R"({"conditions":[{"type":"Ready","status":"True","reason":"A",)", condition,
                    R"(},{"type":"Ready","status":"False","reason":"B",)", condition, "}]}"),
       "status.conditions[1]"},
      {R"({"conditions":[{"type":"Ready","status":"True","reason":"A","message":""}]})",
       "status.conditions[0].lastTransitionTime"},
      {absl::StrCat(R"({"lastApplied":)", many_steps, "}"), "status.lastApplied"},
      {R"({"lastApplied":[{"revision":"a","direction":"sideways","startedAt":"2024-05-01T12:00:00Z"}]})",
       "status.lastApplied[0].direction"},
      {absl::StrCat(R"({"lastError":{"message":")", std::string(40000, 'x'), R"("}})"),
       "status.lastError.message"},
  };
  for (const auto& [status, field] : cases) {
    SCOPED_TRACE(status.substr(0, 200));
    Answer a = Send(http::methods::PATCH, kStatusPath, absl::StrCat(R"({"status":)", status, "}"),
                    "application/merge-patch+json");
    ExpectStatusFailure(a, 422, "Invalid");
    EXPECT_THAT(a.body.at("message").as_string(),
                HasSubstr("MigrationJob.sluice.dev \"db\" is invalid"));
    bool found = false;
    for (const value& cause : a.body.at("details").at("causes").as_array()) {
      if (cause.at("field").as_string() == field) found = true;
    }
    EXPECT_TRUE(found) << a.body.serialize();
  }
  // Nothing was stored.
  EXPECT_FALSE(Send(http::methods::GET, kJobPath).body.has_field("status"));
}

TEST_F(FakeKubeServerTest, UnknownFieldsArePrunedRecordedAndFailTheTest) {
  Answer a = Send(
      http::methods::PATCH, kStatusPath,
      R"({"status":{"phase":"Running","condtions":[],"lastError":{"message":"m","hint":"h"}}})",
      "application/merge-patch+json");
  ASSERT_EQ(a.code, 200);
  EXPECT_FALSE(a.body.at("status").has_field("condtions"));
  EXPECT_FALSE(a.body.at("status").at("lastError").has_field("hint"));
  EXPECT_THAT(a.warning, HasSubstr("unknown field"));
  EXPECT_THAT(server().PrunedFields(),
              UnorderedElementsAre("status.condtions", "status.lastError.hint"));

  // The fixture's TearDown check turns this into a test failure.
  EXPECT_NONFATAL_FAILURE(FakeKubeFixture::TearDown(), "status.condtions");
}

TEST_F(FakeKubeServerTest, StrictFieldValidationRejectsUnknownFields) {
  ExpectRejectedWrites();
  Answer a = Send(http::methods::PATCH, absl::StrCat(kStatusPath, "?fieldValidation=Strict"),
                  R"({"status":{"phaze":"Running"}})", "application/merge-patch+json");
  ExpectStatusFailure(a, 400, "BadRequest");
  EXPECT_THAT(a.body.at("message").as_string(), HasSubstr("unknown field \"status.phaze\""));
}

TEST_F(FakeKubeServerTest, EventsAreValidatedAndRecorded) {
  const std::string path = "/api/v1/namespaces/apps/events";
  Answer ok =
      Send(http::methods::POST, path,
           R"({"metadata":{"name":"db.1"},"involvedObject":{"apiVersion":"sluice.dev/v1alpha1",)"
           R"("kind":"MigrationJob","namespace":"apps","name":"db"},"type":"Normal",)"
           R"("reason":"MigrationApplied","message":"applied a","reportingComponent":"sluice",)"
           R"("reportingInstance":"pod-1","firstTimestamp":"2024-05-01T12:00:00Z"})");
  ASSERT_EQ(ok.code, 201) << ok.body.serialize();
  ASSERT_EQ(server().Events().size(), 1u);
  EXPECT_EQ(server().Events()[0].reason, "MigrationApplied");
  EXPECT_EQ(server().Events()[0].reporting_instance, "pod-1");
}

TEST_F(FakeKubeServerTest, InvalidEventsAre422) {
  ExpectRejectedWrites();
  const std::string path = "/api/v1/namespaces/apps/events";
  ExpectStatusFailure(
      Send(
          http::methods::POST, path,
          R"({"metadata":{"name":"e1"},"involvedObject":{"kind":"MigrationJob","namespace":"other",)"
          R"("name":"db"},"type":"Normal","reason":"X"})"),
      422, "Invalid");
  ExpectStatusFailure(
      Send(
          http::methods::POST, path,
          R"({"metadata":{"name":"e2"},"involvedObject":{"kind":"MigrationJob","namespace":"apps",)"
          R"("name":"db"},"type":"Info","reason":"X"})"),
      422, "Invalid");
  ExpectStatusFailure(
      Send(
          http::methods::POST, path,
          R"({"metadata":{"name":"e3"},"involvedObject":{"kind":"MigrationJob","namespace":"apps",)"
          R"("name":"db"},"type":"Normal","reason":"X","eventTime":"2024-05-01T12:00:00.000000Z"})"),
      422, "Invalid");
  EXPECT_THAT(server().Events(), IsEmpty());
}

TEST_F(FakeKubeServerTest, InjectedErrorsCarryRetryAfter) {
  server().InjectFault({"GET", "/migrationjobs/db", 1, 429, 2, absl::ZeroDuration()});
  Answer busy = Send(http::methods::GET, kJobPath);
  ExpectStatusFailure(busy, 429, "TooManyRequests");
  EXPECT_EQ(busy.retry_after, "2");
  EXPECT_EQ(busy.body.at("details").at("retryAfterSeconds").as_integer(), 2);
  server().InjectFault({"", "", 1, 500, -1, absl::ZeroDuration()});
  ExpectStatusFailure(Send(http::methods::GET, kJobPath), 500, "InternalError");
  EXPECT_EQ(Send(http::methods::GET, kJobPath).code, 200);
}

TEST_F(FakeKubeServerTest, HangsOutlastTheClientTimeout) {
  server().InjectFault({"GET", "", 1, 0, -1, absl::Seconds(5)});
  const absl::Time start = absl::Now();
  EXPECT_THROW(Send(http::methods::GET, kJobPath, "", "", std::nullopt, std::chrono::seconds(1)),
               http::http_exception);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
}

TEST_F(FakeKubeServerTest, StopListeningRefusesConnections) {
  ASSERT_TRUE(server().StopListening().ok());
  EXPECT_THROW(Send(http::methods::GET, kJobPath), http::http_exception);
  ASSERT_TRUE(server().StartListening().ok());
  EXPECT_EQ(Send(http::methods::GET, kJobPath).code, 200);
}

TEST_F(FakeKubeServerTest, LogsRequests) {
  Send(http::methods::PATCH, kStatusPath, StatusPatch("Running"), "application/merge-patch+json");
  std::vector<LoggedRequest> log = server().Requests();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().method, "PATCH");
  EXPECT_EQ(log.back().path, kStatusPath);
  EXPECT_EQ(log.back().content_type, "application/merge-patch+json");
  EXPECT_EQ(log.back().authorization, absl::StrCat("Bearer ", token()));
  EXPECT_EQ(log.back().response_code, 200);
}

TEST(CrdTest, ManifestIsStructuralAndDeclaresEveryStatusField) {
  absl::StatusOr<CrdInfo> crd = LoadCrd(CrdPath());
  ASSERT_TRUE(crd.ok()) << crd.status();
  EXPECT_EQ(crd->group, "sluice.dev");
  EXPECT_EQ(crd->version, "v1alpha1");
  EXPECT_EQ(crd->plural, "migrationjobs");
  EXPECT_TRUE(crd->status_subresource);
  const SchemaNode& status = *crd->schema->properties.at("status");
  for (const char* field :
       {"observedGeneration", "phase", "currentRevisions", "targetRevisions", "pendingRevisions",
        "migrationsDigest", "lastApplied", "lastError", "startedAt", "completedAt", "conditions"}) {
    EXPECT_TRUE(status.properties.count(field)) << field;
  }
  const SchemaNode& conditions = *status.properties.at("conditions");
  EXPECT_EQ(conditions.list_type, "map");
  EXPECT_THAT(conditions.list_map_keys, ElementsAre("type"));
  EXPECT_EQ(*status.properties.at("lastApplied")->max_items, 20);
  const SchemaNode& spec = *crd->schema->properties.at("spec");
  for (const char* field : {"target", "database", "migrations", "suspend"}) {
    EXPECT_TRUE(spec.properties.count(field)) << field;
  }
}

}  // namespace
}  // namespace sluice::fake_kube

namespace sluice::fake_kube {
namespace {

std::string Manifest(const std::string& name) {
  return absl::StrCat(SLUICE_SOURCE_DIR, "/manifests/", name);
}

class ManifestsTest : public FakeKubeFixture {};

TEST_F(ManifestsTest, ExampleMigrationJobIsValidAndLosesNoField) {
  absl::StatusOr<std::vector<std::string>> docs =
      YamlFileToJson(Manifest("example-migrationjob.yaml"));
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  absl::StatusOr<std::string> stored = server().CreateObject("migrationjobs", "apps", (*docs)[0]);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_THAT(server().PrunedFields(), IsEmpty());
  EXPECT_THAT(server().ValidateStored("apps", "app-db"), IsEmpty());
}

TEST(ManifestFilesTest, InitContainerRbacIsLeastPrivilegeAndMatchesTheDeployment) {
  absl::StatusOr<std::vector<std::string>> rbac =
      YamlFileToJson(Manifest("rbac-init-container.yaml"));
  ASSERT_TRUE(rbac.ok()) << rbac.status();
  std::string service_account;
  std::vector<std::string> rules;
  for (const std::string& text : *rbac) {
    const value doc = value::parse(text);
    const std::string kind = doc.at("kind").as_string();
    if (kind == "ServiceAccount") service_account = doc.at("metadata").at("name").as_string();
    if (kind != "Role") continue;
    for (const value& rule : doc.at("rules").as_array()) {
      for (const value& resource : rule.at("resources").as_array()) {
        std::vector<std::string> verbs;
        for (const value& verb : rule.at("verbs").as_array()) verbs.push_back(verb.as_string());
        rules.push_back(absl::StrCat(resource.as_string(), ":", absl::StrJoin(verbs, ",")));
      }
    }
  }
  // Exactly what the Reporter does: GET the object, PATCH /status, POST events.
  EXPECT_THAT(rules, UnorderedElementsAre("migrationjobs:get", "migrationjobs/status:patch",
                                          "events:create"));

  absl::StatusOr<std::vector<std::string>> deployment =
      YamlFileToJson(Manifest("example-deployment.yaml"));
  ASSERT_TRUE(deployment.ok()) << deployment.status();
  const value pod = value::parse((*deployment)[0]).at("spec").at("template").at("spec");
  EXPECT_EQ(pod.at("serviceAccountName").as_string(), service_account);
  const value init = pod.at("initContainers").at(0);
  const std::string args = init.at("args").serialize();
  EXPECT_THAT(args, HasSubstr("\"upgrade\",\"head\""));
  EXPECT_THAT(args, HasSubstr("--report=$(POD_NAMESPACE)/app-db"));
  const std::string env = init.at("env").serialize();
  EXPECT_THAT(env, HasSubstr("\"POD_NAME\""));
  EXPECT_THAT(env, HasSubstr("\"fieldPath\":\"metadata.name\""));
  EXPECT_THAT(env, HasSubstr("\"DATABASE_URL\""));
  EXPECT_THAT(env, HasSubstr("\"secretKeyRef\""));
  EXPECT_THAT(pod.at("volumes").serialize(), HasSubstr("\"configMap\""));
}

}  // namespace
}  // namespace sluice::fake_kube

namespace sluice::fake_kube {
namespace {

TEST_F(FakeKubeServerTest, RbacAllowsWhatTheInitContainerRoleGrantsAndNothingElse) {
  absl::StatusOr<std::vector<RbacRule>> rules =
      RulesFromManifest(Manifest("rbac-init-container.yaml"));
  ASSERT_TRUE(rules.ok()) << rules.status();
  server().SetRbacRules(token(), "system:serviceaccount:apps:app-migrator", *rules);

  EXPECT_EQ(Send(http::methods::GET, kJobPath).code, 200);
  EXPECT_EQ(Send(http::methods::PATCH, kStatusPath, StatusPatch("Running"),
                 "application/merge-patch+json")
                .code,
            200);
  EXPECT_EQ(Send(http::methods::POST, "/api/v1/namespaces/apps/events",
                 R"({"metadata":{"name":"db.1"},"involvedObject":{"kind":"MigrationJob",)"
                 R"("namespace":"apps","name":"db"},"type":"Normal","reason":"X"})")
                .code,
            201);

  Answer put =
      Send(http::methods::PUT, kStatusPath, Send(http::methods::GET, kJobPath).body.serialize());
  ExpectStatusFailure(put, 403, "Forbidden");
  EXPECT_EQ(put.body.at("message").as_string(),
            "migrationjobs.sluice.dev \"db\" is forbidden: User "
            "\"system:serviceaccount:apps:app-migrator\" cannot update resource "
            "\"migrationjobs/status\" in API group \"sluice.dev\" in the namespace \"apps\"");
  ExpectStatusFailure(
      Send(http::methods::GET, "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs"), 403,
      "Forbidden");
  ExpectStatusFailure(Send(http::methods::PATCH, kJobPath, R"({"spec":{"target":"x"}})",
                           "application/merge-patch+json"),
                      403, "Forbidden");
  ExpectStatusFailure(Send(http::methods::GET, "/api/v1/namespaces/apps/secrets/app-db"), 403,
                      "Forbidden");
}

}  // namespace
}  // namespace sluice::fake_kube
