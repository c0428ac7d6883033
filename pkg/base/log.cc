#include "pkg/base/log.h"

#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pkg/base/text.h"

namespace sluice::log {
namespace {

struct LoggerState {
  absl::Mutex mutex;
  Format format = Format::kText;
  bool verbose = false;
  std::ostream* sink = nullptr;
};

LoggerState& State() {
  static LoggerState* state = new LoggerState();
  return *state;
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

// Quotes a text-format value only when it would otherwise be ambiguous.
std::string TextValue(absl::string_view value) {
  if (value.empty() || absl::StrContains(value, ' ') || absl::StrContains(value, '"') ||
      absl::StrContains(value, '=') || absl::StrContains(value, '\n')) {
    return base::JsonQuote(value);
  }
  return std::string(value);
}

}  // namespace

void SetFormat(Format format) {
  absl::MutexLock lock(&State().mutex);
  State().format = format;
}

void SetVerbose(bool verbose) {
  absl::MutexLock lock(&State().mutex);
  State().verbose = verbose;
}

void SetSinkForTest(std::ostream* sink) {
  absl::MutexLock lock(&State().mutex);
  State().sink = sink;
}

void Write(Level level, absl::string_view message, std::initializer_list<Field> fields) {
  LoggerState& state = State();
  absl::MutexLock lock(&state.mutex);
  if (level == Level::kDebug && !state.verbose) return;
  const std::string now =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line;
  if (state.format == Format::kJson) {
    absl::StrAppend(&line, "{\"time\":", base::JsonQuote(now),
                    ",\"level\":", base::JsonQuote(LevelName(level)),
                    ",\"msg\":", base::JsonQuote(message));
    for (const Field& field : fields) {
      absl::StrAppend(&line, ",", base::JsonQuote(field.key), ":", base::JsonQuote(field.value));
    }
    line += "}\n";
  } else {
    absl::StrAppend(&line, now, " ", LevelName(level), " ", message);
    for (const Field& field : fields) {
      absl::StrAppend(&line, " ", field.key, "=", TextValue(field.value));
    }
    line += "\n";
  }
  std::ostream& out = state.sink != nullptr ? *state.sink : std::cerr;
  out << line << std::flush;
}

}  // namespace sluice::log
