#include "tests/support/fake_kube/fake_kube_fixture.h"

#include <gmock/gmock.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sluice::fake_kube {

std::string CrdPath() { return absl::StrCat(SLUICE_SOURCE_DIR, "/manifests/crd.yaml"); }

void FakeKubeFixture::SetUp() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/sluice-kube-XXXXXX");
  ASSERT_NE(mkdtemp(templ.data()), nullptr);
  dir_ = templ;

  absl::StatusOr<TestCa> ca = TestCa::Create("sluice-test-ca");
  ASSERT_TRUE(ca.ok()) << ca.status();
  ca_.emplace(std::move(*ca));
  absl::StatusOr<PemPair> leaf = ca_->Issue({});
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  ServerOptions options;
  options.crd_path = CrdPath();
  options.cert_pem = leaf->cert_pem;
  options.key_pem = leaf->key_pem;
  options.crd_installed = install_crd_;
  absl::StatusOr<std::unique_ptr<FakeKubeServer>> server = FakeKubeServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);

  token_ = "token-initial-0123456789";
  server_->AddToken(token_);
  token_file_ = WriteFile("token", token_);
}

std::string MigrationJobJson(const std::string& ns, const std::string& name) {
  return absl::StrCat(
      R"({"apiVersion":"sluice.dev/v1alpha1","kind":"MigrationJob","metadata":{"name":")", name,
      R"(","namespace":")", ns,
      R"("},"spec":{"target":"head","database":{"urlSecretRef":{"name":"app-db","key":"url"},)"
      R"("schema":"public","versionTable":"alembic_version"},)"
      R"("migrations":{"configMaps":[{"name":"app-migrations"}]},"suspend":false}})");
}

void ExpectFaithfulWrites(const FakeKubeServer& server, bool rejections_expected) {
  EXPECT_THAT(server.PrunedFields(), ::testing::IsEmpty())
      << "the client wrote fields that manifests/crd.yaml does not declare; the real API server "
         "would drop them silently";
  if (rejections_expected) return;
  for (const LoggedRequest& r : server.RejectedWrites()) {
    ADD_FAILURE() << "the server rejected " << r.method << " " << r.path << " with HTTP "
                  << r.response_code << "; body: " << r.body;
  }
}

std::vector<std::string> ReasonsCollapsed(const std::vector<RecordedEvent>& events) {
  std::vector<std::string> reasons;
  for (const RecordedEvent& e : events) {
    if (reasons.empty() || reasons.back() != e.reason) reasons.push_back(e.reason);
  }
  return reasons;
}

std::vector<std::string> RevisionsInAppliedEvents(const std::vector<RecordedEvent>& events) {
  std::vector<std::string> revisions;
  for (const RecordedEvent& e : events) {
    if (e.reason != "MigrationApplied") continue;
    absl::string_view message = e.message;
    const size_t list = message.find("): ");
    if (absl::StartsWith(message, "applied revision ")) {
      message.remove_prefix(std::string("applied revision ").size());
    } else if (list != absl::string_view::npos) {
      message.remove_prefix(list + 3);
    }
    // "A (description) in N ms, B ..."; the test manifests' descriptions hold no comma.
    for (absl::string_view step : absl::StrSplit(message, ", ")) {
      step = absl::StripAsciiWhitespace(step);
      revisions.emplace_back(step.substr(0, step.find(' ')));
    }
  }
  return revisions;
}

void FakeKubeFixture::TearDown() {
  if (server_ == nullptr) return;
  ExpectFaithfulWrites(*server_, expect_rejections_);
  server_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void FakeKubeFixture::RotateToken(const std::string& new_token) {
  server_->AddToken(new_token);
  server_->RevokeToken(token_);
  token_ = new_token;
  // Atomically, as the kubelet swaps its symlink.
  const std::string staged = WriteFile("token.new", new_token);
  std::filesystem::rename(staged, token_file_);
}

std::string FakeKubeFixture::WriteFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(dir_, "/", name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return path;
}

std::string FakeKubeFixture::WriteKubeconfig(const KubeconfigOptions& options) {
  const std::string server = options.server.empty() ? server_->url() : options.server;
  const std::string ca_pem = options.ca_pem.empty() ? ca_->cert_pem() : options.ca_pem;
  std::string cluster = absl::StrCat("    server: ", server, "\n");
  if (options.insecure_skip_tls_verify) {
    absl::StrAppend(&cluster, "    insecure-skip-tls-verify: true\n");
  } else if (options.ca_as_file) {
    absl::StrAppend(&cluster, "    certificate-authority: ", WriteFile("kubeconfig-ca.crt", ca_pem),
                    "\n");
  } else {
    absl::StrAppend(&cluster, "    certificate-authority-data: ", absl::Base64Escape(ca_pem), "\n");
  }
  std::string user = options.token.empty() ? absl::StrCat("    tokenFile: ", token_file_, "\n")
                                           : absl::StrCat("    token: ", options.token, "\n");
  if (!options.client_cert_pem.empty()) {
    absl::StrAppend(&user,
                    "    client-certificate-data: ", absl::Base64Escape(options.client_cert_pem),
                    "\n    client-key-data: ", absl::Base64Escape(options.client_key_pem), "\n");
  }
  const std::string text = absl::StrCat(
      "apiVersion: v1\nkind: Config\ncurrent-context: fake\n",
      "clusters:\n- name: fake-cluster\n  cluster:\n", cluster,
      "contexts:\n- name: other\n  context: {cluster: nowhere, user: nobody}\n",
      "- name: fake\n  context:\n    cluster: fake-cluster\n    user: fake-user\n    namespace: ",
      options.namespace_, "\n", "users:\n- name: fake-user\n  user:\n", user);
  return WriteFile("kubeconfig", text);
}

std::string FakeKubeFixture::CreateMigrationJob(const std::string& ns, const std::string& name) {
  absl::StatusOr<std::string> stored =
      server_->CreateObject("migrationjobs", ns, MigrationJobJson(ns, name));
  EXPECT_TRUE(stored.ok()) << stored.status();
  if (!stored.ok()) return "";
  const std::string marker = "\"uid\":\"";
  size_t at = stored->find(marker);
  return stored->substr(at + marker.size(), 36);
}

}  // namespace sluice::fake_kube
