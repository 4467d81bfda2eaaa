// A registered producer process: created by the intake (I/O thread) at registration, drained
// and finally released by the drain thread.
#pragma once

#include "aggregate/leak.hpp"
#include "aggregate/series.hpp"
#include "aggregate/statements.hpp"
#include "ingest/process_limits.hpp"
#include "ingest/segment.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace plugmon::agent {

enum class producer_state : int { attached = 0, quarantined = 1, finished = 2 };
const char* to_string(producer_state s);

/// A registered producer process. Created by the registration server (I/O thread), drained and
/// finally released by the drain thread.
class producer {
public:
    producer(std::uint64_t id, int pid, unsigned uid, int memfd,
             std::unique_ptr<mapped_segment> seg);
    ~producer();
    producer(const producer&) = delete;
    producer& operator=(const producer&) = delete;

    std::uint64_t id() const { return id_; }
    int pid() const { return pid_; }
    unsigned uid() const { return uid_; }
    /// The producer's socket closed: it exited or died. Set by the I/O thread.
    void mark_gone(bool clean) {
        clean_.store(clean, std::memory_order_relaxed);
        // release: pairs with the drain thread's gone_.load(acquire) before the final drain.
        gone_.store(true, std::memory_order_release);
    }
    bool gone() const { return gone_.load(std::memory_order_acquire); }
    /// Attached and not gone: a process whose figures are worth showing.
    bool live() const { return state() == producer_state::attached && !gone(); }
    /// At least one process-resources sample arrived. acquire: pairs with the drain's release
    /// store of `sampled` (see process_resources), so the sample's cells are readable.
    bool sampled() const { return resources().sampled.load(std::memory_order_acquire); }

    struct counts {
        cell drained, full, torn, invalid, resource_samples;  // samples: the helper lane, apart
        std::uint64_t consumed_at_attach = 0;
    };
    const counts& stats() const { return counts_; }
    /// Acquire: the counts written before a state change are visible with it.
    producer_state state() const { return producer_state(state_.load(std::memory_order_acquire)); }
    std::chrono::system_clock::time_point attached_at() const { return attached_at_; }
    /// The process name (/proc/<pid>/comm at registration).
    const std::string& name() const { return name_; }

    /// The latest process sample from the probe's helper thread (sampled: at least one came).
    struct process_resources {
        cell rss_bytes, cpu_ns, open_fds, threads, read_bytes, write_bytes;
        /// Set by the drain thread with a release store after it wrote the sample's cells; pairs
        /// with the acquire loads of the readers on other threads (the process-resources metrics
        /// source, the producers API) before they read the cells. The drain thread's own
        /// acquire loads (observe_resources, add_resource_rows) only keep the pattern uniform.
        std::atomic<bool> sampled{false};
        leak_watch leak;  // on rss_bytes
    };
    const process_resources& resources() const { return resources_; }
    /// The process's soft fd and process limits, read once at registration (off the drain
    /// thread); a later prlimit(2) is seen at the next registration.
    const process_limits& limits() const { return limits_; }

private:
    friend class drain;
    friend class intake;
    std::uint64_t id_;
    int pid_;
    unsigned uid_;
    int memfd_;
    std::unique_ptr<mapped_segment> seg_;
    std::atomic<bool> gone_{false};
    std::atomic<bool> clean_{false};
    std::atomic<int> state_{int(producer_state::attached)};
    std::chrono::system_clock::time_point attached_at_;
    std::string name_;
    counts counts_;
    process_resources resources_;
    process_limits limits_;

    // drain-thread state
    /// Direct-mapped front of queries_: one multiply and compare per event on a hit.
    struct query_front {
        std::uint64_t key = 0;
        query_series* series = nullptr;
    };
    std::array<query_front, 256> query_front_{};
    std::unordered_map<std::uint64_t, query_series*> queries_;
    std::unordered_map<std::uint64_t, execution_series*> executions_;
    std::unordered_map<std::uint64_t, counter_series*> counters_;
    struct pool_last {
        pool_series* series;
        std::uint64_t in_use, idle, waiting;
    };
    std::unordered_map<std::uint32_t, pool_last> pools_;
    std::unordered_map<std::uint64_t, statement_stats*>
        statements_;  // (plugin id << 32 | statement id)
    struct memory_last {
        memory_series* series;
        std::uint64_t allocated, freed;
    };
    std::unordered_map<std::uint32_t, memory_last> memories_;
    /// Quarantined: per lane, the index up to which unread slots were counted lost.
    std::vector<std::uint64_t> abandoned_to_;
};

}  // namespace plugmon::agent
