#include "pkg/base/text.h"
#include "pkg/base/sha256.h"

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

TEST(JsonQuoteTest, EscapesQuotesControlCharactersAndInvalidUtf8) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("line\nnext\ttab"), "\"line\\nnext\\ttab\"");
  EXPECT_EQ(JsonQuote(std::string("\x01", 1)), "\"\\u0001\"");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(JsonQuote("bad\xff"), "\"bad\\u00ff\"");
  EXPECT_EQ(JsonQuote("cut\xc3"), "\"cut\\u00c3\"");
}

TEST(FirstInvalidUtf8Test, FindsTheFirstBadByte) {
  EXPECT_EQ(FirstInvalidUtf8("plain ascii text, longer than eight bytes"), absl::string_view::npos);
  EXPECT_EQ(FirstInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), absl::string_view::npos);
  EXPECT_EQ(FirstInvalidUtf8("0123456789\xff"), 10u);
  EXPECT_EQ(FirstInvalidUtf8("ab\xc0\xaf"), 2u);          // overlong '/'
  EXPECT_EQ(FirstInvalidUtf8("ab\xed\xa0\x80"), 2u);      // UTF-16 surrogate
  EXPECT_EQ(FirstInvalidUtf8("ab\xf4\x90\x80\x80"), 2u);  // past U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("cut\xe2\x82"), 3u);
}

TEST(EditDistanceTest, CountsEditsAndTranspositions) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("revision", "revision"), 0u);
  EXPECT_EQ(EditDistance("revison", "revision"), 1u);
  EXPECT_EQ(EditDistance("revisoin", "revision"), 1u);  // adjacent transposition
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
}

TEST(EditDistanceTest, GivesUpPastTheLimit) {
  EXPECT_EQ(EditDistance("kitten", "sitting", 2), 3u);
  EXPECT_EQ(EditDistance("a", "abcdefgh", 3), 4u);
  EXPECT_EQ(EditDistance("kitten", "sitting", 3), 3u);
}

TEST(Sha256HexTest, MatchesKnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Two blocks of padding (55, 56 and 64 bytes straddle the boundary), and a long input.
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(Sha256Hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(Sha256Hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace sluice::base
