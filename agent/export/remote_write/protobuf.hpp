// Prometheus remote write 1.0 by hand: the protobuf of a WriteRequest (prompb, v2.42.0 field
// numbers) and its snappy block compression. No generated code; the message is tiny.
#pragma once

#include "export/native_histogram/native_histogram.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent::remote_write {

/// The bit pattern Prometheus reads as "this series ended" (value.StaleNaN).
inline constexpr std::uint64_t stale_nan_bits = 0x7ff0000000000002ull;
/// A double with stale_nan_bits.
double stale_nan() noexcept;
/// True when `v` carries exactly stale_nan_bits.
bool is_stale_nan(double v) noexcept;

struct label {
    std::string name, value;
};

struct sample {
    double value = 0;
    std::int64_t timestamp_ms = 0;
};

/// A native histogram sample (prompb.Histogram with integer counts).
struct histogram_sample {
    native::histogram h;
    std::int64_t timestamp_ms = 0;
    /// prompb.Histogram.ResetHint: 0 unknown, 1 yes, 2 no, 3 gauge.
    std::uint8_t reset_hint = 0;
};

/// One prompb.TimeSeries: a label set and its samples (floats or histograms), in time order.
struct time_series {
    std::vector<label> labels;  ///< sorted by name (bytewise) before encoding: see sort_labels
    std::vector<sample> samples;
    std::vector<histogram_sample> histograms;
    /// Samples this series counts for batching and self-metrics (floats + histograms).
    std::size_t sample_count() const { return samples.size() + histograms.size(); }
};

/// Sorts `labels` by name, bytewise (so "Zone" comes before "__name__"), as the spec requires
/// and Mimir enforces. Thread safety: reentrant.
void sort_labels(std::vector<label>& labels);

/// Appends the WriteRequest holding `series` (field 1, one TimeSeries each) to `out`. Labels are
/// written in the order given (sort them first). Thread safety: reentrant.
void encode_write_request(const std::vector<time_series>& series, std::string& out);

/// The snappy block format of `raw` (never the framed format). Thread safety: reentrant.
std::string snappy_compress(std::string_view raw);

// Building blocks, exposed for tests and the encoder's own use.
void put_varint(std::string& out, std::uint64_t v);
std::size_t varint_size(std::uint64_t v) noexcept;
inline std::uint64_t zigzag(std::int64_t v) noexcept {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

}  // namespace plugmon::agent::remote_write
