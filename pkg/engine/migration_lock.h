// Internal to pkg/engine: the migration lock in its two modes (--lock-mode), so that every command
// that changes the database (upgrade, downgrade, stamp, resolve) and every caller of the engine
// gets both without a second copy.
//
// - session: a session-level advisory lock on the lock connection. Before relying on it, sluice
//   checks that the lock connection is one server session; behind a pooler in transaction or
//   statement mode it is not, and the lock would be lost between transactions.
// - lease: a row in <schema>.sluice_lock taken with one atomic statement, renewed by a heartbeat
//   thread on a connection of its own, and checked inside each revision's transaction before it
//   commits. Nothing depends on a server session, so it works through any pooler.
#ifndef SLUICE_PKG_ENGINE_MIGRATION_LOCK_H_
#define SLUICE_PKG_ENGINE_MIGRATION_LOCK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pkg/engine/engine.h"
#include "pkg/store/store.h"

namespace sluice::engine {

class MigrationLock {
 public:
  virtual ~MigrationLock() = default;

  // Returns the connection that runs the revisions, opening it on first use.
  using WorkConnection = std::function<absl::StatusOr<store::Store*>()>;

  // Tries once to take the lock through `control` (the lock connection); `work` gives the
  // connection that runs the revisions. Returns whether the lock is now held.
  virtual absl::StatusOr<bool> TryAcquire(store::Store& control, const WorkConnection& work) = 0;
  // Returns who holds the lock, if anyone else does (for logs and the observer).
  virtual absl::StatusOr<std::optional<store::LockHolder>> Holder(store::Store& control) = 0;
  // Whether waiters can be woken by LISTEN/NOTIFY (not through a transaction pooler).
  virtual bool WakesWaiters() const = 0;
  // Whether a session-level setting made on the work connection stays with it (the work
  // connection is one server session), for statements that cannot run in a transaction.
  virtual bool SessionSettingsStick() const = 0;

  // Returns OK while the lock is held; once it is lost (a lease not renewed in time, or taken
  // over), an error of kind kLockTimeout: the run stops before its next step.
  virtual absl::Status CheckHeld() = 0;
  // Called inside each transaction that records a step, just before COMMIT: returns an error when
  // this runner no longer holds the lock, so that the transaction rolls back.
  virtual absl::Status CheckHeldInTransaction(store::Store& work) = 0;

  // Releases the lock, if held.
  virtual void Release(store::Store& control) = 0;
};

// The LISTEN/NOTIFY channel on which a released advisory lock `key` wakes its waiters.
std::string LockChannel(int64_t key);

// The session-level advisory lock `key`. `work_shares_lock_target`: the work connection goes
// where the lock connection goes (no --lock-database-url), so once the lock
// connection is shown to be one server session, so is the work connection.
std::unique_ptr<MigrationLock> NewSessionLock(int64_t key, bool work_shares_lock_target);

// The lease `key` in `tables.schema`.sluice_lock, held as `holder_prefix` plus a random suffix for
// `ttl`; `heartbeat_factory` opens the heartbeat's connection.
std::unique_ptr<MigrationLock> NewLeaseLock(const store::TableNames& tables, int64_t key,
                                            const std::string& holder_prefix, absl::Duration ttl,
                                            StoreFactory heartbeat_factory);

}  // namespace sluice::engine

#endif  // SLUICE_PKG_ENGINE_MIGRATION_LOCK_H_
