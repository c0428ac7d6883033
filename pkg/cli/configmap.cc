#include "pkg/cli/configmap.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pkg/base/text.h"

namespace sluice::cli {
namespace {

// Returns the code point of the UTF-8 sequence at `text[*i]` and moves `*i` past it; an ASCII byte
// is its own code point. `text` is valid UTF-8.
uint32_t NextCodePoint(absl::string_view text, size_t* i) {
  const unsigned char lead = static_cast<unsigned char>(text[*i]);
  const size_t length = base::Utf8SequenceLength(text, *i);
  if (length == 0) {
    ++*i;
    return lead;
  }
  uint32_t code = lead & (0xFF >> (length + 1));
  for (size_t k = 1; k < length; ++k) {
    code = (code << 6) | (static_cast<unsigned char>(text[*i + k]) & 0x3F);
  }
  *i += length;
  return code;
}

// Returns whether code point `c` can stand as itself inside a literal block scalar: printable,
// and not one of the characters YAML 1.1 parsers (yaml-cpp; go-yaml, which kubectl uses) take as
// a line break (NEL, LS, PS) or a byte-order mark. Carriage returns are not: a YAML parser turns
// CR LF into LF.
bool LiteralSafe(uint32_t c) {
  if (c == '\n' || c == '\t') return true;
  if (c < 0x20 || c == 0x7F) return false;
  if (c >= 0x80 && c < 0xA0) return false;
  return c != 0x2028 && c != 0x2029 && c != 0xFEFF && c != 0xFFFE && c != 0xFFFF;
}

bool AllLiteralSafe(absl::string_view text) {
  for (size_t i = 0; i < text.size();) {
    if (!LiteralSafe(NextCodePoint(text, &i))) return false;
  }
  return true;
}

// Returns `text` as a YAML double-quoted scalar: JSON-style escapes for `"`, `\`, control
// characters and the characters LiteralSafe refuses; other characters as they are.
std::string DoubleQuoted(absl::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const uint32_t c = NextCodePoint(text, &i);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c != '\t' && !LiteralSafe(c)) {
          absl::StrAppendFormat(&out, "\\u%04X", c);
        } else {
          out.append(text.data() + start, i - start);
        }
    }
  }
  out += "\"";
  return out;
}

// Returns whether `name` is a DNS-1123 label (`max` characters at most) or, with `dots`, a
// DNS-1123 subdomain: what Kubernetes wants of an object's name and of a namespace.
bool IsDnsName(absl::string_view name, size_t max, bool dots) {
  if (name.empty() || name.size() > max) return false;
  char previous = '.';
  for (const char c : name) {
    const bool alnum = absl::ascii_islower(c) || absl::ascii_isdigit(c);
    if (c == '.') {
      if (!dots || previous == '.' || previous == '-') return false;
    } else if (c == '-') {
      if (previous == '.') return false;
    } else if (!alnum) {
      return false;
    }
    previous = c;
  }
  return previous != '-' && previous != '.';
}

// Returns `key` as a mapping key: plain when it starts with a letter, a digit or `_` (a key has
// only [-._a-zA-Z0-9] and ends in .yaml or .yml, so no YAML resolver takes it for anything but a
// string), else double-quoted.
std::string YamlKey(absl::string_view key) {
  if (!key.empty() && (absl::ascii_isalnum(key[0]) || key[0] == '_')) return std::string(key);
  return DoubleQuoted(key);
}

// Returns `bytes` with thousands separators: 1048576 -> "1,048,576".
std::string Grouped(size_t bytes) {
  std::string digits = absl::StrCat(bytes);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

}  // namespace

absl::Status CheckConfigMapKey(absl::string_view key) {
  if (key.empty() || key.size() > 253) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ConfigMap key has 1 to 253 characters; this one has ", key.size()));
  }
  if (key == "." || key == ".." || absl::StartsWith(key, "..")) {
    return absl::InvalidArgumentError("a ConfigMap key may not be `.`, `..` or start with `..`");
  }
  for (const char c : key) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError(absl::StrFormat(
          "a ConfigMap key has only letters, digits, `-`, `_` and `.`; this one has %s",
          c == ' ' ? std::string("a space") : base::JsonQuote(absl::string_view(&c, 1))));
    }
  }
  return absl::OkStatus();
}

size_t ConfigMapDataBytes(const std::vector<ConfigMapFile>& files) {
  size_t total = 0;
  for (const ConfigMapFile& file : files) total += file.content.size();
  return total;
}

std::string YamlValue(absl::string_view text, int indent) {
  // Only line breaks: a block scalar would read back as "" (clip and strip drop trailing empty
  // lines when there is no content).
  const bool only_breaks = text.find_first_not_of('\n') == absl::string_view::npos;
  if (only_breaks || !AllLiteralSafe(text)) return DoubleQuoted(text);
  // Chomping: clip keeps one final line break, strip none, keep all of them.
  size_t breaks = 0;
  while (breaks < text.size() && text[text.size() - 1 - breaks] == '\n') ++breaks;
  std::string out = "|";
  // Without an indicator the first line's leading spaces would set the indentation.
  if (text[0] == ' ' || text[0] == '\n') absl::StrAppend(&out, 2);
  if (breaks == 0) out += "-";
  if (breaks > 1) out += "+";
  out += "\n";
  const std::string prefix(indent + 2, ' ');
  absl::string_view rest = text.substr(0, text.size() - breaks);
  while (true) {
    const size_t end = rest.find('\n');
    const absl::string_view line = rest.substr(0, end);
    if (!line.empty()) absl::StrAppend(&out, prefix, line);
    out += "\n";
    if (end == absl::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  // The final line breaks beyond the first, as empty lines (kept by `|+`).
  for (size_t k = 1; k < breaks; ++k) out += "\n";
  return out;
}

absl::StatusOr<std::string> RenderConfigMap(absl::string_view name,
                                            absl::string_view namespace_name,
                                            std::vector<ConfigMapFile> files) {
  if (!IsDnsName(name, 253, /*dots=*/true)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ConfigMap name ", base::JsonQuote(name),
        " is not a valid Kubernetes name: use at most 253 lowercase letters, digits, `-` and `.`, "
        "starting and ending with a letter or digit (e.g. app-migrations)"));
  }
  if (!namespace_name.empty() && !IsDnsName(namespace_name, 63, /*dots=*/false)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--namespace ", base::JsonQuote(namespace_name),
                     " is not a valid namespace: use at most 63 lowercase letters, digits and "
                     "`-`, starting and ending with a letter or digit"));
  }
  std::stable_sort(files.begin(), files.end(),
                   [](const ConfigMapFile& a, const ConfigMapFile& b) { return a.key < b.key; });
  for (size_t i = 0; i < files.size(); ++i) {
    const ConfigMapFile& file = files[i];
    if (absl::Status key = CheckConfigMapKey(file.key); !key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.source, ": the file name ", base::JsonQuote(file.key),
                       " cannot be a ConfigMap key: ", key.message(), "; rename the file"));
    }
    if (i > 0 && files[i - 1].key == file.key) {
      return absl::InvalidArgumentError(absl::StrCat(
          file.source, ": the file name ", file.key, " is also that of ", files[i - 1].source,
          ", and a ConfigMap holds each key once; rename one of them, or put the two "
          "directories in two ConfigMaps"));
    }
    if (const size_t bad = base::FirstInvalidUtf8(file.content); bad != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.source, ": byte ", bad,
                       " is not UTF-8, and a ConfigMap's data holds UTF-8 text; re-save the "
                       "file as UTF-8"));
    }
  }
  const size_t total = ConfigMapDataBytes(files);
  if (total > kConfigMapMaxDataBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the migrations come to ", Grouped(total), " bytes in ", files.size(),
        " files, over Kubernetes' limit of ", Grouped(kConfigMapMaxDataBytes),
        " bytes (1 MiB) for one ConfigMap. Split them: put the files in several directories "
        "and make one ConfigMap of each (`sluice configmap ",
        name,
        "-1 --migrations DIR1`, ...), mount each ConfigMap at a path of its own and give "
        "--migrations once per mount (a MigrationJob lists them all in "
        "spec.migrations.configMaps); or ship the migrations in the application's image and "
        "copy them into an emptyDir volume from an init container"));
  }
  std::string out =
      absl::StrCat("# Made by `sluice configmap ", name, "`: ", files.size(),
                   files.size() == 1 ? " migration file, " : " migration files, ", Grouped(total),
                   " bytes of Kubernetes' ", Grouped(kConfigMapMaxDataBytes), "-byte limit.\n");
  absl::StrAppend(&out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ", name, "\n");
  if (!namespace_name.empty()) absl::StrAppend(&out, "  namespace: ", namespace_name, "\n");
  absl::StrAppend(&out, "  labels:\n    app.kubernetes.io/managed-by: sluice\n");
  if (files.empty()) return absl::StrCat(out, "data: {}\n");
  out += "data:\n";
  for (const ConfigMapFile& file : files) {
    absl::StrAppend(&out, "  ", YamlKey(file.key), ": ", YamlValue(file.content, 2));
    if (out.back() != '\n') out += "\n";
  }
  return out;
}

}  // namespace sluice::cli
