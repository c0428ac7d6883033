// What `sluice lint` reads of a database while it runs revisions there: the user relations with
// their storage (relfilenode) and scan counters, their columns, and the relation locks a backend
// holds. Implemented by PgStore (pg_store.cc, the only libpq user); a Store that cannot inspect
// returns nullptr from Store::inspector(). Used by one thread at a time, like its Store.
#ifndef SLUICE_PKG_STORE_INSPECT_H_
#define SLUICE_PKG_STORE_INSPECT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::store {

// One relation of a user schema (tables, partitioned tables, materialized views, indexes).
struct RelationState {
  uint32_t oid = 0;
  std::string name;       // as regclass prints it (schema-qualified when off the search_path)
  char kind = 'r';        // pg_class.relkind
  uint32_t table = 0;     // an index's table; the relation itself otherwise
  uint32_t filenode = 0;  // pg_class.relfilenode: changes when the relation is rewritten
  // Scans started on the relation since the server's statistics began: the flushed counter plus
  // this backend's pending one (seq scans for a table, index scans for an index). Only deltas
  // mean anything; the sum does not move when the backend flushes its pending counts.
  int64_t scans = 0;
};

// One live column of a table of a user schema.
struct ColumnState {
  uint32_t table = 0;
  int number = 0;  // attnum
  std::string name;
  std::string type;  // format_type(atttypid, atttypmod), e.g. "character varying(50)"
  bool not_null = false;
  bool has_default = false;
  bool generated = false;  // an identity or generated column (it fills itself)
};

// A granted relation lock.
struct RelationLock {
  uint32_t relation = 0;
  std::string mode;  // e.g. "AccessExclusiveLock"
};

// The user relations and their columns, as one backend sees them at one moment, and the
// relation locks one backend holds then.
struct CatalogState {
  std::vector<RelationState> relations;  // by oid
  std::vector<ColumnState> columns;      // by table, then number
  std::vector<RelationLock> locks;
};

class Inspector {
 public:
  virtual ~Inspector() = default;
  // Returns the user relations and columns of the connected database, inside the current
  // transaction when one is open (so this backend's own pending changes and counters show), and,
  // when `locks_of` is not 0, the relation locks granted to that backend: one round trip.
  virtual absl::StatusOr<CatalogState> ReadCatalog(int locks_of) = 0;
  // Returns the relation locks granted to backend `pid` in the connected database.
  virtual absl::StatusOr<std::vector<RelationLock>> RelationLocks(int pid) = 0;
};

}  // namespace sluice::store

#endif  // SLUICE_PKG_STORE_INSPECT_H_
