// plugmonctl backup, backup verify and restore end to end: two real PostgreSQL servers, the real
// migrations, the real binary, pg_dump and pg_restore; and the backup timer under systemd-analyze.
#include "aggregate/sketch.hpp"
#include "store/schema/migrations.hpp"
#include "support/pg_server.hpp"
#include "support/text.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using plugmon::test::pg_server;
using json = nlohmann::json;

using plugmon::test::hex;

using plugmon::test::run_result;
using plugmon::test::run_shell;
using plugmon::test::shell_quote;
using plugmon::test::slurp;




/// The same SQL on both sides must give the same text; one row per line.
std::string query_text(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::read_transaction tx(c);
    std::string out;
    for (const auto& row : tx.exec(sql)) {
        for (const auto& f : row)
            out += (f.is_null() ? std::string("NULL") : f.c_str()) + std::string("|");
        out += "\n";
    }
    return out;
}

/// Every top-level table of `schema` with its row count and an md5 of its rows in a fixed order.
std::string table_digest(const std::string& url, const std::string& schema = "plugmon") {
    pqxx::connection c(url);
    pqxx::read_transaction tx(c);
    std::string out;
    for (const auto& r : tx.exec_params(
             "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
             schema)) {
        const std::string rel = tx.quote_name(schema) + "." + tx.quote_name(r[0].c_str());
        const auto d = tx.exec1(
            "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY "
            "t::text), '')) FROM " +
            rel + " AS t");
        out += std::string(r[0].c_str()) + " " + d[0].c_str() + " " + d[1].c_str() + "\n";
    }
    return out;
}

bool has_schema(const std::string& url, const std::string& schema) {
    pqxx::connection c(url);
    pqxx::read_transaction tx(c);
    return tx.exec_params1("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema)[0]
        .as<bool>();
}

// Sketch results per plugin and per (day, op): the merge's bytes, its count and its quantiles.
constexpr const char* sketch_sql =
    "SELECT plugin, encode(plugmon.sketch_merge(sketch), 'hex'), "
    "plugmon.sketch_count(plugmon.sketch_merge(sketch)), "
    "plugmon.sketch_quantiles(plugmon.sketch_merge(sketch), '{0.5,0.9,0.99}')::text "
    "FROM plugmon.query_rollups GROUP BY plugin ORDER BY plugin";
constexpr const char* sketch_by_day_sql =
    "SELECT date_trunc('day', bucket_start AT TIME ZONE 'UTC'), op, "
    "plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.95) "
    "FROM plugmon.query_rollups GROUP BY 1, 2 ORDER BY 1, 2";

class backup_cli : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        src_ = pg_server::shared().create_database("backup_src");
        pqxx::connection c(src_);
        plugmon::agent::store::migrate(c, false, "backup-test");
        {
            pqxx::work tx(c);
            tx.exec(
                "SELECT plugmon.ensure_partitions('2026-11-01T00:00:00Z', '2026-11-04T00:00:00Z')");
            tx.commit();
        }
        fill(c);
        char tmpl[] = "/tmp/plugmon-backup-test.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }

    static void TearDownTestSuite() {
        second_.reset();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    /// Rows in every table kind: rollups with random sketches over three days, slow queries,
    /// resource samples, the write ledger.
    static void fill(pqxx::connection& c) {
        std::mt19937_64 rng(1313);
        std::lognormal_distribution<double> latency(11.0, 1.5);  // ns, around 60 µs
        pqxx::work tx(c);
        const char* plugins[] = {"billing", "search", "reports"};
        const char* ops[] = {"SELECT", "UPDATE"};
        for (int day = 1; day <= 3; ++day)
            for (int bucket = 0; bucket < 6; ++bucket)
                for (const char* plugin : plugins)
                    for (const char* op : ops) {
                        plugmon::agent::dd_sketch s;
                        const int calls = 20 + static_cast<int>(rng() % 200);
                        for (int i = 0; i < calls; ++i)
                            s.add(static_cast<std::uint64_t>(latency(rng)) + 1);
                        const std::string at = "2026-11-0" + std::to_string(day) + "T0" +
                                               std::to_string(bucket) + ":00:10Z";
                        tx.exec_params(
                            "INSERT INTO plugmon.query_rollups (bucket_start, bucket_seconds, "
                            "host, plugin, "
                            "op, tbl, tenant, calls, errors, rows, total_ns, min_ns, max_ns, "
                            "p50_ns, "
                            "p95_ns, p99_ns, sketch) VALUES ($1::timestamptz, 10, 'h1', $2, $3, "
                            "'items', "
                            "'acme', $4, 0, $4, 0, 0, 0, 0, 0, 0, decode($5, 'hex'))",
                            at, plugin, op, calls, hex(s.encode()));
                        tx.exec_params(
                            "INSERT INTO plugmon.execution_rollups VALUES ($1::timestamptz, 10, "
                            "'h1', $2, "
                            "'acme', $3::bigint, 1, $3::bigint * 1000, $3::bigint * 500) ON "
                            "CONFLICT DO NOTHING",
                            at, plugin, calls);
                    }
        tx.exec(
            "INSERT INTO plugmon.slow_queries SELECT '2026-11-02T12:00:00Z'::timestamptz + i * "
            "interval '1 minute', 'h1', 100 + i, 'search', 'SELECT', 'items', 'acme', i * 7919, "
            "'SELECT * FROM items WHERE id = $1', 5000000 + i, i, i % 5 = 0 FROM "
            "generate_series(1, 40) i");
        tx.exec(
            "INSERT INTO plugmon.resource_samples SELECT '2026-11-03T00:00:00Z'::timestamptz + i * "
            "interval '10 seconds', 'h1', 100, 'svc', '', 1000000 + i, i, 10, 4, i, i, i, i "
            "FROM generate_series(1, 50) i");
        tx.exec(
            "INSERT INTO plugmon.write_batches (host, run_id, seq, bucket_start, rows) SELECT "
            "'h1', 7, i, '2026-11-01T00:00:00Z'::timestamptz + i * interval '10 seconds', 12 "
            "FROM generate_series(1, 30) i");
        tx.commit();
    }

    static run_result ctl(const std::string& args) {
        return run_shell(shell_quote(PLUGMONCTL) + " " + args, dir_ + "/stderr");
    }

    /// A backup of the source into `args`' --dir; returns its path (the last line printed).
    static std::string backup(const std::string& args) {
        const auto r = ctl("backup --postgres " + shell_quote(src_) + " " + args);
        EXPECT_EQ(r.status, 0) << r.err;
        return r.last_line();
    }

    /// A copy of the full backup (with its .sha256 and manifest) in a directory of its own.
    static std::string copy_of_full(const std::string& name) {
        const fs::path d = fs::path(dir_) / name;
        fs::create_directories(d);
        const fs::path to = d / fs::path(full()).filename();
        for (const char* suffix : {"", ".sha256", ".manifest.json"})
            fs::copy_file(full() + suffix, to.string() + suffix,
                          fs::copy_options::overwrite_existing);
        return to.string();
    }

    /// The full backup of the source, made by the first test that asks (each ctest process runs
    /// one test: the servers and the backup cost only the tests that need them).
    static const std::string& full() {
        if (full_.empty()) full_ = backup("--dir " + shell_quote(dir_ + "/full"));
        return full_;
    }

    /// A fresh database on the source's server (for the refusals and the options).
    static std::string fresh(const std::string& name) {
        return pg_server::shared().create_database(name);
    }

    /// A fresh database on a second server, started on first use.
    static std::string fresh_on_second(const std::string& name) {
        if (!second_) second_ = std::make_unique<pg_server>();
        return second_->create_database(name);
    }

    static std::string password() {
        const auto at = src_.find('@');
        const auto colon = src_.rfind(':', at);
        return src_.substr(colon + 1, at - colon - 1);
    }

    static inline std::string src_, dir_, full_;
    static inline std::unique_ptr<pg_server> second_;
};

TEST_F(backup_cli, full_backup_restores_on_a_second_server_with_identical_rows_and_sketches) {
    ASSERT_TRUE(fs::exists(full())) << full();
    // sha256sum-compatible beside the dump.
    const auto sum = run_shell("cd " + shell_quote(fs::path(full()).parent_path().string()) +
                                   " && sha256sum --check --strict " +
                                   shell_quote(fs::path(full()).filename().string() + ".sha256"),
                               dir_ + "/stderr");
    EXPECT_EQ(sum.status, 0) << sum.out << sum.err;
    const json m = json::parse(slurp(full() + ".manifest.json"));
    EXPECT_EQ(m["kind"], "full");
    pqxx::connection c(src_);
    EXPECT_EQ(m["schema_version"].get<int>(), plugmon::agent::store::schema_version(c));
    EXPECT_EQ(m["tables"]["query_rollups"]["rows"],
              std::stoll(query_text(src_, "SELECT count(*) FROM plugmon.query_rollups")));
    EXPECT_EQ(m["tables"]["slow_queries"]["rows"], 40);
    EXPECT_EQ(m["time_range"]["first"],
              query_text(src_,
                         "SELECT to_char(min(bucket_start) AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM plugmon.query_rollups")
                  .substr(0, 27));
    EXPECT_FALSE(m["server_version"].get<std::string>().empty());

    const auto v = ctl("backup verify " + shell_quote(full()));
    EXPECT_EQ(v.status, 0) << v.err;
    EXPECT_NE(v.out.find(": ok"), std::string::npos) << v.out;

    const std::string dst = fresh_on_second("restored");
    const auto r = ctl("restore --postgres " + shell_quote(dst) + " " + shell_quote(full()));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(table_digest(dst), table_digest(src_));
    EXPECT_NE(table_digest(src_).find("query_rollups " + std::to_string(3 * 6 * 3 * 2) + " "),
              std::string::npos)
        << table_digest(src_);
    EXPECT_EQ(query_text(dst, sketch_sql), query_text(src_, sketch_sql));
    EXPECT_EQ(query_text(dst, sketch_by_day_sql), query_text(src_, sketch_by_day_sql));
    pqxx::connection d(dst);
    EXPECT_EQ(plugmon::agent::store::schema_version(d), plugmon::agent::store::schema_version(c));
    for (const auto* text : {&v.out, &v.err, &r.out, &r.err})
        EXPECT_EQ(text->find(password()), std::string::npos) << *text;
}

TEST_F(backup_cli, a_corrupted_truncated_or_newer_backup_is_refused) {
    const std::string flipped = copy_of_full("flipped");
    {
        std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(fs::file_size(flipped) / 2));
        char ch = 0;
        f.read(&ch, 1);
        ch = static_cast<char>(ch ^ 0x01);
        f.seekp(static_cast<std::streamoff>(fs::file_size(flipped) / 2));
        f.write(&ch, 1);
    }
    const std::string truncated = copy_of_full("truncated");
    fs::resize_file(truncated, fs::file_size(truncated) - 100);
    for (const auto& bad : {flipped, truncated}) {
        const auto v = ctl("backup verify " + shell_quote(bad));
        EXPECT_EQ(v.status, 1) << v.out;
        EXPECT_NE(v.err.find("sha256 mismatch: " + bad + " is corrupted or truncated"),
                  std::string::npos)
            << v.err;
        const std::string dst = fresh("corrupt");
        const auto r = ctl("restore --postgres " + shell_quote(dst) + " " + shell_quote(bad));
        EXPECT_EQ(r.status, 1) << r.out;
        EXPECT_NE(r.err.find("sha256 mismatch"), std::string::npos) << r.err;
        EXPECT_FALSE(has_schema(dst, "plugmon"));
    }
    const std::string no_sum = copy_of_full("no-sum");
    fs::remove(no_sum + ".sha256");
    const auto v = ctl("backup verify " + shell_quote(no_sum));
    EXPECT_EQ(v.status, 1);
    EXPECT_NE(v.err.find(".sha256 is missing"), std::string::npos) << v.err;

    // A newer schema version than this plugmonctl knows (the manifest says so).
    {
        const std::string file = copy_of_full("newer");
        json m = json::parse(slurp(file + ".manifest.json"));
        const int newer = plugmon::agent::store::embedded_migrations().back().version + 1;
        m["schema_version"] = newer;
        std::ofstream(file + ".manifest.json", std::ios::trunc) << m.dump(2);
        const std::string dst = fresh("newer");
        const auto r = ctl("restore --postgres " + shell_quote(dst) + " " + shell_quote(file));
        EXPECT_EQ(r.status, 1) << r.out;
        EXPECT_NE(
            r.err.find("schema version " + std::to_string(newer) + ", newer than this plugmonctl"),
            std::string::npos)
            << r.err;
        EXPECT_FALSE(has_schema(dst, "plugmon"));
    }
}

TEST_F(backup_cli, prints_the_file_last_and_no_password_and_keep_prunes_only_its_own) {
    const auto r =
        ctl("backup --schema-only --postgres " + shell_quote(src_) + " --dir " + shell_quote(dir_ + "/quiet"));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, r.last_line() + "\n");  // stdout holds only the file
    for (const char* suffix : {"", ".sha256", ".manifest.json"})
        EXPECT_EQ(fs::status(r.last_line() + suffix).permissions() & fs::perms::all,
                  fs::perms::owner_read | fs::perms::owner_write)
            << suffix;
    EXPECT_TRUE(fs::is_regular_file(r.last_line()));
    EXPECT_NE(r.err.find("***"), std::string::npos) << r.err;  // the source, masked
    EXPECT_EQ(r.err.find(password()), std::string::npos) << r.err;
    EXPECT_EQ(slurp(r.last_line() + ".manifest.json").find(password()), std::string::npos);

    const std::string d = dir_ + "/keep";
    fs::create_directories(d);
    std::ofstream(d + "/notes.txt") << "mine";
    std::ofstream(d + "/plugmon-old.dump") << "not a backup of its naming";
    std::vector<std::string> made;
    for (int i = 0; i < 4; ++i) made.push_back(backup("--schema-only --keep 2 --dir " + shell_quote(d)));
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(d)) left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    std::vector<std::string> want{"notes.txt", "plugmon-old.dump"};
    for (int i = 2; i < 4; ++i)
        for (const char* suffix : {"", ".manifest.json", ".sha256"})
            want.push_back(fs::path(made[i]).filename().string() + suffix);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(left, want);
    const auto bad = ctl("backup --keep 0 --postgres " + shell_quote(src_) + " --dir " + shell_quote(d));
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("--keep"), std::string::npos) << bad.err;
}

TEST_F(backup_cli, schema_only_restores_the_schema_without_rows) {
    const std::string file = backup("--schema-only --dir " + shell_quote(dir_ + "/schema-only"));
    EXPECT_EQ(json::parse(slurp(file + ".manifest.json"))["kind"], "schema-only");
    const std::string dst = fresh("schema_only");
    const auto r = ctl("restore --postgres " + shell_quote(dst) + " " + shell_quote(file));
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string tables =
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE n.nspname = 'plugmon' ORDER BY 1";
    EXPECT_EQ(query_text(dst, tables), query_text(src_, tables));
    EXPECT_EQ(query_text(dst, "SELECT count(*) FROM plugmon.query_rollups"), "0|\n");
    EXPECT_EQ(query_text(dst, "SELECT count(*) FROM plugmon.slow_queries"), "0|\n");
    pqxx::connection c(src_), d(dst);
    EXPECT_EQ(plugmon::agent::store::schema_version(d), plugmon::agent::store::schema_version(c));
    // An agent starting on it finds nothing to migrate.
    const auto report = plugmon::agent::store::migrate(d, false, "backup-test");
    EXPECT_TRUE(report.applied.empty());
    EXPECT_EQ(report.from_version, plugmon::agent::store::schema_version(c));
}

TEST_F(backup_cli, dry_run_changes_nothing_and_an_occupied_schema_is_refused) {
    const std::string dst = fresh("dry_run");
    const auto dry = ctl("restore --dry-run --postgres " + shell_quote(dst) + " " + shell_quote(full()));
    ASSERT_EQ(dry.status, 0) << dry.err;
    EXPECT_NE(dry.out.find("dry run: would restore"), std::string::npos) << dry.out;
    EXPECT_NE(dry.out.find("query_rollups"), std::string::npos) << dry.out;
    EXPECT_FALSE(has_schema(dst, "plugmon"));
    EXPECT_EQ(query_text(dst, "SELECT count(*) FROM pg_extension WHERE extname = 'plugmon_sketch'"),
              "0|\n");

    ASSERT_EQ(ctl("restore --postgres " + shell_quote(dst) + " " + shell_quote(full())).status, 0);
    const std::string before = table_digest(dst);
    const auto again = ctl("restore --postgres " + shell_quote(dst) + " " + shell_quote(full()));
    EXPECT_EQ(again.status, 1);
    EXPECT_NE(again.err.find("schema plugmon already exists"), std::string::npos) << again.err;
    // The first few tables by name (which ones depends on the schema version): named, qualified.
    EXPECT_NE(again.err.find(" tables (plugmon."), std::string::npos) << again.err;
    EXPECT_EQ(table_digest(dst), before);
}

TEST_F(backup_cli, restores_under_a_new_schema_name) {
    const std::string dst = fresh("renamed");
    const auto r =
        ctl("restore --schema archive_2026 --postgres " + shell_quote(dst) + " " + shell_quote(full()));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(has_schema(dst, "plugmon"));
    EXPECT_EQ(table_digest(dst, "archive_2026"), table_digest(src_));
    // Beside a live store: the plugmon functions read the archived sketches.
    pqxx::connection d(dst);
    plugmon::agent::store::migrate(d, false, "backup-test");
    std::string archived = sketch_sql;
    archived.replace(archived.find("FROM plugmon.query_rollups"), 26,
                     "FROM archive_2026.query_rollups");
    EXPECT_EQ(query_text(dst, archived), query_text(src_, sketch_sql));
    const auto bad =
        ctl("restore --schema 'Bad-Name' --postgres " + shell_quote(dst) + " " + shell_quote(full()));
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("--schema"), std::string::npos) << bad.err;
}

// The timer and service in deploy/, checked by systemd's own verifier (with ExecStart pointed at
// the built plugmonctl, which it checks exists); a broken timer must fail the same check.
TEST(backup_units, pass_systemd_analyze_verify) {
    char tmpl[] = "/tmp/plugmon-backup-units.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string d = tmpl;
    std::string service = slurp(std::string(PLUGMON_SOURCE_DIR) + "/deploy/plugmon-backup.service");
    const std::string timer =
        slurp(std::string(PLUGMON_SOURCE_DIR) + "/deploy/plugmon-backup.timer");
    ASSERT_NE(service.find("/usr/local/bin/plugmonctl backup"), std::string::npos);
    ASSERT_NE(timer.find("OnCalendar="), std::string::npos);
    service.replace(service.find("/usr/local/bin/plugmonctl"), 25, PLUGMONCTL);
    std::ofstream(d + "/plugmon-backup.service") << service;
    std::ofstream(d + "/plugmon-backup.timer") << timer;
    const std::string verify = "systemd-analyze verify --man=no " +
                               shell_quote(d + "/plugmon-backup.timer") + " " +
                               shell_quote(d + "/plugmon-backup.service");
    const auto ok = run_shell(verify, d + "/stderr");
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_EQ(ok.err.find("plugmon-backup"), std::string::npos) << ok.err;

    std::string broken = timer;
    broken.replace(broken.find("OnCalendar="), 11, "OnCalendar=every-blue-moon\nX-Ignored=");
    std::ofstream(d + "/plugmon-backup.timer", std::ios::trunc) << broken;
    const auto bad = run_shell(verify, d + "/stderr");
    EXPECT_TRUE(bad.status != 0 || bad.err.find("plugmon-backup.timer") != std::string::npos)
        << bad.err;
    std::error_code ec;
    fs::remove_all(d, ec);
}

}  // namespace
