// The operator's speed and memory (issue 11), against the fake Kubernetes API server (HTTPS on
// 127.0.0.1) and a real PostgreSQL, each figure beside its baseline in the same run:
//   1. a MigrationJob whose database is already at head: from its creation (the watch event) to
//      its status written (Succeeded at its generation), median and p90 of SAMPLES;
//   2. fifty MigrationJobs over five databases from empty: wall time until all are Succeeded,
//      vs five `sluice upgrade head` processes at once on five other empty databases;
//   3. the operator's peak resident memory with JOBS (1,000) MigrationJobs cached.
// Usage: operator_bench SLUICE_BINARY ADMIN_DSN [SAMPLES] [JOBS]   (bench/operator_bench.sh runs
// it)
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pkg/base/text.h"
#include "tests/support/fake_kube/fake_kube_server.h"
#include "tests/support/fake_kube/test_pki.h"
#include "tests/support/process.h"

namespace sluice::bench {
namespace {

namespace fs = std::filesystem;
using fake_kube::FakeKubeServer;
using testing::Process;
using testing::ProcessResult;
using testing::RunProcess;

constexpr char kNamespace[] = "bench";
constexpr char kToken[] = "operator-bench-token";
constexpr char kPsql[] = "/usr/lib/postgresql/15/bin/psql";

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "operator_bench: %s\n", message.c_str());
  std::exit(1);
}

std::string Revision(int i) {
  return absl::StrFormat(
      "revision: r%04d\ndown_revision: %s\nupgrade: |\n  CREATE TABLE t%04d (id int PRIMARY KEY, "
      "name text);\n  INSERT INTO t%04d VALUES (1, 'x');\n",
      i, i == 1 ? "null" : absl::StrFormat("r%04d", i - 1), i, i);
}

class Bench {
 public:
  Bench(std::string sluice, std::string admin) : sluice_(std::move(sluice)), admin_(admin) {
    dir_ = fs::temp_directory_path() / absl::StrCat("sluice-operator-bench-", getpid());
    fs::create_directories(dir_ / "migrations");
  }
  ~Bench() {
    for (const std::string& db : databases_)
      Psql(absl::StrCat("DROP DATABASE IF EXISTS ", db, " WITH (FORCE)"));
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  void StartServer() {
    absl::StatusOr<fake_kube::TestCa> ca = fake_kube::TestCa::Create("operator-bench-ca");
    if (!ca.ok()) Die(std::string(ca.status().message()));
    absl::StatusOr<fake_kube::PemPair> leaf = ca->Issue({});
    if (!leaf.ok()) Die(std::string(leaf.status().message()));
    fake_kube::ServerOptions options;
    options.crd_path = SLUICE_SOURCE_DIR "/manifests/crd.yaml";
    options.cert_pem = leaf->cert_pem;
    options.key_pem = leaf->key_pem;
    absl::StatusOr<std::unique_ptr<FakeKubeServer>> server = FakeKubeServer::Start(options);
    if (!server.ok()) Die(std::string(server.status().message()));
    server_ = *std::move(server);
    server_->AddToken(kToken);
    server_->SetHistoryLimit(100000);
    kubeconfig_ = (dir_ / "kubeconfig").string();
    std::ofstream out(kubeconfig_);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
        << "    server: " << server_->url()
        << "\n    certificate-authority-data: " << absl::Base64Escape(ca->cert_pem())
        << "\ncontexts:\n- name: c\n  context:\n"
        << "    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: " << kToken << "\n";
  }

  // Writes `count` revisions as manifests and as one ConfigMap.
  void Migrations(int count) {
    std::vector<std::string> data;
    for (int i = 1; i <= count; ++i) {
      const std::string name = absl::StrFormat("r%04d.yaml", i);
      std::ofstream(dir_ / "migrations" / name) << Revision(i);
      data.push_back(absl::StrCat("\"", name, "\":", base::JsonQuote(Revision(i))));
    }
    Create("configmaps",
           absl::StrCat(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"migrations",)"
                        R"("namespace":"bench"},"data":{)",
                        absl::StrJoin(data, ","), "}}"));
  }

  // `name` is a database and the Secret of its URL: lower-case letters and digits suit both.
  std::string Database(const std::string& name) {
    Psql(absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)"));
    Psql(absl::StrCat("CREATE DATABASE ", name));
    databases_.push_back(name);
    const std::string url = absl::StrCat(admin_.substr(0, admin_.rfind('/') + 1), name);
    Create("secrets", absl::StrCat(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":")",
                                   name, R"(","namespace":"bench"},"data":{"url":")",
                                   absl::Base64Escape(url), R"("}})"));
    return url;
  }

  void Job(const std::string& name, const std::string& database, bool suspend = false) {
    Create(
        "migrationjobs",
        absl::StrCat(
            R"({"apiVersion":"sluice.dev/v1alpha1","kind":"MigrationJob","metadata":{"name":")",
            name, R"(","namespace":"bench"},"spec":{"target":"head","database":{"urlSecretRef":)",
            R"({"name":")", database,
            R"(","key":"url"}},"migrations":{"configMaps":[{"name":"migrations"}]},"suspend":)",
            suspend ? "true" : "false", "}}"));
  }

  bool Succeeded(const std::string& name) {
    std::optional<std::string> json = server_->GetObject("migrationjobs", kNamespace, name);
    return json.has_value() && absl::StrContains(*json, "\"phase\":\"Succeeded\"") &&
           absl::StrContains(*json, "\"observedGeneration\":1");
  }

  std::unique_ptr<Process> StartOperator(int max_concurrent, const std::string& health_addr) {
    return std::make_unique<Process>(
        std::vector<std::string>{sluice_, "operator", "--kubeconfig", kubeconfig_, "--namespace",
                                 kNamespace, absl::StrCat("--max-concurrent=", max_concurrent),
                                 "--health-addr=" + health_addr, "--metrics-addr=0"},
        std::map<std::string, std::string>{{"POD_NAME", "bench-operator"}, {"KUBECONFIG", ""}});
  }

  ProcessResult Upgrade(const std::string& url) {
    return RunProcess({sluice_, "upgrade", "head", "--migrations", (dir_ / "migrations").string(),
                       "--database-url", url});
  }

  FakeKubeServer& server() { return *server_; }

 private:
  void Create(const std::string& resource, const std::string& json) {
    absl::StatusOr<std::string> created = server_->CreateObject(resource, kNamespace, json);
    if (!created.ok()) Die(std::string(created.status().message()));
  }
  void Psql(const std::string& sql) {
    ProcessResult r = RunProcess({kPsql, "-X", "-q", "-d", admin_, "-c", sql});
    if (r.exit_code != 0) Die(absl::StrCat("psql: ", r.err));
  }

  std::string sluice_;
  std::string admin_;
  fs::path dir_;
  std::unique_ptr<FakeKubeServer> server_;
  std::string kubeconfig_;
  std::vector<std::string> databases_;
};

int64_t VmHwmKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      int64_t kib = 0;
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib;
    }
  }
  return -1;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

int Main(int argc, char** argv) {
  if (argc < 3) Die("usage: operator_bench SLUICE_BINARY ADMIN_DSN [SAMPLES] [JOBS]");
  int samples = 30;
  int cached = 1000;
  if (argc > 3 && !absl::SimpleAtoi(argv[3], &samples)) Die("SAMPLES is not a number");
  if (argc > 4 && !absl::SimpleAtoi(argv[4], &cached)) Die("JOBS is not a number");

  // 1. At head: creation -> status written.
  {
    Bench bench(argv[1], argv[2]);
    bench.StartServer();
    bench.Migrations(20);
    const std::string url = bench.Database("opbenchhead");
    if (bench.Upgrade(url).exit_code != 0) Die("sluice upgrade head failed");
    std::unique_ptr<Process> op = bench.StartOperator(4, "0");
    bench.Job("warm-up", "opbenchhead");
    if (!bench.server().WaitUntil([&] { return bench.Succeeded("warm-up"); }, absl::Seconds(60))) {
      Die(absl::StrCat("the warm-up job did not succeed: ", op->ErrorsSoFar()));
    }
    // Spaced out, each job connects and reads the version table itself; back to back, the jobs
    // after the first report the reading of the one before (the operator's reading handover,
    // which lasts 2 s).
    for (const bool spaced : {true, false}) {
      std::vector<double> ms;
      for (int i = 0; i < samples; ++i) {
        if (spaced) absl::SleepFor(absl::Milliseconds(2100));
        const std::string name = absl::StrCat(spaced ? "alone-" : "after-", i);
        const absl::Time start = absl::Now();
        bench.Job(name, "opbenchhead");
        if (!bench.server().WaitUntil([&] { return bench.Succeeded(name); }, absl::Seconds(30))) {
          Die(absl::StrCat(name, " did not succeed"));
        }
        ms.push_back(Ms(absl::Now() - start));
      }
      std::sort(ms.begin(), ms.end());
      std::printf(
          "at head, %s: watch event -> status written: median %.1f ms, p90 %.1f ms (%d jobs)\n",
          spaced ? "each job alone (2.1 s apart)" : "back to back (reading handover)",
          ms[ms.size() / 2], ms[ms.size() * 9 / 10], samples);
    }
    op->Kill(SIGTERM);
    (void)op->Wait(absl::Seconds(30));
  }

  // 2. Fifty jobs over five databases vs five `sluice upgrade head` at once.
  {
    Bench bench(argv[1], argv[2]);
    bench.StartServer();
    bench.Migrations(100);
    std::vector<std::string> baseline_urls;
    for (int d = 0; d < 5; ++d)
      baseline_urls.push_back(bench.Database(absl::StrCat("opbenchbase", d)));
    for (int d = 0; d < 5; ++d) bench.Database(absl::StrCat("opbenchop", d));
    std::unique_ptr<Process> op = bench.StartOperator(5, "0");
    // The operator is up (its informers synced) before the clock starts.
    bench.Job("ready", "opbenchabsent", /*suspend=*/true);
    absl::SleepFor(absl::Seconds(1));

    const absl::Time base_start = absl::Now();
    std::vector<std::unique_ptr<Process>> upgrades;
    for (const std::string& url : baseline_urls) {
      upgrades.push_back(std::make_unique<Process>(
          std::vector<std::string>{argv[1], "upgrade", "head", "--migrations",
                                   (fs::temp_directory_path() /
                                    absl::StrCat("sluice-operator-bench-", getpid()) / "migrations")
                                       .string(),
                                   "--database-url", url}));
    }
    for (auto& p : upgrades) {
      if (p->Wait(absl::Minutes(5)).exit_code != 0) Die("a baseline upgrade failed");
    }
    const absl::Duration baseline = absl::Now() - base_start;

    const absl::Time op_start = absl::Now();
    for (int j = 0; j < 50; ++j) {
      bench.Job(absl::StrCat("job-", j), absl::StrCat("opbenchop", j % 5));
    }
    if (!bench.server().WaitUntil(
            [&] {
              for (int j = 0; j < 50; ++j) {
                if (!bench.Succeeded(absl::StrCat("job-", j))) return false;
              }
              return true;
            },
            absl::Minutes(5))) {
      Die(absl::StrCat("the fifty jobs did not all succeed: ", op->ErrorsSoFar()));
    }
    const absl::Duration operated = absl::Now() - op_start;
    std::printf(
        "fifty jobs over five databases (100 revisions each): operator %.0f ms vs five `sluice "
        "upgrade head` at once %.0f ms: %.2fx\n",
        Ms(operated), Ms(baseline), Ms(operated) / Ms(baseline));
    op->Kill(SIGTERM);
    (void)op->Wait(absl::Seconds(30));
  }

  // 3. Memory with many jobs cached (suspended, so that nothing runs).
  {
    Bench bench(argv[1], argv[2]);
    bench.StartServer();
    bench.Migrations(1);
    for (int j = 0; j < cached; ++j) bench.Job(absl::StrCat("cached-", j), "none", true);
    std::unique_ptr<Process> op = bench.StartOperator(4, "127.0.0.1:0");
    // Listed once every job's LIST page came back and the watch is open.
    if (!bench.server().WaitUntil([&] { return bench.server().OpenWatches() >= 3; },
                                  absl::Seconds(60))) {
      Die("the operator did not open its watches");
    }
    absl::SleepFor(absl::Seconds(1));
    const int64_t kib = VmHwmKib(op->pid());
    std::printf("memory with %d MigrationJobs cached: peak RSS %.1f MiB\n", cached, kib / 1024.0);
    op->Kill(SIGTERM);
    (void)op->Wait(absl::Seconds(30));
  }
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) { return sluice::bench::Main(argc, argv); }
