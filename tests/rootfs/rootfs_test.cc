// The image's root filesystem (scripts/image-rootfs.sh, SLUICE_TEST_ROOTFS), tested without a
// container engine: each run mounts it read-only in a mount namespace of its own, lays over it
// what Kubernetes would mount into the pod (the manifests, /etc/hosts, /etc/resolv.conf, a
// kubeconfig or the service account's files) as a second read-only layer, and runs /sluice there
// through chroot as uid/gid 65532 with an empty environment. Name resolution is glibc's static
// resolver on its own: through the rootfs's /etc/hosts, and through DNS from a dnsmasq on
// 127.0.0.1:53 that alone knows the database's name, behind a Kubernetes-style search list with
// ndots:5. TLS to the fake API server trusts only the CA that the pod's files give.
// Needs root (mount namespaces, chroot, port 53) and dnsmasq (scripts/install-deps.sh).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/kube/json_codec.h"
#include "pkg/kube/types.h"
#include "tests/integration/migrate_test_support.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"
#include "tests/support/fake_kube/fake_kube_server.h"
#include "tests/support/fake_kube/test_pki.h"
#include "tests/support/process.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kUserSpec[] = "65532:65532";
// The DNS test's server: loopback, the only address a resolv.conf can name without a port.
constexpr char kDnsAddress[] = "127.0.0.1";
// Pods in namespace "apps" search these domains first (kubelet's resolv.conf).
constexpr char kSearchList[] = "apps.svc.cluster.local svc.cluster.local cluster.local";
// The database's Service as a pod names it, and the only name the DNS server knows, which the
// search list turns it into.
constexpr char kDnsShortName[] = "pg-primary.db";
constexpr char kDnsFullName[] = "pg-primary.db.svc.cluster.local";
// A name in /etc/hosts only (Kubernetes' hostAliases); DNS answers "no such name" for it.
constexpr char kHostsOnlyName[] = "pg-alias.internal";
constexpr char kNamespace[] = "apps";
constexpr char kJobName[] = "app-db";
constexpr char kToken[] = "rootfs-token-8c1e3a9d";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}

// dnsmasq on 127.0.0.1:53 for the whole suite, answering kDnsFullName with 127.0.0.1 and every
// other name with NXDOMAIN (with no answer at all, glibc would give up on the search list instead
// of trying its next domain). Runs of this suite take turns through a lock file, since they
// share the address.
class DnsServer {
 public:
  static std::unique_ptr<DnsServer> Start(std::string* error) {
    auto server = std::unique_ptr<DnsServer>(new DnsServer());
    server->lock_fd_ = open("/tmp/sluice-rootfs-test-dns.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    const absl::Time deadline = absl::Now() + absl::Seconds(300);
    while (server->lock_fd_ >= 0 && flock(server->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      if (absl::Now() > deadline) {
        *error = "another run held the DNS test lock for 300 s";
        return nullptr;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    server->log_ = fs::temp_directory_path() / absl::StrCat("sluice-rootfs-dns-", getpid(), ".log");
    std::string last_failure;
    while (absl::Now() < deadline) {
      fs::remove(server->log_);
      // Under `timeout`: a dnsmasq left behind by a run that was killed frees the port soon.
      server->process_ = std::make_unique<Process>(std::vector<std::string>{
          "timeout", "120", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
          "--no-resolv", "--no-hosts", "--no-negcache", "--bind-interfaces",
          absl::StrCat("--listen-address=", kDnsAddress), "--port=53", "--user=root",
          "--pid-file=", absl::StrCat("--address=/", kDnsFullName, "/127.0.0.1"), "--address=/#/",
          "--log-queries", absl::StrCat("--log-facility=", server->log_.string())});
      // Ready when it logs that it started; an early exit (port taken) shows on its stderr.
      for (int i = 0; i < 100; ++i) {
        if (ReadAll(server->log_).find("started") != std::string::npos) return server;
        absl::SleepFor(absl::Milliseconds(50));
      }
      ProcessResult r = server->process_->Wait(absl::Seconds(1));
      last_failure = Describe(r);
      if (r.err.find("Address already in use") == std::string::npos) break;
      absl::SleepFor(absl::Seconds(1));
    }
    *error = absl::StrCat("dnsmasq did not start: ", last_failure);
    return nullptr;
  }

  ~DnsServer() {
    if (process_ != nullptr) {
      process_->Kill(SIGTERM);  // timeout passes it on to dnsmasq
      process_->Wait(absl::Seconds(5));
    }
    fs::remove(log_);
    if (lock_fd_ >= 0) close(lock_fd_);
  }

  // Returns the queries logged so far.
  std::string Log() const { return ReadAll(log_); }

 private:
  DnsServer() = default;
  int lock_fd_ = -1;
  fs::path log_;
  std::unique_ptr<Process> process_;
};

DnsServer* dns_server = nullptr;

class RootfsTest : public MigrateTest {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    dns_server = DnsServer::Start(&error).release();
    ASSERT_NE(dns_server, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete dns_server;
    dns_server = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the root-filesystem tests need root (mount namespaces, chroot)";
    ASSERT_NE(dns_server, nullptr);
    MigrateTest::SetUp();
    if (HasFatalFailure()) return;
    work_ = fs::temp_directory_path() /
            absl::StrCat("sluice-rootfs-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(work_);
    fs::create_directories(work_ / "root");
    fs::create_directories(layer());
    fs::permissions(work_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  }

  void TearDown() override {
    if (server_ != nullptr) {
      fake_kube::ExpectFaithfulWrites(*server_, /*rejections_expected=*/false);
      server_.reset();
    }
    fs::remove_all(work_);
    MigrateTest::TearDown();
  }

  // What the pod mounts over the image: a folder laid over the root filesystem.
  fs::path layer() const { return work_ / "layer"; }
  // Writes a file at `path` in the image, as a volume mount would.
  void Mount(const std::string& path, const std::string& text) { WriteText(layer() / path, text); }

  // The database URL with `host` for the test server's address.
  std::string UrlWithHost(const std::string& host) const {
    return absl::StrCat("postgresql://", user(), "@", host, ":", port(), "/", database());
  }

  // Runs /sluice `args` inside the image as uid 65532 with only `env` set: the root filesystem and
  // the layer, both read-only, in a mount namespace that ends with the run.
  ProcessResult RunInImage(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env = {}) {
    // The manifests, as a ConfigMap volume would hold them.
    fs::create_directories(layer() / "migrations");
    fs::copy(manifests_, layer() / "migrations",
             fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    const std::string script =
        "set -e; mount --make-rprivate /; "
        "mount -t overlay overlay -o ro,lowerdir=\"$1\":\"$2\" \"$3\"; "
        "test ! -w \"$3\" || { echo 'the image is writable' >&2; exit 90; }; "
        "shift 3; exec \"$@\"";
    std::vector<std::string> argv = {"unshare",
                                     "--mount",
                                     "--fork",
                                     "--kill-child",
                                     "--",
                                     "sh",
                                     "-c",
                                     script,
                                     "rootfs-run",
                                     layer().string(),
                                     SLUICE_TEST_ROOTFS,
                                     (work_ / "root").string(),
                                     "env",
                                     "-i"};
    for (const auto& [key, value] : env) argv.push_back(absl::StrCat(key, "=", value));
    // The host's chroot, by path (env -i leaves no PATH); it looks nothing up for a numeric user.
    for (const std::string& arg :
         {std::string("/usr/sbin/chroot"), absl::StrCat("--userspec=", kUserSpec),
          (work_ / "root").string(), std::string("/sluice")}) {
      argv.push_back(arg);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {}, absl::Seconds(120));
  }

  ProcessResult UpgradeHeadByHost(const std::string& host) {
    return RunInImage(
        {"upgrade", "head", "--migrations=/migrations", "--database-url=" + UrlWithHost(host)});
  }

  // The pod's resolv.conf as kubelet writes it (ClusterFirst), naming the test's DNS server.
  void MountResolvConf() {
    Mount("etc/resolv.conf", absl::StrCat("search ", kSearchList, "\nnameserver ", kDnsAddress,
                                          "\noptions ndots:5\n"));
  }
  // The pod's /etc/hosts as kubelet writes it, plus `extra` lines (hostAliases).
  void MountHosts(const std::string& extra = "") {
    Mount("etc/hosts", absl::StrCat("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", extra));
  }

  // Starts the fake API server (a certificate from a fresh CA) holding MigrationJob apps/app-db.
  void StartApiServer() {
    absl::StatusOr<fake_kube::TestCa> ca = fake_kube::TestCa::Create("sluice-rootfs-ca");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    absl::StatusOr<fake_kube::PemPair> leaf = ca_->Issue({});
    ASSERT_TRUE(leaf.ok()) << leaf.status();
    fake_kube::ServerOptions options;
    options.crd_path = fake_kube::CrdPath();
    options.cert_pem = leaf->cert_pem;
    options.key_pem = leaf->key_pem;
    absl::StatusOr<std::unique_ptr<fake_kube::FakeKubeServer>> server =
        fake_kube::FakeKubeServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->AddToken(kToken);
    absl::StatusOr<std::string> stored = server_->CreateObject(
        "migrationjobs", kNamespace, fake_kube::MigrationJobJson(kNamespace, kJobName));
    ASSERT_TRUE(stored.ok()) << stored.status();
  }

  // Expects the MigrationJob's stored status to say the run succeeded at `head`.
  void ExpectReportedSuccessAt(const std::string& head) {
    std::optional<std::string> json = server_->GetObject("migrationjobs", kNamespace, kJobName);
    ASSERT_TRUE(json.has_value());
    absl::StatusOr<kube::MigrationJob> job = kube::ParseMigrationJob(*json);
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(job->status.has_value()) << *json;
    EXPECT_EQ(job->status->phase, "Succeeded") << *json;
    EXPECT_THAT(job->status->current_revisions, ::testing::ElementsAre(head));
  }

  fs::path work_;
  std::optional<fake_kube::TestCa> ca_;
  std::unique_ptr<fake_kube::FakeKubeServer> server_;
};

TEST_F(RootfsTest, HoldsOnlyTheImageFiles) {
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(SLUICE_TEST_ROOTFS)) {
    if (!entry.is_directory()) {
      files.push_back(fs::relative(entry.path(), SLUICE_TEST_ROOTFS).string());
    }
  }
  EXPECT_THAT(files, ::testing::UnorderedElementsAre("sluice", "etc/passwd", "etc/group",
                                                     "etc/ssl/certs/ca-certificates.crt"));
  ProcessResult file = RunProcess({"file", "-b", absl::StrCat(SLUICE_TEST_ROOTFS, "/sluice")});
  EXPECT_THAT(file.out, HasSubstr("statically linked")) << Describe(file);
  EXPECT_THAT(file.out, HasSubstr("stripped")) << Describe(file);
}

TEST_F(RootfsTest, VersionRunsAsNonRootOnAReadOnlyRoot) {
  ProcessResult r = RunInImage({"version"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, StartsWith("sluice "));
}

TEST_F(RootfsTest, UpgradeFindsTheDatabaseThroughTheHostsFile) {
  WriteLinear(2);
  MountHosts(absl::StrCat("127.0.0.1\t", kHostsOnlyName, "\n"));
  // DNS is there too and says the name does not exist: /etc/hosts must be asked first, which
  // glibc does with no /etc/nsswitch.conf in the image.
  MountResolvConf();
  ProcessResult r = UpgradeHeadByHost(kHostsOnlyName);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r002");
}

TEST_F(RootfsTest, UpgradeFindsTheDatabaseThroughDnsAndTheSearchList) {
  WriteLinear(2);
  MountHosts();
  MountResolvConf();
  ProcessResult r = UpgradeHeadByHost(kDnsShortName);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r002");
  // Only the DNS server knows the name, and it was asked the name the search list made.
  EXPECT_THAT(dns_server->Log(), HasSubstr(absl::StrCat("query[A] ", kDnsFullName)));
}

TEST_F(RootfsTest, UnknownHostFailsAsAConnectionError) {
  WriteLinear(1);
  MountHosts();
  MountResolvConf();
  ProcessResult r =
      RunInImage({"upgrade", "head", "--migrations=/migrations", "--connect-timeout=1s",
                  "--database-url=" + UrlWithHost("no-such-db.db")});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("no-such-db.db")) << Describe(r);
  EXPECT_EQ(TableExists("alembic_version"), false);
}

TEST_F(RootfsTest, UrlWithoutUserConnectsAsTheImageUser) {
  WriteLinear(1);
  MountHosts();
  // libpq takes the user name from /etc/passwd (no nsswitch.conf needed); the test server has no
  // such role, which proves the lookup worked.
  ProcessResult r =
      RunInImage({"upgrade", "head", "--migrations=/migrations", "--connect-timeout=1s",
                  absl::StrCat("--database-url=postgresql://127.0.0.1:", port(), "/", database())});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("role \"nonroot\" does not exist")) << Describe(r);
}

TEST_F(RootfsTest, ReportTrustsTheKubeconfigCa) {
  StartApiServer();
  if (HasFatalFailure()) return;
  WriteLinear(3);
  MountHosts();
  Mount("etc/sluice/kubeconfig",
        absl::StrCat("apiVersion: v1\nkind: Config\ncurrent-context: fake\n",
                     "clusters:\n- name: fake-cluster\n  cluster:\n    server: ", server_->url(),
                     "\n    certificate-authority-data: ", absl::Base64Escape(ca_->cert_pem()),
                     "\ncontexts:\n- name: fake\n  context:\n    cluster: fake-cluster\n",
                     "    user: fake-user\n    namespace: ", kNamespace, "\n",
                     "users:\n- name: fake-user\n  user:\n    token: ", kToken, "\n"));
  ProcessResult r = RunInImage(
      {"upgrade", "head", "--migrations=/migrations", "--database-url=" + UrlWithHost("127.0.0.1"),
       "--report", absl::StrCat(kNamespace, "/", kJobName), "--report-required",
       "--kubeconfig=/etc/sluice/kubeconfig"},
      {{"POD_NAME", "app-7d9f8c6b5-x2k4q"}});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Versions(), "r003");
  ExpectReportedSuccessAt("r003");
}

TEST_F(RootfsTest, ReportTrustsTheServiceAccountCa) {
  StartApiServer();
  if (HasFatalFailure()) return;
  WriteLinear(1);
  MountHosts();
  const std::string sa = "var/run/secrets/kubernetes.io/serviceaccount/";
  Mount(sa + "ca.crt", ca_->cert_pem());
  Mount(sa + "token", kToken);
  Mount(sa + "namespace", kNamespace);
  const std::string url = server_->url();  // https://127.0.0.1:PORT
  const std::string port = url.substr(url.rfind(':') + 1);
  ProcessResult r = RunInImage(
      {"upgrade", "head", "--migrations=/migrations", "--database-url=" + UrlWithHost("127.0.0.1"),
       "--report", absl::StrCat(kNamespace, "/", kJobName), "--report-required"},
      {{"POD_NAME", "app-7d9f8c6b5-x2k4q"},
       {"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
       {"KUBERNETES_SERVICE_PORT", port}});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ExpectReportedSuccessAt("r001");
}

TEST_F(RootfsTest, ReportRefusesAServerItsCaDidNotSign) {
  StartApiServer();
  if (HasFatalFailure()) return;
  WriteLinear(1);
  MountHosts();
  absl::StatusOr<fake_kube::TestCa> other = fake_kube::TestCa::Create("some-other-ca");
  ASSERT_TRUE(other.ok()) << other.status();
  Mount("etc/sluice/kubeconfig",
        absl::StrCat("apiVersion: v1\nkind: Config\ncurrent-context: fake\n",
                     "clusters:\n- name: fake-cluster\n  cluster:\n    server: ", server_->url(),
                     "\n    certificate-authority-data: ", absl::Base64Escape(other->cert_pem()),
                     "\ncontexts:\n- name: fake\n  context:\n    cluster: fake-cluster\n",
                     "    user: fake-user\n",
                     "users:\n- name: fake-user\n  user:\n    token: ", kToken, "\n"));
  ProcessResult r = RunInImage({"upgrade", "head", "--migrations=/migrations",
                                "--database-url=" + UrlWithHost("127.0.0.1"), "--report",
                                absl::StrCat(kNamespace, "/", kJobName), "--report-required",
                                "--kubeconfig=/etc/sluice/kubeconfig", "--report-timeout=5s"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("not signed by the configured certificate authority"))
      << Describe(r);
  EXPECT_EQ(Versions(), "r001");  // the database comes first
  // No status write got through.
  for (const fake_kube::LoggedRequest& request : server_->Requests()) {
    EXPECT_NE(request.method, "PATCH") << request.path;
  }
}

}  // namespace
}  // namespace sluice::testing
