// From closed windows to remote-write series: the cumulative counters and native histograms of
// every live series (the same names and labels as /metrics), and stale markers when one ends.
#pragma once

#include "export/native_histogram/native_histogram.hpp"
#include "export/remote_write/protobuf.hpp"
#include "pipeline/window.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace plugmon::agent::remote_write {

struct series_options {
    /// Added to every series (e.g. host), so that several agents' series stay distinct.
    std::vector<label> external_labels;
    /// Classic bucket upper bounds in seconds (the fallback, and native_histograms = false).
    std::vector<double> query_buckets;
    /// A series absent from this many consecutive windows has ended: it gets one stale marker
    /// and is forgotten (0: never).
    std::uint32_t stale_after_windows = 30;
    /// Native histogram schema (resolution 2^(2^-schema)); 8 is the finest Prometheus takes.
    std::int32_t schema = 8;
};

/// The state of one remote: counters since this object was made, fed window by window.
///
/// Thread safety: none; one thread (the remote's sender) owns it.
class series_state {
public:
    explicit series_state(series_options o);

    /// Adds a window's query and execution rollups to the counters and histograms, and decides
    /// which series ended. Throws std::invalid_argument for a rollup whose sketch does not
    /// decode (nothing is changed then).
    void apply(const window_batch& w);

    /// The series to send for the window last applied, stamped with its end: each live series'
    /// values, then a stale marker for each series that ended. `native`: the query durations as
    /// native histograms, else as classic _bucket/_sum/_count. May be called again (e.g. after
    /// a receiver refused native histograms) with the same result but for `native`.
    std::vector<time_series> render(bool native) const;

    /// Forgets the series that ended (call once the window's series were delivered or dropped).
    void finish();

    std::int64_t timestamp_ms() const { return timestamp_ms_; }
    std::size_t live_series() const { return queries_.size() + executions_.size(); }

private:
    struct query_state {
        explicit query_state(std::int32_t schema) : duration(schema) {}
        std::uint64_t ok = 0, error = 0, rows = 0;
        native::cumulative duration;
        std::uint64_t last_seen = 0;  // window number
    };
    struct execution_state {
        std::uint64_t ok = 0, error = 0, cpu_ns = 0;
        std::uint64_t last_seen = 0;
    };
    using query_key = std::array<std::string, 4>;      // plugin, op, table, tenant
    using execution_key = std::array<std::string, 2>;  // plugin, tenant

    bool ended(std::uint64_t last_seen) const;
    void render_query(const query_key& k, const query_state& s, bool native, bool stale,
                      std::vector<time_series>& out) const;
    void render_execution(const execution_key& k, const execution_state& s, bool stale,
                          std::vector<time_series>& out) const;

    series_options opts_;
    std::vector<std::string> le_;  // the classic bounds as /metrics writes them
    std::map<query_key, query_state> queries_;
    std::map<execution_key, execution_state> executions_;
    std::uint64_t window_ = 0;  // windows applied
    std::int64_t timestamp_ms_ = 0;
};

}  // namespace plugmon::agent::remote_write
