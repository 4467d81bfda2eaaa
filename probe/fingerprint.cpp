// SQL statement normalisation (one pass, a small lexer over PostgreSQL's token rules) and the
// statement fingerprint. Runs in plugin threads: no allocation, no exceptions, no system calls.
#include "fingerprint.hpp"

#include <plugmon/layout.hpp>

#include <cstring>

namespace plugmon::detail {

namespace {

// Character classes. Bytes >= 0x80 are identifier bytes, as in PostgreSQL's scanner, so a
// multi-byte UTF-8 sequence always sits whole inside one word.
enum : std::uint8_t { cls_space = 1, cls_digit = 2, cls_ident_start = 4, cls_ident_char = 8 };

struct class_table {
    std::uint8_t bits[256] = {};
    constexpr class_table() {
        for (int c = 0; c < 256; ++c) {
            const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            const bool digit = c >= '0' && c <= '9';
            const bool start = alpha || c == '_' || c >= 0x80;
            bits[c] = std::uint8_t(
                (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
                     ? cls_space
                     : 0) |
                (digit ? cls_digit : 0) | (start ? cls_ident_start : 0) |
                (start || digit || c == '$' ? cls_ident_char : 0));
        }
    }
};
constexpr class_table classes;

constexpr bool is_space(unsigned char c) noexcept { return classes.bits[c] & cls_space; }
constexpr bool is_digit(unsigned char c) noexcept { return classes.bits[c] & cls_digit; }
constexpr bool is_ident_start(unsigned char c) noexcept {
    return classes.bits[c] & cls_ident_start;
}
constexpr bool is_ident_char(unsigned char c) noexcept { return classes.bits[c] & cls_ident_char; }
constexpr char to_lower(char c) noexcept {
    return char(c | (static_cast<unsigned char>(c - 'A') < 26 ? 0x20 : 0));
}

/// What the previous token was: decides whether `-` before a number is a sign, whether `:name`
/// is a parameter, and where spaces are dropped.
enum class ctx : std::uint8_t { start, word, name, literal, open, close, comma, op, dot };

/// How a token is written.
enum class kind : std::uint8_t {
    word,      // unquoted identifier or keyword: lowercased
    verbatim,  // quoted identifier, operator, other punctuation: as is
    literal,   // constant or parameter: `?`
    open,      // ( or [
    close,     // ) or ]
    comma,
    semicolon,
};

struct token {
    kind k;
    ctx c;  // the context it leaves for the next token (word: unquoted, name: quoted)
    bool space_before;
    bool add_quote;  // an unterminated quoted identifier: written with its closing quote
    std::size_t begin, end;
};

/// A word of at most 8 bytes as one integer, lowercased: keyword checks are integer compares.
constexpr std::uint64_t pack_word(const char* p, std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v |= std::uint64_t(static_cast<unsigned char>(to_lower(p[i]))) << (8 * i);
    return v;
}
constexpr std::uint64_t pack_word(std::string_view w) noexcept {
    return pack_word(w.data(), w.size());
}

/// Keywords after which `-5` is a negative constant rather than a subtraction, and `(` opens
/// something other than a function's arguments.
bool is_sign_keyword(const char* p, std::size_t n) noexcept {
    if (n < 2 || n > 8) return false;
    switch (pack_word(p, n)) {
        case pack_word("all"):
        case pack_word("and"):
        case pack_word("any"):
        case pack_word("between"):
        case pack_word("by"):
        case pack_word("case"):
        case pack_word("distinct"):
        case pack_word("else"):
        case pack_word("having"):
        case pack_word("ilike"):
        case pack_word("in"):
        case pack_word("like"):
        case pack_word("limit"):
        case pack_word("not"):
        case pack_word("offset"):
        case pack_word("on"):
        case pack_word("or"):
        case pack_word("return"):
        case pack_word("select"):
        case pack_word("set"):
        case pack_word("some"):
        case pack_word("then"):
        case pack_word("values"):
        case pack_word("when"):
        case pack_word("where"):
            return true;
        default:
            return false;
    }
}

/// The state of one bracket level, for collapsing `(?, ?, …)` and repeated `(?)` rows.
enum class list_state : std::uint8_t { empty, item, after_comma, broken };

struct level {
    char close;          // the bracket that ends this level
    list_state st;       // so far only `?` items separated by commas?
    bool row_candidate;  // not a function call's argument list (`f(…)`)
    bool row_ready;      // the last token here closed a collapsed `(?)` row
    char row_open;       // which bracket that row used
};

/// Row elision: matching `, ( ? [, ?]… )` after a collapsed row without writing it.
enum class row_step : std::uint8_t { comma, open, item, sep, done };

class normalizer {
public:
    normalizer(std::string_view sql, char* out, std::size_t limit) noexcept
        : in_(sql.data()), n_(sql.size()), out_(out), limit_(limit) {
        levels_[0] = level{0, list_state::broken, false, false, 0};
    }

    std::size_t run() noexcept {
        token t{};
        while (!done_) {
            if (!lex(t)) {
                // The input ended inside an elided list or row: it did not collapse after all.
                if (elide_ == elide::items || (elide_ == elide::rows && row_ != row_step::done)) {
                    rewind(n_);
                    continue;
                }
                break;
            }
            handle(t);
        }
        return len_;  // pending semicolons are trailing ones: dropped
    }

private:
    static constexpr std::size_t max_depth = 32;  // deeper brackets are not collapsed

    enum class elide : std::uint8_t { none, items, rows };

    /// Where an elision started, to write the elided tokens after all if the pattern breaks.
    struct saved {
        std::size_t pos;
        ctx prev;
        std::size_t word_begin, word_end;
        level top;
    };

    // ---- lexer ----

    unsigned char at(std::size_t i) const noexcept {
        return i < n_ ? static_cast<unsigned char>(in_[i]) : 0;
    }

    /// Skips a nested block comment starting at pos_ (PostgreSQL nests them).
    void skip_block_comment() noexcept {
        std::size_t depth = 0, i = pos_;
        while (i < n_) {
            if (in_[i] == '/' && at(i + 1) == '*') {
                ++depth;
                i += 2;
            } else if (in_[i] == '*' && at(i + 1) == '/') {
                i += 2;
                if (--depth == 0) break;
            } else {
                ++i;
            }
        }
        pos_ = i;
    }

    /// End of a quoted run starting after its opening quote at i; a doubled quote is an escape,
    /// and so is a backslash when `backslash`. Sets `closed`; runs to the end when unterminated.
    std::size_t scan_quoted(std::size_t i, char quote, bool backslash,
                            bool& closed) const noexcept {
        while (i < n_) {
            const char c = in_[i];
            if (backslash && c == '\\') {
                i += 2;
            } else if (c == quote) {
                if (at(i + 1) == static_cast<unsigned char>(quote)) {
                    i += 2;
                } else {
                    closed = true;
                    return i + 1;
                }
            } else {
                ++i;
            }
        }
        closed = false;
        return n_;
    }

    /// End of a numeric constant starting at i (a digit, or `.` before a digit): integer,
    /// decimal, exponent, `_` separators. Letters glued to it (0x1F, 0o17, 0b101, and junk such
    /// as 12abc, which PostgreSQL rejects) are part of the same token.
    std::size_t scan_number(std::size_t i) const noexcept {
        while (is_digit(at(i)) || at(i) == '_') ++i;
        if (at(i) == '.' && at(i + 1) != '.') {  // `1..2` is 1, `..`, 2 (PL/pgSQL ranges)
            ++i;
            while (is_digit(at(i)) || at(i) == '_') ++i;
        }
        if ((at(i) | 0x20) == 'e') {
            std::size_t j = i + 1;
            if (at(j) == '+' || at(j) == '-') ++j;
            if (is_digit(at(j))) {
                i = j;
                while (is_digit(at(i)) || at(i) == '_') ++i;
            }
        }
        while (i < n_ && is_ident_char(at(i))) ++i;
        return i;
    }

    /// End of a dollar-quoted string when pos_ starts `$tag$` (tag possibly empty), else 0.
    std::size_t scan_dollar_quote() const noexcept {
        std::size_t i = pos_ + 1;
        if (at(i) != '$') {
            if (!is_ident_start(at(i))) return 0;
            while (i < n_ && is_ident_char(at(i)) && at(i) != '$') ++i;
            if (at(i) != '$') return 0;
        }
        const std::size_t tag_len = i + 1 - pos_;  // `$tag$`, both dollars included
        for (std::size_t j = i + 1; j < n_; ++j) {
            if (in_[j] == '$' && n_ - j >= tag_len &&
                std::memcmp(in_ + j, in_ + pos_, tag_len) == 0)
                return j + tag_len;
        }
        return n_;  // unterminated: the rest of the input is the string
    }

    /// The previous token is an unquoted keyword (looked up only when a rule asks).
    bool after_keyword() const noexcept {
        return prev_ == ctx::word && is_sign_keyword(in_ + word_begin_, word_end_ - word_begin_);
    }

    bool sign_allowed() const noexcept {
        return prev_ == ctx::start || prev_ == ctx::open || prev_ == ctx::comma ||
               prev_ == ctx::op || after_keyword();
    }

    /// Lexes the next token at pos_, skipping whitespace and comments. False at the end.
    bool lex(token& t) noexcept {
        bool space = false;
        for (;;) {
            if (pos_ >= n_) return false;
            const unsigned char c = at(pos_);
            if (is_space(c)) {
                ++pos_;
            } else if (c == '-' && at(pos_ + 1) == '-') {
                while (pos_ < n_ && in_[pos_] != '\n') ++pos_;
            } else if (c == '/' && at(pos_ + 1) == '*') {
                skip_block_comment();
            } else {
                break;
            }
            space = true;
        }
        t.space_before = space;
        t.add_quote = false;
        t.begin = pos_;
        const unsigned char c = at(pos_);
        const unsigned char c1 = at(pos_ + 1);
        bool closed = false;
        auto finish = [&](kind k, ctx x, std::size_t end) {
            t.k = k;
            t.c = x;
            t.end = end;
            pos_ = end;
            return true;
        };
        auto quoted_ident = [&](std::size_t body, char quote) {
            const std::size_t end = scan_quoted(body, quote, false, closed);
            t.add_quote = !closed;
            return finish(kind::verbatim, ctx::name, end);
        };
        auto string = [&](std::size_t body, bool backslash) {
            return finish(kind::literal, ctx::literal, scan_quoted(body, '\'', backslash, closed));
        };

        if (c == '\'') return string(pos_ + 1, false);
        if (c == '"' || c == '`') return quoted_ident(pos_ + 1, char(c));
        if (is_ident_start(c)) {
            const unsigned char lc = c | 0x20;
            if (c1 == '\'' && (lc == 'e' || lc == 'b' || lc == 'x' || lc == 'n'))
                return string(pos_ + 2, lc == 'e');
            if (lc == 'u' && c1 == '&' && at(pos_ + 2) == '\'') return string(pos_ + 3, false);
            if (lc == 'u' && c1 == '&' && at(pos_ + 2) == '"') return quoted_ident(pos_ + 3, '"');
            std::size_t i = pos_ + 1;
            while (i < n_ && is_ident_char(static_cast<unsigned char>(in_[i]))) ++i;
            return finish(kind::word, ctx::word, i);
        }
        if (is_digit(c) || (c == '.' && is_digit(c1)))
            return finish(kind::literal, ctx::literal, scan_number(pos_));
        if (c == '-' && (is_digit(c1) || (c1 == '.' && is_digit(at(pos_ + 2)))) && sign_allowed())
            return finish(kind::literal, ctx::literal, scan_number(pos_ + 1));
        if (c == '$') {
            if (is_digit(c1)) {
                std::size_t i = pos_ + 1;
                while (is_digit(at(i))) ++i;
                return finish(kind::literal, ctx::literal, i);
            }
            if (const std::size_t end = scan_dollar_quote(); end != 0)
                return finish(kind::literal, ctx::literal, end);
            return finish(kind::verbatim, ctx::op, pos_ + 1);
        }
        if (c == '?') {
            std::size_t i = pos_ + 1;
            while (is_digit(at(i))) ++i;  // ?NNN (SQLite)
            return finish(kind::literal, ctx::literal, i);
        }
        if (c == ':') {
            if (c1 == ':') return finish(kind::verbatim, ctx::op, pos_ + 2);
            // `:name` is a parameter unless glued to what precedes it, as in a[lo:hi].
            const bool glued = !space && (prev_ == ctx::word || prev_ == ctx::name ||
                                          prev_ == ctx::literal || prev_ == ctx::close);
            if (!glued && (is_ident_start(c1) || is_digit(c1))) {
                std::size_t i = pos_ + 1;
                while (i < n_ && is_ident_char(at(i))) ++i;
                return finish(kind::literal, ctx::literal, i);
            }
            return finish(kind::verbatim, ctx::op, pos_ + 1);
        }
        switch (c) {
            case '(':
            case '[':
                return finish(kind::open, ctx::open, pos_ + 1);
            case ')':
            case ']':
                return finish(kind::close, ctx::close, pos_ + 1);
            case ',':
                return finish(kind::comma, ctx::comma, pos_ + 1);
            case ';':
                return finish(kind::semicolon, ctx::start, pos_ + 1);
            case '.':
                return finish(kind::verbatim, ctx::dot, pos_ + 1);
            default:
                return finish(kind::verbatim, ctx::op, pos_ + 1);  // operators, the rest
        }
    }

    // ---- writer ----

    /// Writes one token (with the space before it, if any) or, when it does not fit, cuts the
    /// output at the last token boundary that leaves room for the marker, and stops.
    void emit(const token& t) noexcept {
        const bool space = t.space_before && len_ > 0 && prev_ != ctx::open && t.k != kind::comma &&
                           t.k != kind::close && t.k != kind::semicolon;
        const std::size_t body = t.k == kind::word       ? t.end - t.begin
                                 : t.k == kind::verbatim ? t.end - t.begin + (t.add_quote ? 1 : 0)
                                                         : 1;
        if (body > limit_ - len_ || (space ? 1 : 0) > limit_ - len_ - body) {
            cut();
            return;
        }
        if (space) out_[len_++] = ' ';
        switch (t.k) {
            case kind::word:
                for (std::size_t i = t.begin; i < t.end; ++i) out_[len_++] = to_lower(in_[i]);
                break;
            case kind::verbatim:
                std::memcpy(out_ + len_, in_ + t.begin, t.end - t.begin);
                len_ += t.end - t.begin;
                if (t.add_quote) out_[len_++] = in_[t.begin] == '`' ? '`' : '"';
                break;
            case kind::literal:
                out_[len_++] = '?';
                break;
            case kind::comma:
                out_[len_++] = ',';
                break;
            case kind::semicolon:
                out_[len_++] = ';';
                break;
            case kind::open:
            case kind::close:
                out_[len_++] = in_[t.begin];
                break;
        }
        set_prev(t);
        const std::size_t marker = prev_ == ctx::open ? 3 : 4;
        if (limit_ - len_ >= marker) safe_ = len_;
    }

    void cut() noexcept {
        len_ = safe_;
        const bool after_open = len_ > 0 && (out_[len_ - 1] == '(' || out_[len_ - 1] == '[');
        const char* marker = (len_ == 0 || after_open) ? "..." : " ...";
        const std::size_t m = std::strlen(marker);
        if (limit_ - len_ >= m) {
            std::memcpy(out_ + len_, marker, m);
            len_ += m;
        }
        done_ = true;
    }

    // ---- list and row collapsing ----

    level& top() noexcept { return levels_[depth_ <= max_depth ? depth_ : max_depth + 1]; }

    bool may_elide(const token& t) const noexcept { return t.begin >= no_elide_before_; }

    /// Takes an elided token into account for lexing (signs, `:name`) without writing it.
    void note(const token& t) noexcept { set_prev(t); }

    void set_prev(const token& t) noexcept {
        prev_ = t.c;
        if (t.c == ctx::word) {
            word_begin_ = t.begin;
            word_end_ = t.end;
        }
    }

    void start_elision(elide e, const token& t) noexcept {
        saved_ = saved{t.begin, prev_, word_begin_, word_end_, top()};
        elide_ = e;
        row_ = row_step::comma;
        note(t);
    }

    /// The elided pattern broke at `at`: go back and write those tokens after all; no elision
    /// may start again before `at`, so every rewind makes progress.
    void rewind(std::size_t at) noexcept {
        pos_ = saved_.pos;
        prev_ = saved_.prev;
        word_begin_ = saved_.word_begin;
        word_end_ = saved_.word_end;
        top() = saved_.top;
        no_elide_before_ = at;
        elide_ = elide::none;
    }

    void handle(const token& t) noexcept {
        if (elide_ == elide::items) {
            level& l = top();
            if (t.k == kind::comma && l.st == list_state::item) {
                l.st = list_state::after_comma;
                note(t);
                return;
            }
            if (t.k == kind::literal && l.st == list_state::after_comma) {
                l.st = list_state::item;
                note(t);
                return;
            }
            if (!(t.k == kind::close && l.st == list_state::item && in_[t.begin] == l.close)) {
                rewind(t.begin);
                return;
            }
            elide_ = elide::none;  // `(?, ?, ?)` is complete: write its `)`
        } else if (elide_ == elide::rows) {
            if (match_row(t)) return;
            if (row_ != row_step::done) {
                rewind(t.begin);
                return;
            }
            elide_ = elide::none;  // the elided rows stand (prev_ is their `)`); t follows them
        }
        process(t);
    }

    /// Advances the row pattern `, ( ? [, ?]… )`; false when t does not continue it.
    bool match_row(const token& t) noexcept {
        const level& l = top();
        switch (row_) {
            case row_step::comma:
                if (t.k != kind::open || in_[t.begin] != l.row_open) return false;
                row_ = row_step::open;
                break;
            case row_step::open:
            case row_step::sep:
                if (t.k != kind::literal) return false;
                row_ = row_step::item;
                break;
            case row_step::item:
                if (t.k == kind::comma) {
                    row_ = row_step::sep;
                } else if (t.k == kind::close && in_[t.begin] == (l.row_open == '(' ? ')' : ']')) {
                    row_ = row_step::done;
                } else {
                    return false;
                }
                break;
            case row_step::done:
                return false;
        }
        note(t);
        return true;
    }

    void process(const token& t) noexcept {
        if (t.k == kind::semicolon) {
            // Held back so that trailing ones can be dropped.
            ++semicolons_;
            prev_ = ctx::start;
            level& l = top();
            l.st = list_state::broken;
            l.row_ready = false;
            return;
        }
        while (semicolons_ > 0 && !done_) {
            --semicolons_;
            emit(token{kind::semicolon, ctx::start, false, false, 0, 0});
        }
        if (done_) return;

        level& l = top();
        switch (t.k) {
            case kind::open: {
                const bool call = prev_ == ctx::name || (prev_ == ctx::word && !after_keyword());
                emit(t);
                l.st = list_state::broken;
                l.row_ready = false;
                ++depth_;
                top() = level{in_[t.begin] == '(' ? ')' : ']',
                              depth_ <= max_depth ? list_state::empty : list_state::broken, !call,
                              false, 0};
                return;
            }
            case kind::close: {
                const char c = in_[t.begin];
                emit(t);
                if (depth_ > 0 && (depth_ > max_depth || c == l.close)) {
                    const bool row = l.st == list_state::item && l.row_candidate;
                    --depth_;
                    level& parent = top();
                    parent.st = list_state::broken;
                    parent.row_ready = row;
                    parent.row_open = c == ')' ? '(' : '[';
                } else {
                    l.st = list_state::broken;
                    l.row_ready = false;
                }
                return;
            }
            case kind::comma:
                if (l.st == list_state::item && may_elide(t)) {
                    start_elision(elide::items, t);
                    l.st = list_state::after_comma;
                    return;
                }
                if (l.row_ready && may_elide(t)) {
                    start_elision(elide::rows, t);
                    return;
                }
                emit(t);
                l.st = l.st == list_state::item ? list_state::after_comma : list_state::broken;
                l.row_ready = false;
                return;
            case kind::literal:
                emit(t);
                l.st = (l.st == list_state::empty || l.st == list_state::after_comma)
                           ? list_state::item
                           : list_state::broken;
                l.row_ready = false;
                return;
            default:
                emit(t);
                l.st = list_state::broken;
                l.row_ready = false;
                return;
        }
    }

    const char* in_;
    std::size_t n_;
    std::size_t pos_ = 0;
    char* out_;
    std::size_t limit_;
    std::size_t len_ = 0;
    std::size_t safe_ = 0;  // the longest output after which the cut marker still fits
    bool done_ = false;
    ctx prev_ = ctx::start;
    std::size_t word_begin_ = 0, word_end_ = 0;  // the previous token, when it is a word
    std::size_t semicolons_ = 0;
    std::size_t depth_ = 0;
    level levels_[max_depth + 2];  // [0]: outside any bracket; [max_depth + 1]: untracked levels
    elide elide_ = elide::none;
    row_step row_ = row_step::comma;
    saved saved_{};
    std::size_t no_elide_before_ = 0;
};

}  // namespace

std::size_t normalize_statement(std::string_view sql, char* out, std::size_t cap) noexcept {
    const std::size_t limit = cap < statement_max_length ? cap : statement_max_length;
    if (limit == 0) return 0;
    return normalizer(sql, out, limit).run();
}

std::uint64_t statement_fingerprint(std::string_view normalized) noexcept {
    // FNV-1a 64 (offset basis and prime from the FNV reference,
    // http://www.isthe.com/chongo/tech/comp/fnv/).
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : normalized) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ull;
    }
    // Carries only move upwards, so FNV's low bits never see the bytes' high bits: fold the high
    // half down and mix with two odd multipliers, so that the low bits (hash-table buckets)
    // depend on every input bit.
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 29;
    h *= layout::fibonacci_multiplier;
    h ^= h >> 32;
    return h != 0 ? h : 1;
}

}  // namespace plugmon::detail
