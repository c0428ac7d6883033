#include "tests/support/fake_kube/crd_schema.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice::fake_kube {
namespace {

using web::json::value;

// Converts a YAML scalar/sequence/map to JSON, typing scalars as YAML 1.2's core schema does.
value YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      value out = value::object();
      for (const auto& entry : node) out[entry.first.as<std::string>()] = YamlToJson(entry.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      std::vector<value> items;
      for (const auto& item : node) items.push_back(YamlToJson(item));
      return value::array(std::move(items));
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      if (node.Tag() == "!") return value::string(text);  // quoted
      if (text == "true") return value::boolean(true);
      if (text == "false") return value::boolean(false);
      if (text == "null" || text == "~") return value::null();
      static const std::regex kInt("^-?[0-9]+$");
      static const std::regex kFloat("^-?[0-9]+\\.[0-9]+([eE][-+]?[0-9]+)?$");
      if (std::regex_match(text, kInt))
        return value::number(static_cast<int64_t>(std::stoll(text)));
      if (std::regex_match(text, kFloat)) return value::number(std::stod(text));
      return value::string(text);
    }
    default:
      return value::null();
  }
}

absl::StatusOr<std::shared_ptr<SchemaNode>> Build(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a mapping"));
  for (const char* forbidden : {"$ref", "definitions", "uniqueItems"}) {
    if (node[forbidden]) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", forbidden, " is forbidden"));
    }
  }
  if (node["x-kubernetes-preserve-unknown-fields"]) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": x-kubernetes-preserve-unknown-fields would hide typos from pruning"));
  }
  if (node["additionalProperties"] && node["additionalProperties"].IsScalar() &&
      node["additionalProperties"].as<std::string>() == "false") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": additionalProperties: false is forbidden"));
  }
  auto out = std::make_shared<SchemaNode>();
  if (!node["type"] || node["type"].as<std::string>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": every node of a structural schema needs a type"));
  }
  out->type = node["type"].as<std::string>();
  static const std::set<std::string> kTypes = {"object",  "array",  "string",
                                               "integer", "number", "boolean"};
  if (!kTypes.count(out->type)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unknown type ", out->type));
  }
  if (node["properties"]) {
    for (const auto& entry : node["properties"]) {
      const std::string name = entry.first.as<std::string>();
      auto child = Build(entry.second, absl::StrCat(path, ".properties.", name));
      if (!child.ok()) return child.status();
      out->properties[name] = *child;
    }
  }
  if (out->type == "array") {
    if (!node["items"])
      return absl::InvalidArgumentError(absl::StrCat(path, ": an array needs items"));
    auto items = Build(node["items"], absl::StrCat(path, ".items"));
    if (!items.ok()) return items.status();
    out->items = *items;
  }
  if (node["required"]) {
    for (const auto& r : node["required"]) {
      const std::string name = r.as<std::string>();
      if (!out->properties.count(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": required field ", name, " is not declared"));
      }
      out->required.push_back(name);
    }
  }
  if (node["enum"]) {
    for (const auto& e : node["enum"]) out->enum_values.push_back(YamlToJson(e));
  }
  if (node["pattern"]) out->pattern = node["pattern"].as<std::string>();
  if (node["minLength"]) out->min_length = node["minLength"].as<int64_t>();
  if (node["maxLength"]) out->max_length = node["maxLength"].as<int64_t>();
  if (node["minItems"]) out->min_items = node["minItems"].as<int64_t>();
  if (node["maxItems"]) out->max_items = node["maxItems"].as<int64_t>();
  if (node["minimum"]) out->minimum = node["minimum"].as<double>();
  if (node["maximum"]) out->maximum = node["maximum"].as<double>();
  if (node["format"]) out->format = node["format"].as<std::string>();
  if (node["nullable"]) out->nullable = node["nullable"].as<bool>();
  if (node["x-kubernetes-list-type"])
    out->list_type = node["x-kubernetes-list-type"].as<std::string>();
  if (node["x-kubernetes-list-map-keys"]) {
    for (const auto& k : node["x-kubernetes-list-map-keys"]) {
      out->list_map_keys.push_back(k.as<std::string>());
    }
  }
  if (out->list_type == "map" &&
      (out->list_map_keys.empty() || !out->items || out->items->type != "object")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": x-kubernetes-list-type map needs object items and list-map-keys"));
  }
  for (const std::string& key : out->list_map_keys) {
    if (!out->items->properties.count(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": list-map key ", key, " is not declared"));
    }
  }
  return out;
}

std::string Join(const std::string& path, const std::string& field) {
  return path.empty() ? field : absl::StrCat(path, ".", field);
}

void PruneNode(const SchemaNode& schema, value& v, const std::string& path,
               std::vector<std::string>& pruned) {
  if (schema.preserve_unknown_fields) return;
  if (v.is_object() && schema.type == "object") {
    std::vector<std::string> drop;
    for (auto& [key, child] : v.as_object()) {
      auto it = schema.properties.find(key);
      if (it == schema.properties.end()) {
        drop.push_back(key);
        continue;
      }
      if (child.is_null() && !it->second->nullable) {
        // Nulls of non-nullable fields are dropped silently (PruneNonNullableNullsWithoutDefaults).
        drop.push_back(absl::StrCat("\x01", key));
        continue;
      }
      PruneNode(*it->second, child, Join(path, key), pruned);
    }
    for (const std::string& key : drop) {
      if (key[0] == '\x01') {
        v.erase(key.substr(1));
      } else {
        pruned.push_back(Join(path, key));
        v.erase(key);
      }
    }
  } else if (v.is_array() && schema.type == "array" && schema.items) {
    auto& items = v.as_array();
    for (size_t i = 0; i < items.size(); ++i) {
      PruneNode(*schema.items, items.at(i), absl::StrCat(path, "[", i, "]"), pruned);
    }
  }
}

std::string TypeOf(const value& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

size_t RuneCount(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool IsDateTime(const std::string& s) {
  static const std::regex kDateTime(
      "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-"
      "9]{2})$");
  return std::regex_match(s, kDateTime);
}

}  // namespace

namespace {
absl::StatusOr<CrdInfo> CrdFromNode(const YAML::Node& root, const std::string& path);
}  // namespace

absl::StatusOr<CrdInfo> LoadCrd(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  return CrdFromNode(root, path);
}

absl::StatusOr<CrdInfo> LoadCrdFromText(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  return CrdFromNode(root, source);
}

namespace {

absl::StatusOr<CrdInfo> CrdFromNode(const YAML::Node& root, const std::string& path) {
  try {
    CrdInfo info;
    const YAML::Node spec = root["spec"];
    info.group = spec["group"].as<std::string>();
    info.plural = spec["names"]["plural"].as<std::string>();
    info.kind = spec["names"]["kind"].as<std::string>();
    if (spec["names"]["singular"]) info.singular = spec["names"]["singular"].as<std::string>();
    for (const char* key : {"shortNames", "categories"}) {
      if (!spec["names"][key]) continue;
      for (const YAML::Node& n : spec["names"][key]) {
        (std::string(key) == "shortNames" ? info.short_names : info.categories)
            .push_back(n.as<std::string>());
      }
    }
    const YAML::Node versions = spec["versions"];
    if (!versions || versions.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": expected exactly one version"));
    }
    const YAML::Node version = versions[0];
    info.version = version["name"].as<std::string>();
    info.status_subresource = version["subresources"] && version["subresources"]["status"];
    const YAML::Node columns =
        version["additionalPrinterColumns"] ? version["additionalPrinterColumns"] : YAML::Node();
    for (const YAML::Node& c : columns) {
      PrinterColumn column;
      column.name = c["name"].as<std::string>();
      column.type = c["type"].as<std::string>();
      column.json_path = c["jsonPath"].as<std::string>();
      if (c["format"]) column.format = c["format"].as<std::string>();
      if (c["description"]) column.description = c["description"].as<std::string>();
      if (c["priority"]) column.priority = c["priority"].as<int>();
      info.printer_columns.push_back(std::move(column));
    }
    auto schema = Build(version["schema"]["openAPIV3Schema"], "openAPIV3Schema");
    if (!schema.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", schema.status().message()));
    }
    info.schema = *schema;
    return info;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<std::vector<std::string>> YamlFileToJson(const std::string& path) {
  try {
    std::vector<std::string> out;
    for (const YAML::Node& doc : YAML::LoadAllFromFile(path)) {
      if (doc.IsNull()) continue;
      out.push_back(YamlToJson(doc).serialize());
    }
    return out;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

std::vector<std::string> Prune(const SchemaNode& schema, value& object) {
  std::vector<std::string> pruned;
  if (!object.is_object()) return pruned;
  std::vector<std::string> drop;
  for (auto& [key, child] : object.as_object()) {
    if (key == "metadata" || key == "apiVersion" || key == "kind") continue;
    auto it = schema.properties.find(key);
    if (it == schema.properties.end()) {
      drop.push_back(key);
      continue;
    }
    PruneNode(*it->second, child, key, pruned);
  }
  for (const std::string& key : drop) {
    pruned.push_back(key);
    object.erase(key);
  }
  return pruned;
}

void Validate(const SchemaNode& schema, const value& v, const std::string& path,
              std::vector<FieldError>& errors) {
  if (v.is_null()) {
    if (!schema.nullable) {
      errors.push_back({"FieldValueInvalid", path,
                        absl::StrCat(path, ": Invalid value: \"null\": ", path,
                                     " in body must be of type ", schema.type, ": \"null\"")});
    }
    return;
  }
  const std::string actual = TypeOf(v);
  const bool type_ok = schema.type == actual || (schema.type == "number" && actual == "integer");
  if (!type_ok) {
    errors.push_back(
        {"FieldValueInvalid", path,
         absl::StrCat(path, ": Invalid value: \"", actual, "\": ", path,
                      " in body must be of type ", schema.type, ": \"", actual, "\"")});
    return;
  }
  if (!schema.enum_values.empty()) {
    bool found = false;
    std::vector<std::string> supported;
    for (const value& e : schema.enum_values) {
      if (e == v) found = true;
      supported.push_back(e.serialize());
    }
    if (!found) {
      errors.push_back({"FieldValueNotSupported", path,
                        absl::StrCat(path, ": Unsupported value: ", v.serialize(),
                                     ": supported values: ", absl::StrJoin(supported, ", "))});
    }
  }
  if (schema.type == "string") {
    const std::string& s = v.as_string();
    const size_t runes = RuneCount(s);
    if (schema.max_length && runes > static_cast<size_t>(*schema.max_length)) {
      errors.push_back(
          {"FieldValueTooLong", path,
           absl::StrCat(path, ": Too long: may not be longer than ", *schema.max_length)});
    }
    if (schema.min_length && runes < static_cast<size_t>(*schema.min_length)) {
      errors.push_back(
          {"FieldValueInvalid", path,
           absl::StrCat(path, ": Invalid value: \"", s, "\": ", path,
                        " in body should be at least ", *schema.min_length, " chars long")});
    }
    if (schema.pattern && !std::regex_search(s, std::regex(*schema.pattern))) {
      errors.push_back({"FieldValueInvalid", path,
                        absl::StrCat(path, ": Invalid value: \"", s, "\": ", path,
                                     " in body should match '", *schema.pattern, "'")});
    }
    if (schema.format == "date-time" && !IsDateTime(s)) {
      errors.push_back({"FieldValueInvalid", path,
                        absl::StrCat(path, ": Invalid value: \"", s, "\": ", path,
                                     " in body must be of type date-time: \"", s, "\"")});
    }
  }
  if (schema.type == "integer" || schema.type == "number") {
    const double d = v.as_number().to_double();
    if (schema.minimum && d < *schema.minimum) {
      errors.push_back(
          {"FieldValueInvalid", path,
           absl::StrCat(path, ": Invalid value: ", v.serialize(), ": ", path,
                        " in body should be greater than or equal to ", *schema.minimum)});
    }
    if (schema.maximum && d > *schema.maximum) {
      errors.push_back(
          {"FieldValueInvalid", path,
           absl::StrCat(path, ": Invalid value: ", v.serialize(), ": ", path,
                        " in body should be less than or equal to ", *schema.maximum)});
    }
  }
  if (schema.type == "array") {
    const auto& items = v.as_array();
    if (schema.max_items && items.size() > static_cast<size_t>(*schema.max_items)) {
      errors.push_back({"FieldValueTooMany", path,
                        absl::StrCat(path, ": Too many: ", items.size(), ": must have at most ",
                                     *schema.max_items, " items")});
    }
    if (schema.min_items && items.size() < static_cast<size_t>(*schema.min_items)) {
      errors.push_back(
          {"FieldValueInvalid", path,
           absl::StrCat(path, ": Invalid value: ", items.size(), ": ", path,
                        " in body should have at least ", *schema.min_items, " items")});
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string item_path = absl::StrCat(path, "[", i, "]");
      Validate(*schema.items, items.at(i), item_path, errors);
      std::string key;
      if (schema.list_type == "map" && items.at(i).is_object()) {
        value k = value::object();
        for (const std::string& name : schema.list_map_keys) {
          if (items.at(i).has_field(name)) k[name] = items.at(i).at(name);
        }
        key = k.serialize();
      } else if (schema.list_type == "set") {
        key = items.at(i).serialize();
      }
      if (!key.empty() && !seen.insert(key).second) {
        errors.push_back({"FieldValueDuplicate", item_path,
                          absl::StrCat(item_path, ": Duplicate value: ", key)});
      }
    }
  }
  if (schema.type == "object") {
    for (const std::string& name : schema.required) {
      if (!v.has_field(name) || v.at(name).is_null()) {
        const std::string field = Join(path, name);
        errors.push_back({"FieldValueRequired", field, absl::StrCat(field, ": Required value")});
      }
    }
    for (const auto& [key, child] : v.as_object()) {
      if (path.empty() && (key == "metadata" || key == "apiVersion" || key == "kind")) continue;
      auto it = schema.properties.find(key);
      if (it != schema.properties.end()) Validate(*it->second, child, Join(path, key), errors);
    }
  }
}

}  // namespace sluice::fake_kube
