// The agent's Unix socket: accepts producer registrations (hello + segment fd), answers them,
// and watches each connection so a producer's exit or death is seen the moment its socket closes.
#pragma once

#include "ingest/drainer.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace plugmon::agent {

/// The intake's refusals, exported as plugmon_agent_registrations_refused_total.
struct intake_totals {
    std::array<cell, reject_reason_count> rejected;  ///< by reject_reason (refused at attach)
    cell refused_protocol, refused_limit, refused_duplicate;
    /// The cell of reason `r`; a value out of range (attach never gives one) counts under none.
    cell& rejected_for(reject_reason r) {
        const auto i = static_cast<std::size_t>(r);
        return rejected[i < rejected.size() ? i : 0];
    }
};

class intake {
public:
    struct options {
        std::string runtime_dir;
        unsigned socket_mode = 0666;
        std::uint32_t max_producers = 1024;
        std::chrono::milliseconds hello_timeout{5000};
    };
    /// Creates the runtime directory if needed and binds `agent.sock` there. Throws
    /// std::runtime_error naming the path when another agent is listening or binding fails.
    intake(boost::asio::io_context& io, options opt, drain& d);
    ~intake();
    void start();
    /// Stops accepting and removes the socket file. Open connections stay until the agent exits.
    void stop();
    const std::string& socket_path() const { return path_; }
    const intake_totals& totals() const { return totals_; }
    /// plugmon_agent_registrations_refused_total, appended to `out`; from any thread
    /// (ingest_metrics.cpp).
    void render_metrics(std::string& out) const;

private:
    struct connection;
    void accept_more();
    void on_hello(const std::shared_ptr<connection>& c);
    void watch(const std::shared_ptr<connection>& c);
    void reply(int fd, layout::welcome_status s);

    boost::asio::io_context& io_;
    options opt_;
    drain& drain_;
    std::string path_;
    boost::asio::posix::stream_descriptor listener_;
    std::uint64_t next_id_ = 1;
    std::atomic<std::uint32_t> connections_{0};
    intake_totals totals_;
    bool stopped_ = false;
};

}  // namespace plugmon::agent
