#include "pkg/cli/app.h"

#include <unistd.h>
#include <algorithm>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "pkg/alembic_import/alembic_import.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/cli/alembic_output.h"
#include "pkg/cli/configmap.h"
#include "pkg/cli/lint_command.h"
#include "pkg/engine/engine.h"
#include "pkg/engine/offline_script.h"
#include "pkg/failure/failure.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/graph/revision_graph.h"
#include "pkg/kube/client.h"
#include "pkg/kube/leader_election.h"
#include "pkg/manifest/loader.h"
#include "pkg/operator/operator.h"
#include "pkg/reporting/migration_job_reporter.h"
#include "pkg/store/pg_store.h"
#include "pkg/store/store.h"

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
  const EnvLookup& env;
  std::shared_ptr<base::StopRequest> stop;  // may be null
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

// Logs why the command failed and returns `exit_code`. A failed revision is reported from its
// MigrationFailure payload, whose fields also go into the log record (for --log-format json).
int Fail(int exit_code, const absl::Status& status) {
  std::optional<failure::MigrationFailure> failed = failure::MigrationFailureOf(status);
  if (!failed.has_value() || failed->revision.empty()) {
    log::Error(status.message());
    return exit_code;
  }
  log::Error(failure::DescribeMigrationFailure(*failed),
             {{"revision", failed->revision},
              {"sqlstate", failed->sqlstate},
              {"file", failed->file},
              {"line", absl::StrCat(failed->line > 0 ? failed->line : failed->revision_line)}});
  return exit_code;
}

int UsageError(absl::string_view message) {
  log::Error(message);
  return failure::kExitUsage;
}

int FailWith(const absl::Status& status);
std::string JoinedOrBase(const std::vector<std::string>& versions);

// Loads the manifests and builds their graph, once per command; errors there mean the manifests
// are invalid. Shared with the engine, which plans on it.
absl::StatusOr<std::shared_ptr<const RevisionGraph>> LoadGraph(const Options& options) {
  absl::StatusOr<std::vector<Migration>> migrations = manifest::LoadDirectories(options.migrations);
  if (!migrations.ok()) {
    return failure::WithFailureKind(migrations.status(), failure::FailureKind::kInvalidManifests);
  }
  absl::StatusOr<RevisionGraph> graph = RevisionGraph::Build(*std::move(migrations));
  if (!graph.ok()) {
    return failure::WithFailureKind(graph.status(), failure::FailureKind::kInvalidManifests);
  }
  return std::make_shared<const RevisionGraph>(*std::move(graph));
}

int RunVersion(const Context& context) {
  context.out << "sluice " << SLUICE_VERSION << " (commit " << SLUICE_GIT_COMMIT << ", built with "
              << "g++ " << __VERSION__ << ", C++" << __cplusplus / 100 % 100 << ")\n";
  return failure::kExitOk;
}

int RunHeads(const Context& context) {
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> graph = LoadGraph(context.options());
  if (!graph.ok()) return FailWith(graph.status());
  context.out << HeadsListing(**graph, context.options().verbose);
  return failure::kExitOk;
}

int RunBranches(const Context& context) {
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> graph = LoadGraph(context.options());
  if (!graph.ok()) return FailWith(graph.status());
  context.out << BranchesListing(**graph, context.options().verbose);
  return failure::kExitOk;
}

// Returns the database's state when a database is configured, for the markers of `history`.
absl::StatusOr<std::optional<engine::DatabaseState>> OptionalDatabaseState(
    const Context& context, std::shared_ptr<const RevisionGraph> graph);

int RunHistory(const Context& context) {
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> graph = LoadGraph(context.options());
  if (!graph.ok()) return FailWith(graph.status());
  absl::StatusOr<std::optional<engine::DatabaseState>> state =
      OptionalDatabaseState(context, *graph);
  if (!state.ok()) return FailWith(state.status());
  context.out << HistoryListing(**graph, *state, context.options().verbose);
  return failure::kExitOk;
}

int RunShow(const Context& context) {
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> loaded = LoadGraph(context.options());
  if (!loaded.ok()) return FailWith(loaded.status());
  const RevisionGraph* graph = loaded->get();
  absl::StatusOr<std::vector<std::string>> revisions =
      graph->ResolveTarget(context.args()[0], /*current=*/{});
  if (!revisions.ok()) return UsageError(revisions.status().message());
  for (const std::string& revision : *revisions) {
    context.out << VerboseEntry(*graph, *graph->Find(revision));
  }
  return failure::kExitOk;
}

int RunValidate(const Context& context) {
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> loaded = LoadGraph(context.options());
  if (!loaded.ok()) return FailWith(loaded.status());
  const RevisionGraph* graph = loaded->get();
  const std::vector<std::string> heads = graph->Heads();
  if (context.options().single_head && heads.size() > 1) {
    return Fail(failure::kExitInvalidManifests,
                absl::InvalidArgumentError(absl::StrCat(
                    "the manifests have ", heads.size(), " heads (", absl::StrJoin(heads, ", "),
                    "); --single-head wants one: add a merge revision whose down_revision lists "
                    "them all")));
  }
  const size_t count = graph->TopologicalOrder().size();
  context.out << "OK: " << count << (count == 1 ? " revision, " : " revisions, ")
              << (heads.size() == 1 ? "head " : "heads ") << absl::StrJoin(heads, ", ") << "\n";
  absl::StatusOr<std::optional<engine::DatabaseState>> state =
      OptionalDatabaseState(context, *loaded);
  if (!state.ok()) return FailWith(state.status());
  if (!state->has_value()) return failure::kExitOk;
  std::vector<std::string> drifted;
  std::vector<std::string> unverified;
  for (const engine::AppliedRevision& applied : (*state)->applied) {
    if (applied.verification == engine::Verification::kDrifted) {
      const Migration* m = graph->Find(applied.revision);
      drifted.push_back(absl::StrCat(applied.revision, " (", m->location.file, ":",
                                     m->location.line, ": applied as ", applied.recorded_checksum,
                                     ", manifest now ", m->checksum, ")"));
    } else if (applied.verification == engine::Verification::kUnverified) {
      unverified.push_back(applied.revision);
    }
  }
  if (!unverified.empty()) {
    context.out << "unverified (applied before sluice kept history): "
                << absl::StrJoin(unverified, ", ") << "\n";
  }
  if (!drifted.empty()) {
    const std::string message = absl::StrCat("drift: applied revisions changed since they ran: ",
                                             absl::StrJoin(drifted, "; "));
    if (!context.options().allow_drift)
      return Fail(failure::kExitDrift, absl::FailedPreconditionError(message));
    log::Warning(message);
  }
  context.out << "database: " << JoinedOrBase((*state)->versions) << ", "
              << (*state)->applied.size() - unverified.size() - drifted.size() << " verified\n";
  return failure::kExitOk;
}

// Offline mode: `upgrade --sql [FROM:]TO` and `downgrade --sql FROM:TO`.
int RunOffline(const Context& context, graph::Direction direction) {
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> loaded = LoadGraph(context.options());
  if (!loaded.ok()) return FailWith(loaded.status());
  const RevisionGraph* graph = loaded->get();
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
  return failure::kExitOk;
}

std::string JoinedOrBase(const std::vector<std::string>& versions) {
  return versions.empty() ? "<base>" : absl::StrJoin(versions, ", ");
}

int FailWith(const absl::Status& status) { return Fail(failure::ExitCodeFor(status), status); }

// Returns the connection string given by `flag` (its value `url`), else by the file `file_flag`
// names (`file`), else empty.
absl::StatusOr<std::string> UrlFromFlags(const std::string& url, absl::string_view file_flag,
                                         const std::string& file) {
  if (!url.empty()) return url;
  if (file.empty()) return std::string();
  std::ifstream in(file);
  if (!in) {
    return failure::WithFailureKind(
        absl::InvalidArgumentError(absl::StrCat("cannot read --", file_flag, " ", file)),
        failure::FailureKind::kUsage);
  }
  std::stringstream text;
  text << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(text.str()));
}

// Returns the connection string: --database-url, else --database-url-file, else DATABASE_URL,
// else empty (libpq's PG* variables).
absl::StatusOr<std::string> DatabaseUrl(const Context& context) {
  const Options& options = context.options();
  SLUICE_ASSIGN_OR_RETURN(std::string url, UrlFromFlags(options.database_url, "database-url-file",
                                                        options.database_url_file));
  if (!url.empty()) return url;
  if (std::optional<std::string> env = context.env("DATABASE_URL"); env.has_value()) return *env;
  return std::string();
}

// Returns whether a database was named at all: the offline commands consult one only then.
bool DatabaseConfigured(const Context& context) {
  const Options& options = context.options();
  if (!options.database_url.empty() || !options.database_url_file.empty()) return true;
  for (const char* name : {"DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE"}) {
    if (context.env(name).has_value()) return true;
  }
  return false;
}

// Returns an engine over the configured database that plans on `graph`.
absl::StatusOr<std::unique_ptr<engine::Engine>> OpenEngine(
    const Context& context, std::shared_ptr<const RevisionGraph> graph,
    engine::Observer* observer = nullptr) {
  const Options& options = context.options();
  SLUICE_ASSIGN_OR_RETURN(std::string url, DatabaseUrl(context));
  log::Debug("database", {{"url", store::RedactUrl(url.empty() ? "(PG* variables)" : url)}});

  engine::EngineOptions engine_options;
  engine_options.tables.schema = options.schema;
  engine_options.tables.version_table = options.version_table;
  engine_options.lock_key = options.lock_key;
  engine_options.lock_wait = options.lock_wait;
  engine_options.lock_mode =
      options.lock_mode == "lease" ? engine::LockMode::kLease : engine::LockMode::kSession;
  engine_options.lease_ttl = options.lease_ttl;
  engine_options.ddl_lock_timeout = options.ddl_lock_timeout;
  engine_options.ddl_retries = options.ddl_retries;
  engine_options.single_transaction = options.single_transaction;
  engine_options.allow_drift = options.allow_drift;
  engine_options.fail_if_ahead = options.if_ahead == "fail";
  engine_options.applied_by = base::RunnerName(context.env);
  engine_options.stop = context.stop;
  const absl::Duration connect_timeout = options.connect_timeout;
  const auto factory_for = [connect_timeout](const std::string& target) -> engine::StoreFactory {
    return [target, connect_timeout](const std::string& application_name) {
      store::ConnectOptions connect;
      connect.url = target;
      connect.application_name = absl::StrCat("sluice:", application_name);
      connect.connect_timeout = connect_timeout;
      return store::ConnectPg(connect);
    };
  };
  SLUICE_ASSIGN_OR_RETURN(std::string lock_url,
                          UrlFromFlags(options.lock_database_url, "lock-database-url-file",
                                       options.lock_database_url_file));
  engine::StoreFactory lock_factory;
  if (!lock_url.empty()) {
    log::Debug("lock database", {{"url", store::RedactUrl(lock_url)}});
    lock_factory = factory_for(lock_url);
  }
  return std::make_unique<engine::Engine>(std::move(graph), factory_for(url),
                                          std::move(engine_options), observer,
                                          std::move(lock_factory));
}

// Loads the manifests' graph and opens an engine on it.
absl::StatusOr<std::unique_ptr<engine::Engine>> OpenSession(const Context& context) {
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const RevisionGraph> graph, LoadGraph(context.options()));
  return OpenEngine(context, std::move(graph));
}

absl::StatusOr<std::optional<engine::DatabaseState>> OptionalDatabaseState(
    const Context& context, std::shared_ptr<const RevisionGraph> graph) {
  if (!DatabaseConfigured(context)) return std::optional<engine::DatabaseState>();
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> engine,
                          OpenEngine(context, std::move(graph)));
  SLUICE_ASSIGN_OR_RETURN(engine::DatabaseState state, engine->Inspect());
  return std::optional<engine::DatabaseState>(std::move(state));
}

// Starts reporting to the MigrationJob named by --report, when one is, through a Kubernetes client
// made here. Without one (no configuration, a bad certificate) the migration still runs: the
// reporter warns now and Finish reports why.
absl::StatusOr<std::unique_ptr<reporting::MigrationJobReporter>> StartReporter(
    const Context& context, const std::string& target) {
  const Options& options = context.options();
  if (options.report.empty()) return std::unique_ptr<reporting::MigrationJobReporter>();
  reporting::ReportOptions report;
  report.report = options.report;
  report.report_required = options.report_required;
  report.report_timeout = options.report_timeout;
  report.instance = base::RunnerName(context.env);
  report.target = target;
  absl::StatusOr<std::unique_ptr<reporting::MigrationJobReporter>> reporter =
      reporting::MigrationJobReporter::Start(report,
                                             kube::NewRestClientFromConfig(options.kubeconfig));
  if (!reporter.ok()) {
    return failure::WithFailureKind(reporter.status(), failure::FailureKind::kUsage);
  }
  return reporter;
}

int RunMigrate(const Context& context, graph::Direction direction) {
  const bool upgrade = direction == graph::Direction::kUpgrade;
  const std::string target = context.args().empty() ? "head" : context.args()[0];
  absl::StatusOr<std::unique_ptr<reporting::MigrationJobReporter>> reporter =
      StartReporter(context, target);
  if (!reporter.ok()) return FailWith(reporter.status());
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> graph = LoadGraph(context.options());
  if (graph.ok() && *reporter != nullptr)
    (*reporter)->SetMigrationsDigest((*graph)->ContentDigest());
  absl::StatusOr<std::unique_ptr<engine::Engine>> session =
      graph.ok() ? OpenEngine(context, *std::move(graph), reporter->get())
                 : absl::StatusOr<std::unique_ptr<engine::Engine>>(graph.status());
  absl::StatusOr<engine::RunResult> result =
      !session.ok() ? absl::StatusOr<engine::RunResult>(session.status())
      : upgrade     ? (*session)->Upgrade(target)
                    : (*session)->Downgrade(target);
  // The database comes first: the run's own outcome decides the exit code; a status that could
  // not be written fails the run only with --report-required, and only after the migrations.
  log::Debug("run finished");
  absl::Status reported;
  if (*reporter != nullptr)
    reported = (*reporter)->Finish(result.status(), result.ok() ? &*result : nullptr);
  if (!result.ok()) return FailWith(result.status());
  if (result->already_at_target) {
    context.out << "already at " << target << ": " << JoinedOrBase(result->from_versions) << "\n";
  } else {
    context.out << (upgrade ? "upgraded " : "downgraded ") << JoinedOrBase(result->from_versions)
                << " -> " << JoinedOrBase(result->to_versions) << " (" << result->steps.size()
                << (result->steps.size() == 1 ? " revision" : " revisions") << ")\n";
  }
  if (!reported.ok()) {
    return Fail(failure::kExitMigrationFailed,
                absl::Status(reported.code(), absl::StrCat("--report-required: the MigrationJob "
                                                           "status was not written: ",
                                                           reported.message())));
  }
  return failure::kExitOk;
}

// `upgrade --lint`: lints the pending revisions on --dev-url; returns 0 to go on.
int LintBeforeUpgrade(const Context& context) {
  absl::StatusOr<std::unique_ptr<engine::Engine>> session = OpenSession(context);
  if (!session.ok()) return FailWith(session.status());
  absl::StatusOr<engine::DatabaseState> state = (*session)->Inspect();
  if (!state.ok()) return FailWith(state.status());
  const std::string target = context.args().empty() ? "head" : context.args()[0];
  const int code = RunLintOn(context.options(), (*session)->Graph(), state->versions, std::nullopt,
                             target, context.out, context.stop);
  if (code != failure::kExitOk) log::Error("upgrade --lint: the lint failed; nothing was applied");
  return code;
}

int RunUpgrade(const Context& context) {
  if (context.options().sql) return RunOffline(context, graph::Direction::kUpgrade);
  if (context.options().lint) {
    if (const int code = LintBeforeUpgrade(context); code != failure::kExitOk) return code;
  }
  return RunMigrate(context, graph::Direction::kUpgrade);
}

int RunLint(const Context& context) {
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> graph = LoadGraph(context.options());
  if (!graph.ok()) return FailWith(graph.status());
  std::optional<std::vector<std::string>> current;
  if (context.args().empty()) {
    // Only the version table is read: the revisions pending there are the ones to lint.
    absl::StatusOr<std::optional<engine::DatabaseState>> state =
        OptionalDatabaseState(context, *graph);
    if (!state.ok()) return FailWith(state.status());
    if (state->has_value()) current = (*state)->versions;
  }
  std::optional<std::string> range;
  if (!context.args().empty()) range = context.args()[0];
  return RunLintOn(context.options(), **graph, current, range, "heads", context.out, context.stop);
}

int RunDowngrade(const Context& context) {
  if (context.options().sql) return RunOffline(context, graph::Direction::kDowngrade);
  return RunMigrate(context, graph::Direction::kDowngrade);
}

int RunCurrent(const Context& context) {
  absl::StatusOr<std::unique_ptr<engine::Engine>> session = OpenSession(context);
  if (!session.ok()) return FailWith(session.status());
  absl::StatusOr<engine::DatabaseState> state = (*session)->Inspect();
  if (!state.ok()) return FailWith(state.status());
  context.out << CurrentListing((*session)->Graph(), *state, context.options().verbose);
  if (!state->ahead.empty()) {
    log::Warning(
        absl::StrCat("the database is ahead of the manifests: ", absl::StrJoin(state->ahead, ", "),
                     " known only from sluice's history"));
  }
  return failure::kExitOk;
}

int RunStamp(const Context& context) {
  absl::StatusOr<std::unique_ptr<engine::Engine>> session = OpenSession(context);
  if (!session.ok()) return FailWith(session.status());
  absl::StatusOr<engine::RunResult> result =
      (*session)->Stamp(context.args()[0], context.options().purge);
  if (!result.ok()) return FailWith(result.status());
  context.out << "stamped " << JoinedOrBase(result->from_versions) << " -> "
              << JoinedOrBase(result->to_versions) << "\n";
  return failure::kExitOk;
}

int RunCheck(const Context& context) {
  absl::StatusOr<std::unique_ptr<engine::Engine>> session = OpenSession(context);
  if (!session.ok()) return FailWith(session.status());
  const std::string target = context.args().empty() ? "head" : context.args()[0];
  absl::StatusOr<std::vector<std::string>> pending = (*session)->Pending(target);
  if (!pending.ok()) return FailWith(pending.status());
  if (pending->empty()) {
    context.out << "up to date with " << target << "\n";
    return failure::kExitOk;
  }
  context.out << pending->size() << " pending: " << absl::StrJoin(*pending, ", ") << "\n";
  return failure::kExitPending;
}

int RunResolve(const Context& context) {
  const std::string& how = context.args()[1];
  if (how != "applied" && how != "rolled-back") {
    return UsageError(
        "resolve takes `applied` (finished by hand) or `rolled-back` (undone by hand)");
  }
  absl::StatusOr<std::unique_ptr<engine::Engine>> session = OpenSession(context);
  if (!session.ok()) return FailWith(session.status());
  absl::Status status = (*session)->Resolve(context.args()[0], how == "applied");
  if (!status.ok()) return FailWith(status);
  context.out << "resolved " << context.args()[0] << " as " << how << "\n";
  return failure::kExitOk;
}

// Returns `time` as the logs print times (UTC, milliseconds).
std::string LockTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

int RunLock(const Context& context) {
  const std::string& action = context.args()[0];
  if (action != "status" && action != "release") {
    return UsageError(
        "lock takes `status` (who holds the migration lock) or `release --force` "
        "(free a lease whose holder is gone)");
  }
  if (action == "release" && !context.options().force) {
    return UsageError(
        "lock release frees the lease of a runner that is gone and needs --force; a lease whose "
        "heartbeat is fresh is never released (see `sluice lock status`)");
  }
  // The lock does not depend on the manifests: no graph to load.
  absl::StatusOr<RevisionGraph> no_revisions = RevisionGraph::Build({});
  if (!no_revisions.ok()) return FailWith(no_revisions.status());
  absl::StatusOr<std::unique_ptr<engine::Engine>> session =
      OpenEngine(context, std::make_shared<const RevisionGraph>(*std::move(no_revisions)));
  if (!session.ok()) return FailWith(session.status());
  if (action == "release") {
    absl::StatusOr<std::optional<store::Lease>> released = (*session)->ForceReleaseLease();
    if (!released.ok()) return FailWith(released.status());
    if (!released->has_value()) {
      context.out << "there is no migration lease: nothing to release\n";
      return failure::kExitOk;
    }
    const store::Lease& lease = **released;
    context.out << "released the lease of " << lease.holder << " (held since "
                << LockTime(lease.acquired_at) << ", last heartbeat "
                << LockTime(lease.heartbeat_at) << ", expired "
                << absl::FormatDuration(-lease.remaining) << " ago)\n";
    return failure::kExitOk;
  }
  absl::StatusOr<engine::LockStatus> status = (*session)->ReadLockStatus();
  if (!status.ok()) return FailWith(status.status());
  const Options& options = context.options();
  context.out << "lock key " << status->key << " (" << options.schema << "."
              << options.version_table << ")\n";
  context.out << "advisory lock (lock mode session): "
              << (status->session_holder.has_value()
                      ? absl::StrCat("held by ", store::DescribeLockHolder(*status->session_holder))
                      : "free")
              << "\n";
  context.out << "lease (lock mode lease, " << options.schema << ".sluice_lock): ";
  if (!status->lease.has_value()) {
    context.out << "free\n";
  } else {
    const store::Lease& lease = *status->lease;
    const bool expired = lease.remaining <= absl::ZeroDuration();
    context.out << (expired ? "expired; was held by " : "held by ") << lease.holder << " since "
                << LockTime(lease.acquired_at) << ", last heartbeat "
                << LockTime(lease.heartbeat_at)
                << (expired ? absl::StrCat(", expired ", absl::FormatDuration(-lease.remaining),
                                           " ago (`sluice lock release --force` frees it)")
                            : absl::StrCat(", expires in ", absl::FormatDuration(lease.remaining),
                                           " unless renewed"))
                << "\n";
  }
  return failure::kExitOk;
}

// `import alembic`: the Alembic project's revision scripts as manifests (pkg/alembic_import).
int RunImport(const Context& context) {
  if (context.args()[0] != "alembic") {
    return UsageError(absl::StrCat("import knows `alembic` only (not \"", context.args()[0],
                                   "\"): sluice import alembic --config PATH/alembic.ini"));
  }
  const Options& options = context.options();
  alembic_import::ImportOptions import;
  import.config = options.config;
  import.out_dir = options.out;
  import.python = options.python;
  import.force = options.force;
  absl::StatusOr<alembic_import::ImportResult> result = alembic_import::ImportAlembic(import);
  if (!result.ok()) return FailWith(result.status());
  context.out << alembic_import::DescribeImport(*result);
  if (result->UnconvertedCount() > 0) {
    return Fail(failure::kExitInvalidManifests,
                absl::InvalidArgumentError(absl::StrCat(
                    result->UnconvertedCount(), " of ", result->revisions.size(),
                    " revisions were written marked `unconverted`: fill in their SQL")));
  }
  return failure::kExitOk;
}

// `wait [TARGET]`: for an application's init container; reads the version table only.
int RunWait(const Context& context) {
  const std::string target = context.args().empty() ? "head" : context.args()[0];
  absl::StatusOr<std::unique_ptr<engine::Engine>> session = OpenSession(context);
  if (!session.ok()) return FailWith(session.status());
  const absl::Duration timeout = context.options().timeout;
  absl::StatusOr<engine::VersionCheck> check = (*session)->WaitForTarget(target, timeout);
  if (!check.ok()) return FailWith(check.status());
  if (!check->ahead.empty()) {
    log::Warning(absl::StrCat("the database is ahead of the manifests: it has ",
                              absl::StrJoin(check->ahead, ", "),
                              ", which --migrations lacks (a newer release migrated it); "
                              "counting that as ready"));
  }
  if (check->pending.empty()) {
    context.out << "up to date with " << target << ": " << JoinedOrBase(check->versions) << "\n";
    return failure::kExitOk;
  }
  context.out << check->pending.size() << " pending: " << absl::StrJoin(check->pending, ", ")
              << "\n";
  log::Error(absl::StrCat("the database did not reach ", target, " within --timeout ",
                          absl::FormatDuration(timeout), "; it is at ",
                          JoinedOrBase(check->versions),
                          ". Is the migration (Job, init container or MigrationJob) running? "
                          "`kubectl get mj` and its logs say"));
  return failure::kExitPending;
}

// `configmap NAME`: the migrations as a ConfigMap manifest on stdout (pkg/cli/configmap.h).
int RunConfigMap(const Context& context) {
  // Manifests that do not load would fail every pod that mounts them: refuse them here.
  absl::StatusOr<std::shared_ptr<const RevisionGraph>> graph = LoadGraph(context.options());
  if (!graph.ok()) return FailWith(graph.status());
  absl::StatusOr<std::vector<manifest::ManifestFile>> listed =
      manifest::ListManifestFiles(context.options().migrations);
  if (!listed.ok()) return Fail(failure::kExitInvalidManifests, listed.status());
  std::vector<ConfigMapFile> files;
  for (const manifest::ManifestFile& file : *listed) {
    std::ifstream in(file.path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    if (!in) {
      return Fail(failure::kExitInvalidManifests,
                  absl::InvalidArgumentError(absl::StrCat(file.path, ": cannot read the file")));
    }
    files.push_back(ConfigMapFile{file.name, file.path, content.str()});
  }
  const size_t bytes = ConfigMapDataBytes(files);
  absl::StatusOr<std::string> yaml =
      RenderConfigMap(context.args()[0], context.options().namespace_name, std::move(files));
  if (!yaml.ok()) return UsageError(yaml.status().message());
  // The annotation holds the object as JSON, a little longer than its data (escaped line breaks).
  if (bytes + bytes / 8 > kAnnotationsMaxBytes) {
    log::Warning(absl::StrCat(
        "the ConfigMap holds ", bytes,
        " bytes: client-side `kubectl apply` copies it into its "
        "last-applied annotation, which Kubernetes limits to 262144 bytes; apply it with "
        "`kubectl apply --server-side` or `kubectl create`/`kubectl replace`"));
  }
  context.out << *yaml;
  return failure::kExitOk;
}

// Returns "" for an address of 0 (not served), else `address`.
std::string ServedAddress(const std::string& address) { return address == "0" ? "" : address; }

int RunOperator(const Context& context) {
  const Options& options = context.options();
  operator_::OperatorOptions op;
  op.namespace_ = options.namespace_name;
  op.max_concurrent = options.max_concurrent;
  op.identity = base::RunnerName(context.env);
  op.leader_elect = options.leader_elect;
  op.lease.name = options.leader_election_id;
  op.lease.namespace_ = options.leader_election_namespace;
  if (op.lease.namespace_.empty()) op.lease.namespace_ = context.env("POD_NAMESPACE").value_or("");
  if (op.lease.namespace_.empty()) op.lease.namespace_ = options.namespace_name;
  op.lease_duration = options.leader_election_lease_duration;
  op.renew_deadline = options.leader_election_renew_deadline;
  op.retry_period = options.leader_election_retry_period;
  if (op.leader_elect) {
    kube::LeaderElectionOptions election;
    election.lease = op.lease;
    election.identity = op.identity;
    election.lease_duration = op.lease_duration;
    election.renew_deadline = op.renew_deadline;
    election.retry_period = op.retry_period;
    const absl::Status valid = kube::ValidateLeaderElectionOptions(election);
    if (!valid.ok()) {
      return UsageError(
          absl::StrCat(valid.message(),
                       op.lease.namespace_.empty()
                           ? " (the Lease's namespace comes from --leader-election-namespace, else "
                             "$POD_NAMESPACE, else --namespace)"
                           : ""));
    }
  }
  op.health_addr = ServedAddress(options.health_addr);
  op.metrics_addr = ServedAddress(options.metrics_addr);
  op.shutdown_grace = options.shutdown_grace;
  op.reconciler.connect_timeout = options.connect_timeout;
  op.reconciler.lock_wait = options.lock_wait;
  op.reconciler.report_timeout = options.report_timeout;

  absl::StatusOr<std::unique_ptr<kube::Client>> client =
      kube::NewRestClientFromConfig(options.kubeconfig);
  if (!client.ok()) {
    return FailWith(failure::WithFailureKind(
        absl::Status(client.status().code(),
                     absl::StrCat("operator: no Kubernetes client: ", client.status().message())),
        failure::FailureKind::kUsage));
  }
  const absl::Duration connect_timeout = options.connect_timeout;
  // Connection strings come from Secrets: checked here, and never logged.
  operator_::ConnectorFactory connect =
      [connect_timeout](const std::string& url) -> absl::StatusOr<engine::StoreFactory> {
    SLUICE_RETURN_IF_ERROR(store::LibpqConnectionString(url).status());
    return engine::StoreFactory([url, connect_timeout](const std::string& application_name) {
      store::ConnectOptions connect;
      connect.url = url;
      connect.application_name = absl::StrCat("sluice:", application_name);
      connect.connect_timeout = connect_timeout;
      return store::ConnectPg(connect);
    });
  };
  const absl::Status ended = operator_::Run(op, **client, connect, context.stop);
  (*client)->Shutdown();
  if (!ended.ok()) return FailWith(ended);
  return failure::kExitOk;
}

const std::vector<CommandSpec>& Commands() {
  static const std::vector<std::string> kDatabase = {"database-url", "database-url-file",
                                                     "connect-timeout", "schema", "version-table"};
  static const std::vector<std::string> kLockTarget = {"lock-key", "lock-mode", "lock-database-url",
                                                       "lock-database-url-file"};
  static const std::vector<std::string> kLocked = {"lock-key",          "lock-wait",
                                                   "lock-mode",         "lease-ttl",
                                                   "lock-database-url", "lock-database-url-file"};
  static const std::vector<std::string> kReport = {"report", "report-required", "report-timeout",
                                                   "kubeconfig"};
  static const std::vector<std::string> kApply = {"ddl-lock-timeout", "ddl-retries",
                                                  "single-transaction"};
  static const std::vector<std::string> kLint = {"lint", "dev-url", "format", "warnings-as-errors"};
  const auto flags = [](std::initializer_list<std::vector<std::string>> groups) {
    std::vector<std::string> all;
    for (const auto& group : groups) all.insert(all.end(), group.begin(), group.end());
    return all;
  };
  static const auto* commands = new std::vector<CommandSpec>{
      {"upgrade", "upgrade [TARGET] | upgrade --sql [FROM:]TO",
       "apply revisions up to TARGET (default head)",
       flags({{"sql", "allow-drift", "if-ahead"}, kDatabase, kLocked, kApply, kReport, kLint}), 0,
       1, RunUpgrade},
      {"downgrade", "downgrade TARGET | downgrade --sql FROM:TO",
       "revert down to TARGET (-1, base, an id)",
       flags({{"sql"}, kDatabase, kLocked, kApply, kReport}), 1, 1, RunDowngrade},
      {"current", "current", "print the current revision(s)", kDatabase, 0, 0, RunCurrent},
      {"stamp", "stamp TARGET",
       "set the version table without running SQL (--purge clears it first)",
       flags({{"purge"}, kDatabase, kLocked}), 1, 1, RunStamp},
      {"check", "check [TARGET]",
       "exit 0 when the database is at TARGET (default head), 3 when revisions are pending",
       kDatabase, 0, 1, RunCheck},
      {"resolve", "resolve REVISION applied|rolled-back",
       "settle a failed transactional: false revision that was finished or undone by hand",
       flags({kDatabase, kLocked}), 2, 2, RunResolve},
      {"history", "history",
       "list revisions, newest first, with applied markers when a database is given (-v for "
       "details and checksums)",
       kDatabase, 0, 0, RunHistory},
      {"heads", "heads", "list the head revisions", {}, 0, 0, RunHeads},
      {"branches", "branches", "list the branch points and their branches", {}, 0, 0, RunBranches},
      {"show", "show REV", "show one revision in detail", {}, 1, 1, RunShow},
      {"validate", "validate",
       "check the manifests, the revision graph and, when a database is given, drift",
       flags({{"single-head", "allow-drift"}, kDatabase}), 0, 0, RunValidate},
      {"lock", "lock status | lock release --force",
       "who holds the migration lock (either mode); free a lease whose holder is gone",
       flags({{"force"}, kDatabase, kLockTarget}), 1, 1, RunLock},
      {"import", "import alembic --config PATH/alembic.ini [--out DIR] [--force] [--python PY]",
       "convert an Alembic project's revision scripts into manifests (needs Python and Alembic)",
       flags({{"config", "out", "force", "python"}}), 1, 1, RunImport},
      {"wait", "wait [TARGET]",
       "wait, up to --timeout, until the database is at TARGET (default head); exit 3 if it is "
       "not; needs only SELECT on the version table",
       flags({{"timeout"}, kDatabase}), 0, 1, RunWait},
      {"configmap", "configmap NAME",
       "print a ConfigMap manifest holding the --migrations files, for `kubectl apply -f -`",
       flags({{"namespace"}}), 1, 1, RunConfigMap},
      {"lint", "lint [[FROM:]TO] --dev-url URL",
       "run revisions on a scratch database of a dev server and report what they would lock, "
       "rewrite, scan or drop (default: the revisions pending on the database, else all)",
       flags({{"dev-url", "format", "warnings-as-errors", "ddl-lock-timeout"}, kDatabase}), 0, 1,
       RunLint},
      {"operator", "operator [--namespace NS] [--leader-elect]",
       "reconcile MigrationJobs: apply each one's ConfigMaps to the database in its Secret, with "
       "leader election, /healthz, /readyz and /metrics",
       flags({{"namespace", "max-concurrent", "leader-elect", "leader-election-namespace",
               "leader-election-id", "leader-election-lease-duration",
               "leader-election-renew-deadline", "leader-election-retry-period", "health-addr",
               "metrics-addr", "shutdown-grace", "kubeconfig", "connect-timeout", "lock-wait",
               "report-timeout"}}),
       0, 0, RunOperator},
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
  absl::StrAppend(&text,
                  "\nRun `sluice COMMAND --help` for a command's flags, `sluice --version` for the "
                  "version.\n");
  return text;
}

std::string CommandHelp(const CommandSpec& command) {
  std::vector<std::string> flags = command.flags;
  flags.insert(flags.end(), kCommonFlags.begin(), kCommonFlags.end());
  return absl::StrCat("Usage: sluice ", command.usage, "\n\n", command.summary, "\n\nFlags:\n",
                      FlagHelp(flags));
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, const EnvLookup& env,
        std::shared_ptr<base::StopRequest> stop) {
  absl::StatusOr<CommandLine> command_line = ParseCommandLine(args, env);
  if (!command_line.ok()) return UsageError(command_line.status().message());
  log::SetFormat(command_line->options.log_format == "json" ? log::Format::kJson
                                                            : log::Format::kText);
  log::SetVerbose(command_line->options.verbose);

  // `sluice --version` is `sluice version` (product.md lists --version among the common flags);
  // --help wins, as it does for every command.
  if (command_line->version && !command_line->help) command_line->command = "version";
  if (command_line->command.empty() || command_line->command == "help") {
    out << GeneralHelp();
    return command_line->command.empty() && !command_line->help ? failure::kExitUsage
                                                                : failure::kExitOk;
  }
  const CommandSpec* command = FindCommand(command_line->command);
  if (command == nullptr) {
    return UsageError(absl::StrCat("unknown command \"", command_line->command,
                                   "\"; run `sluice --help` for the list"));
  }
  if (command_line->help) {
    out << CommandHelp(*command);
    return failure::kExitOk;
  }
  const size_t arg_count = command_line->args.size();
  if (arg_count < command->min_args || arg_count > command->max_args) {
    return UsageError(absl::StrCat("wrong number of arguments; usage: sluice ", command->usage));
  }
  return command->run(Context{*command_line, out, env, std::move(stop)});
}

}  // namespace sluice::cli
