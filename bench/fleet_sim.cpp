// A fleet simulated in one process: N agents, each the real store writer (own spool, own host
// name) and, when built with it, the real remote-write sink, fed windows of 10 000 query series
// with realistic sketches; one PostgreSQL (and one Prometheus) for all of them.
//
// Modes: --mode realtime submits one window per agent every 10 s of wall-clock time for
// --duration seconds (windows aligned on 10 s, as agents close them); --mode compressed submits
// --windows windows per agent as fast as they are written (at most --depth outstanding per agent):
// the fleet is sustained when the rows/s written reach N × series / 10 s. Lag: from a window's
// submission to its commit in PostgreSQL (to its acknowledgement by Prometheus for remote write).
// Then: storage per row (partition heap + index + TOAST) and per day, and the time of a
// fleet-wide p99 over one day of hourly rows (generated for N hosts, --day-hosts), plus the same
// query over the raw rows just written (extrapolated to a raw day, stated as such).
//
// Usage: fleet_sim --agents N [--mode realtime|compressed] [--duration S] [--windows W]
//        [--series 10000] [--pg-url URL] [--pg-pid PID] [--remote-write URL] [--prom-pid PID]
//        [--work-dir DIR] [--day-hosts N] [--query-reps 3] [--sketch-backend auto|c|plpgsql]
// Without --pg-url a private PostgreSQL 15 is started for the run (tests/support/pg_server.hpp).
#include "aggregate/series.hpp"
#include "pipeline/window_sink.hpp"
#include "store/schema/migrations.hpp"
#include "store/write/writer.hpp"

#include "rollup_window.hpp"
#ifdef PLUGMON_FLEET_REMOTE_WRITE
#include "export/remote_write/sink.hpp"
#endif

#include "../tests/support/pg_server.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace pa = plugmon::agent;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;
using std::chrono::system_clock;

namespace {

struct options {
    int agents = 4;
    std::string mode = "realtime";
    double duration_s = 60;
    int windows = 20;
    int depth = 2;
    std::size_t series = 10000;
    int templates = 3;
    std::uint64_t min_calls = 20, max_calls = 220;
    std::string pg_url, remote_write, work_dir, sketch_backend;
    int pg_pid = 0, prom_pid = 0;
    int rw_schema = -100;  // -100: the sink's default
    int day_hosts = -1;    // -1: as many as agents; 0: skip the day query
    int query_reps = 3;
};

constexpr auto window_length = std::chrono::seconds(10);

/// CPU seconds (user + system) of a process and of its children, live and reaped: for the
/// postmaster that is the whole server. 0 when pid is 0 or gone.
double tree_cpu_seconds(int pid) {
    if (pid <= 0) return 0;
    const double tick = double(::sysconf(_SC_CLK_TCK));
    auto read_stat = [](const fs::path& p) -> std::vector<std::string> {
        std::ifstream in(p);
        std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto close = s.rfind(')');
        if (close == std::string::npos) return {};
        std::istringstream rest(s.substr(close + 2));
        std::vector<std::string> f{"pid", "comm"};  // fields 1 and 2; then field 3 is f[2]
        for (std::string x; rest >> x;) f.push_back(x);
        return f;
    };
    double total = 0;
    const auto self = read_stat("/proc/" + std::to_string(pid) + "/stat");
    if (self.size() < 17) return 0;
    for (int k : {13, 14, 15, 16}) total += std::stod(self[k]) / tick;  // utime stime cutime cstime
    for (const auto& e : fs::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        const auto f = read_stat(e.path() / "stat");
        if (f.size() > 14 && f[3] == std::to_string(pid))
            total += (std::stod(f[13]) + std::stod(f[14])) / tick;
    }
    return total;
}

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, std::size_t(q * double(v.size())))];
}

/// Submission times of a sink's windows not yet acknowledged, and the lags of those that were.
struct lag_track {
    std::deque<steady::time_point> pending;
    std::uint64_t seen = 0;
    std::vector<double> lags;            // seconds
    std::vector<steady::time_point> at;  // when each lag was observed
    void advance(std::uint64_t done, steady::time_point now) {
        for (; seen < done && !pending.empty(); ++seen) {
            lags.push_back(std::chrono::duration<double>(now - pending.front()).count());
            at.push_back(now);
            pending.pop_front();
        }
    }
};

/// One simulated agent as the agent wires it: a window fan-out with its own writer (spool,
/// host) and, if configured, its remote-write sink, each on a thread of its own.
struct sim_agent {
    std::string host;
    pa::window_fanout fanout;
    std::shared_ptr<pa::store::writer> writer;
    lag_track store;
#ifdef PLUGMON_FLEET_REMOTE_WRITE
    std::shared_ptr<pa::remote_write::sink> remote;
    lag_track remote_lag;
#endif
    std::uint64_t submitted = 0;
};

std::unique_ptr<sim_agent> make_agent(const options& o, int index) {
    auto a = std::make_unique<sim_agent>();
    a->host = "sim-host-" + std::to_string(index);
    pa::store::writer_options w;
    w.conninfo = o.pg_url;
    w.host = a->host;
    w.agent_version = "fleet_sim";
    w.spooling.dir = (fs::path(o.work_dir) / a->host / "spool").string();
    w.spooling.max_bytes = 4ull << 30;
    w.queue_max = 1024;
    a->writer = std::make_shared<pa::store::writer>(w);
    a->fanout.add(a->writer, 256);
#ifdef PLUGMON_FLEET_REMOTE_WRITE
    if (!o.remote_write.empty()) {
        pa::remote_write::sink_options r;
        r.name = "prometheus";
        r.url = o.remote_write;
        r.spool_dir = (fs::path(o.work_dir) / a->host / "remote-write").string();
        r.spool_max_bytes = 4ull << 30;
        r.host = a->host;
        r.series.external_labels = {{"host", a->host}};
        if (o.rw_schema != -100) r.series.schema = o.rw_schema;
        a->remote = std::make_shared<pa::remote_write::sink>(r);
        a->fanout.add(a->remote, 256);
    }
#endif
    return a;
}

struct run_result {
    steady::time_point t0;
    double seconds = 0;        // the whole run: submissions, then every acknowledgement
    double store_seconds = 0;  // to the last commit in PostgreSQL
    double rw_seconds = 0;     // to the last acknowledgement by Prometheus
    double rows_per_s = 0, offered_rows_per_s = 0;
    std::uint64_t rows = 0, windows = 0, submitted = 0;
    double lag_p50 = 0, lag_p99 = 0, lag_max = 0, lag_first_third_max = 0, lag_last_third_max = 0;
    double pg_cpu = 0, self_cpu = 0, prom_cpu = 0;
    std::uint64_t failures = 0, dropped = 0;
    double rw_samples = 0, rw_lag_p50 = 0, rw_lag_p99 = 0, rw_lag_max = 0;
    std::uint64_t rw_dropped = 0, rw_retried = 0, rw_windows = 0;
    double rw_offered = 0;  // samples/s that N agents produce at 10 s windows
    bool rw = false;
};

/// Submits window number `k` of agent `a`, stamped `start`, to its writer and remote sink.
void submit(sim_agent& a, const std::vector<pa::window_batch>& templates, std::size_t k,
            system_clock::time_point start) {
    pa::window_batch w = templates[k % templates.size()];
    w.bucket_start = start;
    const auto now = steady::now();
#ifdef PLUGMON_FLEET_REMOTE_WRITE
    if (a.remote) a.remote_lag.pending.push_back(now);
#endif
    a.store.pending.push_back(now);
    a.fanout.publish(std::move(w));
    ++a.submitted;
}

/// Takes the lags observed since the last call; true when every window has been acknowledged.
bool observe(std::vector<std::unique_ptr<sim_agent>>& fleet, run_result& r) {
    const auto now = steady::now();
    bool done = true;
    for (auto& a : fleet) {
        const auto& s = a->writer->stats();
        r.failures = std::max<std::uint64_t>(r.failures, s.failures.load());
        a->store.advance(s.batches_written.load() + s.batches_duplicate.load(), now);
        done = done && a->store.pending.empty();
#ifdef PLUGMON_FLEET_REMOTE_WRITE
        if (a->remote) {
            const auto& c = a->remote->stats();
            a->remote_lag.advance(c.windows_sent.load() + c.windows_invalid.load(), now);
            done = done && a->remote_lag.pending.empty();
        }
#endif
    }
    return done;
}

/// Real time: every agent submits at each 10 s boundary, for duration_s; then waits for the
/// backlog (at most 120 s). Compressed: each agent keeps `depth` windows outstanding until it
/// has submitted `windows`, simulated time advancing 10 s per window.
void drive(const options& o, std::vector<std::unique_ptr<sim_agent>>& fleet,
           const std::vector<pa::window_batch>& templates, run_result& r) {
    const auto sim0 = std::chrono::floor<std::chrono::seconds>(system_clock::now());
    const auto t0 = steady::now();
    r.t0 = t0;
    if (o.mode == "realtime") {
        const auto ticks = std::size_t(o.duration_s / 10.0);
        for (std::size_t k = 0; k < ticks; ++k) {
            const auto at = t0 + std::chrono::seconds(10 * k);
            while (steady::now() < at) {
                observe(fleet, r);
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            for (std::size_t i = 0; i < fleet.size(); ++i)
                submit(*fleet[i], templates, k + i, sim0 + window_length * k);
        }
    } else {
        bool more = true;
        while (more) {
            more = false;
            observe(fleet, r);
            for (std::size_t i = 0; i < fleet.size(); ++i) {
                auto& a = *fleet[i];
                if (a.submitted >= std::uint64_t(o.windows)) continue;
                more = true;
                if (a.store.pending.size() < std::size_t(o.depth))
                    submit(a, templates, a.submitted + i, sim0 + window_length * a.submitted);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    const auto give_up = steady::now() + std::chrono::seconds(120);
    while (!observe(fleet, r) && steady::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
}

void summarize(const options& o, std::vector<std::unique_ptr<sim_agent>>& fleet, run_result& r) {
    std::vector<double> lags, first, last;
    steady::time_point lo = steady::time_point::max(), hi = steady::time_point::min();
    for (auto& a : fleet)
        for (std::size_t k = 0; k < a->store.at.size(); ++k) {
            lo = std::min(lo, a->store.at[k]);
            hi = std::max(hi, a->store.at[k]);
        }
    const auto third = (hi - lo) / 3;
    for (auto& a : fleet) {
        const auto& s = a->writer->stats();
        r.rows += s.rows_written[0].load();
        r.windows += s.batches_written.load();
        r.submitted += a->submitted;
        r.dropped += s.queue_dropped_batches.load() + s.rejected_batches.load() +
                     s.spool_failed_batches.load();
        for (const auto& f : a->fanout.stats()) r.dropped += f.dropped + f.failed;
        for (std::size_t k = 0; k < a->store.lags.size(); ++k) {
            lags.push_back(a->store.lags[k]);
            if (a->store.at[k] <= lo + third) first.push_back(a->store.lags[k]);
            if (a->store.at[k] >= hi - third) last.push_back(a->store.lags[k]);
        }
    }
    r.store_seconds = std::chrono::duration<double>(hi - r.t0).count();
    r.rows_per_s = double(r.rows) / r.store_seconds;
    r.offered_rows_per_s = double(o.agents) * double(o.series) / 10.0;
    r.lag_p50 = percentile(lags, 0.5);
    r.lag_p99 = percentile(lags, 0.99);
    r.lag_max = percentile(lags, 1.0);
    r.lag_first_third_max = percentile(first, 1.0);
    r.lag_last_third_max = percentile(last, 1.0);
#ifdef PLUGMON_FLEET_REMOTE_WRITE
    std::vector<double> rw;
    for (auto& a : fleet) {
        if (!a->remote) continue;
        r.rw = true;
        const auto& c = a->remote->stats();
        r.rw_samples += double(c.sent.load());
        r.rw_dropped += c.dropped.load();
        r.rw_retried += c.retried.load();
        r.rw_windows += c.windows_sent.load();
        r.rw_offered += double(c.sent.load());
        rw.insert(rw.end(), a->remote_lag.lags.begin(), a->remote_lag.lags.end());
        for (const auto& t : a->remote_lag.at)
            r.rw_seconds = std::max(r.rw_seconds, std::chrono::duration<double>(t - r.t0).count());
    }
    if (r.rw_windows > 0) r.rw_offered = r.rw_offered / double(r.rw_windows) * o.agents / 10.0;
    if (r.rw_seconds > 0) r.rw_samples /= r.rw_seconds;
    r.rw_lag_p50 = percentile(rw, 0.5);
    r.rw_lag_p99 = percentile(rw, 0.99);
    r.rw_lag_max = percentile(rw, 1.0);
#endif
}

run_result run_fleet(const options& o, const std::vector<pa::window_batch>& templates) {
    std::vector<std::unique_ptr<sim_agent>> fleet;
    for (int i = 0; i < o.agents; ++i) fleet.push_back(make_agent(o, i));
    for (auto& a : fleet) {
        a->writer->start();
#ifdef PLUGMON_FLEET_REMOTE_WRITE
        if (a->remote) a->remote->start();
#endif
        a->fanout.start();
    }
    // Connected (migrations and partitions done) before the clock starts.
    const auto give_up = steady::now() + std::chrono::seconds(120);
    for (auto& a : fleet)
        while (a->writer->state() != "connected") {
            if (steady::now() > give_up)
                throw std::runtime_error(a->host +
                                         " could not connect: " + a->writer->status().dump());
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    run_result r;
    const double pg0 = tree_cpu_seconds(o.pg_pid), self0 = plugmon::bench::own_cpu_seconds(),
                 prom0 = tree_cpu_seconds(o.prom_pid);
    drive(o, fleet, templates, r);
    r.pg_cpu = tree_cpu_seconds(o.pg_pid) - pg0;
    r.self_cpu = plugmon::bench::own_cpu_seconds() - self0;
    r.prom_cpu = tree_cpu_seconds(o.prom_pid) - prom0;
    summarize(o, fleet, r);
    for (auto& a : fleet) {
        a->fanout.stop(std::chrono::seconds(30));
        a->writer->stop(std::chrono::seconds(30));
#ifdef PLUGMON_FLEET_REMOTE_WRITE
        if (a->remote) a->remote->stop(std::chrono::seconds(30));
#endif
    }
    return r;
}

/// Bytes on disk (heap, indexes, TOAST) of every partition of `parent`, and its row count.
std::pair<double, double> table_bytes_rows(pqxx::connection& c, const std::string& parent) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec1(
        "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::float8 FROM "
        "pg_partition_tree('" +
        parent + "'::regclass)");
    const auto n = tx.exec1("SELECT count(*)::float8 FROM " + parent);
    return {r[0].as<double>(), n[0].as<double>()};
}

}  // namespace

namespace {

std::string hex_of(const std::string& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char ch : bytes) {
        out += digits[static_cast<unsigned char>(ch) >> 4];
        out += digits[static_cast<unsigned char>(ch) & 15];
    }
    return out;
}

/// One hour of each of `series` series as plugmon.maintain() would leave it: the merge of 360
/// windows of about `calls` calls each, drawn from the same distribution as the windows. To keep
/// the set-up short, 1 000 distinct hourly sketches are drawn and reused across the series (the
/// merge cost depends on a sketch's size, not on its being unique).
void load_hour_template(pqxx::connection& c, std::size_t series, std::uint64_t calls) {
    pqxx::nontransaction tx(c);
    tx.exec("DROP TABLE IF EXISTS fleet_hour_template");
    tx.exec(
        "CREATE UNLOGGED TABLE fleet_hour_template AS SELECT plugin, op, tbl, tenant, calls, "
        "errors, rows, total_ns, min_ns, max_ns, p50_ns, p95_ns, p99_ns, sketch FROM "
        "plugmon.query_rollups_1h WITH NO DATA");
    // The windows' distribution, drawn by inverse transform from 2^20 precomputed quantiles (a
    // hundred times cheaper than the distribution object for the 4e8 draws of 10 000 series).
    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> table(std::size_t{1} << 20);
    {
        std::lognormal_distribution<double> latency(std::log(2e6), 1.0);
        for (auto& v : table) v = std::uint64_t(latency(rng));
        std::sort(table.begin(), table.end());
    }
    std::vector<pa::query_rollup> distinct(std::min<std::size_t>(series, 1000));
    for (auto& q : distinct) {
        pa::dd_sketch s;
        for (std::uint64_t k = 0; k < calls; ++k) s.add(table[rng() >> 44]);
        pa::fill_durations(q, s);
    }
    std::string sql;
    for (std::size_t i = 0; i < series; ++i) {
        const pa::query_rollup& q = distinct[i % distinct.size()];
        sql += (sql.empty() ? "INSERT INTO fleet_hour_template VALUES (" : ", (") +
               tx.quote("plugin-" + std::to_string(i % 20)) + ", " +
               tx.quote(i % 4 == 0   ? "SELECT"
                        : i % 4 == 1 ? "INSERT"
                        : i % 4 == 2 ? "UPDATE"
                                     : "DELETE") +
               ", " + tx.quote("table-" + std::to_string((i / 20) % 25)) + ", " +
               tx.quote("tenant-" + std::to_string(i / 500)) + ", " + std::to_string(q.calls) +
               ", " + std::to_string(q.calls / 50) + ", " + std::to_string(q.calls * 3) + ", " +
               std::to_string(q.total_ns) + ", " + std::to_string(q.min_ns) + ", " +
               std::to_string(q.max_ns) + ", " + std::to_string(q.p50_ns) + ", " +
               std::to_string(q.p95_ns) + ", " + std::to_string(q.p99_ns) + ", decode('" +
               hex_of(q.sketch) + "', 'hex'))";
        if ((i + 1) % 200 == 0 || i + 1 == series) {
            tx.exec(sql);
            sql.clear();
        }
    }
}

/// Median seconds of `reps` runs of `sql` (the first, cold, run included in the list printed).
double time_query(pqxx::connection& c, const std::string& sql, int reps, std::size_t& groups) {
    std::vector<double> t;
    for (int k = 0; k < reps; ++k) {
        pqxx::nontransaction tx(c);
        const auto t0 = steady::now();
        const auto r = tx.exec(sql);
        t.push_back(std::chrono::duration<double>(steady::now() - t0).count());
        groups = r.size();
        std::printf("    run %d: %.3f s (%zu groups)\n", k + 1, t.back(), groups);
    }
    return percentile(t, 0.5);
}

std::string fleet_p99_sql(const std::string& table, const std::string& where) {
    return "SELECT plugin, plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) FROM " +
           table + " WHERE " + where + " GROUP BY plugin";
}

bool parallel_plan(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction tx(c);
    std::string plan;
    for (const auto& r : tx.exec("EXPLAIN " + sql)) plan += r[0].as<std::string>() + "\n";
    return plan.find("Gather") != std::string::npos;
}

/// A day of hourly rows for `hosts` hosts (the template, stamped 24 times per host) ten days
/// back, then the fleet-wide p99 over that day; and the same query over the raw rows of the run.
void day_query(const options& o, pqxx::connection& c, std::uint64_t mean_calls) {
    const int hosts = o.day_hosts < 0 ? o.agents : o.day_hosts;
    if (hosts == 0) return;
    const auto t0 = steady::now();
    load_hour_template(c, o.series, 360 * mean_calls);
    std::printf("hourly template: %zu sketches of %llu values in %.1f s\n", o.series,
                (unsigned long long)(360 * mean_calls),
                std::chrono::duration<double>(steady::now() - t0).count());
    const std::string day = "(date_trunc('day', now(), 'UTC') - interval '10 days')";
    {
        pqxx::nontransaction tx(c);
        tx.exec("SELECT plugmon.ensure_partitions(" + day + ", " + day + " + interval '1 day')");
        tx.exec("INSERT INTO plugmon.query_rollups_1h SELECT " + day +
                " + h * interval '1 hour', 3600, 'sim-host-' || n, t.* FROM fleet_hour_template "
                "AS t, generate_series(0, " +
                std::to_string(hosts - 1) + ") AS n, generate_series(0, 23) AS h");
        tx.exec("VACUUM ANALYZE plugmon.query_rollups_1h");
        tx.exec("VACUUM ANALYZE plugmon.query_rollups");
    }
    const auto [hbytes, hrows] = table_bytes_rows(c, "plugmon.query_rollups_1h");
    std::printf(
        "hourly day: %.0f rows for %d hosts (%.0f s to generate), %.0f bytes per row on disk\n",
        hrows, hosts, std::chrono::duration<double>(steady::now() - t0).count(), hbytes / hrows);
    const std::string q = fleet_p99_sql(
        "plugmon.query_rollups_1h",
        "bucket_start >= " + day + " AND bucket_start < " + day + " + interval '1 day'");
    std::size_t groups = 0;
    std::printf("  fleet-wide p99 over the hourly day (parallel plan: %s):\n",
                parallel_plan(c, q) ? "yes" : "no");
    const double secs = time_query(c, q, o.query_reps, groups);
    std::printf("  median %.3f s for %.0f rows = %.2f us per row\n", secs, hrows,
                1e6 * secs / hrows);

    const auto [rbytes, rrows] = table_bytes_rows(c, "plugmon.query_rollups");
    const std::string raw =
        fleet_p99_sql("plugmon.query_rollups", "bucket_start >= now() - interval '1 day'");
    std::printf("  fleet-wide p99 over the raw rows of the run (parallel plan: %s):\n",
                parallel_plan(c, raw) ? "yes" : "no");
    const double rsecs = time_query(c, raw, o.query_reps, groups);
    const double raw_day_rows = double(hosts) * double(o.series) * 8640.0;
    std::printf(
        "  median %.3f s for %.0f rows = %.2f us per row; a raw day of %d hosts (%.3g rows) "
        "extrapolated linearly: %.0f s\n",
        rsecs, rrows, 1e6 * rsecs / rrows, hosts, raw_day_rows, rsecs / rrows * raw_day_rows);
    std::printf(
        "RESULT_DAY {\"hosts\":%d,\"hourly_rows\":%.0f,\"hourly_bytes_per_row\":%.1f,"
        "\"hourly_query_s\":%.3f,\"raw_rows\":%.0f,\"raw_query_s\":%.3f,"
        "\"raw_day_extrapolated_s\":%.1f}\n",
        hosts, hrows, hbytes / hrows, secs, rrows, rsecs, rsecs / rrows * raw_day_rows);
    (void)rbytes;
}

long long wal_lsn(pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0].as<long long>();
}

std::string backend(pqxx::connection& c, const std::string& wanted) {
    pqxx::nontransaction tx(c);
    if (tx.exec1("SELECT to_regproc('plugmon.sketch_backend') IS NULL")[0].as<bool>())
        return "plpgsql (no sketch_backend())";
    const auto r = wanted.empty() ? tx.exec1("SELECT plugmon.sketch_backend()")
                                  : tx.exec_params1("SELECT plugmon.sketch_backend($1)", wanted);
    return r[0].is_null() ? "?" : r[0].as<std::string>();
}

void print_run(const options& o, const run_result& r, double wal_bytes, double bytes, double rows,
               std::size_t sketch_bytes) {
    const double per_row = bytes / rows;
    const double rows_day = double(o.agents) * double(o.series) * 8640.0;
    std::printf("\n%s, %d agents x %zu series, 10 s windows (mean sketch %zu B):\n", o.mode.c_str(),
                o.agents, o.series, sketch_bytes);
    std::printf(
        "  written: %llu windows, %llu rows in %.1f s = %.0f rows/s (offered at 10 s "
        "windows: %.0f rows/s); failures %llu, dropped %llu\n",
        (unsigned long long)r.windows, (unsigned long long)r.rows, r.store_seconds, r.rows_per_s,
        r.offered_rows_per_s, (unsigned long long)r.failures, (unsigned long long)r.dropped);
    std::printf(
        "  store lag (submit -> commit): p50 %.2f s, p99 %.2f s, max %.2f s; max in the "
        "first third %.2f s, last third %.2f s\n",
        r.lag_p50, r.lag_p99, r.lag_max, r.lag_first_third_max, r.lag_last_third_max);
    std::printf(
        "  CPU over the %.1f s run: PostgreSQL %.2f cores (%.1f us per row), this process "
        "(writers, sinks, window copies) %.2f cores (%.1f us per row), Prometheus %.2f "
        "cores (%.2f us per sample)\n",
        r.seconds, r.pg_cpu / r.seconds, 1e6 * r.pg_cpu / double(r.rows), r.self_cpu / r.seconds,
        1e6 * r.self_cpu / double(r.rows), r.prom_cpu / r.seconds,
        r.rw_samples > 0 ? 1e6 * r.prom_cpu / (r.rw_samples * r.rw_seconds) : 0.0);
    std::printf(
        "  storage: %.0f bytes per raw row on disk (heap+index+TOAST), WAL %.0f bytes per "
        "row; a day of %d hosts at 10 s: %.3g rows, %.1f GB\n",
        per_row, wal_bytes / double(r.rows), o.agents, rows_day, rows_day * per_row / 1e9);
    if (r.rw)
        std::printf(
            "  remote write: %llu of %llu windows delivered, %.0f samples/s (offered at 10 s "
            "windows: %.0f samples/s), lag (submit -> 2xx) p50 %.2f s, p99 %.2f s, max %.2f s; "
            "retried %llu, dropped %llu samples\n",
            (unsigned long long)r.rw_windows, (unsigned long long)r.submitted, r.rw_samples,
            r.rw_offered, r.rw_lag_p50, r.rw_lag_p99, r.rw_lag_max,
            (unsigned long long)r.rw_retried, (unsigned long long)r.rw_dropped);
    std::printf(
        "RESULT_RUN {\"mode\":\"%s\",\"agents\":%d,\"rows_per_s\":%.0f,\"offered_rows_per_s\":%.0f,"
        "\"lag_p50\":%.3f,\"lag_p99\":%.3f,\"lag_max\":%.3f,\"pg_cores\":%.3f,\"writer_cores\":%."
        "3f,"
        "\"prom_cores\":%.3f,\"bytes_per_row\":%.1f,\"wal_per_row\":%.1f,\"rw_samples_per_s\":%.0f,"
        "\"rw_lag_p99\":%.3f,\"failures\":%llu,\"dropped\":%llu,\"pg_cpu_us_per_row\":%.2f,"
        "\"prom_cpu_us_per_sample\":%.3f}\n",
        o.mode.c_str(), o.agents, r.rows_per_s, r.offered_rows_per_s, r.lag_p50, r.lag_p99,
        r.lag_max, r.pg_cpu / r.seconds, r.self_cpu / r.seconds, r.prom_cpu / r.seconds, per_row,
        wal_bytes / double(r.rows), r.rw_samples, r.rw_lag_p99, (unsigned long long)r.failures,
        (unsigned long long)r.dropped, 1e6 * r.pg_cpu / double(r.rows),
        r.rw_samples > 0 ? 1e6 * r.prom_cpu / (r.rw_samples * r.rw_seconds) : 0.0);
}

options parse(int argc, char** argv) {
    options o;
    CLI::App app{"fleet_sim: N simulated agents into one PostgreSQL (and one Prometheus)"};
    app.add_option("--agents", o.agents, "simulated agents (distinct hosts)")
        ->check(CLI::Range(1, 500));
    app.add_option("--mode", o.mode, "realtime or compressed")
        ->check(CLI::IsMember({"realtime", "compressed"}));
    app.add_option("--duration", o.duration_s, "realtime: seconds of windows")
        ->check(CLI::Range(10.0, 3600.0));
    app.add_option("--windows", o.windows, "compressed: windows per agent")
        ->check(CLI::Range(1, 100000));
    app.add_option("--depth", o.depth, "compressed: windows outstanding per agent")
        ->check(CLI::Range(1, 64));
    app.add_option("--series", o.series, "query series per agent")->check(CLI::Range(1, 1000000));
    app.add_option("--pg-url", o.pg_url, "PostgreSQL URL (default: a private server for the run)");
    app.add_option("--pg-pid", o.pg_pid, "postmaster pid, for its CPU time");
    app.add_option("--remote-write", o.remote_write, "remote-write URL, one sink per agent");
    app.add_option("--prom-pid", o.prom_pid, "Prometheus pid, for its CPU time");
    app.add_option("--rw-schema", o.rw_schema, "native histogram schema (default: the sink's)")
        ->check(CLI::Range(-4, 8));
    app.add_option("--work-dir", o.work_dir, "spools (default: a temporary directory)");
    app.add_option("--day-hosts", o.day_hosts,
                   "hosts of the generated hourly day (0: no day query)");
    app.add_option("--query-reps", o.query_reps, "runs of each fleet-wide query")
        ->check(CLI::Range(1, 20));
    app.add_option("--sketch-backend", o.sketch_backend,
                   "plugmon.sketch_backend(...) to select first");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        std::exit(app.exit(e) == 0 ? 0 : 2);
    }
    return o;
}

int postmaster_pid(const std::string& pg_dir) {
    std::ifstream in(pg_dir + "/data/postmaster.pid");
    int pid = 0;
    in >> pid;
    return pid;
}

}  // namespace

int main(int argc, char** argv) {
    options o = parse(argc, argv);
#ifndef PLUGMON_FLEET_REMOTE_WRITE
    if (!o.remote_write.empty()) {
        std::fprintf(stderr, "fleet_sim: built without the remote-write sink\n");
        return 2;
    }
#endif
    std::unique_ptr<plugmon::test::pg_server> pg;
    if (o.pg_url.empty()) {
        pg = std::make_unique<plugmon::test::pg_server>();
        o.pg_url = pg->url();
        // deploy/pg-private.sh allows 40 connections: one per agent, and room for the rest.
        if (o.agents + 10 > 40) {
            {
                pqxx::connection admin(o.pg_url);
                pqxx::nontransaction tx(admin);
                tx.exec("ALTER SYSTEM SET max_connections = " + std::to_string(o.agents + 20));
            }
            pg->stop();
            pg->restart();
        }
        o.pg_pid = postmaster_pid(pg->dir());
    }
    const bool own_dir = o.work_dir.empty();
    if (own_dir)
        o.work_dir = fs::temp_directory_path() / ("plugmon-fleet-" + std::to_string(::getpid()));
    pqxx::connection c(o.pg_url);
    pa::store::migrate(c, false, "fleet_sim");
    std::printf("fleet_sim: sketch backend %s\n", backend(c, o.sketch_backend).c_str());

    std::mt19937_64 rng(42);
    std::vector<pa::window_batch> templates;
    for (int k = 0; k < o.templates; ++k)
        templates.push_back(
            plugmon::bench::make_rollup_window(o.series, rng, o.min_calls, o.max_calls));
    std::size_t sketch_bytes = 0;
    for (const auto& q : templates[0].queries) sketch_bytes += q.sketch.size();
    sketch_bytes /= o.series;

    const long long wal0 = wal_lsn(c);
    const run_result r = run_fleet(o, templates);
    const double wal_bytes = double(wal_lsn(c) - wal0);
    const auto [bytes, rows] = table_bytes_rows(c, "plugmon.query_rollups");
    print_run(o, r, wal_bytes, bytes, rows, sketch_bytes);
    day_query(o, c, (o.min_calls + o.max_calls) / 2);
    if (own_dir) fs::remove_all(o.work_dir);
    return r.failures == 0 && r.dropped == 0 && r.windows == r.submitted ? 0 : 1;
}
