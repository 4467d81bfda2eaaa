// The shape key (probe/statement_shape.hpp): the block scanner gives the key of the token-stream
// definition for every input, literal variants share a key, equal keys mean equal normalised
// statements, and pathological texts are handled whole (their cost: bench/statement_shape_bench).
#include "../../probe/statement_shape.hpp"
#include "../../probe/fingerprint.hpp"
#include "../../probe/sql_lexer.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using plugmon::detail::normalize_statement;
using plugmon::detail::statement_shape;
using plugmon::detail::statement_shape_reference;

std::string normalized(std::string_view sql) {
    std::string out(plugmon::detail::statement_max_length, '\0');
    out.resize(normalize_statement(sql, out.data(), out.size()));
    return out;
}

std::string printable(std::string_view s) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 32 && u < 127) {
            out += c;
        } else {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 15];
        }
    }
    return out;
}

/// Pieces of SQL weighted towards what decides a constant's span: quotes and their prefixes,
/// signs, comments, parameters, IS [NOT] before TRUE/FALSE/NULL, numbers glued to words.
const std::vector<std::string>& atoms() {
    static const std::vector<std::string> a = {"select",
                                               " ",
                                               "  ",
                                               "\n",
                                               "\t",
                                               "t",
                                               "f",
                                               "n",
                                               "e",
                                               "E",
                                               "b",
                                               "x",
                                               "U&",
                                               "u",
                                               "null",
                                               "NULL",
                                               "true",
                                               "false",
                                               "is",
                                               "IS",
                                               "not",
                                               "NOT",
                                               "id",
                                               "tbl",
                                               "t1",
                                               "1",
                                               "42",
                                               "1.5",
                                               ".5",
                                               "5.",
                                               "1e5",
                                               "1e-5",
                                               "1e",
                                               "0x1F",
                                               "1_000",
                                               "'",
                                               "''",
                                               "'a'",
                                               "\"",
                                               "\"q\"",
                                               "`",
                                               "-",
                                               "--",
                                               "/*",
                                               "*/",
                                               "/",
                                               "*",
                                               "+",
                                               "=",
                                               "<",
                                               ">",
                                               "->",
                                               "->>",
                                               "@",
                                               "#",
                                               "!",
                                               "~",
                                               "&",
                                               "|",
                                               "%",
                                               "^",
                                               "?",
                                               "?1",
                                               ":",
                                               ":x",
                                               "::",
                                               ":=",
                                               "$",
                                               "$1",
                                               "$$",
                                               "$a$",
                                               ",",
                                               "(",
                                               ")",
                                               "[",
                                               "]",
                                               ";",
                                               ".",
                                               "..",
                                               "\\",
                                               "and",
                                               "in",
                                               "values",
                                               "where",
                                               "=-",
                                               "- ",
                                               "-1",
                                               "e'",
                                               "E'\\''",
                                               "b'01'",
                                               "x'1f'",
                                               "N'z'",
                                               "abc",
                                               "ab1c",
                                               "\xc3\xa9",
                                               "\xff",
                                               std::string(1, '\0'),
                                               "0",
                                               "9",
                                               " IS NOT NULL",
                                               " is true",
                                               "limit",
                                               "from",
                                               "or"};
    return a;
}

std::string soup(std::mt19937_64& rng) {
    std::string s;
    const std::size_t pieces = rng() % 40;
    for (std::size_t i = 0; i < pieces; ++i) s += atoms()[rng() % atoms().size()];
    if (rng() % 4 == 0)  // past one 64-byte block, so that events cross block boundaries
        while (s.size() < 200) s += atoms()[rng() % atoms().size()];
    return s;
}

/// sql with every constant token replaced by `replacement` (sql_lexer's spans).
std::string with_constants(std::string_view sql, std::string_view replacement) {
    plugmon::detail::sql_lexer lexer(sql);
    plugmon::detail::sql_token t;
    std::string out;
    std::size_t at = 0;
    while (lexer.next(t)) {
        if (t.kind != plugmon::detail::sql_token_kind::constant) continue;
        out.append(sql.substr(at, t.begin - at));
        out.append(replacement);
        at = t.end;
    }
    out.append(sql.substr(at));
    return out;
}

TEST(statement_shape, equals_the_token_stream_definition_on_generated_sql) {
    std::mt19937_64 rng(20261205);
    int mismatches = 0;
    for (int i = 0; i < 200000 && mismatches < 10; ++i) {
        const std::string s = soup(rng);
        if (statement_shape(s) != statement_shape_reference(s)) {
            ++mismatches;
            ADD_FAILURE() << "fast and reference keys differ for: " << printable(s);
        }
    }
}

TEST(statement_shape, equals_the_token_stream_definition_on_realistic_statements) {
    const char* const statements[] = {
        "SELECT i.id, i.number, c.name FROM invoices i JOIN customers c ON c.id = i.customer_id "
        "WHERE i.tenant_id = 4217 AND i.status = 'open' AND i.due < '2026-12-01' LIMIT 50",
        "select * from t where a = -1 and b = - 2.5e3 and c = -.5 and d - 1 > 0",
        "UPDATE \"users\" SET \"name\" = 'O''Brien', \"flags\" = B'0101' WHERE \"id\" = 7",
        "insert into t (a, b, c) values (1, 'x', null), (2, 'y', true), (3, E'z\\'q', false)",
        "select data->>'k', data->'k'->0 from docs where tags @> '{a}' and x::int = 1",
        "select * from t where a is null and b is not null and c = null and d is not true",
        "select :name, :1, ?, ?2, $1, $2::int from t -- trailing comment with 'quote\n",
        "/* app:web */ select 1 /* nested /* c */ */ + 2 from dual where x = $tag$ a $tag$",
        "select t.5, 1..2, 0x1F, 1_000, 1e, 1e+, 5.in from t",
        "select * from t where a in (1, 2, 3) and b in ('a', 'b') order by c desc",
        "SELECT U&'d\\0061t\\+000061', U&\"d!0061t\" UESCAPE '!', N'national' FROM t",
        "select x from t where y = 1 - -1 and z = (- 1) and w = -/*c*/1",
        "select 'unterminated",
        "select \"unterminated",
        "select 1 /* unterminated",
    };
    for (const char* s : statements)
        EXPECT_EQ(statement_shape(s), statement_shape_reference(s)) << s;
}

TEST(statement_shape, literal_variants_share_a_key_and_a_statement) {
    const char* const shapes[] = {
        "SELECT * FROM t WHERE a = %d AND b = 'v%d' AND c IS NULL AND d = true LIMIT %d",
        "update x set y = -%d, z = 'a%db', w = %d.5e3 where id in (7, 8)",
        "select e'%d\\'', x'%d' from t where q = :p and r = ?%d",
        "SELECT \"c\" FROM \"t\" WHERE \"a\" = %d -- note\n AND b = %d AND c = $$%d$$",
    };
    for (const char* shape : shapes) {
        char first[512];
        std::snprintf(first, sizeof first, shape, 1, 2, 3);
        for (int v = 0; v < 200; ++v) {
            char text[512];
            std::snprintf(text, sizeof text, shape, v * 7919, v * 31, v + 5);
            EXPECT_EQ(statement_shape(text), statement_shape(first)) << text;
            EXPECT_EQ(normalized(text), normalized(first)) << text;
        }
    }
}

TEST(statement_shape, separates_texts_that_differ_outside_their_literals) {
    EXPECT_NE(statement_shape("select * from t where a = 1"),
              statement_shape("select * from t where b = 1"));
    EXPECT_NE(statement_shape("select * from t where a = 1"),
              statement_shape("select * from t where a = 1 and 1"));
    EXPECT_NE(statement_shape("select a from t"), statement_shape("select \"a\" from t"));
    EXPECT_NE(statement_shape("x = -1"), statement_shape("x - 1"));  // a sign vs a minus
    EXPECT_NE(statement_shape("a is null"), statement_shape("a = null"));
    // Segment lengths are part of the key: moving bytes across a constant changes it.
    EXPECT_NE(statement_shape("ab 1 c"), statement_shape("a 1 bc"));
}

TEST(statement_shape, equal_keys_mean_equal_statements) {
    std::mt19937_64 rng(7);
    std::map<std::uint64_t, std::string> first_text;
    int checked = 0;
    for (int i = 0; i < 50000; ++i) {
        const std::string s = soup(rng);
        // the same text with other constants: same key when the lexer reads it the same way
        for (const std::string_view c : {"7", "'z'", "?", "-3"}) {
            const std::string v = with_constants(s, c);
            for (const std::string* t : {&s, &v}) {
                const auto [it, fresh] = first_text.emplace(statement_shape(*t), *t);
                if (fresh) continue;
                ++checked;
                ASSERT_EQ(normalized(*t), normalized(it->second))
                    << "one key, two statements:\n  " << printable(*t) << "\n  "
                    << printable(it->second);
            }
        }
    }
    EXPECT_GT(checked, 10000);  // the property was exercised, not vacuously true
}

TEST(statement_shape, takes_pathological_texts_whole_and_keeps_the_length_bound) {
    const std::string mb(1 << 20, 'a');
    const std::vector<std::string> texts = {
        "select " + mb,                                // one 1 MB word
        "select '" + mb,                               // a string that never ends
        "select /* " + mb,                             // a comment that never ends
        "select \"" + mb,                              // a quoted name that never ends
        "select 1 -- " + mb,                           // a line comment without its newline
        "select " + std::string(1 << 20, '-'),         // signs and comments
        "select " + std::string(1 << 20, ' ') + "-1",  // a sign after 1 MB of spaces
        std::string(1 << 19, '(') + std::string(1 << 19, ')'),
    };
    std::string constants = "select ";
    for (int i = 0; i < 100000; ++i) constants += "1,'x',";
    for (const std::string* t : {&constants})
        EXPECT_EQ(statement_shape(*t), statement_shape_reference(*t));
    for (const std::string& t : texts) {
        EXPECT_EQ(statement_shape(t), statement_shape_reference(t)) << t.substr(0, 12);
        EXPECT_LE(normalized(t).size(), plugmon::detail::statement_max_length);
    }
}

TEST(statement_shape, is_never_zero) {
    EXPECT_NE(statement_shape(""), 0u);
    EXPECT_NE(statement_shape("1"), 0u);
    EXPECT_NE(statement_shape_reference(""), 0u);
}

}  // namespace
