// The PostgreSQL Store: one libpq connection per Store, statements sent as the engine writes them
// (it controls BEGIN/COMMIT), values always bound as parameters and identifiers always quoted.
// pg_store.cc is the only code that talks to libpq; this header includes none of it. A Store is
// used by one thread at a time; different Stores may be used from different threads.
#ifndef SLUICE_PKG_STORE_PG_STORE_H_
#define SLUICE_PKG_STORE_PG_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pkg/store/store.h"

namespace sluice::store {

// Connects to PostgreSQL, retrying with jittered backoff (100 ms doubling to 2 s) for
// `options.connect_timeout`, and logging each failed attempt with the redacted target. Returns
// kInvalidArgument for a connection string that cannot be parsed (not retried), and kUnavailable,
// naming the redacted target and libpq's reason, when no attempt succeeded. The password never
// appears in a log record or a returned message.
//
// `options.url` is read by LibpqConnectionString; `options.application_name` overrides any
// application_name in it.
//
// Example:
//   ConnectOptions options;
//   options.url = "postgresql+asyncpg://app:secret@db:5432/app?ssl=require";
//   options.application_name = "sluice:pod-1";
//   SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, ConnectPg(options));
absl::StatusOr<std::unique_ptr<Store>> ConnectPg(const ConnectOptions& options);

// Returns the libpq connection string for `url`:
// - `postgresql://` and `postgres://` URLs are kept;
// - SQLAlchemy-style `postgresql+<driver>://` URLs lose the `+<driver>`; asyncpg's `ssl=<mode>`
//   becomes libpq's `sslmode` (`true` means `require`, `false` means `disable`), and query
//   parameters libpq does not know (e.g. asyncpg's `prepared_statement_cache_size`) are dropped
//   with a debug log;
// - libpq key/value strings (`host=db dbname=app`) are kept;
// - an empty string stays empty (libpq then reads its PG* variables).
// Returns kInvalidArgument for anything else or for what libpq cannot parse; the message never
// holds the password.
absl::StatusOr<std::string> LibpqConnectionString(absl::string_view url);

}  // namespace sluice::store

#endif  // SLUICE_PKG_STORE_PG_STORE_H_
