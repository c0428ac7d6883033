// Small text helpers shared by every module: JSON string quoting, UTF-8 checks, edit distance.
#ifndef SLUICE_PKG_BASE_TEXT_H_
#define SLUICE_PKG_BASE_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace sluice::base {

// Returns `text` as a JSON string literal, quotes included. Invalid UTF-8 bytes are escaped as
// \u00XX so the result is always valid JSON.
std::string JsonQuote(absl::string_view text);

// Returns the offset of the first byte of `text` that is not part of valid UTF-8 (overlong forms,
// UTF-16 surrogates and code points past U+10FFFF included), or absl::string_view::npos.
size_t FirstInvalidUtf8(absl::string_view text);

// Returns the length of the valid UTF-8 sequence of two to four bytes that starts at `text[i]`, or
// 0 when none does (an ASCII byte included).
size_t Utf8SequenceLength(absl::string_view text, size_t i);

// Returns the optimal-string-alignment distance between `a` and `b` (Levenshtein plus adjacent
// transpositions), or `limit + 1` as soon as it is sure to exceed `limit`: callers that suggest a
// close name only need to know whether two names are close.
size_t EditDistance(absl::string_view a, absl::string_view b, size_t limit = ~size_t{0} - 1);

}  // namespace sluice::base

#endif  // SLUICE_PKG_BASE_TEXT_H_
