#include "pkg/cli/flags.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sluice::cli {
namespace {

enum class Kind { kBool, kString, kInt, kDuration, kList };

struct FlagSpec {
  const char* name;
  Kind kind;
  const char* help;
  // Stores a parsed value into the options; `value` is already checked for the flag's kind.
  std::function<absl::Status(absl::string_view value, Options&)> set;
};

absl::StatusOr<absl::Duration> ParseDurationValue(absl::string_view text) {
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds) && seconds >= 0) return absl::Seconds(seconds);
  absl::Duration duration;
  if (absl::ParseDuration(text, &duration) && duration >= absl::ZeroDuration()) return duration;
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a duration; write e.g. 30s, 500ms, 10m or 1h30m"));
}

absl::StatusOr<bool> ParseBoolValue(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "1" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "0" || lower == "no" || lower == "off") return false;
  return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not true or false"));
}

template <typename T>
std::function<absl::Status(absl::string_view, Options&)> SetString(T Options::*member) {
  return [member](absl::string_view value, Options& options) {
    options.*member = std::string(value);
    return absl::OkStatus();
  };
}

std::function<absl::Status(absl::string_view, Options&)> SetBool(bool Options::*member) {
  return [member](absl::string_view value, Options& options) -> absl::Status {
    absl::StatusOr<bool> parsed = ParseBoolValue(value);
    if (!parsed.ok()) return parsed.status();
    options.*member = *parsed;
    return absl::OkStatus();
  };
}

std::function<absl::Status(absl::string_view, Options&)> SetDuration(
    absl::Duration Options::*member) {
  return [member](absl::string_view value, Options& options) -> absl::Status {
    absl::StatusOr<absl::Duration> parsed = ParseDurationValue(value);
    if (!parsed.ok()) return parsed.status();
    options.*member = *parsed;
    return absl::OkStatus();
  };
}

std::function<absl::Status(absl::string_view, Options&)> SetChoice(
    std::string Options::*member, std::vector<std::string> choices) {
  return [member, choices](absl::string_view value, Options& options) -> absl::Status {
    for (const std::string& choice : choices) {
      if (value == choice) {
        options.*member = choice;
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("\"", value, "\" is not one of ", absl::StrJoin(choices, ", ")));
  };
}

const std::vector<FlagSpec>& Flags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"migrations", Kind::kList,
       "directory of migration manifests; repeatable (default ./migrations)",
       [](absl::string_view value, Options& options) {
         options.migrations.push_back(std::string(value));
         return absl::OkStatus();
       }},
      {"database-url", Kind::kString,
       "postgresql:// URL, SQLAlchemy-style URL or libpq key=value string (else "
       "--database-url-file, DATABASE_URL, libpq's PG* variables)",
       SetString(&Options::database_url)},
      {"database-url-file", Kind::kString, "file holding the database URL (a mounted Secret)",
       SetString(&Options::database_url_file)},
      {"connect-timeout", Kind::kDuration,
       "how long to retry an unreachable database before exiting 7 (default 30s)",
       SetDuration(&Options::connect_timeout)},
      {"schema", Kind::kString, "schema of the version and history tables (default public)",
       SetString(&Options::schema)},
      {"version-table", Kind::kString, "name of the version table (default alembic_version)",
       SetString(&Options::version_table)},
      {"lock-key", Kind::kInt, "advisory lock key (default: derived from schema and version table)",
       [](absl::string_view value, Options& options) -> absl::Status {
         int64_t key = 0;
         if (!absl::SimpleAtoi(value, &key)) {
           return absl::InvalidArgumentError(
               absl::StrCat("\"", value, "\" is not a 64-bit integer"));
         }
         options.lock_key = key;
         return absl::OkStatus();
       }},
      {"lock-wait", Kind::kDuration,
       "how long to wait for the migration lock before exiting 6 (default 10m)",
       SetDuration(&Options::lock_wait)},
      {"lock-mode", Kind::kString,
       "session (an advisory lock) or lease (a lease row with a heartbeat, for connection "
       "poolers in transaction mode) (default session)",
       SetChoice(&Options::lock_mode, {"session", "lease"})},
      {"lease-ttl", Kind::kDuration,
       "lock mode lease: how long a lease outlives its last heartbeat (default 30s, at least 1s)",
       [](absl::string_view value, Options& options) -> absl::Status {
         absl::StatusOr<absl::Duration> ttl = ParseDurationValue(value);
         if (!ttl.ok()) return ttl.status();
         if (*ttl < absl::Seconds(1)) {
           return absl::InvalidArgumentError(absl::StrCat("\"", value, "\" is under 1s"));
         }
         options.lease_ttl = *ttl;
         return absl::OkStatus();
       }},
      {"lock-database-url", Kind::kString,
       "a connection of its own for the lock, e.g. direct to PostgreSQL while --database-url "
       "goes through a pooler (else --lock-database-url-file; default: --database-url)",
       SetString(&Options::lock_database_url)},
      {"lock-database-url-file", Kind::kString, "file holding the lock's database URL",
       SetString(&Options::lock_database_url_file)},
      {"force", Kind::kBool,
       "lock release: free a lease whose holder is gone; import: replace the manifests in --out",
       SetBool(&Options::force)},
      {"ddl-lock-timeout", Kind::kDuration, "lock_timeout inside each revision (default 10s)",
       SetDuration(&Options::ddl_lock_timeout)},
      {"ddl-retries", Kind::kInt, "retries of a revision that hit lock_timeout (default 3)",
       [](absl::string_view value, Options& options) -> absl::Status {
         int retries = 0;
         if (!absl::SimpleAtoi(value, &retries) || retries < 0) {
           return absl::InvalidArgumentError(
               absl::StrCat("\"", value, "\" is not a non-negative integer"));
         }
         options.ddl_retries = retries;
         return absl::OkStatus();
       }},
      {"report", Kind::kString, "NAMESPACE/NAME of a MigrationJob whose status to keep",
       SetString(&Options::report)},
      {"report-required", Kind::kBool, "fail when the status could not be written",
       SetBool(&Options::report_required)},
      {"report-timeout", Kind::kDuration, "how long to retry status writes (default 30s)",
       SetDuration(&Options::report_timeout)},
      {"kubeconfig", Kind::kString, "kubeconfig file when not running in a cluster",
       SetString(&Options::kubeconfig)},
      {"log-format", Kind::kString, "text or json (one JSON object a line on stderr)",
       SetChoice(&Options::log_format, {"text", "json"})},
      {"v", Kind::kBool, "verbose: details, checksums and debug logs", SetBool(&Options::verbose)},
      {"sql", Kind::kBool, "offline mode: print the SQL instead of running it; TARGET is [FROM:]TO",
       SetBool(&Options::sql)},
      {"purge", Kind::kBool, "stamp: delete every version row first", SetBool(&Options::purge)},
      {"single-transaction", Kind::kBool, "run the whole plan in one transaction",
       SetBool(&Options::single_transaction)},
      {"allow-drift", Kind::kBool, "proceed, with a warning, when applied revisions changed",
       SetBool(&Options::allow_drift)},
      {"if-ahead", Kind::kString,
       "warn or fail when the database holds revisions the manifests lack (default warn)",
       SetChoice(&Options::if_ahead, {"warn", "fail"})},
      {"single-head", Kind::kBool, "validate: fail when there is more than one head",
       SetBool(&Options::single_head)},
      {"config", Kind::kString, "import alembic: the Alembic project's alembic.ini",
       SetString(&Options::config)},
      {"out", Kind::kString, "import alembic: directory for the manifests (default ./migrations)",
       SetString(&Options::out)},
      {"python", Kind::kString,
       "import alembic: the Python 3 that has Alembic, a path or a name on PATH (default python3)",
       SetString(&Options::python)},
      {"timeout", Kind::kDuration,
       "wait: how long to wait for the target before exiting 3 (default 10m)",
       SetDuration(&Options::timeout)},
      {"namespace", Kind::kString,
       "configmap: the namespace written into the manifest; operator: the namespace to watch "
       "(default: all)",
       SetString(&Options::namespace_name)},
      {"max-concurrent", Kind::kInt, "operator: runs at once, in all (default 4)",
       [](absl::string_view value, Options& options) -> absl::Status {
         int runs = 0;
         if (!absl::SimpleAtoi(value, &runs) || runs < 1 || runs > 1000) {
           return absl::InvalidArgumentError(
               absl::StrCat("\"", value, "\" is not a number of runs from 1 to 1000"));
         }
         options.max_concurrent = runs;
         return absl::OkStatus();
       }},
      {"leader-elect", Kind::kBool,
       "operator: reconcile only while holding the leader election Lease (the manifests turn it "
       "on)",
       SetBool(&Options::leader_elect)},
      {"leader-election-namespace", Kind::kString,
       "operator: the namespace of the Lease (default $POD_NAMESPACE, else --namespace)",
       SetString(&Options::leader_election_namespace)},
      {"leader-election-id", Kind::kString,
       "operator: the name of the Lease (default sluice-operator)",
       SetString(&Options::leader_election_id)},
      {"leader-election-lease-duration", Kind::kDuration,
       "operator: how long a standby waits after the leader's last renewal (default 15s)",
       SetDuration(&Options::leader_election_lease_duration)},
      {"leader-election-renew-deadline", Kind::kDuration,
       "operator: how long the leader keeps trying to renew before it gives up (default 10s)",
       SetDuration(&Options::leader_election_renew_deadline)},
      {"leader-election-retry-period", Kind::kDuration,
       "operator: the interval of acquire and renew attempts (default 2s)",
       SetDuration(&Options::leader_election_retry_period)},
      {"health-addr", Kind::kString,
       "operator: HOST:PORT or :PORT serving /healthz and /readyz; 0: none (default :8081)",
       SetString(&Options::health_addr)},
      {"metrics-addr", Kind::kString,
       "operator: HOST:PORT or :PORT serving Prometheus /metrics; 0: none (default :8080)",
       SetString(&Options::metrics_addr)},
      {"shutdown-grace", Kind::kDuration,
       "operator: how long runs get to stop at a safe point after SIGTERM before their "
       "statements are cancelled (default 25s)",
       SetDuration(&Options::shutdown_grace)},
      {"dev-url", Kind::kString,
       "lint: a dev PostgreSQL server (never production) where lint creates, and drops, a "
       "scratch database; its role needs CREATEDB",
       SetString(&Options::dev_url)},
      {"format", Kind::kString, "lint: text, json (one object per finding) or github (annotations)",
       SetChoice(&Options::format, {"text", "json", "github"})},
      {"warnings-as-errors", Kind::kBool, "lint: exit 8 on warnings too",
       SetBool(&Options::warnings_as_errors)},
      {"lint", Kind::kBool,
       "upgrade: lint the pending revisions on --dev-url first and apply nothing when it finds "
       "errors",
       SetBool(&Options::lint)},
  };
  return *flags;
}

const FlagSpec* FindFlag(absl::string_view name) {
  if (name == "verbose") name = "v";
  for (const FlagSpec& flag : Flags()) {
    if (name == flag.name) return &flag;
  }
  return nullptr;
}

std::string EnvName(absl::string_view flag) {
  std::string name = absl::StrCat("SLUICE_", flag == "v" ? "VERBOSE" : flag);
  for (char& c : name) c = c == '-' ? '_' : absl::ascii_toupper(c);
  return name;
}

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const EnvLookup& env) {
  CommandLine result;
  std::vector<std::pair<const FlagSpec*, std::string>> given;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-' || (arg[1] >= '0' && arg[1] <= '9')) {
      // A positional argument; `-1` and `-2` are relative targets, not flags.
      if (result.command.empty()) {
        result.command = std::string(arg);
      } else {
        result.args.push_back(std::string(arg));
      }
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    if (body == "help" || body == "h") {
      result.help = true;
      continue;
    }
    if (body == "version") {
      result.version = true;
      continue;
    }
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      value = std::string(body.substr(eq + 1));
      body = body.substr(0, eq);
    }
    const FlagSpec* flag = FindFlag(body);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg, "; see `sluice ",
                                                     result.command,
                                                     result.command.empty() ? "" : " ", "--help`"));
    }
    if (!value.has_value()) {
      if (flag->kind == Kind::kBool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", flag->name, " needs a value"));
      }
    }
    given.emplace_back(flag, *value);
  }

  // Environment first, then the command line, so the command line wins. A repeatable flag given on
  // the command line replaces the default and the environment's list instead of adding to them.
  std::map<std::string, bool> on_command_line;
  for (const auto& [flag, value] : given) on_command_line[flag->name] = true;
  for (const FlagSpec& flag : Flags()) {
    if (on_command_line.count(flag.name) > 0) continue;
    std::optional<std::string> value = env(EnvName(flag.name));
    if (!value.has_value() || value->empty()) continue;
    if (flag.kind == Kind::kList) {
      result.options.migrations.clear();
      for (absl::string_view item : absl::StrSplit(*value, ',', absl::SkipEmpty())) {
        absl::Status status = flag.set(item, result.options);
        if (!status.ok()) return status;
      }
    } else if (absl::Status status = flag.set(*value, result.options); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", EnvName(flag.name), ": ", status.message()));
    }
    result.set_flags.push_back(flag.name);
  }
  if (on_command_line.count("migrations") > 0) result.options.migrations.clear();
  for (const auto& [flag, value] : given) {
    if (absl::Status status = flag->set(value, result.options); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", flag->name, ": ", status.message()));
    }
    result.set_flags.push_back(flag->name);
  }
  return result;
}

std::string FlagHelp(const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, const FlagSpec*>> rows;
  size_t width = 0;
  for (const std::string& name : names) {
    const FlagSpec* flag = FindFlag(name);
    if (flag == nullptr) continue;
    std::string left = absl::StrCat(name == "v" ? "-v" : absl::StrCat("--", name));
    switch (flag->kind) {
      case Kind::kBool:
        break;
      case Kind::kDuration:
        absl::StrAppend(&left, " DURATION");
        break;
      case Kind::kInt:
        absl::StrAppend(&left, " N");
        break;
      case Kind::kString:
      case Kind::kList:
        absl::StrAppend(&left, " VALUE");
        break;
    }
    width = std::max(width, left.size());
    rows.emplace_back(std::move(left), flag);
  }
  std::string out;
  for (const auto& [left, flag] : rows) {
    absl::StrAppend(&out, "  ", left, std::string(width + 1 - left.size(), ' '), flag->help, " [",
                    EnvName(flag->name), "]\n");
  }
  return out;
}

}  // namespace sluice::cli
