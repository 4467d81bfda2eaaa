// The audit trail end to end, on a real PostgreSQL 15 server: POST /-/reload and SIGHUP against the
// real agent end as exactly one plugmon.audit row each, also when the server is down at the time
// and the agent is SIGKILLed with the entries in its spool (the next start replays them).
#include "support/harness.hpp"
#include "support/pg_server.hpp"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <csignal>
#include <fstream>
#include <string>

using namespace plugmon::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* admin_token = "audit-admin-secret-0123456789";

json store_status(const agent& a) {
    const auto body = http_get(a.port(), "/api/v1/store");
    return body ? json::parse(*body) : json();
}

/// A configuration with the admin token; the rest comes as flags.
std::string write_config(const temp_dir& dir) {
    const std::string path = dir.path() + "/agent.toml";
    std::ofstream(path) << "api_token = \"" << admin_token << "\"\n";
    return path;
}

std::vector<std::string> agent_args(const std::string& config, const std::string& url,
                                    const std::string& spool) {
    return {"--config",
            config,
            "--postgres",
            url,
            "--flush-interval",
            "1s",
            "--spool-dir",
            spool,
            "--postgres-backoff-max",
            "1s",
            "--exit-drain-timeout",
            "20s"};
}

long long count(const std::string& url, const std::string& where) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM plugmon.audit WHERE " + where)[0].as<long long>();
}

/// The audit rows as "actor client action status target" lines, in the order they were recorded.
std::string rows(const std::string& url) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    std::string out;
    for (const auto& r : tx.exec("SELECT actor, client, action, status, target FROM plugmon.audit "
                                 "ORDER BY run_id, seq"))
        out += r[0].as<std::string>() + " " + r[1].as<std::string>() + " " +
               r[2].as<std::string>() + " " + r[3].as<std::string>() + " " +
               r[4].as<std::string>() + "\n";
    return out;
}

/// One refused POST (no token), one applied POST /-/reload and a SIGHUP: four audit entries (the
/// POST is one for the request and one for the reload it caused).
void mutate(agent& a) {
    const auto denied = http_post(a.port(), "/-/reload");
    ASSERT_TRUE(denied.has_value());
    EXPECT_EQ(denied->first, 401);
    const auto r = http_post(a.port(), "/-/reload", admin_token);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->first, 200) << r->second;
    const double before = a.scrape().sum("plugmon_config_reloads_total");
    a.proc().signal(SIGHUP);
    ASSERT_TRUE(wait_until(
        [&] { return a.scrape().sum("plugmon_config_reloads_total") == before + 1; }, 20s));
}

std::string expected_rows(const std::string& config) {
    return "- 127.0.0.1 POST /-/reload 401 /-/reload\n"
           "http - reload 200 " +
           config +
           "\n"
           "api_token 127.0.0.1 POST /-/reload 200 /-/reload\n"
           "SIGHUP - reload 200 " +
           config + "\n";
}

}  // namespace

TEST(audit_store, each_mutation_and_reload_is_exactly_one_row_in_plugmon_audit) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("audit_live");
    temp_dir dir;
    const std::string config = write_config(dir);
    agent a(dir.path() + "/rt", dir.path() + "/agent.log",
            agent_args(config, url, dir.path() + "/spool"));
    ASSERT_TRUE(wait_until([&] { return store_status(a)["state"] == "connected"; }, 30s))
        << store_status(a).dump();
    mutate(a);
    // The entries ride with the next window (1 s).
    ASSERT_TRUE(wait_until([&] { return count(url, "true") == 4; }, 30s)) << rows(url);
    EXPECT_EQ(rows(url), expected_rows(config));
    EXPECT_EQ(count(url, "host <> '' AND at > now() - interval '5 min'"), 4);
    EXPECT_EQ(count(url, "detail LIKE 'applied=%'"), 2) << "a reload's detail names what applied";
    EXPECT_EQ(a.stop(), 0);
    EXPECT_EQ(count(url, "true"), 4) << "stopping adds or repeats nothing: " << rows(url);
}

TEST(audit_store, entries_recorded_during_an_outage_survive_a_sigkill_and_arrive_once) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("audit_outage");
    { pqxx::connection check(url); }  // the database exists; now the server goes away
    pg.stop("fast");
    temp_dir dir;
    const std::string config = write_config(dir);
    const std::string rt = dir.path() + "/rt", spool = dir.path() + "/spool";
    {
        agent a(rt, dir.path() + "/agent1.log", agent_args(config, url, spool));
        mutate(a);
        // No producer: the only batch is the audit rows', riding with an empty window; it waits
        // in the spool, and every later window is empty (nothing to write).
        ASSERT_TRUE(wait_until(
            [&] {
                const json s = store_status(a);
                return !s.is_null() && s["submitted"]["rows"].get<std::uint64_t>() == 4 &&
                       s["spool"]["batches"].get<std::uint64_t>() ==
                           s["submitted"]["batches"].get<std::uint64_t>();
            },
            30s))
            << store_status(a).dump();
        a.proc().signal(SIGKILL);
        ASSERT_TRUE(a.proc().wait(10s).has_value());
    }
    pg.restart();
    agent b(rt, dir.path() + "/agent2.log", agent_args(config, url, spool));
    ASSERT_TRUE(wait_until(
        [&] {
            const json s = store_status(b);
            return !s.is_null() && s["spool"]["batches"].get<std::uint64_t>() == 0 &&
                   s["state"] == "connected";
        },
        60s))
        << store_status(b).dump();
    EXPECT_EQ(rows(url), expected_rows(config));
    EXPECT_EQ(b.stop(), 0);
    EXPECT_EQ(count(url, "true"), 4) << rows(url);
    EXPECT_EQ(count(url, "run_id = (SELECT min(run_id) FROM plugmon.audit)"), 4)
        << "all four from the first run";
}
