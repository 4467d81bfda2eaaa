// The batch payload codec: little-endian fixed-width fields, validated field by field on decode.
#include "store/write/batch.hpp"

#include <chrono>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace plugmon::agent::store {

std::size_t batch::rows() const {
    return window.queries.size() + window.executions.size() + window.slow.size() +
           window.resources.size() + window.alerts.size() + audit.size();
}

std::uint64_t batch::calls() const {
    std::uint64_t sum = 0;
    for (const query_rollup& q : window.queries) sum += q.calls;
    return sum;
}

namespace {

using std::chrono::nanoseconds;
using std::chrono::system_clock;

// Smallest encoded size of each element, to bound a count by the bytes left before reserving.
constexpr std::size_t str_min = 4;
constexpr std::size_t query_min = 4 * str_min + 9 * 8 + str_min;
constexpr std::size_t execution_min = 2 * str_min + 4 * 8;
constexpr std::size_t slow_min = 8 + 5 * str_min + 3 * 8 + 1 + 4;
constexpr std::size_t resource_min = 8 + 4 + 2 * str_min + 8 * 8;
constexpr std::size_t alert_min = 8 + 8 + 6 * str_min + 8 + 4 * str_min + 3 * 8;
constexpr std::size_t audit_min = 8 + 8 + 4 * str_min + 4 + str_min;

// An f64 travels as its IEEE 754 bit pattern (any pattern, NaNs included, round-trips).
static_assert(sizeof(double) == sizeof(std::uint64_t) && std::numeric_limits<double>::is_iec559,
              "the payload stores doubles as IEEE 754 binary64");

std::uint64_t f64_bits(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return bits;
}

double f64_from_bits(std::uint64_t bits) {
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

std::int64_t to_ns(system_clock::time_point t) {
    return std::chrono::duration_cast<nanoseconds>(t.time_since_epoch()).count();
}

system_clock::time_point from_ns(std::int64_t ns) {
    return system_clock::time_point(
        std::chrono::duration_cast<system_clock::duration>(nanoseconds(ns)));
}

class writer {
public:
    explicit writer(std::string& out) : out_(out) {}

    void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u16(std::uint16_t v) { le(v, 2); }
    void u32(std::uint32_t v) { le(v, 4); }
    void u64(std::uint64_t v) { le(v, 8); }
    void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
    void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
    void str(const std::string& s, const char* field) {
        u32(checked_u32(s.size(), field));
        out_.append(s);
    }
    void count(std::size_t n, const char* field) { u32(checked_u32(n, field)); }

private:
    void le(std::uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    static std::uint32_t checked_u32(std::size_t n, const char* field) {
        if (n > std::numeric_limits<std::uint32_t>::max())
            throw spool_error(std::string("batch: ") + field + ": " + std::to_string(n) +
                              " does not fit the format's 32-bit length");
        return static_cast<std::uint32_t>(n);
    }
    std::string& out_;
};

/// Reads fields in order; every failure names the element (section and index) and the field.
class reader {
public:
    explicit reader(std::string_view in) : in_(in) {}

    /// The element the following fields belong to ("" for the top level).
    void at(const char* section, std::size_t index) {
        section_ = section;
        index_ = index;
    }
    void top() { section_ = nullptr; }

    std::uint8_t u8(const char* field) { return static_cast<std::uint8_t>(le(field, 1)); }
    std::uint16_t u16(const char* field) { return static_cast<std::uint16_t>(le(field, 2)); }
    std::uint32_t u32(const char* field) { return static_cast<std::uint32_t>(le(field, 4)); }
    std::uint64_t u64(const char* field) { return le(field, 8); }
    std::int32_t i32(const char* field) { return static_cast<std::int32_t>(u32(field)); }
    std::int64_t i64(const char* field) { return static_cast<std::int64_t>(u64(field)); }

    std::string str(const char* field) {
        const std::uint32_t n = u32(field);
        if (n > left())
            fail(field, "length " + std::to_string(n) + " exceeds the " + std::to_string(left()) +
                            " bytes left");
        std::string s(in_.substr(pos_, n));
        pos_ += n;
        return s;
    }

    /// A count of elements of at least `min_bytes` each, checked against the bytes left.
    std::size_t count(const char* field, std::size_t min_bytes) {
        const std::uint32_t n = u32(field);
        if (std::uint64_t{n} * min_bytes > left())
            fail(field, std::to_string(n) + " elements need at least " +
                            std::to_string(std::uint64_t{n} * min_bytes) + " bytes, " +
                            std::to_string(left()) + " left");
        return n;
    }

    void magic(const char (&want)[4]) {
        if (left() < 4)
            fail("magic", "truncated (needs 4 bytes, " + std::to_string(left()) + " left)");
        if (std::memcmp(in_.data() + pos_, want, 4) != 0) fail("magic", "not a plugmon batch");
        pos_ += 4;
    }

    std::size_t left() const { return in_.size() - pos_; }
    std::size_t offset() const { return pos_; }

    [[noreturn]] void fail(const char* field, const std::string& what) const {
        std::string name = "batch: ";
        if (section_) name += std::string(section_) + "[" + std::to_string(index_) + "].";
        throw spool_error(name + field + ": " + what);
    }

private:
    std::uint64_t le(const char* field, std::size_t bytes) {
        if (left() < bytes)
            fail(field, "truncated (needs " + std::to_string(bytes) + " bytes, " +
                            std::to_string(left()) + " left)");
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < bytes; ++i)
            v |= std::uint64_t{static_cast<unsigned char>(in_[pos_ + i])} << (8 * i);
        pos_ += bytes;
        return v;
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    const char* section_ = nullptr;
    std::size_t index_ = 0;
};

void encode_queries(writer& o, const std::vector<query_rollup>& queries) {
    o.count(queries.size(), "queries");
    for (const query_rollup& q : queries) {
        o.str(q.plugin, "queries.plugin");
        o.str(q.op, "queries.op");
        o.str(q.table, "queries.table");
        o.str(q.tenant, "queries.tenant");
        for (std::uint64_t v : {q.calls, q.errors, q.rows, q.total_ns, q.min_ns, q.max_ns, q.p50_ns,
                                q.p95_ns, q.p99_ns})
            o.u64(v);
        o.str(q.sketch, "queries.sketch");
    }
}

void encode_samples(writer& o, const window_batch& w) {
    o.count(w.executions.size(), "executions");
    for (const execution_rollup& e : w.executions) {
        o.str(e.plugin, "executions.plugin");
        o.str(e.tenant, "executions.tenant");
        for (std::uint64_t v : {e.calls, e.errors, e.wall_ns, e.cpu_ns}) o.u64(v);
    }
    o.count(w.slow.size(), "slow");
    for (const slow_sample& s : w.slow) {
        o.i64(to_ns(s.at));
        o.str(s.plugin, "slow.plugin");
        o.str(s.op, "slow.op");
        o.str(s.table, "slow.table");
        o.str(s.tenant, "slow.tenant");
        o.str(s.statement, "slow.statement");
        for (std::uint64_t v : {s.fingerprint, s.duration_ns, s.rows}) o.u64(v);
        o.u8(s.error ? 1 : 0);
        o.i32(s.pid);
    }
    o.count(w.resources.size(), "resources");
    for (const resource_row& r : w.resources) {
        o.i64(to_ns(r.at));
        o.i32(r.pid);
        o.str(r.process, "resources.process");
        o.str(r.plugin, "resources.plugin");
        for (std::uint64_t v : {r.rss_bytes, r.cpu_ns, r.open_fds, r.threads, r.read_bytes,
                                r.write_bytes, r.heap_allocated_bytes, r.heap_freed_bytes})
            o.u64(v);
    }
}

void encode_alerts(writer& o, const std::vector<alert_row>& alerts) {
    o.count(alerts.size(), "alerts");
    for (const alert_row& a : alerts) {
        o.i64(to_ns(a.at));
        o.u64(a.seq);
        o.str(a.fingerprint, "alerts.fingerprint");
        o.str(a.rule, "alerts.rule");
        o.str(a.episode, "alerts.episode");
        o.str(a.event, "alerts.event");
        o.str(a.state, "alerts.state");
        o.str(a.severity, "alerts.severity");
        o.u64(f64_bits(a.value));
        o.str(a.detail, "alerts.detail");
        o.str(a.labels_json, "alerts.labels_json");
        o.str(a.annotations_json, "alerts.annotations_json");
        o.str(a.ack_json, "alerts.ack_json");
        for (const auto t : {a.active_at, a.fired_at, a.resolved_at}) o.i64(to_ns(t));
    }
}

void encode_audit(writer& o, const std::vector<audit::entry>& entries) {
    o.count(entries.size(), "audit");
    for (const audit::entry& e : entries) {
        o.i64(to_ns(e.at));
        o.u64(e.seq);
        o.str(e.actor, "audit.actor");
        o.str(e.client, "audit.client");
        o.str(e.action, "audit.action");
        o.str(e.target, "audit.target");
        o.u32(e.status);
        o.str(e.detail, "audit.detail");
    }
}

void decode_queries(reader& in, std::vector<query_rollup>& queries) {
    queries.resize(in.count("queries", query_min));
    for (std::size_t i = 0; i < queries.size(); ++i) {
        query_rollup& q = queries[i];
        in.at("queries", i);
        q.plugin = in.str("plugin");
        q.op = in.str("op");
        q.table = in.str("table");
        q.tenant = in.str("tenant");
        q.calls = in.u64("calls");
        q.errors = in.u64("errors");
        q.rows = in.u64("rows");
        q.total_ns = in.u64("total_ns");
        q.min_ns = in.u64("min_ns");
        q.max_ns = in.u64("max_ns");
        q.p50_ns = in.u64("p50_ns");
        q.p95_ns = in.u64("p95_ns");
        q.p99_ns = in.u64("p99_ns");
        q.sketch = in.str("sketch");
    }
    in.top();
}

void decode_executions(reader& in, std::vector<execution_rollup>& executions) {
    executions.resize(in.count("executions", execution_min));
    for (std::size_t i = 0; i < executions.size(); ++i) {
        execution_rollup& e = executions[i];
        in.at("executions", i);
        e.plugin = in.str("plugin");
        e.tenant = in.str("tenant");
        e.calls = in.u64("calls");
        e.errors = in.u64("errors");
        e.wall_ns = in.u64("wall_ns");
        e.cpu_ns = in.u64("cpu_ns");
    }
    in.top();
}

void decode_slow(reader& in, std::vector<slow_sample>& slow) {
    slow.resize(in.count("slow", slow_min));
    for (std::size_t i = 0; i < slow.size(); ++i) {
        slow_sample& s = slow[i];
        in.at("slow", i);
        s.at = from_ns(in.i64("at"));
        s.plugin = in.str("plugin");
        s.op = in.str("op");
        s.table = in.str("table");
        s.tenant = in.str("tenant");
        s.statement = in.str("statement");
        s.fingerprint = in.u64("fingerprint");
        s.duration_ns = in.u64("duration_ns");
        s.rows = in.u64("rows");
        const std::uint8_t error = in.u8("error");
        if (error > 1) in.fail("error", "not 0 or 1 (" + std::to_string(error) + ")");
        s.error = error == 1;
        s.pid = in.i32("pid");
    }
    in.top();
}

void decode_resources(reader& in, std::vector<resource_row>& resources) {
    resources.resize(in.count("resources", resource_min));
    for (std::size_t i = 0; i < resources.size(); ++i) {
        resource_row& r = resources[i];
        in.at("resources", i);
        r.at = from_ns(in.i64("at"));
        r.pid = in.i32("pid");
        r.process = in.str("process");
        r.plugin = in.str("plugin");
        r.rss_bytes = in.u64("rss_bytes");
        r.cpu_ns = in.u64("cpu_ns");
        r.open_fds = in.u64("open_fds");
        r.threads = in.u64("threads");
        r.read_bytes = in.u64("read_bytes");
        r.write_bytes = in.u64("write_bytes");
        r.heap_allocated_bytes = in.u64("heap_allocated_bytes");
        r.heap_freed_bytes = in.u64("heap_freed_bytes");
    }
    in.top();
}

void decode_alerts(reader& in, std::vector<alert_row>& alerts) {
    alerts.resize(in.count("alerts", alert_min));
    for (std::size_t i = 0; i < alerts.size(); ++i) {
        alert_row& a = alerts[i];
        in.at("alerts", i);
        a.at = from_ns(in.i64("at"));
        a.seq = in.u64("seq");
        a.fingerprint = in.str("fingerprint");
        a.rule = in.str("rule");
        a.episode = in.str("episode");
        a.event = in.str("event");
        a.state = in.str("state");
        a.severity = in.str("severity");
        a.value = f64_from_bits(in.u64("value"));
        a.detail = in.str("detail");
        a.labels_json = in.str("labels_json");
        a.annotations_json = in.str("annotations_json");
        a.ack_json = in.str("ack_json");
        a.active_at = from_ns(in.i64("active_at"));
        a.fired_at = from_ns(in.i64("fired_at"));
        a.resolved_at = from_ns(in.i64("resolved_at"));
    }
    in.top();
}

void decode_audit(reader& in, std::vector<audit::entry>& entries) {
    entries.resize(in.count("audit", audit_min));
    for (std::size_t i = 0; i < entries.size(); ++i) {
        audit::entry& e = entries[i];
        in.at("audit", i);
        e.at = from_ns(in.i64("at"));
        e.seq = in.u64("seq");
        e.actor = in.str("actor");
        e.client = in.str("client");
        e.action = in.str("action");
        e.target = in.str("target");
        e.status = in.u32("status");
        e.detail = in.str("detail");
    }
    in.top();
}

/// What the last section of a payload of `version` holds, for the trailing-bytes message.
const char* last_section(std::uint16_t version) {
    return version >= 3 ? "audit row" : version == 2 ? "alert row" : "resource row";
}

}  // namespace

std::string encode_batch(const batch& b) {
    const window_batch& w = b.window;
    std::string out;
    out.reserve(64 + b.host.size() + w.queries.size() * (query_min + 64) +
                w.executions.size() * (execution_min + 32) + w.slow.size() * (slow_min + 128) +
                w.resources.size() * (resource_min + 32) + w.alerts.size() * (alert_min + 256) +
                b.audit.size() * (audit_min + 128));
    writer o(out);
    out.append(batch_magic, sizeof batch_magic);
    o.u16(batch_format_version);
    o.u16(0);  // flags
    o.str(b.host, "host");
    o.u64(b.run_id);
    o.u64(b.seq);
    o.i64(to_ns(w.bucket_start));
    o.i64(w.length.count());
    encode_queries(o, w.queries);
    encode_samples(o, w);
    encode_alerts(o, w.alerts);
    encode_audit(o, b.audit);
    return out;
}

batch decode_batch(std::string_view payload) {
    reader in(payload);
    batch b;
    window_batch& w = b.window;
    in.magic(batch_magic);
    const std::uint16_t version = in.u16("version");
    if (version < batch_oldest_format_version || version > batch_format_version)
        in.fail("version", "unsupported format version " + std::to_string(version) +
                               " (this build reads " + std::to_string(batch_oldest_format_version) +
                               " to " + std::to_string(batch_format_version) + ")");
    if (const std::uint16_t f = in.u16("flags"); f != 0)
        in.fail("flags", "reserved bits set (" + std::to_string(f) + ")");
    b.host = in.str("host");
    b.run_id = in.u64("run_id");
    b.seq = in.u64("seq");
    w.bucket_start = from_ns(in.i64("bucket_start"));
    w.length = nanoseconds(in.i64("length"));
    decode_queries(in, w.queries);
    decode_executions(in, w.executions);
    decode_slow(in, w.slow);
    decode_resources(in, w.resources);
    if (version >= 2) decode_alerts(in, w.alerts);
    if (version >= 3) decode_audit(in, b.audit);
    if (in.left() != 0)
        in.fail("end", std::to_string(in.left()) + " trailing bytes after the last " +
                           last_section(version));
    return b;
}

}  // namespace plugmon::agent::store
