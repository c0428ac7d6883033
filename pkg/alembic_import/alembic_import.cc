#include "pkg/alembic_import/alembic_import.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "pkg/alembic_import/helper_protocol.h"
#include "pkg/alembic_import/helper_script.h"
#include "pkg/alembic_import/manifest_text.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/base/subprocess.h"
#include "pkg/failure/failure.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/loader.h"
#include "pkg/manifest/migration.h"

namespace sluice::alembic_import {
namespace {

namespace fs = std::filesystem;

// The helper's exit statuses (alembic_helper.py).
constexpr int kHelperNoAlembic = 3;
constexpr int kHelperBadProject = 4;

// Rendering a large project is seconds; this only stops a helper that hangs (an env.py waiting on
// a network, say).
constexpr absl::Duration kHelperTimeout = absl::Minutes(10);

constexpr absl::string_view kNoSqlComment =
    "-- Alembic's upgrade() of this revision emits no SQL.\n";

absl::Status UsageError(absl::string_view message) {
  return failure::WithFailureKind(absl::InvalidArgumentError(message),
                                  failure::FailureKind::kUsage);
}

absl::Status ProjectError(absl::string_view message) {
  return failure::WithFailureKind(absl::InvalidArgumentError(message),
                                  failure::FailureKind::kInvalidManifests);
}

// Returns the last lines of a child's stderr, for error messages.
std::string Tail(absl::string_view text, size_t max_lines = 12) {
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::StripAsciiWhitespace(text), '\n', absl::SkipWhitespace());
  if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - max_lines);
  return absl::StrJoin(lines, "\n");
}

// Whether the manifest loader reads `name` (and so whether --force replaces it).
bool IsManifestName(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  const std::string extension = fs::path(name).extension().string();
  return extension == ".yaml" || extension == ".yml";
}

// Returns the manifests that --force will replace in `out`; refuses an existing, non-empty `out`
// without it.
absl::StatusOr<std::vector<fs::path>> ReplacedManifests(const fs::path& out, bool force) {
  std::error_code error;
  const fs::file_status status = fs::status(out, error);
  if (!fs::exists(status)) return std::vector<fs::path>();
  if (!fs::is_directory(status)) {
    return UsageError(absl::StrCat("--out ", out.string(), " exists and is not a directory"));
  }
  std::vector<fs::path> manifests;
  bool empty = true;
  for (fs::directory_iterator it(out, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    // A `.gitkeep` (or any name the loader skips) does not make a directory worth protecting.
    if (name.empty() || name[0] == '.') continue;
    empty = false;
    if (IsManifestName(name) && !it->is_directory(error)) manifests.push_back(it->path());
  }
  if (error) {
    return UsageError(absl::StrCat("cannot list --out ", out.string(), ": ", error.message()));
  }
  if (!empty && !force) {
    return UsageError(absl::StrCat(
        "--out ", out.string(),
        " already exists and is not empty; pass --force to replace the manifests in it (its "
        "*.yaml and *.yml files; other files are kept), or name another directory"));
  }
  std::sort(manifests.begin(), manifests.end());
  return manifests;
}

// Runs alembic_helper.py with `python` in the directory of `config` and reads its answer.
absl::StatusOr<HelperAnswer> RunHelper(const std::string& python, const fs::path& config) {
  base::SubprocessOptions run;
  run.argv = {python, "-c", std::string(AlembicHelperScript()), config.string()};
  run.working_directory = config.parent_path().string();
  run.timeout = kHelperTimeout;
  log::Debug("running the Alembic helper",
             {{"python", python}, {"config", config.string()}, {"cwd", run.working_directory}});
  absl::StatusOr<base::SubprocessResult> result = base::RunSubprocess(run);
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kNotFound) {
      return UsageError(absl::StrCat(
          result.status().message(),
          "; import needs Python 3 with Alembic (Debian: apt-get install python3-alembic): "
          "name the interpreter with --python"));
    }
    return absl::Status(result.status().code(),
                        absl::StrCat("running the Alembic helper: ", result.status().message()));
  }
  if (!result->err.empty()) log::Debug("the Alembic helper's stderr", {{"stderr", result->err}});
  if (result->exit_code == kHelperNoAlembic) {
    return UsageError(absl::StrCat(
        Tail(result->err, 1),
        "; install Alembic for it (Debian: apt-get install python3-alembic) or pass --python "
        "with an interpreter that has it, e.g. the project's virtualenv's bin/python"));
  }
  if (result->exit_code == kHelperBadProject) {
    return ProjectError(absl::StrCat("cannot import the Alembic project: ", Tail(result->err)));
  }
  if (!result->ok()) {
    return absl::InternalError(absl::StrCat("the Alembic helper (", python, ") failed with ",
                                            result->signal != 0
                                                ? absl::StrCat("signal ", result->signal)
                                                : absl::StrCat("exit status ", result->exit_code),
                                            ": ", Tail(result->err)));
  }
  return ParseHelperAnswer(result->out);
}

// Returns `revision`'s reasons for the `unconverted` marker, each naming its direction.
std::vector<std::string> ProblemsOf(const AlembicRevision& revision) {
  std::vector<std::string> problems;
  for (const std::string& problem : revision.upgrade.problems) {
    problems.push_back(absl::StrCat("upgrade: ", problem));
  }
  for (const std::string& problem : revision.downgrade.problems) {
    problems.push_back(absl::StrCat("downgrade: ", problem));
  }
  return problems;
}

// Returns a difference between what was meant and what the manifest loader read, or "".
std::string Difference(const ManifestFields& meant, const manifest::Migration& read) {
  if (read.revision != meant.revision) return "revision";
  if (read.down_revisions != meant.down_revisions) return "down_revision";
  if (read.description != meant.description) return "description";
  if (read.branch_labels != meant.branch_labels) return "branch_labels";
  if (read.depends_on != meant.depends_on) return "depends_on";
  if (read.transactional != meant.transactional) return "transactional";
  if (read.upgrade_sql != meant.upgrade_sql) return "upgrade";
  if (read.downgrade_sql != meant.downgrade_sql) return "downgrade";
  return "";
}

// One manifest to write.
struct Planned {
  ImportedRevision imported;
  std::string text;
};

// Turns the helper's answer into manifests in revision order, each checked to read back as meant.
absl::StatusOr<std::vector<Planned>> PlanManifests(const HelperAnswer& answer,
                                                   const fs::path& out) {
  std::vector<manifest::Migration> migrations;
  std::map<std::string, const AlembicRevision*> by_id;
  for (const AlembicRevision& revision : answer.revisions) {
    if (!manifest::IsValidRevisionId(revision.revision)) {
      return ProjectError(absl::StrCat(revision.script, ": revision id \"", revision.revision,
                                       "\" is not one sluice (and Alembic's VARCHAR(32) version "
                                       "table) accepts: 1-32 characters of A-Z a-z 0-9 _ . -"));
    }
    manifest::Migration migration;
    migration.revision = revision.revision;
    migration.down_revisions = revision.down_revisions;
    migration.branch_labels = revision.branch_labels;
    migration.depends_on = revision.depends_on;
    migration.description = revision.description;
    migration.location.file = revision.script;
    migrations.push_back(std::move(migration));
    by_id[revision.revision] = &revision;
  }
  absl::StatusOr<graph::RevisionGraph> graph = graph::RevisionGraph::Build(std::move(migrations));
  if (!graph.ok()) {
    return ProjectError(
        absl::StrCat("the Alembic project's revisions do not form a graph sluice "
                     "accepts:\n",
                     graph.status().message()));
  }

  const std::vector<const manifest::Migration*>& order = graph->TopologicalOrder();
  std::vector<Planned> planned;
  for (size_t i = 0; i < order.size(); ++i) {
    const AlembicRevision& revision = *by_id.at(order[i]->revision);
    ManifestFields fields;
    fields.revision = revision.revision;
    fields.down_revisions = revision.down_revisions;
    fields.description = revision.description;
    fields.branch_labels = revision.branch_labels;
    fields.depends_on = revision.depends_on;
    // An autocommit block's statements cannot run in a transaction; sluice's way to say so is
    // per revision.
    fields.transactional =
        !revision.upgrade.autocommit_block && !revision.downgrade.autocommit_block;
    fields.upgrade_sql = TidySql(revision.upgrade.sql);
    // The loader requires SQL outside merges; a revision that does nothing gets a comment.
    if (fields.upgrade_sql.empty() && revision.down_revisions.size() < 2) {
      fields.upgrade_sql = std::string(kNoSqlComment);
    }
    if (!revision.downgrade.irreversible) fields.downgrade_sql = TidySql(revision.downgrade.sql);
    fields.script = revision.script;
    const std::vector<std::string> problems = ProblemsOf(revision);
    if (!problems.empty()) {
      fields.unconverted_reason =
          absl::StrCat("sluice import alembic could not convert ", revision.script, ": ",
                       absl::StrJoin(problems, "; "));
    }

    Planned manifest;
    manifest.imported.revision = revision.revision;
    manifest.imported.file =
        (out / ManifestFileName(i + 1, order.size(), revision.revision, revision.description))
            .string();
    manifest.imported.script = revision.script;
    manifest.imported.transactional = fields.transactional;
    manifest.imported.irreversible = revision.downgrade.irreversible;
    manifest.imported.problems = problems;
    std::string without_marker;
    manifest.text = ManifestText(fields, answer.alembic_version, &without_marker);

    absl::StatusOr<std::vector<manifest::Migration>> read =
        manifest::ParseManifest(without_marker, manifest.imported.file);
    std::string difference;
    if (!read.ok()) {
      difference = std::string(read.status().message());
    } else if (read->size() != 1) {
      difference = absl::StrCat(read->size(), " documents");
    } else {
      difference = Difference(fields, read->front());
    }
    if (!difference.empty()) {
      return absl::InternalError(absl::StrCat("the manifest written for ", revision.revision, " (",
                                              revision.script,
                                              ") does not read back as written: ", difference));
    }
    planned.push_back(std::move(manifest));
  }
  return planned;
}

// Refuses an `out` that is the directory of alembic.ini, the Alembic project's script directory or
// one of its versions directories (Flask-Migrate keeps Alembic in `migrations/`, sluice's default
// --out): --force there would mix the manifests into the project they come from.
absl::Status RefuseTheProjectsOwnDirectory(const HelperAnswer& answer, const fs::path& ini_dir,
                                           const fs::path& out) {
  std::error_code error;
  const fs::path target = fs::weakly_canonical(fs::absolute(out, error), error);
  if (error) return absl::OkStatus();  // nothing to compare with; the write reports real trouble
  if (target == fs::weakly_canonical(ini_dir, error)) {
    return UsageError(absl::StrCat("--out ", out.string(),
                                   " is the directory of the Alembic project's alembic.ini; name "
                                   "another directory, e.g. a new ./migrations"));
  }
  for (const AlembicRevision& revision : answer.revisions) {
    const fs::path versions = fs::weakly_canonical(ini_dir / revision.script, error).parent_path();
    if (error) continue;
    if (target == versions || target == versions.parent_path()) {
      return UsageError(absl::StrCat("--out ", out.string(),
                                     " is the Alembic project's own directory (it holds ",
                                     revision.script, " or its env.py); name another directory"));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

size_t ImportResult::UnconvertedCount() const {
  size_t count = 0;
  for (const ImportedRevision& revision : revisions) count += revision.problems.empty() ? 0 : 1;
  return count;
}

absl::StatusOr<ImportResult> ImportAlembic(const ImportOptions& options) {
  if (options.config.empty()) {
    return UsageError("import alembic needs --config PATH/alembic.ini");
  }
  std::error_code error;
  const fs::path config = fs::absolute(options.config, error);
  if (error || !fs::is_regular_file(config, error)) {
    return UsageError(absl::StrCat("--config ", options.config, ": no such file"));
  }
  const fs::path out(options.out_dir.empty() ? "." : options.out_dir);
  SLUICE_ASSIGN_OR_RETURN(std::vector<fs::path> replaced, ReplacedManifests(out, options.force));
  SLUICE_ASSIGN_OR_RETURN(HelperAnswer answer,
                          RunHelper(options.python.empty() ? "python3" : options.python, config));
  if (answer.revisions.empty()) {
    return ProjectError(absl::StrCat("the Alembic project of ", options.config,
                                     " has no revisions: nothing to import"));
  }
  SLUICE_RETURN_IF_ERROR(RefuseTheProjectsOwnDirectory(answer, config.parent_path(), out));
  SLUICE_ASSIGN_OR_RETURN(std::vector<Planned> planned, PlanManifests(answer, out));

  // Everything is checked; only now is anything on disk touched.
  fs::create_directories(out, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", out.string(), ": ", error.message()));
  }
  ImportResult result;
  result.alembic_version = answer.alembic_version;
  result.out_dir = out.string();
  result.version_table = answer.version_table;
  result.version_table_schema = answer.version_table_schema;
  for (const fs::path& path : replaced) {
    if (!fs::remove(path, error) || error) {
      return absl::InternalError(
          absl::StrCat("cannot remove ", path.string(), ": ", error.message()));
    }
    result.removed_files.push_back(path.string());
  }
  for (Planned& manifest : planned) {
    SLUICE_RETURN_IF_ERROR(WriteFile(manifest.imported.file, manifest.text));
    result.revisions.push_back(std::move(manifest.imported));
  }
  // The directory as `sluice validate` will read it (the files of --out together).
  if (result.UnconvertedCount() == 0) {
    absl::StatusOr<std::vector<manifest::Migration>> loaded =
        manifest::LoadDirectories({out.string()});
    absl::Status built =
        loaded.ok() ? graph::RevisionGraph::Build(*std::move(loaded)).status() : loaded.status();
    if (!built.ok()) {
      return absl::InternalError(absl::StrCat("the manifests written to ", out.string(),
                                              " do not load together: ", built.message()));
    }
  }
  return result;
}

std::string DescribeImport(const ImportResult& result) {
  std::string text =
      absl::StrCat("imported ", result.revisions.size(),
                   result.revisions.size() == 1 ? " revision" : " revisions", " (Alembic ",
                   result.alembic_version, ") into ", result.out_dir, ":\n");
  for (const ImportedRevision& revision : result.revisions) {
    std::vector<std::string> notes;
    if (!revision.problems.empty()) notes.push_back("UNCONVERTED");
    if (!revision.transactional) notes.push_back("transactional: false (autocommit_block)");
    if (revision.irreversible) notes.push_back("no downgrade (downgrade() raises)");
    absl::StrAppend(&text, "  ", revision.file, " <- ", revision.script,
                    notes.empty() ? "" : absl::StrCat("  [", absl::StrJoin(notes, "; "), "]"),
                    "\n");
  }
  if (!result.removed_files.empty()) {
    absl::StrAppend(&text, "replaced (--force): ", result.removed_files.size(),
                    " earlier manifest file(s)\n");
  }
  if (!result.version_table.empty() && result.version_table != "alembic_version") {
    absl::StrAppend(&text, "env.py names the version table ", result.version_table,
                    ": run sluice with --version-table ", result.version_table, "\n");
  }
  if (!result.version_table_schema.empty()) {
    absl::StrAppend(&text, "env.py puts the version table in schema ", result.version_table_schema,
                    ": run sluice with --schema ", result.version_table_schema, "\n");
  }
  const size_t unconverted = result.UnconvertedCount();
  if (unconverted > 0) {
    absl::StrAppend(&text, unconverted,
                    unconverted == 1 ? " revision needs its" : " revisions need their",
                    " SQL written by hand (marked `", manifest::kUnconvertedKey,
                    "`; `sluice validate` fails until the marker is deleted):\n");
    for (const ImportedRevision& revision : result.revisions) {
      if (revision.problems.empty()) continue;
      absl::StrAppend(&text, "  ", revision.revision, " (", revision.file, ", from ",
                      revision.script, "):\n");
      for (const std::string& problem : revision.problems) {
        absl::StrAppend(&text, "    ", problem, "\n");
      }
    }
  }
  absl::StrAppend(&text, "next: review the manifests, then `sluice validate --migrations ",
                  result.out_dir, "`\n");
  return text;
}

}  // namespace sluice::alembic_import
