// `plugmonctl usage` end to end: real PostgreSQL, the real migrations, rollup rows, the real binary.
#include "support/pg_server.hpp"
#include "support/text.hpp"
#include "aggregate/sketch.hpp"
#include "store/schema/migrations.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using plugmon::test::pg_server;
using json = nlohmann::json;

using plugmon::test::hex;

using plugmon::test::run_result;
using plugmon::test::run_shell;
using plugmon::test::shell_quote;

// The test data: November 2026 (and its edges), priced by the file written in SetUpTestSuite.
//
//   tenant/plugin     rows in [2026-11-01, 2026-12-01)                         plan           amount
//   acme/search       queries 1 000 000 + 500 000                              search tiered  1 000 000 × 0.0002 + 500 000 × 0.0001 = 200 + 50 = 250.00
//   acme/billing      executions 300 000 + 300 000 (+ 500 on 31 Oct and        standard       600 000 × 0.0002 = 120.00
//                     1 000 000 on 1 Dec 00:00, both outside)
//   globex/reports    executions 3 000 000 + 3 000 000 (2 and 10 Nov)          reports        49 + (6 000 000 − 5 000 000) × 0.0001 = 149.00
//   initech/billing   cpu 1800.25 s + 1800.25 s = 3600.5 s                     cpu            3600.5 × 0.05 = 180.025 → 180.02 (half to even)
//   trial-1/billing   executions 250 000                                       trial          (250 000 − 100 000) × 0.0003 = 45.00
//   umbrella/billing  executions 42                                            none: unmatched
//   total: 250 + 120 + 149 + 180.02 + 45 = 744.02
constexpr const char* pricing_toml = R"(currency = "EUR"
[[plan]]
name = "search tiered"
match = { plugins = ["search*"] }
model = "tiered"
metric = "queries"
tiers = [ { up_to = 1_000_000, unit_price = 0.0002 }, { up_to = 10_000_000, unit_price = 0.0001 }, { unit_price = 0.00005 } ]
[[plan]]
name = "cpu"
match = { tenants = ["initech"] }
model = "per_cpu_second"
unit_price = 0.05
[[plan]]
name = "trial"
match = { tenants = ["trial-*"] }
model = "free_tier"
free_units = 100_000
unit_price = 0.0003
[[plan]]
name = "reports"
match = { plugins = ["reports"] }
model = "subscription"
monthly_fee = 49.0
included_units = 5_000_000
overage_unit_price = 0.0001
[[plan]]
name = "standard"
match = { tenants = ["acme"] }
model = "per_call"
unit_price = 0.0002
)";

class usage_cli : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pg_server& pg = pg_server::shared();
        url_ = pg.create_database("usage_cli");
        pqxx::connection c(url_);
        plugmon::agent::store::migrate(c, false, "usage-cli-test");
        {
            pqxx::work tx(c);
            tx.exec("SELECT plugmon.ensure_partitions('2026-10-30T00:00:00Z', '2026-12-03T00:00:00Z')");
            tx.commit();
        }
        pqxx::work tx(c);
        execution(tx, "2026-10-31T23:59:50Z", "acme", "billing", 500, 0);  // before --from
        execution(tx, "2026-11-01T00:00:00Z", "acme", "billing", 300'000, 0);
        execution(tx, "2026-11-30T23:59:50Z", "acme", "billing", 300'000, 0);
        execution(tx, "2026-12-01T00:00:00Z", "acme", "billing", 1'000'000, 0);  // at --to: excluded
        query(tx, "2026-11-05T12:00:00Z", "h1", "acme", "search", 1'000'000);
        query(tx, "2026-11-05T12:00:00Z", "h2", "acme", "search", 500'000);
        execution(tx, "2026-11-05T12:00:00Z", "acme", "search", 10, 0);
        execution(tx, "2026-11-02T10:00:00Z", "globex", "reports", 3'000'000, 0);
        execution(tx, "2026-11-10T10:00:00Z", "globex", "reports", 3'000'000, 0);
        execution(tx, "2026-11-03T00:00:00Z", "initech", "billing", 100, 1'800'250'000'000);
        execution(tx, "2026-11-20T00:00:00Z", "initech", "billing", 100, 1'800'250'000'000);
        execution(tx, "2026-11-07T08:00:00Z", "trial-1", "billing", 250'000, 0);
        execution(tx, "2026-11-07T08:00:00Z", "umbrella", "billing", 42, 0);
        tx.commit();

        char tmpl[] = "/tmp/plugmon-usage.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        pricing_ = dir_ + "/pricing.toml";
        std::ofstream(pricing_) << pricing_toml;
    }

    static void TearDownTestSuite() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    static void execution(pqxx::work& tx, const std::string& at, const std::string& tenant,
                          const std::string& plugin, long long calls, long long cpu_ns) {
        tx.exec_params(
            "INSERT INTO plugmon.execution_rollups (bucket_start, bucket_seconds, host, plugin, tenant, calls, "
            "errors, wall_ns, cpu_ns) VALUES ($1::timestamptz, 10, 'h1', $2, $3, $4, 0, $5, $5)",
            at, plugin, tenant, calls, cpu_ns);
    }

    static void query(pqxx::work& tx, const std::string& at, const std::string& host, const std::string& tenant,
                      const std::string& plugin, long long calls) {
        plugmon::agent::dd_sketch sketch;
        sketch.add(1'000, static_cast<std::uint64_t>(calls));  // every query took 1 µs
        tx.exec_params(
            "INSERT INTO plugmon.query_rollups (bucket_start, bucket_seconds, host, plugin, op, tbl, tenant, calls, "
            "errors, rows, total_ns, min_ns, max_ns, p50_ns, p95_ns, p99_ns, sketch) VALUES ($1::timestamptz, 10, $2, "
            "$3, 'SELECT', 'items', $4, $5, 0, $5, $5::bigint * 1000, 1000, 1000, 1000, 1000, 1000, "
            "decode($6, 'hex'))",
            at, host, plugin, tenant, calls, hex(sketch.encode()));
    }

    /// Runs plugmonctl with `args` (already shell-quoted) and `env` assignments before it.
    static run_result run(const std::string& args, const std::string& env = "") {
        const std::string err_file = dir_ + "/stderr";
        return run_shell(env + " " + shell_quote(PLUGMONCTL) + " " + args, err_file);
    }

    static std::string priced(const std::string& from, const std::string& to, const std::string& extra = "") {
        return "usage --postgres " + shell_quote(url_) + " --from " + from + " --to " + to + " --pricing " +
               shell_quote(pricing_) + " " + extra;
    }

    static const json* line_of(const json& j, const std::string& tenant, const std::string& plan) {
        for (const auto& l : j["lines"])
            if (l["tenant"] == tenant && l["plan"] == plan) return &l;
        return nullptr;
    }

    static inline std::string url_, dir_, pricing_;
};

TEST_F(usage_cli, prices_a_calendar_month_with_every_model) {
    const auto r = run(priced("2026-11-01", "2026-12-01", "--format json"));
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["from"], "2026-11-01T00:00:00Z");
    EXPECT_EQ(j["to"], "2026-12-01T00:00:00Z");
    EXPECT_EQ(j["currency"], "EUR");
    EXPECT_DOUBLE_EQ(j["months"].get<double>(), 1.0);
    ASSERT_EQ(j["lines"].size(), 5u) << j.dump(2);

    const json* search = line_of(j, "acme", "search tiered");
    ASSERT_NE(search, nullptr);
    EXPECT_EQ((*search)["quantity"], "1500000");
    EXPECT_EQ((*search)["amount"], "250.00");  // 200 + 500 000 × 0.0001
    const json* standard = line_of(j, "acme", "standard");
    ASSERT_NE(standard, nullptr);
    EXPECT_EQ((*standard)["quantity"], "600000");  // the 31 Oct and 1 Dec buckets are outside
    EXPECT_EQ((*standard)["amount"], "120.00");
    const json* reports = line_of(j, "globex", "reports");
    ASSERT_NE(reports, nullptr);
    EXPECT_EQ((*reports)["allowance"], "5000000");
    EXPECT_EQ((*reports)["billable"], "1000000");
    EXPECT_EQ((*reports)["amount"], "149.00");
    const json* cpu = line_of(j, "initech", "cpu");
    ASSERT_NE(cpu, nullptr);
    EXPECT_EQ((*cpu)["metric"], "cpu_seconds");
    EXPECT_EQ((*cpu)["quantity"], "3600.5");
    EXPECT_EQ((*cpu)["amount_exact"], "180.025");
    EXPECT_EQ((*cpu)["amount"], "180.02");
    const json* trial = line_of(j, "trial-1", "trial");
    ASSERT_NE(trial, nullptr);
    EXPECT_EQ((*trial)["amount"], "45.00");

    EXPECT_EQ(j["total"], "744.02");
    EXPECT_EQ(j["total_minor"], 74402);
    long long sum = 0;
    for (const auto& l : j["lines"]) sum += l["amount_minor"].get<long long>();
    EXPECT_EQ(sum, 74402);
    ASSERT_EQ(j["tenants"].size(), 4u);  // acme, globex, initech, trial-1
    EXPECT_EQ(j["tenants"][0]["tenant"], "acme");
    EXPECT_EQ(j["tenants"][0]["amount"], "370.00");  // 250 + 120

    ASSERT_EQ(j["unmatched"].size(), 1u);
    EXPECT_EQ(j["unmatched"][0]["tenant"], "umbrella");
    EXPECT_EQ(j["unmatched"][0]["executions"], 42);
    EXPECT_NE(r.err.find("1 (tenant, plugin) pair matches no plan"), std::string::npos) << r.err;
}

TEST_F(usage_cli, prorates_a_subscription_over_half_a_month) {
    // 1–16 November = 15 of 30 days: 24.50 + (6 000 000 − 2 500 000) × 0.0001 = 24.50 + 350 = 374.50
    const auto r = run(priced("2026-11-01", "2026-11-16", "--tenant globex --format json"));
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    ASSERT_EQ(j["lines"].size(), 1u) << j.dump(2);
    EXPECT_EQ(j["lines"][0]["allowance"], "2500000");
    EXPECT_EQ(j["lines"][0]["amount"], "374.50");
    EXPECT_EQ(j["total"], "374.50");
    EXPECT_TRUE(j["unmatched"].empty());
}

TEST_F(usage_cli, from_is_included_and_to_is_excluded) {
    // Only the 1 Dec 00:00 bucket: 1 000 000 × 0.0002 = 200.00
    const auto r = run(priced("2026-12-01T00:00:00Z", "2026-12-01T00:00:10Z", "--tenant acme --format json"));
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    ASSERT_EQ(j["lines"].size(), 1u) << j.dump(2);
    EXPECT_EQ(j["lines"][0]["quantity"], "1000000");
    EXPECT_EQ(j["total"], "200.00");
}

TEST_F(usage_cli, without_pricing_prints_the_usage) {
    const auto r = run("usage --postgres " + shell_quote(url_) + " --from 2026-11-01 --to 2026-12-01 --format json");
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    ASSERT_EQ(j["rows"].size(), 6u) << j.dump(2);
    const json& search = j["rows"][1];  // ordered by tenant, plugin: acme/billing, acme/search, …
    EXPECT_EQ(search["tenant"], "acme");
    EXPECT_EQ(search["plugin"], "search");
    EXPECT_EQ(search["queries"], 1'500'000);
    EXPECT_EQ(search["rows"], 1'500'000);
    EXPECT_EQ(search["query_ns"], 1'500'000'000);
    EXPECT_EQ(search["executions"], 10);
    EXPECT_EQ(j["rows"][0]["executions"], 600'000);
}

TEST_F(usage_cli, table_and_csv_show_subtotals_and_the_total) {
    const auto table = run(priced("2026-11-01", "2026-12-01"));
    ASSERT_EQ(table.status, 0) << table.err;
    EXPECT_NE(table.out.find("subtotal"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("370.00"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("TOTAL"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("744.02"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("unmatched"), std::string::npos) << table.out;
    const auto csv = run(priced("2026-11-01", "2026-12-01", "--format csv"));
    ASSERT_EQ(csv.status, 0) << csv.err;
    EXPECT_EQ(csv.out.rfind("kind,tenant,plan,", 0), 0u) << csv.out;
    EXPECT_NE(csv.out.find("\ntotal,,,,,,,,,744.02,EUR\n"), std::string::npos) << csv.out;
    EXPECT_NE(csv.out.find("\nsubtotal,acme,,,,,,,,370.00,EUR\n"), std::string::npos) << csv.out;
    EXPECT_NE(csv.out.find("\nunmatched,umbrella,,,,billing,"), std::string::npos) << csv.out;
}

TEST_F(usage_cli, strict_fails_when_usage_matches_no_plan) {
    EXPECT_EQ(run(priced("2026-11-01", "2026-12-01", "--strict --format json")).status, 3);
    EXPECT_EQ(run(priced("2026-11-01", "2026-12-01", "--strict --tenant acme --format json")).status, 0);
}

TEST_F(usage_cli, takes_the_connection_string_from_the_environment) {
    const auto r = run("usage --from 2026-11-01 --to 2026-12-01 --format json", "PLUGMON_POSTGRES=" + shell_quote(url_));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["rows"].size(), 6u);
}

TEST_F(usage_cli, bad_input_exits_2_and_names_the_problem) {
    auto r = run(priced("2026-12-01", "2026-11-01"));
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--from"), std::string::npos) << r.err;
    r = run(priced("2026-11-31", "2026-12-01"));
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--from: expected YYYY-MM-DD or RFC 3339"), std::string::npos) << r.err;
    r = run("usage --from 2026-11-01 --to 2026-12-01", "PLUGMON_POSTGRES=");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("PLUGMON_POSTGRES"), std::string::npos) << r.err;

    const std::string bad = dir_ + "/bad.toml";
    std::ofstream(bad) << "[[plan]]\nname = \"x\"\nmodel = \"per_call\"\nunit_prise = 1\n";
    r = run("usage --postgres " + shell_quote(url_) + " --from 2026-11-01 --to 2026-12-01 --pricing " + shell_quote(bad));
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find(bad + ":4:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("plan \"x\": unit_prise: unknown key"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(usage_cli, a_failed_connection_exits_1_with_the_password_masked) {
    // Same server, wrong password.
    std::string wrong = url_;
    const auto colon = wrong.find(':', wrong.find("://") + 3);
    const auto at = wrong.find('@');
    ASSERT_NE(colon, std::string::npos);
    ASSERT_NE(at, std::string::npos);
    wrong = wrong.substr(0, colon + 1) + "Wrong-Secret-4711" + wrong.substr(at);
    const auto r = run("usage --postgres " + shell_quote(wrong) + " --from 2026-11-01 --to 2026-12-01");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("cannot connect to PostgreSQL at"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(":***@"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Wrong-Secret-4711"), std::string::npos) << r.err;
}

TEST_F(usage_cli, a_database_without_the_schema_is_explained) {
    const std::string empty = pg_server::shared().create_database("usage_cli_empty");
    const auto r = run("usage --postgres " + shell_quote(empty) + " --from 2026-11-01 --to 2026-12-01");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("has no plugmon.usage() function"), std::string::npos) << r.err;
}

}  // namespace
