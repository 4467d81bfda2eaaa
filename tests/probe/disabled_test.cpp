// PLUGMON_DISABLE=1: every call is a no-op, nothing is created, nothing is counted.
#include <plugmon/probe.hpp>

#include <gtest/gtest.h>

TEST(disabled, records_nothing_and_creates_no_segment) {
    plugmon::Plugin p{"off"};
    for (int i = 0; i < 1000; ++i) {
        auto q = p.query("SELECT", "t");
        q.rows(1);
    }
    p.count("x");
    EXPECT_EQ(plugmon::detail::writer(), nullptr);
    const auto s = plugmon::probe_stats();
    EXPECT_EQ(s.events_written, 0u);
    EXPECT_EQ(s.events_dropped, 0u);
    EXPECT_FALSE(s.attached);
    EXPECT_FALSE(plugmon::flush_to_agent(std::chrono::milliseconds(10)));
}
