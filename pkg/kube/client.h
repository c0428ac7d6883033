// The Kubernetes API as sluice uses it: read a MigrationJob, merge-patch its /status, create
// Events. `Client` is the interface (status reporting and tests depend on it); NewRestClient makes
// the HTTPS implementation (rest_client.cc, the only cpprest user in sluice besides the fake API
// server in tests/).
//
// Every call takes a deadline and gives up by then. Within it, 429 and 5xx answers and unreachable
// or slow servers are retried with exponential backoff, honouring Retry-After; each attempt has its
// own timeout. A 401 re-reads the token file and retries once. Errors carry the API server's
// Status message, never the bearer token. A Client is thread-safe.
//
// Example:
//   SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<kube::Client> client,
//                           kube::NewRestClientFromConfig(kubeconfig_path));
//   SLUICE_ASSIGN_OR_RETURN(kube::MigrationJob job,
//                           client->GetMigrationJob({"app", "app-db"}, absl::Now() +
//                           absl::Seconds(10)));
#ifndef SLUICE_PKG_KUBE_CLIENT_H_
#define SLUICE_PKG_KUBE_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkg/kube/config.h"
#include "pkg/kube/types.h"

namespace sluice::kube {

class Client {
 public:
  virtual ~Client() = default;

  // Returns the MigrationJob `ref`. kNotFound when it does not exist.
  virtual absl::StatusOr<MigrationJob> GetMigrationJob(const ObjectRef& ref,
                                                       absl::Time deadline) = 0;

  // Merge-patches the /status subresource of `ref` so that it equals `status`, and returns the
  // object as stored. With a non-empty `resource_version` the write is conditional: kAborted (HTTP
  // 409) when the object changed since; the caller re-reads and retries.
  virtual absl::StatusOr<MigrationJob> PatchMigrationJobStatus(const ObjectRef& ref,
                                                               const MigrationJobStatus& status,
                                                               absl::string_view resource_version,
                                                               absl::Time deadline) = 0;

  // Creates the core/v1 Event `event`. An empty `event.name` gets a unique one.
  virtual absl::Status CreateEvent(const Event& event, absl::Time deadline) = 0;

  // Aborts requests in flight and makes later calls fail at once with kCancelled. Used to keep a
  // caller's time bound when it stops waiting for the API server.
  virtual void Shutdown() = 0;
};

struct ClientOptions {
  // Timeout of one HTTP attempt (connect, TLS, request and response).
  absl::Duration request_timeout = absl::Seconds(10);
  // Backoff between attempts: doubles from `initial_backoff` up to `max_backoff`, with jitter; a
  // Retry-After answer waits as long as the server asks, capped by `max_retry_after`.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(4);
  absl::Duration max_retry_after = absl::Seconds(30);
  int max_attempts = 10;
  std::string user_agent = "sluice";
};

// Returns a client for the cluster `config` describes. TLS is verified against `config.ca_pem`
// only (not the system store), unless the kubeconfig asked for insecure-skip-tls-verify.
absl::StatusOr<std::unique_ptr<Client>> NewRestClient(const ClusterConfig& config,
                                                      const ClientOptions& options = {});

// Returns a client for the configuration LoadConfig(kubeconfig_flag, paths) finds: --kubeconfig,
// KUBECONFIG, in-cluster, ~/.kube/config. The error says why there is none (no configuration,
// an unreadable kubeconfig or certificate).
absl::StatusOr<std::unique_ptr<Client>> NewRestClientFromConfig(const std::string& kubeconfig_flag,
                                                                const InClusterPaths& paths = {},
                                                                const ClientOptions& options = {});

// Returns the API path of a MigrationJob (with `subresource` appended when not empty).
std::string MigrationJobPath(const ObjectRef& ref, absl::string_view subresource = "");

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_CLIENT_H_
