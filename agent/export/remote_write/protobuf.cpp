// The hand-written protobuf encoder of prompb.WriteRequest and its snappy compression.
#include "export/remote_write/protobuf.hpp"

#include <algorithm>
#include <cstring>

#include <snappy.h>

namespace plugmon::agent::remote_write {

namespace {

// Tags: (field << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
constexpr char tag_timeseries = 0x0A;         // WriteRequest.timeseries = 1
constexpr char tag_labels = 0x0A;             // TimeSeries.labels = 1
constexpr char tag_samples = 0x12;            // TimeSeries.samples = 2
constexpr char tag_histograms = 0x22;         // TimeSeries.histograms = 4
constexpr char tag_label_name = 0x0A;         // Label.name = 1
constexpr char tag_label_value = 0x12;        // Label.value = 2
constexpr char tag_sample_value = 0x09;       // Sample.value = 1 (double)
constexpr char tag_sample_ts = 0x10;          // Sample.timestamp = 2 (int64)
constexpr char tag_h_count_int = 0x08;        // Histogram.count_int = 1
constexpr char tag_h_sum = 0x19;              // Histogram.sum = 3 (double)
constexpr char tag_h_schema = 0x20;           // Histogram.schema = 4 (sint32)
constexpr char tag_h_zero_threshold = 0x29;   // 5 (double)
constexpr char tag_h_zero_count_int = 0x30;   // 6
constexpr char tag_h_positive_spans = 0x5A;   // 11
constexpr char tag_h_positive_deltas = 0x62;  // 12 (packed sint64)
constexpr char tag_h_reset_hint = 0x70;       // 14
constexpr char tag_h_timestamp = 0x78;        // 15
constexpr char tag_span_offset = 0x08;        // BucketSpan.offset = 1 (sint32)
constexpr char tag_span_length = 0x10;        // BucketSpan.length = 2

void put_fixed64(std::string& out, double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
    out.append(b, 8);
}

void put_bytes(std::string& out, char tag, std::string_view s) {
    out.push_back(tag);
    put_varint(out, s.size());
    out.append(s);
}

std::size_t label_size(const label& l) {
    return 2 + varint_size(l.name.size()) + l.name.size() + varint_size(l.value.size()) +
           l.value.size();
}

std::size_t sample_size(const sample& s) {
    return 1 + 8 + 1 + varint_size(static_cast<std::uint64_t>(s.timestamp_ms));
}

void encode_histogram(const histogram_sample& hs, std::string& out) {
    const native::histogram& h = hs.h;
    out.push_back(tag_h_count_int);
    put_varint(out, h.count);
    out.push_back(tag_h_sum);
    put_fixed64(out, h.sum);
    out.push_back(tag_h_schema);
    put_varint(out, zigzag(h.schema));
    out.push_back(tag_h_zero_threshold);
    put_fixed64(out, h.zero_threshold);
    out.push_back(tag_h_zero_count_int);
    put_varint(out, h.zero_count);
    std::string span;
    for (const auto& s : h.positive_spans) {
        span.clear();
        span.push_back(tag_span_offset);
        put_varint(span, zigzag(s.offset));
        span.push_back(tag_span_length);
        put_varint(span, s.length);
        put_bytes(out, tag_h_positive_spans, span);
    }
    if (!h.positive_deltas.empty()) {
        std::size_t n = 0;
        for (const auto d : h.positive_deltas) n += varint_size(zigzag(d));
        out.push_back(tag_h_positive_deltas);
        put_varint(out, n);
        for (const auto d : h.positive_deltas) put_varint(out, zigzag(d));
    }
    out.push_back(tag_h_reset_hint);
    put_varint(out, hs.reset_hint);
    out.push_back(tag_h_timestamp);
    put_varint(out, static_cast<std::uint64_t>(hs.timestamp_ms));
}

void encode_series(const time_series& ts, std::string& body, std::string& scratch) {
    body.clear();
    for (const auto& l : ts.labels) {
        body.push_back(tag_labels);
        put_varint(body, label_size(l));
        put_bytes(body, tag_label_name, l.name);
        put_bytes(body, tag_label_value, l.value);
    }
    for (const auto& s : ts.samples) {
        body.push_back(tag_samples);
        put_varint(body, sample_size(s));
        body.push_back(tag_sample_value);
        put_fixed64(body, s.value);
        body.push_back(tag_sample_ts);
        put_varint(body, static_cast<std::uint64_t>(s.timestamp_ms));
    }
    for (const auto& h : ts.histograms) {
        scratch.clear();
        encode_histogram(h, scratch);
        put_bytes(body, tag_histograms, scratch);
    }
}

}  // namespace

double stale_nan() noexcept {
    double v = 0;
    std::memcpy(&v, &stale_nan_bits, sizeof v);
    return v;
}

bool is_stale_nan(double v) noexcept {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    return bits == stale_nan_bits;
}

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

std::size_t varint_size(std::uint64_t v) noexcept {
    std::size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

void sort_labels(std::vector<label>& labels) {
    // std::string's operator< compares as unsigned char: bytewise, as the spec asks.
    std::sort(labels.begin(), labels.end(),
              [](const label& a, const label& b) { return a.name < b.name; });
}

void encode_write_request(const std::vector<time_series>& series, std::string& out) {
    std::string body, scratch;
    for (const auto& ts : series) {
        encode_series(ts, body, scratch);
        put_bytes(out, tag_timeseries, body);
    }
}

std::string snappy_compress(std::string_view raw) {
    std::string out;
    snappy::Compress(raw.data(), raw.size(), &out);
    return out;
}

}  // namespace plugmon::agent::remote_write
