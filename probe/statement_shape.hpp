// The shape key of SQL text: a 64-bit hash of the text with every constant token (sql_lexer.hpp)
// left out, so texts that differ only in their literals share a key. The probe's statement caches
// are keyed on it; the normalised text and its fingerprint are built only for a key not seen yet.
#pragma once

#include <cstdint>
#include <string_view>

namespace plugmon::detail {

/// The shape key of `sql`, never 0. Defined on sql_lexer's tokens: the text is cut at each
/// constant token into the raw segments between them (whitespace, comments and case kept), and
/// the key hashes each segment's length and bytes in order. Two texts with the same segments
/// therefore have the same token sequence up to the constants' contents, and so the same
/// normalize_statement output: equal keys mean equal statements (up to a 64-bit collision).
/// The converse does not hold: `id=1` and `id = 1` have two keys and one statement.
///
/// One pass over the text, 64 bytes at a time: a block's bytes are classified at once, and only
/// the bytes that may start or end a constant (quotes, digits and t/f/n at a word's start, `-`,
/// `/`, `?`, `:`, `.`) are looked at one by one. Constructs that need more context than that
/// (`$`, `U&'…'`, a sign after a comment, …) are handed to statement_shape_reference, which
/// gives the same key. Linear in sql.size(); no allocation, no exceptions; thread-safe.
std::uint64_t statement_shape(std::string_view sql) noexcept;

/// The same key computed from sql_lexer's token stream: the definition statement_shape is
/// tested against, and its path for the rare constructs it does not scan itself.
std::uint64_t statement_shape_reference(std::string_view sql) noexcept;

}  // namespace plugmon::detail
