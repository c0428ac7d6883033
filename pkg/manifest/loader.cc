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
#include "pkg/manifest/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
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
#include "pkg/base/text.h"
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

// Collects the error lines of one load, each `FILE:LINE:COLUMN: problem; fix`.
class Errors {
 public:
  void Add(absl::string_view file, Position at, absl::string_view message) {
    if (lines_.size() >= kMaxReportedErrors) {
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
    if (lines_.size() < kMaxReportedErrors) return false;
    ++dropped_;
    return true;
  }

  bool empty() const { return lines_.empty(); }
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
  std::vector<std::string> lines_;
  size_t dropped_ = 0;
};

// Maps byte offsets of a file's text to 1-based lines and character columns.
class LineIndex {
 public:
  explicit LineIndex(absl::string_view text) : text_(text) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts_.push_back(i + 1);
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

// Returns the optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
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
    const size_t distance = EditDistance(normalized, key);
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
std::string KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
      return "null (no value)";
    case YAML::NodeType::Scalar:
      return absl::StrCat("the value ", Quote(node.Scalar()));
    case YAML::NodeType::Undefined:
      break;
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

// Returns the offset of the first byte that is not part of valid UTF-8, or npos.
size_t FirstInvalidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    unsigned int code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
      code = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      code = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      code = c & 0x07;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    const unsigned int min_code = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (code < min_code || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return i;
    i += length;
  }
  return absl::string_view::npos;
}

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
  if (const size_t bad = FirstInvalidUtf8(text); bad != absl::string_view::npos) {
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
int FirstTextLine(const YAML::Node& value, const DocumentContext& context) {
  const std::optional<size_t> start = context.OffsetOf(value.Mark());
  if (!start) return context.PositionOf(value.Mark()).line;
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
  if (i >= end) return context.PositionOf(value.Mark()).line;
  const int line = static_cast<int>(context.index->LineOf(i)) + 1;
  return text[i] == '|' || text[i] == '>' ? line + 1 : line;
}

// Reads a list of ids or names: null (none), one string, or a list of strings. Reports problems
// and returns false when there are any.
bool ReadNameList(const YAML::Node& value, absl::string_view key, bool revision_ids,
                  const DocumentContext& context, std::vector<std::string>* out) {
  out->clear();
  if (value.IsNull()) return true;
  const absl::string_view what = revision_ids ? "a revision id" : "a label";
  if (value.IsMap()) {
    context.Error(value.Mark(), absl::StrCat("`", key, "` must be ", what,
                                             " or a list of them, not a mapping; write `", key,
                                             ": [a, b]` or one value"));
    return false;
  }
  std::vector<YAML::Node> items;
  if (value.IsScalar()) {
    items.push_back(value);
  } else {
    for (const YAML::Node& item : value) items.push_back(item);
  }
  bool ok = true;
  std::set<std::string> listed;
  for (const YAML::Node& item : items) {
    if (!item.IsScalar()) {
      context.Error(item.Mark(),
                    absl::StrCat("each entry of `", key, "` must be ", what, ", not ", KindOf(item),
                                 "; write a flat list: `", key, ": [a, b]`"));
      ok = false;
      continue;
    }
    const std::string& name = item.Scalar();
    if (revision_ids) {
      if (const std::string problem = RevisionIdProblem(name); !problem.empty()) {
        context.Error(
            item.Mark(),
            absl::StrCat("revision id ", name.empty() ? "\"\"" : Quote(name), " in `", key, "` ",
                         problem, "; ids are ", kRevisionIdRule,
                         key == "down_revision" ? " (use null for a base revision)" : ""));
        ok = false;
        continue;
      }
    } else if (name.empty() || name.find_first_of(" \t\r\n@") != std::string::npos) {
      context.Error(item.Mark(),
                    absl::StrCat("branch label ", name.empty() ? "\"\"" : Quote(name),
                                 name.empty() ? " is empty" : " contains a blank or `@`",
                                 "; a label is used as `LABEL@head`, so give it a name without "
                                 "blanks or `@`"));
      ok = false;
      continue;
    }
    if (!listed.insert(name).second) {
      context.Error(item.Mark(),
                    absl::StrCat(Quote(name), " appears twice in `", key, "`; list it once"));
      ok = false;
      continue;
    }
    out->push_back(name);
  }
  return ok;
}

// Reads a string that may span lines (description, SQL). Null reads as absent.
bool ReadText(const YAML::Node& value, absl::string_view key, absl::string_view fix,
              const DocumentContext& context, std::optional<std::string>* out) {
  if (value.IsNull()) {
    out->reset();
    return true;
  }
  if (!value.IsScalar()) {
    context.Error(value.Mark(),
                  absl::StrCat("`", key, "` must be a string, not ", KindOf(value), "; ", fix));
    return false;
  }
  *out = value.Scalar();
  return true;
}

// Reads `transactional`. YAML 1.1 spellings (yes/no/on/off) are accepted because Kubernetes and
// PyYAML users write them; a quoted value is a string in YAML, so it is refused rather than
// guessed.
bool ReadBool(const YAML::Node& value, absl::string_view key, const DocumentContext& context,
              bool* out) {
  static constexpr absl::string_view kTrue[] = {"true", "True", "TRUE", "yes", "Yes",
                                                "YES",  "on",   "On",   "ON"};
  static constexpr absl::string_view kFalse[] = {"false", "False", "FALSE", "no", "No",
                                                 "NO",    "off",   "Off",   "OFF"};
  if (value.IsScalar()) {
    const std::string& text = value.Scalar();
    const bool quoted = value.Tag() == "!";
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
      context.Error(value.Mark(), absl::StrCat("`", key, "` is the quoted string \"", text,
                                               "\", not a boolean; remove the quotes"));
      return false;
    }
  }
  context.Error(
      value.Mark(),
      absl::StrCat("`", key, "` must be true or false, not ", KindOf(value), "; write `", key,
                   ": false` to run each statement outside a transaction, or omit "
                   "it (default true)"));
  return false;
}

// Validates one document (a mapping) into a migration; reports every problem found. Returns
// nullopt when there was any.
std::optional<Migration> ReadDocument(const YAML::Node& document, const DocumentContext& context) {
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
  std::map<std::string, YAML::Mark> seen;
  // Known keys that an unknown key was taken for: their absence is then not reported again.
  std::set<absl::string_view> suggested;

  for (auto it = document.begin(); it != document.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value = it->second;
    if (!key_node.IsScalar()) {
      context.Error(key_node.Mark(),
                    absl::StrCat("a key must be a plain name, not ", KindOf(key_node),
                                 "; known keys are ", KnownKeysList()));
      ok = false;
      continue;
    }
    const std::string& key = key_node.Scalar();
    if (const auto [first, inserted] = seen.emplace(key, key_node.Mark()); !inserted) {
      context.Error(key_node.Mark(),
                    absl::StrCat("duplicate key ", Quote(key), " (first at line ",
                                 context.PositionOf(first->second).line, "); keep only one"));
      ok = false;
      continue;
    }
    if (absl::StartsWith(key, "x-")) continue;  // extension keys are the user's own

    if (key == "revision") {
      revision_key = key_node.Mark();
      if (!value.IsScalar()) {
        context.Error(value.Mark(), absl::StrCat("`revision` must be one id, not ", KindOf(value),
                                                 "; write e.g. `revision: fc0e7b400c13` (",
                                                 kRevisionIdRule, ")"));
        ok = false;
        continue;
      }
      // The scalar's text exactly as written: `0012` and `1e3` are ids, not numbers.
      migration.revision = value.Scalar();
      if (const std::string problem = RevisionIdProblem(migration.revision); !problem.empty()) {
        context.Error(value.Mark(),
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
      upgrade_key = key_node.Mark();
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
      context.Error(key_node.Mark(),
                    suggestion.empty()
                        ? absl::StrCat("unknown key ", Quote(key), "; known keys are ",
                                       KnownKeysList(), ", and custom keys must start with `x-`")
                        : absl::StrCat("unknown key ", Quote(key), "; did you mean `", suggestion,
                                       "`? (custom keys must start with `x-`)"));
      ok = false;
    }
  }

  if (!revision_key && suggested.count("revision") == 0) {
    context.Error(document.Mark(), absl::StrCat("the document has no `revision` key; add "
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
      context.Error(document.Mark(),
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
    std::vector<YAML::Node> documents;
    DocumentCounter counter;
    try {
      // A syntax pass first, working around two yaml-cpp 0.7 bugs:
      //  - a stray token where a document's node should start (`, x` at the top level) makes
      //    yaml-cpp return an empty document without consuming it, so LoadAll loops forever and
      //    Load silently drops the rest: one chunk holds one document, so a second is an error;
      //  - an unclosed quote runs to the end of the text and is accepted when the text ends with
      //    a line break (`upgrade: 'SELECT 1;` would swallow the keys below it), but is reported
      //    when it does not: the pass parses the text without its trailing blanks, which only the
      //    value of a `|+` block at the very end could depend on.
      const absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(chunk_text);
      std::istringstream stream{std::string(trimmed)};
      YAML::Parser parser(stream);
      while (counter.documents() < 2 && parser.HandleNextDocument(counter)) {
      }
      if (counter.documents() >= 2) {
        context.Error(counter.second(),
                      "invalid YAML: unexpected text where a document should go on; remove it, "
                      "or start a new document with a `---` line");
        continue;
      }
      documents.push_back(YAML::Load(std::string(chunk_text)));
    } catch (const YAML::ParserException& e) {
      ReportParseError(e, counter.last(), context);
      continue;
    } catch (const std::exception& e) {
      context.Error(YAML::Mark::null_mark(),
                    absl::StrCat("cannot parse the document: ", OneLine(e.what()),
                                 "; check the YAML syntax of this document"));
      continue;
    }
    for (const YAML::Node& document : documents) {
      try {
        if (document.IsNull()) continue;  // an empty document, e.g. after a trailing `---`
        if (!document.IsMap()) {
          context.Error(document.Mark(),
                        absl::StrCat("the document is ", KindOf(document),
                                     ", not a mapping; each `---`-separated document must be "
                                     "one revision's keys (`revision:`, `upgrade:`, ...)"));
          continue;
        }
        if (std::optional<Migration> migration = ReadDocument(document, context)) {
          out->push_back(std::move(*migration));
        }
      } catch (const std::exception& e) {
        // yaml-cpp's node API throws only on misuse; keep it from crossing the public API anyway.
        context.Error(document.Mark(), absl::StrCat("cannot read the document: ", OneLine(e.what()),
                                                    "; check the YAML syntax of this document"));
      }
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

// Reads a whole file. Returns false (and reports) on failure.
bool ReadFile(const std::string& path, std::string* text, Errors* errors) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    errors->Add(path, Position{},
                absl::StrCat("cannot open the file: ", std::strerror(errno),
                             "; check that it exists and is readable by this user"));
    return false;
  }
  text->clear();
  char buffer[64 * 1024];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text->append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int read_errno = errno;
  std::fclose(file);
  if (failed) {
    errors->Add(path, Position{},
                absl::StrCat("cannot read the file: ", std::strerror(read_errno),
                             "; check that it is a readable regular file"));
    return false;
  }
  return true;
}

bool HasManifestExtension(absl::string_view name) {
  return absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml");
}

// Lists the manifest files of one directory, in name order, reporting what cannot be listed.
std::vector<std::string> ListManifests(const std::string& directory, Errors* errors) {
  std::vector<std::string> files;
  std::error_code ec;
  const fs::file_status status = fs::status(directory, ec);
  if (ec || !fs::exists(status)) {
    errors->Add(directory, Position{},
                absl::StrCat("cannot open the migrations directory: ",
                             ec ? ec.message() : "it does not exist",
                             "; check the path (and, in a pod, the ConfigMap volume mount)"));
    return files;
  }
  if (!fs::is_directory(status)) {
    errors->Add(directory, Position{},
                "is not a directory; give the directory that holds the manifests, not a file");
    return files;
  }
  std::vector<std::string> names;
  fs::directory_iterator it(directory, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    // Dotfiles include a mounted ConfigMap's `..data` and `..2026_...` entries, which would
    // otherwise be read a second time through the `..data` link.
    if (name.empty() || name[0] == '.' || !HasManifestExtension(name)) continue;
    names.push_back(std::move(name));
  }
  if (ec) {
    errors->Add(directory, Position{},
                absl::StrCat("cannot list the migrations directory: ", ec.message(),
                             "; check its permissions"));
    return files;
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = (fs::path(directory) / name).string();
    // status() follows symbolic links: a ConfigMap key is a link to `..data/<key>`.
    std::error_code entry_ec;
    const fs::file_status entry = fs::status(path, entry_ec);
    if (entry_ec || !fs::exists(entry)) {
      errors->Add(path, Position{},
                  absl::StrCat(
                      "cannot open the file: ", entry_ec ? entry_ec.message() : "it does not exist",
                      "; fix or remove the broken symbolic link"));
      continue;
    }
    if (fs::is_directory(entry)) continue;  // a directory named `x.yaml`: no recursion
    if (!fs::is_regular_file(entry)) {
      // Reading a FIFO or a device could block forever.
      errors->Add(path, Position{},
                  "is not a regular file (a pipe, socket or device); remove it from the "
                  "migrations directory");
      continue;
    }
    files.push_back(path);
  }
  return files;
}

absl::StatusOr<std::vector<Migration>> LoadDirectoriesOrThrow(
    const std::vector<std::string>& directories) {
  Errors errors;
  std::vector<Migration> migrations;
  std::string text;
  for (const std::string& directory : directories) {
    for (const std::string& path : ListManifests(directory, &errors)) {
      if (!ReadFile(path, &text, &errors)) continue;
      ParseFile(text, path, &migrations, &errors);
    }
  }
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

}  // namespace sluice::manifest
