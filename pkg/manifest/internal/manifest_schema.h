// The manifest schema: the keys of a revision's document, the checks on their values, and the
// Migration built from them; a file's text read document by document into migrations. Internal to
// pkg/manifest.
#ifndef SLUICE_PKG_MANIFEST_INTERNAL_MANIFEST_SCHEMA_H_
#define SLUICE_PKG_MANIFEST_INTERNAL_MANIFEST_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "pkg/manifest/internal/diagnostics.h"
#include "pkg/manifest/migration.h"

namespace sluice::manifest::internal {

// Returns why `revision` is not a valid id, or "" when it is.
std::string RevisionIdProblem(absl::string_view revision);

// Parses one file's text, appending its valid migrations to `out` and its problems to `errors`.
// Does not check revision ids across documents (CheckDuplicates does).
void ParseFile(absl::string_view text, absl::string_view file, std::vector<Migration>* out,
               Errors* errors);

// Reports every revision id defined more than once, naming both places.
void CheckDuplicates(const std::vector<Migration>& migrations, Errors* errors);

}  // namespace sluice::manifest::internal

#endif  // SLUICE_PKG_MANIFEST_INTERNAL_MANIFEST_SCHEMA_H_
