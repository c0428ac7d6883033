#include "pkg/operator/reconciler.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"
#include "pkg/failure/failure.h"
#include "pkg/manifest/loader.h"
#include "pkg/reporting/migration_job_reporter.h"

namespace sluice::operator_ {
namespace {

// The payload that marks a ConfigProblem on an absl::Status.
constexpr char kProblemUrl[] = "type.sluice.dev/operator.ConfigProblem";

absl::Status Problem(absl::StatusCode code, absl::string_view reason, const std::string& message) {
  absl::Status status(code, message);
  status.SetPayload(kProblemUrl, absl::Cord(reason));
  return status;
}

std::string Ref(const std::string& ns, const std::string& name) {
  return absl::StrCat(ns, "/", name);
}

// Turns a failed read of `what` ("ConfigMap", "Secret") into a ConfigProblem when a person must
// act (missing, forbidden); transient errors pass through for a retry.
absl::Status ReadProblem(const absl::Status& status, absl::string_view what, const std::string& ref,
                         absl::string_view field) {
  if (status.code() == absl::StatusCode::kNotFound) {
    return Problem(
        status.code(), absl::StrCat(what, "NotFound"),
        absl::StrCat(what, " ", ref, " (", field, ") does not exist: create it, or fix ", field));
  }
  if (status.code() == absl::StatusCode::kPermissionDenied) {
    return Problem(
        status.code(), absl::StrCat(what, "Forbidden"),
        absl::StrCat("the operator's service account may not read ", what, " ", ref, " (", field,
                     "): grant it get on ", what == "Secret" ? "secrets" : "configmaps",
                     " in that namespace (manifests/rbac-operator.yaml)"));
  }
  return status;
}

bool IsManifestKey(const std::string& key) {
  return !absl::StartsWith(key, ".") &&
         (absl::EndsWith(key, ".yaml") || absl::EndsWith(key, ".yml"));
}

std::string FailureName(failure::FailureKind kind) {
  switch (kind) {
    case failure::FailureKind::kMigrationFailed:
      return "migration_failed";
    case failure::FailureKind::kUsage:
      return "usage";
    case failure::FailureKind::kInvalidManifests:
      return "invalid_manifests";
    case failure::FailureKind::kDrift:
      return "drift";
    case failure::FailureKind::kLockTimeout:
      return "lock_timeout";
    case failure::FailureKind::kUnreachable:
      return "unreachable";
    case failure::FailureKind::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

// Forwards the engine's progress to the reporter and times the wait for the lock.
class MeteredObserver : public engine::Observer {
 public:
  explicit MeteredObserver(engine::Observer& reporter) : reporter_(reporter) {}

  void OnPlanned(const engine::RunResult& result,
                 const std::vector<std::string>& pending) override {
    EndWait();
    reporter_.OnPlanned(result, pending);
  }
  void OnWaitingForLock(const store::LockHolder& holder) override {
    if (wait_started_ == absl::InfinitePast()) wait_started_ = absl::Now();
    reporter_.OnWaitingForLock(holder);
  }
  void OnStepFinished(const engine::StepOutcome& step) override {
    EndWait();
    if (step.ok) ++applied_;
    reporter_.OnStepFinished(step);
  }
  int applied() const { return applied_; }
  // The time spent waiting for the lock, if the run waited.
  std::optional<absl::Duration> LockWait() {
    EndWait();
    return waited_;
  }

 private:
  void EndWait() {
    if (wait_started_ == absl::InfinitePast()) return;
    waited_ = waited_.value_or(absl::ZeroDuration()) + (absl::Now() - wait_started_);
    wait_started_ = absl::InfinitePast();
  }

  engine::Observer& reporter_;
  absl::Time wait_started_ = absl::InfinitePast();
  std::optional<absl::Duration> waited_;
  int applied_ = 0;
};

}  // namespace

std::optional<ConfigProblem> ConfigProblemOf(const absl::Status& status) {
  auto reason = status.GetPayload(kProblemUrl);
  if (!reason.has_value()) return std::nullopt;
  return ConfigProblem{std::string(*reason), std::string(status.message())};
}

absl::StatusOr<LoadedMigrations> LoadMigrations(kube::Client& client, const kube::MigrationJob& job,
                                                absl::Time deadline) {
  const std::string& ns = job.metadata.namespace_;
  if (job.spec.config_maps.empty()) {
    return Problem(absl::StatusCode::kInvalidArgument, "NoMigrations",
                   "spec.migrations.configMaps names no ConfigMap: list the ConfigMaps that hold "
                   "the migration manifests");
  }
  std::vector<manifest::Migration> migrations;
  std::vector<std::string> problems;
  for (const std::string& name : job.spec.config_maps) {
    absl::StatusOr<kube::ConfigMap> config_map = client.GetConfigMap({ns, name}, deadline);
    if (!config_map.ok()) {
      return ReadProblem(config_map.status(), "ConfigMap", Ref(ns, name),
                         "spec.migrations.configMaps");
    }
    // data and binaryData share one key space in a ConfigMap; std::map keeps key order.
    std::map<std::string, const std::string*> files;
    for (const auto& [key, value] : config_map->data) files[key] = &value;
    for (const auto& [key, value] : config_map->binary_data) files[key] = &value;
    for (const auto& [key, text] : files) {
      if (!IsManifestKey(key)) continue;
      absl::StatusOr<std::vector<manifest::Migration>> parsed =
          manifest::ParseManifest(*text, absl::StrCat("configmap/", name, "/", key));
      if (!parsed.ok()) {
        problems.push_back(std::string(parsed.status().message()));
        continue;
      }
      for (manifest::Migration& m : *parsed) migrations.push_back(std::move(m));
    }
  }
  if (!problems.empty()) {
    return Problem(absl::StatusCode::kInvalidArgument, "InvalidMigrations",
                   absl::StrCat("the migration manifests are invalid; fix the ConfigMap:\n",
                                absl::StrJoin(problems, "\n")));
  }
  if (migrations.empty()) {
    return Problem(
        absl::StatusCode::kInvalidArgument, "NoMigrations",
        absl::StrCat("the ConfigMaps ", absl::StrJoin(job.spec.config_maps, ", "), " in ", ns,
                     " hold no manifest (keys ending in .yaml or .yml): create them "
                     "with `sluice configmap NAME --migrations DIR`"));
  }
  absl::StatusOr<graph::RevisionGraph> graph = graph::RevisionGraph::Build(std::move(migrations));
  if (!graph.ok()) {
    return Problem(absl::StatusCode::kInvalidArgument, "InvalidMigrations",
                   absl::StrCat("the revision graph is invalid; fix the ConfigMap:\n",
                                graph.status().message()));
  }
  LoadedMigrations loaded;
  loaded.digest = graph->ContentDigest();
  loaded.graph = std::make_shared<const graph::RevisionGraph>(*std::move(graph));
  return loaded;
}

namespace {

absl::StatusOr<std::string> ReadSecretKey(kube::Client& client, const std::string& ns,
                                          const std::string& name, const std::string& key,
                                          absl::string_view field, absl::Time deadline) {
  absl::StatusOr<kube::Secret> secret = client.GetSecret({ns, name}, deadline);
  if (!secret.ok()) return ReadProblem(secret.status(), "Secret", Ref(ns, name), field);
  auto it = secret->data.find(key);
  if (it == secret->data.end() || it->second.empty()) {
    return Problem(absl::StatusCode::kFailedPrecondition, "SecretKeyMissing",
                   absl::StrCat("Secret ", Ref(ns, name), " (", field, ") has no key \"", key,
                                "\": add it, holding the database's connection string"));
  }
  return std::string(absl::StripAsciiWhitespace(it->second));
}

}  // namespace

absl::StatusOr<DatabaseUrls> ReadDatabaseUrls(kube::Client& client, const kube::MigrationJob& job,
                                              absl::Time deadline) {
  const std::string& ns = job.metadata.namespace_;
  DatabaseUrls urls;
  const std::string key = job.spec.url_secret_key.empty() ? "url" : job.spec.url_secret_key;
  absl::StatusOr<std::string> url = ReadSecretKey(client, ns, job.spec.url_secret_name, key,
                                                  "spec.database.urlSecretRef", deadline);
  if (!url.ok()) return url.status();
  urls.url = *std::move(url);
  if (!job.spec.lock_url_secret_name.empty()) {
    const std::string lock_key =
        job.spec.lock_url_secret_key.empty() ? "url" : job.spec.lock_url_secret_key;
    absl::StatusOr<std::string> lock_url =
        ReadSecretKey(client, ns, job.spec.lock_url_secret_name, lock_key,
                      "spec.database.lockDatabaseUrlSecretRef", deadline);
    if (!lock_url.ok()) return lock_url.status();
    urls.lock_url = *std::move(lock_url);
  }
  return urls;
}

Decision Decide(const kube::MigrationJob& job, const std::string& digest,
                const std::string& secrets_version, const std::optional<FailedAttempt>& failed,
                const std::optional<AppliedRun>& applied, absl::Time now) {
  Decision decision;
  if (job.spec.suspend) {
    decision.why = "suspended";
    return decision;
  }
  const int64_t generation = job.metadata.generation;
  const std::optional<kube::MigrationJobStatus>& status = job.status;
  const bool same_content = status.has_value() && status->migrations_digest == digest;
  const bool applied_this_generation = applied.has_value() && applied->generation == generation;
  decision.content_changed =
      (status.has_value() && !status->migrations_digest.empty() && !same_content) ||
      (applied.has_value() && applied->digest != digest);
  if (status.has_value() && status->phase == "Succeeded" &&
      status->observed_generation == generation && same_content) {
    decision.why = "at the target of this generation and content";
    return decision;
  }
  if (failed.has_value() && failed->generation == generation && failed->digest == digest &&
      failed->secrets_version == secrets_version && now < failed->retry_at) {
    decision.action = Decision::Action::kRetryLater;
    decision.retry_at = failed->retry_at;
    decision.why = "the last run failed; waiting to retry";
    return decision;
  }
  decision.action = Decision::Action::kRun;
  if (applied_this_generation && applied->digest != digest) {
    decision.why = "the migrations changed";
  } else if (!status.has_value() || status->observed_generation != generation) {
    decision.why = absl::StrCat("generation ", generation, " not applied yet");
  } else if (!same_content) {
    decision.why = "the migrations changed";
  } else {
    decision.why = absl::StrCat("the last run ended ",
                                status->phase.empty() ? "without a phase" : status->phase);
  }
  return decision;
}

absl::StatusOr<Direction> DirectionTo(engine::Engine& engine, const graph::RevisionGraph& graph,
                                      const std::string& target) {
  if (target == "head" || target == "heads") return Direction::kUpgrade;
  absl::StatusOr<engine::VersionCheck> check = engine.CheckVersions(target);
  if (!check.ok()) return check.status();
  if (!check->pending.empty() || !check->ahead.empty()) return Direction::kUpgrade;
  absl::StatusOr<std::vector<std::string>> resolved = graph.ResolveTarget(target, check->versions);
  if (!resolved.ok()) return resolved.status();
  // Nothing pending: the target is the database's state (a no-op upgrade writes the status) or
  // below it.
  return *resolved == check->versions ? Direction::kUpgrade : Direction::kDowngrade;
}

namespace {

// The reporter's options for a run (or a problem report) of `job`.
reporting::ReportOptions ReportOptionsFor(const ReconcilerOptions& options,
                                          const kube::MigrationJob& job, bool content_changed) {
  reporting::ReportOptions report;
  report.report = Ref(job.metadata.namespace_, job.metadata.name);
  report.instance = options.identity;
  report.target = job.spec.target.empty() ? "head" : job.spec.target;
  report.generation = job.metadata.generation;
  report.content_changed = content_changed;
  report.report_timeout = options.report_timeout;
  // The operator exists to keep the status: a status it could not write is retried.
  report.report_required = true;
  return report;
}

}  // namespace

Reconciler::Reconciler(kube::Client& client, ConnectorFactory connect, ReconcilerOptions options)
    : client_(client), connect_(std::move(connect)), options_(std::move(options)) {}

RunReport Reconciler::ReportProblem(const kube::MigrationJob& job, const ConfigProblem& problem) {
  const absl::Time started = absl::Now();
  const reporting::ReportOptions report =
      ReportOptionsFor(options_, job, /*content_changed=*/false);
  absl::StatusOr<std::unique_ptr<reporting::MigrationJobReporter>> reporter =
      reporting::MigrationJobReporter::Start(report, client_);
  RunReport result;
  result.outcome = RunReport::Outcome::kConfigError;
  result.failure = problem.reason;
  if (reporter.ok()) {
    (*reporter)->SetFailureReason(problem.reason);
    result.status_written =
        (*reporter)->Finish(absl::FailedPreconditionError(problem.message), nullptr).ok();
  }
  log::Warning(
      "cannot reconcile the MigrationJob",
      {{"migrationjob", report.report}, {"reason", problem.reason}, {"error", problem.message}});
  result.duration = absl::Now() - started;
  return result;
}

RunReport Reconciler::ReportReading(const kube::MigrationJob& job,
                                    const LoadedMigrations& migrations, bool content_changed,
                                    const engine::RunResult& reading) {
  const absl::Time started = absl::Now();
  const reporting::ReportOptions report = ReportOptionsFor(options_, job, content_changed);
  RunReport result;
  result.outcome = RunReport::Outcome::kAtTarget;
  absl::StatusOr<std::unique_ptr<reporting::MigrationJobReporter>> reporter =
      reporting::MigrationJobReporter::Start(report, client_);
  if (!reporter.ok()) {
    result.outcome = RunReport::Outcome::kFailed;
    result.failure = "usage";
    result.duration = absl::Now() - started;
    return result;
  }
  (*reporter)->SetMigrationsDigest(migrations.digest);
  (*reporter)->OnPlanned(reading, {});
  result.status_written = (*reporter)->Finish(absl::OkStatus(), &reading).ok();
  result.duration = absl::Now() - started;
  return result;
}

RunReport Reconciler::Run(const kube::MigrationJob& job, const LoadedMigrations& migrations,
                          bool content_changed, std::shared_ptr<base::StopRequest> stop) {
  const absl::Time started = absl::Now();
  const std::string target = job.spec.target.empty() ? "head" : job.spec.target;
  const std::string ref = Ref(job.metadata.namespace_, job.metadata.name);

  absl::StatusOr<DatabaseUrls> urls =
      ReadDatabaseUrls(client_, job, absl::Now() + options_.api_timeout);
  if (!urls.ok()) {
    if (std::optional<ConfigProblem> problem = ConfigProblemOf(urls.status())) {
      return ReportProblem(job, *problem);
    }
    RunReport report;
    report.failure = "api_unavailable";
    report.duration = absl::Now() - started;
    log::Warning("cannot read the MigrationJob's Secret; will retry",
                 {{"migrationjob", ref}, {"error", std::string(urls.status().message())}});
    return report;
  }
  absl::StatusOr<engine::StoreFactory> factory = connect_(urls->url);
  if (!factory.ok()) {
    return ReportProblem(job, {"InvalidDatabaseUrl",
                               absl::StrCat("the connection string in Secret ",
                                            job.metadata.namespace_, "/", job.spec.url_secret_name,
                                            " is not valid: ", factory.status().message())});
  }
  engine::StoreFactory lock_factory;
  if (!urls->lock_url.empty()) {
    absl::StatusOr<engine::StoreFactory> made = connect_(urls->lock_url);
    if (!made.ok()) {
      return ReportProblem(
          job, {"InvalidDatabaseUrl",
                absl::StrCat("the connection string in Secret ", job.metadata.namespace_, "/",
                             job.spec.lock_url_secret_name,
                             " (spec.database.lockDatabaseUrlSecretRef) is not valid: ",
                             made.status().message())});
    }
    lock_factory = *std::move(made);
  }

  engine::EngineOptions engine_options;
  if (!job.spec.schema.empty()) engine_options.tables.schema = job.spec.schema;
  if (!job.spec.version_table.empty()) engine_options.tables.version_table = job.spec.version_table;
  engine_options.lock_mode =
      job.spec.lock_mode == "lease" ? engine::LockMode::kLease : engine::LockMode::kSession;
  engine_options.lock_wait = options_.lock_wait;
  if (!job.spec.ddl_lock_timeout.empty()) {
    absl::Duration timeout;
    if (!absl::ParseDuration(job.spec.ddl_lock_timeout, &timeout) ||
        timeout < absl::ZeroDuration()) {
      return ReportProblem(job, {"InvalidSpec", absl::StrCat("spec.database.ddlLockTimeout \"",
                                                             job.spec.ddl_lock_timeout,
                                                             "\" is not a duration such as 10s")});
    }
    engine_options.ddl_lock_timeout = timeout;
  }
  if (job.spec.ddl_retries.has_value()) engine_options.ddl_retries = *job.spec.ddl_retries;
  engine_options.applied_by = options_.identity;
  engine_options.stop = stop;

  const reporting::ReportOptions report = ReportOptionsFor(options_, job, content_changed);
  absl::StatusOr<std::unique_ptr<reporting::MigrationJobReporter>> reporter =
      reporting::MigrationJobReporter::Start(report, client_);
  RunReport result;
  if (!reporter.ok()) {
    result.failure = "usage";
    result.duration = absl::Now() - started;
    return result;
  }
  (*reporter)->SetMigrationsDigest(migrations.digest);
  MeteredObserver observer(**reporter);
  engine::Engine engine(migrations.graph, *std::move(factory), std::move(engine_options), &observer,
                        std::move(lock_factory));
  absl::StatusOr<Direction> direction = DirectionTo(engine, *migrations.graph, target);
  absl::StatusOr<engine::RunResult> run =
      !direction.ok()                       ? absl::StatusOr<engine::RunResult>(direction.status())
      : *direction == Direction::kDowngrade ? engine.Downgrade(target)
                                            : engine.Upgrade(target);
  result.status_written = (*reporter)->Finish(run.status(), run.ok() ? &*run : nullptr).ok();

  result.duration = absl::Now() - started;
  result.lock_wait = observer.LockWait();
  result.applied = observer.applied();
  if (run.ok()) {
    result.outcome =
        run->steps.empty() ? RunReport::Outcome::kAtTarget : RunReport::Outcome::kSucceeded;
    engine::RunResult reading = *run;
    reading.steps.clear();
    reading.from_versions = reading.to_versions;
    result.reading = std::move(reading);
    log::Info("reconciled the MigrationJob", {{"migrationjob", ref},
                                              {"versions", absl::StrJoin(run->to_versions, ",")},
                                              {"applied", absl::StrCat(run->steps.size())},
                                              {"duration", absl::FormatDuration(result.duration)}});
    return result;
  }
  const failure::FailureKind kind = failure::FailureKindOf(run.status());
  result.outcome = kind == failure::FailureKind::kInterrupted ? RunReport::Outcome::kInterrupted
                                                              : RunReport::Outcome::kFailed;
  result.failure = FailureName(kind);
  log::Warning("the MigrationJob's run failed", {{"migrationjob", ref},
                                                 {"kind", result.failure},
                                                 {"error", std::string(run.status().message())}});
  return result;
}

}  // namespace sluice::operator_
