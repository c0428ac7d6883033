#include "pkg/sql/sql_text.h"

#include <cctype>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace sluice::sql {

std::string QuoteIdentifier(absl::string_view name) {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

std::string QuoteLiteral(absl::string_view value) {
  const std::string doubled = absl::StrReplaceAll(value, {{"'", "''"}});
  if (absl::StrContains(value, '\\')) {
    return absl::StrCat("E'", absl::StrReplaceAll(doubled, {{"\\", "\\\\"}}), "'");
  }
  return absl::StrCat("'", doubled, "'");
}

std::string QualifiedName(absl::string_view schema, absl::string_view table) {
  return absl::StrCat(QuoteIdentifier(schema), ".", QuoteIdentifier(table));
}

std::string CreateVersionTableSql(absl::string_view schema, absl::string_view table) {
  return absl::StrCat("CREATE TABLE IF NOT EXISTS ", QualifiedName(schema, table),
                      " (\n    version_num VARCHAR(32) NOT NULL,\n    CONSTRAINT ",
                      QuoteIdentifier(absl::StrCat(table, "_pkc")),
                      " PRIMARY KEY (version_num)\n)");
}

std::string CreateHistoryTableSql(absl::string_view schema) {
  return absl::StrCat("CREATE TABLE IF NOT EXISTS ", QualifiedName(schema, kHistoryTable), R"( (
    id BIGSERIAL PRIMARY KEY,
    revision VARCHAR(32) NOT NULL,
    direction TEXT NOT NULL,
    checksum TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    applied_by TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    down_revisions TEXT[] NOT NULL DEFAULT '{}',
    depends_on TEXT[] NOT NULL DEFAULT '{}',
    upgrade_sql TEXT NOT NULL DEFAULT '',
    downgrade_sql TEXT,
    transactional BOOLEAN NOT NULL DEFAULT TRUE
))");
}

std::vector<std::string> EnsureTablesSql(absl::string_view schema, absl::string_view table) {
  return {absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", QuoteIdentifier(schema)),
          CreateVersionTableSql(schema, table), CreateHistoryTableSql(schema)};
}

std::vector<std::string> VersionChangeSql(absl::string_view schema, absl::string_view table,
                                          const std::vector<std::string>& delete_versions,
                                          const std::vector<std::string>& insert_versions) {
  const std::string name = QualifiedName(schema, table);
  std::vector<std::string> statements;
  size_t deleted = 0;
  size_t inserted = 0;
  // Alembic first deletes the rows a merge absorbs beyond the one it updates in place.
  while (delete_versions.size() - deleted > 1 ||
         (delete_versions.size() - deleted == 1 && insert_versions.empty())) {
    statements.push_back(absl::StrCat(
        "DELETE FROM ", name, " WHERE version_num = ", QuoteLiteral(delete_versions[deleted++])));
  }
  if (deleted < delete_versions.size()) {
    statements.push_back(absl::StrCat(
        "UPDATE ", name, " SET version_num = ", QuoteLiteral(insert_versions[inserted++]),
        " WHERE version_num = ", QuoteLiteral(delete_versions[deleted++])));
  }
  while (inserted < insert_versions.size()) {
    statements.push_back(absl::StrCat("INSERT INTO ", name, " (version_num) VALUES (",
                                      QuoteLiteral(insert_versions[inserted++]), ")"));
  }
  return statements;
}

namespace {

bool IsIdentifierStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdentifierChar(char c) {
  return IsIdentifierStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// Walks a script once, tracking the lexical state that decides whether a semicolon ends a
// statement.
class Splitter {
 public:
  explicit Splitter(absl::string_view script) : script_(script) {}

  absl::StatusOr<std::vector<Statement>> Run() {
    while (pos_ < script_.size()) {
      const char c = script_[pos_];
      const char next = pos_ + 1 < script_.size() ? script_[pos_ + 1] : '\0';
      if (c == '-' && next == '-') {
        SkipLineComment();
      } else if (c == '/' && next == '*') {
        if (!SkipBlockComment()) return Unterminated("comment", comment_line_);
      } else if (c == '\'') {
        const bool escapes = pos_ > 0 && (script_[pos_ - 1] == 'E' || script_[pos_ - 1] == 'e') &&
                             (pos_ < 2 || !IsIdentifierChar(script_[pos_ - 2]));
        MarkContent();
        const int line = line_;
        if (!SkipQuoted('\'', escapes)) return Unterminated("string literal", line);
      } else if (c == '"') {
        MarkContent();
        const int line = line_;
        if (!SkipQuoted('"', false)) return Unterminated("quoted identifier", line);
      } else if (c == '$' && TryDollarQuote()) {
        // TryDollarQuote consumed the whole dollar-quoted body.
      } else if (IsIdentifierStart(c)) {
        MarkContent();
        ReadWord();
      } else if (c == ';' && atomic_depth_ == 0) {
        EndStatement();
        ++pos_;
      } else {
        if (!std::isspace(static_cast<unsigned char>(c))) MarkContent();
        Advance();
      }
      if (failed_dollar_) return Unterminated("dollar-quoted string", dollar_line_);
    }
    EndStatement();
    return std::move(statements_);
  }

 private:
  void Advance() {
    if (script_[pos_] == '\n') ++line_;
    ++pos_;
  }

  void MarkContent() {
    if (!has_content_) {
      has_content_ = true;
      content_line_ = line_;
      content_start_ = pos_;
    }
  }

  void EndStatement() {
    if (has_content_) {
      std::string text(absl::StripTrailingAsciiWhitespace(
          script_.substr(content_start_, pos_ - content_start_)));
      statements_.push_back(Statement{std::move(text), content_line_});
    }
    has_content_ = false;
    previous_word_.clear();
  }

  void SkipLineComment() {
    while (pos_ < script_.size() && script_[pos_] != '\n') ++pos_;
  }

  bool SkipBlockComment() {
    comment_line_ = line_;
    int depth = 0;
    while (pos_ < script_.size()) {
      if (script_.substr(pos_, 2) == "/*") {
        ++depth;
        pos_ += 2;
      } else if (script_.substr(pos_, 2) == "*/") {
        --depth;
        pos_ += 2;
        if (depth == 0) return true;
      } else {
        Advance();
      }
    }
    return false;
  }

  // Skips a quoted run starting at the opening `quote`; a doubled quote stands for itself.
  bool SkipQuoted(char quote, bool backslash_escapes) {
    Advance();
    while (pos_ < script_.size()) {
      const char c = script_[pos_];
      if (backslash_escapes && c == '\\' && pos_ + 1 < script_.size()) {
        Advance();
        Advance();
      } else if (c == quote) {
        Advance();
        if (pos_ < script_.size() && script_[pos_] == quote) {
          Advance();
        } else {
          return true;
        }
      } else {
        Advance();
      }
    }
    return false;
  }

  // At a `$`: when it opens a dollar quote ($$ or $tag$), skips to the matching close and returns
  // true. A `$1` parameter or a `$` inside an identifier is not a quote.
  bool TryDollarQuote() {
    if (pos_ > 0 && IsIdentifierChar(script_[pos_ - 1])) return false;
    size_t end = pos_ + 1;
    while (end < script_.size() && script_[end] != '$') {
      const char c = script_[end];
      const bool ok = end == pos_ + 1 ? IsIdentifierStart(c) : (IsIdentifierChar(c) && c != '$');
      if (!ok) return false;
      ++end;
    }
    if (end >= script_.size()) return false;
    const std::string tag(script_.substr(pos_, end - pos_ + 1));
    MarkContent();
    dollar_line_ = line_;
    const size_t close = script_.find(tag, end + 1);
    if (close == absl::string_view::npos) {
      failed_dollar_ = true;
      pos_ = script_.size();
      return true;
    }
    while (pos_ < close + tag.size()) Advance();
    return true;
  }

  // Reads an identifier or keyword; tracks `BEGIN ATOMIC ... END`, whose body holds semicolons.
  void ReadWord() {
    const size_t begin = pos_;
    while (pos_ < script_.size() && IsIdentifierChar(script_[pos_])) ++pos_;
    const std::string word = absl::AsciiStrToUpper(script_.substr(begin, pos_ - begin));
    if (word == "ATOMIC" && previous_word_ == "BEGIN") {
      ++atomic_depth_;
    } else if (atomic_depth_ > 0 && word == "CASE") {
      ++atomic_depth_;
    } else if (atomic_depth_ > 0 && word == "END") {
      --atomic_depth_;
    }
    previous_word_ = word;
  }

  absl::Status Unterminated(absl::string_view what, int line) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": unterminated ", what,
                                                   "; close it before the end of the SQL"));
  }

  absl::string_view script_;
  size_t pos_ = 0;
  size_t content_start_ = 0;
  int line_ = 1;
  bool has_content_ = false;
  int content_line_ = 1;
  int comment_line_ = 1;
  int dollar_line_ = 1;
  bool failed_dollar_ = false;
  int atomic_depth_ = 0;
  std::string previous_word_;
  std::vector<Statement> statements_;
};

}  // namespace

absl::StatusOr<std::vector<Statement>> SplitStatements(absl::string_view script) {
  return Splitter(script).Run();
}

}  // namespace sluice::sql
