// The manifest loader: the only file that includes yaml-cpp, so that every YAML exception is caught
// here and no yaml-cpp type leaks into other modules.
//
// How a file is read, and why:
//  1. Bytes are checked before parsing (NUL bytes, UTF-16 byte-order marks, invalid UTF-8):
//  yaml-cpp
//     silently guesses encodings and replaces bad bytes, which would make a binary file or a UTF-16
//     file fail later with a baffling message, or put U+FFFD into SQL that is then checksummed.
//  2. The text is split into documents at `---` / `...` lines ourselves, and each document is
//     parsed on its own: yaml-cpp stops at the first syntax error of a stream, and the contract
//     asks for every error of a load. YAML forbids a document marker at the start of a line inside
//     any scalar, so this split never cuts a document in two.
//  3. Locations come from yaml-cpp's marks, whose `pos` is a byte offset into the parsed text; we
//     map it back to the file's line and to a column counted in characters, as editors show it.
//  4. A document of the simple form nearly every manifest takes (a mapping of names to one-line
//     values and literal `|` blocks) is read by SimpleReader, which builds what yaml-cpp would
//     (loader_simple_reader_test holds it to that) many times faster. Any other document goes
//     through yaml-cpp: a syntax pass over its text without the trailing blanks, working around two
//     yaml-cpp 0.7 bugs (see ParseWithPrepass), then the parse proper, whose events build the same
//     small tree (YamlNode) as YAML::Load builds its nodes (aliases share their anchor's node),
//     without YAML::Node's reference counting.
//  5. LoadDirectories reads and parses files on a few threads and merges their migrations and
//     errors in file order, so its result is the same as reading the files one after another.
#include "pkg/manifest/loader.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <istream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <streambuf>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "pkg/base/sha256.h"
#include "pkg/base/text.h"
#include "pkg/manifest/loader_internal.h"
#include "yaml-cpp/depthguard.h"  // YAML::DeepRecursion; yaml.h does not include it
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"
#include "yaml-cpp/yaml.h"

namespace sluice::manifest {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxRevisionLength = 32;  // Alembic's alembic_version.version_num is VARCHAR(32).

// A garbage file can hold thousands of bad documents; past this many lines the message stops being
// read by anyone, and only grows the log and the MigrationJob status.
constexpr size_t kMaxReportedErrors = 200;

// Longest user-supplied text (a key, a value) quoted in an error message.
constexpr size_t kMaxQuotedLength = 60;

// yaml-cpp 0.7 throws DeepRecursion (a ParserException) past this many nested nodes; we only name
// the limit in our message.
constexpr int kYamlDepthLimit = 500;

// Builds for bench/manifest_reader_bench.sh only, which measures what the simple reader and the
// load threads save: neither macro is defined in any product build.
#ifdef SLUICE_MANIFEST_BENCH_NO_SIMPLE_READER
constexpr bool kUseSimpleReader = false;
#else
constexpr bool kUseSimpleReader = true;
#endif
#ifdef SLUICE_MANIFEST_BENCH_NO_LOAD_THREADS
constexpr bool kUseLoadThreads = false;
#else
constexpr bool kUseLoadThreads = true;
#endif

constexpr absl::string_view kKnownKeys[] = {
    "revision",   "down_revision", "description", "branch_labels",
    "depends_on", "transactional", "upgrade",     "downgrade",
};

// Names people bring from Alembic's Python files, Flyway or habit, which edit distance alone would
// not map to the right key.
constexpr std::pair<absl::string_view, absl::string_view> kKeyAliases[] = {
    {"id", "revision"},          {"rev", "revision"},         {"revision_id", "revision"},
    {"message", "description"},  {"msg", "description"},      {"desc", "description"},
    {"comment", "description"},  {"parent", "down_revision"}, {"parents", "down_revision"},
    {"down", "downgrade"},       {"up", "upgrade"},           {"sql", "upgrade"},
    {"labels", "branch_labels"}, {"label", "branch_labels"},  {"branch", "branch_labels"},
    {"depends", "depends_on"},   {"requires", "depends_on"},  {"transaction", "transactional"},
};

// --- Locations and error collection ------------------------------------------------------------

struct Position {
  int line = 0;    // 1-based; 0: unknown
  int column = 0;  // 1-based; 0: unknown
};

// Removes bytes that would break the one-error-per-line format (a file name could hold a newline).
std::string PrintableFileName(absl::string_view file) {
  std::string out(file);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

// Collects the error lines of one load, each `FILE:LINE:COLUMN: problem; fix`. The first
// `capacity` lines are kept and the rest only counted; a collector of capacity 0 only counts.
class Errors {
 public:
  Errors() = default;
  explicit Errors(size_t capacity) : capacity_(capacity) {}

  void Add(absl::string_view file, Position at, absl::string_view message) {
    if (lines_.size() >= capacity_) {
      ++dropped_;
      return;
    }
    std::string line = PrintableFileName(file);
    if (at.line > 0) {
      absl::StrAppend(&line, ":", at.line);
      if (at.column > 0) absl::StrAppend(&line, ":", at.column);
    }
    absl::StrAppend(&line, ": ", message);
    lines_.push_back(std::move(line));
  }

  // Counts an error that will not be shown, sparing the caller the cost of locating it.
  bool CountIfFull() {
    if (lines_.size() < capacity_) return false;
    ++dropped_;
    return true;
  }

  // Appends the errors of `other`, which came after these: as if they had been added here.
  void Append(Errors&& other) {
    for (std::string& line : other.lines_) {
      if (lines_.size() < capacity_) {
        lines_.push_back(std::move(line));
      } else {
        ++dropped_;
      }
    }
    dropped_ += other.dropped_;
    other.lines_.clear();
    other.dropped_ = 0;
  }

  bool empty() const { return size() == 0; }
  bool full() const { return lines_.size() >= capacity_; }
  size_t size() const { return lines_.size() + dropped_; }

  absl::Status ToStatus() const {
    std::string message = absl::StrJoin(lines_, "\n");
    if (dropped_ > 0) {
      absl::StrAppend(&message, "\n(", dropped_,
                      " more problems not shown; fix the ones above first)");
    }
    return absl::InvalidArgumentError(message);
  }

 private:
  size_t capacity_ = kMaxReportedErrors;
  std::vector<std::string> lines_;
  size_t dropped_ = 0;
};

// Maps byte offsets of a file's text to 1-based lines and character columns.
class LineIndex {
 public:
  explicit LineIndex(absl::string_view text) : text_(text) {
    line_starts_.push_back(0);
    for (size_t i = text.find('\n'); i != absl::string_view::npos; i = text.find('\n', i + 1)) {
      line_starts_.push_back(i + 1);
    }
  }

  Position At(size_t offset) const {
    offset = std::min(offset, text_.size());
    const auto next = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line_index = static_cast<size_t>(next - line_starts_.begin()) - 1;
    int column = 1;
    // Count characters, not bytes: UTF-8 continuation bytes do not start a character.
    for (size_t i = line_starts_[line_index]; i < offset; ++i) {
      if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++column;
    }
    return Position{static_cast<int>(line_index) + 1, column};
  }

  // Returns the 0-based index of the line holding `offset`.
  size_t LineOf(size_t offset) const {
    const auto next = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    return static_cast<size_t>(next - line_starts_.begin()) - 1;
  }

  absl::string_view text() const { return text_; }

 private:
  absl::string_view text_;
  std::vector<size_t> line_starts_;
};

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

// --- Documents as parsed -------------------------------------------------------------------------

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

// --- Small text helpers --------------------------------------------------------------------------

// Returns yaml-cpp's message with control characters escaped: some messages hold the offending
// character itself (`unknown escape character: \r`), which would break one error per line.
std::string OneLine(absl::string_view message) {
  std::string out;
  for (char c : message) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02X", byte));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Quotes user-supplied text for a one-line message: `plain` when it is short printable ASCII,
// else a JSON string (so newlines and odd bytes stay visible and on one line), shortened.
std::string Quote(absl::string_view text) {
  const bool plain = !text.empty() && text.size() <= kMaxQuotedLength &&
                     std::all_of(text.begin(), text.end(),
                                 [](char c) { return c >= 0x20 && c < 0x7f && c != '`'; });
  if (plain) return absl::StrCat("`", text, "`");
  if (text.size() <= kMaxQuotedLength) return base::JsonQuote(text);
  size_t cut = kMaxQuotedLength;
  // Do not cut a UTF-8 character in two.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(base::JsonQuote(text.substr(0, cut)), "...");
}

std::string KnownKeysList() {
  std::vector<std::string> keys;
  for (absl::string_view key : kKnownKeys) keys.push_back(absl::StrCat("`", key, "`"));
  return absl::StrJoin(keys, ", ");
}

// Returns the known key an unknown key was most likely meant to be, or "" when none is close.
absl::string_view SuggestKey(absl::string_view unknown) {
  if (unknown.size() > 64) return "";  // not a typo; also bounds the distance computation
  std::string normalized = absl::AsciiStrToLower(unknown);
  std::replace(normalized.begin(), normalized.end(), '-', '_');
  std::replace(normalized.begin(), normalized.end(), ' ', '_');
  for (const auto& [alias, key] : kKeyAliases) {
    if (normalized == alias) return key;
  }
  absl::string_view best;
  size_t best_distance = 0;
  for (absl::string_view key : kKnownKeys) {
    const size_t distance = base::EditDistance(normalized, key);
    if (best.empty() || distance < best_distance) {
      best = key;
      best_distance = distance;
    }
  }
  // Two edits catch most typos; long keys get a little more slack (`dependson_revs`).
  if (best_distance <= std::max<size_t>(2, best.size() / 4)) return best;
  // A unique known key that starts with what was typed (`trans`, `branch_label`).
  absl::string_view prefix_match;
  int prefix_matches = 0;
  for (absl::string_view key : kKnownKeys) {
    if (normalized.size() >= 4 && absl::StartsWith(key, normalized)) {
      prefix_match = key;
      ++prefix_matches;
    }
  }
  return prefix_matches == 1 ? prefix_match : "";
}

// Describes a node's kind for type errors: "a list", "a mapping", "null", "a string".
std::string KindOf(const YamlNode& node) {
  switch (node.type) {
    case YamlNode::Type::kSequence:
      return "a list";
    case YamlNode::Type::kMap:
      return "a mapping";
    case YamlNode::Type::kNull:
      return "null (no value)";
    case YamlNode::Type::kScalar:
      return absl::StrCat("the value ", Quote(node.scalar));
  }
  return "undefined";
}

// Returns why `revision` is not a valid id, or "" when it is.
std::string RevisionIdProblem(absl::string_view revision) {
  if (revision.empty()) return "is empty";
  if (revision.size() > kMaxRevisionLength) {
    return absl::StrCat("is ", revision.size(), " characters long, more than the ",
                        kMaxRevisionLength, " that Alembic's version table holds");
  }
  for (char c : revision) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      const unsigned char byte = static_cast<unsigned char>(c);
      const std::string shown = byte >= 0x20 && byte < 0x7f && c != '`'
                                    ? absl::StrCat("`", std::string(1, c), "`")
                                    : absl::StrFormat("byte 0x%02X", byte);
      return absl::StrCat("contains ", shown);
    }
  }
  return "";
}

constexpr absl::string_view kRevisionIdRule = "1-32 characters of A-Z a-z 0-9 _ . -";

// --- Checks on the raw bytes ---------------------------------------------------------------------

// Reports bytes that make the text unfit for YAML parsing; returns false when there are any.
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

// --- Splitting into documents -------------------------------------------------------------------

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

// Splits the text into chunks that each hold at most one YAML document: a chunk starts at a `---`
// line (with the comments and directives just above it) and ends after a `...` line.
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

// --- Parsing a document --------------------------------------------------------------------------

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

// --- Validating one document ---------------------------------------------------------------------

// Returns the 1-based file line that holds the first line of a string value's text. The node's
// mark is where its properties (`!!str`, `&anchor`) or its text start; for a block scalar (`|`,
// `>`) the text starts on the line after the indicator.
int FirstTextLine(const YamlNode& value, const DocumentContext& context) {
  const std::optional<size_t> start = context.OffsetOf(value.mark);
  if (!start) return context.PositionOf(value.mark).line;
  const absl::string_view text = context.index->text();
  size_t i = *start;
  const size_t end = context.chunk.end;
  while (i < end) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
    } else if (c == '!' || c == '&') {  // a tag or an anchor: skip to the next blank
      while (i < end && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n') {
        ++i;
      }
    } else if (c == '#') {  // a comment after the properties
      while (i < end && text[i] != '\n') ++i;
    } else {
      break;
    }
  }
  if (i >= end) return context.PositionOf(value.mark).line;
  const int line = static_cast<int>(context.index->LineOf(i)) + 1;
  return text[i] == '|' || text[i] == '>' ? line + 1 : line;
}

// Reads a list of ids or names: null (none), one string, or a list of strings. Reports problems
// and returns false when there are any.
bool ReadNameList(const YamlNode& value, absl::string_view key, bool revision_ids,
                  const DocumentContext& context, std::vector<std::string>* out) {
  out->clear();
  if (value.IsNull()) return true;
  const absl::string_view what = revision_ids ? "a revision id" : "a label";
  if (value.IsMap()) {
    context.Error(value.mark, absl::StrCat("`", key, "` must be ", what,
                                           " or a list of them, not a mapping; write `", key,
                                           ": [a, b]` or one value"));
    return false;
  }
  std::vector<const YamlNode*> items;
  if (value.IsScalar()) {
    items.push_back(&value);
  } else {
    items = value.items;
  }
  bool ok = true;
  std::set<std::string> listed;
  for (const YamlNode* entry : items) {
    const YamlNode& item = *entry;
    if (!item.IsScalar()) {
      context.Error(item.mark,
                    absl::StrCat("each entry of `", key, "` must be ", what, ", not ", KindOf(item),
                                 "; write a flat list: `", key, ": [a, b]`"));
      ok = false;
      continue;
    }
    const std::string& name = item.scalar;
    if (revision_ids) {
      if (const std::string problem = RevisionIdProblem(name); !problem.empty()) {
        context.Error(
            item.mark,
            absl::StrCat("revision id ", name.empty() ? "\"\"" : Quote(name), " in `", key, "` ",
                         problem, "; ids are ", kRevisionIdRule,
                         key == "down_revision" ? " (use null for a base revision)" : ""));
        ok = false;
        continue;
      }
    } else if (name.empty() || name.find_first_of(" \t\r\n@") != std::string::npos) {
      context.Error(item.mark,
                    absl::StrCat("branch label ", name.empty() ? "\"\"" : Quote(name),
                                 name.empty() ? " is empty" : " contains a blank or `@`",
                                 "; a label is used as `LABEL@head`, so give it a name without "
                                 "blanks or `@`"));
      ok = false;
      continue;
    }
    if (!listed.insert(name).second) {
      context.Error(item.mark,
                    absl::StrCat(Quote(name), " appears twice in `", key, "`; list it once"));
      ok = false;
      continue;
    }
    out->push_back(name);
  }
  return ok;
}

// Reads a string that may span lines (description, SQL). Null reads as absent.
bool ReadText(const YamlNode& value, absl::string_view key, absl::string_view fix,
              const DocumentContext& context, std::optional<std::string>* out) {
  if (value.IsNull()) {
    out->reset();
    return true;
  }
  if (!value.IsScalar()) {
    context.Error(value.mark,
                  absl::StrCat("`", key, "` must be a string, not ", KindOf(value), "; ", fix));
    return false;
  }
  *out = value.scalar;
  return true;
}

// Reads `transactional`. YAML 1.1 spellings (yes/no/on/off) are accepted because Kubernetes and
// PyYAML users write them; a quoted value is a string in YAML, so it is refused rather than
// guessed.
bool ReadBool(const YamlNode& value, absl::string_view key, const DocumentContext& context,
              bool* out) {
  static constexpr absl::string_view kTrue[] = {"true", "True", "TRUE", "yes", "Yes",
                                                "YES",  "on",   "On",   "ON"};
  static constexpr absl::string_view kFalse[] = {"false", "False", "FALSE", "no", "No",
                                                 "NO",    "off",   "Off",   "OFF"};
  if (value.IsScalar()) {
    const std::string& text = value.scalar;
    const bool quoted = value.tag == "!";
    if (!quoted) {
      for (absl::string_view t : kTrue) {
        if (text == t) {
          *out = true;
          return true;
        }
      }
      for (absl::string_view f : kFalse) {
        if (text == f) {
          *out = false;
          return true;
        }
      }
    } else if (text == "true" || text == "false") {
      context.Error(value.mark, absl::StrCat("`", key, "` is the quoted string \"", text,
                                             "\", not a boolean; remove the quotes"));
      return false;
    }
  }
  context.Error(
      value.mark,
      absl::StrCat("`", key, "` must be true or false, not ", KindOf(value), "; write `", key,
                   ": false` to run each statement outside a transaction, or omit "
                   "it (default true)"));
  return false;
}

// Validates one document (a mapping) into a migration; reports every problem found. Returns
// nullopt when there was any.
std::optional<Migration> ReadDocument(const YamlNode& document, const DocumentContext& context) {
  Migration migration;
  migration.location.file = std::string(context.file);
  const size_t errors_before = context.errors->size();
  bool ok = true;

  std::optional<YAML::Mark> revision_key;
  std::optional<YAML::Mark> upgrade_key;
  std::optional<std::string> upgrade;
  // Whether the empty-upgrade rule can be judged: not when `upgrade` or `down_revision` (which
  // decides whether this is a merge) was itself malformed, already reported.
  bool upgrade_ok = true;
  bool down_revision_ok = true;
  std::map<absl::string_view, YAML::Mark> seen;  // keys in the document's nodes
  // Known keys that an unknown key was taken for: their absence is then not reported again.
  std::set<absl::string_view> suggested;

  for (const auto& [key_entry, value_entry] : document.entries) {
    const YamlNode& key_node = *key_entry;
    const YamlNode& value = *value_entry;
    if (!key_node.IsScalar()) {
      context.Error(key_node.mark,
                    absl::StrCat("a key must be a plain name, not ", KindOf(key_node),
                                 "; known keys are ", KnownKeysList()));
      ok = false;
      continue;
    }
    const absl::string_view key = key_node.scalar;
    if (const auto [first, inserted] = seen.emplace(key, key_node.mark); !inserted) {
      context.Error(key_node.mark,
                    absl::StrCat("duplicate key ", Quote(key), " (first at line ",
                                 context.PositionOf(first->second).line, "); keep only one"));
      ok = false;
      continue;
    }
    if (absl::StartsWith(key, "x-")) continue;  // extension keys are the user's own

    if (key == "revision") {
      revision_key = key_node.mark;
      if (!value.IsScalar()) {
        context.Error(value.mark, absl::StrCat("`revision` must be one id, not ", KindOf(value),
                                               "; write e.g. `revision: fc0e7b400c13` (",
                                               kRevisionIdRule, ")"));
        ok = false;
        continue;
      }
      // The scalar's text exactly as written: `0012` and `1e3` are ids, not numbers.
      migration.revision = value.scalar;
      if (const std::string problem = RevisionIdProblem(migration.revision); !problem.empty()) {
        context.Error(value.mark,
                      absl::StrCat("revision id ",
                                   migration.revision.empty() ? "\"\"" : Quote(migration.revision),
                                   " ", problem, "; use ", kRevisionIdRule));
        ok = false;
      }
    } else if (key == "down_revision") {
      down_revision_ok =
          ReadNameList(value, key, /*revision_ids=*/true, context, &migration.down_revisions);
      ok &= down_revision_ok;
    } else if (key == "depends_on") {
      ok &= ReadNameList(value, key, /*revision_ids=*/true, context, &migration.depends_on);
    } else if (key == "branch_labels") {
      ok &= ReadNameList(value, key, /*revision_ids=*/false, context, &migration.branch_labels);
    } else if (key == "description") {
      std::optional<std::string> description;
      ok &= ReadText(value, key, "write it as text, e.g. `description: Add the users table`",
                     context, &description);
      migration.description = description.value_or("");
    } else if (key == "transactional") {
      ok &= ReadBool(value, key, context, &migration.transactional);
    } else if (key == "upgrade") {
      upgrade_key = key_node.mark;
      upgrade_ok =
          ReadText(value, key, "write the SQL as a block: `upgrade: |` then indented lines",
                   context, &upgrade);
      ok &= upgrade_ok;
      if (upgrade) migration.upgrade_first_line = FirstTextLine(value, context);
    } else if (key == "downgrade") {
      ok &= ReadText(value, key, "write the SQL as a block: `downgrade: |` then indented lines",
                     context, &migration.downgrade_sql);
      if (migration.downgrade_sql) migration.downgrade_first_line = FirstTextLine(value, context);
    } else {
      const absl::string_view suggestion = SuggestKey(key);
      if (!suggestion.empty()) suggested.insert(suggestion);
      context.Error(key_node.mark,
                    suggestion.empty()
                        ? absl::StrCat("unknown key ", Quote(key), "; known keys are ",
                                       KnownKeysList(), ", and custom keys must start with `x-`")
                        : absl::StrCat("unknown key ", Quote(key), "; did you mean `", suggestion,
                                       "`? (custom keys must start with `x-`)"));
      ok = false;
    }
  }

  if (!revision_key && suggested.count("revision") == 0) {
    context.Error(document.mark, absl::StrCat("the document has no `revision` key; add "
                                              "`revision: <id>` (",
                                              kRevisionIdRule, ")"));
    ok = false;
  } else if (revision_key) {
    const Position at = context.PositionOf(*revision_key);
    migration.location.line = at.line;
    migration.location.column = at.column;
  }

  // Only a merge may have no SQL: it exists to join branches. Whitespace alone counts as empty,
  // since it would apply nothing.
  const bool blank = absl::StripAsciiWhitespace(upgrade.value_or("")).empty();
  if (blank && !migration.is_merge() && upgrade_ok && down_revision_ok &&
      (upgrade_key || suggested.count("upgrade") == 0)) {
    if (!upgrade_key) {
      context.Error(document.mark,
                    "the document has no `upgrade` key; add `upgrade: |` followed by the SQL "
                    "(only a merge revision, with two or more `down_revision`s, may omit it)");
    } else {
      context.Error(*upgrade_key,
                    "`upgrade` is empty; write the SQL (only a merge revision, with two or more "
                    "`down_revision`s, may have none)");
    }
    ok = false;
  }

  if (!ok || context.errors->size() != errors_before) return std::nullopt;
  migration.upgrade_sql = std::move(upgrade).value_or("");
  migration.checksum = absl::StrCat("sha256:", base::Sha256Hex(migration.upgrade_sql));
  return migration;
}

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

// --- Reading simple documents without yaml-cpp ---------------------------------------------------

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

// Parses one file's text, appending its valid migrations to `out` and its problems to `errors`.
void ParseFile(absl::string_view text, absl::string_view file, std::vector<Migration>* out,
               Errors* errors) {
  // A UTF-8 byte-order mark is legal but not content; dropping it keeps line 1's columns right.
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);
  const LineIndex index(text);
  if (!CheckEncoding(text, index, file, errors)) return;

  for (const Chunk& chunk : SplitDocuments(text)) {
    DocumentContext context{file, &index, chunk, errors};
    const absl::string_view chunk_text = text.substr(chunk.begin, chunk.end - chunk.begin);
    YamlDocument parsed;
    if (!kUseSimpleReader || !SimpleReader(chunk_text, &parsed).Read()) {
      parsed = YamlDocument();
      if (!ParseWithPrepass(chunk_text, context, &parsed)) continue;
    }
    if (parsed.root == nullptr) continue;  // no document, e.g. after a trailing `---`
    const YamlNode& document = *parsed.root;
    try {
      if (document.IsNull()) continue;  // an empty document
      if (!document.IsMap()) {
        context.Error(document.mark,
                      absl::StrCat("the document is ", KindOf(document),
                                   ", not a mapping; each `---`-separated document must be "
                                   "one revision's keys (`revision:`, `upgrade:`, ...)"));
        continue;
      }
      if (std::optional<Migration> migration = ReadDocument(document, context)) {
        out->push_back(std::move(*migration));
      }
    } catch (const std::exception& e) {
      // Only std::bad_alloc and the like; keep it from crossing the public API anyway.
      context.Error(document.mark, absl::StrCat("cannot read the document: ", OneLine(e.what()),
                                                "; check the YAML syntax of this document"));
    }
  }
}

// Reports every revision id defined more than once, naming both places.
void CheckDuplicates(const std::vector<Migration>& migrations, Errors* errors) {
  std::map<absl::string_view, const Migration*> first;
  for (const Migration& migration : migrations) {
    const auto [it, inserted] = first.emplace(migration.revision, &migration);
    if (inserted) continue;
    const SourceLocation& other = it->second->location;
    errors->Add(
        migration.location.file, Position{migration.location.line, migration.location.column},
        absl::StrCat("duplicate revision ", Quote(migration.revision), ", already defined at ",
                     PrintableFileName(other.file), ":", other.line, ":", other.column,
                     "; give one of them a new id, or delete the copy"));
  }
}

// Returns the text of an errno value. strerror is not thread-safe; strerror_r comes in two
// flavours, GNU's returning the text and XSI's writing it to the buffer.
[[maybe_unused]] const char* StrerrorText(const char* text, const char* /*buffer*/) { return text; }
[[maybe_unused]] const char* StrerrorText(int /*status*/, const char* buffer) { return buffer; }
std::string ErrnoText(int error) {
  char buffer[256] = "";
  return StrerrorText(strerror_r(error, buffer, sizeof(buffer)), buffer);
}

// A file descriptor, closed with its owner.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { Reset(-1); }

  // Opens `path` for reading; returns whether that worked (errno says why not).
  bool Open(const std::string& path) {
    Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    return fd_ >= 0;
  }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// Reads a whole file into `buffer` (which keeps its storage from file to file), setting `*size`;
// opens it unless `file` already is. Returns false (and reports) on failure.
bool ReadFile(const std::string& path, FileDescriptor* file, std::vector<char>* buffer,
              size_t* size, Errors* errors) {
  if (file->get() < 0 && !file->Open(path)) {
    errors->Add(path, Position{},
                absl::StrCat("cannot open the file: ", ErrnoText(errno),
                             "; check that it exists and is readable by this user"));
    return false;
  }
  *size = 0;
  while (true) {
    if (buffer->size() - *size < 4096) {
      buffer->resize(std::max<size_t>(64 * 1024, 2 * buffer->size()));
    }
    const ssize_t n = ::read(file->get(), buffer->data() + *size, buffer->size() - *size);
    if (n > 0) {
      *size += static_cast<size_t>(n);
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      errors->Add(path, Position{},
                  absl::StrCat("cannot read the file: ", ErrnoText(errno),
                               "; check that it is a readable regular file"));
      return false;
    }
  }
  file->Reset(-1);
  return true;
}

bool HasManifestExtension(absl::string_view name) {
  return absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml");
}

// A manifest file's name in its directory.
struct ListedName {
  std::string name;
  // Whether the directory entry says the name is a regular file (not a link), so that its status
  // need not be asked. False when it does not know.
  bool regular = false;

  bool operator<(const ListedName& other) const { return name < other.name; }
};

// Returns a std::filesystem error's message for `error`, as std::filesystem words it.
std::string FilesystemErrorText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

// Lists the manifest files of one directory, in name order, reporting what cannot be listed (as
// std::filesystem::directory_iterator would). Each is then checked by CheckManifestFile.
std::vector<ListedName> ListManifestNames(const std::string& directory, Errors* errors) {
  std::error_code ec;
  const fs::file_status status = fs::status(directory, ec);
  if (ec || !fs::exists(status)) {
    errors->Add(directory, Position{},
                absl::StrCat("cannot open the migrations directory: ",
                             ec ? ec.message() : "it does not exist",
                             "; check the path (and, in a pod, the ConfigMap volume mount)"));
    return {};
  }
  if (!fs::is_directory(status)) {
    errors->Add(directory, Position{},
                "is not a directory; give the directory that holds the manifests, not a file");
    return {};
  }
  const auto cannot_list = [&](int error) {
    errors->Add(directory, Position{},
                absl::StrCat("cannot list the migrations directory: ", FilesystemErrorText(error),
                             "; check its permissions"));
  };
  const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(directory.c_str()), ::closedir);
  if (dir == nullptr) {
    cannot_list(errno);
    return {};
  }
  std::vector<ListedName> names;
  while (true) {
    errno = 0;
    const dirent* const entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno == 0) break;
      cannot_list(errno);
      return {};
    }
    const absl::string_view name = entry->d_name;
    // Dotfiles include `.` and `..`, and a mounted ConfigMap's `..data` and `..2026_...` entries,
    // which would otherwise be read a second time through the `..data` link.
    if (name.empty() || name[0] == '.' || !HasManifestExtension(name)) continue;
    names.push_back(ListedName{std::string(name), entry->d_type == DT_REG});
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Returns `directory`/`name` as std::filesystem's operator/ spells it (on POSIX, for a plain
// name), without its parsing of both: a separator is added unless `directory` is empty or ends
// with one.
std::string JoinPath(const std::string& directory, const std::string& name) {
  if (directory.empty()) return name;
  return absl::StrCat(directory, directory.back() == '/' ? "" : "/", name);
}

// Returns whether the listed `path` is a file to read, reporting what makes it unreadable.
bool CheckManifestFile(const std::string& path, Errors* errors) {
  // status() follows symbolic links: a ConfigMap key is a link to `..data/<key>`.
  std::error_code ec;
  const fs::file_status entry = fs::status(path, ec);
  if (ec || !fs::exists(entry)) {
    errors->Add(path, Position{},
                absl::StrCat("cannot open the file: ", ec ? ec.message() : "it does not exist",
                             "; fix or remove the broken symbolic link"));
    return false;
  }
  if (fs::is_directory(entry)) return false;  // a directory named `x.yaml`: no recursion
  if (!fs::is_regular_file(entry)) {
    // Reading a FIFO or a device could block forever.
    errors->Add(path, Position{},
                "is not a regular file (a pipe, socket or device); remove it from the "
                "migrations directory");
    return false;
  }
  return true;
}

// Most threads LoadDirectories reads files on; past a few, the merging and the disk limit it.
constexpr unsigned kMaxLoadThreads = 8;

// A part of a load's output, which must appear in the order of the parts: a directory's listing
// problems, then each listed file's problems as a directory entry (a broken link, a pipe), then
// each file's migrations and problems.
struct LoadPart {
  Errors errors;
  std::vector<Migration> migrations;
  std::exception_ptr exception;  // what making the part threw
};

// Takes the parts of a load as they are made, in any order, and appends them to the load's output
// in order, as soon as every earlier part is made (so made parts do not pile up).
class InOrderMerger {
 public:
  InOrderMerger(std::vector<LoadPart>* parts, std::vector<Migration>* migrations, Errors* errors)
      : parts_(*parts), done_(parts->size(), false), migrations_(*migrations), errors_(*errors) {}

  // Records that parts_[index] is made; merges what can be.
  void Finish(size_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_[index] = true;
    try {
      for (; next_ < parts_.size() && done_[next_]; ++next_) {
        LoadPart& part = parts_[next_];
        if (part.exception && !exception_) exception_ = part.exception;
        errors_.Append(std::move(part.errors));
        for (Migration& migration : part.migrations) migrations_.push_back(std::move(migration));
        part = LoadPart();
      }
    } catch (...) {
      // Out of memory: the load fails with it, whatever else is merged.
      if (!failure_) failure_ = std::current_exception();
    }
    if (errors_.full()) full_.store(true, std::memory_order_relaxed);
  }

  // Whether the load's error list is full: every later error would only be counted.
  bool full() const { return full_.load(std::memory_order_relaxed); }

  // Returns, once every part is merged, the first exception of a part in order, else one the
  // merge threw, else null.
  std::exception_ptr exception() const { return exception_ ? exception_ : failure_; }

 private:
  std::mutex mutex_;
  std::vector<LoadPart>& parts_;
  std::vector<bool> done_;
  size_t next_ = 0;
  std::vector<Migration>& migrations_;
  Errors& errors_;
  std::exception_ptr exception_;
  std::exception_ptr failure_;
  std::atomic<bool> full_{false};
};

absl::StatusOr<std::vector<Migration>> LoadDirectoriesOrThrow(
    const std::vector<std::string>& directories) {
  // A listed file: its path, and its two parts of the output.
  struct Entry {
    std::string path;
    bool regular;  // as ListedName
    size_t check_part;
    size_t file_part;
  };
  std::vector<LoadPart> parts;
  std::vector<size_t> listing_parts;
  std::vector<Entry> entries;
  for (const std::string& directory : directories) {
    listing_parts.push_back(parts.size());
    parts.emplace_back();
    const std::vector<ListedName> names = ListManifestNames(directory, &parts.back().errors);
    const size_t check_parts = parts.size();
    parts.resize(parts.size() + 2 * names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      entries.push_back(Entry{JoinPath(directory, names[i].name), names[i].regular, check_parts + i,
                              check_parts + names.size() + i});
    }
  }

  Errors errors;
  std::vector<Migration> migrations;
  InOrderMerger merger(&parts, &migrations, &errors);
  for (const size_t part : listing_parts) merger.Finish(part);

  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  const size_t worker_count =
      kUseLoadThreads
          ? std::max<size_t>(1, std::min<size_t>({hardware, kMaxLoadThreads, entries.size()}))
          : 1;
  std::atomic<size_t> next_entry{0};
  // What escaped a worker's loop (only a mutex could throw there), by worker.
  std::vector<std::exception_ptr> worker_failures(worker_count);
  // Takes files until none is left. Never throws: an exception is kept for the merge to rethrow in
  // order.
  const auto work = [&](size_t worker) {
    try {
      std::vector<char> buffer;
      for (size_t k = next_entry.fetch_add(1); k < entries.size(); k = next_entry.fetch_add(1)) {
        const Entry& entry = entries[k];
        LoadPart& check = parts[entry.check_part];
        LoadPart& file = parts[entry.file_part];
        FileDescriptor descriptor;
        bool read = false;
        try {
          // Once the load's list is full, this file's problems can only be counted.
          if (merger.full()) check.errors = Errors(/*capacity=*/0);
          // A regular file needs no check once it is open. Otherwise (a link, an entry of unknown
          // type, a file that does not open) the check reports what the trouble is.
          read = (entry.regular && descriptor.Open(entry.path)) ||
                 CheckManifestFile(entry.path, &check.errors);
        } catch (...) {
          check.exception = std::current_exception();
        }
        merger.Finish(entry.check_part);
        try {
          if (merger.full()) file.errors = Errors(/*capacity=*/0);
          size_t size = 0;
          if (read && ReadFile(entry.path, &descriptor, &buffer, &size, &file.errors)) {
            ParseFile(absl::string_view(buffer.data(), size), entry.path, &file.migrations,
                      &file.errors);
          }
        } catch (...) {
          file.exception = std::current_exception();
        }
        merger.Finish(entry.file_part);
      }
    } catch (...) {
      worker_failures[worker] = std::current_exception();
      next_entry.store(entries.size());  // the others stop too
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(worker_count);
  for (size_t worker = 1; worker < worker_count; ++worker) {
    try {
      threads.emplace_back(work, worker);
    } catch (...) {
      break;  // no more threads to be had: the ones running, and this one, do the work
    }
  }
  work(0);
  for (std::thread& thread : threads) thread.join();

  for (const std::exception_ptr& failure : worker_failures) {
    if (failure) std::rethrow_exception(failure);
  }
  if (merger.exception()) std::rethrow_exception(merger.exception());
  CheckDuplicates(migrations, &errors);
  if (!errors.empty()) return errors.ToStatus();
  return migrations;
}

}  // namespace

absl::StatusOr<std::vector<Migration>> LoadDirectories(
    const std::vector<std::string>& directories) {
  try {
    return LoadDirectoriesOrThrow(directories);
  } catch (const std::exception& e) {
    // Only std::bad_alloc and the like can get here; the contract is a Status, never a throw.
    return absl::InternalError(absl::StrCat("loading migrations: ", e.what()));
  } catch (...) {
    return absl::InternalError("loading migrations: unknown exception");
  }
}

absl::StatusOr<std::vector<Migration>> ParseManifest(absl::string_view text,
                                                     absl::string_view file_name) {
  try {
    Errors errors;
    std::vector<Migration> migrations;
    ParseFile(text, file_name, &migrations, &errors);
    CheckDuplicates(migrations, &errors);
    if (!errors.empty()) return errors.ToStatus();
    return migrations;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(file_name, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(file_name, ": unknown exception"));
  }
}

bool IsValidRevisionId(absl::string_view revision) { return RevisionIdProblem(revision).empty(); }

namespace internal {
namespace {

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

}  // namespace internal

}  // namespace sluice::manifest
