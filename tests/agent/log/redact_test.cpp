// The redaction safety net: URL passwords, key=value passwords, Authorization and Bearer values.
#include <gtest/gtest.h>

#include "log/redact.hpp"

namespace {

using plugmon::agent::log::redact;
using plugmon::agent::log::sensitive_key;

TEST(log_redact, masks_the_password_of_a_url) {
    EXPECT_EQ(
        redact("connect postgresql://plugmon:s3cret@127.0.0.1:5432/db?sslmode=disable failed"),
        "connect postgresql://plugmon:***@127.0.0.1:5432/db?sslmode=disable failed");
    EXPECT_EQ(redact("postgres://u:p%40ss@h/d"), "postgres://u:***@h/d");
    EXPECT_EQ(redact("https://user:pw@example.org/x and http://host:80/path"),
              "https://user:***@example.org/x and http://host:80/path");
    EXPECT_EQ(redact("postgresql://plugmon@h/d"), "postgresql://plugmon@h/d") << "no password";
}

TEST(log_redact, masks_password_keys_bare_quoted_and_in_json) {
    EXPECT_EQ(redact("host=db password=hunter2 dbname=x"), "host=db password=*** dbname=x");
    EXPECT_EQ(redact("host=db password = 'two words' user=u"), "host=db password = *** user=u");
    EXPECT_EQ(redact("?sslmode=disable&PASSWORD=abc&x=1"), "?sslmode=disable&PASSWORD=***&x=1");
    EXPECT_EQ(redact(R"({"password": "abc", "user": "u"})"), R"({"password": ***, "user": "u"})");
    EXPECT_EQ(redact("secret: xyz"), "secret: ***");
    EXPECT_EQ(redact("passwords are checked"), "passwords are checked") << "no value, no mask";
}

TEST(log_redact, masks_authorization_and_bearer_values) {
    EXPECT_EQ(redact("Authorization: Bearer abc.def-123"), "Authorization: Bearer ***");
    EXPECT_EQ(redact("authorization=Basic dXNlcjpwdw=="), "authorization=Basic ***");
    EXPECT_EQ(redact("header Authorization: tok123 sent"), "header Authorization: *** sent");
    EXPECT_EQ(redact("got bearer tok-9 from client"), "got bearer *** from client");
    EXPECT_EQ(redact("a BEARER  t"), "a BEARER  ***");
}

TEST(log_redact, leaves_ordinary_lines_alone) {
    for (const char* s : {"batch committed rows=10", "producer pid 12 registered: 4 lanes", "",
                          "listening on http://127.0.0.1:9464/metrics", "bearer"})
        EXPECT_EQ(redact(s), s);
}

TEST(log_redact, sensitive_field_keys) {
    for (const char* k : {"password", "api_token", "Authorization", "client_secret", "TOKEN"})
        EXPECT_TRUE(sensitive_key(k)) << k;
    for (const char* k : {"pid", "plugin", "batch", "receiver", "token_name", "rows"})
        EXPECT_FALSE(sensitive_key(k)) << k;
}

}  // namespace
