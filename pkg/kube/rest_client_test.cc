// The REST client against the fake API server over real HTTPS on 127.0.0.1.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

namespace sluice::kube {
namespace {

using ::sluice::fake_kube::Fault;
using ::sluice::fake_kube::KubeconfigOptions;
using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

const ObjectRef kRef{"apps", "db"};

class RestClientTest : public fake_kube::FakeKubeFixture {
 protected:
  void SetUp() override {
    FakeKubeFixture::SetUp();
    if (HasFatalFailure()) return;
    uid_ = CreateMigrationJob("apps", "db");
    log::SetSinkForTest(&log_);
    log::SetVerbose(true);
  }
  void TearDown() override {
    log::SetVerbose(false);
    log::SetSinkForTest(nullptr);
    // The token never reaches the log.
    EXPECT_THAT(log_.str(), Not(HasSubstr(token())));
    FakeKubeFixture::TearDown();
  }

  std::unique_ptr<Client> NewClient(const KubeconfigOptions& options = {},
                                    ClientOptions client_options = FastOptions()) {
    return NewTestClient(WriteKubeconfig(options), client_options);
  }

  static ClientOptions FastOptions() { return FastClientOptions(absl::Seconds(2)); }

  static absl::Time In(absl::Duration d) { return absl::Now() + d; }

  // A MigrationApplied Event for the MigrationJob apps/db, without a name.
  Event AppliedEvent() const {
    Event e;
    e.namespace_ = "apps";
    e.object_name = "db";
    e.object_uid = uid_;
    e.type = "Normal";
    e.reason = "MigrationApplied";
    e.message = "applied a1";
    e.action = "Migrate";
    e.reporting_component = "sluice";
    e.reporting_instance = "pod-1";
    e.timestamp = "2024-05-01T12:00:00Z";
    return e;
  }

  MigrationJobStatus RunningStatus() {
    MigrationJobStatus s;
    s.phase = "Running";
    s.observed_generation = 1;
    s.started_at = "2024-05-01T12:00:00.000Z";
    s.conditions = {{"Reconciling", "True", 1, "2024-05-01T12:00:00Z", "Migrating", "applying"}};
    return s;
  }

  std::string uid_;
  std::ostringstream log_;
};

TEST_F(RestClientTest, GetsAMigrationJob) {
  auto client = NewClient();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<MigrationJob> job = client->GetMigrationJob(kRef, In(absl::Seconds(10)));
  ASSERT_THAT(job.status(), IsOk());
  EXPECT_EQ(job->metadata.uid, uid_);
  EXPECT_EQ(job->metadata.generation, 1);
  EXPECT_EQ(job->spec.target, "head");
  EXPECT_FALSE(job->status.has_value());
  const auto requests = server().Requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().authorization, absl::StrCat("Bearer ", token()));
}

TEST_F(RestClientTest, CaFromAFileWorksToo) {
  KubeconfigOptions options;
  options.ca_as_file = true;
  auto client = NewClient(options);
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());
}

TEST_F(RestClientTest, MissingObjectIsNotFound) {
  auto client = NewClient();
  EXPECT_THAT(client->GetMigrationJob({"apps", "nope"}, In(absl::Seconds(10))).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       "getting migrationjobs.sluice.dev \"apps/nope\": migrationjobs.sluice.dev "
                       "\"nope\" not found (HTTP 404, reason NotFound)"));
}

TEST_F(RestClientTest, PatchesStatusAsAMergePatch) {
  auto client = NewClient();
  absl::StatusOr<MigrationJob> job =
      client->PatchMigrationJobStatus(kRef, RunningStatus(), "", In(absl::Seconds(10)));
  ASSERT_THAT(job.status(), IsOk());
  ASSERT_TRUE(job->status.has_value());
  EXPECT_EQ(*job->status, RunningStatus());
  const auto requests = server().Requests();
  EXPECT_EQ(requests.back().method, "PATCH");
  EXPECT_EQ(requests.back().path,
            "/apis/sluice.dev/v1alpha1/namespaces/apps/migrationjobs/db/status");
  EXPECT_EQ(requests.back().content_type, "application/merge-patch+json");
}

TEST_F(RestClientTest, StaleResourceVersionIsAborted) {
  auto client = NewClient();
  absl::StatusOr<MigrationJob> job = client->GetMigrationJob(kRef, In(absl::Seconds(10)));
  ASSERT_THAT(job.status(), IsOk());
  ASSERT_THAT(client
                  ->PatchMigrationJobStatus(kRef, RunningStatus(), job->metadata.resource_version,
                                            In(absl::Seconds(10)))
                  .status(),
              IsOk());
  MigrationJobStatus later = RunningStatus();
  later.phase = "Succeeded";
  EXPECT_THAT(client
                  ->PatchMigrationJobStatus(kRef, later, job->metadata.resource_version,
                                            In(absl::Seconds(10)))
                  .status(),
              StatusIs(absl::StatusCode::kAborted, "the object has been modified"));
}

TEST_F(RestClientTest, RetriesServerErrorsWithBackoff) {
  auto client = NewClient();
  server().InjectFault(Fault{"GET", "/migrationjobs/db", 3, 500, -1, absl::ZeroDuration()});
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());
  int failures = 0;
  for (const auto& r : server().Requests()) failures += r.injected ? 1 : 0;
  EXPECT_EQ(failures, 3);
}

TEST_F(RestClientTest, HonoursRetryAfter) {
  auto client = NewClient();
  server().InjectFault(Fault{"GET", "/migrationjobs/db", 1, 429, 1, absl::ZeroDuration()});
  const absl::Time start = absl::Now();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(950));
}

TEST_F(RestClientTest, RetryAfterBeyondTheDeadlineGivesUpAtOnce) {
  auto client = NewClient();
  server().InjectFault(Fault{"GET", "/migrationjobs/db", 1, 503, 30, absl::ZeroDuration()});
  const absl::Time start = absl::Now();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(3))).status(),
              StatusIs(absl::StatusCode::kUnavailable, "HTTP 503"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(RestClientTest, PersistentServerErrorsEndAtTheDeadline) {
  auto client = NewClient();
  server().InjectFault(Fault{"", "", 1000, 500, -1, absl::ZeroDuration()});
  const absl::Time start = absl::Now();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(1))).status(),
              StatusIs(absl::StatusCode::kUnavailable, "injected fault: HTTP 500"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
}

TEST_F(RestClientTest, HangingServerTimesOutAtTheDeadline) {
  auto client = NewClient();
  server().InjectFault(Fault{"GET", "", 100, 0, -1, absl::Seconds(30)});
  const absl::Time start = absl::Now();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Milliseconds(1500))).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded, "no answer from the API server"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(2500));
}

TEST_F(RestClientTest, RefusedConnectionsAreUnavailable) {
  auto client = NewClient();
  ASSERT_THAT(server().StopListening(), IsOk());
  const absl::Time start = absl::Now();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(1))).status(),
              StatusIs(absl::StatusCode::kUnavailable, "cannot reach the API server"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
  // And recovers once the server is back.
  ASSERT_THAT(server().StartListening(), IsOk());
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(5))).status(), IsOk());
}

TEST_F(RestClientTest, WrongCaIsRefusedWithoutRetrying) {
  absl::StatusOr<fake_kube::TestCa> other = fake_kube::TestCa::Create("someone-else");
  ASSERT_THAT(other.status(), IsOk());
  KubeconfigOptions options;
  options.ca_pem = other->cert_pem();
  auto client = NewClient(options);
  const absl::Time start = absl::Now();
  absl::Status status = client->GetMigrationJob(kRef, In(absl::Seconds(10))).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition, "TLS handshake"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("certificate authority"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(server().Requests().empty());
}

TEST_F(RestClientTest, SystemTrustStoreIsNotEnoughWhenACaIsGiven) {
  // The fake's CA is in no system store, so this only shows that the configured CA is used; the
  // converse (a public CA not trusted) is guaranteed by replacing the store in the TLS context.
  auto client = NewClient();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());
}

TEST_F(RestClientTest, InsecureSkipTlsVerifyOnlyWhenConfigured) {
  KubeconfigOptions options;
  options.insecure_skip_tls_verify = true;
  auto client = NewClient(options);
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());
}

TEST_F(RestClientTest, RotatedTokenIsPickedUpAfterA401) {
  auto client = NewClient();
  ASSERT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());
  RotateToken("token-rotated-9876543210");
  ASSERT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());
  const auto requests = server().Requests();
  // The first GET, the one refused with the old token, its retry with the new one.
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1].response_code, 401);
  EXPECT_EQ(requests.back().authorization, "Bearer token-rotated-9876543210");
}

TEST_F(RestClientTest, ExpiredTokenIsAClearErrorWithoutTheToken) {
  auto client = NewClient();
  server().RevokeToken(token());
  absl::Status status = client->GetMigrationJob(kRef, In(absl::Seconds(10))).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnauthenticated,
                               "the bearer token is missing, expired or invalid"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr(token())));
  // One retry after re-reading the token file, then the error.
  EXPECT_EQ(server().Requests().size(), 2u);
}

TEST_F(RestClientTest, ClientCertificatesArePresented) {
  absl::StatusOr<fake_kube::PemPair> server_cert = ca().Issue({});
  fake_kube::LeafOptions client_options;
  client_options.common_name = "sluice";
  client_options.client = true;
  client_options.ip_addresses = {};
  absl::StatusOr<fake_kube::PemPair> client_cert = ca().Issue(client_options);
  ASSERT_THAT(server_cert.status(), IsOk());
  ASSERT_THAT(client_cert.status(), IsOk());
  fake_kube::ServerOptions options;
  options.crd_path = fake_kube::CrdPath();
  options.cert_pem = server_cert->cert_pem;
  options.key_pem = server_cert->key_pem;
  options.client_ca_pem = ca().cert_pem();
  options.require_client_cert = true;
  absl::StatusOr<std::unique_ptr<fake_kube::FakeKubeServer>> mtls =
      fake_kube::FakeKubeServer::Start(options);
  ASSERT_THAT(mtls.status(), IsOk());
  (*mtls)->AddToken(token());
  ASSERT_TRUE((*mtls)
                  ->CreateObject("migrationjobs", "apps",
                                 R"({"metadata":{"name":"db"},"spec":{"target":"head"}})")
                  .ok());

  KubeconfigOptions with_cert;
  with_cert.server = (*mtls)->url();
  with_cert.client_cert_pem = client_cert->cert_pem;
  with_cert.client_key_pem = client_cert->key_pem;
  auto client = NewClient(with_cert);
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(10))).status(), IsOk());

  KubeconfigOptions without_cert;
  without_cert.server = (*mtls)->url();
  auto refused = NewClient(without_cert);
  // TLS 1.3 asks for the client certificate after the handshake: the server drops the connection
  // before reading the request, which the client sees as an unreachable server.
  EXPECT_THAT(refused->GetMigrationJob(kRef, In(absl::Seconds(2))).status(),
              StatusIs(absl::StatusCode::kUnavailable, "cannot reach the API server"));
  EXPECT_EQ((*mtls)->Requests().size(), 1u);  // only the request with the certificate was served
}

TEST_F(RestClientTest, ForbiddenIsPermissionDeniedWithAnRbacHint) {
  auto client = NewClient();
  server().SetRbacRules(token(), "system:serviceaccount:apps:default", {});
  absl::Status status = client->GetMigrationJob(kRef, In(absl::Seconds(10))).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied,
                               "User \"system:serviceaccount:apps:default\" cannot get resource "
                               "\"migrationjobs\""));
  EXPECT_THAT(std::string(status.message()), HasSubstr("check the RBAC Role"));
  EXPECT_EQ(server().Requests().size(), 1u);  // not retried
}

TEST_F(RestClientTest, BadPemIsRejectedUpFront) {
  ClusterConfig config;
  config.server = server().url();
  config.ca_pem = "not a certificate";
  EXPECT_THAT(NewRestClient(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "not valid PEM"));
  config.ca_pem = ca().cert_pem();
  config.server = "ftp://x";
  EXPECT_THAT(NewRestClient(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "not an http(s) URL"));
}

TEST_F(RestClientTest, CreatesEventsWithUniqueNames) {
  auto client = NewClient();
  const Event e = AppliedEvent();
  ASSERT_THAT(client->CreateEvent(e, In(absl::Seconds(10))), IsOk());
  ASSERT_THAT(client->CreateEvent(e, In(absl::Seconds(10))), IsOk());
  const auto events = server().Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_NE(events[0].name, events[1].name);
  EXPECT_THAT(events[0].name, ::testing::StartsWith("db."));
  EXPECT_EQ(events[0].involved_uid, uid_);
  EXPECT_EQ(events[0].reporting_instance, "pod-1");
}

// An event stored by an attempt whose answer was lost is not created again under a new name: the
// retry, with the same name, gets 409 AlreadyExists, which means it is there.
TEST_F(RestClientTest, AnEventWhoseAnswerWasLostIsCreatedOnce) {
  ClientOptions options = FastOptions();
  options.request_timeout = absl::Milliseconds(300);
  options.initial_backoff = absl::Milliseconds(400);  // the retry comes at 500 ms or later
  options.max_backoff = absl::Milliseconds(400);
  auto client = NewClient({}, options);
  // The first POST is held past the attempt's timeout, then stored before the retry comes.
  server().InjectFault(Fault{"POST", "/events", 1, 0, -1, absl::Milliseconds(350)});
  const Event e = AppliedEvent();
  ASSERT_THAT(client->CreateEvent(e, In(absl::Seconds(10))), IsOk());
  // Both POSTs reached the server, with one name, and one event exists.
  ASSERT_TRUE(server().WaitUntil(
      [&] {
        int posts = 0;
        for (const auto& r : server().Requests()) posts += r.method == "POST" ? 1 : 0;
        return posts >= 2 && server().Events().size() == 1;
      },
      absl::Seconds(5)));
  const auto events = server().Events();
  ASSERT_EQ(events.size(), 1u);
  for (const auto& r : server().Requests()) {
    if (r.method == "POST") {
      EXPECT_THAT(r.body, HasSubstr(absl::StrCat("\"", events[0].name, "\"")));
    }
  }
}

TEST_F(RestClientTest, ShutdownAbortsARequestInFlight) {
  auto client = NewClient({}, [] {
    ClientOptions o = FastOptions();
    o.request_timeout = absl::Seconds(20);
    return o;
  }());
  server().InjectFault(Fault{"GET", "", 1, 0, -1, absl::Seconds(30)});
  std::thread stopper([&] {
    // Once the request is in flight: the server holds it (the fault hangs it).
    EXPECT_TRUE(
        server().WaitUntil([&] { return server().RequestsReceived() == 1; }, absl::Seconds(10)));
    client->Shutdown();
  });
  const absl::Time start = absl::Now();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(20))).status(),
              StatusIs(absl::StatusCode::kCancelled, "shut down"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  stopper.join();
  EXPECT_THAT(client->GetMigrationJob(kRef, In(absl::Seconds(5))).status(),
              StatusIs(absl::StatusCode::kCancelled, "shut down"));
}

}  // namespace
}  // namespace sluice::kube
