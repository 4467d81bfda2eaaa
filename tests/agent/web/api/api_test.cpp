// Specifies the agent's route table behind the security layer: each route's scope, POST
// /-/reload calling the app's reload, the HTTP metrics in /metrics, and unchanged answers.
#include "web/api/api.hpp"

#include "agent/web/test_support.hpp"
#include "config/config.hpp"
#include "web/server/auth.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace plugmon::agent {
namespace {

using namespace plugmon::agent::testing;
using ::testing::HasSubstr;

constexpr const char* admin_secret = "admin-secret";
constexpr const char* read_secret = "read-secret";

/// The agent's routes as app.cpp wires them: registry with the HTTP metrics, security layer,
/// a real server on 127.0.0.1:0.
class agent_routes : public ::testing::Test {
protected:
    agent_routes() {
        ctx_.metrics = &registry_;
        ctx_.reload = [this] {
            ++reloads_;
            reload_report r;
            r.error = reload_error_;
            if (!r.error) {
                r.applied = {"slow_query_threshold"};
                r.restart_required = {"listen"};
            }
            return r;
        };
        add_api_routes(routes_, ctx_);
        metrics_ = std::make_shared<http_metrics>(routes_.names());
        registry_.add([m = metrics_](std::string& out) { m->render(out); });
        security_options o;
        o.tokens = admin_token(admin_secret);
        o.tokens.push_back({"grafana", scope::read, sha256(read_secret)});
        o.listen_host = "127.0.0.1";
        ctx_.audit = audit_.get();
        layer_ = std::make_unique<security_layer>(routes_, std::move(o), metrics_, audit_);
        server_ = std::make_unique<running_server>([this](const http_request& r) { return layer_->handle(r); });
        metrics_->attach(server_->server().counters());
    }
    ~agent_routes() override { server_.reset(); }

    std::uint16_t port() const { return server_->port(); }

    series_registry store_{bucket_bounds::from_seconds(config::default_buckets(), config::default_buckets())};
    drain drainer_{store_, drain::options{}};
    metrics_registry registry_;
    api_context ctx_{store_, drainer_, nullptr, "test", nullptr};
    std::atomic<int> reloads_{0};
    std::optional<std::string> reload_error_;
    router routes_;
    std::shared_ptr<http_metrics> metrics_;
    std::shared_ptr<audit::trail> audit_ = std::make_shared<audit::trail>();
    std::unique_ptr<security_layer> layer_;
    std::unique_ptr<running_server> server_;
};

TEST_F(agent_routes, each_route_declares_its_scope) {
    std::map<std::string, scope> by_pattern;
    for (const auto& r : routes_.routes()) by_pattern[r.method + " " + r.pattern] = r.needs;
    EXPECT_EQ(by_pattern.at("GET /metrics"), scope::read);
    EXPECT_EQ(by_pattern.at("GET /healthz"), scope::none);
    EXPECT_EQ(by_pattern.at("GET /readyz"), scope::none);
    EXPECT_EQ(by_pattern.at("GET /api/v1/producers"), scope::read);
    EXPECT_EQ(by_pattern.at("GET /api/v1/slow-queries"), scope::read);
    EXPECT_EQ(by_pattern.at("GET /api/v1/store"), scope::read);
    EXPECT_EQ(by_pattern.at("GET /api/v1/plugins"), scope::read);
    EXPECT_EQ(by_pattern.at("GET /api/v1/plugins/{name...}"), scope::read);
    EXPECT_EQ(by_pattern.at("POST /-/reload"), scope::admin);
    // Alerts: reads need read; acks and silences ack; replaying a dead letter admin.
    EXPECT_EQ(by_pattern.at("GET /api/v1/alerts"), scope::read);
    EXPECT_EQ(by_pattern.at("GET /api/v1/alerts/{fingerprint}"), scope::read);
    EXPECT_EQ(by_pattern.at("POST /api/v1/alerts/{fingerprint}/ack"), scope::ack);
    EXPECT_EQ(by_pattern.at("DELETE /api/v1/alerts/{fingerprint}/ack"), scope::ack);
    EXPECT_EQ(by_pattern.at("GET /api/v1/silences"), scope::read);
    EXPECT_EQ(by_pattern.at("POST /api/v1/silences"), scope::ack);
    EXPECT_EQ(by_pattern.at("DELETE /api/v1/silences/{id}"), scope::ack);
    EXPECT_EQ(by_pattern.at("GET /api/v1/notifications"), scope::read);
    EXPECT_EQ(by_pattern.at("POST /api/v1/notifications/{id}/retry"), scope::admin);
    EXPECT_EQ(by_pattern.at("GET /api/v1/audit"), scope::admin);
    EXPECT_EQ(by_pattern.size(), 19u);
}

TEST_F(agent_routes, reload_with_the_admin_token_calls_the_reload_callback) {
    client c(port());
    const auto r = c.post("/-/reload", admin_secret);
    EXPECT_EQ(r.result_int(), 200u);
    const auto body = nlohmann::json::parse(r.body());
    EXPECT_EQ(body["status"], "reloaded") << r.body();
    EXPECT_EQ(body["applied"], nlohmann::json::array({"slow_query_threshold"})) << r.body();
    EXPECT_EQ(body["restart_required"], nlohmann::json::array({"listen"})) << r.body();
    EXPECT_EQ(r[http::field::content_type], "application/json");
    EXPECT_EQ(r[http::field::cache_control], "no-store");
    EXPECT_EQ(reloads_.load(), 1);
    // curl -X POST -H 'Authorization: Bearer ...' sends no body: accepted too
    EXPECT_EQ(c.post("/-/reload", admin_secret, "", "").result_int(), 200u);
    EXPECT_EQ(reloads_.load(), 2);
}

TEST_F(agent_routes, a_mutating_request_is_audited_once_with_its_token_name_and_status) {
    client c(port());
    EXPECT_EQ(c.get("/api/v1/producers").result_int(), 200u);  // reads are not audited
    EXPECT_EQ(audit_->recorded(), 0u);
    EXPECT_EQ(c.post("/-/reload", read_secret).result_int(), 403u);
    ASSERT_EQ(audit_->recorded(), 1u);
    auto e = audit_->recent(1).at(0);
    EXPECT_EQ(e.actor, "grafana");
    EXPECT_EQ(e.action, "POST /-/reload");
    EXPECT_EQ(e.target, "/-/reload");
    EXPECT_EQ(e.status, 403u);
    EXPECT_EQ(e.client, "127.0.0.1");
    EXPECT_EQ(c.post("/-/reload", admin_secret).result_int(), 200u);
    ASSERT_EQ(audit_->recorded(), 2u);
    e = audit_->recent(1).at(0);
    EXPECT_EQ(e.actor, "api_token");
    EXPECT_EQ(e.status, 200u);
    EXPECT_EQ(to_json(e).dump().find(admin_secret), std::string::npos);
}

TEST_F(agent_routes, audit_lists_the_entries_newest_first_for_the_admin_only) {
    client c(port());
    EXPECT_EQ(c.post("/-/reload", "wrong").result_int(), 401u);
    EXPECT_EQ(c.post("/-/reload", admin_secret).result_int(), 200u);
    EXPECT_EQ(c.get("/api/v1/audit", read_secret).result_int(), 403u);
    EXPECT_EQ(c.get("/api/v1/audit").result_int(), 401u);
    EXPECT_EQ(c.get("/api/v1/audit?limit=0", admin_secret).result_int(), 400u);
    const auto r = c.get("/api/v1/audit", admin_secret);
    ASSERT_EQ(r.result_int(), 200u) << r.body();
    const auto entries = nlohmann::json::parse(r.body()).at("entries");
    ASSERT_EQ(entries.size(), 2u) << r.body();
    EXPECT_EQ(entries[0].at("actor"), "api_token");
    EXPECT_EQ(entries[0].at("status"), 200);
    EXPECT_EQ(entries[1].at("actor"), "-");
    EXPECT_EQ(entries[1].at("status"), 401);
    EXPECT_EQ(r.body().find("wrong"), std::string::npos);
    const auto one = nlohmann::json::parse(c.get("/api/v1/audit?limit=1", admin_secret).body());
    ASSERT_EQ(one.at("entries").size(), 1u);
    EXPECT_EQ(one.at("entries")[0].at("seq"), entries[0].at("seq"));
}

TEST_F(agent_routes, reload_needs_the_admin_scope) {
    client c(port());
    EXPECT_EQ(c.post("/-/reload").result_int(), 401u);
    EXPECT_EQ(c.post("/-/reload", "wrong").result_int(), 401u);
    EXPECT_EQ(c.post("/-/reload", read_secret).result_int(), 403u);
    EXPECT_EQ(c.get("/-/reload", admin_secret).result_int(), 405u);
    EXPECT_EQ(reloads_.load(), 0);
}

TEST_F(agent_routes, a_refused_configuration_answers_500_with_the_reason) {
    reload_error_ = "tokens_file: \"/etc/plugmon/tokens.toml\" is accessible by group or others (mode 0644)";
    client c(port());
    const auto r = c.post("/-/reload", admin_secret);
    EXPECT_EQ(r.result_int(), 500u);
    EXPECT_THAT(r.body(), HasSubstr("reload refused"));
    EXPECT_THAT(r.body(), HasSubstr("mode 0644"));
    EXPECT_EQ(reloads_.load(), 1);
}

TEST_F(agent_routes, metrics_count_the_requests_by_route_and_code) {
    client c(port());
    // the drain is not started here: /healthz says 503
    EXPECT_EQ(c.get("/healthz").result_int(), 503u);
    EXPECT_EQ(c.get("/healthz").result_int(), 503u);
    const auto text = c.get("/metrics").body();
    EXPECT_THAT(text, HasSubstr("plugmon_http_requests_total{handler=\"healthz\",code=\"503\"} 2\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_request_duration_seconds_count{handler=\"healthz\"} 2\n"));
    EXPECT_THAT(text, HasSubstr("plugmon_http_connections_total 1\n"));
    c.get("/nowhere");
    c.post("/-/reload");
    const auto again = c.get("/metrics").body();
    EXPECT_THAT(again, HasSubstr("plugmon_http_requests_total{handler=\"metrics\",code=\"200\"} 1\n"));
    EXPECT_THAT(again, HasSubstr("plugmon_http_requests_total{handler=\"not_found\",code=\"404\"} 1\n"));
    EXPECT_THAT(again, HasSubstr("plugmon_http_requests_total{handler=\"reload\",code=\"401\"} 1\n"));
    EXPECT_THAT(again, HasSubstr("plugmon_http_auth_failures_total{reason=\"missing_token\"} 1\n"));
}

TEST_F(agent_routes, answers_keep_their_bodies) {
    client c(port());
    const auto plugin = c.get("/api/v1/plugins/nope");
    EXPECT_EQ(plugin.result_int(), 404u);
    EXPECT_EQ(plugin.body(), "{\n  \"error\": \"no plugin named \\\"nope\\\"\"\n}\n");
    EXPECT_EQ(c.get("/api/v1/plugins/a/b").body(), "{\n  \"error\": \"no plugin named \\\"a/b\\\"\"\n}\n");
    EXPECT_EQ(c.get("/api/v1/plugins").body(), "{\n  \"plugins\": []\n}\n");
    EXPECT_EQ(c.get("/api/v1/store").body(), "{\n  \"error\": \"no PostgreSQL store is configured\"\n}\n");
    EXPECT_EQ(c.get("/api/v1/slow-queries").body(),
              "{\n  \"error\": \"slow queries are not kept by this agent\"\n}\n");
    EXPECT_EQ(c.get("/api/v1/nothing").body(), "{\n  \"error\": \"no such endpoint: /api/v1/nothing\"\n}\n");
    const auto readyz = c.get("/readyz");
    EXPECT_EQ(readyz.result_int(), 503u);
    EXPECT_THAT(readyz.body(), HasSubstr("\"version\": \"test\""));
}

TEST(handle_request, answers_through_the_route_table_without_the_security_layer) {
    series_registry store{bucket_bounds::from_seconds(config::default_buckets(), config::default_buckets())};
    drain drainer{store, drain::options{}};
    const api_context ctx{store, drainer, nullptr, "test", nullptr};
    http_request req;
    req.method = "GET";
    req.target = "/metrics";
    EXPECT_EQ(handle_request(ctx, req).body, "{\n  \"error\": \"no metrics\"\n}\n");
    req.method = "POST";
    const auto r = handle_request(ctx, req);
    EXPECT_EQ(r.status, 405u);
    req.target = "/-/reload";
    EXPECT_EQ(handle_request(ctx, req).status, 404u);  // no reload callback
}

}  // namespace
}  // namespace plugmon::agent
