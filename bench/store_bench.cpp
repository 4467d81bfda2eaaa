// Rollup rows per second through the store's whole write path, on a real PostgreSQL 15 started
// for the run: window → spool (fsync'ed) → ledger claim, binary COPY straight into the partitioned
// table, COMMIT → spool pop; against the server's own ceiling for the same rows, in the same run.
// Usage: store_bench [rows_per_window] [windows] [repetitions] [min_calls] [max_calls]; each series
// has min_calls ≤ n < max_calls calls per window (default 20..220: large sketches; 1 21 gives
// small ones). Two row sets go through the same writer, runs interleaved: the sketches as the
// agent writes them (encoding v2) and the same sketches re-encoded as v1 (the encoding's share).
// Prints each run, the medians, the ceilings and the ratios.
#include "aggregate/series.hpp"
#include "aggregate/sketch.hpp"
#include "store/write/writer.hpp"

#include "rollup_window.hpp"

#include "../tests/support/pg_server.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace pa = plugmon::agent;
using clock_type = std::chrono::steady_clock;

namespace {

/// The figures before binary COPY and encoding v2 (bench/RESULTS.md, issue 5): default arguments
/// (large sketches) and min_calls 1, max_calls 21 (small ones); 0 for other arguments.
double issue5_rows_per_s(std::uint64_t min_calls, std::uint64_t max_calls) {
    if (min_calls == 20 && max_calls == 220) return 26'796;
    if (min_calls == 1 && max_calls == 21) return 90'684;
    return 0;
}

/// CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; 0 if unknown.
double cpu_seconds(int pid) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (f == nullptr) return 0;
    char buf[1024] = {};
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
    if (n == 0 || p == nullptr) return 0;
    unsigned long utime = 0, stime = 0;
    // After ") ": state, then fields 4..13, then utime (14) and stime (15).
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) !=
        2)
        return 0;
    return double(utime + stime) / double(::sysconf(_SC_CLK_TCK));
}

/// CPU cost of a run, in µs per row: the server backend's and the client's.
struct cpu_cost {
    double server_us = 0, client_us = 0;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double mean_sketch_bytes(const std::vector<pa::window_batch>& windows) {
    std::size_t bytes = 0, n = 0;
    for (const auto& w : windows)
        for (const auto& q : w.queries) {
            bytes += q.sketch.size();
            ++n;
        }
    return double(bytes) / double(n);
}

/// One run of the writer: every window (re-stamped from `start`, 10 s apart) as host `host`;
/// rows/s from the first submit to the last batch written, or a negative value on a failure;
/// `in_tx` (if not null) gets the share of that time spent inside the batches' transactions.
double write_run(const std::string& url, const std::vector<pa::window_batch>& windows,
                 const std::string& host, std::chrono::system_clock::time_point start,
                 double* in_tx, cpu_cost* cost) {
    const std::string spool = std::filesystem::temp_directory_path() /
                              ("plugmon-store-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(spool);
    pa::store::writer_options o;
    o.conninfo = url;
    o.host = host;
    o.agent_version = "bench";
    o.spooling.dir = spool;
    o.spooling.max_bytes = 8ull << 30;
    pa::store::writer w(o);
    w.start();
    // Wait for the connection (migrations, partitions) before the clock starts.
    while (w.state() != "connected") std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int backend = 0;  // the writer's server process: the newest other client backend
    {
        pqxx::connection probe(url);
        pqxx::nontransaction q(probe);
        backend = q.exec1(
                       "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                       " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                       " ORDER BY backend_start DESC LIMIT 1")[0]
                      .as<int>();
    }
    const double server0 = cpu_seconds(backend), client0 = plugmon::bench::own_cpu_seconds();
    std::size_t rows = 0;
    const auto t0 = clock_type::now();
    for (std::size_t i = 0; i < windows.size(); ++i) {
        pa::window_batch copy = windows[i];
        copy.bucket_start = start + std::chrono::seconds(10 * i);
        rows += copy.queries.size();
        w.submit(std::move(copy));
    }
    while (w.stats().batches_written.load() < windows.size()) {
        if (w.stats().failures.load() != 0) {
            std::fprintf(stderr, "store_bench: a write failed: %s\n", w.status().dump().c_str());
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    if (cost != nullptr) {
        cost->server_us = (cpu_seconds(backend) - server0) * 1e6 / double(rows);
        cost->client_us = (plugmon::bench::own_cpu_seconds() - client0) * 1e6 / double(rows);
    }
    // The share of the run the writer spent inside its transactions (claim … COMMIT), from its
    // own latency histogram; the rest is spooling, reading the spool back, and waiting.
    std::string metrics;
    w.render_metrics(metrics);
    const std::string key = "plugmon_store_write_duration_seconds_sum ";
    if (const auto at = metrics.find(key); at != std::string::npos && in_tx != nullptr)
        *in_tx = std::strtod(metrics.c_str() + at + key.size(), nullptr) / secs;
    w.stop(std::chrono::seconds(10));
    std::filesystem::remove_all(spool);
    return double(rows) / secs;
}

/// The ceiling: the rows of `host` inserted again by the server from a table it already holds
/// (no client, no parsing, no network): what the table, its primary key and the WAL take here.
/// Run r lands `days` days + r hours later (fresh keys each time). The caller commits.
double ceiling_run(pqxx::work& tx, const std::string& table, int days, int r, double* server_us) {
    const int backend = tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
    const double cpu0 = cpu_seconds(backend);
    const auto t0 = clock_type::now();
    const auto inserted = tx.exec(
        "INSERT INTO plugmon.query_rollups SELECT bucket_start + interval '" +
        std::to_string(days) + " days' + " + std::to_string(r) +
        " * interval '1 hour', bucket_seconds, host, plugin, op, tbl, tenant, calls, errors, "
        "rows, total_ns, min_ns, max_ns, p50_ns, p95_ns, p99_ns, sketch FROM " +
        table);
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    *server_us = (cpu_seconds(backend) - cpu0) * 1e6 / double(inserted.affected_rows());
    return double(inserted.affected_rows()) / secs;
}

struct variant {
    const char* name;
    std::vector<pa::window_batch> windows;
    std::vector<double> rates, ceilings;
    std::vector<double> server_us, client_us, ceiling_us;  // CPU µs per row
};

}  // namespace

int main(int argc, char** argv) {
    const std::size_t rows = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10000;
    const std::size_t windows = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20;
    const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
    const std::uint64_t min_calls = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 20;
    const std::uint64_t max_calls = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 220;
    if (rows == 0 || windows == 0 || reps < 1 || min_calls == 0 || max_calls <= min_calls) {
        std::fprintf(stderr,
                     "store_bench: want rows, windows, repetitions >= 1 and 0 < min_calls < "
                     "max_calls\n");
        return 2;
    }
    std::printf("store_bench: %zu query rollup rows per window, %zu windows per run, %d runs\n",
                rows, windows, reps);
    plugmon::test::pg_server pg;
    std::mt19937_64 rng(42);
    // One set of windows, re-stamped per run (distinct buckets: every run inserts new rows).
    variant v2{"v2", {}, {}, {}, {}, {}, {}}, v1{"v1", {}, {}, {}, {}, {}, {}};
    for (std::size_t i = 0; i < windows; ++i)
        v2.windows.push_back(plugmon::bench::make_rollup_window(rows, rng, min_calls, max_calls));
    v1.windows = v2.windows;
    for (auto& w : v1.windows)
        for (auto& q : w.queries) q.sketch = pa::dd_sketch::decode(q.sketch).encode(1);
    const double bytes_v2 = mean_sketch_bytes(v2.windows), bytes_v1 = mean_sketch_bytes(v1.windows);
    std::printf("mean sketch: %.0f bytes in encoding v2, %.0f in v1 (%.2fx smaller)\n", bytes_v2,
                bytes_v1, bytes_v1 / bytes_v2);

    const auto day0 = std::chrono::floor<std::chrono::hours>(std::chrono::system_clock::now()) -
                      std::chrono::hours(2);
    std::size_t slot = 0;  // distinct buckets for every run of either variant
    const auto write = [&](variant& v, const std::string& host, double* in_tx = nullptr,
                           cpu_cost* cost = nullptr) {
        return write_run(pg.url(), v.windows, host,
                         day0 + std::chrono::seconds(10 * windows * slot++), in_tx, cost);
    };
    // A warm-up run of each variant (not counted) writes the rows the ceiling inserts again.
    for (variant* v : {&v2, &v1})
        if (write(*v, std::string("bench-") + v->name + "-warmup") < 0) return 1;
    pqxx::connection c(pg.url());
    {
        pqxx::work tx(c);
        tx.exec(
            "SELECT plugmon.ensure_partitions(now() + interval '2 days', now() + interval '4 "
            "days')");
        for (variant* v : {&v2, &v1})
            tx.exec(std::string("CREATE TABLE bench_rows_") + v->name +
                    " AS SELECT * FROM plugmon.query_rollups WHERE host = 'bench-" + v->name +
                    "-warmup'");
        tx.commit();
    }
    // Runs interleaved (write v2, ceiling v2, write v1, ceiling v1), so that the load of this
    // shared machine weighs on every figure of a repetition alike.
    for (int r = 0; r < reps; ++r)
        for (variant* v : {&v2, &v1}) {
            double in_tx = 0, ceiling_us = 0;
            cpu_cost cost;
            const double rate =
                write(*v, std::string("bench-") + v->name + "-" + std::to_string(r), &in_tx, &cost);
            if (rate < 0) return 1;
            pqxx::work tx(c);
            const double top = ceiling_run(tx, std::string("bench_rows_") + v->name,
                                           v == &v2 ? 2 : 3, r, &ceiling_us);
            tx.commit();
            v->rates.push_back(rate);
            v->ceilings.push_back(top);
            v->server_us.push_back(cost.server_us);
            v->client_us.push_back(cost.client_us);
            v->ceiling_us.push_back(ceiling_us);
            std::printf(
                "run %d %s: %.0f rows/s, ceiling %.0f rows/s (%.0f %%); %.0f %% of the run in "
                "transactions; CPU per row: server %.1f us (ceiling %.1f us), client %.1f us\n",
                r + 1, v->name, rate, top, 100.0 * rate / top, 100.0 * in_tx, cost.server_us,
                ceiling_us, cost.client_us);
        }
    {
        pqxx::work tx(c);
        const auto n = tx.exec1(
            "SELECT count(*) FROM plugmon.query_rollups WHERE host LIKE "
            "'bench-v_-%' AND bucket_start < now()");
        const std::size_t expected = rows * windows * std::size_t(reps + 1) * 2;
        std::printf("rows written by the writer: %s (expected %zu)\n", n[0].c_str(), expected);
        if (n[0].as<std::size_t>() != expected) return 1;
    }

    std::printf("\n%-9s %12s %12s %9s %11s %14s\n", "sketches", "write rows/s", "ceiling", "share",
                "sketch B", "vs issue 5");
    const double issue5 = issue5_rows_per_s(min_calls, max_calls);
    for (variant* v : {&v2, &v1}) {
        const double rate = median(v->rates), top = median(v->ceilings);
        std::printf("%-9s %12.0f %12.0f %8.0f%% %11.0f %13.2fx   (runs %.0f..%.0f)\n", v->name,
                    rate, top, 100.0 * rate / top, v == &v2 ? bytes_v2 : bytes_v1,
                    issue5 > 0 ? rate / issue5 : 0.0,
                    *std::min_element(v->rates.begin(), v->rates.end()),
                    *std::max_element(v->rates.begin(), v->rates.end()));
    }
    for (variant* v : {&v2, &v1})
        std::printf(
            "%s CPU per row (medians): server backend %.1f us in the write path vs %.1f us in "
            "the ceiling (%.2fx); client %.1f us\n",
            v->name, median(v->server_us), median(v->ceiling_us),
            median(v->server_us) / median(v->ceiling_us), median(v->client_us));
    std::printf(
        "medians of %d; write path: spool + ledger + binary COPY + COMMIT; ceiling: the server's "
        "own INSERT … SELECT of the same rows; v2/v1 write rate in this run: %.2fx\n",
        reps, median(v2.rates) / median(v1.rates));
    return 0;
}
