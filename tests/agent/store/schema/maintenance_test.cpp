// Partitions, downsampling, retention and usage totals against a real PostgreSQL, checked against the agent's sketch.
#include <latch>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "sql_support.hpp"

namespace {

using plugmon::agent::dd_sketch;
using plugmon::test::bytea_literal;
using plugmon::test::to_hex;

constexpr long long day = 86400;
constexpr long long d1 = 1772323200;  // 2026-03-01 00:00:00 UTC
constexpr long long d2 = d1 + day, d3 = d2 + day;

std::string ts(long long epoch) { return "to_timestamp(" + std::to_string(epoch) + ")"; }
std::string q(const std::string& s) { return "'" + s + "'"; }

using query_key =
    std::tuple<long long, std::string, std::string, std::string, std::string, std::string>;
using usage_key = std::pair<std::string, std::string>;  // tenant, plugin

struct query_hour {
    long long calls = 0, errors = 0, rows = 0, total_ns = 0;
    long long min_ns = std::numeric_limits<long long>::max(), max_ns = 0;
    dd_sketch sketch;
};
struct usage_totals {
    long long queries = 0, query_errors = 0, query_ns = 0, rows = 0, executions = 0,
              execution_errors = 0, cpu_ns = 0, wall_ns = 0;
    bool operator==(const usage_totals&) const = default;
};
struct execution_hour {
    long long calls = 0, errors = 0, wall_ns = 0, cpu_ns = 0;
};

struct action {
    std::string what, object;
    long long rows;  // -1: NULL
};

class maintenance : public ::testing::Test {
protected:
    void SetUp() override {
        url = plugmon::test::migrated_database();
        conn_ = std::make_unique<pqxx::connection>(url);
        exec("SELECT plugmon.ensure_partitions(" + ts(d1) + ", " + ts(d3 + day - 1) + ")");
        // Three days; hours 0, 7 and 23; windows at :00:00, :00:10 and :59:50.
        std::vector<long long> windows;
        for (const long long d : {d1, d2, d3})
            for (const long long h : {0, 7, 23})
                for (const long long w : {0, 10, 3590}) windows.push_back(d + h * 3600 + w);
        insert_windows(windows);
    }

    void exec(const std::string& sql) {
        pqxx::work tx(*conn_);
        tx.exec(sql);
        tx.commit();
    }

    std::vector<action> maintain(long long now, int premake, const std::string& after,
                                 const std::string& retention) {
        pqxx::work tx(*conn_);
        std::vector<action> out;
        for (const auto& r :
             tx.exec("SELECT action, object, coalesce(rows, -1) FROM plugmon.maintain(" + ts(now) +
                     ", " + std::to_string(premake) + ", " + q(after) + ", " + q(retention) + ")"))
            out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<long long>()});
        tx.commit();
        return out;
    }

    static std::vector<std::string> objects(const std::vector<action>& actions,
                                            const std::string& what) {
        std::vector<std::string> v;
        for (const auto& a : actions)
            if (a.what == what) v.push_back(a.object);
        return v;
    }

    bool exists(const std::string& relation) {
        pqxx::nontransaction tx(*conn_);
        return tx.exec1("SELECT to_regclass(" + q("plugmon." + relation) + ") IS NOT NULL")[0]
            .as<bool>();
    }

    long long scalar(const std::string& sql) {
        pqxx::nontransaction tx(*conn_);
        return tx.exec1(sql)[0].as<long long>();
    }

    /// Inserts query and execution rollups for each window start; records what the hours and usage must be.
    void insert_windows(const std::vector<long long>& starts, int salt = 0) {
        static const std::vector<
            std::tuple<std::string, std::string, std::string, std::string, std::string>>
            series = {{"h1", "p1", "select", "users", "t1"},
                      {"h1", "p2", "insert", "orders", "t2"},
                      {"h2", "p1", "select", "users", "t1"}};
        static const std::vector<std::tuple<std::string, std::string, std::string>> exec_series = {
            {"h1", "p1", "t1"}, {"h1", "p3", "t3"}, {"h2", "p1", "t1"}};
        std::vector<std::string> qrows, erows;
        for (const long long start : starts) {
            const long long hour = start - start % 3600;
            for (const auto& [host, plugin, op, tbl, tenant] : series) {
                const dd_sketch s = plugmon::test::random_sketch(
                    rng_, plugmon::test::shape::lognormal, 1 + static_cast<int>(rng_() % 300));
                const auto calls = static_cast<long long>(s.count());
                const long long errors = static_cast<long long>(rng_() % 3) + salt,
                                rows = static_cast<long long>(rng_() % 1000);
                const auto total = static_cast<long long>(s.sum());
                qrows.push_back(ts(start) + ", 10, " + q(host) + ", " + q(plugin) + ", " + q(op) +
                                ", " + q(tbl) + ", " + q(tenant) + ", " + std::to_string(calls) +
                                ", " + std::to_string(errors) + ", " + std::to_string(rows) + ", " +
                                std::to_string(total) + ", " + std::to_string(s.min()) + ", " +
                                std::to_string(s.max()) + ", " + std::to_string(s.quantile(0.5)) +
                                ", " + std::to_string(s.quantile(0.95)) + ", " +
                                std::to_string(s.quantile(0.99)) + ", " +
                                bytea_literal(s.encode()));
                auto& h = hours_[{hour, host, plugin, op, tbl, tenant}];
                h.calls += calls;
                h.errors += errors;
                h.rows += rows;
                h.total_ns += total;
                h.min_ns = std::min(h.min_ns, static_cast<long long>(s.min()));
                h.max_ns = std::max(h.max_ns, static_cast<long long>(s.max()));
                h.sketch.merge(s);
                auto& u = usage_[day_of(start)][{tenant, plugin}];
                u.queries += calls;
                u.query_errors += errors;
                u.query_ns += total;
                u.rows += rows;
            }
            for (const auto& [host, plugin, tenant] : exec_series) {
                const long long calls = 1 + static_cast<long long>(rng_() % 50),
                                errors = static_cast<long long>(rng_() % 2),
                                wall = static_cast<long long>(rng_() % 100000000),
                                cpu = static_cast<long long>(rng_() % 50000000);
                erows.push_back(ts(start) + ", 10, " + q(host) + ", " + q(plugin) + ", " +
                                q(tenant) + ", " + std::to_string(calls) + ", " +
                                std::to_string(errors) + ", " + std::to_string(wall) + ", " +
                                std::to_string(cpu));
                auto& e = exec_hours_[{hour, host, plugin, tenant}];
                e.calls += calls;
                e.errors += errors;
                e.wall_ns += wall;
                e.cpu_ns += cpu;
                auto& u = usage_[day_of(start)][{tenant, plugin}];
                u.executions += calls;
                u.execution_errors += errors;
                u.cpu_ns += cpu;
                u.wall_ns += wall;
            }
        }
        pqxx::work tx(*conn_);
        plugmon::test::insert_rows(tx, "plugmon.query_rollups", qrows);
        plugmon::test::insert_rows(tx, "plugmon.execution_rollups", erows);
        tx.commit();
    }

    static long long day_of(long long t) { return t - t % day; }

    /// Compares every hourly row of [from, to) with the expectation, and that there are as many.
    void expect_hourly_rows(long long from, long long to) {
        pqxx::nontransaction tx(*conn_);
        std::size_t expected = 0, seen = 0;
        for (const auto& [key, h] : hours_)
            expected += std::get<0>(key) >= from && std::get<0>(key) < to;
        for (const auto& r : tx.exec("SELECT extract(epoch FROM bucket_start)::bigint, host, "
                                     "plugin, op, tbl, tenant, bucket_seconds, "
                                     "calls, errors, rows, total_ns, min_ns, max_ns, p50_ns, "
                                     "p95_ns, p99_ns, encode(sketch, 'hex') "
                                     "FROM plugmon.query_rollups_1h WHERE bucket_start >= " +
                                     ts(from) + " AND bucket_start < " + ts(to))) {
            const query_key key{r[0].as<long long>(),   r[1].as<std::string>(),
                                r[2].as<std::string>(), r[3].as<std::string>(),
                                r[4].as<std::string>(), r[5].as<std::string>()};
            ASSERT_TRUE(hours_.count(key)) << "unexpected hourly row at " << r[0].c_str();
            const query_hour& h = hours_.at(key);
            const std::string where =
                std::string("hour ") + r[0].c_str() + " " + r[1].c_str() + "/" + r[2].c_str();
            EXPECT_EQ(r[6].as<int>(), 3600) << where;
            EXPECT_EQ(r[7].as<long long>(), h.calls) << where;
            EXPECT_EQ(r[8].as<long long>(), h.errors) << where;
            EXPECT_EQ(r[9].as<long long>(), h.rows) << where;
            EXPECT_EQ(r[10].as<long long>(), h.total_ns) << where;
            EXPECT_EQ(r[11].as<long long>(), h.min_ns) << where;
            EXPECT_EQ(r[12].as<long long>(), h.max_ns) << where;
            EXPECT_EQ(r[13].as<long long>(), static_cast<long long>(h.sketch.quantile(0.5)))
                << where;
            EXPECT_EQ(r[14].as<long long>(), static_cast<long long>(h.sketch.quantile(0.95)))
                << where;
            EXPECT_EQ(r[15].as<long long>(), static_cast<long long>(h.sketch.quantile(0.99)))
                << where;
            EXPECT_EQ(r[16].as<std::string>(), to_hex(h.sketch.encode())) << where;
            ++seen;
        }
        EXPECT_EQ(seen, expected);
        EXPECT_GT(seen, 0u);
        std::size_t exec_expected = 0, exec_seen = 0;
        for (const auto& [key, e] : exec_hours_)
            exec_expected += std::get<0>(key) >= from && std::get<0>(key) < to;
        for (const auto& r :
             tx.exec("SELECT extract(epoch FROM bucket_start)::bigint, host, plugin, tenant, "
                     "bucket_seconds, calls, errors, "
                     "wall_ns, cpu_ns FROM plugmon.execution_rollups_1h WHERE bucket_start >= " +
                     ts(from) + " AND bucket_start < " + ts(to))) {
            const auto key = std::make_tuple(r[0].as<long long>(), r[1].as<std::string>(),
                                             r[2].as<std::string>(), r[3].as<std::string>());
            ASSERT_TRUE(exec_hours_.count(key));
            const execution_hour& e = exec_hours_.at(key);
            EXPECT_EQ(r[4].as<int>(), 3600);
            EXPECT_EQ(r[5].as<long long>(), e.calls);
            EXPECT_EQ(r[6].as<long long>(), e.errors);
            EXPECT_EQ(r[7].as<long long>(), e.wall_ns);
            EXPECT_EQ(r[8].as<long long>(), e.cpu_ns);
            ++exec_seen;
        }
        EXPECT_EQ(exec_seen, exec_expected);
    }

    std::map<usage_key, usage_totals> usage(long long from, long long to) {
        pqxx::nontransaction tx(*conn_);
        std::map<usage_key, usage_totals> out;
        for (const auto& r :
             tx.exec("SELECT * FROM plugmon.usage(" + ts(from) + ", " + ts(to) + ")"))
            out[{r[0].as<std::string>(), r[1].as<std::string>()}] = {
                r[2].as<long long>(), r[3].as<long long>(), r[4].as<long long>(),
                r[5].as<long long>(), r[6].as<long long>(), r[7].as<long long>(),
                r[8].as<long long>(), r[9].as<long long>()};
        return out;
    }

    std::map<usage_key, usage_totals> expected_usage(long long from, long long to) {
        std::map<usage_key, usage_totals> out;
        for (long long d = from; d < to; d += day)
            for (const auto& [key, u] : usage_[d]) {
                auto& o = out[key];
                o.queries += u.queries;
                o.query_errors += u.query_errors;
                o.query_ns += u.query_ns;
                o.rows += u.rows;
                o.executions += u.executions;
                o.execution_errors += u.execution_errors;
                o.cpu_ns += u.cpu_ns;
                o.wall_ns += u.wall_ns;
            }
        return out;
    }

    std::string url;
    std::unique_ptr<pqxx::connection> conn_;
    std::mt19937_64 rng_{7};
    std::map<query_key, query_hour> hours_;
    std::map<std::tuple<long long, std::string, std::string, std::string>, execution_hour>
        exec_hours_;
    std::map<long long, std::map<usage_key, usage_totals>> usage_;  // by UTC day
};

TEST_F(maintenance, downsampling_turns_old_days_into_exact_hourly_rows_and_drops_them) {
    const std::string totals =
        "SELECT sum(calls) + sum(errors) * 7 + sum(rows) * 13 + sum(total_ns) FROM "
        "plugmon.query_rollups_all";
    const long long before = scalar(totals);
    const long long raw_d2 = scalar("SELECT count(*) FROM plugmon.query_rollups_p20260302");

    // Noon on day 3 with downsample_after 1 day: only day 1 has ended by noon on day 2.
    const auto actions = maintain(d3 + 12 * 3600, 2, "1 day", "90 days");
    EXPECT_EQ(objects(actions, "downsample"),
              (std::vector<std::string>{"plugmon.execution_rollups_p20260301",
                                        "plugmon.query_rollups_p20260301"}));
    for (const auto& a : actions)
        if (a.what == "downsample") {
            EXPECT_EQ(a.rows, 9) << a.object;  // 3 hours x 3 series
        }
    EXPECT_FALSE(exists("query_rollups_p20260301"));
    EXPECT_FALSE(exists("execution_rollups_p20260301"));
    EXPECT_TRUE(exists("slow_queries_p20260301"));  // not downsampled, and within retention
    EXPECT_TRUE(exists("query_rollups_p20260302"));
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.query_rollups_p20260302"), raw_d2);
    expect_hourly_rows(d1, d2);
    EXPECT_EQ(
        scalar("SELECT count(*) FROM plugmon.query_rollups_1h WHERE bucket_start >= " + ts(d2)), 0);
    EXPECT_EQ(scalar(totals), before);  // nothing lost or counted twice across the two tables

    // Premake: days 2 (the day before now) to 5; day 3 and 4 existed already.
    EXPECT_TRUE(exists("query_rollups_p20260305"));
    EXPECT_TRUE(exists("resource_samples_p20260305"));
    EXPECT_FALSE(exists("query_rollups_p20260306"));
    EXPECT_EQ(objects(actions, "create_partition").size(), 4u + 4u);  // 4 daily tables x days 4, 5

    const auto again = maintain(d3 + 12 * 3600, 2, "1 day", "90 days");
    EXPECT_TRUE(again.empty());
}

TEST_F(maintenance, late_rows_for_a_downsampled_day_are_added_to_its_hourly_rows) {
    maintain(d3 + 12 * 3600, 0, "1 day", "90 days");
    ASSERT_FALSE(exists("query_rollups_p20260301"));
    // A replayed spool brings windows of day 1: hour 7 (rows exist already) and hour 12 (new).
    exec("SELECT plugmon.ensure_partitions(" + ts(d1 + 7 * 3600) + ", " + ts(d1 + 12 * 3600) + ")");
    ASSERT_TRUE(exists("query_rollups_p20260301"));
    insert_windows({d1 + 7 * 3600 + 20, d1 + 7 * 3600 + 30, d1 + 12 * 3600}, 1);
    const auto actions = maintain(d3 + 13 * 3600, 0, "1 day", "90 days");
    EXPECT_EQ(objects(actions, "downsample"),
              (std::vector<std::string>{"plugmon.execution_rollups_p20260301",
                                        "plugmon.query_rollups_p20260301"}));
    EXPECT_FALSE(exists("query_rollups_p20260301"));
    expect_hourly_rows(d1, d2);  // hour 7 holds both deliveries, merged; hour 12 is new
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.query_rollups_1h WHERE bucket_start = " +
                     ts(d1 + 12 * 3600)),
              3);
    EXPECT_EQ(usage(d1, d2), expected_usage(d1, d2));
}

TEST_F(maintenance, retention_drops_old_partitions_and_prunes_the_write_ledger) {
    exec("INSERT INTO plugmon.slow_queries VALUES (" + ts(d1 + 5) +
         ", 'h1', 42, 'p1', 'select', 'users', 't1', -5, '', 1000, 1, false)");
    exec("INSERT INTO plugmon.resource_samples VALUES (" + ts(d2 + 5) +
         ", 'h1', 42, 'php-fpm', '', 1, 2, 3, 4, 5, 6, 7, 8)");
    const long long now = d1 + 65 * day;  // 2026-05-05: every March partition is past 30 days
    exec(
        "INSERT INTO plugmon.write_batches (host, run_id, seq, bucket_start, rows, written_at) "
        "VALUES "
        "('h1', 1, 1, " +
        ts(d1) + ", 10, " + ts(d1 + 60) + "), ('h1', 1, 2, " + ts(d1) + ", 10, " + ts(d2) +
        "), "
        "('h1', 2, 1, " +
        ts(now - day) + ", 10, " + ts(now - 3600) + ")");
    exec("SELECT plugmon.ensure_partitions(" + ts(now - 20 * day) + ", " + ts(now - 20 * day) +
         ")");

    const auto actions = maintain(now, 0, "1 day", "30 days");
    const auto dropped = objects(actions, "drop_partition");
    const std::set<std::string> dropped_set(dropped.begin(), dropped.end());
    for (const char* gone :
         {"plugmon.slow_queries_p20260301", "plugmon.resource_samples_p20260303",
          "plugmon.query_rollups_1h_p202603", "plugmon.execution_rollups_1h_p202603"})
        EXPECT_TRUE(dropped_set.count(gone)) << gone;
    EXPECT_FALSE(exists("slow_queries_p20260301"));
    EXPECT_FALSE(exists("query_rollups_1h_p202603"));
    EXPECT_TRUE(exists("slow_queries_p20260415"));  // 20 days old: kept
    EXPECT_TRUE(exists("query_rollups_1h_p202604"));
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.slow_queries"), 0);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.resource_samples"), 0);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.query_rollups_all WHERE bucket_start < " +
                     ts(now - 30 * day)),
              0);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon._partitions() WHERE upper_ts <= " +
                     ts(now - 30 * day)),
              0);
    ASSERT_EQ(objects(actions, "prune"), std::vector<std::string>{"plugmon.write_batches"});
    for (const auto& a : actions)
        if (a.what == "prune") {
            EXPECT_EQ(a.rows, 2);
        }
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.write_batches"), 1);
    EXPECT_EQ(scalar("SELECT run_id FROM plugmon.write_batches"), 2);
}

TEST_F(maintenance, retention_prunes_alert_history_and_alerts_resolved_long_ago) {
    const long long now = d1 + 65 * day;
    const auto event = [&](long long at, int seq, const std::string& fingerprint) {
        return "('h1', " + std::to_string(seq) + ", " + ts(at) + ", " + q(fingerprint) +
               ", 'r', 'e1', 'firing', 'firing', 'warning', 1.5, '', '{}', '{}', NULL)";
    };
    exec("INSERT INTO plugmon.alert_events VALUES " + event(d1, 1, "aa") + ", " +
         event(d1 + 5, 2, "") + ", " + event(now - 29 * day, 3, "aa") + ", " +
         event(now - 3600, 4, "bb"));
    const auto alert = [&](const std::string& fingerprint, const std::string& state,
                           long long updated) {
        return "('h1', " + q(fingerprint) + ", 'r', 'e1', " + q(state) +
               ", 'warning', 1.5, '{}', '{}', NULL, NULL, "
               "NULL, NULL, " +
               ts(updated) + ", 1)";
    };
    // Resolved and inactive long ago: pruned. Firing or pending since long ago, or resolved
    // lately: kept (an alert that still fires is current state, however old).
    exec("INSERT INTO plugmon.alerts VALUES " + alert("old-resolved", "resolved", d1) + ", " +
         alert("old-inactive", "inactive", d1 + 60) + ", " + alert("old-firing", "firing", d1) +
         ", " + alert("old-pending", "pending", d1) + ", " +
         alert("new-resolved", "resolved", now - day));

    const auto actions = maintain(now, 0, "1 day", "30 days");
    std::map<std::string, long long> pruned;
    for (const auto& a : actions)
        if (a.what == "prune") pruned[a.object] = a.rows;
    EXPECT_EQ(pruned["plugmon.alert_events"], 2);
    EXPECT_EQ(pruned["plugmon.alerts"], 2);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.alert_events"), 2);
    EXPECT_EQ(scalar("SELECT min(seq) FROM plugmon.alert_events"), 3);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.alerts WHERE fingerprint IN ('old-firing', "
                     "'old-pending', "
                     "'new-resolved')"),
              3);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.alerts"), 3);
    // Nothing left to prune: no action reported.
    for (const auto& a : maintain(now, 0, "1 day", "30 days"))
        EXPECT_NE(a.what, "prune") << a.object;
}

TEST_F(maintenance, retention_prunes_audit_rows_recorded_before_it) {
    const long long now = d1 + 65 * day;
    const auto row = [&](long long at, int seq) {
        return "('h1', 7, " + std::to_string(seq) + ", " + ts(at) +
               ", 'ops', '127.0.0.1', 'POST /-/reload', '/-/reload', 200, '-')";
    };
    exec("INSERT INTO plugmon.audit VALUES " + row(d1, 1) + ", " + row(now - 31 * day, 2) + ", " +
         row(now - 29 * day, 3) + ", " + row(now - 60, 4));
    std::map<std::string, long long> pruned;
    for (const auto& a : maintain(now, 0, "1 day", "30 days"))
        if (a.what == "prune") pruned[a.object] = a.rows;
    EXPECT_EQ(pruned["plugmon.audit"], 2);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.audit"), 2);
    EXPECT_EQ(scalar("SELECT min(seq) FROM plugmon.audit"), 3);
    // The steps before it still run: the old days were downsampled and dropped as well.
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.query_rollups"), 0);
    for (const auto& a : maintain(now, 0, "1 day", "30 days"))
        EXPECT_NE(a.object, "plugmon.audit") << "nothing left to prune";
}

TEST_F(maintenance, premake_and_ensure_partitions_create_each_partition_once_even_concurrently) {
    const long long now = d1 + 200 * day + 5;  // 2026-09-17
    const auto actions = maintain(now, 3, "2 days", "400 days");
    const auto made = objects(actions, "create_partition");
    const std::set<std::string> made_set(made.begin(), made.end());
    EXPECT_EQ(made.size(), made_set.size());
    for (const char* p : {"plugmon.query_rollups_p20260916", "plugmon.query_rollups_p20260920",
                          "plugmon.slow_queries_p20260920", "plugmon.query_rollups_1h_p202609"})
        EXPECT_TRUE(made_set.count(p)) << p;
    EXPECT_EQ(made.size(), 4u * 5u + 2u);  // 4 daily tables x 5 days, 2 monthly tables x 1 month
    EXPECT_FALSE(exists("query_rollups_p20260921"));
    EXPECT_FALSE(exists("query_rollups_p20260915"));
    EXPECT_TRUE(maintain(now, 3, "2 days", "400 days").empty());

    // Boundaries are UTC days: 23:59:59.999 belongs to its day, midnight to the next.
    exec(
        "INSERT INTO plugmon.slow_queries VALUES ('2026-09-16 23:59:59.999+00', 'h', 1, '', '', "
        "'', '', 0, '', 0, 0, false), "
        "('2026-09-17 00:00:00+00', 'h', 1, '', '', '', '', 0, '', 0, 0, false)");
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.slow_queries_p20260916"), 1);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon.slow_queries_p20260917"), 1);

    // Six agents preparing the same new month at once: all succeed, every partition made once.
    constexpr int agents = 6;
    std::latch start(agents);
    std::vector<long long> created(agents, -1);
    std::vector<std::thread> threads;
    for (int a = 0; a < agents; ++a)
        threads.emplace_back([&, a] {
            try {
                pqxx::connection c(url);
                start.arrive_and_wait();
                pqxx::work tx(c);
                created[a] =
                    tx.exec1(
                          "SELECT plugmon.ensure_partitions('2026-10-01', '2026-10-31 23:00+00')")
                        [0]
                            .as<long long>();
                tx.commit();
            } catch (const std::exception& e) {
                ADD_FAILURE() << "agent " << a << ": " << e.what();
            }
        });
    for (auto& t : threads) t.join();
    long long total = 0;
    for (const long long n : created) total += n;
    EXPECT_EQ(total, 4 * 31 + 2);
    EXPECT_EQ(scalar("SELECT count(*) FROM plugmon._partitions() WHERE lower_ts >= '2026-10-01' "
                     "AND lower_ts < '2026-11-01'"),
              4 * 31 + 2);
}

TEST_F(maintenance, usage_totals_add_raw_and_hourly_rows_alike) {
    maintain(d3 + 12 * 3600, 0, "1 day", "90 days");  // day 1 is hourly now, days 2 and 3 raw
    ASSERT_FALSE(exists("query_rollups_p20260301"));
    const auto all = usage(d1, d3 + day);
    EXPECT_EQ(all, expected_usage(d1, d3 + day));
    ASSERT_TRUE(all.count({"t3", "p3"}));
    EXPECT_EQ(all.at({"t3", "p3"}).queries, 0);  // executions only: zeros, not NULLs
    EXPECT_GT(all.at({"t3", "p3"}).executions, 0);
    EXPECT_EQ(usage(d1, d2), expected_usage(d1, d2));  // hourly only
    EXPECT_EQ(usage(d2, d3), expected_usage(d2, d3));  // raw only
    EXPECT_TRUE(usage(d3 + day, d3 + 2 * day).empty());

    // The hourly view adds up to the same totals.
    pqxx::nontransaction tx(*conn_);
    const auto r = tx.exec1(
        "SELECT sum(queries), sum(query_errors), sum(query_ns), sum(rows), sum(executions), "
        "sum(execution_errors), sum(cpu_ns), sum(wall_ns), count(*) FROM plugmon.usage_hourly");
    usage_totals sum;
    for (const auto& [key, u] : all) {
        sum.queries += u.queries;
        sum.query_errors += u.query_errors;
        sum.query_ns += u.query_ns;
        sum.rows += u.rows;
        sum.executions += u.executions;
        sum.execution_errors += u.execution_errors;
        sum.cpu_ns += u.cpu_ns;
        sum.wall_ns += u.wall_ns;
    }
    EXPECT_EQ((usage_totals{r[0].as<long long>(), r[1].as<long long>(), r[2].as<long long>(),
                            r[3].as<long long>(), r[4].as<long long>(), r[5].as<long long>(),
                            r[6].as<long long>(), r[7].as<long long>()}),
              sum);
    EXPECT_EQ(r[8].as<long long>(),
              9 * 3);  // 9 hours x the pairs t1/p1, t2/p2 (queries), t3/p3 (executions)
}

}  // namespace
