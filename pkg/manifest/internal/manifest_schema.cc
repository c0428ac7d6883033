#include "pkg/manifest/internal/manifest_schema.h"

#include <algorithm>
#include <cstddef>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "pkg/base/sha256.h"
#include "pkg/base/text.h"
#include "pkg/manifest/internal/simple_reader.h"
#include "pkg/manifest/internal/yaml_documents.h"
#include "pkg/manifest/loader.h"
#include "pkg/manifest/lint_rules.h"
#include "yaml-cpp/mark.h"

namespace sluice::manifest::internal {
namespace {

constexpr size_t kMaxRevisionLength = 32;  // Alembic's alembic_version.version_num is VARCHAR(32).

// A build for bench/manifest_reader_bench.sh only (no product build defines the macro) reads every
// document with yaml-cpp, to measure what the simple reader saves.
#ifdef SLUICE_MANIFEST_BENCH_NO_SIMPLE_READER
constexpr bool kUseSimpleReader = false;
#else
constexpr bool kUseSimpleReader = true;
#endif

constexpr absl::string_view kKnownKeys[] = {
    "revision",      "down_revision", "description", "branch_labels", "depends_on",
    "transactional", "upgrade",       "downgrade",   "lint_allow",
};

// Names people bring from Alembic's Python files, Flyway or habit, which edit distance alone would
// not map to the right key.
constexpr std::pair<absl::string_view, absl::string_view> kKeyAliases[] = {
    {"id", "revision"},          {"rev", "revision"},         {"revision_id", "revision"},
    {"message", "description"},  {"msg", "description"},      {"desc", "description"},
    {"comment", "description"},  {"parent", "down_revision"}, {"parents", "down_revision"},
    {"down", "downgrade"},       {"up", "upgrade"},           {"sql", "upgrade"},
    {"labels", "branch_labels"}, {"label", "branch_labels"},  {"branch", "branch_labels"},
    {"depends", "depends_on"},   {"requires", "depends_on"},  {"transaction", "transactional"},
};

std::string KnownKeysList() {
  std::vector<std::string> keys;
  for (absl::string_view key : kKnownKeys) keys.push_back(absl::StrCat("`", key, "`"));
  return absl::StrJoin(keys, ", ");
}

// Returns the known key an unknown key was most likely meant to be, or "" when none is close.
absl::string_view SuggestKey(absl::string_view unknown) {
  if (unknown.size() > 64) return "";  // not a typo; also bounds the distance computation
  std::string normalized = absl::AsciiStrToLower(unknown);
  std::replace(normalized.begin(), normalized.end(), '-', '_');
  std::replace(normalized.begin(), normalized.end(), ' ', '_');
  for (const auto& [alias, key] : kKeyAliases) {
    if (normalized == alias) return key;
  }
  absl::string_view best;
  size_t best_distance = 0;
  for (absl::string_view key : kKnownKeys) {
    const size_t distance = base::EditDistance(normalized, key);
    if (best.empty() || distance < best_distance) {
      best = key;
      best_distance = distance;
    }
  }
  // Two edits catch most typos; long keys get a little more slack (`dependson_revs`).
  if (best_distance <= std::max<size_t>(2, best.size() / 4)) return best;
  // A unique known key that starts with what was typed (`trans`, `branch_label`).
  absl::string_view prefix_match;
  int prefix_matches = 0;
  for (absl::string_view key : kKnownKeys) {
    if (normalized.size() >= 4 && absl::StartsWith(key, normalized)) {
      prefix_match = key;
      ++prefix_matches;
    }
  }
  return prefix_matches == 1 ? prefix_match : "";
}

// Describes a node's kind for type errors: "a list", "a mapping", "null", "a string".
std::string KindOf(const YamlNode& node) {
  switch (node.type) {
    case YamlNode::Type::kSequence:
      return "a list";
    case YamlNode::Type::kMap:
      return "a mapping";
    case YamlNode::Type::kNull:
      return "null (no value)";
    case YamlNode::Type::kScalar:
      return absl::StrCat("the value ", Quote(node.scalar));
  }
  return "undefined";
}

constexpr absl::string_view kRevisionIdRule = "1-32 characters of A-Z a-z 0-9 _ . -";

// Returns the 1-based file line that holds the first line of a string value's text. The node's
// mark is where its properties (`!!str`, `&anchor`) or its text start; for a block scalar (`|`,
// `>`) the text starts on the line after the indicator.
int FirstTextLine(const YamlNode& value, const DocumentContext& context) {
  const std::optional<size_t> start = context.OffsetOf(value.mark);
  if (!start) return context.PositionOf(value.mark).line;
  const absl::string_view text = context.index->text();
  size_t i = *start;
  const size_t end = context.chunk.end;
  while (i < end) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
    } else if (c == '!' || c == '&') {  // a tag or an anchor: skip to the next blank
      while (i < end && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n') {
        ++i;
      }
    } else if (c == '#') {  // a comment after the properties
      while (i < end && text[i] != '\n') ++i;
    } else {
      break;
    }
  }
  if (i >= end) return context.PositionOf(value.mark).line;
  const int line = static_cast<int>(context.index->LineOf(i)) + 1;
  return text[i] == '|' || text[i] == '>' ? line + 1 : line;
}

// Reads a list of ids or names: null (none), one string, or a list of strings. Reports problems
// and returns false when there are any.
bool ReadNameList(const YamlNode& value, absl::string_view key, bool revision_ids,
                  const DocumentContext& context, std::vector<std::string>* out) {
  out->clear();
  if (value.IsNull()) return true;
  const absl::string_view what = revision_ids ? "a revision id" : "a label";
  if (value.IsMap()) {
    context.Error(value.mark, absl::StrCat("`", key, "` must be ", what,
                                           " or a list of them, not a mapping; write `", key,
                                           ": [a, b]` or one value"));
    return false;
  }
  std::vector<const YamlNode*> items;
  if (value.IsScalar()) {
    items.push_back(&value);
  } else {
    items = value.items;
  }
  bool ok = true;
  std::set<std::string> listed;
  for (const YamlNode* entry : items) {
    const YamlNode& item = *entry;
    if (!item.IsScalar()) {
      context.Error(item.mark,
                    absl::StrCat("each entry of `", key, "` must be ", what, ", not ", KindOf(item),
                                 "; write a flat list: `", key, ": [a, b]`"));
      ok = false;
      continue;
    }
    const std::string& name = item.scalar;
    if (revision_ids) {
      if (const std::string problem = RevisionIdProblem(name); !problem.empty()) {
        context.Error(
            item.mark,
            absl::StrCat("revision id ", name.empty() ? "\"\"" : Quote(name), " in `", key, "` ",
                         problem, "; ids are ", kRevisionIdRule,
                         key == "down_revision" ? " (use null for a base revision)" : ""));
        ok = false;
        continue;
      }
    } else if (name.empty() || name.find_first_of(" \t\r\n@") != std::string::npos) {
      context.Error(item.mark,
                    absl::StrCat("branch label ", name.empty() ? "\"\"" : Quote(name),
                                 name.empty() ? " is empty" : " contains a blank or `@`",
                                 "; a label is used as `LABEL@head`, so give it a name without "
                                 "blanks or `@`"));
      ok = false;
      continue;
    }
    if (!listed.insert(name).second) {
      context.Error(item.mark,
                    absl::StrCat(Quote(name), " appears twice in `", key, "`; list it once"));
      ok = false;
      continue;
    }
    out->push_back(name);
  }
  return ok;
}

// Reads a string that may span lines (description, SQL). Null reads as absent.
bool ReadText(const YamlNode& value, absl::string_view key, absl::string_view fix,
              const DocumentContext& context, std::optional<std::string>* out) {
  if (value.IsNull()) {
    out->reset();
    return true;
  }
  if (!value.IsScalar()) {
    context.Error(value.mark,
                  absl::StrCat("`", key, "` must be a string, not ", KindOf(value), "; ", fix));
    return false;
  }
  *out = value.scalar;
  return true;
}

// Reads `transactional`. YAML 1.1 spellings (yes/no/on/off) are accepted because Kubernetes and
// PyYAML users write them; a quoted value is a string in YAML, so it is refused rather than
// guessed.
bool ReadBool(const YamlNode& value, absl::string_view key, const DocumentContext& context,
              bool* out) {
  static constexpr absl::string_view kTrue[] = {"true", "True", "TRUE", "yes", "Yes",
                                                "YES",  "on",   "On",   "ON"};
  static constexpr absl::string_view kFalse[] = {"false", "False", "FALSE", "no", "No",
                                                 "NO",    "off",   "Off",   "OFF"};
  if (value.IsScalar()) {
    const std::string& text = value.scalar;
    const bool quoted = value.tag == "!";
    if (!quoted) {
      for (absl::string_view t : kTrue) {
        if (text == t) {
          *out = true;
          return true;
        }
      }
      for (absl::string_view f : kFalse) {
        if (text == f) {
          *out = false;
          return true;
        }
      }
    } else if (text == "true" || text == "false") {
      context.Error(value.mark, absl::StrCat("`", key, "` is the quoted string \"", text,
                                             "\", not a boolean; remove the quotes"));
      return false;
    }
  }
  context.Error(
      value.mark,
      absl::StrCat("`", key, "` must be true or false, not ", KindOf(value), "; write `", key,
                   ": false` to run each statement outside a transaction, or omit "
                   "it (default true)"));
  return false;
}

// Reads `lint_allow`: a mapping from rule id to the reason the revision may break the rule, e.g.
// `lint_allow: {data-loss: "the column was unused since release 4.2"}`. Null means none.
bool ReadLintAllow(const YamlNode& value, const DocumentContext& context,
                   std::vector<LintAllowance>* out) {
  out->clear();
  if (value.IsNull()) return true;
  std::vector<std::string> known;
  for (absl::string_view rule : kAllowableLintRules) known.push_back(std::string(rule));
  const std::string known_list = absl::StrJoin(known, ", ");
  if (!value.IsMap()) {
    context.Error(value.mark,
                  absl::StrCat("`lint_allow` must be a mapping from rule id to reason, not ",
                               KindOf(value), "; write e.g. `lint_allow: {data-loss: \"why\"}` (",
                               "rules: ", known_list, ")"));
    return false;
  }
  bool ok = true;
  std::set<std::string> listed;
  for (const auto& [key_entry, reason_entry] : value.entries) {
    const YamlNode& key = *key_entry;
    const YamlNode& reason = *reason_entry;
    if (!key.IsScalar() || std::find(known.begin(), known.end(), key.scalar) == known.end()) {
      const std::string name = key.IsScalar() ? Quote(key.scalar) : KindOf(key);
      absl::string_view suggestion;
      if (key.IsScalar()) {
        for (absl::string_view rule : kAllowableLintRules) {
          if (base::EditDistance(key.scalar, rule) <= 3) suggestion = rule;
        }
      }
      context.Error(key.mark, absl::StrCat("unknown lint rule ", name, " in `lint_allow`",
                                           suggestion.empty() ? ""
                                                              : absl::StrCat(" (did you mean `",
                                                                             suggestion, "`?)"),
                                           "; rules that can be allowed: ", known_list));
      ok = false;
      continue;
    }
    if (!listed.insert(key.scalar).second) {
      context.Error(key.mark, absl::StrCat(Quote(key.scalar),
                                           " appears twice in `lint_allow`; "
                                           "list it once"));
      ok = false;
      continue;
    }
    if (!reason.IsScalar() || absl::StripAsciiWhitespace(reason.scalar).empty()) {
      context.Error(reason.IsNull() ? key.mark : reason.mark,
                    absl::StrCat("`lint_allow` entry ", Quote(key.scalar),
                                 " needs a reason: write why the revision may break the rule, "
                                 "e.g. `",
                                 key.scalar, ": \"the table is empty in production\"`"));
      ok = false;
      continue;
    }
    out->push_back({key.scalar, reason.scalar, context.PositionOf(key.mark).line});
  }
  return ok;
}

// Validates one document (a mapping) into a migration; reports every problem found. Returns
// nullopt when there was any.
std::optional<Migration> ReadDocument(const YamlNode& document, const DocumentContext& context) {
  Migration migration;
  migration.location.file = std::string(context.file);
  const size_t errors_before = context.errors->size();
  bool ok = true;

  std::optional<YAML::Mark> revision_key;
  std::optional<YAML::Mark> upgrade_key;
  std::optional<std::string> upgrade;
  std::optional<YAML::Mark> unconverted_key;
  std::optional<std::string> unconverted_reason;
  // Whether the empty-upgrade rule can be judged: not when `upgrade` or `down_revision` (which
  // decides whether this is a merge) was itself malformed, already reported.
  bool upgrade_ok = true;
  bool down_revision_ok = true;
  std::map<absl::string_view, YAML::Mark> seen;  // keys in the document's nodes
  // Known keys that an unknown key was taken for: their absence is then not reported again.
  std::set<absl::string_view> suggested;

  for (const auto& [key_entry, value_entry] : document.entries) {
    const YamlNode& key_node = *key_entry;
    const YamlNode& value = *value_entry;
    if (!key_node.IsScalar()) {
      context.Error(key_node.mark,
                    absl::StrCat("a key must be a plain name, not ", KindOf(key_node),
                                 "; known keys are ", KnownKeysList()));
      ok = false;
      continue;
    }
    const absl::string_view key = key_node.scalar;
    if (const auto [first, inserted] = seen.emplace(key, key_node.mark); !inserted) {
      context.Error(key_node.mark,
                    absl::StrCat("duplicate key ", Quote(key), " (first at line ",
                                 context.PositionOf(first->second).line, "); keep only one"));
      ok = false;
      continue;
    }
    if (absl::StartsWith(key, "x-")) continue;  // extension keys are the user's own

    if (key == "revision") {
      revision_key = key_node.mark;
      if (!value.IsScalar()) {
        context.Error(value.mark, absl::StrCat("`revision` must be one id, not ", KindOf(value),
                                               "; write e.g. `revision: fc0e7b400c13` (",
                                               kRevisionIdRule, ")"));
        ok = false;
        continue;
      }
      // The scalar's text exactly as written: `0012` and `1e3` are ids, not numbers.
      migration.revision = value.scalar;
      if (const std::string problem = RevisionIdProblem(migration.revision); !problem.empty()) {
        context.Error(value.mark,
                      absl::StrCat("revision id ",
                                   migration.revision.empty() ? "\"\"" : Quote(migration.revision),
                                   " ", problem, "; use ", kRevisionIdRule));
        ok = false;
      }
    } else if (key == "down_revision") {
      down_revision_ok =
          ReadNameList(value, key, /*revision_ids=*/true, context, &migration.down_revisions);
      ok &= down_revision_ok;
    } else if (key == "depends_on") {
      ok &= ReadNameList(value, key, /*revision_ids=*/true, context, &migration.depends_on);
    } else if (key == "branch_labels") {
      ok &= ReadNameList(value, key, /*revision_ids=*/false, context, &migration.branch_labels);
    } else if (key == "description") {
      std::optional<std::string> description;
      ok &= ReadText(value, key, "write it as text, e.g. `description: Add the users table`",
                     context, &description);
      migration.description = description.value_or("");
    } else if (key == "transactional") {
      ok &= ReadBool(value, key, context, &migration.transactional);
    } else if (key == "upgrade") {
      upgrade_key = key_node.mark;
      upgrade_ok =
          ReadText(value, key, "write the SQL as a block: `upgrade: |` then indented lines",
                   context, &upgrade);
      ok &= upgrade_ok;
      if (upgrade) migration.upgrade_first_line = FirstTextLine(value, context);
    } else if (key == "lint_allow") {
      ok &= ReadLintAllow(value, context, &migration.lint_allow);
    } else if (key == "downgrade") {
      ok &= ReadText(value, key, "write the SQL as a block: `downgrade: |` then indented lines",
                     context, &migration.downgrade_sql);
      if (migration.downgrade_sql) migration.downgrade_first_line = FirstTextLine(value, context);
    } else if (key == kUnconvertedKey) {
      unconverted_key = key_node.mark;
      ok &= ReadText(value, key, "write why the revision still needs its SQL", context,
                     &unconverted_reason);
    } else {
      const absl::string_view suggestion = SuggestKey(key);
      if (!suggestion.empty()) suggested.insert(suggestion);
      context.Error(key_node.mark,
                    suggestion.empty()
                        ? absl::StrCat("unknown key ", Quote(key), "; known keys are ",
                                       KnownKeysList(), ", and custom keys must start with `x-`")
                        : absl::StrCat("unknown key ", Quote(key), "; did you mean `", suggestion,
                                       "`? (custom keys must start with `x-`)"));
      ok = false;
    }
  }

  if (!revision_key && suggested.count("revision") == 0) {
    context.Error(document.mark, absl::StrCat("the document has no `revision` key; add "
                                              "`revision: <id>` (",
                                              kRevisionIdRule, ")"));
    ok = false;
  } else if (revision_key) {
    const Position at = context.PositionOf(*revision_key);
    migration.location.line = at.line;
    migration.location.column = at.column;
  }

  if (unconverted_key) {
    context.Error(
        *unconverted_key,
        absl::StrCat(migration.revision.empty() ? "this revision"
                                                : absl::StrCat("revision ", migration.revision),
                     " is marked `", kUnconvertedKey, "`",
                     unconverted_reason && !unconverted_reason->empty()
                         ? absl::StrCat(": ", OneLine(*unconverted_reason))
                         : "",
                     "; write its upgrade and downgrade SQL by hand, then delete the `",
                     kUnconvertedKey, "` key"));
    ok = false;
  }

  // Only a merge may have no SQL: it exists to join branches. Whitespace alone counts as empty,
  // since it would apply nothing.
  const bool blank = absl::StripAsciiWhitespace(upgrade.value_or("")).empty();
  if (blank && !migration.is_merge() && upgrade_ok && down_revision_ok &&
      (upgrade_key || suggested.count("upgrade") == 0)) {
    if (!upgrade_key) {
      context.Error(document.mark,
                    "the document has no `upgrade` key; add `upgrade: |` followed by the SQL "
                    "(only a merge revision, with two or more `down_revision`s, may omit it)");
    } else {
      context.Error(*upgrade_key,
                    "`upgrade` is empty; write the SQL (only a merge revision, with two or more "
                    "`down_revision`s, may have none)");
    }
    ok = false;
  }

  if (!ok || context.errors->size() != errors_before) return std::nullopt;
  migration.upgrade_sql = std::move(upgrade).value_or("");
  migration.checksum = absl::StrCat("sha256:", base::Sha256Hex(migration.upgrade_sql));
  return migration;
}

}  // namespace

std::string RevisionIdProblem(absl::string_view revision) {
  if (revision.empty()) return "is empty";
  if (revision.size() > kMaxRevisionLength) {
    return absl::StrCat("is ", revision.size(), " characters long, more than the ",
                        kMaxRevisionLength, " that Alembic's version table holds");
  }
  for (char c : revision) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      const unsigned char byte = static_cast<unsigned char>(c);
      const std::string shown = byte >= 0x20 && byte < 0x7f && c != '`'
                                    ? absl::StrCat("`", std::string(1, c), "`")
                                    : absl::StrFormat("byte 0x%02X", byte);
      return absl::StrCat("contains ", shown);
    }
  }
  return "";
}

void ParseFile(absl::string_view text, absl::string_view file, std::vector<Migration>* out,
               Errors* errors) {
  // A UTF-8 byte-order mark is legal but not content; dropping it keeps line 1's columns right.
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);
  const LineIndex index(text);
  if (!CheckEncoding(text, index, file, errors)) return;

  for (const Chunk& chunk : SplitDocuments(text)) {
    DocumentContext context{file, &index, chunk, errors};
    const absl::string_view chunk_text = text.substr(chunk.begin, chunk.end - chunk.begin);
    YamlDocument parsed;
    if (!kUseSimpleReader || !ReadSimpleDocument(chunk_text, &parsed)) {
      parsed = YamlDocument();
      if (!ParseWithPrepass(chunk_text, context, &parsed)) continue;
    }
    if (parsed.root == nullptr) continue;  // no document, e.g. after a trailing `---`
    const YamlNode& document = *parsed.root;
    try {
      if (document.IsNull()) continue;  // an empty document
      if (!document.IsMap()) {
        context.Error(document.mark,
                      absl::StrCat("the document is ", KindOf(document),
                                   ", not a mapping; each `---`-separated document must be "
                                   "one revision's keys (`revision:`, `upgrade:`, ...)"));
        continue;
      }
      if (std::optional<Migration> migration = ReadDocument(document, context)) {
        out->push_back(std::move(*migration));
      }
    } catch (const std::exception& e) {
      // Only std::bad_alloc and the like; keep it from crossing the public API anyway.
      context.Error(document.mark, absl::StrCat("cannot read the document: ", OneLine(e.what()),
                                                "; check the YAML syntax of this document"));
    }
  }
}

void CheckDuplicates(const std::vector<Migration>& migrations, Errors* errors) {
  std::map<absl::string_view, const Migration*> first;
  for (const Migration& migration : migrations) {
    const auto [it, inserted] = first.emplace(migration.revision, &migration);
    if (inserted) continue;
    const SourceLocation& other = it->second->location;
    errors->Add(
        migration.location.file, Position{migration.location.line, migration.location.column},
        absl::StrCat("duplicate revision ", Quote(migration.revision), ", already defined at ",
                     PrintableFileName(other.file), ":", other.line, ":", other.column,
                     "; give one of them a new id, or delete the copy"));
  }
}

}  // namespace sluice::manifest::internal
