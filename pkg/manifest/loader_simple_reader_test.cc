// The loader reads documents of the simple form nearly every manifest takes without yaml-cpp (see
// internal/simple_reader.cc). These tests hold it to yaml-cpp: whatever the simple reader accepts
// must give the very tree (kinds, texts, tags, marks) that the general path gives, over thousands
// of generated manifests, near-manifests and mutations of them, with a fixed seed.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pkg/base/text.h"
#include "pkg/manifest/internal/simple_reader.h"
#include "pkg/manifest/loader.h"

namespace sluice::manifest {
namespace {

using internal::DumpGeneralRead;
using internal::DumpSimpleRead;

constexpr int kIterations = 4000;
constexpr uint32_t kSeed = 20261125;

// SLUICE_FUZZ_ITERATIONS and SLUICE_FUZZ_SEED run a longer or different campaign by hand.
int EnvOr(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// Expects the simple reader to accept `text` and to agree with yaml-cpp.
void ExpectSimpleAndAgreeing(const std::string& text) {
  SCOPED_TRACE(absl::StrCat("text: ", base::JsonQuote(text)));
  const std::optional<std::string> simple = DumpSimpleRead(text);
  ASSERT_TRUE(simple.has_value());
  EXPECT_EQ(DumpGeneralRead(text), simple);
}

// Expects the simple reader to leave `text` to yaml-cpp.
void ExpectDeclined(const std::string& text) {
  EXPECT_EQ(DumpSimpleRead(text), std::nullopt) << base::JsonQuote(text);
}

TEST(SimpleReaderTest, ReadsTheUsualManifestsAsYamlCppDoes) {
  ExpectSimpleAndAgreeing(R"yaml(# The first revision.
revision: fc0e7b400c13   # required
down_revision: null
description: Initial schema with executions and api_keys
branch_labels: []
depends_on: [a1, 'b2', "c3"]
transactional: true
x-owner: team-a
upgrade: |
  CREATE TABLE executions (
      id bigserial PRIMARY KEY,
      status text NOT NULL DEFAULT 'pending'  -- a comment: with # and ':'
  );

  CREATE INDEX ix ON executions (status);
downgrade: |-
  DROP TABLE executions;
)yaml");
  ExpectSimpleAndAgreeing("---\nrevision: a\nupgrade: SELECT 1;\n...\n");
  ExpectSimpleAndAgreeing("revision: a\nupgrade: |+\n  SELECT 1;\n\n\n");
  ExpectSimpleAndAgreeing("revision: a\nupgrade: |\n  SELECT 1;");  // no final line break
  ExpectSimpleAndAgreeing("revision: a\nupgrade: |\n    SELECT 1;\n  \n      x\n    \t\n \n");
  ExpectSimpleAndAgreeing("revision: a\nupgrade: |\n \tSELECT 1;\n");  // the tab is text
  ExpectSimpleAndAgreeing("revision: ~\ndescription: 'its'\n");
  ExpectSimpleAndAgreeing("revision: \"a b\"  # c\nupgrade: '  padded  '\n");
  ExpectSimpleAndAgreeing("revision: caf\xC3\xA9\nupgrade: x:y a#b\n");
}

TEST(SimpleReaderTest, LeavesEverythingElseToYamlCpp) {
  ExpectDeclined("revision: a\nupgrade: 'SELECT 1;\ndowngrade: x\n");  // an unclosed quote
  ExpectDeclined("revision: a\nupgrade: \"a\\nb\"\n");                 // an escape
  ExpectDeclined("revision: a\ndescription: two\n  lines\n");          // a folded plain scalar
  ExpectDeclined("revision: a\nupgrade: >\n  SELECT 1;\n");            // a folded block
  ExpectDeclined("revision: a\nupgrade: |2\n   SELECT 1;\n");          // an indentation indicator
  ExpectDeclined("revision: a\nupgrade: |\n  SELECT 1;\n x: y\n");     // a bad indentation
  ExpectDeclined("revision: a\nupgrade: |\n  SELECT 1;\n \tx\n");      // a tab as indentation
  ExpectDeclined("revision: a\ndescription: 'it''s'\n");               // a quote in quotes
  ExpectDeclined("revision: a\r\nupgrade: x\r\n");                     // CRLF line ends
  ExpectDeclined("revision: a\ndown_revision:\nupgrade: x\n");         // a null by omission
  ExpectDeclined("revision: a\nx-owner: {team: a}\n");                 // a flow mapping
  ExpectDeclined("revision: &a a\nupgrade: *a\n");                     // anchors and aliases
  ExpectDeclined("revision: a\nupgrade: x\n---\nrevision: b\n");       // two documents
  ExpectDeclined("%YAML 1.2\n---\nrevision: a\n");                     // a directive
  ExpectDeclined("\xEF\xBB\xBFrevision: a\n");                         // a byte-order mark
  ExpectDeclined("- revision: a\n");                                   // not a mapping
  ExpectDeclined("# only a comment\n");                                // no document
}

// Generates manifests: half of them of the simple form, the others with the corner cases of each
// of its parts mixed in (which the simple reader must decline, or read as yaml-cpp does).
class ManifestGenerator {
 public:
  explicit ManifestGenerator(uint32_t seed) : rng_(seed) {}

  std::string Next() {
    clean_ = Below(2) == 0;
    std::string text;
    crlf_ = !clean_ && Below(6) == 0;
    if (Below(4) == 0) text += Pick({"# header\n", "\n", "   \n"}, {"  # indented\n", "#\t\n"});
    if (Below(4) == 0) text += Pick({"---\n"}, {"--- \n", "---", "%YAML 1.2\n---\n", "--- x: y\n"});
    if (Below(3) == 0) text += Pick({"# after the marker\n", "\n"}, {});
    const size_t entries = 1 + Below(7);
    for (size_t i = 0; i < entries; ++i) {
      text += Key();
      text += Pick({": ", ": ", ":  "}, {":", ":\t", " : ", ":x"});
      text += Value();
      if (Below(5) == 0) text += Pick({"# between\n", "\n", "  \n"}, {"  # indented\n", "\t\n"});
    }
    if (Below(6) == 0) text += Pick({"...\n", "..."}, {"... \n", "...\nx: y\n"});
    if (Below(3) == 0) {
      const std::string blanks = clean_ ? " \n" : " \t\n\r\v\f";
      for (size_t n = Below(4); n > 0; --n) text += blanks[Below(blanks.size())];
    }
    if (Below(8) == 0 && !text.empty()) text.pop_back();
    if (crlf_) text = CrLf(text);
    if (!clean_ && Below(5) == 0) Mutate(&text);
    return text;
  }

 private:
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  // Picks one of `usual`, or (for an unclean manifest, half the time) one of `unusual`.
  std::string Pick(std::initializer_list<std::string> usual,
                   std::initializer_list<std::string> unusual) {
    if (!clean_ && unusual.size() > 0 && Below(2) == 0) {
      return *(unusual.begin() + Below(unusual.size()));
    }
    return *(usual.begin() + Below(usual.size()));
  }

  static std::string CrLf(const std::string& text) {
    std::string out;
    for (char c : text) {
      if (c == '\n') out += '\r';
      out += c;
    }
    return out;
  }

  void Mutate(std::string* text) {
    if (text->empty()) return;
    (*text)[Below(text->size())] = "-:[]{}|>'\"\n #&*!\t?,%@`\\~"[Below(25)];
  }

  std::string Key() {
    return Pick({"revision", "down_revision", "description", "branch_labels", "depends_on",
                 "transactional", "upgrade", "downgrade", "x-owner", "x_a.b-c", "0012", "id",
                 "true", "_", "x-", std::string(128, 'k')},
                {"null", "Null", "NULL", "~", "a b", "-x", "?x", "k:", "caf\xC3\xA9", "\"quoted\"",
                 "'q'", std::string(129, 'k'), "", "  indented", "!t k", "&a k"});
  }

  std::string Plain() {
    // clang-format off
    return Pick({"fc0e7b400c13", "SELECT 1;", "Create table number 1 with its index", "null",
                 "Null", "NULL", "~", "~x", "true", "0012", "1e3", "a:b", "a :b", "a #c", "a#b",
                 "x   ", "x  # c", "caf\xC3\xA9", "_x", ".5", "...", "(x)", "$x", "/p",
                 "SELECT 'a''b' -- \"c\";", "x: y", "x:"},
                {"a: b", "a:", "'q'", "\"q\"", "-1", "a\tb", "%x", "@x", "`x", "*x", "&x", "!x",
                 "{a}", "[a", "a]", "a,b", "a, b", "\xC2\x85x", "x\x01y", "x\x7fy", "?x", ":x",
                 "|x", ">x", "#x", "\xEF\xBB\xBFx"});
    // clang-format on
  }

  std::string Quoted() {
    const std::string quote = Below(2) ? "'" : "\"";
    std::string text = quote + Pick({"", "x", " padded ", "a b", "#x", "a: b", "caf\xC3\xA9",
                                     "x # y", "[a, b]", "|"},
                                    {"it''s", "a\\nb", "a\\\"b", "a\tb", "\\", "'", "\""});
    if (clean_ || Below(8) != 0) text += quote;
    text += Pick({"", "", " # c", " ", "  "}, {"# c", "x", ":", "'", "\"", ": x"});
    return text;
  }

  std::string Flow() {
    std::string text = "[";
    const size_t items = Below(4);
    for (size_t i = 0; i < items; ++i) {
      if (i > 0) text += Pick({", ", ",", " , ", ",  "}, {});
      text += Pick({"a1", "b.2-x", "null", "NULL", "'q'", "\"q\"", "1e3", "'a b'", "_"},
                   {"~", "a b", "-1", "", "[x]", "a:", "'it''s'", "x # c", "{a: b}", "&a x"});
    }
    if (!clean_ && Below(6) == 0) text += ",";
    if (clean_ || Below(8) != 0) text += "]";
    text += Pick({"", "", " # c", " "}, {"# c", "x", "\n  ]", ": x"});
    return text;
  }

  std::string Block() {
    std::string text = absl::StrCat("|", Pick({"", "", "-", "+"}, {"2", "-2", " ", " # c", "x"}));
    const size_t indent = Pick({"2", "2", "4", "1", "3"}, {"0"})[0] - '0';
    const std::string pad(indent, ' ');
    if (Below(6) == 0) text += absl::StrCat("\n", Pick({"", " ", "      "}, {"\t"}));
    const size_t lines = Below(6);
    for (size_t i = 0; i < lines; ++i) {
      text += "\n";
      switch (Below(8)) {
        case 0:
          text += Pick({"", " ", "        ", pad + "\t"}, {"\t", " \t"});  // blank
          break;
        case 1:
          text += pad + Pick({"    ", "  ", " \t"}, {}) + Plain();  // more indented
          break;
        case 2:
          if (!clean_) text += std::string(Below(indent + 1), ' ') + Plain();  // less
          break;
        default:
          text += pad + Pick({"CREATE TABLE t (id int);", "SELECT 'a''b' -- c: d # e", "  nested",
                              "x:", "- item", "# not a comment", "---", "...",
                              "\tafter the indentation", "caf\xC3\xA9"},
                             {});
      }
    }
    return text;
  }

  std::string Value() {
    std::string value;
    switch (Below(8)) {
      case 0:
        value = Quoted();
        break;
      case 1:
        value = Flow();
        break;
      case 2:
      case 3:
        value = Block();
        break;
      case 4:
        value = Pick({Plain()}, {"", " ", "&a x", "*a", "!!str x", "{a: b}", "- x", "? x", ">\n  x",
                                 "x\n  continued", "x\n\n  continued", "|\n\n  x", "|\n  x\n # c"});
        break;
      default:
        value = Plain();
    }
    return value + "\n";
  }

  std::mt19937 rng_;
  bool clean_ = false;  // the manifest being generated is of the simple form
  bool crlf_ = false;
};

TEST(SimpleReaderTest, AgreesWithYamlCppOnGeneratedManifests) {
  const int iterations = EnvOr("SLUICE_FUZZ_ITERATIONS", kIterations);
  ManifestGenerator generator(static_cast<uint32_t>(EnvOr("SLUICE_FUZZ_SEED", kSeed)));
  int simple = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string text = generator.Next();
    const std::optional<std::string> read = DumpSimpleRead(text);
    if (!read) continue;
    ++simple;
    ASSERT_EQ(DumpGeneralRead(text), read) << "text: " << base::JsonQuote(text);
  }
  // The generator must exercise the simple reader, and its refusals, to test much.
  EXPECT_GT(simple, iterations / 10);
  EXPECT_LT(simple, iterations * 9 / 10);
  std::cout << simple << " of " << iterations << " generated manifests read by the simple reader\n";
}

TEST(SimpleReaderTest, LoadsTheSameWithAndWithoutIt) {
  // A file of documents the simple reader takes and documents it leaves: ParseManifest must see no
  // difference between them (locations count from the file's start either way).
  const std::vector<Migration> migrations = *ParseManifest(
      "revision: a\nupgrade: |\n  SELECT 1;\n---\nrevision: b\ndown_revision: a\nupgrade: >\n  "
      "SELECT\n  2;\n---\n# c\nrevision: c\ndown_revision: b\nupgrade: |\n  SELECT 3;\n",
      "m.yaml");
  ASSERT_EQ(migrations.size(), 3u);
  EXPECT_EQ(migrations[1].upgrade_sql, "SELECT 2;\n");
  EXPECT_EQ(migrations[2].location.line, 12);
  EXPECT_EQ(migrations[2].upgrade_first_line, 15);
  EXPECT_EQ(migrations[2].upgrade_sql, "SELECT 3;\n");
}

}  // namespace
}  // namespace sluice::manifest
