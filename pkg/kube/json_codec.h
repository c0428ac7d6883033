// JSON encoding of the structs in types.h, for the REST client (internal to pkg/kube; cpprest's
// JSON stays in the .cc). Strings in, strings out, so tests need no JSON library.
#ifndef SLUICE_PKG_KUBE_JSON_CODEC_H_
#define SLUICE_PKG_KUBE_JSON_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pkg/kube/types.h"

namespace sluice::kube {

// Returns the MigrationJob in `json`. Fields of the wrong type are skipped, not fatal: the stored
// object passed the API server's schema, and sluice must not fail on a newer schema's additions.
absl::StatusOr<MigrationJob> ParseMigrationJob(absl::string_view json);

// Returns the merge patch (RFC 7386) that makes the object's status equal to `status`: every field
// of the struct is sent, unset ones as null so they are removed; arrays are replaced whole. When
// `resource_version` is not empty the patch carries it in metadata, which makes the API server
// refuse it with 409 if the object changed meanwhile (kube-api.md section 1).
std::string StatusMergePatch(const MigrationJobStatus& status, absl::string_view resource_version);

// Returns the core/v1 Event body for `event`.
std::string EventJson(const Event& event);

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_JSON_CODEC_H_
