// sketch_ext_bench: sketch_merge + sketch_quantile over N typical rollup sketches on a private
// PostgreSQL 15, the C extension plugmon_sketch against the PL/pgSQL fallback, in one run.
//
//   sketch_ext_bench [sketches=10000] [runs=5] [calls=200]
//
// Each sketch holds about `calls` lognormal latencies (median ~1 ms, sigma 1.2; calls drawn
// uniformly in [calls/2, 3 calls/2]), encoded as version 2 (and, for comparison, version 1). Every
// query runs once to warm up, then `runs` times; the table shows medians and the ratio to the C
// serial plan. Every answer is checked against the agent's dd_sketch. Needs the extension
// installed in the server (cmake --build <dir> --target plugmon_sketch_extension_install).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "../tests/support/pg_server.hpp"
#include "aggregate/sketch.hpp"
#include "store/schema/migrations.hpp"

namespace {

using plugmon::agent::dd_sketch;

std::string hex(const std::string& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char ch : bytes) {
        out += digits[static_cast<unsigned char>(ch) >> 4];
        out += digits[static_cast<unsigned char>(ch) & 15];
    }
    return out;
}

/// Loads the sketches into table `name`, encoded as `version`.
void load(pqxx::connection& c, const std::string& name, const std::vector<dd_sketch>& sketches,
          std::uint8_t version) {
    pqxx::work tx(c);
    tx.exec("CREATE TABLE " + name + " (id integer PRIMARY KEY, s bytea NOT NULL)");
    for (std::size_t at = 0; at < sketches.size(); at += 500) {
        std::string sql = "INSERT INTO " + name + " VALUES ";
        for (std::size_t k = at; k < std::min(sketches.size(), at + 500); ++k)
            sql += (k == at ? "(" : ", (") + std::to_string(k) + ", decode('" +
                   hex(sketches[k].encode(version)) + "', 'hex'))";
        tx.exec(sql);
    }
    tx.commit();
    pqxx::nontransaction(c).exec("VACUUM ANALYZE " + name);  // all-visible: as a settled partition
}

/// One query of the table: how it is run, and its times.
struct variant {
    std::string label, setup, sql;
    std::vector<double> ms;
};

/// Runs `v` once; exits when the answer is not `expected`; returns the time in ms.
double run_once(pqxx::connection& c, const variant& v, long long expected) {
    pqxx::nontransaction tx(c);
    tx.exec(v.setup);
    const auto t0 = std::chrono::steady_clock::now();
    const long long got = tx.exec1(v.sql)[0].as<long long>();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (got != expected) {
        std::fprintf(stderr, "sketch_ext_bench: %s answered %lld, the agent %lld\n",
                     v.label.c_str(), got, expected);
        std::exit(1);
    }
    return ms;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 10000;
    const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
    const int calls = argc > 3 ? std::atoi(argv[3]) : 200;
    if (n < 1 || runs < 1 || calls < 2) {
        std::fprintf(stderr, "usage: sketch_ext_bench [sketches >= 1] [runs >= 1] [calls >= 2]\n");
        return 2;
    }
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> latency(13.8, 1.2);
    std::uniform_int_distribution<int> per_sketch(calls / 2, calls + calls / 2);
    std::vector<dd_sketch> sketches(static_cast<std::size_t>(n));
    dd_sketch all;
    std::size_t v1_bytes = 0, v2_bytes = 0, bins = 0;
    for (auto& s : sketches) {
        for (int k = per_sketch(rng); k > 0; --k) s.add(static_cast<std::uint64_t>(latency(rng)));
        all.merge(s);
        v1_bytes += s.encode(1).size();
        v2_bytes += s.encode(2).size();
        bins += (s.encode(1).size() - dd_sketch::header_bytes) / dd_sketch::bin_record_bytes;
    }
    const long long p99 = static_cast<long long>(all.quantile(0.99));

    plugmon::test::pg_server pg;
    pqxx::connection c(pg.create_database("bench"));
    plugmon::agent::store::migrate(c, false, "bench");
    {
        pqxx::nontransaction tx(c);
        if (tx.exec1("SELECT plugmon.sketch_backend('auto')")[0].as<std::string>() != "c") {
            std::fprintf(stderr,
                         "sketch_ext_bench: plugmon_sketch is not installed in the server "
                         "(build the target plugmon_sketch_extension_install)\n");
            return 1;
        }
    }
    pqxx::connection loader(pg.url_of("bench"));
    load(loader, "t2", sketches, 2);
    load(loader, "t1", sketches, 1);

    const std::string serial = "SET max_parallel_workers_per_gather = 0";
    const std::string parallel =
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET "
        "min_parallel_table_scan_size = 0; "
        "SET max_parallel_workers_per_gather = 2";
    const std::string c_q =
        "SELECT plugmon_sketch.sketch_quantile(plugmon_sketch.sketch_merge(s), 0.99) FROM ";
    const std::string pl_q =
        "SELECT plugmon.sketch_quantile_plpgsql(plugmon.sketch_merge_plpgsql(s), 0.99) FROM ";
    const std::string pub_q = "SELECT plugmon.sketch_quantile(plugmon.sketch_merge(s), 0.99) FROM ";
    // Migration 2's PL/pgSQL (encoding 1 only), as it was before migration 6, in a schema of its
    // own: the fallback's cost before and after, measured in the same run.
    {
        std::string v0002 = plugmon::agent::store::embedded_migrations().at(1).sql;
        for (std::size_t at = 0; (at = v0002.find("plugmon.", at)) != std::string::npos; at += 13)
            v0002.replace(at, 8, "plugmon_0002.");
        pqxx::work tx(c);
        tx.exec("CREATE SCHEMA plugmon_0002");
        tx.exec(v0002);
        tx.commit();
    }
    const std::string v0002_q =
        "SELECT plugmon_0002.sketch_quantile(plugmon_0002.sketch_merge(s), 0.99) FROM ";
    std::vector<variant> rows = {
        {"C, encoding 2, serial", serial, c_q + "t2", {}},
        {"C, encoding 2, parallel plan (2 workers)", parallel, c_q + "t2", {}},
        {"public names (routed to C), encoding 2", serial, pub_q + "t2", {}},
        {"C, encoding 1, serial", serial, c_q + "t1", {}},
        {"PL/pgSQL (0006), encoding 2, serial", serial, pl_q + "t2", {}},
        {"PL/pgSQL (0006), encoding 1, serial", serial, pl_q + "t1", {}},
        {"PL/pgSQL before 0006 (0002), encoding 1, serial", serial, v0002_q + "t1", {}},
    };
    // A warm-up round, then `runs` rounds of every query in turn: drift on a shared machine hits
    // every row alike.
    for (int round = 0; round <= runs; ++round)
        for (auto& v : rows) {
            const double ms = run_once(c, v, p99);
            if (round > 0) v.ms.push_back(ms);
        }

    std::printf(
        "sketch_ext_bench: %d sketches, %.0f calls and %.1f bins each on average; %.0f bytes "
        "(encoding 2) / %.0f bytes (encoding 1) each; median of %d rounds\n",
        n, double(all.count()) / n, double(bins) / n, double(v2_bytes) / n, double(v1_bytes) / n,
        runs);
    std::printf(
        "| query: sketch_quantile(sketch_merge(s), 0.99) | median ms | vs C serial "
        "|\n|---|---:|---:|\n");
    for (const auto& r : rows)
        std::printf("| %s | %.1f | %.2fx |\n", r.label.c_str(), median(r.ms),
                    median(r.ms) / median(rows[0].ms));
    return 0;
}
