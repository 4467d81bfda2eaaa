// The remote-write sink: spool each window, then deliver it request by request with the spec's
// retry rules, falling back to classic buckets for a receiver that refuses native histograms.
#include "export/remote_write/sink.hpp"

#include "common/exposition.hpp"
#include "common/version.hpp"
#include "export/remote_write/tls_client.hpp"
#include "log/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <random>

namespace plugmon::agent::remote_write {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

struct sink::request {
    std::string body;  // snappy-compressed WriteRequest
    std::uint64_t samples = 0;
    bool histograms = false;
    std::int64_t newest_ms = 0;
};

verdict classify(const alert::notify::http_result& r, bool request_had_histograms) {
    if (r.failure != alert::notify::http_failure::none) return verdict::retry;
    if (r.status >= 200 && r.status < 300) return verdict::sent;
    if (r.status == 500 && request_had_histograms &&
        lower(r.body_excerpt).find("native histograms") != std::string::npos)
        return verdict::refuses_native;  // storage.ErrNativeHistogramsDisabled (Prometheus 2.42)
    if (r.status >= 500 || r.status == 429) return verdict::retry;
    return verdict::drop;
}

sink::sink(sink_options o) : opts_(std::move(o)), state_(opts_.series) {
    if (opts_.url.rfind("https://", 0) == 0) {
        post_ = [c = tls_client(opts_.url, opts_.timeout, opts_.tls_ca_file)](
                    const auto& h, const auto& b, const auto* a) { return c.post(h, b, a); };
    } else {
        post_ = [c = alert::notify::http_client(opts_.name, opts_.url, opts_.timeout)](
                    const auto& h, const auto& b, const auto* a) { return c.post(h, b, a); };
    }
    if (opts_.max_samples_per_send == 0) opts_.max_samples_per_send = 1;
    // The user's headers first; the reserved ones replace any of the same name (the spec says
    // users must not override them; the configuration refuses them too).
    headers_ = opts_.headers;
    headers_.emplace_back("Content-Encoding", "snappy");
    headers_.emplace_back("Content-Type", "application/x-protobuf");
    headers_.emplace_back("User-Agent", std::string("plugmon-agent/") + project_version);
    headers_.emplace_back("X-Prometheus-Remote-Write-Version", "0.1.0");
    store::spool::options so;
    so.dir = opts_.spool_dir;
    so.max_bytes = opts_.spool_max_bytes;
    so.sync = opts_.spool_sync;
    spool_ = std::make_unique<store::spool>(std::move(so));
    counters_.native.store(opts_.native_histograms);
}

sink::~sink() { stop(std::chrono::nanoseconds{0}); }

void sink::consume(const window_ptr& w) {
    store::batch b;
    b.host = opts_.host;
    b.seq = ++seq_;
    // Only what remote write sends: the rollups (no slow samples, resources or alert rows).
    b.window.bucket_start = w->bucket_start;
    b.window.length = w->length;
    b.window.queries = w->queries;
    b.window.executions = w->executions;
    spool_->append(b);
    {
        std::lock_guard lock(mu_);  // pairs with the sender's wait: no wake-up is lost
    }
    wake_.notify_all();
}

void sink::start() {
    if (sender_.joinable()) return;
    sender_ = std::thread([this] { run(); });
}

bool sink::stop(std::chrono::nanoseconds timeout) {
    if (!sender_.joinable()) return spool_->batches() == 0;
    {
        std::lock_guard lock(mu_);
        draining_ = true;
    }
    wake_.notify_all();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (spool_->batches() != 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
    abort_.store(true, std::memory_order_release);
    wake_.notify_all();
    sender_.join();
    return spool_->batches() == 0;
}

void sink::run() {
    while (!abort_.load(std::memory_order_acquire)) {
        try {
            auto e = spool_->front();
            if (!e) {
                std::unique_lock lock(mu_);
                if (draining_) break;
                wake_.wait_for(lock, std::chrono::milliseconds{200});
                continue;
            }
            if (!deliver(e->b.window)) break;  // aborted: the window stays spooled
            spool_->pop(e->id);
        } catch (const std::exception& ex) {
            log_limited(std::string("sender: ") + ex.what());
            if (!pause(opts_.max_backoff)) break;
        }
    }
}

std::vector<sink::request> sink::build(bool native) const {
    const auto series = state_.render(native);
    std::vector<request> out;
    std::vector<time_series> chunk;
    std::size_t in_chunk = 0;
    const auto flush = [&] {
        if (chunk.empty()) return;
        request r;
        std::string raw;
        encode_write_request(chunk, raw);
        r.body = snappy_compress(raw);
        for (const auto& s : chunk) {
            r.samples += s.sample_count();
            r.histograms = r.histograms || !s.histograms.empty();
        }
        r.newest_ms = state_.timestamp_ms();
        out.push_back(std::move(r));
        chunk.clear();
        in_chunk = 0;
    };
    for (const auto& s : series) {
        if (in_chunk + s.sample_count() > opts_.max_samples_per_send) flush();
        in_chunk += s.sample_count();
        chunk.push_back(s);
    }
    flush();
    return out;
}

bool sink::deliver(const window_batch& w) {
    try {
        state_.apply(w);
    } catch (const std::invalid_argument& e) {
        counters_.windows_invalid.fetch_add(1, std::memory_order_relaxed);
        log_limited(std::string("a spooled window is invalid and skipped: ") + e.what());
        return true;
    }
    bool native = counters_.native.load(std::memory_order_relaxed);
    auto requests = build(native);
    for (std::size_t i = 0; i < requests.size();) {
        const verdict v = send(requests[i]);
        if (v == verdict::refuses_native) {
            log::warn("remote_write",
                      "the receiver refuses native histograms (HTTP 500, \"native histograms are "
                      "disabled\"; Prometheus needs --enable-feature=native-histograms); sending "
                      "classic buckets to it from now on",
                      {{"receiver", opts_.name}});
            counters_.native.store(false);
            native = false;
            requests = build(false);  // the whole window again: floats already sent are
            i = 0;                    // identical, which the receiver accepts as duplicates
            continue;
        }
        if (v == verdict::retry) return false;  // aborted
        ++i;
    }
    state_.finish();
    counters_.windows_sent.fetch_add(1, std::memory_order_relaxed);
    return true;
}

verdict sink::send(const request& r) {
    std::chrono::nanoseconds backoff = opts_.min_backoff;
    std::mt19937_64 rng(std::random_device{}());
    for (;;) {
        if (abort_.load(std::memory_order_acquire)) return verdict::retry;
        const auto res = post_(headers_, r.body, &abort_);
        const verdict v = classify(res, r.histograms);
        if (v == verdict::sent) {
            counters_.sent.fetch_add(r.samples, std::memory_order_relaxed);
            counters_.requests_sent.fetch_add(1, std::memory_order_relaxed);
            std::int64_t prev = counters_.newest_sent_ms.load(std::memory_order_relaxed);
            while (prev < r.newest_ms &&
                   !counters_.newest_sent_ms.compare_exchange_weak(prev, r.newest_ms)) {
            }
            return v;
        }
        counters_.requests_failed.fetch_add(1, std::memory_order_relaxed);
        if (v == verdict::refuses_native) return v;
        if (v == verdict::drop) {
            count_drop("http_" + std::to_string(res.status), r.samples);
            log_limited("HTTP " + std::to_string(res.status) + ", " + std::to_string(r.samples) +
                        " samples dropped: " + res.body_excerpt);
            return v;
        }
        if (abort_.load(std::memory_order_acquire)) return verdict::retry;
        counters_.retried.fetch_add(r.samples, std::memory_order_relaxed);
        log_limited(res.failure != alert::notify::http_failure::none
                        ? "retrying: " + res.error
                        : "retrying: HTTP " + std::to_string(res.status) + " " + res.body_excerpt);
        // Full jitter in [backoff/2, backoff]; Retry-After (429, 503) when it asks for longer.
        std::uniform_int_distribution<std::int64_t> jitter(backoff.count() / 2, backoff.count());
        std::chrono::nanoseconds wait{jitter(rng)};
        if (res.retry_after)
            wait = std::max<std::chrono::nanoseconds>(
                wait,
                std::min<std::chrono::nanoseconds>(*res.retry_after, std::chrono::minutes{5}));
        if (!pause(wait)) return verdict::retry;
        backoff = std::min(backoff * 2, opts_.max_backoff);
    }
}

bool sink::pause(std::chrono::nanoseconds d) {
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, d, [this] { return abort_.load(std::memory_order_acquire); });
    return !abort_.load(std::memory_order_acquire);
}

void sink::count_drop(const std::string& reason, std::uint64_t samples) {
    counters_.dropped.fetch_add(samples, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    drop_reasons_[reason] += samples;
}

std::map<std::string, std::uint64_t> sink::dropped_by_reason() const {
    std::lock_guard lock(mu_);
    return drop_reasons_;
}

void sink::log_limited(const std::string& message) {
    // One line per 10 s per receiver, whatever the failure; the next says how many it held back.
    log::limited(spdlog::level::warn, "remote_write", message, {{"receiver", opts_.name}},
                 opts_.name);
}

void sink::render_metrics(std::string& out, const std::vector<const sink*>& sinks) {
    namespace ex = exposition;
    const auto each = [&](auto&& f) {
        for (const sink* s : sinks) f(*s, ex::label{"remote", s->opts_.name});
    };
    ex::family(out, "plugmon_remote_write_samples_total", "counter",
               "Samples sent to the receiver (sent), sent again after a failed attempt "
               "(retried), or given up (dropped).");
    each([&](const sink& s, const ex::label& l) {
        const auto rs = [&](const char* result, std::uint64_t v) {
            ex::sample(out, "plugmon_remote_write_samples_total", {l, {"result", result}}, v);
        };
        rs("sent", s.counters_.sent.load());
        rs("retried", s.counters_.retried.load());
        rs("dropped", s.counters_.dropped.load());
    });
    ex::family(out, "plugmon_remote_write_samples_dropped_total", "counter",
               "Samples the receiver refused for good, by reason (http_<status>).");
    each([&](const sink& s, const ex::label& l) {
        for (const auto& [reason, n] : s.dropped_by_reason())
            ex::sample(out, "plugmon_remote_write_samples_dropped_total", {l, {"reason", reason}},
                       n);
    });
    ex::family(out, "plugmon_remote_write_queue_windows", "gauge",
               "Windows spooled and not yet delivered.");
    each([&](const sink& s, const ex::label& l) {
        ex::sample(out, "plugmon_remote_write_queue_windows", {l}, s.spool_->batches());
    });
    ex::family(out, "plugmon_remote_write_spool_bytes", "gauge", "Bytes of the spooled windows.");
    each([&](const sink& s, const ex::label& l) {
        ex::sample(out, "plugmon_remote_write_spool_bytes", {l}, s.spool_->bytes());
    });
    ex::family(out, "plugmon_remote_write_spool_dropped_windows_total", "counter",
               "Windows the spool discarded, by reason (full: over its cap; corrupt).");
    each([&](const sink& s, const ex::label& l) {
        for (const char* reason : {"full", "corrupt"})
            ex::sample(out, "plugmon_remote_write_spool_dropped_windows_total",
                       {l, {"reason", reason}},
                       s.spool_->dropped_batches(std::string_view(reason)));
    });
    ex::family(out, "plugmon_remote_write_lag_seconds", "gauge",
               "Now minus the timestamp of the newest sample the receiver acknowledged.");
    each([&](const sink& s, const ex::label& l) {
        const std::int64_t newest = s.counters_.newest_sent_ms.load();
        ex::sample(out, "plugmon_remote_write_lag_seconds", {l},
                   newest == 0 ? 0.0 : double(now_ms() - newest) / 1e3);
    });
    ex::family(out, "plugmon_remote_write_native_histograms", "gauge",
               "1 while query durations go to this receiver as native histograms, 0 for classic.");
    each([&](const sink& s, const ex::label& l) {
        ex::sample(out, "plugmon_remote_write_native_histograms", {l},
                   s.counters_.native.load() ? 1 : 0);
    });
}

}  // namespace plugmon::agent::remote_write
