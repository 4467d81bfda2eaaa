// Prometheus text exposition writer; see exposition.hpp.
#include "common/exposition.hpp"

#include <cstring>

namespace plugmon::agent::exposition {

namespace {

constexpr bool needs_escape(char c) { return c == '\\' || c == '"' || c == '\n'; }

}  // namespace

/// Eight bytes at a time: a byte of `w ^ (c * ones)` is
/// zero where `w` holds `c`, and `(x - ones) & ~x & highs` is non-zero iff `x` has a zero byte.
/// https://graphics.stanford.edu/~seander/bithacks.html#ZeroInWord
bool any_needs_escape(std::string_view v) {
    constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
    constexpr auto has_zero = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
    std::size_t i = 0;
    for (; i + 8 <= v.size(); i += 8) {
        std::uint64_t w;
        std::memcpy(&w, v.data() + i, 8);
        if (has_zero(w ^ ('\\' * ones)) | has_zero(w ^ ('"' * ones)) | has_zero(w ^ ('\n' * ones)))
            return true;
    }
    for (; i < v.size(); ++i)
        if (needs_escape(v[i])) return true;
    return false;
}

std::size_t escaped_size(std::string_view v) {
    std::size_t n = v.size();
    if (any_needs_escape(v))
        for (char c : v) n += needs_escape(c);
    return n;
}

void append_label_value(std::string& out, std::string_view v) {
    if (!any_needs_escape(v)) {  // the usual case: one append
        out += v;
        return;
    }
    std::size_t run = 0;  // start of the run not yet appended, which needs no escaping
    for (std::size_t i = 0; i < v.size(); ++i) {
        const char c = v[i];
        if (!needs_escape(c)) continue;
        out.append(v.data() + run, i - run);
        out.push_back('\\');
        out.push_back(c == '\n' ? 'n' : c);
        run = i + 1;
    }
    out.append(v.data() + run, v.size() - run);
}

void family(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out.push_back(' ');
    out += help;
    out += "\n# TYPE ";
    out += name;
    out.push_back(' ');
    out += type;
    out.push_back('\n');
}

void append_label_prefix(std::string& out, std::span<const label> labels) {
    char sep = '{';
    for (const auto& [k, v] : labels) {
        out.push_back(sep);
        sep = ',';
        out += k;
        out += "=\"";
        append_label_value(out, v);
        out.push_back('"');
    }
}

std::size_t label_prefix_size(std::span<const label> labels) {
    std::size_t n = 0;
    for (const auto& [k, v] : labels)
        n += 1 + std::char_traits<char>::length(k) + 2 + escaped_size(v) + 1;
    return n;
}

void series_name(std::string& out, std::string_view name, label_list labels) {
    out += name;
    append_label_prefix(out, std::span<const label>(labels.begin(), labels.size()));
    if (labels.size() != 0) out.push_back('}');
    out.push_back(' ');
}

void sample(std::string& out, std::string_view name, label_list labels, std::uint64_t v) {
    series_name(out, name, labels);
    append_u64(out, v);
    out.push_back('\n');
}

void sample(std::string& out, std::string_view name, label_list labels, double v) {
    series_name(out, name, labels);
    append_double(out, v);
    out.push_back('\n');
}

void sample_seconds(std::string& out, std::string_view name, label_list labels, std::uint64_t ns) {
    series_name(out, name, labels);
    append_seconds(out, ns);
    out.push_back('\n');
}

}  // namespace plugmon::agent::exposition
