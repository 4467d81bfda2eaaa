// Specifies the window fan-out: every sink receives every window once, shared; a slow or failing
// sink delays neither the publisher nor the other sinks, and what it loses is counted.
#include "pipeline/window_sink.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace plugmon::agent;
using namespace std::chrono_literals;

namespace {

window_batch window_at(int i) {
    window_batch w;
    w.bucket_start = std::chrono::system_clock::time_point(std::chrono::seconds(10 * i));
    w.length = 10s;
    query_rollup q;
    q.plugin = "p" + std::to_string(i);
    q.op = "SELECT";
    q.table = "t";
    q.calls = 1;
    w.queries.push_back(q);
    return w;
}

/// Records what it receives; optionally sleeps or throws on each window.
class recording_sink final : public window_sink {
public:
    explicit recording_sink(std::string name, std::chrono::milliseconds sleep = 0ms,
                            bool fail = false)
        : name_(std::move(name)), sleep_(sleep), fail_(fail) {}
    std::string name() const override { return name_; }
    void consume(const window_ptr& w) override {
        if (sleep_ > 0ms) std::this_thread::sleep_for(sleep_);
        {
            std::lock_guard<std::mutex> lock(mu_);
            seen_.push_back(w);
        }
        cv_.notify_all();
        if (fail_) throw std::runtime_error("refused");
    }
    std::vector<window_ptr> seen() const {
        std::lock_guard<std::mutex> lock(mu_);
        return seen_;
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mu_);
        return cv_.wait_for(lock, timeout, [&] { return seen_.size() >= n; });
    }

private:
    std::string name_;
    std::chrono::milliseconds sleep_;
    bool fail_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<window_ptr> seen_;
};

std::uint64_t stat_of(const window_fanout& f, const std::string& sink,
                      std::uint64_t window_fanout::sink_stats::*field) {
    for (const auto& s : f.stats())
        if (s.name == sink) return s.*field;
    ADD_FAILURE() << "no sink " << sink;
    return 0;
}

}  // namespace

TEST(window_fanout, every_sink_receives_every_window_once_in_order_and_shared) {
    window_fanout f;
    auto a = std::make_shared<recording_sink>("a");
    auto b = std::make_shared<recording_sink>("b");
    f.add(a);
    f.add(b);
    f.start();
    for (int i = 1; i <= 20; ++i) f.publish(window_at(i));
    ASSERT_TRUE(a->wait_for(20, 10s));
    ASSERT_TRUE(b->wait_for(20, 10s));
    ASSERT_TRUE(f.stop(5s));
    const auto sa = a->seen(), sb = b->seen();
    ASSERT_EQ(sa.size(), 20u);
    ASSERT_EQ(sb.size(), 20u);
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(sa[i]->queries.at(0).plugin, "p" + std::to_string(i + 1));
        EXPECT_EQ(sa[i].get(), sb[i].get()) << "one shared window, not a copy per sink";
    }
    EXPECT_EQ(f.published(), 20u);
    EXPECT_EQ(stat_of(f, "a", &window_fanout::sink_stats::delivered), 20u);
    EXPECT_EQ(stat_of(f, "b", &window_fanout::sink_stats::delivered), 20u);
    EXPECT_EQ(stat_of(f, "b", &window_fanout::sink_stats::dropped), 0u);
}

TEST(window_fanout, a_sink_sleeping_10s_delays_neither_the_publisher_nor_the_other_sink) {
    window_fanout f;
    auto slow = std::make_shared<recording_sink>("slow", 10s);
    auto fast = std::make_shared<recording_sink>("fast");
    f.add(slow, 4);
    f.add(fast, 64);
    f.start();
    // The slow sink takes the first window and sleeps 10 s on it; 30 more windows arrive meanwhile.
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 1; i <= 31; ++i) {
        f.publish(window_at(i));
        if (i == 1) std::this_thread::sleep_for(100ms);  // let it pick up window 1
    }
    const auto publish_time = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(publish_time, 5s) << "publish waited for the sleeping sink";
    ASSERT_TRUE(fast->wait_for(31, 5s)) << "the fast sink was held up by the slow one";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 9s);
    EXPECT_TRUE(slow->seen().size() <= 1u);
    // Its queue holds 4: of the 30 windows published while it slept, 26 overflowed.
    EXPECT_EQ(stat_of(f, "slow", &window_fanout::sink_stats::dropped), 26u);
    EXPECT_EQ(stat_of(f, "fast", &window_fanout::sink_stats::dropped), 0u);
    std::string text;
    f.render_metrics(text);
    EXPECT_NE(text.find("plugmon_window_sink_windows_total{sink=\"slow\",result=\"dropped\"} 26"),
              std::string::npos)
        << text;
    // Stopping with a short deadline leaves the sleeper to finish on its own, counting its queue.
    EXPECT_FALSE(f.stop(100ms));
    EXPECT_EQ(stat_of(f, "slow", &window_fanout::sink_stats::dropped), 30u);
}

TEST(window_fanout, a_throwing_sink_counts_failures_and_keeps_receiving) {
    window_fanout f;
    auto bad = std::make_shared<recording_sink>("bad", 0ms, true);
    f.add(bad);
    f.start();
    for (int i = 1; i <= 5; ++i) f.publish(window_at(i));
    ASSERT_TRUE(bad->wait_for(5, 10s));
    ASSERT_TRUE(f.stop(5s));
    EXPECT_EQ(stat_of(f, "bad", &window_fanout::sink_stats::failed), 5u);
    EXPECT_EQ(stat_of(f, "bad", &window_fanout::sink_stats::delivered), 0u);
}

TEST(window_fanout, stop_delivers_what_is_queued_within_the_deadline) {
    window_fanout f;
    auto s = std::make_shared<recording_sink>("s", 20ms);
    f.add(s, 100);
    f.start();
    for (int i = 1; i <= 10; ++i) f.publish(window_at(i));
    EXPECT_TRUE(f.stop(10s));
    EXPECT_EQ(s->seen().size(), 10u);
    // After stop, a window is counted as dropped, never delivered.
    f.publish(window_at(11));
    EXPECT_EQ(stat_of(f, "s", &window_fanout::sink_stats::dropped), 1u);
}

TEST(window_fanout, publishing_with_no_sink_is_a_counted_no_op) {
    window_fanout f;
    f.start();
    f.publish(window_at(1));
    EXPECT_EQ(f.published(), 1u);
    EXPECT_TRUE(f.stats().empty());
}

TEST(window_fanout, a_sink_added_while_windows_flow_gets_the_later_ones_and_a_removed_one_none) {
    window_fanout f;
    auto a = std::make_shared<recording_sink>("a");
    f.add(a);
    f.start();
    f.publish(window_at(0));
    auto b = std::make_shared<recording_sink>("b");
    f.add(b);  // started at once: it sees the windows published from now on
    f.publish(window_at(1));
    ASSERT_TRUE(b->wait_for(1, 5s));
    ASSERT_TRUE(a->wait_for(2, 5s));
    EXPECT_EQ(b->seen().at(0)->queries.at(0).plugin, "p1");
    EXPECT_EQ(b->seen().size(), 1u);

    EXPECT_TRUE(f.remove(b, 5s));
    EXPECT_FALSE(f.remove(b, 5s)) << "already gone";
    f.publish(window_at(2));
    ASSERT_TRUE(a->wait_for(3, 5s));
    EXPECT_EQ(b->seen().size(), 1u) << "nothing after its removal";
    ASSERT_EQ(f.stats().size(), 1u);
    EXPECT_EQ(f.stats().at(0).name, "a");
    EXPECT_TRUE(f.stop(5s));
}

TEST(window_fanout, a_removed_sink_finishes_what_it_had_queued) {
    window_fanout f;
    auto slow = std::make_shared<recording_sink>("slow", 30ms);
    f.add(slow, 16);
    f.start();
    for (int i = 0; i < 5; ++i) f.publish(window_at(i));
    EXPECT_TRUE(f.remove(slow, 10s));
    EXPECT_EQ(slow->seen().size(), 5u) << "queued before the removal: delivered, not dropped";
    EXPECT_TRUE(f.stop(5s));
}

TEST(window_fanout, adds_and_removes_race_with_publishing_safely) {
    window_fanout f;
    auto steady = std::make_shared<recording_sink>("steady");
    f.add(steady, 1000);
    f.start();
    std::atomic<bool> done{false};
    std::thread publisher([&] {
        for (int i = 0; i < 300; ++i) f.publish(window_at(i));
        done = true;
    });
    int cycles = 0;
    while (!done || cycles < 5) {
        auto s = std::make_shared<recording_sink>("churn" + std::to_string(cycles % 3));
        f.add(s, 4);
        EXPECT_TRUE(f.remove(s, 5s));
        ++cycles;
    }
    publisher.join();
    ASSERT_TRUE(steady->wait_for(300, 10s));
    EXPECT_EQ(steady->seen().size(), 300u);
    EXPECT_TRUE(f.stop(5s));
}
