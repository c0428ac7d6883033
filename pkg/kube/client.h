// The Kubernetes API as sluice uses it: read, list and watch MigrationJobs, merge-patch their
// /status, create Events, read ConfigMaps and Secrets and watch their metadata, and keep a Lease.
// `Client` is the interface (status reporting and tests depend on it); NewRestClient makes the
// HTTPS implementation (rest_client.cc, the only cpprest user in sluice besides the fake API server
// in tests/).
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

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkg/kube/config.h"
#include "pkg/kube/types.h"

namespace sluice::kube {

// What a LIST asks for (kube-api.md section 1). The all-namespaces collection is listed when
// `namespace_` is empty.
struct ListOptions {
  std::string namespace_;
  // Empty: the most recent state (a consistent read); "0": any state the server has; otherwise
  // a state at least as new as this one (exactly this one when `limit` is set, and 410 Gone
  // when the server no longer has it).
  std::string resource_version;
  int64_t limit = 0;  // > 0: at most this many items a page
  std::string continue_token;
  std::string label_selector;
  std::string field_selector;
};

// What a WATCH asks for. Without `resource_version` the server first sends an ADDED event for
// every existing object; with one, only the changes after it.
struct WatchOptions {
  std::string namespace_;  // empty: all namespaces
  std::string resource_version;
  bool allow_bookmarks = true;
  // The server ends the stream after this long (timeoutSeconds); a clean end is normal.
  absl::Duration timeout = absl::Minutes(5);
  std::string label_selector;
  std::string field_selector;
};

// An open watch: events in the order the server sent them. Next() and ForEach() are for one
// consumer thread; Cancel() may be called from any thread, at any time.
template <typename T>
class WatchStream {
 public:
  virtual ~WatchStream() = default;

  // Returns the next event; std::nullopt when the server ended the stream cleanly (re-watch from
  // the last resourceVersion seen). Errors end the stream:
  //   - IsResourceExpired(): the resourceVersion is too old (HTTP 410 or an ERROR event with
  //     code 410): list again, then watch from the list's resourceVersion;
  //   - kCancelled after Cancel(); kUnavailable when the connection dropped; others from an
  //     ERROR event's Status.
  // kDeadlineExceeded when no event came by `deadline`: the stream stays open, call again.
  virtual absl::StatusOr<std::optional<WatchEvent<T>>> Next(absl::Time deadline) = 0;

  // Ends the stream: a Next() waiting now or later returns kCancelled. Thread-safe; idempotent.
  virtual void Cancel() = 0;

  // Calls `on_event` for each event until the stream ends (OkStatus on a clean end), fails (the
  // error of Next()), or `on_event` returns false (OkStatus; the stream is cancelled).
  absl::Status ForEach(const std::function<bool(const WatchEvent<T>&)>& on_event) {
    while (true) {
      absl::StatusOr<std::optional<WatchEvent<T>>> event = Next(absl::InfiniteFuture());
      if (!event.ok()) return event.status();
      if (!event->has_value()) return absl::OkStatus();
      if (!on_event(**event)) {
        Cancel();
        return absl::OkStatus();
      }
    }
  }
};

// Returns whether `status` says a resourceVersion or continue token is too old (HTTP 410 Gone or
// Expired, as an answer or a watch ERROR event): the caller lists again from scratch.
bool IsResourceExpired(const absl::Status& status);

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

  // Returns one page of MigrationJobs. An expired `continue_token` is IsResourceExpired().
  virtual absl::StatusOr<MigrationJobList> ListMigrationJobs(const ListOptions& options,
                                                             absl::Time deadline) = 0;

  // Opens a watch of MigrationJobs; `deadline` bounds opening it (the answer's headers), not the
  // stream, which lasts `options.timeout`. A too-old resourceVersion answered with HTTP 410 is
  // IsResourceExpired() here; answered as an ERROR event, it comes from the stream's Next().
  virtual absl::StatusOr<std::unique_ptr<WatchStream<MigrationJob>>> WatchMigrationJobs(
      const WatchOptions& options, absl::Time deadline) = 0;

  // Returns one page of ConfigMaps or Secrets, their metadata only (a Secret's values are read
  // and dropped: they never leave the client).
  virtual absl::StatusOr<ObjectMetaList> ListObjectMeta(CoreResource resource,
                                                        const ListOptions& options,
                                                        absl::Time deadline) = 0;

  // Opens a watch of ConfigMaps or Secrets whose events carry metadata only; as
  // WatchMigrationJobs otherwise.
  virtual absl::StatusOr<std::unique_ptr<WatchStream<ObjectMeta>>> WatchObjectMeta(
      CoreResource resource, const WatchOptions& options, absl::Time deadline) = 0;

  // Returns the ConfigMap `ref`. kNotFound when it does not exist.
  virtual absl::StatusOr<ConfigMap> GetConfigMap(const ObjectRef& ref, absl::Time deadline) = 0;

  // Returns the Secret `ref` with its values decoded. kNotFound when it does not exist,
  // kPermissionDenied when RBAC forbids it. Its values appear in no log and no error.
  virtual absl::StatusOr<Secret> GetSecret(const ObjectRef& ref, absl::Time deadline) = 0;

  // Returns the Lease `ref`. kNotFound when it does not exist.
  virtual absl::StatusOr<Lease> GetLease(const ObjectRef& ref, absl::Time deadline) = 0;
  // Creates `lease` (its metadata names it); kAborted (409 AlreadyExists) when another holder
  // created it first. Returns it as stored.
  virtual absl::StatusOr<Lease> CreateLease(const Lease& lease, absl::Time deadline) = 0;
  // Replaces `lease` (PUT) on the condition that it is still at `lease.metadata.resource_version`:
  // kAborted (409 Conflict) when someone else wrote it since. Returns it as stored.
  virtual absl::StatusOr<Lease> UpdateLease(const Lease& lease, absl::Time deadline) = 0;

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

// Returns the API path of the MigrationJob collection in `ns`, or of all namespaces when empty.
std::string MigrationJobCollectionPath(absl::string_view ns);

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_CLIENT_H_
