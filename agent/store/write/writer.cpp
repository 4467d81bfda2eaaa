// The store's two threads: the spooler (windows → spool) and the writer (spool → PostgreSQL).
#include "store/write/writer.hpp"

#include "common/exposition.hpp"
#include "log/log.hpp"
#include "store/schema/migrations.hpp"
#include "store/write/binary_copy.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <future>
#include <limits>
#include <optional>
#include <random>
#include <vector>

namespace plugmon::agent::store {

const char* to_string(breaker_state s) noexcept {
    switch (s) {
        case breaker_state::closed:
            return "closed";
        case breaker_state::open:
            return "open";
        case breaker_state::half_open:
            return "half_open";
    }
    return "closed";
}

namespace {

using clock = std::chrono::steady_clock;

std::int64_t to_i64(std::uint64_t v) {
    return v > std::uint64_t(std::numeric_limits<std::int64_t>::max())
               ? std::numeric_limits<std::int64_t>::max()
               : std::int64_t(v);
}

std::int64_t ns_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

/// "2026-11-23 10:00:00.000000+00": a timestamptz literal in UTC, microsecond precision.
std::string timestamptz(std::chrono::system_clock::time_point t) {
    const std::int64_t us =
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    std::int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        --secs;
    }
    const std::time_t tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06" PRId64 "+00",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  frac);
    return buf;
}

/// The UTC day number of a time point (days since 1970-01-01).
std::int64_t day_of(std::chrono::system_clock::time_point t) {
    const std::int64_t ns = ns_since_epoch(t);
    constexpr std::int64_t day = 86'400'000'000'000;
    return ns >= 0 ? ns / day : (ns - day + 1) / day;
}

/// One line of COPY's text format, built directly: libpqxx's generic per-character escaper was
/// the largest cost of the write path (16 % of all CPU with 1 KiB sketches, profiled with perf).
class copy_line {
public:
    copy_line& text(std::string_view v) {
        sep();
        // Only backslash and the control characters COPY gives a meaning need escaping; names
        // almost never hold them, so look first and append the whole value when clean.
        const auto special = [](char c) {
            return c == '\\' || (static_cast<unsigned char>(c) < 0x20);
        };
        if (std::none_of(v.begin(), v.end(), special)) {
            line_.append(v);
            return *this;
        }
        for (const char c : v) {
            switch (c) {
                case '\\':
                    line_ += "\\\\";
                    break;
                case '\n':
                    line_ += "\\n";
                    break;
                case '\r':
                    line_ += "\\r";
                    break;
                case '\t':
                    line_ += "\\t";
                    break;
                case '\b':
                    line_ += "\\b";
                    break;
                case '\f':
                    line_ += "\\f";
                    break;
                case '\v':
                    line_ += "\\v";
                    break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) {
                        char buf[8];
                        std::snprintf(buf, sizeof buf, "\\%03o",
                                      unsigned(static_cast<unsigned char>(c)));
                        line_ += buf;
                    } else {
                        line_ += c;
                    }
            }
        }
        return *this;
    }
    copy_line& number(std::int64_t v) {
        sep();
        char buf[24];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        line_.append(buf, r.ptr);
        return *this;
    }
    copy_line& number(std::uint64_t v) { return number(to_i64(v)); }
    copy_line& number(int v) { return number(std::int64_t(v)); }
    /// double precision: shortest round-trip digits; NaN and infinities by their SQL names.
    copy_line& real(double v) {
        sep();
        if (std::isnan(v)) {
            line_ += "NaN";
        } else if (std::isinf(v)) {
            line_ += v > 0 ? "Infinity" : "-Infinity";
        } else {
            char buf[32];
            const auto r = std::to_chars(buf, buf + sizeof buf, v);
            line_.append(buf, r.ptr);
        }
        return *this;
    }
    copy_line& null() {
        sep();
        line_ += "\\N";
        return *this;
    }
    const std::string& str() const { return line_; }
    void clear() {
        line_.clear();
        first_ = true;
    }

private:
    void sep() {
        if (!first_) line_ += '\t';
        first_ = false;
    }
    std::string line_;
    bool first_ = true;
};

/// COPY `table` (columns) FROM STDIN, one raw text line per call of `each_line`.
template <typename Rows, typename Fill>
void copy_into(pqxx::transaction_base& tx, const std::string& table,
               const std::vector<std::string>& columns, const Rows& rows, Fill fill) {
#include "pqxx/internal/ignore-deprecated-pre.hxx"
    // tablewriter is libpqxx 6's only way to send a line as it is (stream_to escapes every field
    // itself, character by character).
    pqxx::tablewriter w(tx, table, columns.begin(), columns.end());
#include "pqxx/internal/ignore-deprecated-post.hxx"
    copy_line line;
    for (const auto& row : rows) {
        line.clear();
        fill(line, row);
        w.write_raw_line(line.str());
    }
    w.complete();
}

/// True for errors that say nothing about the batch: the connection, the server's state, a
/// conflict to retry, or our schema missing (it is migrated again on reconnect).
bool transient(const pqxx::sql_error& e) {
    const std::string& state = e.sqlstate();
    if (state.size() != 5) return true;  // no SQLSTATE: the connection, most likely
    const std::string cls = state.substr(0, 2);
    return cls == "08" || cls == "57" || cls == "53" || cls == "40" || cls == "55" || cls == "58" ||
           cls == "XX" || cls == "42" || cls == "3D" || cls == "3F" || state == "23514";
}

const std::vector<std::string> query_columns = {
    "bucket_start", "bucket_seconds", "host",   "plugin", "op",       "tbl",
    "tenant",       "calls",          "errors", "rows",   "total_ns", "min_ns",
    "max_ns",       "p50_ns",         "p95_ns", "p99_ns", "sketch"};
const std::vector<std::string> execution_columns = {"bucket_start", "bucket_seconds", "host",
                                                    "plugin",       "tenant",         "calls",
                                                    "errors",       "wall_ns",        "cpu_ns"};
const std::vector<std::string> slow_columns = {"at",        "host",        "pid",    "plugin",
                                               "op",        "tbl",         "tenant", "fingerprint",
                                               "statement", "duration_ns", "rows",   "error"};
const std::vector<std::string> resource_columns = {"at",
                                                   "host",
                                                   "pid",
                                                   "process",
                                                   "plugin",
                                                   "rss_bytes",
                                                   "cpu_ns",
                                                   "open_fds",
                                                   "threads",
                                                   "read_bytes",
                                                   "write_bytes",
                                                   "heap_allocated_bytes",
                                                   "heap_freed_bytes"};

std::string joined(const std::vector<std::string>& cols) {
    std::string s;
    for (const auto& c : cols) s += (s.empty() ? "" : ", ") + c;
    return s;
}

// Adds into a row another batch of the same key already wrote (an agent restarted within one
// window, or the wall clock stepped back); the ledger has already excluded replays.
const std::string upsert_queries =
    "INSERT INTO plugmon.query_rollups AS t (" + joined(query_columns) + ") SELECT " +
    joined(query_columns) +
    " FROM pg_temp.stage_query_rollups"
    " ON CONFLICT (bucket_start, host, plugin, op, tbl, tenant) DO UPDATE SET"
    " calls = t.calls + excluded.calls, errors = t.errors + excluded.errors, rows = t.rows + "
    "excluded.rows,"
    " total_ns = t.total_ns + excluded.total_ns, min_ns = least(t.min_ns, excluded.min_ns),"
    " max_ns = greatest(t.max_ns, excluded.max_ns),"
    " (sketch, p50_ns, p95_ns, p99_ns) = (SELECT m, plugmon.sketch_quantile(m, 0.5),"
    " plugmon.sketch_quantile(m, 0.95), plugmon.sketch_quantile(m, 0.99)"
    " FROM (SELECT plugmon.sketch_union(t.sketch, excluded.sketch) AS m) AS merged)";
const std::string upsert_executions =
    "INSERT INTO plugmon.execution_rollups AS t (" + joined(execution_columns) + ") SELECT " +
    joined(execution_columns) +
    " FROM pg_temp.stage_execution_rollups"
    " ON CONFLICT (bucket_start, host, plugin, tenant) DO UPDATE SET"
    " calls = t.calls + excluded.calls, errors = t.errors + excluded.errors,"
    " wall_ns = t.wall_ns + excluded.wall_ns, cpu_ns = t.cpu_ns + excluded.cpu_ns";

/// Adds a batch's rows to per-table counters.
void count_rows(writer::per_table& by_table, const batch& b) {
    const window_batch& w = b.window;
    using t = writer::store_table;
    const auto at = [&](t table) -> std::atomic<std::uint64_t>& {
        return by_table[static_cast<std::size_t>(table)];
    };
    at(t::query_rollups).fetch_add(w.queries.size());
    at(t::execution_rollups).fetch_add(w.executions.size());
    at(t::slow_queries).fetch_add(w.slow.size());
    at(t::resource_samples).fetch_add(w.resources.size());
    at(t::alert_events).fetch_add(w.alerts.size());
    at(t::audit).fetch_add(b.audit.size());
}

constexpr std::int64_t maintenance_lock_key = 0x706c75676d6f6e01;  // "plugmon" + 1

}  // namespace

writer::writer(writer_options opts)
    : opts_(std::move(opts)), retention_ns_(opts_.retention.count()),
      downsample_after_ns_(opts_.downsample_after.count()) {
    std::random_device rd;
    std::mt19937_64 g((std::uint64_t(rd()) << 32) ^ rd() ^
                      std::uint64_t(clock::now().time_since_epoch().count()));
    do run_id_ = g() & 0x7fffffffffffffffull;  // a positive bigint
    while (run_id_ == 0);
    spool_ = std::make_unique<spool>(opts_.spooling);
    if (spool_->batches() != 0)
        spdlog::info("store: {} batches ({} bytes) from a previous run wait in the spool {}",
                     spool_->batches(), spool_->bytes(), spool_->dir());
}

writer::~writer() { stop(std::chrono::seconds(0)); }

void writer::start() {
    running_.store(true);
    spooler_ = std::thread([this] { spooler_loop(); });
    writer_ = std::thread([this] { writer_loop(); });
}

void writer::take_audit_from(std::shared_ptr<audit::trail> trail) {
    audit_ = std::move(trail);
    if (audit_) audit_->keep_pending();
}

void writer::submit(window_batch&& w) {
    batch b;
    b.window = std::move(w);
    // Taken here, on the sink's thread, so that entries recorded between two windows ride with
    // the next one and the HTTP thread that recorded them never waits for this queue.
    if (audit_) b.audit = audit_->take_pending();
    if (b.rows() == 0) return;
    enqueue(std::move(b));
}

void writer::submit_alerts(std::vector<alert_row> rows) {
    if (rows.empty()) return;
    batch b;
    b.window.bucket_start = rows.front().at;
    b.window.alerts = std::move(rows);
    enqueue(std::move(b));
}

void writer::enqueue(batch&& b) {
    const std::size_t rows = b.rows();
    const std::uint64_t calls = b.calls();
    b.host = opts_.host;
    b.run_id = run_id_;
    {
        std::lock_guard<std::mutex> lock(mu_);
        // Numbered under the same lock as the push, so the queue (and the spool) is in seq order
        // whichever thread submits.
        b.seq = ++seq_;
        queue_.push_back(std::move(b));
        if (queue_.size() > opts_.queue_max) {
            // The disk cannot keep up. A window's figures are the cheaper loss: alert history and
            // audit rows are given up only when nothing else is queued.
            auto victim = std::find_if(queue_.begin(), queue_.end(), [](const batch& q) {
                return q.window.alerts.empty() && q.audit.empty();
            });
            if (victim == queue_.end()) victim = queue_.begin();
            totals_.queue_dropped_batches.fetch_add(1);
            totals_.queue_dropped_rows.fetch_add(victim->rows());
            log::limited(spdlog::level::err, "store",
                         "the spool cannot keep up; dropped a queued batch",
                         {{"rows", victim->rows()},
                          {"alert_rows", victim->window.alerts.size()},
                          {"audit_rows", victim->audit.size()}});
            queue_.erase(victim);
        }
    }
    totals_.batches_submitted.fetch_add(1);
    totals_.rows_submitted.fetch_add(rows);
    totals_.calls_submitted.fetch_add(calls);
    queued_cv_.notify_one();
}

bool writer::stop(std::chrono::nanoseconds timeout) {
    if (!running_.exchange(false)) return true;
    // The entries recorded since the final window, as a batch of their own (like submit_alerts).
    if (audit_) {
        batch b;
        b.audit = audit_->take_pending();
        if (!b.audit.empty()) {
            b.window.bucket_start = b.audit.front().at;
            enqueue(std::move(b));
        }
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
        deadline_ = clock::now() + std::chrono::duration_cast<clock::duration>(timeout);
    }
    queued_cv_.notify_all();
    spooled_cv_.notify_all();
    // Join both threads, but do not wait past the deadline (plus a grace second) for a database
    // call that blocks: everything is in the spool by then.
    auto joined = std::async(std::launch::async, [this] {
        if (spooler_.joinable()) spooler_.join();
        if (writer_.joinable()) writer_.join();
    });
    if (joined.wait_for(timeout + std::chrono::seconds(1)) == std::future_status::ready)
        return true;
    spdlog::warn("store: the writer is still in a database call; {} batches stay in the spool",
                 spool_->batches());
    // The future's destructor would wait; leak the joining thread instead, the process is exiting.
    new std::future<void>(std::move(joined));
    return false;
}

// ---- spooler thread -------------------------------------------------------------------------

void writer::spooler_loop() {
    std::deque<batch> failed;  // windows the spool refused (disk full, I/O error), retried
    for (;;) {
        std::deque<batch> work;
        bool stopping;
        {
            std::unique_lock<std::mutex> lock(mu_);
            queued_cv_.wait_for(lock, std::chrono::seconds(1),
                                [this] { return stop_ || !queue_.empty(); });
            work.swap(queue_);
            stopping = stop_;
        }
        for (auto& b : work) failed.push_back(std::move(b));
        bool appended = false;
        while (!failed.empty()) {
            try {
                spool_->append(failed.front());
                failed.pop_front();
                appended = true;
            } catch (const std::exception& e) {
                spdlog::error("store: cannot write to the spool ({}); {} windows held in memory",
                              e.what(), failed.size());
                break;
            }
        }
        while (failed.size() > opts_.queue_max) {
            totals_.spool_failed_batches.fetch_add(1);
            totals_.spool_failed_rows.fetch_add(failed.front().rows());
            failed.pop_front();
        }
        if (appended) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                spooled_pending_ = true;
            }
            spooled_cv_.notify_one();
        }
        if (stopping) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                if (!queue_.empty()) continue;  // a last window arrived while spooling
                spooler_done_ = true;
            }
            for (const auto& b : failed) {
                totals_.spool_failed_batches.fetch_add(1);
                totals_.spool_failed_rows.fetch_add(b.rows());
            }
            if (!failed.empty())
                spdlog::error(
                    "store: {} windows could not be spooled at exit and are lost (counted)",
                    failed.size());
            spooled_cv_.notify_all();
            return;
        }
    }
}

// ---- writer thread --------------------------------------------------------------------------

void writer::writer_loop() {
    for (;;) {
        bool stopping, spooler_done;
        clock::time_point deadline;
        {
            std::unique_lock<std::mutex> lock(mu_);
            const auto now = clock::now();
            if (!stop_ && !spooled_pending_) {
                // Wake for a new record, a stop, the end of a backoff, or once a second.
                auto wake = now + std::chrono::seconds(1);
                if (next_attempt_ > now) wake = std::min(wake, next_attempt_);
                spooled_cv_.wait_until(lock, wake);
            } else if (stop_ && next_attempt_ > now && next_attempt_ < deadline_) {
                spooled_cv_.wait_until(lock, next_attempt_);  // the backoff, while time is left
            } else if (stop_ && !spooler_done_ && !spooled_pending_) {
                spooled_cv_.wait_for(lock, std::chrono::milliseconds(10));  // the last windows
            }
            spooled_pending_ = false;
            stopping = stop_;
            spooler_done = spooler_done_;
            deadline = deadline_;
        }
        const auto now = clock::now();
        const bool may_try = now >= next_attempt_;
        if (stopping && (now >= deadline || next_attempt_ >= deadline)) break;
        if (may_try && (spool_->batches() != 0 || !conn_ || now >= next_maintenance_))
            pump(stopping);
        if (stopping && spooler_done && spool_->batches() == 0) break;
    }
    conn_.reset();
    connected_.store(false);
}

bool writer::pump(bool stopping) {
    try {
        if (!conn_) connect();
        if (clock::now() >= next_maintenance_) maintain();
        while (auto e = spool_->front()) {
            if (e->id != failing_record_) {
                failing_record_ = e->id;
                failing_attempts_ = 0;
            }
            try {
                write(e->b);
            } catch (const pqxx::broken_connection&) {
                throw;
            } catch (const pqxx::in_doubt_error&) {
                throw;
            } catch (const pqxx::sql_error& x) {
                if (transient(x) || ++failing_attempts_ < opts_.max_batch_attempts) throw;
                totals_.rejected_batches.fetch_add(1);
                totals_.rejected_rows.fetch_add(e->b.rows());
                log::error("store", "batch rejected by PostgreSQL, dropped",
                           {{"batch", fmt::format("{}/{}", e->b.run_id, e->b.seq)},
                            {"rows", e->b.rows()},
                            {"attempts", failing_attempts_},
                            {"error", x.what()}});
            }
            spool_->pop(e->id);
            succeeded();
            if (stopping) {
                std::lock_guard<std::mutex> lock(mu_);
                if (clock::now() >= deadline_) break;
            }
        }
        succeeded();
        return true;
    } catch (const pqxx::broken_connection& e) {
        failed(std::string("connection lost: ") + e.what(), true);
    } catch (const pqxx::in_doubt_error& e) {
        failed(std::string("commit in doubt (the batch is retried; the ledger makes that safe): ") +
                   e.what(),
               true);
    } catch (const schema_error& e) {
        failed(std::string("schema: ") + e.what(), true);
    } catch (const pqxx::sql_error& e) {
        failed(std::string(e.what()) + " [SQLSTATE " + e.sqlstate() + "]", true);
    } catch (const std::exception& e) {
        failed(e.what(), true);
    }
    return false;
}

/// Moves the SQL sketch functions to the C extension when it has become available, and says
/// which backend the fleet-wide quantiles use (once per process, and on a switch). A failure is
/// logged, not fatal: the PL/pgSQL functions give the same answers.
void writer::log_sketch_backend(pqxx::connection& c, int version) {
    try {
        const auto r = prefer_sketch_extension(c, version);
        if (r.switched)
            spdlog::info("store: sketch functions switched to the C extension plugmon_sketch");
        else if (!r.backend.empty() && !sketch_backend_logged_)
            spdlog::info("store: sketch functions in use: {}",
                         r.backend == "c"
                             ? "the C extension plugmon_sketch"
                             : "PL/pgSQL (install the plugmon_sketch extension for speed)");
        sketch_backend_logged_ = true;
    } catch (const std::exception& e) {
        spdlog::warn("store: could not check the sketch functions' backend: {}", e.what());
    }
}

void writer::connect() {
    ++totals_.connects;
    {
        // The migrations take a pqxx::connection, which the writer's pg_connection (a libpqxx
        // connection with another policy type) is not: they get a short connection of their own.
        pqxx::connection m(opts_.conninfo);
        if (opts_.migrate) {
            const migration_report r =
                migrate(m, false, opts_.agent_version,
                        [](const std::string& line) { spdlog::info("store: {}", line); });
            schema_version_.store(r.to_version);
            log_sketch_backend(m, r.to_version);
        } else {
            schema_version_.store(schema_version(m));
        }
    }
    auto c = std::make_unique<pg_connection>(opts_.conninfo);
    pqxx::nontransaction tx(*c);
    tx.exec("SET statement_timeout = '60s'");
    // Sketches above ~2 KiB are compressed; lz4 costs a fraction of the default pglz (which was
    // 13 % of the server's time in store_bench). Servers built without lz4 keep pglz.
    if (tx.exec1("SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' AND "
                 "'lz4' = ANY(enumvals)")[0]
            .as<int>() == 1)
        tx.exec("SET default_toast_compression = 'lz4'");
    tx.exec(
        "CREATE TEMP TABLE IF NOT EXISTS stage_query_rollups (LIKE plugmon.query_rollups INCLUDING "
        "DEFAULTS)"
        " ON COMMIT DELETE ROWS");
    tx.exec(
        "CREATE TEMP TABLE IF NOT EXISTS stage_execution_rollups (LIKE plugmon.execution_rollups "
        "INCLUDING "
        "DEFAULTS) ON COMMIT DELETE ROWS");
    // Spelled out rather than LIKE plugmon.alert_events: on a schema older than version 4 (with
    // migrate off) windows still get written, and only alert rows fail, naming the table.
    tx.exec(
        "CREATE TEMP TABLE IF NOT EXISTS stage_alert_events (host text, seq bigint, at "
        "timestamptz, fingerprint text, rule text, episode text, event text, state text, severity "
        "text, value double precision, detail text, labels jsonb, annotations jsonb, ack jsonb, "
        "active_at timestamptz, fired_at timestamptz, resolved_at timestamptz) ON COMMIT DELETE "
        "ROWS");
    // Spelled out as well: before schema version 7 only audit rows fail, naming plugmon.audit.
    tx.exec(
        "CREATE TEMP TABLE IF NOT EXISTS stage_audit (host text, run_id bigint, seq bigint, at "
        "timestamptz, actor text, client text, action text, target text, status integer, detail "
        "text) ON COMMIT DELETE ROWS");
    tx.commit();
    conn_ = std::move(c);
    ensured_from_day_ = 0;
    ensured_to_day_ = -1;
    connected_.store(true);
    spdlog::info("store: connected to PostgreSQL (schema version {}), {} batches in the spool",
                 schema_version_.load(), spool_->batches());
}

void writer::set_maintenance(std::chrono::nanoseconds retention,
                             std::chrono::nanoseconds downsample_after) {
    retention_ns_.store(retention.count(), std::memory_order_relaxed);
    downsample_after_ns_.store(downsample_after.count(), std::memory_order_relaxed);
}

void writer::maintain() {
    // One agent at a time does it; the others skip this round.
    const auto advisory = [this](const char* fn) {
        pqxx::nontransaction tx(*conn_);
        return tx.exec_params1(std::string("SELECT ") + fn + "($1)", maintenance_lock_key)[0]
            .as<bool>();
    };
    if (advisory("pg_try_advisory_lock")) {
        try {
            pqxx::work tx(*conn_);
            tx.exec("SET LOCAL statement_timeout = 0");
            const auto secs = [](std::chrono::nanoseconds d) {
                return std::int64_t(std::chrono::duration_cast<std::chrono::seconds>(d).count());
            };
            const pqxx::result r = tx.exec_params(
                "SELECT action, object, rows FROM plugmon.maintain(now(), $1, $2 * interval '1 "
                "second', $3 * "
                "interval '1 second')",
                opts_.premake_days,
                secs(
                    std::chrono::nanoseconds(downsample_after_ns_.load(std::memory_order_relaxed))),
                secs(std::chrono::nanoseconds(retention_ns_.load(std::memory_order_relaxed))));
            tx.commit();
            for (const auto& row : r)
                spdlog::log(std::string_view(row[0].c_str()) == "create_partition"
                                ? spdlog::level::debug
                                : spdlog::level::info,
                            "store: maintenance: {} {} ({} rows)", row[0].c_str(), row[1].c_str(),
                            row[2].is_null() ? 0 : row[2].as<long long>());
        } catch (...) {
            advisory("pg_advisory_unlock");
            throw;
        }
        advisory("pg_advisory_unlock");
        totals_.maintenance_runs.fetch_add(1);
    }
    ensured_from_day_ = 0;
    ensured_to_day_ = -1;  // partitions may have been dropped or merged away
    next_maintenance_ =
        clock::now() + std::chrono::duration_cast<clock::duration>(opts_.maintenance_interval);
}

void writer::ensure_partitions(const batch& b) {
    const window_batch& w = b.window;
    std::int64_t lo = day_of(w.bucket_start), hi = lo;
    const auto widen = [&](std::chrono::system_clock::time_point t) {
        lo = std::min(lo, day_of(t));
        hi = std::max(hi, day_of(t));
    };
    for (const auto& s : w.slow) widen(s.at);
    for (const auto& r : w.resources) widen(r.at);
    if (lo >= ensured_from_day_ && hi <= ensured_to_day_) return;
    constexpr std::int64_t day_ns = 86'400'000'000'000;
    const auto at = [](std::int64_t day) {
        return timestamptz(std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::nanoseconds(day * day_ns))));
    };
    pqxx::nontransaction tx(*conn_);
    tx.exec_params("SELECT plugmon.ensure_partitions($1::timestamptz, $2::timestamptz)", at(lo),
                   at(hi));
    if (ensured_to_day_ < ensured_from_day_) {
        ensured_from_day_ = lo;
        ensured_to_day_ = hi;
    } else {
        ensured_from_day_ = std::min(ensured_from_day_, lo);
        ensured_to_day_ = std::max(ensured_to_day_, hi);
    }
}

namespace {

/// The slow-query samples and resource rows of a batch, COPYed (binary) in the batch's
/// transaction, which is open on `c`.
void copy_samples(pg_connection& c, const batch& b) {
    const window_batch& w = b.window;
    if (!w.slow.empty()) {
        binary_copy copy(c, "plugmon.slow_queries", slow_columns);
        for (const slow_sample& q : w.slow) {
            copy.row(12).timestamptz(q.at).text(b.host).int4(q.pid).text(q.plugin).text(q.op);
            copy.text(q.table).text(q.tenant).int8_bits(q.fingerprint).text(q.statement);
            copy.int8_sat(q.duration_ns).int8_sat(q.rows).boolean(q.error);
        }
        copy.complete();
    }
    if (!w.resources.empty()) {
        binary_copy copy(c, "plugmon.resource_samples", resource_columns);
        for (const resource_row& r : w.resources) {
            copy.row(13).timestamptz(r.at).text(b.host).int4(r.pid).text(r.process);
            copy.text(r.plugin).int8_sat(r.rss_bytes).int8_sat(r.cpu_ns).int8_sat(r.open_fds);
            copy.int8_sat(r.threads).int8_sat(r.read_bytes).int8_sat(r.write_bytes);
            copy.int8_sat(r.heap_allocated_bytes).int8_sat(r.heap_freed_bytes);
        }
        copy.complete();
    }
}

const std::vector<std::string> alert_stage_columns = {
    "host",        "seq",   "at",        "fingerprint", "rule",       "episode",
    "event",       "state", "severity",  "value",       "detail",     "labels",
    "annotations", "ack",   "active_at", "fired_at",    "resolved_at"};

// Every event once: (host, fingerprint, seq) is its identity, so a batch written again (by
// another run, or with its ledger entry pruned) adds nothing.
const std::string insert_alert_events =
    "INSERT INTO plugmon.alert_events (host, seq, at, fingerprint, rule, episode, event, state,"
    " severity, value, detail, labels, annotations, ack)"
    " SELECT host, seq, at, fingerprint, rule, episode, event, state, severity, value, detail,"
    " labels, annotations, ack FROM pg_temp.stage_alert_events"
    " ON CONFLICT (host, fingerprint, seq) DO NOTHING";
// The latest event of each alert in the batch (one per key: an upsert may not touch a row twice),
// and only if it is newer than the stored one: batches replayed late never bring a state back.
// Silence events (no fingerprint) have no alert row.
const std::string upsert_alerts =
    "INSERT INTO plugmon.alerts (host, fingerprint, rule, episode, state, severity, value, labels,"
    " annotations, ack, active_at, fired_at, resolved_at, updated_at, last_seq)"
    " SELECT DISTINCT ON (host, fingerprint) host, fingerprint, rule, episode, state, severity,"
    " value, labels, annotations, ack, active_at, fired_at, resolved_at, at, seq"
    " FROM pg_temp.stage_alert_events WHERE fingerprint <> ''"
    " ORDER BY host, fingerprint, seq DESC"
    " ON CONFLICT (host, fingerprint) DO UPDATE SET rule = excluded.rule,"
    " episode = excluded.episode, state = excluded.state, severity = excluded.severity,"
    " value = excluded.value, labels = excluded.labels, annotations = excluded.annotations,"
    " ack = excluded.ack, active_at = excluded.active_at, fired_at = excluded.fired_at,"
    " resolved_at = excluded.resolved_at, updated_at = excluded.updated_at,"
    " last_seq = excluded.last_seq"
    " WHERE plugmon.alerts.last_seq < excluded.last_seq";

/// Text PostgreSQL accepts: it refuses NUL bytes in text and jsonb alike.
std::string without_nul(const std::string& s) {
    if (s.find('\0') == std::string::npos) return s;
    std::string out = s;
    out.erase(std::remove(out.begin(), out.end(), '\0'), out.end());
    return out;
}

/// `v` if jsonb takes it as it is; else `v` kept as a JSON string, so that one malformed value
/// from the engine costs its shape, not the whole batch (which PostgreSQL would refuse). jsonb
/// also refuses \u0000, which a JSON parser accepts. Empty: `empty` (e.g. "{}"), or SQL NULL
/// when `empty` is null.
std::optional<std::string> jsonb_text(const std::string& v, const char* empty, bool& repaired) {
    if (v.empty() || (empty == nullptr && v == "null"))
        return empty ? std::optional<std::string>(empty) : std::nullopt;
    if (v.find("\\u0000") == std::string::npos && nlohmann::json::accept(v)) return v;
    repaired = true;
    return nlohmann::json(without_nul(v))
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// A batch's alert rows: COPYed to a staging table, then into plugmon.alert_events and
/// plugmon.alerts (see insert_alert_events and upsert_alerts), in the batch's transaction.
void write_alerts(pqxx::transaction_base& tx, const batch& b) {
    const window_batch& w = b.window;
    if (w.alerts.empty()) return;
    bool repaired = false;
    const auto json = [&](copy_line& l, const std::string& v, const char* empty) {
        if (const auto text = jsonb_text(v, empty, repaired))
            l.text(*text);
        else
            l.null();
    };
    const auto time = [](copy_line& l, std::chrono::system_clock::time_point t) {
        if (t.time_since_epoch().count() == 0)
            l.null();  // not yet
        else
            l.text(timestamptz(t));
    };
    copy_into(tx, "pg_temp.stage_alert_events", alert_stage_columns, w.alerts,
              [&](copy_line& l, const alert_row& a) {
                  l.text(b.host).number(a.seq).text(timestamptz(a.at));
                  l.text(without_nul(a.fingerprint)).text(without_nul(a.rule));
                  l.text(without_nul(a.episode)).text(without_nul(a.event));
                  l.text(without_nul(a.state)).text(without_nul(a.severity)).real(a.value);
                  l.text(without_nul(a.detail));
                  json(l, a.labels_json, "{}");
                  json(l, a.annotations_json, "{}");
                  json(l, a.ack_json, nullptr);
                  time(l, a.active_at);
                  time(l, a.fired_at);
                  time(l, a.resolved_at);
              });
    tx.exec(insert_alert_events);
    tx.exec(upsert_alerts);
    if (repaired)
        spdlog::warn(
            "store: batch {}/{}: an alert row's labels, annotations or ack was not valid JSON; "
            "stored as a JSON string",
            b.run_id, b.seq);
}

const std::vector<std::string> audit_columns = {"host",   "run_id", "seq",    "at",     "actor",
                                                "client", "action", "target", "status", "detail"};

// (host, run_id, seq) is the entry's identity: a batch written again adds nothing.
const std::string insert_audit = "INSERT INTO plugmon.audit (" + joined(audit_columns) +
                                 ") SELECT " + joined(audit_columns) +
                                 " FROM pg_temp.stage_audit ON CONFLICT DO NOTHING";

/// A batch's audit rows: COPYed to a staging table, then into plugmon.audit (see insert_audit),
/// in the batch's transaction.
void write_audit(pqxx::transaction_base& tx, const batch& b) {
    if (b.audit.empty()) return;
    copy_into(tx, "pg_temp.stage_audit", audit_columns, b.audit,
              [&](copy_line& l, const audit::entry& e) {
                  l.text(b.host).number(b.run_id).number(e.seq).text(timestamptz(e.at));
                  l.text(without_nul(e.actor)).text(without_nul(e.client));
                  l.text(without_nul(e.action)).text(without_nul(e.target));
                  l.number(std::int64_t{e.status}).text(without_nul(e.detail));
              });
    tx.exec(insert_audit);
}

}  // namespace

void writer::write(const batch& b) {
    const auto t0 = clock::now();
    const window_batch& w = b.window;
    // A batch of alert or audit rows alone (submit_alerts, stop) has no row in a partitioned table.
    if (b.rows() != w.alerts.size() + b.audit.size()) ensure_partitions(b);
    const std::string bucket = timestamptz(w.bucket_start);
    const auto bucket_seconds = static_cast<std::int32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(w.length).count());

    pqxx::work tx(*conn_);
    const pqxx::result claimed = tx.exec_params(
        "INSERT INTO plugmon.write_batches (host, run_id, seq, bucket_start, rows) VALUES ($1, $2, "
        "$3, $4, $5)"
        " ON CONFLICT DO NOTHING",
        b.host, to_i64(b.run_id), to_i64(b.seq), bucket, static_cast<std::int64_t>(b.rows()));
    if (claimed.affected_rows() == 0) {
        tx.commit();
        totals_.batches_duplicate.fetch_add(1);
        count_rows(totals_.rows_duplicate, b);
        log::info("store",
                  "batch already written (a replay after an unacknowledged commit); skipped",
                  {{"batch", fmt::format("{}/{}", b.run_id, b.seq)}});
        return;
    }
    // The rollups go straight into their tables: the ledger already rules out a replay, so a key
    // can only exist if another batch of this host wrote the same window (an agent restarted
    // within it, or the wall clock stepped back). Then the COPY fails as a whole, is rolled back to
    // its savepoint, and the batch goes through staging tables and INSERT … ON CONFLICT, which
    // adds into the existing rows (merging sketches). The direct COPY is twice as fast.
    // Binary COPY: the sketch goes as its bytes (text COPY doubled them into hex, which the server
    // then parsed back), numbers and times without printing and parsing.
    const auto copy_rows = [&](const char* table, bool queries) {
        if (queries) {
            binary_copy c(*conn_, table, query_columns);
            for (const query_rollup& q : w.queries) {
                c.row(17).timestamptz(w.bucket_start).int4(bucket_seconds).text(b.host);
                c.text(q.plugin).text(q.op).text(q.table).text(q.tenant);
                c.int8_sat(q.calls).int8_sat(q.errors).int8_sat(q.rows).int8_sat(q.total_ns);
                c.int8_sat(q.min_ns).int8_sat(q.max_ns).int8_sat(q.p50_ns);
                c.int8_sat(q.p95_ns).int8_sat(q.p99_ns).bytea(q.sketch);
            }
            c.complete();
        } else {
            binary_copy c(*conn_, table, execution_columns);
            for (const execution_rollup& x : w.executions) {
                c.row(9).timestamptz(w.bucket_start).int4(bucket_seconds).text(b.host);
                c.text(x.plugin).text(x.tenant).int8_sat(x.calls).int8_sat(x.errors);
                c.int8_sat(x.wall_ns).int8_sat(x.cpu_ns);
            }
            c.complete();
        }
    };
    bool merged = false;
    const auto write_rollups = [&](bool queries, const char* target, const char* stage,
                                   const std::string& upsert) {
        if (queries ? w.queries.empty() : w.executions.empty()) return;
        // The savepoint by hand, not pqxx::subtransaction: that one only sends SAVEPOINT when a
        // statement first goes through it, and the binary COPY bypasses libpqxx.
        tx.exec("SAVEPOINT direct");
        try {
            copy_rows(target, queries);
            tx.exec("RELEASE SAVEPOINT direct");
            return;
        } catch (const pqxx::unique_violation&) {
            merged = true;
        }
        tx.exec("ROLLBACK TO SAVEPOINT direct");
        copy_rows(stage, queries);
        tx.exec(upsert);
    };
    write_rollups(true, "plugmon.query_rollups", "pg_temp.stage_query_rollups", upsert_queries);
    write_rollups(false, "plugmon.execution_rollups", "pg_temp.stage_execution_rollups",
                  upsert_executions);
    copy_samples(*conn_, b);
    write_alerts(tx, b);
    write_audit(tx, b);
    tx.commit();

    observe_latency(std::chrono::duration<double>(clock::now() - t0).count());
    totals_.batches_written.fetch_add(1);
    count_rows(totals_.rows_written, b);
    totals_.calls_written.fetch_add(b.calls());
    if (merged) totals_.merged_batches.fetch_add(1);
}

void writer::failed(const std::string& what, bool connection_lost) {
    totals_.failures.fetch_add(1);
    if (connection_lost) {
        conn_.reset();
        connected_.store(false);
    }
    ++consecutive_failures_;
    // Exponential backoff with "equal jitter": half the step fixed, half random, so agents
    // that lost the same server do not come back in lockstep.
    const double step =
        std::min<double>(double(opts_.backoff_max.count()),
                         double(opts_.backoff_initial.count()) *
                             std::pow(2.0, std::min(consecutive_failures_ - 1, 30u)));
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const double wait_ns = step / 2 + std::uniform_real_distribution<double>(0, step / 2)(rng);
    next_attempt_ = clock::now() + std::chrono::duration_cast<clock::duration>(
                                       std::chrono::nanoseconds(std::int64_t(wait_ns)));
    const bool opened = consecutive_failures_ >= opts_.breaker_threshold;
    breaker_.store(int(opened ? breaker_state::open : breaker_state::closed));
    {
        std::lock_guard<std::mutex> lock(mu_);
        last_error_ = what;
    }
    // Rate-limited: an outage does not flood the log, and the next line says what it held back.
    log::limited(spdlog::level::warn, "store", "database call failed",
                 {{"error", what},
                  {"failures_in_a_row", consecutive_failures_},
                  {"retry_in_s", wait_ns / 1e9},
                  {"spooled_batches", spool_->batches()}});
}

void writer::succeeded() {
    if (consecutive_failures_ != 0)
        log::info(
            "store", "PostgreSQL is back; replaying the spool",
            {{"failed_attempts", consecutive_failures_}, {"spooled_batches", spool_->batches()}});
    consecutive_failures_ = 0;
    breaker_.store(int(breaker_state::closed));
    std::lock_guard<std::mutex> lock(mu_);
    last_success_ = std::chrono::system_clock::now();
}

void writer::observe_latency(double seconds) {
    std::size_t i = 0;
    while (i < latency_bounds.size() && seconds > latency_bounds[i]) ++i;
    latency_counts_[i].fetch_add(1);
    latency_sum_us_.fetch_add(std::uint64_t(seconds * 1e6));
}

// ---- reporting ------------------------------------------------------------------------------

std::string writer::state() const {
    if (!running_.load() && !connected_.load()) return "stopped";
    if (breaker_state(breaker_.load()) == breaker_state::open) return "circuit_open";
    return connected_.load() ? "connected" : "connecting";
}

nlohmann::json writer::status() const {
    std::string error;
    std::chrono::system_clock::time_point success;
    {
        std::lock_guard<std::mutex> lock(mu_);
        error = last_error_;
        success = last_success_;
    }
    nlohmann::json rows = nlohmann::json::object(), duplicate_rows = nlohmann::json::object();
    for (std::size_t i = 0; i < tables.size(); ++i) {
        rows[tables[i]] = totals_.rows_written[i].load();
        duplicate_rows[tables[i]] = totals_.rows_duplicate[i].load();
    }
    return {
        {"state", state()},
        {"breaker", to_string(breaker_state(breaker_.load()))},
        {"host", opts_.host},
        {"run_id", run_id_},
        {"schema_version", schema_version_.load()},
        {"submitted",
         {{"batches", totals_.batches_submitted.load()},
          {"rows", totals_.rows_submitted.load()},
          {"calls", totals_.calls_submitted.load()}}},
        {"written",
         {{"batches", totals_.batches_written.load()},
          {"duplicates", totals_.batches_duplicate.load()},
          {"calls", totals_.calls_written.load()},
          {"rows", rows},
          {"duplicate_rows", duplicate_rows}}},
        {"spool",
         {{"dir", spool_->dir()},
          {"batches", spool_->batches()},
          {"bytes", spool_->bytes()},
          {"dropped",
           {{"full",
             {{"batches", spool_->dropped_batches(drop_reason::full)},
              {"rows", spool_->dropped_rows(drop_reason::full)}}},
            {"corrupt",
             {{"batches", spool_->dropped_batches(drop_reason::corrupt)},
              {"rows", spool_->dropped_rows(drop_reason::corrupt)}}}}}}},
        {"dropped",
         {{"queue_full",
           {{"batches", totals_.queue_dropped_batches.load()},
            {"rows", totals_.queue_dropped_rows.load()}}},
          {"spool_error",
           {{"batches", totals_.spool_failed_batches.load()},
            {"rows", totals_.spool_failed_rows.load()}}},
          {"rejected",
           {{"batches", totals_.rejected_batches.load()},
            {"rows", totals_.rejected_rows.load()}}}}},
        {"merged", totals_.merged_batches.load()},
        {"failures", totals_.failures.load()},
        {"connects", totals_.connects.load()},
        {"maintenance_runs", totals_.maintenance_runs.load()},
        {"last_error", error},
        {"last_success_unix",
         success.time_since_epoch().count() == 0
             ? 0.0
             : std::chrono::duration<double>(success.time_since_epoch()).count()},
    };
}

void writer::render_metrics(std::string& out) const {
    namespace x = exposition;
    x::family(out, "plugmon_store_rows_written_total", "counter",
              "Rows committed to PostgreSQL, by table.");
    for (std::size_t i = 0; i < tables.size(); ++i)
        x::sample(out, "plugmon_store_rows_written_total", {{"table", tables[i]}},
                  totals_.rows_written[i].load());
    x::family(out, "plugmon_store_batches_total", "counter",
              "Batches (one per flush window) by outcome: written, or duplicate (already "
              "committed: a replay).");
    x::sample(out, "plugmon_store_batches_total", {{"result", "written"}},
              totals_.batches_written.load());
    x::sample(out, "plugmon_store_batches_total", {{"result", "duplicate"}},
              totals_.batches_duplicate.load());
    x::family(out, "plugmon_store_batches_submitted_total", "counter",
              "Windows handed to the store.");
    x::sample(out, "plugmon_store_batches_submitted_total", {}, totals_.batches_submitted.load());
    x::family(out, "plugmon_store_write_failures_total", "counter",
              "Failed attempts to connect or write (each is retried).");
    x::sample(out, "plugmon_store_write_failures_total", {}, totals_.failures.load());
    x::family(out, "plugmon_store_write_duration_seconds", "histogram",
              "Time to write one batch (one transaction).");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= latency_bounds.size(); ++i) {
        cumulative += latency_counts_[i].load();
        char le[32];
        if (i < latency_bounds.size())
            std::snprintf(le, sizeof le, "%g", latency_bounds[i]);
        else
            std::snprintf(le, sizeof le, "+Inf");
        x::sample(out, "plugmon_store_write_duration_seconds_bucket", {{"le", le}}, cumulative);
    }
    x::sample(out, "plugmon_store_write_duration_seconds_sum", {},
              double(latency_sum_us_.load()) / 1e6);
    x::sample(out, "plugmon_store_write_duration_seconds_count", {}, cumulative);
    x::family(out, "plugmon_store_spool_bytes", "gauge", "Bytes of batches waiting in the spool.");
    x::sample(out, "plugmon_store_spool_bytes", {}, spool_->bytes());
    x::family(out, "plugmon_store_spool_batches", "gauge", "Batches waiting in the spool.");
    x::sample(out, "plugmon_store_spool_batches", {}, spool_->batches());
    x::family(
        out, "plugmon_store_dropped_batches_total", "counter",
        "Batches lost, by reason: spool_full (oldest evicted at the size cap), corrupt (failed its "
        "checksum), spool_error (could not be written to disk), queue_full, rejected (refused by "
        "PostgreSQL repeatedly).");
    x::family(out, "plugmon_store_dropped_rows_total", "counter",
              "Rows of the batches lost, by reason.");
    const std::array<std::pair<const char*, std::array<std::uint64_t, 2>>, 5> drops = {{
        {"spool_full",
         {spool_->dropped_batches(drop_reason::full), spool_->dropped_rows(drop_reason::full)}},
        {"corrupt",
         {spool_->dropped_batches(drop_reason::corrupt),
          spool_->dropped_rows(drop_reason::corrupt)}},
        {"spool_error", {totals_.spool_failed_batches.load(), totals_.spool_failed_rows.load()}},
        {"queue_full", {totals_.queue_dropped_batches.load(), totals_.queue_dropped_rows.load()}},
        {"rejected", {totals_.rejected_batches.load(), totals_.rejected_rows.load()}},
    }};
    for (const auto& [reason, v] : drops)
        x::sample(out, "plugmon_store_dropped_batches_total", {{"reason", reason}}, v[0]);
    for (const auto& [reason, v] : drops)
        x::sample(out, "plugmon_store_dropped_rows_total", {{"reason", reason}}, v[1]);
    x::family(out, "plugmon_store_circuit_state", "gauge",
              "The circuit breaker in front of PostgreSQL: 1 for the current state.");
    const int b = breaker_.load();
    for (int s = 0; s < 3; ++s)
        x::sample(out, "plugmon_store_circuit_state", {{"state", to_string(breaker_state(s))}},
                  std::uint64_t(b == s ? 1 : 0));
    x::family(out, "plugmon_store_connected", "gauge",
              "1 while the writer holds a PostgreSQL connection.");
    x::sample(out, "plugmon_store_connected", {}, std::uint64_t(connected_.load() ? 1 : 0));
    x::family(out, "plugmon_store_schema_version", "gauge",
              "Schema version of the database (0: not yet known).");
    x::sample(out, "plugmon_store_schema_version", {}, std::uint64_t(schema_version_.load()));
}

}  // namespace plugmon::agent::store
