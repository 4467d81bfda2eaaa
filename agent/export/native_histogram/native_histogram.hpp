// Prometheus native (sparse exponential) histograms from the agent's sketches: what remote write
// sends (and, by content negotiation, the protobuf exposition of /metrics) so that a fleet-wide
// histogram_quantile stays within about 1 % of the exact quantile.
#pragma once

#include "aggregate/sketch.hpp"

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace plugmon::agent::native {

/// A run of consecutive buckets: `offset` is the index of its first bucket for the first span,
/// and the number of empty buckets since the previous span for every later one.
struct bucket_span {
    std::int32_t offset = 0;
    std::uint32_t length = 0;
};

/// One native histogram sample with integer counts, laid out as the wire wants it (remote write's
/// prompb.Histogram and the exposition's io.prometheus.client.Histogram). Bucket k of schema s
/// covers (2^((k-1)/2^s), 2^(k/2^s)] in the exported unit (seconds).
struct histogram {
    std::int32_t schema = 8;
    double zero_threshold = 0;  ///< values at or below it are counted in zero_count
    std::uint64_t zero_count = 0;
    std::uint64_t count = 0;  ///< every observation, zero bucket included
    double sum = 0;           ///< in the exported unit
    std::vector<bucket_span> positive_spans;
    /// Bucket counts as deltas: the first bucket's count, then each minus the one before.
    std::vector<std::int64_t> positive_deltas;
};

/// A series' cumulative (since the agent started) native histogram, fed one window's sketch at a
/// time. Counts only grow, so the exported histogram is a counter histogram: rate() and
/// histogram_quantile() work across windows and across hosts.
///
/// Memory: 16 bytes per non-empty native bucket (a sorted vector), at most one per sketch bin
/// (3776), in practice one per populated sketch bin or fewer. Thread safety: none; one writer,
/// and const calls only while no thread writes (the caller locks, as for the series' sketches).
class cumulative {
public:
    /// `schema` in [-4, 8]; `ns_per_unit` converts the sketch's nanoseconds (1e9: seconds).
    explicit cumulative(std::int32_t schema = 8, double ns_per_unit = 1e9);

    /// Adds a window's sketch: each sketch bucket's count goes to the native bucket holding the
    /// bucket's representative value (dd_sketch::value_of); 0 ns goes to the zero bucket.
    void add(const dd_sketch& window);

    /// The histogram as it stands, spans and deltas built (gaps of at most 2 empty buckets are
    /// filled with zero buckets rather than starting a new span).
    histogram snapshot() const;

    /// Cumulative counts at the classic upper bounds `le` (ascending, in the exported unit; the
    /// +Inf bucket is count()): the fallback for a receiver that refuses native histograms.
    /// Each native bucket counts toward the first classic bound at or above its upper edge.
    std::vector<std::uint64_t> classic_counts(const std::vector<double>& le) const;

    std::uint64_t count() const { return count_; }
    double sum() const { return sum_; }
    std::int32_t schema() const { return schema_; }
    std::uint64_t zero_count() const { return zero_count_; }
    /// The non-empty native buckets, (index, count) in ascending index order.
    const std::vector<std::pair<std::int32_t, std::uint64_t>>& buckets() const { return buckets_; }
    /// Bytes held: the object and its buckets' capacity.
    std::size_t memory_bytes() const noexcept;

    /// Replaces the state: `buckets` sorted by index, counts > 0 (for add() of histograms).
    void assign(std::vector<std::pair<std::int32_t, std::uint64_t>> buckets,
                std::uint64_t zero_count, std::uint64_t count, double sum);

private:
    /// Adds `window` (sorted, distinct indices, counts > 0) into buckets_.
    void merge(const std::vector<std::pair<std::int32_t, std::uint64_t>>& window);

    std::int32_t schema_;
    double ns_per_unit_;
    std::uint64_t count_ = 0;
    std::uint64_t zero_count_ = 0;
    double sum_ = 0;
    std::vector<std::pair<std::int32_t, std::uint64_t>> buckets_;  ///< sorted by index, count > 0
};

/// The native bucket index of a positive value `v` at `schema`: the k with
/// 2^((k-1)/2^s) < v <= 2^(k/2^s), exact at the boundaries.
std::int32_t bucket_index(double v, std::int32_t schema);

/// The upper bound of native bucket `k` at `schema`: 2^(k/2^s), the same double as Prometheus'
/// getBound (correctly rounded significands).
double bucket_upper_bound(std::int32_t k, std::int32_t schema);

/// What PromQL 2.42 answers for histogram_quantile(q, h) on a native histogram (a replica of
/// promql/quantile.go histogramQuantile): rank = q * count; walk the zero bucket (when its count
/// is not 0), then the positive buckets in ascending order, summing counts, up to the first bucket
/// where the sum reaches the rank; interpolate linearly between that bucket's lower and upper
/// bound. The zero bucket spans [-zero_threshold, zero_threshold], its lower bound taken as 0
/// when there are positive buckets (no negative ones exist here). q < 0: -Inf; q > 1: +Inf;
/// NaN when q is NaN or the count is 0. Pure; thread-safe.
double promql_quantile(double q, const histogram& h);

/// cumulative::classic_counts for a histogram sample: the cumulative count at each classic bound
/// `le` (ascending), each native bucket counted at the first bound at or above its upper edge, the
/// zero bucket at the first bound at or above 0. Pure; thread-safe.
std::vector<std::uint64_t> classic_counts(const histogram& h, const std::vector<double>& le);

/// The sum of histograms of the same schema (PromQL's sum() of native histograms, without the
/// rate): counts, sums and buckets add. Throws std::invalid_argument on a schema mismatch.
histogram add(const histogram& a, const histogram& b);

}  // namespace plugmon::agent::native
