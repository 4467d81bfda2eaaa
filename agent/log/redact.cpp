// Masking secrets in log lines: URL passwords, key=value passwords, Authorization and Bearer.
#include "log/redact.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace plugmon::agent::log {

namespace {

constexpr std::string_view mask = "***";

/// ASCII only, as the keys it looks for are; inline, where std::tolower is a call per byte.
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_word(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

/// Position of `needle` (lower case) in `text` at or after `from`, ignoring case; npos if none.
std::size_t ifind(std::string_view text, std::string_view needle, std::size_t from) {
    if (needle.size() > text.size()) return std::string_view::npos;
    for (std::size_t i = from; i + needle.size() <= text.size(); ++i) {
        std::size_t k = 0;
        while (k < needle.size() && lower(text[i + k]) == needle[k]) ++k;
        if (k == needle.size()) return i;
    }
    return std::string_view::npos;
}

/// End of a value starting at `i`: a quoted value ends after its closing quote (backslash escapes
/// honoured), a bare one at a space, quote or separator.
std::size_t value_end(std::string_view s, std::size_t i, bool to_line_end) {
    if (i < s.size() && (s[i] == '\'' || s[i] == '"')) {
        const char q = s[i];
        for (std::size_t k = i + 1; k < s.size(); ++k) {
            if (s[k] == '\\')
                ++k;
            else if (s[k] == q)
                return k + 1;
        }
        return s.size();
    }
    std::size_t k = i;
    const std::string_view stops = to_line_end ? "\"'\r\n," : " \t\"'&,;)\r\n";
    while (k < s.size() && stops.find(s[k]) == std::string_view::npos) ++k;
    return k;
}

/// Masks the password of every URL's user info: scheme://user:secret@host.
std::string mask_urls(std::string_view s) {
    std::string out;
    std::size_t copied = 0;
    for (auto p = s.find("://"); p != std::string_view::npos; p = s.find("://", p + 3)) {
        const std::size_t a = p + 3;
        std::size_t e = a;
        while (e < s.size() && !is_space(s[e]) &&
               std::string_view("\"'<>\r\n").find(s[e]) == std::string_view::npos)
            ++e;
        std::string_view authority = s.substr(a, e - a);
        authority = authority.substr(0, authority.find('?'));
        const auto at = authority.rfind('@');
        if (at == std::string_view::npos) continue;
        const auto colon = authority.substr(0, at).find(':');
        if (colon == std::string_view::npos || a + colon + 1 < copied) continue;
        out.append(s.substr(copied, a + colon + 1 - copied));
        out.append(mask);
        copied = a + at;
    }
    out.append(s.substr(copied));
    return out;
}

/// Masks the value after each `key` (followed by `=` or `:`); `scheme` keeps a leading word such
/// as "Bearer" and masks what follows it.
std::string mask_keyed(std::string_view s, std::string_view key, bool scheme) {
    std::string out;
    std::size_t copied = 0;
    for (auto p = ifind(s, key, 0); p != std::string_view::npos; p = ifind(s, key, p + 1)) {
        if (p > 0 && is_word(s[p - 1]) && key != "access_token") continue;
        std::size_t i = p + key.size();
        if (i < s.size() && is_word(s[i])) continue;  // "passwords", "secret_name"
        if (i < s.size() && s[i] == '"') ++i;         // a JSON key
        while (i < s.size() && is_space(s[i])) ++i;
        if (i >= s.size() || (s[i] != '=' && s[i] != ':')) continue;
        ++i;
        while (i < s.size() && is_space(s[i])) ++i;
        if (scheme) {
            std::size_t w = i + (i < s.size() && s[i] == '"' ? 1 : 0);
            std::size_t k = w;
            while (k < s.size() && std::isalpha(static_cast<unsigned char>(s[k]))) ++k;
            if (k > w && k < s.size() && is_space(s[k])) {
                i = k;
                while (i < s.size() && is_space(s[i])) ++i;
            }
        }
        const std::size_t e = value_end(s, i, false);
        if (e == i || i < copied) continue;
        out.append(s.substr(copied, i - copied));
        out.append(mask);
        copied = e;
    }
    out.append(s.substr(copied));
    return out;
}

/// Masks the token after every "Bearer " (any case).
std::string mask_bearer(std::string_view s) {
    std::string out;
    std::size_t copied = 0;
    for (auto p = ifind(s, "bearer", 0); p != std::string_view::npos;
         p = ifind(s, "bearer", p + 1)) {
        if (p > 0 && is_word(s[p - 1])) continue;
        std::size_t i = p + 6;
        if (i >= s.size() || !is_space(s[i])) continue;
        while (i < s.size() && is_space(s[i])) ++i;
        const std::size_t e = value_end(s, i, false);
        if (e == i || s.substr(i, e - i) == mask || i < copied) continue;
        out.append(s.substr(copied, i - copied));
        out.append(mask);
        copied = e;
    }
    out.append(s.substr(copied));
    return out;
}

}  // namespace

std::string redact(std::string_view text) {
    std::string s = mask_urls(text);
    for (std::string_view key : {"password", "passwd", "secret", "access_token"})
        s = mask_keyed(s, key, false);
    s = mask_keyed(s, "authorization", true);
    return mask_bearer(s);
}

bool sensitive_key(std::string_view key) noexcept {
    constexpr std::array<std::string_view, 6> parts{"password", "passwd",        "secret",
                                                    "token",    "authorization", "bearer"};
    std::array<char, 64> buf{};
    const std::size_t n = std::min(key.size(), buf.size());
    std::transform(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(n), buf.begin(), lower);
    const std::string_view k(buf.data(), n);
    if (k.ends_with("name")) return false;  // token_name says whose token, not what it is
    return std::any_of(parts.begin(), parts.end(), [&](std::string_view part) {
        return k.find(part) != std::string_view::npos;
    });
}

}  // namespace plugmon::agent::log
