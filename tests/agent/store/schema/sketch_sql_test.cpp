// The SQL sketch functions against the agent's own dd_sketch: merge bytes, quantiles, union, bad input.
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>

#include "sketch_cases.hpp"
#include "sql_support.hpp"

namespace {

using plugmon::agent::dd_sketch;
using plugmon::test::all_shapes;
using plugmon::test::bytea_literal;
using plugmon::test::migrated_database;
using plugmon::test::random_sketch;
using plugmon::test::shape;
using plugmon::test::to_hex;

constexpr double quantiles[] = {0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1};
const std::string quantiles_sql = "ARRAY[0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1]::double precision[]";

/// Sketches in groups: every shape, sizes from 0 (empty) and 1 (single value) up to 3000 values.
struct corpus {
    std::vector<dd_sketch> sketches;
    std::vector<int> group;  // groups mix shapes, so merges span distant bins
    std::map<int, dd_sketch> merged;
};

corpus make_corpus(std::uint64_t seed, int count, int groups) {
    std::mt19937_64 rng(seed);
    corpus c;
    const int sizes[] = {0, 1, 2, 5, 30, 200, 3000};
    for (int k = 0; k < count; ++k) {
        const shape s = all_shapes[rng() % std::size(all_shapes)];
        const int n = sizes[rng() % std::size(sizes)];
        c.sketches.push_back(random_sketch(rng, s, n));
        c.group.push_back(static_cast<int>(rng() % static_cast<std::uint64_t>(groups)));
        c.merged[c.group.back()].merge(c.sketches.back());
    }
    return c;
}

void load(pqxx::connection& conn, const corpus& c) {
    pqxx::work tx(conn);
    tx.exec("CREATE TABLE t (id integer PRIMARY KEY, grp integer NOT NULL, s bytea)");
    std::vector<std::string> rows;
    for (std::size_t k = 0; k < c.sketches.size(); ++k)
        rows.push_back(std::to_string(k) + ", " + std::to_string(c.group[k]) + ", " +
                       bytea_literal(c.sketches[k].encode()));
    plugmon::test::insert_rows(tx, "t (id, grp, s)", rows);
    tx.exec("ANALYZE t");
    tx.commit();
}

std::vector<long long> as_signed(const dd_sketch& s) {
    std::vector<long long> v;
    for (const double q : quantiles) v.push_back(static_cast<long long>(s.quantile(q)));
    return v;
}

std::vector<long long> parse_array(const pqxx::field& f) {
    std::vector<long long> v;
    auto parser = f.as_array();
    for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done;
         std::tie(kind, value) = parser.get_next())
        if (kind == pqxx::array_parser::string_value) v.push_back(std::stoll(value));
    return v;
}

TEST(sketch_sql, merge_is_byte_identical_to_the_agents_merge_and_encode) {
    pqxx::connection conn(migrated_database());
    const corpus c = make_corpus(1, 1500, 60);
    load(conn, c);
    pqxx::nontransaction tx(conn);
    int seen = 0;
    for (const auto& row : tx.exec("SELECT grp, encode(plugmon.sketch_merge(s), 'hex') FROM t GROUP BY grp")) {
        const int g = row[0].as<int>();
        EXPECT_EQ(row[1].as<std::string>(), to_hex(c.merged.at(g).encode())) << "group " << g;
        ++seen;
    }
    EXPECT_EQ(seen, static_cast<int>(c.merged.size()));

    dd_sketch all;
    for (const auto& s : c.sketches) all.merge(s);
    EXPECT_EQ(tx.exec1("SELECT encode(plugmon.sketch_merge(s), 'hex') FROM t")[0].as<std::string>(),
              to_hex(all.encode()));
    // Every single sketch merged alone re-encodes to itself.
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM t WHERE (SELECT plugmon.sketch_merge(x) FROM (VALUES (s)) v (x)) <> s")[0]
                  .as<int>(),
              0);
    // The sum saturates like the agent's (top_of_u64 sketches overflow 64 bits).
    EXPECT_EQ(all.sum(), std::numeric_limits<std::uint64_t>::max());
}

TEST(sketch_sql, merge_of_empty_sketches_is_empty_and_of_nothing_is_null) {
    pqxx::connection conn(migrated_database());
    pqxx::nontransaction tx(conn);
    const std::string empty = bytea_literal(dd_sketch().encode());
    EXPECT_EQ(tx.exec1("SELECT encode(plugmon.sketch_merge(s), 'hex') FROM (VALUES (" + empty + "), (NULL), (" +
                       empty + ")) v (s)")[0]
                  .as<std::string>(),
              to_hex(dd_sketch().encode()));
    EXPECT_TRUE(tx.exec1("SELECT plugmon.sketch_merge(s) FROM (VALUES (NULL::bytea)) v (s)")[0].is_null());
    EXPECT_TRUE(tx.exec1("SELECT plugmon.sketch_merge(s) FROM (VALUES ('\\x'::bytea)) v (s) WHERE false")[0].is_null());
    dd_sketch one;
    one.add(42);
    EXPECT_EQ(tx.exec1("SELECT encode(plugmon.sketch_merge(s), 'hex') FROM (VALUES (" + empty + "), (" +
                       bytea_literal(one.encode()) + ")) v (s)")[0]
                  .as<std::string>(),
              to_hex(one.encode()));
}

TEST(sketch_sql, quantiles_equal_the_agents_on_single_and_merged_sketches) {
    pqxx::connection conn(migrated_database());
    const corpus c = make_corpus(2, 1200, 40);
    load(conn, c);
    pqxx::nontransaction tx(conn);
    for (const auto& row : tx.exec("SELECT id, plugmon.sketch_quantiles(s, " + quantiles_sql +
                                   "), plugmon.sketch_count(s), plugmon.sketch_quantile(s, 0.99), "
                                   "plugmon.sketch_quantile(s, 'NaN'), plugmon.sketch_quantile(s, -3), "
                                   "plugmon.sketch_quantile(s, 7) FROM t ORDER BY id")) {
        const dd_sketch& s = c.sketches.at(row[0].as<std::size_t>());
        EXPECT_EQ(parse_array(row[1]), as_signed(s)) << "sketch " << row[0].c_str();
        EXPECT_EQ(row[2].as<long long>(), static_cast<long long>(s.count()));
        EXPECT_EQ(row[3].as<long long>(), static_cast<long long>(s.quantile(0.99)));
        EXPECT_EQ(row[4].as<long long>(), static_cast<long long>(s.quantile(std::nan(""))));
        EXPECT_EQ(row[5].as<long long>(), static_cast<long long>(s.quantile(-3)));
        EXPECT_EQ(row[6].as<long long>(), static_cast<long long>(s.quantile(7)));
    }
    int groups = 0;
    for (const auto& row : tx.exec("SELECT grp, plugmon.sketch_quantiles(plugmon.sketch_merge(s), " + quantiles_sql +
                                   ") FROM t GROUP BY grp")) {
        EXPECT_EQ(parse_array(row[1]), as_signed(c.merged.at(row[0].as<int>()))) << "group " << row[0].c_str();
        ++groups;
    }
    EXPECT_EQ(groups, static_cast<int>(c.merged.size()));
    // Dense quantiles on one big merged sketch: every rank boundary the walk can hit.
    dd_sketch all;
    for (const auto& s : c.sketches) all.merge(s);
    for (int k = 1; k < 1000; k += 7) {
        const double q = k / 1000.0;
        EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_quantile(plugmon.sketch_merge(s), " + std::to_string(q) +
                           "::double precision) FROM t")[0]
                      .as<long long>(),
                  static_cast<long long>(all.quantile(std::stod(std::to_string(q)))))
            << "q " << q;
    }
    EXPECT_TRUE(tx.exec1("SELECT plugmon.sketch_quantile(NULL, 0.5)")[0].is_null());
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_quantile(" + bytea_literal(dd_sketch().encode()) + ", 0.5)")[0]
                  .as<long long>(),
              0);
}

TEST(sketch_sql, union_equals_the_agents_merge_and_tolerates_null) {
    pqxx::connection conn(migrated_database());
    std::mt19937_64 rng(3);
    pqxx::nontransaction tx(conn);
    for (int k = 0; k < 60; ++k) {
        const dd_sketch a = random_sketch(rng, all_shapes[k % std::size(all_shapes)], k % 5 == 0 ? 0 : 1 + k * 13);
        const dd_sketch b = random_sketch(rng, all_shapes[(k / 2) % std::size(all_shapes)], k % 7 == 0 ? 0 : 2 + k);
        dd_sketch ab = a;
        ab.merge(b);
        const auto r = tx.exec1("SELECT encode(plugmon.sketch_union(" + bytea_literal(a.encode()) + ", " +
                                bytea_literal(b.encode()) + "), 'hex'), encode(plugmon.sketch_union(" +
                                bytea_literal(a.encode()) + ", NULL), 'hex'), encode(plugmon.sketch_union(NULL, " +
                                bytea_literal(b.encode()) + "), 'hex')");
        EXPECT_EQ(r[0].as<std::string>(), to_hex(ab.encode())) << k;
        EXPECT_EQ(r[1].as<std::string>(), to_hex(a.encode())) << k;
        EXPECT_EQ(r[2].as<std::string>(), to_hex(b.encode())) << k;
    }
    EXPECT_TRUE(tx.exec1("SELECT plugmon.sketch_union(NULL, NULL)")[0].is_null());
}

TEST(sketch_sql, malformed_sketches_raise_an_error_naming_the_field) {
    pqxx::connection conn(migrated_database());
    const std::string good = plugmon::test::four_value_sketch().encode();
    for (const auto& bad : plugmon::test::malformed_sketches()) {
        const std::string lit = bytea_literal(bad.bytes);
        const std::vector<std::string> calls = {
            "plugmon.sketch_quantile(" + lit + ", 0.999)", "plugmon.sketch_merge(s) FROM (VALUES (" + lit + ")) v (s)",
            "plugmon.sketch_union(" + lit + ", " + bytea_literal(good) + ")", "plugmon.sketch_count(" + lit + ")"};
        for (const auto& call : calls) {
            pqxx::nontransaction tx(conn);
            try {
                tx.exec("SELECT " + call);
                ADD_FAILURE() << bad.what << ": no error from " << call;
            } catch (const pqxx::sql_error& e) {
                EXPECT_NE(std::string(e.what()).find("plugmon sketch: " + bad.field + ": "), std::string::npos)
                    << bad.what << ": " << call << ": " << e.what();
                EXPECT_EQ(e.sqlstate(), "22P03") << e.what();
            }
        }
    }
}

TEST(sketch_sql, version_1_and_2_inputs_mix_and_the_merge_writes_version_2) {
    pqxx::connection conn(migrated_database());
    std::mt19937_64 rng(5);
    pqxx::nontransaction tx(conn);
    for (int k = 0; k < 40; ++k) {
        const dd_sketch a = random_sketch(rng, all_shapes[k % std::size(all_shapes)], k % 9 == 0 ? 0 : 1 + k * 7);
        const dd_sketch b = random_sketch(rng, all_shapes[(k / 3) % std::size(all_shapes)], 3 + k);
        dd_sketch ab = a;
        ab.merge(b);
        const std::string a1 = bytea_literal(a.encode(1)), b2 = bytea_literal(b.encode(2));
        const auto r = tx.exec1("SELECT encode(plugmon.sketch_merge(s), 'hex'), encode(plugmon.sketch_union(" + a1 +
                                ", NULL), 'hex'), plugmon.sketch_quantiles(" + a1 + ", " + quantiles_sql +
                                "), plugmon.sketch_count(" + a1 + ") FROM (VALUES (" + a1 + "), (" + b2 + ")) v (s)");
        EXPECT_EQ(r[0].as<std::string>(), to_hex(ab.encode(2))) << k;
        EXPECT_EQ(r[1].as<std::string>(), to_hex(a.encode(2))) << k;
        EXPECT_EQ(parse_array(r[2]), as_signed(a)) << k;
        EXPECT_EQ(r[3].as<long long>(), static_cast<long long>(a.count())) << k;
    }
}

// Measures (and prints) the fleet-p99 query over 10 000 sketches; checks its answer, not its time.
TEST(sketch_sql, fleet_p99_over_10000_sketches_matches_the_agent) {
    pqxx::connection conn(migrated_database());
    std::mt19937_64 rng(4);
    corpus c;
    dd_sketch all;
    for (int k = 0; k < 10000; ++k) {  // one plugin's 10-second windows: a few hundred calls each
        c.sketches.push_back(random_sketch(rng, k % 3 == 0 ? shape::bimodal : shape::lognormal, 50 + k % 400));
        c.group.push_back(0);
        all.merge(c.sketches.back());
    }
    load(conn, c);
    pqxx::nontransaction tx(conn);
    tx.exec("SELECT plugmon.sketch_merge(s) FROM t");  // warm the caches
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = tx.exec1("SELECT plugmon.sketch_quantile(plugmon.sketch_merge(s), 0.99) FROM t");
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r[0].as<long long>(), static_cast<long long>(all.quantile(0.99)));
    const auto bytes = tx.exec1("SELECT avg(length(s)) FROM t")[0].as<double>();
    std::printf("sketch_merge + sketch_quantile over 10000 sketches (%.0f bytes each on average): %.0f ms\n", bytes, ms);
    RecordProperty("merge_10000_ms", std::to_string(ms));
}

}  // namespace
