#include "pkg/operator/operator.h"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/failure.h"
#include "pkg/kube/informer.h"
#include "pkg/kube/leader_election.h"
#include "pkg/metrics/metrics.h"
#include "pkg/operator/work_queue.h"

namespace sluice::operator_ {
namespace {

std::string KeyOf(const std::string& ns, const std::string& name) {
  return absl::StrCat(ns, "/", name);
}

kube::ObjectRef RefOf(const std::string& key) {
  std::pair<std::string, std::string> parts = absl::StrSplit(key, absl::MaxSplits('/', 1));
  return kube::ObjectRef{parts.first, parts.second};
}

const char* OutcomeName(RunReport::Outcome outcome) {
  switch (outcome) {
    case RunReport::Outcome::kAtTarget:
      return "at_target";
    case RunReport::Outcome::kSucceeded:
      return "succeeded";
    case RunReport::Outcome::kFailed:
      return "failed";
    case RunReport::Outcome::kInterrupted:
      return "interrupted";
    case RunReport::Outcome::kConfigError:
      return "config_error";
  }
  return "failed";
}

// What the operator remembers of a job between reconciles.
struct JobMemo {
  std::string content_version;  // the referenced ConfigMaps' resourceVersions, when all known
  std::string digest;           // of that content
  std::optional<FailedAttempt> failed;
  // This operator's last successful run: the status it wrote may reach the cache after a reconcile
  // that the run's own earlier status writes queued, and that reconcile must not run the job
  // again; nor may one that other content queued miss that the content changed.
  std::optional<AppliedRun> succeeded;
};

// A database found at a target by a run of this operator, for the jobs of the same database,
// content and target that come right after it (fifty jobs of one application, one database):
// for kReadingLifetime they report this reading instead of connecting and reading the version
// table again. A runner elsewhere could move the database within that moment; the next change
// of the job, its content or its Secret runs it for real.
struct DatabaseReading {
  std::string wanted;  // the Secrets' versions, tables, digest and target it was taken for
  engine::RunResult result;
  absl::Time read_at;
  std::string read_by;  // the job whose run read it
};
constexpr absl::Duration kReadingLifetime = absl::Seconds(2);

class Operator {
 public:
  Operator(const OperatorOptions& options, kube::Client& client, ConnectorFactory connect,
           std::shared_ptr<base::StopRequest> stop)
      : options_(options),
        client_(client),
        stop_(std::move(stop)),
        reconciler_(client, std::move(connect), ReconcilerWith(options)),
        queue_(options.retry_initial, options.retry_max),
        jobs_(client, InformerOptionsOf(options), JobHandlers()),
        config_maps_(client, kube::CoreResource::kConfigMaps, InformerOptionsOf(options),
                     ReferenceHandlers(kube::CoreResource::kConfigMaps)),
        secrets_(client, kube::CoreResource::kSecrets, InformerOptionsOf(options),
                 ReferenceHandlers(kube::CoreResource::kSecrets)) {}

  absl::Status Run() {
    SLUICE_RETURN_IF_ERROR(StartHttp());
    if (stop_ != nullptr) {
      stop_->TakeUp();
      stop_->SetOnStop([this] { RequestShutdown("asked to stop"); });
      stop_->SetCanceller([this] { CancelRuns(); });
      if (stop_->stopped()) RequestShutdown("asked to stop");
    }
    log::Info("operator starting",
              {{"namespace", options_.namespace_.empty() ? "(all)" : options_.namespace_},
               {"identity", options_.identity},
               {"max_concurrent", absl::StrCat(options_.max_concurrent)},
               {"leader_elect", options_.leader_elect ? "true" : "false"}});
    jobs_.Start();
    config_maps_.Start();
    secrets_.Start();

    std::unique_ptr<kube::LeaderElector> elector;
    if (options_.leader_elect) {
      kube::LeaderElectionOptions election;
      election.lease = options_.lease;
      election.identity = absl::StrCat(options_.identity, "_", RandomSuffix());
      election.lease_duration = options_.lease_duration;
      election.renew_deadline = options_.renew_deadline;
      election.retry_period = options_.retry_period;
      elector = std::make_unique<kube::LeaderElector>(
          client_, election, [this] { StartWorkers(); }, [this] { LostLeadership(); });
      elector->Start();
    } else {
      StartWorkers();
    }

    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&shutting_down_));
    }
    const absl::Status ended = Shutdown();
    if (elector != nullptr) {
      // Released only after the runs ended: a standby then starts at once, and no run of ours
      // overlaps its runs (the database lock guards that too).
      elector->Stop(/*release=*/!lost_leadership());
      metrics_.SetLeader(false);
    }
    jobs_.Stop();
    config_maps_.Stop();
    secrets_.Stop();
    if (health_server_ != nullptr) health_server_->Stop();
    if (metrics_server_ != nullptr) metrics_server_->Stop();
    if (stop_ != nullptr) stop_->GiveUp();
    log::Info("operator stopped",
              {{"outcome", ended.ok() ? "clean" : std::string(ended.message())}});
    return ended;
  }

 private:
  static ReconcilerOptions ReconcilerWith(const OperatorOptions& options) {
    ReconcilerOptions reconciler = options.reconciler;
    reconciler.identity = options.identity;
    return reconciler;
  }

  static kube::InformerOptions InformerOptionsOf(const OperatorOptions& options) {
    kube::InformerOptions informer;
    informer.namespace_ = options.namespace_;
    informer.watch_timeout = options.watch_timeout;
    informer.initial_backoff = options.informer_initial_backoff;
    informer.max_backoff = options.informer_max_backoff;
    return informer;
  }

  static std::string RandomSuffix() {
    std::random_device random;
    return absl::StrCat(absl::Hex(random(), absl::kZeroPad8));
  }

  kube::InformerHandlers JobHandlers() {
    kube::InformerHandlers handlers;
    handlers.on_add = [this](const kube::MigrationJob& job) { Enqueue(job); };
    handlers.on_update = [this](const kube::MigrationJob&, const kube::MigrationJob& job) {
      Enqueue(job);
    };
    handlers.on_delete = [this](const kube::MigrationJob& job) {
      const std::string key = KeyOf(job.metadata.namespace_, job.metadata.name);
      absl::MutexLock lock(&mu_);
      memos_.erase(key);
    };
    return handlers;
  }

  kube::InformerHandlersOf<kube::ObjectMeta> ReferenceHandlers(kube::CoreResource resource) {
    kube::InformerHandlersOf<kube::ObjectMeta> handlers;
    auto changed = [this, resource](const kube::ObjectMeta& meta) {
      EnqueueReferencing(resource, meta);
    };
    handlers.on_add = changed;
    handlers.on_update = [changed](const kube::ObjectMeta&, const kube::ObjectMeta& meta) {
      changed(meta);
    };
    handlers.on_delete = changed;
    return handlers;
  }

  void Enqueue(const kube::MigrationJob& job) {
    queue_.Add(KeyOf(job.metadata.namespace_, job.metadata.name));
    metrics_.SetQueueDepth(queue_.Len() + queue_.Delayed());
  }

  static bool References(const kube::MigrationJob& job, kube::CoreResource resource,
                         const std::string& name) {
    if (resource == kube::CoreResource::kConfigMaps) {
      return std::find(job.spec.config_maps.begin(), job.spec.config_maps.end(), name) !=
             job.spec.config_maps.end();
    }
    return job.spec.url_secret_name == name || job.spec.lock_url_secret_name == name;
  }

  // Queues the jobs that name the ConfigMap or Secret `meta`.
  void EnqueueReferencing(kube::CoreResource resource, const kube::ObjectMeta& meta) {
    for (const kube::MigrationJob& job : jobs_.List()) {
      if (job.metadata.namespace_ == meta.namespace_ && References(job, resource, meta.name)) {
        Enqueue(job);
      }
    }
  }

  // The resourceVersions of the objects of `resource` named by `names`, from the informer's
  // cache; empty when one is not cached (then the content has to be read).
  std::string VersionsOf(const kube::ObjectMetaInformer& informer, const std::string& ns,
                         const std::vector<std::string>& names) {
    std::string versions;
    for (const std::string& name : names) {
      if (name.empty()) continue;
      std::optional<kube::ObjectMeta> meta = informer.Get({ns, name});
      if (!meta.has_value()) return "";
      absl::StrAppend(&versions, name, "@", meta->resource_version, ";");
    }
    return versions;
  }

  absl::Status StartHttp() {
    std::map<std::string, metrics::HttpHandler> health = {
        {"/healthz",
         [] {
           return metrics::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
         }},
        {"/readyz", [this] {
           // Ready once the MigrationJobs are listed: a standby is ready too, so that a rollout
           // does not wait for the leader's Lease.
           const bool synced = jobs_.WaitForSync(absl::InfinitePast());
           return synced ? metrics::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}
                         : metrics::HttpResponse{503, "text/plain; charset=utf-8",
                                                 "the MigrationJobs are not listed yet\n"};
         }}};
    std::map<std::string, metrics::HttpHandler> exposition = {
        {"/metrics", [this] {
           return metrics::HttpResponse{200, metrics::kPrometheusTextContentType,
                                        metrics_.RenderText()};
         }}};
    if (!options_.health_addr.empty() && options_.health_addr == options_.metrics_addr) {
      health.insert(exposition.begin(), exposition.end());
      exposition.clear();
    }
    if (!options_.health_addr.empty()) {
      absl::StatusOr<std::unique_ptr<metrics::HttpServer>> server =
          metrics::HttpServer::Start(options_.health_addr, health);
      if (!server.ok()) {
        return absl::Status(server.status().code(),
                            absl::StrCat("--health-addr: ", server.status().message()));
      }
      health_server_ = *std::move(server);
    }
    if (!options_.metrics_addr.empty() && !exposition.empty()) {
      absl::StatusOr<std::unique_ptr<metrics::HttpServer>> server =
          metrics::HttpServer::Start(options_.metrics_addr, exposition);
      if (!server.ok()) {
        return absl::Status(server.status().code(),
                            absl::StrCat("--metrics-addr: ", server.status().message()));
      }
      metrics_server_ = *std::move(server);
    }
    return absl::OkStatus();
  }

  void StartWorkers() {
    absl::MutexLock lock(&mu_);
    if (shutting_down_ || !workers_.empty()) return;
    log::Info("leading: reconciling MigrationJobs", {{"identity", options_.identity}});
    metrics_.SetLeader(true);
    for (int i = 0; i < std::max(1, options_.max_concurrent); ++i) {
      workers_.emplace_back([this] { Work(); });
    }
  }

  // The elector's on_stopped_leading: also called when Run releases the Lease at the end, which is
  // no loss.
  void LostLeadership() {
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return;
    }
    log::Error(
        "lost the leader election Lease; stopping so that this replica restarts as a standby",
        {{"lease", KeyOf(options_.lease.namespace_, options_.lease.name)}});
    metrics_.SetLeader(false);
    {
      absl::MutexLock lock(&mu_);
      lost_leadership_ = true;
    }
    RequestShutdown("lost the leader election");
  }

  bool lost_leadership() {
    absl::MutexLock lock(&mu_);
    return lost_leadership_;
  }

  void RequestShutdown(absl::string_view why) {
    queue_.ShutDown();
    std::vector<std::shared_ptr<base::StopRequest>> runs;
    {
      absl::MutexLock lock(&mu_);
      if (!shutting_down_) log::Info("operator stopping", {{"why", std::string(why)}});
      shutting_down_ = true;
      for (const auto& [key, run] : runs_) runs.push_back(run);
    }
    for (const auto& run : runs) run->Stop();
  }

  void CancelRuns() {
    std::vector<std::shared_ptr<base::StopRequest>> runs;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      for (const auto& [key, run] : runs_) runs.push_back(run);
    }
    for (const auto& run : runs) run->Cancel();
  }

  // Waits for the workers: `shutdown_grace` for runs to stop at a safe point, then cancels them
  // and waits `cancel_grace` more.
  absl::Status Shutdown() {
    bool cancelled = false;
    {
      absl::MutexLock lock(&mu_);
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return runs_.empty(); };
      if (!mu_.AwaitWithTimeout(absl::Condition(&idle), options_.shutdown_grace)) {
        cancelled = true;
      }
      cancelled = cancelled || cancelled_;
    }
    if (cancelled) {
      log::Warning("runs did not stop within the grace period; cancelling their statements",
                   {{"grace", absl::FormatDuration(options_.shutdown_grace)}});
      CancelRuns();
      absl::MutexLock lock(&mu_);
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return runs_.empty(); };
      mu_.AwaitWithTimeout(absl::Condition(&idle), options_.cancel_grace);
    }
    std::vector<std::thread> workers;
    {
      absl::MutexLock lock(&mu_);
      workers.swap(workers_);
    }
    for (std::thread& worker : workers) worker.join();
    if (lost_leadership()) {
      return absl::AbortedError("lost the leader election Lease");
    }
    if (cancelled) {
      return failure::WithFailureKind(
          absl::CancelledError("runs were cancelled at shutdown; their transactions rolled back"),
          failure::FailureKind::kInterrupted);
    }
    return absl::OkStatus();
  }

  void Work() {
    while (std::optional<std::string> key = queue_.Get()) {
      metrics_.SetQueueDepth(queue_.Len() + queue_.Delayed());
      Reconcile(*key);
      queue_.Done(*key);
    }
  }

  JobMemo Memo(const std::string& key) {
    absl::MutexLock lock(&mu_);
    return memos_[key];
  }
  void SetMemo(const std::string& key, JobMemo memo) {
    absl::MutexLock lock(&mu_);
    memos_[key] = std::move(memo);
  }

  // Records a failed attempt and schedules its retry.
  void Failed(const std::string& key, JobMemo memo, const kube::MigrationJob& job,
              const std::string& content, const std::string& secrets_version) {
    const absl::Duration delay = queue_.AddRateLimited(key);
    memo.failed =
        FailedAttempt{job.metadata.generation, content, secrets_version, absl::Now() + delay};
    SetMemo(key, std::move(memo));
    log::Info("will retry the MigrationJob",
              {{"migrationjob", key}, {"in", absl::FormatDuration(delay)}});
  }

  void Reconcile(const std::string& key) {
    std::optional<kube::MigrationJob> job = jobs_.Get(RefOf(key));
    if (!job.has_value()) {
      queue_.Forget(key);
      return;
    }
    if (job->spec.suspend) return;
    const std::string& ns = job->metadata.namespace_;
    const std::string content_version = VersionsOf(config_maps_, ns, job->spec.config_maps);
    const std::string secrets_version =
        VersionsOf(secrets_, ns, {job->spec.url_secret_name, job->spec.lock_url_secret_name});
    JobMemo memo = Memo(key);
    const absl::Time now = absl::Now();

    std::optional<LoadedMigrations> loaded;
    std::string digest;
    if (!content_version.empty() && memo.content_version == content_version) {
      digest = memo.digest;
    } else {
      absl::StatusOr<LoadedMigrations> read =
          LoadMigrations(client_, *job, absl::Now() + options_.reconciler.api_timeout);
      if (!read.ok()) {
        std::optional<ConfigProblem> problem = ConfigProblemOf(read.status());
        if (!problem.has_value()) {  // the API server: try again later
          log::Warning("cannot read the MigrationJob's ConfigMaps; will retry",
                       {{"migrationjob", key}, {"error", std::string(read.status().message())}});
          queue_.AddRateLimited(key);
          return;
        }
        const std::string content =
            absl::StrCat("problem:", problem->reason, ":", problem->message);
        if (memo.failed.has_value() && memo.failed->generation == job->metadata.generation &&
            memo.failed->digest == content && memo.failed->secrets_version == secrets_version &&
            now < memo.failed->retry_at) {
          queue_.AddAfter(key, memo.failed->retry_at - now);
          return;
        }
        Record(reconciler_.ReportProblem(*job, *problem));
        memo.content_version.clear();
        Failed(key, std::move(memo), *job, content, secrets_version);
        return;
      }
      memo.content_version = content_version;
      memo.digest = read->digest;
      digest = read->digest;
      loaded = *std::move(read);
    }

    if (memo.succeeded.has_value() && memo.succeeded->generation == job->metadata.generation &&
        memo.succeeded->digest == digest) {
      SetMemo(key, std::move(memo));
      return;
    }
    const Decision decision =
        Decide(*job, digest, secrets_version, memo.failed, memo.succeeded, now);
    switch (decision.action) {
      case Decision::Action::kNothing:
        if (job->status.has_value() && job->status->phase == "Succeeded") {
          memo.failed.reset();
          queue_.Forget(key);
        }
        SetMemo(key, std::move(memo));
        return;
      case Decision::Action::kRetryLater:
        queue_.AddAfter(key, decision.retry_at - now);
        SetMemo(key, std::move(memo));
        return;
      case Decision::Action::kRun:
        break;
    }
    if (!loaded.has_value()) {
      absl::StatusOr<LoadedMigrations> read =
          LoadMigrations(client_, *job, absl::Now() + options_.reconciler.api_timeout);
      if (!read.ok()) {
        // Changed since the versions were cached: reconcile again from the top.
        memo.content_version.clear();
        SetMemo(key, std::move(memo));
        queue_.AddRateLimited(key);
        return;
      }
      digest = read->digest;
      loaded = *std::move(read);
    }
    // One run a database at a time: a second job on a database that a run of ours is migrating
    // would only hold a worker while it waits for the database's lock, so it waits off the
    // workers and is queued again when that run ends (the lock still guards against runners
    // elsewhere).
    const std::string database = DatabaseKey(*job);
    // What a reading of the database must have been taken for to stand for this job's run: the
    // same Secrets' versions (so the same connection string), tables, content and target.
    const std::string wanted =
        absl::StrCat(secrets_version, "|", job->spec.schema, "|", job->spec.version_table, "|",
                     digest, "|", job->spec.target.empty() ? "head" : job->spec.target);
    auto run_stop = std::make_shared<base::StopRequest>();
    std::optional<DatabaseReading> reading;
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return;
      auto found = readings_.find(database);
      if (found != readings_.end() && !secrets_version.empty() && found->second.wanted == wanted &&
          absl::Now() - found->second.read_at < kReadingLifetime &&
          !databases_in_use_.count(database)) {
        reading = found->second;
      } else {
        auto [busy, free] = databases_in_use_.emplace(database, key);
        if (!free) {
          parked_[database].insert(key);
          memos_[key] = std::move(memo);
          log::Debug("the MigrationJob's database is being migrated by another run; waiting",
                     {{"migrationjob", key}, {"run", busy->second}});
          return;
        }
        runs_[key] = run_stop;
        metrics_.SetRunning(static_cast<int64_t>(runs_.size()));
      }
    }
    RunReport report;
    if (reading.has_value()) {
      log::Info("the database was found at the target moments ago; reporting that reading",
                {{"migrationjob", key},
                 {"read_by", reading->read_by},
                 {"age", absl::FormatDuration(absl::Now() - reading->read_at)}});
      report = reconciler_.ReportReading(*job, *loaded, decision.content_changed, reading->result);
    } else {
      log::Info("reconciling the MigrationJob", {{"migrationjob", key}, {"why", decision.why}});
      report = reconciler_.Run(*job, *loaded, decision.content_changed, run_stop);
      std::set<std::string> waiting;
      {
        absl::MutexLock lock(&mu_);
        runs_.erase(key);
        databases_in_use_.erase(database);
        waiting.swap(parked_[database]);
        parked_.erase(database);
        metrics_.SetRunning(static_cast<int64_t>(runs_.size()));
        if (report.reading.has_value()) {
          readings_[database] = DatabaseReading{wanted, *report.reading, absl::Now(), key};
        } else {
          readings_.erase(database);
        }
      }
      for (const std::string& parked : waiting) queue_.Add(parked);
      log::Info("run ended", {{"migrationjob", key}, {"outcome", OutcomeName(report.outcome)}});
    }
    Record(report);
    if ((report.outcome == RunReport::Outcome::kAtTarget ||
         report.outcome == RunReport::Outcome::kSucceeded) &&
        report.status_written) {
      memo.failed.reset();
      memo.succeeded = AppliedRun{job->metadata.generation, digest};
      queue_.Forget(key);
      SetMemo(key, std::move(memo));
      return;
    }
    if (report.outcome == RunReport::Outcome::kInterrupted) {
      SetMemo(key, std::move(memo));
      return;  // shutting down; the next leader runs it again
    }
    memo.succeeded.reset();
    Failed(key, std::move(memo), *job, digest, secrets_version);
  }

  // The database a job migrates, as far as the operator can tell without reading Secrets: the
  // Secret (and key) its URL comes from.
  static std::string DatabaseKey(const kube::MigrationJob& job) {
    return absl::StrCat(job.metadata.namespace_, "/", job.spec.url_secret_name, "/",
                        job.spec.url_secret_key);
  }

  void Record(const RunReport& report) {
    metrics_.RecordRun(OutcomeName(report.outcome), report.duration);
    if (report.applied > 0) metrics_.AddAppliedRevisions(report.applied);
    if (!report.failure.empty() && report.outcome != RunReport::Outcome::kAtTarget &&
        report.outcome != RunReport::Outcome::kSucceeded) {
      metrics_.RecordFailure(report.failure);
    }
    if (report.lock_wait.has_value()) metrics_.ObserveLockWait(*report.lock_wait);
    metrics_.SetQueueDepth(queue_.Len() + queue_.Delayed());
  }

  const OperatorOptions options_;
  kube::Client& client_;
  const std::shared_ptr<base::StopRequest> stop_;
  metrics::OperatorMetrics metrics_;
  Reconciler reconciler_;
  WorkQueue queue_;
  kube::MigrationJobInformer jobs_;
  kube::ObjectMetaInformer config_maps_;
  kube::ObjectMetaInformer secrets_;
  std::unique_ptr<metrics::HttpServer> health_server_;
  std::unique_ptr<metrics::HttpServer> metrics_server_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool lost_leadership_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<base::StopRequest>> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, JobMemo> memos_ ABSL_GUARDED_BY(mu_);
  // Database (DatabaseKey) -> the job whose run migrates it; and the jobs waiting for it.
  std::map<std::string, std::string> databases_in_use_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>> parked_ ABSL_GUARDED_BY(mu_);
  // Database (DatabaseKey) -> what this operator's last run there read at its end.
  std::map<std::string, DatabaseReading> readings_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status Run(const OperatorOptions& options, kube::Client& client, ConnectorFactory connect,
                 std::shared_ptr<base::StopRequest> stop) {
  Operator op(options, client, std::move(connect), std::move(stop));
  return op.Run();
}

}  // namespace sluice::operator_
