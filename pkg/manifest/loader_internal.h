// Test hooks into the manifest loader's two ways of reading a document: the fast reader of the
// simple form nearly every manifest takes, and the general path through yaml-cpp. Not for use
// outside pkg/manifest's tests.
#ifndef SLUICE_PKG_MANIFEST_LOADER_INTERNAL_H_
#define SLUICE_PKG_MANIFEST_LOADER_INTERNAL_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace sluice::manifest::internal {

// Returns the tree of the document `text` (one `---`-separated document, as the loader splits a
// file) as the simple reader reads it, in a canonical text form: every node's kind, mark, tag and
// text. nullopt when the simple reader declines the text.
std::optional<std::string> DumpSimpleRead(absl::string_view text);

// Likewise as the general path (yaml-cpp, with its syntax pre-pass) reads it; nullopt when that
// path reports a syntax error.
std::optional<std::string> DumpGeneralRead(absl::string_view text);

}  // namespace sluice::manifest::internal

#endif  // SLUICE_PKG_MANIFEST_LOADER_INTERNAL_H_
