#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "pkg/base/text.h"
#include "pkg/lint/lint.h"

namespace sluice::lint {
namespace {

std::string Summary(const LintReport& report) {
  return absl::StrCat(
      report.revisions_linted, report.revisions_linted == 1 ? " revision, " : " revisions, ",
      report.statements, report.statements == 1 ? " statement: " : " statements: ", report.errors,
      report.errors == 1 ? " error, " : " errors, ", report.warnings,
      report.warnings == 1 ? " warning" : " warnings", "\n");
}

// GitHub's workflow commands end a property at ',' and a message at a newline: escaped as its
// documentation says.
std::string GithubEscape(const std::string& text, bool property) {
  std::string out = absl::StrReplaceAll(text, {{"%", "%25"}, {"\r", "%0D"}, {"\n", "%0A"}});
  if (property) out = absl::StrReplaceAll(out, {{":", "%3A"}, {",", "%2C"}});
  return out;
}

}  // namespace

std::string FormatText(const LintReport& report) {
  std::string out;
  for (const Finding& f : report.findings) {
    absl::StrAppend(&out, f.file, ":", f.line, ": ", SeverityName(f.severity), " ", f.rule, " ",
                    f.revision, ": ", f.message);
    if (!f.observed.empty()) absl::StrAppend(&out, " (observed: ", f.observed, ")");
    if (f.allowed) absl::StrAppend(&out, " [allowed: ", f.allow_reason, "]");
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, Summary(report));
  return out;
}

std::string FormatJson(const LintReport& report) {
  std::string out;
  for (const Finding& f : report.findings) {
    absl::StrAppend(
        &out, "{\"file\":", base::JsonQuote(f.file), ",\"line\":", f.line,
        ",\"severity\":", base::JsonQuote(SeverityName(f.severity)),
        ",\"rule\":", base::JsonQuote(f.rule), ",\"revision\":", base::JsonQuote(f.revision),
        ",\"statement\":", base::JsonQuote(f.statement),
        ",\"message\":", base::JsonQuote(f.message), ",\"observed\":", base::JsonQuote(f.observed),
        ",\"allowed\":", f.allowed ? "true" : "false");
    if (f.allowed) absl::StrAppend(&out, ",\"allow_reason\":", base::JsonQuote(f.allow_reason));
    absl::StrAppend(&out, "}\n");
  }
  return out;
}

std::string FormatGithub(const LintReport& report) {
  std::string out;
  for (const Finding& f : report.findings) {
    // An allowed finding is shown as a notice: visible, but not a failure.
    const char* level = f.allowed                          ? "notice"
                        : f.severity == Severity::kError   ? "error"
                        : f.severity == Severity::kWarning ? "warning"
                                                           : "notice";
    std::string message = absl::StrCat(f.revision, ": ", f.message);
    if (!f.observed.empty()) absl::StrAppend(&message, " (observed: ", f.observed, ")");
    if (f.allowed) absl::StrAppend(&message, " [allowed: ", f.allow_reason, "]");
    absl::StrAppend(&out, "::", level, " file=", GithubEscape(f.file, true), ",line=", f.line,
                    ",title=", GithubEscape(absl::StrCat("sluice lint ", f.rule), true),
                    "::", GithubEscape(message, false), "\n");
  }
  return out;
}

}  // namespace sluice::lint
