// A manifest file's text as YAML documents: the bytes checked (UTF-8, no NUL), the text split into
// `---`-separated documents, and each parsed by yaml-cpp into a small tree of YamlNode. yaml-cpp
// types appear here (marks) but never outside pkg/manifest. Internal to pkg/manifest.
#ifndef SLUICE_PKG_MANIFEST_INTERNAL_YAML_DOCUMENTS_H_
#define SLUICE_PKG_MANIFEST_INTERNAL_YAML_DOCUMENTS_H_

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "pkg/manifest/internal/diagnostics.h"
#include "yaml-cpp/mark.h"

namespace sluice::manifest::internal {

// One `---`-separated document of a file: bytes [begin, end) of the (BOM-less) text.
struct Chunk {
  size_t begin = 0;
  size_t end = 0;
};

// The context of the document being validated.
struct DocumentContext {
  absl::string_view file;
  const LineIndex* index = nullptr;
  Chunk chunk;
  Errors* errors = nullptr;

  // Returns the file offset of a yaml-cpp mark, or nullopt when the mark carries no usable offset.
  std::optional<size_t> OffsetOf(const YAML::Mark& mark) const {
    if (mark.is_null() || mark.pos < 0) return std::nullopt;
    const size_t offset = chunk.begin + static_cast<size_t>(mark.pos);
    if (offset > chunk.end) return std::nullopt;
    return offset;
  }

  Position PositionOf(const YAML::Mark& mark) const {
    if (const std::optional<size_t> offset = OffsetOf(mark)) return index->At(*offset);
    if (mark.is_null() || mark.line < 0) return index->At(chunk.begin);
    // Fall back on yaml-cpp's own line and (byte) column, relative to the chunk.
    const Position start = index->At(chunk.begin);
    return Position{start.line + mark.line, mark.column + 1};
  }

  void Error(const YAML::Mark& mark, absl::string_view message) const {
    // Locating is linear in the line's length; a one-line file with thousands of bad keys must not
    // make it quadratic.
    if (errors->CountIfFull()) return;
    errors->Add(file, PositionOf(mark), message);
  }
};

// A YAML node as yaml-cpp's parser reports it: what the validation needs of a YAML::Node.
struct YamlNode {
  enum class Type { kNull, kScalar, kSequence, kMap };

  Type type = Type::kNull;
  YAML::Mark mark;     // where the node (its properties, if any) starts
  std::string tag;     // yaml-cpp's: "?" for a plain scalar, "!" for a quoted or block one
  std::string scalar;  // a scalar's text
  std::vector<const YamlNode*> items;                                // a sequence's entries
  std::vector<std::pair<const YamlNode*, const YamlNode*>> entries;  // a mapping's, in order

  bool IsNull() const { return type == Type::kNull; }
  bool IsScalar() const { return type == Type::kScalar; }
  bool IsSequence() const { return type == Type::kSequence; }
  bool IsMap() const { return type == Type::kMap; }
};

// The first document of a text. Owns its nodes; an alias is its anchor's node itself (never a
// copy), so an alias bomb stays as small as its text, and a node may even hold itself.
struct YamlDocument {
  std::deque<YamlNode> nodes;
  const YamlNode* root = nullptr;  // null: the text holds no document
};

// Reports bytes that make the text unfit for YAML parsing; returns false when there are any.
bool CheckEncoding(absl::string_view text, const LineIndex& index, absl::string_view file,
                   Errors* errors);

// Splits the text into chunks that each hold at most one YAML document: a chunk starts at a `---`
// line (with the comments and directives just above it) and ends after a `...` line. YAML forbids
// a document marker at the start of a line inside any scalar, so this never cuts a document in two.
std::vector<Chunk> SplitDocuments(absl::string_view text);

// Parses the first document of `chunk_text` with yaml-cpp into `document`; reports and returns
// false on a syntax error. Works around two yaml-cpp 0.7 bugs (see the definition).
bool ParseWithPrepass(absl::string_view chunk_text, const DocumentContext& context,
                      YamlDocument* document);

}  // namespace sluice::manifest::internal

#endif  // SLUICE_PKG_MANIFEST_INTERNAL_YAML_DOCUMENTS_H_
