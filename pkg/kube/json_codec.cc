#include "pkg/kube/json_codec.h"

#include <cpprest/json.h>

#include "absl/strings/str_cat.h"

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

}  // namespace

absl::StatusOr<MigrationJob> ParseMigrationJob(absl::string_view json) {
  value root;
  try {
    root = value::parse(std::string(json));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the API server sent a MigrationJob that is not JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError("the API server sent a MigrationJob that is not an object");
  }
  MigrationJob job;
  if (root.has_object_field("metadata")) {
    const value& m = root.at("metadata");
    job.metadata.namespace_ = GetString(m, "namespace");
    job.metadata.name = GetString(m, "name");
    job.metadata.uid = GetString(m, "uid");
    job.metadata.resource_version = GetString(m, "resourceVersion");
    job.metadata.generation = GetInt(m, "generation");
    job.metadata.creation_timestamp = GetString(m, "creationTimestamp");
  }
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
