// Renders the HTTP listener's counters with the exposition writer.
#include "web/server/http_metrics.hpp"

#include "common/exposition.hpp"

namespace plugmon::agent {

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

/// The `le` label values of http_metrics::buckets.
constexpr std::array<const char*, http_metrics::buckets.size()> bucket_labels = {
    "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5"};

}  // namespace

std::string_view to_string(auth_failure reason) {
    switch (reason) {
        case auth_failure::missing_token:
            return "missing_token";
        case auth_failure::invalid_token:
            return "invalid_token";
        case auth_failure::insufficient_scope:
            return "insufficient_scope";
        case auth_failure::query_token:
            return "query_token";
        case auth_failure::rate_limited:
            return "rate_limited";
    }
    return "invalid_token";
}

http_metrics::http_metrics(const std::vector<std::string>& handlers) {
    const auto add = [this](const std::string& name) {
        if (lookup(name) != nullptr) return;
        handlers_.push_back(std::make_unique<per_handler>());
        handlers_.back()->name = name;
    };
    for (const auto& h : handlers) add(h);
    add("not_found");
}

const http_metrics::per_handler* http_metrics::lookup(std::string_view handler) const {
    for (const auto& h : handlers_)
        if (h->name == handler) return h.get();
    return nullptr;
}

http_metrics::per_handler& http_metrics::find(std::string_view handler) {
    for (const auto& h : handlers_)
        if (h->name == handler) return *h;
    return *handlers_.back();  // "not_found", added last
}

void http_metrics::observe(std::string_view handler, unsigned status,
                           std::chrono::nanoseconds took) {
    per_handler& h = find(handler);
    if (status >= first_status && status < first_status + status_count)
        h.by_status[status - first_status].fetch_add(1, relaxed);
    const double seconds = std::chrono::duration<double>(took).count();
    for (std::size_t i = 0; i < buckets.size(); ++i)
        if (seconds <= buckets[i]) h.in_bucket[i].fetch_add(1, relaxed);
    h.count.fetch_add(1, relaxed);
    h.sum_ns.fetch_add(std::uint64_t(std::max<std::int64_t>(took.count(), 0)), relaxed);
}

void http_metrics::count(auth_failure reason) {
    auth_failures_[std::size_t(reason)].fetch_add(1, relaxed);
}

void http_metrics::attach(std::shared_ptr<const http_counters> server) {
    const std::lock_guard lock(server_mutex_);
    server_ = std::move(server);
}

std::uint64_t http_metrics::requests(std::string_view handler, unsigned status) const {
    const per_handler* h = lookup(handler);
    if (h == nullptr || status < first_status || status >= first_status + status_count) return 0;
    return h->by_status[status - first_status].load(relaxed);
}

std::uint64_t http_metrics::auth_failures(auth_failure reason) const {
    return auth_failures_[std::size_t(reason)].load(relaxed);
}

void http_metrics::render_requests(std::string& out) const {
    exposition::family(out, "plugmon_http_requests_total", "counter",
                       "HTTP requests answered, by route (handler) and status code.");
    for (const auto& h : handlers_) {
        for (unsigned i = 0; i < status_count; ++i) {
            const std::uint64_t n = h->by_status[i].load(relaxed);
            if (n == 0) continue;
            const std::string code = std::to_string(first_status + i);
            exposition::sample(out, "plugmon_http_requests_total",
                               {{"handler", h->name}, {"code", code}}, n);
        }
    }
}

void http_metrics::render_durations(std::string& out) const {
    const char* name = "plugmon_http_request_duration_seconds";
    exposition::family(out, name, "histogram",
                       "Time from a request's arrival at the security layer to its answer.");
    for (const auto& h : handlers_) {
        // The count first: a scrape never shows a bucket above its own count.
        const std::uint64_t count = h->count.load(relaxed);
        const std::uint64_t sum_ns = h->sum_ns.load(relaxed);
        for (std::size_t i = 0; i < buckets.size(); ++i)
            exposition::sample(out, "plugmon_http_request_duration_seconds_bucket",
                               {{"handler", h->name}, {"le", bucket_labels[i]}},
                               std::min(h->in_bucket[i].load(relaxed), count));
        exposition::sample(out, "plugmon_http_request_duration_seconds_bucket",
                           {{"handler", h->name}, {"le", "+Inf"}}, count);
        exposition::sample_seconds(out, "plugmon_http_request_duration_seconds_sum",
                                   {{"handler", h->name}}, sum_ns);
        exposition::sample(out, "plugmon_http_request_duration_seconds_count",
                           {{"handler", h->name}}, count);
    }
}

void http_metrics::render_server(std::string& out) const {
    std::shared_ptr<const http_counters> server;
    {
        const std::lock_guard lock(server_mutex_);
        server = server_;
    }
    if (!server) return;
    const http_stats s = server->snapshot();
    exposition::family(out, "plugmon_http_connections_total", "counter",
                       "TCP connections the HTTP listener accepted.");
    exposition::sample(out, "plugmon_http_connections_total", {}, s.connections);
    exposition::family(out, "plugmon_http_rejected_requests_total", "counter",
                       "Requests refused before routing: malformed, oversize or timed out.");
    exposition::sample(out, "plugmon_http_rejected_requests_total", {}, s.rejected);
    exposition::family(out, "plugmon_http_handler_errors_total", "counter",
                       "Requests whose handler failed (answered 500).");
    exposition::sample(out, "plugmon_http_handler_errors_total", {}, s.handler_errors);
}

void http_metrics::render(std::string& out) const {
    render_requests(out);
    render_durations(out);
    exposition::family(out, "plugmon_http_auth_failures_total", "counter",
                       "Requests refused for their credentials, by reason.");
    for (std::size_t i = 0; i < auth_failure_reasons; ++i) {
        const std::string_view reason = to_string(auth_failure(i));
        exposition::sample(out, "plugmon_http_auth_failures_total", {{"reason", reason}},
                           auth_failures_[i].load(relaxed));
    }
    render_server(out);
}

}  // namespace plugmon::agent
