// Attach-time validation of a producer's segment and the per-slot decoder.
#include "ingest/segment.hpp"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

namespace plugmon::agent {

const char* to_string(reject_reason r) {
    switch (r) {
        case reject_reason::none:
            return "none";
        case reject_reason::fstat:
            return "fstat";
        case reject_reason::unsealed:
            return "unsealed";
        case reject_reason::size:
            return "size";
        case reject_reason::mmap:
            return "mmap";
        case reject_reason::not_ready:
            return "not_ready";
        case reject_reason::magic:
            return "magic";
        case reject_reason::version:
            return "version";
        case reject_reason::geometry:
            return "geometry";
        case reject_reason::count:
            break;
    }
    return "unknown";
}

std::unique_ptr<mapped_segment> mapped_segment::attach(int fd, reject_reason& why,
                                                       std::string& detail) {
    // Only a segment that can never shrink is safe to map: a shrunk mapping raises SIGBUS.
    // Seals first, size second: a size read before the seals could still change under us.
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) == 0 || (seals & F_SEAL_GROW) == 0) {
        why = reject_reason::unsealed;
        detail = "segment is not sealed against resizing (F_SEAL_SHRINK|F_SEAL_GROW)";
        return nullptr;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        why = reject_reason::fstat;
        detail = std::strerror(errno);
        return nullptr;
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < layout::header_size || size > layout::max_segment_size) {
        why = reject_reason::size;
        detail = "segment size " + std::to_string(size) + " out of range";
        return nullptr;
    }
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        why = reject_reason::mmap;
        detail = std::strerror(errno);
        return nullptr;
    }
    std::unique_ptr<mapped_segment> seg(new mapped_segment());
    seg->base_ = static_cast<char*>(p);
    seg->size_ = size;
    auto* hdr = reinterpret_cast<layout::segment_header*>(seg->base_);
    // acquire: pairs with the probe's ready.store(release) after it wrote line 0.
    const std::uint32_t ready = hdr->ready.load(std::memory_order_acquire);
    if (ready == 0) {
        why = reject_reason::not_ready;
        detail = "segment header is not marked ready";
        return nullptr;
    }
    layout::segment_header h0;
    // Line 0 only (plain data, read once; never re-read, so a later scribble cannot move it).
    constexpr std::size_t line0 =
        offsetof(layout::segment_header, statements_offset) + sizeof(h0.statements_offset);
    std::memcpy(static_cast<void*>(&h0), hdr, line0);
    if (h0.magic != layout::segment_magic) {
        why = reject_reason::magic;
        detail = "bad magic";
        return nullptr;
    }
    if (h0.version != layout::layout_version || ready != layout::layout_version) {
        why = reject_reason::version;
        detail = "layout version " + std::to_string(h0.version) + ", this agent reads version " +
                 std::to_string(layout::layout_version);
        return nullptr;
    }
    const auto g = layout::make_geometry(h0.lane_count, h0.lane_slots, h0.name_capacity,
                                         h0.statement_capacity);
    const bool geometry_ok =
        h0.header_bytes == layout::header_size && h0.lane_count >= 1 &&
        h0.lane_count <= layout::max_lanes && layout::is_pow2(h0.lane_slots) &&
        h0.lane_slots >= layout::min_lane_slots && h0.lane_slots <= layout::max_lane_slots &&
        h0.name_capacity >= layout::first_name_id &&
        h0.name_capacity <= layout::max_name_capacity &&
        h0.name_entry_bytes == layout::name_entry_size && h0.clock <= 1 &&
        h0.lanes_offset == g.lanes_offset && h0.names_offset == g.names_offset &&
        h0.slots_offset == g.slots_offset && h0.segment_size == g.segment_size &&
        h0.statement_capacity <= layout::max_statement_capacity &&
        h0.statement_entry_bytes == layout::statement_entry_size &&
        h0.statements_offset == g.statements_offset;
    if (!geometry_ok) {
        why = reject_reason::geometry;
        detail = "inconsistent geometry (lanes " + std::to_string(h0.lane_count) + ", slots " +
                 std::to_string(h0.lane_slots) + ", names " + std::to_string(h0.name_capacity) +
                 ", declared size " + std::to_string(h0.segment_size) + ", file size " +
                 std::to_string(size) + ")";
        return nullptr;
    }
    if (g.segment_size > size) {
        why = reject_reason::size;
        detail = "file size " + std::to_string(size) +
                 " is smaller than the declared segment size " + std::to_string(g.segment_size);
        return nullptr;
    }
    seg->geo_ = g;
    seg->tsc_ = h0.clock == std::uint32_t(layout::clock_kind::tsc);
    seg->creator_pid_ = h0.creator_pid;
    seg->names_.resize(g.name_capacity);
    seg->name_known_.assign(g.name_capacity, 0);
    seg->names_[layout::name_overflow] = layout::overflow_label;
    seg->name_known_[layout::name_empty] = 1;
    seg->name_known_[layout::name_overflow] = 1;
    seg->statements_.resize(g.statement_capacity);
    why = reject_reason::none;
    return seg;
}

mapped_segment::~mapped_segment() {
    if (base_ != nullptr) ::munmap(base_, size_);
}

void mapped_segment::mark_attached(std::uint32_t agent_pid) {
    auto* hdr = reinterpret_cast<layout::segment_header*>(base_);
    hdr->attach_count.fetch_add(1, std::memory_order_relaxed);
    hdr->agent_pid.store(agent_pid, std::memory_order_relaxed);
}

namespace {

/// Length of the well-formed UTF-8 sequence at p[0, n) (RFC 3629: no overlong forms, no
/// surrogates, nothing above U+10FFFF), or 0. Sets `cp` to the code point it encodes.
std::size_t utf8_sequence(const unsigned char* p, std::size_t n, std::uint32_t& cp) {
    const unsigned c = p[0];
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
        if (c == 0xe0) lo = 0xa0;  // overlong
        if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
        if (c == 0xf0) lo = 0x90;  // overlong
        if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
        return 0;  // continuation byte, overlong lead (c0, c1) or a 5/6-byte form
    }
    if (len > n || p[1] < lo || p[1] > hi) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[k] & 0x3f);
    }
    return len;
}

/// Replaces each byte that does not start a well-formed UTF-8 sequence, and each control
/// character (C0, DEL, C1), with '?'. Prometheus refuses a whole scrape over one ill-formed
/// label value, so nothing else may reach the exposition.
std::string sanitize(const char* p, std::size_t n) {
    std::string out;
    out.reserve(n);
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    std::size_t i = 0;
    while (i < n) {
        std::uint32_t cp = 0;
        const std::size_t len = utf8_sequence(u + i, n - i, cp);
        if (len == 0) {
            out.push_back('?');
            ++i;
            continue;
        }
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            out.push_back('?');
        else
            out.append(p + i, len);
        i += len;
    }
    return out;
}

}  // namespace

const std::string* mapped_segment::name(std::uint32_t id) {
    if (id >= geo_.name_capacity) return nullptr;
    if (name_known_[id]) return &names_[id];
    auto* hdr = reinterpret_cast<layout::segment_header*>(base_);
    // acquire: pairs with the probe's names_published.store(release).
    if (id >= hdr->names_published.load(std::memory_order_acquire)) return nullptr;
    auto* entries = reinterpret_cast<layout::name_entry*>(base_ + geo_.names_offset);
    // acquire: pairs with the probe's length.store(release) after it wrote the text.
    const std::uint32_t len = entries[id].length.load(std::memory_order_acquire);
    if (len == 0 || len > layout::name_max_length) return nullptr;
    char buf[layout::name_max_length];
    std::memcpy(buf, entries[id].text, len);
    names_[id] = sanitize(buf, len);
    name_known_[id] = 1;
    return &names_[id];
}

const statement_text* mapped_segment::statement(std::uint32_t id) {
    if (id == 0 || id > geo_.statement_capacity) return nullptr;
    statement_text& st = statements_[id - 1];
    if (st.known) return &st;
    auto* hdr = reinterpret_cast<layout::segment_header*>(base_);
    // acquire: pairs with the probe's statements_published.store(release).
    if (id > hdr->statements_published.load(std::memory_order_acquire)) return nullptr;
    auto* entries = reinterpret_cast<layout::statement_entry*>(base_ + geo_.statements_offset);
    // acquire: pairs with the probe's length.store(release) after it wrote text and fingerprint.
    const std::uint32_t len = entries[id - 1].length.load(std::memory_order_acquire);
    if (len == 0 || len > layout::statement_max_length) return nullptr;
    char buf[layout::statement_max_length];
    std::memcpy(buf, entries[id - 1].text, len);
    st.text = sanitize(buf, len);
    std::memcpy(&st.fingerprint, &entries[id - 1].fingerprint, sizeof st.fingerprint);
    st.known = true;
    return &st;
}

bool mapped_segment::decode(const layout::slot& s, std::uint64_t index, double ns_per_tick,
                            event& out) const {
    if (s.seq != std::uint32_t(index + 1)) return false;
    if (s.kind == 0 || s.kind > std::uint8_t(layout::event_kind::last)) return false;
    if ((s.flags & ~layout::known_flags) != 0) return false;
    const std::uint32_t cap = geo_.name_capacity;
    if (s.plugin >= cap || s.op >= cap || s.table >= cap || s.tenant >= cap) return false;
    if (s.plugin == layout::name_empty && s.kind != std::uint8_t(layout::event_kind::resource))
        return false;
    out.kind = layout::event_kind(s.kind);
    out.flags = s.flags;
    out.plugin = s.plugin;
    out.op = s.op;
    out.table = s.table;
    out.tenant = s.tenant;
    out.aux = s.aux;
    out.start = s.start;
    const bool ticks = tsc_ && (s.flags & layout::flag_duration_ns) == 0;
    out.duration_ns = ticks ? std::uint64_t(double(s.duration) * ns_per_tick) : s.duration;
    out.value = s.value;
    out.value2 = s.value2;
    if (out.kind == layout::event_kind::resource &&
        s.aux > std::uint32_t(layout::resource_field::last))
        return false;
    if (out.kind == layout::event_kind::query && s.aux > geo_.statement_capacity) return false;
    return true;
}

std::uint64_t mapped_segment::take_new_drops(bool& corrupt) {
    std::uint64_t total = 0;
    for (std::uint32_t i = 0; i <= geo_.lane_count; ++i) {
        layout::lane_header* h = lane(i);
        const std::uint64_t dropped = h->dropped_full.load(std::memory_order_relaxed);
        const std::uint64_t acked = h->drops_acked.load(std::memory_order_relaxed);
        // Going backwards, or a jump no probe could have counted since the last look (2^40 events),
        // is a scribbled counter: the producer is quarantined and the jump is not reported.
        if (dropped < acked || dropped - acked > (1ull << 40)) {
            corrupt = true;
            continue;
        }
        total += dropped - acked;
        h->drops_acked.store(dropped, std::memory_order_relaxed);
    }
    return total;
}

void mapped_segment::backlog(std::uint64_t& pending, double& max_ratio) const {
    pending = 0;
    max_ratio = 0;
    for (std::uint32_t i = 0; i <= geo_.lane_count; ++i) {
        const layout::lane_header* h = lane(i);
        const std::uint64_t head = h->head.load(std::memory_order_relaxed);
        const std::uint64_t tail = h->tail.load(std::memory_order_relaxed);
        if (head < tail || head - tail > geo_.lane_slots) continue;
        pending += head - tail;
        const double r = double(head - tail) / double(geo_.lane_slots);
        if (r > max_ratio) max_ratio = r;
    }
}

std::uint64_t mapped_segment::consumed_total() const {
    std::uint64_t t = 0;
    const std::uint32_t helper = helper_lane();  // its samples are not events the plugin recorded
    for (std::uint32_t i = 0; i <= geo_.lane_count; ++i)
        if (i != helper) t += lane(i)->tail.load(std::memory_order_relaxed);
    return t;
}

}  // namespace plugmon::agent
