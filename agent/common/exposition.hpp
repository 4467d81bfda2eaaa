// Prometheus text exposition (format 0.0.4): the writer every metrics source appends with.
// Plain functions over a std::string; the small ones are inline because /metrics calls them once
// per line (10 k series: about 300 k lines per scrape).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace plugmon::agent::exposition {

using label = std::pair<const char*, std::string_view>;
using label_list = std::initializer_list<label>;

// The longest outputs of std::to_chars: UINT64_MAX, and the shortest round-trip form of a double
// ("-2.2250738585072014e-308").
constexpr std::size_t max_u64_chars = 20;
constexpr std::size_t max_double_chars = 24;

inline void append_u64(std::string& out, std::uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

inline void append_double(std::string& out, double v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

inline void append_seconds(std::string& out, std::uint64_t ns) {
    append_double(out, double(ns) / 1e9);
}

/// Whether some byte of `v` is a backslash, double quote or newline.
bool any_needs_escape(std::string_view v);
/// The length of `v` once escaped.
std::size_t escaped_size(std::string_view v);
/// Escapes a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view v);

/// `# HELP` and `# TYPE` lines.
void family(std::string& out, const char* name, const char* type, const char* help);

/// Appends the escaped, still open label set `{k="v",...,k="v"` of one series (at least one
/// label), for lines that end with a tail such as `} ` or `,le="0.5"} `.
void append_label_prefix(std::string& out, std::span<const label> labels);
/// The bytes append_label_prefix(labels) appends, for reserving.
std::size_t label_prefix_size(std::span<const label> labels);

/// Writes `name{k="v",...} ` (or `name ` without labels), for the families with few series.
void series_name(std::string& out, std::string_view name, label_list labels);

/// One sample line `name{k="v",...} value`.
void sample(std::string& out, std::string_view name, label_list labels, std::uint64_t v);
void sample(std::string& out, std::string_view name, label_list labels, double v);
inline void sample(std::string& out, std::string_view name, label_list labels, int v) {
    if (v < 0) return sample(out, name, labels, double(v));
    sample(out, name, labels, std::uint64_t(v));
}
/// A sample whose value is a duration in ns, written in seconds.
void sample_seconds(std::string& out, std::string_view name, label_list labels, std::uint64_t ns);

}  // namespace plugmon::agent::exposition
