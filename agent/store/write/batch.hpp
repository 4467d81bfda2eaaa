// The store's unit of writing (one flush window, audit entries, its replay identity) and its codec.
#pragma once

#include "audit/trail.hpp"
#include "pipeline/window.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent::store {

/// A payload or spool record that failed validation. The message starts with "batch: " (the
/// payload) or "spool: " (the spool and its record frame) and names the bad field, e.g.
/// "batch: queries[2].sketch: length 4000 exceeds the 12 bytes left".
class spool_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One unit of writing: a window's rows, the audit entries recorded since the previous batch,
/// and the identity that makes replay idempotent ((host, run_id, seq) names a batch uniquely, so
/// writing it twice can be detected).
///
/// Thread safety: a plain value; the usual rules for standard containers apply.
struct batch {
    std::string host;          ///< the agent's host name
    std::uint64_t run_id = 0;  ///< random per agent start
    std::uint64_t seq = 0;     ///< 1, 2, ... per run
    window_batch window;
    /// Rows of plugmon.audit (seq: the trail's, within this run_id), oldest first.
    std::vector<audit::entry> audit;

    /// Rows the batch would write: queries + executions + slow samples + resource rows + alert
    /// rows (each alert row is one row of plugmon.alert_events) + audit rows.
    std::size_t rows() const;
    /// The sum of the query rollups' calls (wraps modulo 2^64, like the counters it sums).
    std::uint64_t calls() const;
};

/// The payload format (version 3). Every integer is little-endian and fixed width; a `str` is a
/// u32 byte length followed by that many bytes (any bytes: the sketch is binary); time points and
/// durations are i64 nanoseconds (time points since the Unix epoch); an f64 is the IEEE 754 bit
/// pattern as a u64. Nothing may follow the last audit row, so a payload has exactly one encoding.
///
///    0       4         6        8
///   +-------+---------+--------+----------+--------+--------+--------------+--------+
///   | PMBA  | ver = 3 | flags  | host     | run_id | seq    | bucket_start | length |
///   | 4 B   | u16     | u16 = 0| str      | u64    | u64    | i64 ns       | i64 ns |
///   +-------+---------+--------+----------+--------+--------+--------------+--------+
///   | u32 n | n × query_rollup:     str plugin, op, table, tenant;                       |
///   |       |                       u64 calls, errors, rows, total_ns, min_ns, max_ns,   |
///   |       |                           p50_ns, p95_ns, p99_ns; str sketch             |
///   | u32 n | n × execution_rollup: str plugin, tenant; u64 calls, errors, wall_ns,     |
///   |       |                           cpu_ns                                           |
///   | u32 n | n × slow_sample:      i64 at; str plugin, op, table, tenant, statement;    |
///   |       |                       u64 fingerprint, duration_ns, rows; u8 error (0|1);  |
///   |       |                       i32 pid                                              |
///   | u32 n | n × resource_row:     i64 at; i32 pid; str process, plugin; u64 rss_bytes, |
///   |       |                       cpu_ns, open_fds, threads, read_bytes, write_bytes,  |
///   |       |                       heap_allocated_bytes, heap_freed_bytes               |
///   | u32 n | n × alert_row:        i64 at; u64 seq; str fingerprint, rule, episode,     |
///   |       |                       event, state, severity; f64 value; str detail,       |
///   |       |                       labels_json, annotations_json, ack_json;             |
///   |       |                       i64 active_at, fired_at, resolved_at                 |
///   | u32 n | n × audit entry:      i64 at; u64 seq; str actor, client, action, target;  |
///   |       |                       u32 status; str detail                               |
///   +-------+--------------------------------------------------------------------------+
///
/// Older spools still decode: version 2 is the same without the audit section (new in version
/// 3) and ends after the last alert row; version 1 also lacks the alert section (new in version
/// 2) and ends after the last resource row. They decode to a batch without audit rows (and,
/// version 1, without alert rows). Re-encoding such a batch gives version 3 (the version word
/// changed, the missing sections appended empty). resource_row::fd_limit and threads_limit are
/// not stored (PostgreSQL has no column for them) and decode as 0; so are the window's pools,
/// leaks and drops (for alerts only).
///
/// A reader of a later version must refuse a payload whose version it does not know.
inline constexpr char batch_magic[4] = {'P', 'M', 'B', 'A'};
inline constexpr std::uint16_t batch_format_version = 3;
/// The oldest payload version decode_batch still reads.
inline constexpr std::uint16_t batch_oldest_format_version = 1;

/// Encodes `b` as a self-contained payload (see the format above). Throws spool_error if a
/// string is longer than 4 GiB - 1 or a vector has more than 2^32 - 1 elements, std::bad_alloc
/// if memory runs out. Thread safety: reentrant.
std::string encode_batch(const batch& b);

/// Decodes and validates a payload made by encode_batch, of this version or of versions 1 and 2
/// (then without audit rows, and version 1 without alert rows). Throws spool_error naming the
/// first bad field (magic, version, flags, a truncated field, e.g. "batch: alerts[0].ack_json:
/// truncated ...", "batch: audit[3].detail: truncated ...", a count or length larger
/// than the bytes left, an error flag other than 0 or 1, trailing bytes). Never reads outside
/// `payload`, and checks every count and length against the bytes left before allocating, so
/// memory use is bounded by a small multiple of the payload's size. Thread safety: reentrant.
batch decode_batch(std::string_view payload);

}  // namespace plugmon::agent::store
