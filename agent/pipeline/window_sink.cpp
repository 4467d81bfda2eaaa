// The window fan-out: one bounded queue and one thread per sink; see window_sink.hpp.
#include "pipeline/window_sink.hpp"

#include "common/exposition.hpp"
#include "log/log.hpp"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace plugmon::agent {

struct window_fanout::runner {
    std::shared_ptr<window_sink> sink;
    std::string name;
    std::size_t capacity;

    std::mutex mu;
    std::condition_variable wake;  // a window was queued, or stopping
    std::condition_variable idle;  // the thread finished (stop() waits on it)
    std::deque<window_ptr> queue;  // guarded by mu
    bool stopping = false;         // guarded by mu
    bool finished = false;         // guarded by mu
    std::atomic<std::uint64_t> delivered{0}, failed{0}, dropped{0};
    std::thread thread;

    void run() {
        for (;;) {
            window_ptr w;
            {
                std::unique_lock<std::mutex> lock(mu);
                wake.wait(lock, [&] { return stopping || !queue.empty(); });
                if (queue.empty()) break;  // stopping, and everything was delivered
                w = std::move(queue.front());
                queue.pop_front();
            }
            deliver(w);
        }
        std::lock_guard<std::mutex> lock(mu);
        finished = true;
        idle.notify_all();
    }

    void deliver(const window_ptr& w) {
        try {
            sink->consume(w);
            delivered.fetch_add(1, std::memory_order_relaxed);
        } catch (const std::exception& e) {
            failed.fetch_add(1, std::memory_order_relaxed);
            // one line per 10 s per sink at most: a sink that fails on every window must not
            // flood the log
            log::limited(spdlog::level::err, "pipeline", "window sink failed",
                         {{"sink", name},
                          {"error", e.what()},
                          {"windows_failed", failed.load(std::memory_order_relaxed)}},
                         name);
        }
    }
};

window_fanout::window_fanout() = default;

window_fanout::~window_fanout() { stop(std::chrono::nanoseconds{0}); }

std::vector<std::shared_ptr<window_fanout::runner>> window_fanout::runners() const {
    std::lock_guard<std::mutex> lock(mu_);
    return runners_;
}

void window_fanout::add(std::shared_ptr<window_sink> sink, std::size_t capacity) {
    auto r = std::make_shared<runner>();
    r->name = sink->name();
    r->sink = std::move(sink);
    r->capacity = capacity == 0 ? 1 : capacity;
    std::lock_guard<std::mutex> lock(mu_);
    if (started_ && !stopped_) r->thread = std::thread([r] { r->run(); });
    runners_.push_back(std::move(r));
}

void window_fanout::start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return;
    started_ = true;
    for (const auto& r : runners_)
        r->thread = std::thread([r] { r->run(); });  // the thread owns its runner: see stop()
}

void window_fanout::publish(window_batch&& w) {
    published_.fetch_add(1, std::memory_order_relaxed);
    const auto list = runners();  // a copy: add() and remove() never wait for a publish
    if (list.empty()) return;
    const window_ptr shared = std::make_shared<const window_batch>(std::move(w));
    for (const auto& r : list) {
        {
            std::lock_guard<std::mutex> lock(r->mu);
            if (r->stopping) {
                r->dropped.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            r->queue.push_back(shared);
            if (r->queue.size() > r->capacity) {  // the slow sink loses its oldest window
                r->queue.pop_front();
                r->dropped.fetch_add(1, std::memory_order_relaxed);
            }
        }
        r->wake.notify_one();
    }
}

// Asks `r` to stop and waits for it until `deadline`; true when its thread ended (or never ran).
bool window_fanout::finish(runner& r, std::chrono::steady_clock::time_point deadline) {
    {
        std::lock_guard<std::mutex> lock(r.mu);
        r.stopping = true;
        if (!r.thread.joinable()) {  // never started: nothing will deliver what is queued
            r.dropped.fetch_add(r.queue.size(), std::memory_order_relaxed);
            r.queue.clear();
        }
        r.wake.notify_all();
    }
    if (!r.thread.joinable()) return true;
    bool done;
    {
        std::unique_lock<std::mutex> lock(r.mu);
        done = r.idle.wait_until(lock, deadline, [&] { return r.finished; });
        if (!done) {  // what it has not started on is dropped; what it is in stays its own
            r.dropped.fetch_add(r.queue.size(), std::memory_order_relaxed);
            r.queue.clear();
        }
    }
    if (done) {
        r.thread.join();
        return true;
    }
    spdlog::warn("window sink {}: still busy at its deadline; leaving it", r.name);
    r.thread.detach();  // it holds its own runner (and sink) until it returns
    return false;
}

bool window_fanout::remove(const std::shared_ptr<window_sink>& sink,
                           std::chrono::nanoseconds timeout) {
    std::shared_ptr<runner> r;
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto it = runners_.begin(); it != runners_.end(); ++it)
            if ((*it)->sink == sink) {
                r = *it;
                runners_.erase(it);
                break;
            }
    }
    if (!r) return false;
    return finish(*r, std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
}

bool window_fanout::stop(std::chrono::nanoseconds timeout) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopped_) return true;
        stopped_ = true;
    }
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
    const auto list = runners();
    for (const auto& r : list) {  // every sink is told first, so they wind down together
        std::lock_guard<std::mutex> lock(r->mu);
        r->stopping = true;
        r->wake.notify_all();
    }
    bool all = true;
    for (const auto& r : list) all = finish(*r, deadline) && all;
    return all;
}

std::vector<window_fanout::sink_stats> window_fanout::stats() const {
    const auto list = runners();
    std::vector<sink_stats> out;
    out.reserve(list.size());
    for (const auto& r : list) {
        sink_stats s;
        s.name = r->name;
        s.delivered = r->delivered.load(std::memory_order_relaxed);
        s.failed = r->failed.load(std::memory_order_relaxed);
        s.dropped = r->dropped.load(std::memory_order_relaxed);
        s.capacity = r->capacity;
        {
            std::lock_guard<std::mutex> lock(r->mu);
            s.queued = r->queue.size();
        }
        out.push_back(std::move(s));
    }
    return out;
}

void window_fanout::render_metrics(std::string& out) const {
    namespace x = exposition;
    const auto all = stats();
    x::family(out, "plugmon_window_sink_windows_total", "counter",
              "Closed flush windows per sink, by result: delivered, failed (the sink threw), "
              "dropped (its queue overflowed).");
    for (const auto& s : all) {
        x::sample(out, "plugmon_window_sink_windows_total",
                  {{"sink", s.name}, {"result", "delivered"}}, s.delivered);
        x::sample(out, "plugmon_window_sink_windows_total",
                  {{"sink", s.name}, {"result", "failed"}}, s.failed);
        x::sample(out, "plugmon_window_sink_windows_total",
                  {{"sink", s.name}, {"result", "dropped"}}, s.dropped);
    }
    x::family(out, "plugmon_window_sink_queue_windows", "gauge",
              "Windows waiting in a sink's queue.");
    for (const auto& s : all)
        x::sample(out, "plugmon_window_sink_queue_windows", {{"sink", s.name}},
                  std::uint64_t(s.queued));
    x::family(out, "plugmon_window_sink_queue_capacity", "gauge",
              "Windows a sink's queue holds before it drops the oldest.");
    for (const auto& s : all)
        x::sample(out, "plugmon_window_sink_queue_capacity", {{"sink", s.name}},
                  std::uint64_t(s.capacity));
}

}  // namespace plugmon::agent
