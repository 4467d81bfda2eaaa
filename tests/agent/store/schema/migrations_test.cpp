// The embedded migrations against a real PostgreSQL: first run, re-run, dry run, refusals, concurrency.
#include <fstream>
#include <latch>
#include <sstream>
#include <thread>

#include "sql_support.hpp"

namespace {

using plugmon::agent::store::embedded_migrations;
using plugmon::agent::store::migrate;
using plugmon::agent::store::schema_error;
using plugmon::agent::store::schema_version;
using plugmon::test::fresh_database;

int newest() { return embedded_migrations().back().version; }

std::vector<int> one_to(int n) {
    std::vector<int> v;
    for (int k = 1; k <= n; ++k) v.push_back(k);
    return v;
}

// The reflected CRC-32 of IEEE 802.3 (zlib's), bit by bit: an independent check of the checksums.
std::uint32_t crc32_by_hand(const std::string& s) {
    std::uint32_t crc = 0xffffffffu;
    for (const char ch : s) {
        crc ^= static_cast<unsigned char>(ch);
        for (int bit = 0; bit < 8; ++bit) crc = crc & 1 ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
    }
    return ~crc;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

long long scalar(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<long long>();
}

std::string text(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec1(sql);
    return r[0].is_null() ? "NULL" : r[0].as<std::string>();
}

TEST(migrations, embedded_are_the_sql_files_numbered_from_one_with_crc32_checksums) {
    const auto& all = embedded_migrations();
    ASSERT_GE(all.size(), 3u);
    for (std::size_t k = 0; k < all.size(); ++k) {
        const auto& m = all[k];
        EXPECT_EQ(m.version, static_cast<int>(k) + 1);
        char file[64];
        std::snprintf(file, sizeof file, "%04d_%s.sql", m.version, m.name.c_str());
        EXPECT_EQ(m.sql,
                  read_file(std::string(PLUGMON_SOURCE_DIR) + "/agent/store/schema/sql/" + file))
            << file;
        EXPECT_EQ(m.checksum, crc32_by_hand(m.sql)) << file;
    }
    EXPECT_EQ(all[0].name, "schema");
    EXPECT_EQ(crc32_by_hand("123456789"), 0xcbf43926u);  // the standard check value
}

TEST(migrations, bring_an_empty_database_to_the_newest_version_with_every_object) {
    pqxx::connection c(fresh_database());
    EXPECT_EQ(schema_version(c), 0);
    std::vector<std::string> lines;
    const auto report =
        migrate(c, false, "9.8.7", [&](const std::string& l) { lines.push_back(l); });
    EXPECT_EQ(report.from_version, 0);
    EXPECT_EQ(report.to_version, newest());
    EXPECT_EQ(report.applied, one_to(newest()));
    ASSERT_EQ(lines.size(), embedded_migrations().size());
    EXPECT_NE(lines[0].find("applied migration 0001_schema"), std::string::npos) << lines[0];
    EXPECT_EQ(schema_version(c), newest());

    EXPECT_EQ(scalar(c,
                     "SELECT count(*) FROM plugmon.schema_migrations WHERE agent_version = '9.8.7' "
                     "AND applied_at <= now()"),
              newest());
    for (const auto& m : embedded_migrations())
        EXPECT_EQ(
            text(c,
                 "SELECT name || ' ' || checksum FROM plugmon.schema_migrations WHERE version = " +
                     std::to_string(m.version)),
            m.name + " " + std::to_string(m.checksum));

    for (const char* rel :
         {"query_rollups", "query_rollups_1h", "execution_rollups", "execution_rollups_1h",
          "slow_queries", "resource_samples", "alerts", "alert_events", "audit", "write_batches",
          "query_rollups_all", "execution_rollups_all", "usage_hourly", "schema_migrations"})
        EXPECT_EQ(text(c, std::string("SELECT to_regclass('plugmon.") + rel + "') IS NOT NULL"),
                  "t")
            << rel;
    for (const char* fn :
         {"sketch_merge(bytea)", "sketch_union(bytea,bytea)",
          "sketch_quantile(bytea,double precision)", "sketch_quantiles(bytea,double precision[])",
          "sketch_count(bytea)", "ensure_partitions(timestamptz,timestamptz)",
          "maintain(timestamptz,integer,interval,interval)", "usage(timestamptz,timestamptz)"})
        EXPECT_EQ(text(c, std::string("SELECT to_regprocedure('plugmon.") + fn + "') IS NOT NULL"),
                  "t")
            << fn;
    EXPECT_EQ(text(c, "SELECT relkind FROM pg_class WHERE oid = 'plugmon.query_rollups'::regclass"),
              "p");
    EXPECT_EQ(
        text(c,
             "SELECT prokind FROM pg_proc WHERE oid = 'plugmon.sketch_merge(bytea)'::regprocedure"),
        "a");
}

TEST(migrations, rerun_is_a_no_op) {
    pqxx::connection c(fresh_database());
    migrate(c, false, "1");
    const std::string history_sql =
        "SELECT string_agg(version || name || checksum || applied_at || agent_version, ',' ORDER "
        "BY version) "
        "FROM plugmon.schema_migrations";
    const std::string before = text(c, history_sql);
    std::vector<std::string> lines;
    const auto again = migrate(c, false, "2", [&](const std::string& l) { lines.push_back(l); });
    EXPECT_EQ(again.from_version, newest());
    EXPECT_EQ(again.to_version, newest());
    EXPECT_TRUE(again.applied.empty());
    EXPECT_TRUE(lines.empty());
    EXPECT_EQ(text(c, history_sql), before);
    const auto dry = migrate(c, true, "2");
    EXPECT_TRUE(dry.applied.empty());
    EXPECT_EQ(dry.to_version, newest());
}

TEST(migrations, dry_run_on_an_empty_database_lists_pending_and_creates_nothing) {
    pqxx::connection c(fresh_database());
    std::vector<std::string> lines;
    const auto report = migrate(c, true, "1", [&](const std::string& l) { lines.push_back(l); });
    EXPECT_EQ(report.from_version, 0);
    EXPECT_EQ(report.to_version, newest());
    EXPECT_EQ(report.applied, one_to(newest()));
    ASSERT_EQ(lines.size(), embedded_migrations().size());
    EXPECT_EQ(lines[0].rfind("pending migration 0001_schema", 0), 0u) << lines[0];
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'plugmon'"), 0);
    EXPECT_EQ(schema_version(c), 0);
}

TEST(migrations, refuse_a_database_newer_than_the_agent) {
    pqxx::connection c(fresh_database());
    migrate(c, false, "1");
    const int future = newest() + 4;
    {
        pqxx::work tx(c);
        tx.exec(
            "INSERT INTO plugmon.schema_migrations (version, name, checksum, agent_version) VALUES "
            "(" +
            std::to_string(future) + ", 'future', 1, '9.0')");
        tx.commit();
    }
    for (const bool dry : {false, true}) {
        try {
            migrate(c, dry, "1");
            ADD_FAILURE() << "no schema_error (dry_run " << dry << ")";
        } catch (const schema_error& e) {
            EXPECT_EQ(std::string(e.what()),
                      "database schema is at version " + std::to_string(future) +
                          ", newer than this agent (knows up to " + std::to_string(newest()) +
                          "): upgrade plugmon-agent");
        }
    }
    EXPECT_EQ(schema_version(c), future);
}

TEST(migrations, refuse_a_changed_checksum_naming_the_version_and_both_checksums) {
    pqxx::connection c(fresh_database());
    migrate(c, false, "1");
    const auto& m = embedded_migrations()[1];
    {
        pqxx::work tx(c);
        tx.exec(
            "UPDATE plugmon.schema_migrations SET checksum = 305419896 WHERE version = 2");  // 0x12345678
        tx.commit();
    }
    char embedded[16];
    std::snprintf(embedded, sizeof embedded, "%#010x", m.checksum);
    try {
        migrate(c, false, "1");
        ADD_FAILURE() << "no schema_error";
    } catch (const schema_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("migration 2 (" + m.name + ")"), std::string::npos) << what;
        EXPECT_NE(what.find("0x12345678"), std::string::npos) << what;
        EXPECT_NE(what.find(embedded), std::string::npos) << what;
    }
}

TEST(migrations, refuse_gaps_in_the_recorded_history) {
    pqxx::connection c(fresh_database());
    migrate(c, false, "1");
    {
        pqxx::work tx(c);
        tx.exec("DELETE FROM plugmon.schema_migrations WHERE version = 1");
        tx.commit();
    }
    try {
        migrate(c, false, "1");
        ADD_FAILURE() << "no schema_error";
    } catch (const schema_error& e) {
        EXPECT_NE(std::string(e.what()).find("gap: version 2 is recorded but version 1 is not"),
                  std::string::npos)
            << e.what();
    }
}

TEST(migrations, a_failing_migration_is_rolled_back_and_reported) {
    pqxx::connection c(fresh_database());
    {
        pqxx::work tx(c);
        tx.exec(
            "CREATE SCHEMA plugmon; CREATE TABLE plugmon.alerts (id int)");  // in migration 1's way
        tx.commit();
    }
    try {
        migrate(c, false, "1");
        ADD_FAILURE() << "no schema_error";
    } catch (const schema_error& e) {
        EXPECT_NE(std::string(e.what()).find("migration 0001_schema failed and was rolled back"),
                  std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("alerts"), std::string::npos) << e.what();
    }
    EXPECT_EQ(schema_version(c), 0);
    EXPECT_EQ(text(c, "SELECT to_regclass('plugmon.query_rollups') IS NULL"), "t");
}

/// Applies the embedded migrations 1..`version` by hand and records them as migrate() does: a
/// database as an agent of that schema version left it.
void migrate_to(pqxx::connection& c, int version) {
    pqxx::work tx(c);
    tx.exec(
        "CREATE SCHEMA plugmon; CREATE TABLE plugmon.schema_migrations (version integer PRIMARY "
        "KEY,"
        " name text NOT NULL, checksum bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT "
        "now(),"
        " agent_version text NOT NULL)");
    for (const auto& m : embedded_migrations()) {
        if (m.version > version) break;
        tx.exec(m.sql);
        tx.exec(
            "INSERT INTO plugmon.schema_migrations (version, name, checksum, agent_version) VALUES "
            "(" +
            std::to_string(m.version) + ", " + tx.quote(m.name) + ", " +
            std::to_string(m.checksum) + ", 'old')");
    }
    tx.commit();
}

/// The columns of a table, "name type" in their order, comma-separated.
std::string columns(pqxx::connection& c, const std::string& table) {
    return text(c,
                "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER "
                "BY attnum)"
                " FROM pg_attribute WHERE attrelid = 'plugmon." +
                    table + "'::regclass AND attnum > 0 AND NOT attisdropped");
}

std::string primary_key(pqxx::connection& c, const std::string& table) {
    return text(c,
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'plugmon." +
                    table + "'::regclass AND contype = 'p'");
}

TEST(migrations,
     version_4_adds_alert_history_and_turns_the_unused_alerts_table_into_current_state) {
    pqxx::connection c(fresh_database());
    migrate_to(c, 3);
    ASSERT_EQ(schema_version(c), 3);
    EXPECT_NE(columns(c, "alerts").find("started_at"), std::string::npos);  // migration 1's table
    const auto report = migrate(c, false, "new");
    EXPECT_EQ(report.from_version, 3);
    const auto all = one_to(newest());
    EXPECT_EQ(report.applied, std::vector<int>(all.begin() + 3, all.end()));  // 4 and later
    EXPECT_EQ(
        columns(c, "alert_events"),
        "host text, seq bigint, at timestamp with time zone, fingerprint text, rule text, episode "
        "text, "
        "event text, state text, severity text, value double precision, detail text, labels jsonb, "
        "annotations jsonb, ack jsonb");
    EXPECT_EQ(primary_key(c, "alert_events"), "PRIMARY KEY (host, fingerprint, seq)");
    EXPECT_EQ(text(c, "SELECT to_regclass('plugmon.alert_events_at') IS NOT NULL"), "t");
    EXPECT_EQ(columns(c, "alerts"),
              "host text, fingerprint text, rule text, episode text, state text, severity text, "
              "value double "
              "precision, labels jsonb, annotations jsonb, ack jsonb, active_at timestamp with "
              "time zone, "
              "fired_at timestamp with time zone, resolved_at timestamp with time zone, updated_at "
              "timestamp "
              "with time zone, last_seq bigint");
    EXPECT_EQ(primary_key(c, "alerts"), "PRIMARY KEY (host, fingerprint)");
    EXPECT_EQ(text(c, "SELECT to_regclass('plugmon.alerts_0001') IS NULL"),
              "t");  // it was empty: dropped
}

TEST(migrations, version_4_keeps_rows_someone_put_in_the_old_alerts_table_aside) {
    pqxx::connection c(fresh_database());
    migrate_to(c, 3);
    {
        pqxx::work tx(c);
        tx.exec(
            "INSERT INTO plugmon.alerts (host, rule, severity, state, started_at) VALUES ('h', "
            "'r', "
            "'warning', 'firing', now())");
        tx.commit();
    }
    migrate(c, false, "new");
    EXPECT_EQ(schema_version(c), newest());
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.alerts_0001 WHERE rule = 'r'"), 1);
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.alerts"), 0);
    EXPECT_EQ(primary_key(c, "alerts"), "PRIMARY KEY (host, fingerprint)");
}

TEST(migrations, concurrent_agents_apply_each_migration_exactly_once) {
    constexpr int agents = 4;
    for (int round = 0; round < 3; ++round) {
        const std::string url = fresh_database();
        std::latch start(agents);
        std::vector<plugmon::agent::store::migration_report> reports(agents);
        std::vector<std::string> errors(agents);
        std::vector<std::thread> threads;
        for (int a = 0; a < agents; ++a)
            threads.emplace_back([&, a] {
                try {
                    pqxx::connection c(url);
                    start.arrive_and_wait();
                    reports[a] = migrate(c, false, "agent-" + std::to_string(a));
                } catch (const std::exception& e) {
                    errors[a] = e.what();
                }
            });
        for (auto& t : threads) t.join();
        std::vector<int> applied;
        for (int a = 0; a < agents; ++a) {
            EXPECT_EQ(errors[a], "") << "agent " << a;
            EXPECT_EQ(reports[a].to_version, newest());
            applied.insert(applied.end(), reports[a].applied.begin(), reports[a].applied.end());
        }
        std::sort(applied.begin(), applied.end());
        EXPECT_EQ(applied, one_to(newest()));
        pqxx::connection c(url);
        EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.schema_migrations"), newest());
        EXPECT_EQ(scalar(c, "SELECT count(DISTINCT agent_version) FROM plugmon.schema_migrations"),
                  1);
    }
}

}  // namespace
