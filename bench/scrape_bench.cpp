// Scrape cost at scale: /metrics rendering, the JSON plugin list and the process's memory over a
// series store filled the way the drain fills it (default 10,000 query series, steady state).
// Usage: scrape_bench [--series N] [--repeat R] [--sigma S] [--dump FILE]; prints tables for
// bench/RESULTS.md; --dump writes the last /metrics body to FILE (for promtool or a diff).
// Exits 1 when the exposition lacks one status="ok" line per query series. S is the sigma of
// the lognormal query durations (median 2 ms): it sets how wide the window sketches grow.
#include "aggregate/series.hpp"
#include "web/api/api.hpp"
#include "config/config.hpp"
#include "ingest/drainer.hpp"
#include "web/server/http.hpp"
#include "export/prometheus/prometheus.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pa = plugmon::agent;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::size_t plugin_count = 20;
constexpr std::size_t table_count = 25;

// Label values of realistic length: plugin 6-16 characters, table 18-34, tenant 26-27.
constexpr const char* plugin_names[plugin_count] = {
    "billing",        "search-indexer", "audit-trail", "auth-gateway",   "reporting",
    "inventory-sync", "notifications",  "payments",    "geo-lookup",     "recommendations",
    "fraud-scoring",  "session-store",  "catalog",     "pricing-engine", "shipping-quotes",
    "loyalty-points", "email-digest",   "webhooks",    "data-export",    "feature-flags"};
constexpr const char* table_names[table_count] = {"public.customer_accounts",
                                                  "public.invoice_line_items",
                                                  "public.orders",
                                                  "public.order_status_history",
                                                  "public.payment_methods",
                                                  "public.product_catalog",
                                                  "public.product_prices",
                                                  "public.shipping_addresses",
                                                  "public.user_sessions",
                                                  "public.audit_events",
                                                  "public.inventory_levels",
                                                  "public.warehouse_locations",
                                                  "public.discount_codes",
                                                  "public.loyalty_transactions",
                                                  "public.email_templates",
                                                  "public.notification_outbox",
                                                  "public.feature_flag_overrides",
                                                  "public.search_documents",
                                                  "reporting.daily_revenue",
                                                  "reporting.monthly_active_users",
                                                  "public.webhook_deliveries",
                                                  "public.fraud_scores",
                                                  "public.tax_rates",
                                                  "public.currency_rates",
                                                  "public.subscription_plans"};
constexpr const char* op_names[] = {"SELECT", "INSERT", "UPDATE", "DELETE"};
constexpr const char* regions[] = {"eu-west-1", "us-east-2", "ap-south-1"};
constexpr const char* event_names[] = {"cache_hit", "cache_miss", "retry", "circuit_open",
                                       "batch_flushed"};

std::string tenant_name(std::size_t i) {
    char buf[64];
    const auto h = std::uint32_t((i + 1) * 2654435761u);
    std::snprintf(buf, sizeof buf, "tenant-%08x-%s", h, regions[i % 3]);
    return buf;
}

/// The store, its label sets and a generator of drain-like traffic.
struct workload {
    std::size_t queries, tenants = 0;
    std::vector<pa::query_series*> query_series;
    std::vector<pa::execution_series*> execution_series;
    std::vector<pa::counter_series*> counter_series;
    std::vector<pa::pool_series*> pool_series;
    std::mt19937_64 rng{20261123};
    std::lognormal_distribution<double> duration_ns;  // median 2 ms
    std::uniform_int_distribution<std::uint64_t> rows{0, 200};
    std::bernoulli_distribution failed{0.01};

    explicit workload(std::size_t n, double sigma)
        : queries(n), duration_ns(std::log(2e6), sigma) {}

    std::uint64_t draw_ns() { return std::uint64_t(std::max(1.0, duration_ns(rng))); }

    /// Creates every series: query i is (plugin i % 20, table i / 20 % 25, tenant i / 500), so
    /// every plugin gets the same share; one execution series per plugin and tenant (at most 20
    /// tenants), five event counters and one pool per plugin.
    void create(pa::series_registry& store) {
        const std::size_t per_tenant = plugin_count * table_count;
        tenants = (queries + per_tenant - 1) / per_tenant;
        std::vector<std::string> tenant(tenants);
        for (std::size_t t = 0; t < tenants; ++t) tenant[t] = tenant_name(t);
        for (std::size_t i = 0; i < queries; ++i) {
            const std::size_t p = i % plugin_count, tb = i / plugin_count % table_count,
                              tn = i / per_tenant;
            query_series.push_back(store.query(plugin_names[p], op_names[(tb * 7 + tn) % 4],
                                               table_names[tb], tenant[tn]));
        }
        for (std::size_t p = 0; p < plugin_count; ++p) {
            for (std::size_t tn = 0; tn < std::min<std::size_t>(tenants, 20); ++tn)
                execution_series.push_back(store.execution(plugin_names[p], tenant[tn]));
            for (const char* ev : event_names)
                counter_series.push_back(store.counter(plugin_names[p], ev));
            pool_series.push_back(store.pool(plugin_names[p]));
        }
    }

    /// Between `lo` and `hi` queries per query series, three executions per execution series,
    /// one increment per counter and one sample per pool.
    void traffic(std::uint64_t lo, std::uint64_t hi) {
        std::uniform_int_distribution<std::uint64_t> per_series{lo, hi};
        for (pa::query_series* s : query_series)
            for (std::uint64_t n = per_series(rng); n > 0; --n)
                s->record(draw_ns(), failed(rng), rows(rng));
        for (pa::execution_series* s : execution_series)
            for (int n = 0; n < 3; ++n) {
                const std::uint64_t wall = 8 * draw_ns();
                s->record(wall, wall / 3, failed(rng));
            }
        for (pa::counter_series* s : counter_series) {
            s->total.add(1 + rows(rng));
            s->active = true;
        }
        for (pa::pool_series* s : pool_series) {
            s->in_use.set(rows(rng) % 16);
            s->idle.set(rows(rng) % 8);
            s->waiting.set(rows(rng) % 3);
            s->active = true;
        }
    }
};

struct memory {
    std::uint64_t rss = 0, hwm = 0;  // bytes
    std::uint64_t heap = 0;          // bytes malloc has handed out and not had back (glibc)
};

memory read_memory() {
    memory m;
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);) {
        if (line.rfind("VmRSS:", 0) == 0)
            m.rss = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
        if (line.rfind("VmHWM:", 0) == 0)
            m.hwm = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    const struct mallinfo2 mi = ::mallinfo2();
    m.heap = mi.uordblks + mi.hblkhd;
#endif
    return m;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0), so a later reading is the peak of what follows.
bool reset_peak() {
    std::ofstream f("/proc/self/clear_refs");
    f << "5";
    f.flush();
    return bool(f);
}

double mib(std::uint64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

struct stats {
    double median, p90, min;
};

stats summarize(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    const std::size_t i90 = std::size_t(std::ceil(0.9 * double(n))) - 1;
    return {median, v[std::min(i90, n - 1)], v.front()};
}

template <class F>
double time_ms(F&& f) {
    const auto t0 = clock_type::now();
    f();
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

std::string first_field(const char* path, const char* key) {
    std::ifstream f(path);
    for (std::string line; std::getline(f, line);)
        if (line.rfind(key, 0) == 0) {
            const auto colon = line.find(':');
            return colon == std::string::npos
                       ? line
                       : line.substr(line.find_first_not_of(" \t", colon + 1));
        }
    return "?";
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(
        stderr,
        "scrape_bench: %s\nusage: scrape_bench [--series N (1..90000)] [--repeat R (>= 1)] "
        "[--sigma S (0 < S <= 3)] [--dump FILE]\n",
        why);
    std::exit(2);
}

std::uint64_t parse_count(int argc, char** argv, int& i, const char* flag) {
    if (i + 1 >= argc) usage((std::string(flag) + ": missing value").c_str());
    char* end = nullptr;
    const std::string_view text = argv[++i];
    const unsigned long long v = std::strtoull(argv[i], &end, 10);
    if (text.empty() || *end != '\0' || text[0] == '-' || v == 0)
        usage((std::string(flag) + ": \"" + std::string(text) + "\" is not a positive integer")
                  .c_str());
    return v;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

int main(int argc, char** argv) {
    std::uint64_t series = 10000, repeat = 30;
    double sigma = 0.75;
    const char* dump_path = nullptr;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--series")
            series = parse_count(argc, argv, i, "--series");
        else if (a == "--repeat")
            repeat = parse_count(argc, argv, i, "--repeat");
        else if (a == "--sigma") {
            if (i + 1 >= argc) usage("--sigma: missing value");
            char* end = nullptr;
            sigma = std::strtod(argv[++i], &end);
            if (end == argv[i] || *end != '\0' || !(sigma > 0 && sigma <= 3))
                usage(("--sigma: \"" + std::string(argv[i]) + "\" is not a number in (0, 3]")
                          .c_str());
        } else if (a == "--dump") {
            if (i + 1 >= argc) usage("--dump: missing value");
            dump_path = argv[++i];
        } else
            usage(("unknown argument \"" + std::string(a) + "\"").c_str());
    }
    if (series > 90000)
        usage("--series: at most 90000 (the store's budget is 100000 series in all)");

    const memory before = read_memory();
    pa::series_registry store(pa::bucket_bounds::from_seconds(pa::config::default_buckets(),
                                                           pa::config::default_buckets()),
                           pa::series_registry::limits{100000, 100000});
    pa::drain drainer(store, pa::drain::options{});  // never started: no producers, no thread
    workload w(series, sigma);

    // One full window of traffic, the drain's window close, then part of the next window: the
    // cells hold totals, per-plugin latency exists and the window sketches hold data and keep
    // the capacity they grew to, as between two closes in a running agent.
    const double create_ms = time_ms([&] { w.create(store); });
    w.traffic(8, 40);
    std::size_t expired = 0;
    const auto window_start = std::chrono::system_clock::now();
    std::size_t rollups = 0;
    const double close_ms = time_ms([&] {
        rollups =
            store.close_window(window_start, std::chrono::seconds(10), 30, expired).queries.size();
    });
    w.traffic(4, 20);
    const memory built = read_memory();

    std::uint64_t sketch_bytes = 0, folded = 0;
    {
        const auto v = store.snapshot();
        for (const auto& s : v.queries) {
            sketch_bytes += s->window.memory_bytes();
            folded += s->folded;
        }
    }
    const std::size_t total_series = store.series_count();
    int failures = 0;
    if (folded != 0 || expired != 0 || rollups != series) {
        std::fprintf(
            stderr,
            "scrape_bench: the store is not as built: %llu folded, %zu expired, %zu rollups\n",
            (unsigned long long)folded, expired, rollups);
        ++failures;
    }

    // /metrics: R renders; only the last body is kept (each render's string is freed before the
    // next one starts, as the HTTP server frees a response once sent).
    // The core sources, registered once as the agent does at start.
    const pa::metrics_registry metrics = pa::core_metrics(store, drainer, nullptr);
    const bool peak_reset = reset_peak();
    std::vector<double> render_ms, snapshot_ms;
    std::string body;
    for (std::uint64_t r = 0; r < repeat; ++r) {
        std::string b;
        render_ms.push_back(time_ms([&] { b = pa::render_metrics(metrics); }));
        if (r + 1 == repeat) body = std::move(b);
    }
    const memory rendered = read_memory();
    for (std::uint64_t r = 0; r < repeat; ++r)
        snapshot_ms.push_back(time_ms([&] { (void)store.snapshot(); }));

    // The floor: copying a body of the same size into a fresh string (allocation and page faults
    // included, as in a render).
    std::vector<double> copy_ms;
    for (std::uint64_t r = 0; r < repeat; ++r)
        copy_ms.push_back(time_ms([&] {
            std::string c(body);
            if (c.size() != body.size()) std::abort();
        }));

    // Validate the exposition: one status="ok" line per query series, the rest well-formed.
    std::uint64_t sample_lines = 0, ok_lines = 0, bucket_lines = 0;
    for (std::size_t pos = 0; pos < body.size();) {
        std::size_t end = body.find('\n', pos);
        if (end == std::string::npos) end = body.size();
        const std::string_view line(body.data() + pos, end - pos);
        if (!line.empty() && line[0] != '#') {
            ++sample_lines;
            if (starts_with(line, "plugmon_queries_total{") &&
                line.find("status=\"ok\"") != std::string_view::npos)
                ++ok_lines;
            if (starts_with(line, "plugmon_query_duration_seconds_bucket{")) ++bucket_lines;
        }
        pos = end + 1;
    }
    const std::size_t body_bytes = body.size();
    if (dump_path != nullptr) {
        std::ofstream f(dump_path, std::ios::binary);
        f << body;
        f.flush();
        if (!f) {
            std::fprintf(stderr, "scrape_bench: --dump: cannot write \"%s\"\n", dump_path);
            ++failures;
        }
    }
    const std::size_t buckets_per_series = store.bounds().query_s.size() + 1;
    if (ok_lines != series || bucket_lines != series * buckets_per_series) {
        std::fprintf(
            stderr,
            "scrape_bench: the exposition has %llu status=\"ok\" lines (expected %llu) and %llu "
            "duration bucket lines (expected %llu)\n",
            (unsigned long long)ok_lines, (unsigned long long)series,
            (unsigned long long)bucket_lines, (unsigned long long)(series * buckets_per_series));
        ++failures;
    }
    std::string().swap(body);  // move-assigning an empty string would keep the capacity

    // GET /api/v1/plugins (the copy floor above doubled the body for a moment: not a render's peak)
    const bool json_peak_reset = reset_peak();
    pa::api_context ctx{store, drainer, nullptr, "scrape_bench", {}};
    ctx.metrics = &metrics;  // without it /metrics answers 404
    pa::http_request req;
    req.method = "GET";
    req.target = "/api/v1/plugins";
    std::vector<double> json_ms;
    pa::http_response resp;
    for (std::uint64_t r = 0; r < repeat; ++r)
        json_ms.push_back(time_ms([&] { resp = pa::handle_request(ctx, req); }));
    std::size_t json_plugins = 0, json_windows = 0;
    try {
        const auto j = nlohmann::json::parse(resp.body);
        for (const auto& p : j.at("plugins")) {
            ++json_plugins;
            json_windows += !p.at("window").is_null();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "scrape_bench: /api/v1/plugins: %s\n", e.what());
    }
    // Every plugin has executions; those with query series also have a closed window.
    const std::size_t windows_expected = std::min<std::uint64_t>(plugin_count, series);
    if (resp.status != 200 || json_plugins != plugin_count || json_windows != windows_expected) {
        std::fprintf(
            stderr,
            "scrape_bench: /api/v1/plugins answered %u with %zu plugins, %zu with a window "
            "(expected %zu and %zu)\n",
            resp.status, json_plugins, json_windows, plugin_count, windows_expected);
        ++failures;
    }
    const std::size_t json_bytes = resp.body.size();
    resp = pa::http_response{};
    const memory after = read_memory();

    // GET /metrics as Prometheus asks for it (Accept-Encoding: gzip): rendered in 1 MiB pieces
    // into the compressor, so the whole text is never held.
    malloc_trim(0);  // give back the plain bodies' pages, so the peak below is the gzip path's
    const bool gzip_peak_reset = reset_peak();
    pa::http_request gz_req;
    gz_req.method = "GET";
    gz_req.target = "/metrics";
    gz_req.accept_encoding = "gzip";
    std::vector<double> gzip_ms;
    std::size_t gzip_bytes = 0;
    unsigned gzip_status = 0;
    for (std::uint64_t r = 0; r < repeat; ++r) {
        gzip_ms.push_back(time_ms([&] { resp = pa::handle_request(ctx, gz_req); }));
        gzip_bytes = resp.body.size();
        gzip_status = resp.status;
        resp = pa::http_response{};
    }
    if (gzip_status != 200) {
        std::fprintf(stderr, "scrape_bench: GET /metrics (gzip) answered %u\n", gzip_status);
        ++failures;
    }
    const memory gzipped = read_memory();
    const stats gz = summarize(gzip_ms);
    std::printf("GET /metrics with Accept-Encoding: gzip: median %.2f ms, p90 %.2f ms, body %zu bytes; "
                "RSS peak %.1f MiB%s\n",
                gz.median, gz.p90, gzip_bytes, double(gzipped.hwm) / (1024.0 * 1024.0),
                gzip_peak_reset ? "" : " [VmHWM could not be reset]");
    if (series == 10000)
        std::printf("goal RSS <= 64 MiB at 10k series while Prometheus scrapes (gzip): peak %.1f MiB (%s)\n",
                    double(gzipped.hwm) / (1024.0 * 1024.0), gzipped.hwm <= 64ull << 20 ? "met" : "MISSED");

    const stats render = summarize(render_ms), snap = summarize(snapshot_ms),
                copy = summarize(copy_ms), json = summarize(json_ms);
    const std::uint64_t growth = built.rss > before.rss ? built.rss - before.rss : 0;
    const std::uint64_t heap_growth = built.heap > before.heap ? built.heap - before.heap : 0;

    std::printf(
        "scrape_bench: %llu query series (%zu plugins x %zu tables x %zu tenants) + %zu execution, "
        "%zu counter, %zu pool = %zu series; durations lognormal, median 2 ms, sigma %.2f; %llu "
        "repetitions\n",
        (unsigned long long)series, plugin_count, table_count, w.tenants, w.execution_series.size(),
        w.counter_series.size(), w.pool_series.size(), total_series, sigma,
        (unsigned long long)repeat);
    std::printf("machine: nproc %ld, loadavg %s, cpu %s, compiler g++ %s%s\n",
                ::sysconf(_SC_NPROCESSORS_ONLN), first_field("/proc/loadavg", "").c_str(),
                first_field("/proc/cpuinfo", "model name").c_str(), __VERSION__,
#if defined(__OPTIMIZE__)
                " (optimised)"
#else
                " (NOT optimised)"
#endif
    );
    std::printf("setup: create %.1f ms, close_window %.1f ms (%zu rollups)\n\n", create_ms,
                close_ms, rollups);

    std::printf("| measure | median | p90 | min |\n| --- | ---: | ---: | ---: |\n");
    std::printf("| render_metrics (ms) | %.2f | %.2f | %.2f |\n", render.median, render.p90,
                render.min);
    std::printf("| floor: copy of a body of that size (ms) | %.2f | %.2f | %.2f |\n", copy.median,
                copy.p90, copy.min);
    std::printf("| store.snapshot() alone (ms) | %.3f | %.3f | %.3f |\n", snap.median, snap.p90,
                snap.min);
    std::printf("| GET /api/v1/plugins via handle_request (ms) | %.2f | %.2f | %.2f |\n\n",
                json.median, json.p90, json.min);
    std::printf(
        "render: %.0f ns per query series, %.1fx the copy floor; body %zu bytes (%.1f MiB, %.0f B "
        "per "
        "query series), %llu sample lines; JSON body %zu bytes\n",
        render.median * 1e6 / double(series), copy.median > 0 ? render.median / copy.median : 0.0,
        body_bytes, mib(body_bytes), double(body_bytes) / double(series),
        (unsigned long long)sample_lines, json_bytes);
    if (series == 10000)
        std::printf("goal render <= 50 ms at 10k series: %s (median %.2f ms)\n\n",
                    render.median <= 50.0 ? "met" : "MISSED", render.median);
    else
        std::printf(
            "goal render <= 50 ms applies at 10k series; scaled linearly to 10k this run is %.1f "
            "ms\n\n",
            render.median * 10000.0 / double(series));

    std::printf("| memory (MiB) | VmRSS | VmHWM | malloc in use |\n| --- | ---: | ---: | ---: |\n");
    std::printf("| before the store | %.1f | %.1f | %.1f |\n", mib(before.rss), mib(before.hwm),
                mib(before.heap));
    std::printf("| store built (steady state) | %.1f | %.1f | %.1f |\n", mib(built.rss),
                mib(built.hwm), mib(built.heap));
    std::printf("| after the renders (last body kept) | %.1f | %.1f%s | %.1f |\n",
                mib(rendered.rss), mib(rendered.hwm), peak_reset ? " (peak of the renders)" : "",
                mib(rendered.heap));
    std::printf("| after the JSON requests (bodies freed) | %.1f | %.1f%s | %.1f |\n\n",
                mib(after.rss), mib(after.hwm),
                json_peak_reset ? " (peak of the JSON requests)" : "", mib(after.heap));
    std::printf(
        "store: RSS growth %.1f MiB = %.0f B per series (%.0f B per query series); malloc growth "
        "%.1f MiB "
        "= %.0f B per series; query window sketches %.1f MiB = %.0f B per query series "
        "(sizeof(query_series) %zu B)\n",
        mib(growth), double(growth) / double(total_series), double(growth) / double(series),
        mib(heap_growth), double(heap_growth) / double(total_series), mib(sketch_bytes),
        double(sketch_bytes) / double(series), sizeof(pa::query_series));
    const std::uint64_t peak = std::max({rendered.hwm, after.hwm, built.rss});
    const std::uint64_t goal = 64ull * 1024 * 1024;
    const char* const hwm_note =
        peak_reset && json_peak_reset ? "" : " [VmHWM could not be reset: includes the setup]";
    if (series == 10000)
        std::printf(
            "goal RSS <= 64 MiB at 10k series: steady %.1f MiB (%s), peak %.1f MiB while scraping "
            "(%s)%s\n",
            mib(built.rss), built.rss <= goal ? "met" : "MISSED", mib(peak),
            peak <= goal ? "met" : "MISSED", hwm_note);
    else
        std::printf(
            "RSS: steady %.1f MiB, peak %.1f MiB while scraping%s (the 64 MiB goal applies at 10k "
            "series)\n",
            mib(built.rss), mib(peak), hwm_note);

    if (failures) {
        std::fprintf(stderr, "scrape_bench: FAILED (%d check(s))\n", failures);
        return 1;
    }
    return 0;
}
