// Specifies the route table: literal and {param} segments, the rest parameter, 404 and 405 with
// Allow, and the patterns it refuses.
#include "web/server/router.hpp"

#include <stdexcept>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace plugmon::agent {
namespace {

using ::testing::ElementsAre;

route_handler answer(const std::string& text) {
    return [text](const http_request&, const route_params& p) {
        std::string body = text;
        for (const auto& [k, v] : p) body += " " + k + "=" + v;
        return http_response{200, "text/plain", body};
    };
}

http_request request(const std::string& method, const std::string& target) {
    http_request r;
    r.method = method;
    r.target = target;
    return r;
}

router table() {
    router r;
    r.add({"GET", "/", "root", scope::none, answer("root")});
    r.add({"GET", "/api/v1/alerts", "alerts", scope::read, answer("list")});
    r.add({"GET", "/api/v1/alerts/{fingerprint}", "alert", scope::read, answer("one")});
    r.add({"POST", "/api/v1/alerts/{fingerprint}/ack", "alert_ack", scope::ack, answer("ack")});
    r.add({"DELETE", "/api/v1/alerts/{fingerprint}/ack", "alert_ack", scope::ack, answer("unack")});
    r.add({"GET", "/files/{path...}", "files", scope::read, answer("file")});
    return r;
}

TEST(router, matches_literal_and_parameter_segments) {
    const router r = table();
    EXPECT_EQ(r.dispatch(request("GET", "/")).body, "root");
    EXPECT_EQ(r.dispatch(request("GET", "/api/v1/alerts?limit=3")).body, "list");
    EXPECT_EQ(r.dispatch(request("GET", "/api/v1/alerts/abc")).body, "one fingerprint=abc");
    EXPECT_EQ(r.dispatch(request("POST", "/api/v1/alerts/abc/ack")).body, "ack fingerprint=abc");
    EXPECT_EQ(r.dispatch(request("DELETE", "/api/v1/alerts/abc/ack")).body, "unack fingerprint=abc");
    EXPECT_EQ(r.dispatch(request("GET", "/files/a/b/c.txt")).body, "file path=a/b/c.txt");
    const auto m = r.match("POST", "/api/v1/alerts/f00/ack");
    ASSERT_NE(m.found, nullptr);
    EXPECT_EQ(m.found->name, "alert_ack");
    EXPECT_EQ(m.found->needs, scope::ack);
    EXPECT_EQ(m.params.at("fingerprint"), "f00");
}

TEST(router, unknown_paths_are_404) {
    const router r = table();
    for (const std::string target : {"/api/v1/alert", "/api/v1/alerts/", "/api/v1/alerts//ack", "/api/v1/alerts/a/b",
                                     "/files/", "/api/v1/alerts/abc/ack/more", "//", "/api"}) {
        const auto res = r.dispatch(request("GET", target));
        EXPECT_EQ(res.status, 404u) << target;
        EXPECT_EQ(res.content_type, "application/json");
    }
    EXPECT_EQ(r.dispatch(request("POST", "/nowhere")).status, 404u);
    EXPECT_EQ(r.dispatch(request("GET", "/nowhere?x=1")).body, "{\n  \"error\": \"no such endpoint: /nowhere\"\n}\n");
}

TEST(router, a_known_path_with_another_method_is_405_with_allow) {
    const router r = table();
    const auto res = r.dispatch(request("PUT", "/api/v1/alerts/abc/ack"));
    EXPECT_EQ(res.status, 405u);
    EXPECT_EQ(res.body, "{\n  \"error\": \"method not allowed\"\n}\n");
    EXPECT_THAT(res.headers, ElementsAre(std::pair<std::string, std::string>{"Allow", "POST, DELETE"}));
    const auto get_only = r.dispatch(request("POST", "/api/v1/alerts"));
    EXPECT_THAT(get_only.headers, ElementsAre(std::pair<std::string, std::string>{"Allow", "GET, HEAD"}));
    const auto m = r.match("PUT", "/api/v1/alerts/abc/ack");
    EXPECT_EQ(m.found, nullptr);
    EXPECT_EQ(m.path_name, "alert_ack");
}

TEST(router, refuses_malformed_and_duplicate_routes) {
    router r = table();
    EXPECT_THROW(r.add({"GET", "/api/v1/alerts", "again", scope::read, answer("x")}), std::invalid_argument);
    EXPECT_THROW(r.add({"PATCH", "/p", "p", scope::read, answer("x")}), std::invalid_argument);
    EXPECT_THROW(r.add({"GET", "no-slash", "p", scope::read, answer("x")}), std::invalid_argument);
    EXPECT_THROW(r.add({"GET", "/a/{}", "p", scope::read, answer("x")}), std::invalid_argument);
    EXPECT_THROW(r.add({"GET", "/a/{rest...}/b", "p", scope::read, answer("x")}), std::invalid_argument);
    EXPECT_THROW(r.add({"GET", "/a/b{c}", "p", scope::read, answer("x")}), std::invalid_argument);
    EXPECT_THROW(r.add({"GET", "/a", "", scope::read, answer("x")}), std::invalid_argument);
    EXPECT_THAT(r.names(), ElementsAre("root", "alerts", "alert", "alert_ack", "files"));
}

TEST(scope, higher_scopes_imply_lower_ones) {
    EXPECT_TRUE(allows(scope::admin, scope::ack));
    EXPECT_TRUE(allows(scope::admin, scope::read));
    EXPECT_TRUE(allows(scope::ack, scope::read));
    EXPECT_TRUE(allows(scope::read, scope::read));
    EXPECT_FALSE(allows(scope::read, scope::ack));
    EXPECT_FALSE(allows(scope::ack, scope::admin));
    EXPECT_EQ(to_string(scope::ack), "ack");
}

}  // namespace
}  // namespace plugmon::agent
