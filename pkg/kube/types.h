// Plain structs for the Kubernetes objects sluice reads and writes: the MigrationJob custom
// resource (manifests/crd.yaml), its status with metav1.Condition, and core/v1 Events. No JSON or
// cpprest type appears here: pkg/kube converts internally. Timestamps are RFC 3339 strings, kept
// verbatim as the API server stores them for custom resources.
#ifndef SLUICE_PKG_KUBE_TYPES_H_
#define SLUICE_PKG_KUBE_TYPES_H_

#include <cstdint>
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
