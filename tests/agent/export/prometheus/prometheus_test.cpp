// Specifies /metrics streaming: rendering in pieces, or gzip-compressed piece by piece, gives
// exactly the text of a whole render; the gzip answer goes to clients that ask for it.
#include "web/api/api.hpp"
#include "config/config.hpp"
#include "export/prometheus/prometheus.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

namespace plugmon::agent {
namespace {

struct metrics_fixture {
    series_registry store{bucket_bounds::from_seconds(config::default_buckets(), config::default_buckets())};
    drain drainer{store, drain::options{}};
    metrics_fixture() {
        // enough series for many 4 KiB pieces and several 1 MiB pieces
        for (int i = 0; i < 3000; ++i) {
            query_series* s = store.query("plugin-" + std::to_string(i % 7), "SELECT", "table-" + std::to_string(i), "");
            s->ok.add(std::uint64_t(i));
            s->duration.observe(std::uint64_t(i) * 1000);
        }
        store.execution("plugin-0", "acme")->ok.add(3);
        store.counter("plugin-0", "cache_miss")->total.add(9);
    }
};

std::string gunzip(const std::string& in) {
    z_stream z{};
    EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::string out;
    int rc = Z_OK;
    while (rc == Z_OK) {
        char buf[65536];
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        rc = inflate(&z, Z_NO_FLUSH);
        out.append(buf, sizeof buf - z.avail_out);
    }
    EXPECT_EQ(rc, Z_STREAM_END);
    inflateEnd(&z);
    return out;
}

TEST(metrics, rendering_in_pieces_gives_the_same_text_as_one_render) {
    metrics_fixture f;
    const std::string whole = render_metrics(core_metrics(f.store, f.drainer, nullptr));
    ASSERT_GT(whole.size(), 1u << 20);
    std::string pieces;
    std::size_t calls = 0, largest = 0;
    render_metrics(core_metrics(f.store, f.drainer, nullptr),
                   [&](std::string_view p) {
                       ++calls;
                       largest = std::max(largest, p.size());
                       pieces.append(p);
                   },
                   4096);
    EXPECT_EQ(pieces, whole);
    EXPECT_GT(calls, whole.size() / 8192);  // it really streamed
    EXPECT_LT(largest, 64u * 1024u);        // one piece: the chunk plus at most one series' lines
}

TEST(metrics, the_core_sources_render_every_family_once_in_component_order) {
    metrics_fixture f;
    const std::string text = render_metrics(core_metrics(f.store, f.drainer, nullptr));
    std::vector<std::string> types;
    for (std::size_t pos = 0; (pos = text.find("# TYPE ", pos)) != std::string::npos; ++pos)
        types.push_back(text.substr(pos + 7, text.find('\n', pos) - pos - 7));
    const std::vector<std::string> expected = {
        // the aggregated series
        "plugmon_queries_total counter", "plugmon_query_rows_total counter",
        "plugmon_query_duration_seconds histogram", "plugmon_executions_total counter",
        "plugmon_execution_duration_seconds histogram", "plugmon_plugin_cpu_seconds_total counter",
        "plugmon_plugin_events_total counter", "plugmon_pool_connections gauge",
        "plugmon_plugin_heap_allocated_bytes_total counter",
        "plugmon_plugin_heap_freed_bytes_total counter", "plugmon_plugin_heap_live_bytes gauge",
        "plugmon_plugin_leak_suspected gauge",
        // the plugin processes (none sampled here: the families without samples)
        "plugmon_process_resident_memory_bytes gauge", "plugmon_process_cpu_seconds_total counter",
        "plugmon_process_open_fds gauge", "plugmon_process_threads gauge",
        "plugmon_process_read_bytes_total counter", "plugmon_process_write_bytes_total counter",
        "plugmon_process_leak_suspected gauge",
        // the drain
        "plugmon_ring_events_dropped_total counter", "plugmon_agent_events_folded_total counter",
        "plugmon_agent_slow_queries_total counter",
        "plugmon_agent_slow_queries_unstored_total counter",
        "plugmon_agent_resource_samples_total counter", "plugmon_agent_windows_total counter",
        "plugmon_agent_events_drained_total counter", "plugmon_producers gauge",
        "plugmon_agent_producers_registered_total counter", "plugmon_ring_used_ratio gauge",
        "plugmon_ring_backlog_events gauge",
        // the series store's own (the intake's refusals come before them when there is one)
        "plugmon_agent_series_budget gauge", "plugmon_agent_series_folded_total counter",
        "plugmon_agent_series_expired_total counter", "plugmon_agent_series gauge"};
    EXPECT_EQ(types, expected);
    EXPECT_NE(text.find("\nplugmon_agent_series 3002\n"), std::string::npos);
    EXPECT_NE(text.find("\nplugmon_ring_used_ratio 0\n"), std::string::npos);
}

TEST(metrics, the_gzip_body_inflates_to_the_plain_text) {
    metrics_fixture f;
    const std::string whole = render_metrics(core_metrics(f.store, f.drainer, nullptr));
    const std::string gz = render_metrics_gzip(core_metrics(f.store, f.drainer, nullptr));
    EXPECT_LT(gz.size(), whole.size() / 4);
    EXPECT_EQ(gunzip(gz), whole);
}

TEST(metrics, gzip_only_for_clients_that_accept_it) {
    metrics_fixture f;
    const metrics_registry metrics = core_metrics(f.store, f.drainer, nullptr);
    api_context ctx{f.store, f.drainer, nullptr, "test", nullptr};
    ctx.metrics = &metrics;
    const auto encoding_of = [&](const std::string& accept) {
        http_request req;
        req.method = "GET";
        req.target = "/metrics";
        req.accept_encoding = accept;
        const http_response r = handle_request(ctx, req);
        for (const auto& [k, v] : r.headers)
            if (k == "Content-Encoding") return v;
        return std::string("identity");
    };
    EXPECT_EQ(encoding_of("gzip"), "gzip");
    EXPECT_EQ(encoding_of("identity, GZip;q=0.5"), "gzip");  // as Prometheus sends it, any case
    EXPECT_EQ(encoding_of(""), "identity");
    EXPECT_EQ(encoding_of("deflate"), "identity");
    EXPECT_EQ(encoding_of("gzip;q=0"), "identity");
}

}  // namespace
}  // namespace plugmon::agent
