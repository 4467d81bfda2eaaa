// The cumulative native histogram of every query series, for the protobuf exposition of /metrics:
// a window sink that re-buckets each closed window's sketches (export/native_histogram), so the
// drain's hot path is untouched; /metrics reads the histograms as of the last closed window.
#pragma once

#include "export/native_histogram/native_histogram.hpp"
#include "export/prometheus/protobuf_exposition.hpp"
#include "pipeline/window_sink.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace plugmon::agent {

/// Thread safety: consume() on the sink's thread; lookup(), stats and render_metrics() from any
/// thread (one mutex, held per window while it is added and per series while it is read).
class native_store final : public window_sink {
public:
    /// `schema` of the histograms; a series without a window for `expiry_windows` windows is
    /// forgotten (0: never), as the series store forgets idle series.
    explicit native_store(std::int32_t schema = 8, std::uint32_t expiry_windows = 30);

    std::string name() const override { return "native_histograms"; }
    /// Adds the window's sketches, once activated (before: nothing is kept, nothing costs).
    void consume(const window_ptr& window) override;

    /// Starts keeping histograms: called at the first protobuf scrape, so an agent nobody
    /// scrapes that way pays nothing. The histograms count from the next window on.
    void activate() { active_.store(true, std::memory_order_relaxed); }
    bool active() const { return active_.load(std::memory_order_relaxed); }

    /// The histogram of query series (plugin, op, table, tenant); nullopt before its first
    /// window closed.
    std::optional<native::histogram> lookup(const std::string& plugin, const std::string& op,
                                            const std::string& table,
                                            const std::string& tenant) const;

    /// A native_lookup for plugmon_query_duration_seconds (labels plugin, op, table, tenant).
    /// The store must outlive it.
    protobuf_exposition::native_lookup query_duration_lookup() const;

    std::size_t series() const;
    /// Bytes held by the histograms (objects and buckets; not the map's nodes and keys).
    std::size_t histogram_bytes() const;

    /// plugmon_agent_native_series, plugmon_agent_native_bytes,
    /// plugmon_agent_native_sketches_invalid_total.
    void render_metrics(std::string& out) const;

private:
    struct entry {
        native::cumulative hist;
        std::uint64_t last_window = 0;
    };
    std::int32_t schema_;
    std::uint32_t expiry_windows_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, entry> by_key_;  // guarded by mu_
    std::uint64_t windows_ = 0;                      // guarded by mu_
    std::atomic<std::uint64_t> invalid_{0};
    std::atomic<bool> active_{false};
};

}  // namespace plugmon::agent
