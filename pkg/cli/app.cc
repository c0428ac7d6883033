#include "pkg/cli/app.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/engine/offline_script.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/manifest/loader.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif
#ifndef SLUICE_GIT_COMMIT
#define SLUICE_GIT_COMMIT "unknown"
#endif

namespace sluice::cli {
namespace {

using graph::RevisionGraph;
using manifest::Migration;

// What a command needs to run: its parsed command line and where results go.
struct Context {
  const CommandLine& command_line;
  std::ostream& out;
  const Options& options() const { return command_line.options; }
  const std::vector<std::string>& args() const { return command_line.args; }
};

struct CommandSpec {
  const char* name;
  const char* usage;
  const char* summary;
  std::vector<std::string> flags;
  size_t min_args;
  size_t max_args;
  std::function<int(const Context&)> run;
};

const std::vector<std::string> kCommonFlags = {"migrations", "log-format", "v"};

int Fail(int exit_code, const absl::Status& status) {
  log::Error(status.message());
  return exit_code;
}

int UsageError(absl::string_view message) {
  log::Error(message);
  return kExitUsage;
}

// Loads the manifests and builds their graph; errors there mean the manifests are invalid.
absl::StatusOr<RevisionGraph> LoadGraph(const Options& options) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<Migration> migrations,
                          manifest::LoadDirectories(options.migrations));
  return RevisionGraph::Build(std::move(migrations));
}

std::string FormatParents(const Migration& m) {
  return m.down_revisions.empty() ? "<base>" : absl::StrJoin(m.down_revisions, ", ");
}

bool IsHead(const RevisionGraph& graph, const Migration& m) {
  return graph.Children(m.revision).empty();
}

bool IsBranchPoint(const RevisionGraph& graph, const Migration& m) {
  return graph.Children(m.revision).size() > 1;
}

// The markers and formats below are Alembic's (Revision.cmd_format and Revision.log_entry).
struct LineFormat {
  bool parents = false;
  bool branches = false;
  bool head = true;
  bool tree = true;
  bool doc = false;
};

std::string RevisionLine(const RevisionGraph& graph, const Migration& m, const LineFormat& format) {
  std::string text;
  if (format.parents) {
    absl::StrAppend(&text, FormatParents(m));
    if (!m.depends_on.empty()) absl::StrAppend(&text, " (", absl::StrJoin(m.depends_on, ", "), ")");
    absl::StrAppend(&text, " -> ");
  }
  absl::StrAppend(&text, m.revision);
  if (format.branches && !m.branch_labels.empty()) {
    absl::StrAppend(&text, " (", absl::StrJoin(m.branch_labels, ", "), ")");
  }
  if (format.head && IsHead(graph, m)) absl::StrAppend(&text, " (head)");
  if (format.tree) {
    if (IsBranchPoint(graph, m)) absl::StrAppend(&text, " (branchpoint)");
    if (m.is_merge()) absl::StrAppend(&text, " (mergepoint)");
  }
  if (format.doc) absl::StrAppend(&text, ", ", m.description);
  return text;
}

std::string VerboseEntry(const RevisionGraph& graph, const Migration& m) {
  std::string text = absl::StrCat("Rev: ", m.revision);
  if (IsHead(graph, m)) absl::StrAppend(&text, " (head)");
  if (IsBranchPoint(graph, m)) absl::StrAppend(&text, " (branchpoint)");
  if (m.is_merge()) absl::StrAppend(&text, " (mergepoint)");
  absl::StrAppend(&text, "\n", m.is_merge() ? "Merges: " : "Parent: ", FormatParents(m), "\n");
  if (!m.depends_on.empty()) {
    absl::StrAppend(&text, "Also depends on: ", absl::StrJoin(m.depends_on, ", "), "\n");
  }
  if (IsBranchPoint(graph, m)) {
    absl::StrAppend(&text, "Branches into: ", absl::StrJoin(graph.Children(m.revision), ", "),
                    "\n");
  }
  if (!m.branch_labels.empty()) {
    absl::StrAppend(&text, "Branch names: ", absl::StrJoin(m.branch_labels, ", "), "\n");
  }
  absl::StrAppend(&text, "Path: ", m.location.file, ":", m.location.line, "\n");
  absl::StrAppend(&text, "Checksum: ", m.checksum, "\n");
  absl::StrAppend(&text, "Transactional: ", m.transactional ? "yes" : "no", "\n");
  absl::StrAppend(&text, "Downgrade: ", m.downgrade_sql.has_value() ? "yes" : "no", "\n\n");
  for (absl::string_view line : absl::StrSplit(m.description, '\n')) {
    absl::StrAppend(&text, "    ", line, "\n");
  }
  return absl::StrCat(text, "\n");
}

int RunVersion(const Context& context) {
  context.out << "sluice " << SLUICE_VERSION << " (commit " << SLUICE_GIT_COMMIT << ", built with "
              << "g++ " << __VERSION__ << ", C++" << __cplusplus / 100 % 100 << ")\n";
  return kExitOk;
}

int RunHeads(const Context& context) {
  absl::StatusOr<RevisionGraph> graph = LoadGraph(context.options());
  if (!graph.ok()) return Fail(kExitInvalidManifests, graph.status());
  for (const std::string& head : graph->Heads()) {
    const Migration& m = *graph->Find(head);
    context.out << (context.options().verbose
                        ? VerboseEntry(*graph, m)
                        : RevisionLine(*graph, m, {.branches = true, .tree = false}) + "\n");
  }
  return kExitOk;
}

int RunBranches(const Context& context) {
  absl::StatusOr<RevisionGraph> graph = LoadGraph(context.options());
  if (!graph.ok()) return Fail(kExitInvalidManifests, graph.status());
  const bool verbose = context.options().verbose;
  const std::vector<const Migration*>& order = graph->TopologicalOrder();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Migration& m = **it;
    if (!IsBranchPoint(*graph, m)) continue;
    context.out << (verbose ? VerboseEntry(*graph, m)
                            : RevisionLine(*graph, m, {.branches = true}) + "\n");
    const std::string indent(m.revision.size(), ' ');
    for (const std::string& child : graph->Children(m.revision)) {
      context.out << indent << " -> "
                  << RevisionLine(*graph, *graph->Find(child), {.branches = true, .doc = verbose})
                  << "\n";
    }
    context.out << "\n";
  }
  return kExitOk;
}

int RunHistory(const Context& context) {
  absl::StatusOr<RevisionGraph> graph = LoadGraph(context.options());
  if (!graph.ok()) return Fail(kExitInvalidManifests, graph.status());
  const std::vector<const Migration*>& order = graph->TopologicalOrder();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    context.out << (context.options().verbose
                        ? VerboseEntry(*graph, **it)
                        : RevisionLine(*graph, **it,
                                       {.parents = true, .branches = true, .doc = true}) +
                              "\n");
  }
  return kExitOk;
}

int RunShow(const Context& context) {
  absl::StatusOr<RevisionGraph> graph = LoadGraph(context.options());
  if (!graph.ok()) return Fail(kExitInvalidManifests, graph.status());
  absl::StatusOr<std::vector<std::string>> revisions =
      graph->ResolveTarget(context.args()[0], /*current=*/{});
  if (!revisions.ok()) return UsageError(revisions.status().message());
  for (const std::string& revision : *revisions) {
    context.out << VerboseEntry(*graph, *graph->Find(revision));
  }
  return kExitOk;
}

int RunValidate(const Context& context) {
  absl::StatusOr<RevisionGraph> graph = LoadGraph(context.options());
  if (!graph.ok()) return Fail(kExitInvalidManifests, graph.status());
  const std::vector<std::string> heads = graph->Heads();
  if (context.options().single_head && heads.size() > 1) {
    return Fail(kExitInvalidManifests,
                absl::InvalidArgumentError(absl::StrCat(
                    "the manifests have ", heads.size(), " heads (", absl::StrJoin(heads, ", "),
                    "); --single-head wants one: add a merge revision whose down_revision lists "
                    "them all")));
  }
  context.out << "OK: " << graph->TopologicalOrder().size() << " revisions, "
              << (heads.size() == 1 ? "head " : "heads ") << absl::StrJoin(heads, ", ") << "\n";
  return kExitOk;
}

// Offline mode: `upgrade --sql [FROM:]TO` and `downgrade --sql FROM:TO`.
int RunOffline(const Context& context, graph::Direction direction) {
  absl::StatusOr<RevisionGraph> graph = LoadGraph(context.options());
  if (!graph.ok()) return Fail(kExitInvalidManifests, graph.status());
  const bool upgrade = direction == graph::Direction::kUpgrade;
  const std::string range = context.args().empty() ? "head" : context.args()[0];
  std::vector<std::string> from_to = absl::StrSplit(range, absl::MaxSplits(':', 1));
  if (from_to.size() == 1) {
    if (!upgrade) {
      return UsageError(
          "downgrade --sql needs FROM:TO, e.g. `sluice downgrade --sql head:base`: offline mode "
          "cannot read the current revision from the database");
    }
    from_to.insert(from_to.begin(), "base");
  }
  absl::StatusOr<std::vector<std::string>> current = graph->ResolveTarget(from_to[0], {});
  if (!current.ok()) return UsageError(absl::StrCat("FROM: ", current.status().message()));
  absl::StatusOr<graph::Plan> plan = upgrade ? graph->PlanUpgrade(*current, from_to[1])
                                             : graph->PlanDowngrade(*current, from_to[1]);
  if (!plan.ok()) return UsageError(plan.status().message());
  engine::OfflineScriptOptions script_options;
  script_options.schema = context.options().schema;
  script_options.version_table = context.options().version_table;
  script_options.create_tables = current->empty();
  context.out << engine::RenderOfflineScript(*plan, script_options);
  return kExitOk;
}

int RunUpgrade(const Context& context) {
  if (!context.options().sql) {
    return UsageError(
        "upgrade without --sql needs the database engine, which this build does not have yet; "
        "use `sluice upgrade --sql` to print the SQL");
  }
  return RunOffline(context, graph::Direction::kUpgrade);
}

int RunDowngrade(const Context& context) {
  if (!context.options().sql) {
    return UsageError(
        "downgrade without --sql needs the database engine, which this build does not have yet; "
        "use `sluice downgrade --sql FROM:TO` to print the SQL");
  }
  return RunOffline(context, graph::Direction::kDowngrade);
}

const std::vector<CommandSpec>& Commands() {
  static const auto* commands = new std::vector<CommandSpec>{
      {"upgrade", "upgrade [TARGET] | upgrade --sql [FROM:]TO",
       "apply revisions up to TARGET (default head)",
       {"sql", "schema", "version-table"}, 0, 1, RunUpgrade},
      {"downgrade", "downgrade TARGET | downgrade --sql FROM:TO",
       "revert down to TARGET (-1, base, an id)",
       {"sql", "schema", "version-table"}, 1, 1, RunDowngrade},
      {"history", "history", "list revisions, newest first (-v for details and checksums)", {},
       0, 0, RunHistory},
      {"heads", "heads", "list the head revisions", {}, 0, 0, RunHeads},
      {"branches", "branches", "list the branch points and their branches", {}, 0, 0,
       RunBranches},
      {"show", "show REV", "show one revision in detail", {}, 1, 1, RunShow},
      {"validate", "validate", "check the manifests and the revision graph",
       {"single-head"}, 0, 0, RunValidate},
      {"version", "version", "print version and build information", {}, 0, 0, RunVersion},
  };
  return *commands;
}

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& command : Commands()) {
    if (name == command.name) return &command;
  }
  return nullptr;
}

std::string GeneralHelp() {
  std::string text =
      "sluice applies PostgreSQL schema migrations (Alembic-compatible) from YAML manifests.\n\n"
      "Usage: sluice COMMAND [ARGS] [FLAGS]\n\nCommands:\n";
  for (const CommandSpec& command : Commands()) {
    absl::StrAppend(&text, "  ", absl::StrFormat("%-11s", command.name), command.summary, "\n");
  }
  absl::StrAppend(&text, "\nRun `sluice COMMAND --help` for a command's flags.\n");
  return text;
}

std::string CommandHelp(const CommandSpec& command) {
  std::vector<std::string> flags = command.flags;
  flags.insert(flags.end(), kCommonFlags.begin(), kCommonFlags.end());
  return absl::StrCat("Usage: sluice ", command.usage, "\n\n", command.summary, "\n\nFlags:\n",
                      FlagHelp(flags));
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, const EnvLookup& env) {
  absl::StatusOr<CommandLine> command_line = ParseCommandLine(args, env);
  if (!command_line.ok()) return UsageError(command_line.status().message());
  log::SetFormat(command_line->options.log_format == "json" ? log::Format::kJson
                                                            : log::Format::kText);
  log::SetVerbose(command_line->options.verbose);

  if (command_line->command.empty() || command_line->command == "help") {
    out << GeneralHelp();
    return command_line->command.empty() && !command_line->help ? kExitUsage : kExitOk;
  }
  const CommandSpec* command = FindCommand(command_line->command);
  if (command == nullptr) {
    return UsageError(absl::StrCat("unknown command \"", command_line->command,
                                   "\"; run `sluice --help` for the list"));
  }
  if (command_line->help) {
    out << CommandHelp(*command);
    return kExitOk;
  }
  const size_t arg_count = command_line->args.size();
  if (arg_count < command->min_args || arg_count > command->max_args) {
    return UsageError(absl::StrCat("wrong number of arguments; usage: sluice ", command->usage));
  }
  return command->run(Context{*command_line, out});
}

}  // namespace sluice::cli
