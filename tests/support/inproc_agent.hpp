// The agent's intake and drain running inside a test or benchmark process: producer threads of
// the same process register over the real socket and are drained by the real drain thread.
#pragma once

#include "aggregate/series.hpp"
#include "config/config.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace plugmon::test {

class inproc_agent {
    static agent::drain::options drain_options(std::chrono::nanoseconds idle_sleep,
                                               double ns_per_tick,
                                               agent::statement_book* statements) {
        agent::drain::options o;
        o.idle_sleep = idle_sleep;
        o.ns_per_tick = ns_per_tick;
        o.statements = statements;
        return o;
    }

public:
    inproc_agent(const std::string& runtime_dir, std::chrono::nanoseconds idle_sleep,
                 double ns_per_tick)
        : store_(agent::bucket_bounds::from_seconds(agent::config::default_buckets(),
                                                    agent::config::default_buckets())),
          statements_(0), drain_(store_, drain_options(idle_sleep, ns_per_tick, &statements_)) {
        agent::intake::options o;
        o.runtime_dir = runtime_dir;
        o.socket_mode = 0600;
        in_ = std::make_unique<agent::intake>(io_, o, drain_);
        drain_.start();
        in_->start();
        io_thread_ = std::thread([this] { io_.run(); });
    }
    ~inproc_agent() {
        boost::asio::post(io_, [this] { in_->stop(); });
        drain_.stop(std::chrono::seconds(5));
        io_.stop();
        io_thread_.join();
    }
    inproc_agent(const inproc_agent&) = delete;
    inproc_agent& operator=(const inproc_agent&) = delete;

    const agent::drain& drainer() const { return drain_; }
    const agent::drain_totals& totals() const { return drain_.totals(); }
    const agent::series_registry& store() const { return store_; }
    /// Per-statement totals (no slow samples kept).
    const agent::statement_book& statements() const { return statements_; }
    /// Events the agent has aggregated or counted as dropped, for every reason.
    std::uint64_t accounted() const {
        const auto& t = drain_.totals();
        return t.drained.get() + t.full.get() + t.torn.get() + t.invalid.get();
    }

private:
    agent::series_registry store_;
    agent::statement_book statements_;
    agent::drain drain_;
    boost::asio::io_context io_;
    std::unique_ptr<agent::intake> in_;
    std::thread io_thread_;
};

}  // namespace plugmon::test
