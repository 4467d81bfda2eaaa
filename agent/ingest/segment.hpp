// A producer's segment as the agent sees it: validated once at attach, then read with every index
// bounded, so nothing a producer writes into its segment can crash or stall the agent.
#pragma once

#include <plugmon/layout.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace plugmon::agent {

/// Why a segment was refused at attach (labels of plugmon_agent_registrations_refused_total).
/// `count` is not a reason: it is the number of reasons, for arrays indexed by reason.
enum class reject_reason {
    none,
    fstat,
    unsealed,
    size,
    mmap,
    not_ready,
    magic,
    version,
    geometry,
    count
};
inline constexpr std::size_t reject_reason_count = std::size_t(reject_reason::count);
const char* to_string(reject_reason r);

/// One decoded, validated event with durations in nanoseconds and names as segment-local ids.
struct event {
    layout::event_kind kind;
    std::uint8_t flags;
    std::uint32_t plugin, op, table, tenant, aux;
    std::uint64_t start, duration_ns, value, value2;
};

/// A statement the producer published: its normalised text and fingerprint.
struct statement_text {
    std::string text;
    std::uint64_t fingerprint = 0;
    bool known = false;
};

/// What a lane yielded in one drain pass.
struct lane_result {
    std::uint64_t drained = 0;
    std::uint64_t invalid = 0;
    std::uint64_t torn = 0;
    bool corrupt = false;  ///< lane indices are impossible: the producer is quarantined
};

class mapped_segment {
public:
    /// Maps and validates the memfd `fd` (not taken over: the caller keeps and closes it).
    /// On failure returns nullptr and sets `why` and `detail`.
    static std::unique_ptr<mapped_segment> attach(int fd, reject_reason& why, std::string& detail);
    ~mapped_segment();
    mapped_segment(const mapped_segment&) = delete;
    mapped_segment& operator=(const mapped_segment&) = delete;

    const layout::geometry& geometry() const { return geo_; }
    bool tsc_clock() const { return tsc_; }
    std::uint32_t creator_pid() const { return creator_pid_; }

    /// Drains lane `i` (i == lane_count is the shared lane), calling bool sink(const event&) for each
    /// valid slot (false = the event names something the producer never published: invalid). `final` = the producer is gone: unpublished claimed slots are counted as torn.
    template <class Sink>
    lane_result drain_lane(std::uint32_t i, bool final, double ns_per_tick, Sink&& sink);

    /// Reports drops the producer counted that no agent has reported yet, and marks them reported.
    std::uint64_t take_new_drops(bool& corrupt);
    /// Events published but not yet consumed, and the fullest lane's fill ratio.
    void backlog(std::uint64_t& pending, double& max_ratio) const;
    /// Lane i's consumed and published indices; false when they are impossible (head behind
    /// tail, or more than a lane ahead of it). Reads the two indices, never a slot.
    bool lane_indices(std::uint32_t i, std::uint64_t& tail, std::uint64_t& head) const {
        const layout::lane_header* h = lane(i);
        tail = h->tail.load(std::memory_order_relaxed);
        head = h->head.load(std::memory_order_relaxed);
        return head >= tail && head - tail <= geo_.lane_slots;
    }
    /// Sum of tail over lanes except the helper's (events all agents so far consumed).
    std::uint64_t consumed_total() const;

    /// The text of a segment-local name id; nullptr for an id the producer never published.
    /// Names are sanitised (valid UTF-8, no control characters) and cached once read.
    const std::string* name(std::uint32_t id);

    /// A query's statement (slot aux, 1-based); nullptr for 0 or an id never published.
    /// Sanitised like names and cached once read.
    const statement_text* statement(std::uint32_t id);

    void mark_attached(std::uint32_t agent_pid);
    /// The lane the probe's helper thread writes its samples to (~0: none). Producer-written:
    /// trusted only to sort that producer's own events into drained and samples.
    std::uint32_t helper_lane() const {
        // acquire: pairs with the probe's helper_lane.store(release).
        return reinterpret_cast<const layout::segment_header*>(base_)->helper_lane.load(
            std::memory_order_acquire);
    }

private:
    mapped_segment() = default;
    layout::lane_header* lane(std::uint32_t i) const {
        return reinterpret_cast<layout::lane_header*>(base_ + geo_.lanes_offset) + i;
    }
    const layout::slot* slots(std::uint32_t i) const {
        return reinterpret_cast<const layout::slot*>(base_ + geo_.slots_offset) +
               std::uint64_t(i) * geo_.lane_slots;
    }
    bool decode(const layout::slot& s, std::uint64_t index, double ns_per_tick, event& out) const;

    char* base_ = nullptr;
    std::size_t size_ = 0;
    layout::geometry geo_{};
    bool tsc_ = false;
    std::uint32_t creator_pid_ = 0;
    std::vector<std::string> names_;
    std::vector<std::uint8_t> name_known_;
    std::vector<statement_text> statements_;
};

template <class Sink>
lane_result mapped_segment::drain_lane(std::uint32_t i, bool final, double ns_per_tick,
                                       Sink&& sink) {
    lane_result r;
    layout::lane_header* h = lane(i);
    const bool shared = i == geo_.lane_count;
    const std::uint64_t cap = geo_.lane_slots;
    const std::uint64_t mask = cap - 1;
    std::uint64_t tail = h->tail.load(std::memory_order_relaxed);
    // acquire: pairs with the producer's head.store(release) after it wrote the slot
    // (per-thread lane), or bounds the claimed range (shared lane).
    const std::uint64_t head = h->head.load(std::memory_order_acquire);
    if (head < tail || head - tail > cap) {
        r.corrupt = true;
        return r;
    }
    const layout::slot* base = slots(i);
    while (tail != head) {
        const layout::slot* src = &base[tail & mask];
        if (shared) {
            // acquire: pairs with the producer's seq store(release) in emit_shared.
            const std::uint32_t seq =
                __atomic_load_n(&const_cast<layout::slot*>(src)->seq, __ATOMIC_ACQUIRE);
            if (seq != std::uint32_t(tail + 1)) {
                if (!final) break;  // claimed, not yet published: wait for it
                ++r.torn;           // its producer is gone: it never will be
                ++tail;
                continue;
            }
        }
        layout::slot copy;
        std::memcpy(&copy, src, sizeof copy);
        event e;
        if (decode(copy, tail, ns_per_tick, e) && sink(e)) {
            ++r.drained;
        } else {
            ++r.invalid;
        }
        ++tail;
    }
    // release: pairs with the producer's tail.load(acquire) before it reuses the slots.
    h->tail.store(tail, std::memory_order_release);
    return r;
}

}  // namespace plugmon::agent
