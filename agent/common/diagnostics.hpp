// Pieces of error messages about the files the agent reads (the configuration, rules files,
// pricing files): a value quoted for display, and what a TOML value is, in words. Header-only:
// its users link toml++ themselves.
#pragma once

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent {

/// `text` in double quotes with quotes, backslashes and control characters escaped, shortened to
/// 80 bytes ("...") when longer.
inline std::string quoted(std::string_view text) {
    constexpr std::size_t max_shown = 80;
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size() && i < max_shown; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (text.size() > max_shown) out += "...";
    out += '"';
    return out;
}

/// Levenshtein distance (insertions, deletions, substitutions of bytes).
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] =
                std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/// For "did you mean": the first of `candidates` (each turned into a name by `name_of`) nearest
/// to `name`, when it is at most two edits away.
template <class Range, class NameOf>
std::optional<std::string_view> closest_name(std::string_view name, const Range& candidates,
                                             NameOf name_of) {
    std::optional<std::string_view> best;
    std::size_t best_distance = 3;
    for (const auto& c : candidates) {
        const std::string_view candidate = name_of(c);
        const std::size_t d = edit_distance(name, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    return best;
}

/// "a string", "an integer", "a table", ...
inline std::string toml_type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

}  // namespace plugmon::agent
