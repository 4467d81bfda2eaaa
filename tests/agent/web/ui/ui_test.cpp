// Specifies the built-in dashboard's server side against a real HTTP server on 127.0.0.1: the
// embedded page (CSP, ETag/304, gzip, manifest, size budget), the snapshot's figures, the live
// stream (retry hint, increasing ids, max_events, the stream cap) and a stalled client dropped by
// the write timeout while another client keeps receiving every event.
#include "web/ui/assets.hpp"
#include "web/ui/dashboard.hpp"

#include "agent/web/test_support.hpp"
#include "common/sha256.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <chrono>
#include <atomic>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace plugmon::agent {
namespace {

using namespace plugmon::agent::testing;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string gunzip(const std::string& in) {
    z_stream z{};
    EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    std::string out(in.size() * 20 + 1024, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = uInt(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = uInt(out.size());
    EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    inflateEnd(&z);
    return out;
}

/// A server on 127.0.0.1:0 with its own limits, its io_context on a background thread.
class limited_server {
public:
    limited_server(http_handler handler, http_limits limits)
        : server_(io_, "127.0.0.1", 0, std::move(handler), limits), thread_([this] { io_.run(); }) {}
    ~limited_server() {
        asio::post(io_, [this] { server_.stop(); });
        thread_.join();
    }
    std::uint16_t port() const { return server_.port(); }

private:
    asio::io_context io_;
    http_server server_;
    std::thread thread_;
};

/// A raw reader of one live stream: sends the request, then collects bytes.
class stream_reader {
public:
    stream_reader(std::uint16_t port, const std::string& target, int receive_buffer = 0) : socket_(io_) {
        socket_.open(tcp::v4());
        if (receive_buffer > 0) socket_.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
        socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        const std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
        asio::write(socket_, asio::buffer(req));
    }
    /// Reads until `text` holds `count` occurrences of `needle`, the peer closes, or `limit` passes.
    std::size_t read_until(const std::string& needle, std::size_t count, std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        socket_.non_blocking(true);
        while (occurrences(needle) < count && std::chrono::steady_clock::now() < until && !closed_) {
            std::array<char, 65536> buf;
            boost::system::error_code ec;
            const std::size_t n = socket_.read_some(asio::buffer(buf), ec);
            if (ec == asio::error::would_block) {
                std::this_thread::sleep_for(5ms);
                continue;
            }
            if (ec) {
                closed_ = true;
                break;
            }
            text.append(buf.data(), n);
        }
        return occurrences(needle);
    }
    std::size_t occurrences(const std::string& needle) const {
        std::size_t n = 0;
        for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
        return n;
    }
    /// The `id:` values in order.
    std::vector<std::uint64_t> ids() const {
        std::vector<std::uint64_t> out;
        static const std::regex id("\nid: ([0-9]+)\n");
        for (std::sregex_iterator it(text.begin(), text.end(), id), end; it != end; ++it)
            out.push_back(std::stoull((*it)[1].str()));
        return out;
    }
    bool closed() const { return closed_; }
    std::string text;

private:
    asio::io_context io_;
    tcp::socket socket_;
    bool closed_ = false;
};

/// A stream client that reads all the time on a thread of its own, as a browser does.
class background_reader {
public:
    background_reader(std::uint16_t port, const std::string& target) : r_(port, target) {
        thread_ = std::thread([this] {
            while (!stop_ && !r_.closed()) {
                std::lock_guard<std::mutex> lock(mu_);  // 20 ms reads: the others wait little
                r_.read_until("\x01never", 1, 20ms);
            }
        });
    }
    ~background_reader() {
        stop_ = true;
        thread_.join();
    }
    /// Waits until `count` events have arrived (or `limit` passed); returns how many did.
    std::size_t wait_for(std::size_t count, std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        for (;;) {
            const std::size_t n = events();
            if (n >= count || std::chrono::steady_clock::now() >= until) return n;
            std::this_thread::sleep_for(5ms);
        }
    }
    std::size_t events() {
        std::lock_guard<std::mutex> lock(mu_);
        return r_.occurrences("event: snapshot");
    }
    std::vector<std::uint64_t> ids() {
        std::lock_guard<std::mutex> lock(mu_);
        return r_.ids();
    }

private:
    stream_reader r_;
    std::mutex mu_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

class dashboard_test : public ::testing::Test {
protected:
    void start(std::size_t max_streams = 32, http_limits limits = {}) {
        ui::dashboard_options o;
        o.snapshot.host = "test-host";
        o.snapshot.max_streams = max_streams;
        dashboard_ = std::make_unique<ui::dashboard>(ctx_, o);
        ui::add_ui_routes(routes_, *dashboard_);
        server_ = std::make_unique<limited_server>([this](const http_request& r) { return routes_.dispatch(r); },
                                                   limits);
    }
    ~dashboard_test() override {
        // As the agent does: the dashboard ends its streams while the server's I/O still runs,
        // then the server closes what is left; the streams' writers never outlive the io_context.
        if (dashboard_) dashboard_->stop();
        server_.reset();
        dashboard_.reset();
    }
    std::uint16_t port() const { return server_->port(); }
    std::string metrics() const {
        std::string out;
        dashboard_->render_metrics(out);
        return out;
    }
    /// `n` queries of `plugin` lasting `ns` each, `errors` of them failed.
    void record(const std::string& plugin, int n, std::uint64_t ns, int errors = 0) {
        auto* q = store_.query(plugin, "SELECT", "orders", "");
        for (int i = 0; i < n; ++i) q->record(ns, i < errors, 1);
    }
    void close_window() {
        std::size_t expired = 0;
        store_.close_window(std::chrono::system_clock::now(), 10s, 0, expired);
    }

    series_registry store_{bucket_bounds::from_seconds(config::default_buckets(), config::default_buckets())};
    drain drainer_{store_, drain::options{}};
    statement_book statements_{16};
    api_context ctx_{store_, drainer_, nullptr, "test", nullptr, &statements_};
    router routes_;
    std::unique_ptr<ui::dashboard> dashboard_;
    std::unique_ptr<limited_server> server_;
};

TEST_F(dashboard_test, serves_the_page_under_a_strict_content_security_policy) {
    start();
    client c(port());
    const auto page = c.get("/ui/");
    ASSERT_EQ(page.result_int(), 200);
    EXPECT_EQ(page[http::field::content_type], "text/html; charset=utf-8");
    const std::string csp(page["Content-Security-Policy"]);
    EXPECT_THAT(csp, HasSubstr("default-src 'none'"));
    EXPECT_THAT(csp, HasSubstr("script-src 'self';"));
    EXPECT_THAT(csp, HasSubstr("require-trusted-types-for 'script'"));
    EXPECT_THAT(csp, ::testing::Not(HasSubstr("unsafe")));
    EXPECT_EQ(page["Cross-Origin-Opener-Policy"], "same-origin");
    EXPECT_EQ(page.body(), std::string(ui::find_asset("index.html")->bytes));
    // The page names no other origin and carries no inline script or style.
    EXPECT_THAT(page.body(), ::testing::Not(HasSubstr("http://")));
    EXPECT_THAT(page.body(), ::testing::Not(HasSubstr("https://")));
    EXPECT_THAT(page.body(), ::testing::Not(::testing::ContainsRegex("<script>|<script [^>]*>[^<]|<style|style=")));

    EXPECT_EQ(c.get("/ui").result_int(), 308);
    EXPECT_EQ(c.get("/ui/no-such.js").result_int(), 404);
    EXPECT_EQ(c.get("/ui/../etc/passwd").result_int(), 404);
    EXPECT_EQ(c.post("/ui/").result_int(), 405);
    const auto icon = c.get("/favicon.ico");
    EXPECT_EQ(icon.result_int(), 200);
    EXPECT_EQ(icon[http::field::content_type], "image/svg+xml");
}

TEST_F(dashboard_test, assets_revalidate_by_etag_and_come_gzipped_on_request) {
    start();
    client c(port());
    for (const auto& a : ui::assets()) {
        SCOPED_TRACE(a.name);
        const auto plain = c.get("/ui/" + a.name);
        ASSERT_EQ(plain.result_int(), 200);
        EXPECT_EQ(plain[http::field::content_type], a.content_type);
        const std::string etag(plain[http::field::etag]);
        EXPECT_EQ(etag, a.etag);

        http::request<http::string_body> again{http::verb::get, "/ui/" + a.name, 11};
        again.set(http::field::if_none_match, etag);
        const auto not_modified = c.request(again);
        EXPECT_EQ(not_modified.result_int(), 304);
        EXPECT_TRUE(not_modified.body().empty());

        http::request<http::string_body> zipped{http::verb::get, "/ui/" + a.name, 11};
        zipped.set(http::field::accept_encoding, "gzip, deflate");
        const auto gz = c.request(zipped);
        EXPECT_EQ(gz[http::field::content_encoding], "gzip");
        EXPECT_EQ(gunzip(gz.body()), plain.body());
        EXPECT_LT(gz.body().size(), plain.body().size() + 64);
    }
}

TEST_F(dashboard_test, manifest_lists_every_asset_with_its_digest_and_the_page_fits_the_budget) {
    start();
    client c(port());
    const auto m = nlohmann::json::parse(c.get("/ui/manifest.json").body());
    ASSERT_EQ(m["assets"].size(), ui::assets().size());
    std::size_t gzip_total = 0;
    for (const auto& a : m["assets"]) {
        const auto served = c.get("/ui/" + a["name"].get<std::string>());
        EXPECT_EQ(to_hex(sha256(served.body())), a["sha256"]) << a["name"];
        gzip_total += a["gzip_bytes"].get<std::size_t>();
    }
    EXPECT_EQ(m["total_gzip_bytes"], gzip_total);
    EXPECT_LE(gzip_total, 60u * 1024) << "the page's assets are over the 60 KB gzip budget";
    for (const char* needed : {"index.html", "app.js", "style.css", "favicon.svg"})
        EXPECT_NE(ui::find_asset(needed), nullptr) << needed;
}

TEST_F(dashboard_test, snapshot_holds_each_plugins_rates_quantiles_and_status) {
    start();
    record("billing", 1000, 2'000'000, 50);  // 2 ms each, 5 % failed
    record("search", 10, 100'000);
    close_window();
    dashboard_->tick();
    client c(port());
    auto s = nlohmann::json::parse(c.get("/api/v1/ui/snapshot").body());
    EXPECT_EQ(s["seq"], 1);
    EXPECT_EQ(s["agent"]["host"], "test-host");
    EXPECT_EQ(s["status"]["store"], "disabled");
    ASSERT_EQ(s["plugins"].size(), 2u);
    const auto& billing = s["plugins"][0];
    EXPECT_EQ(billing["plugin"], "billing");
    EXPECT_EQ(billing["calls_total"], 1000);
    EXPECT_EQ(billing["errors_total"], 50);
    EXPECT_NEAR(billing["p99_seconds"].get<double>(), 0.002, 0.002 * 0.011);  // DDSketch, 1 %
    EXPECT_TRUE(billing["heap_bytes"].is_null());
    EXPECT_TRUE(billing["pool_utilization"].is_null());
    EXPECT_TRUE(s["point"]["plugins"].contains("billing"));

    // More calls later: the next snapshot's rate is taken from the difference.
    std::this_thread::sleep_for(200ms);
    record("billing", 100, 2'000'000, 10);
    dashboard_->tick();
    s = nlohmann::json::parse(c.get("/api/v1/ui/snapshot").body());
    EXPECT_EQ(s["seq"], 2);
    EXPECT_GT(s["plugins"][0]["calls_per_second"].get<double>(), 100.0);  // 100 calls in ~0.2 s
    EXPECT_NEAR(s["plugins"][0]["error_ratio"].get<double>(), 0.1, 1e-9);
    const auto history = nlohmann::json::parse(c.get("/api/v1/ui/history").body());
    EXPECT_EQ(history["points"].size(), 2u);
    EXPECT_LT(history["points"][0]["time"].get<double>(), history["points"][1]["time"].get<double>());
}

TEST_F(dashboard_test, statements_are_grouped_and_ranked_by_total_time) {
    start();
    auto* fast = statements_.find_or_create("billing", "select 1", 1);
    auto* slow = statements_.find_or_create("billing", "select * from big where x = ?", 2);
    for (int i = 0; i < 10; ++i) statement_book::record(*fast, 1'000, 1, false, false);
    for (int i = 0; i < 3; ++i) statement_book::record(*slow, 5'000'000, 9, i == 0, true);
    dashboard_->tick();
    client c(port());
    // Younger than the window: every window counts since the start.
    for (const char* w : {"5m", "1h", "start"}) {
        const auto j = nlohmann::json::parse(c.get(std::string("/api/v1/ui/statements?window=") + w).body());
        ASSERT_EQ(j["statements"].size(), 2u) << w;
        EXPECT_EQ(j["statements"][0]["statement"], "select * from big where x = ?");
        EXPECT_EQ(j["statements"][0]["calls"], 3);
        EXPECT_EQ(j["statements"][0]["errors"], 1);
        EXPECT_EQ(j["statements"][0]["slow"], 3);
        EXPECT_DOUBLE_EQ(j["statements"][1]["mean_seconds"].get<double>(), 1e-6);  // to the µs
    }
    EXPECT_EQ(c.get("/api/v1/ui/statements?window=2d").result_int(), 400);
}

TEST_F(dashboard_test, statement_windows_count_from_the_checkpoint_the_window_ago) {
    auto* fast = statements_.find_or_create("billing", "select 1", 1);
    auto* slow = statements_.find_or_create("billing", "select 2", 2);
    for (int i = 0; i < 10; ++i) statement_book::record(*fast, 1'000, 1, false, false);
    for (int i = 0; i < 3; ++i) statement_book::record(*slow, 5'000'000, 9, false, true);
    ui::snapshot_builder b(ctx_, ui::snapshot_options{});
    const auto t0 = ui::snapshot_builder::clock::now();
    b.build(t0, 0);  // a checkpoint of both windows
    for (int i = 0; i < 4; ++i) statement_book::record(*fast, 1'000, 1, false, false);
    b.build(t0 + 6min, 0);
    const auto five = b.statements_json(ui::statement_window::five_minutes, "", t0 + 6min);
    ASSERT_EQ(five["statements"].size(), 1u);  // select 2 ran before the window only
    EXPECT_EQ(five["statements"][0]["calls"], 4);
    EXPECT_NEAR(five["seconds"].get<double>(), 360.0, 1e-6);
    const auto hour = b.statements_json(ui::statement_window::one_hour, "", t0 + 6min);
    ASSERT_EQ(hour["statements"].size(), 2u);  // the agent is younger than an hour
    b.build(t0 + 61min, 0);
    const auto later = b.statements_json(ui::statement_window::one_hour, "billing", t0 + 61min);
    ASSERT_EQ(later["statements"].size(), 1u);
    EXPECT_EQ(later["statements"][0]["calls"], 4);
    EXPECT_TRUE(b.statements_json(ui::statement_window::since_start, "nobody", t0)["statements"].empty());
}

TEST_F(dashboard_test, stream_sends_the_retry_hint_then_one_event_per_tick_with_increasing_ids) {
    start();
    dashboard_->tick();
    stream_reader r(port(), "/api/v1/ui/stream");
    ASSERT_EQ(r.read_until("event: snapshot", 1, 5s), 1u);
    EXPECT_THAT(r.text, HasSubstr("Content-Type: text/event-stream"));
    EXPECT_THAT(r.text, HasSubstr("Cache-Control: no-store"));
    EXPECT_THAT(r.text, HasSubstr("Transfer-Encoding: chunked"));
    EXPECT_THAT(r.text, HasSubstr("retry: 2000"));
    for (std::size_t i = 2; i <= 4; ++i) {
        dashboard_->tick();  // one at a time: a newer event replaces one still waiting
        ASSERT_EQ(r.read_until("event: snapshot", i, 5s), i);
    }
    EXPECT_EQ(r.ids(), (std::vector<std::uint64_t>{1, 2, 3, 4}));
    // Each event's data is one line of JSON, the snapshot of that tick.
    static const std::regex data("\ndata: (\\{[^\n]*\\})\n\n");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.text, m, data));
    EXPECT_EQ(nlohmann::json::parse(m[1].str())["seq"], 1);
    EXPECT_THAT(metrics(), HasSubstr("plugmon_ui_stream_clients 1\n"));
}

TEST_F(dashboard_test, max_events_ends_the_stream_after_that_many_events) {
    start();
    dashboard_->tick();
    stream_reader r(port(), "/api/v1/ui/stream?max_events=3");
    for (int i = 0; i < 5 && !r.closed(); ++i) {
        dashboard_->tick();
        r.read_until("event: snapshot", 3, 2s);
    }
    r.read_until("never", 1, 5s);  // to the end
    EXPECT_TRUE(r.closed());
    EXPECT_EQ(r.occurrences("event: snapshot"), 3u);
    EXPECT_THAT(r.text, HasSubstr("\r\n0\r\n\r\n"));  // the last chunk
    EXPECT_THAT(metrics(), HasSubstr("plugmon_ui_stream_disconnects_total{reason=\"finished\"} 1\n"));
    client c(port());
    EXPECT_EQ(c.get("/api/v1/ui/stream?max_events=0").result_int(), 400);
}

TEST_F(dashboard_test, streams_beyond_the_cap_get_503_with_retry_after) {
    start(1);
    dashboard_->tick();
    stream_reader first(port(), "/api/v1/ui/stream");
    ASSERT_EQ(first.read_until("event: snapshot", 1, 5s), 1u);
    client c(port());
    const auto refused = c.get("/api/v1/ui/stream");
    EXPECT_EQ(refused.result_int(), 503);
    EXPECT_EQ(refused[http::field::retry_after], "5");
    EXPECT_THAT(metrics(), HasSubstr("plugmon_ui_streams_refused_total 1\n"));
    // Polling still works.
    EXPECT_EQ(c.get("/api/v1/ui/snapshot").result_int(), 200);
}

TEST_F(dashboard_test, a_stalled_client_is_dropped_while_another_keeps_every_event) {
    http_limits limits;
    limits.stream_write_timeout = 1s;
    limits.stream_send_buffer = 4096;
    start(32, limits);
    // About 2 000 plugins: each snapshot is several hundred KB, far more than the socket buffers.
    for (int i = 0; i < 2000; ++i) record("plugin-with-a-long-name-" + std::to_string(i), 1, 1000);
    dashboard_->tick();
    stream_reader stalled(port(), "/api/v1/ui/stream", 4096);  // never reads after this
    ASSERT_EQ(stalled.read_until("HTTP/1.1 200", 1, 5s), 1u);
    background_reader normal(port(), "/api/v1/ui/stream");
    ASSERT_EQ(normal.wait_for(1, 5s), 1u);

    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::size_t ticks = 1;
    while (metrics().find("reason=\"write_timeout\"} 1\n") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
        dashboard_->tick();
        ++ticks;
        ASSERT_EQ(normal.wait_for(ticks, 10s), ticks) << "the normal client fell behind";
    }
    const std::string m = metrics();
    EXPECT_THAT(m, HasSubstr("plugmon_ui_stream_disconnects_total{reason=\"write_timeout\"} 1\n"));
    EXPECT_THAT(m, HasSubstr("plugmon_ui_stream_clients 1\n"));
    // The normal client got every tick's event, in order, none replaced.
    const auto ids = normal.ids();
    ASSERT_EQ(ids.size(), ticks);
    for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], i + 1);
    dashboard_->tick();
    EXPECT_EQ(normal.wait_for(ticks + 1, 10s), ticks + 1);
}

TEST(dashboard_config, keys_are_validated_with_their_names) {
    const auto parse = [](std::vector<std::string> args) {
        std::vector<char*> argv;
        static std::string prog = "plugmon-agent";
        argv.push_back(prog.data());
        for (auto& a : args) argv.push_back(a.data());
        return parse_command_line(int(argv.size()), argv.data());
    };
    const config c = parse({"--ui-max-streams", "4", "--ui-interval", "500ms", "--ui-read-only", "true"});
    EXPECT_EQ(c.ui_max_streams, 4u);
    EXPECT_EQ(c.ui_interval, std::chrono::milliseconds{500});
    EXPECT_TRUE(c.ui_read_only);
    EXPECT_TRUE(c.ui);
    EXPECT_FALSE(parse({"--ui", "false"}).ui);
    try {
        parse({"--ui-interval", "10ms"});
        FAIL() << "a 10ms interval was accepted";
    } catch (const config_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("ui_interval"));
    }
}

}  // namespace
}  // namespace plugmon::agent
