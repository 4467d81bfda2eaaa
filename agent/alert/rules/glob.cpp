// Glob matching for selectors: greedy with one resume point, so no exponential backtracking.
#include "alert/rules/glob.hpp"

#include <cstddef>

namespace plugmon::agent::alert {

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
    constexpr auto none = std::string_view::npos;
    std::size_t p = 0, t = 0;
    // Where the last `*` was and the text position it currently swallows up to. Resuming only
    // from the last star is enough: an earlier star could absorb more, but anything it could
    // reach the last one reaches too.
    std::size_t star = none, star_text = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            star_text = t;
        } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (star != none) {
            p = star + 1;
            t = ++star_text;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

}  // namespace plugmon::agent::alert
