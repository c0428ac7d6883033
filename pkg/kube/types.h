// Plain structs for the Kubernetes objects sluice reads and writes: the MigrationJob custom
// resource (manifests/crd.yaml), its status with metav1.Condition, and core/v1 Events. No JSON or
// cpprest type appears here: pkg/kube converts internally. Timestamps are RFC 3339 strings, kept
// verbatim as the API server stores them for custom resources.
#ifndef SLUICE_PKG_KUBE_TYPES_H_
#define SLUICE_PKG_KUBE_TYPES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sluice::kube {

inline constexpr char kGroup[] = "sluice.dev";
inline constexpr char kVersion[] = "v1alpha1";
inline constexpr char kApiVersion[] = "sluice.dev/v1alpha1";
inline constexpr char kKind[] = "MigrationJob";
inline constexpr char kPlural[] = "migrationjobs";

// A namespaced object's name.
struct ObjectRef {
  std::string namespace_;
  std::string name;
};

struct ObjectMeta {
  std::string namespace_;
  std::string name;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  std::string creation_timestamp;
};

struct MigrationJobSpec {
  std::string target;  // empty when unset
  std::string url_secret_name;
  std::string url_secret_key;
  std::string schema;
  std::string version_table;
  // The lock settings of the command line (spec.database): empty / absent when unset.
  std::string lock_mode;  // "session" | "lease"
  std::string lock_url_secret_name;
  std::string lock_url_secret_key;
  std::string ddl_lock_timeout;  // a duration, e.g. "5s"
  std::optional<int64_t> ddl_retries;
  std::vector<std::string> config_maps;
  bool suspend = false;
};

// metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // "True" | "False" | "Unknown"
  int64_t observed_generation = 0;
  std::string last_transition_time;
  std::string reason;
  std::string message;

  bool operator==(const Condition& o) const {
    return type == o.type && status == o.status && observed_generation == o.observed_generation &&
           last_transition_time == o.last_transition_time && reason == o.reason &&
           message == o.message;
  }
};

// One entry of status.lastApplied.
struct AppliedStep {
  std::string revision;
  std::string direction;  // "upgrade" | "downgrade"
  std::string started_at;
  int64_t duration_ms = 0;
  std::string applied_by;

  bool operator==(const AppliedStep& o) const {
    return revision == o.revision && direction == o.direction && started_at == o.started_at &&
           duration_ms == o.duration_ms && applied_by == o.applied_by;
  }
};

struct LastError {
  std::string revision;
  std::string sql_state;
  std::string message;

  bool operator==(const LastError& o) const {
    return revision == o.revision && sql_state == o.sql_state && message == o.message;
  }
};

// status of a MigrationJob. Empty strings and absent optionals are fields that are not set.
struct MigrationJobStatus {
  int64_t observed_generation = 0;
  std::string phase;  // "Pending" | "Running" | "Succeeded" | "Failed"
  std::vector<std::string> current_revisions;
  std::vector<std::string> target_revisions;
  std::vector<std::string> pending_revisions;
  std::string migrations_digest;          // "sha256:...": the content this status describes
  std::vector<AppliedStep> last_applied;  // newest first
  std::optional<LastError> last_error;
  std::string started_at;
  std::string completed_at;
  std::vector<Condition> conditions;

  bool operator==(const MigrationJobStatus& o) const {
    return observed_generation == o.observed_generation && phase == o.phase &&
           current_revisions == o.current_revisions && target_revisions == o.target_revisions &&
           pending_revisions == o.pending_revisions && migrations_digest == o.migrations_digest &&
           last_applied == o.last_applied && last_error == o.last_error &&
           started_at == o.started_at && completed_at == o.completed_at &&
           conditions == o.conditions;
  }
  bool operator!=(const MigrationJobStatus& o) const { return !(*this == o); }
};

struct MigrationJob {
  ObjectMeta metadata;
  MigrationJobSpec spec;
  std::optional<MigrationJobStatus> status;
};

// The core/v1 kinds whose metadata the operator watches (to notice a changed ConfigMap or Secret
// that a MigrationJob names).
enum class CoreResource { kConfigMaps, kSecrets };

// One page of a LIST of ConfigMaps or Secrets, metadata only (a Secret's data is never kept).
struct ObjectMetaList {
  std::string resource_version;
  std::string continue_token;
  std::vector<ObjectMeta> items;
};

// One page of a LIST of MigrationJobs. Every page of one list shares `resource_version` (the
// snapshot the list describes); `continue_token` is non-empty while more pages follow.
struct MigrationJobList {
  std::string resource_version;
  std::string continue_token;
  std::vector<MigrationJob> items;
};

// core/v1 ConfigMap: `binary_data` values are decoded bytes.
struct ConfigMap {
  ObjectMeta metadata;
  std::map<std::string, std::string> data;
  std::map<std::string, std::string> binary_data;
};

// core/v1 Secret: `data` values are decoded bytes (the API server sends them base64-encoded).
// Its values never go into a log line or an error message.
struct Secret {
  ObjectMeta metadata;
  std::string type;
  std::map<std::string, std::string> data;
};

// coordination.k8s.io/v1 Lease, for leader election (kube-api.md section 6). Absent optionals are
// fields that are not set; times are MicroTime strings (RFC 3339, 6 fractional digits), sent and
// kept verbatim.
struct LeaseSpec {
  std::optional<std::string> holder_identity;
  std::optional<int32_t> lease_duration_seconds;
  std::optional<std::string> acquire_time;
  std::optional<std::string> renew_time;
  std::optional<int32_t> lease_transitions;

  bool operator==(const LeaseSpec& o) const {
    return holder_identity == o.holder_identity &&
           lease_duration_seconds == o.lease_duration_seconds && acquire_time == o.acquire_time &&
           renew_time == o.renew_time && lease_transitions == o.lease_transitions;
  }
};

struct Lease {
  ObjectMeta metadata;
  LeaseSpec spec;
};

// The type of a watch event (kube-api.md section 3).
enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark };

// One event of a watch. A BOOKMARK carries only `object.metadata.resource_version`; a DELETED
// event the object's last state. ERROR events are not events: the stream returns them as errors.
template <typename T>
struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  T object;
};

// A core/v1 Event about a MigrationJob.
struct Event {
  std::string namespace_;
  std::string name;  // empty: the client derives `<object>.<unique hex>` as client-go does
  // involvedObject
  std::string object_api_version = kApiVersion;
  std::string object_kind = kKind;
  std::string object_name;
  std::string object_uid;
  std::string object_resource_version;
  std::string type;    // "Normal" | "Warning"
  std::string reason;  // CamelCase, e.g. "MigrationApplied"
  std::string message;
  std::string action;               // machine-readable, e.g. "Migrate"
  std::string reporting_component;  // e.g. "sluice"
  std::string reporting_instance;   // the pod name
  std::string timestamp;            // RFC 3339, seconds: firstTimestamp and lastTimestamp
};

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_TYPES_H_
