// A probe segment built by hand in a sealed memfd, the way probe/runtime.cpp writes one (line 0,
// then `ready` last), for tests that play a producer without the probe: well-formed by default,
// broken on purpose through `segment_spec`, and written slot by slot afterwards.
#pragma once

#include <plugmon/layout.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace plugmon::test {

/// What to build; the defaults describe a segment the agent must accept.
struct segment_spec {
    std::uint32_t lanes = 2;
    std::uint32_t lane_slots = 64;
    std::uint32_t names = 16;
    layout::clock_kind clock = layout::clock_kind::monotonic_ns;
    int seals = F_SEAL_SHRINK | F_SEAL_GROW;
    std::int64_t file_size = -1;  ///< bytes in the memfd; -1 = the declared segment size
    std::uint32_t ready = layout::layout_version;
    std::function<void(layout::segment_header&)> edit{};  ///< applied to line 0 before `ready`
};

/// Declares the geometry of (lanes, slots, names) in line 0, offsets and size consistent with it.
inline void declare(layout::segment_header& h, std::uint32_t lanes, std::uint32_t slots, std::uint32_t names) {
    layout::write_geometry(h, layout::make_geometry(lanes, slots, names));
}

class hand_segment {
public:
    explicit hand_segment(const segment_spec& s = {}, const char* memfd_name = "plugmon-test-segment")
        : geo_(layout::make_geometry(s.lanes, s.lane_slots, s.names)) {
        fd_ = ::memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd_ < 0) throw std::runtime_error(std::string("memfd_create: ") + std::strerror(errno));
        size_ = s.file_size < 0 ? geo_.segment_size : std::uint64_t(s.file_size);
        if (::ftruncate(fd_, off_t(size_)) != 0) throw std::runtime_error("ftruncate");
        if (s.seals != 0 && ::fcntl(fd_, F_ADD_SEALS, s.seals) != 0) throw std::runtime_error("seal");
        if (size_ == 0) return;
        void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (p == MAP_FAILED) throw std::runtime_error("mmap");
        base_ = static_cast<char*>(p);
        if (size_ < layout::header_size) return;  // too small to hold a header: leave it zero
        layout::segment_header& h = header();
        h.magic = layout::segment_magic;
        h.version = layout::layout_version;
        layout::write_geometry(h, geo_);
        h.clock = std::uint32_t(s.clock);
        h.creator_pid = std::uint32_t(::getpid());
        h.helper_lane.store(~0u, std::memory_order_relaxed);
        if (s.edit) s.edit(h);
        // release: the agent's ready.load(acquire) sees line 0 complete
        h.ready.store(s.ready, std::memory_order_release);
    }
    ~hand_segment() {
        if (base_ != nullptr) ::munmap(base_, size_);
        if (fd_ >= 0) ::close(fd_);
    }
    hand_segment(const hand_segment&) = delete;
    hand_segment& operator=(const hand_segment&) = delete;

    int fd() const { return fd_; }
    std::uint64_t size() const { return size_; }
    const layout::geometry& geo() const { return geo_; }
    char* base() const { return base_; }
    layout::segment_header& header() const { return *reinterpret_cast<layout::segment_header*>(base_); }
    layout::lane_header& lane(std::uint32_t i) const {
        return reinterpret_cast<layout::lane_header*>(base_ + geo_.lanes_offset)[i];
    }
    /// The bytes of slot `index` of lane `i`, wrapping like the producer does.
    char* slot_bytes(std::uint32_t i, std::uint64_t index) const {
        return base_ + geo_.slots_offset +
               (std::uint64_t(i) * geo_.lane_slots + (index & (geo_.lane_slots - 1))) * layout::slot_size;
    }
    /// Stores `s` at `index` of lane `i`, unpublished.
    void put(std::uint32_t i, std::uint64_t index, const layout::slot& s) const {
        std::memcpy(slot_bytes(i, index), &s, sizeof s);
    }
    void publish(std::uint32_t i, std::uint64_t head) const {
        // release: pairs with the agent's head.load(acquire) before it reads the slots
        lane(i).head.store(head, std::memory_order_release);
    }
    /// Writes name `id` with raw `bytes` and `length` (default: the bytes that fit); with
    /// `publish`, raises names_published to cover it.
    void name(std::uint32_t id, const std::string& bytes, std::int64_t length = -1, bool publish = true) const {
        auto* entries = reinterpret_cast<layout::name_entry*>(base_ + geo_.names_offset);
        const std::size_t fit = std::min(bytes.size(), layout::name_max_length);
        std::memcpy(entries[id].text, bytes.data(), fit);
        // release: pairs with the agent's length.load(acquire) before it reads the text
        entries[id].length.store(length < 0 ? std::uint32_t(fit) : std::uint32_t(length), std::memory_order_release);
        if (publish && header().names_published.load() < id + 1) header().names_published.store(id + 1);
    }
    /// Waits until an agent consumed everything published on every lane.
    bool wait_consumed(std::chrono::milliseconds limit = std::chrono::seconds(10)) const {
        const auto end = std::chrono::steady_clock::now() + limit;
        for (;;) {
            bool all = true;
            for (std::uint32_t i = 0; i <= geo_.lane_count; ++i)
                if (lane(i).tail.load() != lane(i).head.load()) all = false;
            if (all) return true;
            if (std::chrono::steady_clock::now() > end) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }

private:
    layout::geometry geo_;
    int fd_ = -1;
    char* base_ = nullptr;
    std::uint64_t size_ = 0;
};

/// Name ids of the hand-built query events: the caller publishes "billing", "SELECT" and
/// "invoices" (or any names) under them.
constexpr std::uint32_t plugin_id = layout::first_name_id;
constexpr std::uint32_t op_id = plugin_id + 1;
constexpr std::uint32_t table_id = plugin_id + 2;

/// A valid query event for position `index` of a lane (250 ns, `rows` rows, no tenant).
inline layout::slot query_at(std::uint64_t index, std::uint64_t rows = 1) {
    layout::slot s{};
    s.seq = std::uint32_t(index + 1);
    s.kind = std::uint8_t(layout::event_kind::query);
    s.plugin = plugin_id;
    s.op = op_id;
    s.table = table_id;
    s.tenant = layout::name_empty;
    s.start = 1000 + index;
    s.duration = 250;
    s.value = rows;
    return s;
}

}  // namespace plugmon::test
