// Unit tests of the batch payload codec and the spool's record frame: round trips and refusals.
#include "store/write/batch.hpp"
#include "store/write/spool.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

namespace {

using namespace plugmon::agent;
using namespace plugmon::agent::store;
using std::chrono::nanoseconds;
using std::chrono::system_clock;

constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

system_clock::time_point at_ns(std::int64_t ns) {
    return system_clock::time_point(
        std::chrono::duration_cast<system_clock::duration>(nanoseconds(ns)));
}

/// A batch with every field set to a distinct value.
batch full_batch() {
    batch b;
    b.host = "db-host-01.example";
    b.run_id = 0x0123456789abcdefull;
    b.seq = 42;
    b.window.bucket_start = at_ns(1'700'000'000'123'456'789);
    b.window.length = nanoseconds(10'000'000'000);
    query_rollup q;
    q.plugin = "orders";
    q.op = "SELECT";
    q.table = "public.orders";
    q.tenant = "tenant-ä";
    q.calls = 11, q.errors = 12, q.rows = 13, q.total_ns = 14, q.min_ns = 15, q.max_ns = 16;
    q.p50_ns = 17, q.p95_ns = 18, q.p99_ns = 19;
    q.sketch = std::string("PMDS\0\x01\x06\0\0\xff", 10);
    b.window.queries.push_back(q);
    q.plugin = "billing";
    q.sketch.clear();
    q.calls = 100;
    b.window.queries.push_back(q);
    execution_rollup e;
    e.plugin = "orders";
    e.tenant = "t1";
    e.calls = 21, e.errors = 22, e.wall_ns = 23, e.cpu_ns = 24;
    b.window.executions.push_back(e);
    slow_sample s;
    s.at = at_ns(1'700'000'001'000'000'007);
    s.plugin = "orders";
    s.op = "UPDATE";
    s.table = "public.orders";
    s.tenant = "t1";
    s.statement = "UPDATE orders SET note = $1 WHERE id = $2 -- 日本語";
    s.fingerprint = 31, s.duration_ns = 32, s.rows = 33;
    s.error = true;
    s.pid = 4321;
    b.window.slow.push_back(s);
    resource_row r;
    r.at = at_ns(1'700'000'002'000'000'000);
    r.pid = 77;
    r.process = "worker";
    r.rss_bytes = 41, r.cpu_ns = 42, r.open_fds = 43, r.threads = 44, r.read_bytes = 45;
    r.write_bytes = 46, r.heap_allocated_bytes = 47, r.heap_freed_bytes = 48;
    b.window.resources.push_back(r);
    r.pid = 0;
    r.process.clear();
    r.plugin = "orders";
    b.window.resources.push_back(r);
    alert_row a;
    a.at = at_ns(1'700'000'003'000'000'001);
    a.seq = 51;
    a.fingerprint = "0123456789abcdef";
    a.rule = "PluginErrorRatioHigh";
    a.episode = "ep-7";
    a.event = "firing";
    a.state = "firing";
    a.severity = "critical";
    a.value = 0.25;
    a.detail = "über 20 %";
    a.labels_json = R"({"alertname":"PluginErrorRatioHigh","plugin":"orders"})";
    a.annotations_json = R"({"summary":"orders fails 25 % of its queries"})";
    a.ack_json = R"({"by":"ops","comment":"looking","at":"2026-01-01T00:00:00Z"})";
    a.active_at = at_ns(1'700'000'000'000'000'002);
    a.fired_at = at_ns(1'700'000'001'000'000'003);
    a.resolved_at = at_ns(1'700'000'004'000'000'004);
    b.window.alerts.push_back(a);
    alert_row silence;  // defaults: no fingerprint, times at the epoch ("not yet"), ack null
    silence.at = at_ns(1'700'000'003'500'000'000);
    silence.seq = 52;
    silence.event = "silence";
    silence.detail = "created by ops";
    silence.value = -1.5;
    b.window.alerts.push_back(silence);
    audit::entry u;
    u.at = at_ns(1'700'000'005'000'000'001);
    u.seq = 61;
    u.actor = "ops-token";
    u.client = "127.0.0.1";
    u.action = "POST /api/v1/silences";
    u.target = "/api/v1/silences";
    u.status = 201;
    u.detail = "-";
    b.audit.push_back(u);
    u.seq = 62;
    u.actor = "SIGHUP";
    u.client = "-";
    u.action = "reload";
    u.target = "/etc/plugmon/agent.toml";
    u.status = 500;
    u.detail = "refused: alert_rules: ungültig";
    b.audit.push_back(u);
    return b;
}

/// The previous release's encoding (format version 1) of the batch of v1_batch(), as that
/// release's encode_batch wrote it into its spool.
constexpr const char* v1_payload_hex =
    "504d42410100000001000000680100000000000000020000000000000000002a"
    "36fe9c971700e40b5402000000010000000100000070010000006f0100000074"
    "0000000001000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000100000073010000000100000070000000000100"
    "0000000000000000000000000000000000000000000000000000000000000100"
    "0000000000000000000001000000700000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000010000000001000000"
    "0000000000000000070000000000000000000000090000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000";

/// What v1_payload_hex holds.
batch v1_batch() {
    batch b;
    b.host = "h";
    b.run_id = 1;
    b.seq = 2;
    b.window.bucket_start = at_ns(1'700'000'000'000'000'000);
    b.window.length = nanoseconds(10'000'000'000);
    b.window.queries.push_back(query_rollup{"p", "o", "t", "", 1, 0, 0, 0, 0, 0, 0, 0, 0, "s"});
    b.window.executions.push_back(execution_rollup{"p", "", 1, 0, 0, 0});
    slow_sample s;
    s.plugin = "p";
    s.error = true;
    b.window.slow.push_back(s);
    resource_row r;
    r.pid = 7;
    r.rss_bytes = 9;
    b.window.resources.push_back(r);
    return b;
}

/// The previous release's encoding (format version 2) of the batch of v2_batch(), as that
/// release's encode_batch wrote it into its spool: one query rollup and one alert row.
constexpr const char* v2_payload_hex =
    "504d42410200000001000000680100000000000000030000000000000000002a"
    "36fe9c971700e40b5402000000010000000100000070010000006f0100000074"
    "0000000001000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000100000073000000000000000000000000010000"
    "0000f22f60ff9c97170500000000000000020000006631010000007200000000"
    "06000000666972696e6706000000666972696e67070000007761726e696e6700"
    "0000000000e03f00000000020000007b7d020000007b7d040000006e756c6c00"
    "0000000000000000000000000000000000000000000000";

/// What v2_payload_hex holds.
batch v2_batch() {
    batch b;
    b.host = "h";
    b.run_id = 1;
    b.seq = 3;
    b.window.bucket_start = at_ns(1'700'000'000'000'000'000);
    b.window.length = nanoseconds(10'000'000'000);
    b.window.queries.push_back(query_rollup{"p", "o", "t", "", 1, 0, 0, 0, 0, 0, 0, 0, 0, "s"});
    alert_row a;
    a.at = at_ns(1'700'000'005'000'000'000);
    a.seq = 5;
    a.fingerprint = "f1";
    a.rule = "r";
    a.event = "firing";
    a.state = "firing";
    a.severity = "warning";
    a.value = 0.5;
    a.labels_json = "{}";
    b.window.alerts.push_back(a);
    return b;
}

std::string from_hex(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

/// `b` encoded as version 2 would have it: the version word 2 and no audit section. Only for a
/// batch without audit rows.
std::string as_version_2(const batch& b) {
    std::string p = encode_batch(b);
    p[4] = 2;
    p.resize(p.size() - 4);  // the empty audit section: a u32 count of 0
    return p;
}

/// `b` encoded as version 1 would have it: the version word 1, no alert and no audit section.
/// Only for a batch without alert or audit rows.
std::string as_version_1(const batch& b) {
    std::string p = as_version_2(b);
    p[4] = 1;
    p.resize(p.size() - 4);  // the empty alert section
    return p;
}

std::uint64_t bits(double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, sizeof u);
    return u;
}

/// A small batch: one element of each kind, short strings.
batch small_batch() {
    batch b;
    b.host = "h";
    b.run_id = 1;
    b.seq = 2;
    b.window.queries.push_back(query_rollup{"p", "o", "t", "", 1, 0, 0, 0, 0, 0, 0, 0, 0, "s"});
    b.window.executions.push_back(execution_rollup{"p", "", 1, 0, 0, 0});
    slow_sample s;
    s.plugin = "p";
    b.window.slow.push_back(s);
    b.window.resources.push_back(resource_row{});
    alert_row a;
    a.fingerprint = "f";
    b.window.alerts.push_back(a);
    audit::entry e;
    e.actor = "a";
    e.detail = "d";
    b.audit.push_back(e);
    return b;
}

/// What a version-2 payload can hold: no audit rows.
batch without_audit(batch b) {
    b.audit.clear();
    return b;
}

/// What a version-1 payload can hold: no alert and no audit rows.
batch without_alerts_or_audit(batch b) {
    b.window.alerts.clear();
    b.audit.clear();
    return b;
}

void expect_equal(const batch& a, const batch& b) {
    EXPECT_EQ(a.host, b.host);
    EXPECT_EQ(a.run_id, b.run_id);
    EXPECT_EQ(a.seq, b.seq);
    EXPECT_EQ(a.window.bucket_start, b.window.bucket_start);
    EXPECT_EQ(a.window.length, b.window.length);
    ASSERT_EQ(a.window.queries.size(), b.window.queries.size());
    for (std::size_t i = 0; i < a.window.queries.size(); ++i) {
        const query_rollup &x = a.window.queries[i], &y = b.window.queries[i];
        EXPECT_EQ(x.plugin, y.plugin);
        EXPECT_EQ(x.op, y.op);
        EXPECT_EQ(x.table, y.table);
        EXPECT_EQ(x.tenant, y.tenant);
        EXPECT_EQ(x.calls, y.calls);
        EXPECT_EQ(x.errors, y.errors);
        EXPECT_EQ(x.rows, y.rows);
        EXPECT_EQ(x.total_ns, y.total_ns);
        EXPECT_EQ(x.min_ns, y.min_ns);
        EXPECT_EQ(x.max_ns, y.max_ns);
        EXPECT_EQ(x.p50_ns, y.p50_ns);
        EXPECT_EQ(x.p95_ns, y.p95_ns);
        EXPECT_EQ(x.p99_ns, y.p99_ns);
        EXPECT_EQ(x.sketch, y.sketch);
    }
    ASSERT_EQ(a.window.executions.size(), b.window.executions.size());
    for (std::size_t i = 0; i < a.window.executions.size(); ++i) {
        const execution_rollup &x = a.window.executions[i], &y = b.window.executions[i];
        EXPECT_EQ(x.plugin, y.plugin);
        EXPECT_EQ(x.tenant, y.tenant);
        EXPECT_EQ(x.calls, y.calls);
        EXPECT_EQ(x.errors, y.errors);
        EXPECT_EQ(x.wall_ns, y.wall_ns);
        EXPECT_EQ(x.cpu_ns, y.cpu_ns);
    }
    ASSERT_EQ(a.window.slow.size(), b.window.slow.size());
    for (std::size_t i = 0; i < a.window.slow.size(); ++i) {
        const slow_sample &x = a.window.slow[i], &y = b.window.slow[i];
        EXPECT_EQ(x.at, y.at);
        EXPECT_EQ(x.plugin, y.plugin);
        EXPECT_EQ(x.op, y.op);
        EXPECT_EQ(x.table, y.table);
        EXPECT_EQ(x.tenant, y.tenant);
        EXPECT_EQ(x.statement, y.statement);
        EXPECT_EQ(x.fingerprint, y.fingerprint);
        EXPECT_EQ(x.duration_ns, y.duration_ns);
        EXPECT_EQ(x.rows, y.rows);
        EXPECT_EQ(x.error, y.error);
        EXPECT_EQ(x.pid, y.pid);
    }
    ASSERT_EQ(a.window.resources.size(), b.window.resources.size());
    for (std::size_t i = 0; i < a.window.resources.size(); ++i) {
        const resource_row &x = a.window.resources[i], &y = b.window.resources[i];
        EXPECT_EQ(x.at, y.at);
        EXPECT_EQ(x.pid, y.pid);
        EXPECT_EQ(x.process, y.process);
        EXPECT_EQ(x.plugin, y.plugin);
        EXPECT_EQ(x.rss_bytes, y.rss_bytes);
        EXPECT_EQ(x.cpu_ns, y.cpu_ns);
        EXPECT_EQ(x.open_fds, y.open_fds);
        EXPECT_EQ(x.threads, y.threads);
        EXPECT_EQ(x.read_bytes, y.read_bytes);
        EXPECT_EQ(x.write_bytes, y.write_bytes);
        EXPECT_EQ(x.heap_allocated_bytes, y.heap_allocated_bytes);
        EXPECT_EQ(x.heap_freed_bytes, y.heap_freed_bytes);
    }
    ASSERT_EQ(a.window.alerts.size(), b.window.alerts.size());
    for (std::size_t i = 0; i < a.window.alerts.size(); ++i) {
        const alert_row &x = a.window.alerts[i], &y = b.window.alerts[i];
        EXPECT_EQ(x.at, y.at);
        EXPECT_EQ(x.seq, y.seq);
        EXPECT_EQ(x.fingerprint, y.fingerprint);
        EXPECT_EQ(x.rule, y.rule);
        EXPECT_EQ(x.episode, y.episode);
        EXPECT_EQ(x.event, y.event);
        EXPECT_EQ(x.state, y.state);
        EXPECT_EQ(x.severity, y.severity);
        EXPECT_EQ(bits(x.value), bits(y.value)) << x.value << " vs " << y.value;
        EXPECT_EQ(x.detail, y.detail);
        EXPECT_EQ(x.labels_json, y.labels_json);
        EXPECT_EQ(x.annotations_json, y.annotations_json);
        EXPECT_EQ(x.ack_json, y.ack_json);
        EXPECT_EQ(x.active_at, y.active_at);
        EXPECT_EQ(x.fired_at, y.fired_at);
        EXPECT_EQ(x.resolved_at, y.resolved_at);
    }
    ASSERT_EQ(a.audit.size(), b.audit.size());
    for (std::size_t i = 0; i < a.audit.size(); ++i) {
        const audit::entry &x = a.audit[i], &y = b.audit[i];
        EXPECT_EQ(x.at, y.at);
        EXPECT_EQ(x.seq, y.seq);
        EXPECT_EQ(x.actor, y.actor);
        EXPECT_EQ(x.client, y.client);
        EXPECT_EQ(x.action, y.action);
        EXPECT_EQ(x.target, y.target);
        EXPECT_EQ(x.status, y.status);
        EXPECT_EQ(x.detail, y.detail);
    }
}

/// Runs `f`, which must throw spool_error; returns its message ("" if it did not throw).
template <class F>
std::string refusal(F&& f) {
    try {
        f();
    } catch (const spool_error& e) {
        return e.what();
    }
    return "";
}

TEST(batch, round_trips_every_field) {
    const batch b = full_batch();
    const std::string payload = encode_batch(b);
    const batch back = decode_batch(payload);
    expect_equal(b, back);
    EXPECT_EQ(encode_batch(back), payload);  // one encoding per batch
}

TEST(batch, round_trips_an_empty_window) {
    const batch b;
    const batch back = decode_batch(encode_batch(b));
    expect_equal(b, back);
    EXPECT_EQ(back.rows(), 0u);
    EXPECT_EQ(back.calls(), 0u);
}

TEST(batch, round_trips_extreme_values_long_strings_and_binary_bytes) {
    batch b = full_batch();
    b.run_id = u64_max;
    b.seq = u64_max;
    b.window.bucket_start = at_ns(std::numeric_limits<std::int64_t>::min());
    b.window.length = nanoseconds(std::numeric_limits<std::int64_t>::max());
    b.host = std::string(1 << 20, 'x') + "\xf0\x9f\x90\x98";  // 1 MiB and a 4-byte UTF-8 char
    std::string binary;
    for (int i = 0; i < 4096; ++i) binary.push_back(static_cast<char>(i % 256));  // NULs included
    b.window.queries[0].sketch = binary;
    query_rollup& q = b.window.queries[1];
    q.calls = q.errors = q.rows = q.total_ns = q.min_ns = q.max_ns = u64_max;
    q.p50_ns = q.p95_ns = q.p99_ns = u64_max;
    b.window.slow[0].pid = std::numeric_limits<int>::min();
    b.window.slow[0].fingerprint = u64_max;
    b.window.slow[0].at = at_ns(std::numeric_limits<std::int64_t>::max());
    b.window.resources[0].pid = std::numeric_limits<int>::max();
    b.window.resources[0].heap_freed_bytes = u64_max;
    b.window.executions[0].cpu_ns = u64_max;
    alert_row& a = b.window.alerts[0];
    a.seq = u64_max;
    a.at = at_ns(std::numeric_limits<std::int64_t>::min());
    a.resolved_at = at_ns(std::numeric_limits<std::int64_t>::max());
    a.value = -std::numeric_limits<double>::infinity();
    a.detail = binary;  // NULs and every other byte
    b.window.alerts[1].value = std::numeric_limits<double>::quiet_NaN();
    b.window.alerts.push_back(a);
    b.window.alerts.back().value = std::numeric_limits<double>::denorm_min();
    b.window.alerts.back().labels_json = std::string(1 << 16, '{');
    const batch back = decode_batch(encode_batch(b));
    expect_equal(b, back);
    EXPECT_TRUE(std::isnan(back.window.alerts[1].value));
}

TEST(batch, counts_rows_and_calls) {
    const batch b = full_batch();
    EXPECT_EQ(b.rows(), 2u + 1u + 1u + 2u + 2u + 2u);  // alert and audit rows count too
    EXPECT_EQ(b.calls(), 11u + 100u);
}

TEST(batch, rejects_every_truncation_naming_the_field) {
    for (const std::string& payload :
         {encode_batch(small_batch()), encode_batch(full_batch()),
          as_version_2(without_audit(small_batch())), as_version_2(without_audit(full_batch())),
          as_version_1(without_alerts_or_audit(small_batch())),
          as_version_1(without_alerts_or_audit(full_batch()))}) {
        for (std::size_t n = 0; n < payload.size(); ++n) {
            const std::string why =
                refusal([&] { decode_batch(std::string_view(payload).substr(0, n)); });
            ASSERT_EQ(why.rfind("batch: ", 0), 0u) << "prefix of " << n << " bytes: " << why;
            // "batch: <field>: <problem>", where the field is a real name
            const std::string field = why.substr(7, why.find(": ", 7) - 7);
            EXPECT_FALSE(field.empty()) << why;
        }
    }
    EXPECT_EQ(refusal([] { decode_batch(""); }), "batch: magic: truncated (needs 4 bytes, 0 left)");
    const std::string payload = encode_batch(small_batch());
    EXPECT_EQ(refusal([&] { decode_batch(std::string_view(payload).substr(0, 10)); }),
              "batch: host: truncated (needs 4 bytes, 2 left)");
    EXPECT_EQ(
        refusal([&] { decode_batch(std::string_view(payload).substr(0, payload.size() - 1)); }),
        "batch: audit[0].detail: length 1 exceeds the 0 bytes left");
    const std::string v2 = as_version_2(without_audit(small_batch()));
    EXPECT_EQ(refusal([&] { decode_batch(std::string_view(v2).substr(0, v2.size() - 1)); }),
              "batch: alerts[0].resolved_at: truncated (needs 8 bytes, 7 left)");
    const std::string v1 = as_version_1(v1_batch());
    EXPECT_EQ(refusal([&] { decode_batch(std::string_view(v1).substr(0, v1.size() - 1)); }),
              "batch: resources: 1 elements need at least 84 bytes, 83 left");
    // Inside an element whose count passed: the last query's sketch length of the full batch,
    // found back from the first execution (count, "orders", then tenant "t1").
    const std::string full = encode_batch(full_batch());
    const std::size_t sketch_end = full.find("t1", full.find("billing")) - 4 - 6 - 4 - 4;
    EXPECT_EQ(refusal([&] { decode_batch(std::string_view(full).substr(0, sketch_end - 2)); }),
              "batch: queries[1].sketch: truncated (needs 4 bytes, 2 left)");
}

TEST(batch, decodes_a_version_1_payload_of_the_previous_release_without_alert_rows) {
    const std::string v1 = from_hex(v1_payload_hex);
    ASSERT_EQ(v1.size(), 340u);
    const batch back = decode_batch(v1);
    expect_equal(v1_batch(), back);
    EXPECT_TRUE(back.window.alerts.empty());
    EXPECT_EQ(back.rows(), 4u);  // what its record header says: the spool checks the two agree
    // This build writes version 3: the same bytes, version 3, empty alert and audit sections.
    std::string v3 = v1;
    v3[4] = 3;
    v3.append(8, '\0');
    EXPECT_EQ(encode_batch(back), v3);
    EXPECT_EQ(as_version_1(v1_batch()), v1);
    expect_equal(v1_batch(), decode_batch(v3));
    // Every batch without alert or audit rows reads back from its version-1 form.
    expect_equal(without_alerts_or_audit(full_batch()),
                 decode_batch(as_version_1(without_alerts_or_audit(full_batch()))));
}

TEST(batch, decodes_a_version_2_payload_of_the_previous_release_without_audit_rows) {
    const std::string v2 = from_hex(v2_payload_hex);
    ASSERT_EQ(v2.size(), 279u);
    const batch back = decode_batch(v2);
    expect_equal(v2_batch(), back);
    EXPECT_TRUE(back.audit.empty());
    EXPECT_EQ(back.rows(), 2u);  // what its record header says: the spool checks the two agree
    // This build writes version 3: the same bytes, version 3, an empty audit section.
    std::string v3 = v2;
    v3[4] = 3;
    v3.append(4, '\0');
    EXPECT_EQ(encode_batch(back), v3);
    EXPECT_EQ(as_version_2(v2_batch()), v2);
    expect_equal(v2_batch(), decode_batch(v3));
}

TEST(batch, decodes_a_version_2_payload_without_audit_rows_and_writes_it_as_version_3) {
    // The previous release's spool: its last section holds alert rows, no audit section follows.
    const batch b = without_audit(full_batch());
    const std::string v2 = as_version_2(b);
    ASSERT_EQ(v2[4], 2);
    const batch back = decode_batch(v2);
    expect_equal(b, back);
    EXPECT_TRUE(back.audit.empty());
    EXPECT_EQ(back.rows(), b.rows());  // what its record header says
    EXPECT_EQ(encode_batch(back).substr(6), v2.substr(6) + std::string(4, '\0'));
    EXPECT_EQ(encode_batch(back)[4], 3);
    // The old spool's alert rows are still there, field by field.
    ASSERT_EQ(back.window.alerts.size(), 2u);
    EXPECT_EQ(back.window.alerts[0].ack_json, b.window.alerts[0].ack_json);
    // An audit section is not part of version 2: an empty one is trailing bytes there, and a
    // version-3 payload that lacks it is truncated.
    EXPECT_EQ(refusal([&] { decode_batch(v2 + std::string(4, '\0')); }),
              "batch: end: 4 trailing bytes after the last alert row");
    std::string v3 = v2;
    v3[4] = 3;
    EXPECT_EQ(refusal([&] { decode_batch(v3); }),
              "batch: audit: truncated (needs 4 bytes, 0 left)");
}

TEST(batch, refuses_bad_audit_rows_naming_the_row_and_the_field) {
    const std::string full = encode_batch(full_batch());
    // audit[1] ends with status 500 and detail "refused: alert_rules: ungültig" (31 bytes).
    const std::size_t detail = 4 + std::string("refused: alert_rules: ungültig").size();
    EXPECT_EQ(refusal([&] { decode_batch(full.substr(0, full.size() - detail - 2)); }),
              "batch: audit[1].status: truncated (needs 4 bytes, 2 left)");
    std::string bad = full;
    bad[full.size() - detail + 3] = '\x7f';  // the detail's length, high byte
    const std::string why = refusal([&] { decode_batch(bad); });
    EXPECT_EQ(why.rfind("batch: audit[1].detail: length ", 0), 0u) << why;
    // A count that claims more rows than the bytes left could hold.
    bad = encode_batch(without_audit(small_batch()));
    bad[bad.size() - 4] = '\x10';
    EXPECT_EQ(refusal([&] { decode_batch(bad); }),
              "batch: audit: 16 elements need at least 640 bytes, 0 left");
}

TEST(batch, a_version_1_payload_ends_after_its_resource_rows) {
    const std::string v1 = from_hex(v1_payload_hex);
    // An alert section is not part of version 1: one is trailing bytes there.
    EXPECT_EQ(refusal([&] { decode_batch(v1 + std::string(4, '\0')); }),
              "batch: end: 4 trailing bytes after the last resource row");
    EXPECT_EQ(refusal([&] { decode_batch(v1 + "x"); }),
              "batch: end: 1 trailing bytes after the last resource row");
    // A version-2 payload that lacks its alert section is truncated.
    std::string v2 = v1;
    v2[4] = 2;
    EXPECT_EQ(refusal([&] { decode_batch(v2); }),
              "batch: alerts: truncated (needs 4 bytes, 0 left)");
}

TEST(batch, refuses_bad_alert_rows_naming_the_row_and_the_field) {
    const std::string full = encode_batch(without_audit(full_batch()));
    const std::size_t audit_section = 4;  // after the alert rows: the audit count, 0
    // The annotations of alerts[0]: its str starts with a u32 length, 4 bytes before the text.
    const std::size_t text_at = full.find(R"({"summary")");
    ASSERT_NE(text_at, std::string::npos);
    const std::size_t length_at = text_at - 4;
    EXPECT_EQ(refusal([&] { decode_batch(std::string_view(full).substr(0, length_at + 2)); }),
              "batch: alerts[0].annotations_json: truncated (needs 4 bytes, 2 left)");
    std::string bad = full;
    bad[length_at + 3] = '\x7f';
    const std::string why = refusal([&] { decode_batch(bad); });
    EXPECT_EQ(why.rfind("batch: alerts[0].annotations_json: length ", 0), 0u) << why;
    EXPECT_NE(why.find(" bytes left"), std::string::npos) << why;
    // The second alert row ends with its value, detail "created by ops", labels "{}",
    // annotations "{}", ack "null" and three time points: cut it just before the value.
    const std::size_t after_value = (4 + 14) + (4 + 2) + (4 + 2) + (4 + 4) + 3 * 8;
    const std::size_t end = full.size() - audit_section;
    EXPECT_EQ(refusal([&] { decode_batch(full.substr(0, end - after_value - 8)); }),
              "batch: alerts[1].value: truncated (needs 8 bytes, 0 left)");
    EXPECT_EQ(refusal([&] { decode_batch(full.substr(0, end - 3 * 8 + 4)); }),
              "batch: alerts[1].active_at: truncated (needs 8 bytes, 4 left)");
    // A count that claims more rows than the bytes left could hold (the audit count's 4).
    bad = encode_batch(without_alerts_or_audit(small_batch()));
    bad[bad.size() - audit_section - 4] = '\x10';
    EXPECT_EQ(refusal([&] { decode_batch(bad); }),
              "batch: alerts: 16 elements need at least 1408 bytes, 4 left");
}

TEST(batch, rejects_every_bit_flip_of_its_fixed_header_naming_the_field) {
    const std::string payload = encode_batch(small_batch());
    const char* fields[] = {"magic",   "magic",   "magic", "magic",
                            "version", "version", "flags", "flags"};
    for (std::size_t byte = 0; byte < 8; ++byte)
        for (int bit = 0; bit < 8; ++bit) {
            std::string bad = payload;
            bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
            const std::string why = refusal([&] { decode_batch(bad); });
            if (byte == 4 && (bad[4] == 1 || bad[4] == 2)) {
                // 3 to an older version this build still reads: its layout does not match
                // what follows, refused further on.
                EXPECT_EQ(why.rfind("batch: ", 0), 0u) << "bit " << bit << ": " << why;
                continue;
            }
            EXPECT_EQ(why.rfind(std::string("batch: ") + fields[byte] + ": ", 0), 0u)
                << "byte " << byte << " bit " << bit << ": " << why;
        }
}

TEST(batch, any_single_bit_flip_is_refused_or_decodes_to_a_canonical_batch) {
    // The record CRC is what catches flips in the body; the decoder must still stay in bounds
    // and, whatever it accepts, be the unique encoding of what it returns.
    const std::string payload = encode_batch(small_batch());
    std::size_t refused = 0;
    for (std::size_t byte = 0; byte < payload.size(); ++byte)
        for (int bit = 0; bit < 8; ++bit) {
            std::string bad = payload;
            bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
            try {
                EXPECT_EQ(encode_batch(decode_batch(bad)), bad);
            } catch (const spool_error& e) {
                ++refused;
                EXPECT_EQ(std::string(e.what()).rfind("batch: ", 0), 0u) << e.what();
            }
        }
    EXPECT_GT(refused, 64u);
}

TEST(batch, rejects_trailing_bytes_bad_flags_and_a_bad_error_flag) {
    std::string payload = encode_batch(small_batch());
    EXPECT_EQ(refusal([&] { decode_batch(payload + "x"); }),
              "batch: end: 1 trailing bytes after the last audit row");
    std::string bad = payload;
    bad[1] = 'X';
    EXPECT_EQ(refusal([&] { decode_batch(bad); }), "batch: magic: not a plugmon batch");
    for (const char version : {0, 4, 9}) {
        bad = payload;
        bad[4] = version;
        EXPECT_EQ(refusal([&] { decode_batch(bad); }),
                  "batch: version: unsupported format version " + std::to_string(int(version)) +
                      " (this build reads 1 to 3)");
    }
    // The slow sample's error byte sits 5 bytes before the end of its element (u8 error, i32
    // pid); after it come the resource count (4 bytes), one row of 8 + 4 + 4 + 4 + 64 bytes, and
    // the alert section.
    const std::size_t alerts_at = as_version_1(without_alerts_or_audit(small_batch())).size();
    bad = payload;
    bad[alerts_at - 84 - 4 - 5] = 2;
    EXPECT_EQ(refusal([&] { decode_batch(bad); }), "batch: slow[0].error: not 0 or 1 (2)");
}

TEST(batch, checks_counts_and_lengths_before_allocating) {
    // The host length and the query count claim far more than the payload holds.
    std::string payload = encode_batch(batch{});
    std::string bad = payload;
    bad[8] = bad[9] = bad[10] = bad[11] = '\xff';
    EXPECT_EQ(refusal([&] { decode_batch(bad); }),
              "batch: host: length 4294967295 exceeds the 56 bytes left");
    bad = payload;
    const std::size_t queries_at = 8 + 4 + 8 + 8 + 8 + 8;
    bad[queries_at] = bad[queries_at + 1] = bad[queries_at + 2] = bad[queries_at + 3] = '\xff';
    const std::string why = refusal([&] { decode_batch(bad); });
    EXPECT_EQ(why.rfind("batch: queries: 4294967295 elements need at least ", 0), 0u) << why;
}

TEST(record, frames_a_payload_and_parses_it_back) {
    const batch b = full_batch();
    const std::string payload = encode_batch(b);
    const std::string rec = encode_record(7, b.rows(), payload);
    ASSERT_EQ(rec.size(), record_header_size + payload.size());
    const record_header h = parse_record_header(rec);
    EXPECT_EQ(h.id, 7u);
    EXPECT_EQ(h.rows, b.rows());
    EXPECT_EQ(h.payload_bytes, payload.size());
    EXPECT_EQ(record_payload(h, rec), payload);
}

TEST(record, rejects_every_single_bit_flip_of_the_header_naming_the_field) {
    const std::string payload = encode_batch(small_batch());
    const std::string rec = encode_record(3, 4, payload);
    for (std::size_t byte = 0; byte < record_header_size; ++byte)
        for (int bit = 0; bit < 8; ++bit) {
            std::string bad = rec;
            bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
            const std::string why = refusal([&] { parse_record_header(bad); });
            const std::string field = byte < 4   ? "magic"
                                      : byte < 6 ? "version"
                                      : byte < 8 ? "header size"
                                                 : "header crc";
            EXPECT_EQ(why.rfind("spool: record header: " + field + ": ", 0), 0u)
                << "byte " << byte << " bit " << bit << ": " << why;
        }
}

TEST(record, rejects_every_single_bit_flip_of_the_payload) {
    const std::string rec = encode_record(3, 4, encode_batch(small_batch()));
    const record_header h = parse_record_header(rec);
    for (std::size_t byte = record_header_size; byte < rec.size(); ++byte)
        for (int bit = 0; bit < 8; ++bit) {
            std::string bad = rec;
            bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
            EXPECT_EQ(refusal([&] {
                          record_payload(h, bad);
                      }).rfind("spool: record payload: payload crc: ", 0),
                      0u);
        }
}

TEST(record, rejects_every_truncation) {
    const std::string rec = encode_record(3, 4, encode_batch(small_batch()));
    for (std::size_t n = 0; n < rec.size(); ++n) {
        const std::string_view cut = std::string_view(rec).substr(0, n);
        const std::string why = refusal([&] { record_payload(parse_record_header(cut), cut); });
        if (n < 4)
            EXPECT_EQ(why.rfind("spool: record header: magic: truncated", 0), 0u) << why;
        else if (n < record_header_size)
            EXPECT_EQ(why.rfind("spool: record header: length: truncated", 0), 0u) << why;
        else
            EXPECT_EQ(why.rfind("spool: record payload: length: ", 0), 0u) << why;
    }
    EXPECT_EQ(refusal([&] {
                  record_payload(parse_record_header(rec), rec + "z");
              }).rfind("spool: record payload: length: ", 0),
              0u);
}

}  // namespace
