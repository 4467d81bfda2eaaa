// The dashboard's cost per tick at a given size: the snapshot built once (tick thread CPU) and
// its fan-out to every live stream (the HTTP I/O thread's CPU), with real clients on loopback
// reading every event. Prints the medians and the share of one core at one tick per second.
//
//   ui_bench [SERIES] [CLIENTS] [TICKS]     (defaults 10000 32 30)
#include "config/config.hpp"
#include "web/server/http.hpp"
#include "web/ui/dashboard.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace plugmon::agent;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

double cpu_seconds(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

/// One stream client: reads everything, counts events.
class reader {
public:
    explicit reader(std::uint16_t port) : socket_(io_) {
        socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        const std::string req = "GET /api/v1/ui/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        asio::write(socket_, asio::buffer(req));
        thread_ = std::thread([this] { run(); });
    }
    ~reader() {
        boost::system::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        thread_.join();
    }
    std::uint64_t events() const { return events_.load(); }

private:
    void run() {
        std::vector<char> buf(1 << 20);
        const std::string needle = "event: snapshot";
        std::string tail;
        for (;;) {
            boost::system::error_code ec;
            const std::size_t n = socket_.read_some(asio::buffer(buf), ec);
            if (ec) return;
            // Count whole markers, a marker split across reads included.
            std::string text = tail + std::string(buf.data(), n);
            for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
                ++events_;
            const std::size_t keep = std::min(text.size(), needle.size() - 1);
            tail = text.substr(text.size() - keep);
        }
    }
    asio::io_context io_;
    tcp::socket socket_;
    std::thread thread_;
    std::atomic<std::uint64_t> events_{0};
};

}  // namespace

int main(int argc, char** argv) {
    const std::size_t series = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000;
    const std::size_t clients = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 32;
    const std::size_t ticks = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 30;

    // 100 plugins; each series is one (plugin, operation, table, tenant); some slow statements.
    series_registry store(bucket_bounds::from_seconds(config::default_buckets(), config::default_buckets()),
                          series_registry::limits{series + 100, series + 100});
    statement_book statements(256);
    const std::size_t plugins = 100;
    for (std::size_t i = 0; i < series; ++i) {
        auto* q = store.query("plugin-" + std::to_string(i % plugins), i % 2 ? "SELECT" : "UPDATE",
                              "table-" + std::to_string(i / plugins % 10), "tenant-" + std::to_string(i / 1000));
        for (int k = 0; k < 20; ++k) q->record(std::uint64_t(100'000 + 37'000 * k), k == 0, 1);
    }
    for (std::size_t i = 0; i < 1000; ++i) {
        auto* s = statements.find_or_create("plugin-" + std::to_string(i % plugins),
                                            "select * from t" + std::to_string(i) + " where id = ?", i + 1);
        statement_book::record(*s, 1'000'000, 1, false, false);
    }
    std::size_t expired = 0;
    store.close_window(std::chrono::system_clock::now(), std::chrono::seconds{10}, 0, expired);

    drain drainer(store, drain::options{});
    api_context ctx{store, drainer, nullptr, "bench", nullptr, &statements};
    ui::dashboard_options o;
    o.snapshot.max_streams = clients;
    ui::dashboard dash(ctx, o);
    router routes;
    ui::add_ui_routes(routes, dash);

    asio::io_context io;
    http_server server(io, "127.0.0.1", 0, [&](const http_request& r) { return routes.dispatch(r); });
    std::thread io_thread([&] { io.run(); });
    clockid_t io_clock{};
    pthread_getcpuclockid(io_thread.native_handle(), &io_clock);

    dash.tick();
    std::vector<std::unique_ptr<reader>> readers;
    for (std::size_t i = 0; i < clients; ++i) readers.push_back(std::make_unique<reader>(server.port()));
    while (dash.stream_clients() < clients) std::this_thread::sleep_for(std::chrono::milliseconds{10});

    std::vector<double> build_ms, fanout_ms;
    std::uint64_t bytes = 0;
    for (std::size_t t = 0; t < ticks; ++t) {
        const double io0 = cpu_seconds(io_clock);
        const double b0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
        dash.tick();
        build_ms.push_back((cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - b0) * 1e3);
        bytes = dash.latest()->size();
        // Wait until every client has this tick's event, then charge the I/O thread's CPU.
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds{10};
        for (const auto& r : readers)
            while (r->events() < t + 2 && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::milliseconds{1});
        fanout_ms.push_back((cpu_seconds(io_clock) - io0) * 1e3);
    }
    std::uint64_t least = ~0ull;
    for (const auto& r : readers) least = std::min(least, r->events());

    const double build = median(build_ms), fanout = median(fanout_ms);
    std::printf("series %zu, plugins %zu, clients %zu, ticks %zu, snapshot %llu bytes\n", store.series_count(),
                plugins, clients, ticks, static_cast<unsigned long long>(bytes));
    std::printf("snapshot build (tick thread CPU): median %.2f ms (min %.2f, max %.2f)\n", build,
                *std::min_element(build_ms.begin(), build_ms.end()),
                *std::max_element(build_ms.begin(), build_ms.end()));
    std::printf("fan-out to %zu clients (I/O thread CPU): median %.2f ms (min %.2f, max %.2f)\n", clients, fanout,
                *std::min_element(fanout_ms.begin(), fanout_ms.end()),
                *std::max_element(fanout_ms.begin(), fanout_ms.end()));
    std::printf("per tick: %.2f ms = %.2f %% of one core at 1 Hz (goal < 2 %%)\n", build + fanout,
                (build + fanout) / 10.0);
    std::printf("every client got every event: %s (fewest %llu of %zu)\n", least >= ticks + 1 ? "yes" : "NO",
                static_cast<unsigned long long>(least), ticks + 1);

    readers.clear();
    dash.stop();
    asio::post(io, [&] { server.stop(); });
    io_thread.join();
    return least >= ticks + 1 ? 0 : 1;
}
