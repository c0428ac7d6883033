#include "pkg/alembic_import/manifest_text.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "pkg/base/text.h"
#include "pkg/manifest/loader.h"

namespace sluice::alembic_import {
namespace {

constexpr size_t kMaxSlugLength = 40;

// Returns whether YAML reads `text` unquoted as that same string, in block context (`in_flow`
// false) or inside `[...]`. Conservative: anything unusual is quoted.
bool PlainSafe(absl::string_view text, bool in_flow) {
  if (text.empty() || text.size() > 200) return false;
  const unsigned char first = static_cast<unsigned char>(text.front());
  if (!absl::ascii_isalnum(first) && first != '_') return false;
  if (absl::ascii_isspace(static_cast<unsigned char>(text.back())) || text.back() == ':') {
    return false;
  }
  static constexpr absl::string_view kWords[] = {"null", "true", "false", "yes", "no",
                                                 "on",   "off",  "y",     "n"};
  const std::string lower = absl::AsciiStrToLower(text);
  for (absl::string_view word : kWords) {
    if (lower == word) return false;
  }
  if (absl::StrContains(text, ": ") || absl::StrContains(text, " #")) return false;
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) return false;
    if (in_flow && (c == ',' || c == '[' || c == ']' || c == '{' || c == '}' || c == ' ')) {
      return false;
    }
  }
  return true;
}

std::string Scalar(absl::string_view text, bool in_flow = false) {
  return PlainSafe(text, in_flow) ? std::string(text) : base::JsonQuote(text);
}

std::string FlowList(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const std::string& item : items) quoted.push_back(Scalar(item, /*in_flow=*/true));
  return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
}

// Returns whether `sql` can be a literal block scalar that reads back exactly: printable text
// whose lines YAML keeps as written.
bool LiteralBlockSafe(absl::string_view sql) {
  if (sql.empty() || sql.back() != '\n') return false;
  for (size_t i = 0; i < sql.size(); ++i) {
    const unsigned char byte = static_cast<unsigned char>(sql[i]);
    if ((byte < 0x20 && byte != '\n' && byte != '\t') || byte == 0x7F) return false;
    // A byte-order mark or a C1 control character inside the text: leave them to quoting.
    if (absl::StartsWith(sql.substr(i), "\xEF\xBB\xBF") ||
        (byte == 0xC2 && i + 1 < sql.size() && static_cast<unsigned char>(sql[i + 1]) >= 0x80 &&
         static_cast<unsigned char>(sql[i + 1]) < 0xA0)) {
      return false;
    }
  }
  return true;
}

// Returns `key: VALUE` for SQL, as a literal block when it can be one.
std::string SqlEntry(absl::string_view key, absl::string_view sql) {
  if (!LiteralBlockSafe(sql)) return absl::StrCat(key, ": ", base::JsonQuote(sql), "\n");
  // A first line that starts with a blank would be taken for deeper indentation: say it is 2.
  const size_t first_text = sql.find_first_not_of('\n');
  const bool indicator =
      first_text != absl::string_view::npos && (sql[first_text] == ' ' || sql[first_text] == '\t');
  std::string out = absl::StrCat(key, ": |", indicator ? "2" : "", "\n");
  for (absl::string_view line : absl::StrSplit(sql.substr(0, sql.size() - 1), '\n')) {
    if (line.empty()) {
      out += "\n";
    } else {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  return out;
}

}  // namespace

std::string TidySql(absl::string_view sql) {
  // Leading lines of only blanks go; the first line with text keeps its indentation.
  size_t start = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] == '\n') {
      start = i + 1;
    } else if (sql[i] != ' ' && sql[i] != '\t' && sql[i] != '\r') {
      break;
    }
  }
  absl::string_view body = sql.substr(std::min(start, sql.size()));
  body = absl::StripTrailingAsciiWhitespace(body);
  if (body.empty()) return "";
  return absl::StrCat(body, "\n");
}

std::string ManifestText(const ManifestFields& fields, absl::string_view alembic_version,
                         std::string* without_marker) {
  std::string header = absl::StrCat("# Imported by `sluice import alembic` (Alembic ",
                                    alembic_version, ") from ", fields.script, ".\n");
  std::string body;
  absl::StrAppend(&body, "revision: ", Scalar(fields.revision), "\n");
  if (fields.down_revisions.empty()) {
    absl::StrAppend(&body, "down_revision: null\n");
  } else if (fields.down_revisions.size() == 1) {
    absl::StrAppend(&body, "down_revision: ", Scalar(fields.down_revisions[0]), "\n");
  } else {
    absl::StrAppend(&body, "down_revision: ", FlowList(fields.down_revisions), "\n");
  }
  absl::StrAppend(&body, "description: ", Scalar(fields.description), "\n");
  absl::StrAppend(&body, "branch_labels: ", FlowList(fields.branch_labels), "\n");
  absl::StrAppend(&body, "depends_on: ", FlowList(fields.depends_on), "\n");
  if (!fields.transactional) absl::StrAppend(&body, "transactional: false\n");
  absl::StrAppend(&body, "x-alembic-script: ", Scalar(fields.script), "\n");
  absl::StrAppend(&body, SqlEntry("upgrade", fields.upgrade_sql));
  if (fields.downgrade_sql.has_value()) {
    absl::StrAppend(&body, SqlEntry("downgrade", *fields.downgrade_sql));
  }
  if (without_marker != nullptr) *without_marker = header + body;
  if (fields.unconverted_reason.empty()) return header + body;
  // Right under the header, where a reader sees it first; deleting this one line is the last step
  // of filling the revision in.
  return absl::StrCat(header, manifest::kUnconvertedKey, ": ",
                      base::JsonQuote(fields.unconverted_reason), "\n", body);
}

std::string ManifestFileName(size_t index, size_t count, absl::string_view revision,
                             absl::string_view description) {
  const size_t width = std::max<size_t>(4, absl::StrCat(count).size());
  std::string number = absl::StrCat(index);
  number.insert(0, width > number.size() ? width - number.size() : 0, '0');
  std::string slug;
  for (char c : description) {
    if (slug.size() >= kMaxSlugLength) break;
    const unsigned char byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte)) {
      slug.push_back(absl::ascii_tolower(byte));
    } else if (!slug.empty() && slug.back() != '_') {
      slug.push_back('_');
    }
  }
  while (!slug.empty() && slug.back() == '_') slug.pop_back();
  return absl::StrCat(number, "_", revision, slug.empty() ? "" : "_", slug, ".yaml");
}

}  // namespace sluice::alembic_import
