// The connection strings sluice accepts (postgresql:// URLs, SQLAlchemy-style postgresql+driver://
// URLs, libpq key/value strings): parsing as far as redaction and normalization need it, and (in
// connection_string.cc, with libpq's own parser) LibpqConnectionString of pg_store.h, which turns
// them into what libpq accepts and checks the values libpq would only check when connecting.
// Internal to pkg/store: no libpq type in this header; thread-safe.
#ifndef SLUICE_PKG_STORE_CONNECTION_STRING_H_
#define SLUICE_PKG_STORE_CONNECTION_STRING_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sluice::store::internal {

// A URL cut where libpq cuts it: `scheme://[userinfo@]hostspec[/dbname][?query]`.
struct UrlParts {
  std::string scheme;    // lower case, e.g. "postgresql+asyncpg"
  std::string userinfo;  // without the '@'; empty when absent
  bool has_userinfo = false;
  std::string hostspec_and_path;  // between userinfo and query
  std::string query;              // without the '?'
  bool has_query = false;
  // True when libpq's reading of the userinfo (up to the first '@' before any '/') differs from
  // the most generous one (up to the last '@' before the query): an unencoded '@' or '/' in a
  // user name, password or database name.
  bool ambiguous_userinfo = false;
};

// One `key=value` of a URL query.
struct QueryParam {
  std::string raw_key;  // as written (percent-encoded)
  std::string raw_value;
  std::string key;  // percent-decoded
  std::string value;
};

// Returns whether `text` starts with `scheme://`.
bool LooksLikeUrl(absl::string_view text);

// Splits `url` (which LooksLikeUrl) into its parts.
UrlParts SplitUrl(absl::string_view url);

// Splits a URL query (`a=1&b=2`) into parameters, percent-decoding keys and values.
std::vector<QueryParam> SplitQuery(absl::string_view query);

// Returns `text` with %XX sequences decoded (invalid sequences are kept as they are).
std::string PercentDecode(absl::string_view text);

// Returns the passwords in `connection_string` (as written and decoded), so that messages that
// might echo them can be scrubbed.
std::vector<std::string> SecretsIn(absl::string_view connection_string);

// Returns `text` on one line, whitespace runs collapsed (libpq's messages span lines).
std::string OneLine(absl::string_view text);

// Returns `message` with every occurrence of a secret of `connection_string` replaced by `***`.
std::string ScrubSecrets(absl::string_view message, absl::string_view connection_string);

}  // namespace sluice::store::internal

#endif  // SLUICE_PKG_STORE_CONNECTION_STRING_H_
