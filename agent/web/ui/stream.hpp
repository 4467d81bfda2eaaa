// The dashboard's live streams: every client gets the same event text per tick; a slow client
// holds at most one waiting event (latest wins) and is dropped by the server's write timeout.
#pragma once

#include "web/server/http.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace plugmon::agent::ui {

class stream_hub : public std::enable_shared_from_this<stream_hub> {
public:
    explicit stream_hub(std::size_t max_clients) : max_clients_(max_clients) {}
    stream_hub(const stream_hub&) = delete;
    stream_hub& operator=(const stream_hub&) = delete;

    /// A live response for one more client, or null when max_clients are open or being opened
    /// (the caller answers 503). `first` is sent when it opens (the retry hint and the latest
    /// event). With `max_events` > 0 the stream ends after that many events.
    std::shared_ptr<live_stream> open_client(std::shared_ptr<const std::string> first,
                                             bool first_is_event, std::uint64_t max_events);
    /// Sends one event's text to every open client; never waits for one.
    void publish(const std::shared_ptr<const std::string>& event);
    /// Ends every open stream (at shutdown).
    void end_all();
    /// Streams open now.
    std::size_t clients() const;
    /// plugmon_ui_stream_* families.
    void render_metrics(std::string& out) const;

private:
    class client;
    void attach(const std::shared_ptr<client>& c);
    void detach(const client* c, bool opened, stream_end why);

    std::size_t max_clients_;
    mutable std::mutex mu_;
    std::vector<std::shared_ptr<client>> open_;  // guarded by mu_
    std::size_t opening_ = 0;                    // guarded by mu_: answered, headers not sent
    std::atomic<std::uint64_t> opened_total_{0}, refused_total_{0}, events_total_{0},
        replaced_total_{0};
    std::array<std::atomic<std::uint64_t>, 4> ended_{};  // by stream_end
};

}  // namespace plugmon::agent::ui
