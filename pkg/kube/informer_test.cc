// The MigrationJob informer against the fake API server: it syncs, follows changes, resumes a
// dropped stream from its last version without listing again, lists again on 410 Gone (telling
// the handlers what changed meanwhile), survives a server restart, and stops promptly.
#include "pkg/kube/informer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

using ::sluice::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kWait = absl::Seconds(10);

// What the handlers were told, as "add apps/a", "update apps/a", "delete apps/a".
class Recorder {
 public:
  InformerHandlers Handlers() {
    InformerHandlers h;
    h.on_add = [this](const MigrationJob& j) { Add("add", j); };
    h.on_update = [this](const MigrationJob&, const MigrationJob& j) { Add("update", j); };
    h.on_delete = [this](const MigrationJob& j) { Add("delete", j); };
    return h;
  }

  // Waits until `count` calls were recorded; returns them all.
  std::vector<std::string> WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_.size() >= count; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
    return calls_;
  }

  std::vector<std::string> Take() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    out.swap(calls_);
    return out;
  }

 private:
  void Add(const char* what, const MigrationJob& j) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(absl::StrCat(what, " ", j.metadata.namespace_, "/", j.metadata.name));
  }

  absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

class InformerTest : public fake_kube::FakeKubeFixture {
 protected:
  void SetUp() override {
    FakeKubeFixture::SetUp();
    if (HasFatalFailure()) return;
    log::SetSinkForTest(&log_);
    // These tests restart the server: no idle connection should hold StopListening up.
    server().SetCloseConnections(true);
    client_ = NewTestClient(WriteKubeconfig(), FastClientOptions(absl::Seconds(5)));
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    informer_.reset();
    client_.reset();
    log::SetSinkForTest(nullptr);
    FakeKubeFixture::TearDown();
  }

  void StartInformer(InformerOptions options = {}) {
    options.initial_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(100);
    options.request_timeout = absl::Seconds(5);
    informer_ = std::make_unique<MigrationJobInformer>(*client_, options, recorder_.Handlers());
    informer_->Start();
    ASSERT_TRUE(informer_->WaitForSync(absl::Now() + kWait));
    ASSERT_TRUE(WatchOpen());
  }

  // Waits until the informer's watch is open on the server.
  bool WatchOpen() {
    return server().WaitUntil([&] { return server().OpenWatches() == 1; }, kWait);
  }

  // The queries of the watch requests the server answered with 200, in order.
  std::vector<std::string> WatchRequests() {
    std::vector<std::string> out;
    for (const auto& r : server().Requests()) {
      if (absl::StrContains(r.query, "watch=1") && r.response_code == 200) out.push_back(r.query);
    }
    return out;
  }

  std::vector<std::string> Cached() {
    std::vector<std::string> out;
    for (const MigrationJob& j : informer_->List()) {
      out.push_back(absl::StrCat(j.metadata.namespace_, "/", j.metadata.name, "@", j.spec.target));
    }
    return out;
  }

  std::unique_ptr<Client> client_;
  std::unique_ptr<MigrationJobInformer> informer_;
  Recorder recorder_;
  std::ostringstream log_;
};

TEST_F(InformerTest, SyncsInPagesThenFollowsChanges) {
  for (const char* name : {"a", "b", "c"}) CreateMigrationJob("apps", name);
  InformerOptions options;
  options.page_size = 2;
  StartInformer(options);
  EXPECT_THAT(recorder_.WaitFor(3), ElementsAre("add apps/a", "add apps/b", "add apps/c"));
  recorder_.Take();
  CreateMigrationJob("other", "d");
  ASSERT_THAT(server().UpdateMigrationJobSpec("apps", "a", R"({"target":"x1"})"), IsOk());
  ASSERT_THAT(server().DeleteObject("migrationjobs", "apps", "b"), IsOk());
  EXPECT_THAT(recorder_.WaitFor(3), ElementsAre("add other/d", "update apps/a", "delete apps/b"));
  EXPECT_THAT(Cached(), ElementsAre("apps/a@x1", "apps/c@head", "other/d@head"));
  EXPECT_EQ(informer_->ResourceVersion(), server().ResourceVersion());
  EXPECT_EQ(informer_->Stats().lists, 1);
}

TEST_F(InformerTest, OneNamespaceOnly) {
  CreateMigrationJob("apps", "a");
  CreateMigrationJob("other", "b");
  InformerOptions options;
  options.namespace_ = "apps";
  StartInformer(options);
  CreateMigrationJob("other", "c");
  CreateMigrationJob("apps", "d");
  EXPECT_THAT(recorder_.WaitFor(2), ElementsAre("add apps/a", "add apps/d"));
  EXPECT_EQ(informer_->Get({"apps", "d"})->metadata.name, "d");
  EXPECT_FALSE(informer_->Get({"other", "b"}).has_value());
}

TEST_F(InformerTest, ADroppedStreamResumesFromTheLastVersionWithoutListing) {
  CreateMigrationJob("apps", "a");
  StartInformer();
  recorder_.WaitFor(1);
  recorder_.Take();
  for (bool abruptly : {true, false}) {
    const size_t watches = WatchRequests().size();
    server().CloseWatches(abruptly);
    ASSERT_TRUE(server().WaitUntil(
        [&] { return WatchRequests().size() > watches && server().OpenWatches() == 1; }, kWait))
        << log_.str();
  }
  CreateMigrationJob("apps", "b");
  EXPECT_THAT(recorder_.WaitFor(1), ElementsAre("add apps/b"));
  EXPECT_EQ(informer_->Stats().lists, 1);
  // Every watch after the first resumed from a version: none started over with synthetic ADDs.
  const std::vector<std::string> watches = WatchRequests();
  ASSERT_EQ(watches.size(), 3u);
  for (const std::string& query : watches) EXPECT_THAT(query, HasSubstr("resourceVersion="));
}

TEST_F(InformerTest, BookmarksAdvanceTheVersionItResumesFrom) {
  InformerOptions options;
  options.namespace_ = "apps";
  StartInformer(options);
  CreateMigrationJob("other", "x");  // not watched: only a bookmark tells the informer
  const std::string version = server().ResourceVersion();
  server().SendBookmarks();
  // The stream ends after the bookmark; the next watch starts from the bookmark's version.
  server().CloseWatches(/*abruptly=*/false);
  ASSERT_TRUE(server().WaitUntil([&] { return WatchRequests().size() == 2; }, kWait));
  EXPECT_THAT(WatchRequests().back(), HasSubstr(absl::StrCat("resourceVersion=", version, "&")));
  EXPECT_THAT(recorder_.Take(), IsEmpty());
}

TEST_F(InformerTest, GoneListsAgainAndTellsWhatChangedMeanwhile) {
  server().SetHistoryLimit(2);
  for (const char* name : {"a", "b", "c"}) CreateMigrationJob("apps", name);
  StartInformer();
  recorder_.WaitFor(3);
  recorder_.Take();
  // While the server is away, more writes happen than its history keeps.
  ASSERT_THAT(server().StopListening(), IsOk());
  ASSERT_THAT(server().DeleteObject("migrationjobs", "apps", "a"), IsOk());
  ASSERT_THAT(server().UpdateMigrationJobSpec("apps", "b", R"({"target":"x2"})"), IsOk());
  CreateMigrationJob("apps", "d");
  CreateMigrationJob("apps", "e");
  ASSERT_THAT(server().StartListening(), IsOk());
  std::vector<std::string> calls = recorder_.WaitFor(4);
  std::sort(calls.begin(), calls.end());
  EXPECT_THAT(calls, ElementsAre("add apps/d", "add apps/e", "delete apps/a", "update apps/b"));
  EXPECT_THAT(Cached(), ElementsAre("apps/b@x2", "apps/c@head", "apps/d@head", "apps/e@head"));
  EXPECT_EQ(informer_->Stats().lists, 2);
  EXPECT_GE(informer_->Stats().expired, 1);
}

TEST_F(InformerTest, ARestartedServerMissesNothing) {
  CreateMigrationJob("apps", "a");
  StartInformer();
  recorder_.WaitFor(1);
  recorder_.Take();
  ASSERT_THAT(server().StopListening(), IsOk());
  CreateMigrationJob("apps", "b");
  ASSERT_THAT(server().UpdateMigrationJobSpec("apps", "a", R"({"target":"x3"})"), IsOk());
  ASSERT_THAT(server().StartListening(), IsOk());
  EXPECT_THAT(recorder_.WaitFor(2), ElementsAre("add apps/b", "update apps/a"));
  CreateMigrationJob("apps", "c");
  EXPECT_THAT(recorder_.WaitFor(3), ElementsAre("add apps/b", "update apps/a", "add apps/c"));
  EXPECT_EQ(informer_->Stats().lists, 1);
}

TEST_F(InformerTest, StopsPromptlyWhileWatchingOrBackingOff) {
  StartInformer();
  testing::Stopwatch stopwatch;
  informer_->Stop();
  EXPECT_LT(stopwatch.Elapsed(), absl::Seconds(2));
  EXPECT_TRUE(server().WaitForWatchesGone(kWait));

  // Backing off from a server that refuses connections.
  ASSERT_THAT(server().StopListening(), IsOk());
  InformerOptions options;
  options.initial_backoff = absl::Seconds(30);
  options.max_backoff = absl::Seconds(30);
  options.request_timeout = absl::Seconds(1);
  MigrationJobInformer waiting(*client_, options, {});
  waiting.Start();
  EXPECT_FALSE(waiting.WaitForSync(absl::Now() + absl::Milliseconds(300)));
  stopwatch.Restart();
  waiting.Stop();
  EXPECT_LT(stopwatch.Elapsed(), absl::Seconds(2));
  EXPECT_THAT(waiting.List(), IsEmpty());
  ASSERT_THAT(server().StartListening(), IsOk());
}

// The operator's view of ConfigMaps and Secrets: metadata only, following changes in one
// namespace, and a Secret's values kept nowhere.
TEST_F(InformerTest, ObjectMetaInformerFollowsConfigMapsAndSecretsByMetadata) {
  ASSERT_THAT(
      server()
          .CreateObject("configmaps", "apps", R"({"metadata":{"name":"m1"},"data":{"a.yaml":"x"}})")
          .status(),
      IsOk());
  ASSERT_THAT(server()
                  .CreateObject("secrets", "apps",
                                R"({"metadata":{"name":"db"},"stringData":{"url":"s3cret"}})")
                  .status(),
              IsOk());
  ASSERT_THAT(server()
                  .CreateObject("configmaps", "other",
                                R"({"metadata":{"name":"m9"},"data":{"a.yaml":"x"}})")
                  .status(),
              IsOk());
  std::vector<std::string> seen;
  absl::Mutex mu;
  InformerHandlersOf<ObjectMeta> handlers;
  auto record = [&](const char* what, const ObjectMeta& m) {
    absl::MutexLock lock(&mu);
    seen.push_back(absl::StrCat(what, " ", m.namespace_, "/", m.name));
  };
  handlers.on_add = [&](const ObjectMeta& m) { record("add", m); };
  handlers.on_update = [&](const ObjectMeta&, const ObjectMeta& m) { record("update", m); };
  handlers.on_delete = [&](const ObjectMeta& m) { record("delete", m); };
  InformerOptions options;
  options.namespace_ = "apps";
  options.request_timeout = absl::Seconds(5);
  ObjectMetaInformer config_maps(*client_, CoreResource::kConfigMaps, options, handlers);
  ObjectMetaInformer secrets(*client_, CoreResource::kSecrets, options, {});
  config_maps.Start();
  secrets.Start();
  ASSERT_TRUE(config_maps.WaitForSync(absl::Now() + kWait));
  ASSERT_TRUE(secrets.WaitForSync(absl::Now() + kWait));
  ASSERT_TRUE(server().WaitUntil([&] { return server().OpenWatches() == 2; }, kWait));

  ASSERT_THAT(server().ReplaceObject("configmaps", "apps",
                                     R"({"metadata":{"name":"m1"},"data":{"a.yaml":"y"}})"),
              IsOk());
  ASSERT_THAT(server().DeleteObject("configmaps", "apps", "m1"), IsOk());
  {
    absl::MutexLock lock(&mu);
    auto three = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return seen.size() >= 3; };
    mu.AwaitWithTimeout(absl::Condition(&three), kWait);
    EXPECT_THAT(seen, ElementsAre("add apps/m1", "update apps/m1", "delete apps/m1"));
  }
  EXPECT_FALSE(config_maps.Get({"apps", "m1"}).has_value());
  EXPECT_FALSE(config_maps.Get({"other", "m9"}).has_value());
  const std::optional<ObjectMeta> secret = secrets.Get({"apps", "db"});
  ASSERT_TRUE(secret.has_value());
  EXPECT_FALSE(secret->resource_version.empty());
  // The Secret's value went through the client's parser, not into anything it keeps or logs.
  EXPECT_THAT(log_.str(), ::testing::Not(HasSubstr("s3cret")));
}

}  // namespace
}  // namespace sluice::kube
