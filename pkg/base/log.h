// A small structured logger: one line per record on stderr, as text or as one JSON object a line
// (`--log-format json`). Results go to stdout elsewhere; this is only for logs. Thread-safe.
#ifndef SLUICE_PKG_BASE_LOG_H_
#define SLUICE_PKG_BASE_LOG_H_

#include <initializer_list>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"

namespace sluice::log {

enum class Format { kText, kJson };
enum class Level { kDebug, kInfo, kWarning, kError };

// One key/value pair of a record. Values are printed as given; callers redact secrets first.
struct Field {
  std::string key;
  std::string value;
};

// Sets how records are printed (default: text).
void SetFormat(Format format);
// Sets whether debug records are printed (`-v`).
void SetVerbose(bool verbose);
// Sends records to `sink` instead of stderr; nullptr restores stderr.
void SetSinkForTest(std::ostream* sink);

// Writes one record.
void Write(Level level, absl::string_view message, std::initializer_list<Field> fields = {});

inline void Debug(absl::string_view message, std::initializer_list<Field> fields = {}) {
  Write(Level::kDebug, message, fields);
}
inline void Info(absl::string_view message, std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, message, fields);
}
inline void Warning(absl::string_view message, std::initializer_list<Field> fields = {}) {
  Write(Level::kWarning, message, fields);
}
inline void Error(absl::string_view message, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, message, fields);
}

}  // namespace sluice::log

#endif  // SLUICE_PKG_BASE_LOG_H_
