// libFuzzer target: arbitrary bytes over a producer segment (header fields, lane indices, name
// table, slots), then attach + drain every lane + resolve names, as the agent would. Sanitizers
// turn any out-of-bounds read, overflow or crash into a finding.
#include "ingest/segment.hpp"

#include <plugmon/layout.hpp>

#include <cstdint>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

namespace layout = plugmon::layout;
constexpr std::uint32_t lanes = 2, slots = 64, names = 16;
const layout::geometry geo = layout::make_geometry(lanes, slots, names);

/// A valid, ready segment; the fuzz input is then written over parts of it.
int make_segment(const std::uint8_t* data, std::size_t size) {
    const int fd = ::memfd_create("plugmon-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    // The first input byte may ask for a file shorter or longer than the geometry says.
    std::uint64_t file_size = geo.segment_size;
    if (size > 0 && data[0] < 16) file_size = std::uint64_t(data[0]) * 4096;
    if (size > 0 && data[0] == 255) file_size += 4096;
    if (::ftruncate(fd, off_t(file_size)) != 0) {
        ::close(fd);
        return -1;
    }
    void* p = ::mmap(nullptr, geo.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        ::close(fd);
        return -1;
    }
    auto* base = static_cast<char*>(p);
    const std::uint64_t writable = std::min<std::uint64_t>(file_size, geo.segment_size);
    if (writable >= layout::header_size) {
        auto* h = reinterpret_cast<layout::segment_header*>(base);
        h->magic = layout::segment_magic;
        h->version = layout::layout_version;
        layout::write_geometry(*h, geo);
        h->clock = 1;
        h->ready.store(layout::layout_version);
        // Input layout after byte 0: chunks of [region u8][offset u16][len u8][bytes...].
        std::size_t i = 1;
        while (i + 4 <= size) {
            const std::uint8_t region = data[i] % 4;
            const std::uint32_t off = std::uint32_t(data[i + 1]) | std::uint32_t(data[i + 2]) << 8;
            const std::size_t len = std::min<std::size_t>(data[i + 3], size - i - 4);
            const std::uint64_t start = region == 0   ? 0
                                        : region == 1 ? geo.lanes_offset
                                        : region == 2 ? geo.names_offset
                                                      : geo.slots_offset;
            const std::uint64_t at = start + off * (region == 3 ? 8u : 1u);
            if (at + len <= writable) std::memcpy(base + at, data + i + 4, len);
            i += 4 + len;
        }
    }
    ::munmap(p, geo.segment_size);
    ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const int fd = make_segment(data, size);
    if (fd < 0) return 0;
    plugmon::agent::reject_reason why{};
    std::string detail;
    auto seg = plugmon::agent::mapped_segment::attach(fd, why, detail);
    if (seg) {
        std::uint64_t sum = 0;
        for (int pass = 0; pass < 2; ++pass) {
            for (std::uint32_t l = 0; l <= seg->geometry().lane_count; ++l) {
                const auto r = seg->drain_lane(l, pass == 1, 0.37, [&](const plugmon::agent::event& e) {
                    const std::string* a = seg->name(e.plugin);
                    const std::string* b = seg->name(e.op);
                    if (a) sum += a->size();
                    if (b) sum += b->size();
                    return a != nullptr;
                });
                sum += r.drained + r.invalid + r.torn;
                if (r.corrupt) break;
            }
        }
        bool corrupt = false;
        sum += seg->take_new_drops(corrupt);
        std::uint64_t pending = 0;
        double ratio = 0;
        seg->backlog(pending, ratio);
        sum += pending + seg->consumed_total();
        for (std::uint32_t id = 0; id < names + 4; ++id)
            if (const std::string* n = seg->name(id)) sum += n->size();
        (void)sum;
    }
    ::close(fd);
    return 0;
}
