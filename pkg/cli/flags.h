// The command line of the `sluice` binary: `sluice COMMAND [ARGS] [FLAGS]`. Every flag can also
// come from the environment as SLUICE_<FLAG_IN_CAPITALS> (dashes as underscores); the command line
// wins.
#ifndef SLUICE_PKG_CLI_FLAGS_H_
#define SLUICE_PKG_CLI_FLAGS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkg/base/host.h"

namespace sluice::cli {

// Every option of every command, with its default.
struct Options {
  std::vector<std::string> migrations = {"./migrations"};
  std::string database_url;
  std::string database_url_file;
  absl::Duration connect_timeout = absl::Seconds(30);
  std::string schema = "public";
  std::string version_table = "alembic_version";
  std::optional<int64_t> lock_key;
  absl::Duration lock_wait = absl::Minutes(10);
  std::string lock_mode = "session";
  absl::Duration lease_ttl = absl::Seconds(30);
  std::string lock_database_url;
  std::string lock_database_url_file;
  bool force = false;
  absl::Duration ddl_lock_timeout = absl::Seconds(10);
  int ddl_retries = 3;
  std::string report;
  bool report_required = false;
  absl::Duration report_timeout = absl::Seconds(30);
  std::string kubeconfig;
  std::string log_format = "text";
  bool verbose = false;
  bool sql = false;
  bool purge = false;
  bool single_transaction = false;
  bool allow_drift = false;
  std::string if_ahead = "warn";
  bool single_head = false;
  // import alembic
  std::string config;
  std::string out = "./migrations";
  std::string python = "python3";
  std::string namespace_name;  // --namespace
  // operator
  int max_concurrent = 4;
  bool leader_elect = false;
  std::string leader_election_namespace;  // default: $POD_NAMESPACE, else --namespace
  std::string leader_election_id = "sluice-operator";
  // client-go's defaults.
  absl::Duration leader_election_lease_duration = absl::Seconds(15);
  absl::Duration leader_election_renew_deadline = absl::Seconds(10);
  absl::Duration leader_election_retry_period = absl::Seconds(2);
  std::string health_addr = ":8081";  // "0": not served
  std::string metrics_addr = ":8080";
  absl::Duration shutdown_grace = absl::Seconds(25);
  absl::Duration timeout = absl::Minutes(10);
  // lint, and upgrade --lint
  std::string dev_url;
  std::string format = "text";
  bool warnings_as_errors = false;
  bool lint = false;
};

// A parsed command line.
struct CommandLine {
  std::string command;            // empty when none was given
  std::vector<std::string> args;  // positional arguments after the command
  Options options;
  bool help = false;
  bool version = false;  // --version: print the version, as the `version` command does
  // Flags given on the command line or in the environment, by name (for "was it set?" checks).
  std::vector<std::string> set_flags;
};

// Reads an environment variable (base/host.h); injected so tests control it.
using base::EnvLookup;
using base::ProcessEnvironment;

// Parses `args` (without the program name). Returns kInvalidArgument naming the flag for an unknown
// flag, a missing value or a value of the wrong form.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const EnvLookup& env);

// Returns the help text for the flags named in `names`, one per line, aligned.
std::string FlagHelp(const std::vector<std::string>& names);

}  // namespace sluice::cli

#endif  // SLUICE_PKG_CLI_FLAGS_H_
