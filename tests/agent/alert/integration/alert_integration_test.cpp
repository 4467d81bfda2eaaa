// The alert engine end to end: a real plugmon-agent fed by plugmon-loadgen, a real Alertmanager
// (Debian's prometheus-alertmanager) and a real HTTP receiver. Fire, severity change, resolve,
// ack with tokens, a receiver that fails then recovers, Alertmanager down for two minutes, and
// SIGKILLs of the agent.
#include "agent/alert/notify/hook_server.hpp"
#include "alert/notify/signing.hpp"
#include "support/harness.hpp"
#include "support/pg_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>

namespace plugmon::test {
namespace {

using namespace std::chrono_literals;
using agent_testing = plugmon::agent::testing::hook_server;
using plugmon::agent::testing::captured_request;
using plugmon::agent::testing::hook_reply;

constexpr const char* alertmanager_bin = "/usr/bin/prometheus-alertmanager";


struct reply {
    unsigned status = 0;
    std::string body;
};

/// One HTTP request to 127.0.0.1:port; status 0 when unreachable.
reply request(int port, const std::string& method, const std::string& target,
              const std::string& body = "", const std::string& token = "") {
    namespace http = boost::beast::http;
    try {
        boost::asio::io_context io;
        boost::asio::ip::tcp::resolver resolver(io);
        boost::beast::tcp_stream s(io);
        s.expires_after(10s);
        s.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
        http::request<http::string_body> req(http::string_to_verb(method), target, 11);
        req.set(http::field::host, "127.0.0.1");
        if (!body.empty()) req.set(http::field::content_type, "application/json");
        if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
        req.body() = body;
        req.prepare_payload();
        http::write(s, req);
        boost::beast::flat_buffer buf;
        http::response<http::string_body> res;
        http::read(s, buf, res);
        return {res.result_int(), res.body()};
    } catch (const std::exception&) {
        return {};
    }
}

void write_file(const std::string& path, const std::string& text, mode_t mode = 0600) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
}

/// A real Alertmanager on a loopback port that forwards to `hook_url`.
class alertmanager {
public:
    alertmanager(const temp_dir& dir, int port, const std::string& hook_url)
        : dir_(dir.path() + "/am"), port_(port) {
        std::filesystem::create_directories(dir_);
        write_file(dir_ + "/am.yml",
                   "route:\n  receiver: rec\n  group_by: ['alertname', 'plugin']\n"
                   "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
                   "receivers:\n- name: rec\n  webhook_configs:\n  - url: " +
                       hook_url + "\n    send_resolved: true\n",
                   0644);
        start();
    }
    void start() {
        proc_ = std::make_unique<process>(
            std::vector<std::string>{alertmanager_bin, "--config.file=" + dir_ + "/am.yml",
                                     "--storage.path=" + dir_,
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                     "--cluster.listen-address="},
            std::vector<std::string>{}, dir_ + "/am.log", dir_ + "/am.err");
        const bool up =
            wait_until([&] { return request(port_, "GET", "/-/ready").status == 200; }, 30s);
        if (!up)
            throw std::runtime_error("alertmanager did not start: " + read_file(dir_ + "/am.err"));
    }
    void stop() {
        proc_->signal(SIGTERM);
        proc_->wait(20s);
        proc_.reset();
    }
    /// Alertmanager's view: GET /api/v2/alerts.
    nlohmann::json alerts() const {
        const reply r = request(port_, "GET", "/api/v2/alerts");
        return r.status == 200 ? nlohmann::json::parse(r.body) : nlohmann::json::array();
    }
    int port() const { return port_; }

private:
    std::string dir_;
    int port_;
    std::unique_ptr<process> proc_;
};

/// The alert rules the tests use: an error ratio over 2 s windows, and a store-down rule.
std::string rules_toml(int am_port, const std::string& hook_url, const std::string& secret_path) {
    return "[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:" +
           std::to_string(am_port) +
           "\"\nresend_interval = \"10s\"\nresolved_resend_for = \"1m\"\n\n"
           "[[receiver]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"" +
           hook_url + "\"\nsecret_file = \"" + secret_path +
           "\"\ntimeout = \"2s\"\n\n"
           "[[rule]]\nname = \"PluginErrorRatioHigh\"\nkind = \"error_ratio\"\n"
           "select = { plugin = \"billing*\" }\ngroup_by = [\"plugin\"]\nover = \"2s\"\n"
           "min_samples = 20\nreceivers = [\"am\", \"hook\"]\nseverity_down_delay = \"0s\"\n"
           "  [rule.levels.warning]\n  above = 0.2\n  clear_below = 0.05\n"
           "  [rule.levels.critical]\n  above = 0.6\n"
           "  [rule.annotations]\n  summary = \"{{ labels.plugin }} fails {{ value | percent "
           "}}\"\n";
}

/// The tokens file: "reader" (read, secret "reader-secret") and "oncall" (ack, "oncall-secret").
std::string tokens_toml() {
    return "[[token]]\nname = \"reader\"\nscopes = [\"read\"]\n"
           "sha256 = \"f03319dee240faa729e0cfa7ab5ffd80a1d64a127e3643f239009abff6382914\"\n"
           "[[token]]\nname = \"oncall\"\nscopes = [\"ack\"]\n"
           "sha256 = \"222efd97d56a62254079523a3ddbeb341880d3d8467f075b2b6f74aac1c140a0\"\n";
}

class alerts_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access(alertmanager_bin, X_OK) != 0)
            GTEST_SKIP() << alertmanager_bin
                         << " is not installed (Debian: prometheus-alertmanager)";
        runtime_ = dir_.path() + "/rt";
        std::filesystem::create_directories(runtime_);
        write_file(dir_.path() + "/hook.secret", "whsec_c2VjcmV0LWZvci10ZXN0cw==");
        hook_ = std::make_unique<agent_testing>([this](const captured_request&, std::size_t) {
            std::lock_guard<std::mutex> lock(mu_);
            hook_reply r;
            if (fail_next_ > 0) {
                --fail_next_;
                r.status = 503;
            }
            statuses_.push_back(r.status);
            return r;
        });
        am_ = std::make_unique<alertmanager>(dir_, unused_loopback_port(), am_hook_.url("/am"));
        write_file(dir_.path() + "/rules.toml",
                   rules_toml(am_->port(), hook_->url("/hook"), dir_.path() + "/hook.secret"));
        write_file(dir_.path() + "/tokens.toml", tokens_toml());
        write_file(dir_.path() + "/agent.toml",
                   "flush_interval = \"1s\"\nalert_rules = \"" + dir_.path() +
                       "/rules.toml\"\nalert_state_dir = \"" + dir_.path() +
                       "/alerts\"\ntokens_file = \"" + dir_.path() + "/tokens.toml\"\n",
                   0644);
        start_agent();
    }
    /// Each start logs to a file of its own (the harness finds the port in the log).
    void start_agent() {
        agent_.reset();
        log_ = dir_.path() + "/agent-" + std::to_string(starts_++) + ".log";
        agent_ = std::make_unique<agent>(
            runtime_, log_, std::vector<std::string>{"--config", dir_.path() + "/agent.toml"});
    }
    /// Queries of plugin billing0 at `ratio` errors for `seconds`.
    void load(double ratio, int seconds) {
        loadgen_run run(dir_, "load" + std::to_string(runs_++), runtime_,
                        {"--processes", "1", "--threads", "1", "--plugins", "1", "--plugin-prefix",
                         "billing", "--rate", "200", "--duration", std::to_string(seconds) + "s",
                         "--error-ratio", std::to_string(ratio)});
        ASSERT_EQ(run.finish(std::chrono::seconds(seconds + 60)), 0) << run.log();
    }
    /// Starts the load in the background (the caller keeps it alive).
    std::unique_ptr<loadgen_run> load_async(double ratio, int seconds) {
        return std::make_unique<loadgen_run>(
            dir_, "load" + std::to_string(runs_++), runtime_,
            std::vector<std::string>{"--processes", "1", "--threads", "1", "--plugins", "1",
                                     "--plugin-prefix", "billing", "--rate", "200", "--duration",
                                     std::to_string(seconds) + "s", "--error-ratio",
                                     std::to_string(ratio)});
    }
    /// The webhook requests answered 200 so far, in arrival order.
    std::vector<nlohmann::json> delivered() {
        const auto requests = hook_->requests();
        std::lock_guard<std::mutex> lock(mu_);
        std::vector<nlohmann::json> out;
        for (std::size_t i = 0; i < requests.size() && i < statuses_.size(); ++i)
            if (statuses_[i] == 200) out.push_back(nlohmann::json::parse(requests[i].body));
        return out;
    }
    /// How many delivered webhook messages carry `event`.
    std::size_t delivered(const std::string& event) {
        std::size_t n = 0;
        for (const auto& b : delivered()) n += b["plugmon"]["event"] == event ? 1 : 0;
        return n;
    }
    nlohmann::json agent_alerts() {
        const auto body = http_get(agent_->port(), "/api/v1/alerts");
        return body ? nlohmann::json::parse(*body)["alerts"] : nlohmann::json::array();
    }
    std::string agent_state() {
        const auto a = agent_alerts();
        return a.empty() ? "none" : a[0]["state"].get<std::string>();
    }

    temp_dir dir_;
    std::string runtime_;
    std::mutex mu_;
    int fail_next_ = 0;               // guarded by mu_: answer 503 to this many requests
    std::vector<unsigned> statuses_;  // guarded by mu_: what each request was answered
    std::unique_ptr<agent_testing> hook_;
    agent_testing am_hook_;
    std::unique_ptr<alertmanager> am_;
    std::unique_ptr<agent> agent_;
    int runs_ = 0, starts_ = 0;
    std::string log_;
};

/// The alertname's entries in Alertmanager's view.
std::vector<nlohmann::json> am_entries(const nlohmann::json& alerts, const std::string& name) {
    std::vector<nlohmann::json> out;
    for (const auto& a : alerts)
        if (a["labels"].value("alertname", "") == name) out.push_back(a);
    return out;
}

TEST_F(alerts_e2e, fires_changes_severity_and_resolves_at_alertmanager_and_a_signed_webhook) {
    load(0.4, 5);
    ASSERT_TRUE(wait_until([&] { return delivered("firing") == 1; }, 30s)) << read_file(log_);
    const auto requests = hook_->requests();
    const captured_request& first = requests.front();
    const auto body = nlohmann::json::parse(first.body);
    EXPECT_EQ(body["version"], "4");
    EXPECT_EQ(body["status"], "firing");
    EXPECT_EQ(body["alerts"][0]["labels"]["alertname"], "PluginErrorRatioHigh");
    EXPECT_EQ(body["alerts"][0]["labels"]["severity"], "warning");
    EXPECT_EQ(body["alerts"][0]["labels"]["plugin"], "billing0");
    EXPECT_NE(body["alerts"][0]["annotations"]["summary"].get<std::string>().find("billing0 fails"),
              std::string::npos);
    // Standard Webhooks: the signature over id.timestamp.body verifies with the shared secret.
    const std::string key =
        plugmon::agent::alert::notify::webhook_signing_key("whsec_c2VjcmV0LWZvci10ZXN0cw==");
    EXPECT_EQ(first.headers.at("webhook-signature"),
              plugmon::agent::alert::notify::webhook_signature(
                  key, first.headers.at("webhook-id"), first.headers.at("webhook-timestamp"),
                  first.body));
    // The real Alertmanager has it, with severity as a label, and notifies its own receiver.
    ASSERT_TRUE(wait_until(
        [&] {
            const auto a = am_entries(am_->alerts(), "PluginErrorRatioHigh");
            return a.size() == 1 && a[0]["labels"]["severity"] == "warning" &&
                   a[0]["status"]["state"] == "active";
        },
        30s));
    ASSERT_TRUE(am_hook_.wait_for(1, 30s));

    load(0.9, 5);
    ASSERT_TRUE(wait_until([&] { return delivered("severity_changed") == 1; }, 30s));
    ASSERT_TRUE(wait_until(
        [&] {
            for (const auto& a : am_entries(am_->alerts(), "PluginErrorRatioHigh"))
                if (a["labels"]["severity"] == "critical" && a["status"]["state"] == "active")
                    return true;
            return false;
        },
        30s));

    load(0.0, 5);
    ASSERT_TRUE(wait_until([&] { return delivered("resolved") == 1; }, 30s));
    EXPECT_EQ(agent_state(), "resolved");
    // In order: one firing, the change to critical, one resolve last. (On the way down the
    // ratio may pass through the warning band in a window that straddles the two loads: that is
    // a second, genuine severity change.)
    std::vector<std::string> order;
    for (const auto& b : delivered()) order.push_back(b["plugmon"]["event"]);
    ASSERT_GE(order.size(), 3u);
    EXPECT_EQ(order.front(), "firing");
    EXPECT_EQ(order[1], "severity_changed");
    EXPECT_EQ(order.back(), "resolved");
    EXPECT_EQ(std::count(order.begin(), order.end(), "firing"), 1);
    EXPECT_EQ(std::count(order.begin(), order.end(), "resolved"), 1);
    EXPECT_EQ(delivered()[1]["alerts"][0]["labels"]["severity"], "critical");
    // Alertmanager heard the resolve: its receiver gets a "resolved" notification.
    EXPECT_TRUE(wait_until(
        [&] {
            for (const auto& r : am_hook_.requests())
                if (nlohmann::json::parse(r.body)["status"] == "resolved") return true;
            return false;
        },
        60s));
}

TEST_F(alerts_e2e, ack_needs_a_token_with_scope_ack_and_a_firing_alert) {
    load(0.4, 5);
    ASSERT_TRUE(wait_until([&] { return agent_state() == "firing"; }, 30s));
    const std::string fp = agent_alerts()[0]["fingerprint"];
    const std::string path = "/api/v1/alerts/" + fp + "/ack";
    const std::string body = R"({"comment": "looking into it", "ttl": "30m"})";
    EXPECT_EQ(request(agent_->port(), "POST", path, body).status, 401u);
    EXPECT_EQ(request(agent_->port(), "POST", path, body, "reader-secret").status, 403u);
    const reply ok = request(agent_->port(), "POST", path, body, "oncall-secret");
    ASSERT_EQ(ok.status, 200u) << ok.body;
    EXPECT_EQ(nlohmann::json::parse(ok.body)["ack"]["by"], "oncall");
    EXPECT_EQ(agent_alerts()[0]["ack"]["comment"], "looking into it");
    EXPECT_TRUE(wait_until([&] { return delivered("acknowledged") == 1; }, 30s));
    EXPECT_EQ(request(agent_->port(), "POST", "/api/v1/alerts/0123456789abcdef/ack", body,
                      "oncall-secret")
                  .status,
              404u);
    load(0.0, 4);
    ASSERT_TRUE(wait_until([&] { return agent_state() == "resolved"; }, 30s));
    EXPECT_EQ(request(agent_->port(), "POST", path, body, "oncall-secret").status, 409u);
    // Silences: Alertmanager's schema, scope ack to change, read to list.
    const std::string silence =
        R"({"matchers": [{"name": "plugin", "value": "billing.*", "isRegex": true}],
            "endsAt": "2100-01-01T00:00:00Z", "comment": "maintenance"})";
    EXPECT_EQ(request(agent_->port(), "POST", "/api/v1/silences", silence, "reader-secret").status,
              403u);
    const reply made =
        request(agent_->port(), "POST", "/api/v1/silences", silence, "oncall-secret");
    ASSERT_EQ(made.status, 200u) << made.body;
    const std::string id = nlohmann::json::parse(made.body)["silenceID"];
    const auto listed =
        nlohmann::json::parse(request(agent_->port(), "GET", "/api/v1/silences").body);
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["status"]["state"], "active");
    EXPECT_EQ(
        request(agent_->port(), "POST", "/api/v1/silences", R"({"matchers": []})", "oncall-secret")
            .status,
        400u);
    EXPECT_EQ(
        request(agent_->port(), "DELETE", "/api/v1/silences/" + id, "", "oncall-secret").status,
        200u);
}

TEST_F(alerts_e2e, a_webhook_answering_503_is_retried_with_the_same_webhook_id) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        fail_next_ = 3;
    }
    load(0.4, 5);
    ASSERT_TRUE(wait_until([&] { return delivered("firing") == 1; }, 60s));
    const auto requests = hook_->requests();
    ASSERT_GE(requests.size(), 4u);
    std::set<std::string> ids;
    for (std::size_t i = 0; i < 4; ++i) ids.insert(requests[i].headers.at("webhook-id"));
    EXPECT_EQ(ids.size(), 1u);
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(statuses_[0], 503u);
    EXPECT_EQ(statuses_[3], 200u);
}

TEST_F(alerts_e2e, sigkill_while_firing_keeps_the_alert_and_sends_no_second_firing) {
    load(0.4, 5);
    ASSERT_TRUE(wait_until([&] { return delivered("firing") == 1; }, 30s));
    ASSERT_TRUE(wait_until(
        [&] { return am_entries(am_->alerts(), "PluginErrorRatioHigh").size() == 1; }, 30s));
    const std::string starts = am_entries(am_->alerts(), "PluginErrorRatioHigh")[0]["startsAt"];
    const auto fired_at = agent_alerts()[0]["fired_at"];
    agent_->proc().signal(SIGKILL);
    agent_->proc().wait(10s);
    start_agent();
    EXPECT_EQ(agent_state(), "firing");
    EXPECT_EQ(agent_alerts()[0]["fired_at"], fired_at);
    load(0.4, 5);
    std::this_thread::sleep_for(3s);
    EXPECT_EQ(delivered("firing"), 1u);
    const auto am = am_entries(am_->alerts(), "PluginErrorRatioHigh");
    ASSERT_EQ(am.size(), 1u);
    EXPECT_EQ(am[0]["startsAt"], starts);  // Alertmanager's startsAt is the first firing's
    load(0.0, 4);
    EXPECT_TRUE(wait_until([&] { return delivered("resolved") == 1; }, 30s));
}

TEST_F(alerts_e2e, sigkill_between_outbox_and_delivery_delivers_once_more_with_the_same_id) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        fail_next_ = 1000;  // the receiver fails: the firing waits in the outbox
    }
    load(0.4, 5);
    ASSERT_TRUE(hook_->wait_for(1, 30s));
    const std::string id = hook_->requests().front().headers.at("webhook-id");
    agent_->proc().signal(SIGKILL);
    agent_->proc().wait(10s);
    {
        std::lock_guard<std::mutex> lock(mu_);
        fail_next_ = 0;
    }
    start_agent();
    ASSERT_TRUE(wait_until([&] { return delivered("firing") == 1; }, 60s));
    const auto requests = hook_->requests();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < requests.size(); ++i) {
        if (statuses_[i] != 200) continue;
        EXPECT_EQ(requests[i].headers.at("webhook-id"), id);
    }
}

TEST_F(alerts_e2e, alertmanager_down_for_two_minutes_gets_the_firing_then_the_resolve_in_order) {
    am_->stop();
    load(0.4, 5);
    ASSERT_TRUE(wait_until([&] { return agent_state() == "firing"; }, 30s));
    const std::string fired_at = agent_alerts()[0]["fired_at"];
    std::this_thread::sleep_for(120s);
    am_->start();
    ASSERT_TRUE(wait_until(
        [&] {
            const auto a = am_entries(am_->alerts(), "PluginErrorRatioHigh");
            return a.size() == 1 && a[0]["status"]["state"] == "active";
        },
        120s));
    // The startsAt Alertmanager got is when the alert fired, not when it was finally sent.
    const std::string starts = am_entries(am_->alerts(), "PluginErrorRatioHigh")[0]["startsAt"];
    EXPECT_EQ(starts.substr(0, 19), fired_at.substr(0, 19));
    load(0.0, 5);
    ASSERT_TRUE(wait_until(
        [&] {
            std::vector<std::string> seen;
            for (const auto& r : am_hook_.requests())
                seen.push_back(nlohmann::json::parse(r.body)["status"]);
            return !seen.empty() && seen.front() == "firing" && seen.back() == "resolved";
        },
        90s));
}

TEST_F(alerts_e2e, a_store_that_cannot_write_fires_while_alerts_keep_flowing) {
    agent_->stop();
    const int closed = unused_loopback_port();  // nothing listens there
    write_file(
        dir_.path() + "/store-rule.toml",
        "[[rule]]\nname = \"PlugmonStoreDown\"\nkind = \"store_down\"\nreceivers = [\"hook\"]\n",
        0644);
    write_file(dir_.path() + "/agent.toml",
               "flush_interval = \"1s\"\nalert_rules = [\"" + dir_.path() + "/rules.toml\", \"" +
                   dir_.path() + "/store-rule.toml\"]\nalert_state_dir = \"" + dir_.path() +
                   "/alerts\"\ntokens_file = \"" + dir_.path() + "/tokens.toml\"\n" +
                   "postgres = \"postgresql://127.0.0.1:" + std::to_string(closed) +
                   "/plugmon\"\n" + "spool_dir = \"" + dir_.path() + "/spool\"\n",
               0644);
    start_agent();
    load(0.4, 5);
    ASSERT_TRUE(wait_until(
        [&] {
            std::set<std::string> names;
            for (const auto& b : delivered())  // one message may group several alerts
                if (b["plugmon"]["event"] == "firing")
                    for (const auto& a : b["alerts"])
                        names.insert(a["labels"]["alertname"].get<std::string>());
            return names.count("PlugmonStoreDown") == 1 && names.count("PluginErrorRatioHigh") == 1;
        },
        60s))
        << read_file(log_);
}

TEST_F(alerts_e2e, postgresql_down_delays_no_alert_and_the_history_is_complete_afterwards) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("alerts_e2e");
    agent_->stop();
    write_file(dir_.path() + "/agent.toml",
               "flush_interval = \"1s\"\nalert_rules = \"" + dir_.path() +
                   "/rules.toml\"\nalert_state_dir = \"" + dir_.path() + "/alerts\"\n" +
                   "postgres = \"" + url + "\"\nspool_dir = \"" + dir_.path() + "/spool\"\n" +
                   "postgres_backoff_max = \"1s\"\n",
               0600);
    start_agent();
    load(0.4, 5);
    ASSERT_TRUE(wait_until([&] { return delivered("firing") == 1; }, 30s)) << read_file(log_);
    pg.stop("immediate");
    load(0.0, 5);  // resolves while PostgreSQL is down: the webhook hears it all the same
    ASSERT_TRUE(wait_until([&] { return delivered("resolved") == 1; }, 30s)) << read_file(log_);
    pg.restart();
    const std::string fp = agent_alerts()[0]["fingerprint"];
    std::vector<std::string> events;
    std::string state;
    const bool complete = wait_until(
        [&] {
            try {
                pqxx::connection c(url);
                pqxx::read_transaction tx(c);
                events.clear();
                for (const auto& row :
                     tx.exec("SELECT event FROM plugmon.alert_events WHERE fingerprint = " +
                             tx.quote(fp) + " ORDER BY seq"))
                    events.push_back(row[0].as<std::string>());
                const auto st =
                    tx.exec("SELECT state FROM plugmon.alerts WHERE fingerprint = " + tx.quote(fp));
                state = st.empty() ? "" : st[0][0].as<std::string>();
                return state == "resolved";
            } catch (const std::exception&) {
                return false;
            }
        },
        60s);
    ASSERT_TRUE(complete) << read_file(log_);
    // Every change, once, in order: pending and firing (for = 0: together), the notifications,
    // the resolve.
    const auto at = [&](const std::string& e) {
        return std::find(events.begin(), events.end(), e) - events.begin();
    };
    EXPECT_EQ(std::count(events.begin(), events.end(), "firing"), 1);
    EXPECT_EQ(std::count(events.begin(), events.end(), "resolved"), 1);
    EXPECT_LT(at("pending"), at("firing"));
    EXPECT_LT(at("firing"), at("sent firing"));
    EXPECT_LT(at("sent firing"), at("resolved"));
    EXPECT_LT(at("resolved"), at("sent resolved"));
    EXPECT_EQ(events.back(), "sent resolved");
    EXPECT_EQ(std::count(events.begin(), events.end(), "sent firing"), 2);  // am and hook
}

}  // namespace
}  // namespace plugmon::test
