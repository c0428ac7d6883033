// Listing the manifest files of migrations directories, reading them, and parsing them on a few
// threads into one ordered result. Internal to pkg/manifest.
#ifndef SLUICE_PKG_MANIFEST_INTERNAL_DIRECTORY_LOAD_H_
#define SLUICE_PKG_MANIFEST_INTERNAL_DIRECTORY_LOAD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pkg/manifest/loader.h"
#include "pkg/manifest/migration.h"

namespace sluice::manifest::internal {

// LoadDirectories (loader.h), but may throw (std::bad_alloc, std::system_error from a mutex).
absl::StatusOr<std::vector<Migration>> LoadDirectoriesOrThrow(
    const std::vector<std::string>& directories);

// ListManifestFiles (loader.h), but may throw (std::bad_alloc).
absl::StatusOr<std::vector<ManifestFile>> ListManifestFilesOrThrow(
    const std::vector<std::string>& directories);

}  // namespace sluice::manifest::internal

#endif  // SLUICE_PKG_MANIFEST_INTERNAL_DIRECTORY_LOAD_H_
