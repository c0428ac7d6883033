#include "pkg/store/store.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/sha256.h"

namespace sluice::store {
namespace {

// The payload key of a SqlError. Its value is a sequence of `<length>:<bytes>` fields: sqlstate,
// message, detail, hint and line (decimal), so any bytes in a field round-trip unchanged.
constexpr char kSqlErrorPayloadKey[] = "type.sluice.dev/SqlError";

void AppendField(std::string& out, absl::string_view field) {
  absl::StrAppend(&out, field.size(), ":", field);
}

bool ReadField(absl::string_view& in, std::string& field) {
  const size_t colon = in.find(':');
  if (colon == absl::string_view::npos) return false;
  size_t length = 0;
  if (!absl::SimpleAtoi(in.substr(0, colon), &length)) return false;
  in.remove_prefix(colon + 1);
  if (length > in.size()) return false;
  field = std::string(in.substr(0, length));
  in.remove_prefix(length);
  return true;
}

}  // namespace

std::optional<SqlError> SqlErrorOf(const absl::Status& status) {
  auto payload = status.GetPayload(kSqlErrorPayloadKey);
  if (!payload.has_value()) return std::nullopt;
  const std::string encoded(*payload);
  absl::string_view in = encoded;
  SqlError error;
  std::string line;
  if (!ReadField(in, error.sqlstate) || !ReadField(in, error.message) ||
      !ReadField(in, error.detail) || !ReadField(in, error.hint) || !ReadField(in, line) ||
      !in.empty() || !absl::SimpleAtoi(line, &error.line)) {
    return std::nullopt;
  }
  return error;
}

absl::Status WithSqlError(absl::Status status, const SqlError& error) {
  if (status.ok()) return status;  // an OK status carries no payload
  std::string encoded;
  AppendField(encoded, error.sqlstate);
  AppendField(encoded, error.message);
  AppendField(encoded, error.detail);
  AppendField(encoded, error.hint);
  AppendField(encoded, absl::StrCat(error.line));
  status.SetPayload(kSqlErrorPayloadKey, absl::Cord(encoded));
  return status;
}

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
  if (holder.pid != 0) details.push_back(absl::StrCat("pid ", holder.pid));
  details.push_back(holder.client_address.empty() ? "local" : holder.client_address);
  if (!holder.since.empty()) details.push_back(absl::StrCat("connected since ", holder.since));
  absl::StrAppend(&who, " (", absl::StrJoin(details, ", "), ")");
  return who;
}

}  // namespace sluice::store
