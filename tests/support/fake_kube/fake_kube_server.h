// A fake Kubernetes API server for tests: real HTTPS on 127.0.0.1 (cpprest http_listener) with a
// certificate from a CA the test makes, bearer-token authentication, and the storage semantics of
// kube-api.md section 10 for the MigrationJob CRD (manifests/crd.yaml), core/v1 Events, ConfigMaps
// and Secrets, and coordination.k8s.io/v1 Leases:
//   - one global resourceVersion counter; generation bumped only by main-resource content changes;
//   - main-resource writes ignore status, /status writes change only status;
//   - PUT needs the current resourceVersion (409 when stale, 422 when missing on a CR);
//   - PATCH: merge-patch and JSON patch; strategic merge on a CR and unknown types are 415; a
//     resourceVersion in the patched object is a precondition (409);
//   - every write is pruned and validated against the CRD schema (422 Invalid with causes), and
//     every pruned field is recorded, so a test fails when sluice sends a field the real server
//     would silently drop (see FakeKubeFixture::TearDown);
//   - Events are validated (kube-api.md section 7) and recorded;
//   - every error is a Status object;
//   - faults: stop listening (connections refused), 500 / 429 with Retry-After, hangs;
//   - closing the listener (StopListening, the destructor) first waits, bounded, for the clients'
//     connections to end: cpprest's listener cannot be closed safely while it is still handling a
//     client's disconnect;
//   - LIST with resourceVersion (unset, "0", N; resourceVersionMatch=Exact), limit and continue:
//     every page is served from the first page's snapshot, rebuilt from a bounded history of
//     writes; a continue token or Exact version older than that history is 410 Expired;
//   - WATCH (chunked JSON lines): no resourceVersion gives synthetic ADDED events, N replays the
//     history after N, a version older than the history is 200 then an ERROR event with a 410
//     Status (or HTTP 410, SetWatchExpiredAsHttp); BOOKMARKs on demand (SendBookmarks);
//     timeoutSeconds honoured; tests end streams cleanly or abruptly, or inject ERROR events;
//   - fieldSelector metadata.name / metadata.namespace and equality labelSelectors;
//   - a LIST or WATCH of MigrationJobs asked for with `Accept: application/json;as=Table;...`
//     gets meta.k8s.io/v1 Tables of the CRD's additionalPrinterColumns (what kubectl prints);
//   - CustomResourceDefinitions (cluster-scoped): the served custom resource's own CRD can be
//     created through the API (ServerOptions::crd_installed = false), as `kubectl apply` does;
//   - /version and legacy discovery (/api, /apis, /api/v1, /apis/GROUP/VERSION), open to every
//     authenticated token, so that the real kubectl finds `mj`;
//   - tests can wait for what the server observes (WaitUntil) instead of sleeping.
// Not implemented (not used by sluice yet): server-side apply, deletion with finalizers,
// aggregated discovery, the OpenAPI documents (kubectl apply needs --validate=false), CRD
// conditions (Established), custom resources other than the one of `crd_path`. Requests for them
// get 400 / 404 Status answers, never silent success. Thread-safe.
#ifndef SLUICE_TESTS_SUPPORT_FAKE_KUBE_FAKE_KUBE_SERVER_H_
#define SLUICE_TESTS_SUPPORT_FAKE_KUBE_FAKE_KUBE_SERVER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice::fake_kube {

struct ServerOptions {
  std::string crd_path;  // manifests/crd.yaml
  std::string cert_pem;  // server certificate (chain) and key
  std::string key_pem;
  // Client certificates are verified against this CA when set (and then required when
  // `require_client_cert`).
  std::string client_ca_pem;
  bool require_client_cert = false;
  // The custom resource is served from the start; false: only once a client has created its
  // CustomResourceDefinition (apiextensions.k8s.io/v1, e.g. `kubectl apply -f crd.yaml`), whose
  // schema and printer columns then replace those of `crd_path`.
  bool crd_installed = true;
};

// One request as the server saw it, for assertions on wire traffic.
struct LoggedRequest {
  std::string method;
  std::string path;
  std::string query;
  std::string content_type;
  std::string authorization;
  std::string accept;
  std::string body;
  int response_code = 0;
  bool injected = false;  // answered by a fault rule
};

// An Event the server stored.
struct RecordedEvent {
  std::string namespace_;
  std::string name;
  std::string type;
  std::string reason;
  std::string message;
  std::string action;
  std::string involved_kind;
  std::string involved_name;
  std::string involved_uid;
  std::string reporting_component;
  std::string reporting_instance;
  std::string json;
};

// A fault rule: the next `times` requests that match `method` (empty: any) and whose path contains
// `path_contains` get the fault instead of normal handling.
struct Fault {
  std::string method;
  std::string path_contains;
  int times = 1;
  int http_code = 500;     // answered with a Status object of this code...
  int retry_after_s = -1;  // ...and this Retry-After header (and retryAfterSeconds) when >= 0
  absl::Duration hang;     // > 0: hold the request this long (bounded) before answering
};

// One RBAC PolicyRule: what a token may do ("*" matches anything). Resources name subresources as
// "migrationjobs/status", as in a Role.
struct RbacRule {
  std::vector<std::string> api_groups;
  std::vector<std::string> resources;
  std::vector<std::string> verbs;
  std::vector<std::string> resource_names;  // empty: any
};

// Returns the rules of every Role and ClusterRole in the YAML manifest at `path`.
absl::StatusOr<std::vector<RbacRule>> RulesFromManifest(const std::string& path);

class FakeKubeServer {
 public:
  // Starts a server on 127.0.0.1 at a free port.
  static absl::StatusOr<std::unique_ptr<FakeKubeServer>> Start(const ServerOptions& options);
  ~FakeKubeServer();

  // Returns "https://127.0.0.1:PORT".
  std::string url() const;
  int port() const;

  // Tokens: only the listed tokens are accepted (401 otherwise).
  void AddToken(const std::string& token);
  void RevokeToken(const std::string& token);
  // Limits `token` to `rules` (403 Forbidden otherwise), as RBAC does for a service account named
  // `user`. Tokens without rules may do anything.
  void SetRbacRules(const std::string& token, const std::string& user, std::vector<RbacRule> rules);

  // Stops accepting connections (clients get "connection refused"), and starts again on the same
  // port.
  absl::Status StopListening();
  absl::Status StartListening();

  void InjectFault(const Fault& fault);
  void ClearFaults();
  // Makes the next `times` writes to a MigrationJob answer 409 Conflict, as if another writer
  // had won the race.
  void InjectConflicts(int times);

  // Stores an object as a client POST would (validation included) without authentication.
  // `resource` is "migrationjobs", "configmaps", "secrets", "events" or "leases". Returns the
  // stored JSON.
  absl::StatusOr<std::string> CreateObject(const std::string& resource, const std::string& ns,
                                           const std::string& json);
  // Replaces an object as a client PUT would (the stored metadata kept; watchers get MODIFIED),
  // e.g. a ConfigMap's new data as `kubectl apply` writes it. The object is named by `json`.
  absl::Status ReplaceObject(const std::string& resource, const std::string& ns,
                             const std::string& json);
  // Changes a MigrationJob's spec as `kubectl apply` would (generation + 1).
  absl::Status UpdateMigrationJobSpec(const std::string& ns, const std::string& name,
                                      const std::string& spec_json);
  // Deletes an object as a client DELETE would (watchers get a DELETED event).
  absl::Status DeleteObject(const std::string& resource, const std::string& ns,
                            const std::string& name);
  // Returns the stored JSON of an object, if any.
  std::optional<std::string> GetObject(const std::string& resource, const std::string& ns,
                                       const std::string& name) const;

  std::vector<LoggedRequest> Requests() const;
  // Requests that reached the server so far, answered or not (a hanging one included).
  int RequestsReceived() const;
  // Waits until `condition` holds, checking it now and whenever a request arrives or is answered
  // (every write of a client goes with an answer); returns whether it held within `timeout`.
  // `condition` may call this server's accessors.
  bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout) const;
  std::vector<RecordedEvent> Events() const;
  // Paths of fields pruned from writes so far (e.g. "status.condtions").
  std::vector<std::string> PrunedFields() const;
  // Writes rejected for their content (400, 415, 422): what a correct client never gets.
  std::vector<LoggedRequest> RejectedWrites() const;
  // Watches. The history of writes that LIST snapshots and WATCH replays keeps the last `limit`
  // writes (default 1000); older resourceVersions are 410 Expired.
  void SetHistoryLimit(size_t limit);
  // Answers a watch from a too-old resourceVersion with HTTP 410 instead of 200 + ERROR event.
  void SetWatchExpiredAsHttp(bool as_http);
  // Returns the current resourceVersion (the global counter).
  std::string ResourceVersion() const;
  // Returns how many watch streams are open.
  int OpenWatches() const;
  // Sends a BOOKMARK at the current resourceVersion to every watch that allows bookmarks.
  void SendBookmarks();
  // Waits until no watch stream is open; returns whether that happened within `timeout`. The
  // server learns that a client closed its connection only when it writes to it, so this probes
  // the streams that allow bookmarks with a BOOKMARK every 100 ms.
  bool WaitForWatchesGone(absl::Duration timeout);
  // Answers every request with `Connection: close`, so that no idle keep-alive connection makes
  // StopListening wait for it (tests that restart the server often).
  void SetCloseConnections(bool close);
  // Ends every watch stream: cleanly (the final chunk), or `abruptly`: every client connection
  // to the server, the watches' included, is cut as a network failure would (shutdown(2) of the
  // server's sockets), so no final chunk is sent.
  void CloseWatches(bool abruptly);
  // Sends every watch an ERROR event with a Status of `http_code`, then ends it.
  void InjectWatchError(int http_code);

  // Returns the field errors of the stored MigrationJob against the schema (empty: valid).
  std::vector<std::string> ValidateStored(const std::string& ns, const std::string& name) const;

  class Impl;

 private:
  explicit FakeKubeServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::fake_kube

#endif  // SLUICE_TESTS_SUPPORT_FAKE_KUBE_FAKE_KUBE_SERVER_H_
