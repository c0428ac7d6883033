// `sluice configmap NAME`: a ConfigMap manifest (YAML) whose keys are the migration files, ready
// for `kubectl apply -f -`. Pure text in, text out; internal to pkg/cli. Thread-safe.
#ifndef SLUICE_PKG_CLI_CONFIGMAP_H_
#define SLUICE_PKG_CLI_CONFIGMAP_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice::cli {

// Kubernetes refuses a ConfigMap whose data values add up to more than 1 MiB (core.MaxSecretSize,
// the sum of the values' lengths in bytes).
inline constexpr size_t kConfigMapMaxDataBytes = 1024 * 1024;
// Client-side `kubectl apply` copies the whole object into an annotation, and all annotations
// together are limited to 256 KiB.
inline constexpr size_t kAnnotationsMaxBytes = 256 * 1024;

// One key of the ConfigMap: a migration file's name, where it came from, and its bytes.
struct ConfigMapFile {
  std::string key;
  std::string source;  // the file's path, for error messages
  std::string content;
};

// Returns the ConfigMap `name` (in `namespace_name` unless empty) holding `files`, as YAML: keys in
// byte order, each value written so that it reads back byte for byte (a literal block when that
// can hold it, else a double-quoted string). Refuses with kInvalidArgument an invalid name or
// namespace, a key Kubernetes would refuse or two files with one key (naming the files), content
// that is not UTF-8, and data over kConfigMapMaxDataBytes (with the measured size and how to
// split the migrations).
//
// Example:
//   SLUICE_ASSIGN_OR_RETURN(std::string yaml, RenderConfigMap("app-migrations", "", files));
absl::StatusOr<std::string> RenderConfigMap(absl::string_view name,
                                            absl::string_view namespace_name,
                                            std::vector<ConfigMapFile> files);

// Returns OK when `key` is a valid ConfigMap key (1-253 characters of [-._a-zA-Z0-9], not `.`,
// `..` or starting with `..`), else kInvalidArgument saying what is wrong.
absl::Status CheckConfigMapKey(absl::string_view key);

// Returns the sum of the files' content sizes in bytes: what Kubernetes measures against
// kConfigMapMaxDataBytes.
size_t ConfigMapDataBytes(const std::vector<ConfigMapFile>& files);

// Returns `text` as a YAML scalar for a mapping value whose key is indented by `indent` spaces:
// a literal block (`|`, `|-`, `|+`, with an indentation indicator when the text starts with a
// space or a line break) when every character can stand in one, else a double-quoted string.
// `text` must be valid UTF-8.
std::string YamlValue(absl::string_view text, int indent);

}  // namespace sluice::cli

#endif  // SLUICE_PKG_CLI_CONFIGMAP_H_
