// Test helper: checks the error-line format of the loader's statuses. Hand-written rather than a
// std::regex, which g++ 12 cannot compile warning-free under -fsanitize=address -Werror.
#ifndef SLUICE_PKG_MANIFEST_ERROR_LINE_TEST_UTIL_H_
#define SLUICE_PKG_MANIFEST_ERROR_LINE_TEST_UTIL_H_

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace sluice::manifest {

// Returns whether `line` reads `FILE:LINE[:COLUMN]: what is wrong; what would fix it`, on one line,
// where FILE ends in `.yaml` or `.yml`.
inline bool IsLocatedErrorLine(absl::string_view line) {
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20) return false;
  }
  size_t at = line.find(".yaml:");
  size_t skip = 6;
  if (at == absl::string_view::npos) {
    at = line.find(".yml:");
    skip = 5;
  }
  if (at == absl::string_view::npos) return false;
  line.remove_prefix(at + skip);
  for (int part = 0; part < 2; ++part) {  // LINE, then optionally COLUMN
    size_t digits = 0;
    while (digits < line.size() && absl::ascii_isdigit(static_cast<unsigned char>(line[digits]))) {
      ++digits;
    }
    if (digits == 0 && part == 0) return false;
    line.remove_prefix(digits);
    if (absl::StartsWith(line, ": ")) break;
    if (part == 1 || !absl::ConsumePrefix(&line, ":")) return false;
  }
  if (!absl::ConsumePrefix(&line, ": ")) return false;
  const size_t semicolon = line.find("; ");
  return semicolon != absl::string_view::npos && semicolon > 0 && semicolon + 2 < line.size();
}

}  // namespace sluice::manifest

#endif  // SLUICE_PKG_MANIFEST_ERROR_LINE_TEST_UTIL_H_
