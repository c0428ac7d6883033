// How a file's text becomes YAML documents, and why:
//  1. Bytes are checked before parsing (NUL bytes, UTF-16 byte-order marks, invalid UTF-8):
//     yaml-cpp silently guesses encodings and replaces bad bytes, which would make a binary file
//     or a UTF-16 file fail later with a baffling message, or put U+FFFD into SQL that is then
//     checksummed.
//  2. The text is split into documents at `---` / `...` lines here, and each document is parsed
//     on its own: yaml-cpp stops at the first syntax error of a stream, and the contract asks for
//     every error of a load.
//  3. Locations come from yaml-cpp's marks, whose `pos` is a byte offset into the parsed text;
//     DocumentContext maps it back to the file's line and to a column counted in characters.
//  4. A document goes through yaml-cpp in two passes: a syntax pass over its text without the
//     trailing blanks, working around two yaml-cpp 0.7 bugs (see ParseWithPrepass), then the parse
//     proper, whose events build the same small tree (YamlNode) as YAML::Load builds its nodes
//     (aliases share their anchor's node), without YAML::Node's reference counting.
#include "pkg/manifest/internal/yaml_documents.h"

#include <exception>
#include <istream>
#include <optional>
#include <streambuf>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "pkg/base/text.h"
#include "yaml-cpp/depthguard.h"  // YAML::DeepRecursion; yaml.h does not include it
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"
#include "yaml-cpp/yaml.h"

namespace sluice::manifest::internal {
namespace {

// yaml-cpp 0.7 throws DeepRecursion (a ParserException) past this many nested nodes; we only name
// the limit in our message.
constexpr int kYamlDepthLimit = 500;

// An istream over text held elsewhere, sparing the copy an istringstream makes.
class TextStream {
 public:
  explicit TextStream(absl::string_view text) : buffer_(text), stream_(&buffer_) {}
  TextStream(const TextStream&) = delete;
  TextStream& operator=(const TextStream&) = delete;

  std::istream& stream() { return stream_; }

 private:
  class Buffer final : public std::streambuf {
   public:
    explicit Buffer(absl::string_view text) {
      // The get area is only read (yaml-cpp puts back only the bytes it has just read, which
      // moves the pointer back without writing).
      char* begin = const_cast<char*>(text.data());
      setg(begin, begin, begin + text.size());
    }
  };

  Buffer buffer_;
  std::istream stream_;
};

// Builds a document from the parser's events, as yaml-cpp's NodeBuilder (and so YAML::Load) does.
// Never recurses: the parser bounds the nesting.
class TreeBuilder final : public YAML::EventHandler {
 public:
  explicit TreeBuilder(YamlDocument* document) : document_(document) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Add(New(YamlNode::Type::kNull, mark, anchor));
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // The parser refuses an alias to an anchor not yet defined, so the null never serves.
    Add(anchor < anchors_.size() && anchors_[anchor] != nullptr
            ? anchors_[anchor]
            : New(YamlNode::Type::kNull, mark, YAML::NullAnchor));
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YamlNode* node = New(YamlNode::Type::kScalar, mark, anchor);
    node->tag = tag;
    node->scalar = value;
    Add(node);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(YamlNode::Type::kSequence, mark, tag, anchor);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(YamlNode::Type::kMap, mark, tag, anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct OpenCollection {
    YamlNode* node;
    const YamlNode* key;  // a mapping's key still waiting for its value
  };

  YamlNode* New(YamlNode::Type type, const YAML::Mark& mark, YAML::anchor_t anchor) {
    YamlNode& node = document_->nodes.emplace_back();
    node.type = type;
    node.mark = mark;
    if (anchor != YAML::NullAnchor) {
      if (anchors_.size() <= anchor) anchors_.resize(anchor + 1, nullptr);
      anchors_[anchor] = &node;
    }
    return &node;
  }

  void Open(YamlNode::Type type, const YAML::Mark& mark, const std::string& tag,
            YAML::anchor_t anchor) {
    YamlNode* node = New(type, mark, anchor);
    node->tag = tag;
    Add(node);
    open_.push_back(OpenCollection{node, nullptr});
  }

  void Close() {
    if (!open_.empty()) open_.pop_back();
  }

  // Puts a node in the open collection, or makes it the root.
  void Add(const YamlNode* node) {
    if (open_.empty()) {
      if (document_->root == nullptr) document_->root = node;
      return;
    }
    OpenCollection& parent = open_.back();
    if (parent.node->type == YamlNode::Type::kSequence) {
      parent.node->items.push_back(node);
    } else if (parent.key == nullptr) {
      parent.key = node;
    } else {
      parent.node->entries.emplace_back(parent.key, node);
      parent.key = nullptr;
    }
  }

  YamlDocument* document_;
  std::vector<YamlNode*> anchors_;    // by yaml-cpp's anchor number
  std::vector<OpenCollection> open_;  // the collections being read, innermost last
};

// Counts the documents yaml-cpp finds in a text, without building them, and remembers where the
// last node started (to say where an unclosed quote probably opened).
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ == 2) second_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { last_ = mark; }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { last_ = mark; }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    last_ = mark;
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    last_ = mark;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    last_ = mark;
  }
  void OnMapEnd() override {}

  int documents() const { return documents_; }
  const YAML::Mark& second() const { return second_; }
  const std::optional<YAML::Mark>& last() const { return last_; }

 private:
  int documents_ = 0;
  YAML::Mark second_;
  std::optional<YAML::Mark> last_;
};

// Turns a yaml-cpp parse error into one error line. `last_node` is where the last complete node
// before the error started, if known.
void ReportParseError(const YAML::ParserException& e, const std::optional<YAML::Mark>& last_node,
                      const DocumentContext& context) {
  if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
    context.Error(e.mark, absl::StrCat("values are nested more than ", kYamlDepthLimit,
                                       " levels deep; a manifest needs two (is this the right "
                                       "file?)"));
    return;
  }
  if (e.msg == YAML::ErrorMsg::EOF_IN_SCALAR) {
    // yaml-cpp reports this where the document ends, far from the cause.
    std::string where;
    if (last_node) {
      where = absl::StrCat(" (it opens after line ", context.PositionOf(*last_node).line, ")");
    }
    context.Error(e.mark, absl::StrCat("invalid YAML: a quoted value is not closed by the end of "
                                       "the document",
                                       where, "; add the closing quote"));
    return;
  }
  std::string fix = "check the quoting and indentation here and on the lines just above";
  // yaml-cpp's tab message does not say what to do about it.
  if (absl::StrContains(e.msg, "tab")) fix = "indent with spaces: YAML does not allow tabs there";
  context.Error(e.mark, absl::StrCat("invalid YAML: ", OneLine(e.msg), "; ", fix));
}

}  // namespace

bool CheckEncoding(absl::string_view text, const LineIndex& index, absl::string_view file,
                   Errors* errors) {
  if (absl::StartsWith(text, "\xFF\xFE") || absl::StartsWith(text, "\xFE\xFF")) {
    errors->Add(file, Position{1, 1},
                "the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8");
    return false;
  }
  if (const size_t nul = text.find('\0'); nul != absl::string_view::npos) {
    errors->Add(file, index.At(nul),
                "the file holds a NUL byte, so it is not a text file; a manifest must be UTF-8 "
                "YAML text");
    return false;
  }
  if (const size_t bad = base::FirstInvalidUtf8(text); bad != absl::string_view::npos) {
    errors->Add(file, index.At(bad),
                absl::StrFormat("invalid UTF-8 (byte 0x%02X); save the file as UTF-8",
                                static_cast<unsigned char>(text[bad])));
    return false;
  }
  return true;
}

// Returns whether the line starting at `offset` is a document marker `---` or `...` (three
// characters at the start of a line followed by a blank or the end of the line).
bool IsMarkerLine(absl::string_view text, size_t offset, char marker) {
  if (offset + 3 > text.size()) return false;
  for (size_t i = 0; i < 3; ++i) {
    if (text[offset + i] != marker) return false;
  }
  if (offset + 3 == text.size()) return true;
  const char next = text[offset + 3];
  return next == ' ' || next == '\t' || next == '\n' || next == '\r';
}

// Returns whether the line at `offset` holds nothing of a document: blank, a comment, or a
// directive (`%YAML 1.2`), which belongs to the document that its following `---` starts.
bool IsPreambleLine(absl::string_view text, size_t offset) {
  if (offset < text.size() && text[offset] == '%') return true;
  while (offset < text.size() && (text[offset] == ' ' || text[offset] == '\t')) ++offset;
  return offset >= text.size() || text[offset] == '#' || text[offset] == '\n' ||
         text[offset] == '\r';
}

std::vector<Chunk> SplitDocuments(absl::string_view text) {
  std::vector<Chunk> chunks;
  size_t begin = 0;
  bool has_content = false;  // whether the current chunk holds more than a preamble
  size_t line_start = 0;
  while (line_start < text.size()) {
    size_t line_end = text.find('\n', line_start);
    line_end = line_end == absl::string_view::npos ? text.size() : line_end + 1;
    if (IsMarkerLine(text, line_start, '-')) {
      if (has_content) {
        chunks.push_back(Chunk{begin, line_start});
        begin = line_start;
      }
      has_content = true;
    } else if (IsMarkerLine(text, line_start, '.')) {
      chunks.push_back(Chunk{begin, line_end});
      begin = line_end;
      has_content = false;
    } else if (!IsPreambleLine(text, line_start)) {
      has_content = true;
    }
    line_start = line_end;
  }
  if (begin < text.size()) chunks.push_back(Chunk{begin, text.size()});
  return chunks;
}

// Parses the first document of `chunk_text` as the loader always has, into `document`; reports and
// returns false on a syntax error.
bool ParseWithPrepass(absl::string_view chunk_text, const DocumentContext& context,
                      YamlDocument* document) {
  DocumentCounter counter;
  try {
    // A syntax pass first, working around two yaml-cpp 0.7 bugs:
    //  - a stray token where a document's node should start (`, x` at the top level) makes
    //    yaml-cpp return an empty document without consuming it, so LoadAll loops forever and
    //    Load silently drops the rest: one chunk holds one document, so a second is an error;
    //  - an unclosed quote runs to the end of the text and is accepted when the text ends with
    //    a line break (`upgrade: 'SELECT 1;` would swallow the keys below it), but is reported
    //    when it does not: the pass parses the text without its trailing blanks, on which the
    //    value of a block scalar at the very end depends, so the document is then read from the
    //    whole text.
    const absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(chunk_text);
    TextStream stream(trimmed);
    YAML::Parser parser(stream.stream());
    while (counter.documents() < 2 && parser.HandleNextDocument(counter)) {
    }
    if (counter.documents() >= 2) {
      context.Error(counter.second(),
                    "invalid YAML: unexpected text where a document should go on; remove it, "
                    "or start a new document with a `---` line");
      return false;
    }
    // The first document of the whole text, as YAML::Load reads it.
    TreeBuilder builder(document);
    TextStream whole(chunk_text);
    YAML::Parser whole_parser(whole.stream());
    whole_parser.HandleNextDocument(builder);
    return true;
  } catch (const YAML::ParserException& e) {
    ReportParseError(e, counter.last(), context);
  } catch (const std::exception& e) {
    context.Error(YAML::Mark::null_mark(),
                  absl::StrCat("cannot parse the document: ", OneLine(e.what()),
                               "; check the YAML syntax of this document"));
  }
  return false;
}

}  // namespace sluice::manifest::internal
