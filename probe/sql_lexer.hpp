// SQL token scanner after PostgreSQL's lexical rules: yields each token's kind and span, nothing
// else. The statement normaliser (fingerprint.cpp) writes from it; a pass that only hashes the
// token stream can use it the same way. Header-only; no allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace plugmon::detail {

/// What a token is. Whitespace and comments are never tokens: they only separate them.
enum class sql_token_kind : std::uint8_t {
    word,       // unquoted identifier or keyword (case-insensitive)
    name,       // quoted identifier: "…", U&"…", `…` (case-sensitive)
    constant,   // literal or parameter (see sql_lexer)
    op,         // operator (split as PostgreSQL splits runs of operator characters), other punct.
    open,       // ( or [
    close,      // ) or ]
    comma,      // ,
    semicolon,  // ;
    dot,        // .
    cast,       // ::
};

/// One token: kind and span [begin, end) in the input.
struct sql_token {
    sql_token_kind kind = sql_token_kind::word;
    bool unterminated = false;  // a quoted identifier or string that runs to the end of the input
    std::size_t begin = 0, end = 0;
};

namespace sql_chars {

// Bytes >= 0x80 are identifier bytes, as in PostgreSQL's scanner, so a multi-byte UTF-8
// sequence always sits whole inside one token.
enum : std::uint8_t {
    space = 1,
    digit = 2,
    ident_start = 4,
    ident_char = 8,
    op = 16,
    op_special = 32
};

struct table {
    std::uint8_t bits[256] = {};
    constexpr table() {
        for (int c = 0; c < 256; ++c) {
            const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            const bool dig = c >= '0' && c <= '9';
            const bool start = alpha || c == '_' || c >= 0x80;
            const bool ws =
                c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
            // PostgreSQL's operator characters, less `?` (a parameter here) and "`" (a quote).
            const std::string_view ops = "~!@#^&|+-*/%<>=";
            const std::string_view specials = "~!@#^&|%";  // allow a trailing + or -
            bits[c] =
                std::uint8_t((ws ? space : 0) | (dig ? digit : 0) | (start ? ident_start : 0) |
                             (start || dig || c == '$' ? ident_char : 0) |
                             (ops.find(char(c)) != ops.npos ? op : 0) |
                             (specials.find(char(c)) != specials.npos ? op_special : 0));
        }
    }
};
inline constexpr table classes;

constexpr bool is(unsigned char c, std::uint8_t cls) noexcept { return classes.bits[c] & cls; }
constexpr char to_lower(char c) noexcept {
    return char(c | (static_cast<unsigned char>(c - 'A') < 26 ? 0x20 : 0));
}

/// A word of at most 8 bytes as one integer, lowercased: keyword checks are integer compares.
/// Compare with a packed literal only where it must be a constant (a case label, a constexpr
/// variable): compilers do not fold the loop otherwise, and pack it again on every call.
constexpr std::uint64_t pack(const char* p, std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v |= std::uint64_t(static_cast<unsigned char>(to_lower(p[i]))) << (8 * i);
    return v;
}
constexpr std::uint64_t pack(std::string_view w) noexcept { return pack(w.data(), w.size()); }

}  // namespace sql_chars

/// Keywords after which an expression starts: `-5` there is a negative constant, `:name` a
/// parameter, and `(` does not open a function's arguments. Thread-safe.
inline bool sql_expression_keyword(const char* p, std::size_t n) noexcept {
    using sql_chars::pack;
    if (n < 2 || n > 9) return false;
    constexpr std::uint64_t returnin = pack("returnin");
    if (n == 9) return pack(p, 8) == returnin && sql_chars::to_lower(p[8]) == 'g';
    switch (pack(p, n)) {
        case pack("all"):
        case pack("and"):
        case pack("any"):
        case pack("as"):
        case pack("between"):
        case pack("by"):
        case pack("case"):
        case pack("distinct"):
        case pack("else"):
        case pack("escape"):
        case pack("except"):
        case pack("exists"):
        case pack("filter"):
        case pack("from"):
        case pack("having"):
        case pack("ilike"):
        case pack("in"):
        case pack("intersec"):
        case pack("join"):
        case pack("lateral"):
        case pack("like"):
        case pack("limit"):
        case pack("not"):
        case pack("offset"):
        case pack("on"):
        case pack("or"):
        case pack("over"):
        case pack("return"):
        case pack("select"):
        case pack("set"):
        case pack("some"):
        case pack("then"):
        case pack("union"):
        case pack("using"):
        case pack("values"):
        case pack("when"):
        case pack("where"):
            return true;
        default:
            return false;
    }
}

/// End of the numeric constant that starts at i in s[0, n) (a digit, or `.` before a digit), as
/// sql_lexer scans it: digits and `_`, one `.` (not `..`: `1..2` is 1, `.`, `.`, 2, as in
/// PL/pgSQL ranges), an exponent, then any identifier bytes glued to it. Thread-safe.
inline std::size_t sql_number_end(const char* s, std::size_t n, std::size_t i) noexcept {
    using sql_chars::is;
    const auto at = [s, n](std::size_t k) {
        return k < n ? static_cast<unsigned char>(s[k]) : static_cast<unsigned char>(0);
    };
    while (is(at(i), sql_chars::digit) || at(i) == '_') ++i;
    if (at(i) == '.' && at(i + 1) != '.') {
        ++i;
        while (is(at(i), sql_chars::digit) || at(i) == '_') ++i;
    }
    if ((at(i) | 0x20) == 'e') {
        std::size_t j = i + 1;
        if (at(j) == '+' || at(j) == '-') ++j;
        if (is(at(j), sql_chars::digit)) {
            i = j;
            while (is(at(i), sql_chars::digit) || at(i) == '_') ++i;
        }
    }
    while (i < n && is(at(i), sql_chars::ident_char)) ++i;
    return i;
}

/// End of a nested block comment that starts (`/*`) at i in s[0, n): PostgreSQL nests them. The
/// end of the text when it is not closed. Thread-safe.
inline std::size_t sql_block_comment_end(const char* s, std::size_t n, std::size_t i) noexcept {
    std::size_t depth = 0;
    while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
            ++depth;
            i += 2;
        } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
            i += 2;
            if (--depth == 0) break;
        } else {
            ++i;
        }
    }
    return i;
}

/// End of a quoted run in s[0, n) whose body starts at i (after its opening quote): a doubled
/// quote is an escape, and so is a backslash when `backslash`. Runs to the end, with `closed`
/// false, when not closed. Without backslashes it jumps from quote to quote (memchr).
inline std::size_t sql_quoted_end(const char* s, std::size_t n, std::size_t i, char quote,
                                  bool backslash, bool& closed) noexcept {
    closed = true;
    while (i < n) {
        if (!backslash) {
            const void* q = std::memchr(s + i, quote, n - i);
            if (q == nullptr) break;
            i = std::size_t(static_cast<const char*>(q) - s);
        } else if (s[i] == '\\') {
            i += 2;
            continue;
        } else if (s[i] != quote) {
            ++i;
            continue;
        }
        if (i + 1 >= n || s[i + 1] != quote) return i + 1;  // the closing quote
        i += 2;                                             // a doubled quote
    }
    closed = false;
    return n;
}

/// Scans SQL text into tokens, as PostgreSQL 15 lexes it:
/// - constants: '…' (doubled quote escapes), E'…' (backslash escapes too), B'…', X'…', U&'…', $tag$…$tag$, numbers (1, 1.5, .5, 5., 1.5e3; letters glued to a number are part of
///   it, so 0x1F and 1_000 — rejected by PostgreSQL 15, integers in 16 — are one constant),
///   parameters ($1, ?, ?1, :name where an expression may start), and the words TRUE, FALSE and
///   NULL except after IS or IS NOT; N'…' is the word N and a string, as PostgreSQL reads it
///   (a typed literal, `nchar '…'`);
/// - a `-` where an expression may start (after an operator, `(`, `,`, an expression keyword, or
///   at the start), followed by a number (across whitespace and comments, also `- -1`) and not by
///   `::`, is part of that number's constant: PostgreSQL folds it into a negative constant;
/// - operators: a run of ~!@#^&|+-*/%<>= ends before `--` or `/*`, and loses trailing + and -
///   unless it holds one of ~!@#^&|%;
/// - unterminated strings, quoted identifiers and comments run to the end of the input.
/// Copyable (a copy resumes from the same place). Not thread-safe; no allocation.
class sql_lexer {
public:
    explicit sql_lexer(std::string_view sql) noexcept : in_(sql.data()), n_(sql.size()) {}

    /// The next token into t; false at the end of the input.
    bool next(sql_token& t) noexcept {
        pos_ = skip_blank(pos_);
        if (pos_ >= n_) return false;
        t.begin = pos_;
        t.unterminated = false;
        scan(t);
        pos_ = t.end;
        remember(t);
        return true;
    }

private:
    unsigned char at(std::size_t i) const noexcept {
        return i < n_ ? static_cast<unsigned char>(in_[i]) : 0;
    }

    /// The first position at or after i that is not whitespace or inside a comment.
    std::size_t skip_blank(std::size_t i) const noexcept {
        while (i < n_) {
            const unsigned char c = at(i);
            if (sql_chars::is(c, sql_chars::space)) {
                ++i;
            } else if (c == '-' && at(i + 1) == '-') {
                while (i < n_ && in_[i] != '\n') ++i;
            } else if (c == '/' && at(i + 1) == '*') {
                i = skip_block_comment(i);
            } else {
                break;
            }
        }
        return i;
    }

    /// End of a nested block comment starting at i (PostgreSQL nests them).
    std::size_t skip_block_comment(std::size_t i) const noexcept {
        return sql_block_comment_end(in_, n_, i);
    }

    /// End of a quoted run starting after its opening quote at i (sql_quoted_end).
    std::size_t scan_quoted(std::size_t i, char quote, bool backslash,
                            bool& closed) const noexcept {
        return sql_quoted_end(in_, n_, i, quote, backslash, closed);
    }

    /// End of a numeric constant starting at i (a digit, or `.` before a digit).
    std::size_t scan_number(std::size_t i) const noexcept { return sql_number_end(in_, n_, i); }

    bool number_at(std::size_t i) const noexcept {
        return sql_chars::is(at(i), sql_chars::digit) ||
               (at(i) == '.' && sql_chars::is(at(i + 1), sql_chars::digit));
    }

    /// End of a dollar-quoted string when i starts `$tag$` (tag possibly empty), else 0.
    std::size_t scan_dollar_quote(std::size_t start) const noexcept {
        std::size_t i = start + 1;
        if (at(i) != '$') {
            if (!sql_chars::is(at(i), sql_chars::ident_start)) return 0;
            while (i < n_ && sql_chars::is(at(i), sql_chars::ident_char) && at(i) != '$') ++i;
            if (at(i) != '$') return 0;
        }
        const std::size_t tag_len = i + 1 - start;  // `$tag$`, both dollars included
        for (std::size_t j = i + 1; j < n_; ++j) {
            if (in_[j] == '$' && n_ - j >= tag_len &&
                std::memcmp(in_ + j, in_ + start, tag_len) == 0)
                return j + tag_len;
        }
        return n_;  // unterminated: the rest of the input is the string
    }

    /// End of an operator run starting at i, split as PostgreSQL splits it.
    std::size_t scan_operator(std::size_t i) const noexcept {
        std::size_t end = i + 1;
        bool special = sql_chars::is(at(i), sql_chars::op_special);
        while (end < n_ && sql_chars::is(at(end), sql_chars::op)) {
            if ((at(end) == '-' && at(end + 1) == '-') || (at(end) == '/' && at(end + 1) == '*'))
                break;
            special = special || sql_chars::is(at(end), sql_chars::op_special);
            ++end;
        }
        if (!special)
            while (end - i > 1 && (at(end - 1) == '+' || at(end - 1) == '-')) --end;
        return end;
    }

    /// An expression may start here: a `-` is a sign, `:name` a parameter.
    bool expression_may_start() const noexcept {
        using K = sql_token_kind;
        switch (prev_.kind) {
            case K::semicolon:  // also the start of the input
            case K::open:
            case K::comma:
            case K::op:
            case K::cast:
                return true;
            case K::word:  // whether it is a keyword is looked up only here
                return sql_expression_keyword(in_ + prev_.begin, prev_.end - prev_.begin);
            default:
                return false;
        }
    }

    /// End of a negative constant when the lone `-` at i starts one, else 0. A failed look-ahead
    /// (`- - - x`) is remembered, so that the other signs of the same chain do not scan it again:
    /// linear time.
    std::size_t scan_negative(std::size_t i) noexcept {
        if (i < no_negative_before_) return 0;
        for (;;) {
            i = skip_blank(i + 1);
            if (number_at(i)) break;
            if (at(i) != '-' || sql_chars::is(at(i + 1), sql_chars::op)) {
                no_negative_before_ = i;
                return 0;
            }
        }
        const std::size_t end = scan_number(i);
        const std::size_t after = skip_blank(end);
        if (at(after) == ':' && at(after + 1) == ':') {  // -(1::int) is not folded
            no_negative_before_ = after;
            return 0;
        }
        return end;
    }

    void scan(sql_token& t) noexcept {
        using K = sql_token_kind;
        const std::size_t p = pos_;
        const unsigned char c = at(p), c1 = at(p + 1);
        auto quoted = [&](K kind, std::size_t body, char quote, bool backslash) {
            bool closed = false;
            t.kind = kind;
            t.end = scan_quoted(body, quote, backslash, closed);
            t.unterminated = !closed;
        };
        auto set = [&](K kind, std::size_t end) {
            t.kind = kind;
            t.end = end;
        };
        if (c == '\'') return quoted(K::constant, p + 1, '\'', false);
        if (c == '"' || c == '`') return quoted(K::name, p + 1, char(c), false);
        if (sql_chars::is(c, sql_chars::ident_start)) return scan_word(t);
        if (number_at(p)) return set(K::constant, scan_number(p));
        if (c == '$') {
            std::size_t i = p + 1;
            if (sql_chars::is(c1, sql_chars::digit)) {
                while (sql_chars::is(at(i), sql_chars::digit)) ++i;
                return set(K::constant, i);
            }
            if (const std::size_t end = scan_dollar_quote(p); end != 0)
                return set(K::constant, end);
            return set(K::op, p + 1);
        }
        if (c == '?') {
            std::size_t i = p + 1;
            while (sql_chars::is(at(i), sql_chars::digit)) ++i;  // ?NNN (SQLite)
            return set(K::constant, i);
        }
        if (c == ':') {
            if (c1 == ':') return set(K::cast, p + 2);
            if (c1 == '=') return set(K::op, p + 2);  // := (named argument)
            if (expression_may_start() && (sql_chars::is(c1, sql_chars::ident_start) ||
                                           sql_chars::is(c1, sql_chars::digit))) {
                std::size_t i = p + 1;
                while (i < n_ && sql_chars::is(at(i), sql_chars::ident_char)) ++i;
                return set(K::constant, i);
            }
            return set(K::op, p + 1);
        }
        if (sql_chars::is(c, sql_chars::op)) {
            const std::size_t end = scan_operator(p);
            if (end == p + 1 && c == '-' && expression_may_start())
                if (const std::size_t neg = scan_negative(p); neg != 0)
                    return set(K::constant, neg);
            return set(K::op, end);
        }
        switch (c) {
            case '(':
            case '[':
                return set(K::open, p + 1);
            case ')':
            case ']':
                return set(K::close, p + 1);
            case ',':
                return set(K::comma, p + 1);
            case ';':
                return set(K::semicolon, p + 1);
            case '.':
                return set(K::dot, p + 1);
            default:
                return set(K::op, p + 1);  // other punctuation: one byte
        }
    }

    /// A word, or a constant that starts with letters (E'…', U&'…', TRUE, …).
    void scan_word(sql_token& t) noexcept {
        const std::size_t p = pos_;
        const unsigned char lc = at(p) | 0x20, c1 = at(p + 1);
        bool closed = false;
        if (c1 == '\'' && (lc == 'e' || lc == 'b' || lc == 'x')) {
            t.kind = sql_token_kind::constant;
            t.end = scan_quoted(p + 2, '\'', lc == 'e', closed);
            t.unterminated = !closed;
            return;
        }
        if (lc == 'u' && c1 == '&' && (at(p + 2) == '\'' || at(p + 2) == '"')) {
            const bool str = at(p + 2) == '\'';
            t.kind = str ? sql_token_kind::constant : sql_token_kind::name;
            t.end = scan_quoted(p + 3, char(at(p + 2)), false, closed);
            t.unterminated = !closed;
            return;
        }
        std::size_t i = p + 1;
        while (i < n_ && sql_chars::is(at(i), sql_chars::ident_char)) ++i;
        t.end = i;
        t.kind = sql_token_kind::word;
        const std::size_t n = i - p;
        if ((n == 4 || n == 5) && !after_is_) {
            switch (sql_chars::pack(in_ + p, n)) {
                case sql_chars::pack("true"):
                case sql_chars::pack("false"):
                case sql_chars::pack("null"):
                    t.kind = sql_token_kind::constant;
                    break;
                default:
                    break;
            }
        }
    }

    /// t packed (sql_chars::pack) when it is a word of two or three bytes (IS, NOT), else 0.
    std::uint64_t short_word(const sql_token& t) const noexcept {
        const std::size_t n = t.end - t.begin;
        return t.kind == sql_token_kind::word && (n == 2 || n == 3)
                   ? sql_chars::pack(in_ + t.begin, n)
                   : 0;
    }

    /// Updates the context the next token is lexed in.
    void remember(const sql_token& t) noexcept {
        constexpr std::uint64_t is = sql_chars::pack("is"), not_ = sql_chars::pack("not");
        const std::uint64_t w = short_word(t);
        after_is_ = w == is || (w == not_ && short_word(prev_) == is);
        prev_ = t;
    }

    const char* in_;
    std::size_t n_;
    std::size_t pos_ = 0;
    sql_token prev_{sql_token_kind::semicolon};  // the previous token; `;` at the start
    std::size_t no_negative_before_ = 0;         // a sign before here starts no constant
    bool after_is_ = false;  // the last tokens are IS or IS NOT: TRUE, FALSE, NULL are words
};

}  // namespace plugmon::detail
