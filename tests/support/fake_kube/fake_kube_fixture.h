// A gtest fixture around FakeKubeServer: a fresh CA, server certificate, token and kubeconfig per
// test, in a temporary directory. TearDown fails the test when the server pruned a field that the
// client wrote (the real server would have dropped it silently) or rejected a write for its
// content (400/415/422), unless the test said it expects rejections.
#ifndef SLUICE_TESTS_SUPPORT_FAKE_KUBE_FAKE_KUBE_FIXTURE_H_
#define SLUICE_TESTS_SUPPORT_FAKE_KUBE_FAKE_KUBE_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/fake_kube/fake_kube_server.h"
#include "tests/support/fake_kube/test_pki.h"

namespace sluice::fake_kube {

// Returns the path of manifests/crd.yaml in the source tree.
std::string CrdPath();

// Returns the MigrationJob `ns/name` with a typical spec, as JSON to create.
std::string MigrationJobJson(const std::string& ns, const std::string& name);

// Adds a test failure for each field a client wrote that the CRD's schema prunes (the real server
// would drop it silently) and, unless `rejections_expected`, for each write the server rejected.
void ExpectFaithfulWrites(const FakeKubeServer& server, bool rejections_expected);

// The reasons of `events` in order, a run of the same reason told once: the reporter posts the
// steps it has queued as one MigrationApplied Event, so how many there are depends on timing.
std::vector<std::string> ReasonsCollapsed(const std::vector<RecordedEvent>& events);

// The revisions the MigrationApplied Events of `events` name, in order ("applied revision A
// (...) in N ms" and "applied 2 revisions (A to B): A (...) in N ms, B (...) in M ms").
std::vector<std::string> RevisionsInAppliedEvents(const std::vector<RecordedEvent>& events);

struct KubeconfigOptions {
  std::string server;       // default: the fake server's URL
  std::string ca_pem;       // default: the test CA (written as certificate-authority-data)
  bool ca_as_file = false;  // certificate-authority: FILE instead of -data
  std::string token;        // default: the fixture's token file (tokenFile)
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string namespace_ = "apps";
};

class FakeKubeFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  FakeKubeServer& server() { return *server_; }
  const TestCa& ca() { return *ca_; }
  const std::string& dir() const { return dir_; }

  // The token the server accepts, and the file that holds it.
  const std::string& token() const { return token_; }
  const std::string& token_file() const { return token_file_; }
  // Replaces the token: the server accepts only the new one, and the token file holds it.
  void RotateToken(const std::string& new_token);

  // Writes a kubeconfig for the fake server and returns its path.
  std::string WriteKubeconfig(const KubeconfigOptions& options = {});
  // Writes `text` to `name` in the test's directory; returns the path.
  std::string WriteFile(const std::string& name, const std::string& text);

  // Creates the MigrationJob `ns/name` with a typical spec; returns its uid.
  std::string CreateMigrationJob(const std::string& ns, const std::string& name);

  // Set before SetUp(): false starts the server without the MigrationJob CRD installed.
  bool install_crd_ = true;

  // Allows writes rejected for their content in this test (tests of the server's validation).
  void ExpectRejectedWrites() { expect_rejections_ = true; }

 private:
  std::optional<TestCa> ca_;
  std::unique_ptr<FakeKubeServer> server_;
  std::string dir_;
  std::string token_;
  std::string token_file_;
  bool expect_rejections_ = false;
};

}  // namespace sluice::fake_kube

#endif  // SLUICE_TESTS_SUPPORT_FAKE_KUBE_FAKE_KUBE_FIXTURE_H_
