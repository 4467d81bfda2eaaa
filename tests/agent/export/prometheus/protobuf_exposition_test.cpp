// Specifies the protobuf exposition: content negotiation, the translation of every text family
// into delimited MetricFamily messages (read back here by a wire decoder of the test's own), the
// native buckets of plugmon_query_duration_seconds, and the window sink that keeps them.
#include "export/prometheus/protobuf_exposition.hpp"
#include "export/prometheus/native_store.hpp"
#include "pb_reader.hpp"

#include <gtest/gtest.h>

#include <random>

namespace plugmon::agent {
namespace {

namespace pe = protobuf_exposition;
using namespace pb_reader;

std::string translate(std::string_view text, pe::native_lookup lookup, std::size_t piece) {
    std::string body;
    pe::translator t([&](std::string_view f) { body.append(f); }, std::move(lookup));
    for (std::size_t i = 0; i < text.size(); i += piece) t.feed(text.substr(i, piece));
    t.finish();
    return body;
}

constexpr std::string_view text = R"(# HELP plugmon_queries_total Queries.
# TYPE plugmon_queries_total counter
plugmon_queries_total{plugin="a",status="ok"} 12
plugmon_queries_total{plugin="b\"q\\",status="error"} 3
# HELP g A gauge.\nTwo lines.
# TYPE g gauge
g 0.25
# TYPE plugmon_query_duration_seconds histogram
plugmon_query_duration_seconds_bucket{plugin="a",op="SELECT",table="t",tenant="",le="0.001"} 4
plugmon_query_duration_seconds_bucket{plugin="a",op="SELECT",table="t",tenant="",le="0.01"} 9
plugmon_query_duration_seconds_bucket{plugin="a",op="SELECT",table="t",tenant="",le="+Inf"} 10
plugmon_query_duration_seconds_sum{plugin="a",op="SELECT",table="t",tenant=""} 0.5
plugmon_query_duration_seconds_count{plugin="a",op="SELECT",table="t",tenant=""} 10
# TYPE s summary
s{quantile="0.5"} 1.5
s_sum 7
s_count 3
loose_sample 42 1700000000000
)";

TEST(protobuf_exposition, negotiates_like_prometheus) {
    // Prometheus 2.42 with --enable-feature=native-histograms (scrape/scrape.go).
    EXPECT_TRUE(pe::wants_protobuf(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,"
        "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/"
        "*;q=0.1"));
    // Without it, and curl's default.
    EXPECT_FALSE(pe::wants_protobuf(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    EXPECT_FALSE(pe::wants_protobuf("*/*"));
    EXPECT_FALSE(pe::wants_protobuf(""));
    EXPECT_FALSE(
        pe::wants_protobuf("application/vnd.google.protobuf;proto=other;encoding=delimited"));
    EXPECT_FALSE(pe::wants_protobuf(
        "application/"
        "vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0"));
    EXPECT_FALSE(
        pe::wants_protobuf("text/plain;q=0.9, application/vnd.google.protobuf; "
                           "proto=io.prometheus.client.MetricFamily; "
                           "encoding=delimited; q=0.5"));
}

TEST(protobuf_exposition, translates_every_text_family) {
    for (std::size_t piece : {std::size_t{1}, std::size_t{7}, text.size()}) {
        const auto f = families(translate(text, {}, piece));
        ASSERT_EQ(f.size(), 5u) << "piece " << piece;
        const message& c = f.at("plugmon_queries_total");
        EXPECT_EQ(c.str(2), "Queries.");
        EXPECT_EQ(c.u(3), 0u);  // COUNTER
        const auto cm = c.all(4);
        ASSERT_EQ(cm.size(), 2u);
        const auto labels = cm[1].all(1);
        ASSERT_EQ(labels.size(), 2u);
        EXPECT_EQ(labels[0].str(1), "plugin");
        EXPECT_EQ(labels[0].str(2), "b\"q\\");
        EXPECT_EQ(cm[1].one(3).d(1), 3.0);
        EXPECT_EQ(f.at("g").str(2), "A gauge.\nTwo lines.");
        EXPECT_EQ(f.at("g").u(3), 1u);
        EXPECT_EQ(f.at("g").one(4).one(2).d(1), 0.25);
        const message& h = f.at("plugmon_query_duration_seconds");
        EXPECT_EQ(h.u(3), 4u);  // HISTOGRAM
        const message hm = h.one(4).one(7);
        EXPECT_EQ(hm.u(1), 10u);
        EXPECT_EQ(hm.d(2), 0.5);
        const auto buckets = hm.all(3);
        ASSERT_EQ(buckets.size(), 2u) << "no +Inf bucket: the count stands for it";
        EXPECT_EQ(buckets[1].u(1), 9u);
        EXPECT_EQ(buckets[1].d(2), 0.01);
        EXPECT_FALSE(hm.varints.count(5)) << "no schema without native buckets";
        const message sm = f.at("s").one(4).one(4);
        EXPECT_EQ(f.at("s").u(3), 2u);
        EXPECT_EQ(sm.u(1), 3u);
        EXPECT_EQ(sm.one(3).d(1), 0.5);
        EXPECT_EQ(sm.one(3).d(2), 1.5);
        const message loose = f.at("loose_sample");
        EXPECT_EQ(loose.u(3), 3u);  // UNTYPED
        EXPECT_EQ(loose.one(4).one(5).d(1), 42.0);
        EXPECT_EQ(loose.one(4).u(6), 1700000000000u);
    }
}

TEST(protobuf_exposition, carries_native_buckets_with_consistent_classic_ones) {
    native::cumulative c(8);
    dd_sketch w;
    for (std::uint64_t v : {500'000u, 600'000u, 2'000'000u, 9'000'000u, 50'000'000u}) w.add(v);
    w.add(0);
    c.add(w);
    const native::histogram want = c.snapshot();
    pe::label_pairs seen;
    const auto f = families(translate(
        text,
        [&](std::string_view family,
            const pe::label_pairs& labels) -> std::optional<native::histogram> {
            if (family != "plugmon_query_duration_seconds") return std::nullopt;
            seen = labels;
            return want;
        },
        64));
    ASSERT_EQ(seen.size(), 4u) << "le is not a series label";
    const message hm = f.at("plugmon_query_duration_seconds").one(4).one(7);
    EXPECT_EQ(hm.u(1), 6u) << "count from the native histogram";
    EXPECT_DOUBLE_EQ(hm.d(2), want.sum);
    const auto buckets = hm.all(3);
    ASSERT_EQ(buckets.size(), 2u);
    EXPECT_EQ(buckets[0].u(1), 3u);  // 0, 0.5 ms, 0.6 ms at or below 1 ms
    EXPECT_EQ(buckets[1].u(1), 5u);  // and 2 ms, 9 ms
    EXPECT_EQ(unzigzag(hm.u(5)), 8);
    EXPECT_GT(hm.d(6), 0.0);
    EXPECT_LT(hm.d(6), 1e-30);
    EXPECT_EQ(hm.u(7), 1u);
    const auto spans = hm.all(12);
    ASSERT_EQ(spans.size(), want.positive_spans.size());
    for (std::size_t i = 0; i < spans.size(); ++i) {
        EXPECT_EQ(unzigzag(spans[i].u(1)), want.positive_spans[i].offset);
        EXPECT_EQ(spans[i].u(2), want.positive_spans[i].length);
    }
    std::vector<std::int64_t> deltas;
    for (auto [a, b] = hm.varints.equal_range(13); a != b; ++a)
        deltas.push_back(unzigzag(a->second));
    EXPECT_EQ(deltas, want.positive_deltas);
}

window_ptr window_of(
    const std::vector<std::pair<std::string, std::vector<std::uint64_t>>>& series) {
    auto w = std::make_shared<window_batch>();
    for (const auto& [plugin, values] : series) {
        query_rollup r;
        r.plugin = plugin;
        r.op = "SELECT";
        r.table = "t";
        dd_sketch s;
        for (auto v : values) s.add(v);
        r.sketch = s.encode();
        w->queries.push_back(std::move(r));
    }
    return w;
}

TEST(native_store, accumulates_windows_expires_idle_series_and_counts_bad_sketches) {
    native_store store(8, 3);
    store.consume(window_of({{"a", {7}}}));
    EXPECT_FALSE(store.lookup("a", "SELECT", "t", "")) << "nothing kept before activation";
    store.activate();
    store.consume(window_of({{"a", {1000, 2000}}, {"b", {5}}}));
    store.consume(window_of({{"a", {3000}}}));
    const auto a = store.lookup("a", "SELECT", "t", "");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->count, 3u);
    EXPECT_NEAR(a->sum, 6e-6, 1e-12);
    EXPECT_EQ(store.series(), 2u);
    EXPECT_GT(store.histogram_bytes(), 0u);
    // b had no window for 3 windows: forgotten, as the series store forgets idle series.
    store.consume(window_of({{"a", {1}}}));
    EXPECT_TRUE(store.lookup("b", "SELECT", "t", "")) << "idle for 2 windows only";
    store.consume(window_of({{"a", {1}}}));
    EXPECT_FALSE(store.lookup("b", "SELECT", "t", ""));
    EXPECT_EQ(store.series(), 1u);
    auto bad = std::make_shared<window_batch>();
    bad->queries.push_back(query_rollup{"a", "SELECT", "t", "", 1, 0, 0, 0, 0, 0, 0, 0, 0, "nope"});
    store.consume(bad);
    std::string m;
    store.render_metrics(m);
    EXPECT_NE(m.find("plugmon_agent_native_sketches_invalid_total 1\n"), std::string::npos) << m;
    EXPECT_EQ(store.lookup("a", "SELECT", "t", "")->count, 5u);
    // The lookup answers for plugmon_query_duration_seconds only, empty before a first window.
    const auto lookup = store.query_duration_lookup();
    EXPECT_FALSE(
        lookup("other", {{"plugin", "a"}, {"op", "SELECT"}, {"table", "t"}, {"tenant", ""}}));
    const auto empty = lookup("plugmon_query_duration_seconds",
                              {{"plugin", "z"}, {"op", "SELECT"}, {"table", "t"}, {"tenant", ""}});
    ASSERT_TRUE(empty);
    EXPECT_EQ(empty->count, 0u);
}

}  // namespace
}  // namespace plugmon::agent
