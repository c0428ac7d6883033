// The structural OpenAPI schema of a CustomResourceDefinition (manifests/crd.yaml), loaded with
// yaml-cpp, and what the API server does with it on every write (kube-api.md section 4): prune
// unknown fields, drop nulls of non-nullable fields, then validate types, enums, patterns, lengths,
// limits, formats, required fields and list-map keys into field errors. Test support only.
// Immutable after Load; thread-safe.
#ifndef SLUICE_TESTS_SUPPORT_FAKE_KUBE_CRD_SCHEMA_H_
#define SLUICE_TESTS_SUPPORT_FAKE_KUBE_CRD_SCHEMA_H_

#include <cpprest/json.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::fake_kube {

// One field error, as the API server lists it in details.causes.
struct FieldError {
  std::string reason;  // FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
  std::string field;   // e.g. "status.conditions[0].reason"
  std::string message;
};

struct SchemaNode {
  std::string type;
  std::map<std::string, std::shared_ptr<SchemaNode>> properties;
  std::shared_ptr<SchemaNode> items;
  std::vector<std::string> required;
  std::vector<web::json::value> enum_values;
  std::optional<std::string> pattern;
  std::optional<int64_t> min_length, max_length, min_items, max_items;
  std::optional<double> minimum, maximum;
  std::string format;
  std::string list_type;
  std::vector<std::string> list_map_keys;
  bool nullable = false;
  bool preserve_unknown_fields = false;
};

// One of the CRD's additionalPrinterColumns (kubectl's columns, served in a Table).
struct PrinterColumn {
  std::string name;
  std::string type;  // integer, number, string, boolean, date
  std::string format;
  std::string description;
  std::string json_path;  // e.g. ".status.phase"
  int priority = 0;
};

// The CRD facts a fake API server needs.
struct CrdInfo {
  std::string group;
  std::string version;
  std::string plural;
  std::string singular;
  std::string kind;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  std::vector<PrinterColumn> printer_columns;
  bool status_subresource = false;
  std::shared_ptr<SchemaNode> schema;  // openAPIV3Schema
};

// Loads the CRD at `path` and checks that its schema is structural (kube-api.md section 4): a type
// on every node, no $ref / additionalProperties: false / uniqueItems, and (sluice's own rule) no
// x-kubernetes-preserve-unknown-fields.
absl::StatusOr<CrdInfo> LoadCrd(const std::string& path);
// The same for a CRD sent to the API server (JSON or YAML text); errors name `source`.
absl::StatusOr<CrdInfo> LoadCrdFromText(const std::string& text, const std::string& source);

// What a write does to an object.
struct SchemaResult {
  std::vector<std::string> pruned;  // paths of fields the server dropped, e.g. "status.foo"
  std::vector<FieldError> errors;
};

// Prunes `object` (a whole custom resource) in place per `schema`, and returns what was pruned.
// `metadata`, `apiVersion` and `kind` at the root are left alone, as the server handles them.
std::vector<std::string> Prune(const SchemaNode& schema, web::json::value& object);

// Returns each YAML document of the file at `path` as JSON text (manifests in tests).
absl::StatusOr<std::vector<std::string>> YamlFileToJson(const std::string& path);

// Validates `value` at `path` against `schema`; appends to `errors`.
void Validate(const SchemaNode& schema, const web::json::value& value, const std::string& path,
              std::vector<FieldError>& errors);

}  // namespace sluice::fake_kube

#endif  // SLUICE_TESTS_SUPPORT_FAKE_KUBE_CRD_SCHEMA_H_
