// Specifies the window-sink seam with the real drain: producer threads record through the probe
// and a real socket, the drain closes 100 ms windows into a fan-out with a sink that sleeps 10 s
// on every window and a sink that records; draining and the recording sink go on regardless, and
// the sleeper's overflow is counted.
#include <plugmon/probe.hpp>

#include "aggregate/series.hpp"
#include "common/tsc.hpp"
#include "config/config.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "pipeline/window_sink.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace pa = plugmon::agent;
using namespace std::chrono_literals;

namespace {

class counting_sink final : public pa::window_sink {
public:
    counting_sink(std::string name, std::chrono::milliseconds sleep)
        : name_(std::move(name)), sleep_(sleep) {}
    std::string name() const override { return name_; }
    void consume(const pa::window_ptr& w) override {
        entered_.fetch_add(1);
        if (sleep_ > 0ms) {
            std::unique_lock<std::mutex> lock(mu_);  // woken early at the end of the test
            wake_.wait_for(lock, sleep_, [&] { return released_; });
        }
        std::uint64_t calls = 0;
        for (const auto& q : w->queries) calls += q.calls;
        calls_.fetch_add(calls);
        windows_.fetch_add(1);
    }
    void release() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            released_ = true;
        }
        wake_.notify_all();
    }
    std::uint64_t windows() const { return windows_.load(); }
    std::uint64_t entered() const { return entered_.load(); }
    std::uint64_t calls() const { return calls_.load(); }

private:
    std::string name_;
    std::chrono::milliseconds sleep_;
    std::mutex mu_;
    std::condition_variable wake_;
    bool released_ = false;
    std::atomic<std::uint64_t> windows_{0}, entered_{0}, calls_{0};
};

bool wait_for(const std::function<bool()>& pred, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

}  // namespace

TEST(drain_with_sinks, a_sink_sleeping_10s_delays_neither_draining_nor_the_other_sink) {
    pa::series_registry series(pa::bucket_bounds::from_seconds(pa::config::default_buckets(),
                                                            pa::config::default_buckets()));
    pa::window_fanout windows;
    auto sleeper = std::make_shared<counting_sink>("sleeper", 10s);
    auto recorder = std::make_shared<counting_sink>("recorder", 0ms);
    windows.add(sleeper, 2);
    windows.add(recorder, 64);
    pa::drain::options o;
    o.idle_sleep = 200us;
    o.ns_per_tick = pa::measure_ns_per_tick(10ms);
    o.flush_interval = 100ms;
    o.windows = &windows;
    pa::drain drainer(series, o);
    boost::asio::io_context io;
    pa::intake::options io_opt;
    io_opt.runtime_dir = std::getenv("PLUGMON_RUNTIME_DIR");
    io_opt.socket_mode = 0600;
    pa::intake in(io, io_opt, drainer);
    windows.start();
    drainer.start();
    in.start();
    std::thread io_thread([&] { io.run(); });
    ASSERT_TRUE(plugmon::flush_to_agent(5s)) << "the probe did not register";

    // 2 s of queries, 25 every 10 ms, while the sleeper is stuck in its first window.
    plugmon::Plugin billing{"billing"};
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < 2s) {
        for (int i = 0; i < 25; ++i) billing.record_query("SELECT", "invoices", 1ms, 1, true);
        std::this_thread::sleep_for(10ms);
    }
    const std::uint64_t written = plugmon::probe_stats().events_written;
    ASSERT_GT(written, 0u);

    // Draining keeps up: every written event is drained well before the sleeper wakes.
    EXPECT_TRUE(wait_for([&] { return drainer.totals().drained.get() >= written; }, 3s))
        << "drained " << drainer.totals().drained.get() << " of " << written;
    // The recording sink sees the windows as they close, and with them every drained query.
    EXPECT_TRUE(wait_for([&] { return recorder->calls() >= written; }, 3s))
        << "recorder saw " << recorder->calls() << " calls in " << recorder->windows()
        << " windows";
    EXPECT_GE(recorder->windows(), 10u);
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(elapsed, 8s);
    // The sleeper is still in its first window; its queue holds 2, the rest overflowed, counted.
    EXPECT_EQ(sleeper->entered(), 1u);
    EXPECT_EQ(sleeper->windows(), 0u);
    std::uint64_t dropped = 0;
    for (const auto& s : windows.stats())
        if (s.name == "sleeper") dropped = s.dropped;
    EXPECT_GE(dropped, recorder->windows() - 3);
    EXPECT_GT(dropped, 0u);

    sleeper->release();
    boost::asio::post(io, [&] { in.stop(); });
    EXPECT_TRUE(drainer.stop(5s));
    EXPECT_TRUE(windows.stop(5s));
    io.stop();
    io_thread.join();
}
