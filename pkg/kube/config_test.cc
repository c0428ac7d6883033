#include "pkg/kube/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "tests/support/status_matchers.h"

namespace sluice::kube {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;

// Sets or unsets an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = getenv(name);
    if (old != nullptr) old_ = old;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = "/tmp/sluice-config-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/", name);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }
  InClusterPaths Paths() {
    InClusterPaths p;
    p.token_file = absl::StrCat(dir_, "/sa/token");
    p.ca_file = absl::StrCat(dir_, "/sa/ca.crt");
    p.namespace_file = absl::StrCat(dir_, "/sa/namespace");
    return p;
  }

  std::string dir_;
};

constexpr char kCa[] = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";

TEST_F(ConfigTest, InClusterReadsServiceAccountFiles) {
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  Write("sa/token", "tok");
  Write("sa/ca.crt", kCa);
  Write("sa/namespace", "apps\n");
  absl::StatusOr<ClusterConfig> c = InClusterConfig(Paths());
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->ca_pem, kCa);
  EXPECT_EQ(c->token_file, Paths().token_file);
  EXPECT_EQ(c->token, "");  // read (and re-read) by TokenSource
  EXPECT_EQ(c->namespace_, "apps");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
}

TEST_F(ConfigTest, InClusterBracketsIpv6Hosts) {
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "fd00::1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "6443");
  Write("sa/token", "tok");
  Write("sa/ca.crt", kCa);
  absl::StatusOr<ClusterConfig> c = InClusterConfig(Paths());
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->server, "https://[fd00::1]:6443");
  EXPECT_EQ(c->namespace_, "default");
}

TEST_F(ConfigTest, InClusterNeedsTheEnvironmentAndTheFiles) {
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
    EXPECT_THAT(InClusterConfig(Paths()).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition, "not running in a Kubernetes"));
  }
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  EXPECT_THAT(InClusterConfig(Paths()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "ca.crt"));
  Write("sa/ca.crt", kCa);
  EXPECT_THAT(InClusterConfig(Paths()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "token"));
}

std::string Kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& extra = "") {
  return absl::StrCat(
      "apiVersion: v1\nkind: Config\ncurrent-context: dev\n", extra,
      "clusters:\n- name: c-other\n  cluster: {server: https://other.example:6443}\n",
      "- name: c-dev\n  cluster:\n", cluster,
      "contexts:\n- name: prod\n  context: {cluster: c-other, user: u-dev}\n",
      "- name: dev\n  context: {cluster: c-dev, user: u-dev, namespace: team}\n",
      "users:\n- name: u-dev\n  user:\n", user);
}

TEST_F(ConfigTest, KubeconfigUsesTheCurrentContextAndDataFields) {
  const std::string path = Write(
      "kubeconfig",
      Kubeconfig(
          absl::StrCat("    server: https://127.0.0.1:6443/\n    certificate-authority-data: ",
                       absl::Base64Escape(kCa), "\n"),
          absl::StrCat("    token: static-token\n    tokenFile: ignored\n"
                       "    client-certificate-data: ",
                       absl::Base64Escape("CERT"),
                       "\n    client-key-data: ", absl::Base64Escape("KEY"), "\n")));
  absl::StatusOr<ClusterConfig> c = KubeconfigConfig(path);
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->server, "https://127.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, kCa);
  EXPECT_EQ(c->token, "static-token");
  EXPECT_EQ(c->token_file, "");  // token wins, as in client-go
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_EQ(c->namespace_, "team");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->source, path);
}

TEST_F(ConfigTest, KubeconfigFilesResolveAgainstItsDirectory) {
  Write("conf/ca.crt", kCa);
  Write("conf/client.crt", "CERT");
  Write("conf/client.key", "KEY");
  const std::string path =
      Write("conf/kubeconfig",
            Kubeconfig("    server: https://k8s.example:443\n    certificate-authority: ca.crt\n",
                       "    tokenFile: token\n    client-certificate: client.crt\n"
                       "    client-key: client.key\n"));
  absl::StatusOr<ClusterConfig> c = KubeconfigConfig(path);
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->ca_pem, kCa);
  EXPECT_EQ(c->token_file, absl::StrCat(dir_, "/conf/token"));
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
}

TEST_F(ConfigTest, KubeconfigContextCanBeChosen) {
  const std::string path =
      Write("kubeconfig", Kubeconfig("    server: https://dev:443\n", "    token: t\n"));
  absl::StatusOr<ClusterConfig> c = KubeconfigConfig(path, "prod");
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->server, "https://other.example:6443");
  EXPECT_EQ(c->namespace_, "default");
  EXPECT_THAT(KubeconfigConfig(path, "nope").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "no context named \"nope\""));
}

TEST_F(ConfigTest, InsecureSkipTlsVerifyOnlyWhenTheFileSaysSo) {
  const std::string insecure = Write(
      "insecure", Kubeconfig("    server: https://dev:443\n    insecure-skip-tls-verify: true\n",
                             "    token: t\n"));
  EXPECT_TRUE(KubeconfigConfig(insecure)->insecure_skip_tls_verify);
  const std::string secure =
      Write("secure", Kubeconfig("    server: https://dev:443\n", "    token: t\n"));
  EXPECT_FALSE(KubeconfigConfig(secure)->insecure_skip_tls_verify);
}

TEST_F(ConfigTest, KubeconfigErrorsAreClear) {
  EXPECT_THAT(KubeconfigConfig(absl::StrCat(dir_, "/missing")).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "cannot read kubeconfig"));
  EXPECT_THAT(KubeconfigConfig(Write("bad", "clusters: [")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "not valid YAML"));
  EXPECT_THAT(KubeconfigConfig(Write("noctx", "apiVersion: v1\nclusters: []\n")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "no current-context"));
  EXPECT_THAT(KubeconfigConfig(Write("b64", Kubeconfig("    server: https://dev:443\n"
                                                       "    certificate-authority-data: '%%%'\n",
                                                       "    token: t\n")))
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "certificate-authority-data is not valid base64"));
  EXPECT_THAT(KubeconfigConfig(Write("exec", Kubeconfig("    server: https://dev:443\n",
                                                        "    exec: {command: aws}\n")))
                  .status(),
              StatusIs(absl::StatusCode::kUnimplemented, "exec or auth-provider"));
  EXPECT_THAT(
      KubeconfigConfig(Write("halfcert", Kubeconfig("    server: https://dev:443\n",
                                                    "    client-certificate-data: Q0VSVA==\n")))
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "both a client certificate and a client key"));
}

TEST_F(ConfigTest, LoadConfigPrefersTheFlagThenKubeconfigThenInCluster) {
  const std::string flag =
      Write("flag", Kubeconfig("    server: https://from-flag:443\n", "    token: t\n"));
  const std::string env =
      Write("env", Kubeconfig("    server: https://from-env:443\n", "    token: t\n"));
  Write("sa/token", "tok");
  Write("sa/ca.crt", kCa);
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  {
    ScopedEnv kubeconfig("KUBECONFIG", absl::StrCat(dir_, "/missing:", env).c_str());
    EXPECT_EQ(LoadConfig(flag, Paths())->server, "https://from-flag:443");
    EXPECT_EQ(LoadConfig("", Paths())->server, "https://from-env:443");
  }
  ScopedEnv kubeconfig("KUBECONFIG", nullptr);
  EXPECT_EQ(LoadConfig("", Paths())->server, "https://10.96.0.1:443");
}

}  // namespace
}  // namespace sluice::kube
