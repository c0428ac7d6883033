// Informers of MigrationJobs and of ConfigMaps' and Secrets' metadata: list-then-watch (kube-api.md
// section 3, client-go's Reflector) on a thread of its own, keeping a cache of the objects and
// calling handlers for each change.
//   - LIST in pages (all pages at the first one's resourceVersion), then WATCH from that
//     version with bookmarks; every event, bookmarks included, advances the version it resumes
//     from;
//   - a stream that ends or drops is watched again from the last version, at once after a clean
//     end, with backoff (pkg/base's Backoff) after an error;
//   - 410 Gone (an expired version or continue token) lists again, and the handlers see what
//     changed meanwhile as adds, updates and deletes against the cache;
//   - Stop() cancels the stream and any backoff wait, and joins the thread; a LIST in flight
//     ends within `request_timeout`.
// Handlers run on the informer's thread, one at a time, in the order of the changes; they must not
// call Stop(). The accessors are thread-safe.
//
// Example:
//   kube::InformerHandlers handlers;
//   handlers.on_add = [&](const kube::MigrationJob& job) { Enqueue(job); };
//   kube::MigrationJobInformer informer(*client, kube::InformerOptions(), handlers);
//   informer.Start();
//   if (!informer.WaitForSync(absl::Now() + absl::Seconds(30))) ...;
#ifndef SLUICE_PKG_KUBE_INFORMER_H_
#define SLUICE_PKG_KUBE_INFORMER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pkg/kube/client.h"
#include "pkg/kube/types.h"

namespace sluice::kube {

struct InformerOptions {
  std::string namespace_;  // empty: all namespaces
  int64_t page_size = 500;
  // timeoutSeconds of each watch; the server ends the stream then and the informer re-watches.
  absl::Duration watch_timeout = absl::Minutes(5);
  // Deadline of each LIST page and each watch's opening.
  absl::Duration request_timeout = absl::Seconds(30);
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(30);
};

template <typename T>
struct InformerHandlersOf {
  std::function<void(const T&)> on_add;
  std::function<void(const T& old_object, const T& new_object)> on_update;
  std::function<void(const T&)> on_delete;  // the last state the informer knew
};
using InformerHandlers = InformerHandlersOf<MigrationJob>;

// What the informer did so far, for logs and tests.
struct InformerStats {
  int lists = 0;    // complete LISTs (the first one included)
  int watches = 0;  // watches opened
  int expired = 0;  // 410 answers that made it list again
  int errors = 0;   // failed LISTs and watches (retried with backoff)
};

// Where an informer's objects come from: one LIST page, one WATCH.
template <typename T>
struct InformerSource {
  struct Page {
    std::string resource_version;
    std::string continue_token;
    std::vector<T> items;
  };
  std::string what;  // the collection, for logs ("migrationjobs")
  std::function<absl::StatusOr<Page>(const ListOptions&, absl::Time deadline)> list;
  std::function<absl::StatusOr<std::unique_ptr<WatchStream<T>>>(const WatchOptions&,
                                                                absl::Time deadline)>
      watch;
};

// The informer of objects of type T (MigrationJob or ObjectMeta; see the two classes below).
template <typename T>
class Informer {
 public:
  Informer(InformerSource<T> source, InformerOptions options, InformerHandlersOf<T> handlers);
  // Stops the informer.
  ~Informer();

  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Starts the thread. Call once.
  void Start();
  // Stops the thread and waits for it. Idempotent.
  void Stop();

  // Waits until the first LIST has filled the cache; returns whether it did by `deadline`.
  bool WaitForSync(absl::Time deadline) const;

  // Returns the cached object `ref`, if any.
  std::optional<T> Get(const ObjectRef& ref) const;
  // Returns the cached objects, ordered by namespace and name.
  std::vector<T> List() const;
  // Returns the resourceVersion the informer would resume watching from.
  std::string ResourceVersion() const;
  InformerStats Stats() const;

 private:
  void Run();
  // Lists every page; returns false when stopped.
  bool ListAndReplace();
  void Apply(const WatchEvent<T>& event);
  // Waits `d` unless stopped first; returns false when stopped.
  bool Wait(absl::Duration d);
  bool stopped() const;

  const InformerSource<T> source_;
  const InformerOptions options_;
  const InformerHandlersOf<T> handlers_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::pair<std::string, std::string>, T> cache_ ABSL_GUARDED_BY(mu_);
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
  InformerStats stats_ ABSL_GUARDED_BY(mu_);
  WatchStream<T>* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // the one open, to cancel
};

extern template class Informer<MigrationJob>;
extern template class Informer<ObjectMeta>;

class MigrationJobInformer : public Informer<MigrationJob> {
 public:
  // `client` must outlive the informer.
  MigrationJobInformer(Client& client, InformerOptions options, InformerHandlers handlers);
};

// The metadata of the ConfigMaps or Secrets of one namespace (or all): what the operator needs to
// notice that an object a MigrationJob names changed, without keeping a Secret's values.
class ObjectMetaInformer : public Informer<ObjectMeta> {
 public:
  // `client` must outlive the informer.
  ObjectMetaInformer(Client& client, CoreResource resource, InformerOptions options,
                     InformerHandlersOf<ObjectMeta> handlers);
};

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_INFORMER_H_
