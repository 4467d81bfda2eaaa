// The dashboard's stream fan-out.
#include "web/ui/stream.hpp"

#include "common/exposition.hpp"

#include <algorithm>

namespace plugmon::agent::ui {

/// One client's live response: the hub's handle on the connection's writer.
class stream_hub::client final : public live_stream, public std::enable_shared_from_this<client> {
public:
    client(std::weak_ptr<stream_hub> hub, std::shared_ptr<const std::string> first,
           bool first_is_event, std::uint64_t max_events)
        : hub_(std::move(hub)), first_(std::move(first)), first_is_event_(first_is_event),
          max_events_(max_events) {}

    void open(std::shared_ptr<stream_writer> out) override {
        writer_ = std::move(out);
        const auto hub = hub_.lock();
        if (!hub) return writer_->end();
        if (first_) {
            writer_->send(std::move(first_));
            if (first_is_event_ && count_event()) return;
        }
        hub->attach(shared_from_this());
    }

    void replaced() override {
        if (const auto hub = hub_.lock()) ++hub->replaced_total_;
    }

    void closed(stream_end why) override {
        // writer_ stays: the publishing thread may be using it; it goes with the client.
        ended_ = true;
        if (const auto hub = hub_.lock()) hub->detach(this, writer_ != nullptr, why);
    }

    /// Publishing thread (under no lock of the session): one event.
    void deliver(const std::shared_ptr<const std::string>& event) {
        if (ended_) return;
        writer_->send(event);
        count_event();
    }

    void end() {
        if (!ended_.exchange(true)) writer_->end();
    }

private:
    /// True when this event was the last one the client asked for (the stream is then ended).
    bool count_event() {
        ++sent_;
        if (max_events_ == 0 || sent_ < max_events_) return false;
        end();
        return true;
    }

    std::weak_ptr<stream_hub> hub_;
    std::shared_ptr<const std::string> first_;
    bool first_is_event_;
    std::uint64_t max_events_;
    std::uint64_t sent_ = 0;
    std::atomic<bool> ended_{false};
    // Set on the I/O thread in open() before the client is published under the hub's mutex,
    // read by the publishing thread after it took the list under the same mutex.
    std::shared_ptr<stream_writer> writer_;
};

std::shared_ptr<live_stream> stream_hub::open_client(std::shared_ptr<const std::string> first,
                                                     bool first_is_event,
                                                     std::uint64_t max_events) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (open_.size() + opening_ >= max_clients_) {
            ++refused_total_;
            return nullptr;
        }
        ++opening_;
    }
    return std::make_shared<client>(weak_from_this(), std::move(first), first_is_event, max_events);
}

void stream_hub::attach(const std::shared_ptr<client>& c) {
    std::lock_guard<std::mutex> lock(mu_);
    --opening_;
    open_.push_back(c);
    ++opened_total_;
}

void stream_hub::detach(const client* c, bool opened, stream_end why) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = std::find_if(open_.begin(), open_.end(),
                                 [c](const std::shared_ptr<client>& x) { return x.get() == c; });
    if (it != open_.end()) {
        open_.erase(it);
    } else if (opening_ > 0) {
        --opening_;  // ended before it was attached (headers failed, or max_events reached)
        if (opened) ++opened_total_;
    }
    ++ended_[static_cast<std::size_t>(why)];
}

void stream_hub::publish(const std::shared_ptr<const std::string>& event) {
    std::vector<std::shared_ptr<client>> to;
    {
        std::lock_guard<std::mutex> lock(mu_);
        to = open_;
    }
    for (const auto& c : to) c->deliver(event);
    events_total_ += to.size();
}

void stream_hub::end_all() {
    std::vector<std::shared_ptr<client>> to;
    {
        std::lock_guard<std::mutex> lock(mu_);
        to = open_;
    }
    for (const auto& c : to) c->end();
}

std::size_t stream_hub::clients() const {
    std::lock_guard<std::mutex> lock(mu_);
    return open_.size();
}

void stream_hub::render_metrics(std::string& out) const {
    using namespace exposition;
    family(out, "plugmon_ui_stream_clients", "gauge", "Dashboard live streams open now.");
    sample(out, "plugmon_ui_stream_clients", {}, std::uint64_t(clients()));
    family(out, "plugmon_ui_streams_opened_total", "counter", "Dashboard live streams opened.");
    sample(out, "plugmon_ui_streams_opened_total", {}, std::uint64_t(opened_total_.load()));
    family(out, "plugmon_ui_streams_refused_total", "counter",
           "Dashboard live streams refused (503) because ui_max_streams were open.");
    sample(out, "plugmon_ui_streams_refused_total", {}, std::uint64_t(refused_total_.load()));
    family(out, "plugmon_ui_stream_events_total", "counter",
           "Snapshot events handed to dashboard streams.");
    sample(out, "plugmon_ui_stream_events_total", {}, std::uint64_t(events_total_.load()));
    family(out, "plugmon_ui_stream_dropped_snapshots_total", "counter",
           "Snapshots a slow stream client never got: a newer one replaced them while waiting.");
    sample(out, "plugmon_ui_stream_dropped_snapshots_total", {},
           std::uint64_t(replaced_total_.load()));
    family(out, "plugmon_ui_stream_disconnects_total", "counter",
           "Dashboard live streams ended, by reason (write_timeout: the client stopped reading).");
    for (const stream_end why : {stream_end::finished, stream_end::write_timeout,
                                 stream_end::peer_closed, stream_end::server_stopped})
        sample(out, "plugmon_ui_stream_disconnects_total", {{"reason", to_string(why)}},
               std::uint64_t(ended_[static_cast<std::size_t>(why)].load()));
}

}  // namespace plugmon::agent::ui
