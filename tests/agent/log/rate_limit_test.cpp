// Rate limiting of repeated lines, per key, with suppression counts (an injected clock).
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "log/rate_limit.hpp"

namespace {

using plugmon::agent::log::rate_limiter;
using namespace std::chrono_literals;

struct fake_clock {
    std::chrono::steady_clock::time_point now{};
    rate_limiter::clock_fn fn() {
        return [this] { return now; };
    }
};

TEST(log_rate_limit, admits_once_per_period_and_counts_what_it_held_back) {
    fake_clock clock;
    rate_limiter limiter(10s, clock.fn());
    ASSERT_EQ(limiter.admit("store down"), std::optional<std::uint64_t>{0});
    for (int i = 0; i < 5; ++i) {
        clock.now += 1s;
        EXPECT_FALSE(limiter.admit("store down")) << i;
    }
    clock.now += 4s;  // 9 s after the admitted line: still inside the period
    EXPECT_FALSE(limiter.admit("store down"));
    clock.now += 1s;  // 10 s
    EXPECT_EQ(limiter.admit("store down"), std::optional<std::uint64_t>{6});
    clock.now += 30s;
    EXPECT_EQ(limiter.admit("store down"), std::optional<std::uint64_t>{0}) << "count reset";
}

TEST(log_rate_limit, keys_are_independent) {
    fake_clock clock;
    rate_limiter limiter(10s, clock.fn());
    EXPECT_TRUE(limiter.admit("a"));
    EXPECT_TRUE(limiter.admit("b"));
    EXPECT_FALSE(limiter.admit("a"));
    EXPECT_FALSE(limiter.admit("a"));
    EXPECT_FALSE(limiter.admit("b"));
    clock.now += 10s;
    EXPECT_EQ(limiter.admit("a"), std::optional<std::uint64_t>{2});
    EXPECT_EQ(limiter.admit("b"), std::optional<std::uint64_t>{1});
}

TEST(log_rate_limit, a_flood_of_distinct_keys_stays_bounded_and_keeps_working) {
    fake_clock clock;
    rate_limiter limiter(10s, clock.fn());
    for (std::size_t i = 0; i < 3 * rate_limiter::max_keys; ++i)
        EXPECT_TRUE(limiter.admit("k" + std::to_string(i)));
    EXPECT_TRUE(limiter.admit("fresh"));
    EXPECT_FALSE(limiter.admit("fresh"));
}

TEST(log_rate_limit, threads_racing_on_one_key_admit_one_line_and_lose_no_count) {
    fake_clock clock;  // not advanced while the threads run
    rate_limiter limiter(10s, clock.fn());
    constexpr int threads = 4, calls = 1000;
    std::atomic<int> admitted{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int i = 0; i < calls; ++i)
                if (limiter.admit("shared")) admitted.fetch_add(1);
        });
    for (auto& t : pool) t.join();
    EXPECT_EQ(admitted.load(), 1);
    clock.now += 10s;
    EXPECT_EQ(limiter.admit("shared"), std::optional<std::uint64_t>{threads * calls - 1});
}

}  // namespace
