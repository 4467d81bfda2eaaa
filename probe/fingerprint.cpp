// SQL statement normalisation (one pass over the tokens of sql_lexer.hpp, written with a canonical
// spacing) and the statement fingerprint. Runs in plugin threads: no allocation, no exceptions, no system calls.
#include "fingerprint.hpp"

#include "sql_lexer.hpp"

#include <plugmon/layout.hpp>

#include <cstring>

namespace plugmon::detail {

namespace {

using K = sql_token_kind;

/// Keywords that start an expression but are written like functions, without a space before the
/// `(` after them: `= any(?)`.
bool call_like(const char* p, std::size_t n) noexcept {
    if (n != 3 && n != 4) return false;
    switch (sql_chars::pack(p, n)) {
        case sql_chars::pack("any"):
        case sql_chars::pack("all"):
        case sql_chars::pack("some"):
            return true;
        default:
            return false;
    }
}

/// Writes src[0, n) lowercased (ASCII letters only) to dst; locals, so the loop does not reload
/// members through the char stores.
void lower(char* dst, const char* src, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) dst[i] = sql_chars::to_lower(src[i]);
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
        : in_(sql.data()), n_(sql.size()), lexer_(sql), out_(out), limit_(limit) {
        levels_[0] = level{0, list_state::broken, false, false, 0};
    }

    std::size_t run() noexcept {
        sql_token t{};
        while (!done_) {
            if (!lexer_.next(t)) {
                // The input ended inside an elided list or row: it did not collapse after all.
                if (elide_ == elide::items || (elide_ == elide::rows && row_ != row_step::done)) {
                    rewind(n_);
                    continue;
                }
                break;
            }
            // An elision starts only at a comma right after a `?` item or a `)` `]` row, so the
            // lexer is kept only after those (not copied for every token).
            if (t.kind == K::constant || t.kind == K::close) before_comma_ = lexer_;
            handle(t);
        }
        return len_;  // pending semicolons are trailing ones: dropped
    }

private:
    static constexpr std::size_t max_depth = 32;     // deeper brackets are not collapsed
    static constexpr std::size_t marker_length = 3;  // "...", written where the output is cut

    enum class elide : std::uint8_t { none, items, rows };

    /// Where an elision started, to write the elided tokens after all if the pattern breaks.
    struct saved {
        sql_lexer lexer;
        level top;
    };

    // ---- writer ----

    /// The canonical spacing: one space between tokens, none after `(` `[` `.` `::`, none
    /// before `,` `)` `]` `;` `.` `::`, and none between a name and the `(` or `[` after it
    /// (a call or subscript: `call`, looked up by open()). Never glues two colons into a
    /// different token.
    bool space_before(const sql_token& t, bool call) const noexcept {
        if (len_ == 0) return false;
        bool space = true;
        if (t.kind == K::comma || t.kind == K::close || t.kind == K::semicolon ||
            t.kind == K::dot || t.kind == K::cast)
            space = false;
        else if (last_.kind == K::open || last_.kind == K::dot || last_.kind == K::cast)
            space = false;
        else if (call)
            space = false;
        return space || (out_[len_ - 1] == ':' && first_byte(t) == ':');
    }

    /// The last token written names a function, table or array: a `(` or `[` after it is glued to
    /// it (words are looked up as keywords only here).
    bool after_call_name() const noexcept {
        if (last_.kind == K::name) return true;
        if (last_.kind != K::word) return false;
        const char* w = in_ + last_.begin;
        const std::size_t n = last_.end - last_.begin;
        return !sql_expression_keyword(w, n) || call_like(w, n);
    }

    /// The first byte t writes.
    char first_byte(const sql_token& t) const noexcept {
        return t.kind == K::constant ? '?' : in_[t.begin];
    }

    /// Bytes t takes in the output.
    std::size_t width(const sql_token& t) const noexcept {
        switch (t.kind) {
            case K::word:
                return t.end - t.begin;
            case K::name:
                return t.end - t.begin + (t.unterminated ? 1 : 0);
            case K::op:
                return t.end - t.begin;
            case K::cast:
                return 2;
            default:
                return 1;
        }
    }

    /// Writes one token (with the space before it, if any) or, when it does not fit, cuts the
    /// output at the last token boundary that leaves room for the marker, and stops. `call`: t is
    /// the `(` or `[` of a call or subscript.
    void emit(const sql_token& t, bool call = false) noexcept {
        const bool space = space_before(t, call);
        const std::size_t body = width(t);
        if (body > limit_ - len_ || (space ? 1 : 0) > limit_ - len_ - body) {
            cut();
            return;
        }
        if (space) out_[len_++] = ' ';
        const std::size_t n = t.end - t.begin;
        switch (t.kind) {
            case K::word:
                lower(out_ + len_, in_ + t.begin, n);
                len_ += n;
                break;
            case K::name:
                std::memcpy(out_ + len_, in_ + t.begin, n);
                if (in_[t.begin] == 'U')
                    out_[len_] = 'u';  // U&"…": the prefix is not case-sensitive
                len_ += n;
                if (t.unterminated) out_[len_++] = in_[t.begin] == '`' ? '`' : '"';
                break;
            case K::op:
                if (n == 2 && in_[t.begin] == '!' && in_[t.begin + 1] == '=') {
                    std::memcpy(out_ + len_, "<>", 2);  // PostgreSQL reads != as <>
                } else {
                    std::memcpy(out_ + len_, in_ + t.begin, n);
                }
                len_ += n;
                break;
            case K::constant:
                out_[len_++] = '?';
                break;
            case K::cast:
                std::memcpy(out_ + len_, "::", 2);
                len_ += 2;
                break;
            default:  // ( [ ) ] , ; .
                out_[len_++] = in_[t.begin];
                break;
        }
        last_ = t;
        if (limit_ - len_ >= marker_length) safe_ = len_;
    }

    /// Cuts the output after the last token that leaves room for "..." (glued to it, so that
    /// normalising the cut output gives it back).
    void cut() noexcept {
        len_ = safe_;
        if (limit_ - len_ >= marker_length) {
            std::memcpy(out_ + len_, "...", marker_length);
            len_ += marker_length;
        }
        done_ = true;
    }

    // ---- list and row collapsing ----

    level& top() noexcept { return levels_[depth_ <= max_depth ? depth_ : max_depth + 1]; }

    bool may_elide(const sql_token& t) const noexcept { return t.begin >= no_elide_before_; }

    /// Starts skipping tokens; `at` is the lexer positioned at the first skipped token.
    void start_elision(elide e, const sql_lexer& at) noexcept {
        saved_ = saved{at, top()};
        elide_ = e;
        row_ = row_step::comma;
    }

    /// The elided pattern broke at `at`: go back and write those tokens after all; no elision
    /// may start again before `at`, so every rewind makes progress.
    void rewind(std::size_t at) noexcept {
        lexer_ = saved_.lexer;
        top() = saved_.top;
        no_elide_before_ = at;
        elide_ = elide::none;
    }

    void handle(const sql_token& t) noexcept {
        if (elide_ == elide::items) {
            level& l = top();
            if (t.kind == K::comma && l.st == list_state::item) {
                l.st = list_state::after_comma;
                return;
            }
            if (t.kind == K::constant && l.st == list_state::after_comma) {
                l.st = list_state::item;
                return;
            }
            if (!(t.kind == K::close && l.st == list_state::item && in_[t.begin] == l.close)) {
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
            elide_ = elide::none;  // the elided rows stand; t follows them
        }
        process(t);
    }

    /// Advances the row pattern `, ( ? [, ?]… )`; false when t does not continue it.
    bool match_row(const sql_token& t) noexcept {
        const level& l = top();
        switch (row_) {
            case row_step::comma:
                if (t.kind != K::open || in_[t.begin] != l.row_open) return false;
                row_ = row_step::open;
                return true;
            case row_step::open:
            case row_step::sep:
                if (t.kind != K::constant) return false;
                row_ = row_step::item;
                return true;
            case row_step::item:
                if (t.kind == K::comma) {
                    row_ = row_step::sep;
                    return true;
                }
                if (t.kind == K::close && in_[t.begin] == (l.row_open == '(' ? ')' : ']')) {
                    row_ = row_step::done;
                    return true;
                }
                return false;
            case row_step::done:
                return false;
        }
        return false;
    }

    void process(const sql_token& t) noexcept {
        if (t.kind == K::semicolon) {
            // Held back so that trailing ones can be dropped.
            ++semicolons_;
            semicolon_at_ = t.begin;
            level& l = top();
            l.st = list_state::broken;
            l.row_ready = false;
            return;
        }
        while (semicolons_ > 0 && !done_) {
            --semicolons_;
            emit(sql_token{K::semicolon, false, semicolon_at_, semicolon_at_ + 1});
        }
        if (done_) return;
        level& l = top();
        switch (t.kind) {
            case K::open:
                return open(t, l);
            case K::close:
                return close(t, l);
            case K::comma:
                if (l.st == list_state::item && may_elide(t)) {
                    start_elision(elide::items, before_comma_);
                    l.st = list_state::after_comma;
                    return;
                }
                if (l.row_ready && may_elide(t)) {
                    start_elision(elide::rows, before_comma_);
                    return;
                }
                emit(t);
                l.st = l.st == list_state::item ? list_state::after_comma : list_state::broken;
                l.row_ready = false;
                return;
            case K::constant:
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

    void open(const sql_token& t, level& l) noexcept {
        const bool call = after_call_name();
        emit(t, call);
        l.st = list_state::broken;
        l.row_ready = false;
        ++depth_;
        top() =
            level{in_[t.begin] == '(' ? ')' : ']',
                  depth_ <= max_depth ? list_state::empty : list_state::broken, !call, false, 0};
    }

    void close(const sql_token& t, level& l) noexcept {
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
    }

    const char* in_;
    std::size_t n_;
    sql_lexer lexer_;
    sql_lexer before_comma_{std::string_view()};  // after the last constant or close token
    char* out_;
    std::size_t limit_;
    std::size_t len_ = 0;
    std::size_t safe_ = 0;  // the longest output after which the cut marker still fits
    bool done_ = false;
    sql_token last_{K::semicolon};  // the last token written
    std::size_t semicolons_ = 0;
    std::size_t semicolon_at_ = 0;
    std::size_t depth_ = 0;
    level levels_[max_depth + 2];  // [0]: outside any bracket; [max_depth + 1]: untracked levels
    elide elide_ = elide::none;
    row_step row_ = row_step::comma;
    saved saved_{sql_lexer(std::string_view()), level{}};
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
