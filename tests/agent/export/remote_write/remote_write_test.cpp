// Remote write: the encoder's bytes decoded independently, label order, the series of a window
// (cumulative counters, histograms native and classic, stale markers), the retry rules, and the
// sink against a scripted receiver (retries, drops, the native-histogram 500, spool replay).
#include "export/remote_write/protobuf.hpp"
#include "export/remote_write/receivers.hpp"
#include "export/remote_write/series_state.hpp"
#include "export/remote_write/sink.hpp"

#include "aggregate/series.hpp"
#include "aggregate/sketch.hpp"
#include "stub_receiver.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

using namespace plugmon::agent;
using namespace plugmon::agent::remote_write;
namespace rw = plugmon::test::rw;
using namespace std::chrono_literals;

namespace {

/// A fresh directory, removed at the end.
struct temp_dir {
    temp_dir() {
        std::string t = (std::filesystem::temp_directory_path() / "plugmon-rw-XXXXXX").string();
        path_ = ::mkdtemp(t.data());
    }
    ~temp_dir() { std::filesystem::remove_all(path_); }
    const std::string& path() const { return path_; }
    std::string path_;
};

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

const std::vector<double> buckets = {0.001, 0.01, 0.1, 1};

struct query {
    std::string plugin, op, table, tenant;
    std::vector<std::uint64_t> ns;
    std::uint64_t errors = 0;
};

window_batch make_window(std::int64_t end_ms, const std::vector<query>& qs) {
    window_batch w;
    w.length = 1s;
    w.bucket_start = std::chrono::system_clock::time_point(std::chrono::milliseconds(end_ms)) - 1s;
    for (const auto& q : qs) {
        query_rollup r;
        r.plugin = q.plugin;
        r.op = q.op;
        r.table = q.table;
        r.tenant = q.tenant;
        dd_sketch s;
        for (auto v : q.ns) s.add(v);
        fill_durations(r, s);
        r.errors = q.errors;
        r.rows = q.ns.size();
        w.queries.push_back(std::move(r));
    }
    return w;
}

series_options options(std::uint32_t stale_after = 2) {
    series_options o;
    o.external_labels = {{"host", "h1"}};
    o.query_buckets = buckets;
    o.stale_after_windows = stale_after;
    return o;
}

const rw::decoded_series* find(const std::vector<rw::decoded_series>& all, const std::string& name,
                               const std::map<std::string, std::string>& match = {}) {
    for (const auto& s : all) {
        if (s.label("__name__") != name) continue;
        bool ok = true;
        for (const auto& [k, v] : match) ok = ok && s.label(k) == v;
        if (ok) return &s;
    }
    return nullptr;
}

std::vector<rw::decoded_series> round_trip(const std::vector<time_series>& series) {
    std::string raw;
    encode_write_request(series, raw);
    return rw::decode_write_request(rw::unsnappy(snappy_compress(raw)));
}

}  // namespace

TEST(remote_write_protobuf, labels_sort_bytewise_with_uppercase_first) {
    std::vector<label> l = {{"plugin", "a"}, {"__name__", "m"}, {"Zone", "z"}, {"host", "h"}};
    sort_labels(l);
    ASSERT_EQ(l.size(), 4u);
    EXPECT_EQ(l[0].name, "Zone");
    EXPECT_EQ(l[1].name, "__name__");
    EXPECT_EQ(l[2].name, "host");
    EXPECT_EQ(l[3].name, "plugin");
}

TEST(remote_write_protobuf, floats_and_stale_markers_decode_independently) {
    time_series ts;
    ts.labels = {{"__name__", "x_total"}, {"host", "h\xc3\xa9"}};
    ts.samples = {{1.5, 1700000000123}, {stale_nan(), 1700000001123}, {0, 0}};
    const auto got = round_trip({ts, ts});
    ASSERT_EQ(got.size(), 2u);
    ASSERT_EQ(got[0].labels.size(), 2u);
    EXPECT_EQ(got[0].labels[1].second, "h\xc3\xa9");
    ASSERT_EQ(got[0].samples.size(), 3u);
    EXPECT_EQ(got[0].samples[0].first, 1.5);
    EXPECT_EQ(got[0].samples[0].second, 1700000000123);
    EXPECT_TRUE(is_stale_nan(got[0].samples[1].first));
    EXPECT_FALSE(is_stale_nan(std::nan("")));
    EXPECT_EQ(got[0].samples[2].second, 0);
}

TEST(remote_write_protobuf, native_histogram_fields_decode_independently) {
    time_series ts;
    ts.labels = {{"__name__", "d_seconds"}};
    histogram_sample hs;
    hs.h.schema = -2;
    hs.h.zero_threshold = 1e-9;
    hs.h.zero_count = 3;
    hs.h.count = 10;
    hs.h.sum = 2.25;
    hs.h.positive_spans = {{-5, 2}, {3, 1}};
    hs.h.positive_deltas = {4, -2, 1};
    hs.timestamp_ms = 1700000000000;
    ts.histograms.push_back(hs);
    const auto got = round_trip({ts});
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(got[0].histograms.size(), 1u);
    const auto& h = got[0].histograms[0];
    EXPECT_EQ(h.schema, -2);
    EXPECT_EQ(h.count, 10u);
    EXPECT_EQ(h.zero_count, 3u);
    EXPECT_EQ(h.sum, 2.25);
    EXPECT_EQ(h.zero_threshold, 1e-9);
    EXPECT_EQ(h.timestamp, 1700000000000);
    ASSERT_EQ(h.spans.size(), 2u);
    EXPECT_EQ(h.spans[0].first, -5);
    EXPECT_EQ(h.spans[0].second, 2u);
    EXPECT_EQ(h.spans[1].first, 3);
    EXPECT_EQ(h.deltas, (std::vector<std::int64_t>{4, -2, 1}));
}

TEST(remote_write_series, counters_accumulate_and_classic_buckets_are_cumulative) {
    series_state st(options());
    st.apply(make_window(1000000, {{"p", "select", "t", "", {500000, 5000000, 50000000}, 1}}));
    st.apply(make_window(1001000, {{"p", "select", "t", "", {2000000000}, 0}}));
    const auto got = round_trip(st.render(false));
    const auto* ok = find(got, "plugmon_queries_total", {{"status", "ok"}});
    const auto* err = find(got, "plugmon_queries_total", {{"status", "error"}});
    ASSERT_NE(ok, nullptr);
    ASSERT_NE(err, nullptr);
    EXPECT_EQ(ok->samples.at(0).first, 3.0);
    EXPECT_EQ(err->samples.at(0).first, 1.0);
    EXPECT_EQ(ok->samples.at(0).second, 1001000);
    EXPECT_EQ(ok->label("host"), "h1");
    EXPECT_EQ(ok->label("tenant"), "");  // empty label values are left out
    for (const auto& s : got) {
        for (std::size_t i = 1; i < s.labels.size(); ++i)
            EXPECT_LT(s.labels[i - 1].first, s.labels[i].first);
    }
    const std::vector<std::pair<std::string, double>> want = {
        {"0.001", 1}, {"0.01", 2}, {"0.1", 3}, {"1", 3}, {"+Inf", 4}};
    for (const auto& [le, n] : want) {
        const auto* b = find(got, "plugmon_query_duration_seconds_bucket", {{"le", le}});
        ASSERT_NE(b, nullptr) << le;
        EXPECT_EQ(b->samples.at(0).first, n) << le;
    }
    EXPECT_EQ(find(got, "plugmon_query_duration_seconds_count")->samples.at(0).first, 4.0);
    EXPECT_NEAR(find(got, "plugmon_query_duration_seconds_sum")->samples.at(0).first, 2.0555,
                2.0555 * 0.01);
    EXPECT_EQ(find(got, "plugmon_query_duration_seconds"), nullptr);
}

TEST(remote_write_series, native_histogram_counts_every_observation) {
    series_state st(options());
    st.apply(make_window(1000000, {{"p", "select", "t", "x", {1000, 2000, 3000, 1000000}, 0}}));
    const auto got = round_trip(st.render(true));
    const auto* h = find(got, "plugmon_query_duration_seconds");
    ASSERT_NE(h, nullptr);
    ASSERT_EQ(h->histograms.size(), 1u);
    EXPECT_EQ(h->histograms[0].count, 4u);
    std::int64_t running = 0, total = 0;
    for (auto d : h->histograms[0].deltas) {
        running += d;
        EXPECT_GE(running, 0);
        total += running;
    }
    EXPECT_EQ(std::uint64_t(total) + h->histograms[0].zero_count, 4u);
    EXPECT_EQ(find(got, "plugmon_query_duration_seconds_bucket"), nullptr);
}

TEST(remote_write_series, a_series_gone_for_stale_after_windows_gets_one_stale_marker) {
    series_state st(options(2));
    st.apply(make_window(1000, {{"p", "a", "t", "", {1000}, 0}, {"p", "b", "t", "", {1000}, 0}}));
    st.finish();
    st.apply(make_window(2000, {{"p", "a", "t", "", {1000}, 0}}));
    auto got = round_trip(st.render(true));
    EXPECT_FALSE(is_stale_nan(find(got, "plugmon_queries_total", {{"op", "b"}})->samples[0].first))
        << "one quiet window is not the end yet";
    st.finish();
    st.apply(make_window(3000, {{"p", "a", "t", "", {1000}, 0}}));
    got = round_trip(st.render(true));
    const auto* b = find(got, "plugmon_queries_total", {{"op", "b"}});
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(is_stale_nan(b->samples[0].first));
    EXPECT_TRUE(
        is_stale_nan(find(got, "plugmon_query_duration_seconds", {{"op", "b"}})->samples[0].first));
    EXPECT_FALSE(is_stale_nan(find(got, "plugmon_queries_total", {{"op", "a"}})->samples[0].first));
    st.finish();
    st.apply(make_window(4000, {{"p", "a", "t", "", {1000}, 0}}));
    got = round_trip(st.render(true));
    EXPECT_EQ(find(got, "plugmon_queries_total", {{"op", "b"}}), nullptr) << "stale only once";
    EXPECT_EQ(st.live_series(), 1u);
}

TEST(remote_write_retry, classification_follows_the_spec_and_the_native_trap) {
    using plugmon::agent::alert::notify::http_failure;
    using plugmon::agent::alert::notify::http_result;
    const auto status = [](unsigned s, std::string body = {}) {
        http_result r;
        r.status = s;
        r.body_excerpt = std::move(body);
        return r;
    };
    http_result net;
    net.failure = http_failure::network;
    http_result timeout;
    timeout.failure = http_failure::timeout;
    EXPECT_EQ(classify(status(204), true), verdict::sent);
    EXPECT_EQ(classify(status(200), false), verdict::sent);
    EXPECT_EQ(classify(net, false), verdict::retry);
    EXPECT_EQ(classify(timeout, false), verdict::retry);
    EXPECT_EQ(classify(status(500), true), verdict::retry);
    EXPECT_EQ(classify(status(503), false), verdict::retry);
    EXPECT_EQ(classify(status(429), false), verdict::retry);
    EXPECT_EQ(classify(status(400), true), verdict::drop);
    EXPECT_EQ(classify(status(401), false), verdict::drop);
    EXPECT_EQ(classify(status(404), false), verdict::drop);
    EXPECT_EQ(classify(status(413), false), verdict::drop);
    const std::string trap = "native histograms are disabled\n";
    EXPECT_EQ(classify(status(500, trap), true), verdict::refuses_native);
    EXPECT_EQ(classify(status(500, trap), false), verdict::retry) << "no histogram was sent";
}

namespace {

struct remote_write_sink : ::testing::Test {
    temp_dir dir;
    rw::stub_receiver receiver;

    sink_options opts(std::string url, bool native = true) {
        sink_options o;
        o.name = "stub";
        o.url = std::move(url);
        o.headers = {{"X-Scope-OrgID", "team-a"}};
        o.timeout = 500ms;
        o.spool_dir = dir.path() + "/spool";
        o.spool_sync = false;
        o.native_histograms = native;
        o.series = options(30);
        o.min_backoff = 5ms;
        o.max_backoff = 50ms;
        o.host = "h1";
        return o;
    }
    static window_ptr window(std::int64_t end_ms, std::uint64_t calls = 3) {
        std::vector<std::uint64_t> ns(calls, 2000000);
        return std::make_shared<window_batch>(
            make_window(end_ms, {{"p", "select", "t", "", ns, 0}}));
    }
};

}  // namespace

TEST_F(remote_write_sink, sends_the_required_headers_and_retries_5xx_429_and_timeouts) {
    receiver.script({{500}, {429, "", "0"}, {204, "", "", 800ms}, {503}});
    sink s(opts(receiver.url()));
    s.start();
    s.consume(window(1000000));
    ASSERT_TRUE(wait_until([&] { return s.stats().windows_sent.load() == 1; }, 20s));
    s.stop(1s);
    const auto got = receiver.requests();
    ASSERT_EQ(got.size(), 5u);  // 500, 429, a hang past the timeout, 503, then 204
    for (const auto& r : got) {
        EXPECT_EQ(r.headers.at("Content-Encoding"), "snappy");
        EXPECT_EQ(r.headers.at("Content-Type"), "application/x-protobuf");
        EXPECT_EQ(r.headers.at("X-Prometheus-Remote-Write-Version"), "0.1.0");
        EXPECT_EQ(r.headers.at("User-Agent").rfind("plugmon-agent/", 0), 0u);
        EXPECT_EQ(r.headers.at("X-Scope-OrgID"), "team-a");
        EXPECT_EQ(r.samples(), got[0].samples());
    }
    EXPECT_EQ(s.stats().sent.load(), got[0].samples());
    EXPECT_EQ(s.stats().retried.load(), 4 * got[0].samples());
    EXPECT_EQ(s.stats().dropped.load(), 0u);
}

TEST_F(remote_write_sink, a_400_is_dropped_and_counted_not_retried) {
    receiver.script({{400, "out of order sample"}});
    sink s(opts(receiver.url()));
    s.start();
    s.consume(window(1000000));
    s.consume(window(1001000));
    ASSERT_TRUE(wait_until([&] { return s.stats().windows_sent.load() == 2; }, 20s));
    s.stop(1s);
    EXPECT_EQ(receiver.count(), 2u);
    const auto per = receiver.requests()[0].samples();
    EXPECT_EQ(s.stats().dropped.load(), per);
    EXPECT_EQ(s.dropped_by_reason().at("http_400"), per);
    EXPECT_EQ(s.stats().retried.load(), 0u);
    std::string m;
    s.render_metrics(m);
    EXPECT_NE(
        m.find("plugmon_remote_write_samples_dropped_total{remote=\"stub\",reason=\"http_400\"} " +
               std::to_string(per)),
        std::string::npos)
        << m;
}

TEST_F(remote_write_sink, a_receiver_refusing_native_histograms_gets_classic_buckets) {
    receiver.script({{500, "native histograms are disabled"}});
    sink s(opts(receiver.url()));
    s.start();
    s.consume(window(1000000));
    ASSERT_TRUE(wait_until([&] { return s.stats().windows_sent.load() == 1; }, 20s));
    s.consume(window(1001000));
    ASSERT_TRUE(wait_until([&] { return s.stats().windows_sent.load() == 2; }, 20s));
    s.stop(1s);
    const auto got = receiver.requests();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_TRUE(got[0].has_histograms());
    EXPECT_FALSE(got[1].has_histograms());
    EXPECT_NE(find(got[1].series, "plugmon_query_duration_seconds_bucket", {{"le", "+Inf"}}),
              nullptr);
    EXPECT_FALSE(got[2].has_histograms());
    EXPECT_FALSE(s.stats().native.load());
    std::string m;
    s.render_metrics(m);
    EXPECT_NE(m.find("plugmon_remote_write_native_histograms{remote=\"stub\"} 0"),
              std::string::npos);
}

TEST_F(remote_write_sink, batches_split_at_max_samples_per_send) {
    auto o = opts(receiver.url(), false);
    o.max_samples_per_send = 4;
    sink s(std::move(o));
    s.start();
    s.consume(window(1000000));
    ASSERT_TRUE(wait_until([&] { return s.stats().windows_sent.load() == 1; }, 20s));
    s.stop(1s);
    std::size_t total = 0;
    for (const auto& r : receiver.requests()) {
        EXPECT_LE(r.samples(), 4u);
        total += r.samples();
    }
    EXPECT_GT(receiver.count(), 1u);
    EXPECT_EQ(total, s.stats().sent.load());
}

TEST_F(remote_write_sink, spooled_windows_survive_a_restart_and_replay_in_order) {
    const int closed = [] {
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        return int(a.local_endpoint().port());
    }();  // nothing listens there once the acceptor is gone
    {
        sink down(opts("http://127.0.0.1:" + std::to_string(closed) + "/api/v1/write"));
        down.start();
        for (int i = 0; i < 5; ++i) down.consume(window(1000000 + 1000 * i, i + 1));
        ASSERT_TRUE(wait_until([&] { return down.stats().retried.load() > 0; }, 10s));
        EXPECT_FALSE(down.stop(100ms));
        EXPECT_EQ(down.spooled().batches(), 5u);
    }
    sink up(opts(receiver.url()));
    EXPECT_EQ(up.spooled().batches(), 5u);
    up.start();
    ASSERT_TRUE(wait_until([&] { return up.spooled().batches() == 0; }, 20s));
    up.stop(1s);
    const auto got = receiver.requests();
    ASSERT_EQ(got.size(), 5u);
    double calls = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const auto* ok = find(got[i].series, "plugmon_queries_total", {{"status", "ok"}});
        ASSERT_NE(ok, nullptr);
        EXPECT_EQ(ok->samples.at(0).second, 1000000 + 1000 * std::int64_t(i)) << "in order";
        calls += double(i + 1);
        EXPECT_EQ(ok->samples.at(0).first, calls) << "cumulative across the replay";
    }
}

// A reload changes the receivers while windows flow: the unchanged one keeps its sink, a removed
// one gets nothing more, a new one starts at once, and /metrics names each family once.
TEST(remote_write_receivers, follow_the_configuration_and_render_each_family_once) {
    temp_dir dir;
    rw::stub_receiver a, b;
    window_fanout windows;
    receivers set(windows, 1s);
    const auto spec = [&](std::string name, const std::string& url) {
        remote_write_spec r;
        r.name = std::move(name);
        r.url = url;
        r.timeout = 500ms;
        r.spool_dir = dir.path() + "/" + r.name;
        return r;
    };
    config c;
    c.host = "h1";
    c.remote_write = {spec("a", a.url()), spec("b", b.url())};
    ASSERT_TRUE(set.configure(c).empty());
    windows.start();
    set.start();
    const auto window = [](std::int64_t end_ms) {
        return make_window(end_ms, {{"p", "select", "t", "", {2000000}, 0}});
    };
    windows.publish(window(1000000));
    ASSERT_TRUE(wait_until([&] { return a.count() == 1 && b.count() == 1; }, 20s));

    std::string m;
    set.render_metrics(m);
    EXPECT_EQ(m.find("# TYPE plugmon_remote_write_samples_total"),
              m.rfind("# TYPE plugmon_remote_write_samples_total"))
        << "one family, two remotes:\n" << m;
    EXPECT_NE(m.find("remote=\"a\""), std::string::npos);
    EXPECT_NE(m.find("remote=\"b\""), std::string::npos);

    // a removed; b changed (a header): b's successor takes over b's spool and sends on
    c.remote_write = {spec("b", b.url())};
    c.remote_write[0].headers = {{"X-Scope-OrgID", "team-b"}};
    ASSERT_TRUE(set.configure(c).empty());
    EXPECT_EQ(set.size(), 1u);
    windows.publish(window(1001000));
    ASSERT_TRUE(wait_until([&] { return b.count() == 2; }, 20s));
    EXPECT_EQ(b.requests().back().headers.at("X-Scope-OrgID"), "team-b");
    // and an unchanged configuration touches nothing
    ASSERT_TRUE(set.configure(c).empty());
    windows.publish(window(1002000));
    ASSERT_TRUE(wait_until([&] { return b.count() == 3; }, 20s));
    EXPECT_EQ(a.count(), 1u) << "nothing after its removal";
    m.clear();
    set.render_metrics(m);
    EXPECT_EQ(m.find("remote=\"a\""), std::string::npos) << m;
    set.stop(1s);
    windows.stop(1s);
}
