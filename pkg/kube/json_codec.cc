#include "pkg/kube/json_codec.h"

#include <cpprest/json.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "pkg/kube/api_error.h"

namespace sluice::kube {
namespace {

using web::json::value;

std::string GetString(const value& object, const char* key) {
  if (object.is_object() && object.has_string_field(key)) return object.at(key).as_string();
  return "";
}

int64_t GetInt(const value& object, const char* key) {
  if (object.is_object() && object.has_number_field(key)) {
    return object.at(key).as_number().to_int64();
  }
  return 0;
}

std::vector<std::string> GetStrings(const value& object, const char* key) {
  std::vector<std::string> out;
  if (!object.is_object() || !object.has_array_field(key)) return out;
  for (const value& item : object.at(key).as_array()) {
    if (item.is_string()) out.push_back(item.as_string());
  }
  return out;
}

value Strings(const std::vector<std::string>& items) {
  std::vector<value> values;
  values.reserve(items.size());
  for (const auto& item : items) values.push_back(value::string(item));
  return value::array(std::move(values));
}

value StringOrNull(const std::string& text) {
  return text.empty() ? value::null() : value::string(text);
}

MigrationJobStatus ParseStatus(const value& s) {
  MigrationJobStatus status;
  status.observed_generation = GetInt(s, "observedGeneration");
  status.phase = GetString(s, "phase");
  status.current_revisions = GetStrings(s, "currentRevisions");
  status.target_revisions = GetStrings(s, "targetRevisions");
  status.pending_revisions = GetStrings(s, "pendingRevisions");
  status.migrations_digest = GetString(s, "migrationsDigest");
  if (s.has_array_field("lastApplied")) {
    for (const value& item : s.at("lastApplied").as_array()) {
      if (!item.is_object()) continue;
      AppliedStep step;
      step.revision = GetString(item, "revision");
      step.direction = GetString(item, "direction");
      step.started_at = GetString(item, "startedAt");
      step.duration_ms = GetInt(item, "durationMs");
      step.applied_by = GetString(item, "appliedBy");
      status.last_applied.push_back(std::move(step));
    }
  }
  if (s.has_object_field("lastError")) {
    const value& e = s.at("lastError");
    status.last_error =
        LastError{GetString(e, "revision"), GetString(e, "sqlState"), GetString(e, "message")};
  }
  status.started_at = GetString(s, "startedAt");
  status.completed_at = GetString(s, "completedAt");
  if (s.has_array_field("conditions")) {
    for (const value& item : s.at("conditions").as_array()) {
      if (!item.is_object()) continue;
      Condition c;
      c.type = GetString(item, "type");
      c.status = GetString(item, "status");
      c.observed_generation = GetInt(item, "observedGeneration");
      c.last_transition_time = GetString(item, "lastTransitionTime");
      c.reason = GetString(item, "reason");
      c.message = GetString(item, "message");
      status.conditions.push_back(std::move(c));
    }
  }
  return status;
}

absl::StatusOr<value> ParseObject(absl::string_view json, absl::string_view what) {
  value root;
  try {
    root = value::parse(std::string(json));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the API server sent a ", what, " that is not JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the API server sent a ", what, " that is not an object"));
  }
  return root;
}

ObjectMeta ParseMeta(const value& root) {
  ObjectMeta meta;
  if (!root.has_object_field("metadata")) return meta;
  const value& m = root.at("metadata");
  meta.namespace_ = GetString(m, "namespace");
  meta.name = GetString(m, "name");
  meta.uid = GetString(m, "uid");
  meta.resource_version = GetString(m, "resourceVersion");
  meta.generation = GetInt(m, "generation");
  meta.creation_timestamp = GetString(m, "creationTimestamp");
  return meta;
}

MigrationJob MigrationJobFromValue(const value& root) {
  MigrationJob job;
  job.metadata = ParseMeta(root);
  if (root.has_object_field("spec")) {
    const value& spec = root.at("spec");
    job.spec.target = GetString(spec, "target");
    job.spec.suspend = spec.has_boolean_field("suspend") && spec.at("suspend").as_bool();
    if (spec.has_object_field("database")) {
      const value& db = spec.at("database");
      job.spec.schema = GetString(db, "schema");
      job.spec.version_table = GetString(db, "versionTable");
      if (db.has_object_field("urlSecretRef")) {
        job.spec.url_secret_name = GetString(db.at("urlSecretRef"), "name");
        job.spec.url_secret_key = GetString(db.at("urlSecretRef"), "key");
      }
      job.spec.lock_mode = GetString(db, "lockMode");
      if (db.has_object_field("lockDatabaseUrlSecretRef")) {
        job.spec.lock_url_secret_name = GetString(db.at("lockDatabaseUrlSecretRef"), "name");
        job.spec.lock_url_secret_key = GetString(db.at("lockDatabaseUrlSecretRef"), "key");
      }
      job.spec.ddl_lock_timeout = GetString(db, "ddlLockTimeout");
      if (db.has_number_field("ddlRetries") && db.at("ddlRetries").is_integer()) {
        job.spec.ddl_retries = db.at("ddlRetries").as_number().to_int64();
      }
    }
    if (spec.has_object_field("migrations") &&
        spec.at("migrations").has_array_field("configMaps")) {
      for (const value& cm : spec.at("migrations").at("configMaps").as_array()) {
        const std::string name = GetString(cm, "name");
        if (!name.empty()) job.spec.config_maps.push_back(name);
      }
    }
  }
  if (root.has_object_field("status")) job.status = ParseStatus(root.at("status"));
  return job;
}

std::optional<std::string> GetOptionalString(const value& object, const char* key) {
  if (object.is_object() && object.has_string_field(key)) return object.at(key).as_string();
  return std::nullopt;
}

std::optional<int32_t> GetOptionalInt32(const value& object, const char* key) {
  if (object.is_object() && object.has_number_field(key)) {
    return static_cast<int32_t>(object.at(key).as_number().to_int64());
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<MigrationJob> ParseMigrationJob(absl::string_view json) {
  absl::StatusOr<value> root = ParseObject(json, "MigrationJob");
  if (!root.ok()) return root.status();
  return MigrationJobFromValue(*root);
}

absl::StatusOr<MigrationJobList> ParseMigrationJobList(absl::string_view json) {
  absl::StatusOr<value> root = ParseObject(json, "MigrationJobList");
  if (!root.ok()) return root.status();
  MigrationJobList list;
  if (root->has_object_field("metadata")) {
    const value& m = root->at("metadata");
    list.resource_version = GetString(m, "resourceVersion");
    list.continue_token = GetString(m, "continue");
  }
  if (root->has_array_field("items")) {
    for (const value& item : root->at("items").as_array()) {
      if (item.is_object()) list.items.push_back(MigrationJobFromValue(item));
    }
  }
  return list;
}

namespace {

// The type and object of one watch line; an ERROR event as its Status. `what` names the watched
// collection in errors.
absl::StatusOr<std::pair<WatchEventType, value>> ParseWatchLine(absl::string_view line,
                                                                absl::string_view what) {
  absl::StatusOr<value> root = ParseObject(line, "watch event");
  if (!root.ok()) return root.status();
  const std::string type = GetString(*root, "type");
  value object = root->has_object_field("object") ? root->at("object") : value::object();
  if (type == "ERROR") {
    // The object is a Status (kube-api.md section 3): the same error as an HTTP answer.
    ApiError error =
        ParseApiError(static_cast<int>(GetInt(object, "code")), object.serialize(), "");
    if (error.http_code == 0) error.http_code = 500;
    return ApiErrorToStatus(error, absl::StrCat("watching ", what));
  }
  WatchEventType event_type;
  if (type == "ADDED") {
    event_type = WatchEventType::kAdded;
  } else if (type == "MODIFIED") {
    event_type = WatchEventType::kModified;
  } else if (type == "DELETED") {
    event_type = WatchEventType::kDeleted;
  } else if (type == "BOOKMARK") {
    event_type = WatchEventType::kBookmark;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("the API server sent a watch event of unknown type \"", type, "\""));
  }
  return std::make_pair(event_type, std::move(object));
}

}  // namespace

absl::StatusOr<WatchEvent<MigrationJob>> ParseMigrationJobWatchEvent(absl::string_view line) {
  absl::StatusOr<std::pair<WatchEventType, value>> parsed =
      ParseWatchLine(line, "migrationjobs.sluice.dev");
  if (!parsed.ok()) return parsed.status();
  WatchEvent<MigrationJob> event;
  event.type = parsed->first;
  event.object = MigrationJobFromValue(parsed->second);
  return event;
}

absl::StatusOr<ObjectMetaList> ParseObjectMetaList(absl::string_view json) {
  absl::StatusOr<value> root = ParseObject(json, "list");
  if (!root.ok()) return root.status();
  ObjectMetaList list;
  if (root->has_object_field("metadata")) {
    const value& m = root->at("metadata");
    list.resource_version = GetString(m, "resourceVersion");
    list.continue_token = GetString(m, "continue");
  }
  if (root->has_array_field("items")) {
    for (const value& item : root->at("items").as_array()) {
      if (item.is_object()) list.items.push_back(ParseMeta(item));
    }
  }
  return list;
}

absl::StatusOr<WatchEvent<ObjectMeta>> ParseObjectMetaWatchEvent(absl::string_view line,
                                                                 absl::string_view what) {
  absl::StatusOr<std::pair<WatchEventType, value>> parsed = ParseWatchLine(line, what);
  if (!parsed.ok()) return parsed.status();
  WatchEvent<ObjectMeta> event;
  event.type = parsed->first;
  event.object = ParseMeta(parsed->second);
  return event;
}

absl::StatusOr<ConfigMap> ParseConfigMap(absl::string_view json) {
  absl::StatusOr<value> root = ParseObject(json, "ConfigMap");
  if (!root.ok()) return root.status();
  ConfigMap cm;
  cm.metadata = ParseMeta(*root);
  if (root->has_object_field("data")) {
    for (const auto& [key, v] : root->at("data").as_object()) {
      if (v.is_string()) cm.data[key] = v.as_string();
    }
  }
  if (root->has_object_field("binaryData")) {
    for (const auto& [key, v] : root->at("binaryData").as_object()) {
      std::string decoded;
      if (!v.is_string() || !absl::Base64Unescape(v.as_string(), &decoded)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ConfigMap ", cm.metadata.name, ": binaryData key \"", key, "\" is not base64"));
      }
      cm.binary_data[key] = std::move(decoded);
    }
  }
  return cm;
}

absl::StatusOr<Secret> ParseSecret(absl::string_view json) {
  value root;
  try {
    root = value::parse(std::string(json));
  } catch (const std::exception&) {
    // The parser's message may quote the text, which holds the secret's values.
    return absl::InvalidArgumentError("the API server sent a Secret that is not JSON");
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError("the API server sent a Secret that is not an object");
  }
  Secret secret;
  secret.metadata = ParseMeta(root);
  secret.type = GetString(root, "type");
  if (root.has_object_field("data")) {
    for (const auto& [key, v] : root.at("data").as_object()) {
      std::string decoded;
      if (!v.is_string() || !absl::Base64Unescape(v.as_string(), &decoded)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Secret ", secret.metadata.name, ": the value of key \"", key, "\" is not base64"));
      }
      secret.data[key] = std::move(decoded);
    }
  }
  return secret;
}

absl::StatusOr<Lease> ParseLease(absl::string_view json) {
  absl::StatusOr<value> root = ParseObject(json, "Lease");
  if (!root.ok()) return root.status();
  Lease lease;
  lease.metadata = ParseMeta(*root);
  if (root->has_object_field("spec")) {
    const value& spec = root->at("spec");
    lease.spec.holder_identity = GetOptionalString(spec, "holderIdentity");
    lease.spec.lease_duration_seconds = GetOptionalInt32(spec, "leaseDurationSeconds");
    lease.spec.acquire_time = GetOptionalString(spec, "acquireTime");
    lease.spec.renew_time = GetOptionalString(spec, "renewTime");
    lease.spec.lease_transitions = GetOptionalInt32(spec, "leaseTransitions");
  }
  return lease;
}

std::string LeaseJson(const Lease& lease) {
  value root = value::object();
  root["apiVersion"] = value::string("coordination.k8s.io/v1");
  root["kind"] = value::string("Lease");
  value metadata = value::object();
  metadata["name"] = value::string(lease.metadata.name);
  metadata["namespace"] = value::string(lease.metadata.namespace_);
  if (!lease.metadata.resource_version.empty()) {
    metadata["resourceVersion"] = value::string(lease.metadata.resource_version);
  }
  root["metadata"] = std::move(metadata);
  value spec = value::object();
  const LeaseSpec& s = lease.spec;
  if (s.holder_identity) spec["holderIdentity"] = value::string(*s.holder_identity);
  if (s.lease_duration_seconds) {
    spec["leaseDurationSeconds"] = value::number(*s.lease_duration_seconds);
  }
  if (s.acquire_time) spec["acquireTime"] = value::string(*s.acquire_time);
  if (s.renew_time) spec["renewTime"] = value::string(*s.renew_time);
  if (s.lease_transitions) spec["leaseTransitions"] = value::number(*s.lease_transitions);
  root["spec"] = std::move(spec);
  return root.serialize();
}

std::string StatusMergePatch(const MigrationJobStatus& status, absl::string_view resource_version) {
  value s = value::object();
  s["observedGeneration"] = value::number(status.observed_generation);
  s["phase"] = StringOrNull(status.phase);
  s["currentRevisions"] = Strings(status.current_revisions);
  s["targetRevisions"] = Strings(status.target_revisions);
  s["pendingRevisions"] = Strings(status.pending_revisions);
  s["migrationsDigest"] = StringOrNull(status.migrations_digest);
  std::vector<value> applied;
  for (const AppliedStep& step : status.last_applied) {
    value item = value::object();
    item["revision"] = value::string(step.revision);
    item["direction"] = value::string(step.direction);
    item["startedAt"] = value::string(step.started_at);
    item["durationMs"] = value::number(step.duration_ms);
    if (!step.applied_by.empty()) item["appliedBy"] = value::string(step.applied_by);
    applied.push_back(std::move(item));
  }
  s["lastApplied"] = value::array(std::move(applied));
  if (status.last_error) {
    // A whole object, not a merge: fields of an older error must not survive.
    value e = value::object();
    e["revision"] = StringOrNull(status.last_error->revision);
    e["sqlState"] = StringOrNull(status.last_error->sql_state);
    e["message"] = value::string(status.last_error->message);
    s["lastError"] = std::move(e);
  } else {
    s["lastError"] = value::null();
  }
  s["startedAt"] = StringOrNull(status.started_at);
  s["completedAt"] = StringOrNull(status.completed_at);
  std::vector<value> conditions;
  for (const Condition& c : status.conditions) {
    value item = value::object();
    item["type"] = value::string(c.type);
    item["status"] = value::string(c.status);
    item["observedGeneration"] = value::number(c.observed_generation);
    item["lastTransitionTime"] = value::string(c.last_transition_time);
    item["reason"] = value::string(c.reason);
    item["message"] = value::string(c.message);
    conditions.push_back(std::move(item));
  }
  s["conditions"] = value::array(std::move(conditions));

  value patch = value::object();
  if (!resource_version.empty()) {
    value metadata = value::object();
    metadata["resourceVersion"] = value::string(std::string(resource_version));
    patch["metadata"] = std::move(metadata);
  }
  patch["status"] = std::move(s);
  return patch.serialize();
}

std::string EventJson(const Event& event) {
  value e = value::object();
  e["apiVersion"] = value::string("v1");
  e["kind"] = value::string("Event");
  value metadata = value::object();
  metadata["name"] = value::string(event.name);
  metadata["namespace"] = value::string(event.namespace_);
  e["metadata"] = std::move(metadata);
  value involved = value::object();
  involved["apiVersion"] = value::string(event.object_api_version);
  involved["kind"] = value::string(event.object_kind);
  involved["namespace"] = value::string(event.namespace_);
  involved["name"] = value::string(event.object_name);
  if (!event.object_uid.empty()) involved["uid"] = value::string(event.object_uid);
  if (!event.object_resource_version.empty()) {
    involved["resourceVersion"] = value::string(event.object_resource_version);
  }
  e["involvedObject"] = std::move(involved);
  e["type"] = value::string(event.type);
  e["reason"] = value::string(event.reason);
  e["message"] = value::string(event.message);
  if (!event.action.empty()) e["action"] = value::string(event.action);
  value source = value::object();
  source["component"] = value::string(event.reporting_component);
  e["source"] = std::move(source);
  e["reportingComponent"] = value::string(event.reporting_component);
  e["reportingInstance"] = value::string(event.reporting_instance);
  e["firstTimestamp"] = value::string(event.timestamp);
  e["lastTimestamp"] = value::string(event.timestamp);
  e["count"] = value::number(1);
  return e.serialize();
}

}  // namespace sluice::kube
