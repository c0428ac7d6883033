#include "pkg/store/connection_string.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/store/pg_store.h"
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

// Returns `text` on one line, whitespace runs collapsed.
std::string OneLine(absl::string_view text) {
  std::string out;
  bool space = false;
  for (char c : absl::StripAsciiWhitespace(text)) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(c);
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

namespace {

// The libpq keywords, from libpq itself.
const std::set<std::string>& LibpqKeywords() {
  static const std::set<std::string>* const keywords = [] {
    auto* set = new std::set<std::string>();
    PQconninfoOption* options = PQconndefaults();
    for (PQconninfoOption* option = options; option != nullptr && option->keyword != nullptr;
         ++option) {
      set->insert(option->keyword);
    }
    PQconninfoFree(options);
    return set;
  }();
  return *keywords;
}

// Returns libpq's sslmode for asyncpg's `ssl=` value.
std::optional<std::string> SslModeFor(absl::string_view ssl) {
  const std::string value = absl::AsciiStrToLower(ssl);
  for (const char* mode : {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}) {
    if (value == mode) return value;
  }
  if (value == "true" || value == "1" || value == "yes" || value == "on") return "require";
  if (value == "false" || value == "0" || value == "no" || value == "off") return "disable";
  return std::nullopt;
}

// Returns why libpq would refuse the value of `keyword` at connect time, or "" when it would not.
// libpq checks these only when connecting, where a mistake would look like an unreachable server
// and be retried; checking them here fails fast instead.
std::string OptionProblem(absl::string_view keyword, absl::string_view value) {
  auto one_of = [&](std::initializer_list<absl::string_view> allowed) {
    for (absl::string_view candidate : allowed) {
      if (value == candidate) return std::string();
    }
    return absl::StrCat("invalid ", keyword, " value \"", value, "\": use one of ",
                        absl::StrJoin(allowed, ", "));
  };
  auto integer = [&]() {
    int number = 0;
    if (value.empty() || absl::SimpleAtoi(value, &number)) return std::string();
    return absl::StrCat("invalid integer value \"", value, "\" for ", keyword);
  };
  if (keyword == "port") {
    for (absl::string_view port : absl::StrSplit(value, ',')) {
      int number = 0;
      if (!port.empty() && (!absl::SimpleAtoi(port, &number) || number < 1 || number > 65535)) {
        return absl::StrCat("invalid port \"", port, "\"");
      }
    }
    return "";
  }
  if (keyword == "connect_timeout" || keyword == "keepalives" || keyword == "keepalives_idle" ||
      keyword == "keepalives_interval" || keyword == "keepalives_count" ||
      keyword == "tcp_user_timeout") {
    return integer();
  }
  if (keyword == "sslmode") {
    return one_of({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"});
  }
  if (keyword == "gssencmode") return one_of({"disable", "prefer", "require"});
  if (keyword == "channel_binding") return one_of({"disable", "prefer", "require"});
  if (keyword == "target_session_attrs") {
    return one_of({"any", "read-write", "read-only", "primary", "standby", "prefer-standby"});
  }
  return "";
}

// Checks that libpq can parse `conninfo` and would accept its values; `original` is what the user
// gave, for messages (redacted).
absl::Status CheckConnectionString(const std::string& conninfo, absl::string_view original) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  std::string reason;
  if (options == nullptr) {
    reason = error == nullptr ? "out of memory" : internal::OneLine(error);
    if (error != nullptr) PQfreemem(error);
  } else {
    for (PQconninfoOption* option = options; option->keyword != nullptr && reason.empty();
         ++option) {
      if (option->val != nullptr) reason = OptionProblem(option->keyword, option->val);
    }
    PQconninfoFree(options);
  }
  if (reason.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid connection string ", RedactUrl(original),
                                                 ": ", internal::ScrubSecrets(reason, original)));
}

}  // namespace

absl::StatusOr<std::string> LibpqConnectionString(absl::string_view url) {
  const absl::string_view text = absl::StripAsciiWhitespace(url);
  if (text.empty()) return std::string();
  if (!internal::LooksLikeUrl(text)) {
    if (!absl::StrContains(text, '=')) {
      return absl::InvalidArgumentError(
          absl::StrCat("connection string ", RedactUrl(text),
                       " is neither a postgresql:// URL nor a libpq key/value string "
                       "(host=... dbname=...)"));
    }
    std::string conninfo(text);
    SLUICE_RETURN_IF_ERROR(CheckConnectionString(conninfo, text));
    return conninfo;
  }
  const internal::UrlParts parts = internal::SplitUrl(text);
  const absl::string_view scheme =
      absl::string_view(parts.scheme).substr(0, parts.scheme.find('+'));
  if (scheme != "postgresql" && scheme != "postgres") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported URL scheme \"", parts.scheme, "\" in ", RedactUrl(text),
                     ": use postgresql://, postgres:// or postgresql+<driver>://"));
  }
  if (parts.ambiguous_userinfo) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ambiguous connection URL ", RedactUrl(text),
        ": percent-encode '@' as %40 and '/' as %2F in the user name, password and database "
        "name"));
  }
  const std::vector<internal::QueryParam> params = internal::SplitQuery(parts.query);
  const bool has_sslmode =
      std::any_of(params.begin(), params.end(), [](const auto& p) { return p.key == "sslmode"; });
  std::vector<std::string> kept;
  for (const internal::QueryParam& param : params) {
    if (param.key == "ssl") {
      std::optional<std::string> mode = SslModeFor(param.value);
      if (!mode.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported ssl=", param.value, " in ", RedactUrl(text)));
      }
      if (!has_sslmode) kept.push_back(absl::StrCat("sslmode=", *mode));
    } else if (LibpqKeywords().count(param.key) > 0) {
      kept.push_back(absl::StrCat(param.raw_key, "=", param.raw_value));
    } else {
      log::Debug("ignoring a connection URL parameter libpq does not know",
                 {{"parameter", param.key}});
    }
  }
  std::string conninfo = "postgresql://";
  if (parts.has_userinfo) absl::StrAppend(&conninfo, parts.userinfo, "@");
  absl::StrAppend(&conninfo, parts.hostspec_and_path);
  if (!kept.empty()) absl::StrAppend(&conninfo, "?", absl::StrJoin(kept, "&"));
  SLUICE_RETURN_IF_ERROR(CheckConnectionString(conninfo, text));
  return conninfo;
}

}  // namespace sluice::store
