// The fast reader of the simple form nearly every manifest takes, and the test hooks that hold it
// to yaml-cpp (loader_simple_reader_test.cc). Internal to pkg/manifest.
#ifndef SLUICE_PKG_MANIFEST_INTERNAL_SIMPLE_READER_H_
#define SLUICE_PKG_MANIFEST_INTERNAL_SIMPLE_READER_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace sluice::manifest::internal {

struct YamlDocument;  // yaml_documents.h, which this header spares its tests (it names yaml-cpp)

// Reads `text` (one `---`-separated document, as SplitDocuments cuts a file) into `document`
// exactly as ParseWithPrepass would (the same nodes, texts, tags and marks), many times faster,
// when the text is of the simple form: a block mapping at column 0 whose keys are plain names, each
// value on its key's line or a literal block scalar. Returns false, with `document` in any state,
// for any other text, which ParseWithPrepass must then read.
bool ReadSimpleDocument(absl::string_view text, YamlDocument* document);

// Test hooks. Return the tree of the document `text` in a canonical text form (every node's kind,
// mark, tag and text) as ReadSimpleDocument reads it, nullopt when it declines the text...
std::optional<std::string> DumpSimpleRead(absl::string_view text);

// ...and as ParseWithPrepass reads it, nullopt when that reports a syntax error.
std::optional<std::string> DumpGeneralRead(absl::string_view text);

}  // namespace sluice::manifest::internal

#endif  // SLUICE_PKG_MANIFEST_INTERNAL_SIMPLE_READER_H_
