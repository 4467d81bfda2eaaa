// One [[remote_write]] receiver as a window sink: each closed window is spooled on disk, then a
// sender thread turns it into Prometheus remote write 1.0 requests (snappy protobuf over HTTP
// POST), retried with backoff until the receiver takes them or refuses them for good.
#pragma once

#include "alert/notify/http_client.hpp"
#include "export/remote_write/series_state.hpp"
#include "pipeline/window_sink.hpp"
#include "store/write/spool.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace plugmon::agent::remote_write {

struct sink_options {
    std::string name;  ///< the `remote` label of the self-metrics
    std::string url;   ///< http://host[:port]/path or https://...
    /// For https: the CA certificates (PEM) to verify the receiver with; empty: the system's.
    std::string tls_ca_file;
    /// Extra request headers (Authorization, X-Scope-OrgID, ...); the reserved ones are set last
    /// and cannot be overridden.
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::nanoseconds timeout = std::chrono::seconds{30};  ///< per request attempt
    std::size_t max_samples_per_send = 2000;
    std::string spool_dir;
    std::uint64_t spool_max_bytes = 256ull << 20;
    bool spool_sync = true;
    bool native_histograms = true;
    series_options series;
    std::chrono::nanoseconds min_backoff = std::chrono::milliseconds{30};
    std::chrono::nanoseconds max_backoff = std::chrono::seconds{5};
    std::string host;  ///< written into the spool records
};

/// What a receiver said to one request, as the sender acts on it.
enum class verdict : std::uint8_t {
    sent,            ///< 2xx
    retry,           ///< network error, timeout, 5xx or 429: try again after a backoff
    drop,            ///< any other status: the request can never succeed
    refuses_native,  ///< 500 because the receiver has native histograms disabled
};

/// The spec's rules (retry 5xx and 429, drop other 4xx) plus the Prometheus 2.42 trap: a 500
/// whose body says native histograms are disabled, for a request that carried histograms.
/// Thread safety: reentrant.
verdict classify(const alert::notify::http_result& r, bool request_had_histograms);

/// Thread safety: consume() on the fan-out's thread; start() and stop() from the thread that
/// owns the sink; render_metrics() and the counters from any thread. The sender thread alone
/// touches the series state and the HTTP client.
class sink final : public window_sink {
public:
    /// Opens (and locks) the spool and checks the URL. Throws std::system_error for the spool
    /// directory and std::invalid_argument for the URL.
    explicit sink(sink_options o);
    ~sink() override;
    sink(const sink&) = delete;
    sink& operator=(const sink&) = delete;

    std::string name() const override { return "remote_write/" + opts_.name; }
    /// Appends the window to the spool (fsync'ed) and wakes the sender. A spool write failure
    /// throws (the fan-out counts the window as failed).
    void consume(const window_ptr& w) override;

    /// Starts the sender thread; it first replays what a previous run left in the spool.
    void start();
    /// Lets the sender deliver what is spooled for at most `timeout`, then aborts the request in
    /// flight (within about 50 ms); what is left stays in the spool for the next start. Returns
    /// true when the spool was empty at the end. Idempotent.
    bool stop(std::chrono::nanoseconds timeout);

    /// plugmon_remote_write_* families with this sink's series.
    void render_metrics(std::string& out) const { render_metrics(out, {this}); }
    /// plugmon_remote_write_* families, each once, with the series of every sink in `sinks`
    /// (one `remote` label value per sink).
    static void render_metrics(std::string& out, const std::vector<const sink*>& sinks);

    struct counters {
        std::atomic<std::uint64_t> sent{0}, retried{0}, dropped{0};  ///< samples
        std::atomic<std::uint64_t> requests_sent{0}, requests_failed{0};
        std::atomic<std::uint64_t> windows_sent{0}, windows_invalid{0};
        std::atomic<std::int64_t> newest_sent_ms{0};  ///< the newest sample acknowledged
        std::atomic<bool> native{true};               ///< histograms currently sent natively
    };
    const counters& stats() const { return counters_; }
    /// Samples dropped by reason ("http_400", ...). Thread safety: any thread.
    std::map<std::string, std::uint64_t> dropped_by_reason() const;
    const store::spool& spooled() const { return *spool_; }

private:
    struct request;
    void run();
    bool deliver(const window_batch& w);  // false: aborted by stop()
    std::vector<request> build(bool native) const;
    verdict send(const request& r);          // retries until sent, dropped, refused or aborted
    bool pause(std::chrono::nanoseconds d);  // false: aborted
    void count_drop(const std::string& reason, std::uint64_t samples);
    void log_limited(const std::string& message);

    sink_options opts_;
    using poster = std::function<alert::notify::http_result(
        const alert::notify::http_headers&, const std::string&, const std::atomic<bool>*)>;
    poster post_;  // plain HTTP or TLS, by the URL's scheme
    alert::notify::http_headers headers_;
    std::unique_ptr<store::spool> spool_;
    series_state state_;  // sender thread only
    counters counters_;
    std::uint64_t seq_ = 0;  // consume() only

    mutable std::mutex mu_;
    std::condition_variable wake_;
    bool draining_ = false;                              // guarded by mu_
    std::map<std::string, std::uint64_t> drop_reasons_;  // guarded by mu_
    std::atomic<bool> abort_{false};
    std::thread sender_;
};

}  // namespace plugmon::agent::remote_write
