// Writes one revision as a manifest document (YAML) in the format of pkg/manifest, and names its
// file. Internal to pkg/alembic_import. Pure functions.
#ifndef SLUICE_PKG_ALEMBIC_IMPORT_MANIFEST_TEXT_H_
#define SLUICE_PKG_ALEMBIC_IMPORT_MANIFEST_TEXT_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sluice::alembic_import {

// What goes into one manifest.
struct ManifestFields {
  std::string revision;
  std::vector<std::string> down_revisions;
  std::string description;
  std::vector<std::string> branch_labels;
  std::vector<std::string> depends_on;
  bool transactional = true;
  std::string upgrade_sql;
  std::optional<std::string> downgrade_sql;  // nullopt: no `downgrade` key (irreversible)
  std::string script;                        // written as `x-alembic-script`
  std::string unconverted_reason;            // non-empty: the `unconverted` marker and its reason
};

// Returns the manifest text of `fields`, starting with a comment naming `alembic_version` and the
// script. With an unconverted reason, the marker comes first, so a reader sees it at once;
// `without_marker` then receives the same text without it (what the file reads as once the SQL
// is filled in and the marker deleted).
std::string ManifestText(const ManifestFields& fields, absl::string_view alembic_version,
                         std::string* without_marker = nullptr);

// Returns SQL as a manifest holds it: without leading blank lines and trailing whitespace, ending
// in one newline ("" stays ""). Neither changes what the SQL does.
std::string TidySql(absl::string_view sql);

// Returns the file name of the `index`-th revision (from 1) of `count`: the index, zero-padded to
// at least four digits so that names sort in revision order, then the revision and a slug of the
// description, e.g. `0001_fc0e7b400c13_initial_schema_with_executions_and_api_keys.yaml`.
std::string ManifestFileName(size_t index, size_t count, absl::string_view revision,
                             absl::string_view description);

}  // namespace sluice::alembic_import

#endif  // SLUICE_PKG_ALEMBIC_IMPORT_MANIFEST_TEXT_H_
