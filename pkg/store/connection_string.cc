#include "pkg/store/connection_string.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "pkg/store/store.h"

namespace sluice::store {
namespace internal {
namespace {

constexpr char kRedacted[] = "***";

bool IsSecretKey(absl::string_view key) {
  return absl::EqualsIgnoreCase(key, "password") || absl::EqualsIgnoreCase(key, "sslpassword");
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One `key = value` of a libpq key/value string, with where its value is written.
struct KeyValueToken {
  std::string key;
  std::string value;  // unquoted and unescaped
  size_t value_begin = 0;
  size_t value_end = 0;  // one past the value as written (quotes included)
};

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Tokenizes a libpq key/value string the way libpq's conninfo_parse does; nullopt when malformed.
std::optional<std::vector<KeyValueToken>> TokenizeKeyValues(absl::string_view text) {
  std::vector<KeyValueToken> tokens;
  size_t i = 0;
  const size_t n = text.size();
  while (true) {
    while (i < n && IsSpace(text[i])) ++i;
    if (i == n) break;
    KeyValueToken token;
    while (i < n && text[i] != '=' && !IsSpace(text[i])) token.key.push_back(text[i++]);
    while (i < n && IsSpace(text[i])) ++i;
    if (i == n || text[i] != '=' || token.key.empty()) return std::nullopt;
    ++i;
    while (i < n && IsSpace(text[i])) ++i;
    token.value_begin = i;
    if (i < n && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (text[i] == '\\' && i + 1 < n) {
          token.value.push_back(text[i + 1]);
          i += 2;
        } else if (text[i] == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          token.value.push_back(text[i++]);
        }
      }
      if (!closed) return std::nullopt;
    } else {
      while (i < n && !IsSpace(text[i])) {
        if (text[i] == '\\' && i + 1 < n) {
          token.value.push_back(text[i + 1]);
          i += 2;
        } else {
          token.value.push_back(text[i++]);
        }
      }
    }
    token.value_end = i;
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// Returns `value` quoted for a libpq key/value string.
std::string QuoteKeyValue(absl::string_view value) {
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('\'');
  return quoted;
}

// Where a URL's password is written: [begin, end) within the URL, if any.
std::optional<std::pair<size_t, size_t>> UserinfoPasswordSpan(absl::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) return std::nullopt;
  const size_t start = scheme_end + 3;
  const UrlParts parts = SplitUrl(url);
  if (!parts.has_userinfo) return std::nullopt;
  const size_t colon = parts.userinfo.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(start + colon + 1, start + parts.userinfo.size());
}

std::string RedactUrlForm(absl::string_view url) {
  const UrlParts parts = SplitUrl(url);
  const size_t scheme_end = url.find("://");
  std::string out(url.substr(0, scheme_end + 3));
  if (parts.has_userinfo) {
    const size_t colon = parts.userinfo.find(':');
    if (colon == std::string::npos) {
      absl::StrAppend(&out, parts.userinfo);
    } else {
      absl::StrAppend(&out, parts.userinfo.substr(0, colon + 1), kRedacted);
    }
    out.push_back('@');
  }
  absl::StrAppend(&out, parts.hostspec_and_path);
  if (parts.has_query) {
    std::vector<std::string> params;
    for (absl::string_view piece : absl::StrSplit(parts.query, '&')) {
      const size_t eq = piece.find('=');
      const absl::string_view raw_key = piece.substr(0, eq);
      if (eq != absl::string_view::npos && IsSecretKey(PercentDecode(raw_key))) {
        params.push_back(absl::StrCat(raw_key, "=", kRedacted));
      } else {
        params.emplace_back(piece);
      }
    }
    absl::StrAppend(&out, "?", absl::StrJoin(params, "&"));
  }
  return out;
}

std::string RedactKeyValueForm(absl::string_view text) {
  std::optional<std::vector<KeyValueToken>> tokens = TokenizeKeyValues(text);
  if (!tokens.has_value()) {
    // Malformed: keep only what comes before the first password keyword.
    const std::string lower = absl::AsciiStrToLower(text);
    const size_t at = lower.find("password");
    if (at == std::string::npos) return std::string(text);
    return absl::StrCat(text.substr(0, at), "password=", kRedacted);
  }
  std::string out;
  size_t copied = 0;
  for (const KeyValueToken& token : *tokens) {
    std::optional<std::string> replacement;
    if (IsSecretKey(token.key)) {
      replacement = kRedacted;
    } else if (absl::EqualsIgnoreCase(token.key, "dbname") &&
               (LooksLikeUrl(token.value) || absl::StrContains(token.value, '='))) {
      // libpq expands a connection string given as dbname.
      replacement = QuoteKeyValue(RedactUrl(token.value));
    }
    if (!replacement.has_value()) continue;
    absl::StrAppend(&out, text.substr(copied, token.value_begin - copied), *replacement);
    copied = token.value_end;
  }
  absl::StrAppend(&out, text.substr(copied));
  return out;
}

}  // namespace

bool LooksLikeUrl(absl::string_view text) {
  const size_t scheme_end = text.find("://");
  if (scheme_end == absl::string_view::npos || scheme_end == 0) return false;
  if (!absl::ascii_isalpha(static_cast<unsigned char>(text[0]))) return false;
  for (char c : text.substr(0, scheme_end)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

UrlParts SplitUrl(absl::string_view url) {
  UrlParts parts;
  const size_t scheme_end = url.find("://");
  parts.scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  const absl::string_view rest = url.substr(scheme_end + 3);
  // libpq: the userinfo ends at the first '@' met before any '/'.
  size_t libpq_at = absl::string_view::npos;
  for (size_t i = 0; i < rest.size() && rest[i] != '/'; ++i) {
    if (rest[i] == '@') {
      libpq_at = i;
      break;
    }
  }
  const size_t query_start = rest.find('?', libpq_at == absl::string_view::npos ? 0 : libpq_at);
  const absl::string_view before_query = rest.substr(0, query_start);
  // The generous reading: up to the last '@' before the query.
  const size_t last_at = before_query.rfind('@');
  parts.ambiguous_userinfo = last_at != libpq_at;
  if (last_at != absl::string_view::npos) {
    parts.has_userinfo = true;
    parts.userinfo = std::string(before_query.substr(0, last_at));
    parts.hostspec_and_path = std::string(before_query.substr(last_at + 1));
  } else {
    parts.hostspec_and_path = std::string(before_query);
  }
  if (query_start != absl::string_view::npos) {
    parts.has_query = true;
    parts.query = std::string(rest.substr(query_start + 1));
  }
  return parts;
}

std::vector<QueryParam> SplitQuery(absl::string_view query) {
  std::vector<QueryParam> params;
  for (absl::string_view piece : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    QueryParam param;
    const size_t eq = piece.find('=');
    param.raw_key = std::string(piece.substr(0, eq));
    if (eq != absl::string_view::npos) param.raw_value = std::string(piece.substr(eq + 1));
    param.key = PercentDecode(param.raw_key);
    param.value = PercentDecode(param.raw_value);
    params.push_back(std::move(param));
  }
  return params;
}

std::string PercentDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
        HexValue(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::vector<std::string> SecretsIn(absl::string_view connection_string) {
  std::vector<std::string> secrets;
  auto add = [&secrets](absl::string_view secret) {
    if (secret.empty()) return;
    secrets.emplace_back(secret);
    std::string decoded = PercentDecode(secret);
    if (decoded != secret) secrets.push_back(std::move(decoded));
  };
  const absl::string_view text = absl::StripAsciiWhitespace(connection_string);
  if (LooksLikeUrl(text)) {
    if (auto span = UserinfoPasswordSpan(text)) {
      add(text.substr(span->first, span->second - span->first));
    }
    const UrlParts parts = SplitUrl(text);
    for (const QueryParam& param : SplitQuery(parts.query)) {
      if (IsSecretKey(param.key)) add(param.raw_value);
    }
  } else if (auto tokens = TokenizeKeyValues(text)) {
    for (const KeyValueToken& token : *tokens) {
      if (IsSecretKey(token.key)) add(token.value);
      if (absl::EqualsIgnoreCase(token.key, "dbname")) {
        for (std::string& secret : SecretsIn(token.value)) secrets.push_back(std::move(secret));
      }
    }
  }
  // Longest first, so that a secret containing another is replaced whole.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return secrets;
}

std::string ScrubSecrets(absl::string_view message, absl::string_view connection_string) {
  std::string out(message);
  for (const std::string& secret : SecretsIn(connection_string)) {
    out = absl::StrReplaceAll(out, {{secret, kRedacted}});
  }
  return out;
}

}  // namespace internal

std::string RedactUrl(absl::string_view url) {
  if (internal::LooksLikeUrl(absl::StripLeadingAsciiWhitespace(url))) {
    const size_t lead = url.size() - absl::StripLeadingAsciiWhitespace(url).size();
    return absl::StrCat(url.substr(0, lead), internal::RedactUrlForm(url.substr(lead)));
  }
  return internal::RedactKeyValueForm(url);
}

}  // namespace sluice::store
