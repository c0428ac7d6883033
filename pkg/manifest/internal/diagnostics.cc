#include "pkg/manifest/internal/diagnostics.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "pkg/base/text.h"

namespace sluice::manifest::internal {
namespace {

// Longest user-supplied text (a key, a value) quoted in an error message.
constexpr size_t kMaxQuotedLength = 60;

}  // namespace

std::string PrintableFileName(absl::string_view file) {
  std::string out(file);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

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

}  // namespace sluice::manifest::internal
