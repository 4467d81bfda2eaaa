// The Citus rules checked from pg_catalog on plain PostgreSQL 15, for the tables deploy/citus.sql distributes.
//
// The list of tables comes from deploy/citus.sql itself (its create_distributed_table and
// create_reference_table calls), so the document and the check cannot drift apart. The rules
// (../shared/reference/scale.md §4.2, from the Citus documentation): every primary key, unique
// constraint, unique index and exclusion constraint of a distributed table, and of each of its
// partitions, contains the distribution column (and, on a partitioned table, the partition key);
// colocated tables share the type and collation of their distribution column, and the ledger is
// in the group; foreign keys never point from a reference or local table to a distributed one; no
// distributed table takes a default from a sequence; every plugmon aggregate has a combine
// function (serial/deserial ones for an internal state) and is PARALLEL SAFE. A second test runs
// the same lint over a deliberately broken schema and list, and checks each violation is reported.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "sql_support.hpp"

namespace {

using plugmon::test::migrated_database;

/// One create_distributed_table or create_reference_table call of deploy/citus.sql.
struct placement {
    std::string table;          // schema-qualified, as written
    std::string column;         // distribution column; empty for a reference table
    std::string colocate_with;  // as written; "none" or empty when it starts a group
};

struct citus_plan {
    std::vector<placement> distributed;
    std::vector<std::string> reference;
    std::vector<std::string> unparsed;  // calls in a form this parser does not know
};

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// `sql` without its -- comments (the file has no "--" inside string literals).
std::string strip_comments(const std::string& sql) {
    std::string out;
    std::istringstream in(sql);
    for (std::string line; std::getline(in, line);) out += line.substr(0, line.find("--")) + "\n";
    return out;
}

/// Every call of create_distributed_table / create_reference_table outside comments. A call that
/// does not have one of the two exact shapes below lands in `unparsed`, so it is never skipped.
citus_plan parse_citus_sql(const std::string& sql) {
    static const std::regex call(R"(create_(distributed|reference)_table)", std::regex::icase);
    static const std::regex distributed(
        R"(create_distributed_table\(\s*'([^']+)'\s*,\s*'([^']+)'\s*(?:,\s*colocate_with\s*=>\s*'([^']+)'\s*)?\))",
        std::regex::icase);
    static const std::regex reference(R"(create_reference_table\(\s*'([^']+)'\s*\))",
                                      std::regex::icase);
    citus_plan plan;
    const std::string text = strip_comments(sql);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), call);
         it != std::sregex_iterator(); ++it) {
        const auto at = text.begin() + it->position();
        std::smatch m;
        if (std::regex_search(at, text.end(), m, distributed,
                              std::regex_constants::match_continuous))
            plan.distributed.push_back({m[1], m[2], m[3]});
        else if (std::regex_search(at, text.end(), m, reference,
                                   std::regex_constants::match_continuous))
            plan.reference.push_back(m[1]);
        else
            plan.unparsed.push_back(text.substr(it->position(), 80));
    }
    return plan;
}

/// The table $1 and every partition below it (pg_partition_tree alone is empty for a plain table).
constexpr const char* tree_cte =
    "WITH plugmon_lint_tree AS (SELECT $1::regclass AS relid "
    "UNION SELECT relid FROM pg_partition_tree($1::regclass))";

std::string citus_sql_path() { return std::string(PLUGMON_SOURCE_DIR) + "/deploy/citus.sql"; }

/// Reads the catalog and lists every way the database breaks the Citus rules for `plan`, as
/// "<table>: <rule>: <detail>". `aggregate_schema`'s aggregates are checked; `ledger` must be
/// distributed and colocated with every distributed table.
class citus_lint {
public:
    citus_lint(pqxx::connection& c, citus_plan plan, std::string aggregate_schema,
               std::string ledger)
        : tx_(c), plan_(std::move(plan)), aggregate_schema_(std::move(aggregate_schema)),
          ledger_(std::move(ledger)) {}

    std::vector<std::string> run() {
        for (const auto& u : plan_.unparsed) report("deploy/citus.sql", "unparsed call", u);
        for (const auto& p : plan_.distributed) check_distributed(p);
        for (const auto& r : plan_.reference) check_exists(r, "");
        check_colocation();
        check_foreign_keys();
        check_aggregates();
        return violations_;
    }

    /// How many unique keys run() examined, partitions included.
    int keys_checked() const { return keys_checked_; }

private:
    void report(const std::string& table, const std::string& rule, const std::string& detail) {
        violations_.push_back(table + ": " + rule + ": " + detail);
    }

    bool check_exists(const std::string& table, const std::string& column) {
        if (tx_.exec_params1("SELECT to_regclass($1) IS NULL", table)[0].as<bool>()) {
            report(table, "missing table", "named in deploy/citus.sql but not in the database");
            return false;
        }
        if (!column.empty() && !has_column(table, column)) {
            report(table, "missing distribution column", column);
            return false;
        }
        return true;
    }

    bool has_column(const std::string& table, const std::string& column) {
        return tx_
            .exec_params1(
                "SELECT count(*) > 0 FROM pg_attribute WHERE attrelid = $1::regclass "
                "AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                table, column)[0]
            .as<bool>();
    }

    void check_distributed(const placement& p) {
        if (!check_exists(p.table, p.column)) return;
        check_unique_keys(p);
        check_sequences(p);
    }

    /// Every unique or exclusion index of the table and of all its partitions (indexes that back
    /// PRIMARY KEY and UNIQUE constraints included) holds the distribution column, and on a
    /// partitioned table every partition key column of that table.
    void check_unique_keys(const placement& p) {
        const auto rows = tx_.exec_params(std::string(tree_cte) + R"sql(
            SELECT i.indexrelid::regclass::text, t.relid::regclass::text,
                   EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) AS k (attnum)
                             JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                            WHERE a.attname = $2) AS has_dist,
                   coalesce((SELECT bool_and(pk.attnum = ANY (i.indkey::int2[]))
                               FROM pg_partitioned_table AS pt,
                                    unnest(pt.partattrs::int2[]) AS pk (attnum)
                              WHERE pt.partrelid = i.indrelid), true) AS has_partition_key
              FROM plugmon_lint_tree AS t
              JOIN pg_index AS i ON i.indrelid = t.relid
             WHERE i.indisunique OR i.indisexclusion
             ORDER BY 1)sql",
                                          p.table, p.column);
        keys_checked_ += static_cast<int>(rows.size());
        for (const auto& r : rows) {
            const std::string what = r[0].as<std::string>() + " on " + r[1].as<std::string>();
            if (!r[2].as<bool>())
                report(p.table, "unique key without the distribution column", what);
            if (!r[3].as<bool>()) report(p.table, "unique key without the partition key", what);
        }
    }

    /// No column of the table or its partitions takes a sequence (serial, nextval, identity):
    /// Citus would draw it from a coordinator sequence on every insert, a cluster-wide bottleneck.
    void check_sequences(const placement& p) {
        const auto rows = tx_.exec_params(std::string(tree_cte) + R"sql(
            SELECT a.attrelid::regclass::text || '.' || a.attname
              FROM plugmon_lint_tree AS t
              JOIN pg_attribute AS a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
              LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) ILIKE '%nextval(%'
             ORDER BY 1)sql",
                                          p.table);
        for (const auto& r : rows)
            report(p.table, "default from a sequence", r[0].as<std::string>());
    }

    /// The group a table is colocated with: its colocate_with chain followed to its start.
    std::string group_of(const std::string& table, std::set<std::string>& seen) {
        for (const auto& p : plan_.distributed) {
            if (p.table != table) continue;
            if (p.colocate_with.empty() || p.colocate_with == "none" ||
                p.colocate_with == "default")
                return p.table;
            if (!seen.insert(table).second) return "";
            return group_of(p.colocate_with, seen);
        }
        return "";  // not a distributed table of the plan
    }

    /// Every table joins an existing group, colocated tables agree on the type and collation of
    /// their distribution columns, and every distributed table is in the ledger's group.
    void check_colocation() {
        std::set<std::string> seen;
        const std::string ledger_group = group_of(ledger_, seen);
        if (ledger_group.empty())
            report(ledger_, "ledger not distributed", "not in deploy/citus.sql");
        std::map<std::string, std::string> group_type;  // group -> "type collation"
        for (const auto& p : plan_.distributed) {
            seen.clear();
            const std::string group = group_of(p.table, seen);
            if (group.empty()) {
                report(p.table, "colocated with an unknown table", p.colocate_with);
                continue;
            }
            if (!ledger_group.empty() && group != ledger_group)
                report(p.table, "not colocated with the ledger", "group of " + group);
            if (tx_.exec_params1("SELECT to_regclass($1) IS NULL", p.table)[0].as<bool>() ||
                !has_column(p.table, p.column))
                continue;
            const auto type =
                tx_.exec_params1(
                       "SELECT format_type(atttypid, atttypmod) || ' ' || attcollation "
                       "FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
                       p.table, p.column)[0]
                    .as<std::string>();
            const auto [it, first] = group_type.emplace(group, type);
            if (!first && it->second != type)
                report(p.table, "distribution column type differs in its colocation group",
                       type + " vs " + it->second);
        }
    }

    /// How Citus would hold `oid`: "distributed", "reference" or "local".
    std::string kind_of(const std::string& table) {
        for (const auto& p : plan_.distributed)
            if (same_table(p.table, table)) return "distributed";
        for (const auto& r : plan_.reference)
            if (same_table(r, table)) return "reference";
        return "local";
    }

    bool same_table(const std::string& listed, const std::string& table) {
        return tx_.exec_params1("SELECT to_regclass($1) = $2::regclass", listed, table)[0].as<bool>(
            false);
    }

    /// Foreign keys that touch a listed table (top-level constraints only: partitions inherit
    /// theirs): reference/local -> distributed and distributed -> local are refused by Citus;
    /// distributed -> distributed must pair the two distribution columns.
    void check_foreign_keys() {
        std::vector<std::string> listed;
        for (const auto& p : plan_.distributed) listed.push_back(p.table);
        for (const auto& r : plan_.reference) listed.push_back(r);
        const auto rows = tx_.exec_params(R"sql(
            SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
                   ARRAY(SELECT a.attname || '=' || b.attname
                           FROM unnest(c.conkey, c.confkey) AS k (l, r)
                           JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.l
                           JOIN pg_attribute AS b ON b.attrelid = c.confrelid AND b.attnum = k.r)::text
              FROM pg_constraint AS c
             WHERE c.contype = 'f' AND c.conparentid = 0
               AND (c.conrelid = ANY ($1::regclass[]) OR c.confrelid = ANY ($1::regclass[]))
             ORDER BY 1)sql",
                                          existing(listed));
        for (const auto& r : rows) {
            const std::string from = r[1].as<std::string>(), to = r[2].as<std::string>();
            const std::string fk = r[0].as<std::string>() + " -> " + to;
            const std::string kf = kind_of(from), kt = kind_of(to);
            if (kt == "distributed" && kf != "distributed")
                report(from, "foreign key from a " + kf + " table to a distributed one", fk);
            if (kf == "distributed" && kt == "local")
                report(from, "foreign key from a distributed table to a local one", fk);
            if (kf == "distributed" && kt == "distributed" &&
                r[3].as<std::string>().find(column_of(from) + "=" + column_of(to)) ==
                    std::string::npos)
                report(from,
                       "foreign key between distributed tables without their distribution columns",
                       fk);
        }
    }

    std::string column_of(const std::string& table) {
        for (const auto& p : plan_.distributed)
            if (same_table(p.table, table)) return p.column;
        return "";
    }

    /// The listed tables that exist, as a PostgreSQL array literal of names.
    std::string existing(const std::vector<std::string>& tables) {
        std::string out = "{";
        for (const auto& t : tables) {
            if (tx_.exec_params1("SELECT to_regclass($1) IS NULL", t)[0].as<bool>()) continue;
            out += (out.size() > 1 ? "," : "") + std::string("\"") + t + "\"";
        }
        return out + "}";
    }

    /// Citus pushes an aggregate down to the workers only with a combine function; PostgreSQL
    /// runs it in parallel only when it is also PARALLEL SAFE (and serialisable if internal).
    void check_aggregates() {
        const auto rows = tx_.exec_params(R"sql(
            SELECT p.oid::regprocedure::text, a.aggcombinefn <> 0, p.proparallel = 's',
                   a.aggtranstype <> 'internal'::regtype OR (a.aggserialfn <> 0 AND a.aggdeserialfn <> 0)
              FROM pg_aggregate AS a
              JOIN pg_proc AS p ON p.oid = a.aggfnoid
             WHERE p.pronamespace = $1::regnamespace
             ORDER BY 1)sql",
                                          aggregate_schema_);
        for (const auto& r : rows) {
            const std::string agg = r[0].as<std::string>();
            if (!r[1].as<bool>())
                report(agg, "aggregate without a combine function", "aggcombinefn = 0");
            if (!r[2].as<bool>()) report(agg, "aggregate not PARALLEL SAFE", "proparallel <> 's'");
            if (!r[3].as<bool>())
                report(agg, "internal-state aggregate without serial/deserial functions", "");
        }
    }

    pqxx::nontransaction tx_;
    citus_plan plan_;
    std::string aggregate_schema_, ledger_;
    std::vector<std::string> violations_;
    int keys_checked_ = 0;
};

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += "  " + s + "\n";
    return out;
}

long long scalar(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<long long>();
}

TEST(citus_lint, deploy_citus_sql_lists_every_host_table_and_the_ledger) {
    const citus_plan plan = parse_citus_sql(read_text(citus_sql_path()));
    EXPECT_TRUE(plan.unparsed.empty()) << joined(plan.unparsed);
    ASSERT_FALSE(plan.distributed.empty());
    std::set<std::string> names;
    for (const auto& p : plan.distributed) {
        EXPECT_TRUE(names.insert(p.table).second) << p.table << " distributed twice";
        EXPECT_EQ(p.column, "host") << p.table;
    }
    EXPECT_TRUE(names.count("plugmon.write_batches")) << "the ledger is not distributed";

    // The other direction: a table of the schema with a host column that deploy/citus.sql forgot.
    pqxx::connection c(migrated_database());
    pqxx::nontransaction tx(c);
    const auto tables = tx.exec(R"sql(
        SELECT c.relnamespace::regnamespace::text || '.' || c.relname FROM pg_class AS c
         WHERE c.relnamespace = 'plugmon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND EXISTS (SELECT 1 FROM pg_attribute AS a
                        WHERE a.attrelid = c.oid AND a.attname = 'host' AND NOT a.attisdropped)
         ORDER BY 1)sql");
    ASSERT_GT(tables.size(), 0u);
    for (const auto& r : tables)
        EXPECT_TRUE(names.count(r[0].as<std::string>()))
            << r[0].as<std::string>()
            << " has a host column but deploy/citus.sql does not distribute it";
}

TEST(citus_lint, the_migrated_schema_breaks_no_citus_rule) {
    pqxx::connection c(migrated_database());
    // Partitions exist, so the rules are checked on them too, not only on the parents.
    {
        pqxx::nontransaction tx(c);
        tx.exec(
            "SELECT plugmon.ensure_partitions(now() - interval '1 day', now() + interval '1 day')");
    }
    ASSERT_GT(
        scalar(
            c,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'plugmon.query_rollups'::regclass"),
        0);
    ASSERT_GT(
        scalar(c,
               "SELECT count(*) FROM pg_aggregate AS a JOIN pg_proc AS p ON p.oid = a.aggfnoid "
               "WHERE p.pronamespace = 'plugmon'::regnamespace"),
        0);
    // Every key of the partitions is read, beside the parents' (a daily table has 3 partitions).
    const long long parent_keys =
        scalar(c,
               "SELECT count(*) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid "
               "WHERE c.relnamespace = 'plugmon'::regnamespace AND i.indisunique "
               "AND NOT c.relispartition AND c.relname <> 'schema_migrations'");
    // The sketch aggregate under each backend migration 6 can route it to: PL/pgSQL always, the
    // C extension when migration 6 installed it in this database.
    std::vector<std::string> backends = {"plpgsql"};
    if (scalar(c, "SELECT count(*) FROM pg_extension WHERE extname = 'plugmon_sketch'") > 0)
        backends.push_back("c");
    for (const auto& backend : backends) {
        {
            pqxx::nontransaction tx(c);
            tx.exec_params("SELECT plugmon.sketch_backend($1)", backend);
        }
        citus_lint lint(c, parse_citus_sql(read_text(citus_sql_path())), "plugmon",
                        "plugmon.write_batches");
        const auto violations = lint.run();
        EXPECT_TRUE(violations.empty()) << "sketch backend " << backend << ":\n"
                                        << joined(violations);
        EXPECT_GT(lint.keys_checked(), parent_keys);
    }
    std::printf("checked with the sketch backends: %s%s\n", backends[0].c_str(),
                backends.size() > 1 ? ", c" : "");
}

// The schema a careless migration could produce, added to the real list: each rule must fire.
constexpr const char* broken_schema = R"sql(
CREATE SCHEMA lintbad;
CREATE TABLE lintbad.pk_without_host (host text NOT NULL, id bigint PRIMARY KEY);
CREATE TABLE lintbad.unique_without_host (host text NOT NULL, k bigint NOT NULL, UNIQUE (host, k));
CREATE UNIQUE INDEX unique_k ON lintbad.unique_without_host (k);
CREATE TABLE lintbad.parted (at timestamptz NOT NULL, host text NOT NULL, PRIMARY KEY (host, at))
    PARTITION BY RANGE (at);
CREATE TABLE lintbad.parted_p1 PARTITION OF lintbad.parted FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
CREATE UNIQUE INDEX parted_p1_at ON lintbad.parted_p1 (at);
CREATE TABLE lintbad.serial_id (host text NOT NULL, id bigserial, PRIMARY KEY (host, id));
CREATE TABLE lintbad.no_host (h text);
CREATE TABLE lintbad.int_host (host integer PRIMARY KEY);
CREATE TABLE lintbad.dist (host text PRIMARY KEY);
CREATE TABLE lintbad.ref (name text PRIMARY KEY, host text REFERENCES lintbad.dist (host));
CREATE TABLE lintbad.local_dim (name text PRIMARY KEY);
CREATE TABLE lintbad.to_local (host text PRIMARY KEY, name text REFERENCES lintbad.local_dim (name));
CREATE AGGREGATE lintbad.serial_sum(int8) (SFUNC = int8pl, STYPE = int8);
)sql";

constexpr const char* broken_calls = R"sql(
SELECT create_distributed_table('lintbad.pk_without_host', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('lintbad.unique_without_host', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('lintbad.parted', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('lintbad.serial_id', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('lintbad.no_host', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('lintbad.absent', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('lintbad.int_host', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('lintbad.dist', 'host', colocate_with => 'lintbad.elsewhere');
SELECT create_distributed_table('lintbad.to_local', 'host', colocate_with => 'none');
SELECT create_reference_table('lintbad.ref');
SELECT create_distributed_table(lintbad.unquoted, 'host');
)sql";

TEST(citus_lint, reports_every_kind_of_violation_in_a_broken_copy) {
    pqxx::connection c(migrated_database());
    {
        pqxx::nontransaction tx(c);
        tx.exec(broken_schema);
    }
    {
        // The partition key half of the rule is PostgreSQL's own: it refuses such a key outright,
        // so the lint's partition key check is a second line that cannot be reached here.
        pqxx::nontransaction tx(c);
        EXPECT_THROW(tx.exec("CREATE UNIQUE INDEX parted_host ON lintbad.parted (host)"),
                     pqxx::sql_error);
    }
    const citus_plan plan = parse_citus_sql(read_text(citus_sql_path()) + broken_calls);
    const auto violations = citus_lint(c, plan, "lintbad", "plugmon.write_batches").run();
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"lintbad.pk_without_host", "unique key without the distribution column"},
        {"lintbad.unique_without_host", "unique key without the distribution column"},
        {"lintbad.parted", "unique key without the distribution column"},  // on the partition
        {"lintbad.serial_id", "default from a sequence"},
        {"lintbad.no_host", "missing distribution column"},
        {"lintbad.absent", "missing table"},
        {"lintbad.int_host", "distribution column type differs in its colocation group"},
        {"lintbad.dist", "colocated with an unknown table"},
        {"lintbad.to_local", "not colocated with the ledger"},
        {"lintbad.ref", "foreign key from a reference table to a distributed one"},
        {"lintbad.to_local", "foreign key from a distributed table to a local one"},
        {"lintbad.serial_sum(bigint)", "aggregate without a combine function"},
        {"lintbad.serial_sum(bigint)", "aggregate not PARALLEL SAFE"},
        {"deploy/citus.sql", "unparsed call"},
    };
    for (const auto& [table, rule] : expected) {
        const std::string prefix = table + ": " + rule + ": ";
        EXPECT_TRUE(std::any_of(violations.begin(), violations.end(),
                                [&](const std::string& v) { return v.rfind(prefix, 0) == 0; }))
            << "not reported: " << prefix << "\nreported:\n"
            << joined(violations);
    }
    // The unique index on parted's partition names it; the real tables stay clean in the same run.
    EXPECT_TRUE(std::any_of(violations.begin(), violations.end(), [](const std::string& v) {
        return v.find("parted_p1_at on lintbad.parted_p1") != std::string::npos;
    })) << joined(violations);
    for (const auto& v : violations)
        EXPECT_TRUE(v.rfind("lintbad.", 0) == 0 || v.rfind("deploy/citus.sql", 0) == 0) << v;
}

TEST(citus_lint, parser_reads_only_calls_outside_comments) {
    const citus_plan plan = parse_citus_sql(
        "-- SELECT create_distributed_table('x.commented', 'host');\n"
        "SELECT create_distributed_table('a.t', 'host'); -- create_reference_table('x.y')\n"
        "SELECT create_distributed_table( 'a.u' , 'host' , colocate_with => 'a.t' );\n"
        "SELECT create_reference_table('a.r');\n");
    ASSERT_EQ(plan.distributed.size(), 2u);
    EXPECT_EQ(plan.distributed[0].table, "a.t");
    EXPECT_EQ(plan.distributed[0].colocate_with, "");
    EXPECT_EQ(plan.distributed[1].table, "a.u");
    EXPECT_EQ(plan.distributed[1].colocate_with, "a.t");
    ASSERT_EQ(plan.reference.size(), 1u);
    EXPECT_EQ(plan.reference[0], "a.r");
    EXPECT_TRUE(plan.unparsed.empty());
}

}  // namespace
