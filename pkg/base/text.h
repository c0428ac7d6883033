// Small text helpers shared by every module: JSON string quoting and secret redaction.
#ifndef SLUICE_PKG_BASE_TEXT_H_
#define SLUICE_PKG_BASE_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace sluice::base {

// Returns `text` as a JSON string literal, quotes included. Invalid UTF-8 bytes are escaped as
// \u00XX so the result is always valid JSON.
std::string JsonQuote(absl::string_view text);

// Returns the lowercase hex SHA-256 digest of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace sluice::base

#endif  // SLUICE_PKG_BASE_TEXT_H_
