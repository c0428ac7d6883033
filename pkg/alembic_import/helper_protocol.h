// The answer of alembic_helper.py, read into plain data: the revisions of an Alembic project with
// the offline SQL of each step. Internal to pkg/alembic_import. Pure functions.
#ifndef SLUICE_PKG_ALEMBIC_IMPORT_HELPER_PROTOCOL_H_
#define SLUICE_PKG_ALEMBIC_IMPORT_HELPER_PROTOCOL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice::alembic_import {

// The first line of the helper's answer; the number changes with the format.
inline constexpr absl::string_view kHelperProtocol = "sluice-alembic-import 1";

// One direction of a revision as Alembic rendered it offline.
struct RenderedStep {
  std::string sql;                    // Alembic's offline SQL for the step alone
  std::vector<std::string> problems;  // why that SQL is not what online mode would run
  bool autocommit_block = false;      // the step used autocommit_block(): no transaction
  bool irreversible = false;          // downgrade() raised NotImplementedError
};

// One Alembic revision script.
struct AlembicRevision {
  std::string revision;
  std::vector<std::string> down_revisions;
  std::vector<std::string> branch_labels;  // its own, not those inherited from ancestors
  std::vector<std::string> depends_on;     // resolved to revision ids
  std::string description;                 // the message (the docstring's first paragraph)
  std::string script;                      // its file, relative to the alembic.ini's directory
  RenderedStep upgrade;
  RenderedStep downgrade;
};

struct HelperAnswer {
  std::string alembic_version;
  // The version table as env.py configures it; empty: Alembic's defaults.
  std::string version_table;
  std::string version_table_schema;
  std::vector<AlembicRevision> revisions;
};

// Parses the helper's stdout. Returns kInvalidArgument naming the offset and what was expected
// when it is not a complete answer in the format of kHelperProtocol.
absl::StatusOr<HelperAnswer> ParseHelperAnswer(absl::string_view text);

}  // namespace sluice::alembic_import

#endif  // SLUICE_PKG_ALEMBIC_IMPORT_HELPER_PROTOCOL_H_
