// The window-sink seam: every consumer of closed flush windows (the store writer, the alert
// evaluator, remote write) is a window_sink registered with one window_fanout. The drain
// publishes each closed window once; each sink receives it, shared, on a thread of its own.
#pragma once

#include "pipeline/window.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace plugmon::agent {

/// A closed window, shared by every sink that receives it (never copied per sink).
using window_ptr = std::shared_ptr<const window_batch>;

/// A consumer of closed windows. consume() runs on the sink's own thread, one window at a time,
/// in window order; it may block or be slow (that delays this sink only) and may throw (the
/// window is then counted as failed for this sink, and logged, rate-limited).
class window_sink {
public:
    virtual ~window_sink() = default;
    /// A short, stable name: the `sink` label of the fan-out's metrics.
    virtual std::string name() const = 0;
    virtual void consume(const window_ptr& window) = 0;
};

/// Hands every published window to every registered sink through a bounded queue per sink.
///
/// publish() never waits for a sink: it takes each sink's queue lock only to push a pointer
/// (the sink's thread takes it only to pop one), and when a queue is full the oldest window in
/// it is dropped and counted for that sink. Thread safety: publish() from one thread (the
/// drain); add(), remove(), stats() and render_metrics() from any thread (a reload adds and
/// removes sinks while windows flow).
class window_fanout {
public:
    struct sink_stats {
        std::string name;
        std::uint64_t delivered = 0;  ///< consume() returned
        std::uint64_t failed = 0;     ///< consume() threw
        std::uint64_t dropped = 0;    ///< overflowed this sink's queue (or left at stop)
        std::size_t queued = 0;
        std::size_t capacity = 0;
    };

    window_fanout();
    ~window_fanout();  ///< stops, as stop(0) does
    window_fanout(const window_fanout&) = delete;
    window_fanout& operator=(const window_fanout&) = delete;

    /// Registers a sink with a queue of `capacity` windows (at least 1); after start() its
    /// thread starts at once and it receives the windows published from then on.
    void add(std::shared_ptr<window_sink> sink, std::size_t capacity = 64);
    /// Unregisters `sink`: it receives no window published after this call, finishes what is
    /// queued within `timeout` (the rest is counted dropped) and its thread ends. False when it
    /// was not registered or was still busy at the deadline (its thread then finishes alone).
    bool remove(const std::shared_ptr<window_sink>& sink, std::chrono::nanoseconds timeout);
    /// Starts one thread per sink.
    void start();
    /// Shares `w` with every sink. Never blocks on a sink.
    void publish(window_batch&& w);
    /// Lets every sink finish what is queued, for at most `timeout` in all; what is still
    /// queued then is counted as dropped. Returns false when a sink was still busy (its thread
    /// is then left to finish on its own: the process is exiting). Idempotent.
    bool stop(std::chrono::nanoseconds timeout);

    std::vector<sink_stats> stats() const;
    /// plugmon_window_sink_{windows_total{sink,result},queue_windows{sink},queue_capacity{sink}}.
    void render_metrics(std::string& out) const;
    std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }

private:
    struct runner;
    std::vector<std::shared_ptr<runner>> runners() const;
    static bool finish(runner& r, std::chrono::steady_clock::time_point deadline);
    mutable std::mutex mu_;
    std::vector<std::shared_ptr<runner>> runners_;  // guarded by mu_
    std::atomic<std::uint64_t> published_{0};
    bool started_ = false;  // guarded by mu_
    bool stopped_ = false;  // guarded by mu_
};

}  // namespace plugmon::agent
