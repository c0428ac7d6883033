#include "pkg/manifest/loader.h"

#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/manifest/error_line_test_util.h"
#include "tests/support/status_matchers.h"

namespace sluice::manifest {
namespace {

namespace fs = std::filesystem;

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::SizeIs;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

// Parses `text` as file "m.yaml", expecting success.
std::vector<Migration> ParseOk(absl::string_view text) {
  absl::StatusOr<std::vector<Migration>> result = ParseManifest(text, "m.yaml");
  EXPECT_THAT(result, IsOk());
  return result.ok() ? *std::move(result) : std::vector<Migration>{};
}

// Parses `text` as file "m.yaml", expecting failure; returns the error message.
std::string ParseError(absl::string_view text) {
  absl::StatusOr<std::vector<Migration>> result = ParseManifest(text, "m.yaml");
  EXPECT_THAT(result, StatusIs(kInvalid, ""));
  return std::string(result.status().message());
}

std::vector<std::string> Lines(absl::string_view message) { return absl::StrSplit(message, '\n'); }

// A scratch directory, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sluice_manifest_XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  // Writes `text` to `name` (relative), creating parent directories; returns the full path.
  std::string Write(const std::string& name, absl::string_view text) const {
    const fs::path path = path_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << text;
    return path.string();
  }

  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::vector<std::string> Revisions(const std::vector<Migration>& migrations) {
  std::vector<std::string> ids;
  for (const Migration& m : migrations) ids.push_back(m.revision);
  return ids;
}

// --- Keys and types ----------------------------------------------------------------------------

TEST(ParseManifestTest, ReadsEveryKey) {
  const std::vector<Migration> migrations = ParseOk(R"yaml(# header comment
revision: fc0e7b400c13
down_revision: [aaa, bbb]
description: Initial schema
branch_labels: [core, api]
depends_on: [ccc]
transactional: false
upgrade: |
  CREATE TABLE t (id int);
downgrade: |
  DROP TABLE t;
)yaml");
  ASSERT_THAT(migrations, SizeIs(1));
  const Migration& m = migrations[0];
  EXPECT_EQ(m.revision, "fc0e7b400c13");
  EXPECT_THAT(m.down_revisions, ElementsAre("aaa", "bbb"));
  EXPECT_TRUE(m.is_merge());
  EXPECT_EQ(m.description, "Initial schema");
  EXPECT_THAT(m.branch_labels, ElementsAre("core", "api"));
  EXPECT_THAT(m.depends_on, ElementsAre("ccc"));
  EXPECT_FALSE(m.transactional);
  EXPECT_EQ(m.upgrade_sql, "CREATE TABLE t (id int);\n");
  EXPECT_THAT(m.downgrade_sql, Optional(std::string("DROP TABLE t;\n")));
  EXPECT_EQ(m.location.file, "m.yaml");
  EXPECT_EQ(m.location.line, 2);
  EXPECT_EQ(m.location.column, 1);
  EXPECT_EQ(m.upgrade_first_line, 9);
  EXPECT_EQ(m.downgrade_first_line, 11);
}

TEST(ParseManifestTest, AppliesDefaults) {
  const std::vector<Migration> migrations = ParseOk("revision: a1\nupgrade: SELECT 1;\n");
  ASSERT_THAT(migrations, SizeIs(1));
  const Migration& m = migrations[0];
  EXPECT_THAT(m.down_revisions, IsEmpty());
  EXPECT_EQ(m.description, "");
  EXPECT_THAT(m.branch_labels, IsEmpty());
  EXPECT_THAT(m.depends_on, IsEmpty());
  EXPECT_TRUE(m.transactional);
  EXPECT_EQ(m.downgrade_sql, std::nullopt);
  EXPECT_EQ(m.downgrade_first_line, 0);
}

TEST(ParseManifestTest, AcceptsEveryFormOfDownRevisionAndLists) {
  const std::vector<Migration> migrations = ParseOk(R"yaml(revision: r1
down_revision: null
depends_on: null
branch_labels: null
upgrade: SELECT 1;
---
revision: r2
down_revision: r1
depends_on: r0
branch_labels: only
upgrade: SELECT 2;
---
revision: r3
down_revision: []
upgrade: SELECT 3;
---
revision: r4
down_revision:
  - r2
  - r3
depends_on:
  - r1
upgrade: SELECT 4;
---
revision: r5
down_revision:
upgrade: SELECT 5;
)yaml");
  ASSERT_THAT(migrations, SizeIs(5));
  EXPECT_THAT(migrations[0].down_revisions, IsEmpty());
  EXPECT_THAT(migrations[0].depends_on, IsEmpty());
  EXPECT_THAT(migrations[0].branch_labels, IsEmpty());
  EXPECT_THAT(migrations[1].down_revisions, ElementsAre("r1"));
  EXPECT_THAT(migrations[1].depends_on, ElementsAre("r0"));
  EXPECT_THAT(migrations[1].branch_labels, ElementsAre("only"));
  EXPECT_THAT(migrations[2].down_revisions, IsEmpty());
  EXPECT_THAT(migrations[3].down_revisions, ElementsAre("r2", "r3"));
  EXPECT_THAT(migrations[3].depends_on, ElementsAre("r1"));
  EXPECT_THAT(migrations[4].down_revisions, IsEmpty());
}

TEST(ParseManifestTest, KeepsRevisionIdsExactlyAsWritten) {
  // Plain scalars that YAML would read as numbers are ids: Alembic ids are strings.
  const std::vector<Migration> migrations = ParseOk(R"yaml(revision: 0012
upgrade: SELECT 1;
---
revision: 1e3
down_revision: 0012
upgrade: SELECT 2;
---
revision: 0x1F
down_revision: [1e3, 12.50]
upgrade: SELECT 3;
---
revision: "007"
upgrade: SELECT 4;
)yaml");
  EXPECT_THAT(Revisions(migrations), ElementsAre("0012", "1e3", "0x1F", "007"));
  ASSERT_THAT(migrations, SizeIs(4));
  EXPECT_THAT(migrations[1].down_revisions, ElementsAre("0012"));
  EXPECT_THAT(migrations[2].down_revisions, ElementsAre("1e3", "12.50"));
}

TEST(ParseManifestTest, ReadsTransactionalSpellings) {
  const std::vector<Migration> migrations = ParseOk(R"yaml(revision: a
transactional: true
upgrade: x
---
revision: b
transactional: False
upgrade: x
---
revision: c
transactional: no
upgrade: x
---
revision: d
transactional: on
upgrade: x
)yaml");
  ASSERT_THAT(migrations, SizeIs(4));
  EXPECT_TRUE(migrations[0].transactional);
  EXPECT_FALSE(migrations[1].transactional);
  EXPECT_FALSE(migrations[2].transactional);
  EXPECT_TRUE(migrations[3].transactional);
}

TEST(ParseManifestTest, ReadsMultiDocumentFilesAndSkipsEmptyDocuments) {
  const std::vector<Migration> migrations = ParseOk(R"yaml(---
# leading marker, then a comment
revision: one
upgrade: SELECT 1;
---
---
revision: two
upgrade: SELECT 2;
...
---
revision: three
upgrade: SELECT 3;
---
# only a comment
---
)yaml");
  EXPECT_THAT(Revisions(migrations), ElementsAre("one", "two", "three"));
  ASSERT_THAT(migrations, SizeIs(3));
  EXPECT_EQ(migrations[0].location.line, 3);
  EXPECT_EQ(migrations[1].location.line, 7);
  EXPECT_EQ(migrations[2].location.line, 11);
}

TEST(ParseManifestTest, EmptyFileHoldsNoRevisions) {
  EXPECT_THAT(ParseOk(""), IsEmpty());
  EXPECT_THAT(ParseOk("# nothing yet\n---\n"), IsEmpty());
}

TEST(ParseManifestTest, AllowsXKeys) {
  const std::vector<Migration> migrations = ParseOk(R"yaml(revision: a
x-owner: team-a
x-ticket: {id: 42, links: [a, b]}
upgrade: SELECT 1;
)yaml");
  EXPECT_THAT(Revisions(migrations), ElementsAre("a"));
}

TEST(ParseManifestTest, RefusesUnknownKeysWithASuggestion) {
  const std::string message = ParseError(R"yaml(revision: a
down_revison: null
message: from alembic
upgrde: SELECT 1;
colour: blue
X-owner: me
)yaml");
  const std::vector<std::string> lines = Lines(message);
  ASSERT_THAT(lines, SizeIs(5)) << message;
  EXPECT_EQ(lines[0],
            "m.yaml:2:1: unknown key `down_revison`; did you mean `down_revision`? (custom keys "
            "must start with `x-`)");
  EXPECT_THAT(lines[1],
              HasSubstr("m.yaml:3:1: unknown key `message`; did you mean `description`?"));
  EXPECT_THAT(lines[2], HasSubstr("m.yaml:4:1: unknown key `upgrde`; did you mean `upgrade`?"));
  EXPECT_THAT(lines[3], HasSubstr("m.yaml:5:1: unknown key `colour`; known keys are `revision`,"));
  EXPECT_THAT(lines[3], HasSubstr("custom keys must start with `x-`"));
  EXPECT_THAT(lines[4], HasSubstr("m.yaml:6:1: unknown key `X-owner`"));
}

TEST(ParseManifestTest, RefusesRevisionsMarkedUnconvertedNamingThemAndWhy) {
  const std::string message = ParseError(R"yaml(revision: a
upgrade: SELECT 1;
---
unconverted: "upgrade: it uses the database connection"
revision: b
down_revision: a
upgrade: SELECT 2;
)yaml");
  EXPECT_EQ(message,
            "m.yaml:4:1: revision b is marked `unconverted`: upgrade: it uses the database "
            "connection; write its upgrade and downgrade SQL by hand, then delete the "
            "`unconverted` key");
  // Without its id the marker still fails, naming what it can.
  EXPECT_THAT(ParseError("unconverted: null\nupgrade: SELECT 1;\n"),
              HasSubstr("m.yaml:1:1: this revision is marked `unconverted`; write its"));
}

TEST(ParseManifestTest, RefusesAMissingRevision) {
  EXPECT_EQ(ParseError("description: no id\nupgrade: SELECT 1;\n"),
            "m.yaml:1:1: the document has no `revision` key; add `revision: <id>` (1-32 "
            "characters of A-Z a-z 0-9 _ . -)");
}

TEST(ParseManifestTest, RefusesInvalidRevisionIds) {
  const std::string too_long(33, 'a');
  const std::string longest(32, 'a');
  EXPECT_THAT(ParseOk(absl::StrCat("revision: ", longest, "\nupgrade: x\n")), SizeIs(1));
  EXPECT_THAT(ParseError(absl::StrCat("revision: ", too_long, "\nupgrade: x\n")),
              HasSubstr("m.yaml:1:11: revision id `" + too_long +
                        "` is 33 characters long, more than the 32"));
  EXPECT_THAT(ParseError("revision: abc/def\nupgrade: x\n"),
              HasSubstr("m.yaml:1:11: revision id `abc/def` contains `/`; use 1-32 characters"));
  EXPECT_THAT(ParseError("revision: \"\"\nupgrade: x\n"),
              HasSubstr("m.yaml:1:11: revision id \"\" is empty"));
  EXPECT_THAT(ParseError("revision: héllo\nupgrade: x\n"), HasSubstr("contains byte 0xC3"));
  EXPECT_THAT(ParseError("revision: a b\nupgrade: x\n"), HasSubstr("contains ` `"));
  EXPECT_THAT(ParseError("revision: a\ndown_revision: [ok, \"no way\"]\nupgrade: x\n"),
              HasSubstr("m.yaml:2:21: revision id `no way` in `down_revision` contains ` `"));
  EXPECT_THAT(ParseError("revision: a\ndown_revision: \"\"\nupgrade: x\n"),
              HasSubstr("(use null for a base revision)"));
  EXPECT_THAT(ParseError("revision: a\ndepends_on: [\"b@head\"]\nupgrade: x\n"),
              HasSubstr("m.yaml:2:14: revision id `b@head` in `depends_on` contains `@`"));
}

TEST(ParseManifestTest, RefusesWrongTypes) {
  const std::string message = ParseError(R"yaml(revision: [a, b]
transactional: yes please
upgrade:
  sql: SELECT 1;
downgrade: [DROP TABLE t]
description: [not, text]
down_revision: {a: b}
branch_labels: [[nested]]
depends_on: [{a: 1}]
)yaml");
  const std::vector<std::string> lines = Lines(message);
  ASSERT_THAT(lines, SizeIs(8)) << message;
  EXPECT_THAT(lines[0], HasSubstr("m.yaml:1:11: `revision` must be one id, not a list;"));
  EXPECT_THAT(lines[1],
              HasSubstr("m.yaml:2:16: `transactional` must be true or false, not the value "
                        "`yes please`; write `transactional: false`"));
  EXPECT_THAT(lines[2], HasSubstr("m.yaml:4:3: `upgrade` must be a string, not a mapping; write "
                                  "the SQL as a block: `upgrade: |`"));
  EXPECT_THAT(lines[3], HasSubstr("m.yaml:5:12: `downgrade` must be a string, not a list"));
  EXPECT_THAT(lines[4], HasSubstr("m.yaml:6:14: `description` must be a string, not a list"));
  EXPECT_THAT(lines[5],
              HasSubstr("m.yaml:7:16: `down_revision` must be a revision id or a list of them, "
                        "not a mapping"));
  EXPECT_THAT(lines[6],
              HasSubstr("m.yaml:8:17: each entry of `branch_labels` must be a label, not a list"));
  EXPECT_THAT(lines[7], HasSubstr("m.yaml:9:14: each entry of `depends_on` must be a revision "
                                  "id, not a mapping"));
}

TEST(ParseManifestTest, RefusesQuotedAndMissingBooleans) {
  EXPECT_THAT(ParseError("revision: a\ntransactional: \"false\"\nupgrade: x\n"),
              HasSubstr("m.yaml:2:16: `transactional` is the quoted string \"false\", not a "
                        "boolean; remove the quotes"));
  EXPECT_THAT(ParseError("revision: a\ntransactional:\nupgrade: x\n"),
              HasSubstr("`transactional` must be true or false, not null"));
}

TEST(ParseManifestTest, RefusesBadBranchLabelsAndRepeatedEntries) {
  EXPECT_THAT(ParseError("revision: a\nbranch_labels: [\"x@y\"]\nupgrade: x\n"),
              HasSubstr("m.yaml:2:17: branch label `x@y` contains a blank or `@`"));
  EXPECT_THAT(ParseError("revision: a\nbranch_labels: \"\"\nupgrade: x\n"),
              HasSubstr("branch label \"\" is empty"));
  EXPECT_THAT(ParseError("revision: a\ndown_revision: [b, c, b]\nupgrade: x\n"),
              HasSubstr("m.yaml:2:23: `b` appears twice in `down_revision`; list it once"));
}

TEST(ParseManifestTest, RefusesDuplicateKeys) {
  EXPECT_EQ(ParseError("revision: a\nupgrade: x\nupgrade: y\n"),
            "m.yaml:3:1: duplicate key `upgrade` (first at line 2); keep only one");
}

TEST(ParseManifestTest, RefusesDocumentsThatAreNotMappings) {
  const std::string message =
      ParseError("- revision: a\n---\njust text\n---\n{revision: b, upgrade: x}\n");
  const std::vector<std::string> lines = Lines(message);
  ASSERT_THAT(lines, SizeIs(2)) << message;
  EXPECT_THAT(lines[0], HasSubstr("m.yaml:1:1: the document is a list, not a mapping; each "
                                  "`---`-separated document must be one revision's keys"));
  EXPECT_THAT(lines[1], HasSubstr("m.yaml:3:1: the document is the value `just text`, not a "
                                  "mapping"));
}

TEST(ParseManifestTest, RefusesNonScalarKeys) {
  EXPECT_THAT(ParseError("revision: a\nupgrade: x\n? [b, c]\n: d\n"),
              HasSubstr("m.yaml:3:3: a key must be a plain name, not a list"));
}

TEST(ParseManifestTest, KeepsMessagesOnOneLinePerError) {
  // A key holding a newline is shown JSON-quoted, so the message keeps one error per line.
  const std::string message = ParseError("revision: a\n\"bad\\nkey\": 1\nupgrade: x\n");
  EXPECT_THAT(Lines(message), SizeIs(1)) << message;
  EXPECT_THAT(message, HasSubstr("m.yaml:2:1: unknown key \"bad\\nkey\"; known keys are"));
}

// --- Malformed YAML ------------------------------------------------------------------------------

TEST(ParseManifestTest, ReportsMalformedYamlWithItsLocation) {
  EXPECT_EQ(ParseError("revision: a\nupgrade: [SELECT 1\ndowngrade: x\n"),
            "m.yaml:3:10: invalid YAML: end of sequence flow not found; check the quoting and "
            "indentation here and on the lines just above");
  // yaml-cpp 0.7 accepts an unclosed quote when the text ends with a line break, and would take
  // `downgrade:` as part of the upgrade SQL.
  EXPECT_EQ(ParseError("revision: a\nupgrade: \"SELECT 1;\ndowngrade: SELECT 2;\n\n"),
            "m.yaml:3:21: invalid YAML: a quoted value is not closed by the end of the document "
            "(it opens after line 2); add the closing quote");
  EXPECT_THAT(ParseError("revision: a\nupgrade: 'SELECT 1;\n"), HasSubstr("m.yaml:2:20: "));
  // yaml-cpp puts the bad character itself in some messages; it must not break the line.
  const std::string message = ParseError("revision: a\nupgrade: \"x\\\ry\"\n");
  EXPECT_THAT(Lines(message), SizeIs(1)) << message;
  EXPECT_THAT(message, HasSubstr("invalid YAML: unknown escape character: \\x0D;"));
}

TEST(ParseManifestTest, KeepsParsingTheDocumentsAfterASyntaxError) {
  // Errors in the second and fourth documents; the line numbers must count from the file's start.
  const std::string message = ParseError(R"yaml(revision: ok1
upgrade: SELECT 1;
---
revision: broken
upgrade: 'unterminated
---
revision: ok2
upgrade: SELECT 2;
---
revision: bad id
upgrade: SELECT 3;
)yaml");
  const std::vector<std::string> lines = Lines(message);
  ASSERT_THAT(lines, SizeIs(2)) << message;
  EXPECT_THAT(lines[0], HasSubstr("m.yaml:5:23: invalid YAML: a quoted value is not closed"));
  EXPECT_THAT(lines[1], HasSubstr("m.yaml:10:11: revision id `bad id` contains ` `"));
}

TEST(ParseManifestTest, RefusesStrayTextWhereADocumentStarts) {
  // yaml-cpp 0.7 returns an empty document for a stray `,` without consuming it: LoadAll then
  // loops forever, and Load would silently drop everything after it.
  EXPECT_EQ(ParseError(", revision: a\nupgrade: x\n"),
            "m.yaml:1:1: invalid YAML: unexpected text where a document should go on; remove it, "
            "or start a new document with a `---` line");
  EXPECT_THAT(ParseError("revision: a\nupgrade: x\n---\n,\n"), HasSubstr("m.yaml:4:1: "));
}

TEST(ParseManifestTest, KeepsDirectivesWithTheirDocument) {
  const std::vector<Migration> migrations = ParseOk(R"yaml(%YAML 1.2
# a comment between
---
revision: a
upgrade: x
...
%YAML 1.2
---
revision: b
upgrade: y
)yaml");
  EXPECT_THAT(Revisions(migrations), ElementsAre("a", "b"));
}

TEST(ParseManifestTest, SaysToIndentWithSpacesWhenTabsAreUsed) {
  EXPECT_THAT(ParseError("revision: a\n\tupgrade: x\n"),
              HasSubstr("m.yaml:2:1: invalid YAML: illegal tab when looking for indentation; "
                        "indent with spaces"));
  // Tabs inside SQL text are fine.
  const std::vector<Migration> migrations = ParseOk("revision: a\nupgrade: |\n  SELECT\t1;\n");
  ASSERT_THAT(migrations, SizeIs(1));
  EXPECT_EQ(migrations[0].upgrade_sql, "SELECT\t1;\n");
}

TEST(ParseManifestTest, RefusesBytesThatAreNotUtf8Text) {
  EXPECT_EQ(ParseError(std::string("revision: a\nupgrade: SEL\0ECT\n", 25)),
            "m.yaml:2:13: the file holds a NUL byte, so it is not a text file; a manifest must "
            "be UTF-8 YAML text");
  EXPECT_EQ(ParseError("revision: a\nupgrade: caf\xE9\n"),
            "m.yaml:2:13: invalid UTF-8 (byte 0xE9); save the file as UTF-8");
  EXPECT_THAT(ParseError("\xFF\xFEr\0e\0"), HasSubstr("m.yaml:1:1: the file is UTF-16"));
  // Overlong encodings and surrogates are not UTF-8 either.
  EXPECT_THAT(ParseError("revision: a\nupgrade: \xC0\xAF\n"), HasSubstr("invalid UTF-8"));
  EXPECT_THAT(ParseError("revision: a\nupgrade: \xED\xA0\x80\n"), HasSubstr("invalid UTF-8"));
}

TEST(ParseManifestTest, AcceptsAUtf8ByteOrderMarkAndCountsColumnsInCharacters) {
  const std::vector<Migration> migrations =
      ParseOk("\xEF\xBB\xBFrevision: a\nupgrade: SELECT 'é';\n");
  ASSERT_THAT(migrations, SizeIs(1));
  EXPECT_EQ(migrations[0].upgrade_sql, "SELECT 'é';");
  EXPECT_EQ(migrations[0].location.column, 1);
  // `é` is two bytes but one column.
  EXPECT_THAT(ParseError("{description: é, revison: a}\n"),
              HasSubstr("m.yaml:1:18: unknown key `revison`"));
}

TEST(ParseManifestTest, RefusesPathologicalNesting) {
  EXPECT_THAT(ParseError(std::string(100000, '[')), HasSubstr("nested more than 500 levels"));
  std::string block;
  for (int i = 0; i < 2000; ++i) block += "- ";
  EXPECT_THAT(ParseError(absl::StrCat("revision: a\nupgrade: ", std::string(5000, '{'))),
              HasSubstr("nested more than 500 levels"));
  EXPECT_THAT(ParseError(block + "x\n"), HasSubstr("m.yaml:1:"));
}

TEST(ParseManifestTest, SurvivesAliasBombs) {
  // "Billion laughs": yaml-cpp shares aliased nodes, so this stays small; the loader must not walk
  // it either.
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 30; ++i) {
    absl::StrAppend(&text, "a", i, ": &a", i, " [");
    for (int k = 0; k < 10; ++k) absl::StrAppend(&text, k ? ", " : "", "*a", i - 1);
    absl::StrAppend(&text, "]\n");
  }
  absl::StrAppend(&text, "revision: r\nupgrade: *a29\ndown_revision: *a29\n");
  const auto start = std::chrono::steady_clock::now();
  const std::string message = ParseError(text);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(message, HasSubstr("`upgrade` must be a string, not a list"));
  EXPECT_THAT(message,
              HasSubstr("each entry of `down_revision` must be a revision id, not a list"));
}

TEST(ParseManifestTest, CapsTheNumberOfReportedErrors) {
  std::string text;
  for (int i = 0; i < 5000; ++i) absl::StrAppend(&text, "---\nnot a mapping\n");
  const std::vector<std::string> lines = Lines(ParseError(text));
  ASSERT_THAT(lines, SizeIs(201));
  EXPECT_THAT(lines[0], HasSubstr("m.yaml:2:1: the document is the value `not a mapping`"));
  EXPECT_EQ(lines[200], "(4800 more problems not shown; fix the ones above first)");
}

// --- Empty upgrade and merges --------------------------------------------------------------------

TEST(ParseManifestTest, RefusesAnEmptyUpgradeExceptForMerges) {
  EXPECT_EQ(ParseError("revision: a\ndown_revision: b\n"),
            "m.yaml:1:1: the document has no `upgrade` key; add `upgrade: |` followed by the SQL "
            "(only a merge revision, with two or more `down_revision`s, may omit it)");
  EXPECT_EQ(ParseError("revision: a\nupgrade: ''\n"),
            "m.yaml:2:1: `upgrade` is empty; write the SQL (only a merge revision, with two or "
            "more `down_revision`s, may have none)");
  EXPECT_THAT(ParseError("revision: a\nupgrade: |\n\n   \n"), HasSubstr("`upgrade` is empty"));
  EXPECT_THAT(ParseError("revision: a\nupgrade:\n"), HasSubstr("m.yaml:2:1: `upgrade` is empty"));
  EXPECT_THAT(ParseError("revision: a\ndown_revision: [b]\n"), HasSubstr("no `upgrade` key"));

  const std::vector<Migration> merges = ParseOk(
      "revision: m1\ndown_revision: [b, c]\n---\nrevision: m2\ndown_revision: [b, c]\n"
      "upgrade: ''\n");
  ASSERT_THAT(merges, SizeIs(2));
  EXPECT_EQ(merges[0].upgrade_sql, "");
  EXPECT_EQ(merges[0].upgrade_first_line, 0);
  EXPECT_EQ(merges[0].checksum,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // A merge may still carry SQL.
  EXPECT_THAT(ParseOk("revision: m\ndown_revision: [b, c]\nupgrade: SELECT 1;\n"), SizeIs(1));
}

// --- Checksums and SQL line mapping ------------------------------------------------------------

TEST(ParseManifestTest, ChecksumsTheUpgradeTextExactlyAsParsed) {
  const std::vector<Migration> migrations = ParseOk(
      "revision: a\nupgrade: |\n  CREATE TABLE t (id int);\n---\nrevision: b\nupgrade: |-\n"
      "  CREATE TABLE t (id int);\n");
  ASSERT_THAT(migrations, SizeIs(2));
  EXPECT_EQ(migrations[0].checksum,
            "sha256:12c83f983b0c94b9c7010dcc92149589d5fb01a3d32af8f6d699545d95db9040");
  // `|-` strips the final newline: different text, different checksum.
  EXPECT_EQ(migrations[1].upgrade_sql, "CREATE TABLE t (id int);");
  EXPECT_NE(migrations[1].checksum, migrations[0].checksum);
}

TEST(ParseManifestTest, MapsTheFirstSqlLineToTheFileLine) {
  const std::vector<Migration> migrations = ParseOk(R"yaml(revision: block
upgrade: |
  SELECT 1;
downgrade: >-
  SELECT 2;
---
revision: plain
upgrade: SELECT 1;
downgrade: "SELECT 2;"
---
revision: tagged
upgrade: !!str |  # a comment
  SELECT 1;
downgrade: &anchor
  SELECT 2;
---
revision: below
upgrade:
  'SELECT 1;'
downgrade:
  |

    SELECT 2;
---
revision: alias
x-sql: &sql |
  SELECT 1;
upgrade: *sql
)yaml");
  ASSERT_THAT(migrations, SizeIs(5));
  EXPECT_EQ(migrations[0].upgrade_first_line, 3);
  EXPECT_EQ(migrations[0].downgrade_first_line, 5);
  EXPECT_EQ(migrations[1].upgrade_first_line, 8);
  EXPECT_EQ(migrations[1].downgrade_first_line, 9);
  EXPECT_EQ(migrations[2].upgrade_first_line, 13);
  EXPECT_EQ(migrations[2].downgrade_first_line, 15);
  EXPECT_EQ(migrations[3].upgrade_first_line, 19);
  // The SQL's first line is the blank line 22 (a block scalar keeps leading blank lines).
  EXPECT_EQ(*migrations[3].downgrade_sql, "\nSELECT 2;\n");
  EXPECT_EQ(migrations[3].downgrade_first_line, 22);
  // An alias's text is where the anchored value is.
  EXPECT_EQ(migrations[4].upgrade_first_line, 27);
}

TEST(ParseManifestTest, MapsSqlLinesInFilesWithCrlfLineEnds) {
  const std::vector<Migration> migrations =
      ParseOk("revision: a\r\ndescription: x\r\nupgrade: |\r\n  SELECT 1;\r\n  SELECT 2;\r\n");
  ASSERT_THAT(migrations, SizeIs(1));
  EXPECT_EQ(migrations[0].upgrade_sql, "SELECT 1;\nSELECT 2;\n");
  EXPECT_EQ(migrations[0].upgrade_first_line, 4);
}

TEST(ParseManifestTest, RefusesDuplicateRevisionsWithinAFile) {
  EXPECT_EQ(ParseError("revision: a\nupgrade: x\n---\nupgrade: y\nrevision: a\n"),
            "m.yaml:5:1: duplicate revision `a`, already defined at m.yaml:1:1; give one of them "
            "a new id, or delete the copy");
}

TEST(ErrorLineFormatTest, TheCheckerRefusesUnlocatedLines) {
  EXPECT_TRUE(IsLocatedErrorLine("d/m.yaml:3: bad; fix"));
  EXPECT_TRUE(IsLocatedErrorLine("m.yml:3:14: bad; fix"));
  EXPECT_FALSE(IsLocatedErrorLine("m.yaml: bad; fix"));
  EXPECT_FALSE(IsLocatedErrorLine("m.yaml:3:14: bad, no fix"));
  EXPECT_FALSE(IsLocatedErrorLine("m.yaml:3:x: bad; fix"));
  EXPECT_FALSE(IsLocatedErrorLine("m.yaml:3:14: bad\r; fix"));
}

TEST(IsValidRevisionIdTest, FollowsAlembicsVersionNumColumn) {
  EXPECT_TRUE(IsValidRevisionId("fc0e7b400c13"));
  EXPECT_TRUE(IsValidRevisionId("A-z_0.9"));
  EXPECT_TRUE(IsValidRevisionId(std::string(32, 'x')));
  EXPECT_FALSE(IsValidRevisionId(""));
  EXPECT_FALSE(IsValidRevisionId(std::string(33, 'x')));
  EXPECT_FALSE(IsValidRevisionId("a b"));
  EXPECT_FALSE(IsValidRevisionId("a/b"));
  EXPECT_FALSE(IsValidRevisionId("a@head"));
  EXPECT_FALSE(IsValidRevisionId("caf\xC3\xA9"));
}

// --- Directories ---------------------------------------------------------------------------------

constexpr absl::string_view kRevisionA = "revision: a\nupgrade: SELECT 1;\n";
constexpr absl::string_view kRevisionB = "revision: b\ndown_revision: a\nupgrade: SELECT 2;\n";

TEST(LoadDirectoriesTest, LoadsTheFixtureDirectory) {
  absl::StatusOr<std::vector<Migration>> result =
      LoadDirectories({std::string(SLUICE_MANIFEST_TESTDATA) + "/valid"});
  SLUICE_ASSERT_OK(result);
  // notes.txt and .hidden.yaml are not read; files in name order, documents in file order.
  EXPECT_THAT(Revisions(*result), ElementsAre("fc0e7b400c13", "1a2b3c4d5e6f", "0012", "7f00merge"));
  ASSERT_THAT(*result, SizeIs(4));
  EXPECT_EQ((*result)[0].upgrade_first_line, 9);
  EXPECT_EQ((*result)[0].downgrade_first_line, 12);
  EXPECT_THAT((*result)[0].location.file, ::testing::EndsWith("valid/0001_initial.yaml"));
  EXPECT_FALSE((*result)[2].transactional);
  EXPECT_THAT((*result)[2].branch_labels, ElementsAre("reporting"));
  EXPECT_EQ((*result)[2].location.line, 8);
  EXPECT_TRUE((*result)[3].is_merge());
}

TEST(LoadDirectoriesTest, ReportsEveryBrokenFileInOneStatus) {
  const std::string dir = std::string(SLUICE_MANIFEST_TESTDATA) + "/invalid";
  absl::StatusOr<std::vector<Migration>> result = LoadDirectories({dir});
  ASSERT_THAT(result, StatusIs(kInvalid, ""));
  const std::vector<std::string> lines = Lines(result.status().message());
  ASSERT_THAT(lines, SizeIs(4)) << result.status();
  EXPECT_EQ(lines[0], dir +
                          "/a_typo.yaml:2:1: unknown key `down_revison`; did you mean "
                          "`down_revision`? (custom keys must start with `x-`)");
  EXPECT_THAT(lines[1], HasSubstr(dir + "/b_types.yaml:1:11: `revision` must be one id"));
  EXPECT_THAT(lines[2],
              HasSubstr(dir + "/b_types.yaml:2:16: `transactional` must be true or false"));
  EXPECT_THAT(lines[3], HasSubstr(dir + "/b_types.yaml:4:3: `upgrade` must be a string"));
}

TEST(LoadDirectoriesTest, EveryErrorLineNamesAFileAndALine) {
  TempDir dir;
  dir.Write("1.yaml", "revision: [x]\nupgrade: {}\n---\n- a\n");
  dir.Write("2.yaml", "revision: ok\nupgrade: 'x\n");
  dir.Write("3.yaml", std::string("\0\0", 2));
  absl::StatusOr<std::vector<Migration>> result = LoadDirectories({dir.path()});
  ASSERT_THAT(result, StatusIs(kInvalid, ""));
  const std::vector<std::string> lines = Lines(result.status().message());
  EXPECT_THAT(lines, SizeIs(5)) << result.status();
  for (const std::string& line : lines) {
    EXPECT_TRUE(IsLocatedErrorLine(line)) << line;
  }
}

TEST(LoadDirectoriesTest, RefusesDuplicateRevisionsAcrossFilesNamingBoth) {
  TempDir dir;
  const std::string first = dir.Write("001.yaml", kRevisionA);
  const std::string second = dir.Write("002.yaml", absl::StrCat("# copy\n", kRevisionA));
  absl::StatusOr<std::vector<Migration>> result = LoadDirectories({dir.path()});
  EXPECT_THAT(result, StatusIs(kInvalid, absl::StrCat(second,
                                                      ":2:1: duplicate revision `a`, "
                                                      "already defined at ",
                                                      first, ":1:1;")));
}

TEST(LoadDirectoriesTest, ReadsYamlAndYmlOnlyAndSkipsDotfilesAndSubdirectories) {
  TempDir dir;
  dir.Write("b.yml", kRevisionB);
  dir.Write("a.yaml", kRevisionA);
  dir.Write("c.json", "not: [read");
  dir.Write("d.yaml.bak", "not: [read");
  dir.Write("e.YAML", "not: [read");
  dir.Write("README", "not: [read");
  dir.Write(".f.yaml", "not: [read");
  dir.Write(".git/config.yaml", "not: [read");
  dir.Write("sub/g.yaml", "not: [read");
  dir.Write("h.yaml/inner.yaml", "not: [read");  // a directory named like a manifest
  absl::StatusOr<std::vector<Migration>> result = LoadDirectories({dir.path()});
  SLUICE_ASSERT_OK(result);
  EXPECT_THAT(Revisions(*result), ElementsAre("a", "b"));
}

TEST(LoadDirectoriesTest, ReadsSeveralDirectoriesInTheGivenOrder) {
  TempDir dir;
  dir.Write("one/z.yaml", "revision: z\nupgrade: x\n");
  dir.Write("two/a.yaml", "revision: a\nupgrade: x\n");
  dir.Write("two/b.yaml", "revision: b\nupgrade: x\n");
  absl::StatusOr<std::vector<Migration>> result = LoadDirectories({dir / "two", dir / "one"});
  SLUICE_ASSERT_OK(result);
  EXPECT_THAT(Revisions(*result), ElementsAre("a", "b", "z"));
  ASSERT_THAT(*result, SizeIs(3));
  EXPECT_EQ((*result)[2].location.file, dir / "one/z.yaml");
  EXPECT_THAT(LoadDirectories({}), IsOk());
}

TEST(LoadDirectoriesTest, ReadsAMountedConfigMapOnce) {
  // The layout the kubelet makes for a ConfigMap volume: the data in a timestamped directory, an
  // atomically swapped `..data` link to it, and one link per key through `..data`.
  TempDir dir;
  const std::string data = "..2026_11_24_07_25_00.123456789";
  dir.Write(data + "/a.yaml", kRevisionA);
  dir.Write(data + "/b.yml", kRevisionB);
  fs::create_directory_symlink(data, dir / "..data");
  fs::create_symlink("..data/a.yaml", dir / "a.yaml");
  fs::create_symlink("..data/b.yml", dir / "b.yml");
  absl::StatusOr<std::vector<Migration>> result = LoadDirectories({dir.path()});
  SLUICE_ASSERT_OK(result);
  EXPECT_THAT(Revisions(*result), ElementsAre("a", "b"));
  ASSERT_THAT(*result, SizeIs(2));
  EXPECT_EQ((*result)[0].location.file, dir / "a.yaml");

  // The mount point itself may be reached through a link too.
  fs::create_directory_symlink(dir.path(), dir.path() + "-link");
  result = LoadDirectories({dir.path() + "-link"});
  fs::remove(dir.path() + "-link");
  SLUICE_ASSERT_OK(result);
  EXPECT_THAT(Revisions(*result), ElementsAre("a", "b"));
}

TEST(LoadDirectoriesTest, ReportsMissingDirectoriesAndUnreadableFiles) {
  TempDir dir;
  dir.Write("ok/a.yaml", kRevisionA);
  fs::create_symlink("nowhere.yaml", dir / "ok/broken.yaml");
  fs::create_symlink("loop.yaml", dir / "ok/loop.yaml");
  ASSERT_EQ(::mkfifo((dir / "ok/pipe.yaml").c_str(), 0644), 0);  // reading it would block
  dir.Write("file.yaml", kRevisionA);
  absl::StatusOr<std::vector<Migration>> result =
      LoadDirectories({dir / "missing", dir / "ok", dir / "file.yaml"});
  ASSERT_THAT(result, StatusIs(kInvalid, ""));
  const std::vector<std::string> lines = Lines(result.status().message());
  ASSERT_THAT(lines, SizeIs(5)) << result.status();
  EXPECT_THAT(lines[0], HasSubstr(dir / "missing" + ": cannot open the migrations directory"));
  EXPECT_THAT(lines[1], HasSubstr(dir / "ok/broken.yaml" + ": cannot open the file"));
  EXPECT_THAT(lines[2], HasSubstr(dir / "ok/loop.yaml" + ": cannot open the file"));
  EXPECT_THAT(lines[3], HasSubstr(dir / "ok/pipe.yaml" + ": is not a regular file"));
  EXPECT_THAT(lines[4], HasSubstr(dir / "file.yaml" + ": is not a directory"));
}

TEST(ListManifestFilesTest, ListsWhatTheLoadReads) {
  // A mounted ConfigMap (see ReadsAMountedConfigMapOnce) beside a plain directory: the `..data`
  // entries are skipped, the key links listed once, a directory named like a manifest skipped.
  TempDir dir;
  const std::string data = "..2026_11_24_07_25_00.123456789";
  dir.Write("mounted/" + data + "/b.yml", kRevisionB);
  fs::create_directory_symlink(data, dir / "mounted/..data");
  fs::create_symlink("..data/b.yml", dir / "mounted/b.yml");
  dir.Write("plain/a.yaml", kRevisionA);
  dir.Write("plain/notes.txt", "not a manifest");
  fs::create_directories(dir / "plain/sub.yaml");
  absl::StatusOr<std::vector<ManifestFile>> files =
      ListManifestFiles({dir / "plain", dir / "mounted"});
  SLUICE_ASSERT_OK(files);
  ASSERT_THAT(*files, SizeIs(2));
  EXPECT_EQ((*files)[0].path, dir / "plain/a.yaml");
  EXPECT_EQ((*files)[0].name, "a.yaml");
  EXPECT_EQ((*files)[1].path, dir / "mounted/b.yml");
  EXPECT_EQ((*files)[1].name, "b.yml");

  fs::create_symlink("nowhere.yaml", dir / "plain/broken.yaml");
  EXPECT_THAT(ListManifestFiles({dir / "plain"}),
              StatusIs(kInvalid, dir / "plain/broken.yaml" + ": cannot open the file"));
  EXPECT_THAT(ListManifestFiles({dir / "missing"}),
              StatusIs(kInvalid, "cannot open the migrations directory"));
}

// Returns what LoadDirectories({directory}) returns, as text: "OK" or the status.
std::string LoadOutcome(const std::string& directory) {
  const absl::StatusOr<std::vector<Migration>> result = LoadDirectories({directory});
  return result.ok() ? "OK" : result.status().ToString();
}

// Returns LoadOutcome(directory) as a user without privileges gets it. Root opens files whatever
// their mode (and CI runs as root), so root loads in a child process that first becomes `nobody`.
std::string LoadOutcomeWithoutPrivileges(const std::string& directory) {
  if (::geteuid() != 0) return LoadOutcome(directory);
  constexpr uid_t kNobody = 65534;  // nobody and nogroup, on Debian as on most systems
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return absl::StrCat("pipe: ", std::strerror(errno));
  const pid_t child = ::fork();
  if (child < 0) return absl::StrCat("fork: ", std::strerror(errno));
  if (child == 0) {
    ::close(pipe_fds[0]);
    const std::string outcome = ::setgroups(0, nullptr) == 0 &&
                                        ::setresgid(kNobody, kNobody, kNobody) == 0 &&
                                        ::setresuid(kNobody, kNobody, kNobody) == 0
                                    ? LoadOutcome(directory)
                                    : absl::StrCat("cannot become nobody: ", std::strerror(errno));
    size_t written = 0;
    while (written < outcome.size()) {
      const ssize_t n = ::write(pipe_fds[1], outcome.data() + written, outcome.size() - written);
      if (n <= 0) ::_exit(1);
      written += static_cast<size_t>(n);
    }
    ::_exit(0);  // no gtest or sanitizer teardown in the child
  }
  ::close(pipe_fds[1]);
  std::string outcome;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof(buffer))) != 0;) {
    if (n > 0) outcome.append(buffer, static_cast<size_t>(n));
    if (n < 0 && errno != EINTR) break;
  }
  ::close(pipe_fds[0]);
  int wait_status = 0;
  while (::waitpid(child, &wait_status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
      << "the unprivileged child failed, wait status " << wait_status;
  return outcome;
}

TEST(LoadDirectoriesTest, ReportsFilesItCannotRead) {
  TempDir dir;
  // The directory must be open to others (mkdtemp makes it 0700), the file to nobody.
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  const std::string unreadable = dir.Write("a.yaml", kRevisionA);
  dir.Write("b.yaml", kRevisionB);
  ASSERT_EQ(::chmod(unreadable.c_str(), 0), 0);
  EXPECT_EQ(LoadOutcomeWithoutPrivileges(dir.path()),
            absl::StrCat("INVALID_ARGUMENT: ", unreadable,
                         ": cannot open the file: Permission denied; check that it exists and is "
                         "readable by this user"));
}

}  // namespace
}  // namespace sluice::manifest
