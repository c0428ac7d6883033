#include "pkg/engine/offline_script.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/sql/sql_text.h"

namespace sluice::engine {
namespace {

std::string TextArray(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const std::string& item : items) quoted.push_back(sql::QuoteLiteral(item));
  return absl::StrCat("ARRAY[", absl::StrJoin(quoted, ", "), "]::text[]");
}

std::string HistoryInsertSql(const graph::Step& step, const OfflineScriptOptions& options) {
  const manifest::Migration& m = *step.migration;
  const bool upgrade = step.direction == graph::Direction::kUpgrade;
  const std::vector<std::string> values = {
      sql::QuoteLiteral(m.revision),
      sql::QuoteLiteral(upgrade ? "upgrade" : "downgrade"),
      sql::QuoteLiteral(m.checksum),
      sql::QuoteLiteral(m.description),
      "now()",
      "now()",
      "0",
      sql::QuoteLiteral(options.applied_by),
      "'applied'",
      "''",
      TextArray(m.down_revisions),
      TextArray(m.depends_on),
      sql::QuoteLiteral(m.upgrade_sql),
      m.downgrade_sql.has_value() ? sql::QuoteLiteral(*m.downgrade_sql) : "NULL",
      m.transactional ? "true" : "false",
  };
  return absl::StrCat("INSERT INTO ", sql::QualifiedName(options.schema, sql::kHistoryTable), " (",
                      sql::kHistoryColumns, ") VALUES (", absl::StrJoin(values, ", "), ");\n\n");
}

// Returns `sql` trimmed, ending with a semicolon, followed by a blank line.
std::string Terminated(absl::string_view sql) {
  absl::string_view body = absl::StripAsciiWhitespace(sql);
  if (body.empty()) return "";
  if (body.back() == ';') return absl::StrCat(body, "\n\n");
  // A trailing `--` comment would swallow a semicolon put on its line.
  const size_t last_line = body.rfind('\n');
  const bool ends_in_comment =
      body.substr(last_line == absl::string_view::npos ? 0 : last_line).find("--") !=
      absl::string_view::npos;
  return absl::StrCat(body, ends_in_comment ? "\n;" : ";", "\n\n");
}

}  // namespace

std::string RenderOfflineScript(const graph::Plan& plan, const OfflineScriptOptions& options) {
  std::string out;
  if (options.create_tables) {
    for (const std::string& statement :
         sql::EnsureTablesSql(options.schema, options.version_table)) {
      absl::StrAppend(&out, statement, ";\n\n");
    }
  }
  for (const graph::Step& step : plan.steps) {
    const manifest::Migration& m = *step.migration;
    const bool upgrade = step.direction == graph::Direction::kUpgrade;
    const std::string parents = absl::StrJoin(m.down_revisions, ", ");
    absl::StrAppend(&out, "-- Running ", upgrade ? "upgrade " : "downgrade ",
                    upgrade ? parents : m.revision, " -> ", upgrade ? m.revision : parents, ", ",
                    m.description, "\n\n");
    const std::string sql = Terminated(upgrade ? m.upgrade_sql : m.downgrade_sql.value_or(""));
    if (m.transactional) {
      absl::StrAppend(&out, "BEGIN;\n\n", sql);
    } else {
      absl::StrAppend(&out, "-- transactional: false; these statements run one by one\n\n", sql,
                      "BEGIN;\n\n");
    }
    for (const std::string& statement : sql::VersionChangeSql(
             options.schema, options.version_table, step.delete_versions, step.insert_versions)) {
      absl::StrAppend(&out, statement, ";\n\n");
    }
    absl::StrAppend(&out, HistoryInsertSql(step, options), "COMMIT;\n\n");
  }
  return out;
}

}  // namespace sluice::engine
