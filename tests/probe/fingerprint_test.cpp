// Statement normalisation and fingerprint: each normalisation rule, realistic ORM statements, the
// length bound, and fingerprints that follow statement shape. Every input is also checked for
// idempotency and for writes beyond the cap.
#include "../../probe/fingerprint.hpp"
#include "../../probe/sql_lexer.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using plugmon::detail::normalize_statement;
using plugmon::detail::statement_fingerprint;
using plugmon::detail::statement_max_length;

constexpr char guard = '\x7f';

/// normalize_statement into a buffer with guard bytes after cap; checks that nothing past cap
/// was written and that normalising the result again (same cap) returns it unchanged.
std::string normalized(std::string_view sql, std::size_t cap = 4096) {
    std::vector<char> buf(cap + 64, guard);
    const std::size_t n = normalize_statement(sql, buf.data(), cap);
    EXPECT_LE(n, cap) << sql;
    EXPECT_LE(n, statement_max_length) << sql;
    for (std::size_t i = cap; i < buf.size(); ++i) {
        EXPECT_EQ(buf[i], guard) << "byte " << i << " written beyond cap " << cap << ": " << sql;
    }
    const std::string once(buf.data(), n);
    std::vector<char> again(cap + 1);
    const std::string twice(again.data(), normalize_statement(once, again.data(), cap));
    EXPECT_EQ(twice, once) << "not idempotent for: " << sql;
    return once;
}

std::uint64_t fp(std::string_view sql) { return statement_fingerprint(normalized(sql)); }

/// True when s is well-formed UTF-8 (structure only; enough to see a split sequence).
bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t len = c < 0x80             ? 1
                                : (c & 0xe0) == 0xc0 ? 2
                                : (c & 0xf0) == 0xe0 ? 3
                                : (c & 0xf8) == 0xf0 ? 4
                                                     : 0;
        if (len == 0 || s.size() - i < len) return false;
        for (std::size_t k = 1; k < len; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
        i += len;
    }
    return true;
}

// ---- whitespace and punctuation ----

TEST(normalize, folds_whitespace_runs_to_one_space) {
    EXPECT_EQ(normalized("SELECT\t a\r\n  FROM   t\n\nWHERE  b"), "select a from t where b");
}

TEST(normalize, trims_leading_and_trailing_whitespace) {
    EXPECT_EQ(normalized(" \n\tselect a from t \r\n "), "select a from t");
}

TEST(normalize, drops_spaces_inside_brackets_and_before_commas) {
    EXPECT_EQ(normalized("select f( a , b ) , c [ d ] from t"), "select f(a, b), c[d] from t");
}

TEST(normalize, writes_one_space_around_operators) {
    EXPECT_EQ(normalized("select a+b, a + b from t where x>=y"),
              "select a + b, a + b from t where x >= y");
}

TEST(normalize, drops_trailing_semicolons) {
    EXPECT_EQ(normalized("select a from t;"), "select a from t");
    EXPECT_EQ(normalized("select a from t ; ;; \n"), "select a from t");
}

TEST(normalize, keeps_semicolons_between_statements) {
    EXPECT_EQ(normalized("begin ; update t set a = 1;commit;"),
              "begin; update t set a = ?; commit");
}

TEST(normalize, returns_nothing_for_blank_or_comment_only_text) {
    EXPECT_EQ(normalized(""), "");
    EXPECT_EQ(normalized(" \t\r\n"), "");
    EXPECT_EQ(normalized("-- nothing here\n/* nor here */;"), "");
}

// ---- comments ----

TEST(normalize, removes_line_comments_to_end_of_line) {
    EXPECT_EQ(normalized("select a -- the a\nfrom t -- trailing"), "select a from t");
}

TEST(normalize, removes_block_comments) {
    EXPECT_EQ(normalized("select /*+ IndexScan(t) */ a from t /* done */"), "select a from t");
}

TEST(normalize, removes_nested_block_comments_whole) {
    EXPECT_EQ(normalized("select /* outer /* inner */ still outer */ a from t"), "select a from t");
}

TEST(normalize, treats_a_comment_as_whitespace_between_tokens) {
    EXPECT_EQ(normalized("select a/**/b from t"), "select a b from t");
}

TEST(normalize, removes_query_tag_comments_added_by_frameworks) {
    // Rails query logs and sqlcommenter put per-request tags in comments; they must not split
    // one statement shape into many.
    EXPECT_EQ(normalized("SELECT 1 /*application:Blog,controller:posts,action:index*/"),
              "select ?");
    EXPECT_EQ(normalized("SELECT * FROM t /*controller='index',route='%2Fpolls'*/"),
              "select * from t");
}

TEST(normalize, does_not_see_comment_markers_inside_strings_or_quoted_names) {
    EXPECT_EQ(normalized("select '--x', '/*y*/', \"a--b\" from t"), "select ?, ?, \"a--b\" from t");
}

// ---- words and quoted identifiers ----

TEST(normalize, lowercases_unquoted_words) {
    EXPECT_EQ(normalized("SELECT Name, UserId FROM Users WHERE Active"),
              "select name, userid from users where active");
}

TEST(normalize, lowercases_only_ascii_letters) {
    // As PostgreSQL folds identifiers under a multi-byte encoding: other bytes are kept.
    EXPECT_EQ(normalized("SELECT CAFÉ FROM Straße"), "select cafÉ from straße");
}

TEST(normalize, keeps_double_quoted_identifiers_verbatim) {
    EXPECT_EQ(normalized("SELECT \"MixedCase\", \"with \"\"quote\"\"\" FROM \"My Table\""),
              "select \"MixedCase\", \"with \"\"quote\"\"\" from \"My Table\"");
}

TEST(normalize, keeps_unicode_and_backquoted_identifiers_verbatim) {
    EXPECT_EQ(normalized("SELECT U&\"d\\0061t\" FROM `Orders`"),
              "select u&\"d\\0061t\" from `Orders`");
}

TEST(normalize, keeps_digits_inside_identifiers) {
    EXPECT_EQ(normalized("select t1.col_2, \"x9\", a1b2, v$1 from t1"),
              "select t1.col_2, \"x9\", a1b2, v$1 from t1");
}

TEST(normalize, replaces_booleans_and_null_values_but_not_is_tests) {
    // pg_stat_statements: `a = true` and `a = null` hold constants; `b is not null` does not.
    EXPECT_EQ(normalized("where a = TRUE and b is not NULL and c = false and d is true"),
              "where a = ? and b is not null and c = ? and d is true");
}

// ---- literals ----

TEST(normalize, replaces_single_quoted_strings_with_doubled_quotes) {
    EXPECT_EQ(normalized("where a = 'it''s' and b = '' and c = 'x'"),
              "where a = ? and b = ? and c = ?");
}

TEST(normalize, takes_backslashes_in_standard_strings_literally) {
    // standard_conforming_strings: 'a\' ends at its second quote.
    EXPECT_EQ(normalized("select 'a\\', x from t"), "select ?, x from t");
}

TEST(normalize, replaces_escape_strings_with_backslash_escapes) {
    EXPECT_EQ(normalized("select E'it\\'s', e'\\\\', x from t"), "select ?, ?, x from t");
}

TEST(normalize, replaces_bit_hex_national_and_unicode_strings) {
    EXPECT_EQ(normalized("select B'1010', x'1F', N'abc', U&'d\\0061t' from t"),
              "select ?, ?, n ?, ? from t");
}

TEST(normalize, replaces_dollar_quoted_strings) {
    EXPECT_EQ(normalized("select $$it's$$, $fn$ a $$ b $other$ c $fn$, x"), "select ?, ?, x");
    EXPECT_EQ(normalized("CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql"),
              "create function f() returns int as ? language sql");
}

TEST(normalize, replaces_numbers_in_every_form) {
    EXPECT_EQ(normalized("select 1, 3.14, .5, 5., 1e-3, 2.5E+10, 0x1F, 0o17, 0b101, 1_000_000"),
              "select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?");
}

TEST(normalize, folds_a_unary_minus_into_the_number) {
    EXPECT_EQ(normalized("where x = -5"), normalized("where x = 5"));
    EXPECT_EQ(normalized("where x=-5.5"), "where x = ?");
    EXPECT_EQ(normalized("select -1, -.5 from t"), "select ?, ? from t");
    EXPECT_EQ(normalized("case when a then -1 else -2 end"), "case when a then ? else ? end");
    EXPECT_EQ(normalized("where x between -10 and -1"), "where x between ? and ?");
}

TEST(normalize, keeps_a_binary_minus) {
    EXPECT_EQ(normalized("select a -5, a-5, 1-5, f(x) -1 from t"),
              "select a - ?, a - ?, ? - ?, f(x) - ? from t");
}

TEST(normalize, folds_a_minus_separated_from_its_number) {
    // PostgreSQL's grammar folds `- 5` into a constant too: the sign is a token of its own.
    EXPECT_EQ(normalized("where x = - 5"), "where x = ?");
    EXPECT_EQ(normalized("where x = - /* c */ - 5"), "where x = ?");
}

// ---- parameters and casts ----

TEST(normalize, replaces_positional_parameters) {
    EXPECT_EQ(normalized("where a = $1 and b = $12 and c = ?"), "where a = ? and b = ? and c = ?");
}

TEST(normalize, replaces_named_parameters) {
    EXPECT_EQ(normalized("where id = :id and owner = :user_id and n = :1"),
              "where id = ? and owner = ? and n = ?");
}

TEST(normalize, keeps_type_casts) {
    EXPECT_EQ(normalized("select x::int, '2024-01-01'::date, $1::text[] from t"),
              "select x::int, ?::date, ?::text[] from t");
}

TEST(normalize, keeps_colons_in_slices_and_assignments) {
    EXPECT_EQ(normalized("select a[1:2], a[lo:hi], f(p := 3) from t"),
              "select a[? : ?], a[lo : hi], f(p := ?) from t");
}

// ---- lists and rows ----

TEST(normalize, collapses_in_lists_of_any_length) {
    const std::string one = normalized("select * from t where id in (1)");
    EXPECT_EQ(one, "select * from t where id in (?)");
    EXPECT_EQ(normalized("select * from t where id in (1, 2, 3)"), one);
    EXPECT_EQ(normalized("select * from t where id in ( -1 ,2,'x', $4, ?, :n )"), one);
}

TEST(normalize, collapses_array_constructors) {
    EXPECT_EQ(normalized("where id = any(ARRAY[1, 2, 3])"), "where id = any(array[?])");
}

TEST(normalize, collapses_multi_row_values) {
    const std::string one = normalized("insert into t (a, b) values (1, 'a')");
    EXPECT_EQ(one, "insert into t(a, b) values (?)");
    EXPECT_EQ(normalized("insert into t (a, b) values (1, 'a'), (2, 'b'),(3,'c')"), one);
    EXPECT_EQ(normalized("insert into t (a, b) values ($1, $2), ($3, $4) returning id"),
              one + " returning id");
}

TEST(normalize, collapses_rows_inside_brackets) {
    EXPECT_EQ(normalized("where (a, b) in ((1, 2), (3, 4), (5, 6))"), "where (a, b) in ((?))");
}

TEST(normalize, keeps_lists_with_other_items) {
    EXPECT_EQ(normalized("where id in (1, 2, a)"), "where id in (?, ?, a)");
    EXPECT_EQ(normalized("where id in (1, f(2))"), "where id in (?, f(?))");
    EXPECT_EQ(normalized("values (1,)"), "values (?,)");
    EXPECT_EQ(normalized("values (1 2)"), "values (? ?)");
}

TEST(normalize, keeps_rows_that_differ) {
    EXPECT_EQ(normalized("values (1, now()), (2, now())"), "values (?, now()), (?, now())");
    EXPECT_EQ(normalized("values (1), (a), (2)"), "values (?), (a), (?)");
    EXPECT_EQ(normalized("values (1), (2, 3) x, (4)"), "values (?) x, (?)");
    EXPECT_EQ(normalized("values (1), [2]"), "values (?), [?]");
}

TEST(normalize, does_not_merge_a_call_with_the_row_after_it) {
    EXPECT_EQ(normalized("select coalesce(1, 2), (3)"), "select coalesce(?), (?)");
}

TEST(normalize, writes_an_unfinished_list_in_full) {
    EXPECT_EQ(normalized("select * from t where id in (1, 2, 3"),
              "select * from t where id in (?, ?, ?");
    EXPECT_EQ(normalized("values (1), (2, 3"), "values (?), (?, ?");
}

TEST(normalize, collapses_lists_longer_than_the_length_bound) {
    std::string in = "select * from t where id in (";
    for (int i = 0; i < 5000; ++i) in += (i ? ", " : "") + std::to_string(100000 + i);
    in += ") and x = 1";
    EXPECT_EQ(normalized(in), "select * from t where id in (?) and x = ?");

    std::string rows = "insert into t (a, b) values ";
    for (int i = 0; i < 10000; ++i) rows += (i ? ", (" : "(") + std::to_string(i) + ", 'v')";
    EXPECT_EQ(normalized(rows), "insert into t(a, b) values (?)");
}

TEST(normalize, scans_a_long_chain_of_signs_once) {
    // Each `-` looks ahead for a number; a chain that ends in no number is looked at once, not
    // once per sign (which would be quadratic in the text).
    std::string chain = "select ";
    for (int i = 0; i < 200000; ++i) chain += "- ";
    EXPECT_EQ(normalized(chain + "x").substr(0, 13), "select - - - ");
    EXPECT_EQ(normalized(chain + "1"), "select ?");
    EXPECT_EQ(normalized(chain + "1::int").substr(0, 13), "select - - - ");
}

TEST(normalize, survives_deep_nesting) {
    const std::string in = std::string(500, '(') + "1, 2" + std::string(500, ')');
    const std::string out = normalized(in);
    EXPECT_LE(out.size(), statement_max_length);
    EXPECT_EQ(normalized(std::string(40, '(') + "1" + std::string(40, ')')),
              std::string(40, '(') + "?" + std::string(40, ')'));
}

// ---- unterminated text ----

TEST(normalize, runs_an_unterminated_string_to_the_end) {
    EXPECT_EQ(normalized("select a from t where b = 'abc"), "select a from t where b = ?");
    EXPECT_EQ(normalized("select E'abc\\'"), "select ?");
    EXPECT_EQ(normalized("select $tag$ abc $ta"), "select ?");
}

TEST(normalize, runs_an_unterminated_comment_to_the_end) {
    EXPECT_EQ(normalized("select a /* never /* closed */"), "select a");
    EXPECT_EQ(normalized("select a --"), "select a");
}

TEST(normalize, closes_an_unterminated_quoted_identifier) {
    EXPECT_EQ(normalized("select \"abc"), "select \"abc\"");
    EXPECT_EQ(normalized("select `abc"), "select `abc`");
}

// ---- length bound ----

TEST(normalize, cuts_long_statements_between_tokens_with_a_marker) {
    std::string full = "select c0";
    for (int i = 1; i < 400; ++i) full += ", c" + std::to_string(i);
    full += " from t";
    const std::string out = normalized(full);
    ASSERT_LE(out.size(), statement_max_length);
    ASSERT_GT(out.size(), statement_max_length - 10);
    ASSERT_EQ(out.substr(out.size() - 3), "...");
    const std::string kept = out.substr(0, out.size() - 3);
    EXPECT_EQ(full.compare(0, kept.size(), kept), 0);
    // The cut fell between tokens: after a whole column name or after its comma.
    EXPECT_TRUE(full[kept.size()] == ',' || full[kept.size()] == ' ') << kept;
    EXPECT_NE(kept.back(), ' ');
}

TEST(normalize, never_writes_beyond_a_small_cap) {
    EXPECT_EQ(normalized("select a, b from t", 12), "select a,...");
    EXPECT_EQ(normalized("select (aaaa, bbbb)", 12), "select (...");
    EXPECT_EQ(normalized("select a", 8), "select a");
    EXPECT_EQ(normalized("select a", 7), "...");
    EXPECT_EQ(normalized("select a", 2), "");
    for (std::size_t cap = 0; cap < 40; ++cap)
        normalized("select a, 'b', \"c\" from t where x in (1, 2)", cap);
}

TEST(normalize, accepts_a_null_buffer_with_zero_cap) {
    EXPECT_EQ(normalize_statement("select 1", nullptr, 0), 0u);
}

TEST(normalize, never_splits_a_utf8_sequence) {
    std::string in = "select ";
    for (int i = 0; i < 30; ++i) in += "näme€𝄞, ";
    in += "x from \"tâble\" where y = 'ü'";
    ASSERT_TRUE(valid_utf8(in));
    for (std::size_t cap = 0; cap <= in.size() + 4; ++cap) {
        const std::string out = normalized(in, cap);
        EXPECT_TRUE(valid_utf8(out)) << "cap " << cap << ": " << out;
    }
}

// ---- statements as ORMs write them ----

TEST(normalize, hibernate_statements) {
    EXPECT_EQ(normalized("select u1_0.id,u1_0.email,u1_0.name from users u1_0 where u1_0.id=?"),
              "select u1_0.id, u1_0.email, u1_0.name from users u1_0 where u1_0.id = ?");
    EXPECT_EQ(normalized("select o1_0.id from orders o1_0 where o1_0.user_id in (?,?,?,?,?)"),
              "select o1_0.id from orders o1_0 where o1_0.user_id in (?)");
}

TEST(normalize, django_statements) {
    EXPECT_EQ(
        normalized("SELECT \"auth_user\".\"id\", \"auth_user\".\"username\" FROM \"auth_user\" "
                   "WHERE \"auth_user\".\"id\" IN (1, 2, 3) ORDER BY \"auth_user\".\"id\" ASC "
                   "LIMIT 21"),
        "select \"auth_user\".\"id\", \"auth_user\".\"username\" from \"auth_user\" "
        "where \"auth_user\".\"id\" in (?) order by \"auth_user\".\"id\" asc limit ?");
}

TEST(normalize, active_record_statements) {
    EXPECT_EQ(normalized("SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" = $1 LIMIT $2 "
                         "/*action='show',controller='users'*/"),
              "select \"users\".* from \"users\" where \"users\".\"id\" = ? limit ?");
}

TEST(normalize, sequelize_statements) {
    EXPECT_EQ(normalized("INSERT INTO \"Users\" (\"id\",\"firstName\",\"createdAt\") VALUES "
                         "(DEFAULT,$1,$2) RETURNING \"id\",\"firstName\",\"createdAt\";"),
              "insert into \"Users\"(\"id\", \"firstName\", \"createdAt\") values (default, ?, ?) "
              "returning \"id\", \"firstName\", \"createdAt\"");
}

TEST(normalize, sqlalchemy_statements) {
    EXPECT_EQ(normalized("SELECT users.id AS users_id, users.name AS users_name \nFROM users \n"
                         "WHERE users.name = :name_1 AND users.id IN (:id_1_1, :id_1_2)"),
              "select users.id as users_id, users.name as users_name from users "
              "where users.name = ? and users.id in (?)");
}

TEST(normalize, prisma_statements) {
    EXPECT_EQ(normalized("SELECT \"public\".\"User\".\"id\" FROM \"public\".\"User\" WHERE "
                         "\"public\".\"User\".\"id\" IN ($1,$2,$3) OFFSET $4"),
              "select \"public\".\"User\".\"id\" from \"public\".\"User\" where "
              "\"public\".\"User\".\"id\" in (?) offset ?");
}

TEST(normalize, ecto_statements) {
    EXPECT_EQ(normalized("SELECT u0.\"id\" FROM \"users\" AS u0 WHERE (u0.\"id\" = ANY($1))"),
              "select u0.\"id\" from \"users\" as u0 where (u0.\"id\" = any(?))");
}

TEST(normalize, bulk_upserts) {
    EXPECT_EQ(normalized("INSERT INTO t (a,b) VALUES ($1,$2),($3,$4),($5,$6) "
                         "ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b"),
              "insert into t(a, b) values (?) on conflict(a) do update set b = excluded.b");
}

// ---- token-based grouping: a table per rule ----

struct pair_case {
    const char* a;
    const char* b;
};

/// Every pair normalises to the same text (and so the same fingerprint).
void expect_same(const std::vector<pair_case>& pairs) {
    for (const auto& p : pairs) {
        EXPECT_EQ(normalized(p.a), normalized(p.b)) << p.a << "  |  " << p.b;
        EXPECT_EQ(fp(p.a), fp(p.b)) << p.a << "  |  " << p.b;
    }
}

/// Every pair normalises to different texts and fingerprints.
void expect_different(const std::vector<pair_case>& pairs) {
    for (const auto& p : pairs) {
        EXPECT_NE(normalized(p.a), normalized(p.b)) << p.a << "  |  " << p.b;
        EXPECT_NE(fp(p.a), fp(p.b)) << p.a << "  |  " << p.b;
    }
}

TEST(grouping, ignores_whitespace_between_any_tokens) {
    expect_same({
        {"select * from t where id=1", "select * from t where id = 1"},
        {"select a,b from t", "select a , b from t"},
        {"select f(a,b)", "select f ( a , b )"},
        {"select t.a from s.t", "select t . a from s . t"},
        {"select x::int", "select x :: int"},
        {"select a[1]", "select a [ 1 ]"},
        {"select a||b, j->>'k', x<=y, x<>y", "select a || b, j ->> 'k', x <= y, x <> y"},
        {"select 1;select 2", "select 1 ; select 2"},
        {"update t set a=a+1 where id=$1", "update t\n\tset a = a + 1\r\n where id = $1"},
        {"select * from t where id in(1,2)", "select * from t where id in ( 1 , 2 )"},
        {"select count(*) from t", "select count ( * ) from t"},
    });
}

TEST(grouping, ignores_case_of_unquoted_words_only) {
    expect_same({
        {"SELECT A FROM T WHERE B IS NULL", "select a from t where b is null"},
        {"select x::INT from Public.T", "select x::int from public.t"},
        {"select E'x', B'1', X'f', N'n', U&'u'", "select e'x', b'1', x'f', n'n', u&'u'"},
        {"select U&\"a\"", "select u&\"a\""},
        {"select 1E3", "select 1e3"},
    });
    expect_different({
        {"select \"A\" from t", "select \"a\" from t"},
        {"select a from \"T\"", "select a from t"},
    });
}

TEST(grouping, drops_comments_as_token_separators) {
    expect_same({
        {"select a from t -- x", "select a from t"},
        {"select/**/a/* /* nested */ */from t", "select a from t"},
        {"select a --c\n, b from t", "select a, b from t"},
        {"select a from t where x = /* c */ -1", "select a from t where x = 1"},
    });
    expect_different({{"select a/**/b from t", "select ab from t"}});
}

TEST(grouping, replaces_literals_of_every_kind) {
    expect_same({
        {"select * from t where s = 'a'", "select * from t where s = E'b\\'c'"},
        {"select * from t where s = 'a'", "select * from t where s = $$x$$"},
        {"select * from t where s = 'a'", "select * from t where s = $q$it's$q$"},
        {"select * from t where s = 'a'", "select * from t where s = U&'\\0061'"},
        {"select * from t where b = B'101'", "select * from t where b = X'1F'"},
        {"select * from t where n = 1", "select * from t where n = 1.5e3"},
        {"select * from t where n = 1", "select * from t where n = .5"},
        {"select * from t where n = 1", "select * from t where n = 5."},
        {"select * from t where n = 1", "select * from t where n = 2.5E-10"},
        {"select * from t where n = 1", "select * from t where n = 0x1F"},
        {"select * from t where n = 1", "select * from t where n = $7"},
        {"select * from t where n = 1", "select * from t where n = :n"},
        {"select * from t where d > now() - interval '1 day'",
         "select * from t where d > now() - INTERVAL '2 hours'"},
        {"select * from t where d = date '2024-01-01'",
         "select * from t where d = DATE '1999-12-31'"},
        {"select '1'::int", "select '2' :: int"},
        {"select * from t where b = true", "select * from t where b = FALSE"},
        {"select * from t where n = null", "select * from t where n = 3"},
        {"select null", "select 'x'"},
        {"insert into t values (null, true)", "insert into t values (1, 2)"},
    });
    expect_different({
        {"select '1'::int", "select '1'::bigint"},
        {"select interval '1 day'", "select '1 day'"},
        {"select * from t where s = 'a'", "select * from t where s = N'n'"},
        {"select * from t where b is true", "select * from t where b = true"},
        {"select * from t where b is null", "select * from t where b = null"},
        {"select * from t where b is not null", "select * from t where b is null"},
        {"select * from t where b is distinct from null", "select * from t where b is null"},
    });
}

TEST(grouping, folds_a_sign_only_where_postgresql_makes_a_negative_constant) {
    expect_same({
        {"select * from t where n = -1", "select * from t where n = 1"},
        {"select * from t where n=-1", "select * from t where n = 1"},
        {"select * from t where n = - 1", "select * from t where n = 1"},
        {"select * from t where n = - - 1", "select * from t where n = 1"},
        {"select -1.5e3, f(-2)", "select 1, f(2)"},
        {"select * from t where n in (-1, -2)", "select * from t where n in (1)"},
        {"select * from t where n between -1 and -2", "select * from t where n between 1 and 2"},
        {"select case when a then -1 else -2 end", "select case when a then 1 else 2 end"},
        {"select * from t limit -1", "select * from t limit 1"},
        {"select * from t where n = a - -1", "select * from t where n = a - 1"},
    });
    expect_different({
        {"select a - 1 from t", "select a 1 from t"},
        {"select a -1 from t", "select a 1 from t"},
        {"select (a) - 1 from t", "select (a) 1 from t"},
        {"select 2 - 1", "select 2, 1"},
        {"select -1::int", "select 1::int"},
        {"select -x", "select x"},
        {"select +1", "select 1"},
    });
}

TEST(grouping, reads_operators_as_postgresql_splits_them) {
    expect_same({
        {"select * from t where a != 1", "select * from t where a <> 1"},
        {"select * from t where a<>-1", "select * from t where a <> 1"},
    });
    expect_different({
        {"select * from t where a <= 1", "select * from t where a < = 1"},
        {"select * from t where a || b", "select * from t where a | | b"},
        {"select j->>'a'", "select j->'a'"},
        {"select * from t where a @-1", "select * from t where a @ 1"},
    });
}

TEST(grouping, collapses_in_lists_and_values_rows) {
    expect_same({
        {"select * from t where id in (1)", "select * from t where id in (1, 2, 3)"},
        {"select * from t where id in ($1)", "select * from t where id in ($1, $2)"},
        {"insert into t values (1, 'a')", "insert into t values (1, 'a'), (2, 'b')"},
        {"insert into t values (1)", "insert into t values (1),(2),(3)"},
        {"select * from t where id = any(array[1])", "select * from t where id = any(array[1, 2])"},
    });
    expect_different({
        {"select * from t where id in (1)", "select * from t where id in (1, a)"},
        {"select * from t where id in (1)", "select * from t where id in (select 1)"},
    });
}

/// sql's tokens (sql_lexer) joined by sep, with unquoted words upper-cased when `upper`.
std::string respaced(std::string_view sql, std::string_view sep, bool upper) {
    std::string out;
    plugmon::detail::sql_lexer lexer(sql);
    plugmon::detail::sql_token t;
    while (lexer.next(t)) {
        if (!out.empty()) out += sep;
        std::string text(sql.substr(t.begin, t.end - t.begin));
        if (upper && t.kind == plugmon::detail::sql_token_kind::word)
            for (char& c : text) c = char(c >= 'a' && c <= 'z' ? c - 0x20 : c);
        out += text;
    }
    return out;
}

TEST(grouping, is_the_same_for_the_same_tokens_with_any_spacing_and_word_case) {
    const char* const statements[] = {
        "select u.id, count(*) from users u join orders o on o.uid=u.id where u.x in (1,2,3) "
        "and o.total>=-1.5e3 group by u.id having count(*)>2 order by 2 desc limit 10",
        "insert into t(a,b) values (1,'x'),(2,E'y\\'z') on conflict(a) do update set b=excluded.b",
        "update \"T\" set a=a||$$z$$, b=-b, c=- 1 where d::date=date '2024-01-01' and e is not "
        "null",
        "with c as (select 1 as x) select x::text[], a[1:2], f(p := :v), j->>'k', j#>'{a}' from c",
        "select -1::int, +2, 3 - -4, x!=5, y<>-6, z<=7, w=>8, 'a'||'b' ; select true, null",
        "delete from s.t where id = any(array[1, 2]) and (a, b) in ((1, 2), (3, 4)) returning *",
        "select \"a\".\"B\" from U&\"x\" where c = U&'\\0061' and d = B'1' and e = X'F' and f = "
        "N'n'",
    };
    const char* const separators[] = {" ", "\n\t ", " /* c */ ", " -- c\n",
                                      "  /* a /* b */ */\r\n"};
    for (const char* sql : statements) {
        const std::string want = normalized(sql);
        EXPECT_EQ(normalized(respaced(want, " ", false)), want) << sql;
        for (const char* sep : separators)
            for (const bool upper : {false, true})
                EXPECT_EQ(normalized(respaced(sql, sep, upper)), want)
                    << sql << "\n  variant: " << respaced(sql, sep, upper);
    }
}

// ---- fingerprint ----

TEST(fingerprint, is_equal_across_literal_changes) {
    const std::vector<std::pair<std::string, std::string>> same = {
        {"select * from t where id = 1", "SELECT *\n FROM t  WHERE id = 42;"},
        {"select * from t where id = $1", "select * from t where id = ?"},
        {"select * from t where id = :id", "select * from t where id = -7 -- note"},
        {"select * from t where name = 'a'", "select * from t where name = E'b\\'c'"},
        {"select * from t where id in (1)", "select * from t where id in (1, 2, 3, 4, 5, 6)"},
        {"insert into t values (1, 'a')", "insert into t values (1, 'a'), (2, 'b'), (3, 'c')"},
        {"select $$x$$", "select 'y'"},
        {"select * from T where X = 1", "select * from t where x = 2"},
    };
    for (const auto& [a, b] : same) EXPECT_EQ(fp(a), fp(b)) << a << " | " << b;
}

TEST(fingerprint, differs_across_shape_changes) {
    const std::vector<std::string> shapes = {
        "select * from t where id = 1",         "select * from t where id = 1 and x = 2",
        "select * from t where id > 1",         "select * from u where id = 1",
        "select a from t where id = 1",         "select * from \"T\" where id = 1",
        "select * from t where id in (1, a)",   "select * from t where id = x",
        "select * from t where id = 1 limit 1", "update t set a = 1 where id = 1",
        "delete from t where id = 1",           "insert into t values (1, now())",
        "select * from t where id = 1::int",    "",
    };
    std::set<std::uint64_t> seen;
    for (const auto& s : shapes) EXPECT_TRUE(seen.insert(fp(s)).second) << "collision: " << s;
}

TEST(fingerprint, is_never_zero) {
    EXPECT_NE(statement_fingerprint(""), 0u);
    for (int i = 0; i < 1000; ++i) EXPECT_NE(statement_fingerprint(std::to_string(i)), 0u);
}

TEST(fingerprint, is_stable_across_builds_and_versions) {
    // The agent stores fingerprints: these values may only change with a documented migration.
    EXPECT_EQ(statement_fingerprint("select ?"), 0x7fc58b13334873cbu);
    EXPECT_EQ(statement_fingerprint("select * from t where id in (?)"), 0x188948257f1b111fu);
}

TEST(fingerprint, spreads_similar_statements_over_the_low_bits) {
    // Statements differing in one character land in different buckets of a 256-bucket table.
    std::set<std::uint64_t> buckets;
    for (char c = 'a'; c <= 'z'; ++c)
        buckets.insert(statement_fingerprint(std::string("select ") + c) & 0xff);
    EXPECT_GE(buckets.size(), 20u);
}

}  // namespace
