#include "pkg/cli/lint_command.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "pkg/base/log.h"
#include "pkg/failure/failure.h"
#include "pkg/lint/lint.h"
#include "pkg/store/pg_store.h"

namespace sluice::cli {
namespace {

int LintFailed(const absl::Status& status) {
  log::Error(absl::StrCat("lint: ", status.message()));
  return failure::ExitCodeFor(status);
}

int Usage(absl::string_view message) {
  log::Error(message);
  return failure::kExitUsage;
}

}  // namespace

int RunLintOn(const Options& options, const graph::RevisionGraph& graph,
              const std::optional<std::vector<std::string>>& current,
              const std::optional<std::string>& range, const std::string& to_when_no_range,
              std::ostream& out, std::shared_ptr<base::StopRequest> stop) {
  if (options.dev_url.empty()) {
    return Usage(
        "lint needs --dev-url (or SLUICE_DEV_URL): a dev PostgreSQL server where it may create a "
        "scratch database, e.g. a CI service container; never the production database");
  }
  std::vector<std::string> from;
  std::string to = to_when_no_range;
  if (range.has_value()) {
    std::vector<std::string> parts = absl::StrSplit(*range, absl::MaxSplits(':', 1));
    if (parts.size() == 1) parts.insert(parts.begin(), "base");
    absl::StatusOr<std::vector<std::string>> resolved = graph.ResolveTarget(parts[0], {});
    if (!resolved.ok()) return Usage(absl::StrCat("lint FROM: ", resolved.status().message()));
    from = *std::move(resolved);
    to = parts[1];
  } else if (current.has_value()) {
    from = *current;
  }
  absl::StatusOr<graph::Plan> plan = graph.PlanUpgrade(from, to);
  if (!plan.ok()) return Usage(absl::StrCat("lint: ", plan.status().message()));

  lint::LintOptions lint_options;
  lint_options.ddl_lock_timeout = options.ddl_lock_timeout;
  lint_options.stop = std::move(stop);
  for (const manifest::Migration* m : graph.TopologicalOrder()) {
    for (const std::string& row : from) {
      if (graph.IsAncestorOrSelf(m->revision, row)) {
        lint_options.before.push_back(m);
        break;
      }
    }
  }
  for (const graph::Step& step : plan->steps) lint_options.range.push_back(step.migration);
  if (lint_options.range.empty()) {
    if (options.format == "text") out << "nothing to lint: no revisions in the range\n";
    return failure::kExitOk;
  }

  const std::string dev_url = options.dev_url;
  const absl::Duration connect_timeout = options.connect_timeout;
  const lint::DevConnector connect =
      [dev_url, connect_timeout](const std::string& database, const std::string& application_name) {
        store::ConnectOptions connect_options;
        connect_options.url = dev_url;
        connect_options.database = database;
        connect_options.application_name = application_name;
        connect_options.connect_timeout = connect_timeout;
        return store::ConnectPg(connect_options);
      };
  log::Info("lint", {{"dev_server", store::RedactUrl(dev_url)},
                     {"applied_first", absl::StrCat(lint_options.before.size())},
                     {"linted", absl::StrCat(lint_options.range.size())}});
  absl::StatusOr<lint::LintReport> report = lint::Lint(lint_options, connect);
  if (!report.ok()) {
    absl::Status status = report.status();
    if (status.code() == absl::StatusCode::kPermissionDenied) {
      status = failure::WithFailureKind(std::move(status), failure::FailureKind::kUsage);
    }
    return LintFailed(status);
  }
  if (options.format == "json") {
    out << lint::FormatJson(*report);
  } else if (options.format == "github") {
    out << lint::FormatGithub(*report);
  } else {
    out << lint::FormatText(*report);
  }
  if (report->errors > 0 || (options.warnings_as_errors && report->warnings > 0)) {
    return failure::kExitLintErrors;
  }
  return failure::kExitOk;
}

}  // namespace sluice::cli
