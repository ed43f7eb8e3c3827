#define CAF_SUITE base.digest

// SHA-256 and HMAC-SHA256 against published test vectors (FIPS 180-2,
// RFC 4231), and the helpers around them.

#include "base/digest.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

CAF_TEST(sha256 matches the published vectors) {
  CAF_CHECK_EQUAL(to_hex(sha256_of("abc")), "ba7816bf8f01cfea414140de5dae2223"
                                            "b00361a396177a9cb410ff61f20015ad");
  CAF_CHECK_EQUAL(to_hex(sha256_of("")), "e3b0c44298fc1c149afbf4c8996fb924"
                                         "27ae41e4649b934ca495991b7852b855");
  // Fed in pieces, the same digest.
  sha256 h;
  h.update("a");
  h.update("bc");
  CAF_CHECK_EQUAL(to_hex(h.finish()), to_hex(sha256_of("abc")));
}

CAF_TEST(hmac sha256 matches rfc 4231) {
  // Test case 2.
  CAF_CHECK_EQUAL(to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
                  "5bdcc146bf60754e6a042426089575c7"
                  "5a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block size.
  CAF_CHECK_EQUAL(to_hex(hmac_sha256(std::string(131, '\xaa'),
                                     "Test Using Larger Than Block-Size Key - "
                                     "Hash Key First")),
                  "60e431591ee0b67f0d8a26aacbf5b77f"
                  "8e0bc6213728c5140546040f0ee37f54");
}

CAF_TEST(hex round trips and rejects anything else) {
  auto d = sha256_of("abc");
  digest256 back{};
  CAF_REQUIRE(from_hex(to_hex(d), back));
  CAF_CHECK(constant_time_equal(back, d));
  auto upper = to_hex(d);
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CAF_CHECK(from_hex(upper, back));
  CAF_CHECK(!from_hex(to_hex(d).substr(1), back));
  CAF_CHECK(!from_hex(to_hex(d) + "0", back));
  CAF_CHECK(!from_hex("g" + to_hex(d).substr(1), back));
  back[31] ^= 1;
  CAF_CHECK(!constant_time_equal(back, d));
}
