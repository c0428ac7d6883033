#include "pkg/alembic_import/helper_protocol.h"

#include <cstddef>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sluice::alembic_import {
namespace {

absl::Status Malformed(size_t offset, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("the Alembic helper's answer is malformed at byte ", offset, ": ", what));
}

// Reads `NAME LENGTH\nVALUE\n` fields one after another.
class FieldReader {
 public:
  explicit FieldReader(absl::string_view text) : text_(text) {}

  bool AtEnd() const { return offset_ >= text_.size(); }
  size_t offset() const { return offset_; }

  absl::Status Next(absl::string_view* name, absl::string_view* value) {
    const size_t line_end = text_.find('\n', offset_);
    if (line_end == absl::string_view::npos) {
      return absl::InvalidArgumentError("a field without a newline");
    }
    const absl::string_view header = text_.substr(offset_, line_end - offset_);
    const size_t space = header.rfind(' ');
    size_t length = 0;
    if (space == absl::string_view::npos || space == 0 ||
        !absl::SimpleAtoi(header.substr(space + 1), &length)) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected `NAME LENGTH`, found \"", header.substr(0, 80), "\""));
    }
    const size_t value_start = line_end + 1;
    if (length > text_.size() - value_start || value_start + length >= text_.size() ||
        text_[value_start + length] != '\n') {
      return absl::InvalidArgumentError(absl::StrCat("field `", header.substr(0, space), "` of ",
                                                     length,
                                                     " bytes runs past the end of the answer"));
    }
    *name = header.substr(0, space);
    *value = text_.substr(value_start, length);
    offset_ = value_start + length + 1;
    return absl::OkStatus();
  }

 private:
  absl::string_view text_;
  size_t offset_ = 0;
};

}  // namespace

absl::StatusOr<HelperAnswer> ParseHelperAnswer(absl::string_view text) {
  const size_t first_line = text.find('\n');
  if (first_line == absl::string_view::npos || text.substr(0, first_line) != kHelperProtocol) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Alembic helper's answer does not start with \"", kHelperProtocol,
                     "\"; it starts with \"", text.substr(0, 80), "\""));
  }
  FieldReader reader(text.substr(first_line + 1));
  HelperAnswer answer;
  AlembicRevision* revision = nullptr;
  bool ended = false;
  // Each field takes at least 4 bytes, so this loop runs at most text.size() / 4 times.
  while (!reader.AtEnd()) {
    if (ended) return Malformed(first_line + 1 + reader.offset(), "data after the `end` field");
    const size_t at = first_line + 1 + reader.offset();
    absl::string_view name;
    absl::string_view value;
    if (absl::Status status = reader.Next(&name, &value); !status.ok()) {
      return Malformed(at, status.message());
    }
    std::string text_value(value);
    if (name == "end") {
      ended = true;
    } else if (name == "alembic_version") {
      answer.alembic_version = std::move(text_value);
    } else if (name == "version_table") {
      answer.version_table = std::move(text_value);
    } else if (name == "version_table_schema") {
      answer.version_table_schema = std::move(text_value);
    } else if (name == "revision") {
      answer.revisions.emplace_back();
      revision = &answer.revisions.back();
      revision->revision = std::move(text_value);
    } else if (revision == nullptr) {
      return Malformed(at, absl::StrCat("field `", name, "` before any `revision`"));
    } else if (name == "down_revision") {
      revision->down_revisions.push_back(std::move(text_value));
    } else if (name == "branch_label") {
      revision->branch_labels.push_back(std::move(text_value));
    } else if (name == "depends_on") {
      revision->depends_on.push_back(std::move(text_value));
    } else if (name == "description") {
      revision->description = std::move(text_value);
    } else if (name == "script") {
      revision->script = std::move(text_value);
    } else if (name == "upgrade_sql") {
      revision->upgrade.sql = std::move(text_value);
    } else if (name == "downgrade_sql") {
      revision->downgrade.sql = std::move(text_value);
    } else if (name == "upgrade_problem") {
      revision->upgrade.problems.push_back(std::move(text_value));
    } else if (name == "downgrade_problem") {
      revision->downgrade.problems.push_back(std::move(text_value));
    } else if (name == "autocommit_block") {
      if (value != "upgrade" && value != "downgrade") {
        return Malformed(at, "`autocommit_block` names neither upgrade nor downgrade");
      }
      (value == "upgrade" ? revision->upgrade : revision->downgrade).autocommit_block = true;
    } else if (name == "downgrade_irreversible") {
      revision->downgrade.irreversible = true;
    } else {
      return Malformed(at, absl::StrCat("unknown field `", name, "`"));
    }
  }
  if (!ended) {
    return Malformed(text.size(), "the answer ends without its `end` field (cut short?)");
  }
  return answer;
}

}  // namespace sluice::alembic_import
