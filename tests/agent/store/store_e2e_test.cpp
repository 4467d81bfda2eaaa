// The store end to end, on a real PostgreSQL 15 server: load generator → agent → PostgreSQL, with
// the server crashed for 20 s, connections cut during COPY and COMMIT, and the agent SIGKILLed
// with batches in its spool. Every test ends with exact totals and no duplicate rows.
#include "support/harness.hpp"
#include "support/pg_server.hpp"
#include "fault_proxy.hpp"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <map>
#include <thread>

using namespace plugmon::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json store_status(const agent& a) {
    const auto body = http_get(a.port(), "/api/v1/store");
    return body ? json::parse(*body) : json();
}

std::uint64_t drained(const agent& a) { return std::uint64_t(a.scrape().sum("plugmon_agent_events_drained_total")); }

/// Every drained event is in a window handed to the store, and the spool is empty.
bool store_caught_up(const agent& a, std::uint64_t events) {
    const json s = store_status(a);
    return !s.is_null() && s["submitted"]["calls"].get<std::uint64_t>() == events &&
           s["spool"]["batches"].get<std::uint64_t>() == 0 &&
           s["written"]["batches"].get<std::uint64_t>() + s["written"]["duplicates"].get<std::uint64_t>() ==
               s["submitted"]["batches"].get<std::uint64_t>();
}

std::vector<std::string> agent_args(const std::string& url, const std::string& spool) {
    return {"--postgres", url, "--flush-interval", "1s", "--spool-dir", spool, "--postgres-backoff-max", "1s",
            "--exit-drain-timeout", "20s"};
}

struct db_figures {
    std::uint64_t rows = 0, distinct_keys = 0, calls = 0, batches = 0, distinct_batches = 0;
    std::map<std::string, std::uint64_t> calls_by_plugin;
};

db_figures read_db(const std::string& url) {
    pqxx::connection c(url);
    pqxx::work tx(c);
    db_figures f;
    const auto r = tx.exec1(
        "SELECT count(*), count(DISTINCT (bucket_start, host, plugin, op, tbl, tenant)), coalesce(sum(calls), 0) "
        "FROM plugmon.query_rollups");
    f.rows = r[0].as<std::uint64_t>();
    f.distinct_keys = r[1].as<std::uint64_t>();
    f.calls = r[2].as<std::uint64_t>();
    const auto b = tx.exec1("SELECT count(*), count(DISTINCT (host, run_id, seq)) FROM plugmon.write_batches");
    f.batches = b[0].as<std::uint64_t>();
    f.distinct_batches = b[1].as<std::uint64_t>();
    for (const auto& row : tx.exec("SELECT plugin, sum(calls) FROM plugmon.query_rollups GROUP BY plugin"))
        f.calls_by_plugin[row[0].as<std::string>()] = row[1].as<std::uint64_t>();
    return f;
}

/// `url` with its port replaced: the same database through the fault proxy.
std::string with_port(std::string url, int port) {
    const auto colon = url.rfind(':');
    url.replace(colon + 1, url.find('/', colon) - colon - 1, std::to_string(port));
    return url;
}

/// recorded - dropped over the load generator's children: what the agent must have aggregated.
std::uint64_t delivered(const loadgen_run& lg) {
    std::uint64_t n = 0;
    for (const auto& c : lg.children()) n += c["written"].get<std::uint64_t>();
    return n;
}

void print_figures(const char* what, std::uint64_t rows_expected, const db_figures& f, std::uint64_t calls_expected) {
    std::printf("[ figures  ] %s: rows expected %llu, found %llu, duplicates %llu; calls expected %llu, found %llu\n",
                what, (unsigned long long)rows_expected, (unsigned long long)f.rows,
                (unsigned long long)(f.rows - f.distinct_keys), (unsigned long long)calls_expected,
                (unsigned long long)f.calls);
}

}  // namespace

TEST(store, totals_in_postgres_equal_what_the_agent_counted_and_sql_p99_equals_the_agents) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("exact");
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log", agent_args(url, dir.path() + "/spool"));
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "2", "--threads", "1", "--events", "300000", "--plugins", "3", "--tenants", "3",
                    "--tables", "4", "--plugin-prefix", "exact-", "--query-ns", "20000", "--mix", "record",
                    "--error-ratio", "0.01", "--wait-attached", "10s"});
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    const std::uint64_t expected = delivered(lg);
    ASSERT_GT(expected, 0u);
    ASSERT_TRUE(wait_until([&] { return drained(a) == expected && store_caught_up(a, expected); }, 30s))
        << store_status(a).dump();
    const metrics m = a.scrape();
    const json status = store_status(a);
    const json plugin0 = json::parse(http_get(a.port(), "/api/v1/plugins/exact-0").value_or("{}"));
    ASSERT_EQ(a.stop(), 0);

    const db_figures f = read_db(url);
    print_figures("exact totals", status["written"]["rows"]["query_rollups"].get<std::uint64_t>(), f, expected);
    EXPECT_EQ(f.calls, expected) << "sum(calls) = recorded - dropped";
    EXPECT_EQ(f.rows, f.distinct_keys);
    EXPECT_EQ(f.rows, status["written"]["rows"]["query_rollups"].get<std::uint64_t>());
    EXPECT_EQ(f.batches, f.distinct_batches);
    ASSERT_EQ(f.calls_by_plugin.size(), 3u);  // both processes host exact-0..exact-2
    for (const auto& [plugin, calls] : f.calls_by_plugin)
        EXPECT_EQ(calls, std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}}))) << plugin;

    // The SQL merge of every window's sketch equals the agent's own since-start merge.
    pqxx::connection c(url);
    pqxx::work tx(c);
    const auto q = tx.exec1(
        "SELECT plugmon.sketch_quantile(s, 0.5), plugmon.sketch_quantile(s, 0.95), plugmon.sketch_quantile(s, 0.99),"
        " plugmon.sketch_count(s) FROM (SELECT plugmon.sketch_merge(sketch) AS s FROM plugmon.query_rollups"
        " WHERE plugin = 'exact-0') AS merged");
    const json& since = plugin0["since_start"];
    EXPECT_EQ(q[3].as<std::uint64_t>(), since["calls"].get<std::uint64_t>());
    EXPECT_EQ(q[0].as<std::uint64_t>(), std::uint64_t(std::llround(since["p50_seconds"].get<double>() * 1e9))) << since.dump();
    EXPECT_EQ(q[1].as<std::uint64_t>(), std::uint64_t(std::llround(since["p95_seconds"].get<double>() * 1e9))) << since.dump();
    EXPECT_EQ(q[2].as<std::uint64_t>(), std::uint64_t(std::llround(since["p99_seconds"].get<double>() * 1e9))) << since.dump();

    // The password never reaches the log.
    const std::string log = read_file(dir.path() + "/agent.log") + read_file(dir.path() + "/agent.log.err");
    const std::string password = url.substr(url.find(':', 13) + 1, url.find('@') - url.find(':', 13) - 1);
    ASSERT_FALSE(password.empty());
    EXPECT_EQ(log.find(password), std::string::npos);
    EXPECT_NE(log.find("***"), std::string::npos);
}

namespace {

/// Runs a steady load through an agent writing to `url`, calls `disturb` once the store has
/// written a few batches, and checks that PostgreSQL ends up with exactly what the agent counted.
/// Returns the agent's final /api/v1/store.
json run_disturbed(const std::string& url, const std::string& agent_url, const char* name,
                   const std::function<void(agent&)>& disturb, const std::string& duration) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log", agent_args(agent_url, dir.path() + "/spool"));
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "2", "--threads", "1", "--duration", duration, "--rate", "20000", "--plugins",
                    "2", "--tenants", "4", "--tables", "3", "--plugin-prefix", std::string(name) + "-",
                    "--query-ns", "50000", "--mix", "record", "--wait-attached", "10s"});
    EXPECT_TRUE(wait_until([&] { return store_status(a)["written"]["batches"].get<std::uint64_t>() >= 2; }, 30s))
        << store_status(a).dump();
    disturb(a);
    EXPECT_EQ(lg.finish(), 0) << lg.log();
    const std::uint64_t expected = delivered(lg);
    EXPECT_TRUE(wait_until([&] { return drained(a) == expected && store_caught_up(a, expected); }, 90s))
        << store_status(a).dump();
    const json status = store_status(a);
    EXPECT_EQ(a.stop(), 0);

    const db_figures f = read_db(url);
    print_figures(name,
                  status["written"]["rows"]["query_rollups"].get<std::uint64_t>() +
                      status["written"]["duplicate_rows"]["query_rollups"].get<std::uint64_t>(),
                  f, expected);
    EXPECT_EQ(f.calls, expected);
    EXPECT_EQ(f.rows, f.distinct_keys);
    // What the agent committed, plus the batches it found committed already (an in-doubt commit).
    EXPECT_EQ(f.rows, status["written"]["rows"]["query_rollups"].get<std::uint64_t>() +
                          status["written"]["duplicate_rows"]["query_rollups"].get<std::uint64_t>());
    EXPECT_EQ(f.batches, status["written"]["batches"].get<std::uint64_t>() +
                             status["written"]["duplicates"].get<std::uint64_t>());
    EXPECT_EQ(status["dropped"]["rejected"]["batches"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(status["spool"]["dropped"]["full"]["batches"].get<std::uint64_t>(), 0u);
    return status;
}

}  // namespace

TEST(store, postgres_crashed_for_20s_mid_run_loses_and_duplicates_nothing) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("outage");
    bool saw_open = false, saw_spooled = false;
    const json status = run_disturbed(
        url, url, "outage",
        [&](agent& a) {
            pg.stop("immediate");  // a crash: no shutdown checkpoint, connections dropped
            const auto until = std::chrono::steady_clock::now() + 21s;
            while (std::chrono::steady_clock::now() < until) {
                const metrics m = a.scrape();
                saw_open |= m.sum("plugmon_store_circuit_state", {{"state", "open"}}) == 1;
                saw_spooled |= m.sum("plugmon_store_spool_batches") >= 5;
                std::this_thread::sleep_for(500ms);
            }
            pg.restart();
        },
        "30s");
    EXPECT_TRUE(saw_open) << "the circuit breaker must open during the outage";
    EXPECT_TRUE(saw_spooled) << "windows must wait in the spool during the outage";
    EXPECT_GE(status["failures"].get<std::uint64_t>(), 3u);
}

TEST(store, connection_cut_during_copy_is_retried_without_loss) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("cutcopy");
    fault_proxy proxy(pg.port());
    const std::string via = with_port(url, proxy.port());
    const json status = run_disturbed(
        url, via, "cutcopy",
        [&](agent&) {
            proxy.arm(fault_proxy::fault::cut_during_copy);
            EXPECT_TRUE(wait_until([&] { return proxy.cuts() == 1; }, 20s));
        },
        "6s");
    EXPECT_EQ(proxy.cuts(), 1);
    EXPECT_GE(status["failures"].get<std::uint64_t>(), 1u);
    EXPECT_GE(status["connects"].get<std::uint64_t>(), 2u);
}

TEST(store, connection_cut_after_commit_leaves_an_in_doubt_batch_that_is_not_written_twice) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("cutcommit");
    fault_proxy proxy(pg.port());
    const std::string via = with_port(url, proxy.port());
    const json status = run_disturbed(
        url, via, "cutcommit",
        [&](agent&) {
            proxy.arm(fault_proxy::fault::cut_after_commit);
            EXPECT_TRUE(wait_until([&] { return proxy.cuts() == 1; }, 20s));
        },
        "6s");
    EXPECT_EQ(proxy.cuts(), 1);
    // The server committed the batch, the agent never heard so and wrote it again: the ledger
    // recognised it.
    EXPECT_EQ(status["written"]["duplicates"].get<std::uint64_t>(), 1u);
}

TEST(store, agent_killed_after_spooling_replays_the_spool_without_duplicates) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("killed");
    { pqxx::connection check(url); }  // the database exists; now the server goes away
    pg.stop("fast");
    temp_dir dir;
    const std::string rt = dir.path() + "/rt", spool = dir.path() + "/spool";
    std::uint64_t expected = 0, spooled = 0;
    {
        agent a(rt, dir.path() + "/agent1.log", agent_args(url, spool));
        loadgen_run lg(dir, "lg", rt,
                       {"--processes", "2", "--threads", "1", "--duration", "4s", "--rate", "20000", "--plugins",
                        "2", "--tenants", "2", "--plugin-prefix", "killed-", "--mix", "record", "--wait-attached",
                        "10s"});
        ASSERT_EQ(lg.finish(), 0) << lg.log();
        expected = delivered(lg);
        // every event in a spooled window, none written (the server is down)
        ASSERT_TRUE(wait_until(
            [&] {
                const json s = store_status(a);
                return drained(a) == expected && s["submitted"]["calls"].get<std::uint64_t>() == expected &&
                       s["spool"]["batches"].get<std::uint64_t>() == s["submitted"]["batches"].get<std::uint64_t>();
            },
            30s))
            << store_status(a).dump();
        spooled = store_status(a)["spool"]["batches"].get<std::uint64_t>();
        EXPECT_GE(spooled, 3u);
        a.proc().signal(SIGKILL);
        ASSERT_TRUE(a.proc().wait(10s).has_value());
    }
    pg.restart();
    agent b(rt, dir.path() + "/agent2.log", agent_args(url, spool));
    ASSERT_TRUE(wait_until([&] { return store_status(b)["spool"]["batches"].get<std::uint64_t>() == 0; }, 60s))
        << store_status(b).dump();
    const json status = store_status(b);
    EXPECT_EQ(status["written"]["batches"].get<std::uint64_t>(), spooled);
    EXPECT_EQ(b.stop(), 0);
    const db_figures f = read_db(url);
    print_figures("agent SIGKILL", status["written"]["rows"]["query_rollups"].get<std::uint64_t>(), f, expected);
    EXPECT_EQ(f.calls, expected);
    EXPECT_EQ(f.rows, f.distinct_keys);
    EXPECT_EQ(f.batches, spooled);
}

TEST(store, migrate_subcommand_dry_run_applies_nothing_then_applies_and_refuses_a_newer_schema) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("migrate");
    temp_dir dir;
    const auto run = [&](std::vector<std::string> args, std::string& out) {
        args.insert(args.begin(), agent_binary());
        process p(args, {}, dir.path() + "/out", dir.path() + "/err");
        const auto st = p.wait(60s);
        out = read_file(dir.path() + "/out") + read_file(dir.path() + "/err");
        return st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
    };
    const auto tables = [&] {
        pqxx::connection c(url);
        pqxx::work tx(c);
        return tx.exec1("SELECT count(*) FROM pg_tables WHERE schemaname = 'plugmon'")[0].as<int>();
    };
    std::string out;
    EXPECT_EQ(run({"migrate", "--dry-run", "--postgres", url}, out), 0) << out;
    EXPECT_NE(out.find("pending"), std::string::npos) << out;
    EXPECT_LE(tables(), 1) << "a dry run creates at most the ledger of migrations";
    EXPECT_EQ(run({"migrate", "--postgres", url}, out), 0) << out;
    EXPECT_NE(out.find("migrated from version 0"), std::string::npos) << out;
    EXPECT_GT(tables(), 5);
    EXPECT_EQ(run({"--postgres", url, "migrate"}, out), 0) << out;
    EXPECT_NE(out.find("up to date"), std::string::npos) << out;
    {
        pqxx::connection c(url);
        pqxx::work tx(c);
        tx.exec("INSERT INTO plugmon.schema_migrations (version, name, checksum, agent_version)"
                " SELECT 999, 'from the future', checksum, '99.0' FROM plugmon.schema_migrations LIMIT 1");
        tx.commit();
    }
    EXPECT_EQ(run({"migrate", "--postgres", url}, out), 1) << out;
    EXPECT_NE(out.find("newer"), std::string::npos) << out;
    // The daemon refuses to start on it too, with the same message.
    EXPECT_EQ(run({"--postgres", url, "--runtime-dir", dir.path() + "/rt", "--listen", "127.0.0.1:0",
                   "--spool-dir", dir.path() + "/spool"},
                  out),
              1)
        << out;
    EXPECT_NE(out.find("newer"), std::string::npos) << out;
    EXPECT_EQ(out.find(url.substr(url.find(':', 13) + 1, 10)), std::string::npos) << "password in the output";
}
