// Unit tests of the batch payload codec and the spool's record frame: round trips and refusals.
#include "store/write/batch.hpp"
#include "store/write/spool.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
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
    return b;
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
    expect_equal(b, decode_batch(encode_batch(b)));
}

TEST(batch, counts_rows_and_calls) {
    const batch b = full_batch();
    EXPECT_EQ(b.rows(), 2u + 1u + 1u + 2u);
    EXPECT_EQ(b.calls(), 11u + 100u);
}

TEST(batch, rejects_every_truncation_naming_the_field) {
    for (const batch& b : {small_batch(), full_batch()}) {
        const std::string payload = encode_batch(b);
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
        "batch: resources: 1 elements need at least 84 bytes, 83 left");
    // Inside an element whose count passed: the last query's sketch length of the full batch,
    // found back from the first execution (count, "orders", then tenant "t1").
    const std::string full = encode_batch(full_batch());
    const std::size_t sketch_end = full.find("t1", full.find("billing")) - 4 - 6 - 4 - 4;
    EXPECT_EQ(refusal([&] { decode_batch(std::string_view(full).substr(0, sketch_end - 2)); }),
              "batch: queries[1].sketch: truncated (needs 4 bytes, 2 left)");
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
              "batch: end: 1 trailing bytes after the last resource row");
    std::string bad = payload;
    bad[1] = 'X';
    EXPECT_EQ(refusal([&] { decode_batch(bad); }), "batch: magic: not a plugmon batch");
    bad = payload;
    bad[4] = 2;
    EXPECT_EQ(refusal([&] { decode_batch(bad); }),
              "batch: version: unsupported format version 2 (this build reads 1)");
    // The slow sample's error byte sits 5 bytes before the end of its element (u8 error, i32
    // pid); after it come the resource count (4 bytes) and one row of 8 + 4 + 4 + 4 + 64 bytes.
    bad = payload;
    bad[payload.size() - 84 - 4 - 5] = 2;
    EXPECT_EQ(refusal([&] { decode_batch(bad); }), "batch: slow[0].error: not 0 or 1 (2)");
}

TEST(batch, checks_counts_and_lengths_before_allocating) {
    // The host length and the query count claim far more than the payload holds.
    std::string payload = encode_batch(batch{});
    std::string bad = payload;
    bad[8] = bad[9] = bad[10] = bad[11] = '\xff';
    EXPECT_EQ(refusal([&] { decode_batch(bad); }),
              "batch: host: length 4294967295 exceeds the 48 bytes left");
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
