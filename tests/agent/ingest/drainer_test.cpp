// Producer threads and the agent's drain in one process (what TSan can see): wrap-around, the
// shared lane under contention, name resolution, and exact accounting through a real socket.
#include <plugmon/probe.hpp>

#include "aggregate/series.hpp"
#include "config/config.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "export/prometheus/prometheus.hpp"
#include "support/inproc_agent.hpp"
#include "common/tsc.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

namespace pa = plugmon::agent;

namespace {

/// The shared in-process agent, listening in PLUGMON_RUNTIME_DIR.
using inproc_agent = plugmon::test::inproc_agent;

bool wait_for(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
}

std::uint64_t query_calls(const pa::series_registry& s, const std::string& plugin) {
    std::uint64_t n = 0;
    for (const auto& q : s.snapshot().queries)
        if (q->plugin == plugin) n += q->ok.get() + q->error.get();
    return n;
}

class ring : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        agent_ = new inproc_agent(std::getenv("PLUGMON_RUNTIME_DIR"), std::chrono::microseconds(200),
                                  pa::measure_ns_per_tick(std::chrono::milliseconds(10)));
    }
    static void TearDownTestSuite() {
        delete agent_;
        agent_ = nullptr;
    }
    void SetUp() override {
        ASSERT_TRUE(plugmon::flush_to_agent(std::chrono::seconds(5))) << "probe did not register";
    }
    static inproc_agent* agent_;
};
inproc_agent* ring::agent_ = nullptr;

TEST_F(ring, wraps_around_without_losing_an_event) {
    // 64-slot lanes: 20000 events wrap each lane hundreds of times; waiting for the drain
    // between bursts keeps the lane from filling, so nothing may be dropped.
    std::thread([] {
        plugmon::Plugin p{"wrap"};
        for (int burst = 0; burst < 625; ++burst) {
            for (int i = 0; i < 32; ++i) {
                auto q = p.query("SELECT", "wrap_table");
                q.rows(std::uint64_t(i));
            }
            ASSERT_TRUE(wait_for([&] {
                return query_calls(agent_->store(), "wrap") == std::uint64_t(burst + 1) * 32;
            })) << "burst " << burst;
        }
    }).join();
    EXPECT_EQ(query_calls(agent_->store(), "wrap"), 20000u);
    std::uint64_t rows = 0;
    for (const auto& q : agent_->store().snapshot().queries)
        if (q->plugin == "wrap") rows += q->rows.get();
    EXPECT_EQ(rows, 625u * (31 * 32 / 2));
}

TEST_F(ring, contended_lanes_account_for_every_event) {
    // PLUGMON_LANES=2: of 6 threads at least 4 share the multi-producer lane.
    const auto before = plugmon::probe_stats();
    const auto accounted_before = agent_->accounted();
    std::vector<std::thread> ts;
    for (int t = 0; t < 6; ++t)
        ts.emplace_back([t] {
            plugmon::Plugin p{"contended"};
            plugmon::TenantScope tenant{t % 2 ? "odd" : "even"};
            for (int i = 0; i < 20000; ++i) p.record_query("SELECT", "c", std::chrono::nanoseconds{100 + i});
        });
    for (auto& t : ts) t.join();
    const auto after = plugmon::probe_stats();
    const std::uint64_t recorded = (after.events_written + after.events_dropped) -
                                   (before.events_written + before.events_dropped);
    EXPECT_EQ(recorded, 120000u);
    ASSERT_TRUE(wait_for([&] { return agent_->accounted() - accounted_before >= recorded; }));
    const auto& t = agent_->drainer().totals();
    EXPECT_EQ(agent_->accounted() - accounted_before, recorded);
    EXPECT_EQ(t.torn.get(), 0u);
    EXPECT_EQ(t.invalid.get(), 0u);
    EXPECT_EQ(query_calls(agent_->store(), "contended"), after.events_written - before.events_written);
}

TEST_F(ring, resolves_names_and_kinds_into_series) {
    std::thread([] {
        plugmon::Plugin p{"billing"};
        plugmon::TenantScope tenant{"acme"};
        {
            auto q = p.query("SELECT", "invoices");
            q.rows(42);
            q.fail();
        }
        p.record_query("INSERT", "invoices", std::chrono::milliseconds(3), 1, true);
        { auto e = p.execution(); }
        p.count("rate_limited", 2);
        p.pool(3, 7, 1);
    }).join();
    ASSERT_TRUE(wait_for([&] {
        return pa::render_metrics(pa::core_metrics(agent_->store(), agent_->drainer(), nullptr))
                   .find("plugmon_pool_connections{plugin=\"billing\",state=\"idle\"} 7") != std::string::npos;
    }));
    const std::string text = pa::render_metrics(pa::core_metrics(agent_->store(), agent_->drainer(), nullptr));
    EXPECT_NE(text.find("plugmon_queries_total{plugin=\"billing\",op=\"SELECT\",table=\"invoices\","
                        "tenant=\"acme\",status=\"error\"} 1"),
              std::string::npos);
    EXPECT_NE(text.find("plugmon_query_rows_total{plugin=\"billing\",op=\"SELECT\",table=\"invoices\",tenant=\"acme\"} 42"),
              std::string::npos);
    // 3 ms lands in the 0.005 s bucket, not in 0.0025.
    EXPECT_NE(text.find("plugmon_query_duration_seconds_bucket{plugin=\"billing\",op=\"INSERT\","
                        "table=\"invoices\",tenant=\"acme\",le=\"0.0025\"} 0"),
              std::string::npos);
    EXPECT_NE(text.find("plugmon_query_duration_seconds_bucket{plugin=\"billing\",op=\"INSERT\","
                        "table=\"invoices\",tenant=\"acme\",le=\"0.005\"} 1"),
              std::string::npos);
    EXPECT_NE(text.find("plugmon_executions_total{plugin=\"billing\",tenant=\"acme\",status=\"ok\"} 1"),
              std::string::npos);
    EXPECT_NE(text.find("plugmon_plugin_events_total{plugin=\"billing\",event=\"rate_limited\"} 2"),
              std::string::npos);
    EXPECT_NE(text.find("plugmon_pool_connections{plugin=\"billing\",state=\"in_use\"} 3"), std::string::npos);
}

}  // namespace
