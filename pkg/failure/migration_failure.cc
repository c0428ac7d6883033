#include "pkg/failure/migration_failure.h"

#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sluice::failure {
namespace {

// The payload key. Its value is a sequence of `<length>:<bytes>` fields in the order of
// MigrationFailure's members (numbers and the flag in decimal), so any bytes in a field round-trip
// unchanged.
constexpr char kPayloadKey[] = "type.sluice.dev/MigrationFailure";

void AppendField(std::string& out, absl::string_view field) {
  absl::StrAppend(&out, field.size(), ":", field);
}

bool ReadField(absl::string_view& in, std::string& field) {
  const size_t colon = in.find(':');
  if (colon == absl::string_view::npos) return false;
  size_t length = 0;
  if (!absl::SimpleAtoi(in.substr(0, colon), &length)) return false;
  in.remove_prefix(colon + 1);
  if (length > in.size()) return false;
  field = std::string(in.substr(0, length));
  in.remove_prefix(length);
  return true;
}

bool ReadNumber(absl::string_view& in, int& number) {
  std::string field;
  return ReadField(in, field) && absl::SimpleAtoi(field, &number);
}

}  // namespace

std::optional<MigrationFailure> MigrationFailureOf(const absl::Status& status) {
  auto payload = status.GetPayload(kPayloadKey);  // absl::optional, not std::optional here
  if (!payload.has_value()) return std::nullopt;
  const std::string encoded(*payload);
  absl::string_view in = encoded;
  MigrationFailure f;
  int placed_by_server = 0;
  if (!ReadField(in, f.sqlstate) || !ReadField(in, f.message) || !ReadField(in, f.detail) ||
      !ReadField(in, f.hint) || !ReadNumber(in, f.statement_line) || !ReadField(in, f.revision) ||
      !ReadField(in, f.description) || !ReadField(in, f.direction) || !ReadField(in, f.file) ||
      !ReadNumber(in, f.revision_line) || !ReadNumber(in, f.sql_line) ||
      !ReadNumber(in, placed_by_server) || !ReadNumber(in, f.line) || !ReadField(in, f.note) ||
      !in.empty()) {
    return std::nullopt;
  }
  f.placed_by_server = placed_by_server != 0;
  return f;
}

absl::Status WithMigrationFailure(absl::Status status, const MigrationFailure& failure) {
  if (status.ok()) return status;
  std::string encoded;
  for (absl::string_view field :
       {absl::string_view(failure.sqlstate), absl::string_view(failure.message),
        absl::string_view(failure.detail), absl::string_view(failure.hint)}) {
    AppendField(encoded, field);
  }
  AppendField(encoded, absl::StrCat(failure.statement_line));
  AppendField(encoded, failure.revision);
  AppendField(encoded, failure.description);
  AppendField(encoded, failure.direction);
  AppendField(encoded, failure.file);
  AppendField(encoded, absl::StrCat(failure.revision_line));
  AppendField(encoded, absl::StrCat(failure.sql_line));
  AppendField(encoded, failure.placed_by_server ? "1" : "0");
  AppendField(encoded, absl::StrCat(failure.line));
  AppendField(encoded, failure.note);
  status.SetPayload(kPayloadKey, absl::Cord(encoded));
  return status;
}

std::string DescribeMigrationFailure(const MigrationFailure& f) {
  std::string text;
  if (!f.revision.empty()) {
    // "revision R (DESCRIPTION, FILE:LINE)", leaving out whichever part is unknown.
    std::vector<std::string> about;
    if (!f.description.empty()) about.push_back(f.description);
    if (!f.file.empty()) {
      about.push_back(f.revision_line > 0 ? absl::StrCat(f.file, ":", f.revision_line) : f.file);
    }
    absl::StrAppend(&text, "revision ", f.revision);
    if (!about.empty()) {
      absl::StrAppend(&text, " (", about[0], about.size() > 1 ? ", " : "",
                      about.size() > 1 ? about[1] : "", ")");
    }
    absl::StrAppend(&text, " failed to ", f.direction.empty() ? "run" : f.direction, ": ");
  }
  if (!f.sqlstate.empty()) absl::StrAppend(&text, "SQLSTATE ", f.sqlstate, ": ");
  absl::StrAppend(&text, f.message);
  if (!f.detail.empty()) absl::StrAppend(&text, "\n  DETAIL: ", f.detail);
  if (!f.hint.empty()) absl::StrAppend(&text, "\n  HINT: ", f.hint);
  if (f.sql_line > 0) {
    absl::StrAppend(&text, f.placed_by_server ? "\n  at line " : "\n  in the statement at line ",
                    f.sql_line, " of the ", f.direction, " SQL");
    if (f.line > 0) absl::StrAppend(&text, " (", f.file, ":", f.line, ")");
  }
  if (!f.note.empty()) absl::StrAppend(&text, "\n  ", f.note);
  return text;
}

}  // namespace sluice::failure
