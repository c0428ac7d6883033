// A MigrationJob informer: list-then-watch (kube-api.md section 3, client-go's Reflector) on a
// thread of its own, keeping a cache of the objects and calling handlers for each change.
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

struct InformerHandlers {
  std::function<void(const MigrationJob&)> on_add;
  std::function<void(const MigrationJob& old_job, const MigrationJob& new_job)> on_update;
  std::function<void(const MigrationJob&)> on_delete;  // the last state the informer knew
};

// What the informer did so far, for logs and tests.
struct InformerStats {
  int lists = 0;    // complete LISTs (the first one included)
  int watches = 0;  // watches opened
  int expired = 0;  // 410 answers that made it list again
  int errors = 0;   // failed LISTs and watches (retried with backoff)
};

class MigrationJobInformer {
 public:
  // `client` must outlive the informer.
  MigrationJobInformer(Client& client, InformerOptions options, InformerHandlers handlers);
  // Stops the informer.
  ~MigrationJobInformer();

  MigrationJobInformer(const MigrationJobInformer&) = delete;
  MigrationJobInformer& operator=(const MigrationJobInformer&) = delete;

  // Starts the thread. Call once.
  void Start();
  // Stops the thread and waits for it. Idempotent.
  void Stop();

  // Waits until the first LIST has filled the cache; returns whether it did by `deadline`.
  bool WaitForSync(absl::Time deadline) const;

  // Returns the cached object `ref`, if any.
  std::optional<MigrationJob> Get(const ObjectRef& ref) const;
  // Returns the cached objects, ordered by namespace and name.
  std::vector<MigrationJob> List() const;
  // Returns the resourceVersion the informer would resume watching from.
  std::string ResourceVersion() const;
  InformerStats Stats() const;

 private:
  void Run();
  // Lists every page; returns false when stopped.
  bool ListAndReplace();
  void Apply(const WatchEvent<MigrationJob>& event);
  // Waits `d` unless stopped first; returns false when stopped.
  bool Wait(absl::Duration d);
  bool stopped() const;

  Client& client_;
  const InformerOptions options_;
  const InformerHandlers handlers_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::pair<std::string, std::string>, MigrationJob> cache_ ABSL_GUARDED_BY(mu_);
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
  InformerStats stats_ ABSL_GUARDED_BY(mu_);
  WatchStream<MigrationJob>* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // the one open, to cancel
};

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_INFORMER_H_
