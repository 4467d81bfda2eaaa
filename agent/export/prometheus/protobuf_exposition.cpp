// Text exposition -> delimited io.prometheus.client.MetricFamily. Field numbers from
// prometheus/client_model io/prometheus/client/metrics.proto (proto2, so repeated scalars are
// written unpacked, one tag each): MetricFamily{name=1, help=2, type=3, metric=4},
// Metric{label=1, gauge=2, counter=3, summary=4, untyped=5, timestamp_ms=6, histogram=7},
// LabelPair{name=1, value=2}, Gauge/Counter/Untyped{value=1}, Summary{sample_count=1,
// sample_sum=2, quantile=3}, Quantile{quantile=1, value=2}, Histogram{sample_count=1,
// sample_sum=2, bucket=3, schema=5, zero_threshold=6, zero_count=7, positive_span=12,
// positive_delta=13}, Bucket{cumulative_count=1, upper_bound=2}, BucketSpan{offset=1, length=2}.
#include "export/prometheus/protobuf_exposition.hpp"

#include "export/prometheus/prometheus.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace plugmon::agent::protobuf_exposition {

namespace {

// Wire types.
constexpr std::uint32_t varint_type = 0, fixed64_type = 1, bytes_type = 2;
// MetricType values.
enum metric_type : std::uint64_t { counter = 0, gauge = 1, summary = 2, untyped = 3, histo = 4 };

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, std::uint32_t field, std::uint32_t wire) {
    put_varint(out, (std::uint64_t{field} << 3) | wire);
}
void put_uint(std::string& out, std::uint32_t field, std::uint64_t v) {
    put_tag(out, field, varint_type);
    put_varint(out, v);
}
void put_sint(std::string& out, std::uint32_t field, std::int64_t v) {
    put_tag(out, field, varint_type);
    put_varint(out, (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}
void put_double(std::string& out, std::uint32_t field, double v) {
    put_tag(out, field, fixed64_type);
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}
void put_bytes(std::string& out, std::uint32_t field, std::string_view v) {
    put_tag(out, field, bytes_type);
    put_varint(out, v.size());
    out.append(v);
}

double parse_value(std::string_view v) {
    if (v == "+Inf" || v == "Inf") return std::numeric_limits<double>::infinity();
    if (v == "-Inf") return -std::numeric_limits<double>::infinity();
    if (v == "NaN") return std::numeric_limits<double>::quiet_NaN();
    double d = 0;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), d);
    if (r.ec != std::errc{}) throw std::invalid_argument("exposition: bad value " + std::string(v));
    return d;
}

/// Parses `{a="x",b="y"}` at the start of `s` (escapes \\, \" and \n); returns what follows.
std::string_view parse_labels(std::string_view s, label_pairs& labels) {
    std::size_t i = 1;  // past '{'
    while (i < s.size() && s[i] != '}') {
        const std::size_t eq = s.find('=', i);
        if (eq == std::string_view::npos || eq + 1 >= s.size() || s[eq + 1] != '"')
            throw std::invalid_argument("exposition: bad label set");
        std::string name(s.substr(i, eq - i)), value;
        std::size_t j = eq + 2;
        for (; j < s.size() && s[j] != '"'; ++j) {
            if (s[j] == '\\' && j + 1 < s.size()) {
                ++j;
                value.push_back(s[j] == 'n' ? '\n' : s[j]);
            } else {
                value.push_back(s[j]);
            }
        }
        labels.emplace_back(std::move(name), std::move(value));
        i = j + 1;
        if (i < s.size() && s[i] == ',') ++i;
    }
    return i < s.size() ? s.substr(i + 1) : std::string_view{};
}

std::string unescape_help(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
            ++i;
            out.push_back(s[i] == 'n' ? '\n' : s[i]);
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

/// The q of each media range of interest in an Accept header.
struct accept_q {
    double protobuf = 0, text = -1, any = -1;
};

}  // namespace

bool wants_protobuf(std::string_view accept) {
    accept_q q;
    while (!accept.empty()) {
        const std::size_t comma = accept.find(',');
        std::string_view range = accept.substr(0, comma);
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
        std::string type;
        double weight = 1;
        bool proto_ok = false, delimited = false;
        for (std::size_t part = 0; !range.empty(); ++part) {
            const std::size_t semi = range.find(';');
            std::string_view p = range.substr(0, semi);
            range = semi == std::string_view::npos ? std::string_view{} : range.substr(semi + 1);
            while (!p.empty() && p.front() == ' ') p.remove_prefix(1);
            while (!p.empty() && p.back() == ' ') p.remove_suffix(1);
            if (part == 0) {
                type = std::string(p);
            } else if (p.starts_with("q=")) {
                weight = std::strtod(std::string(p.substr(2)).c_str(), nullptr);
            } else if (p == "proto=io.prometheus.client.MetricFamily") {
                proto_ok = true;
            } else if (p == "encoding=delimited") {
                delimited = true;
            }
        }
        if (type == "application/vnd.google.protobuf" && proto_ok && delimited)
            q.protobuf = std::max(q.protobuf, weight);
        else if (type == "text/plain")
            q.text = std::max(q.text, weight);
        else if (type == "*/*")
            q.any = std::max(q.any, weight);
    }
    const double text = q.text >= 0 ? q.text : std::max(q.any, 0.0);
    return q.protobuf > 0 && q.protobuf >= text;
}

translator::translator(std::function<void(std::string_view)> out, native_lookup lookup)
    : out_(std::move(out)), lookup_(std::move(lookup)) {}

void translator::feed(std::string_view text) {
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        if (nl == std::string_view::npos) {
            partial_.append(text);
            return;
        }
        if (partial_.empty()) {
            line(text.substr(0, nl));
        } else {
            partial_.append(text.substr(0, nl));
            line(partial_);
            partial_.clear();
        }
        text.remove_prefix(nl + 1);
    }
}

void translator::finish() {
    if (!partial_.empty()) {
        line(partial_);
        partial_.clear();
    }
    flush_family();
}

void translator::line(std::string_view l) {
    if (l.empty()) return;
    if (l.front() != '#') return sample(l);
    const bool help = l.starts_with("# HELP "), type = l.starts_with("# TYPE ");
    if (!help && !type) return;  // a comment
    l.remove_prefix(7);
    const std::size_t sp = l.find(' ');
    const std::string_view name = l.substr(0, sp);
    const std::string_view rest = sp == std::string_view::npos ? "" : l.substr(sp + 1);
    // A family's HELP and TYPE come before its samples; anything else starts a new family.
    if (!open_ || name != name_ || !metrics_.empty() || (help && !help_.empty()) ||
        (type && !type_.empty())) {
        flush_family();
        name_ = std::string(name);
        open_ = true;
    }
    if (help)
        help_ = unescape_help(rest);
    else
        type_ = std::string(rest);
}

translator::metric& translator::metric_for(const label_pairs& labels) {
    // The lines of one series are adjacent (the text format requires it): only the last one can
    // be the same series.
    if (!metrics_.empty() && metrics_.back().labels == labels) return metrics_.back();
    metrics_.push_back(metric{labels, 0, std::nullopt, 0, 0, {}});
    return metrics_.back();
}

void translator::sample(std::string_view l) {
    const std::size_t name_end = l.find_first_of("{ ");
    if (name_end == std::string_view::npos) throw std::invalid_argument("exposition: bad line");
    const std::string_view name = l.substr(0, name_end);
    label_pairs labels;
    std::string_view rest = l.substr(name_end);
    if (rest.front() == '{') rest = parse_labels(rest, labels);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const std::size_t sp = rest.find(' ');
    const double v = parse_value(rest.substr(0, sp));
    std::optional<std::int64_t> ts;
    if (sp != std::string_view::npos)
        ts = static_cast<std::int64_t>(parse_value(rest.substr(sp + 1)));

    const bool histogram = open_ && type_ == "histogram", summary_t = open_ && type_ == "summary";
    const std::string_view base = name_;
    std::string_view suffix;
    if (open_ && name.starts_with(base)) suffix = name.substr(base.size());
    const bool belongs = open_ && name.starts_with(base) &&
                         (suffix.empty() ? !histogram
                                         : (histogram && suffix == "_bucket") ||
                                               ((histogram || summary_t) &&
                                                (suffix == "_sum" || suffix == "_count")));
    if (!belongs) {
        flush_family();
        name_ = std::string(name);
        type_ = "untyped";
        open_ = true;
        suffix = {};
    }
    // The point's key label (le, quantile) is not one of the series' labels.
    double point = 0;
    const char* key = type_ == "histogram" ? "le" : type_ == "summary" ? "quantile" : nullptr;
    bool is_point = false;
    if (key != nullptr && (suffix == "_bucket" || (suffix.empty() && type_ == "summary"))) {
        const auto it = std::find_if(labels.begin(), labels.end(),
                                     [&](const auto& p) { return p.first == key; });
        if (it == labels.end()) throw std::invalid_argument("exposition: no " + std::string(key));
        point = parse_value(it->second);
        labels.erase(it);
        is_point = true;
    }
    metric& m = metric_for(labels);
    if (is_point)
        m.points.emplace_back(point, v);
    else if (suffix == "_sum")
        m.sum = v;
    else if (suffix == "_count")
        m.count = v;
    else
        m.value = v;
    if (ts) m.timestamp_ms = ts;
}

namespace {

/// Histogram{...} of one series: classic buckets (without +Inf, which the count implies) and,
/// when `native` is set, the native fields, with count, sum and classic buckets taken from it.
std::string encode_histogram(const std::vector<std::pair<double, double>>& points, double count,
                             double sum, const std::optional<native::histogram>& native) {
    std::string h;
    std::vector<double> le;
    for (const auto& [bound, cumulative] : points)
        if (!std::isinf(bound)) le.push_back(bound);
    std::vector<std::uint64_t> counts;
    if (native) {
        count = static_cast<double>(native->count);
        sum = native->sum;
        counts = native::classic_counts(*native, le);
    } else {
        for (const auto& [bound, cumulative] : points)
            if (!std::isinf(bound)) counts.push_back(static_cast<std::uint64_t>(cumulative));
    }
    put_uint(h, 1, static_cast<std::uint64_t>(count));
    put_double(h, 2, sum);
    for (std::size_t i = 0; i < le.size(); ++i) {
        std::string b;
        put_uint(b, 1, counts[i]);
        put_double(b, 2, le[i]);
        put_bytes(h, 3, b);
    }
    if (native) {
        put_sint(h, 5, native->schema);
        // Not 0, so that a histogram without observations yet is still taken as a native one
        // (Prometheus' isNativeHistogram); 2^-128 is client_golang's default. Only exact zeros
        // are counted there.
        put_double(h, 6, native->zero_threshold > 0 ? native->zero_threshold : 0x1p-128);
        put_uint(h, 7, native->zero_count);
        for (const auto& s : native->positive_spans) {
            std::string span;
            put_sint(span, 1, s.offset);
            put_uint(span, 2, s.length);
            put_bytes(h, 12, span);
        }
        for (std::int64_t d : native->positive_deltas) put_sint(h, 13, d);
    }
    return h;
}

}  // namespace

std::string translator::encode_metric(const metric& x, std::uint64_t type) const {
    std::string m, body;
    for (const auto& [n, v] : x.labels) {
        body.clear();
        put_bytes(body, 1, n);
        put_bytes(body, 2, v);
        put_bytes(m, 1, body);
    }
    body.clear();
    if (type == histo) {
        const auto native = lookup_ ? lookup_(name_, x.labels) : std::nullopt;
        body = encode_histogram(x.points, x.count, x.sum, native);
        put_bytes(m, 7, body);
    } else if (type == summary) {
        put_uint(body, 1, static_cast<std::uint64_t>(x.count));
        put_double(body, 2, x.sum);
        for (const auto& [q, v] : x.points) {
            std::string qb;
            put_double(qb, 1, q);
            put_double(qb, 2, v);
            put_bytes(body, 3, qb);
        }
        put_bytes(m, 4, body);
    } else {
        put_double(body, 1, x.value);
        put_bytes(m, type == counter ? 3 : type == gauge ? 2 : 5, body);
    }
    if (x.timestamp_ms) {
        put_tag(m, 6, varint_type);
        put_varint(m, static_cast<std::uint64_t>(*x.timestamp_ms));
    }
    return m;
}

void translator::flush_family() {
    if (!open_) return;
    open_ = false;
    std::uint64_t type = untyped;
    if (type_ == "counter") type = counter;
    if (type_ == "gauge") type = gauge;
    if (type_ == "summary") type = summary;
    if (type_ == "histogram") type = histo;
    std::string head;
    put_bytes(head, 1, name_);
    if (!help_.empty()) put_bytes(head, 2, help_);
    put_uint(head, 3, type);
    // The family's length comes first: encode its metrics, add up, then hand on the pieces
    // (no copy of the whole family, which is most of the body for the histogram families).
    std::vector<std::string> encoded;
    encoded.reserve(metrics_.size());
    std::size_t size = head.size();
    std::string tag;
    for (const metric& x : metrics_) {
        encoded.push_back(encode_metric(x, type));
        tag.clear();
        put_tag(tag, 4, bytes_type);
        put_varint(tag, encoded.back().size());
        size += tag.size() + encoded.back().size();
    }
    std::string prefix;
    put_varint(prefix, size);
    prefix += head;
    out_(prefix);
    for (const std::string& m : encoded) {
        tag.clear();
        put_tag(tag, 4, bytes_type);
        put_varint(tag, m.size());
        out_(tag);
        out_(m);
    }
    name_.clear();
    help_.clear();
    type_.clear();
    metrics_.clear();
}

std::string render(const metrics_registry& sources, const native_lookup& lookup) {
    std::string body;
    // Reserved from the sources' text bound (the protobuf is about as large as the text, a bit
    // larger with native buckets): a body that grows by doubling costs copies and page faults.
    std::size_t hint = 0;
    for (const auto& s : sources.sources()) hint += s->size_hint();
    body.reserve(hint + hint / 4);
    translator t([&body](std::string_view family) { body.append(family); }, lookup);
    const metrics_sink sink = [&t](std::string_view piece) { t.feed(piece); };
    render_metrics(sources, sink, 256 * 1024);
    t.finish();
    return body;
}

}  // namespace plugmon::agent::protobuf_exposition
