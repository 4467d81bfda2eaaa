// The dashboard's tick thread and its own metrics.
#include "web/ui/dashboard.hpp"

#include "common/exposition.hpp"

#include <spdlog/spdlog.h>

namespace plugmon::agent::ui {

dashboard::dashboard(const api_context& ctx, dashboard_options o)
    : o_(std::move(o)), builder_(ctx, o_.snapshot),
      hub_(std::make_shared<stream_hub>(o_.snapshot.max_streams)) {}

dashboard::~dashboard() { stop(); }

void dashboard::start() {
    tick();
    thread_ = std::thread([this] { run(); });
}

void dashboard::stop() {
    {
        std::lock_guard<std::mutex> lock(stop_mu_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    hub_->end_all();
}

void dashboard::run() noexcept {
    auto next = std::chrono::steady_clock::now();
    for (;;) {
        next += o_.snapshot.interval;
        {
            std::unique_lock<std::mutex> lock(stop_mu_);
            if (stop_cv_.wait_until(lock, next, [this] { return stopping_; })) return;
        }
        // A late tick (a busy host) is not made up for: the next one is one interval later.
        const auto now = std::chrono::steady_clock::now();
        if (now > next) next = now;
        tick();
    }
}

void dashboard::tick() {
    const auto t0 = std::chrono::steady_clock::now();
    try {
        auto json = std::make_shared<const std::string>(
            builder_.build(snapshot_builder::clock::now(), hub_->clients()));
        auto event = std::make_shared<const std::string>(
            "id: " + std::to_string(builder_.seq()) + "\nevent: snapshot\ndata: " + *json + "\n\n");
        last_bytes_ = json->size();
        {
            std::lock_guard<std::mutex> lock(latest_mu_);
            latest_json_ = std::move(json);
            latest_event_ = event;
        }
        hub_->publish(event);
    } catch (const std::exception& e) {
        if (failures_++ == 0)
            spdlog::error("ui: cannot build the dashboard snapshot: {}", e.what());
    }
    ++ticks_;
    tick_ns_ += std::uint64_t(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count());
}

std::shared_ptr<const std::string> dashboard::latest() const {
    std::lock_guard<std::mutex> lock(latest_mu_);
    return latest_json_;
}

std::shared_ptr<live_stream> dashboard::open_stream(std::uint64_t max_events) {
    std::shared_ptr<const std::string> event;
    {
        std::lock_guard<std::mutex> lock(latest_mu_);
        event = latest_event_;
    }
    // The browser reconnects after 2 s when the stream breaks; the latest snapshot comes at once.
    auto first = std::make_shared<const std::string>("retry: 2000\n\n" + (event ? *event : ""));
    return hub_->open_client(std::move(first), event != nullptr, max_events);
}

void dashboard::render_metrics(std::string& out) const {
    using namespace exposition;
    family(out, "plugmon_ui_snapshots_total", "counter", "Dashboard snapshots built.");
    sample(out, "plugmon_ui_snapshots_total", {}, ticks_.load());
    family(out, "plugmon_ui_snapshot_failures_total", "counter",
           "Dashboard snapshots that could not be built.");
    sample(out, "plugmon_ui_snapshot_failures_total", {}, failures_.load());
    family(out, "plugmon_ui_snapshot_seconds_total", "counter",
           "Time spent building and publishing dashboard snapshots.");
    sample_seconds(out, "plugmon_ui_snapshot_seconds_total", {}, tick_ns_.load());
    family(out, "plugmon_ui_snapshot_bytes", "gauge", "Size of the latest dashboard snapshot.");
    sample(out, "plugmon_ui_snapshot_bytes", {}, last_bytes_.load());
    hub_->render_metrics(out);
}

}  // namespace plugmon::agent::ui
