// The dispatcher against a real local HTTP receiver: delivery, retries with one webhook-id,
// Retry-After, dead letters and replay, restart replay, Alertmanager re-sends, the storm guard,
// outbox corruption, and receivers added, replaced and removed by a reload (also while
// notifications are being submitted: meaningful under TSan).
#include "alert/notify/dispatcher.hpp"
#include "alert/notify/am_state.hpp"
#include "alert/notify/http_client.hpp"
#include "alert/notify/signing.hpp"
#include "common/rfc3339.hpp"
#include "hook_server.hpp"
#include "test_events.hpp"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

using namespace plugmon::agent;
using namespace plugmon::agent::alert;
using namespace plugmon::agent::alert::notify;
using plugmon::agent::testing::captured_request;
using plugmon::agent::testing::hook_reply;
using plugmon::agent::testing::hook_server;
using plugmon::agent::testing::make_event;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// spdlog builds its registry on first use, inside libspdlog where TSan sees no synchronisation:
// build it on the main thread before a worker's log line can be the first (a false race).
[[maybe_unused]] const auto* const logger = spdlog::default_logger_raw();

struct temp_dir {
    fs::path path;
    temp_dir() {
        path = fs::temp_directory_path() /
               ("plugmon-notify-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    static std::atomic<int>& counter() {
        static std::atomic<int> c{0};
        return c;
    }
};

std::string write_file(const fs::path& p, const std::string& text) {
    std::ofstream(p) << text;
    return p.string();
}

receiver_spec webhook(const std::string& name, const std::string& url) {
    receiver_spec r;
    r.name = name;
    r.type = receiver_type::webhook;
    r.url = url;
    r.timeout = 2s;
    return r;
}

dispatcher_options options(const temp_dir& d, std::vector<receiver_spec> receivers) {
    dispatcher_options o;
    o.outbox_dir = (d.path / "outbox").string();
    o.receivers = std::move(receivers);
    o.host = "h1";
    o.external_url = "http://agent:9187/";
    o.backoff = {10ms, 2.0, 0.2, 100ms};
    o.idle_wait = 10ms;
    return o;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

bool signature_valid(const captured_request& r) {
    auto key = webhook_signing_key(secret);
    return r.headers.count("webhook-signature") != 0 &&
           r.headers.at("webhook-signature") == webhook_signature(key, r.headers.at("webhook-id"),
                                                                  r.headers.at("webhook-timestamp"),
                                                                  r.body);
}

std::uint64_t metric(const dispatcher& d, const std::string& series) {
    std::string out;
    d.render_metrics(out);
    auto pos = out.find("\n" + series + " ");
    if (pos == std::string::npos) return ~0ull;
    return std::stoull(out.substr(pos + series.size() + 2));
}

// A port nothing listens on (a server's, after it is gone).
std::uint16_t closed_port() {
    hook_server s;
    return s.port();
}

}  // namespace

TEST(dispatcher, delivers_a_signed_webhook_with_the_notification_id) {
    temp_dir d;
    hook_server server;
    auto spec = webhook("ops", server.url());
    spec.secret_file = write_file(d.path / "secret", secret);
    spec.bearer_token_file = write_file(d.path / "token", "tok123\n");
    spec.headers = {{"x-team", "db"}};
    dispatcher disp(options(d, {spec}));
    auto n = make_event("ops", "00000000000000aa", event_kind::firing, 1);
    disp.submit({n});
    ASSERT_TRUE(server.wait_for(1));
    auto r = server.requests().at(0);
    EXPECT_EQ(r.target, "/hook");
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.headers["webhook-id"], n.id);
    EXPECT_EQ(r.headers["authorization"], "Bearer tok123");
    EXPECT_EQ(r.headers["x-team"], "db");
    EXPECT_TRUE(signature_valid(r));
    auto body = nlohmann::json::parse(r.body);
    EXPECT_EQ(body["version"], "4");
    EXPECT_EQ(body["plugmon"]["event_id"], n.id);
    EXPECT_EQ(body["externalURL"], "http://agent:9187");
    EXPECT_TRUE(eventually([&] {
        return metric(disp, "plugmon_notifications_total{receiver=\"ops\",event=\"firing\"}") == 1;
    }));
    EXPECT_TRUE(eventually([&] { return disp.status()["outbox_bytes"] == 0; }));
}

TEST(dispatcher, retries_5xx_with_the_same_id_and_a_valid_signature_each_time) {
    temp_dir d;
    hook_server server(
        [](const captured_request&, std::size_t i) { return hook_reply{i < 3 ? 503u : 200u}; });
    auto spec = webhook("ops", server.url());
    spec.secret_file = write_file(d.path / "secret", secret);
    dispatcher disp(options(d, {spec}));
    auto n = make_event("ops", "fp", event_kind::firing, 1);
    disp.submit({n});
    ASSERT_TRUE(server.wait_for(4));
    auto rs = server.requests();
    for (const auto& r : rs) {
        EXPECT_EQ(r.headers.at("webhook-id"), n.id);
        EXPECT_TRUE(signature_valid(r));
        EXPECT_EQ(r.body, rs.front().body);
    }
    EXPECT_TRUE(eventually([&] {
        return metric(disp,
                      "plugmon_notification_requests_failed_total{receiver=\"ops\",reason="
                      "\"5xx\"}") == 3 &&
               metric(disp, "plugmon_notifications_total{receiver=\"ops\",event=\"firing\"}") == 1;
    }));
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(server.requests().size(), 4u);
}

TEST(dispatcher, honours_retry_after_on_429) {
    temp_dir d;
    hook_server server([](const captured_request&, std::size_t i) {
        return i == 0 ? hook_reply{429, {{"Retry-After", "1"}}} : hook_reply{200};
    });
    dispatcher disp(options(d, {webhook("ops", server.url())}));
    disp.submit({make_event("ops", "fp", event_kind::firing, 1)});
    ASSERT_TRUE(server.wait_for(2, 5s));
    auto rs = server.requests();
    EXPECT_GE(rs[1].at - rs[0].at, 900ms);  // the backoff alone would be ~10 ms
    EXPECT_EQ(metric(disp,
                     "plugmon_notification_requests_failed_total{receiver=\"ops\",reason="
                     "\"429\"}"),
              1u);
}

TEST(dispatcher, dead_letters_a_404_and_replays_it) {
    temp_dir d;
    std::atomic<bool> found{false};
    hook_server server([&](const captured_request&, std::size_t) {
        return hook_reply{found ? 200u : 404u, {}, "no such hook"};
    });
    dispatcher disp(options(d, {webhook("ops", server.url())}));
    auto n = make_event("ops", "fp", event_kind::firing, 1);
    disp.submit({n});
    ASSERT_TRUE(eventually([&] { return disp.dead_letters().size() == 1; }));
    auto dl = disp.dead_letters().front();
    EXPECT_EQ(dl.id, n.id);
    EXPECT_EQ(dl.receiver, "ops");
    EXPECT_EQ(dl.fingerprint, "fp");
    EXPECT_EQ(dl.last_status, 404u);
    EXPECT_EQ(dl.attempts, 1);
    EXPECT_NE(dl.last_error.find("no such hook"), std::string::npos);
    EXPECT_EQ(server.requests().size(), 1u);  // not retried
    EXPECT_EQ(metric(disp, "plugmon_notifications_dead_lettered_total{receiver=\"ops\"}"), 1u);
    found = true;
    EXPECT_FALSE(disp.replay("nope"));
    EXPECT_TRUE(disp.replay(n.id));
    ASSERT_TRUE(server.wait_for(2));
    EXPECT_EQ(server.requests().at(1).headers.at("webhook-id"), n.id);
    EXPECT_TRUE(eventually([&] { return disp.dead_letters().empty(); }));
}

TEST(dispatcher, replays_the_outbox_after_a_restart_with_the_same_id) {
    temp_dir d;
    std::uint16_t port = closed_port();
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
    auto n = make_event("ops", "fp", event_kind::firing, 1);
    {
        dispatcher disp(options(d, {webhook("ops", url)}));
        disp.submit({n});
        ASSERT_TRUE(eventually([&] {
            return metric(disp,
                          "plugmon_notification_requests_failed_total{receiver=\"ops\","
                          "reason=\"network\"}") >= 1;
        }));
    }
    hook_server server({}, port);
    dispatcher disp(options(d, {webhook("ops", url)}));
    ASSERT_TRUE(server.wait_for(1));
    EXPECT_EQ(server.requests().at(0).headers.at("webhook-id"), n.id);
}

TEST(dispatcher, skips_the_resolve_of_a_dead_lettered_firing) {
    temp_dir d;
    hook_server server(
        [](const captured_request&, std::size_t i) { return hook_reply{i == 0 ? 410u : 200u}; });
    dispatcher disp(options(d, {webhook("ops", server.url())}));
    disp.submit({make_event("ops", "fp", event_kind::firing, 1)});
    ASSERT_TRUE(eventually([&] { return disp.dead_letters().size() == 1; }));
    disp.submit({make_event("ops", "fp", event_kind::resolved, 2)});
    disp.submit({make_event("ops", "other", event_kind::firing, 1)});
    ASSERT_TRUE(server.wait_for(2));
    std::this_thread::sleep_for(50ms);
    auto rs = server.requests();
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(nlohmann::json::parse(rs[1].body)["alerts"][0]["fingerprint"], "other");
    EXPECT_EQ(metric(disp, "plugmon_notifications_resolve_skipped_total{receiver=\"ops\"}"), 1u);
}

TEST(dispatcher, groups_one_batch_per_event_kind_in_one_message) {
    temp_dir d;
    hook_server server;
    dispatcher disp(options(d, {webhook("ops", server.url())}));
    std::vector<notification> batch;
    for (int i = 0; i < 3; ++i)
        batch.push_back(make_event("ops", "f" + std::to_string(i), event_kind::firing, 1));
    batch.push_back(make_event("ops", "g", event_kind::resolved, 4));
    disp.submit(batch);
    ASSERT_TRUE(server.wait_for(2));
    std::this_thread::sleep_for(50ms);
    auto rs = server.requests();
    ASSERT_EQ(rs.size(), 2u);
    auto first = nlohmann::json::parse(rs[0].body);
    EXPECT_EQ(first["alerts"].size(), 3u);
    EXPECT_EQ(first["plugmon"]["events"].size(), 3u);
    EXPECT_EQ(rs[0].headers.at("webhook-id").substr(0, 4), "grp_");
    EXPECT_EQ(nlohmann::json::parse(rs[1].body)["status"], "resolved");
}

TEST(dispatcher, alertmanager_resends_firing_and_resolved_then_forgets) {
    temp_dir d;
    hook_server server;
    receiver_spec am;
    am.name = "am";
    am.type = receiver_type::alertmanager;
    am.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
    am.resend_interval = 50ms;
    am.resolved_resend_for = 200ms;
    dispatcher disp(options(d, {am}));
    auto fire = make_event("am", "fp", event_kind::firing, 1);
    disp.submit({fire});
    ASSERT_TRUE(server.wait_for(3));  // the first send, then re-sends
    auto rs = server.requests();
    EXPECT_EQ(rs[0].target, "/api/v2/alerts");
    auto a = nlohmann::json::parse(rs[2].body).at(0);
    EXPECT_EQ(a["labels"]["severity"], "warning");
    EXPECT_EQ(a["startsAt"], format_rfc3339(fire.alert.fired_at));
    EXPECT_GT(parse_rfc3339(a["endsAt"].get<std::string>()).value(),
              std::chrono::system_clock::now());
    // A severity change: the old label set is resolved and the new one fires.
    auto up = make_event("am", "fp", event_kind::severity_changed, 2);
    up.alert.level = severity::critical;
    std::size_t before = server.requests().size();
    disp.submit({up});
    ASSERT_TRUE(eventually([&] {
        auto all = server.requests();
        return all.size() > before && nlohmann::json::parse(all.back().body).size() == 2;
    }));
    auto both = nlohmann::json::parse(server.requests().back().body);
    for (const auto& x : both) {
        auto ends = parse_rfc3339(x["endsAt"].get<std::string>()).value();
        if (x["labels"]["severity"] == "warning")
            EXPECT_LE(ends, std::chrono::system_clock::now());
        else
            EXPECT_GT(ends, std::chrono::system_clock::now());
    }
    auto res = make_event("am", "fp", event_kind::resolved, 3);
    disp.submit({res});
    ASSERT_TRUE(eventually([&] {
        auto body = nlohmann::json::parse(server.requests().back().body);
        return body.size() == 2 && parse_rfc3339(body[1]["endsAt"].get<std::string>()).value() <=
                                       std::chrono::system_clock::now();
    }));
    // After resolved_resend_for, nothing more is sent.
    std::this_thread::sleep_for(400ms);
    std::size_t settled = server.requests().size();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(server.requests().size(), settled);
    EXPECT_GE(metric(disp, "plugmon_notifications_total{receiver=\"am\",event=\"resolved\"}"), 1u);
}

TEST(dispatcher, alertmanager_state_survives_a_restart_and_400_is_not_retried) {
    temp_dir d;
    std::atomic<unsigned> status{200};
    hook_server server([&](const captured_request&, std::size_t) { return hook_reply{status}; });
    receiver_spec am;
    am.name = "am";
    am.type = receiver_type::alertmanager;
    am.url = "http://127.0.0.1:" + std::to_string(server.port());
    am.resend_interval = 10min;
    auto fire = make_event("am", "fp", event_kind::firing, 1);
    {
        dispatcher disp(options(d, {am}));
        disp.submit({fire});
        ASSERT_TRUE(server.wait_for(1));
    }
    status = 400;
    dispatcher disp(options(d, {am}));
    ASSERT_TRUE(server.wait_for(2));  // re-sent at start-up, without a new submit
    auto a = nlohmann::json::parse(server.requests().at(1).body).at(0);
    EXPECT_EQ(a["startsAt"], format_rfc3339(fire.alert.fired_at));
    EXPECT_TRUE(eventually([&] {
        return metric(disp, "plugmon_alertmanager_alerts_invalid_total{receiver=\"am\"}") == 1;
    }));
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(server.requests().size(), 2u);
}

TEST(dispatcher, storm_guard_coalesces_beyond_the_limit_and_loses_nothing) {
    temp_dir d;
    std::atomic<std::int64_t> fake_ns{std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count()};
    auto clock = [&] {
        return time_point(std::chrono::duration_cast<time_point::duration>(
            std::chrono::nanoseconds(fake_ns.load())));
    };
    std::mutex mu;
    std::map<std::int64_t, std::pair<int, int>> per_minute;  // minute -> (messages, summaries)
    std::uint64_t events_in_messages = 0, events_in_summaries = 0;
    hook_server server([&](const captured_request& r, std::size_t) {
        auto j = nlohmann::json::parse(r.body);
        std::lock_guard lock(mu);
        auto& m = per_minute[fake_ns.load() / 60'000'000'000];
        if (j["plugmon"]["event"] == "summary") {
            ++m.second;
            events_in_summaries += j["plugmon"]["summary"]["total"].get<std::uint64_t>();
        } else {
            ++m.first;
            events_in_messages += j["plugmon"]["events"].size();
        }
        return hook_reply{200};
    });
    auto spec = webhook("ops", server.url());
    spec.max_notifications_per_minute = 5;
    auto o = options(d, {spec});
    o.clock = clock;
    dispatcher disp(o);
    for (int i = 0; i < 200; ++i)
        disp.submit(
            {make_event("ops", "fp" + std::to_string(i), event_kind::firing, 1, "e", clock())});
    for (int minute = 0; minute < 10; ++minute) {
        eventually([&] { return disp.status()["receivers"]["ops"]["queue_length"] == 0; }, 1s);
        if (disp.status()["receivers"]["ops"]["queue_length"] == 0) break;
        fake_ns += 61'000'000'000;
    }
    std::lock_guard lock(mu);
    EXPECT_EQ(events_in_messages + events_in_summaries, 200u);
    EXPECT_GT(events_in_summaries, 0u);
    for (const auto& [minute, counts] : per_minute) {
        EXPECT_LE(counts.first, 5) << minute;
        EXPECT_LE(counts.second, 1) << minute;
    }
    EXPECT_EQ(metric(disp, "plugmon_notifications_coalesced_total{receiver=\"ops\"}"),
              events_in_summaries);
}

TEST(dispatcher, skips_and_counts_a_corrupt_outbox_record) {
    temp_dir d;
    std::uint16_t port = closed_port();
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
    auto a = make_event("ops", "fa", event_kind::firing, 1);
    auto b = make_event("ops", "fb", event_kind::firing, 1);
    {
        dispatcher disp(options(d, {webhook("ops", url)}));
        disp.submit({a});
        disp.submit({b});
    }
    std::vector<fs::path> recs;
    for (const auto& e : fs::directory_iterator(d.path / "outbox"))
        if (e.path().extension() == ".rec") recs.push_back(e.path());
    std::sort(recs.begin(), recs.end());
    ASSERT_EQ(recs.size(), 2u);
    {
        std::fstream f(recs[0], std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(60);
        char c = 0;
        f.seekg(60);
        f.get(c);
        f.seekp(60);
        f.put(char(c ^ 0x20));
    }
    hook_server server({}, port);
    dispatcher disp(options(d, {webhook("ops", url)}));
    ASSERT_TRUE(server.wait_for(1));
    std::this_thread::sleep_for(50ms);
    ASSERT_EQ(server.requests().size(), 1u);
    EXPECT_EQ(server.requests()[0].headers.at("webhook-id"), b.id);
    EXPECT_EQ(disp.status()["corrupt_records"], 1);
    EXPECT_EQ(metric(disp, "plugmon_notification_outbox_corrupt_records_total"), 1u);
    EXPECT_TRUE(fs::exists(recs[0].string() + ".corrupt"));
}

TEST(dispatcher, construction_errors_name_the_receiver) {
    temp_dir d;
    auto https = webhook("secure", "https://example.com/hook");
    try {
        dispatcher disp(options(d, {https}));
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("\"secure\""), std::string::npos) << e.what();
    }
    auto missing = webhook("ops", "http://127.0.0.1:1/hook");
    missing.secret_file = (d.path / "nope.secret").string();
    try {
        dispatcher disp(options(d, {missing}));
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("\"ops\""), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("nope.secret"), std::string::npos) << e.what();
    }
}

TEST(http_client, times_out_on_a_silent_server) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor(
        io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    http_client c("slow", "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()),
                  200ms);
    auto start = std::chrono::steady_clock::now();
    auto r = c.post({}, "{}");
    EXPECT_EQ(r.failure, http_failure::timeout) << r.error;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(dispatcher, renders_every_metric_family) {
    temp_dir d;
    dispatcher disp(options(d, {webhook("ops", "http://127.0.0.1:1/hook")}));
    std::string out;
    disp.render_metrics(out);
    for (const char* name :
         {"plugmon_notifications_total", "plugmon_notification_requests_total",
          "plugmon_notification_requests_failed_total", "plugmon_notification_queue_length",
          "plugmon_notifications_dead_lettered_total", "plugmon_notifications_coalesced_total",
          "plugmon_alertmanager_alerts_invalid_total", "plugmon_notification_outbox_bytes",
          "plugmon_notifications_unrouted"})
        EXPECT_NE(out.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
}

namespace {

std::vector<std::string> ids_of(const hook_server& s) {
    std::vector<std::string> ids;
    for (const auto& r : s.requests()) ids.push_back(r.headers.at("webhook-id"));
    return ids;
}

}  // namespace

TEST(dispatcher, a_reload_adds_replaces_and_removes_receivers_and_leaves_the_others_alone) {
    temp_dir d;
    std::atomic<bool> keep_fails{true};
    hook_server keep(
        [&](const captured_request&, std::size_t) { return hook_reply{keep_fails ? 503u : 200u}; });
    hook_server gone, old_chg, new_chg, added;
    dispatcher disp(options(d, {webhook("keep", keep.url()), webhook("gone", gone.url()),
                                webhook("chg", old_chg.url())}));
    const auto k1 = make_event("keep", "00000000000000a1", event_kind::firing, 1);
    disp.submit({k1, make_event("gone", "00000000000000a2", event_kind::firing, 2),
                 make_event("chg", "00000000000000a3", event_kind::firing, 3)});
    ASSERT_TRUE(keep.wait_for(2));  // retrying, with its backoff running
    ASSERT_TRUE(gone.wait_for(1));
    ASSERT_TRUE(old_chg.wait_for(1));

    auto u = disp.prepare(
        {webhook("keep", keep.url()), webhook("chg", new_chg.url()), webhook("new", added.url())});
    EXPECT_EQ(u.added, std::vector<std::string>{"new"});
    EXPECT_EQ(u.changed, std::vector<std::string>{"chg"});
    EXPECT_EQ(u.removed, std::vector<std::string>{"gone"});
    bool switched = false;
    disp.apply(std::move(u), [&] { switched = true; });
    EXPECT_TRUE(switched);

    const auto c2 = make_event("chg", "00000000000000b3", event_kind::firing, 4);
    const auto n1 = make_event("new", "00000000000000b4", event_kind::firing, 5);
    disp.submit({c2, n1, make_event("gone", "00000000000000b2", event_kind::firing, 6)});
    ASSERT_TRUE(new_chg.wait_for(1));
    ASSERT_TRUE(added.wait_for(1));
    EXPECT_EQ(ids_of(new_chg), std::vector<std::string>{c2.id});
    EXPECT_EQ(ids_of(added), std::vector<std::string>{n1.id});
    EXPECT_EQ(old_chg.requests().size(), 1u) << "the replaced receiver's URL hears nothing more";
    EXPECT_EQ(gone.requests().size(), 1u);
    EXPECT_EQ(metric(disp, "plugmon_notifications_unknown_receiver_total"), 1u);
    // The replaced receiver's counters carry on rather than start from 0.
    EXPECT_TRUE(eventually([&] {
        return metric(disp, "plugmon_notifications_total{receiver=\"chg\",event=\"firing\"}") == 2;
    }));

    // The unchanged receiver kept its worker: the same notification is still being retried with
    // the same webhook-id, and its request count did not start over.
    const std::size_t before = keep.requests().size();
    ASSERT_TRUE(keep.wait_for(before + 1));
    keep_fails = false;
    EXPECT_TRUE(eventually([&] {
        return metric(disp, "plugmon_notifications_total{receiver=\"keep\",event=\"firing\"}") == 1;
    }));
    for (const auto& id : ids_of(keep)) EXPECT_EQ(id, k1.id);
    EXPECT_EQ(metric(disp, "plugmon_notification_requests_total{receiver=\"keep\"}"),
              keep.requests().size());
    EXPECT_FALSE(disp.status()["receivers"].contains("gone"));
    EXPECT_TRUE(eventually([&] { return disp.status()["outbox_bytes"] == 0; }));
}

TEST(dispatcher, a_removed_receiver_finishes_its_attempt_and_keeps_its_queue_for_a_later_one) {
    temp_dir d;
    std::atomic<bool> in_handler{false}, release{false};
    hook_server slow([&](const captured_request&, std::size_t) {
        in_handler = true;
        while (!release) std::this_thread::sleep_for(5ms);
        return hook_reply{200};
    });
    dispatcher disp(options(d, {webhook("ops", slow.url())}));
    const auto first = make_event("ops", "00000000000000c1", event_kind::firing, 1);
    const auto second = make_event("ops", "00000000000000c2", event_kind::firing, 2);
    disp.submit({first});
    ASSERT_TRUE(eventually([&] { return in_handler.load(); }));
    disp.submit({second});  // queued behind the attempt in flight

    disp.apply(disp.prepare({}));  // returns at once: the attempt in flight is not waited for
    EXPECT_EQ(metric(disp, "plugmon_notifications_unrouted"), 1u);
    release = true;
    ASSERT_TRUE(slow.wait_for(1));
    // The attempt in flight ended (delivered, so out of the outbox); the queued one stays.
    EXPECT_TRUE(eventually([&] { return disp.status()["unrouted"] == 1; }));
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(ids_of(slow), std::vector<std::string>{first.id});
    EXPECT_GT(disp.status()["outbox_bytes"].get<std::uint64_t>(), 0u);

    // A later configuration brings the receiver back (elsewhere): it gets what was kept.
    hook_server back;
    auto u = disp.prepare({webhook("ops", back.url())});
    EXPECT_EQ(u.added, std::vector<std::string>{"ops"});
    disp.apply(std::move(u));
    ASSERT_TRUE(back.wait_for(1));
    EXPECT_EQ(ids_of(back), std::vector<std::string>{second.id});
    EXPECT_EQ(metric(disp, "plugmon_notifications_unrouted"), 0u);
    EXPECT_TRUE(eventually([&] { return disp.status()["outbox_bytes"] == 0; }));
}

TEST(dispatcher, a_receiver_that_cannot_start_refuses_the_reload_and_changes_nothing) {
    temp_dir d;
    hook_server server;
    auto spec = webhook("ops", server.url());
    spec.secret_file = write_file(d.path / "secret", secret);
    dispatcher disp(options(d, {spec}));
    auto broken = spec;
    broken.secret_file = (d.path / "gone.secret").string();
    broken.file = "rules.toml";
    broken.line = 7;
    try {
        disp.prepare({broken, webhook("new", server.url())});
        FAIL() << "prepare accepted a secret_file that cannot be read";
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("rules.toml:7: "), std::string::npos) << what;
        EXPECT_NE(what.find("secret_file"), std::string::npos) << what;
        EXPECT_NE(what.find("gone.secret"), std::string::npos) << what;
    }
    EXPECT_THROW(
        disp.prepare({webhook("x", "http://127.0.0.1:1/a"), webhook("x", "http://127.0.0.1:1/b")}),
        std::invalid_argument);
    // A prepared update that is dropped changes nothing either.
    { auto dropped = disp.prepare({webhook("other", server.url())}); }
    const auto n = make_event("ops", "00000000000000d1", event_kind::firing, 1);
    disp.submit({n});
    ASSERT_TRUE(server.wait_for(1));
    EXPECT_TRUE(signature_valid(server.requests().at(0)));
    EXPECT_EQ(disp.status()["receivers"].size(), 1u);
    // The same declarations with a rotated secret: a change, and the new secret signs.
    write_file(d.path / "secret", "whsec_c2VjcmV0LWZvci10ZXN0cw==");
    auto u = disp.prepare({spec});
    EXPECT_EQ(u.changed, std::vector<std::string>{"ops"});
}

TEST(dispatcher, reloads_racing_with_submits_lose_nothing) {
    temp_dir d;
    hook_server server;
    auto spec = [&](int i) {  // a new URL each time: a changed receiver, replaced
        auto s = webhook("ops", server.url("/hook" + std::to_string(i % 2)));
        s.max_notifications_per_minute = 100000;  // every message its own webhook-id
        return s;
    };
    dispatcher disp(options(d, {spec(0)}));
    constexpr int per_thread = 150;
    std::vector<std::string> sent;
    std::mutex sent_mu;
    std::atomic<bool> done{false};
    std::vector<std::thread> submitters;
    for (int t = 0; t < 2; ++t)
        submitters.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                char fp[17];
                std::snprintf(fp, sizeof fp, "%016x", unsigned(t * 100000 + i));
                auto n = make_event("ops", fp, event_kind::firing, std::uint64_t(i + 1));
                // "extra" comes and goes: its notifications are delivered or counted unknown
                auto x = make_event("extra", fp, event_kind::firing, std::uint64_t(i + 1));
                disp.submit({n, x});
                std::lock_guard lock(sent_mu);
                sent.push_back(n.id);
            }
        });
    std::thread reloader([&] {
        for (int i = 1; !done; ++i) {
            std::vector<receiver_spec> set = {spec(i)};
            if (i % 3 == 0) set.push_back(webhook("extra", server.url("/extra")));
            disp.apply(disp.prepare(set), [] { std::this_thread::yield(); });
            (void)disp.status();
            std::this_thread::sleep_for(2ms);
        }
    });
    for (auto& t : submitters) t.join();
    done = true;
    reloader.join();
    ASSERT_TRUE(eventually(
        [&] {
            std::set<std::string> got;
            for (const auto& r : server.requests())
                if (r.target != "/extra") got.insert(r.headers.at("webhook-id"));
            for (const auto& id : sent)
                if (got.count(id) == 0) return false;
            return true;
        },
        20s))
        << "every notification for the receiver that stayed reached it";
    disp.stop(1s);
}

TEST(dispatcher, a_moved_alertmanager_gets_the_whole_table_and_a_removed_one_forgets_it) {
    temp_dir d;
    hook_server first, second;
    const auto am = [](const hook_server& s) {
        receiver_spec r;
        r.name = "am";
        r.type = receiver_type::alertmanager;
        r.url = "http://127.0.0.1:" + std::to_string(s.port());
        r.resend_interval = 50ms;
        return r;
    };
    dispatcher disp(options(d, {am(first)}));
    disp.submit({make_event("am", "00000000000000e1", event_kind::firing, 1)});
    ASSERT_TRUE(first.wait_for(1));
    auto u = disp.prepare({am(second)});
    EXPECT_EQ(u.changed, std::vector<std::string>{"am"});
    disp.apply(std::move(u));
    // Only the table carries the firing now (its record left the outbox): the new URL gets it.
    ASSERT_TRUE(second.wait_for(1));
    const auto alerts = nlohmann::json::parse(second.requests().front().body);
    ASSERT_EQ(alerts.size(), 1u);
    EXPECT_EQ(alerts[0]["labels"]["plugin"], "p-00000000000000e1");
    const std::size_t first_seen = first.requests().size();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(first.requests().size(), first_seen) << "the old URL hears nothing more";

    disp.apply(disp.prepare({}));
    EXPECT_TRUE(eventually([&] {
        std::ifstream in(d.path / "outbox" / "am-am.json");
        std::stringstream text;
        text << in.rdbuf();
        return nlohmann::json::parse(text.str(), nullptr, false) == am_table{}.to_json();
    })) << "a receiver of that name configured later starts from an empty table";
}
