// `sluice import alembic`: turns an Alembic project's revision scripts into sluice manifests with
// the same revision ids and graph, each step's SQL rendered by Alembic itself in offline mode. It
// runs Python (the embedded alembic_helper.py) as a child process, so it needs Python 3 with
// Alembic where it runs: a developer's machine or CI, never the image. Not thread-safe: one import
// at a time per output directory.
#ifndef SLUICE_PKG_ALEMBIC_IMPORT_ALEMBIC_IMPORT_H_
#define SLUICE_PKG_ALEMBIC_IMPORT_ALEMBIC_IMPORT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::alembic_import {

struct ImportOptions {
  std::string config;                    // the project's alembic.ini
  std::string out_dir = "./migrations";  // where the manifests go
  std::string python = "python3";        // the interpreter that has Alembic (a path or a name)
  bool force = false;                    // replace the manifests of an existing, non-empty out_dir
};

// One manifest written.
struct ImportedRevision {
  std::string revision;
  std::string file;    // its path, under out_dir
  std::string script;  // the Alembic script, relative to the alembic.ini's directory
  bool transactional = true;
  bool irreversible = false;          // no downgrade: downgrade() raises NotImplementedError
  std::vector<std::string> problems;  // non-empty: marked `unconverted`, with these reasons
};

struct ImportResult {
  std::string alembic_version;
  std::string out_dir;
  std::vector<ImportedRevision> revisions;  // in file (revision) order
  std::vector<std::string> removed_files;   // manifests that --force replaced
  // The version table as the project's env.py configures it; empty: Alembic's defaults, which are
  // sluice's too.
  std::string version_table;
  std::string version_table_schema;

  // Returns how many revisions are marked `unconverted`.
  size_t UnconvertedCount() const;
};

// Imports the Alembic project of `options.config` into `options.out_dir`: one manifest per
// revision, named by revision order. Python runs in the alembic.ini's directory, as `alembic`
// would be run there. Revisions that offline mode cannot render faithfully are written with the
// `unconverted` marker (manifest::kUnconvertedKey) and listed in the result; that is not an error
// here. Every manifest written is read back with the manifest loader before anything is written.
//
// Errors: kInvalidArgument marked failure::FailureKind::kUsage for a missing --config file, an
// out_dir that exists and is not empty (without force), a Python that cannot be run or lacks
// Alembic; kInvalidArgument marked kInvalidManifests when the Alembic project cannot be read or
// its graph is not one sluice accepts (naming the script); kInternal for a failure to write.
//
// Example:
//   ImportOptions options;
//   options.config = "alembic.ini";
//   SLUICE_ASSIGN_OR_RETURN(ImportResult result, ImportAlembic(options));
//   std::cout << DescribeImport(result);
absl::StatusOr<ImportResult> ImportAlembic(const ImportOptions& options);

// Returns the report of an import for stdout: the files written, the revisions marked
// `unconverted` with their reasons, and what to do next.
std::string DescribeImport(const ImportResult& result);

}  // namespace sluice::alembic_import

#endif  // SLUICE_PKG_ALEMBIC_IMPORT_ALEMBIC_IMPORT_H_
