// The built-in dashboard: a thread that builds one snapshot per tick and hands the same text to
// every live stream, and what the dashboard's routes read.
#pragma once

#include "web/server/http.hpp"
#include "web/server/router.hpp"
#include "web/ui/snapshot.hpp"
#include "web/ui/stream.hpp"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace plugmon::agent::ui {

struct dashboard_options {
    /// snapshot.max_streams is the cap on live streams (ui_max_streams).
    snapshot_options snapshot;
};

class dashboard {
public:
    dashboard(const api_context& ctx, dashboard_options o);
    /// Stops, as stop() does.
    ~dashboard();
    dashboard(const dashboard&) = delete;
    dashboard& operator=(const dashboard&) = delete;

    /// Builds the first snapshot, then one per interval on its own thread.
    void start();
    /// Ends every stream and joins the thread. Idempotent.
    void stop();
    /// Builds and publishes one snapshot now (the thread's step; tests and benchmarks call it).
    void tick();

    /// The latest snapshot's JSON (empty before the first tick).
    std::shared_ptr<const std::string> latest() const;
    /// A live stream for a new client, or null when ui_max_streams are open.
    std::shared_ptr<live_stream> open_stream(std::uint64_t max_events);
    std::string history_json() const { return builder_.history_json(); }
    nlohmann::json statements_json(statement_window w, const std::string& plugin) const {
        return builder_.statements_json(w, plugin, snapshot_builder::clock::now());
    }
    bool read_only() const { return o_.snapshot.read_only; }
    std::size_t stream_clients() const { return hub_->clients(); }
    /// plugmon_ui_* families.
    void render_metrics(std::string& out) const;

private:
    void run() noexcept;

    dashboard_options o_;
    snapshot_builder builder_;
    std::shared_ptr<stream_hub> hub_;
    mutable std::mutex latest_mu_;
    std::shared_ptr<const std::string> latest_json_, latest_event_;  // guarded by latest_mu_
    std::atomic<std::uint64_t> ticks_{0}, tick_ns_{0}, failures_{0}, last_bytes_{0};
    std::mutex stop_mu_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;  // guarded by stop_mu_
    std::thread thread_;
};

/// GET /ui, /ui/, /ui/{asset}, /ui/manifest.json, /favicon.ico and /api/v1/ui/{snapshot,
/// stream, history, statements}. The dashboard must outlive the router.
void add_ui_routes(router& r, dashboard& d);

}  // namespace plugmon::agent::ui
