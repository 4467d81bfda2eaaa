// PostgreSQL connection strings in logs: the password masked.
#include "common/conninfo.hpp"

#include <cctype>

namespace plugmon::agent {

std::string mask_password(std::string_view conninfo) {
    constexpr std::string_view mask = "***";
    const auto iequals = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) ==
                          std::tolower(static_cast<unsigned char>(y));
               });
    };
    std::string out;
    std::string_view s = conninfo;
    const auto scheme_end = s.find("://");
    if (s.starts_with("postgresql://") || s.starts_with("postgres://")) {
        // URL form: user info ends at an '@'. A password with an unescaped '/' or '@' is not
        // valid for libpq, but the last '@' before the query is taken so that it is masked anyway.
        const std::size_t authority = scheme_end + 3;
        const auto at = s.substr(0, s.find('?', authority)).rfind('@');
        std::size_t copied = 0;
        if (at != std::string_view::npos && at >= authority) {
            const auto colon = s.substr(0, at).find(':', authority);
            if (colon != std::string_view::npos) {
                out.append(s.substr(0, colon + 1));
                out.append(mask);
                copied = at;
            }
        }
        const auto query = s.find('?', copied);
        if (query == std::string_view::npos) {
            out.append(s.substr(copied));
            return out;
        }
        out.append(s.substr(copied, query + 1 - copied));
        std::string_view params = s.substr(query + 1);
        bool first = true;
        while (true) {
            const auto amp = params.find('&');
            const std::string_view param = params.substr(0, amp);
            if (!first) out += '&';
            first = false;
            const auto eq = param.find('=');
            if (eq != std::string_view::npos && iequals(param.substr(0, eq), "password")) {
                out.append(param.substr(0, eq + 1));
                out.append(mask);
            } else {
                out.append(param);
            }
            if (amp == std::string_view::npos) break;
            params.remove_prefix(amp + 1);
        }
        return out;
    }
    // key=value form: keywords, optional spaces around '=', values bare or single-quoted
    // with backslash escapes.
    const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t token = i;
        while (i < s.size() && space(s[i])) ++i;
        const std::size_t key_start = i;
        while (i < s.size() && !space(s[i]) && s[i] != '=') ++i;
        const std::string_view key = s.substr(key_start, i - key_start);
        while (i < s.size() && space(s[i])) ++i;
        if (i >= s.size() || s[i] != '=') {
            out.append(s.substr(token, i - token));
            continue;
        }
        ++i;
        while (i < s.size() && space(s[i])) ++i;
        const std::size_t value_start = i;
        if (i < s.size() && s[i] == '\'') {
            for (++i; i < s.size() && s[i] != '\''; ++i)
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
            if (i < s.size()) ++i;
        } else {
            for (; i < s.size() && !space(s[i]); ++i)
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
        }
        out.append(s.substr(token, value_start - token));
        if (iequals(key, "password"))
            out.append(mask);
        else
            out.append(s.substr(value_start, i - value_start));
    }
    return out;
}

}  // namespace plugmon::agent
