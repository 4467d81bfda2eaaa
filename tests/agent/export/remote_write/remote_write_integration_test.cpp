// Remote write into real receivers from Debian on loopback ports: Prometheus 2.42 (native
// histograms on and off) and VictoriaMetrics 1.79. Three simulated agents' histogram_quantile
// against the exact quantile of their union, counts equal to what was recorded (also through a
// real agent driven by plugmon-loadgen), an out-of-order 400, and a 2-minute receiver outage.
#include "export/remote_write/sink.hpp"

#include "aggregate/series.hpp"
#include "aggregate/sketch.hpp"
#include "config/config.hpp"
#include "support/harness.hpp"

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

using namespace plugmon::agent;
using namespace plugmon::agent::remote_write;
using namespace plugmon::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

constexpr const char* prometheus_bin = "/usr/bin/prometheus";
constexpr const char* victoria_bin = "/usr/bin/victoria-metrics";


std::string url_encode(const std::string& s) {
    std::string out;
    char buf[4];
    for (const unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += char(c);
        } else {
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// A receiver process on a loopback port: Prometheus or VictoriaMetrics.
class receiver {
public:
    enum kind { prometheus_native, prometheus_floats, victoria };
    receiver(const temp_dir& dir, kind k) : k_(k), port_(unused_loopback_port()), dir_(dir.path()) { start(); }
    void start() {
        std::vector<std::string> argv;
        if (k_ == victoria) {
            argv = {victoria_bin, "-httpListenAddr=127.0.0.1:" + std::to_string(port_),
                    "-storageDataPath=" + dir_ + "/vm", "-search.latencyOffset=0s",
                    "-search.disableCache"};
        } else {
            std::ofstream(dir_ + "/prometheus.yml") << "global:\n  scrape_interval: 1h\n";
            argv = {prometheus_bin,
                    "--config.file=" + dir_ + "/prometheus.yml",
                    "--storage.tsdb.path=" + dir_ + "/tsdb",
                    "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                    "--web.enable-remote-write-receiver",
                    "--log.level=warn"};
            if (k_ == prometheus_native) argv.push_back("--enable-feature=native-histograms");
        }
        proc_ = std::make_unique<process>(argv, std::vector<std::string>{}, dir_ + "/receiver.out",
                                          dir_ + "/receiver.err");
        const std::string ready = k_ == victoria ? "/health" : "/-/ready";
        ready_ = wait_until([&] { return http_get(port_, ready).has_value(); }, 60s);
    }
    void stop() {
        proc_->signal(SIGTERM);
        proc_->wait(30s);
        proc_.reset();
    }
    bool ready() const { return ready_; }
    std::string write_url() const {
        return "http://127.0.0.1:" + std::to_string(port_) + "/api/v1/write";
    }
    /// The values of an instant query at `at_ms`, one per series (empty: none or error).
    std::vector<double> query(const std::string& q, std::int64_t at_ms) const {
        const auto body = http_get(port_, "/api/v1/query?query=" + url_encode(q) +
                                              "&time=" + std::to_string(double(at_ms) / 1e3));
        std::vector<double> out;
        if (!body) return out;
        const auto j = json::parse(*body, nullptr, false);
        if (j.is_discarded() || j.value("status", "") != "success") return out;
        for (const auto& r : j["data"]["result"])
            out.push_back(std::stod(r["value"][1].get<std::string>()));
        return out;
    }
    double scalar(const std::string& q, std::int64_t at_ms) const {
        const auto v = query(q, at_ms);
        return v.size() == 1 ? v[0] : std::nan("");
    }
    std::string log() const { return read_file(dir_ + "/receiver.err"); }

private:
    kind k_;
    int port_;
    std::string dir_;
    std::unique_ptr<process> proc_;
    bool ready_ = false;
};

bool have(const char* bin) { return ::access(bin, X_OK) == 0; }

/// One window of queries: `values` (ns) for series (plugin "p", op, table "t").
window_ptr window_of(std::int64_t end_ms, const std::string& op,
                     const std::vector<std::uint64_t>& values, std::uint64_t errors = 0) {
    auto w = std::make_shared<window_batch>();
    w->length = 1s;
    w->bucket_start = std::chrono::system_clock::time_point(std::chrono::milliseconds(end_ms)) - 1s;
    query_rollup r;
    r.plugin = "p";
    r.op = op;
    r.table = "t";
    dd_sketch s;
    for (auto v : values) s.add(v);
    fill_durations(r, s);
    r.errors = errors;
    w->queries.push_back(std::move(r));
    return w;
}

sink_options options_for(const temp_dir& dir, const std::string& name, const std::string& url,
                         bool native) {
    sink_options o;
    o.name = name;
    o.url = url;
    o.timeout = 5s;
    o.spool_dir = dir.path() + "/spool-" + name;
    o.spool_sync = false;
    o.native_histograms = native;
    o.series.external_labels = {{"host", name}};
    o.series.query_buckets = config::default_buckets();
    o.host = name;
    return o;
}

bool delivered(const sink& s, std::uint64_t windows) {
    return s.stats().windows_sent.load() >= windows && s.spooled().batches() == 0;
}

#define REQUIRE_BIN(bin) \
    if (!have(bin)) GTEST_SKIP() << bin << " is not installed"

}  // namespace

TEST(remote_write_prometheus, three_agents_histogram_quantile_within_one_percent_of_exact) {
    REQUIRE_BIN(prometheus_bin);
    temp_dir dir;
    receiver prom(dir, receiver::prometheus_native);
    ASSERT_TRUE(prom.ready()) << prom.log();
    std::vector<std::uint64_t> all;
    std::vector<std::unique_ptr<sink>> sinks;
    const std::int64_t t0 = now_ms() - 10000;
    constexpr int windows = 3;
    for (int a = 0; a < 3; ++a) {
        sinks.push_back(std::make_unique<sink>(
            options_for(dir, "agent" + std::to_string(a), prom.write_url(), true)));
        sinks.back()->start();
        std::mt19937_64 rng(42 + a);
        // Lognormal latencies, a different median per agent (1 ms, 2 ms, 4 ms).
        std::lognormal_distribution<double> d(std::log(1e6 * (1 << a)), 1.0);
        for (int w = 0; w < windows; ++w) {
            std::vector<std::uint64_t> v(20000);
            for (auto& x : v) x = std::uint64_t(d(rng)) + 1;
            all.insert(all.end(), v.begin(), v.end());
            sinks.back()->consume(window_of(t0 + 1000 * w, "select", v));
        }
    }
    for (auto& s : sinks) ASSERT_TRUE(wait_until([&] { return delivered(*s, windows); }, 30s));
    std::sort(all.begin(), all.end());
    const std::int64_t at = t0 + 1000 * (windows - 1);
    EXPECT_EQ(prom.scalar("sum(plugmon_queries_total)", at), double(all.size()));
    EXPECT_EQ(prom.scalar("sum(histogram_count(plugmon_query_duration_seconds))", at),
              double(all.size()));
    for (const double q : {0.5, 0.9, 0.99, 0.999}) {
        const double exact = double(all[std::size_t(std::ceil(q * double(all.size()))) - 1]) / 1e9;
        const double got = prom.scalar(
            "histogram_quantile(" + std::to_string(q) + ", sum(plugmon_query_duration_seconds))",
            at);
        const double err = std::fabs(got - exact) / exact;
        std::printf("[ figures  ] q=%g exact %.6g s, histogram_quantile %.6g s, error %.3f %%\n", q,
                    exact, got, 100 * err);
        EXPECT_LT(err, 0.011) << "q=" << q;
    }
    for (auto& s : sinks) {
        EXPECT_EQ(s->stats().dropped.load(), 0u);
        EXPECT_TRUE(s->stats().native.load());
        s->stop(1s);
    }
}

TEST(remote_write_prometheus, without_the_native_flag_falls_back_to_classic_and_floats_flow) {
    REQUIRE_BIN(prometheus_bin);
    temp_dir dir;
    receiver prom(dir, receiver::prometheus_floats);
    ASSERT_TRUE(prom.ready()) << prom.log();
    sink s(options_for(dir, "a", prom.write_url(), true));
    s.start();
    const std::int64_t t0 = now_ms() - 5000;
    s.consume(window_of(t0, "select", {1000000, 2000000, 3000000}));
    s.consume(window_of(t0 + 1000, "select", {4000000}));
    ASSERT_TRUE(wait_until([&] { return delivered(s, 2); }, 30s)) << prom.log();
    EXPECT_FALSE(s.stats().native.load());
    EXPECT_EQ(s.stats().dropped.load(), 0u);
    EXPECT_EQ(prom.scalar("sum(plugmon_queries_total)", t0 + 1000), 4.0);
    EXPECT_EQ(prom.scalar("sum(plugmon_query_duration_seconds_count)", t0 + 1000), 4.0);
    EXPECT_EQ(prom.scalar("sum(plugmon_query_duration_seconds_bucket{le=\"+Inf\"})", t0), 3.0)
        << "the refused window itself was re-sent as classic";
    s.stop(1s);
}

TEST(remote_write_prometheus, an_out_of_order_400_is_dropped_and_counted_not_retried) {
    REQUIRE_BIN(prometheus_bin);
    temp_dir dir;
    receiver prom(dir, receiver::prometheus_native);
    ASSERT_TRUE(prom.ready()) << prom.log();
    sink s(options_for(dir, "a", prom.write_url(), true));
    s.start();
    const std::int64_t t0 = now_ms() - 5000;
    s.consume(window_of(t0, "select", {1000000}));
    s.consume(window_of(t0 - 2000, "select", {2000000}));  // older than what was accepted
    s.consume(window_of(t0 + 1000, "select", {3000000}));
    ASSERT_TRUE(wait_until([&] { return delivered(s, 3); }, 30s));
    s.stop(1s);
    EXPECT_GT(s.stats().dropped.load(), 0u);
    EXPECT_EQ(s.dropped_by_reason().at("http_400"), s.stats().dropped.load());
    EXPECT_EQ(s.stats().retried.load(), 0u);
    EXPECT_EQ(s.stats().requests_failed.load(), 1u) << "one attempt, no retry";
    EXPECT_EQ(prom.scalar("sum(plugmon_queries_total)", t0 + 1000), 3.0);
}

TEST(remote_write_victoria_metrics, classic_counts_equal_what_was_recorded) {
    REQUIRE_BIN(victoria_bin);
    temp_dir dir;
    receiver vm(dir, receiver::victoria);
    ASSERT_TRUE(vm.ready()) << vm.log();
    sink s(options_for(dir, "a", vm.write_url(), false));
    s.start();
    const std::int64_t t0 = now_ms() - 5000;
    std::uint64_t total = 0;
    for (int w = 0; w < 3; ++w) {
        std::vector<std::uint64_t> v(100 * (w + 1), 1500000);
        total += v.size();
        s.consume(window_of(t0 + 1000 * w, "select", v, 1));
    }
    ASSERT_TRUE(wait_until([&] { return delivered(s, 3); }, 30s));
    EXPECT_EQ(s.stats().dropped.load(), 0u);
    const std::int64_t at = t0 + 2000;
    EXPECT_TRUE(wait_until(
        [&] { return vm.scalar("sum(plugmon_queries_total)", at) == double(total); }, 30s))
        << vm.scalar("sum(plugmon_queries_total)", at);
    EXPECT_EQ(vm.scalar("sum(plugmon_queries_total{status=\"error\"})", at), 3.0);
    EXPECT_EQ(vm.scalar("sum(plugmon_query_duration_seconds_count)", at), double(total));
    s.stop(1s);
}

TEST(remote_write_prometheus, a_two_minute_outage_loses_nothing_and_leaves_no_hole) {
    REQUIRE_BIN(prometheus_bin);
    temp_dir dir;
    receiver prom(dir, receiver::prometheus_native);
    ASSERT_TRUE(prom.ready()) << prom.log();
    sink s(options_for(dir, "a", prom.write_url(), true));
    s.start();
    // One window a second for 150 s; the receiver is down from the 10th to the 130th second.
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t total = 0;
    int n = 0;
    std::int64_t first_ms = 0, last_ms = 0;
    bool stopped = false, restarted = false;
    std::uint64_t spooled_max = 0;
    for (; n < 150; ++n) {
        std::this_thread::sleep_until(start + n * 1s);
        last_ms = now_ms();
        if (n == 0) first_ms = last_ms;
        std::vector<std::uint64_t> v(std::size_t(n % 5 + 1), 3000000);
        total += v.size();
        s.consume(window_of(last_ms, "select", v));
        if (n == 10) {
            prom.stop();
            stopped = true;
        }
        if (n == 130) {
            spooled_max = s.spooled().batches();
            prom.start();
            ASSERT_TRUE(prom.ready()) << prom.log();
            restarted = true;
        }
    }
    ASSERT_TRUE(stopped && restarted);
    ASSERT_TRUE(wait_until([&] { return delivered(s, std::uint64_t(n)); }, 60s))
        << s.spooled().batches() << " windows still spooled";
    const double span_s = double(last_ms - first_ms) / 1e3 + 5;
    const std::string range = "[" + std::to_string(int(span_s)) + "s]";
    std::printf(
        "[ figures  ] %d windows, %llu spooled at most during the outage, %llu samples "
        "retried, %llu dropped\n",
        n, (unsigned long long)spooled_max, (unsigned long long)s.stats().retried.load(),
        (unsigned long long)s.stats().dropped.load());
    EXPECT_GE(spooled_max, 100u) << "the outage held windows back";
    EXPECT_GT(s.stats().retried.load(), 0u);
    EXPECT_EQ(s.stats().dropped.load(), 0u);
    EXPECT_EQ(prom.scalar("sum(plugmon_queries_total)", last_ms), double(total));
    EXPECT_EQ(prom.scalar("sum(histogram_count(plugmon_query_duration_seconds))", last_ms),
              double(total));
    EXPECT_EQ(
        prom.scalar("count_over_time(plugmon_queries_total{status=\"ok\"}" + range + ")", last_ms),
        double(n))
        << "one sample per window, none missing";
    s.stop(1s);
}

TEST(remote_write_agent, counts_in_prometheus_equal_recorded_minus_dropped) {
    REQUIRE_BIN(prometheus_bin);
    temp_dir dir;
    receiver prom(dir, receiver::prometheus_native);
    ASSERT_TRUE(prom.ready()) << prom.log();
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log",
            {"--remote-write", prom.write_url(), "--flush-interval", "1s", "--spool-dir",
             dir.path() + "/spool", "--host", "loadgen-host", "--exit-drain-timeout", "20s"});
    loadgen_run lg(dir, "lg", rt,
                   {"--processes",     "2",    "--threads",       "1",     "--events", "200000",
                    "--plugins",       "2",    "--tenants",       "2",     "--tables", "3",
                    "--plugin-prefix", "rw-",  "--query-ns",      "20000", "--mix",    "record",
                    "--error-ratio",   "0.01", "--wait-attached", "10s"});
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    std::uint64_t expected = 0;
    for (const auto& c : lg.children()) expected += c["written"].get<std::uint64_t>();
    ASSERT_GT(expected, 0u);
    const std::string q = "sum(plugmon_queries_total{host=\"loadgen-host\",plugin=~\"rw-.*\"})";
    ASSERT_TRUE(wait_until([&] { return prom.scalar(q, now_ms()) == double(expected); }, 60s))
        << prom.scalar(q, now_ms()) << " != " << expected << "\n"
        << read_file(dir.path() + "/agent.log");
    EXPECT_EQ(a.scrape().sum("plugmon_queries_total"), double(expected));
    EXPECT_EQ(prom.scalar("sum(histogram_count(plugmon_query_duration_seconds{host=\"loadgen-"
                          "host\"}))",
                          now_ms()),
              double(expected));
    const metrics m = a.scrape();
    EXPECT_EQ(m.sum("plugmon_remote_write_samples_total", {{"result", "dropped"}}), 0.0);
    EXPECT_GT(m.sum("plugmon_remote_write_samples_total", {{"result", "sent"}}), 0.0);
    EXPECT_EQ(m.sum("plugmon_remote_write_native_histograms"), 1.0);
    EXPECT_EQ(a.stop(), 0);
}
