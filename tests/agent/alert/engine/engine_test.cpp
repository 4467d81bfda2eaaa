// The alert engine on hand-made windows and a fake clock: `for`, `keep_firing_for`, hysteresis,
// min_samples, Netdata's delay, levels, flapping, acks, silences, escalation and restarts.
#include "alert/engine/engine.hpp"
#include "aggregate/sketch.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace plugmon::agent::alert {
namespace {

using namespace std::chrono_literals;

/// Keeps every notification the engine hands over.
class recorder final : public notification_sink {
public:
    void submit(std::vector<notification> batch) override {
        for (auto& n : batch) got.push_back(std::move(n));
    }
    std::vector<notification> got;
    std::size_t count(event_kind e, const std::string& receiver = "") const {
        std::size_t n = 0;
        for (const auto& x : got)
            if (x.event == e && (receiver.empty() || x.receiver == receiver)) ++n;
        return n;
    }
};

const time_point epoch = time_point(std::chrono::seconds(1'790'000'000));

struct harness {
    explicit harness(rule r, std::string dir = "", std::vector<escalation_policy> esc = {}) {
        rules.rules.push_back(std::move(r));
        for (const auto& [name, type] : {std::pair{"hook", receiver_type::webhook},
                                         std::pair{"am", receiver_type::alertmanager},
                                         std::pair{"pager", receiver_type::webhook}}) {
            receiver_spec spec;
            spec.name = name;
            spec.type = type;
            rules.receivers.push_back(spec);
        }
        rules.escalations = std::move(esc);
        state_dir = std::move(dir);
        start();
    }
    void start() {
        engine_options o;
        o.state_dir = state_dir;
        o.host = "h1";
        o.clock = [this] { return now; };
        o.history = [this](std::vector<alert_row> rows) {
            for (auto& r : rows) history.push_back(std::move(r));
        };
        e = std::make_unique<engine>(rules, out, o);
    }
    /// One window of `length` ending at `now + length`, with one plugin's calls and errors.
    void window(std::uint64_t calls, std::uint64_t errors, nanoseconds length = 10s,
                const std::string& plugin = "billing") {
        window_batch w;
        w.bucket_start = now;
        w.length = length;
        if (calls > 0) {
            query_rollup q;
            q.plugin = plugin;
            q.op = "select";
            q.calls = calls;
            q.errors = errors;
            w.queries.push_back(q);
        }
        now += std::chrono::duration_cast<time_point::duration>(length);
        e->consume(std::make_shared<const window_batch>(std::move(w)));
    }
    std::string state() const {
        const auto j = e->alerts_json("", "");
        return j["alerts"].empty() ? "none" : j["alerts"][0]["state"].get<std::string>();
    }
    std::string fingerprint() const {
        return e->alerts_json("", "")["alerts"][0]["fingerprint"].get<std::string>();
    }
    rule_set rules;
    std::shared_ptr<recorder> out = std::make_shared<recorder>();
    std::string state_dir;
    std::vector<alert_row> history;  // what would go to PostgreSQL
    time_point now = epoch;
    std::unique_ptr<engine> e;
};

rule error_rule() {
    rule r;
    r.name = "PluginErrorRatioHigh";
    r.kind = rule_kind::error_ratio;
    r.select = {{"plugin", "*"}};
    r.group_by = {"plugin"};
    r.over = 10s;
    r.min_samples = 10;
    r.receivers = {"hook", "am"};
    r.levels[int(severity::warning)] = level_spec{0.05, {}, 0.02, {}};
    r.levels[int(severity::critical)] = level_spec{0.20, {}, {}, {}};
    r.severity_down_delay = 0s;
    r.flap_threshold = 0;
    return r;
}

TEST(alert_engine, for_holds_pending_then_fires_once_and_a_false_drops_pending_silently) {
    rule r = error_rule();
    r.for_ = 2min;
    harness h(r);
    h.window(100, 10);
    EXPECT_EQ(h.state(), "pending");
    h.window(100, 0);  // one false: the pending alert goes, nobody heard of it
    EXPECT_EQ(h.state(), "none");
    for (int i = 0; i < 12; ++i) h.window(100, 10);  // 110 s since active: still pending
    EXPECT_EQ(h.state(), "pending");
    EXPECT_TRUE(h.out->got.empty());
    h.window(100, 10);  // 120 s
    EXPECT_EQ(h.state(), "firing");
    EXPECT_EQ(h.out->count(event_kind::firing, "hook"), 1u);
    EXPECT_EQ(h.out->count(event_kind::firing, "am"), 1u);
    for (int i = 0; i < 5; ++i) h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::firing), 2u);  // no duplicates while it keeps firing
    const auto& n = h.out->got.front();
    EXPECT_EQ(n.alert.labels.at("alertname"), "PluginErrorRatioHigh");
    EXPECT_EQ(n.alert.labels.at("plugin"), "billing");
    EXPECT_EQ(n.alert.labels.at("host"), "h1");
    EXPECT_EQ(n.alert.labels.count("severity"), 0u);  // a level, not identity
    EXPECT_EQ(n.alert.level, severity::warning);
    EXPECT_DOUBLE_EQ(n.alert.value, 0.1);
}

TEST(alert_engine, keep_firing_for_resolves_after_continuous_false_and_a_true_keeps_the_episode) {
    rule r = error_rule();
    r.keep_firing_for = 5min;
    harness h(r);
    h.window(100, 10);
    ASSERT_EQ(h.state(), "firing");
    const std::string episode = h.out->got.front().alert.episode;
    for (int i = 0; i < 20; ++i) h.window(100, 0);
    h.window(100, 10);  // true again inside keep_firing_for: same episode, no new firing
    EXPECT_EQ(h.out->count(event_kind::firing, "hook"), 1u);
    for (int i = 0; i < 30; ++i) h.window(100, 0);  // 0..290 s of false
    EXPECT_EQ(h.state(), "firing");
    h.window(100, 0);  // 300 s
    EXPECT_EQ(h.state(), "resolved");
    ASSERT_EQ(h.out->count(event_kind::resolved, "hook"), 1u);
    EXPECT_EQ(h.out->got.back().alert.episode, episode);
}

TEST(alert_engine, a_value_oscillating_inside_the_hysteresis_band_fires_once_and_never_resolves) {
    harness h(error_rule());
    for (int i = 0; i < 40; ++i) h.window(1000, i % 2 == 0 ? 51 : 49);  // 5.1 % and 4.9 %
    EXPECT_EQ(h.out->count(event_kind::firing, "hook"), 1u);
    EXPECT_EQ(h.out->count(event_kind::resolved), 0u);
    h.window(1000, 19);  // 1.9 %: below clear_below
    EXPECT_EQ(h.out->count(event_kind::resolved, "hook"), 1u);
}

TEST(alert_engine, too_few_samples_is_no_data_which_neither_starts_nor_ends_an_alert) {
    harness h(error_rule());
    h.window(4, 3);  // 75 % of 4 calls: under min_samples
    EXPECT_EQ(h.state(), "none");
    h.window(100, 10);
    ASSERT_EQ(h.state(), "firing");
    h.window(4, 0);  // 0 % of 4 calls: still no data, still firing
    h.window(0, 0);  // no calls at all
    EXPECT_EQ(h.state(), "firing");
    EXPECT_EQ(h.out->count(event_kind::resolved), 0u);
}

TEST(alert_engine, no_data_for_long_resolves_when_the_rule_says_so) {
    rule r = error_rule();
    r.on_no_data = no_data_policy::resolve;
    r.no_data_after = 1min;
    harness h(r);
    h.window(100, 10);
    for (int i = 0; i < 5; ++i) h.window(0, 0);
    EXPECT_EQ(h.state(), "firing");
    h.window(0, 0);
    EXPECT_EQ(h.state(), "resolved");
}

TEST(alert_engine, levels_go_up_at_once_and_down_after_the_delay) {
    rule r = error_rule();
    r.severity_down_delay = 30s;
    harness h(r);
    h.window(100, 10);
    h.window(100, 30);  // 30 %: critical at once
    ASSERT_EQ(h.out->count(event_kind::severity_changed, "hook"), 1u);
    EXPECT_EQ(h.out->got.back().alert.level, severity::critical);
    EXPECT_EQ(h.out->got.back().previous_level, severity::warning);
    h.window(100, 10);
    h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::severity_changed, "hook"), 1u);  // 20 s: not yet
    h.window(100, 10);
    h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::severity_changed, "hook"), 2u);
    EXPECT_EQ(h.out->got.back().alert.level, severity::warning);
}

TEST(alert_engine, netdata_delay_supersedes_a_flap_and_backs_off) {
    // up 10s down 15m multiplier 2 max 1h, 1 s windows: firing at T+1 (due T+11), clear at T+5
    // (30 min delay, which supersedes the firing: nothing sent), firing again at T+6 with the up
    // delay doubled twice (40 s): the one notification goes out at T+46.
    rule r = error_rule();
    r.over = 1s;  // each 1 s window on its own
    r.notify_delay = delay_spec{10s, 15min, 1h, 2.0};
    harness h(r);
    h.window(100, 0, 1s);
    h.window(100, 10, 1s);  // firing at T+2 (end of the window)
    for (int i = 0; i < 3; ++i) h.window(100, 10, 1s);
    h.window(100, 0, 1s);   // resolved at T+6
    h.window(100, 10, 1s);  // firing at T+7: due T+47
    for (int t = 8; t < 47; ++t) {
        h.window(100, 10, 1s);
        ASSERT_TRUE(h.out->got.empty())
            << "sent at T+" << t << ": " << to_string(h.out->got[0].event) << " to "
            << h.out->got[0].receiver;
    }
    h.window(100, 10, 1s);  // T+47
    EXPECT_EQ(h.out->count(event_kind::firing, "hook"), 1u);
    EXPECT_EQ(h.out->count(event_kind::resolved), 0u);
}

TEST(alert_engine, a_flapping_alert_sends_one_flapping_notice_instead_of_a_stream) {
    rule r = error_rule();
    r.levels[int(severity::warning)]->clear_below.reset();
    r.flap_threshold = 6;
    r.flap_window = 30min;
    harness h(r);
    for (int i = 0; i < 40; ++i) h.window(100, i % 2 == 0 ? 10 : 0);
    EXPECT_EQ(h.out->count(event_kind::flapping, "hook"), 1u);
    EXPECT_LE(h.out->count(event_kind::firing, "hook"), 3u);
    EXPECT_LE(h.out->count(event_kind::resolved, "hook"), 3u);
    // Alertmanager keeps the state in step (it re-sends and dedupes by itself).
    EXPECT_EQ(h.out->count(event_kind::flapping, "am"), 0u);
}

TEST(alert_engine, ack_needs_a_firing_alert_stops_reminders_and_binds_to_the_episode) {
    rule r = error_rule();
    r.repeat_interval[int(severity::warning)] = 1min;
    harness h(r);
    h.window(100, 0);
    EXPECT_EQ(h.e->ack("0000000000000000", "ops", "x", 30min, nullptr), ack_result::not_found);
    h.window(100, 10);
    const std::string fp = h.fingerprint();
    for (int i = 0; i < 6; ++i) h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::reminder, "hook"), 1u);
    nlohmann::json ack;
    ASSERT_EQ(h.e->ack(fp, "ops", "looking", 30min, &ack), ack_result::ok);
    EXPECT_EQ(ack["by"], "ops");
    EXPECT_EQ(h.out->count(event_kind::acknowledged, "hook"), 1u);
    EXPECT_EQ(h.out->count(event_kind::acknowledged, "am"), 0u);
    for (int i = 0; i < 12; ++i) h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::reminder, "hook"), 1u);  // none while acknowledged
    h.window(100, 0);
    ASSERT_EQ(h.state(), "resolved");
    EXPECT_EQ(h.e->ack(fp, "ops", "late", 30min, nullptr), ack_result::not_firing);
    h.window(100, 10);  // a new episode: not acknowledged
    EXPECT_TRUE(h.e->alerts_json("", "")["alerts"][0]["ack"].is_null());
}

TEST(alert_engine, an_expired_ack_resumes_reminders) {
    rule r = error_rule();
    r.repeat_interval[int(severity::warning)] = 1min;
    harness h(r);
    h.window(100, 10);
    ASSERT_EQ(h.e->ack(h.fingerprint(), "ops", "", 30s, nullptr), ack_result::ok);
    for (int i = 0; i < 4; ++i) h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::unacknowledged, "hook"), 1u);
    for (int i = 0; i < 6; ++i) h.window(100, 10);
    EXPECT_GE(h.out->count(event_kind::reminder, "hook"), 1u);
}

TEST(alert_engine, a_silence_mutes_webhooks_not_alertmanager_and_its_expiry_notifies_once) {
    harness h(error_rule());
    const std::string id = h.e->add_silence(
        {{"matchers", {{{"name", "plugin"}, {"value", "bill.*"}, {"isRegex", true}}}},
         {"endsAt", "2100-01-01T00:00:00Z"},
         {"comment", "maintenance"}},
        "ops");
    h.window(100, 10);
    EXPECT_EQ(h.state(), "firing");  // evaluated as ever
    EXPECT_EQ(h.out->count(event_kind::firing, "hook"), 0u);
    EXPECT_EQ(h.out->count(event_kind::firing, "am"), 1u);
    ASSERT_TRUE(h.e->expire_silence(id));
    EXPECT_FALSE(h.e->expire_silence(id));
    h.window(100, 10);
    h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::firing, "hook"), 1u);
    EXPECT_EQ(h.out->count(event_kind::firing, "am"), 1u);
    EXPECT_THROW(h.e->add_silence({{"matchers", nlohmann::json::array()}}, "ops"),
                 std::invalid_argument);
}

TEST(alert_engine, a_resolve_reaches_only_receivers_that_heard_the_firing) {
    harness h(error_rule());
    h.e->add_silence({{"matchers", {{{"name", "alertname"}, {"value", "PluginErrorRatioHigh"}}}},
                      {"endsAt", "2100-01-01T00:00:00Z"}},
                     "ops");
    h.window(100, 10);
    h.window(100, 0);
    EXPECT_EQ(h.out->count(event_kind::resolved, "am"), 1u);
    EXPECT_EQ(h.out->count(event_kind::resolved, "hook"), 0u);  // it never heard the firing
}

TEST(alert_engine, escalation_walks_its_levels_until_acknowledged) {
    rule r = error_rule();
    r.escalation = "oncall";
    escalation_policy p;
    p.name = "oncall";
    p.levels = {escalation_level{0s, {"hook"}, severity::info},
                escalation_level{1min, {"pager"}, severity::critical}};
    harness h(r, "", {p});
    h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::escalated, "hook"), 1u);
    for (int i = 0; i < 8; ++i) h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::escalated, "pager"), 0u);  // warning < min_severity
    h.window(100, 30);                                            // critical: due, fires now
    EXPECT_EQ(h.out->count(event_kind::escalated, "pager"), 1u);
    ASSERT_EQ(h.e->ack(h.fingerprint(), "ops", "", 1h, nullptr), ack_result::ok);
    for (int i = 0; i < 30; ++i) h.window(100, 30);
    EXPECT_EQ(h.out->count(event_kind::escalated), 2u);
    h.window(100, 0);  // the pager heard the firing: it hears the resolve too
    EXPECT_EQ(h.out->count(event_kind::resolved, "pager"), 1u);
}

TEST(alert_engine, a_restart_keeps_a_firing_alert_firing_with_its_start_and_no_second_firing) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("plugmon-alert-state-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    harness h(error_rule(), dir.string());
    h.window(100, 10);
    const auto fired = h.e->alerts_json("", "")["alerts"][0]["fired_at"];
    h.e.reset();  // as good as a SIGKILL: the state file was written after the window
    h.now += 2min;
    h.start();
    EXPECT_EQ(h.state(), "firing");
    h.window(100, 10);
    EXPECT_EQ(h.out->count(event_kind::firing, "hook"), 1u);
    EXPECT_EQ(h.e->alerts_json("", "")["alerts"][0]["fired_at"], fired);
    h.window(100, 0);
    EXPECT_EQ(h.out->count(event_kind::resolved, "hook"), 1u);
    std::filesystem::remove_all(dir);
}

TEST(alert_engine, a_restart_resumes_for_without_counting_the_downtime) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("plugmon-alert-pending-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    rule r = error_rule();
    r.for_ = 30min;
    harness h(r, dir.string());
    for (int i = 0; i < 120; ++i) h.window(100, 10);  // 20 min pending (0 .. 1190 s)
    ASSERT_EQ(h.state(), "pending");
    h.e.reset();
    h.now += 5min;
    h.start();
    for (int i = 0; i < 59; ++i) h.window(100, 10);
    EXPECT_EQ(h.state(), "pending");  // downtime not counted: 10 more minutes needed
    h.window(100, 10);
    h.window(100, 10);
    EXPECT_EQ(h.state(), "firing");
    std::filesystem::remove_all(dir);
}

TEST(alert_engine, latency_quantile_comes_from_the_merged_sketches) {
    rule r;
    r.name = "SlowP99";
    r.kind = rule_kind::latency_quantile;
    r.quantile = 0.99;
    r.group_by = {"plugin"};
    r.over = 1min;
    r.receivers = {"hook"};
    r.levels[int(severity::warning)] = level_spec{0.25, {}, {}, {}};
    harness h(r);
    for (int i = 0; i < 6; ++i) {
        window_batch w;
        w.bucket_start = h.now;
        w.length = 10s;
        dd_sketch s;
        for (std::uint64_t v = 1; v <= 1000; ++v) s.add(v * 300'000);  // 0.3 .. 300 ms
        query_rollup q;
        q.plugin = "search";
        q.calls = 1000;
        q.sketch = s.encode();
        w.queries.push_back(q);
        h.now += 10s;
        h.e->consume(std::make_shared<const window_batch>(std::move(w)));
    }
    const auto a = h.e->alerts_json("", "")["alerts"][0];
    EXPECT_EQ(a["state"], "firing");
    EXPECT_NEAR(a["value"].get<double>(), 0.297, 0.297 * 0.011);  // the sketch's accuracy
}

TEST(alert_engine, the_watchdog_always_fires) {
    rule r;
    r.name = "Watchdog";
    r.kind = rule_kind::watchdog;
    r.receivers = {"am"};
    r.levels[int(severity::info)] = level_spec{0.5, {}, {}, {}};
    harness h(r);
    h.window(0, 0);
    EXPECT_EQ(h.state(), "firing");
    EXPECT_EQ(h.out->count(event_kind::firing, "am"), 1u);
}

TEST(alert_engine, every_change_goes_to_the_history_with_increasing_sequence_numbers) {
    harness h(error_rule());
    h.window(100, 10);
    h.window(100, 0);
    const std::string id = h.e->add_silence(
        {{"matchers", {{{"name", "plugin"}, {"value", "x"}}}}, {"endsAt", "2100-01-01T00:00:00Z"}},
        "ops");
    ASSERT_TRUE(h.e->expire_silence(id));
    std::vector<std::string> events;
    std::uint64_t last = 0;
    for (const auto& r : h.history) {
        events.push_back(r.event + (r.fingerprint.empty() ? "" : ":" + r.state));
        EXPECT_GT(r.seq, last);
        last = r.seq;
    }
    // One "sent" line per receiver (hook, then am), each naming it in its detail.
    EXPECT_EQ(events, (std::vector<std::string>{"pending:pending", "firing:firing",
                                                "sent firing:firing", "sent firing:firing",
                                                "resolved:resolved", "sent resolved:resolved",
                                                "sent resolved:resolved", "silence", "silence"}));
    EXPECT_EQ(h.history.back().detail, "expired");
    EXPECT_NE(h.history.back().labels_json.find(id), std::string::npos);
}

TEST(alert_engine, an_escalation_policy_loops_repeat_times_then_stops) {
    rule r = error_rule();
    r.escalation = "loop";
    escalation_policy p;
    p.name = "loop";
    p.repeat = 1;
    p.levels = {escalation_level{0s, {"hook"}, severity::info},
                escalation_level{1min, {"pager"}, severity::info}};
    harness h(r, "", {p});
    std::vector<std::pair<std::string, long>> seen;  // receiver, seconds since firing
    const time_point fired = h.now + 10s;
    for (int i = 0; i < 60; ++i) {
        const std::size_t before = h.out->got.size();
        h.window(100, 10);
        for (std::size_t k = before; k < h.out->got.size(); ++k)
            if (h.out->got[k].event == event_kind::escalated)
                seen.push_back(
                    {h.out->got[k].receiver,
                     long(
                         std::chrono::duration_cast<std::chrono::seconds>(h.now - fired).count())});
    }
    // Loop 0: hook at 0, pager at 1 min; loop 1 starts 1 min after that: hook at 2, pager at 3.
    EXPECT_EQ(seen, (std::vector<std::pair<std::string, long>>{
                        {"hook", 0}, {"pager", 60}, {"hook", 120}, {"pager", 180}}));
}

}  // namespace
}  // namespace plugmon::agent::alert
