#include "pkg/manifest/internal/simple_reader.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "pkg/base/text.h"
#include "pkg/manifest/internal/diagnostics.h"
#include "pkg/manifest/internal/yaml_documents.h"
#include "yaml-cpp/mark.h"

namespace sluice::manifest::internal {
namespace {

// Reads a document of the form nearly every manifest takes as yaml-cpp reads it (the same nodes,
// texts, tags and marks), many times faster: a block mapping at column 0 whose keys are plain
// names, each value on its key's line (a plain scalar; a one-line quoted scalar without escapes; a
// one-line flow list of plain names and such quoted scalars) or a literal block scalar (`|`, `|-`,
// `|+`); comments and blank lines, a `---` line first and a `...` line last. Declines anything
// else, which the general path then reads; loader_simple_reader_test checks both agree.
//
// yaml-cpp's pre-pass (see ParseWithPrepass) accepts every document this reader does: its quotes
// close on their line, and nothing at the end of the text depends on the blanks after it.
class SimpleReader {
 public:
  SimpleReader(absl::string_view text, YamlDocument* document) : text_(text), document_(document) {}

  // Returns false, with the document in any state, when the text is not of the simple form.
  bool Read() {
    if (text_.size() > static_cast<size_t>(std::numeric_limits<int>::max() / 2)) return false;
    // yaml-cpp drops a byte-order mark without counting it in marks; it takes \r (alone) as text
    // and 0x04 as the end of the input; tabs are errors in some places.
    bool control = false;
    for (const char c : text_) {  // no early exit, so that the compiler can vectorize it
      const unsigned char byte = static_cast<unsigned char>(c);
      control |= (byte < 0x20 && byte != '\n' && byte != '\t') || byte == 0x7f;
    }
    if (control) return false;
    if (absl::StartsWith(text_, "\xEF\xBB\xBF")) return false;

    YamlNode* map = nullptr;
    bool started = false;  // after a `---` line
    line_start_ = 0;
    line_ = 0;
    while (line_start_ < text_.size()) {
      const size_t end = LineEnd(line_start_);
      const absl::string_view line = text_.substr(line_start_, end - line_start_);
      if (line.find_first_not_of(' ') == absl::string_view::npos || line[0] == '#') {
        NextLine(end);  // blank, or a comment at column 0
        continue;
      }
      if (line == "---") {
        if (map != nullptr || started) return false;
        started = true;
        NextLine(end);
        continue;
      }
      if (line == "...") {
        // SplitDocuments ends a chunk with its `...` line.
        return map != nullptr && end + 1 >= text_.size();
      }
      if (!IsKeyStart(line[0])) return false;  // indented text, `-`, `?`, `%`, `{`, ...
      if (map == nullptr) {
        map = New(YamlNode::Type::kMap, line_start_);
        map->tag = "?";
        document_->root = map;
      }
      if (!ReadEntry(map, end)) return false;
    }
    return map != nullptr;
  }

 private:
  // Longer keys are left to yaml-cpp, whatever it makes of them (YAML caps implicit keys at 1024).
  static constexpr size_t kMaxSimpleKeyLength = 128;

  static bool IsKeyStart(char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  }
  static bool IsNameChar(char c) { return IsKeyStart(c) || c == '.' || c == '-'; }
  // yaml-cpp's null spellings, read as null rather than as text.
  static bool IsNullText(absl::string_view text) {
    return text == "~" || text == "null" || text == "Null" || text == "NULL";
  }

  size_t LineEnd(size_t from) const {
    const size_t end = text_.find('\n', from);
    return end == absl::string_view::npos ? text_.size() : end;
  }

  // Moves to the line after the one ending at `end`.
  void NextLine(size_t end) {
    line_start_ = end < text_.size() ? end + 1 : end;
    ++line_;
  }

  // Returns the mark of `pos`, on the current line.
  YAML::Mark MarkAt(size_t pos) const {
    YAML::Mark mark;
    mark.pos = static_cast<int>(pos);
    mark.line = line_;
    mark.column = static_cast<int>(pos - line_start_);
    return mark;
  }

  YamlNode* New(YamlNode::Type type, size_t pos) {
    YamlNode& node = document_->nodes.emplace_back();
    node.type = type;
    node.mark = MarkAt(pos);
    return &node;
  }

  YamlNode* NewScalar(size_t pos, absl::string_view text, bool plain) {
    if (plain && IsNullText(text)) return New(YamlNode::Type::kNull, pos);
    YamlNode* node = New(YamlNode::Type::kScalar, pos);
    node->tag = plain ? "?" : "!";
    node->scalar = std::string(text);
    return node;
  }

  // Returns whether [from, end) is blanks, then perhaps a comment after at least one blank.
  bool RestIsComment(size_t from, size_t end) const {
    size_t i = from;
    while (i < end && text_[i] == ' ') ++i;
    return i == end || (text_[i] == '#' && i > from);
  }

  // Reads a one-line quoted scalar without escapes starting at `at`; sets `*after` past it.
  const YamlNode* ReadQuoted(size_t at, size_t end, size_t* after) {
    const char quote = text_[at];
    const size_t close = text_.find(quote, at + 1);
    if (close == absl::string_view::npos || close >= end) return nullptr;
    const absl::string_view inner = text_.substr(at + 1, close - at - 1);
    if (inner.find('\t') != absl::string_view::npos) return nullptr;
    if (quote == '"' && inner.find('\\') != absl::string_view::npos) return nullptr;
    if (quote == '\'' && close + 1 < end && text_[close + 1] == '\'') return nullptr;  // `''`
    *after = close + 1;
    return NewScalar(at, inner, /*plain=*/false);
  }

  // Reads `[a, 'b', "c"]` starting at `at`; sets `*after` past the `]`.
  const YamlNode* ReadFlowList(size_t at, size_t end, size_t* after) {
    YamlNode* list = New(YamlNode::Type::kSequence, at);
    list->tag = "?";
    size_t i = at + 1;
    while (i < end && text_[i] == ' ') ++i;
    if (i < end && text_[i] == ']') {
      *after = i + 1;
      return list;
    }
    while (i < end) {
      const YamlNode* item = nullptr;
      if (text_[i] == '\'' || text_[i] == '"') {
        item = ReadQuoted(i, end, &i);
      } else if (IsKeyStart(text_[i])) {
        const size_t start = i;
        while (i < end && IsNameChar(text_[i])) ++i;
        item = NewScalar(start, text_.substr(start, i - start), /*plain=*/true);
      }
      if (item == nullptr) return nullptr;
      list->items.push_back(item);
      while (i < end && text_[i] == ' ') ++i;
      if (i >= end) return nullptr;
      if (text_[i] == ']') {
        *after = i + 1;
        return list;
      }
      if (text_[i] != ',') return nullptr;
      ++i;
      while (i < end && text_[i] == ' ') ++i;
    }
    return nullptr;  // not closed on this line
  }

  // Reads a plain scalar starting at `at`, which runs to the end of the line or a comment.
  const YamlNode* ReadPlain(size_t at, size_t end) {
    const unsigned char first = static_cast<unsigned char>(text_[at]);
    if (!(absl::ascii_isalnum(first) || first >= 0x80 ||
          absl::string_view("_./($~").find(static_cast<char>(first)) != absl::string_view::npos)) {
      return nullptr;  // an indicator, or a character best left to yaml-cpp
    }
    size_t stop = end;
    for (size_t i = at; i < end; ++i) {
      const char c = text_[i];
      if (c == '\t') return nullptr;
      if (c == ':' && (i + 1 == end || text_[i + 1] == ' ')) return nullptr;  // a nested mapping
      if (c == '#' && text_[i - 1] == ' ') {  // a comment (`first` is no `#`, so i > at)
        stop = i;
        break;
      }
    }
    while (stop > at && text_[stop - 1] == ' ') --stop;
    return NewScalar(at, text_.substr(at, stop - at), /*plain=*/true);
  }

  // Reads a literal block scalar whose `|` is at `at` (the header ends at `end`), exactly as
  // yaml-cpp's ScanScalar does for a value of a mapping at column 0, and moves to the line where
  // the scalar ends. Returns null when yaml-cpp would report an error, or when the next line is
  // not at column 0.
  const YamlNode* ReadLiteral(size_t at, size_t end) {
    const absl::string_view header = text_.substr(at + 1, end - at - 1);
    if (header != "" && header != "-" && header != "+") return nullptr;
    YamlNode* node = NewScalar(at, "", /*plain=*/false);
    std::string& scalar = node->scalar;

    const size_t size = text_.size();
    size_t p = end;  // the input position
    size_t line_start = line_start_;
    int line = line_;
    size_t indent = 1;  // the mapping's indentation (0), plus 1
    bool found_non_empty_line = false;
    bool past_opening_break = false;
    while (p < size) {
      // Phase 1: the line's text.
      const size_t text_end = LineEnd(p);
      if (text_end > p) {
        found_non_empty_line = true;
        past_opening_break = true;
        scalar.append(text_.data() + p, text_end - p);
        p = text_end;
      }
      if (p >= size) break;
      // Phase 2: the line break.
      ++p;
      line_start = p;
      ++line;
      // Phase 3: the indentation, detected on the first line with text.
      while (p < size && text_[p] == ' ' && (p - line_start < indent || !found_non_empty_line)) {
        ++p;
      }
      if (!found_non_empty_line) indent = std::max(indent, p - line_start);
      if (p < size && text_[p] == '\t' && p - line_start < indent) {
        return nullptr;  // yaml-cpp: "illegal tab when looking for indentation"
      }
      const bool empty_line = p < size && text_[p] == '\n';
      if (past_opening_break) scalar.push_back('\n');
      past_opening_break = true;
      if (!empty_line && p - line_start < indent) break;
    }

    const size_t last = scalar.find_last_not_of('\n');
    if (header.empty()) {  // clip: one line break kept
      if (last == std::string::npos) {
        scalar.clear();
      } else if (last + 1 < scalar.size()) {
        scalar.erase(last + 2);
      }
    } else if (header == "-") {  // strip
      scalar.erase(last == std::string::npos ? 0 : last + 1);
    }

    if (p >= size) {
      line_start_ = size;
    } else if (p == line_start) {
      line_start_ = line_start;
      line_ = line;
    } else {
      return nullptr;  // ended by text indented less than the scalar but more than the mapping
    }
    return node;
  }

  // Reads the entry whose line (at column 0) ends at `end`, and moves past it.
  bool ReadEntry(YamlNode* map, size_t end) {
    size_t i = line_start_;
    while (i < end && IsNameChar(text_[i])) ++i;
    if (i + 1 >= end || text_[i] != ':' || text_[i + 1] != ' ') return false;
    const absl::string_view key = text_.substr(line_start_, i - line_start_);
    if (key.size() > kMaxSimpleKeyLength || IsNullText(key)) return false;
    i += 2;
    while (i < end && text_[i] == ' ') ++i;
    if (i == end) return false;  // a null value: its mark is yaml-cpp's business

    const YamlNode* key_node = NewScalar(line_start_, key, /*plain=*/true);
    const YamlNode* value = nullptr;
    const char c = text_[i];
    if (c == '|') {
      value = ReadLiteral(i, end);
      if (value == nullptr) return false;
      map->entries.emplace_back(key_node, value);
      return true;  // ReadLiteral moved to the next line
    }
    if (text_.substr(i, end - i).find('\t') != absl::string_view::npos) return false;
    size_t after = end;
    if (c == '\'' || c == '"') {
      value = ReadQuoted(i, end, &after);
    } else if (c == '[') {
      value = ReadFlowList(i, end, &after);
    } else {
      value = ReadPlain(i, end);
    }
    if (value == nullptr || !RestIsComment(after, end)) return false;
    map->entries.emplace_back(key_node, value);
    NextLine(end);
    // A value's text may go on over more indented lines: left to yaml-cpp (Read refuses them).
    return true;
  }

  absl::string_view text_;
  YamlDocument* document_;
  size_t line_start_ = 0;  // of the current line
  int line_ = 0;           // the current line, from 0
};

// Appends `node` to `out`; a node met before is named by its number (aliases, cycles).
void DumpNode(const YamlNode& node, std::map<const YamlNode*, int>* seen, std::string* out) {
  if (const auto it = seen->find(&node); it != seen->end()) {
    absl::StrAppend(out, "*", it->second);
    return;
  }
  const int number = static_cast<int>(seen->size());
  seen->emplace(&node, number);
  static constexpr const char* kKinds[] = {"null", "scalar", "list", "map"};
  absl::StrAppend(out, "&", number, " ", kKinds[static_cast<int>(node.type)], "@", node.mark.pos,
                  ",", node.mark.line, ",", node.mark.column, " tag=", base::JsonQuote(node.tag));
  switch (node.type) {
    case YamlNode::Type::kNull:
      break;
    case YamlNode::Type::kScalar:
      absl::StrAppend(out, " ", base::JsonQuote(node.scalar));
      break;
    case YamlNode::Type::kSequence:
      absl::StrAppend(out, " [");
      for (const YamlNode* item : node.items) {
        absl::StrAppend(out, "\n");
        DumpNode(*item, seen, out);
      }
      absl::StrAppend(out, "]");
      break;
    case YamlNode::Type::kMap:
      absl::StrAppend(out, " {");
      for (const auto& [key, value] : node.entries) {
        absl::StrAppend(out, "\n");
        DumpNode(*key, seen, out);
        absl::StrAppend(out, " => ");
        DumpNode(*value, seen, out);
      }
      absl::StrAppend(out, "}");
      break;
  }
}

std::string Dump(const YamlDocument& document) {
  if (document.root == nullptr) return "no document";
  std::map<const YamlNode*, int> seen;
  std::string out;
  DumpNode(*document.root, &seen, &out);
  return out;
}

}  // namespace

std::optional<std::string> DumpSimpleRead(absl::string_view text) {
  YamlDocument document;
  if (!SimpleReader(text, &document).Read()) return std::nullopt;
  return Dump(document);
}

std::optional<std::string> DumpGeneralRead(absl::string_view text) {
  const LineIndex index(text);
  Errors errors;
  const DocumentContext context{"", &index, Chunk{0, text.size()}, &errors};
  YamlDocument document;
  if (!ParseWithPrepass(text, context, &document)) return std::nullopt;
  return Dump(document);
}

bool ReadSimpleDocument(absl::string_view text, YamlDocument* document) {
  return SimpleReader(text, document).Read();
}

}  // namespace sluice::manifest::internal
