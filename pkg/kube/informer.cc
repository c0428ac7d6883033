#include "pkg/kube/informer.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pkg/base/backoff.h"
#include "pkg/base/log.h"

namespace sluice::kube {
namespace {

// A LIST that pages forever means a server that hands out continue tokens in a circle.
constexpr int kMaxPages = 100000;

const ObjectMeta& MetaOf(const MigrationJob& job) { return job.metadata; }
const ObjectMeta& MetaOf(const ObjectMeta& meta) { return meta; }

template <typename T>
std::pair<std::string, std::string> KeyOf(const T& object) {
  return {MetaOf(object).namespace_, MetaOf(object).name};
}

InformerSource<MigrationJob> MigrationJobSource(Client& client) {
  InformerSource<MigrationJob> source;
  source.what = "migrationjobs";
  source.list = [&client](
                    const ListOptions& options,
                    absl::Time deadline) -> absl::StatusOr<InformerSource<MigrationJob>::Page> {
    absl::StatusOr<MigrationJobList> list = client.ListMigrationJobs(options, deadline);
    if (!list.ok()) return list.status();
    return InformerSource<MigrationJob>::Page{
        std::move(list->resource_version), std::move(list->continue_token), std::move(list->items)};
  };
  source.watch = [&client](const WatchOptions& options, absl::Time deadline) {
    return client.WatchMigrationJobs(options, deadline);
  };
  return source;
}

InformerSource<ObjectMeta> ObjectMetaSource(Client& client, CoreResource resource) {
  InformerSource<ObjectMeta> source;
  source.what = resource == CoreResource::kConfigMaps ? "configmaps" : "secrets";
  source.list = [&client, resource](
                    const ListOptions& options,
                    absl::Time deadline) -> absl::StatusOr<InformerSource<ObjectMeta>::Page> {
    absl::StatusOr<ObjectMetaList> list = client.ListObjectMeta(resource, options, deadline);
    if (!list.ok()) return list.status();
    return InformerSource<ObjectMeta>::Page{
        std::move(list->resource_version), std::move(list->continue_token), std::move(list->items)};
  };
  source.watch = [&client, resource](const WatchOptions& options, absl::Time deadline) {
    return client.WatchObjectMeta(resource, options, deadline);
  };
  return source;
}

}  // namespace

template <typename T>
Informer<T>::Informer(InformerSource<T> source, InformerOptions options,
                      InformerHandlersOf<T> handlers)
    : source_(std::move(source)), options_(std::move(options)), handlers_(std::move(handlers)) {}

template <typename T>
Informer<T>::~Informer() {
  Stop();
}

template <typename T>
void Informer<T>::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopped_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

template <typename T>
void Informer<T>::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    if (stream_ != nullptr) stream_->Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

template <typename T>
bool Informer<T>::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

template <typename T>
bool Informer<T>::Wait(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopped_), d);
  return !stopped_;
}

template <typename T>
bool Informer<T>::WaitForSync(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&synced_), deadline);
  return synced_;
}

template <typename T>
std::optional<T> Informer<T>::Get(const ObjectRef& ref) const {
  absl::MutexLock lock(&mu_);
  auto it = cache_.find({ref.namespace_, ref.name});
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

template <typename T>
std::vector<T> Informer<T>::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<T> out;
  out.reserve(cache_.size());
  for (const auto& [key, object] : cache_) out.push_back(object);
  return out;
}

template <typename T>
std::string Informer<T>::ResourceVersion() const {
  absl::MutexLock lock(&mu_);
  return resource_version_;
}

template <typename T>
InformerStats Informer<T>::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

template <typename T>
void Informer<T>::Run() {
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
    absl::StatusOr<std::unique_ptr<WatchStream<T>>> stream =
        source_.watch(watch, absl::Now() + options_.request_timeout);
    absl::Status ended;
    if (stream.ok()) {
      {
        absl::MutexLock lock(&mu_);
        ++stats_.watches;
        if (stopped_) return;
        stream_ = stream->get();
      }
      ended = (*stream)->ForEach([this](const WatchEvent<T>& event) {
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
      log::Info("a watch's resourceVersion expired; listing again",
                {{"resource", source_.what}, {"error", std::string(ended.message())}});
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
    log::Warning("watching failed; watching again", {{"resource", source_.what},
                                                     {"error", std::string(ended.message())},
                                                     {"wait", absl::FormatDuration(wait)}});
    if (!Wait(wait)) return;
  }
}

template <typename T>
bool Informer<T>::ListAndReplace() {
  ListOptions list;
  list.namespace_ = options_.namespace_;
  list.limit = options_.page_size;
  std::vector<T> items;
  std::string version;
  for (int page = 0; page < kMaxPages; ++page) {
    if (stopped()) return false;
    absl::StatusOr<typename InformerSource<T>::Page> got =
        source_.list(list, absl::Now() + options_.request_timeout);
    if (!got.ok()) {
      absl::MutexLock lock(&mu_);
      ++stats_.errors;
      if (IsResourceExpired(got.status())) ++stats_.expired;
      log::Warning("listing failed",
                   {{"resource", source_.what}, {"error", std::string(got.status().message())}});
      return false;  // the caller backs off and lists again from the first page
    }
    if (page == 0) version = got->resource_version;
    for (T& object : got->items) items.push_back(std::move(object));
    if (got->continue_token.empty()) break;
    list.continue_token = got->continue_token;
  }
  // What changed against the cache, told to the handlers outside the lock.
  std::vector<T> added;
  std::vector<std::pair<T, T>> updated;
  std::vector<T> deleted;
  {
    absl::MutexLock lock(&mu_);
    std::map<std::pair<std::string, std::string>, T> fresh;
    for (T& object : items) {
      auto key = KeyOf(object);
      auto old = cache_.find(key);
      if (old == cache_.end()) {
        added.push_back(object);
      } else if (MetaOf(old->second).resource_version != MetaOf(object).resource_version) {
        updated.emplace_back(old->second, object);
      }
      fresh.emplace(key, std::move(object));
    }
    for (const auto& [key, object] : cache_) {
      if (!fresh.count(key)) deleted.push_back(object);
    }
    cache_ = std::move(fresh);
    resource_version_ = version;
    ++stats_.lists;
    synced_ = true;
  }
  for (const T& object : added) {
    if (handlers_.on_add) handlers_.on_add(object);
  }
  for (const auto& [old_object, new_object] : updated) {
    if (handlers_.on_update) handlers_.on_update(old_object, new_object);
  }
  for (const T& object : deleted) {
    if (handlers_.on_delete) handlers_.on_delete(object);
  }
  return true;
}

template <typename T>
void Informer<T>::Apply(const WatchEvent<T>& event) {
  std::optional<T> old_object;
  bool existed = false;
  {
    absl::MutexLock lock(&mu_);
    if (!MetaOf(event.object).resource_version.empty()) {
      resource_version_ = MetaOf(event.object).resource_version;
    }
    if (event.type == WatchEventType::kBookmark) return;
    const auto key = KeyOf(event.object);
    auto it = cache_.find(key);
    existed = it != cache_.end();
    if (existed) old_object = it->second;
    if (event.type == WatchEventType::kDeleted) {
      if (existed) cache_.erase(it);
    } else {
      cache_[key] = event.object;
    }
  }
  if (event.type == WatchEventType::kDeleted) {
    if (handlers_.on_delete) handlers_.on_delete(existed ? *old_object : event.object);
  } else if (existed) {
    if (handlers_.on_update) handlers_.on_update(*old_object, event.object);
  } else if (handlers_.on_add) {
    handlers_.on_add(event.object);
  }
}

template class Informer<MigrationJob>;
template class Informer<ObjectMeta>;

MigrationJobInformer::MigrationJobInformer(Client& client, InformerOptions options,
                                           InformerHandlers handlers)
    : Informer<MigrationJob>(MigrationJobSource(client), std::move(options), std::move(handlers)) {}

ObjectMetaInformer::ObjectMetaInformer(Client& client, CoreResource resource,
                                       InformerOptions options,
                                       InformerHandlersOf<ObjectMeta> handlers)
    : Informer<ObjectMeta>(ObjectMetaSource(client, resource), std::move(options),
                           std::move(handlers)) {}

}  // namespace sluice::kube
