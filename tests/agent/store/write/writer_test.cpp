// The store writer in this process, on a real PostgreSQL 15: the merge of two batches of the same
// window, the ledger refusing a replay, and an outage ridden out in the spool. In one process so
// that the sanitizer builds see the spooler and writer threads.
#include "aggregate/series.hpp"
#include "store/write/writer.hpp"

#include "support/pg_server.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

namespace pa = plugmon::agent;
namespace ps = plugmon::agent::store;
using namespace std::chrono_literals;

namespace {

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return pred();
}

struct scratch {
    std::filesystem::path dir;
    scratch() {
        char tmpl[] = "/tmp/plugmon-writer-test.XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    ~scratch() { std::filesystem::remove_all(dir); }
};

ps::writer_options options(const std::string& url, const std::filesystem::path& spool, const std::string& host) {
    ps::writer_options o;
    o.conninfo = url;
    o.host = host;
    o.agent_version = "test";
    o.spooling.dir = spool.string();
    o.backoff_initial = 50ms;
    o.backoff_max = 300ms;
    return o;
}

/// One query series' window with `n` lognormal durations; `sketch` receives the values.
pa::query_rollup rollup(const std::string& plugin, int n, std::uint64_t seed, pa::dd_sketch& sketch) {
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> d(std::log(3e6), 0.8);
    pa::dd_sketch s;
    pa::query_rollup q;
    for (int i = 0; i < n; ++i) s.add(std::uint64_t(d(rng)));
    q.plugin = plugin;
    q.op = "SELECT";
    q.table = "orders";
    q.tenant = "acme";
    fill_durations(q, s);
    q.errors = 1;
    q.rows = 7;
    sketch.merge(s);
    return q;
}

pa::window_batch window(std::chrono::system_clock::time_point start, std::vector<pa::query_rollup> q) {
    pa::window_batch w;
    w.bucket_start = start;
    w.length = 10s;
    w.queries = std::move(q);
    w.executions.push_back({"billing", "acme", 3, 0, 9'000'000, 4'000'000});
    return w;
}

std::chrono::system_clock::time_point bucket() {
    return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) - 30s;
}

}  // namespace

TEST(writer, two_batches_of_the_same_window_add_into_one_row_and_merge_their_sketches) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("merge");
    scratch tmp;
    const auto at = bucket();
    pa::dd_sketch expected;
    // Two agent runs on one host wrote the same 10 s window (the agent restarted within it).
    for (int run = 0; run < 2; ++run) {
        ps::writer w(options(url, tmp.dir / ("spool" + std::to_string(run)), "host-a"));
        w.start();
        w.submit(window(at, {rollup("billing", 200 + run * 50, 7 + std::uint64_t(run), expected)}));
        ASSERT_TRUE(wait_until([&] { return w.stats().batches_written.load() == 1; }, 30s)) << w.status().dump();
        EXPECT_EQ(w.stats().merged_batches.load(), std::uint64_t(run));
        EXPECT_TRUE(w.stop(10s));
    }
    pqxx::connection c(url);
    pqxx::work tx(c);
    const auto r = tx.exec1(
        "SELECT count(*), sum(calls), sum(errors), sum(rows), min(min_ns), max(max_ns), max(p99_ns),"
        " encode((array_agg(sketch))[1], 'hex') FROM plugmon.query_rollups");
    EXPECT_EQ(r[0].as<int>(), 1);
    EXPECT_EQ(r[1].as<std::uint64_t>(), 450u);
    EXPECT_EQ(r[2].as<std::uint64_t>(), 2u);
    EXPECT_EQ(r[3].as<std::uint64_t>(), 14u);
    EXPECT_EQ(r[4].as<std::uint64_t>(), expected.min());
    EXPECT_EQ(r[5].as<std::uint64_t>(), expected.max());
    EXPECT_EQ(r[6].as<std::uint64_t>(), expected.quantile(0.99));
    const std::string hex = r[7].as<std::string>();
    std::string bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(char(std::stoi(hex.substr(i, 2), nullptr, 16)));
    EXPECT_EQ(pa::dd_sketch::decode(bytes), expected) << "the stored sketch is the merge of both";
    EXPECT_EQ(tx.exec1("SELECT sum(calls) FROM plugmon.execution_rollups")[0].as<int>(), 6);
}

TEST(writer, a_batch_replayed_from_the_spool_is_recognised_by_the_ledger) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("ledger");
    scratch tmp;
    pa::dd_sketch all;
    ps::batch b;
    b.host = "host-b";
    b.run_id = 42;
    b.seq = 1;
    b.window = window(bucket(), {rollup("search", 100, 3, all), rollup("billing", 80, 4, all)});
    {
        ps::spool s({(tmp.dir / "spool").string(), 1ull << 30, false});
        s.append(b);
        s.append(b);  // the same batch twice: a pop lost in a crash replays it
    }
    ps::writer w(options(url, tmp.dir / "spool", "host-b"));
    w.start();
    ASSERT_TRUE(wait_until([&] { return w.spooled().batches() == 0; }, 30s)) << w.status().dump();
    EXPECT_EQ(w.stats().batches_written.load(), 1u);
    EXPECT_EQ(w.stats().batches_duplicate.load(), 1u);
    EXPECT_EQ(w.stats().rows_duplicate[0].load(), 2u);
    EXPECT_TRUE(w.stop(10s));
    pqxx::connection c(url);
    pqxx::work tx(c);
    EXPECT_EQ(tx.exec1("SELECT sum(calls) FROM plugmon.query_rollups")[0].as<int>(), 180);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM plugmon.write_batches WHERE host = 'host-b' AND run_id = 42")[0].as<int>(),
              1);
}

TEST(writer, rides_out_a_database_outage_in_the_spool_with_the_breaker_open) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("outage_inproc");
    scratch tmp;
    ps::writer w(options(url, tmp.dir / "spool", "host-c"));
    w.start();
    ASSERT_TRUE(wait_until([&] { return w.state() == "connected"; }, 30s)) << w.status().dump();
    pg.stop("immediate");
    pa::dd_sketch all;
    const auto at = bucket();
    for (int i = 0; i < 6; ++i)
        w.submit(window(at - std::chrono::seconds(10 * i), {rollup("audit", 10 + i, std::uint64_t(i), all)}));
    EXPECT_TRUE(wait_until([&] { return w.state() == "circuit_open"; }, 30s)) << w.status().dump();
    EXPECT_EQ(w.spooled().batches(), 6u);
    std::string text;
    w.render_metrics(text);
    EXPECT_NE(text.find("plugmon_store_circuit_state{state=\"open\"} 1"), std::string::npos) << text;
    EXPECT_NE(text.find("plugmon_store_spool_batches 6"), std::string::npos) << text;
    pg.restart();
    ASSERT_TRUE(wait_until([&] { return w.spooled().batches() == 0; }, 60s)) << w.status().dump();
    EXPECT_EQ(w.state(), "connected");
    EXPECT_TRUE(w.stop(10s));
    pqxx::connection c(url);
    pqxx::work tx(c);
    EXPECT_EQ(tx.exec1("SELECT sum(calls) FROM plugmon.query_rollups")[0].as<std::uint64_t>(), all.count());
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM plugmon.write_batches")[0].as<int>(), 6);
}
