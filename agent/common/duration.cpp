// Durations and byte sizes as people write them in configuration files and flags.
#include "common/duration.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <system_error>

namespace plugmon::agent {

using std::chrono::nanoseconds;

std::optional<std::uint64_t> parse_size(std::string_view text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    std::uint64_t n = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), n);
    if (r.ec != std::errc{} || r.ptr == text.data()) return std::nullopt;
    std::string_view unit(r.ptr, std::size_t(text.data() + text.size() - r.ptr));
    while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    struct suffix {
        std::string_view name;
        std::uint64_t factor;
    };
    constexpr suffix suffixes[] = {{"", 1},
                                   {"B", 1},
                                   {"KiB", 1ull << 10},
                                   {"MiB", 1ull << 20},
                                   {"GiB", 1ull << 30},
                                   {"TiB", 1ull << 40},
                                   {"KB", 1000},
                                   {"MB", 1000'000},
                                   {"GB", 1000'000'000},
                                   {"TB", 1000'000'000'000}};
    for (const auto& s : suffixes) {
        if (unit != s.name) continue;
        if (n > std::numeric_limits<std::uint64_t>::max() / s.factor) return std::nullopt;
        return n * s.factor;
    }
    return std::nullopt;
}

std::optional<nanoseconds> parse_duration(std::string_view text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    if (text.empty()) return std::nullopt;
    constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
    struct unit {
        std::string_view suffix;
        std::int64_t ns;
    };
    // Longer suffixes first, so "ms" is not read as "m" followed by "s".
    constexpr unit units[] = {{"ns", 1},
                              {"us", 1'000},
                              {"\xC2\xB5s", 1'000},  // µs
                              {"ms", 1'000'000},
                              {"s", 1'000'000'000},
                              {"m", 60'000'000'000},
                              {"h", 3'600'000'000'000},
                              {"d", 86'400'000'000'000}};
    std::int64_t total = 0;
    while (!text.empty()) {
        std::int64_t whole = 0;
        std::size_t i = 0;
        bool digits = false;
        for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
            if (whole > (max - 9) / 10) return std::nullopt;
            whole = whole * 10 + (text[i] - '0');
            digits = true;
        }
        std::string_view fraction;
        if (i < text.size() && text[i] == '.') {
            const std::size_t start = ++i;
            for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) digits = true;
            fraction = text.substr(start, i - start);
        }
        if (!digits) return std::nullopt;
        text.remove_prefix(i);
        const unit* u = nullptr;
        for (const auto& candidate : units) {
            if (text.starts_with(candidate.suffix)) {
                u = &candidate;
                break;
            }
        }
        if (u == nullptr) return std::nullopt;
        text.remove_prefix(u->suffix.size());
        if (whole > max / u->ns) return std::nullopt;
        std::int64_t part = whole * u->ns;
        std::int64_t scale = u->ns;
        for (const char c : fraction) {
            scale /= 10;
            part += (c - '0') * scale;
        }
        if (part > max - total) return std::nullopt;
        total += part;
    }
    return nanoseconds{total};
}

std::string format_duration(nanoseconds d) {
    const auto n = d.count();
    if (n == 0) return "0s";
    struct unit {
        std::int64_t ns;
        const char* suffix;
    };
    constexpr unit units[] = {{86'400'000'000'000, "d"},
                              {3'600'000'000'000, "h"},
                              {60'000'000'000, "m"},
                              {1'000'000'000, "s"},
                              {1'000'000, "ms"},
                              {1'000, "us"},
                              {1, "ns"}};
    for (const auto& u : units)
        if (n % u.ns == 0) return std::to_string(n / u.ns) + u.suffix;
    return std::to_string(n) + "ns";
}

}  // namespace plugmon::agent
