#include "pkg/kube/informer.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pkg/base/backoff.h"
#include "pkg/base/log.h"

namespace sluice::kube {
namespace {

// A LIST that pages forever means a server that hands out continue tokens in a circle.
constexpr int kMaxPages = 100000;

std::pair<std::string, std::string> KeyOf(const MigrationJob& job) {
  return {job.metadata.namespace_, job.metadata.name};
}

}  // namespace

MigrationJobInformer::MigrationJobInformer(Client& client, InformerOptions options,
                                           InformerHandlers handlers)
    : client_(client), options_(std::move(options)), handlers_(std::move(handlers)) {}

MigrationJobInformer::~MigrationJobInformer() { Stop(); }

void MigrationJobInformer::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopped_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void MigrationJobInformer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    if (stream_ != nullptr) stream_->Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool MigrationJobInformer::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

bool MigrationJobInformer::Wait(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopped_), d);
  return !stopped_;
}

bool MigrationJobInformer::WaitForSync(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&synced_), deadline);
  return synced_;
}

std::optional<MigrationJob> MigrationJobInformer::Get(const ObjectRef& ref) const {
  absl::MutexLock lock(&mu_);
  auto it = cache_.find({ref.namespace_, ref.name});
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::vector<MigrationJob> MigrationJobInformer::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<MigrationJob> out;
  out.reserve(cache_.size());
  for (const auto& [key, job] : cache_) out.push_back(job);
  return out;
}

std::string MigrationJobInformer::ResourceVersion() const {
  absl::MutexLock lock(&mu_);
  return resource_version_;
}

InformerStats MigrationJobInformer::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void MigrationJobInformer::Run() {
  base::Backoff backoff(options_.initial_backoff, options_.max_backoff);
  bool need_list = true;
  while (!stopped()) {
    if (need_list) {
      if (!ListAndReplace()) {
        if (!Wait(backoff.Next())) return;
        continue;
      }
      need_list = false;
      backoff.Reset();
    }
    WatchOptions watch;
    watch.namespace_ = options_.namespace_;
    watch.resource_version = ResourceVersion();
    watch.allow_bookmarks = true;
    watch.timeout = options_.watch_timeout;
    absl::StatusOr<std::unique_ptr<WatchStream<MigrationJob>>> stream =
        client_.WatchMigrationJobs(watch, absl::Now() + options_.request_timeout);
    absl::Status ended;
    if (stream.ok()) {
      {
        absl::MutexLock lock(&mu_);
        ++stats_.watches;
        if (stopped_) return;
        stream_ = stream->get();
      }
      ended = (*stream)->ForEach([this](const WatchEvent<MigrationJob>& event) {
        Apply(event);
        return true;
      });
      {
        absl::MutexLock lock(&mu_);
        stream_ = nullptr;
      }
      stream->reset();
    } else {
      ended = stream.status();
    }
    if (stopped()) return;
    if (ended.ok()) {
      // The server ended the stream (timeoutSeconds, a restart): watch again from where it was.
      backoff.Reset();
      continue;
    }
    if (IsResourceExpired(ended)) {
      log::Info("the MigrationJob watch's resourceVersion expired; listing again",
                {{"error", std::string(ended.message())}});
      absl::MutexLock lock(&mu_);
      ++stats_.expired;
      need_list = true;
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      ++stats_.errors;
    }
    const absl::Duration wait = backoff.Next();
    log::Warning("watching MigrationJobs failed; watching again",
                 {{"error", std::string(ended.message())}, {"wait", absl::FormatDuration(wait)}});
    if (!Wait(wait)) return;
  }
}

bool MigrationJobInformer::ListAndReplace() {
  ListOptions list;
  list.namespace_ = options_.namespace_;
  list.limit = options_.page_size;
  std::vector<MigrationJob> items;
  std::string version;
  for (int page = 0; page < kMaxPages; ++page) {
    if (stopped()) return false;
    absl::StatusOr<MigrationJobList> got =
        client_.ListMigrationJobs(list, absl::Now() + options_.request_timeout);
    if (!got.ok()) {
      absl::MutexLock lock(&mu_);
      ++stats_.errors;
      if (IsResourceExpired(got.status())) ++stats_.expired;
      log::Warning("listing MigrationJobs failed",
                   {{"error", std::string(got.status().message())}});
      return false;  // the caller backs off and lists again from the first page
    }
    if (page == 0) version = got->resource_version;
    for (MigrationJob& job : got->items) items.push_back(std::move(job));
    if (got->continue_token.empty()) break;
    list.continue_token = got->continue_token;
  }
  // What changed against the cache, told to the handlers outside the lock.
  std::vector<MigrationJob> added;
  std::vector<std::pair<MigrationJob, MigrationJob>> updated;
  std::vector<MigrationJob> deleted;
  {
    absl::MutexLock lock(&mu_);
    std::map<std::pair<std::string, std::string>, MigrationJob> fresh;
    for (MigrationJob& job : items) {
      auto key = KeyOf(job);
      auto old = cache_.find(key);
      if (old == cache_.end()) {
        added.push_back(job);
      } else if (old->second.metadata.resource_version != job.metadata.resource_version) {
        updated.emplace_back(old->second, job);
      }
      fresh.emplace(key, std::move(job));
    }
    for (const auto& [key, job] : cache_) {
      if (!fresh.count(key)) deleted.push_back(job);
    }
    cache_ = std::move(fresh);
    resource_version_ = version;
    ++stats_.lists;
    synced_ = true;
  }
  for (const MigrationJob& job : added) {
    if (handlers_.on_add) handlers_.on_add(job);
  }
  for (const auto& [old_job, new_job] : updated) {
    if (handlers_.on_update) handlers_.on_update(old_job, new_job);
  }
  for (const MigrationJob& job : deleted) {
    if (handlers_.on_delete) handlers_.on_delete(job);
  }
  return true;
}

void MigrationJobInformer::Apply(const WatchEvent<MigrationJob>& event) {
  std::optional<MigrationJob> old_job;
  bool existed = false;
  {
    absl::MutexLock lock(&mu_);
    if (!event.object.metadata.resource_version.empty()) {
      resource_version_ = event.object.metadata.resource_version;
    }
    if (event.type == WatchEventType::kBookmark) return;
    const auto key = KeyOf(event.object);
    auto it = cache_.find(key);
    existed = it != cache_.end();
    if (existed) old_job = it->second;
    if (event.type == WatchEventType::kDeleted) {
      if (existed) cache_.erase(it);
    } else {
      cache_[key] = event.object;
    }
  }
  if (event.type == WatchEventType::kDeleted) {
    if (handlers_.on_delete) handlers_.on_delete(existed ? *old_job : event.object);
  } else if (existed) {
    if (handlers_.on_update) handlers_.on_update(*old_job, event.object);
  } else if (handlers_.on_add) {
    handlers_.on_add(event.object);
  }
}

}  // namespace sluice::kube
