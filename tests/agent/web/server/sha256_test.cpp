// Specifies the SHA-256 behind API token digests with the FIPS 180-4 example vectors, the
// padding boundaries and the constant-time comparison.
#include "common/sha256.hpp"

#include <string>

#include <gtest/gtest.h>

namespace plugmon::agent {
namespace {

TEST(sha256, matches_the_fips_180_4_examples) {
    EXPECT_EQ(to_hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(to_hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(to_hex(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmn"
                            "opqrlmnopqrsmnopqrstnopqrstu")),
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    EXPECT_EQ(to_hex(sha256(std::string(1000000, 'a'))),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(sha256, pads_correctly_around_block_boundaries) {
    // 55 bytes fit one final block with the length, 56 need a second one; 64 and 120 likewise.
    const std::pair<std::size_t, const char*> cases[] = {
        {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
        {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
        {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
        {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
        {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
        {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
        {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
    };
    for (const auto& [n, hex] : cases) EXPECT_EQ(to_hex(sha256(std::string(n, 'x'))), hex) << n << " bytes";
}

TEST(sha256, hex_round_trips_and_refuses_anything_else) {
    const auto d = sha256("admin-secret");
    // printf %s admin-secret | sha256sum
    EXPECT_EQ(to_hex(d), "16175223c8ddce5ace0493c948569c211b03c4c6bb3d3e484434999448cffe01");
    EXPECT_EQ(digest_from_hex(to_hex(d)), d);
    EXPECT_EQ(digest_from_hex("16175223C8DDCE5ACE0493C948569C211B03C4C6BB3D3E484434999448CFFE01"), d);
    EXPECT_FALSE(digest_from_hex("16175223"));
    EXPECT_FALSE(digest_from_hex(std::string(63, 'a') + "g"));
    EXPECT_FALSE(digest_from_hex(std::string(66, 'a')));
}

TEST(sha256, equal_digests_compares_every_byte) {
    const auto a = sha256("a");
    auto b = a;
    EXPECT_TRUE(equal_digests(a, b));
    b[31] ^= 1;
    EXPECT_FALSE(equal_digests(a, b));
    b = a;
    b[0] ^= 0x80;
    EXPECT_FALSE(equal_digests(a, b));
}

}  // namespace
}  // namespace plugmon::agent
