// The protobuf exposition of /metrics (varint-delimited io.prometheus.client.MetricFamily, what
// Prometheus asks for when its native histograms are on): the text families translated, with the
// native buckets of plugmon_query_duration_seconds added. Encoded by hand (no protobuf runtime).
#pragma once

#include "export/native_histogram/native_histogram.hpp"
#include "pipeline/metrics_source.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plugmon::agent::protobuf_exposition {

/// The Content-Type of the answer.
inline constexpr std::string_view content_type =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
    "encoding=delimited";

/// True when the Accept header `accept` prefers the delimited MetricFamily protobuf over the text
/// format (its q is not 0 and at least that of text/plain, or of */* when text/plain is absent).
/// Pure; thread-safe.
bool wants_protobuf(std::string_view accept);

using label_pairs = std::vector<std::pair<std::string, std::string>>;

/// The native histogram of a series of a histogram family, given the family's name and the
/// series' labels (without `le`); nullopt leaves the family's text buckets alone. When it answers,
/// the message's count, sum and classic buckets come from the histogram too (one consistent
/// sample). Called on the rendering thread.
using native_lookup =
    std::function<std::optional<native::histogram>(std::string_view family, const label_pairs&)>;

/// Translates the text exposition (format 0.0.4), fed in pieces of any size, into delimited
/// MetricFamily messages handed to `out` one family at a time. HELP, TYPE (counter, gauge,
/// histogram, summary, untyped), label pairs, values and timestamps are kept; samples without a
/// TYPE line become untyped families. Thread safety: none (one per render).
class translator {
public:
    translator(std::function<void(std::string_view)> out, native_lookup lookup);
    /// Feeds the next piece of text (lines may span pieces).
    void feed(std::string_view text);
    /// Ends the text: the last family goes out.
    void finish();

private:
    /// One series of the family being read.
    struct metric {
        label_pairs labels;
        double value = 0;
        std::optional<std::int64_t> timestamp_ms;
        double sum = 0, count = 0;
        std::vector<std::pair<double, double>> points;  ///< (le, cumulative) or (quantile, value)
    };
    void line(std::string_view l);
    void sample(std::string_view l);
    void flush_family();
    /// One Metric message of the family being read (`type`: its MetricType).
    std::string encode_metric(const metric& x, std::uint64_t type) const;
    metric& metric_for(const label_pairs& labels);

    std::function<void(std::string_view)> out_;
    native_lookup lookup_;
    std::string partial_;
    std::string name_, help_, type_;
    bool open_ = false;
    std::vector<metric> metrics_;
};

/// Renders every source of `sources` as the delimited protobuf body, with native histograms from
/// `lookup` (may be empty).
std::string render(const metrics_registry& sources, const native_lookup& lookup);

}  // namespace plugmon::agent::protobuf_exposition
