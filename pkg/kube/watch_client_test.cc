// LIST, WATCH, ConfigMaps, Secrets and Leases through the REST client, against the fake API
// server over real HTTPS on 127.0.0.1: paging on one snapshot, watch events in order, bookmarks,
// 410 Gone both ways, dropped and timed-out streams, cancellation, a server restart mid-watch,
// RBAC.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cpprest/http_client.h>

#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"
#include "pkg/kube/client.h"
#include "pkg/kube/config.h"
#include "pkg/kube/test_client.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/stopwatch.h"

namespace sluice::kube {
namespace {

using ::sluice::fake_kube::RbacRule;
using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

using Event = WatchEvent<MigrationJob>;

absl::Time In(absl::Duration d) { return absl::Now() + d; }

class WatchClientTest : public fake_kube::FakeKubeFixture {
 protected:
  void SetUp() override {
    FakeKubeFixture::SetUp();
    if (HasFatalFailure()) return;
    log::SetSinkForTest(&log_);
    log::SetVerbose(true);
    client_ = NewTestClient(WriteKubeconfig(), FastClientOptions(absl::Seconds(5)));
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    client_.reset();
    log::SetVerbose(false);
    log::SetSinkForTest(nullptr);
    EXPECT_THAT(log_.str(), Not(HasSubstr(token())));
    FakeKubeFixture::TearDown();
  }

  // Opens a watch and waits until the server has registered it (so later writes reach it).
  std::unique_ptr<WatchStream<MigrationJob>> Watch(WatchOptions options) {
    const int before = server().OpenWatches();
    absl::StatusOr<std::unique_ptr<WatchStream<MigrationJob>>> stream =
        client_->WatchMigrationJobs(options, In(absl::Seconds(10)));
    EXPECT_THAT(stream.status(), IsOk());
    if (!stream.ok()) return nullptr;
    EXPECT_TRUE(
        server().WaitUntil([&] { return server().OpenWatches() > before; }, absl::Seconds(10)));
    return std::move(*stream);
  }

  // Returns the next event, failing the test when there is none within 10 s.
  Event NextEvent(WatchStream<MigrationJob>& stream) {
    absl::StatusOr<std::optional<Event>> event = stream.Next(In(absl::Seconds(10)));
    EXPECT_THAT(event.status(), IsOk());
    if (!event.ok() || !event->has_value()) {
      ADD_FAILURE() << "no event";
      return Event{};
    }
    return **event;
  }

  std::unique_ptr<Client> client_;
  std::ostringstream log_;
};

ListOptions InNamespace(const std::string& ns) {
  ListOptions options;
  options.namespace_ = ns;
  return options;
}

std::vector<std::string> Names(const std::vector<MigrationJob>& items) {
  std::vector<std::string> out;
  for (const MigrationJob& j : items) out.push_back(j.metadata.namespace_ + "/" + j.metadata.name);
  return out;
}

TEST_F(WatchClientTest, ListsOneNamespaceOrAll) {
  CreateMigrationJob("apps", "b");
  CreateMigrationJob("apps", "a");
  CreateMigrationJob("other", "c");
  absl::StatusOr<MigrationJobList> apps =
      client_->ListMigrationJobs(InNamespace("apps"), In(absl::Seconds(10)));
  ASSERT_THAT(apps.status(), IsOk());
  EXPECT_THAT(Names(apps->items), ElementsAre("apps/a", "apps/b"));
  EXPECT_EQ(apps->resource_version, server().ResourceVersion());
  EXPECT_TRUE(apps->continue_token.empty());
  absl::StatusOr<MigrationJobList> all = client_->ListMigrationJobs({}, In(absl::Seconds(10)));
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_THAT(Names(all->items), ElementsAre("apps/a", "apps/b", "other/c"));
  EXPECT_EQ(server().Requests().back().path, "/apis/sluice.dev/v1alpha1/migrationjobs");
}

TEST_F(WatchClientTest, PagesShareTheFirstPagesSnapshot) {
  for (const char* name : {"a", "b", "c", "d", "e"}) CreateMigrationJob("apps", name);
  ListOptions options;
  options.limit = 2;
  std::vector<std::string> seen;
  std::set<std::string> versions;
  absl::StatusOr<MigrationJobList> page =
      client_->ListMigrationJobs(options, In(absl::Seconds(10)));
  ASSERT_THAT(page.status(), IsOk());
  // Changes between pages do not show: every page describes the first one's resourceVersion.
  CreateMigrationJob("apps", "bb");
  ASSERT_THAT(server().DeleteObject("migrationjobs", "apps", "e"), IsOk());
  for (int pages = 1; pages < 10; ++pages) {
    for (const std::string& n : Names(page->items)) seen.push_back(n);
    versions.insert(page->resource_version);
    EXPECT_LE(page->items.size(), 2u);
    if (page->continue_token.empty()) break;
    options.continue_token = page->continue_token;
    page = client_->ListMigrationJobs(options, In(absl::Seconds(10)));
    ASSERT_THAT(page.status(), IsOk());
  }
  EXPECT_THAT(seen, ElementsAre("apps/a", "apps/b", "apps/c", "apps/d", "apps/e"));
  EXPECT_EQ(versions.size(), 1u);
  EXPECT_THAT(server().Requests().back().query, HasSubstr("limit=2&continue="));
}

TEST_F(WatchClientTest, AnExpiredContinueTokenSaysListAgain) {
  server().SetHistoryLimit(2);
  for (const char* name : {"a", "b", "c"}) CreateMigrationJob("apps", name);
  ListOptions options;
  options.limit = 1;
  absl::StatusOr<MigrationJobList> page =
      client_->ListMigrationJobs(options, In(absl::Seconds(10)));
  ASSERT_THAT(page.status(), IsOk());
  ASSERT_FALSE(page->continue_token.empty());
  // Three writes: the history (two) no longer reaches back to the first page's version.
  for (const char* name : {"x", "y", "z"}) CreateMigrationJob("apps", name);
  options.continue_token = page->continue_token;
  absl::Status expired = client_->ListMigrationJobs(options, In(absl::Seconds(10))).status();
  EXPECT_TRUE(IsResourceExpired(expired)) << expired;
  EXPECT_THAT(expired, StatusIs(absl::StatusCode::kOutOfRange, "continue parameter is too old"));
  // Any other kOutOfRange is not "list again".
  EXPECT_FALSE(IsResourceExpired(absl::OutOfRangeError("too old")));
}

TEST_F(WatchClientTest, WatchFromAListSeesEveryChangeInOrder) {
  CreateMigrationJob("apps", "db");
  absl::StatusOr<MigrationJobList> list =
      client_->ListMigrationJobs(InNamespace("apps"), In(absl::Seconds(10)));
  ASSERT_THAT(list.status(), IsOk());
  WatchOptions options;
  options.namespace_ = "apps";
  options.resource_version = list->resource_version;
  auto stream = Watch(options);
  ASSERT_NE(stream, nullptr);
  CreateMigrationJob("other", "elsewhere");  // another namespace: not this watch's
  CreateMigrationJob("apps", "db2");
  ASSERT_THAT(server().UpdateMigrationJobSpec("apps", "db", R"({"target":"fc0e7b400c13"})"),
              IsOk());
  ASSERT_THAT(server().DeleteObject("migrationjobs", "apps", "db2"), IsOk());

  Event added = NextEvent(*stream);
  EXPECT_EQ(added.type, WatchEventType::kAdded);
  EXPECT_EQ(added.object.metadata.name, "db2");
  Event modified = NextEvent(*stream);
  EXPECT_EQ(modified.type, WatchEventType::kModified);
  EXPECT_EQ(modified.object.spec.target, "fc0e7b400c13");
  EXPECT_EQ(modified.object.metadata.generation, 2);
  Event deleted = NextEvent(*stream);
  EXPECT_EQ(deleted.type, WatchEventType::kDeleted);
  EXPECT_EQ(deleted.object.metadata.name, "db2");
  EXPECT_EQ(deleted.object.metadata.resource_version, server().ResourceVersion());
  const std::string query = server().Requests().back().query;
  EXPECT_THAT(query, HasSubstr("watch=1"));
  EXPECT_THAT(query, HasSubstr(absl::StrCat("resourceVersion=", list->resource_version)));
  EXPECT_THAT(query, HasSubstr("allowWatchBookmarks=true"));
  EXPECT_THAT(query, HasSubstr("timeoutSeconds=300"));
}

TEST_F(WatchClientTest, WatchWithoutAVersionStartsWithTheObjectsThatExist) {
  CreateMigrationJob("apps", "a");
  CreateMigrationJob("apps", "b");
  WatchOptions options;
  options.field_selector = "metadata.name=b";
  auto stream = Watch(options);
  ASSERT_NE(stream, nullptr);
  Event first = NextEvent(*stream);
  EXPECT_EQ(first.type, WatchEventType::kAdded);
  EXPECT_EQ(first.object.metadata.name, "b");
  // Nothing else: "a" is not selected.
  EXPECT_THAT(stream->Next(In(absl::Milliseconds(200))).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ""));
  // The stream is still open after a deadline: the next change arrives.
  ASSERT_THAT(server().UpdateMigrationJobSpec("apps", "b", R"({"target":"x1"})"), IsOk());
  Event next = NextEvent(*stream);
  EXPECT_EQ(next.type, WatchEventType::kModified);
  EXPECT_EQ(next.object.spec.target, "x1");
}

TEST_F(WatchClientTest, BookmarksCarryOnlyTheResourceVersion) {
  CreateMigrationJob("apps", "db");
  WatchOptions options;
  options.resource_version = server().ResourceVersion();
  auto stream = Watch(options);
  ASSERT_NE(stream, nullptr);
  CreateMigrationJob("other", "x");
  server().SendBookmarks();
  Event added = NextEvent(*stream);
  EXPECT_EQ(added.type, WatchEventType::kAdded);
  Event bookmark = NextEvent(*stream);
  EXPECT_EQ(bookmark.type, WatchEventType::kBookmark);
  EXPECT_EQ(bookmark.object.metadata.resource_version, server().ResourceVersion());
  EXPECT_TRUE(bookmark.object.metadata.name.empty());
}

TEST_F(WatchClientTest, ATooOldVersionIsGoneAsAnErrorEvent) {
  server().SetHistoryLimit(2);
  CreateMigrationJob("apps", "a");
  const std::string old_version = server().ResourceVersion();
  for (const char* name : {"b", "c", "d"}) CreateMigrationJob("apps", name);
  WatchOptions options;
  options.resource_version = old_version;
  absl::StatusOr<std::unique_ptr<WatchStream<MigrationJob>>> stream =
      client_->WatchMigrationJobs(options, In(absl::Seconds(10)));
  ASSERT_THAT(stream.status(), IsOk());  // 200 first, as the real server answers
  absl::Status gone = (*stream)->Next(In(absl::Seconds(10))).status();
  EXPECT_TRUE(IsResourceExpired(gone)) << gone;
  EXPECT_THAT(gone, StatusIs(absl::StatusCode::kOutOfRange, "too old resource version"));
  // The stream is over; it says so again.
  EXPECT_TRUE(IsResourceExpired((*stream)->Next(In(absl::Seconds(1))).status()));
}

TEST_F(WatchClientTest, ATooOldVersionIsGoneAsAnHttpAnswer) {
  server().SetHistoryLimit(1);
  server().SetWatchExpiredAsHttp(true);
  CreateMigrationJob("apps", "a");
  const std::string old_version = server().ResourceVersion();
  CreateMigrationJob("apps", "b");
  CreateMigrationJob("apps", "c");
  WatchOptions options;
  options.resource_version = old_version;
  absl::Status gone = client_->WatchMigrationJobs(options, In(absl::Seconds(10))).status();
  EXPECT_TRUE(IsResourceExpired(gone)) << gone;
  EXPECT_THAT(gone, StatusIs(absl::StatusCode::kOutOfRange, "HTTP 410"));
}

TEST_F(WatchClientTest, AnInjectedErrorEventEndsTheStream) {
  auto stream = Watch({});
  ASSERT_NE(stream, nullptr);
  server().InjectWatchError(500);
  absl::Status error = stream->Next(In(absl::Seconds(10))).status();
  EXPECT_THAT(error, StatusIs(absl::StatusCode::kUnavailable, "injected watch error"));
  EXPECT_FALSE(IsResourceExpired(error));
}

TEST_F(WatchClientTest, CleanEndDropAndTimeoutAreTold) {
  {
    auto stream = Watch({});
    ASSERT_NE(stream, nullptr);
    server().CloseWatches(/*abruptly=*/false);
    absl::StatusOr<std::optional<Event>> end = stream->Next(In(absl::Seconds(10)));
    ASSERT_THAT(end.status(), IsOk());
    EXPECT_FALSE(end->has_value());
  }
  {
    auto stream = Watch({});
    ASSERT_NE(stream, nullptr);
    server().CloseWatches(/*abruptly=*/true);
    absl::StatusOr<std::optional<Event>> dropped = stream->Next(In(absl::Seconds(10)));
    // A cut connection is an error or, when cpprest saw the socket close first, an end: either
    // way the caller watches again from the last version it saw.
    if (dropped.ok()) {
      EXPECT_FALSE(dropped->has_value());
    } else {
      EXPECT_THAT(dropped.status(), StatusIs(absl::StatusCode::kUnavailable, "watch stream"));
    }
  }
  {
    WatchOptions options;
    options.timeout = absl::Seconds(1);
    auto stream = Watch(options);
    ASSERT_NE(stream, nullptr);
    const testing::Stopwatch stopwatch;
    absl::StatusOr<std::optional<Event>> end = stream->Next(In(absl::Seconds(10)));
    ASSERT_THAT(end.status(), IsOk());
    EXPECT_FALSE(end->has_value());
    EXPECT_LT(stopwatch.Elapsed(), absl::Seconds(5));
  }
}

TEST_F(WatchClientTest, CancelFromAnotherThreadEndsAWaitingNext) {
  auto stream = Watch({});
  ASSERT_NE(stream, nullptr);
  std::thread canceller([&] {
    // Cancels once the consumer is waiting (the server sees no more requests meanwhile).
    absl::SleepFor(absl::Milliseconds(100));
    stream->Cancel();
  });
  testing::Stopwatch stopwatch;
  absl::Status status = stream->Next(absl::InfiniteFuture()).status();
  canceller.join();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled, "cancelled"));
  EXPECT_LT(stopwatch.Elapsed(), absl::Seconds(5));
  EXPECT_TRUE(server().WaitForWatchesGone(absl::Seconds(10)));
  // No read is left hanging on the client: it is destroyed at once, with nothing left running.
  stream.reset();
  stopwatch.Restart();
  client_.reset();
  EXPECT_LT(stopwatch.Elapsed(), absl::Seconds(2));
  EXPECT_THAT(log_.str(), Not(HasSubstr("still running")));
}

TEST_F(WatchClientTest, ShutdownCancelsOpenWatches) {
  auto stream = Watch({});
  ASSERT_NE(stream, nullptr);
  client_->Shutdown();
  EXPECT_THAT(stream->Next(In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kCancelled, ""));
  EXPECT_THAT(client_->WatchMigrationJobs({}, In(absl::Seconds(1))).status(),
              StatusIs(absl::StatusCode::kCancelled, "shut down"));
}

TEST_F(WatchClientTest, ForEachDeliversToACallbackUntilItSaysStop) {
  CreateMigrationJob("apps", "a");
  CreateMigrationJob("apps", "b");
  CreateMigrationJob("apps", "c");
  auto stream = Watch({});
  ASSERT_NE(stream, nullptr);
  std::vector<std::string> names;
  ASSERT_THAT(stream->ForEach([&](const Event& e) {
    names.push_back(e.object.metadata.name);
    return names.size() < 2;
  }),
              IsOk());
  EXPECT_THAT(names, ElementsAre("a", "b"));
}

TEST_F(WatchClientTest, AServerRestartMidWatchMissesNothing) {
  CreateMigrationJob("apps", "a");
  WatchOptions options;
  options.resource_version = server().ResourceVersion();
  auto stream = Watch(options);
  ASSERT_NE(stream, nullptr);
  CreateMigrationJob("apps", "b");
  Event b = NextEvent(*stream);
  ASSERT_EQ(b.object.metadata.name, "b");
  std::string last = b.object.metadata.resource_version;

  ASSERT_THAT(server().StopListening(), IsOk());
  // The stream ends (cleanly or not); changes go on while the server is away.
  absl::StatusOr<std::optional<Event>> end = stream->Next(In(absl::Seconds(10)));
  EXPECT_TRUE(!end.ok() || !end->has_value());
  stream.reset();
  CreateMigrationJob("apps", "c");
  ASSERT_THAT(server().UpdateMigrationJobSpec("apps", "a", R"({"target":"x2"})"), IsOk());
  options.resource_version = last;
  EXPECT_THAT(client_->WatchMigrationJobs(options, In(absl::Seconds(1))).status(),
              StatusIs(absl::StatusCode::kUnavailable, "cannot reach"));
  ASSERT_THAT(server().StartListening(), IsOk());

  stream = Watch(options);
  ASSERT_NE(stream, nullptr);
  Event c = NextEvent(*stream);
  EXPECT_EQ(c.type, WatchEventType::kAdded);
  EXPECT_EQ(c.object.metadata.name, "c");
  Event a = NextEvent(*stream);
  EXPECT_EQ(a.type, WatchEventType::kModified);
  EXPECT_EQ(a.object.spec.target, "x2");
}

TEST_F(WatchClientTest, GetsConfigMapsAndDecodedSecrets) {
  ASSERT_THAT(server()
                  .CreateObject("configmaps", "apps",
                                R"({"metadata":{"name":"app-migrations"},)"
                                R"("data":{"0001.yaml":"revision: a1\n"},)"
                                R"("binaryData":{"blob":"AAEC"}})")
                  .status(),
              IsOk());
  ASSERT_THAT(server()
                  .CreateObject("secrets", "apps",
                                R"({"metadata":{"name":"app-db"},"type":"Opaque",)"
                                R"("data":{"url":"cG9zdGdyZXNxbDovL3U6czNjcjN0QGRiL2FwcA=="},)"
                                R"("stringData":{"user":"app"}})")
                  .status(),
              IsOk());
  absl::StatusOr<ConfigMap> cm =
      client_->GetConfigMap({"apps", "app-migrations"}, In(absl::Seconds(10)));
  ASSERT_THAT(cm.status(), IsOk());
  EXPECT_EQ(cm->data.at("0001.yaml"), "revision: a1\n");
  EXPECT_EQ(cm->binary_data.at("blob"), std::string("\0\1\2", 3));
  absl::StatusOr<Secret> secret = client_->GetSecret({"apps", "app-db"}, In(absl::Seconds(10)));
  ASSERT_THAT(secret.status(), IsOk());
  EXPECT_EQ(secret->type, "Opaque");
  EXPECT_EQ(secret->data.at("url"), "postgresql://u:s3cr3t@db/app");
  EXPECT_EQ(secret->data.at("user"), "app");
  EXPECT_THAT(client_->GetSecret({"apps", "nope"}, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kNotFound, R"(secrets "nope" not found)"));
  EXPECT_THAT(log_.str(), Not(HasSubstr("s3cr3t")));
}

TEST_F(WatchClientTest, RbacForbidsSecretsToATokenWithoutTheVerb) {
  ASSERT_THAT(server()
                  .CreateObject("secrets", "apps",
                                R"({"metadata":{"name":"app-db"},"data":{"url":"eA=="}})")
                  .status(),
              IsOk());
  ASSERT_THAT(server().CreateObject("configmaps", "apps", R"({"metadata":{"name":"m"}})").status(),
              IsOk());
  server().SetRbacRules(token(), "system:serviceaccount:apps:sluice",
                        {RbacRule{{""}, {"configmaps"}, {"get"}, {}},
                         RbacRule{{"sluice.dev"}, {"migrationjobs"}, {"list"}, {}}});
  EXPECT_THAT(client_->GetConfigMap({"apps", "m"}, In(absl::Seconds(10))).status(), IsOk());
  EXPECT_THAT(client_->GetSecret({"apps", "app-db"}, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       R"(secrets "app-db" is forbidden: User "system:serviceaccount:apps:sluice" )"
                       R"(cannot get resource "secrets" in API group "" in the namespace "apps")"));
  EXPECT_THAT(client_->ListMigrationJobs({}, In(absl::Seconds(10))).status(), IsOk());
  EXPECT_THAT(client_->WatchMigrationJobs({}, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       R"(cannot watch resource "migrationjobs" in API group "sluice.dev" at )"
                       "the cluster scope"));
}

TEST_F(WatchClientTest, LeasesAreCreatedAndUpdatedOnlyAtTheirVersion) {
  Lease lease;
  lease.metadata.namespace_ = "sluice-system";
  lease.metadata.name = "sluice-operator";
  lease.spec.holder_identity = "pod-a";
  lease.spec.lease_duration_seconds = 15;
  lease.spec.acquire_time = "2026-12-01T06:00:00.000000Z";
  lease.spec.renew_time = "2026-12-01T06:00:00.000000Z";
  lease.spec.lease_transitions = 0;
  absl::StatusOr<Lease> created = client_->CreateLease(lease, In(absl::Seconds(10)));
  ASSERT_THAT(created.status(), IsOk());
  EXPECT_EQ(created->spec, lease.spec);
  EXPECT_FALSE(created->metadata.resource_version.empty());
  EXPECT_THAT(client_->CreateLease(lease, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kAborted, "already exists"));

  Lease renewed = *created;
  renewed.spec.renew_time = "2026-12-01T06:00:02.000000Z";
  absl::StatusOr<Lease> updated = client_->UpdateLease(renewed, In(absl::Seconds(10)));
  ASSERT_THAT(updated.status(), IsOk());
  EXPECT_EQ(updated->spec.renew_time, renewed.spec.renew_time);
  EXPECT_NE(updated->metadata.resource_version, created->metadata.resource_version);
  // A rival writing from the older version loses.
  Lease rival = *created;
  rival.spec.holder_identity = "pod-b";
  EXPECT_THAT(client_->UpdateLease(rival, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kAborted, "the object has been modified"));
  rival.metadata.resource_version.clear();
  EXPECT_THAT(client_->UpdateLease(rival, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "no resourceVersion"));
  absl::StatusOr<Lease> got =
      client_->GetLease({"sluice-system", "sluice-operator"}, In(absl::Seconds(10)));
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ(got->spec.holder_identity, "pod-a");
  EXPECT_THAT(client_->GetLease({"sluice-system", "nope"}, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kNotFound, ""));
  const auto requests = server().Requests();
  EXPECT_EQ(requests[requests.size() - 4].path,
            "/apis/coordination.k8s.io/v1/namespaces/sluice-system/leases/sluice-operator");
  EXPECT_EQ(requests[requests.size() - 4].method, "PUT");
}

TEST_F(WatchClientTest, InvalidLeaseIsRejected) {
  ExpectRejectedWrites();
  Lease lease;
  lease.metadata.namespace_ = "sluice-system";
  lease.metadata.name = "bad";
  lease.spec.lease_duration_seconds = 0;
  EXPECT_THAT(client_->CreateLease(lease, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "spec.leaseDurationSeconds: Invalid value: must be greater than 0"));
}

// kubectl asks for a Table; the fake builds it from the CRD's additionalPrinterColumns.
TEST_F(WatchClientTest, ListAsTableHasTheCrdsPrinterColumns) {
  CreateMigrationJob("apps", "db");
  ASSERT_THAT(client_
                  ->PatchMigrationJobStatus(
                      {"apps", "db"},
                      [] {
                        MigrationJobStatus s;
                        s.phase = "Succeeded";
                        s.current_revisions = {"fc0e7b400c13"};
                        return s;
                      }(),
                      "", In(absl::Seconds(10)))
                  .status(),
              IsOk());
  web::http::client::http_client_config config;
  const std::string ca_pem = ca().cert_pem();
  config.set_ssl_context_callback([ca_pem](boost::asio::ssl::context& ctx) {
    ctx.add_certificate_authority(boost::asio::buffer(ca_pem));
  });
  web::http::client::http_client http(server().url(), config);
  web::http::http_request request(web::http::methods::GET);
  request.set_request_uri("/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs");
  request.headers().add("Authorization", absl::StrCat("Bearer ", token()));
  request.headers().add("Accept",
                        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;"
                        "v=v1beta1;g=meta.k8s.io,application/json");
  web::http::http_response response = http.request(request).get();
  ASSERT_EQ(response.status_code(), 200);
  const web::json::value table = response.extract_json(true).get();
  EXPECT_EQ(table.at("kind").as_string(), "Table");
  std::vector<std::string> columns;
  for (const auto& c : table.at("columnDefinitions").as_array()) {
    columns.push_back(c.at("name").as_string());
  }
  EXPECT_THAT(columns, ElementsAre("Name", "Phase", "Current", "Target", "Age"));
  const auto& cells = table.at("rows").as_array().at(0).at("cells").as_array();
  EXPECT_EQ(cells.at(0).as_string(), "db");
  EXPECT_EQ(cells.at(1).as_string(), "Succeeded");
  EXPECT_EQ(cells.at(2).as_string(), R"(["fc0e7b400c13"])");
  EXPECT_EQ(cells.at(3).as_string(), "head");
  EXPECT_THAT(cells.at(4).as_string(), ::testing::MatchesRegex("[0-9]+s"));  // the age
}

}  // namespace
}  // namespace sluice::kube
