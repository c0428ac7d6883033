// The manifest loader, in parts under internal/:
//  - diagnostics: the error lines of a load (`FILE:LINE:COLUMN: problem; fix`), offsets to lines;
//  - yaml_documents: a file's bytes checked, split into documents, each parsed by yaml-cpp;
//  - simple_reader: the fast reader of the simple form nearly every manifest takes;
//  - manifest_schema: the keys and values of a revision's document, and the Migration built;
//  - directory_load: listing the directories, reading the files, the parallel, ordered load.
// yaml-cpp is included under internal/ only, and every YAML exception is caught there or here:
// no yaml-cpp type or exception leaves pkg/manifest.
#include "pkg/manifest/loader.h"

#include <exception>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "pkg/manifest/internal/diagnostics.h"
#include "pkg/manifest/internal/directory_load.h"
#include "pkg/manifest/internal/manifest_schema.h"

namespace sluice::manifest {

absl::StatusOr<std::vector<Migration>> LoadDirectories(
    const std::vector<std::string>& directories) {
  try {
    return internal::LoadDirectoriesOrThrow(directories);
  } catch (const std::exception& e) {
    // Only std::bad_alloc and the like can get here; the contract is a Status, never a throw.
    return absl::InternalError(absl::StrCat("loading migrations: ", e.what()));
  } catch (...) {
    return absl::InternalError("loading migrations: unknown exception");
  }
}

absl::StatusOr<std::vector<ManifestFile>> ListManifestFiles(
    const std::vector<std::string>& directories) {
  try {
    return internal::ListManifestFilesOrThrow(directories);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("listing migrations: ", e.what()));
  } catch (...) {
    return absl::InternalError("listing migrations: unknown exception");
  }
}

absl::StatusOr<std::vector<Migration>> ParseManifest(absl::string_view text,
                                                     absl::string_view file_name) {
  try {
    internal::Errors errors;
    std::vector<Migration> migrations;
    internal::ParseFile(text, file_name, &migrations, &errors);
    internal::CheckDuplicates(migrations, &errors);
    if (!errors.empty()) return errors.ToStatus();
    return migrations;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(file_name, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(file_name, ": unknown exception"));
  }
}

bool IsValidRevisionId(absl::string_view revision) {
  return internal::RevisionIdProblem(revision).empty();
}

}  // namespace sluice::manifest
