// The C extension plugmon_sketch against its oracle, the PL/pgSQL sketch_*_plpgsql, and the agent's
// dd_sketch: bytes, quantiles, errors, parallel aggregation, fallback, upgrade from encoding 1.
#include <unistd.h>

#include <limits>
#include <map>

#include "sketch_cases.hpp"
#include "sql_support.hpp"

namespace {

using plugmon::agent::dd_sketch;
using plugmon::test::all_shapes;
using plugmon::test::bytea_literal;
using plugmon::test::random_sketch;
using plugmon::test::to_hex;

const std::string quantiles_sql =
    "ARRAY[0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.9999, 1, NULL, 'NaN', -1, 2]::double precision[]";

/// A database with every migration applied and the extension in use, or "" when the server does
/// not offer plugmon_sketch (see REQUIRE_EXTENSION).
std::string extension_database() {
    const std::string url = plugmon::test::migrated_database();
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    if (tx.exec("SELECT FROM pg_available_extensions WHERE name = 'plugmon_sketch'").empty())
        return {};
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_backend()")[0].as<std::string>(), "c")
        << "the migration should have installed the extension and routed the public names to it";
    return url;
}

// Skips when the extension is not installed and this user may not install it; as root (CI) the
// ctest fixture store_sketch_extension_install installs it, so its absence is a failure.
#define REQUIRE_EXTENSION(url)                                                                  \
    const std::string url = extension_database();                                               \
    if (url.empty()) {                                                                          \
        if (::geteuid() != 0)                                                                   \
            GTEST_SKIP() << "plugmon_sketch is not installed, and this user cannot install it"; \
        FAIL() << "plugmon_sketch is not installed in the server's directories (pg_config "     \
                  "--pkglibdir, --sharedir): run the tests through ctest (the fixture "         \
                  "store_sketch_extension_install installs it) or build the target "            \
                  "plugmon_sketch_extension_install";                                           \
    }

/// Sketches in groups, each encoded as version 1 or 2 at random; some NULL.
struct corpus {
    std::vector<std::optional<dd_sketch>> sketches;
    std::vector<int> version, group;
    std::map<int, dd_sketch> merged;
};

dd_sketch every_bucket() {  // one value in each of the 3776 buckets, UINT64_MAX included
    dd_sketch s;
    for (std::uint32_t i = 0; i < dd_sketch::index_limit; ++i) s.add(dd_sketch::lower_bound(i));
    s.add(std::numeric_limits<std::uint64_t>::max());
    return s;
}

corpus make_corpus(std::uint64_t seed, int count, int groups) {
    std::mt19937_64 rng(seed);
    corpus c;
    const int sizes[] = {0, 1, 2, 7, 200, 200, 200, 5000};
    for (int k = 0; k < count; ++k) {
        std::optional<dd_sketch> s;
        if (k % 97 == 5) {
            s = every_bucket();
        } else if (k % 53 == 7) {
            s.emplace();
            s->add(std::numeric_limits<std::uint64_t>::max(), 3);  // one bin at the very top
        } else if (k % 31 != 3) {                                  // else NULL
            s = random_sketch(rng, all_shapes[rng() % std::size(all_shapes)],
                              sizes[rng() % std::size(sizes)]);
        }
        c.group.push_back(static_cast<int>(rng() % static_cast<std::uint64_t>(groups)));
        c.version.push_back(rng() % 3 == 0 ? 1 : 2);
        if (s) c.merged[c.group.back()].merge(*s);
        c.sketches.push_back(std::move(s));
    }
    return c;
}

void load(pqxx::connection& conn, const corpus& c) {
    pqxx::work tx(conn);
    tx.exec("CREATE TABLE t (id integer PRIMARY KEY, grp integer NOT NULL, s bytea)");
    std::vector<std::string> rows;
    for (std::size_t k = 0; k < c.sketches.size(); ++k) {
        const auto& s = c.sketches[k];
        rows.push_back(
            std::to_string(k) + ", " + std::to_string(c.group[k]) + ", " +
            (s ? bytea_literal(s->encode(static_cast<std::uint8_t>(c.version[k]))) : "NULL"));
    }
    plugmon::test::insert_rows(tx, "t (id, grp, s)", rows);
    tx.exec("ANALYZE t");
    tx.commit();
}

std::string quantiles_of(const dd_sketch& s) {
    std::string out = "{";
    for (const double q : {0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.9999, 1.0})
        out += std::to_string(static_cast<long long>(s.quantile(q))) + ",";
    out += "NULL," + std::to_string(static_cast<long long>(s.quantile(std::nan("")))) + "," +
           std::to_string(static_cast<long long>(s.quantile(-1))) + "," +
           std::to_string(static_cast<long long>(s.quantile(2))) + "}";
    return out;
}

TEST(sketch_ext, merge_equals_the_plpgsql_oracle_and_the_agent_byte_for_byte) {
    REQUIRE_EXTENSION(url);
    pqxx::connection conn(url);
    const corpus c = make_corpus(11, 3000, 90);
    load(conn, c);
    pqxx::nontransaction tx(conn);
    tx.exec("SET max_parallel_workers_per_gather = 0");
    int groups = 0;
    for (const auto& row :
         tx.exec("SELECT grp, encode(plugmon_sketch.sketch_merge(s), 'hex'), "
                 "encode(plugmon.sketch_merge_plpgsql(s), "
                 "'hex'), plugmon_sketch.sketch_quantiles(plugmon_sketch.sketch_merge(s), " +
                 quantiles_sql +
                 ")::text, plugmon.sketch_quantiles_plpgsql(plugmon.sketch_merge_plpgsql(s), " +
                 quantiles_sql + ")::text FROM t GROUP BY grp")) {
        const dd_sketch& m = c.merged.at(row[0].as<int>());
        EXPECT_EQ(row[1].as<std::string>(), to_hex(m.encode(2))) << "group " << row[0].c_str();
        EXPECT_EQ(row[2].as<std::string>(), row[1].as<std::string>()) << "group " << row[0].c_str();
        EXPECT_EQ(row[3].as<std::string>(), quantiles_of(m)) << "group " << row[0].c_str();
        EXPECT_EQ(row[4].as<std::string>(), row[3].as<std::string>()) << "group " << row[0].c_str();
        ++groups;
    }
    EXPECT_EQ(groups, static_cast<int>(c.merged.size()));
    // Counts past 2^63 (negative as bigint) take the PL/pgSQL's exact path; same bytes everywhere.
    dd_sketch huge, small = plugmon::test::four_value_sketch();
    huge.add(1000, (std::uint64_t{1} << 63) + 1);
    huge.add(3);
    dd_sketch both = huge;
    both.merge(small);
    for (const int v : {1, 2}) {
        const std::string values = "(VALUES (" +
                                   bytea_literal(huge.encode(static_cast<std::uint8_t>(v))) +
                                   "), (" + bytea_literal(small.encode(1)) + ")) AS v (s)";
        const auto r = tx.exec1(
            "SELECT encode(plugmon_sketch.sketch_merge(s), 'hex'), "
            "encode(plugmon.sketch_merge_plpgsql(s), 'hex') FROM " +
            values);
        EXPECT_EQ(r[0].as<std::string>(), to_hex(both.encode(2))) << "version " << v;
        EXPECT_EQ(r[1].as<std::string>(), to_hex(both.encode(2))) << "version " << v;
    }
    // All NULL, and nothing: NULL in both.
    EXPECT_TRUE(
        tx.exec1("SELECT plugmon_sketch.sketch_merge(s) FROM t WHERE s IS NULL")[0].is_null());
    EXPECT_TRUE(tx.exec1("SELECT plugmon_sketch.sketch_merge(s) FROM t WHERE false")[0].is_null());
}

TEST(sketch_ext, scalar_functions_equal_the_oracle_on_every_sketch_and_pair) {
    REQUIRE_EXTENSION(url);
    pqxx::connection conn(url);
    const corpus c = make_corpus(12, 1500, 40);
    load(conn, c);
    pqxx::nontransaction tx(conn);
    int rows = 0;
    for (const auto& row :
         tx.exec("SELECT a.id, b.id, plugmon_sketch.sketch_union(a.s, b.s) IS NOT DISTINCT FROM "
                 "plugmon.sketch_union_plpgsql(a.s, b.s), plugmon_sketch.sketch_quantiles(a.s, " +
                 quantiles_sql + ") IS NOT DISTINCT FROM plugmon.sketch_quantiles_plpgsql(a.s, " +
                 quantiles_sql +
                 "), "
                 "plugmon_sketch.sketch_count(a.s) IS NOT DISTINCT FROM "
                 "plugmon.sketch_count_plpgsql(a.s), "
                 "plugmon_sketch.sketch_quantile(a.s, 0.95) IS NOT DISTINCT FROM "
                 "plugmon.sketch_quantile_plpgsql(a.s, 0.95), "
                 "plugmon_sketch.sketch_quantile(a.s, NULL) IS NULL, "
                 "encode(plugmon_sketch.sketch_union(a.s, b.s), 'hex') "
                 "FROM t AS a JOIN t AS b ON b.id = (a.id * 7 + 1) % 1500 ORDER BY a.id")) {
        const auto& a = c.sketches.at(row[0].as<std::size_t>());
        const auto& b = c.sketches.at(row[1].as<std::size_t>());
        for (int k = 2; k <= 6; ++k)
            EXPECT_TRUE(row[k].as<bool>()) << "column " << k << " ids " << row[0].c_str();
        if (a || b) {
            dd_sketch ab = a ? *a : dd_sketch();
            if (b) ab.merge(*b);
            EXPECT_EQ(row[7].as<std::string>(), to_hex(ab.encode(2))) << row[0].c_str();
        } else {
            EXPECT_TRUE(row[7].is_null());
        }
        ++rows;
    }
    EXPECT_EQ(rows, 1500);
}

TEST(sketch_ext, malformed_inputs_raise_the_oracles_error) {
    REQUIRE_EXTENSION(url);
    pqxx::connection conn(url);
    const std::string good = bytea_literal(plugmon::test::four_value_sketch().encode());
    auto error_of = [&conn](const std::string& sql) -> std::pair<std::string, std::string> {
        pqxx::nontransaction tx(conn);
        try {
            tx.exec(sql);
        } catch (const pqxx::sql_error& e) {
            const std::string what = e.what();
            return {what.substr(0, what.find('\n')), e.sqlstate()};
        }
        return {"no error", ""};
    };
    for (const auto& bad : plugmon::test::malformed_sketches()) {
        const std::string lit = bytea_literal(bad.bytes);
        const std::pair<std::string, std::string> calls[] = {
            {"plugmon_sketch.sketch_merge(s) FROM (VALUES (" + good + "), (" + lit + ")) v (s)",
             "plugmon.sketch_merge_plpgsql(s) FROM (VALUES (" + good + "), (" + lit + ")) v (s)"},
            {"plugmon_sketch.sketch_union(" + good + ", " + lit + ")",
             "plugmon.sketch_union_plpgsql(" + good + ", " + lit + ")"},
            {"plugmon_sketch.sketch_quantiles(" + lit + ", '{0.5}')",
             "plugmon.sketch_quantiles_plpgsql(" + lit + ", '{0.5}')"},
            {"plugmon_sketch.sketch_quantile(" + lit + ", NULL)",
             "plugmon.sketch_quantile_plpgsql(" + lit + ", NULL)"},
            {"plugmon_sketch.sketch_count(" + lit + ")",
             "plugmon.sketch_count_plpgsql(" + lit + ")"}};
        for (const auto& [c_call, oracle_call] : calls) {
            const auto c_error = error_of("SELECT " + c_call);
            const auto oracle_error = error_of("SELECT " + oracle_call);
            EXPECT_EQ(c_error, oracle_error) << bad.what << ": " << c_call;
            EXPECT_EQ(c_error.second, "22P03") << bad.what << ": " << c_error.first;
            EXPECT_NE(c_error.first.find("plugmon sketch: " + bad.field + ": "), std::string::npos)
                << bad.what << ": " << c_error.first;
        }
    }
}

TEST(sketch_ext, parallel_aggregation_is_planned_and_gives_the_same_bytes) {
    REQUIRE_EXTENSION(url);
    pqxx::connection conn(url);
    const corpus c = make_corpus(13, 8000, 4);
    load(conn, c);
    pqxx::nontransaction tx(conn);
    dd_sketch all;
    for (const auto& [g, m] : c.merged) all.merge(m);
    const std::string serial =
        tx.exec1("SELECT encode(plugmon.sketch_merge_plpgsql(s), 'hex') FROM t")[0]
            .as<std::string>();
    EXPECT_EQ(serial, to_hex(all.encode(2)));
    tx.exec(
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET "
        "min_parallel_table_scan_size = 0; "
        "SET max_parallel_workers_per_gather = 2");
    for (const std::string agg : {"plugmon_sketch.sketch_merge", "plugmon.sketch_merge"}) {
        std::string plan;
        for (const auto& r :
             tx.exec("EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) SELECT " + agg + "(s) FROM t"))
            plan += r[0].as<std::string>() + "\n";
        EXPECT_NE(plan.find("Partial Aggregate"), std::string::npos) << plan;
        EXPECT_NE(plan.find("Workers Launched: 2"), std::string::npos) << plan;
        EXPECT_EQ(tx.exec1("SELECT encode(" + agg + "(s), 'hex') FROM t")[0].as<std::string>(),
                  serial)
            << agg;
    }
    // Grouped, with the groups split across workers.
    for (const auto& r :
         tx.exec("SELECT grp, encode(plugmon_sketch.sketch_merge(s), 'hex') FROM t GROUP BY grp"))
        EXPECT_EQ(r[1].as<std::string>(), to_hex(c.merged.at(r[0].as<int>()).encode(2)))
            << r[0].c_str();
}

TEST(sketch_ext, public_names_fall_back_to_plpgsql_without_the_extension) {
    REQUIRE_EXTENSION(url);
    pqxx::connection conn(url);
    pqxx::nontransaction tx(conn);
    dd_sketch a = plugmon::test::four_value_sketch(), b;
    b.add(77, 5);
    const std::string la = bytea_literal(a.encode(1)), lb = bytea_literal(b.encode(2));
    dd_sketch ab = a;
    ab.merge(b);
    const std::string probe =
        "SELECT encode(plugmon.sketch_merge(s), 'hex'), encode(plugmon.sketch_union(" + la + ", " +
        lb + "), 'hex'), plugmon.sketch_quantile(" + la + ", 0.5), plugmon.sketch_count(" + lb +
        "), (plugmon.sketch_quantiles(" + lb + ", '{1}'))[1] FROM (VALUES (" + la + "), (" + lb +
        ")) v (s)";
    auto check = [&](const char* when) {
        const auto r = tx.exec1(probe);
        EXPECT_EQ(r[0].as<std::string>(), to_hex(ab.encode(2))) << when;
        EXPECT_EQ(r[1].as<std::string>(), to_hex(ab.encode(2))) << when;
        EXPECT_EQ(r[2].as<long long>(), static_cast<long long>(a.quantile(0.5))) << when;
        EXPECT_EQ(r[3].as<long long>(), 5) << when;
        EXPECT_EQ(r[4].as<long long>(), 77) << when;
    };
    check("with the extension");
    // While the public names use it, the extension cannot be dropped by mistake.
    EXPECT_THROW(tx.exec("DROP EXTENSION plugmon_sketch"), pqxx::sql_error);
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_backend('plpgsql')")[0].as<std::string>(), "plpgsql");
    tx.exec("DROP EXTENSION plugmon_sketch");
    tx.exec("DROP SCHEMA plugmon_sketch");
    check("after DROP EXTENSION");
    const auto catalog = tx.exec1(
        "SELECT a.aggcombinefn::text, p.proparallel FROM pg_aggregate a JOIN pg_proc p ON p.oid = "
        "a.aggfnoid "
        "WHERE a.aggfnoid = 'plugmon.sketch_merge(bytea)'::regprocedure");
    EXPECT_EQ(catalog[0].as<std::string>(), "array_cat");
    EXPECT_EQ(catalog[1].as<std::string>(), "s");
    EXPECT_THROW(tx.exec("SELECT plugmon.sketch_backend('c')"), pqxx::sql_error);
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_backend()")[0].as<std::string>(), "plpgsql");
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_backend('auto')")[0].as<std::string>(), "c");
    check("after sketch_backend('auto') reinstalled it");
}

TEST(sketch_ext, an_agent_start_takes_an_extension_installed_after_the_migration) {
    REQUIRE_EXTENSION(url);
    pqxx::connection c(url);
    {
        pqxx::nontransaction tx(c);  // as a database migrated before the extension was there
        EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_backend('plpgsql')")[0].as<std::string>(),
                  "plpgsql");
    }
    const auto first =
        plugmon::agent::store::prefer_sketch_extension(c, plugmon::agent::store::schema_version(c));
    EXPECT_EQ(first.backend, "c");
    EXPECT_TRUE(first.switched);
    const auto again =
        plugmon::agent::store::prefer_sketch_extension(c, plugmon::agent::store::schema_version(c));
    EXPECT_EQ(again.backend, "c");
    EXPECT_FALSE(again.switched) << "a start on C leaves the functions as they are";
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_quantile(plugmon.sketch_merge(s), 0.5) FROM (VALUES "
                       "('\\x504d4453020601010101010101'::bytea)) AS t(s)")[0]
                  .as<long long>(),
              1);
}

TEST(sketch_ext, a_role_that_is_not_superuser_installs_it_and_the_aggregate_runs_in_c) {
    REQUIRE_EXTENSION(admin_url);
    const std::string url = plugmon::test::fresh_database();
    const std::string db = url.substr(url.rfind('/') + 1, url.find('?') - url.rfind('/') - 1);
    {
        pqxx::connection admin(admin_url);
        pqxx::nontransaction tx(admin);
        tx.exec("CREATE ROLE plugmon_agent_not_super LOGIN NOSUPERUSER PASSWORD 'agent-pw'");
        tx.exec("ALTER DATABASE " + tx.quote_name(db) + " OWNER TO plugmon_agent_not_super");
    }
    const auto at = url.find("://") + 3;
    pqxx::connection c(url.substr(0, at) + "plugmon_agent_not_super:agent-pw" +
                       url.substr(url.find('@', at)));
    plugmon::agent::store::migrate(c, false, "test");
    const corpus k = make_corpus(15, 300, 1);
    load(c, k);
    pqxx::nontransaction tx(c);
    EXPECT_FALSE(
        tx.exec1("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0].as<bool>());
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_backend()")[0].as<std::string>(), "c");
    EXPECT_EQ(tx.exec1("SELECT a.aggtransfn::regproc::text FROM pg_aggregate a WHERE a.aggfnoid = "
                       "'plugmon.sketch_merge(bytea)'::regprocedure")[0]
                  .as<std::string>(),
              "plugmon_sketch.merge_trans");
    EXPECT_EQ(tx.exec1("SELECT encode(plugmon.sketch_merge(s), 'hex') FROM t")[0].as<std::string>(),
              to_hex(k.merged.at(0).encode(2)));
    // The merge state is a bytea anyone can hand the functions: a forged one is refused.
    for (const std::string call : {"plugmon_sketch.merge_final('\\x00000000')",
                                   "plugmon_sketch.merge_final(decode(repeat('ff', 80), 'hex'))"}) {
        try {
            tx.exec("SELECT " + call);
            ADD_FAILURE() << "no error from " << call;
        } catch (const pqxx::sql_error& e) {
            EXPECT_EQ(e.sqlstate(), "22P03") << e.what();
        }
    }
}

TEST(sketch_ext, migration_6_upgrades_a_database_with_version_1_rows) {
    REQUIRE_EXTENSION(url0);
    const std::string url = plugmon::test::fresh_database();
    pqxx::connection conn(url);
    {  // The schema as an agent before migration 6 left it, with its bookkeeping.
        pqxx::work tx(conn);
        tx.exec(
            "CREATE SCHEMA plugmon; CREATE TABLE plugmon.schema_migrations (version integer "
            "PRIMARY KEY, "
            "name text NOT NULL, checksum bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT "
            "now(), "
            "agent_version text NOT NULL)");
        for (const auto& m : plugmon::agent::store::embedded_migrations()) {
            if (m.version >= 6) break;
            tx.exec(m.sql);
            tx.exec_params(
                "INSERT INTO plugmon.schema_migrations (version, name, checksum, agent_version) "
                "VALUES ($1, $2, $3, 'old')",
                m.version, m.name, static_cast<long long>(m.checksum));
        }
        tx.exec("SELECT plugmon.ensure_partitions('2026-03-01', '2026-03-01')");
        std::mt19937_64 rng(14);
        std::vector<std::string> rows;
        for (int k = 0; k < 120; ++k) {
            const dd_sketch s = random_sketch(rng, plugmon::test::shape::lognormal, 1 + k);
            rows.push_back("'2026-03-01 10:00:00+00'::timestamptz + " + std::to_string(k * 10) +
                           " * interval '1 second', 10, 'h', 'p', 'SELECT', 't', '', " +
                           std::to_string(s.count()) + ", 0, 0, " + std::to_string(s.sum()) + ", " +
                           std::to_string(s.min()) + ", " + std::to_string(s.max()) +
                           ", 0, 0, 0, " + bytea_literal(s.encode(1)));
        }
        plugmon::test::insert_rows(
            tx,
            "plugmon.query_rollups (bucket_start, bucket_seconds, host, plugin, op, tbl, "
            "tenant, calls, errors, rows, total_ns, min_ns, max_ns, p50_ns, p95_ns, p99_ns, "
            "sketch)",
            rows);
        tx.commit();
    }
    const auto report = plugmon::agent::store::migrate(conn, false, "test");
    EXPECT_EQ(report.from_version, 5);
    pqxx::nontransaction tx(conn);
    EXPECT_EQ(tx.exec1("SELECT plugmon.sketch_backend()")[0].as<std::string>(), "c");
    const std::string merged_c = tx.exec1(
                                       "SELECT encode(plugmon.sketch_merge(sketch ORDER BY "
                                       "bucket_start), 'hex') FROM plugmon.query_rollups")[0]
                                     .as<std::string>();
    EXPECT_EQ(merged_c, tx.exec1("SELECT encode(plugmon.sketch_merge_plpgsql(sketch), 'hex') FROM "
                                 "plugmon.query_rollups")[0]
                            .as<std::string>());
    EXPECT_EQ(merged_c.substr(0, 12), "504d44530206");  // version 2
    // Downsampling the v1 day writes a version 2 hourly sketch equal to the merge.
    tx.exec(
        "SELECT * FROM plugmon.maintain('2026-03-05 00:00:00+00', 1, interval '1 day', interval "
        "'30 days')");
    EXPECT_EQ(
        tx.exec1(
              "SELECT encode(plugmon.sketch_merge(sketch), 'hex') FROM plugmon.query_rollups_1h")[0]
            .as<std::string>(),
        merged_c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM plugmon.query_rollups_1h WHERE substring(sketch FROM "
                       "5 FOR 1) <> '\\x02'")[0]
                  .as<int>(),
              0);
}

}  // namespace
