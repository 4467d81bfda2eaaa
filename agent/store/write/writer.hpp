// The PostgreSQL store's write path: windows → write-ahead spool → one transaction per batch,
// with reconnection, backoff, a circuit breaker and self-metrics.
#pragma once

#include "audit/trail.hpp"
#include "pipeline/window.hpp"
#include "pipeline/window_sink.hpp"
#include "store/write/spool.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <pqxx/connection>

namespace plugmon::agent::store {

class pg_connection;  // store/write/binary_copy.hpp

/// closed: writing; open: failing, waiting out the backoff; half_open: the probe after a wait.
enum class breaker_state : int { closed = 0, open = 1, half_open = 2 };
const char* to_string(breaker_state s) noexcept;

struct writer_options {
    std::string conninfo;       ///< libpq URL or key=value string (may hold a password)
    std::string host;           ///< written with every row
    std::string agent_version;  ///< recorded with each migration
    spool::options spooling;
    /// Waits between attempts grow from backoff_initial to backoff_max (doubling, with jitter).
    std::chrono::nanoseconds backoff_initial = std::chrono::milliseconds(250);
    std::chrono::nanoseconds backoff_max = std::chrono::seconds(30);
    /// Consecutive failures after which the circuit opens.
    unsigned breaker_threshold = 3;
    /// Maintenance (partitions ahead, downsampling, retention), at connect and this often.
    std::chrono::nanoseconds maintenance_interval = std::chrono::hours(1);
    std::chrono::nanoseconds retention = std::chrono::hours(24 * 30);
    std::chrono::nanoseconds downsample_after = std::chrono::hours(48);
    int premake_days = 3;
    /// Apply the embedded migrations on each connect (a no-op when the schema is current).
    bool migrate = true;
    /// Windows waiting for the spooler thread, at most; beyond, the oldest is dropped and counted.
    std::size_t queue_max = 256;
    /// A batch that fails this many times in a row on a healthy connection is dropped and
    /// counted ("rejected") instead of blocking every later batch.
    unsigned max_batch_attempts = 5;
};

/// Writes every window to PostgreSQL exactly once.
///
/// submit() hands a window to the spooler thread, which appends it to the spool (the write-ahead
/// log, on local disk) so a window survives an agent crash and any database outage (up to the
/// spool's cap; what the cap evicts is counted). The writer thread replays the spool oldest
/// first; each batch is one transaction: claim (host, run_id, seq) in plugmon.write_batches
/// (ON CONFLICT DO NOTHING: a batch already there was committed before, e.g. by a commit whose
/// acknowledgement was lost, and is skipped), COPY the rollups straight into their partitioned
/// tables, COPY the slow queries and resource samples, COMMIT. These COPYs use the binary format
/// (libpq's copy calls on the same connection and transaction; see binary_copy.hpp). Only then is the record popped
/// from the spool. Should a rollup's key exist already (another batch of this host wrote the same
/// window: the agent restarted within it, or the clock stepped back), that COPY is rolled back to
/// a savepoint and the rows go through a temporary staging table and INSERT … ON CONFLICT DO
/// UPDATE, which adds the counts and merges the sketches.
///
/// A batch's alert rows (window_batch::alerts, or the rows of submit_alerts()) go into the same
/// transaction: each row into plugmon.alert_events (INSERT … ON CONFLICT (host, fingerprint, seq)
/// DO NOTHING), and the latest row of each fingerprint into plugmon.alerts (ON CONFLICT (host,
/// fingerprint) DO UPDATE … WHERE last_seq < excluded.last_seq: the state only moves forward).
/// Both hold on their own, without the ledger: a batch that another run wrote again, or batches
/// replayed out of order, neither duplicate an event nor bring an older state back.
///
/// A batch's audit rows (batch::audit: the entries the audit trail recorded since the previous
/// batch, see take_audit_from()) go into plugmon.audit in the same transaction (INSERT … ON
/// CONFLICT (host, run_id, seq) DO NOTHING, idempotent without the ledger as well). They ride
/// with the next window, so they take the spool's way and survive an outage or a crash like it.
///
/// It is a window sink ("store"): the fan-out calls consume() on the sink's own thread.
///
/// Thread safety: submit(), consume() and submit_alerts() may be called from any threads,
/// concurrently (the queue and the batch numbering are guarded by one mutex); the statistics,
/// status() and render_metrics() from any thread. Nothing here blocks a caller beyond that
/// mutex: a PostgreSQL outage only makes the spool grow.
class writer final : public window_sink {
public:
    /// Opens the spool (throws std::system_error naming the directory if it is unusable).
    explicit writer(writer_options opts);
    ~writer();
    writer(const writer&) = delete;
    writer& operator=(const writer&) = delete;

    void start();
    /// Queues one closed window with the pending audit entries (take_audit_from()); one with
    /// nothing to store (no rollup, sample, resource, alert or audit row) is ignored. Never
    /// blocks for long. Thread safety: any thread.
    void submit(window_batch&& w);
    /// Queues alert changes as a batch of their own (bucket_start: the first row's `at`, length
    /// 0, no other rows), which takes the same way as a window: spool, then PostgreSQL. Meant for
    /// the alert engine's thread; an empty vector is ignored. Does not wait for the disk or the
    /// database: it takes the queue's mutex and moves the rows in (the oldest queued batch is
    /// dropped and counted only when queue_max batches wait, windows before alert batches).
    /// Thread safety: any thread, concurrently with submit() and consume(). Throws nothing but
    /// std::bad_alloc.
    void submit_alerts(std::vector<alert_row> rows);
    /// From now on, every batch built by submit() also carries the entries `trail` recorded since
    /// the previous one (trail::keep_pending() is turned on here), and stop() takes the last of
    /// them as a batch of their own: an HTTP thread recording an entry only takes the trail's
    /// mutex, never this writer's or the disk. Call before start(). Thread safety: not with
    /// submit() or stop().
    void take_audit_from(std::shared_ptr<audit::trail> trail);
    /// window_sink: submits a copy of the shared window (the batch owns its rows).
    std::string name() const override { return "store"; }
    void consume(const window_ptr& w) override { submit(window_batch(*w)); }
    /// Spools what is queued, then keeps writing to PostgreSQL until the spool is empty or
    /// `timeout` passed; what is left stays in the spool for the next start. False when the
    /// threads did not finish in time (a database call still blocked): the spool is safe anyway.
    bool stop(std::chrono::nanoseconds timeout);

    /// New retention and downsampling ages (a reload), used from the next maintenance round.
    /// Thread safety: any thread.
    void set_maintenance(std::chrono::nanoseconds retention,
                         std::chrono::nanoseconds downsample_after);

    /// plugmon_store_* families, appended to /metrics.
    void render_metrics(std::string& out) const;
    /// The state for /api/v1/store: connection, breaker, spool, totals, last error.
    nlohmann::json status() const;
    /// One word for /readyz: "connected", "connecting", "circuit_open", "stopped".
    std::string state() const;

    std::uint64_t run_id() const { return run_id_; }

    /// The tables whose rows are counted, indexing totals::rows_written and rows_duplicate.
    enum class store_table : std::size_t {
        query_rollups,
        execution_rollups,
        slow_queries,
        resource_samples,
        alert_events,  ///< an alert row (its plugmon.alerts upsert is not counted apart)
        audit,
        count  ///< not a table: the number of tables
    };
    /// A row counter per store_table.
    using per_table =
        std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(store_table::count)>;
    /// The name of each store_table, in its order.
    static constexpr std::array<const char*, static_cast<std::size_t>(store_table::count)> tables =
        {"query_rollups",    "execution_rollups", "slow_queries",
         "resource_samples", "alert_events",      "audit"};

    struct totals {
        std::atomic<std::uint64_t> batches_submitted{0}, rows_submitted{0}, calls_submitted{0};
        std::atomic<std::uint64_t> batches_written{0}, batches_duplicate{0}, calls_written{0};
        per_table rows_written{};  ///< indexed by store_table
        /// Rows of the batches found already committed (by an earlier attempt whose
        /// acknowledgement was lost, or by a previous run), indexed by store_table.
        per_table rows_duplicate{};
        std::atomic<std::uint64_t> failures{0}, connects{0}, maintenance_runs{0};
        /// Batches whose rollups met rows of the same keys (another batch of the same window)
        /// and were added into them.
        std::atomic<std::uint64_t> merged_batches{0};
        std::atomic<std::uint64_t> queue_dropped_batches{0}, queue_dropped_rows{0};
        std::atomic<std::uint64_t> spool_failed_batches{0}, spool_failed_rows{0};
        std::atomic<std::uint64_t> rejected_batches{0}, rejected_rows{0};
    };
    const totals& stats() const { return totals_; }
    const spool& spooled() const { return *spool_; }

private:
    /// Numbers `b` and queues it for the spooler (mu_ taken here).
    void enqueue(batch&& b);
    void spooler_loop();
    void writer_loop();
    /// Writes spooled batches while the connection holds; returns false after a failure.
    bool pump(bool stopping);
    void connect();
    void log_sketch_backend(pqxx::connection& c, int version);
    void maintain();
    void write(const batch& b);
    void ensure_partitions(const batch& b);
    void failed(const std::string& what, bool connection_lost);
    void succeeded();
    void observe_latency(double seconds);

    writer_options opts_;
    // opts_.retention and downsample_after as the maintenance round reads them (reloadable)
    std::atomic<std::int64_t> retention_ns_, downsample_after_ns_;
    std::uint64_t run_id_;
    std::uint64_t seq_ = 0;  // guarded by mu_
    std::unique_ptr<spool> spool_;
    std::shared_ptr<audit::trail> audit_;  // set before start(); null: no audit rows

    mutable std::mutex mu_;
    std::condition_variable queued_cv_;   // spooler waits: a window queued, or stop
    std::condition_variable spooled_cv_;  // writer waits: a record spooled, or stop
    std::deque<batch> queue_;             // guarded by mu_
    bool stop_ = false;                   // guarded by mu_
    bool spooler_done_ = false;           // guarded by mu_
    bool spooled_pending_ = false;  // guarded by mu_: a record was spooled since the last look
    std::chrono::steady_clock::time_point deadline_{};      // guarded by mu_, set by stop()
    std::string last_error_;                                // guarded by mu_
    std::chrono::system_clock::time_point last_success_{};  // guarded by mu_

    // writer thread only
    std::unique_ptr<pg_connection> conn_;  // libpqxx, with its libpq handle for binary COPY
    std::chrono::steady_clock::time_point next_attempt_{};
    std::chrono::steady_clock::time_point next_maintenance_{};
    std::int64_t ensured_from_day_ = 0,
                 ensured_to_day_ = -1;  // days with partitions (this session)
    std::uint64_t failing_record_ = 0;
    unsigned failing_attempts_ = 0;
    unsigned consecutive_failures_ = 0;

    std::atomic<int> breaker_{int(breaker_state::closed)};
    std::atomic<bool> connected_{false};
    std::atomic<bool> running_{false};
    std::atomic<int> schema_version_{0};
    bool sketch_backend_logged_ = false;  ///< the writer's thread only
    static constexpr std::array<double, 12> latency_bounds = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
    std::array<std::atomic<std::uint64_t>, latency_bounds.size() + 1> latency_counts_{};
    std::atomic<std::uint64_t> latency_sum_us_{0};
    totals totals_;
    std::thread spooler_, writer_;
};

}  // namespace plugmon::agent::store
