// The set of remote-write receivers the configuration names, kept in step with it: a reload
// starts the receivers that are new or changed and retires those removed or changed, while the
// others keep sending without a pause.
#pragma once

#include "config/config.hpp"
#include "export/remote_write/sink.hpp"
#include "pipeline/window_sink.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace plugmon::agent::remote_write {

/// Thread safety: every member from any thread; configure() calls are serialised.
class receivers {
public:
    /// `stop_timeout`: how long a retired receiver may deliver what it has spooled before it
    /// stops (the rest stays in its spool, read again by a receiver of the same name).
    receivers(window_fanout& windows, std::chrono::nanoseconds stop_timeout);
    ~receivers();

    /// Makes the running set what `c.remote_write` says. A receiver whose [[remote_write]] table
    /// is unchanged keeps running untouched. Before start() the sinks are only registered.
    /// A receiver that cannot be created (its spool directory, say) is logged and skipped; the
    /// names of those are returned.
    std::vector<std::string> configure(const config& c);
    /// Starts every sink's sender (each first replays its spool); later configure() calls start
    /// new sinks at once.
    void start();
    /// Stops every sender within `timeout`; what is undelivered stays spooled.
    void stop(std::chrono::nanoseconds timeout);
    /// plugmon_remote_write_* for every running receiver, each family once.
    void render_metrics(std::string& out) const;
    std::size_t size() const;

private:
    struct entry {
        remote_write_spec spec;
        std::shared_ptr<sink> s;
    };
    void retire(const entry& e);

    window_fanout& windows_;
    const std::chrono::nanoseconds stop_timeout_;
    mutable std::mutex mu_;
    std::vector<entry> entries_;  // guarded by mu_
    bool started_ = false;        // guarded by mu_
};

}  // namespace plugmon::agent::remote_write
