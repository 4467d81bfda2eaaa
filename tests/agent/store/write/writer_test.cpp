// The store writer in this process, on a real PostgreSQL 15: the merge of two batches of the same
// window, the ledger refusing a replay, an outage ridden out in the spool, and alert rows (history,
// current state, replays, submit_alerts from another thread during an outage), audit rows (taken
// from the trail with each window and at stop, replays), and every value type through the binary
// COPY. In one process so that the sanitizer builds see the spooler and writer threads.
#include "store/write/writer.hpp"
#include "aggregate/series.hpp"

#include "support/pg_server.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <string>
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

ps::writer_options options(const std::string& url, const std::filesystem::path& spool,
                           const std::string& host) {
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
pa::query_rollup rollup(const std::string& plugin, int n, std::uint64_t seed,
                        pa::dd_sketch& sketch) {
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

pa::window_batch window(std::chrono::system_clock::time_point start,
                        std::vector<pa::query_rollup> q) {
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
        ASSERT_TRUE(wait_until([&] { return w.stats().batches_written.load() == 1; }, 30s))
            << w.status().dump();
        EXPECT_EQ(w.stats().merged_batches.load(), std::uint64_t(run));
        EXPECT_TRUE(w.stop(10s));
    }
    pqxx::connection c(url);
    pqxx::work tx(c);
    const auto r = tx.exec1(
        "SELECT count(*), sum(calls), sum(errors), sum(rows), min(min_ns), max(max_ns), "
        "max(p99_ns),"
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
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        bytes.push_back(char(std::stoi(hex.substr(i, 2), nullptr, 16)));
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
    EXPECT_EQ(
        tx.exec1(
              "SELECT count(*) FROM plugmon.write_batches WHERE host = 'host-b' AND run_id = 42")[0]
            .as<int>(),
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
        w.submit(window(at - std::chrono::seconds(10 * i),
                        {rollup("audit", 10 + i, std::uint64_t(i), all)}));
    EXPECT_TRUE(wait_until([&] { return w.state() == "circuit_open"; }, 30s)) << w.status().dump();
    // The breaker may open before the spooler thread has appended every window (slow under TSan).
    EXPECT_TRUE(wait_until([&] { return w.spooled().batches() == 6u; }, 30s)) << w.status().dump();
    std::string text;
    w.render_metrics(text);
    EXPECT_NE(text.find("plugmon_store_circuit_state{state=\"open\"} 1"), std::string::npos)
        << text;
    EXPECT_NE(text.find("plugmon_store_spool_batches 6"), std::string::npos) << text;
    pg.restart();
    ASSERT_TRUE(wait_until([&] { return w.spooled().batches() == 0; }, 60s)) << w.status().dump();
    EXPECT_EQ(w.state(), "connected");
    EXPECT_TRUE(w.stop(10s));
    pqxx::connection c(url);
    pqxx::work tx(c);
    EXPECT_EQ(tx.exec1("SELECT sum(calls) FROM plugmon.query_rollups")[0].as<std::uint64_t>(),
              all.count());
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM plugmon.write_batches")[0].as<int>(), 6);
}

// ---- alert rows ---------------------------------------------------------------------------------

namespace {

/// One alert change as the engine makes it.
pa::alert_row alert(std::uint64_t seq, const std::string& fingerprint, const std::string& state,
                    std::chrono::system_clock::time_point at) {
    pa::alert_row a;
    a.at = at;
    a.seq = seq;
    a.fingerprint = fingerprint;
    a.rule = "PluginErrorRatioHigh";
    a.episode = "ep-" + fingerprint;
    a.event = state;
    a.state = state;
    a.severity = "warning";
    a.value = 0.125 * double(seq);
    a.labels_json = R"({"alertname":"PluginErrorRatioHigh","plugin":"billing"})";
    a.annotations_json = R"({"summary":"billing fails"})";
    a.active_at = at - 60s;
    if (state == "firing" || state == "resolved") a.fired_at = at - 10s;
    if (state == "resolved") a.resolved_at = at;
    return a;
}

std::string text(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec1(sql);
    return r[0].is_null() ? "NULL" : r[0].as<std::string>();
}

long long scalar(pqxx::connection& c, const std::string& sql) { return std::stoll(text(c, sql)); }

}  // namespace

TEST(writer, writes_a_windows_alert_rows_in_its_transaction_and_keeps_each_alerts_latest_state) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("alerts_in_window");
    scratch tmp;
    const auto at = bucket();
    pa::dd_sketch all;
    pa::window_batch w = window(at, {rollup("billing", 50, 1, all)});
    w.alerts.push_back(alert(1, "00000000000000aa", "pending", at));
    w.alerts.push_back(alert(2, "00000000000000aa", "firing", at + 10s));
    pa::alert_row ack = alert(3, "00000000000000aa", "firing", at + 20s);
    ack.event = "acknowledged";
    ack.detail = "by ops";
    ack.ack_json = R"({"by":"ops","comment":"on it"})";
    w.alerts.push_back(ack);
    pa::alert_row silence = alert(4, "", "inactive", at + 20s);
    silence.event = "silence";
    silence.value = std::numeric_limits<double>::quiet_NaN();
    silence.labels_json = "{not json";  // stored as a JSON string, not refused with the batch
    w.alerts.push_back(silence);
    ps::writer wr(options(url, tmp.dir / "spool", "host-a"));
    wr.start();
    wr.submit(std::move(w));
    ASSERT_TRUE(wait_until([&] { return wr.stats().batches_written.load() == 1; }, 30s))
        << wr.status().dump();
    EXPECT_EQ(wr.stats().rows_written[std::size_t(ps::writer::store_table::alert_events)].load(),
              4u);
    EXPECT_EQ(wr.status()["written"]["rows"]["alert_events"].get<std::uint64_t>(), 4u);
    std::string metrics;
    wr.render_metrics(metrics);
    EXPECT_NE(metrics.find("plugmon_store_rows_written_total{table=\"alert_events\"} 4"),
              std::string::npos)
        << metrics;
    EXPECT_TRUE(wr.stop(10s));

    pqxx::connection c(url);
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.alert_events WHERE host = 'host-a'"), 4);
    EXPECT_EQ(text(c,
                   "SELECT string_agg(event || ':' || state, ',' ORDER BY seq) FROM "
                   "plugmon.alert_events"),
              "pending:pending,firing:firing,acknowledged:firing,silence:inactive");
    EXPECT_EQ(text(c, "SELECT labels ->> 'plugin' FROM plugmon.alert_events WHERE seq = 1"),
              "billing");
    EXPECT_EQ(text(c, "SELECT ack IS NULL FROM plugmon.alert_events WHERE seq = 2"), "t");
    EXPECT_EQ(text(c, "SELECT ack ->> 'comment' FROM plugmon.alert_events WHERE seq = 3"), "on it");
    EXPECT_EQ(text(c, "SELECT labels #>> '{}' FROM plugmon.alert_events WHERE seq = 4"),
              "{not json");
    EXPECT_EQ(text(c, "SELECT value::text FROM plugmon.alert_events WHERE seq = 4"), "NaN");
    EXPECT_EQ(text(c, "SELECT value FROM plugmon.alert_events WHERE seq = 2"), "0.25");
    EXPECT_EQ(
        scalar(c, "SELECT extract(epoch FROM at)::bigint FROM plugmon.alert_events WHERE seq = 2"),
        std::chrono::duration_cast<std::chrono::seconds>((at + 10s).time_since_epoch()).count());
    // The current state: the fingerprinted alert at its latest change; the silence has none.
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.alerts"), 1);
    EXPECT_EQ(
        text(c,
             "SELECT state || ' ' || last_seq || ' ' || episode || ' ' || (ack ->> 'by') "
             "FROM plugmon.alerts WHERE host = 'host-a' AND fingerprint = '00000000000000aa'"),
        "firing 3 ep-00000000000000aa ops");
    EXPECT_EQ(text(c,
                   "SELECT (fired_at IS NOT NULL AND active_at < fired_at AND resolved_at IS NULL)"
                   "::text FROM plugmon.alerts"),
              "true");
    EXPECT_EQ(scalar(c, "SELECT sum(calls) FROM plugmon.query_rollups"), 50);
    EXPECT_EQ(scalar(c, "SELECT rows FROM plugmon.write_batches"), 1 + 1 + 4);
}

TEST(writer, replaying_alert_rows_writes_nothing_twice_even_under_another_batch_identity) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("alerts_replay");
    scratch tmp;
    const auto at = bucket();
    ps::batch b;
    b.host = "host-r";
    b.run_id = 7;
    b.seq = 1;
    b.window.bucket_start = at;
    b.window.alerts = {alert(10, "00000000000000bb", "pending", at),
                       alert(11, "00000000000000bb", "firing", at + 10s)};
    {
        ps::spool s({(tmp.dir / "spool").string(), 1ull << 30, false});
        s.append(b);
        s.append(b);   // a pop lost in a crash: the ledger skips it
        b.run_id = 8;  // the same rows in a batch the ledger does not know: the keys skip them
        s.append(b);
    }
    ps::writer w(options(url, tmp.dir / "spool", "host-r"));
    w.start();
    ASSERT_TRUE(wait_until([&] { return w.spooled().batches() == 0; }, 30s)) << w.status().dump();
    EXPECT_EQ(w.stats().batches_written.load(), 2u);
    EXPECT_EQ(w.stats().batches_duplicate.load(), 1u);
    EXPECT_EQ(w.stats().rows_duplicate[std::size_t(ps::writer::store_table::alert_events)].load(),
              2u);
    EXPECT_TRUE(w.stop(10s));
    pqxx::connection c(url);
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.alert_events"), 2);
    EXPECT_EQ(text(c, "SELECT state || ' ' || last_seq FROM plugmon.alerts"), "firing 11");
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.write_batches"), 2);
}

TEST(writer, the_alerts_current_state_never_goes_back_to_an_older_seq) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("alerts_forward");
    scratch tmp;
    const auto at = bucket();
    ps::writer w(options(url, tmp.dir / "spool", "host-f"));
    w.start();
    // Newest first: the resolve (seq 5), then a batch holding older changes (seq 3 and 4, in the
    // wrong order within the batch too), as a spool replayed out of order would deliver them.
    w.submit_alerts({alert(5, "00000000000000cc", "resolved", at + 40s)});
    w.submit_alerts({alert(4, "00000000000000cc", "firing", at + 30s),
                     alert(3, "00000000000000cc", "pending", at + 20s)});
    // Another alert: the later of two rows in one batch wins even when listed first.
    w.submit_alerts({alert(9, "00000000000000dd", "firing", at + 30s),
                     alert(8, "00000000000000dd", "pending", at + 20s)});
    ASSERT_TRUE(wait_until([&] { return w.stats().batches_written.load() == 3; }, 30s))
        << w.status().dump();
    EXPECT_TRUE(w.stop(10s));
    pqxx::connection c(url);
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.alert_events"), 5);
    EXPECT_EQ(text(c,
                   "SELECT state || ' ' || last_seq || ' ' || (resolved_at IS NOT NULL) FROM "
                   "plugmon.alerts "
                   "WHERE fingerprint = '00000000000000cc'"),
              "resolved 5 true");
    EXPECT_EQ(text(c,
                   "SELECT state || ' ' || last_seq FROM plugmon.alerts WHERE fingerprint = "
                   "'00000000000000dd'"),
              "firing 9");
    // An alert batch alone: its bucket is its first row's time, its length 0, its rows counted.
    EXPECT_EQ(
        scalar(c, "SELECT count(*) FROM plugmon.write_batches WHERE rows = 2 AND bucket_start = " +
                      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                         (at + 30s).time_since_epoch())
                                         .count()) +
                      " * interval '1 second' + 'epoch'::timestamptz"),
        2);
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.query_rollups"), 0);
}

TEST(writer, submit_alerts_from_other_threads_during_an_outage_spools_and_the_rows_arrive_after) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("alerts_outage");
    scratch tmp;
    ps::writer w(options(url, tmp.dir / "spool", "host-o"));
    w.start();
    ASSERT_TRUE(wait_until([&] { return w.state() == "connected"; }, 30s)) << w.status().dump();
    pg.stop("immediate");
    const auto at = bucket();
    pa::dd_sketch all;
    // The engine's thread submits alert changes while the pipeline's submits windows.
    constexpr int changes = 40, windows = 5;
    std::thread engine([&] {
        for (int i = 0; i < changes; ++i)
            w.submit_alerts(
                {alert(std::uint64_t(100 + i), "00000000000000e" + std::to_string(i % 4),
                       i < 36 ? "firing" : "resolved", at + std::chrono::seconds(i))});
    });
    for (int i = 0; i < windows; ++i)
        w.submit(window(at - std::chrono::seconds(10 * i),
                        {rollup("audit", 10 + i, std::uint64_t(i), all)}));
    engine.join();
    EXPECT_TRUE(
        wait_until([&] { return w.spooled().batches() == std::uint64_t(changes + windows); }, 30s))
        << w.status().dump();
    EXPECT_EQ(w.stats().batches_written.load(), 0u);
    EXPECT_NE(w.state(), "connected");
    pg.restart();
    ASSERT_TRUE(wait_until([&] { return w.spooled().batches() == 0; }, 60s)) << w.status().dump();
    EXPECT_EQ(w.stats().batches_written.load(), std::uint64_t(changes + windows));
    EXPECT_EQ(w.stats().rows_written[std::size_t(ps::writer::store_table::alert_events)].load(),
              std::uint64_t(changes));
    EXPECT_TRUE(w.stop(10s));
    pqxx::connection c(url);
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.alert_events WHERE host = 'host-o'"),
              changes);
    EXPECT_EQ(text(c,
                   "SELECT count(DISTINCT seq) || ' ' || min(seq) || ' ' || max(seq) FROM "
                   "plugmon.alert_events"),
              "40 100 139");
    // Each of the four alerts at its last change: seq 136..139, resolved.
    EXPECT_EQ(
        text(c,
             "SELECT string_agg(fingerprint || '=' || state || '@' || last_seq, ',' ORDER BY "
             "fingerprint) "
             "FROM plugmon.alerts"),
        "00000000000000e0=resolved@136,00000000000000e1=resolved@137,00000000000000e2=resolved@138,"
        "00000000000000e3=resolved@139");
    EXPECT_EQ(scalar(c, "SELECT sum(calls) FROM plugmon.query_rollups"), std::int64_t(all.count()));
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.write_batches"), changes + windows);
}

TEST(writer, binary_copy_stores_every_value_exactly_and_sql_reads_the_v2_sketch) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("binary");
    scratch tmp;
    // Microseconds in every time (the binary format counts them from 2000-01-01), names with
    // what text COPY had to escape, a count past bigint (saturates) and a fingerprint with the
    // top bit set (kept as the same 64 bits).
    const auto at = bucket() + 123456us;
    pa::dd_sketch sketch;
    pa::query_rollup q = rollup("tab\there", 300, 3, sketch);
    q.op = "new\nline\r";
    q.table = "back\\slash \\N";
    q.tenant = "\xc3\xa9\xe2\x98\x83 \"q\" 'q'";
    q.calls = std::numeric_limits<std::uint64_t>::max();
    ASSERT_EQ(q.sketch[4], 2) << "the agent writes sketch encoding v2";
    pa::window_batch w = window(at, {q});
    pa::slow_sample s;
    s.at = at + 7us;
    s.plugin = "p";
    s.op = "SELECT";
    s.table = "t";
    s.tenant = "";
    s.statement = "SELECT $1\tFROM \"x\"\n";
    s.fingerprint = 0xfedcba9876543210ull;
    s.duration_ns = 123'456'789;
    s.rows = 5;
    s.error = true;
    s.pid = 4242;
    w.slow.push_back(s);
    pa::resource_row r;
    r.at = at - 1us;
    r.pid = 77;
    r.process = "proc name";
    r.rss_bytes = 1ull << 40;
    r.heap_freed_bytes = 9;
    w.resources.push_back(r);

    ps::writer wr(options(url, tmp.dir / "spool", "host-b"));
    wr.start();
    wr.submit(std::move(w));
    ASSERT_TRUE(wait_until([&] { return wr.stats().batches_written.load() == 1; }, 30s))
        << wr.status().dump();
    EXPECT_TRUE(wr.stop(10s));

    pqxx::connection c(url);
    pqxx::work tx(c);
    const auto us = [](std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    };
    const auto row = tx.exec_params1(
        "SELECT (extract(epoch FROM bucket_start) * 1000000)::bigint, bucket_seconds, host, plugin,"
        " op, tbl, tenant, calls, p99_ns, sketch = $1::bytea, plugmon.sketch_quantile(sketch, "
        "0.99),"
        " plugmon.sketch_count(sketch) FROM plugmon.query_rollups",
        pqxx::binarystring(q.sketch));
    EXPECT_EQ(row[0].as<std::int64_t>(), us(at));
    EXPECT_EQ(row[1].as<int>(), 10);
    EXPECT_EQ(row[2].as<std::string>(), "host-b");
    EXPECT_EQ(row[3].as<std::string>(), q.plugin);
    EXPECT_EQ(row[4].as<std::string>(), q.op);
    EXPECT_EQ(row[5].as<std::string>(), q.table);
    EXPECT_EQ(row[6].as<std::string>(), q.tenant);
    EXPECT_EQ(row[7].as<std::int64_t>(), std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(row[8].as<std::uint64_t>(), sketch.quantile(0.99));
    EXPECT_TRUE(row[9].as<bool>()) << "the sketch bytes arrive unchanged";
    EXPECT_EQ(row[10].as<std::uint64_t>(), sketch.quantile(0.99)) << "SQL decodes encoding v2";
    EXPECT_EQ(row[11].as<std::uint64_t>(), 300u);

    const auto slow = tx.exec1(
        "SELECT (extract(epoch FROM at) * 1000000)::bigint, pid, tenant, fingerprint, statement,"
        " duration_ns, rows, error FROM plugmon.slow_queries");
    EXPECT_EQ(slow[0].as<std::int64_t>(), us(s.at));
    EXPECT_EQ(slow[1].as<int>(), 4242);
    EXPECT_EQ(slow[2].as<std::string>(), "");
    EXPECT_EQ(slow[3].as<std::int64_t>(), static_cast<std::int64_t>(s.fingerprint));
    EXPECT_EQ(slow[4].as<std::string>(), s.statement);
    EXPECT_EQ(slow[5].as<std::int64_t>(), 123'456'789);
    EXPECT_EQ(slow[6].as<std::int64_t>(), 5);
    EXPECT_TRUE(slow[7].as<bool>());

    const auto res = tx.exec1(
        "SELECT (extract(epoch FROM at) * 1000000)::bigint, pid, process, plugin, rss_bytes,"
        " cpu_ns, heap_freed_bytes FROM plugmon.resource_samples");
    EXPECT_EQ(res[0].as<std::int64_t>(), us(r.at));
    EXPECT_EQ(res[1].as<int>(), 77);
    EXPECT_EQ(res[2].as<std::string>(), "proc name");
    EXPECT_EQ(res[3].as<std::string>(), "");
    EXPECT_EQ(res[4].as<std::int64_t>(), std::int64_t(1) << 40);
    EXPECT_EQ(res[5].as<std::int64_t>(), 0);
    EXPECT_EQ(res[6].as<std::int64_t>(), 9);
}

// ---- audit rows ---------------------------------------------------------------------------------

namespace {

pa::audit::entry audit_entry(const std::string& actor, const std::string& action, unsigned status) {
    pa::audit::entry e;
    e.actor = actor;
    e.client = "127.0.0.1";
    e.action = action;
    e.target = "/api/v1/silences";
    e.status = status;
    e.detail = "created";
    return e;
}

}  // namespace

TEST(writer, audit_entries_ride_with_the_next_window_and_stop_writes_the_last_of_them) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("audit_rows");
    scratch tmp;
    auto trail = std::make_shared<pa::audit::trail>();
    trail->record(audit_entry("before-the-store", "POST /api/v1/silences", 201));  // not queued
    ps::writer w(options(url, tmp.dir / "spool", "host-a"));
    w.take_audit_from(trail);
    w.start();
    trail->record(audit_entry("ops", "POST /api/v1/silences", 201));
    trail->record(audit_entry("ops", "DELETE /api/v1/silences/{id}", 404));
    w.submit(pa::window_batch{});  // an empty window: it carries the two entries all the same
    ASSERT_TRUE(wait_until([&] { return w.stats().batches_written.load() == 1; }, 30s))
        << w.status().dump();
    w.submit(pa::window_batch{});  // nothing recorded since: nothing to write
    trail->record(audit_entry("SIGHUP", "reload", 200));  // after the last window
    EXPECT_TRUE(w.stop(10s));
    EXPECT_EQ(w.stats().batches_submitted.load(), 2u);
    EXPECT_EQ(w.stats().batches_written.load(), 2u);
    EXPECT_EQ(w.stats().rows_written[std::size_t(ps::writer::store_table::audit)].load(), 3u);
    pqxx::connection c(url);
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.audit"), 3);
    EXPECT_EQ(scalar(c, "SELECT count(DISTINCT run_id) FROM plugmon.audit WHERE run_id = " +
                            std::to_string(w.run_id())),
              1);
    EXPECT_EQ(text(c,
                   "SELECT string_agg(seq || ' ' || actor || ' ' || client || ' ' || action || "
                   "' ' || status || ' ' || target || ' ' || detail || ' ' || host, ' | ' "
                   "ORDER BY seq) FROM plugmon.audit"),
              "2 ops 127.0.0.1 POST /api/v1/silences 201 /api/v1/silences created host-a | "
              "3 ops 127.0.0.1 DELETE /api/v1/silences/{id} 404 /api/v1/silences created host-a | "
              "4 SIGHUP 127.0.0.1 reload 200 /api/v1/silences created host-a");
    EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.audit WHERE at > now() - interval '5 min'"),
              3);
}

TEST(writer, audit_rows_replayed_without_their_ledger_entry_are_not_written_twice) {
    auto& pg = plugmon::test::pg_server::shared();
    const std::string url = pg.create_database("audit_replay");
    scratch tmp;
    ps::batch b;
    b.host = "host-r";
    b.run_id = 9;
    b.seq = 1;
    b.window.bucket_start = bucket();
    b.audit = {audit_entry("ops", "POST /api/v1/silences", 201),
               audit_entry("ops", "POST /-/reload", 200)};
    b.audit[0].seq = 1;
    b.audit[1].seq = 2;
    b.audit[0].at = b.audit[1].at = bucket();
    for (int round = 0; round < 2; ++round) {
        {
            ps::spool s({(tmp.dir / "spool").string(), 1ull << 30, false});
            s.append(b);
            s.append(b);  // a pop lost in a crash: the ledger skips it
        }
        ps::writer w(options(url, tmp.dir / "spool", "host-r"));
        w.start();
        ASSERT_TRUE(wait_until([&] { return w.spooled().batches() == 0; }, 30s))
            << w.status().dump();
        EXPECT_EQ(w.stats().batches_written.load(), 1u);
        EXPECT_EQ(w.stats().batches_duplicate.load(), 1u);
        EXPECT_EQ(w.stats().rows_duplicate[std::size_t(ps::writer::store_table::audit)].load(), 2u);
        EXPECT_TRUE(w.stop(10s));
        // Retention pruned the ledger: the next replay has only the rows' own keys to stop it.
        pqxx::connection c(url);
        pqxx::nontransaction prune(c);
        prune.exec("DELETE FROM plugmon.write_batches");
        prune.commit();
        EXPECT_EQ(scalar(c, "SELECT count(*) FROM plugmon.audit"), 2) << "round " << round;
    }
}
