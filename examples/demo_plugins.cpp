// plugmon-demo: a host whose plugins run real SQL against PostgreSQL, recorded by the probe.

#include <plugmon/probe.hpp>

#include "common/conninfo.hpp"  // the agent's own password masking
#include "common/duration.hpp"  // and duration parser

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using plugmon::agent::mask_password;
using plugmon::agent::parse_duration;

constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr unsigned max_tenants = 1000;
constexpr unsigned max_workers = 16;
constexpr unsigned max_pool = 8;
// Unexpected errors printed per plugin; later ones are only counted.
constexpr unsigned log_limit = 5;

struct options {
    std::string postgres;
    nanoseconds duration{std::chrono::seconds(30)};  // 0: until SIGINT/SIGTERM
    unsigned tenants = 3;
    double rate = 20;        // executions per second per plugin; 0 = as fast as possible
    unsigned workers = 3;    // threads per plugin
    unsigned pool_size = 2;  // connections per plugin (fewer than workers: somebody waits)
    std::uint64_t seed = 1;
    bool json = false;
};

// ---- small utilities ----

/// A libpq error message on one line ("...failed: Connection refused\n\tIs the server running..."
/// reads better in a log). libpq never puts the password into its messages; the URL shown next
/// to them is masked with mask_password().
std::string one_line(const std::string& message) {
    std::string line;
    for (char ch : message) {
        if (ch == '\n' || ch == '\t') {
            if (!line.empty() && line.back() != ' ') line += ' ';
        } else {
            line += ch;
        }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line;
}

constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::string tenant_name(unsigned i) {
    static constexpr std::array<const char*, 8> names{"acme",  "globex", "initech", "umbrella",
                                                      "hooli", "stark",  "wayne",   "wonka"};
    return i < names.size() ? names[i] : "tenant-" + std::to_string(i);
}

// ---- stopping: SIGINT/SIGTERM are blocked everywhere and taken by the main thread ----

std::atomic<bool> g_stop{false};

std::mutex g_log_mutex;
void log_line(const std::string& text) {
    std::lock_guard lock(g_log_mutex);
    std::fprintf(stderr, "plugmon-demo: %s\n", text.c_str());
}

/// Sleeps until `t` in short steps; false when the run is stopping.
bool sleep_until(steady::time_point t) {
    for (;;) {
        if (g_stop.load(std::memory_order_relaxed)) return false;
        const auto now = steady::now();
        if (now >= t) return true;
        std::this_thread::sleep_for(std::min<steady::duration>(t - now, milliseconds(50)));
    }
}

// ---- the host's per-plugin connection pool, reported through the probe ----

/// A fixed set of connections shared by one plugin's workers. Every acquire and release records
/// a pool() sample (in use, idle, waiting). A connection found broken is reopened on its next use.
class connection_pool {
public:
    connection_pool(const plugmon::Plugin& plugin, std::string url, unsigned size)
        : plugin_(plugin), url_(std::move(url)), conns_(size) {
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            conns_[i] = std::make_unique<pqxx::connection>(url_);  // throws when unreachable
            idle_.push_back(i);
        }
    }

    class lease {
    public:
        lease() = default;
        lease(connection_pool* pool, std::size_t index) : pool_(pool), index_(index) {}
        lease(lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), index_(o.index_) {}
        lease& operator=(lease&&) = delete;
        ~lease() {
            if (pool_ != nullptr) pool_->release(index_);
        }
        explicit operator bool() const { return pool_ != nullptr; }
        pqxx::connection& conn() { return *pool_->conns_[index_]; }
        /// Drops the connection (it broke); the next lease of this slot opens a new one.
        void discard() { pool_->conns_[index_].reset(); }

    private:
        connection_pool* pool_ = nullptr;
        std::size_t index_ = 0;
    };

    /// Waits for a free connection; an empty lease when the run stops first. Throws
    /// pqxx::broken_connection when a dropped connection cannot be reopened.
    lease acquire() {
        std::size_t index = 0;
        unsigned in_use = 0, idle = 0, waiting = 0;
        {
            std::unique_lock lock(m_);
            if (idle_.empty()) {
                ++waiting_;
                sample(unsigned(conns_.size() - idle_.size()), 0, waiting_);
                while (idle_.empty() && !g_stop.load(std::memory_order_relaxed))
                    cv_.wait_for(lock, milliseconds(50));
                --waiting_;
                if (idle_.empty()) return {};
            }
            index = idle_.back();
            idle_.pop_back();
            in_use = unsigned(conns_.size() - idle_.size());
            idle = unsigned(idle_.size());
            waiting = waiting_;
        }
        sample(in_use, idle, waiting);
        lease l(this, index);
        if (!conns_[index] || !conns_[index]->is_open())
            conns_[index] = std::make_unique<pqxx::connection>(url_);
        return l;
    }

    void wake_all() { cv_.notify_all(); }
    /// pool() samples recorded so far.
    std::uint64_t samples() const { return samples_.load(); }

private:
    void release(std::size_t index) {
        unsigned in_use = 0, idle = 0, waiting = 0;
        {
            std::lock_guard lock(m_);
            idle_.push_back(index);
            in_use = unsigned(conns_.size() - idle_.size());
            idle = unsigned(idle_.size());
            waiting = waiting_;
        }
        cv_.notify_one();
        sample(in_use, idle, waiting);
    }

    void sample(unsigned in_use, unsigned idle, unsigned waiting) {
        plugin_.pool(in_use, idle, waiting);
        samples_.fetch_add(1, std::memory_order_relaxed);
    }

    const plugmon::Plugin& plugin_;
    std::string url_;
    std::mutex m_;
    std::condition_variable cv_;
    // Slot i is touched only by the holder of its lease (or under m_ while idle).
    std::vector<std::unique_ptr<pqxx::connection>> conns_;
    std::vector<std::size_t> idle_;
    unsigned waiting_ = 0;
    std::atomic<std::uint64_t> samples_{0};
};

// ---- what each plugin does ----

/// What one worker did; summed per plugin at the end.
struct tally {
    std::uint64_t executions = 0, failed_executions = 0;
    std::uint64_t queries = 0, errors = 0, rows = 0;
    std::uint64_t inserted = 0;  // rows inserted and committed
    std::uint64_t slow = 0;      // deliberately slow statements
    std::uint64_t planned_errors = 0;
    std::uint64_t unexpected_errors = 0, connection_errors = 0;

    void add(const tally& o) {
        executions += o.executions;
        failed_executions += o.failed_executions;
        queries += o.queries;
        errors += o.errors;
        rows += o.rows;
        inserted += o.inserted;
        slow += o.slow;
        planned_errors += o.planned_errors;
        unexpected_errors += o.unexpected_errors;
        connection_errors += o.connection_errors;
    }
};

/// Data every worker reads: made before the workers start, read-only afterwards.
struct shared_data {
    std::int64_t run_id = 0;
    std::vector<std::string> tenants;
    std::vector<std::vector<std::int64_t>> customers;  // per tenant
};

/// One worker thread of one plugin.
struct worker {
    const plugmon::Plugin& plugin;
    const shared_data& data;
    std::mt19937_64 rng;
    unsigned index;
    tally t;
    unsigned tenant = 0;      // index of this execution's tenant
    std::uint64_t event = 0;  // audit: this worker's event counter

    std::uint64_t below(std::uint64_t n) {
        return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng);
    }
    bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
    const std::string& tenant_text() const { return data.tenants[tenant]; }
};

/// Thrown out of an execution that failed on purpose (after the failed query was recorded).
struct planned_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Runs one statement inside an already started query scope: rows returned (SELECT) or affected
/// are recorded, and a failure marks the query failed before it propagates.
template <class Tx, class... Args>
pqxx::result timed(plugmon::QueryScope& q, worker& w, bool is_select, Tx& tx,
                   const std::string& sql, Args&&... args) {
    ++w.t.queries;
    try {
        pqxx::result r = tx.exec_params(sql, std::forward<Args>(args)...);
        const auto rows = std::uint64_t(is_select ? r.size() : r.affected_rows());
        q.rows(rows);
        w.t.rows += rows;
        return r;
    } catch (...) {
        q.fail();
        ++w.t.errors;
        throw;
    }
}

/// Runs one statement through the probe: a query scope with op, table, the thread's tenant and
/// the statement text (its literals are folded by the probe; parameters keep them out anyway).
template <class Tx, class... Args>
pqxx::result run_sql(worker& w, Tx& tx, std::string_view op, std::string_view table,
                     const std::string& sql, Args&&... args) {
    auto q = w.plugin.query(op, table);
    q.statement(sql);
    return timed(q, w, op == "SELECT", tx, sql, std::forward<Args>(args)...);
}

// billing: places orders and collects payments in a transaction. Every 25th execution applies a
// discount through a column that does not exist: the statement fails, the transaction rolls back
// and the execution is marked failed.
void billing(worker& w, pqxx::connection& c, std::uint64_t ticket) {
    static const std::string insert_order =
        "INSERT INTO demo.orders (tenant, customer_id, amount_cents, status) "
        "VALUES ($1, $2, $3, 'placed') RETURNING id";
    static const std::string insert_invoice =
        "INSERT INTO demo.invoices (tenant, customer_id, order_id, amount_cents, status) "
        "VALUES ($1, $2, $3, $4, 'open')";
    static const std::string charge =
        "UPDATE demo.customers SET balance_cents = balance_cents + $2 WHERE id = $1";
    static const std::string oldest_open =
        "SELECT id, customer_id, order_id, amount_cents FROM demo.invoices "
        "WHERE tenant = $1 AND status = 'open' "
        "ORDER BY issued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED";
    static const std::string discount =
        "UPDATE demo.invoices SET discount_cents = $2 WHERE id = $1";
    static const std::string mark_paid =
        "UPDATE demo.invoices SET status = 'paid', paid_at = now() WHERE id = $1";
    static const std::string credit =
        "UPDATE demo.customers SET balance_cents = balance_cents - $2 WHERE id = $1";
    static const std::string close_order = "UPDATE demo.orders SET status = 'paid' WHERE id = $1";

    const auto& customers = w.data.customers[w.tenant];
    pqxx::work tx(c);
    std::uint64_t inserted = 0;
    const bool discount_day = ticket % 25 == 12;
    if (!discount_day && w.chance(0.5)) {
        const std::int64_t customer = customers[w.below(customers.size())];
        const std::int64_t amount = 500 + std::int64_t(w.below(50'000));
        const auto order =
            run_sql(w, tx, "INSERT", "orders", insert_order, w.tenant_text(), customer, amount);
        const auto order_id = order[0][0].as<std::int64_t>();
        run_sql(w, tx, "INSERT", "invoices", insert_invoice, w.tenant_text(), customer, order_id,
                amount);
        run_sql(w, tx, "UPDATE", "customers", charge, customer, amount);
        inserted = 2;
    } else {
        const auto open = run_sql(w, tx, "SELECT", "invoices", oldest_open, w.tenant_text());
        if (!open.empty()) {
            const auto invoice = open[0][0].as<std::int64_t>();
            const auto customer = open[0][1].as<std::int64_t>();
            const auto order_id = open[0][2].as<std::int64_t>();
            const auto amount = open[0][3].as<std::int64_t>();
            if (discount_day) {
                try {
                    run_sql(w, tx, "UPDATE", "invoices", discount, invoice, amount / 10);
                } catch (const pqxx::undefined_column&) {  // demo.invoices has no discount_cents
                    ++w.t.planned_errors;
                    throw planned_failure("billing: discount on a missing column");  // rolls back
                }
            }
            run_sql(w, tx, "UPDATE", "invoices", mark_paid, invoice);
            run_sql(w, tx, "UPDATE", "customers", credit, customer, amount);
            run_sql(w, tx, "UPDATE", "orders", close_order, order_id);
        }
    }
    tx.commit();
    w.t.inserted += inserted;
}

// search: case-insensitive matches (ILIKE) over documents and customers, outside a transaction.
void search(worker& w, pqxx::connection& c, std::uint64_t) {
    static constexpr std::array<const char*, 12> terms{
        "refund",   "invoice", "shipping", "contract", "renewal",   "outage",
        "discount", "upgrade", "tax",      "warranty", "migration", "audit"};
    static constexpr std::array<const char*, 8> names{"son", "ada", "lee", "ov",
                                                      "an",  "mar", "kim", "ez"};
    static const std::string documents =
        "SELECT id, title FROM demo.documents "
        "WHERE tenant = $1 AND (title ILIKE $2 OR body ILIKE $2) ORDER BY id DESC LIMIT 20";
    static const std::string people =
        "SELECT id, name, email FROM demo.customers "
        "WHERE tenant = $1 AND name ILIKE $2 ORDER BY name LIMIT 10";
    static const std::string hits =
        "SELECT count(*) FROM demo.documents WHERE tenant = $1 AND body ILIKE $2";

    pqxx::nontransaction tx(c);
    const std::string term = std::string("%") + terms[w.below(terms.size())] + "%";
    run_sql(w, tx, "SELECT", "documents", documents, w.tenant_text(), term);
    if (w.chance(0.4))
        run_sql(w, tx, "SELECT", "customers", people, w.tenant_text(),
                std::string("%") + names[w.below(names.size())] + "%");
    if (w.chance(0.1)) run_sql(w, tx, "SELECT", "documents", hits, w.tenant_text(), term);
}

// reports: aggregates in a read-only transaction; every 10th execution is a heavy report that
// takes over 120 ms (pg_sleep), a slow query by any threshold.
void reports(worker& w, pqxx::connection& c, std::uint64_t ticket) {
    static const std::string top_customers =
        "SELECT c.id, c.name, count(o.id) AS orders, sum(o.amount_cents) AS total "
        "FROM demo.orders o JOIN demo.customers c ON c.id = o.customer_id "
        "WHERE o.tenant = $1 AND o.created_at > now() - $2::interval "
        "GROUP BY c.id, c.name ORDER BY total DESC LIMIT 10";
    static const std::string invoice_status =
        "SELECT status, count(*), sum(amount_cents) FROM demo.invoices "
        "WHERE tenant = $1 GROUP BY status";
    static const std::string monthly =
        "SELECT date_trunc('month', created_at) AS month, sum(amount_cents) FROM demo.orders "
        "WHERE tenant = $1 GROUP BY 1 ORDER BY 1";
    static const std::string heavy =
        "SELECT pg_sleep($2), count(*), avg(amount_cents) FROM demo.orders WHERE tenant = $1";

    pqxx::read_transaction tx(c);
    if (ticket % 10 == 5) {
        ++w.t.slow;
        run_sql(w, tx, "SELECT", "orders", heavy, w.tenant_text(), 0.12);
    }
    run_sql(w, tx, "SELECT", "orders", top_customers, w.tenant_text(), "30 days");
    if (w.chance(0.5)) run_sql(w, tx, "SELECT", "invoices", invoice_status, w.tenant_text());
    if (w.chance(0.3)) run_sql(w, tx, "SELECT", "orders", monthly, w.tenant_text());
    tx.commit();
}

// audit: appends events outside a transaction (the PLUGMON_QUERY fast path with a pre-interned
// statement). Every 20th execution re-sends its last event: the unique key rejects it, the query
// is recorded as failed, and the plugin carries on (the event is already stored).
void audit(worker& w, pqxx::connection& c, std::uint64_t ticket) {
    static constexpr std::array<const char*, 6> actions{
        "login", "export", "settings.change", "invoice.view", "role.grant", "logout"};
    static const std::string insert_event =
        "INSERT INTO demo.audit_log (run_id, tenant, actor, action, subject, event_key) "
        "VALUES ($1, $2, $3, $4, $5, $6)";
    static const plugmon::Statement insert_statement{insert_event};
    static const std::string recent =
        "SELECT count(*) FROM demo.audit_log WHERE tenant = $1 AND at > now() - $2::interval";
    static const std::string retention =
        "DELETE FROM demo.audit_log WHERE tenant = $1 AND at < now() - $2::interval";

    pqxx::nontransaction tx(c);
    const std::string key = std::to_string(w.data.run_id) + "-" + std::to_string(w.index) + "-" +
                            std::to_string(++w.event);
    const std::string actor = "user-" + std::to_string(w.below(50));
    const std::string action = actions[w.below(actions.size())];
    const std::string subject = "object-" + std::to_string(w.below(1000));
    auto insert = [&] {
        PLUGMON_QUERY(q, w.plugin, "INSERT", "audit_log");
        q.statement(insert_statement);
        timed(q, w, false, tx, insert_event, w.data.run_id, w.tenant_text(), actor, action, subject,
              key);
    };
    insert();
    ++w.t.inserted;
    if (w.chance(0.3)) run_sql(w, tx, "SELECT", "audit_log", recent, w.tenant_text(), "1 minute");
    if (ticket % 50 == 49)
        run_sql(w, tx, "DELETE", "audit_log", retention, w.tenant_text(), "7 days");
    if (ticket % 20 == 7) {
        try {
            insert();  // the same event_key again
            ++w.t.inserted;
        } catch (const pqxx::unique_violation&) {
            ++w.t.planned_errors;  // handled: the execution itself succeeds
        }
    }
}

struct plugin_spec {
    const char* name;
    void (*body)(worker&, pqxx::connection&, std::uint64_t ticket);
};
constexpr std::array<plugin_spec, 4> specs{
    {{"billing", billing}, {"search", search}, {"reports", reports}, {"audit", audit}}};

/// One plugin as the host runs it: probe handle, connection pool, pacing and its workers.
struct plugin_state {
    const plugin_spec& spec;
    plugmon::Plugin handle;
    std::unique_ptr<connection_pool> pool;
    std::atomic<std::uint64_t> tickets{0};
    std::atomic<unsigned> logged{0};
    std::vector<tally> tallies;

    plugin_state(const plugin_spec& s, unsigned workers)
        : spec(s), handle(s.name), tallies(workers) {}

    void log_unexpected(const std::string& what) {
        const unsigned n = logged.fetch_add(1, std::memory_order_relaxed);
        if (n < log_limit)
            log_line(std::string(spec.name) + ": " + one_line(what));
        else if (n == log_limit)
            log_line(std::string(spec.name) + ": further errors are counted, not printed");
    }
};

void run_worker(plugin_state& p, const options& o, const shared_data& data, unsigned index,
                steady::time_point start, std::atomic<unsigned>& running) {
    worker w{p.handle,
             data,
             std::mt19937_64(splitmix64(o.seed * 1000003 +
                                        std::uint64_t(&p.spec - specs.data()) * 101 + index)),
             index,
             {}};
    std::vector<plugmon::Name> tenants;
    for (const auto& t : data.tenants) tenants.emplace_back(t);
    try {
        while (!g_stop.load(std::memory_order_relaxed)) {
            const std::uint64_t ticket = p.tickets.fetch_add(1, std::memory_order_relaxed);
            if (o.rate > 0 &&
                !sleep_until(start + nanoseconds(std::int64_t(double(ticket) * 1e9 / o.rate))))
                break;
            w.tenant = unsigned(w.below(data.tenants.size()));
            plugmon::TenantScope tenant{tenants[w.tenant]};
            try {
                // The execution covers the wait for a connection, as the host's plugin call would.
                auto run = p.handle.execution();
                ++w.t.executions;  // recorded when `run` ends, even if the run stops while waiting
                auto lease = p.pool->acquire();
                if (!lease) break;
                try {
                    p.spec.body(w, lease.conn(), ticket);
                } catch (const pqxx::broken_connection&) {
                    lease.discard();
                    throw;
                }
            } catch (const pqxx::broken_connection& e) {
                // The scope saw the exception leave it: the execution is recorded as failed.
                ++w.t.failed_executions;
                ++w.t.connection_errors;
                p.log_unexpected(std::string("connection lost: ") + e.what());
                sleep_until(steady::now() + milliseconds(500));
            } catch (const planned_failure&) {
                ++w.t.failed_executions;  // the scope saw the exception: recorded as failed
            } catch (const pqxx::sql_error& e) {
                ++w.t.failed_executions;
                ++w.t.unexpected_errors;
                p.log_unexpected(std::string(e.what()) + " (statement: " + e.query() + ")");
            } catch (const std::exception& e) {
                ++w.t.failed_executions;
                ++w.t.unexpected_errors;
                p.log_unexpected(e.what());
            }
        }
    } catch (const std::exception& e) {
        ++w.t.unexpected_errors;
        p.log_unexpected(std::string("worker stopped: ") + e.what());
    }
    p.tallies[index] = w.t;
    running.fetch_sub(1);
}

// ---- the demo schema ----

/// Creates schema demo and its tables (idempotent; concurrent starts serialise on an advisory
/// lock), seeds every tenant that has no customers yet, and registers this run.
shared_data set_up(pqxx::connection& c, const options& o) {
    shared_data d;
    for (unsigned i = 0; i < o.tenants; ++i) d.tenants.push_back(tenant_name(i));

    pqxx::work tx(c);
    tx.exec("SET LOCAL client_min_messages = warning");  // no NOTICE for IF NOT EXISTS
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('plugmon-demo schema'))");
    tx.exec(R"(
CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.runs (
    id bigserial PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(),
    seed bigint NOT NULL, tenants int NOT NULL);
CREATE TABLE IF NOT EXISTS demo.customers (
    id bigserial PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, email text NOT NULL,
    balance_cents bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, email));
CREATE TABLE IF NOT EXISTS demo.orders (
    id bigserial PRIMARY KEY, tenant text NOT NULL,
    customer_id bigint NOT NULL REFERENCES demo.customers, amount_cents bigint NOT NULL,
    status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS orders_tenant_created ON demo.orders (tenant, created_at);
CREATE TABLE IF NOT EXISTS demo.invoices (
    id bigserial PRIMARY KEY, tenant text NOT NULL,
    customer_id bigint NOT NULL REFERENCES demo.customers,
    order_id bigint NOT NULL REFERENCES demo.orders, amount_cents bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'paid')),
    issued_at timestamptz NOT NULL DEFAULT now(), paid_at timestamptz);
CREATE INDEX IF NOT EXISTS invoices_open ON demo.invoices (tenant, issued_at, id)
    WHERE status = 'open';
CREATE INDEX IF NOT EXISTS invoices_tenant_status ON demo.invoices (tenant, status);
CREATE TABLE IF NOT EXISTS demo.documents (
    id bigserial PRIMARY KEY, tenant text NOT NULL, title text NOT NULL, body text NOT NULL);
CREATE INDEX IF NOT EXISTS documents_tenant ON demo.documents (tenant, id);
CREATE TABLE IF NOT EXISTS demo.audit_log (
    id bigserial PRIMARY KEY, run_id bigint NOT NULL REFERENCES demo.runs, tenant text NOT NULL,
    actor text NOT NULL, action text NOT NULL, subject text NOT NULL,
    event_key text NOT NULL UNIQUE, at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS audit_log_tenant_at ON demo.audit_log (tenant, at);
CREATE INDEX IF NOT EXISTS audit_log_run ON demo.audit_log (run_id);
)");

    bool seeded = false;
    for (std::size_t i = 0; i < d.tenants.size(); ++i) {
        const std::string& t = d.tenants[i];
        if (tx.exec_params1("SELECT count(*) FROM demo.customers WHERE tenant = $1", t)[0]
                .as<long>() > 0)
            continue;
        seeded = true;
        // setseed takes [-1, 1]: the same --seed seeds the same data
        tx.exec_params("SELECT setseed($1)", double(splitmix64(o.seed + i) % 2000001) / 1e6 - 1.0);
        tx.exec_params(R"(
INSERT INTO demo.customers (tenant, name, email)
SELECT $1,
       (ARRAY['Ada','Alan','Grace','Linus','Edsger','Barbara','Ken','Margaret',
              'Dennis','Frances','Niklaus','Radia','Tony','Shafi','Leslie','Donald'])[1 + g % 16]
       || ' ' ||
       (ARRAY['Lovelace','Turing','Hopper','Torvalds','Dijkstra','Liskov','Thompson','Hamilton',
              'Ritchie','Allen','Wirth','Perlman','Hoare','Goldwasser','Lamport','Knuth'])
           [1 + (g / 16) % 16],
       'customer' || g || '@' || $1 || '.example'
FROM generate_series(1, 300) g)",
                       t);
        tx.exec_params(R"(
WITH c AS (SELECT array_agg(id ORDER BY id) AS ids FROM demo.customers WHERE tenant = $1)
INSERT INTO demo.orders (tenant, customer_id, amount_cents, status, created_at)
SELECT $1, c.ids[1 + (g * 7919) % cardinality(c.ids)], 500 + floor(random() * 50000)::bigint,
       CASE WHEN g % 10 < 7 THEN 'paid' ELSE 'placed' END, now() - random() * interval '90 days'
FROM c, generate_series(1, 1500) g)",
                       t);
        tx.exec_params(R"(
INSERT INTO demo.invoices
    (tenant, customer_id, order_id, amount_cents, status, issued_at, paid_at)
SELECT tenant, customer_id, id, amount_cents,
       CASE WHEN status = 'paid' THEN 'paid' ELSE 'open' END, created_at,
       CASE WHEN status = 'paid' THEN created_at + interval '3 days' END
FROM demo.orders WHERE tenant = $1 AND id % 5 <> 0)",
                       t);
        tx.exec_params(R"(
INSERT INTO demo.documents (tenant, title, body)
SELECT $1, initcap(w[1 + g % 24]) || ' ' || w[1 + (g / 24) % 24] || ' notes',
       array_to_string(ARRAY(SELECT w[1 + floor(random() * 24)::int]
                             FROM generate_series(1, 12 + g % 20)), ' ')
FROM generate_series(1, 400) g,
     (SELECT ARRAY['refund','invoice','shipping','contract','renewal','outage','discount','upgrade',
                   'tax','warranty','migration','audit','customer','billing','report','search',
                   'account','password','export','import','schedule','quota','region','support']
             AS w) words)",
                       t);
    }
    if (seeded) tx.exec("ANALYZE demo.customers, demo.orders, demo.invoices, demo.documents");
    d.run_id = tx.exec_params1("INSERT INTO demo.runs (seed, tenants) VALUES ($1, $2) RETURNING id",
                               std::int64_t(o.seed), int(o.tenants))[0]
                   .as<std::int64_t>();
    for (const auto& t : d.tenants) {
        auto& ids = d.customers.emplace_back();
        for (const auto& row :
             tx.exec_params("SELECT id FROM demo.customers WHERE tenant = $1 ORDER BY id", t))
            ids.push_back(row[0].as<std::int64_t>());
    }
    tx.commit();
    return d;
}

// ---- the host ----

int run(const options& o, const sigset_t& stops) {
    // Fail fast on an unreachable server instead of libpq's default of waiting forever.
    ::setenv("PGCONNECT_TIMEOUT", "10", 0);
    const std::string shown = mask_password(o.postgres);
    shared_data data;
    std::vector<std::unique_ptr<plugin_state>> plugins;
    try {
        pqxx::connection setup(o.postgres);
        data = set_up(setup, o);
        for (const auto& s : specs) {
            auto p = std::make_unique<plugin_state>(s, o.workers);
            p->pool = std::make_unique<connection_pool>(p->handle, o.postgres, o.pool_size);
            plugins.push_back(std::move(p));
        }
    } catch (const pqxx::broken_connection& e) {
        log_line("cannot connect to PostgreSQL at " + shown + ": " + one_line(e.what()));
        return exit_failed;
    } catch (const std::exception& e) {
        log_line("setting up the demo schema in " + shown +
                 " failed: " + one_line(e.what()));
        return exit_failed;
    }

    if (!o.json) {
        char rate[64] = "executions as fast as they go";
        if (o.rate > 0) std::snprintf(rate, sizeof rate, "%g executions/s per plugin", o.rate);
        char until[48] = "until SIGINT/SIGTERM";
        if (o.duration.count() > 0)
            std::snprintf(until, sizeof until, "for %gs", double(o.duration.count()) / 1e9);
        std::printf(
            "plugmon-demo: run %lld against %s: %zu plugins x %u workers, %u connections each, "
            "%u tenants, %s, %s\n",
            (long long)data.run_id, shown.c_str(), plugins.size(), o.workers, o.pool_size,
            o.tenants, rate, until);
        std::fflush(stdout);
    }

    const auto start = steady::now();
    std::atomic<unsigned> running{0};
    std::vector<std::thread> threads;
    for (auto& p : plugins) {
        for (unsigned i = 0; i < o.workers; ++i) {
            running.fetch_add(1);
            try {
                threads.emplace_back(run_worker, std::ref(*p), std::cref(o), std::cref(data), i,
                                     start, std::ref(running));
            } catch (const std::system_error& e) {
                running.fetch_sub(1);
                log_line(std::string("cannot start a worker thread: ") + e.what());
                g_stop.store(true);
            }
        }
    }

    // Wait for the end of the run or a signal; a second signal while stopping exits at once.
    int signals = 0;
    const auto deadline = o.duration.count() > 0 ? start + o.duration : steady::time_point::max();
    while (running.load() > 0) {
        const bool stopping = g_stop.load();
        if (!stopping && steady::now() >= deadline) {
            g_stop.store(true);
            for (auto& p : plugins) p->pool->wake_all();
            continue;
        }
        const auto step = std::min<steady::duration>(
            milliseconds(100),
            std::max<steady::duration>(deadline - steady::now(), milliseconds(1)));
        const timespec ts{0, long(std::chrono::duration_cast<nanoseconds>(step).count())};
        const int sig = ::sigtimedwait(&stops, nullptr, &ts);
        if (sig <= 0) continue;  // timeout or EINTR
        if (++signals > 1) {
            log_line("second signal: exiting without waiting for the plugins");
            std::_Exit(128 + sig);
        }
        log_line(std::string("signal ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ": stopping");
        g_stop.store(true);
        for (auto& p : plugins) p->pool->wake_all();
    }
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(steady::now() - start).count();
    const plugmon::ProbeStats stats = plugmon::probe_stats();

    // Summary: what the plugin code recorded through the probe.
    tally total;
    std::uint64_t pool_samples = 0;
    for (auto& p : plugins) pool_samples += p->pool->samples();
    nlohmann::ordered_json by_plugin = nlohmann::ordered_json::object();
    std::vector<tally> sums;
    for (auto& p : plugins) {
        tally s;
        for (const auto& t : p->tallies) s.add(t);
        total.add(s);
        sums.push_back(s);
        by_plugin[p->spec.name] = {{"executions", s.executions},
                                   {"failed_executions", s.failed_executions},
                                   {"queries", s.queries},
                                   {"errors", s.errors},
                                   {"rows", s.rows},
                                   {"inserted", s.inserted},
                                   {"slow", s.slow},
                                   {"planned_errors", s.planned_errors},
                                   {"unexpected_errors", s.unexpected_errors},
                                   {"connection_errors", s.connection_errors}};
    }
    // Everything the plugin code handed to the probe; written + dropped must account for it.
    const std::uint64_t recorded = total.executions + total.queries + pool_samples;
    const bool ok = total.unexpected_errors == 0 && total.connection_errors == 0;
    if (o.json) {
        nlohmann::ordered_json j;
        j["run_id"] = data.run_id;
        j["seconds"] = seconds;
        j["tenants"] = data.tenants;
        j["plugins"] = std::move(by_plugin);
        j["total"] = {{"executions", total.executions},
                      {"failed_executions", total.failed_executions},
                      {"queries", total.queries},
                      {"errors", total.errors},
                      {"rows", total.rows},
                      {"inserted", total.inserted}};
        j["probe"] = {{"attached", stats.attached},
                      {"recorded", recorded},
                      {"written", stats.events_written},
                      {"dropped", stats.events_dropped},
                      {"registrations", stats.registrations}};
        j["stopped_by_signal"] = signals > 0;
        j["ok"] = ok;
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%-9s %10s %7s %9s %7s %9s %9s %6s\n", "plugin", "executions", "failed",
                    "queries", "errors", "rows", "inserted", "slow");
        const auto line = [](const char* name, const tally& s) {
            std::printf("%-9s %10llu %7llu %9llu %7llu %9llu %9llu %6llu\n", name,
                        (unsigned long long)s.executions, (unsigned long long)s.failed_executions,
                        (unsigned long long)s.queries, (unsigned long long)s.errors,
                        (unsigned long long)s.rows, (unsigned long long)s.inserted,
                        (unsigned long long)s.slow);
        };
        for (std::size_t i = 0; i < plugins.size(); ++i) line(plugins[i]->spec.name, sums[i]);
        line("total", total);
        std::printf(
            "%.1f s, %.0f executions/s; errors: %llu planned, %llu unexpected, %llu connection; "
            "probe: %s, %llu events recorded, %llu written, %llu dropped\n",
            seconds, seconds > 0 ? double(total.executions) / seconds : 0.0,
            (unsigned long long)total.planned_errors, (unsigned long long)total.unexpected_errors,
            (unsigned long long)total.connection_errors,
            stats.attached ? "attached to an agent" : "no agent attached",
            (unsigned long long)recorded, (unsigned long long)stats.events_written,
            (unsigned long long)stats.events_dropped);
    }
    std::fflush(stdout);
    if (!ok)
        log_line("FAILED: errors other than the planned ones while the plugins ran (see above)");
    return ok ? 0 : exit_failed;
}

}  // namespace

int main(int argc, char** argv) {
    // Before anything starts a thread (the probe's helper included): SIGINT and SIGTERM are
    // taken by the main thread only, with sigtimedwait.
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &stops, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    options o;
    std::string duration_text = "30s";
    CLI::App app{
        "A host process running four demo plugins (billing, search, reports, audit), each with "
        "its own threads and connection pool, that run real SQL against PostgreSQL; every "
        "execution and statement is recorded by the plugmon probe.",
        "plugmon-demo"};
    app.footer(
        "At start it creates the schema demo (idempotently) and seeds each tenant's rows.\n"
        "Errors on purpose: billing's every 25th execution runs a statement on a missing column\n"
        "(the execution fails); audit's every 20th re-sends an event (a unique violation it\n"
        "handles); reports' every 10th is slow (pg_sleep 0.12 s).\n"
        "SIGINT/SIGTERM: stop after the running executions and print the summary.\n"
        "Exit status: 0 ok; 1 the database is unreachable or an unplanned error happened;\n"
        "2 bad arguments.");
    app.add_option("--postgres", o.postgres,
                   "PostgreSQL URL or conninfo, e.g. postgresql://user:pw@127.0.0.1:5432/db")
        ->required();
    app.add_option("--duration", duration_text,
                   "how long to run, e.g. 30s, 500ms, 2m (0 = until a signal)")
        ->check(CLI::Validator(
            [](std::string& s) {
                return s == "0" || parse_duration(s) ? std::string{}
                                         : "not a duration (like 30s, 500ms, 2m, 0): " + s;
            },
            "DURATION"))
        ->capture_default_str();
    app.add_option("--tenants", o.tenants, "tenants (acme, globex, initech, ...)")
        ->check(CLI::Range(1u, max_tenants))
        ->capture_default_str();
    app.add_option("--rate", o.rate, "executions per second per plugin (0 = as fast as possible)")
        ->check(CLI::Range(0.0, 100000.0))
        ->capture_default_str();
    app.add_option("--workers", o.workers, "threads per plugin")
        ->check(CLI::Range(1u, max_workers))
        ->capture_default_str();
    app.add_option("--pool-size", o.pool_size, "connections per plugin")
        ->check(CLI::Range(1u, max_pool))
        ->capture_default_str();
    app.add_option("--seed", o.seed, "random seed (same seed, same choices and seeded data)")
        ->capture_default_str();
    app.add_flag("--json", o.json,
                 "print one JSON line at the end (per plugin: executions, queries, errors, ...)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : exit_usage;
    }
    o.duration = duration_text == "0" ? nanoseconds{0} : *parse_duration(duration_text);
    if (o.postgres.empty()) {
        std::fprintf(stderr, "plugmon-demo: --postgres: empty connection string\n");
        return exit_usage;
    }
    return run(o, stops);
}
