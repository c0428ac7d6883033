// Error collection for the manifest loader: every problem of a load becomes one line
// `FILE:LINE:COLUMN: what is wrong; how to fix it`, and byte offsets of a file's text map to the
// lines and character columns an editor shows. Internal to pkg/manifest.
#ifndef SLUICE_PKG_MANIFEST_INTERNAL_DIAGNOSTICS_H_
#define SLUICE_PKG_MANIFEST_INTERNAL_DIAGNOSTICS_H_

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace sluice::manifest::internal {

// A garbage file can hold thousands of bad documents; past this many lines the message stops being
// read by anyone, and only grows the log and the MigrationJob status.
constexpr size_t kMaxReportedErrors = 200;

// Where in a file a problem is.
struct Position {
  int line = 0;    // 1-based; 0: unknown
  int column = 0;  // 1-based; 0: unknown
};

// Removes bytes that would break the one-error-per-line format (a file name could hold a newline).
std::string PrintableFileName(absl::string_view file);

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

// Returns yaml-cpp's message with control characters escaped: some messages hold the offending
// character itself (`unknown escape character: \r`), which would break one error per line.
std::string OneLine(absl::string_view message);

// Quotes user-supplied text for a one-line message: `plain` when it is short printable ASCII,
// else a JSON string (so newlines and odd bytes stay visible and on one line), shortened.
std::string Quote(absl::string_view text);

}  // namespace sluice::manifest::internal

#endif  // SLUICE_PKG_MANIFEST_INTERNAL_DIAGNOSTICS_H_
