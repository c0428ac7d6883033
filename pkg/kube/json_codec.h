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

// Returns the page of MigrationJobs in the MigrationJobList `json`.
absl::StatusOr<MigrationJobList> ParseMigrationJobList(absl::string_view json);

// Returns the event in one line of a MigrationJob watch stream. An ERROR event becomes its
// Status as an error (see ApiErrorToStatus; code 410 is IsResourceExpired()).
absl::StatusOr<WatchEvent<MigrationJob>> ParseMigrationJobWatchEvent(absl::string_view line);

// Returns the metadata of the items of a ConfigMapList or SecretList `json` (nothing else is kept:
// a Secret's values never leave this function).
absl::StatusOr<ObjectMetaList> ParseObjectMetaList(absl::string_view json);

// Returns the event in one line of a watch of ConfigMaps or Secrets, metadata only; `what` names
// the collection in errors ("configmaps").
absl::StatusOr<WatchEvent<ObjectMeta>> ParseObjectMetaWatchEvent(absl::string_view line,
                                                                 absl::string_view what);

// Returns the ConfigMap in `json`; binaryData values decoded.
absl::StatusOr<ConfigMap> ParseConfigMap(absl::string_view json);

// Returns the Secret in `json`, its data values decoded from base64. Errors never quote a value.
absl::StatusOr<Secret> ParseSecret(absl::string_view json);

// Returns the Lease in `json`, and the JSON body (apiVersion, kind, metadata, spec) of `lease`
// for a create or an update. Unset fields are not sent.
absl::StatusOr<Lease> ParseLease(absl::string_view json);
std::string LeaseJson(const Lease& lease);

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_JSON_CODEC_H_
