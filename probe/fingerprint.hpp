// SQL statement normalisation and fingerprinting: groups queries by statement shape (literals and
// parameters replaced by `?`), in the spirit of pg_stat_statements' queryid, computed in the probe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace plugmon::detail {

/// Upper bound on a normalised statement, in bytes. Longer output is cut before the first token
/// that does not fit and ends with the marker "..." (glued to the token before it).
inline constexpr std::size_t statement_max_length = 1024;

/// Normalises SQL text into out[0, cap) and returns the number of bytes written, at most
/// min(cap, statement_max_length); the output is not NUL-terminated. The output depends only on
/// the token sequence (sql_lexer.hpp, PostgreSQL 15's lexical rules), so whitespace, comments and
/// the case of unquoted words never matter:
/// - tokens are written with one space between them, except none after `(` `[` `.` `::`, none
///   before `,` `)` `]` `;` `.` `::`, and none between a word or quoted name and the `(` or `[`
///   after it, unless the word is a keyword that starts an expression (`in (?)`, `values (?)`,
///   `exists (select …)`, but `count(*)`, `any(?)`, `t(a, b)`); trailing `;` are dropped;
/// - unquoted words are lowercased; quoted identifiers ("…", U&"…", `…`) are kept verbatim
///   (only a U& prefix is lowercased); `!=` is written `<>`, as PostgreSQL reads it;
/// - constants become `?`: strings ('…', E'…', B'…', X'…', U&'…', $tag$…$tag$), numbers
///   in every form with a unary minus folded where PostgreSQL folds it (after an operator, `(`,
///   `,` or a keyword, not before `::`), so `x = -1` and `x = 1` agree but `x - 1` keeps its
///   minus; TRUE, FALSE and NULL used as values (not after IS / IS NOT); and parameters ($1, ?,
///   :name). Typed literals and casts keep their type: `interval ?`, `?::int`, `n ?` (N'…');
/// - a bracketed list of `?` items becomes `(?)` or `[?]`, and consecutive `(?)` rows
///   separated by commas (multi-row VALUES) become one, so IN lists of any length agree (as
///   PostgreSQL 18 groups them; PostgreSQL 15 counts each list length apart);
/// - unterminated strings and comments run to the end of the input.
/// Output from valid UTF-8 is valid UTF-8 (cuts fall between tokens), and normalising the output
/// again (with the same cap) returns it unchanged.
/// Thread-safe (no shared state); no allocation, no exceptions, no system calls; time is linear
/// in sql.size(). `out` may be null when cap is 0.
std::size_t normalize_statement(std::string_view sql, char* out, std::size_t cap) noexcept;

/// 64-bit fingerprint of a normalised statement: FNV-1a 64 over the bytes, then a final avalanche
/// so every output bit depends on every input bit. Never 0 (0 means "no statement"). The value is
/// part of what the agent stores: changing the function changes every statement's identity.
/// Thread-safe; no allocation, no exceptions.
std::uint64_t statement_fingerprint(std::string_view normalized) noexcept;

}  // namespace plugmon::detail
