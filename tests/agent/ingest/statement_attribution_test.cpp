// Statements attached from many threads at once, as string-built SQL attaches them: every thread
// builds thousands of texts that differ only in their literals, of a few shapes. The agent's
// per-statement totals must equal what each thread recorded, shape by shape: an event that carried
// another statement's id, or none, would move a call from one total to another. Also run under TSan.
#include <plugmon/probe.hpp>

#include "../../../probe/fingerprint.hpp"
#include "common/tsc.hpp"
#include "support/inproc_agent.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace pa = plugmon::agent;

namespace {

bool wait_for(const std::function<bool()>& pred,
              std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
}

/// printf formats of four shapes; each call fills in three numbers.
constexpr const char* shapes[] = {
    "SELECT * FROM accounts WHERE id = %d AND region = 'r%d' LIMIT %d",
    "UPDATE accounts SET balance = balance - %d.%02d WHERE id = %d",
    "insert into events (account, kind, amount) values (%d, 'deposit', -%d), (%d, 'fee', 1)",
    "DELETE FROM sessions WHERE expires < %d AND user_id IN (%d, %d, 7) -- cleanup",
};
constexpr int shape_count = 4;

std::string text_of(int shape, int a, int b, int c) {
    char buf[256];
    std::snprintf(buf, sizeof buf, shapes[shape], a, b, c);
    return buf;
}

std::string normalized(const std::string& sql) {
    std::string out(plugmon::detail::statement_max_length, '\0');
    out.resize(plugmon::detail::normalize_statement(sql, out.data(), out.size()));
    return out;
}

TEST(statement_attribution, literal_variants_from_many_threads_add_up_per_statement) {
    plugmon::test::inproc_agent agent(std::getenv("PLUGMON_RUNTIME_DIR"),
                                      std::chrono::microseconds(200),
                                      pa::measure_ns_per_tick(std::chrono::milliseconds(10)));
    ASSERT_TRUE(plugmon::flush_to_agent(std::chrono::seconds(5))) << "probe did not register";

    constexpr int threads = 8, per_thread = 6000;
    const auto before = plugmon::probe_stats();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([t] {
            const plugmon::Plugin plugin{"attribution"};
            for (int i = 0; i < per_thread; ++i) {
                // every text is new: its literals hold the thread and the call
                const std::string sql = text_of(i % shape_count, t * 1000000 + i, i % 100, t + i);
                auto q = plugin.query("SQL", "accounts");
                q.statement(sql);
            }
        });
    for (auto& t : ts) t.join();
    const auto after = plugmon::probe_stats();
    const std::uint64_t written = after.events_written - before.events_written;
    ASSERT_EQ(after.events_dropped, before.events_dropped) << "this test needs every event drained";
    ASSERT_EQ(written, std::uint64_t(threads) * per_thread);
    ASSERT_TRUE(wait_for([&] { return agent.totals().drained.get() >= after.events_written; }));

    std::map<std::string, std::uint64_t> calls;  // normalised text -> calls the agent counted
    const std::string plugin = "attribution";
    for (const auto& s : agent.statements().top(&plugin, 100)) calls[s->text] += s->calls.get();
    ASSERT_EQ(calls.size(), std::size_t(shape_count)) << "one statement per shape";
    for (int shape = 0; shape < shape_count; ++shape) {
        const std::string text = normalized(text_of(shape, 1, 2, 3));
        EXPECT_EQ(calls[text], std::uint64_t(threads) * per_thread / shape_count) << text;
    }
}

}  // namespace
