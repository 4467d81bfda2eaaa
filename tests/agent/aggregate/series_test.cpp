// Specifies the series store: budgets fold into __overflow__, idle series expire without pulling
// memory from under a reader, and closing a window yields exact rollups and per-plugin percentiles.
#include "aggregate/series.hpp"
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <vector>
#include <string>

namespace plugmon::agent {
namespace {

using namespace std::chrono_literals;

bucket_bounds default_bounds() {
    return bucket_bounds::from_seconds(config::default_buckets(), config::default_buckets());
}

const std::chrono::system_clock::time_point t0{std::chrono::seconds(1'800'000'000)};

/// Records one query on `s` the way the drain does.
void record(query_series* s, std::uint64_t ns, bool failed = false, std::uint64_t rows = 0) {
    s->record(ns, failed, rows);
}

TEST(series_budget, per_plugin_budget_folds_further_label_sets_into_the_plugins_overflow_series) {
    series_registry store(default_bounds(), {100, 3});
    std::set<query_series*> distinct;
    for (int i = 0; i < 10; ++i) distinct.insert(store.query("billing", "SELECT", "t" + std::to_string(i), ""));
    EXPECT_EQ(distinct.size(), 4u);  // three of its own, one overflow
    query_series* fold = store.query("billing", "SELECT", "t9", "");
    EXPECT_TRUE(fold->folded);
    EXPECT_EQ(fold->plugin, "billing");
    EXPECT_EQ(fold->op, "__overflow__");
    EXPECT_EQ(fold->table, "__overflow__");
    EXPECT_FALSE(store.query("billing", "SELECT", "t0", "")->folded);  // kept its own series
    EXPECT_EQ(store.folded_label_sets(), 8u);  // every lookup that folded (the drain caches them)
    // another plugin has its own budget
    EXPECT_FALSE(store.query("search", "SELECT", "docs", "")->folded);
}

TEST(series_budget, total_budget_folds_everything_new_into_the_all_overflow_series) {
    series_registry store(default_bounds(), {5, 5});
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(store.query("p" + std::to_string(i), "op", "t", "")->folded);
    query_series* fold = store.query("newcomer", "op", "t", "");
    EXPECT_TRUE(fold->folded);
    EXPECT_EQ(fold->plugin, "__overflow__");
    EXPECT_EQ(store.execution("another", "tenant")->plugin, "__overflow__");
    EXPECT_EQ(store.counter("another", "evt")->event, "__overflow__");
    EXPECT_EQ(store.pool("another")->plugin, "__overflow__");
}

TEST(series_budget, a_hostile_flood_of_names_stays_within_budget_and_loses_no_count) {
    const std::uint64_t budget = 1000, per_plugin = 100;
    series_registry store(default_bounds(), {budget, per_plugin});
    std::uint64_t recorded = 0;
    for (int i = 0; i < 200000; ++i) {
        // 2,000 plugins x 100 tables: far more label sets than the budget allows
        record(store.query("plugin" + std::to_string(i % 2000), "SELECT", "table" + std::to_string(i / 2000), ""), 1000);
        ++recorded;
    }
    // the overflow series come on top of the budget: one per plugin that had series, plus one
    EXPECT_LE(store.series_count(), budget + budget + 1);
    std::uint64_t counted = 0;
    std::size_t folded_series = 0;
    for (const auto& s : store.snapshot().queries) {
        counted += s->ok.get();
        folded_series += s->folded;
    }
    EXPECT_EQ(counted, recorded);
    EXPECT_GT(folded_series, 0u);
    EXPECT_GT(store.folded_label_sets(), 0u);
}

TEST(series_expiry, idle_series_expire_after_the_given_number_of_windows) {
    series_registry store(default_bounds(), {100, 100});
    query_series* busy = store.query("p", "SELECT", "busy", "");
    store.query("p", "SELECT", "idle", "");
    store.counter("p", "evt");
    std::size_t expired = 0;
    for (int w = 0; w < 2; ++w) {
        record(busy, 1000);
        store.close_window(t0 + w * 10s, 10s, 3, expired);
        EXPECT_EQ(expired, 0u) << "window " << w;
    }
    record(busy, 1000);
    store.close_window(t0 + 20s, 10s, 3, expired);  // the third window in a row without events
    EXPECT_EQ(expired, 2u);  // the idle query series and the counter
    EXPECT_EQ(store.series_count(), 1u);
    EXPECT_EQ(store.expired_series(), 2u);
    ASSERT_EQ(store.snapshot().queries.size(), 1u);
    EXPECT_EQ(store.snapshot().queries[0]->table, "busy");
}

TEST(series_expiry, a_reader_keeps_an_expired_series_alive_until_it_lets_go) {
    series_registry store(default_bounds(), {100, 100});
    record(store.query("p", "SELECT", "t", ""), 5);
    const auto view = store.snapshot();
    std::size_t expired = 0;
    store.close_window(t0, 10s, 1, expired);  // active in this window: stays
    store.close_window(t0 + 10s, 10s, 1, expired);
    EXPECT_EQ(expired, 1u);
    EXPECT_TRUE(store.snapshot().queries.empty());
    ASSERT_EQ(view.queries.size(), 1u);
    EXPECT_EQ(view.queries[0]->ok.get(), 1u);  // still readable (ASan would catch a free)
}

TEST(series_expiry, expiry_frees_budget_for_new_label_sets) {
    series_registry store(default_bounds(), {2, 2});
    store.query("p", "op", "a", "");
    store.query("p", "op", "b", "");
    EXPECT_TRUE(store.query("p", "op", "c", "")->folded);
    std::size_t expired = 0;
    store.close_window(t0, 10s, 1, expired);
    EXPECT_EQ(expired, 3u);  // a, b and the overflow series: all idle
    EXPECT_FALSE(store.query("p", "op", "c", "")->folded);
}

TEST(series_expiry, zero_windows_means_never) {
    series_registry store(default_bounds(), {100, 100});
    store.query("p", "op", "t", "");
    std::size_t expired = 0;
    for (int w = 0; w < 50; ++w) store.close_window(t0 + w * 10s, 10s, 0, expired);
    EXPECT_EQ(store.series_count(), 1u);
}

TEST(windows, closing_a_window_gives_exact_rollups_and_resets_the_window) {
    series_registry store(default_bounds(), {100, 100});
    query_series* s = store.query("billing", "SELECT", "invoices", "acme");
    for (std::uint64_t i = 1; i <= 1000; ++i) record(s, i * 1000, i % 10 == 0, 2);
    std::size_t expired = 0;
    const window_batch b = store.close_window(t0, 10s, 30, expired);
    EXPECT_EQ(b.bucket_start, t0);
    EXPECT_EQ(b.length, 10s);
    ASSERT_EQ(b.queries.size(), 1u);
    const query_rollup& r = b.queries[0];
    EXPECT_EQ(r.plugin, "billing");
    EXPECT_EQ(r.tenant, "acme");
    EXPECT_EQ(r.calls, 1000u);
    EXPECT_EQ(r.errors, 100u);
    EXPECT_EQ(r.rows, 2000u);
    EXPECT_EQ(r.total_ns, 1000u * 1001u / 2u * 1000u);
    EXPECT_EQ(r.min_ns, 1000u);
    EXPECT_EQ(r.max_ns, 1000000u);
    EXPECT_NEAR(double(r.p50_ns), 500000.0, 500000.0 * 0.01);
    EXPECT_NEAR(double(r.p99_ns), 990000.0, 990000.0 * 0.01);
    const dd_sketch decoded = dd_sketch::decode(r.sketch);
    EXPECT_EQ(decoded.count(), 1000u);
    EXPECT_EQ(decoded.quantile(0.95), r.p95_ns);
    // the next window starts empty: no rollup for an idle series
    EXPECT_TRUE(store.close_window(t0 + 10s, 10s, 30, expired).queries.empty());
    EXPECT_EQ(s->ok.get() + s->error.get(), 1000u);  // cumulative counters are untouched
}

TEST(windows, per_plugin_figures_cover_the_last_window_and_everything_since_start) {
    series_registry store(default_bounds(), {100, 100});
    query_series* a = store.query("billing", "SELECT", "invoices", "");
    query_series* b = store.query("billing", "UPDATE", "invoices", "");
    for (int i = 0; i < 100; ++i) record(a, 1'000'000);     // 1 ms
    for (int i = 0; i < 100; ++i) record(b, 100'000'000);   // 100 ms
    std::size_t expired = 0;
    store.close_window(t0, 10s, 30, expired);
    plugin_latency l;
    ASSERT_TRUE(store.latency_of("billing", l));
    EXPECT_EQ(l.window.calls, 200u);
    EXPECT_EQ(l.window.max_ns, 100'000'000u);
    EXPECT_NEAR(double(l.window.p99_ns), 1e8, 1e6);
    for (int i = 0; i < 800; ++i) record(a, 1'000'000);
    store.close_window(t0 + 10s, 10s, 30, expired);
    ASSERT_TRUE(store.latency_of("billing", l));
    EXPECT_EQ(l.window.calls, 800u);
    EXPECT_NEAR(double(l.window.p99_ns), 1e6, 1e4);           // the last window: all 1 ms
    EXPECT_EQ(l.since_start.count(), 1000u);                   // both windows merged
    EXPECT_NEAR(double(l.since_start.quantile(0.95)), 1e8, 1e6);  // 10 % were 100 ms
    store.close_window(t0 + 20s, 10s, 30, expired);
    ASSERT_TRUE(store.latency_of("billing", l));
    EXPECT_EQ(l.window.calls, 0u);  // an idle window says so
    EXPECT_EQ(l.since_start.count(), 1000u);
    EXPECT_FALSE(store.latency_of("nobody", l));
}

TEST(windows, execution_rollups_carry_calls_wall_and_cpu_time) {
    series_registry store(default_bounds(), {100, 100});
    execution_series* e = store.execution("billing", "acme");
    e->record(1000, 500, false);
    e->record(1000, 500, true);
    e->record(1000, 500, false);
    std::size_t expired = 0;
    const window_batch b = store.close_window(t0, 10s, 30, expired);
    ASSERT_EQ(b.executions.size(), 1u);
    EXPECT_EQ(b.executions[0].calls, 3u);
    EXPECT_EQ(b.executions[0].cpu_ns, 1500u);
    EXPECT_EQ(e->window_calls, 0u);
}

TEST(histogram, bucket_from_the_sketch_index_equals_the_binary_search_everywhere) {
    const bucket_bounds b = default_bounds();
    histogram by_search(b.query_ns, b.query_by_index), by_index(b.query_ns, b.query_by_index);
    std::vector<std::uint64_t> values;
    for (std::uint64_t bound : b.query_ns)  // every bound, and its neighbours
        for (std::int64_t d = -3; d <= 3; ++d) values.push_back(bound + std::uint64_t(d));
    std::uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; ++i) {  // and values spread over every magnitude
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push_back(x >> (x % 64));
    }
    values.push_back(0);
    values.push_back(~0ull);
    for (std::uint64_t v : values) {
        by_search.observe(v);
        by_index.observe_at(dd_sketch::index_of(v), v);
    }
    for (std::size_t i = 0; i < by_search.size(); ++i) EXPECT_EQ(by_index.bucket(i), by_search.bucket(i)) << i;
    EXPECT_EQ(by_index.sum_ns(), by_search.sum_ns());
}

}  // namespace
}  // namespace plugmon::agent
