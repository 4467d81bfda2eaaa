// Specifies the security layer in front of every route, through a real http_server on
// 127.0.0.1: tokens and scopes, the failure limit, the Host allowlist, the rules for mutating
// calls, the headers on every response, the audit line and the request metrics.
#include "web/server/auth.hpp"

#include "agent/web/test_support.hpp"

#include <atomic>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace plugmon::agent {
namespace {

using namespace plugmon::agent::testing;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* admin_secret = "admin-secret";
constexpr const char* read_secret = "read-secret";
constexpr const char* ack_secret = "ack-secret";

security_options default_options() {
    security_options o = {};
    o.tokens = admin_token(admin_secret);
    o.tokens.push_back({"grafana", scope::read, sha256(read_secret)});
    o.tokens.push_back({"pager", scope::ack, sha256(ack_secret)});
    o.allowed_hosts = {"agent.example.com"};
    o.listen_host = "127.0.0.1";
    return o;
}

/// A route table of each scope behind the security layer, served on 127.0.0.1:0.
class gate : public ::testing::Test {
protected:
    void SetUp() override { start(default_options()); }

    void start(security_options o) {
        server_.reset();
        routes_ = std::make_unique<router>();
        routes_->add({"GET", "/healthz", "healthz", scope::none, [this](const http_request&, const route_params&) {
                          ++calls_;
                          return http_response{200, "text/plain; charset=utf-8", "ok\n"};
                      }});
        routes_->add({"GET", "/metrics", "metrics", scope::read, [this](const http_request&, const route_params&) {
                          ++calls_;
                          return http_response{200, "text/plain; version=0.0.4; charset=utf-8", "up 1\n"};
                      }});
        routes_->add({"GET", "/api/v1/things", "things", scope::read, [this](const http_request&, const route_params&) {
                          ++calls_;
                          return http_response{200, "application/json", "{\"things\":[]}\n"};
                      }});
        routes_->add({"GET", "/api/v1/boom", "boom", scope::read,
                      [](const http_request&, const route_params&) -> http_response { throw std::runtime_error("boom"); }});
        routes_->add({"POST", "/api/v1/things/{id}/ack", "ack", scope::ack,
                      [this](const http_request&, const route_params& p) {
                          ++calls_;
                          return http_response{200, "application/json", "{\"acked\":\"" + p.at("id") + "\"}\n"};
                      }});
        routes_->add({"POST", "/-/admin", "admin", scope::admin, [this](const http_request&, const route_params&) {
                          ++calls_;
                          return http_response{200, "application/json", "{\"status\":\"done\"}\n"};
                      }});
        metrics_ = std::make_shared<http_metrics>(routes_->names());
        layer_ = std::make_unique<security_layer>(*routes_, std::move(o), metrics_);
        server_ = std::make_unique<running_server>([this](const http_request& r) { return layer_->handle(r); });
        metrics_->attach(server_->server().counters());
    }

    std::uint16_t port() const { return server_->port(); }

    std::atomic<int> calls_{0};
    std::unique_ptr<router> routes_;
    std::shared_ptr<http_metrics> metrics_;
    std::unique_ptr<security_layer> layer_;
    std::unique_ptr<running_server> server_;
};

TEST_F(gate, reads_are_open_by_default_and_health_needs_no_token) {
    client c(port());
    EXPECT_EQ(c.get("/api/v1/things").result_int(), 200u);
    EXPECT_EQ(c.get("/metrics").result_int(), 200u);
    EXPECT_EQ(c.get("/healthz").result_int(), 200u);
    // a wrong token on an open route is not looked at
    EXPECT_EQ(c.get("/healthz", "wrong").result_int(), 200u);
    EXPECT_EQ(calls_.load(), 4);
}

TEST_F(gate, a_route_needing_a_scope_answers_401_with_www_authenticate_without_a_token) {
    client c(port());
    const auto r = c.post("/-/admin");
    EXPECT_EQ(r.result_int(), 401u);
    EXPECT_EQ(r[http::field::www_authenticate], "Bearer realm=\"plugmon\"");
    EXPECT_EQ(r[http::field::content_type], "application/json");
    EXPECT_THAT(r.body(), HasSubstr("Authorization: Bearer"));
    EXPECT_EQ(calls_.load(), 0);
    EXPECT_EQ(metrics_->auth_failures(auth_failure::missing_token), 1u);
}

TEST_F(gate, a_wrong_or_malformed_token_answers_401) {
    client c(port());
    const auto wrong = c.post("/-/admin", "admin-secreT");
    EXPECT_EQ(wrong.result_int(), 401u);
    EXPECT_EQ(wrong[http::field::www_authenticate], "Bearer realm=\"plugmon\"");
    http::request<http::string_body> basic{http::verb::post, "/-/admin", 11};
    basic.set(http::field::authorization, std::string("Basic ") + admin_secret);
    EXPECT_EQ(c.request(basic).result_int(), 401u);
    EXPECT_EQ(calls_.load(), 0);
    EXPECT_EQ(metrics_->auth_failures(auth_failure::invalid_token), 2u);
}

TEST_F(gate, a_token_without_the_scope_answers_403_and_higher_scopes_imply_lower) {
    client c(port());
    const auto reader = c.post("/api/v1/things/7/ack", read_secret);
    EXPECT_EQ(reader.result_int(), 403u);
    EXPECT_THAT(reader.body(), HasSubstr("lacks scope ack"));
    EXPECT_EQ(c.post("/-/admin", ack_secret).result_int(), 403u);
    EXPECT_EQ(calls_.load(), 0);
    EXPECT_EQ(metrics_->auth_failures(auth_failure::insufficient_scope), 2u);

    const auto acker = c.post("/api/v1/things/7/ack", ack_secret);
    EXPECT_EQ(acker.result_int(), 200u);
    EXPECT_EQ(acker.body(), "{\"acked\":\"7\"}\n");
    EXPECT_EQ(c.post("/api/v1/things/8/ack", admin_secret).result_int(), 200u);  // admin implies ack
    EXPECT_EQ(c.post("/-/admin", admin_secret).result_int(), 200u);
    http::request<http::string_body> lower{http::verb::post, "/-/admin", 11};
    lower.set(http::field::authorization, std::string("bearer  ") + admin_secret);  // scheme is case-insensitive
    EXPECT_EQ(c.request(lower).result_int(), 200u);
}

TEST_F(gate, read_requires_token_closes_the_reads_but_not_health) {
    security_options o = default_options();
    o.read_requires_token = true;
    start(std::move(o));
    client c(port());
    EXPECT_EQ(c.get("/api/v1/things").result_int(), 401u);
    EXPECT_EQ(c.get("/metrics").result_int(), 401u);
    EXPECT_EQ(c.get("/api/v1/things", "nope").result_int(), 401u);
    EXPECT_EQ(c.get("/api/v1/things", read_secret).result_int(), 200u);
    EXPECT_EQ(c.get("/metrics", admin_secret).result_int(), 200u);  // admin implies read
    EXPECT_EQ(c.get("/healthz").result_int(), 200u);
}

TEST_F(gate, repeated_failures_from_one_address_get_429_with_retry_after_and_are_counted) {
    client c(port());
    for (int i = 0; i < 5; ++i) EXPECT_EQ(c.post("/-/admin", "guess-" + std::to_string(i)).result_int(), 401u);
    const auto limited = c.post("/-/admin", "guess-5");
    EXPECT_EQ(limited.result_int(), 429u);
    const int retry = std::stoi(std::string(limited[http::field::retry_after]));
    EXPECT_GE(retry, 1);
    EXPECT_LE(retry, 60);
    // even the right token waits: guessing must not go on
    EXPECT_EQ(c.post("/-/admin", admin_secret).result_int(), 429u);
    // open routes stay open for that address (a scraper on the same host keeps working)
    EXPECT_EQ(c.get("/api/v1/things").result_int(), 200u);
    // another client address is not affected
    client other(port(), "127.0.0.2");
    EXPECT_EQ(other.post("/-/admin", admin_secret).result_int(), 200u);
    EXPECT_EQ(metrics_->auth_failures(auth_failure::invalid_token), 5u);
    EXPECT_EQ(metrics_->auth_failures(auth_failure::rate_limited), 2u);
    std::string text;
    metrics_->render(text);
    EXPECT_THAT(text, HasSubstr("plugmon_http_auth_failures_total{reason=\"rate_limited\"} 2\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_auth_failures_total{reason=\"invalid_token\"} 5\n"));
}

TEST_F(gate, the_failure_limit_ends_with_its_window) {
    security_options o = default_options();
    o.max_failures = 2;
    o.failure_window = std::chrono::seconds{1};
    start(std::move(o));
    client c(port());
    EXPECT_EQ(c.post("/-/admin", "x").result_int(), 401u);
    EXPECT_EQ(c.post("/-/admin", "y").result_int(), 401u);
    EXPECT_EQ(c.post("/-/admin", admin_secret).result_int(), 429u);
    std::this_thread::sleep_for(std::chrono::milliseconds{1100});
    EXPECT_EQ(c.post("/-/admin", admin_secret).result_int(), 200u);
}

TEST_F(gate, a_token_in_the_query_string_is_refused_and_never_used) {
    client c(port());
    for (const std::string param : {"access_token", "token", "api_token", "Access_Token", "%61pi_token"}) {
        const auto r = c.get("/api/v1/things?limit=1&" + param + "=" + admin_secret);
        EXPECT_EQ(r.result_int(), 400u) << param;
        EXPECT_THAT(r.body(), HasSubstr("Authorization: Bearer")) << param;
    }
    // not even with a valid header beside it, and not on a route that needs a token
    EXPECT_EQ(c.post("/-/admin?token=" + std::string(admin_secret), admin_secret).result_int(), 400u);
    EXPECT_EQ(calls_.load(), 0);
    EXPECT_EQ(metrics_->auth_failures(auth_failure::query_token), 6u);
    EXPECT_EQ(c.get("/api/v1/things?tokens=1").result_int(), 200u);  // other names are fine
}

TEST_F(gate, hosts_outside_the_allowlist_get_421) {
    const auto with_host = [&](const std::string& host) {
        client c(port());
        http::request<http::string_body> req{http::verb::get, "/api/v1/things", 11};
        req.set(http::field::host, host);
        return c.request(std::move(req)).result_int();
    };
    const std::string p = std::to_string(port());
    for (const std::string& host : std::vector<std::string>{"evil.example", "evil.example:" + p,
                                                            "agent.example.com.evil", "10.1.2.3",
                                                            "[fe80::1]:" + p, "localhost.evil.example"})
        EXPECT_EQ(with_host(host), 421u) << host;
    for (const std::string& host :
         std::vector<std::string>{"localhost", "localhost:" + p, "LOCALHOST:" + p, "127.0.0.1", "127.0.0.1:" + p,
                                  "127.9.9.9:80", "[::1]", "[::1]:" + p, "agent.example.com", "Agent.Example.com:443"})
        EXPECT_EQ(with_host(host), 200u) << host;
    // unknown paths too: nothing is answered for a foreign Host
    client c(port());
    http::request<http::string_body> req{http::verb::get, "/nowhere", 11};
    req.set(http::field::host, "evil.example");
    EXPECT_EQ(c.request(std::move(req)).result_int(), 421u);
}

TEST_F(gate, a_request_without_host_is_served_only_to_loopback_peers) {
    client c(port());
    const auto r = c.raw("GET /api/v1/things HTTP/1.0\r\n\r\n");
    EXPECT_EQ(r.result_int(), 200u);
    http_request far;
    far.method = "GET";
    far.target = "/api/v1/things";
    far.remote = "192.0.2.7";
    EXPECT_EQ(layer_->handle(far).status, 421u);
    far.remote = "127.0.0.1";
    EXPECT_EQ(layer_->handle(far).status, 200u);
}

TEST_F(gate, every_response_carries_the_security_headers_and_api_answers_no_store) {
    client c(port());
    const auto check = [](const response& r, bool no_store, const std::string& what) {
        EXPECT_EQ(r["X-Content-Type-Options"], "nosniff") << what;
        EXPECT_EQ(r["Referrer-Policy"], "no-referrer") << what;
        EXPECT_EQ(r["X-Frame-Options"], "DENY") << what;
        if (no_store)
            EXPECT_EQ(r[http::field::cache_control], "no-store") << what;
        else
            EXPECT_EQ(r.count(http::field::cache_control), 0u) << what;
    };
    check(c.get("/healthz"), false, "healthz");
    check(c.get("/metrics"), false, "metrics");
    check(c.get("/api/v1/things"), true, "api 200");
    check(c.get("/api/v1/nothing"), true, "api 404");
    check(c.get("/nothing"), false, "404");
    check(c.post("/api/v1/things"), true, "405");
    check(c.post("/-/admin"), true, "401");
    check(c.post("/-/admin", read_secret), true, "403");
    check(c.post("/-/admin", admin_secret), true, "admin 200");
    check(c.get("/api/v1/boom"), true, "500 from a throwing handler");
    http::request<http::string_body> foreign{http::verb::get, "/metrics", 11};
    foreign.set(http::field::host, "evil.example");
    check(c.request(std::move(foreign)), false, "421");
    client big(port());
    http::request<http::string_body> oversize{http::verb::post, "/-/admin", 11};
    oversize.body() = std::string(70 * 1024, 'x');
    check(big.request(std::move(oversize)), true, "413 from the server");
}

TEST_F(gate, unknown_paths_are_404_and_other_methods_405_with_allow_and_head_works_as_get) {
    client c(port());
    const auto missing = c.get("/api/v2/things");
    EXPECT_EQ(missing.result_int(), 404u);
    EXPECT_EQ(missing.body(), "{\n  \"error\": \"no such endpoint: /api/v2/things\"\n}\n");
    const auto wrong = c.post("/api/v1/things");
    EXPECT_EQ(wrong.result_int(), 405u);
    EXPECT_EQ(wrong[http::field::allow], "GET, HEAD");
    const auto get_admin = c.get("/-/admin");
    EXPECT_EQ(get_admin.result_int(), 405u);
    EXPECT_EQ(get_admin[http::field::allow], "POST");
    const auto head = c.request({http::verb::head, "/api/v1/things", 11});
    EXPECT_EQ(head.result_int(), 200u);
    EXPECT_EQ(head[http::field::content_length], "14");
    EXPECT_TRUE(head.body().empty());
}

TEST_F(gate, mutating_calls_need_a_json_body) {
    client c(port());
    EXPECT_EQ(c.post("/-/admin", admin_secret, "x=1", "application/x-www-form-urlencoded").result_int(), 415u);
    EXPECT_EQ(c.post("/-/admin", admin_secret, "{}", "text/plain").result_int(), 415u);
    EXPECT_EQ(c.post("/-/admin", admin_secret, "{}", "").result_int(), 415u);  // a body without a type
    EXPECT_EQ(calls_.load(), 0);
    EXPECT_EQ(c.post("/-/admin", admin_secret, "{}", "application/json").result_int(), 200u);
    EXPECT_EQ(c.post("/-/admin", admin_secret, "{}", "Application/JSON; charset=utf-8").result_int(), 200u);
    EXPECT_EQ(c.post("/-/admin", admin_secret, "", "").result_int(), 200u);  // no body at all
    EXPECT_EQ(calls_.load(), 3);
}

TEST_F(gate, cross_site_mutations_are_refused_before_the_token_is_looked_at) {
    const std::string self = "127.0.0.1:" + std::to_string(port());
    const auto post_with = [&](const std::string& header, const std::string& value) {
        client c(port());
        http::request<http::string_body> req{http::verb::post, "/-/admin", 11};
        req.set(http::field::authorization, std::string("Bearer ") + admin_secret);
        req.set(http::field::content_type, "application/json");
        req.set(header, value);
        req.body() = "{}";
        return c.request(std::move(req)).result_int();
    };
    EXPECT_EQ(post_with("Origin", "http://evil.example"), 403u);
    EXPECT_EQ(post_with("Origin", "http://127.0.0.1:1"), 403u);
    EXPECT_EQ(post_with("Origin", "null"), 403u);
    EXPECT_EQ(post_with("Sec-Fetch-Site", "cross-site"), 403u);
    EXPECT_EQ(calls_.load(), 0);
    EXPECT_EQ(post_with("Origin", "http://" + self), 200u);
    EXPECT_EQ(post_with("Sec-Fetch-Site", "same-origin"), 200u);
    // a page elsewhere cannot lock the loopback address out with wrong tokens
    client c(port());
    for (int i = 0; i < 8; ++i) {
        http::request<http::string_body> req{http::verb::post, "/-/admin", 11};
        req.set(http::field::authorization, "Bearer wrong");
        req.set(http::field::origin, "http://evil.example");
        EXPECT_EQ(c.request(std::move(req)).result_int(), 403u);
    }
    EXPECT_EQ(c.post("/-/admin", admin_secret).result_int(), 200u);
    // reads from another site are not mutations: they stay open
    http::request<http::string_body> read{http::verb::get, "/api/v1/things", 11};
    read.set(http::field::origin, "http://evil.example");
    EXPECT_EQ(c.request(std::move(read)).result_int(), 200u);
}

TEST_F(gate, every_mutating_call_is_audited_exactly_once) {
    std::ostringstream log;
    const auto previous = spdlog::default_logger();
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("audit-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
    {
        client c(port());
        c.post("/-/admin", admin_secret);                  // 200
        c.post("/api/v1/things/3/ack", read_secret);       // 403
        c.post("/-/admin");                                 // 401
        c.post("/-/admin", admin_secret, "{}", "text/plain");  // 415
        c.get("/api/v1/things");                            // a read: no audit entry
    }
    spdlog::set_default_logger(previous);
    const std::string text = log.str();
    std::size_t lines = 0;
    for (std::size_t at = text.find("POST /"); at != std::string::npos; at = text.find("POST /", at + 1)) ++lines;
    EXPECT_EQ(lines, 4u) << text;
    EXPECT_THAT(text, Not(HasSubstr(admin_secret)));
    EXPECT_THAT(text, Not(HasSubstr(read_secret)));
    const auto entries = layer_->audit_trail().recent(10);  // newest first
    ASSERT_EQ(entries.size(), 4u);
    EXPECT_EQ(entries[3].actor, "api_token");
    EXPECT_EQ(entries[3].action, "POST /-/admin");
    EXPECT_EQ(entries[3].target, "/-/admin");
    EXPECT_EQ(entries[3].status, 200u);
    EXPECT_EQ(entries[3].client, "127.0.0.1");
    EXPECT_EQ(entries[2].actor, "grafana");
    EXPECT_EQ(entries[2].action, "POST /api/v1/things/{id}/ack");
    EXPECT_EQ(entries[2].target, "/api/v1/things/3/ack");
    EXPECT_EQ(entries[2].status, 403u);
    EXPECT_EQ(entries[1].actor, "-");
    EXPECT_EQ(entries[1].status, 401u);
    EXPECT_EQ(entries[0].status, 415u);
    for (const auto& e : entries) EXPECT_EQ(to_json(e).dump().find(admin_secret), std::string::npos);
}

TEST_F(gate, requests_are_counted_by_route_and_code) {
    client c(port());
    for (int i = 0; i < 3; ++i) c.get("/api/v1/things");
    c.get("/nowhere");
    c.post("/-/admin");
    c.get("/api/v1/boom");
    EXPECT_EQ(metrics_->requests("things", 200), 3u);
    EXPECT_EQ(metrics_->requests("not_found", 404), 1u);
    EXPECT_EQ(metrics_->requests("admin", 401), 1u);
    EXPECT_EQ(metrics_->requests("boom", 500), 1u);
    std::string text;
    metrics_->render(text);
    EXPECT_THAT(text, HasSubstr("# TYPE plugmon_http_requests_total counter\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_requests_total{handler=\"things\",code=\"200\"} 3\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_requests_total{handler=\"not_found\",code=\"404\"} 1\n"));
    EXPECT_THAT(text, HasSubstr("# TYPE plugmon_http_request_duration_seconds histogram\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_request_duration_seconds_bucket{handler=\"things\",le=\"+Inf\"} 3\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_request_duration_seconds_count{handler=\"things\"} 3\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_connections_total 1\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_handler_errors_total 1\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_rejected_requests_total 0\n"));
}

TEST_F(gate, options_set_on_reload_apply_to_the_next_request) {
    client c(port());
    EXPECT_EQ(c.post("/-/admin", "new-secret").result_int(), 401u);
    security_options o = default_options();
    o.tokens = admin_token("new-secret");
    layer_->set_options(std::move(o));
    EXPECT_EQ(c.post("/-/admin", "new-secret").result_int(), 200u);
    EXPECT_EQ(c.post("/-/admin", admin_secret).result_int(), 401u);
}

TEST(host_of, strips_ports_and_brackets_and_lowercases) {
    EXPECT_EQ(host_of("Example.COM:8080"), "example.com");
    EXPECT_EQ(host_of("[::1]:9464"), "::1");
    EXPECT_EQ(host_of("[::1]"), "::1");
    EXPECT_EQ(host_of("localhost."), "localhost");
    EXPECT_EQ(host_of("[::1"), "");
    EXPECT_TRUE(is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(is_loopback_host("127.255.0.9"));
    EXPECT_TRUE(is_loopback_host("::1"));
    EXPECT_TRUE(is_loopback_host("::ffff:127.0.0.1"));
    EXPECT_TRUE(is_loopback_host("localhost"));
    EXPECT_FALSE(is_loopback_host("128.0.0.1"));
    EXPECT_FALSE(is_loopback_host("127.example"));
    EXPECT_FALSE(is_loopback_host(""));
}

}  // namespace
}  // namespace plugmon::agent
