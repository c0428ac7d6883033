#include "pkg/store/store.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/sha256.h"

namespace sluice::store {

// The key is the first 8 bytes, read big-endian as a two's complement int64, of
// SHA-256("sluice:" + schema + "." + version_table). It depends on nothing but those bytes, so
// every platform and every release derive the same key; for the defaults
// (public.alembic_version) it is pinned by store_test.cc. Changing it would let an old and a new
// release run migrations at the same time: never change it.
int64_t LockKeyFor(const TableNames& tables) {
  const std::string hex =
      base::Sha256Hex(absl::StrCat("sluice:", tables.schema, ".", tables.version_table));
  uint64_t key = 0;
  for (int i = 0; i < 16; ++i) {
    const char c = hex[i];
    const uint64_t digit =
        c >= 'a' ? static_cast<uint64_t>(c - 'a' + 10) : static_cast<uint64_t>(c - '0');
    key = (key << 4) | digit;
  }
  int64_t signed_key;
  std::memcpy(&signed_key, &key, sizeof key);
  return signed_key;
}

std::string DescribeLockHolder(const LockHolder& holder) {
  std::string who =
      holder.application_name.empty() ? "(no application_name)" : holder.application_name;
  std::vector<std::string> details;
  if (holder.lease) {
    details.push_back(absl::StrCat("lease taken at ", holder.since));
    details.push_back(absl::StrCat("last heartbeat ", holder.last_heartbeat));
    absl::StrAppend(&who, " (", absl::StrJoin(details, ", "), ")");
    return who;
  }
  if (holder.pid != 0) details.push_back(absl::StrCat("pid ", holder.pid));
  details.push_back(holder.client_address.empty() ? "local" : holder.client_address);
  if (!holder.since.empty()) details.push_back(absl::StrCat("connected since ", holder.since));
  absl::StrAppend(&who, " (", absl::StrJoin(details, ", "), ")");
  return who;
}

}  // namespace sluice::store
