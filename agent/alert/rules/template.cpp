// Renders annotation templates: a fixed set of names and filters, no logic, never throws on input.
#include "alert/rules/template.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include "common/duration.hpp"

namespace plugmon::agent::alert {

namespace {

/// A placeholder's value: a number, or text (a label, the severity).
struct value {
    bool is_text = false;
    double number = 0;
    std::string text;
    bool is_duration = false;  // `over`: printed as a duration without a filter
};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// `x` with at most three significant digits (fewer when they are zeros), never an exponent.
std::string short_number(double x) {
    if (std::isnan(x)) return "NaN";
    if (std::isinf(x)) return x > 0 ? "+Inf" : "-Inf";
    const double a = std::fabs(x);
    const int decimals = a >= 100 || a == 0 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : 6;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
    }
    if (s == "-0") s = "0";
    return s;
}

/// The shortest text that reads back as `x` (the unfiltered form of numbers).
std::string exact_number(double x) {
    if (std::isnan(x)) return "NaN";
    if (std::isinf(x)) return x > 0 ? "+Inf" : "-Inf";
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}

/// `x` divided by the largest unit it reaches, with that unit's suffix.
template <std::size_t N>
std::string scaled(double x, const std::array<std::pair<double, const char*>, N>& units,
                   const char* fallback) {
    const double a = std::fabs(x);
    if (a == 0 || !std::isfinite(x)) return short_number(x) + fallback;
    for (const auto& [factor, suffix] : units)
        if (a >= factor) return short_number(x / factor) + suffix;
    return short_number(x / units.back().first) + units.back().second;
}

std::string as_duration(double seconds) {
    static constexpr std::array<std::pair<double, const char*>, 7> units{
        {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}, {1e-3, "ms"}, {1e-6, "us"}, {1e-9, "ns"}}};
    return scaled(seconds, units, "s");
}

std::string as_bytes(double bytes) {
    static constexpr std::array<std::pair<double, const char*>, 7> units{
        {{1125899906842624.0 * 1024, "EiB"},
         {1125899906842624.0, "PiB"},
         {1099511627776.0, "TiB"},
         {1073741824.0, "GiB"},
         {1048576.0, "MiB"},
         {1024.0, "KiB"},
         {1.0, "B"}}};
    if (std::fabs(bytes) < 1) return short_number(bytes) + "B";
    return scaled(bytes, units, "B");
}

std::string humanize(double x) {
    static constexpr std::array<std::pair<double, const char*>, 10> units{{{1e18, "E"},
                                                                           {1e15, "P"},
                                                                           {1e12, "T"},
                                                                           {1e9, "G"},
                                                                           {1e6, "M"},
                                                                           {1e3, "k"},
                                                                           {1, ""},
                                                                           {1e-3, "m"},
                                                                           {1e-6, "u"},
                                                                           {1e-9, "n"}}};
    return scaled(x, units, "");
}

/// The value of NAME, or an error. With `v` null (checking only), any known name gives 0.
std::optional<std::string> lookup(std::string_view name, const template_vars* v, value& out) {
    if (name.starts_with("labels.")) {
        const auto label = name.substr(7);
        if (label.empty()) return "empty label name in \"labels.\"";
        out.is_text = true;
        if (v != nullptr) {
            const auto it = v->labels.find(label);
            if (it != v->labels.end()) out.text = it->second;
        }
        return std::nullopt;
    }
    if (name == "value" || name == "threshold" || name == "samples" || name == "over") {
        if (v == nullptr) return std::nullopt;
        if (name == "value") out.number = v->value;
        if (name == "threshold") out.number = v->threshold;
        if (name == "samples") out.number = static_cast<double>(v->samples);
        if (name == "over") {
            out.number = std::chrono::duration<double>(v->over).count();
            out.is_duration = true;
        }
        return std::nullopt;
    }
    if (name == "severity") {
        out.is_text = true;
        if (v != nullptr) out.text = std::string(to_string(v->severity));
        return std::nullopt;
    }
    return "unknown name \"" + std::string(name) +
           "\" (use labels.X, value, threshold, samples, over, severity)";
}

/// Applies one filter; text is converted to a number first (a label may hold one).
std::optional<std::string> apply_filter(std::string_view filter, bool checking, value& x) {
    static constexpr std::array<std::string_view, 4> filters{"percent", "duration", "bytes",
                                                             "humanize"};
    bool known = false;
    for (const auto f : filters) known = known || f == filter;
    if (!known)
        return "unknown filter \"" + std::string(filter) +
               "\" (use percent, duration, bytes, humanize)";
    if (checking) return std::nullopt;
    if (x.is_text) {
        const char* end = x.text.data() + x.text.size();
        const auto r = std::from_chars(x.text.data(), end, x.number);
        if (x.text.empty() || r.ec != std::errc{} || r.ptr != end)
            return "filter " + std::string(filter) + " needs a number, got \"" + x.text + "\"";
    }
    if (filter == "percent") x.text = short_number(x.number * 100) + "%";
    if (filter == "duration") x.text = as_duration(x.number);
    if (filter == "bytes") x.text = as_bytes(x.number);
    if (filter == "humanize") x.text = humanize(x.number);
    x.is_text = true;
    return std::nullopt;
}

/// One placeholder's inside ("value | percent"), rendered into `out` unless checking.
std::optional<std::string> expand(std::string_view inside, const template_vars* v,
                                  std::string& out) {
    const auto bar = inside.find('|');
    const auto name = trim(inside.substr(0, bar));
    if (name.empty()) return std::string("empty placeholder");
    value x;
    if (auto error = lookup(name, v, x)) return error;
    std::string_view rest = bar == std::string_view::npos ? std::string_view{} : inside.substr(bar);
    while (!rest.empty()) {
        rest.remove_prefix(1);  // the '|'
        const auto next = rest.find('|');
        const auto filter = trim(rest.substr(0, next));
        if (filter.empty()) return std::string("empty filter after '|'");
        if (auto error = apply_filter(filter, v == nullptr, x)) return error;
        rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next);
    }
    if (v == nullptr) return std::nullopt;
    if (x.is_text)
        out += x.text;
    else if (x.is_duration)
        out += as_duration(x.number);
    else
        out += exact_number(x.number);
    return std::nullopt;
}

/// Walks the template; renders into `out` when `v` is given, else only checks.
std::optional<std::string> walk(std::string_view tmpl, const template_vars* v, std::string& out) {
    std::size_t pos = 0;
    while (pos < tmpl.size()) {
        const auto open = tmpl.find("{{", pos);
        const auto stray = tmpl.find("}}", pos);
        if (stray < open) return "\"}}\" without \"{{\" at offset " + std::to_string(stray);
        out.append(tmpl.substr(pos, open - pos));
        if (open == std::string_view::npos) break;
        const auto close = tmpl.find("}}", open + 2);
        if (close == std::string_view::npos)
            return "unclosed \"{{\" at offset " + std::to_string(open);
        const auto inside = tmpl.substr(open + 2, close - open - 2);
        if (inside.find("{{") != std::string_view::npos)
            return "nested \"{{\" at offset " + std::to_string(open);
        if (auto error = expand(inside, v, out)) return error;
        pos = close + 2;
    }
    return std::nullopt;
}

}  // namespace

std::string render_template(std::string_view tmpl, const template_vars& v) {
    std::string out;
    if (auto error = walk(tmpl, &v, out)) return "<template error: " + *error + ">";
    return out;
}

std::optional<std::string> check_template(std::string_view tmpl) {
    std::string ignored;
    return walk(tmpl, nullptr, ignored);
}

}  // namespace plugmon::agent::alert
