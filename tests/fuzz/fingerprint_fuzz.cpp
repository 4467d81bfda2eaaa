// libFuzzer target: arbitrary bytes as SQL text through normalize_statement with a cap taken from
// the input (often smaller than the text). Checks the output bound, idempotency, and that valid
// UTF-8 stays valid; the output buffer is exactly cap bytes, so ASan catches any write beyond it.
// Metamorphic check: the same tokens (sql_lexer) rewritten with other whitespace and comments
// between them, and unquoted words in another case, normalise to the same text.
// Shape key (statement_shape.hpp): the block scanner equals the token-stream definition, on the
// input and on the input with its constants replaced; where those two share a key, they normalise
// to the same text.
#include "../../probe/fingerprint.hpp"
#include "../../probe/sql_lexer.hpp"
#include "../../probe/statement_shape.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

namespace {

/// True when s is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (s.size() - i <= n) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            const auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = cp << 6 | (d & 0x3f);
        }
        const std::uint32_t least[] = {0, 0x80, 0x800, 0x10000};
        if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n + 1;
    }
    return true;
}

void check(bool ok) {
    if (!ok) __builtin_trap();
}

/// The tokens of sql joined by separators (whitespace or comments, picked by a seed taken from
/// the text), with the case of unquoted words changed.
std::string respaced(std::string_view sql, std::uint32_t seed) {
    using plugmon::detail::sql_token_kind;
    static constexpr std::string_view separators[] = {
        " ", "  ", "\n", "\t ", " /* c */ ", " -- c\n", "\r\n", " /* a /* b */ */"};
    std::string out;
    plugmon::detail::sql_lexer lexer(sql);
    plugmon::detail::sql_token t;
    bool first = true;
    while (lexer.next(t)) {
        seed = seed * 1103515245u + 12345u;
        if (!first) out += separators[(seed >> 16) % std::size(separators)];
        first = false;
        std::string text(sql.substr(t.begin, t.end - t.begin));
        const bool flip = t.kind == sql_token_kind::word ||
                          (t.kind == sql_token_kind::constant && (text[0] | 0x20) >= 'a' &&
                           (text[0] | 0x20) <= 'z' && text.find_first_of("'\"") == text.npos);
        if (flip) {
            for (std::size_t i = 0; i < text.size(); ++i) {
                const char c = text[i];
                const bool letter = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
                if (letter && ((seed >> (i % 16)) & 1)) text[i] = char(c ^ 0x20);
            }
        }
        out += text;
    }
    return out;
}

/// sql with every constant token (sql_lexer's spans) replaced by one picked by `seed`.
std::string with_other_constants(std::string_view sql, std::uint32_t seed) {
    static constexpr std::string_view constants[] = {"7",     "'x'",   "?",   "-1",
                                                     "1.5e3", "$$q$$", "NULL"};
    plugmon::detail::sql_lexer lexer(sql);
    plugmon::detail::sql_token t;
    std::string out;
    std::size_t at = 0;
    while (lexer.next(t)) {
        if (t.kind != plugmon::detail::sql_token_kind::constant) continue;
        seed = seed * 1103515245u + 12345u;
        out.append(sql.substr(at, t.begin - at));
        out.append(constants[(seed >> 16) % std::size(constants)]);
        at = t.end;
    }
    out.append(sql.substr(at));
    return out;
}

/// The shape key's contract on sql and a literal variant of it.
void check_shape(std::string_view sql, std::uint32_t seed, std::string_view normalized) {
    using plugmon::detail::statement_shape;
    using plugmon::detail::statement_shape_reference;
    const std::uint64_t key = statement_shape(sql);
    check(key != 0 && key == statement_shape_reference(sql));
    const std::string variant = with_other_constants(sql, seed);
    const std::uint64_t variant_key = statement_shape(variant);
    check(variant_key == statement_shape_reference(variant));
    if (variant_key != key) return;
    char buf[plugmon::detail::statement_max_length];
    const std::size_t n = plugmon::detail::normalize_statement(variant, buf, sizeof buf);
    check(std::string_view(buf, n) == normalized);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using plugmon::detail::normalize_statement;
    using plugmon::detail::statement_fingerprint;
    using plugmon::detail::statement_max_length;
    if (size < 1) return 0;
    // Byte 0 picks the cap: small caps exercise the cut, 255 means "the full bound".
    const std::size_t cap = data[0] == 255 ? statement_max_length + 16 : data[0];
    const std::string_view sql(reinterpret_cast<const char*>(data + 1), size - 1);

    const auto out = std::make_unique<char[]>(cap);  // exactly cap bytes: ASan sees overruns
    const std::size_t n = normalize_statement(sql, out.get(), cap);
    check(n <= cap && n <= statement_max_length);
    const std::string_view first(out.get(), n);
    if (valid_utf8(sql)) check(valid_utf8(first));

    const auto again = std::make_unique<char[]>(cap);
    const std::size_t m = normalize_statement(first, again.get(), cap);
    check(m == n && std::memcmp(again.get(), out.get(), n) == 0);

    check(statement_fingerprint(first) != 0);

    // The same tokens, spaced and cased differently: the same statement.
    const std::string variant = respaced(sql, size * 2654435761u + (size > 1 ? data[1] : 0));
    const auto third = std::make_unique<char[]>(cap);
    const std::size_t k = normalize_statement(variant, third.get(), cap);
    check(k == n && std::memcmp(third.get(), out.get(), n) == 0);

    char full[statement_max_length];
    const std::size_t f = normalize_statement(sql, full, sizeof full);
    check_shape(sql, std::uint32_t(size), std::string_view(full, f));
    return 0;
}
