// Reads migration manifests (YAML, one revision per document) from directories and validates each
// document on its own. Graph-level checks (unknown parents, cycles) belong to pkg/graph.
// Stateless and thread-safe.
#ifndef SLUICE_PKG_MANIFEST_LOADER_H_
#define SLUICE_PKG_MANIFEST_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pkg/manifest/migration.h"

namespace sluice::manifest {

// Loads every `*.yaml` / `*.yml` file in each of `directories` (not recursing; following symbolic
// links; skipping every name that starts with `.`, as a mounted ConfigMap's `..data` entries),
// files in name order, directories in the given order. Rejects duplicate revision ids across all
// files, naming both places.
//
// On any error returns kInvalidArgument whose message lists every problem found in the load, one
// per line, each as `FILE:LINE:COLUMN: what is wrong; how to fix it` (`FILE: ...` when no line
// applies, e.g. a missing directory). Past 200 problems the rest are counted on a last line,
// `(N more problems not shown; ...)`. A directory with no manifest files loads as no migrations;
// deciding whether that is an error is the caller's business. Never throws.
//
// Reads and parses the files on a few threads of its own (as many as the machine has cores, up to
// 8); the result is the same as reading them one after another.
//
// Example:
//   SLUICE_ASSIGN_OR_RETURN(std::vector<Migration> migrations, LoadDirectories({"./migrations"}));
absl::StatusOr<std::vector<Migration>> LoadDirectories(const std::vector<std::string>& directories);

// A manifest file as LoadDirectories finds it: its path (directory joined with name) and its name
// in its directory.
struct ManifestFile {
  std::string path;
  std::string name;
};

// Returns the files that LoadDirectories reads from `directories`, in the order it reads them,
// without reading them: the same names (symbolic links followed, names starting with `.`
// skipped). Errors (a missing directory, a broken link, a pipe) as for LoadDirectories.
absl::StatusOr<std::vector<ManifestFile>> ListManifestFiles(
    const std::vector<std::string>& directories);

// Parses the manifest text of one file (one or more `---`-separated documents). `file_name` is used
// only in error messages and `Migration::location`. Rejects duplicate revision ids within the text;
// does not check across files. Errors as for LoadDirectories.
//
// Choices the contract leaves open: the text must be UTF-8 (a UTF-8 byte-order mark is allowed;
// NUL bytes, UTF-16 and invalid UTF-8 are refused); `transactional` accepts true/false and YAML
// 1.1's yes/no/on/off, unquoted; a null `downgrade` means no downgrade; an `upgrade` of only
// whitespace counts as empty; duplicate keys within a document are refused.
absl::StatusOr<std::vector<Migration>> ParseManifest(absl::string_view text,
                                                     absl::string_view file_name);

// The key that marks a revision whose SQL still has to be written by hand (`sluice import alembic`
// writes it for a revision that offline rendering cannot convert); its value says why. A document
// holding it never loads: the error names the revision, its file and line, and the reason.
inline constexpr absl::string_view kUnconvertedKey = "unconverted";

// Returns whether `revision` is a valid revision id: 1-32 characters of [A-Za-z0-9_.-].
bool IsValidRevisionId(absl::string_view revision);

}  // namespace sluice::manifest

#endif  // SLUICE_PKG_MANIFEST_LOADER_H_
