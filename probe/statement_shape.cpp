// The shape key (statement_shape.hpp): the token-stream definition and the block scanner that
// computes the same key without tokenising. Runs in plugin threads: no allocation, no exceptions.
#include "statement_shape.hpp"

#include "sql_lexer.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
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
    std::uint64_t digit;   // 0-9
    std::uint64_t tfn;     // t, f, n in either case: TRUE, FALSE and NULL start with them
    std::uint64_t events;  // ' " ` - / $ ? : and, from byte classes 0x22-0x27, # % & (dismissed)
    std::uint64_t dot;     // .
};

/// Classifies `blocks` whole 64-byte blocks from q into out[0, blocks). One call per batch of
/// blocks, so that the constants are set up once per batch, not once per block.
using classify_fn = void (*)(const char* q, std::size_t blocks, block_masks* out) noexcept;

#if defined(__SSE2__)
void classify_sse2(const char* q, std::size_t blocks, block_masks* out) noexcept {
    const __m128i case_bit = _mm_set1_epi8(0x20), zero = _mm_setzero_si128();
    const __m128i c0 = _mm_set1_epi8('0'), c9 = _mm_set1_epi8(9);
    const __m128i ca = _mm_set1_epi8('a'), c25 = _mm_set1_epi8(25);
    const __m128i cquote = _mm_set1_epi8('"'), c5 = _mm_set1_epi8(5);
    const __m128i cminus = _mm_set1_epi8('-'), c2 = _mm_set1_epi8(2);
    const __m128i cus = _mm_set1_epi8('_'), cdollar = _mm_set1_epi8('$');
    const __m128i ct = _mm_set1_epi8('t'), cf = _mm_set1_epi8('f'), cn = _mm_set1_epi8('n');
    const __m128i ccolon = _mm_set1_epi8(':'), cq = _mm_set1_epi8('?');
    const __m128i ctick = _mm_set1_epi8('`'), cdot = _mm_set1_epi8('.');
    const auto in_range = [](__m128i x, __m128i lo, __m128i span) {  // lo <= x <= lo + span
        const __m128i d = _mm_sub_epi8(x, lo);
        return _mm_cmpeq_epi8(_mm_min_epu8(d, span), d);
    };
    const auto bits = [](__m128i x) { return std::uint64_t(std::uint32_t(_mm_movemask_epi8(x))); };
    for (std::size_t b = 0; b < blocks; ++b, q += 64) {
        block_masks m{0, 0, 0, 0, 0};
        for (int k = 0; k < 4; ++k) {
            const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * k));
            const __m128i lower = _mm_or_si128(x, case_bit);
            const __m128i digit = in_range(x, c0, c9);
            const __m128i ident = _mm_or_si128(
                _mm_or_si128(in_range(lower, ca, c25), digit),
                _mm_or_si128(_mm_cmplt_epi8(x, zero),
                             _mm_or_si128(_mm_cmpeq_epi8(x, cus), _mm_cmpeq_epi8(x, cdollar))));
            const __m128i tfn =
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(lower, ct), _mm_cmpeq_epi8(lower, cf)),
                             _mm_cmpeq_epi8(lower, cn));
            const __m128i dot = _mm_cmpeq_epi8(x, cdot);
            // " # $ % & ' are 0x22-0x27, - . / are 0x2d-0x2f: two ranges and three bytes
            const __m128i events = _mm_andnot_si128(
                dot, _mm_or_si128(_mm_or_si128(in_range(x, cquote, c5), in_range(x, cminus, c2)),
                                  _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, ccolon),
                                                            _mm_cmpeq_epi8(x, cq)),
                                               _mm_cmpeq_epi8(x, ctick))));
            const int shift = 16 * k;
            m.ident |= bits(ident) << shift;
            m.digit |= bits(digit) << shift;
            m.tfn |= bits(tfn) << shift;
            m.events |= bits(events) << shift;
            m.dot |= bits(dot) << shift;
        }
        out[b] = m;
    }
}

#if defined(__x86_64__) && !defined(PLUGMON_SHAPE_NO_AVX2)
/// The constants of classify_avx2, each byte repeated 32 times: read from memory as operands
/// (there are more of them than registers, and rebuilding them costs three instructions each).
struct avx2_constants {
    alignas(32) char b[15][32];
    constexpr avx2_constants() : b{} {
        constexpr char values[15] = {0x20, '0', 9,   'a', 25,  '"', 5,  '-',
                                     2,    '_', 't', 'f', 'n', ':', '?'};
        for (int i = 0; i < 15; ++i)
            for (int j = 0; j < 32; ++j) b[i][j] = values[i];
    }
};
constexpr avx2_constants avx2_k;

__attribute__((target("avx2"), always_inline)) inline __m256i avx2_constant(int i) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(avx2_k.b[i]));
}

/// classify_sse2 32 bytes at a time, for CPUs with AVX2 (picked at run time).
__attribute__((target("avx2"))) void classify_avx2(const char* q, std::size_t blocks,
                                                   block_masks* out) noexcept {
    const auto& c = avx2_constant;
    const __m256i zero = _mm256_setzero_si256();
    const __m256i case_bit = c(0), c0 = c(1), c9 = c(2), ca = c(3), c25 = c(4), cquote = c(5);
    const __m256i c5 = c(6), cminus = c(7), c2 = c(8), cus = c(9), ct = c(10), cf = c(11);
    const __m256i cn = c(12), ccolon = c(13), cq = c(14);
    const __m256i ctick = _mm256_set1_epi8('`'), cdot = _mm256_set1_epi8('.');
    for (std::size_t b = 0; b < blocks; ++b, q += 64) {
        block_masks m{0, 0, 0, 0, 0};
        for (int half = 0; half < 2; ++half) {
            const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * half));
            const __m256i lower = _mm256_or_si256(x, case_bit);
            const __m256i d0 = _mm256_sub_epi8(x, c0), da = _mm256_sub_epi8(lower, ca);
            const __m256i dq = _mm256_sub_epi8(x, cquote), dm = _mm256_sub_epi8(x, cminus);
            const __m256i digit = _mm256_cmpeq_epi8(_mm256_min_epu8(d0, c9), d0);
            const __m256i ident = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(da, c25), da), digit),
                _mm256_or_si256(_mm256_cmpgt_epi8(zero, x), _mm256_cmpeq_epi8(x, cus)));
            const __m256i tfn = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(lower, ct), _mm256_cmpeq_epi8(lower, cf)),
                _mm256_cmpeq_epi8(lower, cn));
            const __m256i dot = _mm256_cmpeq_epi8(x, cdot);
            const __m256i events = _mm256_andnot_si256(
                dot,
                _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(dq, c5), dq),
                                                _mm256_cmpeq_epi8(_mm256_min_epu8(dm, c2), dm)),
                                _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x, ccolon),
                                                                _mm256_cmpeq_epi8(x, cq)),
                                                _mm256_cmpeq_epi8(x, ctick))));
            const int shift = 32 * half;
            m.ident |= std::uint64_t(std::uint32_t(_mm256_movemask_epi8(ident))) << shift;
            m.digit |= std::uint64_t(std::uint32_t(_mm256_movemask_epi8(digit))) << shift;
            m.tfn |= std::uint64_t(std::uint32_t(_mm256_movemask_epi8(tfn))) << shift;
            m.events |= std::uint64_t(std::uint32_t(_mm256_movemask_epi8(events))) << shift;
            m.dot |= std::uint64_t(std::uint32_t(_mm256_movemask_epi8(dot))) << shift;
        }
        out[b] = m;
    }
}
#endif

/// The widest classify this CPU runs. The shape key does not depend on which one it is.
classify_fn best_classify() noexcept {
#if defined(__x86_64__) && !defined(PLUGMON_SHAPE_NO_AVX2)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return classify_avx2;
#endif
    return classify_sse2;
}
#else
void classify_bytes(const char* q, std::size_t blocks, block_masks* out) noexcept {
    for (std::size_t b = 0; b < blocks; ++b, q += 64) {
        block_masks m{0, 0, 0, 0, 0};
        for (int i = 0; i < 64; ++i) {
            const auto c = static_cast<unsigned char>(q[i]);
            const std::uint64_t bit = std::uint64_t(1) << i;
            const unsigned char lower = c | 0x20;
            if (sql_chars::is(c, sql_chars::ident_char)) m.ident |= bit;
            if (sql_chars::is(c, sql_chars::digit)) m.digit |= bit;
            if (lower == 't' || lower == 'f' || lower == 'n') m.tfn |= bit;
            if ((c >= '"' && c <= '\'') || c == '-' || c == '/' || c == ':' || c == '?' || c == '`')
                m.events |= bit;
            if (c == '.') m.dot |= bit;
        }
        out[b] = m;
    }
}

classify_fn best_classify() noexcept { return classify_bytes; }
#endif

/// The bytes of a block worth a look: quotes, `-`, `/`, `$`, `?`, `:` always; a `.` before a
/// digit; a digit that starts a word (a number); a t, f or n that starts a word of 4 or 5 bytes
/// (TRUE, FALSE, NULL). `prev_ident`: the byte before the block is an identifier byte;
/// `next_digit`: the byte after it is a digit. Words that reach the block's end are kept (their
/// length is not known here).
std::uint64_t interesting(const block_masks& m, bool prev_ident, bool next_digit) noexcept {
    const std::uint64_t id = m.ident;
    const std::uint64_t starts = ~((id << 1) | (prev_ident ? 1 : 0));
    const std::uint64_t digit_after = (m.digit >> 1) | (next_digit ? std::uint64_t(1) << 63 : 0);
    const std::uint64_t run4 = (id >> 1) & (id >> 2) & (id >> 3);  // 3 more word bytes follow
    const std::uint64_t len4_or_5 = run4 & (~(id >> 4) | ~(id >> 5));
    const std::uint64_t near_end = ~std::uint64_t(0) << 58;  // id >> 5 ran off the block
    return m.events | (m.dot & digit_after) | (m.digit & starts) |
           (m.tfn & starts & (len4_or_5 | near_end));
}

// ---- the scanner ----

enum class verdict : std::uint8_t { yes, no, unsure };

/// Finds the constant tokens sql_lexer would find, in order, and hashes the raw segments between
/// them. `failed()` after run(): a construct it leaves to the token-stream definition.
class shape_scanner {
public:
    explicit shape_scanner(std::string_view sql) noexcept : s_(sql.data()), n_(sql.size()) {
        static const classify_fn best = best_classify();
        classify_ = best;
    }

    /// False when the text needs the reference definition.
    bool run(std::uint64_t& key) noexcept {
        std::size_t base = 0;
        while (base < n_ && !failed_) {
            std::uint64_t ev = events_at(base);
            const std::size_t block_end = base + 64;
            while (ev != 0 && !failed_) {
                const std::size_t p = base + std::size_t(__builtin_ctzll(ev));
                ev &= ev - 1;
                if (p < cursor_) continue;
                handle(p);
                if (cursor_ >= block_end) break;
            }
            // the next block, or the one the last token ended in (blocks stay on a 64-byte grid)
            base = cursor_ > block_end ? cursor_ - (cursor_ - base) % 64 : block_end;
        }
        if (failed_) return false;
        hasher_.segment(s_ + segment_, n_ - segment_);
        key = hasher_.finish();
        return true;
    }

private:
    static constexpr std::size_t batch_blocks = 8;

    /// The interesting() bytes of the block at base (a multiple of 64), classified a batch of
    /// blocks at a time; the last, partial block padded with zeros (no class, no event).
    std::uint64_t events_at(std::size_t base) noexcept {
        if (base < batch_base_ || base >= batch_base_ + batch_size_ * 64) {
            batch_base_ = base;
            batch_size_ = std::min(batch_blocks, (n_ - base) / 64);
            if (batch_size_ > 0) {
                classify_(s_ + base, batch_size_, batch_);
            } else {
                char pad[64] = {};
                std::memcpy(pad, s_ + base, n_ - base);
                classify_(pad, 1, batch_);
                batch_size_ = 1;
            }
        }
        const block_masks& m = batch_[(base - batch_base_) / 64];
        const bool prev_ident = base > 0 && ident(base - 1);
        if (n_ - base >= 64) return interesting(m, prev_ident, digit(base + 64));
        return interesting(m, prev_ident, false) & ((std::uint64_t(1) << (n_ - base)) - 1);
    }

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
            case '#':
            case '%':
            case '&':
                return skip_to(p + 1);
            default:
                if (digit(p)) return constant(p, number_end(p));
                return maybe_boolean_or_null(p);
        }
    }

    /// '…', with an E, B or X prefix when that letter is a word of its own just before it.
    void string(std::size_t p) noexcept {
        std::size_t begin = p;
        bool backslash = false;
        if (p > 0 && at(p - 1) == '&') return give_up();  // U&'…' (or `x&'…'`)
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

    std::size_t quoted_end(std::size_t i, char quote, bool backslash) const noexcept {
        bool closed = false;
        return sql_quoted_end(s_, n_, i, quote, backslash, closed);
    }

    void line_comment(std::size_t p) noexcept {
        const void* nl = std::memchr(s_ + p, '\n', n_ - p);
        comments_ = true;
        comment_end_ = nl == nullptr ? n_ : std::size_t(static_cast<const char*>(nl) - s_);
        skip_to(comment_end_);
    }

    void block_comment(std::size_t p) noexcept {
        const std::size_t i = sql_block_comment_end(s_, n_, p);
        comments_ = true;
        comment_end_ = i;
        skip_to(i);
    }

    /// End of the number that starts at i, as sql_lexer scans it.
    std::size_t number_end(std::size_t i) const noexcept { return sql_number_end(s_, n_, i); }

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
    classify_fn classify_;
    block_masks batch_[batch_blocks];
    std::size_t batch_base_ = 0, batch_size_ = 0;  // batch_ holds blocks [base, base + 64 size)
    std::size_t cursor_ = 0;                       // bytes before it are scanned
    std::size_t segment_ = 0;                      // start of the raw segment not hashed yet
    std::size_t constant_end_ = 0;                 // end of the last constant (0: none yet)
    std::size_t comment_end_ = 0;  // end of the last comment scanned, when comments_
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
