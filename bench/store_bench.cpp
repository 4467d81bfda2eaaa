// Rollup rows per second through the store's whole write path, on a real PostgreSQL 15 started
// for the run: window → spool (fsync'ed) → ledger claim, COPY to staging, INSERT … ON CONFLICT
// into the partitioned table, COMMIT → spool pop.
// Usage: store_bench [rows_per_window] [windows] [repetitions] [min_calls] [max_calls]; each series
// has min_calls ≤ n < max_calls calls per window (default 20..220: sketches of ~1.2 KB; 1 21 gives
// ~170 B). Prints each run and the median.
#include "aggregate/series.hpp"
#include "store/write/writer.hpp"

#include "../tests/support/pg_server.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace pa = plugmon::agent;
using clock_type = std::chrono::steady_clock;

namespace {

/// A window of `rows` query rollups (distinct labels) with realistic sketches, plus one
/// execution rollup per plugin and tenant.
pa::window_batch make_window(std::size_t rows, std::chrono::system_clock::time_point start, std::mt19937_64& rng,
                             std::uint64_t min_calls, std::uint64_t max_calls) {
    pa::window_batch w;
    w.bucket_start = start;
    w.length = std::chrono::seconds(10);
    std::lognormal_distribution<double> latency(std::log(2e6), 1.0);
    for (std::size_t i = 0; i < rows; ++i) {
        pa::dd_sketch s;
        const std::uint64_t calls = min_calls + rng() % (max_calls - min_calls);
        pa::query_rollup q;
        for (std::uint64_t c = 0; c < calls; ++c) s.add(std::uint64_t(latency(rng)));
        q.plugin = "plugin-" + std::to_string(i % 20);
        q.op = i % 4 == 0 ? "SELECT" : i % 4 == 1 ? "INSERT" : i % 4 == 2 ? "UPDATE" : "DELETE";
        q.table = "table-" + std::to_string((i / 20) % 25);
        q.tenant = "tenant-" + std::to_string(i / 500);
        fill_durations(q, s);
        q.errors = calls / 50;
        q.rows = calls * 3;
        w.queries.push_back(std::move(q));
    }
    for (int p = 0; p < 20; ++p)
        w.executions.push_back({"plugin-" + std::to_string(p), "tenant-0", 100, 1, 5'000'000, 2'000'000});
    return w;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t rows = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10000;
    const std::size_t windows = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20;
    const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
    const std::uint64_t min_calls = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 20;
    const std::uint64_t max_calls = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 220;
    if (rows == 0 || windows == 0 || reps < 1 || min_calls == 0 || max_calls <= min_calls) {
        std::fprintf(stderr, "store_bench: want rows, windows, repetitions >= 1 and 0 < min_calls < max_calls\n");
        return 2;
    }

    std::printf("store_bench: %zu query rollup rows per window, %zu windows per run, %d runs\n", rows, windows, reps);
    plugmon::test::pg_server pg;
    std::mt19937_64 rng(42);
    // One set of windows, re-stamped per run (distinct buckets: every run inserts new rows).
    std::vector<pa::window_batch> base;
    for (std::size_t i = 0; i < windows; ++i) base.push_back(make_window(rows, {}, rng, min_calls, max_calls));
    std::size_t sketch_bytes = 0;
    for (const auto& q : base[0].queries) sketch_bytes += q.sketch.size();
    std::printf("mean sketch: %.0f bytes\n", double(sketch_bytes) / double(rows));

    std::vector<double> rates, tx_ms;
    const auto day0 = std::chrono::floor<std::chrono::hours>(std::chrono::system_clock::now()) - std::chrono::hours(2);
    for (int r = 0; r < reps; ++r) {
        const std::string spool = std::filesystem::temp_directory_path() / ("plugmon-store-bench-" + std::to_string(::getpid()));
        std::filesystem::remove_all(spool);
        pa::store::writer_options o;
        o.conninfo = pg.url();
        o.host = "bench-host-" + std::to_string(r);
        o.agent_version = "bench";
        o.spooling.dir = spool;
        o.spooling.max_bytes = 8ull << 30;
        pa::store::writer w(o);
        w.start();
        // Wait for the connection (migrations, partitions) before the clock starts.
        while (w.state() != "connected") std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const auto t0 = clock_type::now();
        for (std::size_t i = 0; i < windows; ++i) {
            pa::window_batch copy = base[i];
            copy.bucket_start = day0 + std::chrono::seconds(10 * (i + windows * std::size_t(r)));
            w.submit(std::move(copy));
        }
        while (w.stats().batches_written.load() < windows) {
            if (w.stats().failures.load() != 0) {
                std::fprintf(stderr, "store_bench: a write failed: %s\n", w.status().dump().c_str());
                return 1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
        const auto status = w.status();
        w.stop(std::chrono::seconds(10));
        std::filesystem::remove_all(spool);
        const double rate = double(rows * windows) / secs;
        rates.push_back(rate);
        std::printf("run %d: %zu rows in %.3f s = %.0f rows/s (%s)\n", r + 1, rows * windows, secs, rate,
                    status["written"]["rows"].dump().c_str());
    }
    pqxx::connection c(pg.url());
    pqxx::work tx(c);
    const auto n = tx.exec1("SELECT count(*), sum(calls) FROM plugmon.query_rollups");
    std::printf("rows in plugmon.query_rollups: %s (expected %zu)\n", n[0].c_str(), rows * windows * std::size_t(reps));
    if (n[0].as<std::size_t>() != rows * windows * std::size_t(reps)) return 1;
    std::sort(rates.begin(), rates.end());
    const double median = rates[rates.size() / 2];
    std::printf("median: %.0f rows/s (min %.0f, max %.0f) through spool + COPY + COMMIT\n", median, rates.front(),
                rates.back());

    // The ceiling: the same rows inserted by the server from a table it already holds (no client,
    // no parsing, no network): what the table, its primary key and the WAL take on this machine.
    tx.exec("SELECT plugmon.ensure_partitions(now() + interval '2 days', now() + interval '3 days')");
    tx.exec("CREATE TEMP TABLE bench_rows AS SELECT * FROM plugmon.query_rollups WHERE host = 'bench-host-0'");
    std::vector<double> ceiling;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        const auto inserted = tx.exec(
            "INSERT INTO plugmon.query_rollups SELECT bucket_start + interval '2 days' + " + std::to_string(r) +
            " * interval '1 hour', bucket_seconds, host, plugin, op, tbl, tenant, calls, errors, rows, total_ns, "
            "min_ns, max_ns, p50_ns, p95_ns, p99_ns, sketch FROM bench_rows");
        const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
        ceiling.push_back(double(inserted.affected_rows()) / secs);
    }
    std::sort(ceiling.begin(), ceiling.end());
    const double top = ceiling[ceiling.size() / 2];
    std::printf("server-side INSERT … SELECT of the same rows (ceiling): median %.0f rows/s; the write path "
                "reaches %.0f %% of it\n",
                top, 100.0 * median / top);
    return 0;
}
