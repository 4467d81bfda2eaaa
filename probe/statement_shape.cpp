// The shape key (statement_shape.hpp): the token-stream definition and the block scanner that
// computes the same key without tokenising. Runs in plugin threads: no allocation, no exceptions.
#include "statement_shape.hpp"

#include "sql_lexer.hpp"

#include <cstddef>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace plugmon::detail {

namespace {

template <class T>
T load(const char* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

/// Hashes the raw segments between constants, each as its length then its bytes, 16 bytes a step
/// in two independent lanes. A segment is hashed whole (never split across calls), so the key is
/// a function of the segment sequence alone.
class segment_hasher {
public:
    void segment(const char* p, std::size_t n) noexcept {
        std::uint64_t a = mix(h_ ^ n), b = rotl(h_, 32) ^ k2;
        const char* const end = p + n;
        for (; end - p >= 16; p += 16) {
            a = mix(a ^ load<std::uint64_t>(p));
            b = mix(b ^ load<std::uint64_t>(p + 8));
        }
        if (end - p >= 8) {
            a = mix(a ^ load<std::uint64_t>(p));
            p += 8;
        }
        if (p < end) b = mix(b ^ tail(p, std::size_t(end - p), n));
        h_ = a ^ rotl(b, 29);
    }

    std::uint64_t finish() const noexcept {
        std::uint64_t h = h_;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 33;
        return h != 0 ? h : 1;
    }

private:
    static constexpr std::uint64_t k1 = 0x9e3779b97f4a7c15ull, k2 = 0xd6e8feb86659fd93ull;

    static std::uint64_t mix(std::uint64_t x) noexcept { return rotl(x * k1, 31); }

    /// The last 1..7 bytes of a segment of `total` bytes: read as one overlapping word when the
    /// segment is long enough, else in two overlapping halves or three bytes (never past `end`).
    static std::uint64_t tail(const char* p, std::size_t k, std::size_t total) noexcept {
        if (total >= 8) return load<std::uint64_t>(p + k - 8);
        if (k >= 4)
            return load<std::uint32_t>(p) | (std::uint64_t(load<std::uint32_t>(p + k - 4)) << 32);
        const auto b = [p](std::size_t i) {
            return std::uint64_t(static_cast<unsigned char>(p[i]));
        };
        return b(0) | (b(k / 2) << 8) | (b(k - 1) << 16);
    }

    std::uint64_t h_ = 0x243f6a8885a308d3ull;
};

// ---- block classification ----

/// One 64-byte block: bit i of each mask describes byte i.
struct block_masks {
    std::uint64_t
        ident;  // identifier bytes (sql_chars::ident_char: letters, digits, _, $, >= 0x80)
    std::uint64_t events;  // ' " ` - / $ ? : .
    std::uint64_t maybe;   // digits and t/f/n: events only at the start of a word
};

#if defined(__SSE2__)
block_masks classify(const char* q) noexcept {
    block_masks m{0, 0, 0};
    const auto eq = [](__m128i x, char c) { return _mm_cmpeq_epi8(x, _mm_set1_epi8(c)); };
    const auto in_range = [](__m128i x, char lo, char span) {  // lo <= x <= lo + span, unsigned
        const __m128i d = _mm_sub_epi8(x, _mm_set1_epi8(lo));
        return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span)), d);
    };
    for (int k = 0; k < 4; ++k) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * k));
        const __m128i lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
        const __m128i digit = in_range(x, '0', 9);
        const __m128i ident = _mm_or_si128(_mm_or_si128(in_range(lower, 'a', 25), digit),
                                           _mm_or_si128(_mm_cmplt_epi8(x, _mm_setzero_si128()),
                                                        _mm_or_si128(eq(x, '_'), eq(x, '$'))));
        const __m128i tfn =
            _mm_or_si128(_mm_or_si128(eq(lower, 't'), eq(lower, 'f')), eq(lower, 'n'));
        const __m128i quotes = _mm_or_si128(_mm_or_si128(eq(x, '\''), eq(x, '"')), eq(x, '`'));
        const __m128i punct = _mm_or_si128(_mm_or_si128(_mm_or_si128(eq(x, '-'), eq(x, '/')),
                                                        _mm_or_si128(eq(x, '$'), eq(x, '?'))),
                                           _mm_or_si128(eq(x, ':'), eq(x, '.')));
        const int shift = 16 * k;
        m.ident |= std::uint64_t(std::uint32_t(_mm_movemask_epi8(ident))) << shift;
        m.events |= std::uint64_t(std::uint32_t(_mm_movemask_epi8(_mm_or_si128(quotes, punct))))
                    << shift;
        m.maybe |= std::uint64_t(std::uint32_t(_mm_movemask_epi8(_mm_or_si128(digit, tfn))))
                   << shift;
    }
    return m;
}
#else
block_masks classify(const char* q) noexcept {
    block_masks m{0, 0, 0};
    for (int i = 0; i < 64; ++i) {
        const auto c = static_cast<unsigned char>(q[i]);
        const std::uint64_t bit = std::uint64_t(1) << i;
        const unsigned char lower = c | 0x20;
        if (sql_chars::is(c, sql_chars::ident_char)) m.ident |= bit;
        if (std::strchr("'\"`-/$?:.", c) != nullptr && c != 0) m.events |= bit;
        if (sql_chars::is(c, sql_chars::digit) || lower == 't' || lower == 'f' || lower == 'n')
            m.maybe |= bit;
    }
    return m;
}
#endif

// ---- the scanner ----

enum class verdict : std::uint8_t { yes, no, unsure };

/// Finds the constant tokens sql_lexer would find, in order, and hashes the raw segments between
/// them. `failed()` after run(): a construct it leaves to the token-stream definition.
class shape_scanner {
public:
    explicit shape_scanner(std::string_view sql) noexcept : s_(sql.data()), n_(sql.size()) {}

    /// False when the text needs the reference definition.
    bool run(std::uint64_t& key) noexcept {
        std::size_t base = 0;
        while (base < n_ && !failed_) {
            block_masks m;
            if (n_ - base >= 64) {
                m = classify(s_ + base);
            } else {
                char pad[64] = {};
                std::memcpy(pad, s_ + base, n_ - base);
                m = classify(pad);
                const std::uint64_t valid = (std::uint64_t(1) << (n_ - base)) - 1;
                m.ident &= valid;
                m.events &= valid;
                m.maybe &= valid;
            }
            const std::uint64_t carry = base > 0 && ident(base - 1) ? 1 : 0;
            std::uint64_t ev = m.events | (m.maybe & ~((m.ident << 1) | carry));
            const std::size_t block_end = base + 64;
            while (ev != 0 && !failed_) {
                const std::size_t p = base + std::size_t(__builtin_ctzll(ev));
                ev &= ev - 1;
                if (p < cursor_) continue;
                handle(p);
                if (cursor_ >= block_end) break;
            }
            base = cursor_ > block_end ? cursor_ : block_end;
        }
        if (failed_) return false;
        hasher_.segment(s_ + segment_, n_ - segment_);
        key = hasher_.finish();
        return true;
    }

private:
    unsigned char at(std::size_t i) const noexcept {
        return i < n_ ? static_cast<unsigned char>(s_[i]) : 0;
    }
    bool ident(std::size_t i) const noexcept { return sql_chars::is(at(i), sql_chars::ident_char); }
    bool space(std::size_t i) const noexcept { return sql_chars::is(at(i), sql_chars::space); }
    bool op(std::size_t i) const noexcept { return sql_chars::is(at(i), sql_chars::op); }
    bool digit(std::size_t i) const noexcept { return sql_chars::is(at(i), sql_chars::digit); }

    void constant(std::size_t begin, std::size_t end) noexcept {
        hasher_.segment(s_ + segment_, begin - segment_);
        segment_ = end;
        cursor_ = end;
        constant_end_ = end;
    }
    void skip_to(std::size_t end) noexcept { cursor_ = end; }
    void give_up() noexcept { failed_ = true; }

    /// A comment ends at or after k (and so lies between k and the position being scanned).
    bool comment_after(std::size_t k) const noexcept { return comments_ && comment_end_ >= k; }

    /// Start of the run of identifier bytes that ends just before `end`.
    std::size_t run_start(std::size_t end) const noexcept {
        while (end > 0 && ident(end - 1)) --end;
        return end;
    }

    void handle(std::size_t p) noexcept {
        switch (at(p)) {
            case '\'':
                return string(p);
            case '"':
            case '`':
                return quoted_name(p);
            case '-':
                if (at(p + 1) == '-') return line_comment(p);
                return minus(p);
            case '/':
                if (at(p + 1) == '*') return block_comment(p);
                return skip_to(p + 1);
            case '?':
                return question_mark(p);
            case ':':
                return colon(p);
            case '.':
                if (digit(p + 1)) return constant(p, number_end(p));
                return skip_to(p + 1);
            case '$':
                return give_up();  // $1, $tag$…$tag$ and words holding $: left to the lexer
            default:
                if (digit(p)) return constant(p, number_end(p));
                return maybe_boolean_or_null(p);
        }
    }

    /// '…', with an E, B or X prefix when that letter is a word of its own just before it.
    void string(std::size_t p) noexcept {
        std::size_t begin = p;
        bool backslash = false;
        if (p > cursor_ && at(p - 1) == '&') return give_up();  // U&'…' (or `x&'…'`)
        if (p > cursor_ && ident(p - 1)) {
            const std::size_t r = run_start(p);
            const unsigned char lc = at(r) | 0x20;
            if (r >= cursor_ && p - r == 1 && (lc == 'e' || lc == 'b' || lc == 'x')) {
                if (r > 0 && at(r - 1) == ':') return give_up();  // :e'…' may be a parameter
                begin = r;
                backslash = lc == 'e';
            }
        }
        constant(begin, quoted_end(p + 1, '\'', backslash));
    }

    void quoted_name(std::size_t p) noexcept { skip_to(quoted_end(p + 1, char(at(p)), false)); }

    /// End of a quoted run whose body starts at i (a doubled quote, or with `backslash` a
    /// backslash, escapes); the end of the text when it is not closed.
    std::size_t quoted_end(std::size_t i, char quote, bool backslash) const noexcept {
        while (i < n_) {
            if (!backslash) {
                const void* q = std::memchr(s_ + i, quote, n_ - i);
                if (q == nullptr) return n_;
                i = std::size_t(static_cast<const char*>(q) - s_);
                if (at(i + 1) != static_cast<unsigned char>(quote)) return i + 1;
                i += 2;
                continue;
            }
            const char c = s_[i];
            if (c == '\\') {
                i += 2;
            } else if (c == quote) {
                if (at(i + 1) != static_cast<unsigned char>(quote)) return i + 1;
                i += 2;
            } else {
                ++i;
            }
        }
        return n_;
    }

    void line_comment(std::size_t p) noexcept {
        const void* nl = std::memchr(s_ + p, '\n', n_ - p);
        comments_ = true;
        comment_end_ = nl == nullptr ? n_ : std::size_t(static_cast<const char*>(nl) - s_);
        skip_to(comment_end_);
    }

    void block_comment(std::size_t p) noexcept {
        std::size_t i = p, depth = 0;
        while (i < n_) {
            if (s_[i] == '/' && at(i + 1) == '*') {
                ++depth;
                i += 2;
            } else if (s_[i] == '*' && at(i + 1) == '/') {
                i += 2;
                if (--depth == 0) break;
            } else {
                ++i;
            }
        }
        comments_ = true;
        comment_end_ = i;
        skip_to(i);
    }

    /// End of the number that starts at i, as sql_lexer scans it.
    std::size_t number_end(std::size_t i) const noexcept {
        while (digit(i) || at(i) == '_') ++i;
        if (at(i) == '.' && at(i + 1) != '.') {
            ++i;
            while (digit(i) || at(i) == '_') ++i;
        }
        if ((at(i) | 0x20) == 'e') {
            std::size_t j = i + 1;
            if (at(j) == '+' || at(j) == '-') ++j;
            if (digit(j)) {
                i = j;
                while (digit(i) || at(i) == '_') ++i;
            }
        }
        while (ident(i)) ++i;
        return i;
    }

    /// Whether an expression may start at p (sql_lexer's expression_may_start), from the token
    /// before it; unsure when a comment or a possible parameter is in the way.
    verdict may_start_at(std::size_t p) const noexcept {
        std::size_t k = p;
        while (k > 0 && space(k - 1)) --k;
        if (comment_after(k)) return verdict::unsure;
        if (k == 0) return verdict::yes;
        if (k == constant_end_) return verdict::no;  // a number whose tail looks like a word
        const unsigned char c = at(k - 1);
        if (ident(k - 1)) {
            const std::size_t r = run_start(k);
            if (r > 0 && at(r - 1) == ':') return verdict::unsure;
            if (sql_chars::is(at(r), sql_chars::digit)) return verdict::no;  // a number
            const std::size_t n = k - r;
            if (n == 4 || n == 5) {
                switch (sql_chars::pack(s_ + r, n)) {
                    case sql_chars::pack("true"):
                    case sql_chars::pack("false"):
                    case sql_chars::pack("null"):
                        return verdict::unsure;
                    default:
                        break;
                }
            }
            return sql_expression_keyword(s_ + r, n) ? verdict::yes : verdict::no;
        }
        switch (c) {
            case '\'':
            case '"':
            case '`':
            case ')':
            case ']':
            case '.':
            case '?':
                return verdict::no;
            default:
                return verdict::yes;  // ( [ , ; : and operators
        }
    }

    /// A `-` that is not a comment: part of a negative constant where sql_lexer folds the sign.
    void minus(std::size_t p) noexcept {
        if (p > 0 && op(p - 1)) return give_up();  // inside a run of operator characters
        if (op(p + 1)) return operator_run(p);
        const verdict v = may_start_at(p);
        if (v == verdict::unsure) return give_up();
        if (v == verdict::no) return skip_to(p + 1);
        std::size_t i = p + 1;
        while (space(i)) ++i;
        if (at(i) == '-' || (at(i) == '/' && at(i + 1) == '*')) return give_up();
        if (!(digit(i) || (at(i) == '.' && digit(i + 1)))) return skip_to(p + 1);
        const std::size_t end = number_end(i);
        std::size_t after = end;
        while (space(after)) ++after;
        if ((at(after) == '-' && at(after + 1) == '-') ||
            (at(after) == '/' && at(after + 1) == '*'))
            return give_up();
        if (at(after) == ':' && at(after + 1) == ':') return skip_to(p + 1);  // -(1::int)
        constant(p, end);
    }

    /// A run of operator characters that starts with `-` (`->`, `->>`): one operator token,
    /// split as sql_lexer splits it; runs that split into several tokens are left to it.
    void operator_run(std::size_t p) noexcept {
        std::size_t end = p + 1;
        bool special = false;
        while (op(end) && !(at(end) == '-' && at(end + 1) == '-') &&
               !(at(end) == '/' && at(end + 1) == '*')) {
            special = special || sql_chars::is(at(end), sql_chars::op_special);
            ++end;
        }
        const unsigned char last = at(end - 1);
        if (!special && (last == '+' || last == '-')) return give_up();
        skip_to(end);
    }

    void question_mark(std::size_t p) noexcept {
        std::size_t i = p + 1;
        while (digit(i)) ++i;
        if (i > p + 1 && ident(i)) return give_up();  // ?1abc: a word glued to the parameter
        constant(p, i);
    }

    void colon(std::size_t p) noexcept {
        const unsigned char c1 = at(p + 1);
        if (c1 == ':' || c1 == '=') return skip_to(p + 2);
        if (!sql_chars::is(c1, sql_chars::ident_start) && !sql_chars::is(c1, sql_chars::digit))
            return skip_to(p + 1);
        const verdict v = may_start_at(p);
        if (v == verdict::unsure) return give_up();
        if (v == verdict::no) return skip_to(p + 1);
        std::size_t i = p + 1;
        while (ident(i)) ++i;
        constant(p, i);
    }

    /// A word that starts with t, f or n: TRUE, FALSE and NULL are constants unless they follow
    /// IS or IS NOT. (A digit at a word's start never gets here: it starts a number.)
    void maybe_boolean_or_null(std::size_t p) noexcept {
        std::size_t end = p + 1;
        while (ident(end)) ++end;
        const std::size_t n = end - p;
        if (n == 4 || n == 5) {
            switch (sql_chars::pack(s_ + p, n)) {
                case sql_chars::pack("true"):
                case sql_chars::pack("false"):
                case sql_chars::pack("null"): {
                    const verdict v = after_is(p);
                    if (v == verdict::unsure) return give_up();
                    if (v == verdict::no) return constant(p, end);
                    break;
                }
                default:
                    break;
            }
        }
        skip_to(end);
    }

    /// The word before `end` (after skipping spaces back), packed, or 0 when there is none;
    /// `where` receives its start. Unsure (as ~0) when a comment or `:` is in the way.
    std::uint64_t word_before(std::size_t end, std::size_t& where) const noexcept {
        std::size_t k = end;
        while (k > 0 && space(k - 1)) --k;
        if (comment_after(k)) return ~std::uint64_t(0);
        if (k == 0 || k == constant_end_ || !ident(k - 1)) return 0;
        const std::size_t r = run_start(k);
        if (r > 0 && at(r - 1) == ':') return ~std::uint64_t(0);
        where = r;
        return k - r <= 3 ? sql_chars::pack(s_ + r, k - r) : 0;
    }

    /// Whether the word at p follows IS or IS NOT (sql_lexer's after_is_).
    verdict after_is(std::size_t p) const noexcept {
        constexpr std::uint64_t is = sql_chars::pack("is"), not_ = sql_chars::pack("not");
        constexpr std::uint64_t unsure = ~std::uint64_t(0);
        std::size_t w = 0;
        const std::uint64_t prev = word_before(p, w);
        if (prev == unsure) return verdict::unsure;
        if (prev == is) return verdict::yes;
        if (prev != not_) return verdict::no;
        const std::uint64_t before = word_before(w, w);
        if (before == unsure) return verdict::unsure;
        return before == is ? verdict::yes : verdict::no;
    }

    const char* s_;
    std::size_t n_;
    std::size_t cursor_ = 0;        // bytes before it are scanned
    std::size_t segment_ = 0;       // start of the raw segment not hashed yet
    std::size_t constant_end_ = 0;  // end of the last constant (0: none yet)
    std::size_t comment_end_ = 0;   // end of the last comment scanned, when comments_
    bool comments_ = false;
    bool failed_ = false;
    segment_hasher hasher_;
};

}  // namespace

std::uint64_t statement_shape_reference(std::string_view sql) noexcept {
    segment_hasher h;
    sql_lexer lexer(sql);
    sql_token t;
    std::size_t segment = 0;
    while (lexer.next(t)) {
        if (t.kind != sql_token_kind::constant) continue;
        h.segment(sql.data() + segment, t.begin - segment);
        segment = t.end;
    }
    h.segment(sql.data() + segment, sql.size() - segment);
    return h.finish();
}

std::uint64_t statement_shape(std::string_view sql) noexcept {
    std::uint64_t key = 0;
    return shape_scanner(sql).run(key) ? key : statement_shape_reference(sql);
}

}  // namespace plugmon::detail
